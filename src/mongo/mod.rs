//! MongoDB through the tunnel: the official driver's client, built once against a [`Route`] (the fixed local
//! forward, a SOCKS5 proxy through which it reaches every member by name, or the URI's own hosts when SSH is
//! disabled), the startup check (ping + one command that needs authentication), the health ping, and the
//! driver's view of the deployment ([`topology`]).
//!
//! **Architecture invariant:** no SSH and no MCP types here. The tunnel is only addresses to connect to.

pub mod collect;
mod config;
pub mod metrics;
pub mod topology;
pub mod uri;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use mongodb::error::ErrorKind;
use mongodb::options::{
    ClientOptions, ReadPreference, SelectionCriteria, ServerAddress, Socks5Proxy,
};

use crate::error::ErrorClass;
use crate::secret::Secret;
pub use config::MongoConfig;
use metrics::MongoMetrics;
use topology::Topology;

/// How long a health ping waits for a server when the driver's view has none the tools can use.
const UNSUITABLE_WAIT: Duration = Duration::from_secs(1);

/// How the driver reaches MongoDB.
#[derive(Clone, Debug)]
pub enum Route {
    /// The URI's own hosts (SSH disabled).
    Direct,
    /// One fixed local forward to one server: the driver connects there directly.
    Forward(SocketAddr),
    /// A SOCKS5 proxy through which the driver dials each server by the name the URI or the server gives.
    Socks {
        addr: SocketAddr,
        username: String,
        password: Secret,
    },
}

/// A MongoDB failure, classified. Messages come from the driver or server and never contain the URI.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MongoError {
    #[error("MongoDB unreachable: {0}")]
    Unreachable(String),
    #[error("MongoDB authentication failed: {0}")]
    AuthFailed(String),
    #[error("MongoDB did not answer in time: {0}")]
    Timeout(String),
    #[error("MongoDB error: {0}")]
    Command(String),
    #[error("invalid MongoDB options: {0}")]
    Options(String),
}

impl MongoError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable(_) => ErrorClass::MongoUnreachable,
            Self::AuthFailed(_) => ErrorClass::MongoAuthFailed,
            Self::Timeout(_) => ErrorClass::MongoTimeout,
            Self::Command(_) => ErrorClass::QueryFailed,
            Self::Options(_) => ErrorClass::ConfigInvalid,
        }
    }
}

/// The driver's message without its debugging frame ("Kind: …, labels: {}, source: None, …"): what went wrong,
/// in one line.
pub fn driver_message(e: &mongodb::error::Error) -> String {
    crate::error::first_line(&e.kind.to_string())
}

impl From<mongodb::error::Error> for MongoError {
    fn from(e: mongodb::error::Error) -> Self {
        let message = driver_message(&e);
        match *e.kind {
            ErrorKind::Authentication { .. } => Self::AuthFailed(message),
            ErrorKind::Command(ref c) if matches!(c.code, 13 | 18) => Self::AuthFailed(message),
            ErrorKind::Command(ref c) if c.code == 50 => Self::Timeout(message),
            ErrorKind::Io(_)
            | ErrorKind::ProxyConnect { .. }
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. } => Self::Unreachable(message),
            ErrorKind::InvalidArgument { .. }
            | ErrorKind::InvalidTlsConfig { .. }
            | ErrorKind::DnsResolve { .. } => Self::Options(message),
            _ => Self::Command(message),
        }
    }
}

/// Why a `mongodb+srv://` name did not resolve, and the way around it.
fn srv_unresolved(config: &MongoConfig) -> String {
    let (host, _) = config.uri.first_host();
    format!(
        "the SRV record _mongodb._tcp.{host} could not be resolved from this machine (mongodb+srv:// names are \
         looked up locally, not through the bastion); write the seed list instead: \
         mongodb://member1:27017,member2:27017,member3:27017/?replicaSet=NAME&tls=true with the members' names as \
         the bastion resolves them (`dig SRV _mongodb._tcp.{host}` where it resolves lists them)"
    )
}

/// The driver client and what the checks need.
#[derive(Clone)]
pub struct Mongo {
    client: mongodb::Client,
    config: MongoConfig,
    metrics: MongoMetrics,
    topology: Topology,
    /// What the health ping selects: `None` = a writable primary.
    health_criteria: Option<SelectionCriteria>,
}

impl Mongo {
    /// Parses the driver options for `route`: through a forward, the driver connects to it with
    /// `directConnection=true` and the URI's credentials and options; through SOCKS5, it keeps the URI's hosts and
    /// discovers the deployment (replica-set members, `mongodb+srv://` seeds) with every connection going through
    /// the proxy. Only `mongodb+srv://` does I/O here (the driver's SRV/TXT lookup, which is local).
    ///
    /// # Errors
    /// [`MongoError::Options`] when the driver rejects the URI's options or its SRV name does not resolve.
    pub async fn options(config: &MongoConfig, route: &Route) -> Result<ClientOptions, MongoError> {
        let mut options = ClientOptions::parse(config.uri.expose())
            .await
            .map_err(|e| {
                // The driver's parse errors can quote the string: report the kind only.
                MongoError::Options(match *e.kind {
                    ErrorKind::InvalidArgument { ref message, .. } if !message.contains('@') => {
                        message.clone()
                    }
                    ErrorKind::DnsResolve { .. } if config.uri.is_srv() => srv_unresolved(config),
                    _ => "the driver rejected mongo.uri".into(),
                })
            })?;
        match route {
            Route::Direct => {}
            Route::Forward(addr) => {
                options.hosts = vec![ServerAddress::Tcp {
                    host: addr.ip().to_string(),
                    port: Some(addr.port()),
                }];
                options.direct_connection = Some(true);
                options.repl_set_name = None;
            }
            Route::Socks {
                addr,
                username,
                password,
            } => {
                options.socks5_proxy = Some(
                    Socks5Proxy::builder()
                        .host(addr.ip().to_string())
                        .port(addr.port())
                        .authentication((username.clone(), password.expose().to_string()))
                        .build(),
                );
            }
        }
        options.server_selection_timeout = Some(config.server_selection_timeout);
        options.connect_timeout = Some(config.server_selection_timeout);
        options.app_name.get_or_insert_with(|| "nexus-mcp".into());
        Ok(options)
    }

    /// Builds the client. The driver starts monitoring the server at once, so build it only once the address is
    /// reachable (after the tunnel is up): a failed first check delays the next by the driver's 500 ms minimum
    /// heartbeat interval.
    ///
    /// # Errors
    /// [`MongoError::Options`] when the driver rejects the options.
    pub fn new(
        config: MongoConfig,
        mut options: ClientOptions,
        metrics: MongoMetrics,
    ) -> Result<Self, MongoError> {
        let topology = Topology::new(metrics.clone());
        options.sdam_event_handler = Some(topology.handler());
        // Healthy means: the tools can run. Writes need a primary; read-only tools need what the URI's read
        // preference selects (a secondary may do).
        let health_criteria = if config.needs_primary {
            None
        } else {
            options.selection_criteria.clone()
        };
        let client = mongodb::Client::with_options(options)?;
        Ok(Self {
            client,
            config,
            metrics,
            topology,
            health_criteria,
        })
    }

    /// [`Mongo::options`], then [`Mongo::new`] (for `check`, where the tunnel is already up).
    ///
    /// # Errors
    /// [`MongoError::Options`] when the driver rejects the URI's options.
    pub async fn connect(
        config: MongoConfig,
        route: &Route,
        metrics: MongoMetrics,
    ) -> Result<Self, MongoError> {
        let options = Self::options(&config, route).await?;
        Self::new(config, options, metrics)
    }

    /// The startup check: `ping`, then `listDatabases` (names only), which needs authentication when the URI has
    /// credentials, so bad credentials fail here and not on the first tool call.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn check(&self) -> Result<Duration, MongoError> {
        let latency = self.ping().await?;
        self.bounded(self.client.list_database_names()).await?;
        Ok(latency)
    }

    /// One `ping` round trip to a server the tools can use (a writable primary unless read-only; else what the
    /// URI's read preference selects); records `nexus_mongo_ping_duration_seconds`. When the driver's view shows no
    /// such server, the ping still runs (a pending selection makes the driver re-check every member at once) but
    /// waits at most [`UNSUITABLE_WAIT`], and the error says what the driver sees.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn ping(&self) -> Result<Duration, MongoError> {
        let unsuitable = self.topology.can_select(self.health_criteria.as_ref()) == Some(false);
        let started = Instant::now();
        let criteria = self
            .health_criteria
            .clone()
            .unwrap_or(SelectionCriteria::ReadPreference(ReadPreference::Primary));
        let admin = self.client.database("admin");
        let ping = admin
            .run_command(doc! { "ping": 1 })
            .selection_criteria(criteria);
        let limit = if unsuitable {
            UNSUITABLE_WAIT.min(self.config.server_selection_timeout)
        } else {
            self.config.server_selection_timeout + Duration::from_secs(1)
        };
        let result = match tokio::time::timeout(limit, ping.into_future()).await {
            Ok(result) => result.map_err(MongoError::from),
            Err(_) => Err(MongoError::Unreachable(format!(
                "no answer within {} ms",
                limit.as_millis()
            ))),
        };
        match result {
            Ok(_) => {
                let took = started.elapsed();
                self.metrics.ping_duration.observe(took.as_secs_f64());
                Ok(took)
            }
            Err(MongoError::Unreachable(why)) if self.topology.view().set_name.is_some() => {
                Err(MongoError::Unreachable(format!(
                    "no server the tools can use ({}): {}; {why}",
                    if self.health_criteria.is_none() {
                        "a writable primary"
                    } else {
                        "as mongo.uri's readPreference selects"
                    },
                    self.topology.describe()
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// The driver's view of the deployment.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The driver client, for query helpers.
    pub fn client(&self) -> &mongodb::Client {
        &self.client
    }

    /// Runs a driver future with a hard deadline a little above server selection, so a check never hangs.
    async fn bounded<T>(
        &self,
        fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, MongoError> {
        let limit = self.config.server_selection_timeout + Duration::from_secs(1);
        bounded(limit, fut)
            .await
            .map_err(|e| MongoError::Timeout(e.to_string()))?
            .map_err(MongoError::from)
    }
}

/// A driver operation gave no answer within its hard deadline.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {} ms", .0.as_millis())]
pub struct NoAnswer(pub Duration);

/// Runs a driver future under a hard deadline (`limit`), so no check or tool call can hang; the driver's own
/// result inside. Each caller maps the two failures to its own error (a timeout of a write leaves it ambiguous).
///
/// # Errors
/// [`NoAnswer`] when `limit` passes first.
pub async fn bounded<T>(
    limit: Duration,
    fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
) -> Result<mongodb::error::Result<T>, NoAnswer> {
    tokio::time::timeout(limit, fut.into_future())
        .await
        .map_err(|_| NoAnswer(limit))
}
