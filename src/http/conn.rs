//! Connections on `server.listen`: the accept loop, `TCP_NODELAY`, the connection cap with its probes' reserve,
//! the request-head deadline, and graceful shutdown. hyper serves each connection (HTTP/1.1) with the router; this
//! module knows nothing of MCP.
//!
//! - **Cap**: at most `server.max_connections` connections are served. The next [`PROBE_RESERVE`] are accepted
//!   for the probes only: they answer `/health`, `/ready`, `/startup` and `/metrics`, answer anything else with a
//!   503 that names the limit, carry one request each, and must send it within [`RESERVE_HEADER_TIMEOUT`]. Beyond
//!   those, a connection is closed at once. Both refusals count as `nexus_http_rejected_total{reason="connections"}`.
//!   A flood larger than the cap and the reserve can still starve the probes (each attempt competes for the
//!   reserve); that is for the network in front (a connection limit per client) to stop.
//! - **Request heads**: a connection's first request head must arrive within `server.header_read_timeout` of the
//!   accept; later heads within the same time, counted from the end of the previous response, so idle keep-alive
//!   connections close after it too.
//! - **HTTP/1.1 only**: an HTTP/2 connection (prior knowledge; there is no TLS here) that went idle after one
//!   request would hold its place forever, as hyper has no idle timeout for HTTP/2; the clients and proxies in use
//!   (MCP SDKs, Istio with `appProtocol: http`) speak HTTP/1.1 to this port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounter, IntGauge};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Connections accepted beyond `server.max_connections` to serve the probes.
pub const PROBE_RESERVE: usize = 8;
/// The paths a connection of the probes' reserve serves.
pub const PROBE_PATHS: [&str; 4] = ["/health", "/ready", "/startup", "/metrics"];
/// How long a connection of the probes' reserve may take to send its request head (probes send theirs at once).
pub const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest pause after repeated accept errors (such as running out of file descriptors).
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// File descriptors the process needs besides HTTP connections and forwarded MongoDB connections: the listeners,
/// the SSH session, the driver's monitors, logs, the runtime.
const FD_OVERHEAD: u64 = 64;

/// The limits of [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `server.max_connections`.
    pub max_connections: usize,
    /// `server.header_read_timeout`.
    pub header_read_timeout: Duration,
}

/// What [`serve`] reports.
#[derive(Clone)]
pub struct ConnMetrics {
    /// `nexus_http_connections`.
    pub open: IntGauge,
    /// `nexus_http_rejected_total{reason="connections"}`.
    pub refused: IntCounter,
}

/// Which connections a permit admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Within `server.max_connections`: every endpoint, keep-alive.
    Full,
    /// From the probes' reserve: [`PROBE_PATHS`] only, one request.
    ProbesOnly,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets the connections finish their requests
/// (hyper's graceful shutdown) and returns when they are closed.
///
/// # Errors
/// None in practice: accept errors (such as `EMFILE`) are logged and retried after a pause that doubles up to
/// [`MAX_ACCEPT_PAUSE`], because connections closing frees what they need.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: ConnMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let full = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(PROBE_RESERVE));
    let connections = TaskTracker::new();
    let mut pause = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => {
                pause = Duration::ZERO;
                pair
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                pause = (pause * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_PAUSE);
                if pause < Duration::from_millis(20) {
                    tracing::error!(cause = %e, "cannot accept HTTP connections; retrying");
                }
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let (permit, admission) = if let Ok(p) = full.clone().try_acquire_owned() {
            (p, Admission::Full)
        } else if let Ok(p) = reserve.clone().try_acquire_owned() {
            (p, Admission::ProbesOnly)
        } else {
            metrics.refused.inc();
            tracing::debug!(%peer, max_connections = limits.max_connections, "connection refused: server.max_connections and the probes' reserve are in use");
            drop(socket);
            continue;
        };
        // Nagle off: hyper writes a response's head and body (and each SSE event) as separate segments; with Nagle
        // on, the second waits for the ACK of the first, which a keep-alive client delays by ~40 ms.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(cause = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        connections.spawn(connection(
            socket,
            Accepted {
                peer,
                admission,
                _permit: permit,
            },
            router.clone(),
            limits,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One accepted connection and the permit that admitted it (released when the connection closes).
struct Accepted {
    peer: SocketAddr,
    admission: Admission,
    _permit: OwnedSemaphorePermit,
}

async fn connection(
    socket: TcpStream,
    accepted: Accepted,
    router: Router,
    limits: Limits,
    metrics: ConnMetrics,
    shutdown: CancellationToken,
) {
    let _open = OpenConnection::count(&metrics.open);
    let probes_only = accepted.admission == Admission::ProbesOnly;
    let head_timeout = if probes_only {
        limits.header_read_timeout.min(RESERVE_HEADER_TIMEOUT)
    } else {
        limits.header_read_timeout
    };
    let peer = accepted.peer;
    let refused = metrics.refused;
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let refused = refused.clone();
        async move {
            if probes_only && !PROBE_PATHS.contains(&request.uri().path()) {
                refused.inc();
                return Ok::<_, Infallible>(reserve_refusal(limits.max_connections));
            }
            router.oneshot(request).await
        }
    });
    // hyper counts the head timeout from the moment it waits for a request: from the accept for the first one,
    // from the end of the previous response for the next (so an idle keep-alive connection closes after it).
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .keep_alive(!probes_only)
        .serve_connection(TokioIo::new(socket), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            log_end(peer, head_timeout, result);
            return;
        }
        () = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    log_end(peer, head_timeout, conn.await);
}

fn log_end(peer: SocketAddr, head_timeout: Duration, result: Result<(), hyper::Error>) {
    match result {
        Ok(()) => {}
        Err(e) if e.is_timeout() => tracing::debug!(
            %peer,
            timeout_ms = head_timeout.as_millis() as u64,
            "no complete request head within server.header_read_timeout: connection closed"
        ),
        Err(e) => tracing::debug!(%peer, cause = %e, "http connection ended with an error"),
    }
}

/// Counts a connection in `nexus_http_connections` while it is open.
struct OpenConnection(IntGauge);

impl OpenConnection {
    fn count(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The answer to a request other than a probe on a connection of the probes' reserve.
fn reserve_refusal(max_connections: usize) -> Response {
    let why = format!(
        "too many open connections (server.max_connections = {max_connections}); this connection serves only {}: \
         retry later, and reuse connections (keep-alive) instead of opening new ones",
        PROBE_PATHS.join(" ")
    );
    tracing::debug!(why, "http request rejected");
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": why, "reason": "connections" })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// A warning when the process's open-file limit cannot hold `server.max_connections`, the probes' reserve and
/// `tunnel.max_connections` (past the limit, accepting fails and every endpoint, probes included, stalls).
pub fn fd_budget_warning(max_connections: usize, forwarded: usize) -> Option<String> {
    let limit = open_files_limit()?;
    let needed = (max_connections + PROBE_RESERVE + forwarded) as u64 + FD_OVERHEAD;
    (needed > limit).then(|| {
        format!(
            "the open-file limit ({limit}) is below what server.max_connections ({max_connections}) + the probes' \
             reserve ({PROBE_RESERVE}) + tunnel.max_connections ({forwarded}) + {FD_OVERHEAD} need ({needed}): \
             raise the limit (ulimit -n) or lower server.max_connections"
        )
    })
}

/// The soft limit on open files (Linux), from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             127431               127431               processes \n\
                    Max open files            256                  524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(256));
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited  unlimited files"),
            None
        );
        assert_eq!(parse_open_files_limit(""), None);
    }
}
