//! Legacy MCP sessions in Redis, as rmcp's `SessionStore`: rmcp stores a session's `initialize` parameters after
//! the handshake, and on a request naming a session this replica does not hold it loads them and replays
//! `initialize` here (`SessionManager::restore_session`). The entry lives `server.session_idle_timeout`, refreshed
//! by [`RedisSessions::touch`] as the session is used on any replica; rmcp deletes it on the client's `DELETE`.
//!
//! A failed load is recorded for the request (`http::sessions::note_store_failure`) so the edge answers with a
//! clear 503 rather than rmcp's bare 500.

use std::time::Duration;

use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};

use super::{Redis, StoreError};

/// rmcp's session store over Redis.
pub struct RedisSessions {
    redis: Redis,
    /// The entries' lifetime: `server.session_idle_timeout`.
    ttl: Duration,
    /// Called with the error when a load fails (the edge explains it to the client).
    on_failure: fn(&StoreError),
}

impl RedisSessions {
    pub fn new(redis: Redis, ttl: Duration, on_failure: fn(&StoreError)) -> Self {
        Self {
            redis,
            ttl,
            on_failure,
        }
    }

    fn key(&self, id: &str) -> String {
        self.redis.key(&format!("session:{id}"))
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Extends a session's entry by another idle timeout (the session is in use).
    ///
    /// # Errors
    /// The store did not answer.
    pub async fn touch(&self, id: &str) -> Result<(), StoreError> {
        let key = self.key(id);
        let ttl = self.ttl_ms();
        self.redis
            .run::<(i64,)>(|p| {
                p.pexpire(key, ttl as i64);
            })
            .await
            .map(drop)
    }

    async fn load_state(&self, id: &str) -> Result<Option<SessionState>, StoreError> {
        let key = self.key(id);
        let (value,): (Option<String>,) = self
            .redis
            .run(|p| {
                p.get(key.clone());
            })
            .await?;
        value
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    key: key.clone(),
                    cause: e.to_string(),
                })
            })
            .transpose()
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        self.load_state(session_id).await.map_err(|e| {
            (self.on_failure)(&e);
            tracing::warn!(cause = %e, "cannot restore a session from the store");
            Box::new(e) as SessionStoreError
        })
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let key = self.key(session_id);
        let value = serde_json::to_string(state)?;
        let ttl = self.ttl_ms();
        self.redis
            .run::<()>(|p| {
                p.pset_ex(key, value, ttl).ignore();
            })
            .await
            .map_err(|e| {
                tracing::warn!(cause = %e, "session not stored: it works on this replica only");
                Box::new(e) as SessionStoreError
            })
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let key = self.key(session_id);
        self.redis
            .run::<()>(|p| {
                p.del(key).ignore();
            })
            .await
            .map_err(|e| Box::new(e) as SessionStoreError)
    }
}
