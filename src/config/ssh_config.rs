//! `~/.ssh/config` (or `ssh.config_file`): what it says for `ssh.host` — an alias or a plain name — and for each
//! ProxyJump hop, with OpenSSH's semantics for the directives nexus-mcp supports: HostName, User, Port,
//! IdentityFile, CertificateFile, IdentitiesOnly, ProxyJump, UserKnownHostsFile, StrictHostKeyChecking,
//! ServerAliveInterval/CountMax, ConnectTimeout; the first obtained value wins; IdentityFile and CertificateFile
//! accumulate.
//!
//! (Over 400 lines: about 155 are unit tests.)
//!
//! Values come from the `ssh2-config` parser (Host patterns, Include, first-wins merging). That crate keeps no line
//! numbers and silently tolerates what it cannot evaluate, so a small reader here walks the same files (following
//! Include) to refuse what would change the meaning of the file if ignored — `Match` anywhere, and
//! ProxyCommand, HostKeyAlias, KnownHostsCommand, CanonicalizeHostname, IdentityAgent, PKCS11Provider,
//! RevokedHostKeys or a `%` token where they apply — naming file, line and directive, and to say which line each
//! value came from. Other directives (Ciphers, ControlMaster, ForwardAgent, …) do not change where nexus-mcp
//! connects or what it trusts, and are ignored.
//!
//! Reads files; knows no component. The merge with nexus-mcp's own settings is in the parent (`config`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{HostClause, HostParams, ParseRule, SshConfig};

use super::ConfigError;

/// The key errors about the file are reported under.
const KEY: &str = "ssh.config_file";
/// Include nesting beyond this is refused (OpenSSH allows 16 too).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Directives that would change where nexus-mcp connects or what it trusts, and that it does not implement: refused
/// where they apply (`Match` is refused anywhere: whether it applies cannot be told without evaluating it).
const REFUSED: [&str; 7] = [
    "proxycommand",
    "hostkeyalias",
    "knownhostscommand",
    "canonicalizehostname",
    "identityagent",
    "pkcs11provider",
    "revokedhostkeys",
];

/// Supported directives whose values could hold `%` tokens (none are expanded: such a value is refused).
const TOKENIZED: [&str; 6] = [
    "hostname",
    "user",
    "identityfile",
    "certificatefile",
    "userknownhostsfile",
    "proxyjump",
];

/// A line of the file: where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One directive line and the Host scopes it sits in (every scope must match for it to apply).
#[derive(Debug)]
struct Directive {
    origin: Origin,
    keyword: String,
    args: String,
    scopes: Vec<Vec<HostClause>>,
}

/// A parsed ssh_config file.
pub(crate) struct SshConfigFile {
    pub path: PathBuf,
    /// Where `~` points.
    home: Option<PathBuf>,
    parsed: SshConfig,
    directives: Vec<Directive>,
}

/// What the file says for one host, with the line of each value.
#[derive(Debug, Default)]
pub(crate) struct HostSettings {
    pub host_name: Option<(String, Origin)>,
    pub user: Option<(String, Origin)>,
    pub port: Option<(u16, Origin)>,
    pub identity_files: Vec<(PathBuf, Origin)>,
    pub certificate_files: Vec<(PathBuf, Origin)>,
    pub identities_only: Option<(bool, Origin)>,
    /// `none` is an empty list.
    pub proxy_jump: Option<(Vec<String>, Origin)>,
    pub known_hosts: Option<(Vec<PathBuf>, Origin)>,
    pub strict_host_key_checking: Option<(String, Origin)>,
    pub server_alive_interval: Option<(Duration, Origin)>,
    pub server_alive_count_max: Option<(usize, Origin)>,
    pub connect_timeout: Option<(Duration, Origin)>,
}

impl SshConfigFile {
    /// Reads and parses `path`; `~` and relative Include paths resolve against `home` (as OpenSSH's user config).
    ///
    /// # Errors
    /// [`ConfigError`] under `ssh.config_file`: unreadable, unparsable, or `Match` anywhere (naming file and line).
    pub fn load(path: &Path, home: Option<&Path>) -> Result<Self, ConfigError> {
        let mut directives = Vec::new();
        scan(path, home, &[], 0, &mut directives)?;
        let text = read(path)?;
        let mut parser = SshConfig::default();
        if let Some(home) = home {
            parser = parser.home_dir(home);
        }
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let parsed = parser
            .parse(&mut text.as_bytes(), rules)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            home: home.map(Path::to_path_buf),
            parsed,
            directives,
        })
    }

    /// What the file says for `host` (an alias or a name, as given to `ssh`).
    ///
    /// # Errors
    /// A refused directive or a `%` token in a line that applies to `host`, naming file, line and directive; a
    /// value that is not what its directive takes.
    pub fn settings(&self, host: &str) -> Result<HostSettings, ConfigError> {
        let applying: Vec<&Directive> = self
            .directives
            .iter()
            .filter(|d| d.scopes.iter().all(|s| clauses_match(s, host)))
            .collect();
        for d in &applying {
            if REFUSED.contains(&d.keyword.as_str()) && !harmless(d) {
                return Err(invalid(format!(
                    "{}: `{}` (applies to {host:?}) is not supported by nexus-mcp, and ignoring it would change \
                     where it connects or what it trusts: remove it for this host, or set ssh.config_file to \
                     another file (or \"none\")",
                    d.origin,
                    d.spelled()
                )));
            }
            if TOKENIZED.contains(&d.keyword.as_str()) && d.args.contains('%') {
                return Err(invalid(format!(
                    "{}: `{} {}` (applies to {host:?}): `%` tokens are not expanded by nexus-mcp; write the \
                     value out",
                    d.origin,
                    d.spelled(),
                    d.args
                )));
            }
        }
        let first = |keyword: &str| {
            applying
                .iter()
                .find(|d| d.keyword == keyword)
                .map(|d| d.origin.clone())
        };
        let every = |keyword: &str| -> Vec<Origin> {
            applying
                .iter()
                .filter(|d| d.keyword == keyword)
                .map(|d| d.origin.clone())
                .collect()
        };
        let params = self.parsed.query(host);
        let raw = |keyword: &str| params.unsupported_fields.get(keyword);
        let mut s = HostSettings {
            host_name: params.host_name.clone().zip(first("hostname")),
            user: params.user.clone().zip(first("user")),
            port: params.port.zip(first("port")),
            proxy_jump: params
                .proxy_jump
                .clone()
                .map(none_is_empty)
                .zip(first("proxyjump")),
            server_alive_interval: params
                .server_alive_interval
                .zip(first("serveraliveinterval")),
            connect_timeout: params.connect_timeout.zip(first("connecttimeout")),
            ..HostSettings::default()
        };
        s.identity_files = identity_files(&params, every("identityfile"));
        // ssh2-config keeps one CertificateFile; OpenSSH uses every one that applies: read from the lines.
        s.certificate_files = applying
            .iter()
            .filter(|d| d.keyword == "certificatefile")
            .flat_map(|d| {
                d.args.split_whitespace().map(|a| {
                    (
                        expand_tilde(a.trim_matches('"'), self.home.as_deref()),
                        d.origin.clone(),
                    )
                })
            })
            .collect();
        if let Some((args, origin)) = raw("identitiesonly").zip(first("identitiesonly")) {
            s.identities_only = Some((yes_no(args, &origin)?, origin));
        }
        if let Some((args, origin)) = raw("userknownhostsfile").zip(first("userknownhostsfile")) {
            let files = args
                .iter()
                .map(|a| expand_tilde(a, self.home.as_deref()))
                .collect();
            s.known_hosts = Some((files, origin));
        }
        if let Some((args, origin)) =
            raw("stricthostkeychecking").zip(first("stricthostkeychecking"))
        {
            s.strict_host_key_checking = Some((args.join(" ").to_ascii_lowercase(), origin));
        }
        if let Some((args, origin)) = raw("serveralivecountmax").zip(first("serveralivecountmax")) {
            let n = args
                .first()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| invalid(format!("{origin}: ServerAliveCountMax takes a number")))?;
            s.server_alive_count_max = Some((n, origin));
        }
        Ok(s)
    }
}

impl Directive {
    /// The directive as a user writes it (keywords are case-insensitive; the line's own spelling is not kept).
    fn spelled(&self) -> String {
        KEYWORDS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&self.keyword))
            .map_or_else(|| self.keyword.clone(), |k| (*k).to_string())
    }
}

/// OpenSSH's spelling of the directives named in errors.
const KEYWORDS: [&str; 14] = [
    "ProxyCommand",
    "HostKeyAlias",
    "KnownHostsCommand",
    "CanonicalizeHostname",
    "IdentityAgent",
    "PKCS11Provider",
    "RevokedHostKeys",
    "HostName",
    "User",
    "IdentityFile",
    "CertificateFile",
    "UserKnownHostsFile",
    "ProxyJump",
    "Match",
];

/// Refused directives whose value means "as if absent".
fn harmless(d: &Directive) -> bool {
    let value = d.args.trim().trim_matches('"').to_ascii_lowercase();
    match d.keyword.as_str() {
        "canonicalizehostname" => value == "no",
        "proxycommand" | "knownhostscommand" | "pkcs11provider" => value == "none",
        "identityagent" => value == "ssh_auth_sock" || value == "$ssh_auth_sock",
        _ => false,
    }
}

/// IdentityFile values (as the parser accumulated them) with the line of each (one path per line, as written in
/// practice; extra paths on a line are given the last line).
fn identity_files(params: &HostParams, lines: Vec<Origin>) -> Vec<(PathBuf, Origin)> {
    let paths = params.identity_file.clone().unwrap_or_default();
    let last = lines.last().cloned();
    paths
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| {
            lines
                .get(i)
                .cloned()
                .or_else(|| last.clone())
                .map(|o| (p, o))
        })
        .collect()
}

fn none_is_empty(hops: Vec<String>) -> Vec<String> {
    if hops.len() == 1 && hops[0].eq_ignore_ascii_case("none") {
        Vec::new()
    } else {
        hops
    }
}

fn yes_no(args: &[String], origin: &Origin) -> Result<bool, ConfigError> {
    match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
        Some("yes" | "true") => Ok(true),
        Some("no" | "false") => Ok(false),
        _ => Err(invalid(format!("{origin}: expected yes or no"))),
    }
}

fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if path == "~" => home.map_or_else(|| PathBuf::from(path), Path::to_path_buf),
        _ => PathBuf::from(path),
    }
}

/// OpenSSH's Host matching: some pattern matches and no negated one does.
fn clauses_match(clauses: &[HostClause], host: &str) -> bool {
    let mut matched = false;
    for clause in clauses {
        if clause.intersects(host) {
            if clause.negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn read(path: &Path) -> Result<String, ConfigError> {
    crate::files::read_text_bounded(path, crate::files::MAX_CONFIG)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: KEY.into(),
        reason,
    }
}

/// Reads `path` into `out`, line by line, following Include (paths and globs as OpenSSH resolves them: absolute,
/// `~/…`, else under `~/.ssh/`).
fn scan(
    path: &Path,
    home: Option<&Path>,
    scopes: &[Vec<HostClause>],
    depth: usize,
    out: &mut Vec<Directive>,
) -> Result<(), ConfigError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(invalid(format!(
            "{}: Include nested deeper than {MAX_INCLUDE_DEPTH} levels",
            path.display()
        )));
    }
    let text = read(path)?;
    let mut host: Option<Vec<HostClause>> = None;
    for (i, line) in text.lines().enumerate() {
        let origin = Origin {
            file: path.to_path_buf(),
            line: i + 1,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let split = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let keyword = line[..split].to_ascii_lowercase();
        let args = line[split..]
            .trim_start()
            .trim_start_matches('=')
            .trim()
            .to_string();
        let mut here = scopes.to_vec();
        here.extend(host.clone());
        match keyword.as_str() {
            "host" => {
                let clauses = args
                    .split_whitespace()
                    .map(|p| p.trim_matches('"'))
                    .map(|p| match p.strip_prefix('!') {
                        Some(p) => HostClause::new(p.to_string(), true),
                        None => HostClause::new(p.to_string(), false),
                    })
                    .collect();
                host = Some(clauses);
            }
            "match" => {
                return Err(invalid(format!(
                    "{origin}: `Match` is not supported by nexus-mcp (it cannot tell which hosts it applies to \
                     without evaluating it): use `Host` blocks, or set ssh.config_file to another file (or \
                     \"none\")"
                )));
            }
            "include" => {
                for arg in args.split_whitespace().map(|a| a.trim_matches('"')) {
                    for file in include_files(arg, home, &origin)? {
                        scan(&file, home, &here, depth + 1, out)?;
                    }
                }
            }
            _ => out.push(Directive {
                origin,
                keyword,
                args,
                scopes: here,
            }),
        }
    }
    Ok(())
}

fn include_files(
    arg: &str,
    home: Option<&Path>,
    origin: &Origin,
) -> Result<Vec<PathBuf>, ConfigError> {
    let pattern = if arg.starts_with('/') {
        PathBuf::from(arg)
    } else if arg.starts_with('~') {
        expand_tilde(arg, home)
    } else {
        let Some(home) = home else {
            return Err(invalid(format!(
                "{origin}: Include {arg}: $HOME is unknown"
            )));
        };
        home.join(".ssh").join(arg)
    };
    let bad = |e: &dyn fmt::Display| invalid(format!("{origin}: Include {arg}: {e}"));
    let mut files = glob::glob(&pattern.to_string_lossy())
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn at(path: &Path, line: usize) -> Origin {
        Origin {
            file: path.to_path_buf(),
            line,
        }
    }

    #[test]
    fn first_obtained_value_wins_and_identity_files_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "config",
            "Host prod\n  HostName 10.0.0.5\n  Port 2222\n  IdentityFile /k/prod\n\
             Host *\n  User ops\n  Port 22\n  IdentityFile /k/default\n  ServerAliveInterval 7\n\
               ServerAliveCountMax 4\n  ConnectTimeout 3\n  IdentitiesOnly yes\n  StrictHostKeyChecking Yes\n\
               UserKnownHostsFile ~/kh /other\n  ProxyJump j1,me@j2:2200\n  CertificateFile /k/prod-cert.pub\n",
        );
        let f = SshConfigFile::load(&path, Some(dir.path())).unwrap();
        let s = f.settings("prod").unwrap();
        assert_eq!(s.host_name, Some(("10.0.0.5".into(), at(&path, 2))));
        assert_eq!(s.port, Some((2222, at(&path, 3))));
        assert_eq!(s.user, Some(("ops".into(), at(&path, 6))));
        assert_eq!(
            s.identity_files,
            vec![
                ("/k/prod".into(), at(&path, 4)),
                ("/k/default".into(), at(&path, 8))
            ]
        );
        assert_eq!(
            s.certificate_files,
            vec![("/k/prod-cert.pub".into(), at(&path, 16))]
        );
        assert_eq!(s.identities_only, Some((true, at(&path, 12))));
        assert_eq!(
            s.strict_host_key_checking,
            Some(("yes".into(), at(&path, 13)))
        );
        assert_eq!(
            s.server_alive_interval,
            Some((Duration::from_secs(7), at(&path, 9)))
        );
        assert_eq!(s.server_alive_count_max, Some((4, at(&path, 10))));
        assert_eq!(
            s.connect_timeout,
            Some((Duration::from_secs(3), at(&path, 11)))
        );
        assert_eq!(
            s.proxy_jump,
            Some((vec!["j1".into(), "me@j2:2200".into()], at(&path, 15)))
        );
        assert_eq!(
            s.known_hosts,
            Some((vec![dir.path().join("kh"), "/other".into()], at(&path, 14)))
        );
        let other = f.settings("elsewhere").unwrap();
        assert_eq!(other.host_name, None);
        assert_eq!(other.port, Some((22, at(&path, 7))));
    }

    #[test]
    fn match_is_refused_anywhere_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "config",
            "Host a\n  User x\n\nMatch host b exec true\n  User y\n",
        );
        let e = SshConfigFile::load(&path, Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        let expected = format!(
            "ssh.config_file: {}:4: `Match` is not supported",
            path.display()
        );
        assert!(e.starts_with(&expected), "{e}");
    }

    #[test]
    fn refused_directives_only_where_they_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "config",
            "Host legacy\n  ProxyCommand ssh -W %h:%p gw\nHost tokens\n  IdentityFile ~/.ssh/%h\n\
             Host fine\n  CanonicalizeHostname no\n  ProxyCommand none\n  HostName fine.example\n",
        );
        let f = SshConfigFile::load(&path, Some(dir.path())).unwrap();
        let e = f.settings("legacy").unwrap_err().to_string();
        let expected = format!(
            "ssh.config_file: {}:2: `ProxyCommand` (applies to \"legacy\")",
            path.display()
        );
        assert!(e.starts_with(&expected), "{e}");
        let e = f.settings("tokens").unwrap_err().to_string();
        assert!(e.contains(":4: `IdentityFile ~/.ssh/%h`"), "{e}");
        assert!(e.contains("`%` tokens are not expanded"), "{e}");
        assert_eq!(
            f.settings("fine").unwrap().host_name.unwrap().0,
            "fine.example"
        );
    }

    #[test]
    fn include_follows_openssh_paths_and_scopes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".ssh/conf.d")).unwrap();
        let inner = file(
            &dir.path().join(".ssh/conf.d"),
            "b.conf",
            "Host b\n  Port 2201\n  Match all\n",
        );
        let _a = file(
            &dir.path().join(".ssh/conf.d"),
            "a.conf",
            "Host a\n  Port 2200\n",
        );
        let path = file(dir.path(), "config", "Include conf.d/*.conf\n");
        let e = SshConfigFile::load(&path, Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("{}:3: `Match`", inner.display())),
            "{e}"
        );
        std::fs::write(&inner, "Host b\n  Port 2201\n").unwrap();
        let f = SshConfigFile::load(&path, Some(dir.path())).unwrap();
        assert_eq!(f.settings("b").unwrap().port, Some((2201, at(&inner, 2))));
        assert_eq!(f.settings("a").unwrap().port.unwrap().0, 2200);
    }

    #[test]
    fn negated_patterns_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "config",
            "Host *.example !db.example\n  User web\n",
        );
        let f = SshConfigFile::load(&path, Some(dir.path())).unwrap();
        assert_eq!(f.settings("app.example").unwrap().user.unwrap().0, "web");
        assert_eq!(f.settings("db.example").unwrap().user, None);
    }
}
