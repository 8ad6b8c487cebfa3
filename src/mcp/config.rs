//! The MCP tools' validated configuration: guards, read limits, confirmations. Built by the config loader, which
//! sits above.

use bytesize::ByteSize;
use serde::Serialize;

use crate::secret::Secret;

/// The MCP tools and their guards.
#[derive(Clone, Debug, Serialize)]
pub struct McpConfig {
    pub read_only: bool,
    pub allowed_databases: Vec<String>,
    pub denied_databases: Vec<String>,
    pub allowed_collections: Vec<String>,
    pub default_limit: u64,
    pub max_documents: u64,
    pub max_bytes: ByteSize,
    pub block_server_side_js: bool,
    pub confirm_destructive: bool,
    /// `update-many` asks first when more documents than this match (an empty filter always asks).
    pub confirm_update_above: u64,
    /// `mcp.confirm_key_file`: seals stateless confirmations with a key every replica shares (else one per process).
    pub confirm_key: Option<Secret>,
}

#[cfg(test)]
impl McpConfig {
    /// The shipped `[mcp]` defaults, written out for unit tests (the loader's test
    /// `the_written_out_mcp_defaults_are_the_shipped_ones` keeps them equal to `config/default.toml`).
    pub(crate) fn shipped_defaults() -> Self {
        Self {
            read_only: true,
            allowed_databases: Vec::new(),
            denied_databases: Vec::new(),
            allowed_collections: Vec::new(),
            default_limit: 10,
            max_documents: 100,
            max_bytes: ByteSize::mib(1),
            block_server_side_js: true,
            confirm_destructive: true,
            confirm_update_above: 1,
            confirm_key: None,
        }
    }
}
