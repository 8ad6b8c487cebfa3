//! The readiness policy: [`decide`] (strict, or fleet — relative to the peers' published checks, with a bounded
//! window) as a pure function, and [`Health::readiness`], which feeds it this replica's state.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Health, Peers, ReadinessPolicy, lock};

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

    pub(super) fn code(&self) -> u8 {
        match self {
            Self::Ready => 0,
            Self::Degraded { .. } => 1,
            Self::NotReady(_) => 2,
        }
    }

    /// The sentence probe bodies carry under the fleet policy.
    pub(super) fn reason(&self, window: Duration) -> String {
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

impl Health {
    /// Whether `/ready` answers 200 now.
    pub fn is_ready(&self) -> bool {
        self.readiness().ready()
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

    /// Starts (or ends) the time this replica has been less than fully healthy, counted from startup on.
    pub(super) fn track_unhealthy_since(&self) {
        let healthy = self.dependencies_healthy();
        let mut since = lock(&self.inner.unhealthy_since);
        match (healthy, *since) {
            (true, _) => *since = None,
            (false, None) if self.is_started() => *since = Some(Instant::now()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{WINDOW, peers};
    use super::super::{MONGODB, SSH_TUNNEL};
    use super::*;

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

    /// The fleet policy, case by case (started, not draining): what this replica has lost, for how long, and
    /// what the peers say.
    #[test]
    fn fleet_decision_table() {
        use NotReady::{PeerHealthy, Window};
        let late = Duration::from_secs(3600);
        let soon = Duration::from_secs(5);
        let none_healthy = peers(2, &[]);
        let tunnel_elsewhere = peers(2, &[(SSH_TUNNEL, 1)]);
        let mongo_elsewhere = peers(2, &[(MONGODB, 2)]);
        #[rustfmt::skip]
        let table: [(&[&'static str], Duration, Option<&Peers>, Verdict); 10] = [
            (&[], soon, None, Verdict::Ready),
            (&[], late, Some(&tunnel_elsewhere), Verdict::Ready),
            (&[SSH_TUNNEL], soon, None, Verdict::NotReady(Window { left: WINDOW - soon })),
            (&[SSH_TUNNEL], late, None, Verdict::Degraded { checks: vec![SSH_TUNNEL] }),
            (&[SSH_TUNNEL], soon, Some(&none_healthy), Verdict::NotReady(Window { left: WINDOW - soon })),
            (&[SSH_TUNNEL], late, Some(&none_healthy), Verdict::Degraded { checks: vec![SSH_TUNNEL] }),
            (&[SSH_TUNNEL], late, Some(&tunnel_elsewhere), Verdict::NotReady(PeerHealthy { check: SSH_TUNNEL, peers: 1 })),
            (&[SSH_TUNNEL], late, Some(&mongo_elsewhere), Verdict::Degraded { checks: vec![SSH_TUNNEL] }),
            (&[SSH_TUNNEL, MONGODB], late, Some(&mongo_elsewhere), Verdict::NotReady(PeerHealthy { check: MONGODB, peers: 2 })),
            (&[SSH_TUNNEL, MONGODB], WINDOW, None, Verdict::Degraded { checks: vec![SSH_TUNNEL, MONGODB] }),
        ];
        for (unhealthy, for_, known, expected) in table {
            let verdict = fleet(unhealthy, for_, known);
            assert_eq!(
                verdict, expected,
                "{unhealthy:?} for {for_:?}, peers {known:?}"
            );
            assert_eq!(verdict.ready(), !matches!(expected, Verdict::NotReady(_)));
        }
    }
}
