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
//! [`ErrorClass`](crate::error::ErrorClass) summary only.
//!
//! **Readiness policy** (`[health] readiness`): `strict` — any unhealthy check makes `/ready` 503. `fleet` — for
//! many replicas behind a balancer: a replica that lost a dependency is not ready while some *peer* reports that
//! dependency healthy (this replica is worse than its peers: traffic moves to them); when no peer does (a shared
//! outage) or nothing is known of peers, it is not ready for `health.unready_window` after the loss, then ready
//! with `"status":"degraded"` (`nexus_degraded 1`), so clients keep getting the explained tool error instead of a
//! balancer's blank 503. Startup and draining are 503 under both. [`decide`] is the whole policy, as a pure function.
//! What peers report arrives through [`Health::run_fleet`] (`app` supplies the shared store as a [`PeerBoard`]).
//!
//! This module knows the names of checks, not what they check: `app` supplies the probes.
//!
//! Layout: `status` (one check's status, hysteresis), `checks` (recording results, the check loop), `probes`
//! (probe bodies, "why unavailable"), `latch` (stages, the startup latch, draining), `readiness` (the policy,
//! [`decide`]), `fleet` (peers and the exchange with them), `config` (`[health]`).

mod checks;
mod config;
mod fleet;
mod latch;
pub mod metrics;
mod probes;
mod readiness;
mod status;
mod targets;

use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use config::{HealthConfig, ReadinessPolicy};
pub use fleet::{PeerBoard, Peers};
pub use latch::Stage;
pub use probes::Probe;
pub use readiness::{NotReady, Verdict, decide};
pub use status::{CheckStatus, FLIP_AFTER, Observation};
pub use targets::{Probes, TargetHealth};

use metrics::{HealthMetrics, StartupMetrics};

/// The check names used in probe bodies.
pub const SSH_TUNNEL: &str = "sshTunnel";
pub const MONGODB: &str = "mongodb";

/// Explains an unhealthy dependency in a sentence for tool errors (e.g. the tunnel's retry state), given the
/// check's cached status.
pub type Explainer = Box<dyn Fn(&CheckStatus) -> String + Send + Sync>;

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

    /// The cached status of a check.
    #[cfg(test)]
    pub fn status(&self, name: &str) -> CheckStatus {
        lock(&self.find(name).status).clone()
    }

    /// Every check healthy (startup and draining aside).
    pub fn dependencies_healthy(&self) -> bool {
        self.inner.checks.iter().all(|c| lock(&c.status).healthy)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Health states for unit tests, two checks: [`SSH_TUNNEL`] and [`MONGODB`].
#[cfg(test)]
mod testing {
    use std::time::Duration;

    use super::{Health, HealthConfig, MONGODB, Peers, ReadinessPolicy, SSH_TUNNEL};
    use crate::metrics::Metrics;

    pub const MS: Duration = Duration::from_millis(1);
    /// `health.unready_window` of [`with_policy`].
    pub const WINDOW: Duration = Duration::from_secs(30);

    pub fn health() -> Health {
        with_policy(ReadinessPolicy::Strict)
    }

    pub fn with_policy(readiness: ReadinessPolicy) -> Health {
        let m = Metrics::new().target(None);
        let config = HealthConfig {
            readiness,
            unready_window: WINDOW,
            peer_interval: Duration::from_secs(2),
        };
        Health::new(
            &[SSH_TUNNEL, MONGODB],
            config,
            m.health.clone(),
            m.startup.clone(),
        )
    }

    /// What `replicas` peers report: check name → how many of them say it is healthy.
    pub fn peers(replicas: usize, healthy: &[(&str, usize)]) -> Peers {
        Peers {
            replicas,
            healthy: healthy.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{MS, health, with_policy};
    use super::*;
    use crate::error::ErrorClass;

    #[test]
    fn not_ready_while_a_dependency_is_unhealthy_under_strict() {
        let h = health();
        h.set_stage(Stage::Ready);
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        assert!(!h.is_ready(), "mongodb not checked yet");
        h.record(MONGODB, Observation::Healthy(MS));
        assert!(h.is_ready());
        h.record(MONGODB, Observation::Lost(ErrorClass::MongoUnreachable));
        assert!(!h.dependencies_healthy());
        assert!(!h.is_ready(), "one dependency down is enough");
    }

    #[test]
    fn fleet_is_not_ready_at_once_after_a_loss() {
        let h = with_policy(ReadinessPolicy::Fleet);
        h.set_stage(Stage::Ready);
        h.record(SSH_TUNNEL, Observation::Healthy(MS));
        h.record(MONGODB, Observation::Healthy(MS));
        assert!(h.is_ready());
        h.record(SSH_TUNNEL, Observation::Lost(ErrorClass::SshUnreachable));
        assert!(!h.is_ready(), "inside health.unready_window");
    }
}
