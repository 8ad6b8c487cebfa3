//! The edge in front of `/mcp` (and `/metrics`): request ids, security headers, Host and Origin checks (DNS
//! rebinding), bearer-token authentication, per-caller rate limiting, the body limit and the body-read deadline, a
//! global in-flight cap, the legacy session caps and the request timeout. Every refusal is counted in `nexus_http_rejected_total{reason}`
//! and answered with a JSON body that says why.
//!
//! (Over 400 lines: the admission checks run in one order, read top to bottom here; about 90 lines are tests.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::http::metrics::Rejected;
use crate::metrics::{Label as _, LabelledCounter};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServerConfig;
use super::body;
use super::envelope::Envelope;
use super::oauth::{TokenError, Verifier};
use super::rate::RateLimiter;
use super::sessions::{Full, Refusal, Scope, SessionLimits};
use super::tokens::Tokens;
use crate::access::{Grants, ToolClass};
use crate::audit::RequestMeta;
use crate::deadline::Deadline;
use crate::http::metrics::HttpMetrics;

/// A refused oversized body is read (and discarded) up to this multiple of `server.body_limit`, so the 413 reaches
/// a client that writes its whole body before reading; larger bodies get the 413 and a closed connection at once.
const DRAIN_FACTOR: u64 = 8;
/// How long a refused body may take to arrive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Retry-After` when every session place is taken.
const SESSIONS_FULL_RETRY: Duration = Duration::from_secs(5);

/// Request ids longer than this, or with other characters than `[A-Za-z0-9._:-]`, are replaced.
const MAX_REQUEST_ID: usize = 128;

/// The edge's settings and state.
pub struct Edge {
    pub tokens: Arc<Tokens>,
    /// Host header allowlist (`host` or `host:port`; `*` disables the check).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call (`scheme://host[:port]`); a request with any other Origin is refused.
    pub allowed_origins: Vec<String>,
    pub rate: RateLimiter,
    /// Permits for concurrent `/mcp` requests (`server.max_in_flight`).
    pub slots: Arc<Semaphore>,
    pub body_limit: u64,
    /// `server.body_read_timeout`: time for a request body to arrive, before an in-flight slot is taken.
    pub body_timeout: Duration,
    pub timeout: Duration,
    /// Legacy session places, overall and per caller (an `initialize` without a session id takes one).
    pub sessions: Arc<SessionLimits>,
    /// `server.session_idle_timeout`, for the message when sessions are full.
    pub session_idle_timeout: Duration,
    pub metrics_require_auth: bool,
    /// `nexus_http_rejected_total{reason}`.
    pub rejected: LabelledCounter<Rejected>,
    /// `[server.oauth]`: access tokens checked against the issuer's keys.
    pub oauth: Option<Arc<Verifier>>,
    /// The class of a tool by name (`None`: no such tool; the MCP layer answers that).
    pub tool_class: fn(&str) -> Option<ToolClass>,
}

/// Why a request was not authenticated.
enum AuthFailure {
    /// 401: no token, or one that is not valid.
    Denied(String, Option<TokenError>),
    /// 503: the issuer's keys cannot be fetched (and none are cached).
    Unavailable(TokenError),
}

/// The request id of a request, for handlers and logs.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Every response: echo (or assign) `X-Request-Id`; `nosniff`; `no-store`.
pub async fn stamp(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map_or_else(RequestMeta::new_id, str::to_string);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
}

/// `/mcp`: every check, then the handler under the in-flight cap and the request timeout.
///
/// A call (a POST carrying a JSON-RPC request) keeps its in-flight slot and its deadline until its response body
/// has been sent: on a legacy session the answer streams (SSE) long after the headers. Notifications and the
/// client's answers to the server's own requests take no slot: a call waiting for a confirmation must not keep its
/// own answer out.
pub async fn guard_mcp(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let (mut request, (caller, grants), message) = match edge.admit(request, peer).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let is_call = request.method() != Method::POST || message.is_call();
    let holds_body = request.method() == Method::POST && message.is_call();
    let permit = if is_call {
        match edge.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let mut r = edge.reject(
                    Rejected::Limit,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests in flight (server.max_in_flight)",
                );
                retry_after(&mut r, Duration::from_secs(1));
                return r;
            }
        }
    } else {
        None
    };
    let ticket = if request.method() == Method::POST
        && message.is_initialize()
        && !has_session_id(request.headers())
    {
        match edge.sessions.reserve(&caller) {
            Ok(ticket) => Some(ticket),
            Err(full) => return edge.sessions_full(full),
        }
    } else {
        None
    };
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or_else(RequestMeta::new_id, |r| r.0.clone());
    request
        .extensions_mut()
        .insert(RequestMeta { id, caller, grants });
    let deadline = Deadline::after(edge.timeout);
    request.extensions_mut().insert(deadline.clone());
    // Every request that opens or names a legacy session runs in a scope: the session manager takes the
    // reserved place from it (initialize), or reserves one for the caller when the session is restored from the
    // shared store, and notes why a restore was refused.
    let scope = (ticket.is_some() || has_session_id(request.headers()))
        .then(|| Scope::new(&request_caller(&request), ticket));
    let handled = async {
        match &scope {
            Some(scope) => scope.clone().within(next.run(request)).await,
            None => next.run(request).await,
        }
    };
    let answered = tokio::select! {
        response = handled => Some(response),
        () = deadline.expired() => None,
    };
    if let Some(refusal) = scope.as_ref().and_then(|s| s.refusal()) {
        return edge.refuse_restore(refusal);
    }
    match answered {
        Some(response) if holds_body => edge.bound_call(response, permit, deadline, message.id),
        Some(response) => response,
        None => edge.reject(
            Rejected::Timeout,
            StatusCode::GATEWAY_TIMEOUT,
            &edge.timeout_why(),
        ),
    }
}

/// Reads and discards up to `limit` bytes of a refused body, for at most [`DRAIN_TIMEOUT`].
async fn drain(body: axum::body::Body, limit: u64) {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while seen < limit {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len() as u64,
                _ => return,
            }
        }
    })
    .await;
}

/// `/metrics`: open on loopback; elsewhere it needs a token when tokens are configured and required.
pub async fn guard_metrics(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if edge.metrics_require_auth
        && !peer.ip().is_loopback()
        && let Err(failure) = edge.authenticate(request.headers(), peer).await
    {
        return edge.refuse_auth(failure);
    }
    next.run(request).await
}

impl Edge {
    /// The edge `server` asks for: its allow lists, limits and OAuth verifier; the tokens and session places are
    /// shared with the rest of the server, `tool_class` comes from the MCP layer.
    pub fn new(
        server: &ServerConfig,
        tokens: Arc<Tokens>,
        sessions: Arc<SessionLimits>,
        metrics: &HttpMetrics,
        tool_class: fn(&str) -> Option<ToolClass>,
    ) -> Self {
        Self {
            tokens,
            allowed_hosts: server.allowed_hosts.clone(),
            allowed_origins: server.allowed_origins.clone(),
            rate: RateLimiter::new(server.rate_limit, server.rate_burst),
            slots: Arc::new(Semaphore::new(server.max_in_flight)),
            body_limit: server.body_limit.as_u64(),
            body_timeout: server.body_read_timeout,
            timeout: server.request_timeout,
            sessions,
            session_idle_timeout: server.session_idle_timeout,
            metrics_require_auth: server.metrics_require_auth,
            rejected: metrics.rejected.clone(),
            oauth: server
                .oauth
                .clone()
                .map(|o| Arc::new(Verifier::new(o, metrics.jwks_fetches.clone()))),
            tool_class,
        }
    }

    /// Host, Origin, authentication, rate and body checks; returns the request with its body read, the caller and
    /// the message's envelope.
    async fn admit(
        &self,
        request: Request,
        peer: SocketAddr,
    ) -> Result<(Request, (String, Grants), Envelope), Response> {
        if request.headers().get_all(header::HOST).iter().count() > 1 {
            return Err(self.reject(
                Rejected::Host,
                StatusCode::BAD_REQUEST,
                "more than one Host header",
            ));
        }
        if let Err(why) = check_host(&self.allowed_hosts, &request) {
            return Err(self.reject(Rejected::Host, StatusCode::FORBIDDEN, &why));
        }
        if let Err(why) = check_origin(&self.allowed_origins, request.headers()) {
            return Err(self.reject(Rejected::Origin, StatusCode::FORBIDDEN, &why));
        }
        let (caller, grants) = self
            .authenticate(request.headers(), peer)
            .await
            .map_err(|failure| self.refuse_auth(failure))?;
        if let Err(wait) = self.rate.check(&caller) {
            let mut r = self.reject(
                Rejected::Rate,
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded for this caller",
            );
            retry_after(&mut r, wait);
            return Err(r);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(size) = declared.filter(|n| *n > self.body_limit) {
            // Clients such as Python's http.client write the whole body before reading: read it (bounded) so the
            // 413 reaches them instead of a reset, then close the connection.
            drain(
                request.into_body(),
                size.min(self.body_limit.saturating_mul(DRAIN_FACTOR)),
            )
            .await;
            return Err(self.refuse_body(&body::ReadError::TooLarge(self.body_limit)));
        }
        // The body is read before an in-flight slot is taken: a slow client holds only its connection, and gets its
        // 408 before server.request_timeout.
        let (parts, body) = request.into_parts();
        let bytes = body::read(body, self.body_limit, self.body_timeout)
            .await
            .map_err(|e| self.refuse_body(&e))?;
        let message = Envelope::peek(&bytes);
        if message.method.as_deref() == Some("tools/call")
            && let Some(refusal) = self.refuse_scope(grants, &bytes)
        {
            return Err(refusal);
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        Ok((request, (caller, grants), message))
    }

    /// A call's response: the in-flight slot and the deadline last until its body has been sent. Past the
    /// deadline, an SSE stream ends with a JSON-RPC error for the call (the call itself may still finish).
    fn bound_call(
        self: &Arc<Self>,
        response: Response,
        permit: Option<OwnedSemaphorePermit>,
        deadline: Deadline,
        id: Option<serde_json::Value>,
    ) -> Response {
        let sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let edge = self.clone();
        let on_expiry = Box::new(move || {
            let why = edge.timeout_why();
            edge.count(Rejected::Timeout, StatusCode::GATEWAY_TIMEOUT, &why);
            sse.then(|| sse_error(id, &why))
        });
        body::bound(
            response,
            permit,
            Box::pin(async move { deadline.expired().await }),
            on_expiry,
        )
    }

    /// A request named a session held by another replica, and it could not be restored here.
    fn refuse_restore(&self, refusal: Refusal) -> Response {
        match refusal {
            Refusal::Full(full) => self.sessions_full(full),
            Refusal::Store(why) => {
                let mut r = self.reject(
                    Rejected::SessionStore,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "this MCP session was opened on another replica and cannot be resumed here: {why}; retry \
                         shortly, or open a new session"
                    ),
                );
                retry_after(&mut r, Duration::from_secs(1));
                r
            }
        }
    }

    fn sessions_full(&self, full: Full) -> Response {
        let idle = humantime::format_duration(self.session_idle_timeout);
        let what_to_do = format!(
            "end unused sessions (HTTP DELETE /mcp with their Mcp-Session-Id) or let idle ones expire \
             (server.session_idle_timeout = {idle}); requests at MCP protocol 2026-07-28 need no session"
        );
        match full {
            Full::Caller(max) => self.reject(
                Rejected::Sessions,
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many open MCP sessions for this caller (server.max_sessions_per_caller = {max}): {what_to_do}"
                ),
            ),
            Full::Overall(max) => {
                let mut r = self.reject(
                    Rejected::Sessions,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "too many open MCP sessions on this server (server.max_sessions = {max}): {what_to_do}, \
                         or retry later"
                    ),
                );
                retry_after(&mut r, SESSIONS_FULL_RETRY);
                r
            }
        }
    }

    fn timeout_why(&self) -> String {
        format!(
            "no answer within server.request_timeout ({} ms); a write may or may not have been applied",
            self.timeout.as_millis()
        )
    }

    /// A request body that could not be read; the connection is closed (the rest of the body is not awaited).
    fn refuse_body(&self, e: &body::ReadError) -> Response {
        let (reason, status, why) = match e {
            body::ReadError::TooLarge(limit) => (
                Rejected::Body,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than server.body_limit ({limit} bytes)"),
            ),
            body::ReadError::TooSlow(limit) => (
                Rejected::BodyTimeout,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within server.body_read_timeout ({} ms): send the body at once",
                    limit.as_millis()
                ),
            ),
            body::ReadError::Failed(cause) => (
                Rejected::Body,
                StatusCode::BAD_REQUEST,
                format!("request body could not be read: {cause}"),
            ),
        };
        let mut r = self.reject(reason, status, &why);
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    }

    fn count(&self, reason: Rejected, status: StatusCode, why: &str) {
        self.rejected.inc(reason);
        tracing::debug!(
            reason = reason.as_str(),
            status = status.as_u16(),
            why,
            "http request rejected"
        );
    }

    fn reject(&self, reason: Rejected, status: StatusCode, why: &str) -> Response {
        self.count(reason, status, why);
        (
            status,
            axum::Json(serde_json::json!({ "error": why, "reason": reason.as_str() })),
        )
            .into_response()
    }

    /// The caller's identity and grants: the static token's name (every class), an access token's subject and
    /// the classes its scopes grant, or `anonymous@<ip>` when authentication is off.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<(String, Grants), AuthFailure> {
        if !self.tokens.enabled() && self.oauth.is_none() {
            return Ok((format!("anonymous@{}", peer.ip()), Grants::ALL));
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let Some(token) = presented else {
            return Err(AuthFailure::Denied(
                "missing bearer token (Authorization: Bearer <token>)".into(),
                None,
            ));
        };
        if let Some(verifier) = &self.oauth
            && Verifier::looks_like_jwt(token)
        {
            return match verifier.verify(token).await {
                Ok(principal) => Ok((principal.caller, principal.grants)),
                Err(e @ TokenError::KeysUnavailable(_)) => Err(AuthFailure::Unavailable(e)),
                Err(e) => Err(AuthFailure::Denied(e.to_string(), Some(e))),
            };
        }
        match self.tokens.identify(token) {
            Some(name) => Ok((name, Grants::ALL)),
            None => Err(AuthFailure::Denied("invalid bearer token".into(), None)),
        }
    }

    fn refuse_auth(&self, failure: AuthFailure) -> Response {
        match failure {
            AuthFailure::Denied(why, error) => {
                let reason = error.as_ref().map_or(Rejected::Auth, TokenError::reason);
                let mut r = self.reject(reason, StatusCode::UNAUTHORIZED, &why);
                let challenge = match &self.oauth {
                    Some(verifier) => {
                        let error = error.unwrap_or_else(|| TokenError::Invalid(why.clone()));
                        let presented =
                            why != "missing bearer token (Authorization: Bearer <token>)";
                        verifier.challenge(presented.then_some(&error))
                    }
                    None => "Bearer realm=\"nexus-mcp\"".to_string(),
                };
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
                r
            }
            AuthFailure::Unavailable(e) => {
                tracing::warn!(cause = %e, "oauth: a token could not be checked");
                let mut r = self.reject(
                    e.reason(),
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the identity provider's signing keys are unavailable; try again shortly",
                );
                retry_after(&mut r, Duration::from_secs(5));
                r
            }
        }
    }

    /// 403 for a `tools/call` whose tool needs a scope the caller's token lacks (the MCP layer refuses it too).
    fn refuse_scope(&self, grants: Grants, body: &[u8]) -> Option<Response> {
        let (Some(verifier), false) = (&self.oauth, grants == Grants::ALL) else {
            return None;
        };
        #[derive(serde::Deserialize)]
        struct Call {
            method: String,
            params: Option<Params>,
        }
        #[derive(serde::Deserialize)]
        struct Params {
            name: String,
        }
        let Ok(Call {
            method,
            params: Some(Params { name }),
        }) = serde_json::from_slice::<Call>(body)
        else {
            return None;
        };
        let class = match method.as_str() {
            "tools/call" => (self.tool_class)(&name),
            _ => None,
        };
        match class {
            Some(class) if !grants.allows(class) => {
                let why = format!(
                    "the access token lacks scope {} that tool {name} needs",
                    verifier.scope_for(class)
                );
                let mut r = self.reject(Rejected::InsufficientScope, StatusCode::FORBIDDEN, &why);
                if let Ok(value) = HeaderValue::from_str(&verifier.insufficient(class)) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
                Some(r)
            }
            _ => None,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The caller the edge identified (kept in the request's [`RequestMeta`]).
fn request_caller(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestMeta>()
        .map(|m| m.caller.clone())
        .unwrap_or_default()
}

/// Whether a request names a session (as rmcp reads the header: a value that is not text names none).
fn has_session_id(headers: &HeaderMap) -> bool {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .is_some()
}

/// The last event of an SSE stream cut at the deadline: a JSON-RPC error for the call (`-32001`, the MCP SDKs'
/// "request timed out").
fn sse_error(id: Option<serde_json::Value>, why: &str) -> axum::body::Bytes {
    let message = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": -32001, "message": why },
    });
    format!("event: message\ndata: {message}\n\n").into()
}

fn retry_after(response: &mut Response, wait: Duration) {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// The Host header (or the URI authority, for HTTP/2) must be listed.
fn check_host(allowed: &[String], request: &Request) -> Result<(), String> {
    if allowed.iter().any(|h| h == "*") {
        return Ok(());
    }
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .ok_or("missing Host header")?;
    let authority = authority.to_ascii_lowercase();
    let host = host_of(&authority);
    if allowed.iter().map(|a| a.to_ascii_lowercase()).any(|a| {
        a == authority
            || host_of(&a) == host && !a.contains(':')
            || a.trim_matches(['[', ']']) == host
    }) {
        Ok(())
    } else {
        Err(format!("Host `{authority}` is not in server.allowed_hosts"))
    }
}

/// `example.com:3000` → `example.com`; `[::1]:3000` → `::1`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => authority,
    }
}

/// Requests carrying an Origin header (browsers) must come from a listed origin.
fn check_origin(allowed: &[String], headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .unwrap_or("<not text>")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').to_ascii_lowercase() == origin)
    {
        Ok(())
    } else {
        Err(format!(
            "Origin `{origin}` is not in server.allowed_origins"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request {
        Request::builder()
            .uri("/mcp")
            .header("host", host)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn hosts_match_with_or_without_port() {
        let allowed: Vec<String> = ["localhost", "127.0.0.1", "::1", "mcp.example.com:8443"]
            .map(String::from)
            .into();
        assert!(check_host(&allowed, &request("127.0.0.1:3000")).is_ok());
        assert!(check_host(&allowed, &request("LOCALHOST")).is_ok());
        assert!(check_host(&allowed, &request("[::1]:3000")).is_ok());
        assert!(check_host(&allowed, &request("mcp.example.com:8443")).is_ok());
        assert!(check_host(&allowed, &request("mcp.example.com:9999")).is_err());
        assert!(
            check_host(&allowed, &request("evil.example"))
                .unwrap_err()
                .contains("evil.example")
        );
        assert!(check_host(&["*".into()], &request("anything")).is_ok());
    }

    #[test]
    fn origins_must_be_listed() {
        let mut headers = HeaderMap::new();
        assert!(
            check_origin(&[], &headers).is_ok(),
            "no Origin: not a browser"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(check_origin(&[], &headers).is_err());
        assert!(check_origin(&["http://evil.example/".into()], &headers).is_ok());
    }

    #[test]
    fn request_ids_are_sanitized() {
        assert!(valid_request_id("abc-123_x.y:z"));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id(&"x".repeat(129)));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "  BeArEr   tok "] {
            assert_eq!(bearer_token(value), Some("tok"), "{value:?}");
        }
        for value in ["Basic tok", "Bearer", "Bearer   ", "Bearertok"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    proptest::proptest! {
        /// Any Host, Origin and Authorization value: no panic; a host that passes is one of the listed names (with
        /// any port); an Origin that passes is listed; a bearer token is what follows the scheme.
        #[test]
        fn headers_never_panic_and_only_listed_values_pass(
            host in "[ -~]{0,40}",
            origin in "[ -~]{0,40}",
            auth in "[ -~]{0,40}",
        ) {
            let allowed: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
            if let Ok(value) = HeaderValue::from_str(&host) {
                let mut r = request("x");
                r.headers_mut().insert(header::HOST, value);
                if check_host(&allowed, &r).is_ok() {
                    let name = host_of(&host.to_ascii_lowercase()).trim_matches(['[', ']']).to_string();
                    proptest::prop_assert!(allowed.contains(&name), "{host:?} passed as {name:?}");
                }
            }
            if let Ok(value) = HeaderValue::from_str(&origin) {
                let mut headers = HeaderMap::new();
                headers.insert(header::ORIGIN, value);
                let listed = vec!["http://localhost:3000".to_string()];
                if check_origin(&listed, &headers).is_ok() {
                    proptest::prop_assert_eq!(origin.trim_end_matches('/').to_ascii_lowercase(), "http://localhost:3000");
                }
            }
            if let Some(token) = bearer_token(&auth) {
                proptest::prop_assert!(!token.is_empty() && auth.contains(token));
            }
        }
    }
}
