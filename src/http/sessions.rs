//! Legacy MCP sessions (`Mcp-Session-Id`): how many are open, overall and per caller, and who owns each.
//!
//! The edge reserves a place ([`Ticket`]) before rmcp sees an `initialize` that opens a session, and refuses the
//! request with a clear error when there is none ([`Full`]). rmcp then creates the session through
//! [`CappedSessions`], which finds the ticket in a task-local (rmcp's `create_session` is awaited in the request's
//! own task and is given nothing of the request) and binds it to the session id. The place is freed when rmcp
//! closes the session: on `DELETE`, when the session has been idle for `server.session_idle_timeout` (rmcp's
//! `keep_alive`: its worker ends, the server task ends, and rmcp calls `close_session`, dropping the session's
//! state), and at shutdown. A ticket that was not used is freed when the request ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use prometheus::IntGauge;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::{SessionId, session::EventStore};

tokio::task_local! {
    /// The place the edge reserved for the session this request's `initialize` opens.
    static TICKET: RefCell<Option<Ticket>>;
}

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

    /// Runs `request` (the handling of an `initialize` without a session id) with `ticket` available to
    /// [`CappedSessions::create_session`].
    pub async fn with_ticket<F: Future>(ticket: Ticket, request: F) -> F::Output {
        TICKET.scope(RefCell::new(Some(ticket)), request).await
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
}

/// rmcp's in-memory session manager, counting its sessions against [`SessionLimits`].
pub struct CappedSessions {
    inner: LocalSessionManager,
    limits: Arc<SessionLimits>,
}

impl CappedSessions {
    /// Sessions idle for `idle_timeout` are closed by rmcp (its `keep_alive`).
    pub fn new(limits: Arc<SessionLimits>, idle_timeout: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle_timeout);
        Self { inner, limits }
    }
}

impl SessionManager for CappedSessions {
    type Error = CappedSessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let ticket = TICKET
            .try_with(|t| t.borrow_mut().take())
            .ok()
            .flatten()
            .ok_or(CappedSessionsError::Unreserved)?;
        let (id, transport) = self.inner.create_session().await?;
        ticket.bind(&id);
        Ok((id, transport))
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
        Ok(closed?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
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
        let sessions = CappedSessions::new(l.clone(), Duration::from_secs(60));
        assert!(matches!(
            sessions.create_session().await,
            Err(CappedSessionsError::Unreserved)
        ));
        let ticket = l.reserve("a").unwrap();
        let (id, _transport) =
            SessionLimits::with_ticket(ticket, async { sessions.create_session().await })
                .await
                .unwrap();
        assert_eq!(l.open.get(), 1);
        sessions.close_session(&id).await.unwrap();
        assert_eq!(l.open.get(), 0);
    }
}
