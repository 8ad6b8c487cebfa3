//! The in-process SSH tunnel: a russh session to the bastion (through ProxyJump hops if any) and a fixed local
//! listener whose connections are forwarded over `direct-tcpip` channels to the MongoDB host as the bastion sees
//! it. The session heals itself: on loss it reconnects with backoff, while the local address never changes.
//!
//! **Architecture invariant:** this module knows nothing of MongoDB or MCP. It exposes [`Tunnel::local_addr`], a
//! [`TunnelState`] watch, [`Tunnel::probe`] (a session round trip for health checks) and [`Tunnel::dial`] (a
//! channel to any host:port the bastion can reach, e.g. for a SOCKS front-end later).
//!
//! Layout: `session` (connect + host keys + loss signal), `host_keys` (known_hosts policy), `auth` (agent, key,
//! password), `reconnect` (the loop that owns the state), `forward` (the local listener), `state`, `error`.

mod auth;
mod error;
mod forward;
mod host_keys;
mod keeper;
mod known_hosts;
mod reconnect;
mod session;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::TunnelError;
pub use state::TunnelState;

use crate::config::TunnelConfig;
use crate::metrics::TunnelMetrics;
use session::Session;

/// A forwarded byte stream: one `direct-tcpip` channel.
pub type Channel = russh::ChannelStream<russh::client::Msg>;

/// Handle to the running tunnel. Cheap to clone; the tasks stop when the `shutdown` token given to
/// [`Tunnel::start`] is cancelled.
#[derive(Clone)]
pub struct Tunnel {
    shared: Arc<Shared>,
    /// The reconnect loop and the accept loop.
    tasks: TaskTracker,
}

/// State shared by the reconnect loop, the accept loop and handles.
struct Shared {
    config: TunnelConfig,
    /// The bound local address; never changes, so the MongoDB client is built once.
    local_addr: SocketAddr,
    state: watch::Sender<TunnelState>,
    /// The session forwards are opened on; `None` while down.
    live: RwLock<Option<Arc<Session>>>,
    /// Why the bastion refused the latest forward, until one opens again.
    refusal: Mutex<Option<TunnelError>>,
    /// When a refusal was last logged at `warn` (they repeat with every driver retry).
    refusal_logged: Mutex<Option<Instant>>,
    metrics: TunnelMetrics,
}

impl Tunnel {
    /// Binds `tunnel.local_listen` and starts the reconnect and accept loops. Returns at once: watch
    /// [`Tunnel::state`] for the session.
    ///
    /// # Errors
    /// [`TunnelError::AddressInUse`] when another process holds the local address (worth retrying);
    /// [`TunnelError::Bind`] when it cannot be bound at all (a configuration problem).
    pub async fn start(
        config: TunnelConfig,
        metrics: TunnelMetrics,
        shutdown: CancellationToken,
    ) -> Result<Self, TunnelError> {
        let bind_error = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::AddrInUse => TunnelError::AddressInUse {
                addr: config.local_listen.to_string(),
            },
            _ => TunnelError::Bind {
                addr: config.local_listen.to_string(),
                reason: e.to_string(),
            },
        };
        let listener = TcpListener::bind(config.local_listen)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared {
            config,
            local_addr,
            state: watch::Sender::new(TunnelState::Connecting { attempt: 1 }),
            live: RwLock::new(None),
            refusal: Mutex::new(None),
            refusal_logged: Mutex::new(None),
            metrics,
        });
        let tasks = TaskTracker::new();
        tasks.spawn(reconnect::run(shared.clone(), shutdown.clone()));
        tasks.spawn(forward::serve(listener, shared.clone(), shutdown));
        tasks.close();
        Ok(Self { shared, tasks })
    }

    /// The local forward's address (fixed for the life of the process).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The lifecycle state, updated on every transition.
    pub fn state(&self) -> watch::Receiver<TunnelState> {
        self.shared.state.subscribe()
    }

    /// One round trip on the session (an OpenSSH keepalive request), for health checks.
    ///
    /// # Errors
    /// [`TunnelError::Down`] when no session is up or it does not answer within the keepalive interval.
    pub async fn probe(&self) -> Result<Duration, TunnelError> {
        let session = self
            .shared
            .current()
            .ok_or_else(|| TunnelError::Down(self.shared.state.borrow().describe()))?;
        let started = Instant::now();
        let limit = self
            .shared
            .config
            .keepalive_interval
            .max(Duration::from_secs(1));
        match tokio::time::timeout(limit, session.handle.send_ping()).await {
            Ok(Ok(())) if !session.handle.is_closed() && !session.loss.is_lost() => {
                Ok(started.elapsed())
            }
            Ok(_) => {
                session.loss.lose("the session closed during a health ping");
                Err(TunnelError::SessionLost(
                    "closed during a health ping".into(),
                ))
            }
            Err(_) => Err(TunnelError::Down(format!(
                "no answer to a session ping within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// Opens a channel to `host:port` as seen from the bastion.
    ///
    /// # Errors
    /// [`TunnelError::Down`] while reconnecting, [`TunnelError::ForwardRefused`] when the bastion refuses.
    pub async fn dial(&self, host: &str, port: u16) -> Result<Channel, TunnelError> {
        self.shared
            .dial(host, port, None)
            .await
            .map(|(channel, _)| channel)
    }

    /// Opens (and closes) one channel to the configured target: whether the bastion forwards to it right now.
    ///
    /// # Errors
    /// [`TunnelError::ForwardRefused`] naming the target when the bastion refuses; [`TunnelError::Down`] while
    /// reconnecting.
    pub async fn probe_forward(&self) -> Result<(), TunnelError> {
        let cfg = &self.shared.config;
        let result = self
            .shared
            .dial(&cfg.remote_host, cfg.remote_port, None)
            .await;
        self.shared.note_forward(result.as_ref().err());
        result.map(drop)
    }

    /// The bastion's refusal of the latest forward to the configured target (`None` once one opened again).
    pub fn forward_refusal(&self) -> Option<TunnelError> {
        self.shared
            .refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves once the tunnel's tasks have stopped (after the shutdown token is cancelled).
    pub async fn stopped(&self) {
        self.tasks.wait().await;
    }
}

impl Shared {
    fn current(&self) -> Option<Arc<Session>> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn install(&self, session: Arc<Session>) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Some(session);
        self.metrics.up.set(1);
        self.state.send_replace(TunnelState::Up {
            since: Instant::now(),
        });
    }

    /// Remembers a refused forward (or forgets it once a forward opened).
    fn note_forward(&self, error: Option<&TunnelError>) {
        let mut refusal = self.refusal.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            None => *refusal = None,
            Some(e @ TunnelError::ForwardRefused { .. }) => *refusal = Some(e.clone()),
            Some(_) => {}
        }
    }

    fn uninstall(&self) {
        self.live.write().unwrap_or_else(|p| p.into_inner()).take();
        self.metrics.up.set(0);
    }

    /// Opens a channel on the current session; returns it with the session's loss token. A channel that cannot be
    /// opened because the session is dead (or does not answer) marks the session lost, which starts a reconnect.
    async fn dial(
        &self,
        host: &str,
        port: u16,
        originator: Option<SocketAddr>,
    ) -> Result<(Channel, CancellationToken), TunnelError> {
        let session = self
            .current()
            .ok_or_else(|| TunnelError::Down(self.state.borrow().describe()))?;
        let (orig_host, orig_port) = originator.map_or(("127.0.0.1".to_string(), 0), |a| {
            (a.ip().to_string(), a.port())
        });
        let open = session.handle.channel_open_direct_tcpip(
            host,
            u32::from(port),
            orig_host,
            u32::from(orig_port),
        );
        match tokio::time::timeout(self.config.connect_timeout, open).await {
            Ok(Ok(channel)) => Ok((channel.into_stream(), session.loss.token())),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => Err(TunnelError::ForwardRefused {
                target: format!("{host}:{port}"),
                reason: format!("{reason:?}"),
            }),
            Ok(Err(e)) => {
                let reason = format!("opening a channel failed: {}", session::describe(&e));
                session.loss.lose(reason.clone());
                Err(TunnelError::SessionLost(reason))
            }
            Err(_) => {
                let reason = format!(
                    "opening a channel got no answer within {} ms",
                    self.config.connect_timeout.as_millis()
                );
                session.loss.lose(reason.clone());
                Err(TunnelError::SessionLost(reason))
            }
        }
    }
}
