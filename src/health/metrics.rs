//! The health module's metrics: the startup stage (`nexus_startup_stage`), each dependency as readiness sees it
//! (`nexus_dependency_up`) and the fleet policy's `nexus_degraded`.

use prometheus::{IntGauge, IntGaugeVec, Registry};

use crate::metrics::{gauge, opts, register};

/// Startup progress.
#[derive(Clone)]
pub struct StartupMetrics {
    /// `nexus_startup_stage{stage}`: 1 for the current stage, 0 for the others (a state set).
    stage: IntGaugeVec,
}

/// The stage names, in order.
pub const STAGES: [&str; 4] = ["tunnel", "mongodb", "mcp", "ready"];

impl StartupMetrics {
    pub(crate) fn register(r: &Registry) -> Self {
        let stage = register(
            r,
            IntGaugeVec::new(
                opts(
                    "startup_stage",
                    "Startup stage the process is in: 1 for the current stage (tunnel, mongodb, mcp, ready), 0 for the others.",
                ),
                &["stage"],
            )
            .expect("valid metric"),
        );
        let m = Self { stage };
        m.set(STAGES[0]);
        m
    }

    /// Marks `current` as the stage in progress.
    pub fn set(&self, current: &str) {
        for s in STAGES {
            self.stage
                .with_label_values(&[s])
                .set(i64::from(s == current));
        }
    }
}

/// Dependency health as the readiness probe sees it.
#[derive(Clone)]
pub struct HealthMetrics {
    /// `nexus_dependency_up{dependency}`: 1 healthy, 0 unhealthy.
    pub dependency_up: IntGaugeVec,
    /// `nexus_degraded`: 1 while ready only by the fleet policy (a dependency lost on every replica).
    pub degraded: IntGauge,
}

impl HealthMetrics {
    pub(crate) fn register(r: &Registry) -> Self {
        let dependency_up = register(
            r,
            IntGaugeVec::new(
                opts(
                    "dependency_up",
                    "Whether a required dependency (sshTunnel, mongodb) is healthy as /ready sees it: 1 healthy, 0 not.",
                ),
                &["dependency"],
            )
            .expect("valid metric"),
        );
        let degraded = gauge(
            r,
            "degraded",
            "1 while /ready is 200 with status degraded: under health.readiness = fleet, a dependency is unhealthy \
             here and on every peer that reports (a shared outage), past health.unready_window; tool calls answer \
             with the explained error meanwhile.",
        );
        Self {
            dependency_up,
            degraded,
        }
    }
}
