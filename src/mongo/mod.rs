//! MongoDB through the tunnel: the official driver's client, built once against the fixed local forward (or the
//! URI's own host when SSH is disabled), the startup check (ping + one command that needs authentication) and the
//! health ping.
//!
//! **Architecture invariant:** no SSH and no MCP types here. The tunnel is only a `SocketAddr` to connect to.

pub mod collect;
pub mod uri;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, ServerAddress};

use crate::config::MongoConfig;
use crate::error::ErrorClass;
use crate::metrics::MongoMetrics;

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

impl From<mongodb::error::Error> for MongoError {
    fn from(e: mongodb::error::Error) -> Self {
        let message = crate::error::first_line(&e.to_string());
        match *e.kind {
            ErrorKind::Authentication { .. } => Self::AuthFailed(message),
            ErrorKind::Command(ref c) if matches!(c.code, 13 | 18) => Self::AuthFailed(message),
            ErrorKind::Command(ref c) if c.code == 50 => Self::Timeout(message),
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. } => Self::Unreachable(message),
            ErrorKind::InvalidArgument { .. }
            | ErrorKind::InvalidTlsConfig { .. }
            | ErrorKind::DnsResolve { .. } => Self::Options(message),
            _ => Self::Command(message),
        }
    }
}

/// The driver client and what the checks need.
#[derive(Clone)]
pub struct Mongo {
    client: mongodb::Client,
    config: MongoConfig,
    metrics: MongoMetrics,
}

impl Mongo {
    /// Parses the driver options: with `via = Some(local forward)`, the driver will connect there with
    /// `directConnection=true` and the URI's credentials and options. No I/O.
    ///
    /// # Errors
    /// [`MongoError::Options`] when the driver rejects the URI's options.
    pub async fn options(
        config: &MongoConfig,
        via: Option<SocketAddr>,
    ) -> Result<ClientOptions, MongoError> {
        let mut options = ClientOptions::parse(config.uri.expose())
            .await
            .map_err(|e| {
                // The driver's parse errors can quote the string: report the kind only.
                MongoError::Options(match *e.kind {
                    ErrorKind::InvalidArgument { ref message, .. } if !message.contains('@') => {
                        message.clone()
                    }
                    _ => "the driver rejected mongo.uri".into(),
                })
            })?;
        if let Some(addr) = via {
            options.hosts = vec![ServerAddress::Tcp {
                host: addr.ip().to_string(),
                port: Some(addr.port()),
            }];
            options.direct_connection = Some(true);
            options.repl_set_name = None;
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
        options: ClientOptions,
        metrics: MongoMetrics,
    ) -> Result<Self, MongoError> {
        let client = mongodb::Client::with_options(options)?;
        Ok(Self {
            client,
            config,
            metrics,
        })
    }

    /// [`Mongo::options`], then [`Mongo::new`] (for `check`, where the tunnel is already up).
    ///
    /// # Errors
    /// [`MongoError::Options`] when the driver rejects the URI's options.
    pub async fn connect(
        config: MongoConfig,
        via: Option<SocketAddr>,
        metrics: MongoMetrics,
    ) -> Result<Self, MongoError> {
        let options = Self::options(&config, via).await?;
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

    /// One `ping` round trip; records `nexus_mongo_ping_duration_seconds`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn ping(&self) -> Result<Duration, MongoError> {
        let started = Instant::now();
        self.bounded(
            self.client
                .database("admin")
                .run_command(doc! { "ping": 1 }),
        )
        .await?;
        let took = started.elapsed();
        self.metrics.ping_duration.observe(took.as_secs_f64());
        Ok(took)
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
        match tokio::time::timeout(limit, fut.into_future()).await {
            Ok(result) => result.map_err(MongoError::from),
            Err(_) => Err(MongoError::Timeout(format!(
                "no answer within {} ms",
                limit.as_millis()
            ))),
        }
    }
}
