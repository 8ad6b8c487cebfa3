//! Legacy MCP sessions (`Mcp-Session-Id`): how many are open, overall and per caller, and who owns each.
//! (Over 400 lines: the place ledger and the `SessionManager` wrapper that spends its tickets share one task-local
//! protocol and read best together; about 95 lines are unit tests.)
//!
//! The edge reserves a place ([`Ticket`]) before rmcp sees an `initialize` that opens a session, and refuses the
//! request with a clear error when there is none ([`Full`]). rmcp then creates the session through
//! [`CappedSessions`], which finds the ticket in a task-local (rmcp's `create_session` is awaited in the request's
//! own task and is given nothing of the request) and binds it to the session id. The place is freed when rmcp
//! closes the session: on `DELETE`, when the session has been idle for `server.session_idle_timeout` (rmcp's
//! `keep_alive`: its worker ends, the server task ends, and rmcp calls `close_session`, dropping the session's
//! state), and at shutdown. A ticket that was not used is freed when the request ends.
//!
//! With a shared store (`[server.sessions] store = "redis"`), a request naming a session this replica does not hold
//! makes rmcp restore it here (`restore_session`, awaited in the request's task): the restored session takes a
//! place for the request's caller, found in the same task-local [`Scope`] the edge opens for every request that
//! names a session; over a cap, or with the store unavailable, the refusal is noted in the scope and the edge
//! answers it clearly (fail closed). Each use of a session extends its store entry (at most every quarter of the
//! idle timeout per replica), so an active session never expires from the store. With the store, the client's
//! answers to questions another replica asked are relayed there (`http::relay`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use prometheus::IntGauge;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, ServerSseMessage};
use rmcp::transport::streamable_http_server::{SessionId, session::EventStore};

use super::relay::{Relay, Tagged};
use crate::store::StoreError;
use crate::store::sessions::RedisSessions;

tokio::task_local! {
    /// What the request being handled may do with session places, and what went wrong.
    static SCOPE: Arc<Scope>;
}

/// A request's dealings with session places: the edge opens it, the session manager uses it, the edge reads the
/// refusal (if any) afterwards.
pub struct Scope {
    /// Who is asking (a restored session's place is theirs).
    caller: String,
    /// The place the edge reserved for the session this request's `initialize` opens.
    ticket: Mutex<Option<Ticket>>,
    /// Why a session could not be restored for this request.
    refusal: Mutex<Option<Refusal>>,
}

/// Why a session named by a request could not be restored on this replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Restoring it would exceed a cap.
    Full(Full),
    /// The shared store did not answer.
    Store(String),
}

impl Scope {
    /// A scope for `caller`'s request, with the place reserved for its `initialize` (if it is one).
    pub fn new(caller: &str, ticket: Option<Ticket>) -> Arc<Self> {
        Arc::new(Self {
            caller: caller.to_string(),
            ticket: Mutex::new(ticket),
            refusal: Mutex::new(None),
        })
    }

    fn refuse(&self, refusal: Refusal) {
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
    }

    /// Why a session could not be restored while the request was handled.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `request` with this scope available to the session manager and the store.
    pub async fn within<F: Future>(self: Arc<Self>, request: F) -> F::Output {
        SCOPE.scope(self, request).await
    }
}

/// The shared store could not load a session for the request being handled: noted for the edge.
pub fn note_store_failure(e: &StoreError) {
    let _ = SCOPE.try_with(|s| s.refuse(Refusal::Store(e.to_string())));
}

/// How long handing a relayed answer to its session may take (the session's queue is full: it is stuck).
const DELIVER_WITHIN: Duration = Duration::from_secs(5);

/// The session caps and the sessions open.
pub struct SessionLimits {
    /// `server.max_sessions`.
    max_total: usize,
    /// `server.max_sessions_per_caller`.
    max_per_caller: usize,
    counts: Mutex<Counts>,
    /// `nexus_http_sessions`: places taken (sessions open, and the few being opened).
    open: IntGauge,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_caller: HashMap<String, usize>,
    /// Session id → caller, for the sessions open.
    owners: HashMap<String, String>,
}

/// Why no session can be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// `server.max_sessions` sessions are open.
    Overall(usize),
    /// This caller has `server.max_sessions_per_caller` sessions open.
    Caller(usize),
}

/// A place for one session; freed when dropped unless bound to a session.
pub struct Ticket {
    limits: Arc<SessionLimits>,
    caller: Option<String>,
}

impl SessionLimits {
    pub fn new(max_total: usize, max_per_caller: usize, open: IntGauge) -> Self {
        Self {
            max_total,
            max_per_caller,
            counts: Mutex::new(Counts::default()),
            open,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for a session of `caller`.
    ///
    /// # Errors
    /// [`Full`] when a cap is reached.
    pub fn reserve(self: &Arc<Self>, caller: &str) -> Result<Ticket, Full> {
        let mut c = self.counts();
        // The caller's own cap first: that refusal is the one the caller can act on.
        let mine = c.per_caller.get(caller).copied().unwrap_or(0);
        if mine >= self.max_per_caller {
            return Err(Full::Caller(self.max_per_caller));
        }
        if c.total >= self.max_total {
            return Err(Full::Overall(self.max_total));
        }
        *c.per_caller.entry(caller.to_string()).or_default() += 1;
        c.total += 1;
        self.open.set(c.total as i64);
        Ok(Ticket {
            limits: self.clone(),
            caller: Some(caller.to_string()),
        })
    }

    fn free(&self, c: &mut Counts, caller: &str) {
        if let Some(n) = c.per_caller.get_mut(caller) {
            *n -= 1;
            if *n == 0 {
                c.per_caller.remove(caller);
            }
        }
        c.total = c.total.saturating_sub(1);
        self.open.set(c.total as i64);
    }

    /// Frees the place of a closed session (once, however often rmcp closes it).
    fn closed(&self, id: &str) {
        let mut c = self.counts();
        if let Some(caller) = c.owners.remove(id) {
            self.free(&mut c, &caller);
        }
    }
}

impl Ticket {
    fn bind(mut self, id: &SessionId) {
        if let Some(caller) = self.caller.take() {
            let mut c = self.limits.counts();
            c.owners.insert(id.to_string(), caller);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(caller) = self.caller.take() {
            let mut c = self.limits.counts();
            self.limits.free(&mut c, &caller);
        }
    }
}

/// A session was to be created without a place reserved by the edge.
#[derive(Debug, thiserror::Error)]
pub enum CappedSessionsError {
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    #[error(
        "no session place was reserved for this request (sessions are opened by an initialize request only)"
    )]
    Unreserved,
    #[error("the session cannot be resumed on this replica: {0:?} session places are taken")]
    Full(Full),
}

/// rmcp's in-memory session manager, counting its sessions against [`SessionLimits`].
pub struct CappedSessions {
    inner: LocalSessionManager,
    limits: Arc<SessionLimits>,
    /// The shared store, whose entries each use of a session extends.
    store: Option<Arc<RedisSessions>>,
    /// When this replica last extended each session's store entry.
    touched: Mutex<HashMap<SessionId, Instant>>,
    /// How often a session's store entry is extended at most: a quarter of the idle timeout.
    touch_every: Duration,
    /// With the store: answers to other replicas' questions go there, and this replica's questions are tagged.
    relay: Option<Arc<Relay>>,
}

impl CappedSessions {
    /// Sessions idle for `idle_timeout` are closed by rmcp (its `keep_alive`); with a `store`, each use of a
    /// session extends its entry there, and with a `relay` answers move between replicas.
    pub fn new(
        limits: Arc<SessionLimits>,
        idle_timeout: Duration,
        store: Option<Arc<RedisSessions>>,
        relay: Option<Arc<Relay>>,
    ) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle_timeout);
        Self {
            inner,
            limits,
            store,
            touched: Mutex::new(HashMap::new()),
            touch_every: idle_timeout / 4,
            relay,
        }
    }

    /// The session transport, tagging this replica's questions when the relay is on.
    fn wrap(&self, transport: LocalTransport) -> Tagged<LocalTransport> {
        match &self.relay {
            Some(relay) => relay.wrap(transport),
            None => Tagged::plain(transport),
        }
    }

    /// Hands an answer relayed by another replica (`bytes`, from the relay channel) to its session here.
    pub async fn deliver(&self, bytes: &[u8]) {
        let Some(relay) = &self.relay else {
            return;
        };
        let Some((session, message)) = relay.open(bytes) else {
            return;
        };
        let id: SessionId = session.clone().into();
        let handed = tokio::time::timeout(DELIVER_WITHIN, self.inner.accept_message(&id, message));
        relay.delivered(&session, matches!(handed.await, Ok(Ok(()))));
    }

    /// Extends `id`'s store entry if this replica has not done so lately. A failure only shortens the entry's
    /// life (the session keeps working here), so it is logged, not returned.
    async fn touch(&self, id: &SessionId) {
        let Some(store) = &self.store else {
            return;
        };
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match touched.get(id) {
                Some(last) if now.duration_since(*last) < self.touch_every => false,
                _ => {
                    touched.insert(id.clone(), now);
                    true
                }
            }
        };
        if due && let Err(e) = store.touch(id).await {
            tracing::debug!(cause = %e, "session store entry not extended");
        }
    }
}

/// rmcp's in-memory session transport.
type LocalTransport = <LocalSessionManager as SessionManager>::Transport;

impl SessionManager for CappedSessions {
    type Error = CappedSessionsError;
    type Transport = Tagged<LocalTransport>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let ticket = SCOPE
            .try_with(|s| s.ticket.lock().unwrap_or_else(|p| p.into_inner()).take())
            .ok()
            .flatten()
            .ok_or(CappedSessionsError::Unreserved)?;
        let (id, transport) = self.inner.create_session().await?;
        ticket.bind(&id);
        Ok((id, self.wrap(transport)))
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        let scope = SCOPE
            .try_with(Arc::clone)
            .map_err(|_| CappedSessionsError::Unreserved)?;
        let ticket = self.limits.reserve(&scope.caller).map_err(|full| {
            scope.refuse(Refusal::Full(full));
            CappedSessionsError::Full(full)
        })?;
        match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => {
                ticket.bind(&id);
                tracing::info!(session = %id, "legacy session restored from the shared store");
                Ok(RestoreOutcome::Restored(self.wrap(transport)))
            }
            RestoreOutcome::AlreadyPresent => Ok(RestoreOutcome::AlreadyPresent),
            _ => Ok(RestoreOutcome::NotSupported),
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        self.limits.closed(id);
        self.touched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(closed?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id).await;
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id).await;
        // An answer to a question another replica asked: that replica waits for it, this one would drop it.
        if let Some(relay) = &self.relay
            && let Some(asker) = relay.elsewhere(&message)
        {
            relay.forward(&asker, id, message).await;
            return Ok(());
        }
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id).await;
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_caller: usize) -> Arc<SessionLimits> {
        Arc::new(SessionLimits::new(
            total,
            per_caller,
            IntGauge::new("sessions", "test").unwrap(),
        ))
    }

    #[test]
    fn places_are_capped_per_caller_then_overall() {
        let l = limits(3, 2);
        let a1 = l.reserve("a").unwrap();
        let _a2 = l.reserve("a").unwrap();
        assert_eq!(l.reserve("a").err(), Some(Full::Caller(2)));
        let _b1 = l.reserve("b").unwrap();
        assert_eq!(l.reserve("b").err(), Some(Full::Overall(3)));
        drop(a1);
        let _b2 = l.reserve("b").expect("an unused ticket frees its place");
        assert_eq!(l.open.get(), 3);
    }

    #[test]
    fn a_bound_place_is_freed_once_when_its_session_closes() {
        let l = limits(2, 2);
        let id: SessionId = "s1".to_string().into();
        l.reserve("a").unwrap().bind(&id);
        let _other = l.reserve("b").unwrap();
        assert_eq!(l.reserve("a").err(), Some(Full::Overall(2)));
        l.closed("s1");
        l.closed("s1");
        assert_eq!(l.open.get(), 1);
        let _again = l.reserve("a").unwrap();
        assert_eq!(l.reserve("a").err(), Some(Full::Overall(2)));
    }

    #[tokio::test]
    async fn sessions_are_created_only_with_a_ticket() {
        let l = limits(2, 2);
        let sessions = CappedSessions::new(l.clone(), Duration::from_secs(60), None, None);
        assert!(matches!(
            sessions.create_session().await,
            Err(CappedSessionsError::Unreserved)
        ));
        let ticket = l.reserve("a").unwrap();
        let (id, _transport) = Scope::new("a", Some(ticket))
            .within(async { sessions.create_session().await })
            .await
            .unwrap();
        assert_eq!(l.open.get(), 1);
        sessions.close_session(&id).await.unwrap();
        assert_eq!(l.open.get(), 0);
    }

    #[tokio::test]
    async fn a_restored_session_takes_a_place_for_its_caller_and_fails_closed_when_full() {
        let l = limits(2, 1);
        let sessions = CappedSessions::new(l.clone(), Duration::from_secs(60), None, None);
        let id: SessionId = "elsewhere".to_string().into();
        assert!(
            matches!(
                sessions.restore_session(id.clone()).await,
                Err(CappedSessionsError::Unreserved)
            ),
            "no scope: refused"
        );
        let scope = Scope::new("a", None);
        let restored = scope
            .clone()
            .within(sessions.restore_session(id.clone()))
            .await
            .unwrap();
        assert!(matches!(restored, RestoreOutcome::Restored(_)));
        assert_eq!((l.open.get(), scope.refusal()), (1, None));

        let other: SessionId = "another".to_string().into();
        let scope = Scope::new("a", None);
        let refused = scope.clone().within(sessions.restore_session(other)).await;
        assert!(matches!(
            refused,
            Err(CappedSessionsError::Full(Full::Caller(1)))
        ));
        assert_eq!(scope.refusal(), Some(Refusal::Full(Full::Caller(1))));
        assert_eq!(l.open.get(), 1);

        sessions.close_session(&id).await.unwrap();
        assert_eq!(
            l.open.get(),
            0,
            "closing a restored session frees its place"
        );
    }
}
