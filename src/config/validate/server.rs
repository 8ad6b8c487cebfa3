//! Validates `[server]`: the HTTP listener, the edge's limits, `[server.oauth]` and `[server.sessions]`.

use std::path::Path;
use std::time::Duration;

use super::super::ConfigError;
use super::super::raw::{RawOAuth, RawServer, RawSessions, SessionStoreKind};
use super::{
    bounded_duration, expand_home, nonzero_duration, parse_socket_addr, positive, readable,
    secret_value,
};
use crate::audit::AuditTarget;
use crate::http::ServerConfig;
use crate::http::oauth::OAuthConfig;
use crate::store::RedisConfig;

/// `server.body_read_timeout` when not set, unless half of `server.request_timeout` is less.
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn server(raw: RawServer, insecure_no_auth: bool) -> Result<ServerConfig, ConfigError> {
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
    let oauth = raw.oauth.map(oauth).transpose()?;
    let session_store = sessions(raw.sessions)?;
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

fn sessions(raw: RawSessions) -> Result<Option<RedisConfig>, ConfigError> {
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

fn oauth(raw: RawOAuth) -> Result<OAuthConfig, ConfigError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::super::load;
    use super::super::super::testing::{MINIMAL, err, sources};
    use crate::health::ReadinessPolicy;

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
}
