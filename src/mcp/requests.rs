//! The MCP server's request metrics: [`Timed`] (counts and times one request), and [`precreate`], which
//! creates every series these labels and the tool call outcomes can take before the first request, so declared
//! and used labels cannot drift and dashboards see zeros rather than gaps.

use std::time::Instant;

use super::dispatch::CallOutcome;
use super::metrics::McpMetrics;
pub use super::metrics::Method;
#[cfg(test)]
use super::metrics::NO_TARGET;
use crate::metrics::Label as _;

/// Creates the series of every tool in `tools` with every [`CallOutcome`] label, for each of `targets` (those of
/// every [`Method`] exist from registration).
pub fn precreate<'a>(
    metrics: &McpMetrics,
    tools: impl IntoIterator<Item = &'a str>,
    targets: &[&str],
) {
    for tool in tools {
        for outcome in CallOutcome::LABELS {
            for target in targets {
                metrics.tool_call(tool, outcome, target);
            }
        }
    }
}

/// Counts and times one MCP request (and holds its place in `nexus_mcp_in_flight`) until dropped.
pub struct Timed<'a> {
    metrics: &'a McpMetrics,
    method: Method,
    started: Instant,
}

impl<'a> Timed<'a> {
    pub fn start(metrics: &'a McpMetrics, method: Method) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            method,
            started: Instant::now(),
        }
    }
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        let method = self.method.as_str();
        self.metrics.in_flight.dec();
        self.metrics.requests.with_label_values(&[method]).inc();
        self.metrics
            .request_duration
            .with_label_values(&[method])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn every_method_and_tool_outcome_exists_before_the_first_request() {
        let metrics = Metrics::new();
        precreate(&metrics.mcp, ["find"], &[NO_TARGET]);
        let text = metrics.render();
        for method in Method::ALL {
            assert!(
                text.contains(&format!(
                    "nexus_mcp_requests_total{{method=\"{}\"}} 0",
                    method.as_str()
                )),
                "{method:?} missing:\n{text}"
            );
        }
        for outcome in CallOutcome::LABELS {
            assert!(
                text.contains(&format!(
                    "nexus_mcp_tool_calls_total{{outcome=\"{outcome}\",tool=\"find\"}} 0"
                )),
                "{outcome} missing:\n{text}"
            );
        }
    }

    #[test]
    fn a_timed_request_counts_under_its_own_label() {
        let metrics = Metrics::new();
        precreate(&metrics.mcp, [], &[NO_TARGET]);
        drop(Timed::start(&metrics.mcp, Method::ResourcesList));
        assert_eq!(
            metrics
                .mcp
                .requests
                .with_label_values(&["resources/list"])
                .get(),
            1
        );
        assert_eq!(metrics.mcp.in_flight.get(), 0);
    }
}
