//! The `[ssh]` settings after ssh_config: what the user wrote for nexus-mcp (file, env, flags) wins, then the
//! ssh_config file's values for `ssh.host`, then nexus-mcp's built-in defaults (which do not beat the file: port 22
//! in `config/default.toml` must not hide a `Port` line). Each resolved setting keeps where it came from, for
//! `nexus-mcp check`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::raw::RawSsh;
mod report;

use super::ssh_config::{HostSettings, Origin, SshConfigFile};
use super::validate::{key, parse_endpoint, required};
use super::{ConfigError, SEED_ENV, Sources};
use crate::tunnel::{HostKeyPolicy, SshEndpoint};
use report::Report;

/// One resolved SSH setting as `check` prints it: never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshSetting {
    pub key: &'static str,
    pub value: String,
    /// "--config FILE", "environment", "ssh_config FILE:LINE" or "default".
    pub origin: String,
}

/// Which keys the user set, and where: the layers above the built-in defaults. Keys are dotted paths
/// (`ssh.host`), so any section's can be asked about.
#[derive(Debug, Default)]
pub(super) struct Explicit {
    file: Option<(PathBuf, Vec<String>)>,
    env: Vec<String>,
    /// `$HOME` as the sources see it: the default ssh_config, `~` in it.
    home: Option<PathBuf>,
}

impl Explicit {
    /// # Errors
    /// The `--config` file cannot be read or parsed (reported the same way by the main load).
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        let file = match &sources.file {
            Some(path) => {
                let text = super::read_config_file(path)?;
                let layer = config::File::from_str(&text, config::FileFormat::Toml);
                Some((
                    path.clone(),
                    set_keys(config::Config::builder().add_source(layer))?,
                ))
            }
            None => None,
        };
        let mut env = config::Config::builder().add_source(super::env_source(sources));
        for (names, key) in SEED_ENV.iter().filter(|(_, k)| k.starts_with("ssh.")) {
            if let Some(value) = names.iter().rev().find_map(|n| sources.env.get(*n)) {
                env = env
                    .set_override(*key, value.clone())
                    .map_err(super::from_config_error)?;
            }
        }
        Ok(Self {
            file,
            env: set_keys(env)?,
            home: sources
                .env
                .get("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
        })
    }

    /// Where the user set `<section>.<name>`, if they did (the environment is the later layer).
    fn origin(&self, section: &str, name: &str) -> Option<String> {
        let wanted = key(section, name);
        if self.env.contains(&wanted) {
            return Some("environment".into());
        }
        self.file
            .as_ref()
            .filter(|(_, keys)| keys.contains(&wanted))
            .map(|(path, _)| format!("--config {}", path.display()))
    }
}

/// Every key a layer sets, as a dotted path (tables are walked; arrays and values are leaves).
fn set_keys(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<Vec<String>, ConfigError> {
    fn walk(prefix: &str, table: config::Map<String, config::Value>, out: &mut Vec<String>) {
        for (name, value) in table {
            let path = match prefix {
                "" => name,
                _ => key(prefix, &name),
            };
            match value.into_table() {
                Ok(inner) => walk(&path, inner, out),
                Err(_) => out.push(path),
            }
        }
    }
    let built = builder.build().map_err(super::from_config_error)?;
    let mut out = Vec::new();
    walk(
        "",
        built.try_deserialize().map_err(super::from_config_error)?,
        &mut out,
    );
    Ok(out)
}

/// What the ssh_config adds to the `[ssh]` section, beside the values it rewrites in place.
#[derive(Debug, Default)]
pub(super) struct FromFile {
    pub private_keys: Vec<PathBuf>,
    pub certificates: Vec<PathBuf>,
    pub identities_only: bool,
    /// The jump hosts, resolved through the file.
    pub jumps: Vec<SshEndpoint>,
    pub settings: Vec<SshSetting>,
}

/// Resolves an `[ssh]` section (`section`: its path, e.g. `"ssh"`) through the ssh_config file: rewrites host,
/// user, port, known_hosts, host_key_policy and the timers in place, and returns the keys, certificates, jump
/// hosts and the report.
///
/// # Errors
/// [`ConfigError`] naming the key, or the file, line and directive.
pub(super) fn resolve(
    section: &str,
    ssh: &mut RawSsh,
    explicit: &Explicit,
) -> Result<FromFile, ConfigError> {
    let file = config_file(section, ssh, explicit)?;
    let mut out = FromFile::default();
    let mut report = Report {
        explicit,
        section,
        settings: Vec::new(),
    };
    let alias = required(&key(section, "host"), ssh.host.clone())?;
    let s = match &file {
        Some(f) => f.settings(&alias)?,
        None => HostSettings::default(),
    };
    let config_origin = match (&file, explicit.origin(section, "config_file")) {
        (_, Some(origin)) => origin,
        (Some(_), None) => "default (exists)".into(),
        (None, None) => "default (none: no ~/.ssh/config)".into(),
    };
    report.settings.push(SshSetting {
        key: "config_file",
        value: file
            .as_ref()
            .map_or("none".into(), |f| f.path.display().to_string()),
        origin: config_origin,
    });

    // `ssh.host` is what the file is asked about (as `ssh ALIAS`): its HostName, if any, is where to connect.
    let host = match s.host_name.clone() {
        Some((name, origin)) => {
            let value = match name == alias {
                true => name.clone(),
                false => format!("{name} (alias {alias})"),
            };
            report.push("host", value, origin.to_string());
            name
        }
        None => {
            report.push_plain("host", alias.clone());
            alias.clone()
        }
    };
    ssh.host = Some(host);
    if let Some(user) = report.pick_opt("user", ssh.user.clone(), s.user.clone()) {
        ssh.user = Some(user);
    }
    ssh.port = report.pick("port", ssh.port, s.port.clone());
    if ssh.port == 0 {
        return Err(ConfigError::invalid(
            key(section, "port"),
            "must be between 1 and 65535",
        ));
    }
    let user = required(&key(section, "user"), ssh.user.clone())?;

    // Credentials: nexus-mcp's own key (or certificate) replaces the file's list.
    out.private_keys = report.paths("private_key", ssh.private_key.clone(), &s.identity_files);
    out.certificates = report.paths("certificate", ssh.certificate.clone(), &s.certificate_files);
    if let Some((only, origin)) = &s.identities_only {
        out.identities_only = *only;
        report.push("identities_only", only.to_string(), origin.to_string());
    }
    report.push_plain("agent", ssh.agent.to_string());

    let hops = match (explicit.origin(section, "jump"), &s.proxy_jump) {
        (None, Some((hops, origin))) => {
            report.push("jump", hops.join(","), origin.to_string());
            hops.clone()
        }
        _ => {
            report.push_plain("jump", ssh.jump.join(","));
            ssh.jump.clone()
        }
    };
    out.jumps = hops
        .iter()
        .enumerate()
        .map(|(i, hop)| jump(&format!("{section}.jump[{i}]"), hop, &user, file.as_ref()))
        .collect::<Result<_, _>>()?;

    let known_hosts = s.known_hosts.as_ref().map(|(files, origin)| {
        let note = match files.len() {
            0 | 1 => String::new(),
            n => format!(" (first of {n}; nexus-mcp reads one file)"),
        };
        (
            files.first().cloned().unwrap_or_default(),
            origin.clone(),
            note,
        )
    });
    match (explicit.origin(section, "known_hosts"), known_hosts) {
        (None, Some((path, origin, note))) => {
            report.push(
                "known_hosts",
                path.display().to_string(),
                format!("{origin}{note}"),
            );
            ssh.known_hosts = Some(path);
        }
        _ => report.push_plain(
            "known_hosts",
            ssh.known_hosts
                .as_ref()
                .map_or("~/.ssh/known_hosts".into(), |p| p.display().to_string()),
        ),
    }
    ssh.host_key_policy = host_key_policy(
        &mut report,
        ssh.host_key_policy,
        &s.strict_host_key_checking,
    );
    ssh.connect_timeout = report.pick(
        "connect_timeout",
        ssh.connect_timeout,
        nonzero(&s.connect_timeout),
    );
    ssh.keepalive_interval = report.pick(
        "keepalive_interval",
        ssh.keepalive_interval,
        nonzero(&s.server_alive_interval),
    );
    ssh.keepalive_max = report.pick(
        "keepalive_max",
        ssh.keepalive_max,
        s.server_alive_count_max.clone().filter(|(n, _)| *n > 0),
    );
    if ssh.password.is_some() || ssh.password_file.is_some() {
        report.push_plain("password", "*** (set)".into());
    }
    out.settings = report.settings;
    Ok(out)
}

/// `ssh.config_file`: unset → `~/.ssh/config` when it exists; `"none"` → no file.
fn config_file(
    section: &str,
    ssh: &RawSsh,
    explicit: &Explicit,
) -> Result<Option<SshConfigFile>, ConfigError> {
    let home = explicit.home.as_deref();
    let path = match ssh.config_file.as_deref() {
        Some("none") => return Ok(None),
        Some(path) => expand(path, home),
        None => match home.map(|h| h.join(".ssh/config")) {
            Some(path) if path.is_file() => path,
            _ => return Ok(None),
        },
    };
    if !path.is_file() {
        return Err(ConfigError::invalid(
            key(section, "config_file"),
            format!(
                "{}: no such file (set \"none\" to use no ssh_config)",
                path.display()
            ),
        ));
    }
    SshConfigFile::load(&path, home).map(Some)
}

fn expand(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// One ProxyJump hop (`[user@]host[:port]`, named `key` in errors, e.g. `ssh.jump[0]`): what it does not say comes
/// from the file's block for its host, then the bastion's user and port 22.
fn jump(
    key: &str,
    hop: &str,
    bastion_user: &str,
    file: Option<&SshConfigFile>,
) -> Result<SshEndpoint, ConfigError> {
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    let given_user = hop.rsplit_once('@').map(|(u, _)| u.to_string());
    let given_port = hop.rsplit_once('@').map_or(hop, |(_, h)| h);
    let has_port = given_port.starts_with('[') && given_port.contains("]:")
        || !given_port.starts_with('[') && given_port.contains(':');
    let parsed = parse_endpoint(hop, bastion_user).map_err(|r| ConfigError::invalid(key, r))?;
    let Some(file) = file else {
        return Ok(parsed);
    };
    let s = file.settings(&parsed.host)?;
    if let Some((hops, origin)) = s.proxy_jump.as_ref().filter(|(h, _)| !h.is_empty()) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{origin}: jump host {:?} has its own ProxyJump ({}): nexus-mcp does not nest them; list the \
                 whole chain in one ProxyJump (or ssh.jump)",
                parsed.host,
                hops.join(",")
            ),
        ));
    }
    Ok(SshEndpoint {
        user: given_user
            .or_else(|| s.user.map(|(u, _)| u))
            .unwrap_or(parsed.user),
        port: match (has_port, s.port) {
            (false, Some((port, _))) => port,
            _ => parsed.port,
        },
        host: s.host_name.map_or(parsed.host, |(h, _)| h),
    })
}

/// StrictHostKeyChecking never weakens nexus-mcp's policy: only `ssh.host_key_policy` can.
fn host_key_policy(
    report: &mut Report<'_>,
    current: HostKeyPolicy,
    file: &Option<(String, Origin)>,
) -> HostKeyPolicy {
    let name = |p: HostKeyPolicy| match p {
        HostKeyPolicy::Strict => "strict",
        HostKeyPolicy::AcceptNew => "accept-new",
        HostKeyPolicy::InsecureAcceptAny => "insecure-accept-any",
    };
    let rank = |p: HostKeyPolicy| match p {
        HostKeyPolicy::Strict => 2,
        HostKeyPolicy::AcceptNew => 1,
        HostKeyPolicy::InsecureAcceptAny => 0,
    };
    if let Some(origin) = report.origin("host_key_policy") {
        report.push("host_key_policy", name(current).into(), origin);
        return current;
    }
    let Some((value, origin)) = file else {
        report.push_plain("host_key_policy", name(current).into());
        return current;
    };
    let wanted = match value.as_str() {
        "yes" | "ask" => HostKeyPolicy::Strict,
        "accept-new" => HostKeyPolicy::AcceptNew,
        _ => HostKeyPolicy::InsecureAcceptAny,
    };
    if rank(wanted) >= rank(current) {
        report.push("host_key_policy", name(wanted).into(), origin.to_string());
        wanted
    } else {
        report.push(
            "host_key_policy",
            name(current).into(),
            format!(
                "default ({origin}: StrictHostKeyChecking {value} is weaker and ignored; set ssh.host_key_policy \
                 to choose it)"
            ),
        );
        current
    }
}

/// OpenSSH's 0 means "off" (ServerAliveInterval) or "the system's" (ConnectTimeout): nexus-mcp keeps its own.
fn nonzero(v: &Option<(Duration, Origin)>) -> Option<(Duration, Origin)> {
    v.clone().filter(|(d, _)| !d.is_zero())
}
