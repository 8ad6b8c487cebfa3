//! The configuration loader, ABOVE the components (as linkerd2-proxy's `app/src/env.rs`): layered sources →
//! `raw` (only what the user typed, type-checked) → `validate` → [`Config`], which holds each component's own
//! config type (`tunnel::TunnelConfig`, `mongo::MongoConfig`, `mcp::McpConfig`, `http::ServerConfig`, …).
//! Components never import this module; it imports them.
//!
//! Layers, later wins: `config/default.toml` (compiled in: the single source of every default) → `--config FILE`
//! → env `NEXUS_<SECTION>__<KEY>` → the seed's env names (`MCP_PORT`, `SSH_HOST`/`SSH_TUNNEL_HOST`, …) → CLI
//! flags. Unknown keys and invalid values are errors that name the key ([`ConfigError`]; the binary exits 64).
//! Secrets are `Secret`s: their `Debug` and `Serialize` print `***`.
//!
//! Layout: this file (sources, layering, [`ConfigError`], typo suggestions, [`Config`]), `raw`, `validate` (and
//! `validate/server`, `validate/tunnel`), `targets` (each `[targets.<name>]` over the defaults), `ssh_config`
//! (reading an ssh_config file), `ssh_resolve` (merging it under the `[ssh]` keys the user set). This module reads files (secrets, `*_file` keys) but opens no sockets and
//! knows no component's behaviour.
//!
//! (Over 400 lines: about 190 are unit tests of the whole load and their helpers.)

mod raw;
mod ssh_config;
mod ssh_resolve;
mod targets;
mod validate;

pub use ssh_resolve::SshSetting;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::health::HealthConfig;
use crate::http::{ServerConfig, Transport};
use crate::logging::LogConfig;
use crate::mcp::McpConfig;
use crate::mongo::MongoConfig;
use crate::tunnel::TunnelConfig;
use raw::Raw;

/// The shipped defaults, compiled in so the binary needs no file to start.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
    pub(crate) fn invalid(key: impl Into<String>, reason: impl fmt::Display) -> Self {
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

/// The whole validated configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    /// The MongoDBs the tools reach: the top-level `[ssh]`/`[tunnel]`/`[mongo]`/`[mcp]` (the target `default`,
    /// first) unless only `[targets.*]` are configured, then the named targets by name. Never empty.
    pub targets: Vec<TargetConfig>,
    /// Whether the configuration has `[targets.*]` sections: then tools take `connectionId`, and probes, metrics
    /// and the audit line carry the target's name.
    pub named: bool,
    pub log: LogConfig,
    pub health: HealthConfig,
}

/// One MongoDB target: everything a supervised tunnel + driver + the tools' guards need.
#[derive(Clone, Debug, Serialize)]
pub struct TargetConfig {
    pub name: String,
    /// Whether `/ready` and `/startup` wait for it (`targets.<name>.required`; the default target always).
    pub required: bool,
    /// `None` when `ssh.enabled = false`: MongoDB is reached directly.
    pub tunnel: Option<TunnelConfig>,
    pub mongo: MongoConfig,
    pub mcp: McpConfig,
    /// The resolved `[ssh]` settings and where each came from (nexus-mcp's config, ssh_config, defaults): printed
    /// by `check`. Empty when `ssh.enabled = false`.
    pub ssh_settings: Vec<SshSetting>,
}

/// The name of the target the top-level sections describe.
pub const DEFAULT_TARGET: &str = "default";

// ---------------------------------------------------------------------------------------------------------------
// Loading.

/// Loads and validates the configuration from every layer.
///
/// # Errors
/// [`ConfigError`] naming the key or file at fault.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let (mut raw, merged) = layered(sources)?;
    let named = targets::layered(std::mem::take(&mut raw.targets), &merged)?;
    let explicit = ssh_resolve::Explicit::from_sources(sources)?;
    validate::all(raw, named, sources.insecure_no_auth, &explicit)
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
    // A named target's lists, e.g. NEXUS_TARGETS__PROD__MCP__DENIED_DATABASES=a,b.
    let target_prefix = format!("{ENV_PREFIX}TARGETS{ENV_SEPARATOR}");
    let mut names: Vec<String> = sources
        .env
        .keys()
        .filter_map(|k| k.strip_prefix(&target_prefix))
        .filter_map(|rest| rest.split(ENV_SEPARATOR).next())
        .map(str::to_lowercase)
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        for key in LIST_KEYS
            .iter()
            .filter(|k| k.starts_with("ssh.") || k.starts_with("mcp."))
        {
            env = env.with_list_parse_key(&format!("targets.{name}.{key}"));
        }
    }
    env
}

/// The layers, merged: type-checked, and as values (named targets are read again from them).
fn layered(sources: &Sources) -> Result<(Raw, config::Config), ConfigError> {
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
                let addr = validate::parse_socket_addr(key, &current)?;
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
    let raw = typed(merged.clone(), "")?;
    Ok((raw, merged))
}

/// `merged` as [`Raw`]; errors name the key, after `prefix` (a named target's `targets.<name>.`).
fn typed(merged: config::Config, prefix: &str) -> Result<Raw, ConfigError> {
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let key = format!("{prefix}{}", e.path());
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

/// The shipped `[mcp]` defaults (for benchmarks and tests that need a guard without a whole config).
///
/// # Panics
/// Never with the compiled-in file (a unit test loads it).
pub fn mcp_defaults() -> McpConfig {
    #[derive(Deserialize)]
    struct Defaults {
        mcp: raw::RawMcp,
    }
    let defaults: Defaults = config::Config::builder()
        .add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .build()
        .and_then(config::Config::try_deserialize)
        .expect("config/default.toml has an [mcp] section");
    validate::mcp("mcp", defaults.mcp).expect("config/default.toml's [mcp] section is valid")
}

/// Helpers for the loader's unit tests: a config file and an environment in a temporary `$HOME`.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;

    use super::{Sources, load};

    pub(crate) fn sources(toml: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Sources) {
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

    pub(crate) const MINIMAL: &str = r#"
        [ssh]
        host = "bastion.example.com"
        user = "tunnel"
        agent = true
        [mongo]
        uri = "mongodb://app:s3cret@mongo.internal:27018/shop?authSource=admin"
    "#;

    pub(crate) fn err(toml: &str, env: &[(&str, &str)]) -> String {
        let (_d, s) = sources(toml, env);
        load(&s).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testing::{MINIMAL, err, sources};
    use super::*;
    use crate::tunnel::HostKeyPolicy;

    #[test]
    fn defaults_come_from_the_shipped_file() {
        let (_d, s) = sources(MINIMAL, &[]);
        let c = load(&s).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:3000".parse().unwrap());
        assert!(c.targets[0].mcp.read_only);
        let t = c.targets[0].tunnel.clone().unwrap();
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
        let t = c.targets[0].tunnel.as_ref().unwrap();
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
    fn a_typo_gets_the_closest_key() {
        let reason = "ssh: unknown field `keepalive_intervall`, expected one of `enabled`, `host`, `keepalive_interval`, `keepalive_max`";
        assert_eq!(
            with_suggestion(reason),
            "ssh: unknown field `keepalive_intervall`: did you mean `keepalive_interval`?"
        );
        let far = "unknown field `colour`, expected one of `host`, `port`";
        assert_eq!(with_suggestion(far), far);
    }

    #[test]
    fn the_written_out_mcp_defaults_are_the_shipped_ones() {
        let json = |c: &McpConfig| serde_json::to_value(c).unwrap();
        assert_eq!(json(&mcp_defaults()), json(&McpConfig::shipped_defaults()));
    }
}
