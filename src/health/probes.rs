//! Probe bodies (`/health`, `/ready`, `/startup`, their `?verbose` form) and "why unavailable", the sentence
//! tool errors carry. Bodies hold sanitized class summaries only.

use serde_json::{Value, json};

use super::{Health, ReadinessPolicy, Verdict, lock};
use crate::error::ErrorClass;

/// Which probe a body is for.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    Liveness,
    Readiness,
    Startup,
}

impl Health {
    /// Why tool calls cannot run right now: each unhealthy dependency, explained; `None` when all are healthy.
    pub fn unavailable(&self) -> Option<String> {
        let reasons: Vec<String> = self
            .inner
            .checks
            .iter()
            .filter_map(|c| {
                let status = lock(&c.status).clone();
                if status.healthy {
                    return None;
                }
                Some(match c.explainer.get() {
                    Some(explain) => explain(&status),
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

    /// The probe's verdict and its JSON body. `verbose` adds, for each unhealthy check, the sentence tool errors
    /// use (host names and retry state; never a secret).
    pub fn report_verbose(&self, probe: Probe) -> (bool, Value) {
        let (ok, mut body) = self.report(probe);
        for c in &self.inner.checks {
            let status = lock(&c.status).clone();
            if let (false, Some(explain)) = (status.healthy, c.explainer.get()) {
                body["checks"][c.name]["detail"] = json!(explain(&status));
            }
            if let (Some(details), Some(entry)) =
                (c.details.get(), body["checks"][c.name].as_object_mut())
            {
                entry.extend(details());
            }
        }
        if !self.is_started()
            && let Some(why) = lock(&self.inner.startup_failure).clone()
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
            .map(|c| (c.name.to_string(), lock(&c.status).json()))
            .collect();
        let mut body = json!({
            "status": status_word(ok, degraded),
            "stage": self.stage().as_str(),
            "checks": checks,
            "timestamp": crate::rfc3339::now(),
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

/// A body's `status`: `healthy`, `degraded` (ready only by the fleet policy) or `unhealthy`.
pub(super) fn status_word(ok: bool, degraded: bool) -> &'static str {
    match (ok, degraded) {
        (true, true) => "degraded",
        (true, false) => "healthy",
        (false, _) => "unhealthy",
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MS, health};
    use super::super::{MONGODB, Observation, SSH_TUNNEL};
    use super::*;

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
            Box::new(|_| "SSH tunnel reconnecting: attempt 2".into()),
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
