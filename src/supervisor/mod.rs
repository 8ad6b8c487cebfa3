//! Staged startup — tunnel → mongodb → mcp → ready — and the background checks that keep watching each
//! dependency once its stage is up.
//!
//! Each stage logs its outcome and duration and sets `nexus_startup_stage`. A failing stage is retried with
//! backoff (the tunnel retries inside its own reconnect loop), so the process never exits because a dependency
//! is down; only configuration problems ([`StartupError::Fatal`]) end it. `check` runs each stage once instead
//! ([`check`], in `check.rs`).
//!
//! (Over 400 lines: each stage with the background check it leaves running, in startup order.)

mod check;

pub use check::{CheckLine, check};

use std::time::{Duration, Instant};

use mongodb::options::ClientOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::Backoff;
use crate::config::TargetConfig;
use crate::error::ErrorClass;
use crate::health::{self, Health, Observation, Stage};
use crate::metrics::TargetMetrics;
use crate::mongo::{Mongo, Route};
use crate::tunnel::{Tunnel, TunnelError, TunnelState};

/// Retry policy of the mongodb stage.
const MONGO_RETRY_MIN: Duration = Duration::from_millis(100);
const MONGO_RETRY_MAX: Duration = Duration::from_secs(5);

/// One startup stage, as both [`Supervisor::run`] (retrying) and [`check`] (once each) walk it.
pub struct StageSpec {
    pub stage: Stage,
    /// What the stage waits for.
    pub waits_for: &'static str,
    /// The class of a failure that carries none of its own (e.g. `check` giving up waiting for the session).
    pub fails_as: ErrorClass,
}

/// The startup stages, in order; [`Stage::Ready`] (the startup latch) closes after the last.
pub const STARTUP: [StageSpec; 3] = [
    StageSpec {
        stage: Stage::Tunnel,
        waits_for: "an authenticated SSH session (through the jump hosts)",
        fails_as: ErrorClass::SshUnreachable,
    },
    StageSpec {
        stage: Stage::Mongodb,
        waits_for: "the forward to MongoDB, then ping and listDatabases",
        fails_as: ErrorClass::MongoUnreachable,
    },
    StageSpec {
        stage: Stage::Mcp,
        waits_for: "the MCP server installed",
        fails_as: ErrorClass::ConfigInvalid,
    },
];

/// Why startup stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A problem no retry can fix (configuration).
    #[error("stage {stage}: {message}")]
    Fatal {
        stage: &'static str,
        class: ErrorClass,
        message: String,
    },
    /// Shutdown was requested during startup.
    #[error("shutdown requested during startup")]
    Cancelled,
}

/// What the stages share.
pub struct Supervisor<'a> {
    pub config: &'a TargetConfig,
    pub metrics: &'a TargetMetrics,
    pub health: &'a Health,
    /// Owns the background checks.
    pub tasks: &'a TaskTracker,
    /// Stops the tunnel and the checks (after the HTTP drain).
    pub stop: &'a CancellationToken,
}

impl Supervisor<'_> {
    /// Binds the tunnel's local forward and starts its reconnect loop (returns at once; `None` when SSH is
    /// disabled). The first part of the tunnel stage: [`Supervisor::run`] waits for the session.
    ///
    /// # Errors
    /// [`StartupError::Fatal`] when `tunnel.local_listen` cannot be bound.
    pub async fn start_tunnel(&self) -> Result<Option<Tunnel>, StartupError> {
        let Some(cfg) = self.config.tunnel.clone() else {
            return Ok(None);
        };
        self.health.set_stage(Stage::Tunnel);
        let mut backoff = Backoff::try_new(cfg.reconnect_min_delay, cfg.reconnect_max_delay)
            .expect("validated by config: min > 0 and max >= min");
        let mut last_class = None;
        loop {
            match Tunnel::start(cfg.clone(), self.metrics.tunnel.clone(), self.stop.clone()).await {
                Ok(tunnel) => {
                    self.watch_tunnel(&tunnel, cfg.keepalive_interval);
                    return Ok(Some(tunnel));
                }
                // A port taken at run time is not a configuration error: the other process may go away.
                Err(e @ TunnelError::AddressInUse { .. }) => {
                    let delay = backoff.next_delay();
                    log_stage_retry(
                        Stage::Tunnel,
                        &e.to_string(),
                        e.class(),
                        &mut last_class,
                        delay,
                    );
                    self.health
                        .set_startup_failure(Some(format!("{}: {e}", e.class())));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.stop.cancelled() => return Err(StartupError::Cancelled),
                    }
                }
                Err(e) => {
                    return Err(StartupError::Fatal {
                        stage: Stage::Tunnel.as_str(),
                        class: e.class(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// Parses the MongoDB driver options against the tunnel's fixed local address (no I/O), so a bad URI fails
    /// before anything waits on the network.
    ///
    /// # Errors
    /// [`StartupError::Fatal`] when the driver rejects the URI's options.
    pub async fn mongo_options(
        &self,
        tunnel: Option<&Tunnel>,
    ) -> Result<ClientOptions, StartupError> {
        Mongo::options(&self.config.mongo, &route(tunnel))
            .await
            .map_err(|e| StartupError::Fatal {
                stage: Stage::Mongodb.as_str(),
                class: e.class(),
                message: e.to_string(),
            })
    }

    /// Runs the stages of [`STARTUP`]: waits for the tunnel session, then MongoDB (retrying with backoff), then
    /// `install_mcp` (which returns a summary for the log), then closes the startup latch.
    ///
    /// # Errors
    /// [`StartupError::Cancelled`] on shutdown; [`StartupError::Fatal`] when the driver cannot be built.
    pub async fn run(
        &self,
        tunnel: Option<&Tunnel>,
        mongo_options: ClientOptions,
        install_mcp: impl FnOnce(&Mongo) -> String,
    ) -> Result<Mongo, StartupError> {
        let begun = Instant::now();
        let mut mongo_options = Some(mongo_options);
        let mut install_mcp = Some(install_mcp);
        let mut mongo = None;
        for spec in &STARTUP {
            tracing::debug!(
                stage = spec.stage.as_str(),
                waits_for = spec.waits_for,
                "stage begins"
            );
            match (spec.stage, tunnel, &mongo) {
                (Stage::Tunnel, Some(tunnel), _) => self.tunnel_stage(tunnel).await?,
                (Stage::Tunnel, None, _) => tracing::info!(
                    stage = "tunnel",
                    "stage skipped: ssh.enabled = false, connecting to MongoDB directly"
                ),
                (Stage::Mongodb, _, _) => {
                    let options = mongo_options.take().expect("one mongodb stage");
                    mongo = Some(self.mongodb_stage(options, tunnel).await?);
                }
                (Stage::Mcp, _, Some(mongo)) => {
                    self.health.set_stage(Stage::Mcp);
                    let started = Instant::now();
                    let install = install_mcp.take().expect("one mcp stage");
                    log_stage_ok(Stage::Mcp, started, &install(mongo));
                }
                (Stage::Mcp | Stage::Ready, _, _) => {
                    unreachable!("STARTUP lists mongodb before mcp, and not ready")
                }
            }
        }

        self.health.set_stage(Stage::Ready);
        tracing::info!(
            stage = "ready",
            startup_ms = begun.elapsed().as_millis() as u64,
            "startup complete; readiness now follows the dependency checks"
        );
        Ok(mongo.expect("STARTUP lists mongodb"))
    }

    async fn tunnel_stage(&self, tunnel: &Tunnel) -> Result<(), StartupError> {
        let started = Instant::now();
        let mut state = tunnel.state();
        tokio::select! {
            result = state.wait_for(TunnelState::is_up) => { result.map_err(|_| StartupError::Cancelled)?; }
            () = self.stop.cancelled() => return Err(StartupError::Cancelled),
        }
        // The session just authenticated: that is the check's first result, so /ready does not wait an interval.
        self.health
            .record(health::SSH_TUNNEL, tunnel_observation(tunnel).await);
        log_stage_ok(Stage::Tunnel, started, &tunnel.describe());
        Ok(())
    }

    /// Spawns the sshTunnel check and wakes both checks on every tunnel transition, so a lost session shows in
    /// /ready at once and a healed one is re-checked without waiting for the interval.
    /// The check runs every `interval` (`ssh.keepalive_interval`).
    fn watch_tunnel(&self, tunnel: &Tunnel, interval: Duration) {
        let probe_tunnel = tunnel.clone();
        let probe = move || {
            let tunnel = probe_tunnel.clone();
            async move { tunnel_observation(&tunnel).await }
        };
        self.tasks.spawn(self.health.clone().run_check(
            health::SSH_TUNNEL,
            interval,
            probe,
            self.stop.clone(),
        ));
        let state = tunnel.state();
        self.health.set_explainer(
            health::SSH_TUNNEL,
            Box::new(move |_| match &*state.borrow() {
                TunnelState::Up { .. } => {
                    "SSH tunnel session not answering health pings".to_string()
                }
                other => other.describe(),
            }),
        );

        let health = self.health.clone();
        let mut state = tunnel.state();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    changed = state.changed() => if changed.is_err() { return },
                    () = stop.cancelled() => return,
                }
                health.wake(health::SSH_TUNNEL);
                health.wake(health::MONGODB);
            }
        });
    }

    /// Builds the driver client, then retries the forward, `ping` and `listDatabases` until they answer; starts
    /// the mongodb check.
    async fn mongodb_stage(
        &self,
        options: ClientOptions,
        tunnel: Option<&Tunnel>,
    ) -> Result<Mongo, StartupError> {
        let mongo = Mongo::new(
            self.config.mongo.clone(),
            options,
            self.metrics.mongo.clone(),
        )
        .map_err(|e| StartupError::Fatal {
            stage: Stage::Mongodb.as_str(),
            class: e.class(),
            message: e.to_string(),
        })?;
        self.health.set_stage(Stage::Mongodb);
        self.explain_mongodb(tunnel, &mongo);
        let started = Instant::now();
        let mut backoff =
            Backoff::try_new(MONGO_RETRY_MIN, MONGO_RETRY_MAX).expect("constant policy is valid");
        let mut last_class = None;
        loop {
            let attempt = tokio::select! {
                result = mongodb_attempt(&mongo, tunnel) => result,
                () = self.stop.cancelled() => return Err(StartupError::Cancelled),
            };
            match attempt {
                Ok(latency) => {
                    self.health.set_startup_failure(None);
                    self.health
                        .record(health::MONGODB, Observation::Healthy(latency));
                    break;
                }
                Err((class, message)) => {
                    let delay = backoff.next_delay();
                    log_stage_retry(Stage::Mongodb, &message, class, &mut last_class, delay);
                    self.health
                        .record(health::MONGODB, Observation::Unhealthy(class));
                    self.health
                        .set_startup_failure(Some(format!("{class}: {message}")));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.stop.cancelled() => return Err(StartupError::Cancelled),
                    }
                }
            }
        }
        let checked = mongo.clone();
        let forward = tunnel.cloned();
        let probe = move || {
            let mongo = checked.clone();
            let forward = forward.clone();
            async move {
                // The bastion refusing the forward is definitive (MongoDB is down or unreachable from it): seen in
                // one channel open, instead of after the driver's server selection timeout, twice.
                if let Some(tunnel) = &forward
                    && let Err(e @ TunnelError::ForwardRefused { .. }) =
                        tunnel.probe_forward().await
                {
                    return Observation::Lost(e.class());
                }
                match mongo.ping().await {
                    Ok(latency) => Observation::Healthy(latency),
                    Err(e) => Observation::Unhealthy(e.class()),
                }
            }
        };
        self.tasks.spawn(self.health.clone().run_check(
            health::MONGODB,
            self.config.mongo.health_interval,
            probe,
            self.stop.clone(),
        ));
        log_stage_ok(Stage::Mongodb, started, "ping and listDatabases answered");
        if let Some(hint) = one_member_hint(&mongo, tunnel) {
            tracing::warn!(hint, "mongo.uri reaches one member of a replica set");
        }
        Ok(mongo)
    }
}

impl Supervisor<'_> {
    /// Tool errors and `/ready?verbose` name a refused forward's target and what to check, or what the driver
    /// sees of a replica set; `/ready?verbose` lists the members.
    fn explain_mongodb(&self, tunnel: Option<&Tunnel>, mongo: &Mongo) {
        let tunnel = tunnel.cloned();
        let topology = mongo.topology().clone();
        self.health.set_explainer(
            health::MONGODB,
            Box::new(move |status| {
                if let Some(refusal) = tunnel.as_ref().and_then(Tunnel::forward_refusal) {
                    return format!("{}: {}", refusal.class(), refused_forward(&refusal));
                }
                let why = status.error.map_or("not checked yet", ErrorClass::summary);
                match topology.view().set_name {
                    Some(_) => format!(
                        "{} unhealthy ({why}); {}",
                        health::MONGODB,
                        topology.describe()
                    ),
                    None => format!("{} unhealthy ({why})", health::MONGODB),
                }
            }),
        );
        let topology = mongo.topology().clone();
        self.health.set_details(
            health::MONGODB,
            Box::new(move || {
                let view = topology.view();
                let mut details = serde_json::Map::new();
                if !view.members.is_empty() {
                    details.insert(
                        "topology".into(),
                        serde_json::to_value(view).unwrap_or_default(),
                    );
                }
                details
            }),
        );
    }
}

/// Through the fixed forward the driver talks to one server only: when that server is a replica-set member, a
/// step-down (or a secondary) means failed writes until someone edits the URI. Says how to follow the set.
fn one_member_hint(mongo: &Mongo, tunnel: Option<&Tunnel>) -> Option<String> {
    let tunnel = tunnel?;
    if tunnel.socks().is_some() {
        return None;
    }
    let set = mongo.topology().view().set_name?;
    Some(format!(
        "the server behind the fixed forward is a member of replica set {set}; add replicaSet={set} to mongo.uri \
         (or set tunnel.mode = \"socks\") so nexus-mcp reaches every member through the bastion and follows the \
         primary across elections"
    ))
}

/// How the driver reaches MongoDB through `tunnel` (directly without one).
pub fn route(tunnel: Option<&Tunnel>) -> Route {
    match tunnel {
        None => Route::Direct,
        Some(t) => match (t.socks(), t.local_addr()) {
            (Some(socks), _) => Route::Socks {
                addr: socks.addr,
                username: socks.username.clone(),
                password: socks.password.clone(),
            },
            (None, Some(addr)) => Route::Forward(addr),
            (None, None) => Route::Direct,
        },
    }
}

/// "The bastion refused …": what a refused forward means for MongoDB, and what to check.
fn refused_forward(e: &TunnelError) -> String {
    format!("{e}; check mongo.uri's host and port as seen from the bastion")
}

/// One attempt of the mongodb stage: the forward to MongoDB must open (a refusal is named at once, instead of
/// surfacing as a driver timeout), then `ping` and `listDatabases` must answer.
async fn mongodb_attempt(
    mongo: &Mongo,
    tunnel: Option<&Tunnel>,
) -> Result<Duration, (ErrorClass, String)> {
    if let Some(tunnel) = tunnel
        && let Err(e @ TunnelError::ForwardRefused { .. }) = tunnel.probe_forward().await
    {
        return Err((e.class(), refused_forward(&e)));
    }
    mongo.check().await.map_err(|e| (e.class(), e.to_string()))
}

/// The sshTunnel check: a session that is not up is definitively lost; an up session must answer a ping.
async fn tunnel_observation(tunnel: &Tunnel) -> Observation {
    let state = tunnel.state().borrow().clone();
    match state {
        TunnelState::Up { .. } => match tunnel.probe().await {
            Ok(latency) => Observation::Healthy(latency),
            Err(e @ TunnelError::SessionLost(_)) => Observation::Lost(e.class()),
            Err(e) => Observation::Unhealthy(e.class()),
        },
        TunnelState::Reconnecting { error, .. } => Observation::Lost(error),
        // An attempt under way has no verdict yet (after a loss, the status already says so).
        TunnelState::Connecting { .. } => Observation::Pending,
        TunnelState::Stopped => Observation::Lost(ErrorClass::SshUnreachable),
    }
}

fn log_stage_ok(stage: Stage, started: Instant, detail: &str) {
    tracing::info!(
        stage = stage.as_str(),
        duration_ms = started.elapsed().as_millis() as u64,
        detail,
        "stage ok"
    );
}

/// Warns on the first failure and whenever the class changes; debug while it repeats.
fn log_stage_retry(
    stage: Stage,
    cause: &str,
    class: ErrorClass,
    last: &mut Option<ErrorClass>,
    delay: Duration,
) {
    let next_in_ms = delay.as_millis() as u64;
    if *last == Some(class) {
        tracing::debug!(stage = stage.as_str(), %class, cause, next_in_ms, "stage failed again; retrying");
    } else {
        tracing::warn!(stage = stage.as_str(), %class, cause, next_in_ms, "stage failed; retrying");
    }
    *last = Some(class);
}
