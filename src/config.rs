//! Configuration: layered sources → [`Raw`] (only what the user typed, type-checked) → validated [`Config`], which
//! holds one plain sub-config per component.
//!
//! Layers, later wins: `config/default.toml` (compiled in: the single source of every default) → `--config FILE`
//! → env `NEXUS_<SECTION>__<KEY>` → the seed's env names (`MCP_PORT`, `SSH_HOST`/`SSH_TUNNEL_HOST`, …) → CLI
//! flags. Unknown keys and invalid values are errors that name the key ([`ConfigError`]; the binary exits 64).
//! Secrets are [`Secret`]s: their `Debug` and `Serialize` print `***`.
//!
//! This module reads files (secrets, `*_file` keys) but opens no sockets and knows no component's behaviour.

mod ssh_config;
mod ssh_resolve;

pub use crate::health::{HealthConfig, ReadinessPolicy};
pub use crate::http::oauth::OAuthConfig;
pub use crate::secret::Secret;
pub use crate::store::RedisConfig;
pub use ssh_resolve::SshSetting;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::mongo::uri::MongoUri;

/// The shipped defaults, compiled in so the binary needs no file to start.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the structured environment variables (`NEXUS_SSH__HOST`).
const ENV_PREFIX: &str = "NEXUS_";
/// Separates section and key in structured environment variables.
const ENV_SEPARATOR: &str = "__";

/// A configuration error. It names the key (or file) at fault; the binary exits 64 (`EX_USAGE`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key is missing or has an invalid value.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// Where the configuration comes from. Tests build this directly instead of touching the process environment.
#[derive(Debug, Default)]
pub struct Sources {
    /// `--config FILE`.
    pub file: Option<PathBuf>,
    /// The process environment (only `NEXUS_*` and the seed names are read).
    pub env: HashMap<String, String>,
    /// `--transport` on the command line.
    pub transport: Option<Transport>,
    /// `--listen` on the command line.
    pub listen: Option<String>,
    /// `--insecure-no-auth` on the command line.
    pub insecure_no_auth: bool,
}

impl Sources {
    /// The process environment plus the given file and flags.
    pub fn from_process(
        file: Option<PathBuf>,
        transport: Option<Transport>,
        listen: Option<String>,
    ) -> Self {
        Self {
            file,
            env: std::env::vars().collect(),
            transport,
            listen,
            insecure_no_auth: false,
        }
    }
}

/// The MCP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Streamable HTTP at `/mcp` on `server.listen`.
    Http,
    /// MCP on stdin/stdout (Claude Desktop, Cursor); logs on stderr.
    Stdio,
}

/// How an unknown or changed bastion host key is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown or changed key: refuse (log the offered key's fingerprint). The default.
    Strict,
    /// Unknown key: learn it into known_hosts. Changed key: refuse.
    AcceptNew,
    /// Accept any key, with a loud warning at every connect. Never in production.
    InsecureAcceptAny,
}

/// How the driver reaches MongoDB through the bastion (`tunnel.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelMode {
    /// The SOCKS route when the URI needs every member (several hosts, `replicaSet=`, `mongodb+srv://`, TLS);
    /// else the fixed forward.
    Auto,
    /// One fixed local forward to one host (the driver connects to it directly).
    Forward,
    /// A SOCKS5 route whose every connection is a channel to the host *name* the driver asks for.
    Socks,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    Json,
    Pretty,
}

// ---------------------------------------------------------------------------------------------------------------
// Raw: what the user typed, type-checked by serde. Every key of config/default.toml, plus the optional ones.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    server: RawServer,
    ssh: RawSsh,
    tunnel: RawTunnel,
    mongo: RawMongo,
    mcp: RawMcp,
    log: RawLog,
    health: RawHealth,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    readiness: ReadinessPolicy,
    #[serde(with = "humantime_serde")]
    unready_window: Duration,
    #[serde(with = "humantime_serde")]
    peer_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    transport: Transport,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    #[serde(default)]
    auth_tokens_file: Option<PathBuf>,
    metrics_require_auth: bool,
    body_limit: ByteSize,
    max_in_flight: usize,
    max_connections: usize,
    #[serde(with = "humantime_serde")]
    header_read_timeout: Duration,
    #[serde(default, with = "humantime_serde")]
    body_read_timeout: Option<Duration>,
    max_sessions: usize,
    max_sessions_per_caller: usize,
    #[serde(with = "humantime_serde")]
    session_idle_timeout: Duration,
    rate_limit: f64,
    rate_burst: u32,
    #[serde(with = "humantime_serde")]
    request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    shutdown_grace: Duration,
    audit_log: String,
    #[serde(default)]
    oauth: Option<RawOAuth>,
    sessions: RawSessions,
}

/// Where legacy MCP sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SessionStoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    store: SessionStoreKind,
    #[serde(default)]
    redis_url: Option<String>,
    #[serde(default)]
    redis_url_file: Option<PathBuf>,
    key_prefix: String,
    #[serde(with = "humantime_serde")]
    connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    command_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    issuer: String,
    audience: String,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default = "default_oauth_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_oauth_leeway", with = "humantime_serde")]
    leeway: Duration,
    #[serde(default)]
    scopes: RawScopes,
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
struct RawScopes {
    read: String,
    write: String,
    admin: String,
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
struct RawSsh {
    enabled: bool,
    #[serde(default)]
    config_file: Option<String>,
    #[serde(default)]
    host: Option<String>,
    port: u16,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    private_key: Option<PathBuf>,
    #[serde(default)]
    certificate: Option<PathBuf>,
    #[serde(default)]
    private_key_passphrase: Option<String>,
    #[serde(default)]
    private_key_passphrase_file: Option<PathBuf>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    agent: bool,
    #[serde(default)]
    known_hosts: Option<PathBuf>,
    host_key_policy: HostKeyPolicy,
    jump: Vec<String>,
    #[serde(with = "humantime_serde")]
    connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    keepalive_interval: Duration,
    keepalive_max: usize,
    pty_keeper: bool,
    #[serde(with = "humantime_serde")]
    reconnect_min_delay: Duration,
    #[serde(with = "humantime_serde")]
    reconnect_max_delay: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    mode: TunnelMode,
    local_listen: String,
    #[serde(default)]
    remote_host: Option<String>,
    #[serde(default)]
    remote_port: Option<u16>,
    max_connections: usize,
    #[serde(default)]
    insecure_public_forward: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMongo {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    uri_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    server_selection_timeout: Duration,
    #[serde(with = "humantime_serde")]
    max_time: Duration,
    #[serde(with = "humantime_serde")]
    health_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcp {
    read_only: bool,
    allowed_databases: Vec<String>,
    denied_databases: Vec<String>,
    allowed_collections: Vec<String>,
    default_limit: u64,
    max_documents: u64,
    max_bytes: ByteSize,
    block_server_side_js: bool,
    confirm_destructive: bool,
    confirm_update_above: u64,
    #[serde(default)]
    confirm_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    level: String,
}

// ---------------------------------------------------------------------------------------------------------------
// Validated: per-component configs. No `Default`: every value comes through `load`.

/// The whole validated configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    /// `None` when `ssh.enabled = false`: MongoDB is reached directly.
    pub tunnel: Option<TunnelConfig>,
    pub mongo: MongoConfig,
    pub mcp: McpConfig,
    pub log: LogConfig,
    /// The resolved `[ssh]` settings and where each came from (nexus-mcp's config, ssh_config, defaults): printed by
    /// `check`. Empty when `ssh.enabled = false`.
    pub ssh_settings: Vec<SshSetting>,
    pub health: HealthConfig,
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

/// Where audit lines go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditTarget {
    Off,
    Stderr,
    File(PathBuf),
}

/// One SSH hop: the bastion or a jump host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshEndpoint {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for SshEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Credentials, tried in this order: agent, key files, password; certificates first wherever a key has one.
#[derive(Clone, Debug, Serialize)]
pub struct SshAuth {
    pub agent: bool,
    /// With the agent, offer only its identities matching a configured key or certificate (`IdentitiesOnly`).
    pub identities_only: bool,
    /// Private key files, tried in order (`ssh.private_key`, or the ssh_config's IdentityFile entries).
    pub private_keys: Vec<PathBuf>,
    /// User certificates (`ssh.certificate`, CertificateFile), each presented with the key — file or agent — it
    /// certifies. A key file's `<key>-cert.pub` is used too, as OpenSSH does.
    pub certificates: Vec<PathBuf>,
    /// Decrypts the key files.
    pub private_key_passphrase: Option<Secret>,
    pub password: Option<Secret>,
}

/// The SSH tunnel: how to reach the bastion and what to forward.
#[derive(Clone, Debug, Serialize)]
pub struct TunnelConfig {
    /// Jump hosts in order (ProxyJump), then the bastion last.
    pub jumps: Vec<SshEndpoint>,
    pub bastion: SshEndpoint,
    pub auth: SshAuth,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
    /// Open a PTY session so the bastion's sshd sends with TCP_NODELAY (see `tunnel::keeper`).
    pub pty_keeper: bool,
    #[serde(with = "humantime_serde")]
    pub reconnect_min_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max_delay: Duration,
    pub local_listen: SocketAddr,
    /// `local_listen` may be a non-loopback address (an explicit, logged opt-in).
    pub insecure_public_forward: bool,
    /// The fixed forward's target (host, port) as seen from the bastion; `None`: no fixed forward (nothing names
    /// one host, e.g. `mongodb+srv://` without `tunnel.remote_host`).
    pub forward_to: Option<(String, u16)>,
    /// Serve the SOCKS5 route (the driver dials each member by name through it).
    pub socks: bool,
    /// What the route must reach (the forward's target, or every seed host): opened by `probe_forward`.
    pub targets: Vec<(String, u16)>,
    pub max_connections: usize,
}

/// The MongoDB driver.
#[derive(Clone, Debug, Serialize)]
pub struct MongoConfig {
    /// The URI as seen from the bastion.
    pub uri: MongoUri,
    #[serde(with = "humantime_serde")]
    pub server_selection_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_time: Duration,
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// Healthy needs a writable primary (tools may write: `mcp.read_only = false`); otherwise a server matching
    /// the URI's read preference.
    pub needs_primary: bool,
}

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

impl McpConfig {
    /// The shipped `[mcp]` defaults (for tests and benchmarks that need a guard without a whole config).
    ///
    /// # Panics
    /// Never with the compiled-in file (a unit test loads it).
    pub fn shipped_defaults() -> Self {
        #[derive(Deserialize)]
        struct Defaults {
            mcp: RawMcp,
        }
        let defaults: Defaults = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(config::Config::try_deserialize)
            .expect("config/default.toml has an [mcp] section");
        validate_mcp(defaults.mcp).expect("config/default.toml's [mcp] section is valid")
    }
}

/// Logging.
#[derive(Clone, Debug, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

// ---------------------------------------------------------------------------------------------------------------
// Loading.

/// Loads and validates the configuration from every layer.
///
/// # Errors
/// [`ConfigError`] naming the key or file at fault.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let raw = layered(sources)?;
    let explicit = ssh_resolve::Explicit::from_sources(sources)?;
    validate(raw, sources.insecure_no_auth, &explicit)
}

/// The `--config` file's text.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::File {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    crate::files::read_text_bounded(path, crate::files::MAX_CONFIG).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The `NEXUS_<SECTION>__<KEY>` layer.
fn env_source(sources: &Sources) -> config::Environment {
    let structured: config::Map<String, String> = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k[ENV_PREFIX.len()..].contains(ENV_SEPARATOR))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut env = config::Environment::with_prefix("NEXUS")
        .prefix_separator("_")
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .list_separator(",")
        .source(Some(structured));
    for key in LIST_KEYS {
        env = env.with_list_parse_key(key);
    }
    env
}

fn layered(sources: &Sources) -> Result<Raw, ConfigError> {
    use config::{File, FileFormat};

    let mut builder =
        config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    if let Some(path) = &sources.file {
        let text = read_config_file(path)?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }
    builder = builder.add_source(env_source(sources));

    // The seed's env names, then the CLI flags: overrides, applied in order (later wins).
    let mut overrides: Vec<(&str, String)> = Vec::new();
    for (names, key) in SEED_ENV {
        if let Some(value) = names.iter().rev().find_map(|n| sources.env.get(*n)) {
            overrides.push((key, value.clone()));
        }
    }
    if let Some(listen) = &sources.listen {
        overrides.push(("server.listen", listen.clone()));
    }
    if let Some(transport) = sources.transport {
        let name = match transport {
            Transport::Http => "http",
            Transport::Stdio => "stdio",
        };
        overrides.push(("server.transport", name.into()));
    }
    let port_overrides = [
        ("MCP_PORT", "server.listen"),
        ("LOCAL_PORT", "tunnel.local_listen"),
    ];
    let needs_base = port_overrides
        .iter()
        .any(|(n, _)| sources.env.contains_key(*n));
    if needs_base {
        // A port-only env name keeps the host of the layers below it.
        let base = builder.build_cloned().map_err(from_config_error)?;
        for (name, key) in port_overrides {
            if let Some(port) = sources.env.get(name) {
                let port: u16 = port.parse().map_err(|_| {
                    ConfigError::invalid(name, format!("`{port}` is not a port number"))
                })?;
                let current: String = base.get(key).map_err(from_config_error)?;
                let addr = parse_socket_addr(key, &current)?;
                let value = SocketAddr::new(addr.ip(), port).to_string();
                // CLI --listen still wins over MCP_PORT: insert before it.
                let at = overrides
                    .iter()
                    .position(|(k, _)| *k == "server.listen")
                    .unwrap_or(overrides.len());
                overrides.insert(at.min(overrides.len()), (key, value));
            }
        }
    }
    for (key, value) in overrides {
        builder = builder
            .set_override(key, value)
            .map_err(from_config_error)?;
    }
    let merged = builder.build().map_err(from_config_error)?;
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let key = e.path().to_string();
        let reason = crate::error::first_line(&from_config_error(e.into_inner()).to_string());
        ConfigError::invalid(key, with_suggestion(&reason))
    })
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`, …" as "unknown field `x`: did you mean `a`?"
/// when one known key is close (a typo), keeping the list otherwise.
fn with_suggestion(reason: &str) -> String {
    let Some((head, expected)) = reason.split_once(", expected one of ") else {
        return reason.to_string();
    };
    let Some(unknown) = head.split('`').nth(1) else {
        return reason.to_string();
    };
    let known = expected.split(", ").map(|k| k.trim_matches('`'));
    let closest = known
        .map(|k| (edit_distance(unknown, k), k))
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((d, k)) if d <= 2.max(unknown.len() / 4) => format!("{head}: did you mean `{k}`?"),
        _ => reason.to_string(),
    }
}

/// Levenshtein distance (short keys only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Keys whose env values are comma-separated lists.
const LIST_KEYS: [&str; 6] = [
    "server.allowed_hosts",
    "server.allowed_origins",
    "ssh.jump",
    "mcp.allowed_databases",
    "mcp.denied_databases",
    "mcp.allowed_collections",
];

/// The seed's env names (compatible with the tunnel-sidecar setups users come from) and the keys they set.
/// Within one entry the last name present wins (`SSH_TUNNEL_HOST` over `SSH_HOST`).
const SEED_ENV: [(&[&str], &str); 6] = [
    (&["SSH_HOST", "SSH_TUNNEL_HOST"], "ssh.host"),
    (&["SSH_PORT", "SSH_TUNNEL_PORT"], "ssh.port"),
    (&["SSH_USER"], "ssh.user"),
    (&["MONGO_URI"], "mongo.uri"),
    (&["REMOTE_HOST"], "tunnel.remote_host"),
    (&["REMOTE_PORT"], "tunnel.remote_port"),
];

fn from_config_error(e: config::ConfigError) -> ConfigError {
    match e {
        config::ConfigError::FileParse { uri, cause } => ConfigError::File {
            path: uri.unwrap_or_default().into(),
            reason: crate::error::first_line(&cause.to_string()),
        },
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => ConfigError::invalid(
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At {
            key: Some(key),
            error,
            ..
        } => ConfigError::invalid(key, crate::error::first_line(&error.to_string())),
        config::ConfigError::NotFound(key) => ConfigError::invalid(key, "missing"),
        other => ConfigError::invalid("config", crate::error::first_line(&other.to_string())),
    }
}

fn validate(
    raw: Raw,
    insecure_no_auth: bool,
    explicit: &ssh_resolve::Explicit,
) -> Result<Config, ConfigError> {
    let server = validate_server(raw.server, insecure_no_auth)?;
    let mut mongo = validate_mongo(raw.mongo)?;
    mongo.needs_primary = !raw.mcp.read_only;
    let (tunnel, ssh_settings) = if raw.ssh.enabled {
        let (tunnel, settings) = validate_tunnel(raw.ssh, raw.tunnel, &mongo.uri, explicit)?;
        (Some(tunnel), settings)
    } else {
        (None, Vec::new())
    };
    let mcp = validate_mcp(raw.mcp)?;
    let log = validate_log(raw.log)?;
    let health = validate_health(raw.health)?;
    Ok(Config {
        server,
        tunnel,
        mongo,
        mcp,
        log,
        ssh_settings,
        health,
    })
}

fn validate_health(raw: RawHealth) -> Result<HealthConfig, ConfigError> {
    nonzero_duration("health.unready_window", raw.unready_window)?;
    nonzero_duration("health.peer_interval", raw.peer_interval)?;
    Ok(HealthConfig {
        readiness: raw.readiness,
        unready_window: raw.unready_window,
        peer_interval: raw.peer_interval,
    })
}

fn validate_server(raw: RawServer, insecure_no_auth: bool) -> Result<ServerConfig, ConfigError> {
    let listen = parse_socket_addr("server.listen", &raw.listen)?;
    positive("server.max_in_flight", raw.max_in_flight)?;
    positive("server.max_connections", raw.max_connections)?;
    positive("server.max_sessions", raw.max_sessions)?;
    positive(
        "server.max_sessions_per_caller",
        raw.max_sessions_per_caller,
    )?;
    if raw.max_sessions_per_caller > raw.max_sessions {
        return Err(ConfigError::invalid(
            "server.max_sessions_per_caller",
            format!("must be at most server.max_sessions ({})", raw.max_sessions),
        ));
    }
    nonzero_duration("server.request_timeout", raw.request_timeout)?;
    nonzero_duration("server.header_read_timeout", raw.header_read_timeout)?;
    let body_read_timeout = match raw.body_read_timeout {
        None => DEFAULT_BODY_READ_TIMEOUT.min(raw.request_timeout / 2),
        Some(t) if t.is_zero() || t >= raw.request_timeout => {
            return Err(ConfigError::invalid(
                "server.body_read_timeout",
                format!(
                    "must be greater than 0 and less than server.request_timeout ({}), so a slow body gets its 408 \
                     first",
                    humantime::format_duration(raw.request_timeout)
                ),
            ));
        }
        Some(t) => t,
    };
    nonzero_duration("server.session_idle_timeout", raw.session_idle_timeout)?;
    if raw.session_idle_timeout <= raw.request_timeout {
        return Err(ConfigError::invalid(
            "server.session_idle_timeout",
            format!(
                "must be more than server.request_timeout ({}): a session is idle while its call runs",
                humantime::format_duration(raw.request_timeout)
            ),
        ));
    }
    bounded_duration("server.shutdown_grace", raw.shutdown_grace)?;
    if raw.body_limit.as_u64() == 0 {
        return Err(ConfigError::invalid(
            "server.body_limit",
            "must be greater than 0",
        ));
    }
    if let Some(path) = &raw.auth_tokens_file {
        readable("server.auth_tokens_file", path)?;
    }
    if !raw.rate_limit.is_finite() || raw.rate_limit < 0.0 {
        return Err(ConfigError::invalid(
            "server.rate_limit",
            "must be a number >= 0 (0 = off)",
        ));
    }
    if raw.rate_limit > 0.0 && raw.rate_burst == 0 {
        return Err(ConfigError::invalid(
            "server.rate_burst",
            "must be at least 1 when server.rate_limit is on",
        ));
    }
    let audit_log = match raw.audit_log.as_str() {
        "off" => AuditTarget::Off,
        "stderr" => AuditTarget::Stderr,
        "" => {
            return Err(ConfigError::invalid(
                "server.audit_log",
                "use \"stderr\", \"off\" or a file path",
            ));
        }
        path => AuditTarget::File(expand_home(Path::new(path))),
    };
    let oauth = raw.oauth.map(validate_oauth).transpose()?;
    let session_store = validate_sessions(raw.sessions)?;
    let listen_is_loopback = listen.ip().is_loopback();
    if !listen_is_loopback && raw.auth_tokens_file.is_none() && oauth.is_none() && !insecure_no_auth
    {
        return Err(ConfigError::invalid(
            "server.auth_tokens_file",
            format!(
                "server.listen {listen} is reachable from other hosts, but no bearer tokens are configured: set \
                 server.auth_tokens_file (lines of `name:token`) or [server.oauth], listen on 127.0.0.1, or pass --insecure-no-auth \
                 to serve without authentication"
            ),
        ));
    }
    Ok(ServerConfig {
        listen,
        transport: raw.transport,
        allowed_hosts: raw.allowed_hosts,
        allowed_origins: raw.allowed_origins,
        auth_tokens_file: raw.auth_tokens_file,
        metrics_require_auth: raw.metrics_require_auth,
        body_limit: raw.body_limit,
        max_in_flight: raw.max_in_flight,
        max_connections: raw.max_connections,
        header_read_timeout: raw.header_read_timeout,
        body_read_timeout,
        max_sessions: raw.max_sessions,
        max_sessions_per_caller: raw.max_sessions_per_caller,
        session_idle_timeout: raw.session_idle_timeout,
        rate_limit: raw.rate_limit,
        rate_burst: raw.rate_burst,
        request_timeout: raw.request_timeout,
        shutdown_grace: raw.shutdown_grace,
        audit_log,
        insecure_no_auth,
        oauth,
        session_store,
    })
}

fn validate_sessions(raw: RawSessions) -> Result<Option<RedisConfig>, ConfigError> {
    let url = secret_value(
        "server.sessions.redis_url",
        raw.redis_url,
        raw.redis_url_file,
    )?;
    if raw.store == SessionStoreKind::Memory {
        if url.is_some() {
            return Err(ConfigError::invalid(
                "server.sessions.redis_url",
                "set, but server.sessions.store is \"memory\": set store = \"redis\" to use it",
            ));
        }
        return Ok(None);
    }
    let url = url.ok_or_else(|| {
        ConfigError::invalid(
            "server.sessions.redis_url",
            "missing: store = \"redis\" needs redis_url (or redis_url_file)",
        )
    })?;
    crate::store::check_url(url.expose())
        .map_err(|why| ConfigError::invalid("server.sessions.redis_url", why))?;
    nonzero_duration("server.sessions.connect_timeout", raw.connect_timeout)?;
    nonzero_duration("server.sessions.command_timeout", raw.command_timeout)?;
    Ok(Some(RedisConfig {
        url,
        key_prefix: raw.key_prefix,
        connect_timeout: raw.connect_timeout,
        command_timeout: raw.command_timeout,
    }))
}

fn validate_oauth(raw: RawOAuth) -> Result<OAuthConfig, ConfigError> {
    secure_url("server.oauth.issuer", &raw.issuer)?;
    if let Some(url) = &raw.jwks_url {
        secure_url("server.oauth.jwks_url", url)?;
    }
    if !(raw.audience.starts_with("https://") || raw.audience.starts_with("http://")) {
        return Err(ConfigError::invalid(
            "server.oauth.audience",
            "must be the absolute URL clients use for this server's /mcp, e.g. https://nexus.example.com/mcp",
        ));
    }
    if raw.algorithms.is_empty() {
        return Err(ConfigError::invalid(
            "server.oauth.algorithms",
            "must list at least one algorithm",
        ));
    }
    let algorithms = raw
        .algorithms
        .iter()
        .map(|a| crate::http::oauth::parse_algorithm(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| ConfigError::invalid("server.oauth.algorithms", why))?;
    bounded_duration("server.oauth.leeway", raw.leeway)?;
    for (key, scope) in [
        ("server.oauth.scopes.read", &raw.scopes.read),
        ("server.oauth.scopes.write", &raw.scopes.write),
        ("server.oauth.scopes.admin", &raw.scopes.admin),
    ] {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                key,
                "must be one scope name without spaces",
            ));
        }
    }
    Ok(OAuthConfig {
        issuer: raw.issuer,
        audience: raw.audience,
        jwks_url: raw.jwks_url,
        algorithms,
        leeway: raw.leeway,
        scope_read: raw.scopes.read,
        scope_write: raw.scopes.write,
        scope_admin: raw.scopes.admin,
    })
}

/// An identity provider's URL: https, except on a loopback address (local IdPs and tests).
fn secure_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(ConfigError::invalid(key, "must be an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{url} must be https:// (plain http is allowed only on a loopback address)"),
        ))
    }
}

fn validate_mongo(raw: RawMongo) -> Result<MongoConfig, ConfigError> {
    let uri = secret_value("mongo.uri", raw.uri, raw.uri_file)?.ok_or_else(|| {
        ConfigError::invalid(
            "mongo.uri",
            "missing: set mongo.uri, mongo.uri_file or MONGO_URI",
        )
    })?;
    let uri = MongoUri::parse(uri.expose())
        .map_err(|reason| ConfigError::invalid("mongo.uri", reason))?;
    nonzero_duration(
        "mongo.server_selection_timeout",
        raw.server_selection_timeout,
    )?;
    nonzero_duration("mongo.max_time", raw.max_time)?;
    nonzero_duration("mongo.health_interval", raw.health_interval)?;
    Ok(MongoConfig {
        uri,
        server_selection_timeout: raw.server_selection_timeout,
        max_time: raw.max_time,
        health_interval: raw.health_interval,
        needs_primary: false,
    })
}

fn validate_tunnel(
    mut ssh: RawSsh,
    tunnel: RawTunnel,
    uri: &MongoUri,
    explicit: &ssh_resolve::Explicit,
) -> Result<(TunnelConfig, Vec<SshSetting>), ConfigError> {
    // ssh_config first: it may give the host, user, port, keys and jump hosts.
    let from_file = ssh_resolve::resolve(&mut ssh, explicit)?;
    let host = required("ssh.host", ssh.host)?;
    let user = required("ssh.user", ssh.user)?;
    let bastion = SshEndpoint {
        user: user.clone(),
        host,
        port: ssh.port,
    };
    let jumps = from_file.jumps;

    let passphrase = secret_value(
        "ssh.private_key_passphrase",
        ssh.private_key_passphrase,
        ssh.private_key_passphrase_file,
    )?;
    let password = secret_value("ssh.password", ssh.password, ssh.password_file)?;
    let private_key = ssh.private_key.map(|p| expand_home(&p));
    let certificate = ssh.certificate.map(|p| expand_home(&p));
    let private_keys = from_file.private_keys;
    if let Some(path) = &certificate {
        readable("ssh.certificate", path)?;
        if private_keys.is_empty() && !ssh.agent {
            return Err(ConfigError::invalid(
                "ssh.certificate",
                "set without its key: set ssh.private_key, or ssh.agent = true when the agent holds the key",
            ));
        }
    }
    if let Some(path) = &private_key {
        readable("ssh.private_key", path)?;
    } else if passphrase.is_some() && private_keys.is_empty() {
        return Err(ConfigError::invalid(
            "ssh.private_key_passphrase",
            "set without ssh.private_key",
        ));
    }
    if !ssh.agent && private_keys.is_empty() && password.is_none() {
        return Err(ConfigError::invalid(
            "ssh",
            "no authentication method: set ssh.private_key, ssh.password(_file) or ssh.agent = true",
        ));
    }
    let known_hosts = match ssh.known_hosts {
        Some(p) => expand_home(&p),
        None => home_dir()
            .map(|h| h.join(".ssh/known_hosts"))
            .ok_or_else(|| {
                ConfigError::invalid("ssh.known_hosts", "not set and $HOME is unknown")
            })?,
    };

    nonzero_duration("ssh.connect_timeout", ssh.connect_timeout)?;
    nonzero_duration("ssh.keepalive_interval", ssh.keepalive_interval)?;
    positive("ssh.keepalive_max", ssh.keepalive_max)?;
    nonzero_duration("ssh.reconnect_min_delay", ssh.reconnect_min_delay)?;
    bounded_duration("ssh.reconnect_max_delay", ssh.reconnect_max_delay)?;
    if ssh.reconnect_max_delay < ssh.reconnect_min_delay {
        return Err(ConfigError::invalid(
            "ssh.reconnect_max_delay",
            "must not be less than ssh.reconnect_min_delay",
        ));
    }

    let local_listen = parse_socket_addr("tunnel.local_listen", &tunnel.local_listen)?;
    if !local_listen.ip().is_loopback() && !tunnel.insecure_public_forward {
        return Err(ConfigError::invalid(
            "tunnel.local_listen",
            format!(
                "{local_listen} is not a loopback address: whoever reaches it gets raw access to MongoDB, past \
                 the tokens, read-only mode and allow lists; use 127.0.0.1 (or set \
                 tunnel.insecure_public_forward = true if that is really meant)"
            ),
        ));
    }
    if tunnel.max_connections < 3 {
        return Err(ConfigError::invalid(
            "tunnel.max_connections",
            "must be at least 3: the MongoDB driver keeps monitoring connections besides its pool",
        ));
    }
    if tunnel.remote_port == Some(0) {
        return Err(ConfigError::invalid(
            "tunnel.remote_port",
            "must be between 1 and 65535",
        ));
    }
    let socks = match tunnel.mode {
        TunnelMode::Socks => true,
        TunnelMode::Forward => false,
        TunnelMode::Auto => uri.needs_member_routing(),
    };
    // The fixed forward: to tunnel.remote_host, else to the URI's host when it names one.
    let forward_to = match (tunnel.remote_host, tunnel.remote_port) {
        (Some(host), port) => Some((host, port.unwrap_or(uri.first_host().1))),
        (None, _) if uri.is_srv() => None,
        (None, _) if !socks && uri.hosts().len() > 1 => {
            return Err(ConfigError::invalid(
                "mongo.uri",
                "lists several hosts, but tunnel.mode = \"forward\" reaches one host: use tunnel.mode = \"auto\" \
                 (every member through the bastion) or list the one host to use (or set tunnel.remote_host)",
            ));
        }
        (None, port) => {
            let (host, uri_port) = uri.first_host();
            Some((host.to_string(), port.unwrap_or(uri_port)))
        }
    };
    if !socks && forward_to.is_none() {
        return Err(ConfigError::invalid(
            "mongo.uri",
            "mongodb+srv:// cannot be reached through one fixed forward (tunnel.mode = \"forward\"): use \
             tunnel.mode = \"auto\", or mongodb://host:port (or set tunnel.remote_host)",
        ));
    }
    let targets = match (&forward_to, socks) {
        (Some(target), false) => vec![target.clone()],
        (_, true) if !uri.is_srv() => uri.hosts().to_vec(),
        _ => Vec::new(),
    };

    let tunnel = TunnelConfig {
        jumps,
        bastion,
        auth: SshAuth {
            agent: ssh.agent,
            identities_only: from_file.identities_only,
            private_keys,
            certificates: from_file.certificates,
            private_key_passphrase: passphrase,
            password,
        },
        known_hosts,
        host_key_policy: ssh.host_key_policy,
        connect_timeout: ssh.connect_timeout,
        keepalive_interval: ssh.keepalive_interval,
        keepalive_max: ssh.keepalive_max,
        pty_keeper: ssh.pty_keeper,
        reconnect_min_delay: ssh.reconnect_min_delay,
        reconnect_max_delay: ssh.reconnect_max_delay,
        local_listen,
        insecure_public_forward: tunnel.insecure_public_forward,
        forward_to,
        socks,
        targets,
        max_connections: tunnel.max_connections,
    };
    Ok((tunnel, from_file.settings))
}

fn validate_mcp(raw: RawMcp) -> Result<McpConfig, ConfigError> {
    if raw.max_documents == 0 {
        return Err(ConfigError::invalid(
            "mcp.max_documents",
            "must be greater than 0",
        ));
    }
    if raw.default_limit == 0 || raw.default_limit > raw.max_documents {
        return Err(ConfigError::invalid(
            "mcp.default_limit",
            "must be between 1 and mcp.max_documents",
        ));
    }
    if raw.max_bytes.as_u64() == 0 {
        return Err(ConfigError::invalid(
            "mcp.max_bytes",
            "must be greater than 0",
        ));
    }
    let confirm_key = secret_value("mcp.confirm_key", None, raw.confirm_key_file)?;
    if confirm_key.as_ref().is_some_and(|k| k.expose().len() < 32) {
        return Err(ConfigError::invalid(
            "mcp.confirm_key_file",
            "must hold at least 32 characters (e.g. `head -c 32 /dev/urandom | base64`)",
        ));
    }
    Ok(McpConfig {
        read_only: raw.read_only,
        allowed_databases: raw.allowed_databases,
        denied_databases: raw.denied_databases,
        allowed_collections: raw.allowed_collections,
        default_limit: raw.default_limit,
        max_documents: raw.max_documents,
        max_bytes: raw.max_bytes,
        block_server_side_js: raw.block_server_side_js,
        confirm_destructive: raw.confirm_destructive,
        confirm_update_above: raw.confirm_update_above,
        confirm_key,
    })
}

fn validate_log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(&raw.level)
        .map_err(|e| ConfigError::invalid("log.level", e))?;
    Ok(LogConfig {
        format: raw.format,
        level: raw.level,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Small validators.

fn parse_socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("`{value}` is not an IP:PORT address")))
}

fn required(key: &str, value: Option<String>) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::invalid(key, "missing")),
    }
}

fn positive(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

/// `server.body_read_timeout` when not set, unless half of `server.request_timeout` is less.
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest duration any setting accepts: larger values are typos (and would overflow deadlines).
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

fn nonzero_duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    bounded_duration(key, value)
}

fn bounded_duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::invalid(key, "must be at most 24h"));
    }
    Ok(())
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// A secret given inline (`key`) or in a file (`key_file`), not both. A file's trailing newline is dropped.
fn secret_value(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            key,
            format!("set both {key} and {key}_file: keep one"),
        )),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => {
            let key_file = format!("{key}_file");
            let path = expand_home(&path);
            let text =
                crate::files::read_text_bounded(&path, crate::files::MAX_SECRET).map_err(|e| {
                    ConfigError::invalid(&key_file, format!("cannot read {}: {e}", path.display()))
                })?;
            let value = text.trim_end_matches(['\r', '\n']).to_string();
            if value.is_empty() {
                return Err(ConfigError::invalid(
                    key_file,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(Secret::new(value)))
        }
        (None, None) => Ok(None),
    }
}

/// `[user@]host[:port]`; IPv6 hosts in brackets.
fn parse_endpoint(s: &str, default_user: &str) -> Result<SshEndpoint, String> {
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (u.to_string(), r),
        Some(_) => return Err(format!("`{s}`: empty user name")),
        None => (default_user.to_string(), s),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: unclosed `[`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{s}`: invalid port"))?,
            None if after.is_empty() => 22,
            None => return Err(format!("`{s}`: expected `[host]:port`")),
        };
        (host.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("`{s}`: invalid port"))?,
            ),
            None => (rest.to_string(), 22),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(format!("`{s}`: expected user@host:port"));
    }
    Ok(SshEndpoint { user, host, port })
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(toml: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nexus.toml");
        std::fs::write(&file, toml).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "not read at load time").unwrap();
        let mut env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.replace("{key}", key.to_str().unwrap())))
            .collect();
        env.insert("HOME".into(), dir.path().to_str().unwrap().into());
        let s = Sources {
            file: Some(file),
            env,
            ..Sources::default()
        };
        (dir, s)
    }

    const MINIMAL: &str = r#"
        [ssh]
        host = "bastion.example.com"
        user = "tunnel"
        agent = true
        [mongo]
        uri = "mongodb://app:s3cret@mongo.internal:27018/shop?authSource=admin"
    "#;

    fn err(toml: &str, env: &[(&str, &str)]) -> String {
        let (_d, s) = sources(toml, env);
        load(&s).unwrap_err().to_string()
    }

    #[test]
    fn defaults_come_from_the_shipped_file() {
        let (_d, s) = sources(MINIMAL, &[]);
        let c = load(&s).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:3000".parse().unwrap());
        assert!(c.mcp.read_only);
        let t = c.tunnel.unwrap();
        assert_eq!(t.bastion.to_string(), "tunnel@bastion.example.com:22");
        assert_eq!(t.forward_to, Some(("mongo.internal".into(), 27018)));
        assert!(!t.socks, "a single plain host keeps the fixed forward");
        assert_eq!(t.targets, vec![("mongo.internal".to_string(), 27018)]);
        assert_eq!(t.keepalive_interval, Duration::from_secs(5));
        assert_eq!(t.host_key_policy, HostKeyPolicy::Strict);
    }

    #[test]
    fn layers_apply_in_order_env_then_seed_names_then_cli() {
        let (_d, mut s) = sources(
            MINIMAL,
            &[
                ("NEXUS_SSH__PORT", "2200"),
                ("NEXUS_SSH__JUMP", "a@j1:2201,j2"),
                ("SSH_TUNNEL_PORT", "2222"),
                ("MCP_PORT", "4000"),
                ("LOCAL_PORT", "27999"),
                ("NEXUS_BIN", "/ignored/not/a/key"),
            ],
        );
        let c = load(&s).unwrap();
        let t = c.tunnel.as_ref().unwrap();
        assert_eq!(t.bastion.port, 2222, "seed names win over NEXUS_*");
        assert_eq!(t.jumps[0].to_string(), "a@j1:2201");
        assert_eq!(t.jumps[1].to_string(), "tunnel@j2:22");
        assert_eq!(t.local_listen, "127.0.0.1:27999".parse().unwrap());
        assert_eq!(c.server.listen, "127.0.0.1:4000".parse().unwrap());
        s.listen = Some("127.0.0.1:5000".into());
        s.transport = Some(Transport::Stdio);
        let c = load(&s).unwrap();
        assert_eq!(
            c.server.listen,
            "127.0.0.1:5000".parse().unwrap(),
            "CLI wins over MCP_PORT"
        );
        assert_eq!(c.server.transport, Transport::Stdio);
    }

    #[test]
    fn the_body_read_timeout_defaults_below_the_request_timeout() {
        let (_d, s) = sources(MINIMAL, &[]);
        let c = load(&s).unwrap();
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(10));
        let (_d, s) = sources(MINIMAL, &[("NEXUS_SERVER__REQUEST_TIMEOUT", "4s")]);
        let c = load(&s).unwrap();
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_session_store_and_readiness_policy_are_checked_and_the_redis_url_stays_secret() {
        let (_d, s) = sources(MINIMAL, &[]);
        let c = load(&s).unwrap();
        assert!(c.server.session_store.is_none());
        assert_eq!(c.health.readiness, ReadinessPolicy::Strict);
        let url = (
            "NEXUS_SERVER__SESSIONS__REDIS_URL",
            "redis://:hunter2@redis:6379/0",
        );
        let redis = ("NEXUS_SERVER__SESSIONS__STORE", "redis");
        let (_d, s) = sources(MINIMAL, &[url, redis, ("NEXUS_HEALTH__READINESS", "fleet")]);
        let c = load(&s).unwrap();
        let store = c.server.session_store.as_ref().unwrap();
        assert_eq!(store.url.expose(), url.1);
        assert_eq!(c.health.readiness, ReadinessPolicy::Fleet);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&c).unwrap().contains("hunter2"));
        for (envs, key) in [
            (vec![redis], "server.sessions.redis_url"),
            (vec![url], "server.sessions.redis_url"),
            (
                vec![
                    redis,
                    (
                        "NEXUS_SERVER__SESSIONS__REDIS_URL",
                        "rediss://:hunter2@r:6379",
                    ),
                ],
                "server.sessions.redis_url",
            ),
            (
                vec![("NEXUS_HEALTH__READINESS", "sometimes")],
                "health.readiness",
            ),
            (
                vec![("NEXUS_HEALTH__UNREADY_WINDOW", "0s")],
                "health.unready_window",
            ),
        ] {
            let e = err(MINIMAL, &envs);
            assert!(e.starts_with(key), "{key}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let e = err(&format!("{MINIMAL}\n[server]\nlisten_addr = \"x\""), &[]);
        assert!(e.contains("listen_addr"), "{e}");
        let e = err(MINIMAL, &[("NEXUS_SSH__HOSTNAME", "x")]);
        assert!(e.contains("hostname"), "{e}");
        let e = err(&format!("{MINIMAL}\n[metrics]\nenabled = true"), &[]);
        assert!(e.contains("metrics"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (env, key) in [
            (("NEXUS_SSH__PORT", "ssh"), "ssh.port"),
            (
                ("NEXUS_SSH__KEEPALIVE_INTERVAL", "soon"),
                "ssh.keepalive_interval",
            ),
            (
                ("NEXUS_SSH__HOST_KEY_POLICY", "trust-me"),
                "ssh.host_key_policy",
            ),
            (("NEXUS_SERVER__LISTEN", "localhost"), "server.listen"),
            (("NEXUS_MCP__MAX_BYTES", "lots"), "mcp.max_bytes"),
            (("MCP_PORT", "http"), "MCP_PORT"),
            (("NEXUS_SSH__JUMP", "@j1"), "ssh.jump[0]"),
            (
                ("NEXUS_SSH__RECONNECT_MAX_DELAY", "1ms"),
                "ssh.reconnect_max_delay",
            ),
            (("NEXUS_MCP__DEFAULT_LIMIT", "1000"), "mcp.default_limit"),
            (
                ("NEXUS_TUNNEL__MAX_CONNECTIONS", "1"),
                "tunnel.max_connections",
            ),
            (("NEXUS_LOG__LEVEL", "info,[=="), "log.level"),
            (
                ("NEXUS_TUNNEL__LOCAL_LISTEN", "0.0.0.0:0"),
                "tunnel.local_listen",
            ),
            (
                ("NEXUS_SSH__KEEPALIVE_INTERVAL", "18446744073709551615s"),
                "ssh.keepalive_interval",
            ),
            (
                ("NEXUS_SERVER__SHUTDOWN_GRACE", "18446744073709551615s"),
                "server.shutdown_grace",
            ),
            (("NEXUS_MONGO__MAX_TIME", "1000000h"), "mongo.max_time"),
            (
                ("NEXUS_SERVER__MAX_CONNECTIONS", "0"),
                "server.max_connections",
            ),
            (
                ("NEXUS_SERVER__HEADER_READ_TIMEOUT", "0s"),
                "server.header_read_timeout",
            ),
            (
                ("NEXUS_SERVER__BODY_READ_TIMEOUT", "30s"),
                "server.body_read_timeout",
            ),
            (("NEXUS_SERVER__MAX_SESSIONS", "0"), "server.max_sessions"),
            (
                ("NEXUS_SERVER__MAX_SESSIONS_PER_CALLER", "501"),
                "server.max_sessions_per_caller",
            ),
            (
                ("NEXUS_SERVER__SESSION_IDLE_TIMEOUT", "30s"),
                "server.session_idle_timeout",
            ),
        ] {
            let e = err(MINIMAL, &[env]);
            assert!(e.starts_with(key), "{env:?}: `{e}` should start with {key}");
        }
    }

    #[test]
    fn a_password_that_is_not_percent_encoded_is_not_echoed() {
        let e = err(
            MINIMAL,
            &[(
                "NEXUS_MONGO__URI",
                "mongodb://app:s3cr3t/x@mongo.internal/db",
            )],
        );
        assert!(
            e.starts_with("mongo.uri:") && e.contains("percent-encoded"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn endless_files_are_refused_naming_the_key() {
        let e = err(MINIMAL, &[("NEXUS_SSH__PASSWORD_FILE", "/dev/zero")]);
        assert!(
            e.starts_with("ssh.password_file:") && e.contains("larger than"),
            "{e}"
        );
    }

    #[test]
    fn missing_required_values_are_named() {
        let e = err(
            "[mongo]\nuri = \"mongodb://m:27017\"\n[ssh]\nuser = \"u\"\nagent = true",
            &[],
        );
        assert_eq!(e, "ssh.host: missing");
        let e = err("[ssh]\nhost = \"h\"\nuser = \"u\"\nagent = true", &[]);
        assert!(e.starts_with("mongo.uri: missing"), "{e}");
        let e = err(
            "[ssh]\nhost = \"h\"\nuser = \"u\"\n[mongo]\nuri = \"mongodb://m\"",
            &[],
        );
        assert!(e.starts_with("ssh: no authentication method"), "{e}");
        let e = err(
            "[ssh]\nhost = \"h\"\nuser = \"u\"\nagent=true\n[tunnel]\nmode = \"forward\"\n[mongo]\nuri = \"mongodb+srv://c.example\"",
            &[],
        );
        assert!(e.starts_with("mongo.uri: mongodb+srv://"), "{e}");
        assert!(e.contains("tunnel.mode = \"auto\""), "{e}");
        let e = err(
            "[ssh]\nhost = \"h\"\nuser = \"u\"\nagent=true\n[tunnel]\nmode = \"forward\"\n[mongo]\nuri = \"mongodb://a,b/\"",
            &[],
        );
        assert!(e.starts_with("mongo.uri: lists several hosts"), "{e}");
        let e = err(
            "[ssh]\nhost = \"h\"\nuser = \"u\"\nagent=true\n[tunnel]\nmode = \"sideways\"\n[mongo]\nuri = \"mongodb://a/\"",
            &[],
        );
        assert!(e.starts_with("tunnel.mode"), "{e}");
    }

    #[test]
    fn the_route_follows_the_uri() {
        let tunnel = |uri: &str, mode: &str| {
            let (_d, s) = sources(
                &format!(
                    "[ssh]\nhost = \"h\"\nuser = \"u\"\nagent=true\n[tunnel]\nmode = \"{mode}\"\n[mongo]\nuri = \"{uri}\""
                ),
                &[],
            );
            load(&s).unwrap().tunnel.unwrap()
        };
        let rs = tunnel("mongodb://u:p@m0:1,m1:2,m2/?replicaSet=rs0", "auto");
        assert!(rs.socks);
        assert_eq!(
            rs.forward_to,
            Some(("m0".into(), 1)),
            "mongosh still gets a forward"
        );
        assert_eq!(rs.targets.len(), 3);
        let srv = tunnel("mongodb+srv://cluster0.example.net/", "auto");
        assert!(srv.socks);
        assert_eq!((srv.forward_to, srv.targets.len()), (None, 0));
        let tls = tunnel("mongodb://docdb.internal:27017/?tls=true", "auto");
        assert!(tls.socks);
        let forced = tunnel("mongodb://m:27017/", "socks");
        assert!(forced.socks);
        assert_eq!(forced.targets, vec![("m".to_string(), 27017)]);
        let plain = tunnel("mongodb://m:27017/", "auto");
        assert!(!plain.socks);
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        let toml = format!(
            "[ssh]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"{}\"\n[mongo]\nuri = \"mongodb://app:s3cret@m:27017\"",
            pw.display()
        );
        let (_d, s) = sources(&toml, &[]);
        let c = load(&s).unwrap();
        assert_eq!(
            c.tunnel
                .as_ref()
                .unwrap()
                .auth
                .password
                .as_ref()
                .unwrap()
                .expose(),
            "hunter2"
        );
        let printed = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(
            !printed.contains("hunter2") && !printed.contains("s3cret"),
            "{printed}"
        );

        let e = err(
            &format!("{MINIMAL}\n"),
            &[
                ("NEXUS_SSH__PASSWORD", "a"),
                ("NEXUS_SSH__PASSWORD_FILE", "/x"),
            ],
        );
        assert!(e.starts_with("ssh.password: set both"), "{e}");
    }

    #[test]
    fn public_listen_needs_tokens_or_an_explicit_opt_out() {
        let (_d, mut s) = sources(MINIMAL, &[("NEXUS_SERVER__LISTEN", "0.0.0.0:3000")]);
        let e = load(&s).unwrap_err().to_string();
        assert!(
            e.starts_with("server.auth_tokens_file: server.listen 0.0.0.0:3000 is reachable"),
            "{e}"
        );
        s.insecure_no_auth = true;
        assert!(load(&s).unwrap().server.insecure_no_auth);
    }

    #[test]
    fn shipped_mcp_defaults_are_fail_closed() {
        let mcp = McpConfig::shipped_defaults();
        assert!(mcp.read_only && mcp.block_server_side_js && mcp.confirm_destructive);
        assert_eq!((mcp.default_limit, mcp.max_documents), (10, 100));
    }

    #[test]
    fn ssh_disabled_connects_directly() {
        let c = {
            let (_d, s) = sources(
                "[ssh]\nenabled = false\n[mongo]\nuri = \"mongodb+srv://c.example/\"",
                &[],
            );
            load(&s).unwrap()
        };
        assert!(c.tunnel.is_none());
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let e = err(
            MINIMAL,
            &[
                ("NEXUS_SSH__CERTIFICATE", "{key}"),
                ("NEXUS_SSH__AGENT", "false"),
                ("NEXUS_SSH__PASSWORD", "pw"),
            ],
        );
        assert!(e.starts_with("ssh.certificate: set without its key"), "{e}");
        let (_d, s) = sources(
            MINIMAL,
            &[
                ("NEXUS_SSH__CERTIFICATE", "{key}"),
                ("NEXUS_SSH__PRIVATE_KEY", "{key}"),
            ],
        );
        let auth = load(&s).unwrap().tunnel.unwrap().auth;
        assert_eq!(auth.certificates, auth.private_keys);
        assert_eq!(auth.certificates.len(), 1);
    }

    #[test]
    fn endpoints_parse_user_host_port() {
        assert_eq!(parse_endpoint("a@h:2", "d").unwrap().to_string(), "a@h:2");
        assert_eq!(parse_endpoint("h", "d").unwrap().to_string(), "d@h:22");
        assert_eq!(parse_endpoint("[::1]:2022", "d").unwrap().host, "::1");
        assert!(parse_endpoint("h:0", "d").is_err());
        assert!(parse_endpoint("h:x", "d").is_err());
    }

    #[test]
    fn a_typo_gets_the_closest_key() {
        let reason = "ssh: unknown field `keepalive_intervall`, expected one of `enabled`, `host`, `keepalive_interval`, `keepalive_max`";
        assert_eq!(
            with_suggestion(reason),
            "ssh: unknown field `keepalive_intervall`: did you mean `keepalive_interval`?"
        );
        let far = "unknown field `colour`, expected one of `host`, `port`";
        assert_eq!(with_suggestion(far), far);
    }
}
