//! One MongoDB target's runtime: its health, metrics, tunnel and driver, and the stages that bring them up. `serve`
//! builds one per configured target; each heals on its own, and what the tools, the probes and the shutdown read
//! of it is here.

use std::sync::{Arc, OnceLock};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::config::TargetConfig;
use crate::health::{self, Health, HealthConfig, Probe, TargetHealth};
use crate::mcp::guard::Guard;
use crate::mcp::server::ResourceSource;
use crate::mcp::targets::Target;
use crate::mcp::tools::ToolContext;
use crate::metrics::{Metrics, TargetMetrics};
use crate::mongo::Mongo;
use crate::supervisor::{StartupError, Supervisor};
use crate::tunnel::Tunnel;

/// A target's parts, shared by its stages, the tools and the probes.
pub(super) struct Runtime {
    pub config: TargetConfig,
    /// Whether the configuration names targets: then logs and metrics carry this one's name.
    pub named: bool,
    pub metrics: TargetMetrics,
    pub health: Health,
    /// Set by the mongodb stage.
    pub mongo: Arc<OnceLock<Mongo>>,
    /// Set once the tunnel's routes are bound.
    pub tunnel: Arc<OnceLock<Tunnel>>,
}

impl Runtime {
    pub fn new(
        config: TargetConfig,
        named: bool,
        metrics: &Metrics,
        health: &HealthConfig,
    ) -> Self {
        let metrics = metrics.target(named.then_some(config.name.as_str()));
        let checks: &[&'static str] = if config.tunnel.is_some() {
            &[health::SSH_TUNNEL, health::MONGODB]
        } else {
            &[health::MONGODB]
        };
        let health = Health::new(
            checks,
            health.clone(),
            metrics.health.clone(),
            metrics.startup.clone(),
        );
        Self {
            config,
            named,
            metrics,
            health,
            mongo: Arc::new(OnceLock::new()),
            tunnel: Arc::new(OnceLock::new()),
        }
    }

    /// What the tools see of this target.
    pub fn tool_target(&self) -> Target {
        let mcp = &self.config.mcp;
        Target {
            name: self.config.name.as_str().into(),
            required: self.config.required,
            ctx: ToolContext {
                mongo: self.mongo.clone(),
                max_time: self.config.mongo.max_time,
                guard: Arc::new(Guard::new(mcp)),
                confirm_destructive: mcp.confirm_destructive,
                confirm_update_above: mcp.confirm_update_above,
                confirm_key: mcp.confirm_key.clone(),
            },
            health: self.health.clone(),
            named: self.named,
        }
    }

    /// What the probes see of this target.
    pub fn probe(&self) -> TargetHealth {
        TargetHealth {
            name: self.config.name.clone(),
            required: self.config.required,
            health: self.health.clone(),
        }
    }

    /// Runs the stages — bind the tunnel's routes, parse the driver's options, then tunnel → mongodb → mcp →
    /// ready — until the latch closes (`summary`: what the mcp stage logs). A failing stage is retried; the
    /// error is a configuration problem or the shutdown.
    pub async fn start(
        &self,
        tasks: &TaskTracker,
        stop: &CancellationToken,
        summary: String,
    ) -> Result<(), StartupError> {
        let span = if self.named {
            tracing::info_span!("target", target = %self.config.name)
        } else {
            tracing::Span::none()
        };
        let supervisor = Supervisor {
            config: &self.config,
            metrics: &self.metrics,
            health: &self.health,
            tasks,
            stop,
        };
        async {
            let tunnel = supervisor.start_tunnel().await?;
            if let Some(t) = &tunnel {
                let _ = self.tunnel.set(t.clone());
            }
            let options = supervisor.mongo_options(tunnel.as_ref()).await?;
            supervisor
                .run(tunnel.as_ref(), options, |mongo| {
                    let _ = self.mongo.set(mongo.clone());
                    summary
                })
                .await
                .map(drop)
        }
        .instrument(span)
        .await
    }

    /// This target in `nexus://status`: its readiness body, and its tunnel's live state and counters.
    pub fn status_source(&self) -> ResourceSource {
        let (health, cell, t) = (
            self.health.clone(),
            self.tunnel.clone(),
            self.metrics.tunnel.clone(),
        );
        Arc::new(move || {
            let (ready, mut body) = health.report(Probe::Readiness);
            body["ready"] = json!(ready);
            if let Some(tunnel) = cell.get() {
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
}
