//! The driver's validated configuration. Built by the config loader, which sits above.

use std::time::Duration;

use serde::Serialize;

use super::uri::MongoUri;

/// The MongoDB driver.
#[derive(Clone, Debug, Serialize)]
pub struct MongoConfig {
    /// The URI as seen from the bastion.
    pub uri: MongoUri,
    #[serde(with = "humantime_serde")]
    pub server_selection_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_time: Duration,
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Healthy needs a writable primary (tools may write: `mcp.read_only = false`); otherwise a server matching
    /// the URI's read preference.
    pub needs_primary: bool,
}
