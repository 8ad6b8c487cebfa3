//! Raw → validated: builds each component's own config type from what the user typed, naming the key at fault.
//!
//! Sections that a named target will repeat (`[ssh]`, `[tunnel]`, `[mongo]`, the guards of `[mcp]`) are validated
//! by functions that take the section's path (`"ssh"`, or e.g. `"targets.prod.ssh"`), so every error names the key
//! as the user wrote it. `server` (HTTP, sessions, OAuth) and `tunnel` (SSH + the routes) are in their own files.

mod server;
mod tunnel;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{Raw, RawHealth, RawLog, RawMcp, RawMongo, RawSsh, RawTunnel};
use super::ssh_resolve;
use super::{Config, ConfigError, DEFAULT_TARGET, TargetConfig};
use crate::health::HealthConfig;
use crate::logging::LogConfig;
use crate::mcp::McpConfig;
use crate::mongo::MongoConfig;
use crate::mongo::uri::MongoUri;
use crate::secret::Secret;
pub(super) use tunnel::parse_endpoint;

/// Where the sections of one MongoDB target are: `ssh`, `tunnel`, `mongo`, `mcp` at the top level (a named target's
/// would be `targets.<name>.ssh`, …). Errors name `<section>.<key>`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sections<'a> {
    pub ssh: &'a str,
    pub tunnel: &'a str,
    pub mongo: &'a str,
    pub mcp: &'a str,
}

impl Sections<'static> {
    /// The top-level `[ssh]`, `[tunnel]`, `[mongo]` and `[mcp]`.
    pub const TOP: Self = Self {
        ssh: "ssh",
        tunnel: "tunnel",
        mongo: "mongo",
        mcp: "mcp",
    };
}

/// The whole configuration: the top-level sections (the target `default`, when there are no `[targets.*]` or the
/// top level names a MongoDB), then each named target's, already layered over the defaults by the loader.
pub(super) fn all(
    raw: Raw,
    named: Vec<(String, bool, Raw)>,
    insecure_no_auth: bool,
    explicit: &ssh_resolve::Explicit,
) -> Result<Config, ConfigError> {
    let server = server::server(raw.server, insecure_no_auth)?;
    let log = log(raw.log)?;
    let health = health(raw.health)?;
    let has_named = !named.is_empty();
    let mut targets = Vec::new();
    if !has_named || raw.mongo.uri.is_some() || raw.mongo.uri_file.is_some() {
        let default = Parts {
            ssh: raw.ssh,
            tunnel: raw.tunnel,
            mongo: raw.mongo,
            mcp: raw.mcp,
        };
        targets.push(target(
            Sections::TOP,
            DEFAULT_TARGET,
            true,
            default,
            explicit,
        )?);
    }
    for (name, required, raw) in named {
        let paths = ["ssh", "tunnel", "mongo", "mcp"].map(|s| format!("targets.{name}.{s}"));
        let at = Sections {
            ssh: &paths[0],
            tunnel: &paths[1],
            mongo: &paths[2],
            mcp: &paths[3],
        };
        let parts = Parts {
            ssh: raw.ssh,
            tunnel: raw.tunnel,
            mongo: raw.mongo,
            mcp: raw.mcp,
        };
        targets.push(target(at, &name, required, parts, explicit)?);
    }
    distinct_forwards(&targets)?;
    Ok(Config {
        server,
        targets,
        named: has_named,
        log,
        health,
    })
}

/// Two targets cannot share a fixed `tunnel.local_listen`: the second would wait for the port for ever.
fn distinct_forwards(targets: &[TargetConfig]) -> Result<(), ConfigError> {
    let fixed = |t: &TargetConfig| {
        t.tunnel
            .as_ref()
            .map(|c| c.local_listen)
            .filter(|a| a.port() != 0)
    };
    for (i, t) in targets.iter().enumerate() {
        if let Some(addr) = fixed(t)
            && let Some(first) = targets[..i].iter().find(|o| fixed(o) == Some(addr))
        {
            let section = |t: &TargetConfig| match t.name.as_str() {
                DEFAULT_TARGET => "tunnel".to_string(),
                name => format!("targets.{name}.tunnel"),
            };
            return Err(ConfigError::invalid(
                format!("{}.local_listen", section(t)),
                format!(
                    "{addr} is also {}.local_listen: give each target its own port (or 0 for a free one)",
                    section(first)
                ),
            ));
        }
    }
    Ok(())
}

/// The sections one target is made of, as typed.
struct Parts {
    ssh: RawSsh,
    tunnel: RawTunnel,
    mongo: RawMongo,
    mcp: RawMcp,
}

/// One target from its sections (`at`: where they are, for the keys errors name).
fn target(
    at: Sections<'_>,
    name: &str,
    required: bool,
    raw: Parts,
    explicit: &ssh_resolve::Explicit,
) -> Result<TargetConfig, ConfigError> {
    let mut mongo = mongo(at.mongo, raw.mongo)?;
    mongo.needs_primary = !raw.mcp.read_only;
    let (tunnel, ssh_settings) = if raw.ssh.enabled {
        let (tunnel, settings) = tunnel::tunnel(at, raw.ssh, raw.tunnel, &mongo.uri, explicit)?;
        (Some(tunnel), settings)
    } else {
        (None, Vec::new())
    };
    Ok(TargetConfig {
        name: name.to_string(),
        required,
        tunnel,
        mongo,
        mcp: mcp(at.mcp, raw.mcp)?,
        ssh_settings,
    })
}

/// `<section>.<name>`: the key an error names.
pub(super) fn key(section: &str, name: &str) -> String {
    format!("{section}.{name}")
}

fn health(raw: RawHealth) -> Result<HealthConfig, ConfigError> {
    nonzero_duration("health.unready_window", raw.unready_window)?;
    nonzero_duration("health.peer_interval", raw.peer_interval)?;
    Ok(HealthConfig {
        readiness: raw.readiness,
        unready_window: raw.unready_window,
        peer_interval: raw.peer_interval,
    })
}

/// A `[mongo]` section (`section`: its path, e.g. `"mongo"`).
fn mongo(section: &str, raw: RawMongo) -> Result<MongoConfig, ConfigError> {
    let uri_key = key(section, "uri");
    let uri = secret_value(&uri_key, raw.uri, raw.uri_file)?.ok_or_else(|| {
        ConfigError::invalid(
            &uri_key,
            match section {
                "mongo" => format!("missing: set {uri_key}, {uri_key}_file or MONGO_URI"),
                _ => format!("missing: set {uri_key} or {uri_key}_file"),
            },
        )
    })?;
    let uri =
        MongoUri::parse(uri.expose()).map_err(|reason| ConfigError::invalid(&uri_key, reason))?;
    nonzero_duration(
        &key(section, "server_selection_timeout"),
        raw.server_selection_timeout,
    )?;
    nonzero_duration(&key(section, "max_time"), raw.max_time)?;
    nonzero_duration(&key(section, "health_interval"), raw.health_interval)?;
    Ok(MongoConfig {
        uri,
        server_selection_timeout: raw.server_selection_timeout,
        max_time: raw.max_time,
        health_interval: raw.health_interval,
        needs_primary: false,
    })
}

/// An `[mcp]` section (`section`: its path, e.g. `"mcp"`).
pub(super) fn mcp(section: &str, raw: RawMcp) -> Result<McpConfig, ConfigError> {
    let max_documents = key(section, "max_documents");
    if raw.max_documents == 0 {
        return Err(ConfigError::invalid(
            &max_documents,
            "must be greater than 0",
        ));
    }
    if raw.default_limit == 0 || raw.default_limit > raw.max_documents {
        return Err(ConfigError::invalid(
            key(section, "default_limit"),
            format!("must be between 1 and {max_documents}"),
        ));
    }
    if raw.max_bytes.as_u64() == 0 {
        return Err(ConfigError::invalid(
            key(section, "max_bytes"),
            "must be greater than 0",
        ));
    }
    let confirm_key = secret_value(&key(section, "confirm_key"), None, raw.confirm_key_file)?;
    if confirm_key.as_ref().is_some_and(|k| k.expose().len() < 32) {
        return Err(ConfigError::invalid(
            key(section, "confirm_key_file"),
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

fn log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(&raw.level)
        .map_err(|e| ConfigError::invalid("log.level", e))?;
    Ok(LogConfig {
        format: raw.format,
        level: raw.level,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Small validators.

pub(super) fn parse_socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("`{value}` is not an IP:PORT address")))
}

pub(super) fn required(key: &str, value: Option<String>) -> Result<String, ConfigError> {
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

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

pub(super) fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::load;
    use super::super::testing::{MINIMAL, err, sources};

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
            c.targets[0]
                .tunnel
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
    fn shipped_mcp_defaults_are_fail_closed() {
        let mcp = super::super::mcp_defaults();
        assert!(mcp.read_only && mcp.block_server_side_js && mcp.confirm_destructive);
        assert_eq!((mcp.default_limit, mcp.max_documents), (10, 100));
    }
}
