//! The MongoDB driver's metrics (`nexus_mongo_*`).

use prometheus::{Histogram, IntCounter, IntGaugeVec, Registry};

use crate::metrics::{latency_histogram, opts, register};

/// The MongoDB driver.
#[derive(Clone)]
pub struct MongoMetrics {
    /// `nexus_mongo_ping_duration_seconds`: round trip of the health `ping`.
    pub ping_duration: Histogram,
    /// `nexus_mongo_servers{type}`: the servers the driver sees, by type (from its topology events).
    pub servers: IntGaugeVec,
    /// `nexus_mongo_primary_changes_total`: times the driver saw a different primary (elections, failovers).
    pub primary_changes: IntCounter,
}

/// The `type` label values of `nexus_mongo_servers`.
pub const SERVER_TYPES: [&str; 7] = [
    "primary",
    "secondary",
    "arbiter",
    "standalone",
    "mongos",
    "other",
    "unknown",
];

impl MongoMetrics {
    pub(crate) fn register(r: &Registry) -> Self {
        let servers = register(
            r,
            IntGaugeVec::new(
                opts(
                    "mongo_servers",
                    "MongoDB servers the driver sees, by type (primary, secondary, arbiter, standalone, mongos, \
                     other, unknown).",
                ),
                &["type"],
            )
            .expect("valid metric"),
        );
        for t in SERVER_TYPES {
            servers.with_label_values(&[t]);
        }
        Self {
            ping_duration: latency_histogram(
                r,
                "mongo_ping_duration_seconds",
                "Round trip of the MongoDB health ping through the tunnel.",
            ),
            servers,
            primary_changes: register(
                r,
                IntCounter::with_opts(opts(
                    "mongo_primary_changes_total",
                    "Times the driver saw a different replica-set primary (elections, failovers).",
                ))
                .expect("valid metric"),
            ),
        }
    }
}
