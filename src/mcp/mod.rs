//! The MCP server: tools over MongoDB, guarded and rendered for LLM clients.
//!
//! **Architecture invariant:** this module never imports `tunnel`; it sees dependency state through `health`
//! and MongoDB through `mongo`.

pub mod args;
mod config;
mod confirm;
mod connections;
mod dispatch;
pub mod ejson;
pub mod guard;
pub mod metrics;
pub mod namespace;
mod registry;
pub mod render;
mod requests;
mod resources;
pub mod scopes;
pub mod server;
pub mod stdio;
pub mod targets;
pub mod tools;

pub use config::McpConfig;
pub use server::NexusServer;

/// Creates every `nexus_mcp_*` series (each method, each tool × outcome) before `/metrics` first answers, so a
/// scrape during startup already sees them. [`NexusServer::new`] does the same; creating twice is harmless.
pub fn precreate_metrics(metrics: &metrics::McpMetrics, targets: &targets::Targets) {
    let names = server::names(targets);
    let tools = registry::router(!targets.any_writable(), names.as_deref()).list_all();
    requests::precreate(
        metrics,
        tools.iter().map(|t| t.name.as_ref()),
        &targets.metric_labels(),
    );
}
