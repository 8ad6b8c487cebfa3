//! `nexus-mcp check`: each stage of [`STARTUP`] once, in order, for one target — an ephemeral forward, one
//! MongoDB attempt, what the driver sees — stopping at the first failure.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{STARTUP, StageSpec, mongodb_attempt, one_member_hint, route};
use crate::config::TargetConfig;
use crate::error::ErrorClass;
use crate::health::Stage;
use crate::metrics::TargetMetrics;
use crate::mongo::Mongo;
use crate::tunnel::{Tunnel, TunnelState};

/// One line of `nexus-mcp check` output.
pub struct CheckLine {
    pub stage: &'static str,
    pub outcome: Result<String, (ErrorClass, String)>,
    pub took: Duration,
}

/// `nexus-mcp check`: runs each stage of [`STARTUP`] once, in order, stopping at the first failure. Returns one
/// line per stage run and the failing stage, if any.
pub async fn check(
    config: &TargetConfig,
    metrics: &TargetMetrics,
    mcp_summary: impl FnOnce() -> String,
) -> (Vec<CheckLine>, Option<Stage>) {
    let mut lines = Vec::new();
    let stop = CancellationToken::new();
    let _stop_on_return = stop.clone().drop_guard();
    let mut mcp_summary = Some(mcp_summary);
    let mut forward = None;
    for spec in &STARTUP {
        let started = Instant::now();
        let outcome = match spec.stage {
            Stage::Tunnel => match check_tunnel(config, metrics, &stop, spec).await {
                None => continue,
                Some(outcome) => outcome.map(|(tunnel, line)| {
                    forward = Some(tunnel);
                    line
                }),
            },
            Stage::Mongodb => check_mongodb(config, metrics, forward.as_ref()).await,
            Stage::Mcp => Ok(mcp_summary
                .take()
                .map(|summary| summary())
                .unwrap_or_default()),
            Stage::Ready => continue,
        };
        let failed = outcome.is_err();
        lines.push(CheckLine {
            stage: spec.stage.as_str(),
            outcome,
            took: started.elapsed(),
        });
        if failed {
            return (lines, Some(spec.stage));
        }
    }
    (lines, None)
}

/// `check`'s tunnel stage: an ephemeral forward (`check` must work beside a running server that holds
/// `tunnel.local_listen`), and the first outcome of its session within the connect timeouts. `None` without SSH.
async fn check_tunnel(
    config: &TargetConfig,
    metrics: &TargetMetrics,
    stop: &CancellationToken,
    spec: &StageSpec,
) -> Option<Result<(Tunnel, String), (ErrorClass, String)>> {
    let mut cfg = config.tunnel.clone()?;
    cfg.local_listen.set_port(0);
    let limit = cfg.connect_timeout * (cfg.jumps.len() as u32 + 1) + Duration::from_secs(1);
    let tunnel = match Tunnel::start(cfg, metrics.tunnel.clone(), stop.clone()).await {
        Ok(tunnel) => tunnel,
        Err(e) => return Some(Err((e.class(), e.to_string()))),
    };
    let mut state = tunnel.state();
    let first =
        state.wait_for(|s| matches!(s, TunnelState::Up { .. } | TunnelState::Reconnecting { .. }));
    Some(match tokio::time::timeout(limit, first).await {
        Ok(Ok(s)) => match &*s {
            TunnelState::Reconnecting { error, message, .. } => Err((*error, message.clone())),
            _ => {
                let up = format!("session up; {}", tunnel.describe());
                Ok((tunnel.clone(), up))
            }
        },
        _ => Err((
            spec.fails_as,
            "no outcome within the connect timeout".into(),
        )),
    })
}

/// `check`'s mongodb stage: one attempt, then what the driver sees of the deployment.
async fn check_mongodb(
    config: &TargetConfig,
    metrics: &TargetMetrics,
    forward: Option<&Tunnel>,
) -> Result<String, (ErrorClass, String)> {
    let mongo = Mongo::connect(config.mongo.clone(), &route(forward), metrics.mongo.clone())
        .await
        .map_err(|e| (e.class(), e.to_string()))?;
    let latency = mongodb_attempt(&mongo, forward).await?;
    let view = mongo
        .topology()
        .settled(config.mongo.server_selection_timeout)
        .await;
    let mut line = format!(
        "ping {:.1} ms, listDatabases ok",
        latency.as_secs_f64() * 1e3
    );
    if view.set_name.is_some() || view.members.len() > 1 {
        line.push_str("; ");
        line.push_str(&mongo.topology().describe());
    }
    if let Some(hint) = one_member_hint(&mongo, forward) {
        line.push_str("; hint: ");
        line.push_str(&hint);
    }
    Ok(line)
}
