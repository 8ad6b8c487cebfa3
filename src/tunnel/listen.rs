//! The accept loop both local routes share, and the metered copy between a local connection and its channel.
//! While no session is up, connections are closed at once (clients fail fast, never hang); when a session is
//! lost, every connection it carried is closed; at most `tunnel.max_connections` are carried at once over both
//! routes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::{Refusal, Route};
use super::{Channel, Shared};

/// Copy buffer per direction: large enough for bulk reads of result batches.
const COPY_BUFFER: usize = 64 * 1024;
/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts local connections until `shutdown`; then waits for the open ones to close.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    route: Route,
    shutdown: CancellationToken,
) {
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
            shared.refused(Refusal::Down);
            tracing::debug!(%peer, "tunnel down: closed a local connection at once");
            continue;
        }
        let Ok(permit) = shared.limit.clone().try_acquire_owned() else {
            shared.refused(Refusal::Limit);
            tracing::warn!(
                max_connections = shared.config.max_connections,
                "tunnel.max_connections reached: closed a local connection"
            );
            continue;
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            match route {
                Route::Forward => super::forward::carry(socket, peer, &shared).await,
                Route::Socks => super::socks::carry(socket, peer, &shared).await,
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Copies between a local connection and its channel until either side closes or the session is lost.
pub(super) async fn pipe(
    socket: TcpStream,
    channel: Channel,
    lost: CancellationToken,
    peer: SocketAddr,
    shared: &Shared,
    route: Route,
) {
    shared.metrics.channels_opened.get(route).inc();
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

/// A TCP stream that counts the bytes read from and written to it.
struct Metered {
    inner: TcpStream,
    /// Bytes read from the local client: sent toward the remote host.
    read: IntCounter,
    /// Bytes written to the local client: received from the remote host.
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
