//! The Prometheus registry, the helpers components register their families with, and rendering. Each component
//! defines its own metrics struct beside the code that updates it (`tunnel::metrics`, `mongo::metrics`,
//! `mcp::metrics`, `http::metrics`, `health::metrics`); [`Metrics`] holds the process's and registers each
//! target's ([`TargetMetrics`]).
//!
//! Names and help texts are a contract (dashboards, alert rules and the deployment consistency test read them).
//! Every family appears in `/metrics` from the start: a labelled family's values are a [`label_set!`] enum, whose
//! `ALL` pre-creates them, so the declared and the used label values cannot drift.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::health::metrics::{HealthMetrics, StartupMetrics};
use crate::http::metrics::HttpMetrics;
use crate::mcp::metrics::McpMetrics;
use crate::mongo::metrics::MongoMetrics;
use crate::tunnel::metrics::TunnelMetrics;

/// Prefix of every metric.
const PREFIX: &str = "nexus";

/// Latency buckets in seconds, dense below the seed's 100 ms target.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// All metric families, grouped by component: the process's (MCP, HTTP) and each target's ([`TargetMetrics`]).
pub struct Metrics {
    registry: Registry,
    /// Named targets' registries: their families carry `target="<name>"`.
    targets: Mutex<Vec<Registry>>,
    pub mcp: McpMetrics,
    pub http: HttpMetrics,
}

/// One MongoDB target's families: its startup, health, tunnel and driver.
#[derive(Clone)]
pub struct TargetMetrics {
    pub startup: StartupMetrics,
    pub health: HealthMetrics,
    pub tunnel: TunnelMetrics,
    pub mongo: MongoMetrics,
}

impl TargetMetrics {
    fn register(registry: &Registry) -> Self {
        Self {
            startup: StartupMetrics::register(registry),
            health: HealthMetrics::register(registry),
            tunnel: TunnelMetrics::register(registry),
            mongo: MongoMetrics::register(registry),
        }
    }
}

impl Metrics {
    /// Creates the registry and registers the process's families, for a configuration without named targets.
    ///
    /// # Panics
    /// Only on a programming error (a duplicate or invalid metric name), which the unit tests catch.
    pub fn new() -> Self {
        Self::for_targets(false)
    }

    /// As [`Metrics::new`]; `named`: the configuration names targets (tool calls are counted per target too).
    pub fn for_targets(named: bool) -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        let build_info = IntGaugeVec::new(
            opts(
                "build_info",
                "Build information of the running nexus-mcp binary; always 1.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        register(&registry, build_info);
        Self {
            targets: Mutex::new(Vec::new()),
            mcp: McpMetrics::register(&registry, named),
            http: HttpMetrics::register(&registry),
            registry,
        }
    }

    /// Registers a target's families: unlabelled for the one target of a configuration without `[targets.*]`
    /// (`name` None: the series are those of a single-database server), else labelled `target="<name>"`.
    ///
    /// # Panics
    /// When the same unlabelled or named target registers twice (a programming error).
    pub fn target(&self, name: Option<&str>) -> TargetMetrics {
        let Some(name) = name else {
            return TargetMetrics::register(&self.registry);
        };
        let labels = HashMap::from([("target".to_string(), name.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid label");
        let metrics = TargetMetrics::register(&registry);
        self.targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(registry);
        metrics
    }

    /// The Prometheus text exposition of every family; a family several targets have is one family with a
    /// series per target.
    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        for registry in self
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for family in registry.gather() {
                match families.iter_mut().find(|f| f.name() == family.name()) {
                    Some(known) => known
                        .mut_metric()
                        .extend(family.get_metric().iter().cloned()),
                    None => families.push(family),
                }
            }
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The values one label of a family takes.
pub trait Label: Copy + 'static {
    /// Every value, pre-created at registration.
    const ALL: &'static [Self];
    /// The label value as exported.
    fn as_str(self) -> &'static str;
}

/// Declares an enum of label values: `ALL` and `as_str` come from one list, so a value cannot be used without
/// being pre-created.
macro_rules! label_set {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }
        impl $crate::metrics::Label for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $label),+ }
            }
        }
    };
}
pub(crate) use label_set;

/// A counter family with one label whose values are the enum `L`.
#[derive(Clone)]
pub struct LabelledCounter<L> {
    family: IntCounterVec,
    _label: PhantomData<L>,
}

impl<L: Label> LabelledCounter<L> {
    /// Registers `nexus_<name>{<label>}` with every value of `L` at zero.
    pub(crate) fn register(registry: &Registry, name: &str, help: &str, label: &str) -> Self {
        let family = counter_vec(registry, name, help, &[label]);
        for value in L::ALL {
            family.with_label_values(&[value.as_str()]);
        }
        Self {
            family,
            _label: PhantomData,
        }
    }

    /// The counter of one label value.
    pub fn get(&self, value: L) -> IntCounter {
        self.family.with_label_values(&[value.as_str()])
    }

    /// Adds one to the counter of `value`.
    pub fn inc(&self, value: L) {
        self.get(value).inc();
    }
}

pub(crate) fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{PREFIX}_{name}"), help)
}

/// Registers a collector; names are static, so a failure is a programming error.
pub(crate) fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric registers once");
    c
}

/// A latency histogram in seconds.
pub(crate) fn latency_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(
        HistogramOpts::new(format!("{PREFIX}_{name}"), help).buckets(LATENCY_BUCKETS.to_vec()),
    )
    .expect("valid metric");
    register(registry, h)
}

/// A labelled latency histogram in seconds.
pub(crate) fn latency_histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(format!("{PREFIX}_{name}"), help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    register(registry, h)
}

pub(crate) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(opts(name, help), labels).expect("valid metric"),
    )
}

pub(crate) fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::with_opts(opts(name, help)).expect("valid metric"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_family_is_exposed_from_the_start() {
        let m = Metrics::new();
        let target = m.target(None);
        target
            .health
            .dependency_up
            .with_label_values(&["mongodb"])
            .set(0);
        let text = m.render();
        for name in [
            "nexus_build_info",
            "nexus_startup_stage",
            "nexus_dependency_up",
            "nexus_tunnel_up",
            "nexus_tunnel_reconnects_total",
            "nexus_tunnel_connect_duration_seconds",
            "nexus_tunnel_channels_active",
            "nexus_tunnel_bytes_total",
            "nexus_mongo_ping_duration_seconds",
            "nexus_mongo_servers",
            "nexus_mongo_primary_changes_total",
            "nexus_tunnel_channels_opened_total",
            "nexus_tunnel_connect_failures_total",
            "nexus_mcp_requests_total",
            "nexus_mcp_request_duration_seconds",
            "nexus_mcp_in_flight",
            "nexus_http_rejected_total",
            "nexus_http_connections",
            "nexus_http_sessions",
            "nexus_sessions_relayed_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("nexus_startup_stage{stage=\"tunnel\"} 1"));
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn named_targets_share_each_family_with_a_series_per_target() {
        let m = Metrics::new();
        let prod = m.target(Some("prod"));
        let staging = m.target(Some("staging"));
        prod.tunnel.up.set(1);
        staging.tunnel.reconnects.inc();
        staging
            .health
            .dependency_up
            .with_label_values(&["sshTunnel"])
            .set(0);
        let text = m.render();
        assert_eq!(
            text.matches("# TYPE nexus_tunnel_up gauge").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("nexus_tunnel_up{target=\"prod\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nexus_tunnel_up{target=\"staging\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("nexus_tunnel_reconnects_total{target=\"staging\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nexus_dependency_up{dependency=\"sshTunnel\",target=\"staging\"} 0"),
            "a family's own labels and the target's: {text}"
        );
        assert!(
            text.contains("nexus_mcp_in_flight 0"),
            "process families stay unlabelled"
        );
    }
}
