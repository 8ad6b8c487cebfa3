//! The shared store of a fleet of replicas: Redis, reached with bounded connect and command timeouts.
//!
//! - [`sessions`]: rmcp's `SessionStore` (a legacy session's `initialize` parameters, so another replica can
//!   replay the handshake and serve the session), with a TTL of `server.session_idle_timeout` refreshed on use.
//! - [`peers`]: each replica's dependency checks, for the fleet readiness policy (`health::PeerBoard`).
//! - [`relay`]: opaque messages for one replica (pub/sub, a channel per replica): a legacy session's answer to a
//!   question another replica asked.
//!
//! A Redis outage never hangs a request: every command ends within `connect_timeout + command_timeout` with a
//! [`StoreError`]. This module knows nothing of HTTP, MCP or the tunnel; it never logs the URL's password.

pub mod peers;
pub mod relay;
pub mod sessions;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;

use crate::secret::Secret;

/// `[server.sessions]` with `store = "redis"`.
#[derive(Clone, Debug, Serialize)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` (a secret: it may carry the password).
    pub url: Secret,
    /// Prepended to every key, so several deployments can share one Redis.
    pub key_prefix: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

/// Checks a Redis URL without connecting; the reason never repeats the URL (it may hold a password).
///
/// # Errors
/// Why the URL is not usable.
pub fn check_url(url: &str) -> Result<(), String> {
    if !url.starts_with("redis://") {
        return Err(
            "must be a redis:// URL (redis://[:password@]host:port[/db]); TLS (rediss://) is not built in"
                .into(),
        );
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("not a valid Redis URL ({})", e.category()))
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable (Redis at {addr}): {cause}")]
    Unavailable { addr: String, cause: String },
    #[error("session store entry {key} is unreadable: {cause}")]
    Corrupt { key: String, cause: String },
}

/// A Redis connection shared by the store's users; cheap to clone. It connects on first use and reconnects by
/// itself.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    /// For the relay's subscription (a connection of its own).
    client: redis::Client,
    /// host:port, for errors (never the password).
    addr: String,
    prefix: String,
    /// Hard bound on one command, reconnect included.
    limit: Duration,
}

impl Redis {
    /// A client for `config` (no connection yet).
    ///
    /// # Errors
    /// The URL is not valid (the loader checked it already).
    pub fn new(config: &RedisConfig) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(config.url.expose()).map_err(|e| StoreError::Unavailable {
                addr: "?".into(),
                cause: e.category().to_string(),
            })?;
        let addr = client.get_connection_info().addr().to_string();
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.connect_timeout);
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), manager).map_err(|e| {
                StoreError::Unavailable {
                    addr: addr.clone(),
                    cause: e.to_string(),
                }
            })?;
        Ok(Self {
            conn,
            client,
            addr,
            prefix: config.key_prefix.clone(),
            limit: config.connect_timeout + config.command_timeout,
        })
    }

    /// The same connection with keys under `prefix` + `scope` + `:` (e.g. one named target's peer health).
    pub fn scoped(&self, scope: &str) -> Self {
        Self {
            prefix: format!("{}{scope}:", self.prefix),
            ..self.clone()
        }
    }

    /// `prefix` + `name`.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one command (or pipeline) within the hard bound.
    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: impl FnOnce(&mut redis::Pipeline),
    ) -> Result<T, StoreError> {
        let mut pipe = redis::pipe();
        cmd(&mut pipe);
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.limit, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.unavailable(e.to_string())),
            Err(_) => {
                Err(self.unavailable(format!("no answer within {} ms", self.limit.as_millis())))
            }
        }
    }

    fn unavailable(&self, cause: String) -> StoreError {
        StoreError::Unavailable {
            addr: self.addr.clone(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_redis_urls_are_accepted_and_reasons_do_not_repeat_them() {
        assert!(check_url("redis://:pw@127.0.0.1:6379/0").is_ok());
        let why = check_url("rediss://:hunter2@redis:6379").unwrap_err();
        assert!(
            why.contains("redis://") && !why.contains("hunter2"),
            "{why}"
        );
        let why = check_url("redis://:hunter2@redis:notaport").unwrap_err();
        assert!(!why.contains("hunter2"), "{why}");
    }
}
