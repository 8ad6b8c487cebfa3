//! Dependency health and startup progress, as the probes report them.
//!
//! - `GET /health` (liveness): 200 while the process answers; never depends on MongoDB or SSH.
//! - `GET /ready`: 200 only when startup completed, the process is not draining, and every check is healthy.
//! - `GET /startup`: 200 once startup completed (a one-way latch).
//!
//! Checks run in the background ([`Health::run_check`]) and cache their result; probes only read the cache.
//! A status flips after [`FLIP_AFTER`] consecutive disagreeing results (hysteresis), except for an
//! [`Observation::Lost`] (e.g. the SSH session closed), which is definitive and flips at once. While a check is
//! unhealthy or unsettled it is re-run sooner, so recovery is seen quickly. Error text is a sanitized
//! [`ErrorClass`] summary only.
//!
//! This module knows the names of checks, not what they check: `app` supplies the probes.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
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

    /// Moves startup to `stage` (and closes the latch at [`Stage::Ready`]).
    pub fn set_stage(&self, stage: Stage) {
        self.inner.stage.store(stage as u8, Ordering::SeqCst);
        self.inner.startup_metrics.set(stage.as_str());
        if stage == Stage::Ready {
            self.inner.started.store(true, Ordering::SeqCst);
            self.inner.started_notify.notify_waiters();
        }
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
        self.is_started() && !self.is_draining() && self.dependencies_healthy()
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
        let ok = match probe {
            Probe::Liveness => true,
            Probe::Readiness => self.is_ready(),
            Probe::Startup => self.is_started(),
        };
        let checks: serde_json::Map<String, Value> = self
            .inner
            .checks
            .iter()
            .map(|c| {
                let s = c.status.lock().unwrap_or_else(|p| p.into_inner());
                (c.name.to_string(), s.json())
            })
            .collect();
        let mut body = json!({
            "status": if ok { "healthy" } else { "unhealthy" },
            "stage": self.stage().as_str(),
            "checks": checks,
            "timestamp": now_rfc3339(),
        });
        if self.is_draining() {
            body["draining"] = json!(true);
        }
        (ok, body)
    }
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
        let m = Metrics::new();
        Health::new(&[SSH_TUNNEL, MONGODB], m.health.clone(), m.startup.clone())
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
}
