//! The fixed forward: each local connection is carried over a new channel to `tunnel.forward_to` (the MongoDB
//! host as the bastion sees it). A refusal is remembered for health explanations and logged at most every 30 s.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::Shared;
use super::error::TunnelError;
use super::listen::pipe;
use super::metrics::{Refusal, Route};

/// How often a repeated forward refusal is logged at `warn`.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(30);

/// Carries one local connection to the forward's target.
pub(super) async fn carry(socket: TcpStream, peer: SocketAddr, shared: &Shared) {
    let Some((host, port)) = &shared.config.forward_to else {
        return;
    };
    let dialed = shared.dial(host, *port, Some(peer)).await;
    shared.note_forward(dialed.as_ref().err());
    match dialed {
        Ok((channel, lost)) => pipe(socket, channel, lost, peer, shared, Route::Forward).await,
        Err(e) => {
            shared.refused(Refusal::OpenFailed);
            match e {
                TunnelError::ForwardRefused { .. } => warn_refused(shared, &e),
                _ => tracing::debug!(cause = %e, "tunnel: no channel for a local connection"),
            }
        }
    }
}

/// Logs a refused forward at `warn` at most once per [`REFUSAL_LOG_EVERY`] (the driver retries every few hundred
/// milliseconds while the target is refused); the ones in between go to `debug`.
pub(super) fn warn_refused(shared: &Shared, e: &TunnelError) {
    let mut last = shared
        .refusal_logged
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    if last.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY) {
        *last = Some(now);
        tracing::warn!(cause = %e, class = %e.class(), "tunnel: forward refused");
    } else {
        tracing::debug!(cause = %e, "tunnel: forward refused again");
    }
}
