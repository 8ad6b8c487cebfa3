//! The MCP server's metrics (`nexus_mcp_*`).

use prometheus::{HistogramVec, IntCounterVec, IntGauge, Registry};

use crate::metrics::{Label, counter_vec, gauge, label_set, latency_histogram_vec};

/// The MCP server.
#[derive(Clone)]
pub struct McpMetrics {
    /// `nexus_mcp_requests_total{method}`: JSON-RPC requests handled, by MCP method.
    pub requests: IntCounterVec,
    /// `nexus_mcp_request_duration_seconds{method}`: time to answer, by MCP method.
    pub request_duration: HistogramVec,
    /// `nexus_mcp_tool_calls_total{tool,outcome}`: tool calls by outcome (ok, rejected, failed, unavailable,
    /// input_required).
    pub tool_calls: IntCounterVec,
    /// `nexus_mcp_in_flight`: MCP requests being handled right now.
    pub in_flight: IntGauge,
    /// Whether `tool_calls` has the `target` label.
    named: bool,
}

label_set! {
    /// An MCP method the server answers, as counted (`method` of `nexus_mcp_requests_total` and
    /// `nexus_mcp_request_duration_seconds`).
    pub enum Method {
        Initialize = "initialize",
        ToolsList = "tools/list",
        ToolsCall = "tools/call",
        ResourcesList = "resources/list",
        ResourcesRead = "resources/read",
    }
}

/// The `target` of a call that named no known target (an unknown `connectionId`, `list-connections`); target
/// names cannot contain parentheses.
pub const NO_TARGET: &str = "(none)";

impl McpMetrics {
    /// `named`: the configuration names targets, and `nexus_mcp_tool_calls_total` gets a `target` label.
    pub(crate) fn register(r: &Registry, named: bool) -> Self {
        let requests = counter_vec(
            r,
            "mcp_requests_total",
            "MCP JSON-RPC requests handled, by method.",
            &["method"],
        );
        let request_duration = latency_histogram_vec(
            r,
            "mcp_request_duration_seconds",
            "Time to answer an MCP request, by method (the seed's target: p95 and p99 under 100 ms).",
            &["method"],
        );
        for method in Method::ALL {
            requests.with_label_values(&[method.as_str()]);
            request_duration.with_label_values(&[method.as_str()]);
        }
        Self {
            requests,
            request_duration,
            tool_calls: counter_vec(
                r,
                "mcp_tool_calls_total",
                "MCP tool calls by tool and outcome: ok, rejected (a guard or bad argument), failed (MongoDB \
                 error), unavailable (a dependency is down), input_required (asked the user to confirm); with \
                 named targets, also by target.",
                if named {
                    &["tool", "outcome", "target"]
                } else {
                    &["tool", "outcome"]
                },
            ),
            named,
            in_flight: gauge(r, "mcp_in_flight", "MCP requests being handled right now."),
        }
    }
}

impl McpMetrics {
    /// The `nexus_mcp_tool_calls_total` series of one call (`target` is ignored without named targets).
    pub fn tool_call(&self, tool: &str, outcome: &str, target: &str) -> prometheus::IntCounter {
        if self.named {
            self.tool_calls.with_label_values(&[tool, outcome, target])
        } else {
            self.tool_calls.with_label_values(&[tool, outcome])
        }
    }
}
