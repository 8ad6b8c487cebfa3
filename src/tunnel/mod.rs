//! The in-process SSH tunnel: a russh session to the bastion (through ProxyJump hops if any) and two local
//! routes over it, each connection a `direct-tcpip` channel: a fixed forward to one host (as the bastion sees it),
//! and a SOCKS5 route whose every connection goes to the host *name* and port the client asks for (a driver
//! following a replica set reaches every member this way; names are resolved by the bastion). The session heals
//! itself: on loss it reconnects with backoff, while the local addresses never change.
//!
//! **Architecture invariant:** this module knows nothing of MongoDB or MCP. It exposes [`Tunnel::local_addr`],
//! [`Tunnel::socks`], a [`TunnelState`] watch, [`Tunnel::probe`] (a session round trip for health checks) and
//! [`Tunnel::dial`] (a channel to any host:port the bastion can reach).
//!
//! Layout: `config` (the validated [`TunnelConfig`], built by the loader), `session` (connect + host keys + loss signal), `host_keys` (known_hosts policy), `certs` (host and user
//! certificate checks), `auth` (agent, key, certificate, password), `reconnect` (the loop that owns the state),
//! `listen` (the accept loop both routes share and the metered copy), `forward` and `socks` (what each route does
//! with a connection), `state`, `error`.

mod auth;
mod certs;
mod config;
mod error;
mod forward;
mod host_keys;
mod keeper;
mod known_hosts;
mod listen;
pub mod metrics;
mod reconnect;
mod session;
mod socks;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{HostKeyPolicy, SshAuth, SshEndpoint, TunnelConfig, TunnelMode};
pub use error::TunnelError;
pub use state::TunnelState;

use crate::secret::Secret;
use metrics::{Refusal, Route, TunnelMetrics};
use session::Session;

/// A forwarded byte stream: one `direct-tcpip` channel.
pub type Channel = russh::ChannelStream<russh::client::Msg>;

/// The SOCKS5 route's address and its per-process credentials (so no other local process can use it).
#[derive(Clone, Debug)]
pub struct SocksRoute {
    pub addr: SocketAddr,
    pub username: String,
    pub password: Secret,
}

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
    /// The fixed forward's bound address; never changes, so the MongoDB client is built once.
    local_addr: Option<SocketAddr>,
    /// The SOCKS5 route, when served.
    socks: Option<SocksRoute>,
    /// Local connections carried at once, over both routes (`tunnel.max_connections`).
    limit: Arc<Semaphore>,
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
        let forward = match &config.forward_to {
            Some(_) => Some(bind(config.local_listen, "tunnel.local_listen").await?),
            None => None,
        };
        // The SOCKS route is for this process's driver only: loopback, a port of the system's choosing.
        let socks = match config.socks {
            true => Some(bind(SocketAddr::from(([127, 0, 0, 1], 0)), "the SOCKS5 route").await?),
            false => None,
        };
        let local_addr = forward.as_ref().map(|(_, addr)| *addr);
        let route = socks.as_ref().map(|(_, addr)| SocksRoute {
            addr: *addr,
            username: "nexus-mcp".into(),
            password: Secret::new(socks::random_password()),
        });
        let shared = Arc::new(Shared {
            limit: Arc::new(Semaphore::new(config.max_connections)),
            config,
            local_addr,
            socks: route,
            state: watch::Sender::new(TunnelState::Connecting { attempt: 1 }),
            live: RwLock::new(None),
            refusal: Mutex::new(None),
            refusal_logged: Mutex::new(None),
            metrics,
        });
        let tasks = TaskTracker::new();
        tasks.spawn(reconnect::run(shared.clone(), shutdown.clone()));
        if let Some((listener, _)) = forward {
            tasks.spawn(listen::serve(
                listener,
                shared.clone(),
                Route::Forward,
                shutdown.clone(),
            ));
        }
        if let Some((listener, _)) = socks {
            tasks.spawn(listen::serve(
                listener,
                shared.clone(),
                Route::Socks,
                shutdown,
            ));
        }
        tasks.close();
        Ok(Self { shared, tasks })
    }

    /// The fixed forward's address (fixed for the life of the process); `None` without a forward.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr
    }

    /// "forward 127.0.0.1:27999 → mongo:27017, socks5 127.0.0.1:41234 → …", for logs and `check`.
    pub fn describe(&self) -> String {
        self.shared.describe_route()
    }

    /// The SOCKS5 route (address and credentials), when served.
    pub fn socks(&self) -> Option<&SocksRoute> {
        self.shared.socks.as_ref()
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

    /// Opens (and closes) one channel to each configured target (`tunnel.targets`): whether the bastion forwards
    /// to them right now. Succeeds when any target opens (a replica set serves with a member down), or when there
    /// is no target to check (names that only the driver learns, e.g. from `mongodb+srv://`).
    ///
    /// # Errors
    /// [`TunnelError::ForwardRefused`] naming the target(s) when the bastion refuses every one;
    /// [`TunnelError::Down`] while reconnecting.
    pub async fn probe_forward(&self) -> Result<(), TunnelError> {
        let targets = &self.shared.config.targets;
        if targets.is_empty() {
            return Ok(());
        }
        let results = futures::future::join_all(
            targets
                .iter()
                .map(|(host, port)| self.shared.dial(host, *port, None)),
        )
        .await;
        let mut refused = Vec::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(_) => {
                    self.shared.note_forward(None);
                    return Ok(());
                }
                Err(TunnelError::ForwardRefused { target, reason }) => {
                    refused.push((target, reason));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let error = match first_error {
            Some(e) => e,
            None => {
                let (targets, reasons): (Vec<_>, Vec<_>) = refused.into_iter().unzip();
                let mut reasons = reasons;
                reasons.dedup();
                TunnelError::ForwardRefused {
                    target: targets.join(", "),
                    reason: reasons.join(", "),
                }
            }
        };
        self.shared.note_forward(Some(&error));
        Err(error)
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

/// Binds a local route's listener.
async fn bind(
    addr: SocketAddr,
    what: &'static str,
) -> Result<(TcpListener, SocketAddr), TunnelError> {
    let error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AddrInUse => TunnelError::AddressInUse {
            addr: addr.to_string(),
        },
        _ => TunnelError::Bind {
            what,
            addr: addr.to_string(),
            reason: e.to_string(),
        },
    };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

impl Shared {
    /// "forward 127.0.0.1:27999 → mongo:27017, socks 127.0.0.1:41234" for logs.
    fn describe_route(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(addr), Some((host, port))) = (self.local_addr, &self.config.forward_to) {
            parts.push(format!("forward {addr} → {host}:{port}"));
        }
        if let Some(socks) = &self.socks {
            parts.push(format!(
                "socks5 {} → any host the bastion reaches",
                socks.addr
            ));
        }
        parts.join(", ")
    }

    /// Counts a local connection closed without being carried (`nexus_tunnel_connections_refused_total{reason}`).
    fn refused(&self, reason: Refusal) {
        self.metrics.refused.inc(reason);
    }

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
