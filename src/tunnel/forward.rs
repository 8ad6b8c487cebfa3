//! The local forward: a fixed listener whose connections are each carried over a `direct-tcpip` channel of the
//! current session. While no session is up, connections are closed at once (clients fail fast, never hang);
//! when a session is lost, every connection it carried is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::error::TunnelError;

/// Copy buffer per direction: large enough for bulk reads of result batches.
const COPY_BUFFER: usize = 64 * 1024;
/// How often a repeated forward refusal is logged at `warn`.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(30);
/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts local connections until `shutdown`; then waits for the open ones to close.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(cause = %e, "tunnel: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if shared.current().is_none() {
            // Dropping the socket closes it: the driver sees EOF at once instead of waiting for a timeout.
            shared.metrics.refused.with_label_values(&["down"]).inc();
            tracing::debug!(%peer, "tunnel down: closed a local connection at once");
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.metrics.refused.with_label_values(&["limit"]).inc();
            tracing::warn!(
                max_connections = shared.config.max_connections,
                "tunnel.max_connections reached: closed a local connection"
            );
            continue;
        };
        connections.spawn(carry(socket, peer, shared.clone(), permit));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Carries one local connection over a new channel until either side closes or the session is lost.
async fn carry(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let cfg = &shared.config;
    let dialed = shared
        .dial(&cfg.remote_host, cfg.remote_port, Some(peer))
        .await;
    shared.note_forward(dialed.as_ref().err());
    let (channel, lost) = match dialed {
        Ok(pair) => pair,
        Err(e) => {
            shared
                .metrics
                .refused
                .with_label_values(&["open_failed"])
                .inc();
            match e {
                TunnelError::ForwardRefused { .. } => warn_refused(&shared, &e),
                _ => tracing::debug!(cause = %e, "tunnel: no channel for a local connection"),
            }
            return;
        }
    };
    let active = shared.metrics.channels_active.clone();
    active.inc();
    let mut local = Metered {
        inner: socket,
        read: shared.metrics.bytes_tx.clone(),
        written: shared.metrics.bytes_rx.clone(),
    };
    let mut remote = channel;
    tokio::select! {
        result = tokio::io::copy_bidirectional_with_sizes(&mut local, &mut remote, COPY_BUFFER, COPY_BUFFER) => {
            if let Err(e) = result {
                tracing::debug!(%peer, cause = %e, "tunnel: forwarded connection ended with an error");
            }
        }
        () = lost.cancelled() => tracing::debug!(%peer, "tunnel: session lost, closing its forwarded connection"),
    }
    active.dec();
}

/// Logs a refused forward at `warn` at most once per [`REFUSAL_LOG_EVERY`] (the driver retries every few hundred
/// milliseconds while the target is refused); the ones in between go to `debug`.
fn warn_refused(shared: &Shared, e: &TunnelError) {
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

/// A TCP stream that counts the bytes read from and written to it.
struct Metered {
    inner: TcpStream,
    /// Bytes read from the local client: sent toward MongoDB.
    read: IntCounter,
    /// Bytes written to the local client: received from MongoDB.
    written: IntCounter,
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.inc_by(n as u64);
        }
        poll
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = poll {
            self.written.inc_by(n as u64);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
