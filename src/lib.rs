//! nexus-mcp: an MCP server for a MongoDB reachable only through an SSH bastion, in one process.
//!
//! ```text
//! MCP client ──HTTP /mcp or stdio──▶ nexus-mcp ──russh session──▶ bastion:22 ──direct-tcpip──▶ mongo:27017
//!                                      │  supervisor: tunnel → mongodb → mcp → ready
//!                                      └─ /health /ready /startup /metrics
//! ```
//!
//! # Layout
//! - [`config`]: the loader, above the components: layered sources → raw → validated [`config::Config`], which
//!   holds each component's own config type (`tunnel::TunnelConfig`, `mongo::MongoConfig`, `mcp::McpConfig`,
//!   `http::ServerConfig`, …; each lives beside its component, which never imports the loader).
//! - [`logging`]: the `[log]` settings and the tracing subscriber `main` installs.
//! - [`access`]: tool classes and what a caller's credentials grant.
//! - [`app`]: wires the components; owns shutdown. The only place that knows them all.
//! - [`supervisor`]: staged startup and the background dependency checks.
//! - [`tunnel`]: SSH session, host keys, auth, jump hosts, the fixed forward and the SOCKS5 route, reconnect
//!   loop. Knows nothing of MongoDB or MCP.
//! - [`mongo`]: the driver client over a route, startup check, health ping, the driver's view of the
//!   deployment. No MCP or SSH types.
//! - [`health`]: named checks with hysteresis, the check loop, startup latch and draining, probe bodies, the
//!   readiness policy.
//! - [`http`]: the axum router (probes, `/metrics`, `/mcp`).
//! - [`metrics`]: the registry and per-component metric families.
//! - [`error`]: the error classes users see.
//! - [`files`]: bounded reads of the files users point at.
//! - [`jsonrpc`]: JSON-RPC error answers for what is not a JSON-RPC message.
//! - [`deadline`]: a request deadline that pauses while a person answers.
//! - [`backoff`]: validated exponential backoff with jitter.
//! - [`probe`]: the `health` subcommand's tiny HTTP client.
//! - [`rfc3339`]: timestamps as text.
//! - [`secret`]: values that print as `***`.
//! - [`store`]: the fleet's shared store (Redis): legacy sessions and peer health.

#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod audit;
pub mod backoff;
pub mod config;
pub mod deadline;
pub mod error;
pub mod files;
pub mod health;
pub mod http;
pub mod jsonrpc;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod mongo;
pub mod probe;
pub mod rfc3339;
pub mod secret;
pub mod store;
pub mod supervisor;
pub mod tunnel;
