//! The HTTP server's validated configuration (listen address, edge limits, authentication, sessions). Built by
//! the config loader, which sits above.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::oauth::OAuthConfig;
use crate::audit::AuditTarget;
use crate::store::RedisConfig;

/// The MCP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Streamable HTTP at `/mcp` on `server.listen`.
    Http,
    /// MCP on stdin/stdout (Claude Desktop, Cursor); logs on stderr.
    Stdio,
}

/// The HTTP server and MCP transport.
#[derive(Clone, Debug, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub transport: Transport,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub auth_tokens_file: Option<PathBuf>,
    pub metrics_require_auth: bool,
    pub body_limit: ByteSize,
    pub max_in_flight: usize,
    /// Open HTTP connections (a few more are accepted for the probes only).
    pub max_connections: usize,
    /// Time for a request head to arrive (for a new connection, counted from the accept).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time for a `/mcp` request body to arrive; less than `request_timeout` (default: 10 s, or half of it).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Legacy MCP sessions open at once, overall and per caller.
    pub max_sessions: usize,
    pub max_sessions_per_caller: usize,
    /// A legacy session without activity for this long is closed; more than `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// Requests per second per caller; 0 disables rate limiting.
    pub rate_limit: f64,
    pub rate_burst: u32,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    pub audit_log: AuditTarget,
    /// `--insecure-no-auth`: serve a non-loopback address without tokens (warned at every start).
    pub insecure_no_auth: bool,
    /// `[server.oauth]`: access tokens from an identity provider, beside (or instead of) the tokens file.
    pub oauth: Option<OAuthConfig>,
    /// `[server.sessions] store = "redis"`: legacy sessions (and the fleet's peer health) in a shared Redis;
    /// `None`: sessions in this process's memory.
    pub session_store: Option<RedisConfig>,
}
