//! Validates `[ssh]` and `[tunnel]` (after the ssh_config file is merged in) into a [`TunnelConfig`]: the hops,
//! the credentials, the host-key policy and which routes to serve for the MongoDB URI.
//!
//! (About 140 of its lines are unit tests.)

use std::net::SocketAddr;
use std::path::PathBuf;

use super::super::ConfigError;
use super::super::raw::{RawSsh, RawTunnel};
use super::super::ssh_resolve::{self, SshSetting};
use super::{
    Sections, bounded_duration, expand_home, home_dir, key, nonzero_duration, parse_socket_addr,
    positive, readable, required, secret_value,
};
use crate::mongo::uri::MongoUri;
use crate::tunnel::{SshAuth, SshEndpoint, TunnelConfig, TunnelMode};

/// One tunnel from its `[ssh]` and `[tunnel]` sections (`at` names them, and the `[mongo]` section whose URI
/// decides the routes).
pub(super) fn tunnel(
    at: Sections<'_>,
    mut ssh: RawSsh,
    tunnel: RawTunnel,
    uri: &MongoUri,
    explicit: &ssh_resolve::Explicit,
) -> Result<(TunnelConfig, Vec<SshSetting>), ConfigError> {
    let s = at.ssh;
    // ssh_config first: it may give the host, user, port, keys and jump hosts.
    let from_file = ssh_resolve::resolve(s, &mut ssh, explicit)?;
    let host = required(&key(s, "host"), ssh.host.take())?;
    let user = required(&key(s, "user"), ssh.user.take())?;
    let bastion = SshEndpoint {
        user,
        host,
        port: ssh.port,
    };
    let auth = credentials(s, &mut ssh, from_file.private_keys, from_file.certificates)?;
    let auth = SshAuth {
        identities_only: from_file.identities_only,
        ..auth
    };
    let known_hosts = match ssh.known_hosts.take() {
        Some(p) => expand_home(&p),
        None => home_dir()
            .map(|h| h.join(".ssh/known_hosts"))
            .ok_or_else(|| {
                ConfigError::invalid(key(s, "known_hosts"), "not set and $HOME is unknown")
            })?,
    };
    timers(s, &ssh)?;
    let routes = routes(at, tunnel, uri)?;

    let tunnel = TunnelConfig {
        jumps: from_file.jumps,
        bastion,
        auth,
        known_hosts,
        host_key_policy: ssh.host_key_policy,
        connect_timeout: ssh.connect_timeout,
        keepalive_interval: ssh.keepalive_interval,
        keepalive_max: ssh.keepalive_max,
        pty_keeper: ssh.pty_keeper,
        reconnect_min_delay: ssh.reconnect_min_delay,
        reconnect_max_delay: ssh.reconnect_max_delay,
        local_listen: routes.local_listen,
        insecure_public_forward: routes.insecure_public_forward,
        forward_to: routes.forward_to,
        socks: routes.socks,
        targets: routes.targets,
        max_connections: routes.max_connections,
    };
    Ok((tunnel, from_file.settings))
}

/// The credentials of `[ssh]` (section `s`): secrets read, files checked, at least one method.
fn credentials(
    s: &str,
    ssh: &mut RawSsh,
    private_keys: Vec<PathBuf>,
    certificates: Vec<PathBuf>,
) -> Result<SshAuth, ConfigError> {
    let passphrase = secret_value(
        &key(s, "private_key_passphrase"),
        ssh.private_key_passphrase.take(),
        ssh.private_key_passphrase_file.take(),
    )?;
    let password = secret_value(
        &key(s, "password"),
        ssh.password.take(),
        ssh.password_file.take(),
    )?;
    let private_key = ssh.private_key.as_ref().map(|p| expand_home(p));
    let certificate = ssh.certificate.as_ref().map(|p| expand_home(p));
    if let Some(path) = &certificate {
        readable(&key(s, "certificate"), path)?;
        if private_keys.is_empty() && !ssh.agent {
            return Err(ConfigError::invalid(
                key(s, "certificate"),
                format!(
                    "set without its key: set {s}.private_key, or {s}.agent = true when the agent holds the key"
                ),
            ));
        }
    }
    if let Some(path) = &private_key {
        readable(&key(s, "private_key"), path)?;
    } else if passphrase.is_some() && private_keys.is_empty() {
        return Err(ConfigError::invalid(
            key(s, "private_key_passphrase"),
            format!("set without {s}.private_key"),
        ));
    }
    if !ssh.agent && private_keys.is_empty() && password.is_none() {
        return Err(ConfigError::invalid(
            s,
            format!(
                "no authentication method: set {s}.private_key, {s}.password(_file) or {s}.agent = true"
            ),
        ));
    }
    Ok(SshAuth {
        agent: ssh.agent,
        identities_only: false,
        private_keys,
        certificates,
        private_key_passphrase: passphrase,
        password,
    })
}

/// The session's timers: set, and not absurdly long.
fn timers(s: &str, ssh: &RawSsh) -> Result<(), ConfigError> {
    nonzero_duration(&key(s, "connect_timeout"), ssh.connect_timeout)?;
    nonzero_duration(&key(s, "keepalive_interval"), ssh.keepalive_interval)?;
    positive(&key(s, "keepalive_max"), ssh.keepalive_max)?;
    nonzero_duration(&key(s, "reconnect_min_delay"), ssh.reconnect_min_delay)?;
    bounded_duration(&key(s, "reconnect_max_delay"), ssh.reconnect_max_delay)?;
    if ssh.reconnect_max_delay < ssh.reconnect_min_delay {
        return Err(ConfigError::invalid(
            key(s, "reconnect_max_delay"),
            format!("must not be less than {s}.reconnect_min_delay"),
        ));
    }
    Ok(())
}

/// What `[tunnel]` serves for the URI: the fixed forward, the SOCKS route, or both.
struct Routes {
    local_listen: SocketAddr,
    insecure_public_forward: bool,
    forward_to: Option<(String, u16)>,
    socks: bool,
    targets: Vec<(String, u16)>,
    max_connections: usize,
}

fn routes(at: Sections<'_>, tunnel: RawTunnel, uri: &MongoUri) -> Result<Routes, ConfigError> {
    let (t, uri_key) = (at.tunnel, key(at.mongo, "uri"));
    let local_listen = parse_socket_addr(&key(t, "local_listen"), &tunnel.local_listen)?;
    if !local_listen.ip().is_loopback() && !tunnel.insecure_public_forward {
        return Err(ConfigError::invalid(
            key(t, "local_listen"),
            format!(
                "{local_listen} is not a loopback address: whoever reaches it gets raw access to MongoDB, past \
                 the tokens, read-only mode and allow lists; use 127.0.0.1 (or set \
                 {t}.insecure_public_forward = true if that is really meant)"
            ),
        ));
    }
    if tunnel.max_connections < 3 {
        return Err(ConfigError::invalid(
            key(t, "max_connections"),
            "must be at least 3: the MongoDB driver keeps monitoring connections besides its pool",
        ));
    }
    if tunnel.remote_port == Some(0) {
        return Err(ConfigError::invalid(
            key(t, "remote_port"),
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
                uri_key,
                format!(
                    "lists several hosts, but {t}.mode = \"forward\" reaches one host: use {t}.mode = \"auto\" \
                     (every member through the bastion) or list the one host to use (or set {t}.remote_host)"
                ),
            ));
        }
        (None, port) => {
            let (host, uri_port) = uri.first_host();
            Some((host.to_string(), port.unwrap_or(uri_port)))
        }
    };
    if !socks && forward_to.is_none() {
        return Err(ConfigError::invalid(
            uri_key,
            format!(
                "mongodb+srv:// cannot be reached through one fixed forward ({t}.mode = \"forward\"): use \
                 {t}.mode = \"auto\", or mongodb://host:port (or set {t}.remote_host)"
            ),
        ));
    }
    let targets = match (&forward_to, socks) {
        (Some(target), false) => vec![target.clone()],
        (_, true) if !uri.is_srv() => uri.hosts().to_vec(),
        _ => Vec::new(),
    };
    Ok(Routes {
        local_listen,
        insecure_public_forward: tunnel.insecure_public_forward,
        forward_to,
        socks,
        targets,
        max_connections: tunnel.max_connections,
    })
}

/// `[user@]host[:port]`; IPv6 hosts in brackets.
pub(in crate::config) fn parse_endpoint(
    s: &str,
    default_user: &str,
) -> Result<SshEndpoint, String> {
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

#[cfg(test)]
mod tests {
    use super::super::super::load;
    use super::super::super::testing::{MINIMAL, err, sources};
    use super::*;

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
            load(&s).unwrap().targets[0].tunnel.clone().unwrap()
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
    fn ssh_disabled_connects_directly() {
        let c = {
            let (_d, s) = sources(
                "[ssh]\nenabled = false\n[mongo]\nuri = \"mongodb+srv://c.example/\"",
                &[],
            );
            load(&s).unwrap()
        };
        assert!(c.targets[0].tunnel.is_none());
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
        let auth = load(&s).unwrap().targets[0].tunnel.clone().unwrap().auth;
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
    fn errors_name_the_section_they_are_given() {
        let (_d, s) = sources(
            "[ssh]\nuser = \"u\"\nagent = true\n[tunnel]\nmode = \"forward\"\n[mongo]\nuri = \"mongodb://a,b/\"",
            &[],
        );
        let at = Sections {
            ssh: "targets.prod.ssh",
            tunnel: "targets.prod.tunnel",
            mongo: "targets.prod.mongo",
            mcp: "targets.prod.mcp",
        };
        let explicit = ssh_resolve::Explicit::default();
        let raw = || super::super::super::layered(&s).unwrap();
        let uri = MongoUri::parse("mongodb://a,b/").unwrap();
        let e = tunnel(at, raw().0.ssh, raw().0.tunnel, &uri, &explicit).unwrap_err();
        assert_eq!(e.to_string(), "targets.prod.ssh.host: missing");
        let mut ssh = raw().0.ssh;
        ssh.host = Some("h".into());
        let e = tunnel(at, ssh, raw().0.tunnel, &uri, &explicit)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "targets.prod.mongo.uri: lists several hosts, but targets.prod.tunnel.mode"
            ),
            "{e}"
        );
    }
}
