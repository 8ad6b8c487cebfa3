//! One check's cached status and its hysteresis: a status flips after [`FLIP_AFTER`] consecutive disagreeing
//! results, except for [`Observation::Lost`], which flips at once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::ErrorClass;

/// Consecutive results needed to flip a settled status.
pub const FLIP_AFTER: u32 = 2;

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
    pub(super) streak: u32,
}

impl CheckStatus {
    pub(super) const PENDING: Self = Self {
        healthy: false,
        latency: None,
        error: None,
        observed: false,
        streak: 0,
    };

    /// Applies one result; returns whether `healthy` flipped.
    pub(super) fn apply(&mut self, obs: Observation) -> bool {
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

    pub(super) fn json(&self) -> Value {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{MS, health};
    use super::super::{MONGODB, SSH_TUNNEL};
    use super::*;

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
}
