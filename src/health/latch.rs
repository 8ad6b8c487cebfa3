//! Startup progress and the end of service: the current [`Stage`], the startup latch (set once, never cleared),
//! why the current stage is failing, and draining (set at shutdown: `/ready` answers 503 from then on).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::metrics::STAGES;
use super::{Health, lock};

/// Startup stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Tunnel = 0,
    Mongodb = 1,
    Mcp = 2,
    Ready = 3,
}

impl Stage {
    /// The stage's name (logs, probe bodies, `nexus_startup_stage{stage}`).
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

impl Health {
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

    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.inner.stage.load(Ordering::SeqCst))
    }

    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst)
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
        *lock(&self.inner.startup_failure) = why;
        self.inner.started_notify.notify_waiters();
    }

    /// During startup: why it is not progressing — the current stage's failure, or a dependency already seen
    /// unhealthy (e.g. the tunnel reconnecting). `None` while the first attempts are under way.
    pub fn startup_failing(&self) -> Option<String> {
        if let Some(why) = lock(&self.inner.startup_failure).clone() {
            return Some(why);
        }
        let observed_down = self.inner.checks.iter().any(|c| {
            let s = lock(&c.status);
            s.observed && !s.healthy
        });
        if observed_down {
            self.unavailable()
        } else {
            None
        }
    }

    /// What a request made during startup is told: the stage, and why it is not progressing (or that its first
    /// attempts are still under way).
    pub fn starting(&self) -> String {
        let why = self
            .startup_failing()
            .unwrap_or_else(|| "its first connection attempts are still under way".into());
        format!(
            "nexus-mcp is starting (stage {}): {why}",
            self.stage().as_str()
        )
    }

    /// Shutdown began: /ready answers 503 from now on.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MS, health};
    use super::super::{MONGODB, NotReady, Observation, Probe, SSH_TUNNEL, Verdict};
    use super::*;

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
    fn draining_ends_readiness_and_leaves_startup_as_it_was() {
        for started in [false, true] {
            let h = health();
            h.record(SSH_TUNNEL, Observation::Healthy(MS));
            h.record(MONGODB, Observation::Healthy(MS));
            if started {
                h.set_stage(Stage::Ready);
            }
            assert_eq!(h.is_ready(), started);
            h.set_draining();
            assert!(h.is_draining());
            assert!(!h.is_ready(), "draining is never ready");
            let why = if started {
                NotReady::Draining
            } else {
                NotReady::Starting
            };
            assert_eq!(h.readiness(), Verdict::NotReady(why));
            assert_eq!(h.is_started(), started, "draining leaves the latch alone");
            assert_eq!(h.report(Probe::Startup).0, started);
            assert_eq!(h.report(Probe::Readiness).1["draining"], true);
        }
    }
}
