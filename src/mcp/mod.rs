//! The MCP server: tools over MongoDB, guarded and rendered for LLM clients.
//!
//! **Architecture invariant:** this module never imports `tunnel`; it sees dependency state through `health`
//! and MongoDB through `mongo`.

pub mod args;
mod confirm;
mod dispatch;
pub mod ejson;
pub mod guard;
pub mod namespace;
mod registry;
pub mod render;
mod requests;
mod resources;
pub mod scopes;
pub mod server;
pub mod stdio;
pub mod tools;

pub use server::NexusServer;
