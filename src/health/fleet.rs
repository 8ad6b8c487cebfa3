//! Fleet readiness: what the peers report, and the loop that exchanges checks with them through a [`PeerBoard`]
//! (`app` supplies the shared store; this module knows no Redis).

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::{Health, lock};

/// What the other replicas report through the shared store (this replica excluded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// Replicas heard from within their entries' lifetime.
    pub replicas: usize,
    /// Check name → how many of them report it healthy.
    pub healthy: HashMap<String, usize>,
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

impl Health {
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

    /// Records what the peers report (`None`: unknown).
    fn set_peers(&self, peers: Option<Peers>) {
        *lock(&self.inner.peers) = peers;
    }

    /// Each check's name and whether it is healthy now, as published to peers.
    fn snapshot(&self) -> Vec<(&'static str, bool)> {
        self.inner
            .checks
            .iter()
            .map(|c| (c.name, lock(&c.status).healthy))
            .collect()
    }

    /// Resolves when a check flips (the peer exchange publishes at once).
    async fn flipped(&self) {
        self.inner.flipped.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{MS, WINDOW, peers, with_policy};
    use super::super::{MONGODB, Observation, Probe, ReadinessPolicy, SSH_TUNNEL, Stage, Verdict};
    use crate::error::ErrorClass;

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
