//! The Prometheus registry and one metrics struct per component, registered once at start and passed in.
//!
//! Names and help texts are a contract (dashboards, alert rules and the deployment consistency test read them).
//! Every family appears in `/metrics` from the start: labelled families are pre-created with their known labels.

use crate::error::ErrorClass;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Prefix of every metric.
const PREFIX: &str = "nexus";

/// Latency buckets in seconds, dense below the seed's 100 ms target.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// All metric families, grouped by component.
pub struct Metrics {
    registry: Registry,
    pub startup: StartupMetrics,
    pub health: HealthMetrics,
    pub tunnel: TunnelMetrics,
    pub mongo: MongoMetrics,
    pub mcp: McpMetrics,
    pub http: HttpMetrics,
}

impl Metrics {
    /// Creates the registry and registers every family.
    ///
    /// # Panics
    /// Only on a programming error (a duplicate or invalid metric name), which the unit tests catch.
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        let build_info = IntGaugeVec::new(
            opts(
                "build_info",
                "Build information of the running nexus-mcp binary; always 1.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        register(&registry, build_info);
        Self {
            startup: StartupMetrics::register(&registry),
            health: HealthMetrics::register(&registry),
            tunnel: TunnelMetrics::register(&registry),
            mongo: MongoMetrics::register(&registry),
            mcp: McpMetrics::register(&registry),
            http: HttpMetrics::register(&registry),
            registry,
        }
    }

    /// The registry, for components registered later (MCP, HTTP).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{PREFIX}_{name}"), help)
}

/// Registers a collector; names are static, so a failure is a programming error.
pub(crate) fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric registers once");
    c
}

/// A latency histogram in seconds.
pub(crate) fn latency_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(
        HistogramOpts::new(format!("{PREFIX}_{name}"), help).buckets(LATENCY_BUCKETS.to_vec()),
    )
    .expect("valid metric");
    register(registry, h)
}

/// A labelled latency histogram in seconds.
pub(crate) fn latency_histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(format!("{PREFIX}_{name}"), help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    register(registry, h)
}

pub(crate) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(opts(name, help), labels).expect("valid metric"),
    )
}

pub(crate) fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::with_opts(opts(name, help)).expect("valid metric"),
    )
}

/// Startup progress.
#[derive(Clone)]
pub struct StartupMetrics {
    /// `nexus_startup_stage{stage}`: 1 for the current stage, 0 for the others (a state set).
    stage: IntGaugeVec,
}

/// The stage names, in order.
pub const STAGES: [&str; 4] = ["tunnel", "mongodb", "mcp", "ready"];

impl StartupMetrics {
    fn register(r: &Registry) -> Self {
        let stage = register(
            r,
            IntGaugeVec::new(
                opts(
                    "startup_stage",
                    "Startup stage the process is in: 1 for the current stage (tunnel, mongodb, mcp, ready), 0 for the others.",
                ),
                &["stage"],
            )
            .expect("valid metric"),
        );
        let m = Self { stage };
        m.set(STAGES[0]);
        m
    }

    /// Marks `current` as the stage in progress.
    pub fn set(&self, current: &str) {
        for s in STAGES {
            self.stage
                .with_label_values(&[s])
                .set(i64::from(s == current));
        }
    }
}

/// Dependency health as the readiness probe sees it.
#[derive(Clone)]
pub struct HealthMetrics {
    /// `nexus_dependency_up{dependency}`: 1 healthy, 0 unhealthy.
    pub dependency_up: IntGaugeVec,
    /// `nexus_degraded`: 1 while ready only by the fleet policy (a dependency lost on every replica).
    pub degraded: IntGauge,
}

impl HealthMetrics {
    fn register(r: &Registry) -> Self {
        let dependency_up = register(
            r,
            IntGaugeVec::new(
                opts(
                    "dependency_up",
                    "Whether a required dependency (sshTunnel, mongodb) is healthy as /ready sees it: 1 healthy, 0 not.",
                ),
                &["dependency"],
            )
            .expect("valid metric"),
        );
        let degraded = gauge(
            r,
            "degraded",
            "1 while /ready is 200 with status degraded: under health.readiness = fleet, a dependency is unhealthy \
             here and on every peer that reports (a shared outage), past health.unready_window; tool calls answer \
             with the explained error meanwhile.",
        );
        Self {
            dependency_up,
            degraded,
        }
    }
}

/// The SSH tunnel.
#[derive(Clone)]
pub struct TunnelMetrics {
    /// `nexus_tunnel_up`: 1 while an authenticated SSH session is established.
    pub up: IntGauge,
    /// `nexus_tunnel_reconnects_total`: sessions re-established after a loss.
    pub reconnects: IntCounter,
    /// `nexus_tunnel_connect_duration_seconds`: TCP connect + handshake + auth over every hop.
    pub connect_duration: Histogram,
    /// `nexus_tunnel_channels_active`: forwarded connections open right now.
    pub channels_active: IntGauge,
    /// `nexus_tunnel_bytes_total{direction="tx"}`: bytes sent toward MongoDB.
    pub bytes_tx: IntCounter,
    /// `nexus_tunnel_bytes_total{direction="rx"}`: bytes received from MongoDB.
    pub bytes_rx: IntCounter,
    /// `nexus_tunnel_connections_refused_total{reason}`: local connections closed at once (`down`, `limit`,
    /// `open_failed`, `socks_handshake`).
    pub refused: IntCounterVec,
    /// `nexus_tunnel_channels_opened_total{route}`: channels opened for local connections, by route (`forward`,
    /// `socks`).
    pub channels_opened: IntCounterVec,
    /// `nexus_tunnel_connect_failures_total{class}`: failed attempts to establish the SSH session, by error class
    /// (`SSH_HOST_KEY_MISMATCH` is a security event).
    pub connect_failures: IntCounterVec,
}

/// The SSH connect failures by class, pre-created so a dashboard sees zeros.
pub const CONNECT_FAILURE_CLASSES: [ErrorClass; 5] = [
    ErrorClass::SshUnreachable,
    ErrorClass::SshHostKeyUnknown,
    ErrorClass::SshHostKeyMismatch,
    ErrorClass::SshAuthFailed,
    ErrorClass::ConfigInvalid,
];

impl TunnelMetrics {
    fn register(r: &Registry) -> Self {
        let bytes = counter_vec(
            r,
            "tunnel_bytes_total",
            "Bytes carried by the SSH forward: direction=tx toward MongoDB, rx from MongoDB.",
            &["direction"],
        );
        let refused = counter_vec(
            r,
            "tunnel_connections_refused_total",
            "Local connections to the forward closed at once: reason=down (no SSH session), limit \
             (tunnel.max_connections reached), open_failed (the bastion did not open the channel).",
            &["reason"],
        );
        for reason in ["down", "limit", "open_failed", "socks_handshake"] {
            refused.with_label_values(&[reason]);
        }
        let channels_opened = counter_vec(
            r,
            "tunnel_channels_opened_total",
            "Channels opened through the SSH session for local connections: route=forward (the fixed forward) or \
             socks (the route the driver dials each member by name through).",
            &["route"],
        );
        for route in ["forward", "socks"] {
            channels_opened.with_label_values(&[route]);
        }
        let connect_failures = counter_vec(
            r,
            "tunnel_connect_failures_total",
            "Failed attempts to establish the SSH session, by error class (SSH_HOST_KEY_MISMATCH: possible \
             interception).",
            &["class"],
        );
        for class in CONNECT_FAILURE_CLASSES {
            connect_failures.with_label_values(&[class.as_str()]);
        }
        Self {
            up: gauge(
                r,
                "tunnel_up",
                "Whether an authenticated SSH session to the bastion is established: 1 or 0.",
            ),
            reconnects: register(
                r,
                IntCounter::with_opts(opts(
                    "tunnel_reconnects_total",
                    "SSH sessions re-established after the previous one was lost.",
                ))
                .expect("valid metric"),
            ),
            connect_duration: latency_histogram(
                r,
                "tunnel_connect_duration_seconds",
                "Time to establish an SSH session: TCP connect, handshake and authentication over every hop.",
            ),
            channels_active: gauge(
                r,
                "tunnel_channels_active",
                "Forwarded connections open through the SSH session.",
            ),
            bytes_tx: bytes.with_label_values(&["tx"]),
            bytes_rx: bytes.with_label_values(&["rx"]),
            refused,
            channels_opened,
            connect_failures,
        }
    }
}

/// The MongoDB driver.
#[derive(Clone)]
pub struct MongoMetrics {
    /// `nexus_mongo_ping_duration_seconds`: round trip of the health `ping`.
    pub ping_duration: Histogram,
    /// `nexus_mongo_servers{type}`: the servers the driver sees, by type (from its topology events).
    pub servers: IntGaugeVec,
    /// `nexus_mongo_primary_changes_total`: times the driver saw a different primary (elections, failovers).
    pub primary_changes: IntCounter,
}

/// The `type` label values of `nexus_mongo_servers`.
pub const SERVER_TYPES: [&str; 7] = [
    "primary",
    "secondary",
    "arbiter",
    "standalone",
    "mongos",
    "other",
    "unknown",
];

impl MongoMetrics {
    fn register(r: &Registry) -> Self {
        let servers = register(
            r,
            IntGaugeVec::new(
                opts(
                    "mongo_servers",
                    "MongoDB servers the driver sees, by type (primary, secondary, arbiter, standalone, mongos, \
                     other, unknown).",
                ),
                &["type"],
            )
            .expect("valid metric"),
        );
        for t in SERVER_TYPES {
            servers.with_label_values(&[t]);
        }
        Self {
            ping_duration: latency_histogram(
                r,
                "mongo_ping_duration_seconds",
                "Round trip of the MongoDB health ping through the tunnel.",
            ),
            servers,
            primary_changes: register(
                r,
                IntCounter::with_opts(opts(
                    "mongo_primary_changes_total",
                    "Times the driver saw a different replica-set primary (elections, failovers).",
                ))
                .expect("valid metric"),
            ),
        }
    }
}

/// The MCP server.
#[derive(Clone)]
pub struct McpMetrics {
    /// `nexus_mcp_requests_total{method}`: JSON-RPC requests handled, by MCP method.
    pub requests: IntCounterVec,
    /// `nexus_mcp_request_duration_seconds{method}`: time to answer, by MCP method.
    pub request_duration: HistogramVec,
    /// `nexus_mcp_tool_calls_total{tool,outcome}`: tool calls by outcome (ok, rejected, failed, unavailable,
    /// input_required).
    pub tool_calls: IntCounterVec,
    /// `nexus_mcp_in_flight`: MCP requests being handled right now.
    pub in_flight: IntGauge,
}

/// MCP methods pre-created so the families show from the start (`mcp::requests::precreate` adds the same from
/// `Method::ALL`; a unit test there keeps the two lists equal).
pub const MCP_METHODS: [&str; 5] = [
    "initialize",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
];

impl McpMetrics {
    fn register(r: &Registry) -> Self {
        let requests = counter_vec(
            r,
            "mcp_requests_total",
            "MCP JSON-RPC requests handled, by method.",
            &["method"],
        );
        let request_duration = latency_histogram_vec(
            r,
            "mcp_request_duration_seconds",
            "Time to answer an MCP request, by method (the seed's target: p95 and p99 under 100 ms).",
            &["method"],
        );
        for method in MCP_METHODS {
            requests.with_label_values(&[method]);
            request_duration.with_label_values(&[method]);
        }
        Self {
            requests,
            request_duration,
            tool_calls: counter_vec(
                r,
                "mcp_tool_calls_total",
                "MCP tool calls by tool and outcome: ok, rejected (a guard or bad argument), failed (MongoDB \
                 error), unavailable (a dependency is down), input_required (asked the user to confirm).",
                &["tool", "outcome"],
            ),
            in_flight: gauge(r, "mcp_in_flight", "MCP requests being handled right now."),
        }
    }
}

/// The HTTP edge.
#[derive(Clone)]
pub struct HttpMetrics {
    /// `nexus_http_rejected_total{reason}`: requests (and connections) refused before reaching the MCP server.
    pub rejected: IntCounterVec,
    /// `nexus_http_connections`: open HTTP connections, the probes' reserve included.
    pub connections: IntGauge,
    /// `nexus_http_sessions`: legacy MCP sessions open.
    pub sessions: IntGauge,
    /// `nexus_oauth_jwks_fetches_total{outcome}`: fetches of the OAuth issuer's keys (`ok`, `failed`).
    pub jwks_fetches: IntCounterVec,
    /// `nexus_sessions_relayed_total{outcome}`: legacy sessions' answers relayed to the replica that asked.
    pub relayed: IntCounterVec,
}

/// Why the edge refuses a request (or a connection).
pub const REJECT_REASONS: [&str; 17] = [
    "auth",
    "token_expired",
    "token_invalid",
    "bad_audience",
    "bad_issuer",
    "insufficient_scope",
    "auth_unavailable",
    "host",
    "origin",
    "limit",
    "rate",
    "body",
    "body_timeout",
    "timeout",
    "sessions",
    "session_store",
    "connections",
];

impl HttpMetrics {
    fn register(r: &Registry) -> Self {
        let rejected = counter_vec(
            r,
            "http_rejected_total",
            "HTTP requests refused at the edge: reason=auth (401: a missing or unknown bearer token), token_expired, \
             token_invalid, bad_audience, bad_issuer (401: OAuth access tokens), insufficient_scope (403), \
             auth_unavailable (503: the issuer's keys cannot be fetched), host or origin (403), limit (503, max_in_flight), \
             rate (429), body (413 or 400), body_timeout (408, body_read_timeout), timeout (504, or an error event \
             ending an SSE stream), sessions (503 max_sessions, 429 max_sessions_per_caller), session_store (503: a \
             session held by another replica cannot be restored, the shared store is unavailable), connections \
             (max_connections: closed at once, or 503 on a connection of the probes' reserve).",
            &["reason"],
        );
        for reason in REJECT_REASONS {
            rejected.with_label_values(&[reason]);
        }
        let jwks_fetches = counter_vec(
            r,
            "oauth_jwks_fetches_total",
            "Fetches of the OAuth issuer's signing keys (discovery included): outcome=ok or failed.",
            &["outcome"],
        );
        for outcome in ["ok", "failed"] {
            jwks_fetches.with_label_values(&[outcome]);
        }
        let relayed = counter_vec(
            r,
            "sessions_relayed_total",
            "Legacy sessions' answers to a question another replica asked (shared store only): outcome=sent (to \
             that replica), unheard (it is gone or not subscribed), failed (the store did not answer), too_large; \
             on the replica that asked: delivered, gone (the session is no longer here), invalid.",
            &["outcome"],
        );
        for outcome in crate::http::relay::OUTCOMES {
            relayed.with_label_values(&[outcome]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_family_is_exposed_from_the_start() {
        let m = Metrics::new();
        m.health
            .dependency_up
            .with_label_values(&["mongodb"])
            .set(0);
        let text = m.render();
        for name in [
            "nexus_build_info",
            "nexus_startup_stage",
            "nexus_dependency_up",
            "nexus_tunnel_up",
            "nexus_tunnel_reconnects_total",
            "nexus_tunnel_connect_duration_seconds",
            "nexus_tunnel_channels_active",
            "nexus_tunnel_bytes_total",
            "nexus_mongo_ping_duration_seconds",
            "nexus_mongo_servers",
            "nexus_mongo_primary_changes_total",
            "nexus_tunnel_channels_opened_total",
            "nexus_tunnel_connect_failures_total",
            "nexus_mcp_requests_total",
            "nexus_mcp_request_duration_seconds",
            "nexus_mcp_in_flight",
            "nexus_http_rejected_total",
            "nexus_http_connections",
            "nexus_http_sessions",
            "nexus_sessions_relayed_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("nexus_startup_stage{stage=\"tunnel\"} 1"));
    }
}
