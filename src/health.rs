//! Dependency health and startup progress, as the probes report them.
//!
//! - `GET /health` (liveness): 200 while the process answers; never depends on MongoDB or SSH.
//! - `GET /ready`: 200 when startup completed, the process is not draining, and every check is healthy — or, under
//!   the fleet policy, when a lost dependency is lost everywhere (see below); else 503.
//! - `GET /startup`: 200 once startup completed (a one-way latch).
//!
//! Checks run in the background ([`Health::run_check`]) and cache their result; probes only read the cache.
//! A status flips after [`FLIP_AFTER`] consecutive disagreeing results (hysteresis), except for an
//! [`Observation::Lost`] (e.g. the SSH session closed), which is definitive and flips at once. While a check is
//! unhealthy or unsettled it is re-run sooner, so recovery is seen quickly. Error text is a sanitized
//! [`ErrorClass`] summary only.
//!
//! **Readiness policy** (`[health] readiness`): `strict` — any unhealthy check makes `/ready` 503. `fleet` — for
//! many replicas behind a balancer: a replica that lost a dependency is not ready while some *peer* reports that
//! dependency healthy (this replica is worse than its peers: traffic moves to them); when no peer does (a shared
//! outage) or nothing is known of peers, it is not ready for `health.unready_window` after the loss, then ready
//! with `"status":"degraded"` (`nexus_degraded 1`), so clients keep getting the explained tool error instead of a
//! balancer's blank 503. Startup and draining are 503 under both. [`decide`] is the whole policy, as a pure function.
//! What peers report arrives through [`Health::set_peers`] (`app` runs the exchange over the shared store).
//!
//! This module knows the names of checks, not what they check: `app` supplies the probes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ErrorClass;
use crate::metrics::{HealthMetrics, STAGES, StartupMetrics};

/// Consecutive results needed to flip a settled status.
pub const FLIP_AFTER: u32 = 2;
/// Re-check delay while a status is unsettled (a flip is pending).
const UNSETTLED_RECHECK: Duration = Duration::from_millis(100);
/// Re-check delay cap while unhealthy.
const UNHEALTHY_RECHECK: Duration = Duration::from_millis(500);

/// The check names used in probe bodies.
pub const SSH_TUNNEL: &str = "sshTunnel";
pub const MONGODB: &str = "mongodb";

/// How `/ready` treats a dependency this replica has lost (`[health] readiness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadinessPolicy {
    /// Not ready while any check is unhealthy (one process, or a balancer that must never route to it).
    Strict,
    /// Not ready while a peer does better, or for `unready_window` after a loss; then ready and degraded.
    Fleet,
}

/// `[health]`: the readiness policy.
#[derive(Clone, Debug, Serialize)]
pub struct HealthConfig {
    pub readiness: ReadinessPolicy,
    /// Fleet: how long a replica stays out of the pool after a loss that no peer contradicts.
    #[serde(with = "humantime_serde")]
    pub unready_window: Duration,
    /// Fleet: how often this replica publishes its checks to the shared store and reads its peers'.
    #[serde(with = "humantime_serde")]
    pub peer_interval: Duration,
}

/// What the other replicas report through the shared store (this replica excluded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// Replicas heard from within their entries' lifetime.
    pub replicas: usize,
    /// Check name → how many of them report it healthy.
    pub healthy: HashMap<String, usize>,
}

/// Why `/ready` says 503.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    Starting,
    Draining,
    /// Strict policy: a check is unhealthy.
    Unhealthy,
    /// Fleet: `check` is unhealthy here but healthy on `peers` other replicas.
    PeerHealthy {
        check: &'static str,
        peers: usize,
    },
    /// Fleet: no peer contradicts the loss; ready (degraded) again after `left`.
    Window {
        left: Duration,
    },
}

/// The readiness verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Fleet: unhealthy `checks` that no peer reports healthy, for longer than the window: serving explained errors.
    Degraded {
        checks: Vec<&'static str>,
    },
    NotReady(NotReady),
}

impl Verdict {
    /// 200 or 503.
    pub fn ready(&self) -> bool {
        !matches!(self, Self::NotReady(_))
    }

    fn code(&self) -> u8 {
        match self {
            Self::Ready => 0,
            Self::Degraded { .. } => 1,
            Self::NotReady(_) => 2,
        }
    }

    /// The sentence probe bodies carry under the fleet policy.
    fn reason(&self, window: Duration) -> String {
        let window = humantime::format_duration(window);
        match self {
            Self::Ready => "every check healthy".into(),
            Self::Degraded { checks } => format!(
                "{} unhealthy and no peer reports otherwise (a shared outage): ready after health.unready_window                  ({window}) so clients get the explained error",
                checks.join(", ")
            ),
            Self::NotReady(NotReady::Starting) => "starting".into(),
            Self::NotReady(NotReady::Draining) => "draining".into(),
            Self::NotReady(NotReady::Unhealthy) => "a check is unhealthy".into(),
            Self::NotReady(NotReady::PeerHealthy { check, peers }) => format!(
                "{check} unhealthy here but healthy on {peers} peer(s): out of the pool until it recovers"
            ),
            Self::NotReady(NotReady::Window { left }) => format!(
                "unhealthy, and no peer reports otherwise: out of the pool for health.unready_window ({window}),                  ready as degraded in {} ms",
                left.as_millis()
            ),
        }
    }
}

/// The readiness policy, whole: `unhealthy` are the checks unhealthy now, `unhealthy_for` how long this replica
/// has not been fully healthy, `peers` what the other replicas report (`None`: unknown — no store, or it failed).
pub fn decide(
    policy: ReadinessPolicy,
    window: Duration,
    started: bool,
    draining: bool,
    unhealthy: &[&'static str],
    unhealthy_for: Duration,
    peers: Option<&Peers>,
) -> Verdict {
    if !started {
        return Verdict::NotReady(NotReady::Starting);
    }
    if draining {
        return Verdict::NotReady(NotReady::Draining);
    }
    if unhealthy.is_empty() {
        return Verdict::Ready;
    }
    if policy == ReadinessPolicy::Strict {
        return Verdict::NotReady(NotReady::Unhealthy);
    }
    let better_peer = unhealthy.iter().find_map(|&check| {
        let n = peers
            .and_then(|p| p.healthy.get(check))
            .copied()
            .unwrap_or(0);
        (n > 0).then_some(NotReady::PeerHealthy { check, peers: n })
    });
    if let Some(why) = better_peer {
        return Verdict::NotReady(why);
    }
    if unhealthy_for < window {
        return Verdict::NotReady(NotReady::Window {
            left: window - unhealthy_for,
        });
    }
    Verdict::Degraded {
        checks: unhealthy.to_vec(),
    }
}

/// Where replicas tell each other their checks (the shared store; `app` supplies it).
pub trait PeerBoard: Send + Sync + 'static {
    /// Publishes this replica's checks and reads the other replicas' current ones.
    fn exchange(
        &self,
        mine: Vec<(&'static str, bool)>,
    ) -> impl Future<Output = Result<Peers, String>> + Send;

    /// Withdraws this replica's entry (at shutdown).
    fn leave(&self) -> impl Future<Output = ()> + Send;
}

/// Startup stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Tunnel = 0,
    Mongodb = 1,
    Mcp = 2,
    Ready = 3,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        STAGES[self as usize]
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Tunnel,
            1 => Self::Mongodb,
            2 => Self::Mcp,
            _ => Self::Ready,
        }
    }
}

/// One probe result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    Healthy(Duration),
    /// Failed; flips a healthy status after [`FLIP_AFTER`] in a row.
    Unhealthy(ErrorClass),
    /// Known gone (not merely slow); flips at once.
    Lost(ErrorClass),
    /// No verdict yet (e.g. a connection attempt under way): changes nothing.
    Pending,
}

/// The cached status of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckStatus {
    pub healthy: bool,
    /// Latency of the last successful probe.
    pub latency: Option<Duration>,
    /// Why it is unhealthy.
    pub error: Option<ErrorClass>,
    /// Whether any result arrived yet.
    pub observed: bool,
    /// Consecutive results that disagree with `healthy`.
    streak: u32,
}

impl CheckStatus {
    const PENDING: Self = Self {
        healthy: false,
        latency: None,
        error: None,
        observed: false,
        streak: 0,
    };

    /// Applies one result; returns whether `healthy` flipped.
    fn apply(&mut self, obs: Observation) -> bool {
        if obs == Observation::Pending {
            return false;
        }
        let before = self.healthy;
        let first = !self.observed;
        self.observed = true;
        match obs {
            Observation::Lost(class) => {
                self.healthy = false;
                self.error = Some(class);
                self.latency = None;
                self.streak = 0;
            }
            Observation::Healthy(latency) => {
                self.latency = Some(latency);
                if first || self.healthy {
                    self.healthy = true;
                    self.streak = 0;
                } else {
                    self.streak += 1;
                    if self.streak >= FLIP_AFTER {
                        self.healthy = true;
                        self.streak = 0;
                    }
                }
                if self.healthy {
                    self.error = None;
                }
            }
            Observation::Pending => {}
            Observation::Unhealthy(class) => {
                if first || !self.healthy {
                    self.healthy = false;
                    self.error = Some(class);
                    self.latency = None;
                    self.streak = 0;
                } else {
                    self.streak += 1;
                    if self.streak >= FLIP_AFTER {
                        self.healthy = false;
                        self.error = Some(class);
                        self.latency = None;
                        self.streak = 0;
                    }
                }
            }
        }
        before != self.healthy
    }

    fn json(&self) -> Value {
        let status = if self.healthy { "healthy" } else { "unhealthy" };
        let mut v = json!({ "status": status });
        if let Some(latency) = self.latency {
            v["latency_ms"] = json!((latency.as_secs_f64() * 1e6).round() / 1e3);
        }
        if !self.observed {
            v["error"] = json!("not checked yet");
        } else if let Some(class) = self.error {
            v["error"] = json!(class.summary());
            v["class"] = json!(class.as_str());
        }
        v
    }
}

/// Explains an unhealthy dependency in a sentence for tool errors (e.g. the tunnel's retry state).
pub type Explainer = Box<dyn Fn() -> String + Send + Sync>;

/// Adds what a component knows about a dependency to its entry in verbose probe bodies (e.g. MongoDB's members).
pub type Details = Box<dyn Fn() -> serde_json::Map<String, Value> + Send + Sync>;

struct Check {
    name: &'static str,
    status: Mutex<CheckStatus>,
    /// Wakes the check's loop for an immediate re-run.
    wake: Notify,
    /// Set by the component's owner; without one, the error class is the explanation.
    explainer: OnceLock<Explainer>,
    details: OnceLock<Details>,
}

/// Shared health state; cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    checks: Vec<Check>,
    stage: AtomicU8,
    /// The startup latch: set once, never cleared.
    started: AtomicBool,
    /// Wakes callers of [`Health::wait_started`]: startup completed, or a check or stage recorded a result.
    started_notify: Notify,
    /// Why the current startup stage's last attempt failed (cleared when it succeeds).
    startup_failure: Mutex<Option<String>>,
    /// Set at shutdown: /ready answers 503 from then on.
    draining: AtomicBool,
    metrics: HealthMetrics,
    startup_metrics: StartupMetrics,
    /// `[health]`: the readiness policy.
    config: HealthConfig,
    /// Since when some check has been unhealthy (after startup); `None` while every check is healthy.
    unhealthy_since: Mutex<Option<Instant>>,
    /// What the peers report; `None` when unknown.
    peers: Mutex<Option<Peers>>,
    /// The last verdict's kind ([`Verdict::code`]), to log changes once.
    last_verdict: AtomicU8,
    /// Wakes the peer exchange when a check flips, so peers learn at once.
    flipped: Notify,
}

/// Which probe a body is for.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    Liveness,
    Readiness,
    Startup,
}

impl Health {
    /// A health state with the given required checks, all pending (unhealthy) until their first result.
    pub fn new(
        names: &[&'static str],
        config: HealthConfig,
        metrics: HealthMetrics,
        startup_metrics: StartupMetrics,
    ) -> Self {
        let checks = names
            .iter()
            .map(|&name| {
                metrics.dependency_up.with_label_values(&[name]).set(0);
                Check {
                    name,
                    status: Mutex::new(CheckStatus::PENDING),
                    wake: Notify::new(),
                    explainer: OnceLock::new(),
                    details: OnceLock::new(),
                }
            })
            .collect();
        startup_metrics.set(Stage::Tunnel.as_str());
        Self {
            inner: Arc::new(Inner {
                checks,
                stage: AtomicU8::new(Stage::Tunnel as u8),
                started: AtomicBool::new(false),
                started_notify: Notify::new(),
                startup_failure: Mutex::new(None),
                draining: AtomicBool::new(false),
                metrics,
                startup_metrics,
                config,
                unhealthy_since: Mutex::new(None),
                peers: Mutex::new(None),
                last_verdict: AtomicU8::new(Verdict::NotReady(NotReady::Starting).code()),
                flipped: Notify::new(),
            }),
        }
    }

    fn find(&self, name: &str) -> &Check {
        self.inner
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("health check {name} is not registered"))
    }

    /// Records one result; logs and counts a flip. Returns whether the status flipped.
    pub fn record(&self, name: &str, obs: Observation) -> bool {
        let check = self.find(name);
        let (flipped, status) = {
            let mut s = check.status.lock().unwrap_or_else(|p| p.into_inner());
            (s.apply(obs), s.clone())
        };
        self.inner.started_notify.notify_waiters();
        if flipped {
            self.track_unhealthy_since();
            self.inner.flipped.notify_waiters();
            self.inner
                .metrics
                .dependency_up
                .with_label_values(&[name])
                .set(i64::from(status.healthy));
            if status.healthy {
                tracing::info!(check = name, "dependency healthy");
            } else {
                let class = status.error.map_or("unknown", ErrorClass::as_str);
                tracing::warn!(check = name, class, "dependency unhealthy");
            }
        }
        flipped
    }

    /// Sets how an unhealthy `name` is explained to tool callers (once).
    pub fn set_explainer(&self, name: &str, explainer: Explainer) {
        let _ = self.find(name).explainer.set(explainer);
    }

    /// Sets what verbose probe bodies add to `name`'s entry (once). Never a secret.
    pub fn set_details(&self, name: &str, details: Details) {
        let _ = self.find(name).details.set(details);
    }

    /// Why tool calls cannot run right now: each unhealthy dependency, explained; `None` when all are healthy.
    pub fn unavailable(&self) -> Option<String> {
        let reasons: Vec<String> = self
            .inner
            .checks
            .iter()
            .filter_map(|c| {
                let status = c.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if status.healthy {
                    return None;
                }
                Some(match c.explainer.get() {
                    Some(explain) => explain(),
                    None => {
                        let why = status.error.map_or("not checked yet", ErrorClass::summary);
                        format!("{} unhealthy ({why})", c.name)
                    }
                })
            })
            .collect();
        if reasons.is_empty() {
            None
        } else {
            Some(reasons.join("; "))
        }
    }

    /// Asks the check's loop to run now (e.g. after the tunnel changed state).
    pub fn wake(&self, name: &str) {
        self.find(name).wake.notify_one();
    }

    /// The cached status of a check.
    pub fn status(&self, name: &str) -> CheckStatus {
        self.find(name)
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `probe` every `interval` (sooner while unhealthy or unsettled, at once when woken) until `shutdown`.
    pub async fn run_check<F, Fut>(
        self,
        name: &'static str,
        interval: Duration,
        probe: F,
        shutdown: CancellationToken,
    ) where
        F: Fn() -> Fut,
        Fut: Future<Output = Observation>,
    {
        let check = self.find(name);
        loop {
            let obs = tokio::select! {
                obs = probe() => obs,
                () = shutdown.cancelled() => return,
            };
            self.record(name, obs);
            let wait = {
                let s = check.status.lock().unwrap_or_else(|p| p.into_inner());
                if s.streak > 0 {
                    UNSETTLED_RECHECK.min(interval)
                } else if !s.healthy {
                    UNHEALTHY_RECHECK.min(interval)
                } else {
                    interval
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = check.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Under the fleet policy: every `health.peer_interval` (and at once when a check flips), publishes this
    /// replica's checks and reads its peers' through `board` (none: the window alone decides), and re-evaluates
    /// readiness so `nexus_degraded` and the log follow without a probe. Runs until `shutdown`.
    pub async fn run_fleet<B: PeerBoard>(self, board: Option<B>, shutdown: CancellationToken) {
        let interval = self.inner.config.peer_interval;
        let mut known = true;
        loop {
            if let Some(board) = &board {
                match board.exchange(self.snapshot()).await {
                    Ok(peers) => {
                        if !known {
                            tracing::info!(replicas = peers.replicas, "peer health known again");
                        }
                        known = true;
                        self.set_peers(Some(peers));
                    }
                    Err(e) => {
                        if known {
                            tracing::warn!(cause = %e, "peer health unknown: readiness falls back to health.unready_window");
                        }
                        known = false;
                        self.set_peers(None);
                    }
                }
            }
            self.readiness();
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.flipped() => {}
                () = shutdown.cancelled() => break,
            }
        }
        if let Some(board) = &board {
            board.leave().await;
        }
    }

    /// Moves startup to `stage` (and closes the latch at [`Stage::Ready`]).
    pub fn set_stage(&self, stage: Stage) {
        self.inner.stage.store(stage as u8, Ordering::SeqCst);
        self.inner.startup_metrics.set(stage.as_str());
        if stage == Stage::Ready {
            self.inner.started.store(true, Ordering::SeqCst);
            self.track_unhealthy_since();
            self.inner.started_notify.notify_waiters();
        }
    }

    /// Starts (or ends) the time this replica has been less than fully healthy, counted from startup on.
    fn track_unhealthy_since(&self) {
        let healthy = self.dependencies_healthy();
        let mut since = lock(&self.inner.unhealthy_since);
        match (healthy, *since) {
            (true, _) => *since = None,
            (false, None) if self.is_started() => *since = Some(Instant::now()),
            _ => {}
        }
    }

    /// Records what the peers report (`None`: unknown).
    pub fn set_peers(&self, peers: Option<Peers>) {
        *lock(&self.inner.peers) = peers;
    }

    /// Each check's name and whether it is healthy now, as published to peers.
    pub fn snapshot(&self) -> Vec<(&'static str, bool)> {
        self.inner
            .checks
            .iter()
            .map(|c| (c.name, lock(&c.status).healthy))
            .collect()
    }

    /// Resolves when a check flips (the peer exchange publishes at once).
    pub async fn flipped(&self) {
        self.inner.flipped.notified().await;
    }

    /// The readiness policy's settings.
    pub fn config(&self) -> &HealthConfig {
        &self.inner.config
    }

    /// The readiness verdict now (updates `nexus_degraded` and logs a change of verdict).
    pub fn readiness(&self) -> Verdict {
        let unhealthy: Vec<&'static str> = self
            .inner
            .checks
            .iter()
            .filter(|c| !lock(&c.status).healthy)
            .map(|c| c.name)
            .collect();
        let unhealthy_for =
            lock(&self.inner.unhealthy_since).map_or(Duration::ZERO, |t| t.elapsed());
        let peers = lock(&self.inner.peers).clone();
        let config = &self.inner.config;
        let verdict = decide(
            config.readiness,
            config.unready_window,
            self.is_started(),
            self.is_draining(),
            &unhealthy,
            unhealthy_for,
            peers.as_ref(),
        );
        self.inner
            .metrics
            .degraded
            .set(i64::from(matches!(verdict, Verdict::Degraded { .. })));
        let before = self
            .inner
            .last_verdict
            .swap(verdict.code(), Ordering::SeqCst);
        if before != verdict.code() && self.is_started() && !self.is_draining() {
            let reason = verdict.reason(config.unready_window);
            match &verdict {
                Verdict::Ready => tracing::info!("ready"),
                Verdict::Degraded { .. } => tracing::warn!(%reason, "ready, degraded"),
                Verdict::NotReady(_) => tracing::warn!(%reason, "not ready"),
            }
        }
        verdict
    }

    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.inner.stage.load(Ordering::SeqCst))
    }

    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for startup to complete; returns whether it did.
    pub async fn wait_started(&self, limit: Duration) -> bool {
        self.wait_started_unless_failing(limit).await && self.is_started()
    }

    /// Waits up to `limit` for startup to complete, but only while no attempt has failed yet: a caller that would
    /// wait for a stage that is already failing gets its answer (and the reason) at once. Returns whether the
    /// wait ended before `limit` (started, or failing).
    pub async fn wait_started_unless_failing(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.started_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.is_started() || self.startup_failing().is_some() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Records why the current startup stage's last attempt failed (`None` once it succeeds).
    pub fn set_startup_failure(&self, why: Option<String>) {
        *self
            .inner
            .startup_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = why;
        self.inner.started_notify.notify_waiters();
    }

    /// During startup: why it is not progressing — the current stage's failure, or a dependency already seen
    /// unhealthy (e.g. the tunnel reconnecting). `None` while the first attempts are under way.
    pub fn startup_failing(&self) -> Option<String> {
        if let Some(why) = self
            .inner
            .startup_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Some(why);
        }
        let observed_down = self.inner.checks.iter().any(|c| {
            let s = c.status.lock().unwrap_or_else(|p| p.into_inner());
            s.observed && !s.healthy
        });
        if observed_down {
            self.unavailable()
        } else {
            None
        }
    }

    /// Shutdown began: /ready answers 503 from now on.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Every check healthy (startup and draining aside).
    pub fn dependencies_healthy(&self) -> bool {
        self.inner
            .checks
            .iter()
            .all(|c| c.status.lock().unwrap_or_else(|p| p.into_inner()).healthy)
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().ready()
    }

    /// The probe's verdict and its JSON body. `verbose` adds, for each unhealthy check, the sentence tool errors
    /// use (host names and retry state; never a secret).
    pub fn report_verbose(&self, probe: Probe) -> (bool, Value) {
        let (ok, mut body) = self.report(probe);
        for c in &self.inner.checks {
            let healthy = c.status.lock().unwrap_or_else(|p| p.into_inner()).healthy;
            if let (false, Some(explain)) = (healthy, c.explainer.get()) {
                body["checks"][c.name]["detail"] = json!(explain());
            }
            if let (Some(details), Some(entry)) =
                (c.details.get(), body["checks"][c.name].as_object_mut())
            {
                entry.extend(details());
            }
        }
        if !self.is_started()
            && let Some(why) = self
                .inner
                .startup_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        {
            body["startupError"] = json!(why);
        }
        (ok, body)
    }

    /// The probe's verdict and its JSON body.
    pub fn report(&self, probe: Probe) -> (bool, Value) {
        let verdict = matches!(probe, Probe::Readiness).then(|| self.readiness());
        let ok = match probe {
            Probe::Liveness => true,
            Probe::Readiness => verdict.as_ref().is_some_and(Verdict::ready),
            Probe::Startup => self.is_started(),
        };
        let degraded = matches!(verdict, Some(Verdict::Degraded { .. }));
        let checks: serde_json::Map<String, Value> = self
            .inner
            .checks
            .iter()
            .map(|c| {
                let s = c.status.lock().unwrap_or_else(|p| p.into_inner());
                (c.name.to_string(), s.json())
            })
            .collect();
        let status = match (ok, degraded) {
            (true, true) => "degraded",
            (true, false) => "healthy",
            (false, _) => "unhealthy",
        };
        let mut body = json!({
            "status": status,
            "stage": self.stage().as_str(),
            "checks": checks,
            "timestamp": now_rfc3339(),
        });
        if self.is_draining() {
            body["draining"] = json!(true);
        }
        let config = &self.inner.config;
        if let (Some(verdict), ReadinessPolicy::Fleet) = (&verdict, config.readiness)
            && *verdict != Verdict::Ready
        {
            body["readiness"] = json!({
                "policy": "fleet",
                "reason": verdict.reason(config.unready_window),
                "peers": lock(&self.inner.peers).as_ref().map(|p| p.replicas),
            });
        }
        (ok, body)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, as RFC 3339 (probe bodies, audit lines).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    const MS: Duration = Duration::from_millis(1);

    fn health() -> Health {
        with_policy(ReadinessPolicy::Strict)
    }

    fn with_policy(readiness: ReadinessPolicy) -> Health {
        let m = Metrics::new();
        let config = HealthConfig {
            readiness,
            unready_window: Duration::from_secs(30),
            peer_interval: Duration::from_secs(2),
        };
        Health::new(
            &[SSH_TUNNEL, MONGODB],
            config,
            m.health.clone(),
            m.startup.clone(),
        )
    }

    #[test]
    fn first_result_sets_the_status_then_flips_need_consecutive_results() {
        let h = health();
        assert!(!h.status(MONGODB).healthy, "pending is unhealthy");
        assert!(h.record(MONGODB, Observation::Healthy(MS)));
        assert!(!h.record(MONGODB, Observation::Unhealthy(ErrorClass::MongoTimeout)));
        assert!(h.status(MONGODB).healthy, "one failure does not flip");
        assert!(
            !h.record(MONGODB, Observation::Healthy(MS)),
            "a success resets the streak"
        );
        assert!(!h.record(MONGODB, Observation::Unhealthy(ErrorClass::MongoTimeout)));
        assert!(h.record(MONGODB, Observation::Unhealthy(ErrorClass::MongoTimeout)));
        let s = h.status(MONGODB);
        assert_eq!(
            (s.healthy, s.error),
            (false, Some(ErrorClass::MongoTimeout))
        );
        assert!(!h.record(MONGODB, Observation::Healthy(MS)));
        assert!(h.record(MONGODB, Observation::Healthy(MS)));
    }

    #[test]
    fn a_lost_dependency_flips_at_once() {
        let h = health();
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        assert!(h.record(SSH_TUNNEL, Observation::Lost(ErrorClass::SshUnreachable)));
    }

    #[test]
    fn readiness_needs_the_latch_every_check_and_no_drain() {
        let h = health();
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        h.record(MONGODB, Observation::Healthy(MS));
        assert!(!h.is_ready(), "startup not complete");
        assert!(!h.report(Probe::Startup).0);
        h.set_stage(Stage::Ready);
        assert!(h.is_ready());
        let (ok, body) = h.report(Probe::Readiness);
        assert!(ok);
        assert_eq!(body["checks"]["mongodb"]["status"], "healthy");
        assert!(body["checks"]["mongodb"]["latency_ms"].is_number());
        h.set_draining();
        assert!(!h.report(Probe::Readiness).0);
        assert!(
            h.report(Probe::Liveness).0,
            "liveness never depends on dependencies"
        );
        assert!(h.report(Probe::Startup).0, "the latch is one-way");
    }

    #[test]
    fn unavailability_is_explained_per_dependency() {
        let h = health();
        h.record(SSH_TUNNEL, Observation::Lost(ErrorClass::SshUnreachable));
        h.record(MONGODB, Observation::Unhealthy(ErrorClass::MongoTimeout));
        assert_eq!(
            h.unavailable().unwrap(),
            "sshTunnel unhealthy (unreachable); mongodb unhealthy (timeout)"
        );
        h.set_explainer(
            SSH_TUNNEL,
            Box::new(|| "SSH tunnel reconnecting: attempt 2".into()),
        );
        h.record(MONGODB, Observation::Healthy(MS));
        h.record(MONGODB, Observation::Healthy(MS));
        assert_eq!(
            h.unavailable().unwrap(),
            "SSH tunnel reconnecting: attempt 2"
        );
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        assert_eq!(h.unavailable(), None);
    }

    #[test]
    fn bodies_carry_only_the_sanitized_class() {
        let h = health();
        h.record(
            SSH_TUNNEL,
            Observation::Lost(ErrorClass::SshHostKeyMismatch),
        );
        let (_, body) = h.report(Probe::Readiness);
        assert_eq!(body["checks"]["sshTunnel"]["error"], "host key mismatch");
        assert_eq!(
            body["checks"]["sshTunnel"]["class"],
            "SSH_HOST_KEY_MISMATCH"
        );
        assert_eq!(body["checks"]["mongodb"]["error"], "not checked yet");
    }

    const WINDOW: Duration = Duration::from_secs(30);

    fn peers(replicas: usize, healthy: &[(&str, usize)]) -> Peers {
        Peers {
            replicas,
            healthy: healthy.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        }
    }

    fn fleet(unhealthy: &[&'static str], for_: Duration, peers: Option<&Peers>) -> Verdict {
        decide(
            ReadinessPolicy::Fleet,
            WINDOW,
            true,
            false,
            unhealthy,
            for_,
            peers,
        )
    }

    #[test]
    fn startup_and_draining_are_never_ready_under_either_policy() {
        for policy in [ReadinessPolicy::Strict, ReadinessPolicy::Fleet] {
            let late = Duration::from_secs(3600);
            assert_eq!(
                decide(policy, WINDOW, false, false, &[], late, None),
                Verdict::NotReady(NotReady::Starting)
            );
            assert_eq!(
                decide(policy, WINDOW, true, true, &[SSH_TUNNEL], late, None),
                Verdict::NotReady(NotReady::Draining)
            );
            assert_eq!(
                decide(policy, WINDOW, true, false, &[], late, None),
                Verdict::Ready
            );
        }
    }

    #[test]
    fn strict_is_not_ready_while_any_check_is_unhealthy_whatever_peers_say() {
        let all_down = peers(2, &[]);
        assert_eq!(
            decide(
                ReadinessPolicy::Strict,
                WINDOW,
                true,
                false,
                &[MONGODB],
                Duration::from_secs(3600),
                Some(&all_down)
            ),
            Verdict::NotReady(NotReady::Unhealthy)
        );
    }

    #[test]
    fn fleet_stays_out_while_a_peer_reports_the_lost_dependency_healthy() {
        let others_fine = peers(2, &[(SSH_TUNNEL, 2), (MONGODB, 2)]);
        for for_ in [Duration::ZERO, Duration::from_secs(3600)] {
            assert_eq!(
                fleet(&[SSH_TUNNEL, MONGODB], for_, Some(&others_fine)),
                Verdict::NotReady(NotReady::PeerHealthy {
                    check: SSH_TUNNEL,
                    peers: 2
                })
            );
        }
        // A peer healthy on another dependency only does not count.
        let others_mongo_only = peers(1, &[(MONGODB, 1)]);
        assert_eq!(
            fleet(
                &[SSH_TUNNEL],
                Duration::from_secs(31),
                Some(&others_mongo_only)
            ),
            Verdict::Degraded {
                checks: vec![SSH_TUNNEL]
            }
        );
    }

    #[test]
    fn fleet_without_a_better_peer_waits_out_the_window_then_serves_degraded() {
        let all_down = peers(2, &[]);
        for known in [None, Some(&all_down)] {
            assert_eq!(
                fleet(&[MONGODB], Duration::from_secs(10), known),
                Verdict::NotReady(NotReady::Window {
                    left: Duration::from_secs(20)
                })
            );
            assert_eq!(
                fleet(&[MONGODB], WINDOW, known),
                Verdict::Degraded {
                    checks: vec![MONGODB]
                }
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fleet_readiness_counts_the_window_from_the_loss_and_reports_degraded() {
        let h = with_policy(ReadinessPolicy::Fleet);
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        h.record(MONGODB, Observation::Healthy(MS));
        h.set_stage(Stage::Ready);
        assert_eq!(h.readiness(), Verdict::Ready);
        tokio::time::advance(Duration::from_secs(100)).await;
        h.record(SSH_TUNNEL, Observation::Lost(ErrorClass::SshUnreachable));
        let (ok, body) = h.report(Probe::Readiness);
        assert!(!ok, "the window counts from the loss, not from startup");
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["readiness"]["policy"], "fleet");
        tokio::time::advance(WINDOW).await;
        let (ok, body) = h.report(Probe::Readiness);
        assert!(ok);
        assert_eq!(body["status"], "degraded");
        assert_eq!(h.inner.metrics.degraded.get(), 1);
        assert_eq!(
            h.unavailable().unwrap(),
            "sshTunnel unhealthy (unreachable)",
            "tool calls keep their explained error"
        );
        h.set_peers(Some(peers(1, &[(SSH_TUNNEL, 1)])));
        assert!(
            !h.is_ready(),
            "a peer with a working tunnel takes the traffic"
        );
        assert_eq!(h.inner.metrics.degraded.get(), 0);
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        let (ok, body) = h.report(Probe::Readiness);
        assert!(ok);
        assert_eq!(body["status"], "healthy");
        assert!(body.get("readiness").is_none());
        h.set_draining();
        assert!(!h.is_ready());
    }
}
