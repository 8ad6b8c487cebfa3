//! The HTTP edge on `server.listen`: every endpoint of the process.
//!
//! - `GET /health` — liveness: 200 while the process answers.
//! - `GET /ready` — readiness: 200 when started, not draining and every dependency healthy; else 503.
//! - `GET /startup` — 200 once startup completed (one-way); else 503.
//! - `GET /metrics` — Prometheus text format.
//! - `/mcp` — MCP Streamable HTTP, mounted when the mcp stage completes; 503 with `Retry-After` before that and
//!   while draining. In-flight `/mcp` requests are counted so shutdown can drain them.
//!
//! Probe bodies are JSON (see `health`); they never carry secrets. `edge` guards `/mcp` and `/metrics`; `conn`
//! accepts the connections (the cap, its probes' reserve, the request-head deadline).

pub mod body;
mod config;
pub mod conn;
pub mod edge;
pub mod envelope;
pub mod metrics;
pub mod oauth;
pub mod rate;
pub mod relay;
pub mod sessions;
pub mod tokens;

pub use config::{ServerConfig, Transport};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::health::{Probe, Probes};
use crate::metrics::Metrics;

/// Where the MCP service is mounted once ready.
#[derive(Clone, Default)]
pub struct McpSlot(Arc<OnceLock<Router>>);

impl McpSlot {
    /// Mounts the MCP router (once; later calls are ignored).
    pub fn install(&self, router: Router) {
        let _ = self.0.set(router);
    }
}

/// Counts in-flight `/mcp` requests, so shutdown can wait for them.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub fn current(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight, or `limit` passes; returns whether it drained.
    pub async fn drained(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.current() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub health: Probes,
    pub metrics: Arc<Metrics>,
    pub mcp: McpSlot,
    pub in_flight: Arc<InFlight>,
    pub edge: Arc<edge::Edge>,
}

/// The router of every endpoint.
pub fn router(state: HttpState) -> Router {
    let guard_mcp = from_fn_with_state(state.edge.clone(), edge::guard_mcp);
    let guard_metrics = from_fn_with_state(state.edge.clone(), edge::guard_metrics);
    Router::new()
        .route("/health", get(liveness))
        .route("/ready", get(readiness))
        .route("/startup", get(startup))
        .route("/metrics", get(metrics).layer(guard_metrics))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*resource}",
            get(resource_metadata),
        )
        .route("/mcp", any(mcp).layer(guard_mcp.clone()))
        .route("/mcp/{*rest}", any(mcp).layer(guard_mcp))
        .layer(from_fn(edge::stamp))
        .with_state(state)
}

/// RFC 9728 Protected Resource Metadata, when `[server.oauth]` is on (404 otherwise).
async fn resource_metadata(State(s): State<HttpState>) -> Response {
    match &s.edge.oauth {
        Some(verifier) => axum::Json(verifier.metadata()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn liveness(State(s): State<HttpState>) -> Response {
    probe(&s, Probe::Liveness, false)
}

async fn readiness(State(s): State<HttpState>, query: RawQuery) -> Response {
    probe(&s, Probe::Readiness, verbose(&query))
}

async fn startup(State(s): State<HttpState>, query: RawQuery) -> Response {
    probe(&s, Probe::Startup, verbose(&query))
}

/// `?verbose` (kube-apiserver's convention) adds each unhealthy check's explanation to the body.
fn verbose(query: &RawQuery) -> bool {
    query.0.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    })
}

fn probe(s: &HttpState, which: Probe, verbose: bool) -> Response {
    let (ok, body) = s.health.report(which, verbose);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (code, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn metrics(State(s): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn mcp(State(s): State<HttpState>, request: Request) -> Response {
    if s.health.is_draining() {
        return unavailable("shutting down");
    }
    let Some(router) = s.mcp.0.get() else {
        return unavailable(&s.health.starting());
    };
    let guard = s.in_flight.enter();
    let method = request.method().clone();
    let (request, id) = match checked_json_rpc(request, s.edge.body_limit).await {
        Ok(checked) => checked,
        Err(answer) => return answer,
    };
    let Ok(mut response) = router.clone().oneshot(request).await;
    // A JSON-RPC message rmcp cannot read as an MCP message (e.g. params of the wrong shape): rmcp says 415, which
    // blames the content type; it is an invalid request.
    if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
        && let Some(id) = id
    {
        let why = String::from_utf8_lossy(
            &axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap_or_default(),
        )
        .into_owned();
        return json_rpc_error(crate::jsonrpc::error_line(
            id,
            -32600,
            &format!("invalid request: {why}"),
        ));
    }
    // rmcp answers a session's DELETE with 202 Accepted; clients expect 200 or 204 (the Python SDK logs
    // "Session termination failed: 202" otherwise). The session is gone by then: say so.
    if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    // A POST's answer may stream (SSE) after the headers: the drain waits for it. A GET's stream is a session's
    // channel for server messages, open as long as the session: it is not waited for.
    if method == Method::POST {
        body::hold(response, guard)
    } else {
        response
    }
}

/// A POSTed body that is not a JSON-RPC message gets 400 with the JSON-RPC error (rmcp answers 415, which reads as
/// a wrong content type); anything else passes on unchanged.
async fn checked_json_rpc(
    request: Request,
    limit: u64,
) -> Result<(Request, Option<serde_json::Value>), Response> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if request.method() != axum::http::Method::POST || !json {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await
    {
        Ok(bytes) => bytes,
        Err(_) => {
            let body = serde_json::json!({
                "error": format!("request body larger than server.body_limit ({limit} bytes), or unreadable")
            });
            return Err((StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response());
        }
    };
    let id = crate::jsonrpc::check(&bytes).map_err(json_rpc_error)?;
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        Some(id),
    ))
}

fn json_rpc_error(answer: Vec<u8>) -> Response {
    let mut response = (StatusCode::BAD_REQUEST, answer).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn unavailable(why: &str) -> Response {
    let body = serde_json::json!({ "error": format!("MCP endpoint unavailable: {why}") });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
