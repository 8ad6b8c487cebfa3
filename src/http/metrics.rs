//! The HTTP edge's metrics (`nexus_http_*`, `nexus_oauth_*`).

use prometheus::{IntGauge, Registry};

use crate::metrics::{LabelledCounter, gauge, label_set};

/// The HTTP edge.
#[derive(Clone)]
pub struct HttpMetrics {
    /// `nexus_http_rejected_total{reason}`: requests (and connections) refused before reaching the MCP server.
    pub rejected: LabelledCounter<Rejected>,
    /// `nexus_http_connections`: open HTTP connections, the probes' reserve included.
    pub connections: IntGauge,
    /// `nexus_http_sessions`: legacy MCP sessions open.
    pub sessions: IntGauge,
    /// `nexus_oauth_jwks_fetches_total{outcome}`: fetches of the OAuth issuer's keys (`ok`, `failed`).
    pub jwks_fetches: LabelledCounter<Fetch>,
    /// `nexus_sessions_relayed_total{outcome}`: legacy sessions' answers relayed to the replica that asked.
    pub relayed: LabelledCounter<RelayOutcome>,
}

label_set! {
    /// Why the edge refused a request (or a connection): `reason` of `nexus_http_rejected_total`.
    pub enum Rejected {
        /// 401: a missing or unknown bearer token.
        Auth = "auth",
        /// 401: an expired access token.
        TokenExpired = "token_expired",
        /// 401: an access token that does not verify.
        TokenInvalid = "token_invalid",
        /// 401: an access token for another resource.
        BadAudience = "bad_audience",
        /// 401: an access token from another issuer.
        BadIssuer = "bad_issuer",
        /// 403: the token's scopes do not grant the tool.
        InsufficientScope = "insufficient_scope",
        /// 503: the issuer's keys cannot be fetched.
        AuthUnavailable = "auth_unavailable",
        /// 403 (or 400): a Host not in server.allowed_hosts.
        Host = "host",
        /// 403: an Origin not in server.allowed_origins.
        Origin = "origin",
        /// 503: server.max_in_flight reached.
        Limit = "limit",
        /// 429: the caller's rate limit.
        Rate = "rate",
        /// 413 or 400: a body too large or unreadable.
        Body = "body",
        /// 408: server.body_read_timeout.
        BodyTimeout = "body_timeout",
        /// 504, or an error event ending an SSE stream: server.request_timeout.
        Timeout = "timeout",
        /// 503 max_sessions, 429 max_sessions_per_caller.
        Sessions = "sessions",
        /// 503: a session held by another replica cannot be restored.
        SessionStore = "session_store",
        /// server.max_connections: closed at once, or 503 on the probes' reserve.
        Connections = "connections",
    }
}

label_set! {
    /// What became of a legacy session's answer to a question another replica asked: `outcome` of
    /// `nexus_sessions_relayed_total`. On the replica the answer was posted to: sent (to the asking replica's
    /// channel), unheard (that replica is gone or not subscribed), failed (the store did not answer), too_large; on
    /// the replica that asked: delivered (handed to the session), gone (the session is no longer here), invalid.
    pub enum RelayOutcome {
        Sent = "sent",
        Unheard = "unheard",
        Failed = "failed",
        TooLarge = "too_large",
        Delivered = "delivered",
        Gone = "gone",
        Invalid = "invalid",
    }
}

label_set! {
    /// How a fetch of the OAuth issuer's keys ended: `outcome` of `nexus_oauth_jwks_fetches_total`.
    pub enum Fetch {
        Ok = "ok",
        Failed = "failed",
    }
}

impl HttpMetrics {
    pub(crate) fn register(r: &Registry) -> Self {
        let rejected = LabelledCounter::register(
            r,
            "http_rejected_total",
            "HTTP requests refused at the edge: reason=auth (401: a missing or unknown bearer token), token_expired, \
             token_invalid, bad_audience, bad_issuer (401: OAuth access tokens), insufficient_scope (403), \
             auth_unavailable (503: the issuer's keys cannot be fetched), host or origin (403), limit (503, max_in_flight), \
             rate (429), body (413 or 400), body_timeout (408, body_read_timeout), timeout (504, or an error event \
             ending an SSE stream), sessions (503 max_sessions, 429 max_sessions_per_caller), session_store (503: a \
             session held by another replica cannot be restored, the shared store is unavailable), connections \
             (max_connections: closed at once, or 503 on a connection of the probes' reserve).",
            "reason",
        );
        let jwks_fetches = LabelledCounter::register(
            r,
            "oauth_jwks_fetches_total",
            "Fetches of the OAuth issuer's signing keys (discovery included): outcome=ok or failed.",
            "outcome",
        );
        let relayed = LabelledCounter::register(
            r,
            "sessions_relayed_total",
            "Legacy sessions' answers to a question another replica asked (shared store only): outcome=sent (to \
             that replica), unheard (it is gone or not subscribed), failed (the store did not answer), too_large; \
             on the replica that asked: delivered, gone (the session is no longer here), invalid.",
            "outcome",
        );
        Self {
            rejected,
            jwks_fetches,
            relayed,
            connections: gauge(
                r,
                "http_connections",
                "Open HTTP connections, including those of the probes' reserve.",
            ),
            sessions: gauge(
                r,
                "http_sessions",
                "Legacy MCP sessions (Mcp-Session-Id) open.",
            ),
        }
    }
}
