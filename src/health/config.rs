//! `[health]`: the readiness policy's settings, built by the config loader (this module knows no parsing).

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
