//! What the user typed, type-checked by serde: every key of `config/default.toml`, plus the optional ones.
//! Unknown keys are errors (`deny_unknown_fields`). Nothing here is validated beyond its type; `validate` builds
//! each component's own config type from these.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::health::ReadinessPolicy;
use crate::http::Transport;
use crate::logging::LogFormat;
use crate::tunnel::{HostKeyPolicy, TunnelMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) server: RawServer,
    pub(super) ssh: RawSsh,
    pub(super) tunnel: RawTunnel,
    pub(super) mongo: RawMongo,
    pub(super) mcp: RawMcp,
    pub(super) log: RawLog,
    pub(super) health: RawHealth,
    /// `[targets.<name>]`: named targets (read again, each over the compiled-in defaults, by the loader).
    #[serde(default)]
    pub(super) targets: BTreeMap<String, RawTarget>,
}

/// A `[targets.<name>]` table as typed. Its sections are kept as values here: the loader layers each over the
/// compiled-in defaults (and `[mcp]` over the top-level one) and reads it as the top-level section would be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    #[serde(default = "required_by_default")]
    pub(super) required: bool,
    #[serde(default)]
    pub(super) ssh: Option<config::Map<String, config::Value>>,
    #[serde(default)]
    pub(super) tunnel: Option<config::Map<String, config::Value>>,
    #[serde(default)]
    pub(super) mongo: Option<config::Map<String, config::Value>>,
    #[serde(default)]
    pub(super) mcp: Option<config::Map<String, config::Value>>,
}

fn required_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) readiness: ReadinessPolicy,
    #[serde(with = "humantime_serde")]
    pub(super) unready_window: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) peer_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) transport: Transport,
    pub(super) allowed_hosts: Vec<String>,
    pub(super) allowed_origins: Vec<String>,
    #[serde(default)]
    pub(super) auth_tokens_file: Option<PathBuf>,
    pub(super) metrics_require_auth: bool,
    pub(super) body_limit: ByteSize,
    pub(super) max_in_flight: usize,
    pub(super) max_connections: usize,
    #[serde(with = "humantime_serde")]
    pub(super) header_read_timeout: Duration,
    #[serde(default, with = "humantime_serde")]
    pub(super) body_read_timeout: Option<Duration>,
    pub(super) max_sessions: usize,
    pub(super) max_sessions_per_caller: usize,
    #[serde(with = "humantime_serde")]
    pub(super) session_idle_timeout: Duration,
    pub(super) rate_limit: f64,
    pub(super) rate_burst: u32,
    #[serde(with = "humantime_serde")]
    pub(super) request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) shutdown_grace: Duration,
    pub(super) audit_log: String,
    #[serde(default)]
    pub(super) oauth: Option<RawOAuth>,
    pub(super) sessions: RawSessions,
}

/// Where legacy MCP sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SessionStoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessions {
    pub(super) store: SessionStoreKind,
    #[serde(default)]
    pub(super) redis_url: Option<String>,
    #[serde(default)]
    pub(super) redis_url_file: Option<PathBuf>,
    pub(super) key_prefix: String,
    #[serde(with = "humantime_serde")]
    pub(super) connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) command_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    pub(super) issuer: String,
    pub(super) audience: String,
    #[serde(default)]
    pub(super) jwks_url: Option<String>,
    #[serde(default = "default_oauth_algorithms")]
    pub(super) algorithms: Vec<String>,
    #[serde(default = "default_oauth_leeway", with = "humantime_serde")]
    pub(super) leeway: Duration,
    #[serde(default)]
    pub(super) scopes: RawScopes,
}

fn default_oauth_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
        .map(String::from)
        .to_vec()
}

fn default_oauth_leeway() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawScopes {
    pub(super) read: String,
    pub(super) write: String,
    pub(super) admin: String,
}

impl Default for RawScopes {
    fn default() -> Self {
        Self {
            read: "mongodb:read".into(),
            write: "mongodb:write".into(),
            admin: "mongodb:admin".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsh {
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) config_file: Option<String>,
    #[serde(default)]
    pub(super) host: Option<String>,
    pub(super) port: u16,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) private_key: Option<PathBuf>,
    #[serde(default)]
    pub(super) certificate: Option<PathBuf>,
    #[serde(default)]
    pub(super) private_key_passphrase: Option<String>,
    #[serde(default)]
    pub(super) private_key_passphrase_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) password: Option<String>,
    #[serde(default)]
    pub(super) password_file: Option<PathBuf>,
    pub(super) agent: bool,
    #[serde(default)]
    pub(super) known_hosts: Option<PathBuf>,
    pub(super) host_key_policy: HostKeyPolicy,
    pub(super) jump: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub(super) connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) keepalive_interval: Duration,
    pub(super) keepalive_max: usize,
    pub(super) pty_keeper: bool,
    #[serde(with = "humantime_serde")]
    pub(super) reconnect_min_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) reconnect_max_delay: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTunnel {
    pub(super) mode: TunnelMode,
    pub(super) local_listen: String,
    #[serde(default)]
    pub(super) remote_host: Option<String>,
    #[serde(default)]
    pub(super) remote_port: Option<u16>,
    pub(super) max_connections: usize,
    #[serde(default)]
    pub(super) insecure_public_forward: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMongo {
    #[serde(default)]
    pub(super) uri: Option<String>,
    #[serde(default)]
    pub(super) uri_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub(super) server_selection_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) max_time: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) health_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcp {
    pub(super) read_only: bool,
    pub(super) allowed_databases: Vec<String>,
    pub(super) denied_databases: Vec<String>,
    pub(super) allowed_collections: Vec<String>,
    pub(super) default_limit: u64,
    pub(super) max_documents: u64,
    pub(super) max_bytes: ByteSize,
    pub(super) block_server_side_js: bool,
    pub(super) confirm_destructive: bool,
    pub(super) confirm_update_above: u64,
    #[serde(default)]
    pub(super) confirm_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: LogFormat,
    pub(super) level: String,
}
