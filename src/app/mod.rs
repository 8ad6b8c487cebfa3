//! Wires the components together and owns shutdown. The only module that knows every component.
//! (Over 400 lines: startup and shutdown, in the order they happen, read top to bottom in one place.)
//!
//! Startup: bind HTTP (probes answer from the first moment) → bind the tunnel's local forward → build the MongoDB
//! client and the MCP server → (stdio: serve MCP at once, tools answer "starting" until ready) → run the stages
//! → (HTTP: mount `/mcp`) → ready. With named targets each target (`target::Runtime`) binds and runs its own
//! stages, side by side; `/startup` closes when the required ones are up.
//!
//! Shutdown order: `/ready` turns 503 at once → in-flight `/mcp` requests drain (up to `server.shutdown_grace`)
//! → the HTTP server stops → the tunnel closes its channels and disconnects the SSH session → background checks
//! stop → return. A fatal stage, or shutdown requested during startup, stops the same parts in the same order
//! (`Running::close`) before returning.

mod target;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::Audit;
use crate::config::{Config, ConfigError};
use crate::error::ErrorClass;
use crate::health::{Probes, ReadinessPolicy};
use crate::http::edge::Edge;
use crate::http::relay::{self, Relay};
use crate::http::sessions::{CappedSessions, SessionLimits};
use crate::http::tokens::Tokens;
use crate::http::{self, HttpState, InFlight, McpSlot, Transport};
use crate::mcp::NexusServer;
use crate::mcp::server::ResourceSource;
use crate::mcp::targets::Targets;
use crate::metrics::Metrics;
use crate::store::peers::RedisPeers;
use crate::store::relay::RedisRelay;
use crate::store::sessions::RedisSessions;
use crate::store::{self, Redis};
use crate::supervisor::StartupError;
use crate::tunnel::Tunnel;
use rmcp::transport::streamable_http_server::session::store::SessionStore;
use target::Runtime;

/// How long the HTTP server and the tunnel get to close after the drain.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the tokens file is checked for changes.
const TOKENS_POLL: Duration = Duration::from_secs(2);

/// A configured listen address is taken by another process at run time: not a configuration error (the same
/// configuration works once the other process is gone), so it has its own class and exit code.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}: {key} {addr} is in use by another process (another nexus-mcp?); stop it or choose another address",
    ErrorClass::AddressInUse
)]
pub struct AddressInUse {
    pub key: &'static str,
    pub addr: std::net::SocketAddr,
}

/// Reloads the bearer tokens on SIGHUP.
async fn reload_on_sighup(tokens: Arc<Tokens>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; tokens are still reloaded when the file changes");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => tokens.reload_and_log("SIGHUP"),
            () = stop.cancelled() => return,
        }
    }
}

/// Runs `serve` until `shutdown` resolves (or, with the stdio transport, until stdin closes).
///
/// # Errors
/// A [`ConfigError`] (exit 64) when a configured address cannot be bound or a stage finds the configuration
/// unusable; other errors are unexpected.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::for_targets(config.named));
    let targets: Vec<Runtime> = config
        .targets
        .iter()
        .map(|t| Runtime::new(t.clone(), config.named, &metrics, &config.health))
        .collect();
    let probes = Probes::new(targets.iter().map(Runtime::probe).collect(), config.named);
    let stdio = config.server.transport == Transport::Stdio;
    let tokens = Arc::new(match &config.server.auth_tokens_file {
        Some(path) => Tokens::load(path).map_err(|e| ConfigError::Invalid {
            key: "server.auth_tokens_file".into(),
            reason: e.to_string(),
        })?,
        None => Tokens::none(),
    });
    let audit =
        Arc::new(
            Audit::open(&config.server.audit_log).map_err(|e| ConfigError::Invalid {
                key: "server.audit_log".into(),
                reason: e.to_string(),
            })?,
        );
    // The fleet's shared store: legacy sessions and peer health. It connects on first use, so a Redis outage at
    // startup delays nothing.
    let redis = match &config.server.session_store {
        Some(c) => Some(Redis::new(c).map_err(|e| ConfigError::Invalid {
            key: "server.sessions.redis_url".into(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let session_store = redis.clone().map(|r| {
        Arc::new(RedisSessions::new(
            r,
            config.server.session_idle_timeout,
            crate::http::sessions::note_store_failure,
        ))
    });
    let sessions = Arc::new(SessionLimits::new(
        config.server.max_sessions,
        config.server.max_sessions_per_caller,
        metrics.http.sessions.clone(),
    ));
    let edge = Arc::new(Edge::new(
        &config.server,
        tokens.clone(),
        sessions.clone(),
        &metrics.http,
        crate::mcp::scopes::tool_class,
    ));

    let tool_targets = Targets::new(
        targets.iter().map(Runtime::tool_target).collect(),
        config.named,
    );
    crate::mcp::precreate_metrics(&metrics.mcp, &tool_targets);
    // HTTP first, so the probes answer during startup. With stdio, probes are a bonus: a busy port only warns.
    let mcp_slot = McpSlot::default();
    let in_flight = Arc::new(InFlight::default());
    let http_stop = CancellationToken::new();
    let http_task = match TcpListener::bind(config.server.listen).await {
        Ok(listener) => {
            let addr = listener
                .local_addr()
                .context("reading the bound HTTP address")?;
            tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "http listening: /mcp /health /ready /startup /metrics");
            let router = http::router(HttpState {
                health: probes.clone(),
                metrics: metrics.clone(),
                mcp: mcp_slot.clone(),
                in_flight: in_flight.clone(),
                edge: edge.clone(),
            });
            if let Some(warning) = http::conn::fd_budget_warning(
                config.server.max_connections,
                config
                    .targets
                    .iter()
                    .filter_map(|t| t.tunnel.as_ref())
                    .map(|t| t.max_connections)
                    .sum(),
            ) {
                tracing::warn!("{warning}");
            }
            Some(tokio::spawn(http::conn::serve(
                listener,
                router,
                http::conn::Limits {
                    max_connections: config.server.max_connections,
                    header_read_timeout: config.server.header_read_timeout,
                },
                http::conn::ConnMetrics {
                    open: metrics.http.connections.clone(),
                    refused: metrics
                        .http
                        .rejected
                        .get(crate::http::metrics::Rejected::Connections),
                },
                http_stop.clone(),
            )))
        }
        Err(e) if stdio => {
            tracing::warn!(listen = %config.server.listen, cause = %e, "probes and /metrics disabled: cannot bind server.listen");
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(AddressInUse {
                key: "server.listen",
                addr: config.server.listen,
            }
            .into());
        }
        Err(e) => {
            return Err(ConfigError::Invalid {
                key: "server.listen".into(),
                reason: format!("cannot bind {}: {e}", config.server.listen),
            }
            .into());
        }
    };

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let running = Running {
        http_stop: http_stop.clone(),
        http_task,
        stop: stop.clone(),
        tasks: tasks.clone(),
    };
    if config.health.readiness == ReadinessPolicy::Fleet {
        let id = store::peers::replica_id();
        if redis.is_some() {
            tracing::info!(replica = %id, "fleet readiness: peers through the shared store");
        }
        for t in &targets {
            // Each target's checks are compared with the same target's on the peers.
            let board = redis.clone().map(|r| {
                let r = if config.named {
                    r.scoped(&format!("target:{}", t.config.name))
                } else {
                    r
                };
                RedisPeers::new(r, id.clone(), config.health.peer_interval)
            });
            tasks.spawn(t.health.clone().run_fleet(board, stop.clone()));
        }
    }
    if tokens.enabled() {
        tasks.spawn(tokens.clone().watch(TOKENS_POLL, stop.clone()));
        tasks.spawn(reload_on_sighup(tokens.clone(), stop.clone()));
    }
    let statuses: Vec<_> = targets
        .iter()
        .map(|t| (t.config.name.clone(), t.status_source()))
        .collect();
    let server = NexusServer::new(
        tool_targets.clone(),
        metrics.mcp.clone(),
        status_source(statuses, tool_targets.clone(), config.named),
        config_resource(&config),
        audit,
    );
    let tools = server.tool_names();

    // MCP is served before any stage runs, over HTTP as over stdio: clients can handshake and list tools during
    // startup, and a tool call gets "starting (stage …)" with the reason when a stage is failing — never a hang or
    // an opaque 503.
    if !stdio {
        // With the shared store, a legacy session's answers to this replica's questions may be posted to another
        // replica, which relays them here (`http::relay`).
        let relay = redis.clone().map(|r| {
            let tag = relay::new_tag();
            tracing::info!(replica = %tag, "legacy sessions: answers relayed between replicas");
            Arc::new(Relay::new(
                tag,
                RedisRelay::new(r),
                metrics.http.relayed.clone(),
            ))
        });
        let capped = Arc::new(CappedSessions::new(
            sessions.clone(),
            config.server.session_idle_timeout,
            session_store.clone(),
            relay.clone(),
        ));
        if let Some(relay) = relay {
            let (capped, stop, store) = (capped.clone(), stop.clone(), relay.store().clone());
            tasks.spawn(async move {
                let deliver = |bytes: Vec<u8>| {
                    let capped = capped.clone();
                    async move { capped.deliver(&bytes).await }
                };
                store.listen(relay.tag(), deliver, stop).await;
            });
        }
        mcp_slot.install(mcp_router(
            &config,
            server.clone(),
            capped,
            session_store.clone(),
            http_stop.child_token(),
        ));
    }
    let stdin_closed = CancellationToken::new();
    if stdio {
        let server = server.clone();
        let closed = stdin_closed.clone();
        let transport = crate::mcp::stdio::transport(
            config.server.body_limit.as_u64() as usize,
            &tasks,
            stop.clone(),
        );
        tasks.spawn(async move {
            match server.serve(transport).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::error!(cause = %e, "stdio MCP session failed to start"),
            }
            tracing::info!("stdin closed: shutting down");
            closed.cancel();
        });
    }

    tokio::pin!(shutdown);
    let stop_requested = async {
        tokio::select! {
            () = &mut shutdown => {}
            () = stdin_closed.cancelled() => {}
        }
    };
    tokio::pin!(stop_requested);

    // Each target's stages, side by side: a required target's startup closes the server's latch (`/startup`);
    // an optional one keeps retrying in the background. A configuration problem in any ends the process.
    let summary = format!(
        "{} tools ({}), MCP over {}",
        tools.len(),
        if tool_targets.any_writable() {
            "read-write"
        } else {
            "read-only"
        },
        if stdio { "stdio" } else { "HTTP at /mcp" }
    );
    let mut stages: futures::stream::FuturesUnordered<_> = targets
        .iter()
        .map(|t| t.start(&tasks, &stop, summary.clone()))
        .collect();
    let failed = loop {
        tokio::select! {
            next = futures::StreamExt::next(&mut stages) => match next {
                Some(Ok(())) => {}
                Some(Err(e)) => break Some(e),
                None => {
                    (&mut stop_requested).await;
                    break None;
                }
            },
            () = &mut stop_requested => break None,
        }
    };
    drop(stages);
    let tunnels: Vec<Tunnel> = targets
        .iter()
        .filter_map(|t| t.tunnel.get().cloned())
        .collect();
    if let Some(e) = failed {
        return running.end_startup(&tunnels, e).await;
    }

    probes.set_draining();
    tracing::info!(
        in_flight = in_flight.current(),
        "shutting down: /ready is 503, draining in-flight requests"
    );
    if !in_flight.drained(config.server.shutdown_grace).await {
        tracing::warn!(
            in_flight = in_flight.current(),
            grace_ms = config.server.shutdown_grace.as_millis() as u64,
            "drain overran server.shutdown_grace; closing anyway"
        );
    }
    running.close(&tunnels).await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// What `serve` started and stops on every way out — after the drain, after a fatal stage, or when shutdown is
/// requested during startup — in one order: HTTP, then the tunnel and the background tasks.
struct Running {
    /// Stops the HTTP server (its accept loop and connections, `/mcp` sessions).
    http_stop: CancellationToken,
    /// The HTTP server; `None` with stdio when `server.listen` could not be bound.
    http_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Stops the tunnel, the checks, the stdio session and the other background tasks.
    stop: CancellationToken,
    /// Owns those background tasks.
    tasks: TaskTracker,
}

impl Running {
    /// Stops everything and waits for it, each part up to [`CLOSE_GRACE`] (a warning names what overran).
    async fn close(self, tunnels: &[Tunnel]) {
        self.http_stop.cancel();
        if let Some(task) = self.http_task
            && tokio::time::timeout(CLOSE_GRACE, task).await.is_err()
        {
            tracing::warn!("HTTP server did not stop in time");
        }
        self.stop.cancel();
        self.tasks.close();
        let stopped = futures::future::join_all(tunnels.iter().map(Tunnel::stopped));
        if tokio::time::timeout(CLOSE_GRACE, stopped).await.is_err() {
            tracing::warn!("tunnel did not close in time");
        }
        if tokio::time::timeout(CLOSE_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
    }

    /// Startup ended before the stages completed: stops what runs, then returns the reason (none when shutdown
    /// was requested).
    async fn end_startup(self, tunnels: &[Tunnel], e: StartupError) -> anyhow::Result<()> {
        self.close(tunnels).await;
        match e {
            StartupError::Cancelled => {
                tracing::info!("shutdown complete (during startup)");
                Ok(())
            }
            StartupError::Fatal {
                stage,
                class: ErrorClass::ConfigInvalid,
                message,
            } => Err(ConfigError::Invalid {
                key: format!("stage {stage}"),
                reason: message,
            }
            .into()),
            other => Err(anyhow::anyhow!(other)),
        }
    }
}

/// The Streamable HTTP service at `/mcp`: stateless for 2026-07-28 requests, sessions for legacy clients that
/// send `initialize` (capped by `sessions`, closed after `server.session_idle_timeout` without activity).
fn mcp_router(
    config: &Config,
    server: NexusServer,
    sessions: Arc<CappedSessions>,
    store: Option<Arc<RedisSessions>>,
    cancel: CancellationToken,
) -> axum::Router {
    // The edge already enforces Host, Origin and the body limit with clear reasons; rmcp's own checks stay on
    // as a second line with the same lists.
    let mut rmcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_allowed_hosts(config.server.allowed_hosts.clone())
        .with_max_request_body_bytes(config.server.body_limit.as_u64() as usize)
        .with_cancellation_token(cancel);
    if config.server.allowed_hosts.iter().any(|h| h == "*") {
        rmcp_config = rmcp_config.disable_allowed_hosts();
    }
    if !config.server.allowed_origins.iter().any(|o| o == "*") {
        rmcp_config = rmcp_config.with_allowed_origins(config.server.allowed_origins.clone());
    }
    // A shared store lets any replica serve a legacy session: rmcp replays its `initialize` from the store.
    rmcp_config.session_store = store.map(|s| s as Arc<dyn SessionStore>);
    let service = StreamableHttpService::new(move || Ok(server.clone()), sessions, rmcp_config);
    axum::Router::new().nest_service("/mcp", service)
}

/// `nexus://status`: the readiness body plus the tunnel's live state and counters; with named targets, one such
/// entry per target and the `connections` list-connections shows.
fn status_source(
    statuses: Vec<(String, ResourceSource)>,
    targets: Targets,
    named: bool,
) -> ResourceSource {
    if !named {
        return statuses
            .into_iter()
            .next()
            .map(|(_, s)| s)
            .expect("at least one target");
    }
    Arc::new(move || {
        let entries: serde_json::Map<String, Value> = statuses
            .iter()
            .map(|(name, s)| (name.clone(), s()))
            .collect();
        let connections: Vec<Value> = targets.iter().map(|t| t.describe()).collect();
        json!({ "connections": connections, "targets": entries })
    })
}

/// `nexus://config`: the effective settings (secrets print as `***`). Without named targets, the one target's
/// sections stand at the top level, as the user wrote them (`tunnel`, `mongo`, `mcp`, `ssh_settings`).
fn config_resource(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if config.named {
        return value;
    }
    if let Some(top) = value.as_object_mut() {
        top.remove("named");
        if let Some(Value::Array(mut targets)) = top.remove("targets")
            && let Some(Value::Object(target)) = targets.pop()
        {
            for (key, v) in target {
                if key != "name" && key != "required" {
                    top.insert(key, v);
                }
            }
        }
    }
    value
}
