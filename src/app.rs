//! Wires the components together and owns shutdown. The only module that knows every component.
//!
//! Shutdown order: `/ready` turns 503 at once → in-flight `/mcp` requests drain (up to `server.shutdown_grace`)
//! → the HTTP server stops → the tunnel closes its channels and disconnects the SSH session → background checks
//! stop → return.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::health::{self, Health};
use crate::http::{self, HttpState, InFlight, McpSlot};
use crate::metrics::Metrics;
use crate::supervisor::{StartupError, Supervisor};

/// How long the HTTP server and the tunnel get to close after the drain.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs `serve` until `shutdown` resolves.
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
    let health = Health::new(checks, metrics.health.clone(), metrics.startup.clone());

    let listener = TcpListener::bind(config.server.listen).await.map_err(|e| ConfigError::Invalid {
        key: "server.listen".into(),
        reason: format!("cannot bind {}: {e}", config.server.listen),
    })?;
    let http_addr = listener.local_addr().context("reading the bound HTTP address")?;
    tracing::info!(addr = %http_addr, version = env!("CARGO_PKG_VERSION"), "http listening: /mcp /health /ready /startup /metrics");

    let mcp = McpSlot::default();
    let in_flight = Arc::new(InFlight::default());
    let router = http::router(HttpState {
        health: health.clone(),
        metrics: metrics.clone(),
        mcp: mcp.clone(),
        in_flight: in_flight.clone(),
    });
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(http::serve(listener, router, http_stop.clone()));

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let supervisor = Supervisor {
        config: &config,
        metrics: &metrics,
        health: &health,
        tasks: &tasks,
        stop: &stop,
    };
    tokio::pin!(shutdown);
    let startup = supervisor.start(|_mongo| {
        mcp.install(axum::Router::new());
        "MCP endpoint mounted at /mcp".to_string()
    });
    let running = tokio::select! {
        result = startup => match result {
            Ok(running) => Some(running),
            Err(StartupError::Cancelled) => None,
            Err(StartupError::Fatal { stage, class, message }) => {
                tracing::error!(stage, %class, cause = %message, "startup failed");
                stop.cancel();
                http_stop.cancel();
                if class == crate::error::ErrorClass::ConfigInvalid {
                    return Err(ConfigError::Invalid { key: format!("stage {stage}"), reason: message }.into());
                }
                anyhow::bail!("stage {stage}: {message}");
            }
        },
        () = &mut shutdown => None,
    };
    if running.is_some() {
        shutdown.await;
    }

    health.set_draining();
    tracing::info!(in_flight = in_flight.current(), "shutting down: /ready is 503, draining in-flight requests");
    if !in_flight.drained(config.server.shutdown_grace).await {
        tracing::warn!(
            in_flight = in_flight.current(),
            grace_ms = config.server.shutdown_grace.as_millis() as u64,
            "drain overran server.shutdown_grace; closing anyway"
        );
    }
    http_stop.cancel();
    if tokio::time::timeout(CLOSE_GRACE, http_task).await.is_err() {
        tracing::warn!("HTTP server did not stop in time");
    }
    stop.cancel();
    tasks.close();
    if let Some(tunnel) = running.as_ref().and_then(|r| r.tunnel.as_ref()) {
        if tokio::time::timeout(CLOSE_GRACE, tunnel.stopped()).await.is_err() {
            tracing::warn!("tunnel did not close in time");
        }
    }
    if tokio::time::timeout(CLOSE_GRACE, tasks.wait()).await.is_err() {
        tracing::warn!("background checks did not stop in time");
    }
    tracing::info!("shutdown complete");
    Ok(())
}
