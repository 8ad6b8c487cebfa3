//! The check loop: results recorded (with their log line and metric), and each check re-run on its interval —
//! sooner while unhealthy or unsettled, at once when woken.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Details, Explainer, Health, Observation, lock};
use crate::error::ErrorClass;

/// Re-check delay while a status is unsettled (a flip is pending).
const UNSETTLED_RECHECK: Duration = Duration::from_millis(100);
/// Re-check delay cap while unhealthy.
const UNHEALTHY_RECHECK: Duration = Duration::from_millis(500);

impl Health {
    /// Records one result; logs and counts a flip. Returns whether the status flipped.
    pub fn record(&self, name: &str, obs: Observation) -> bool {
        let check = self.find(name);
        let (flipped, status) = {
            let mut s = lock(&check.status);
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

    /// Asks the check's loop to run now (e.g. after the tunnel changed state).
    pub fn wake(&self, name: &str) {
        self.find(name).wake.notify_one();
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
                let s = lock(&check.status);
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
}
