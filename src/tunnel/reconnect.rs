//! The reconnect loop: establish a session, publish it, wait for its loss, and start again with exponential
//! backoff + jitter. Owns [`TunnelState`] transitions. Host key mismatches are logged as errors at every attempt
//! (never retried silently); other failures warn once and then log at debug while the class stays the same.

use std::sync::Arc;
use std::time::Instant;

use russh::Disconnect;
use tokio_util::sync::CancellationToken;

use super::session;
use super::{Shared, TunnelState};
use crate::backoff::Backoff;
use crate::error::ErrorClass;

/// Runs until `shutdown`; then closes the session cleanly and publishes [`TunnelState::Stopped`].
pub(super) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let cfg = &shared.config;
    let mut backoff = Backoff::try_new(cfg.reconnect_min_delay, cfg.reconnect_max_delay)
        .expect("validated by config: min > 0 and max >= min");
    let mut established_before = false;
    let mut last_class: Option<ErrorClass> = None;
    loop {
        let attempt = backoff.attempt() + 1;
        shared
            .state
            .send_replace(TunnelState::Connecting { attempt });
        let started = Instant::now();
        let connected = tokio::select! {
            result = session::connect(cfg) => result,
            () = shutdown.cancelled() => break,
        };
        match connected {
            Ok(session) => {
                let took = started.elapsed();
                shared.metrics.connect_duration.observe(took.as_secs_f64());
                if established_before {
                    shared.metrics.reconnects.inc();
                }
                tracing::info!(
                    bastion = %cfg.bastion,
                    hops = cfg.jumps.len() + 1,
                    duration_ms = took.as_millis() as u64,
                    route = %shared.describe_route(),
                    reconnect = established_before,
                    "tunnel up"
                );
                established_before = true;
                last_class = None;
                backoff.reset();
                let session = Arc::new(session);
                shared.install(session.clone());
                let reason = tokio::select! {
                    reason = session.loss.lost() => Some(reason),
                    () = shutdown.cancelled() => None,
                };
                shared.uninstall();
                let Some(reason) = reason else {
                    let _ = session
                        .handle
                        .disconnect(Disconnect::ByApplication, "nexus-mcp shutting down", "en")
                        .await;
                    session.loss.lose("shutting down");
                    break;
                };
                tracing::warn!(cause = %reason, class = %ErrorClass::SshUnreachable, "tunnel lost; reconnecting");
                let delay = backoff.next_delay();
                shared.state.send_replace(TunnelState::Reconnecting {
                    attempt: backoff.attempt(),
                    next_try: Instant::now() + delay,
                    error: ErrorClass::SshUnreachable,
                    message: reason,
                });
                if sleep_or_shutdown(delay, &shutdown).await {
                    break;
                }
            }
            Err(e) => {
                let class = e.class();
                shared
                    .metrics
                    .connect_failures
                    .with_label_values(&[class.as_str()])
                    .inc();
                let delay = backoff.next_delay();
                let next_in_ms = delay.as_millis() as u64;
                if class == ErrorClass::SshHostKeyMismatch {
                    tracing::error!(cause = %e, %class, attempt, next_in_ms, "tunnel: connect refused");
                } else if last_class != Some(class) {
                    tracing::warn!(cause = %e, %class, attempt, next_in_ms, "tunnel: connect failed; retrying");
                } else {
                    tracing::debug!(cause = %e, %class, attempt, next_in_ms, "tunnel: connect failed again");
                }
                last_class = Some(class);
                shared.state.send_replace(TunnelState::Reconnecting {
                    attempt: backoff.attempt(),
                    next_try: Instant::now() + delay,
                    error: class,
                    message: e.to_string(),
                });
                if sleep_or_shutdown(delay, &shutdown).await {
                    break;
                }
            }
        }
    }
    shared.state.send_replace(TunnelState::Stopped);
}

/// Sleeps; returns true when shutdown came first.
async fn sleep_or_shutdown(delay: std::time::Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = shutdown.cancelled() => true,
    }
}
