//! Wires the components together and owns shutdown. The only module that knows every component.
//! (Over 400 lines: startup and shutdown, in the order they happen, read top to bottom in one place.)
//!
//! Startup: bind HTTP (probes answer from the first moment) → bind the tunnel's local forward → build the MongoDB
//! client and the MCP server → (stdio: serve MCP at once, tools answer "starting" until ready) → run the stages
//! → (HTTP: mount `/mcp`) → ready.
//!
//! Shutdown order: `/ready` turns 503 at once → in-flight `/mcp` requests drain (up to `server.shutdown_grace`)
//! → the HTTP server stops → the tunnel closes its channels and disconnects the SSH session → background checks
//! stop → return. A fatal stage, or shutdown requested during startup, stops the same parts in the same order
//! (`Running::close`) before returning.

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
use crate::health::{self, Health, Probe, ReadinessPolicy};
use crate::http::edge::Edge;
use crate::http::relay::{self, Relay};
use crate::http::sessions::{CappedSessions, SessionLimits};
use crate::http::tokens::Tokens;
use crate::http::{self, HttpState, InFlight, McpSlot, Transport};
use crate::mcp::NexusServer;
use crate::mcp::guard::Guard;
use crate::mcp::server::ResourceSource;
use crate::mcp::targets::{DEFAULT, Target, Targets};
use crate::mcp::tools::ToolContext;
use crate::metrics::Metrics;
use crate::store::peers::RedisPeers;
use crate::store::relay::RedisRelay;
use crate::store::sessions::RedisSessions;
use crate::store::{self, Redis};
use crate::supervisor::{StartupError, Supervisor};
use crate::tunnel::Tunnel;
use rmcp::transport::streamable_http_server::session::store::SessionStore;

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
    let metrics = Arc::new(Metrics::new());
    let checks: &[&'static str] = if config.tunnel.is_some() {
        &[health::SSH_TUNNEL, health::MONGODB]
    } else {
        &[health::MONGODB]
    };
    let health = Health::new(
        checks,
        config.health.clone(),
        metrics.health.clone(),
        metrics.startup.clone(),
    );
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

    crate::mcp::precreate_metrics(&metrics.mcp, config.mcp.read_only, None);
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
                health: health.clone(),
                metrics: metrics.clone(),
                mcp: mcp_slot.clone(),
                in_flight: in_flight.clone(),
                edge: edge.clone(),
            });
            if let Some(warning) = http::conn::fd_budget_warning(
                config.server.max_connections,
                config.tunnel.as_ref().map_or(0, |t| t.max_connections),
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
        let board = redis.clone().map(|r| {
            let id = store::peers::replica_id();
            tracing::info!(replica = %id, "fleet readiness: peers through the shared store");
            RedisPeers::new(r, id, config.health.peer_interval)
        });
        tasks.spawn(health.clone().run_fleet(board, stop.clone()));
    }
    if tokens.enabled() {
        tasks.spawn(tokens.clone().watch(TOKENS_POLL, stop.clone()));
        tasks.spawn(reload_on_sighup(tokens.clone(), stop.clone()));
    }
    let supervisor = Supervisor {
        config: &config,
        metrics: &metrics,
        health: &health,
        tasks: &tasks,
        stop: &stop,
    };
    let mongo_cell = Arc::new(std::sync::OnceLock::new());
    let tunnel_cell = Arc::new(std::sync::OnceLock::new());
    let targets = Targets::new(
        vec![Target {
            name: DEFAULT.into(),
            required: true,
            ctx: ToolContext {
                mongo: mongo_cell.clone(),
                max_time: config.mongo.max_time,
                guard: Arc::new(Guard::new(&config.mcp)),
                confirm_destructive: config.mcp.confirm_destructive,
                confirm_update_above: config.mcp.confirm_update_above,
                confirm_key: config.mcp.confirm_key.clone(),
            },
            health: health.clone(),
            named: false,
        }],
        false,
    );
    let server = NexusServer::new(
        targets,
        metrics.mcp.clone(),
        status_source(&health, &metrics, tunnel_cell.clone()),
        serde_json::to_value(&config).unwrap_or(Value::Null),
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

    // The tunnel's local forward (retried while another process holds it) and the driver's options.
    let tunnel = tokio::select! {
        tunnel = supervisor.start_tunnel() => tunnel,
        () = &mut stop_requested => Err(StartupError::Cancelled),
    };
    let tunnel = match tunnel {
        Ok(tunnel) => tunnel,
        Err(e) => return running.end_startup(None, e).await,
    };
    let mongo_options = tokio::select! {
        options = supervisor.mongo_options(tunnel.as_ref()) => options,
        () = &mut stop_requested => Err(StartupError::Cancelled),
    };
    let mongo_options = match mongo_options {
        Ok(options) => options,
        Err(e) => return running.end_startup(tunnel.as_ref(), e).await,
    };
    if let Some(t) = &tunnel {
        let _ = tunnel_cell.set(t.clone());
    }

    let startup = supervisor.run(tunnel.as_ref(), mongo_options, |mongo| {
        let _ = mongo_cell.set(mongo.clone());
        format!(
            "{} tools ({}), MCP over {}",
            tools.len(),
            if config.mcp.read_only {
                "read-only"
            } else {
                "read-write"
            },
            if stdio { "stdio" } else { "HTTP at /mcp" }
        )
    });
    tokio::select! {
        result = startup => match result {
            Ok(_mongo) => stop_requested.await,
            Err(StartupError::Cancelled) => {}
            Err(e) => return running.end_startup(tunnel.as_ref(), e).await,
        },
        () = &mut stop_requested => {}
    }

    health.set_draining();
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
    running.close(tunnel.as_ref()).await;
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
    async fn close(self, tunnel: Option<&Tunnel>) {
        self.http_stop.cancel();
        if let Some(task) = self.http_task
            && tokio::time::timeout(CLOSE_GRACE, task).await.is_err()
        {
            tracing::warn!("HTTP server did not stop in time");
        }
        self.stop.cancel();
        self.tasks.close();
        if let Some(tunnel) = tunnel
            && tokio::time::timeout(CLOSE_GRACE, tunnel.stopped())
                .await
                .is_err()
        {
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
    async fn end_startup(self, tunnel: Option<&Tunnel>, e: StartupError) -> anyhow::Result<()> {
        self.close(tunnel).await;
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

/// `nexus://status`: the readiness body plus the tunnel's live state and counters.
fn status_source(
    health: &Health,
    metrics: &Metrics,
    tunnel: Arc<std::sync::OnceLock<Tunnel>>,
) -> ResourceSource {
    let health = health.clone();
    let t = metrics.tunnel.clone();
    Arc::new(move || {
        let (ready, mut body) = health.report(Probe::Readiness);
        body["ready"] = json!(ready);
        if let Some(tunnel) = tunnel.get() {
            body["tunnel"] = json!({
                "state": tunnel.state().borrow().describe(),
                "localAddr": tunnel.local_addr().map(|a| a.to_string()),
                "socksAddr": tunnel.socks().map(|s| s.addr.to_string()),
                "reconnects": t.reconnects.get(),
                "channelsActive": t.channels_active.get(),
                "bytesTx": t.bytes_tx.get(),
                "bytesRx": t.bytes_rx.get(),
            });
        }
        body
    })
}
