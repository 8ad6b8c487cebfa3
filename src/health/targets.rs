//! The probes over every target's health. A configuration without `[targets.*]` has one target, whose bodies are
//! the probes' bodies unchanged. With named targets, each target's body is an entry of `targets` (with its
//! `required` flag), and the verdict follows the required targets only: an optional target that is down shows as
//! `unhealthy` in its entry while the server stays ready for the others.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Health, Probe};

/// One target's health, as the probes see it.
#[derive(Clone)]
pub struct TargetHealth {
    pub name: String,
    pub required: bool,
    pub health: Health,
}

/// Every target's health, for the probes and the drain.
#[derive(Clone)]
pub struct Probes {
    targets: Arc<[TargetHealth]>,
    named: bool,
}

impl Probes {
    /// `targets` must not be empty (the loader guarantees a target).
    pub fn new(targets: Vec<TargetHealth>, named: bool) -> Self {
        assert!(!targets.is_empty(), "at least one target");
        Self {
            targets: targets.into(),
            named,
        }
    }

    /// The probe's verdict and body (`verbose`: with each unhealthy check's explanation).
    pub fn report(&self, probe: Probe, verbose: bool) -> (bool, Value) {
        let one = |h: &Health| {
            if verbose {
                h.report_verbose(probe)
            } else {
                h.report(probe)
            }
        };
        if !self.named {
            return one(&self.targets[0].health);
        }
        let (mut ok, mut degraded) = (true, false);
        let mut entries = Map::new();
        for t in self.targets.iter() {
            let (target_ok, mut body) = one(&t.health);
            if t.required {
                ok &= target_ok;
                degraded |= body["status"] == "degraded";
            }
            if let Some(entry) = body.as_object_mut() {
                entry.remove("timestamp");
                entry.remove("draining");
                entry.insert("required".into(), json!(t.required));
            }
            entries.insert(t.name.clone(), body);
        }
        let mut body = json!({
            "status": super::probes::status_word(ok, degraded),
            "targets": entries,
            "timestamp": crate::rfc3339::now(),
        });
        if self.is_draining() {
            body["draining"] = json!(true);
        }
        (ok, body)
    }

    /// Shutdown began: every target's readiness answers 503 from now on.
    pub fn set_draining(&self) {
        for t in self.targets.iter() {
            t.health.set_draining();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.targets[0].health.is_draining()
    }

    /// "Starting (stage …): why" of the first required target that has not started (else of the first target).
    pub fn starting(&self) -> String {
        self.targets
            .iter()
            .find(|t| t.required && !t.health.is_started())
            .unwrap_or(&self.targets[0])
            .health
            .starting()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::health;
    use super::super::{MONGODB, Observation, SSH_TUNNEL};
    use super::*;
    use crate::error::ErrorClass;

    fn started() -> Health {
        let h = health();
        for check in [SSH_TUNNEL, MONGODB] {
            for _ in 0..2 {
                h.record(
                    check,
                    Observation::Healthy(std::time::Duration::from_millis(1)),
                );
            }
        }
        h.set_stage(super::super::Stage::Ready);
        h
    }

    #[test]
    fn readiness_follows_the_required_targets_and_names_each() {
        let (prod, staging) = (started(), started());
        staging.record(SSH_TUNNEL, Observation::Lost(ErrorClass::SshUnreachable));
        let target = |name: &str, required, health: &Health| TargetHealth {
            name: name.into(),
            required,
            health: health.clone(),
        };
        let optional = Probes::new(
            vec![
                target("prod", true, &prod),
                target("staging", false, &staging),
            ],
            true,
        );
        let (ok, body) = optional.report(Probe::Readiness, false);
        assert!(ok, "{body}");
        assert_eq!(body["targets"]["staging"]["status"], "unhealthy");
        assert_eq!(body["targets"]["staging"]["required"], false);
        assert_eq!(body["targets"]["prod"]["status"], "healthy");

        let both = Probes::new(
            vec![
                target("prod", true, &prod),
                target("staging", true, &staging),
            ],
            true,
        );
        let (ok, body) = both.report(Probe::Readiness, false);
        assert!(!ok, "{body}");
        assert_eq!(body["status"], "unhealthy");

        both.set_draining();
        assert!(prod.is_draining() && staging.is_draining());
        assert!(!both.report(Probe::Readiness, false).0);
    }
}
