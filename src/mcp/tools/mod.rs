//! The tools, one file each (names and arguments follow the official MongoDB MCP server, minus `connectionId`).
//! Each file has its arguments (`…Args`, documented for the JSON schema), its output type (`…Output`, the
//! `structuredContent` schema) and a unit struct implementing [`Tool`]: name, title, description, [`Effect`] and
//! `run`. This module holds what they share: [`Tool`], [`ToolContext`], [`ToolError`] and argument helpers
//! (`limits` for what a read returns at most). The list of tools and the rmcp routes are `mcp::registry`'s.

pub mod aggregate;
pub mod collection_indexes;
pub mod collection_schema;
pub mod collection_storage_size;
pub mod count;
pub mod create_collection;
pub mod create_index;
pub mod db_stats;
pub mod delete_many;
pub mod distinct;
pub mod drop_collection;
pub mod drop_database;
pub mod drop_index;
pub mod explain;
pub mod find;
pub mod insert_many;
pub mod limits;
pub mod list_collections;
pub mod list_databases;
pub mod rename_collection;
pub mod update_many;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mongodb::bson::Document;
use mongodb::{Collection, Database};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ejson::{self, EjsonError};
use super::guard::{BadLimit, Guard, Rejected};
use super::namespace::{DatabaseName, NameError, Namespace};
use super::render::Output;
use crate::error::ErrorClass;
use crate::mongo::{Mongo, MongoError};

pub use limits::{AppliedLimits, cap_items, response_bytes};

/// At most this many collections are read from `listCollections` (the answer is capped further by the limits).
const MAX_COLLECTION_SPECS: usize = 100_000;

/// What every tool needs.
#[derive(Clone)]
pub struct ToolContext {
    /// Set by the mongodb stage; tools run only after startup, and answer "unavailable" before.
    pub mongo: Arc<OnceLock<Mongo>>,
    /// `mongo.max_time`, sent as `maxTimeMS`.
    pub max_time: Duration,
    pub guard: Arc<Guard>,
    /// Whether destructive tools must ask the user first (`mcp.confirm_destructive`).
    pub confirm_destructive: bool,
    /// `update-many` asks first when more documents than this match (`mcp.confirm_update_above`).
    pub confirm_update_above: u64,
    /// `mcp.confirm_key_file`: the key sealing stateless confirmations, shared by replicas (else per process).
    pub confirm_key: Option<crate::secret::Secret>,
}

/// The user's answer to a confirmation request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmation {
    Accepted,
    Declined,
    /// The client cannot ask its user (no elicitation support).
    Unsupported,
    /// Ask first: the call ends now with this question and is retried with the answer (stateless MRTR).
    AskFirst(String),
}

/// Asks the user to confirm a destructive operation (MCP elicitation); implemented by the rmcp glue.
pub trait Confirmer: Send + Sync {
    fn confirm(&self, question: String) -> impl Future<Output = Confirmation> + Send;
}

/// What a tool does to the data. It decides the tool's annotations, whether it is registered when
/// `mcp.read_only` is on, and whether a confirmation of it is bound to its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads only; always registered.
    Read,
    /// Adds (documents, an index, a collection) and never asks; registered only when `mcp.read_only = false`.
    Write,
    /// May destroy data and asks the user first; registered only when `mcp.read_only = false`.
    Destructive,
}

/// One MCP tool: what `tools/list` advertises and what a call runs. Each tool file implements it on a unit
/// struct; `mcp::registry` builds the router from one list of them.
pub trait Tool: 'static {
    /// The name clients call it by (also the metrics and audit `tool`).
    const NAME: &'static str;
    /// The annotations' title.
    const TITLE: &'static str;
    /// What the model reads to decide when to call it.
    const DESCRIPTION: &'static str;
    const EFFECT: Effect;
    /// The arguments, documented for the input schema. Serialized (as the tool understood them) only to bind a
    /// confirmation to them.
    type Args: DeserializeOwned + Serialize + JsonSchema + Send + 'static;
    /// The shape of `structuredContent`, published as the output schema.
    type Structured: JsonSchema + 'static;

    /// Runs the call. Destructive tools ask `confirmer` (through [`ToolContext::confirm`]); the others ignore it.
    fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        args: Self::Args,
    ) -> impl Future<Output = Result<Output, ToolError>> + Send;
}

/// Why a tool call failed; rendered as a tool error (`isError: true`) the model can read.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A dependency is down; says which and the retry state.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Rejected(#[from] Rejected),
    #[error("invalid argument: {0}")]
    BadArgument(String),
    #[error("{0}")]
    Mongo(#[from] MongoError),
    /// A write failed in a way that leaves its outcome unknown: never retried by nexus-mcp.
    #[error("the write may or may not have been applied ({0}); check the data before retrying")]
    AmbiguousWrite(String),
    /// The user declined, or could not be asked.
    #[error("{0}")]
    NotConfirmed(String),
    /// The namespace does not exist (reported only when a result is empty, so typos do not look like "no data").
    #[error("{0}")]
    NotFound(String),
    /// The user must be asked first (the call is answered with an input request and retried).
    #[error("confirmation required: {0}")]
    InputRequired(String),
}

impl ToolError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unavailable(_) => ErrorClass::MongoUnreachable,
            Self::Rejected(e) => e.class(),
            Self::BadArgument(_) | Self::NotConfirmed(_) | Self::InputRequired(_) => {
                ErrorClass::QueryRejected
            }
            Self::Mongo(e) => e.class(),
            Self::AmbiguousWrite(_) | Self::NotFound(_) => ErrorClass::QueryFailed,
        }
    }

    /// Maps a write's driver error: failures before the write was sent are plain errors; I/O failures after
    /// it may have been sent are ambiguous.
    pub fn from_write(e: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        match *e.kind {
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
                Self::AmbiguousWrite(e.to_string())
            }
            _ => Self::Mongo(MongoError::from(e)),
        }
    }
}

impl From<NameError> for ToolError {
    fn from(e: NameError) -> Self {
        Self::Rejected(e.into())
    }
}

impl From<BadLimit> for ToolError {
    fn from(e: BadLimit) -> Self {
        Self::BadArgument(e.to_string())
    }
}

impl From<EjsonError> for ToolError {
    fn from(e: EjsonError) -> Self {
        Self::BadArgument(e.to_string())
    }
}

impl ToolContext {
    /// The driver client (set once startup reached the mongodb stage).
    pub fn client(&self) -> Result<&mongodb::Client, ToolError> {
        self.mongo.get().map(Mongo::client).ok_or_else(|| {
            ToolError::Unavailable(
                "nexus-mcp is starting (stage mongodb): the MongoDB client is not built yet".into(),
            )
        })
    }

    /// The database of the `database` argument, after MongoDB's naming rules and the namespace guard.
    pub fn database(&self, db: &str) -> Result<Database, ToolError> {
        self.guard.database(DatabaseName::parse("database", db)?)?;
        Ok(self.client()?.database(db))
    }

    /// The collection of the `database` and `collection` arguments, after MongoDB's naming rules and the
    /// namespace guard.
    pub fn collection(&self, db: &str, coll: &str) -> Result<Collection<Document>, ToolError> {
        self.collection_as(db, "collection", coll)
    }

    /// Like [`ToolContext::collection`] for a collection given by another argument (`newName`).
    pub fn collection_as(
        &self,
        db: &str,
        arg: &str,
        coll: &str,
    ) -> Result<Collection<Document>, ToolError> {
        self.guard
            .collection(&Namespace::parse_both("database", db, arg, coll)?)?;
        Ok(self.client()?.database(db).collection(coll))
    }

    /// Checks the pipeline given as the argument `arg`, run in the `database` argument's database.
    pub fn pipeline(&self, arg: &str, db: &str, stages: &[Document]) -> Result<(), ToolError> {
        let db = DatabaseName::parse("database", db)?;
        Ok(self.guard.pipeline(arg, db, stages)?)
    }

    /// `listCollections` (names and types only) as plain documents, following the cursor. The driver's typed
    /// helper is avoided: it rejects servers that encode `info.uuid` differently.
    pub async fn list_collection_specs(&self, db: &Database) -> Result<Vec<Document>, ToolError> {
        use mongodb::bson::doc;
        let mut reply = self
            .bounded(db.run_command(
                doc! { "listCollections": 1, "nameOnly": true, "authorizedCollections": true },
            ))
            .await?;
        let mut specs = Vec::new();
        loop {
            let cursor = reply
                .get_document("cursor")
                .map_err(|e| ToolError::Mongo(MongoError::Command(e.to_string())))?;
            let batch = cursor
                .get_array("firstBatch")
                .or_else(|_| cursor.get_array("nextBatch"))
                .map_err(|e| ToolError::Mongo(MongoError::Command(e.to_string())))?;
            specs.extend(batch.iter().filter_map(|b| b.as_document().cloned()));
            let id = cursor.get_i64("id").unwrap_or(0);
            // Bounded: names only, but a database may hold very many collections.
            if id == 0 || specs.len() >= MAX_COLLECTION_SPECS {
                return Ok(specs);
            }
            reply = self
                .bounded(
                    db.run_command(doc! { "getMore": id, "collection": "$cmd.listCollections" }),
                )
                .await?;
        }
    }

    /// Fails with [`ToolError::NotFound`] when `db.coll` does not exist. Called when a read came back empty.
    pub async fn require_collection(&self, db: &str, coll: &str) -> Result<(), ToolError> {
        let specs = self
            .list_collection_specs(&self.client()?.database(db))
            .await?;
        if specs.iter().any(|s| s.get_str("name") == Ok(coll)) {
            Ok(())
        } else {
            Err(ToolError::NotFound(format!(
                "collection {db}.{coll} does not exist (list-collections shows the collections of {db})"
            )))
        }
    }

    /// Runs a driver operation with a hard deadline a little above `maxTimeMS`, so no call can hang.
    pub async fn bounded<T>(
        &self,
        fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, ToolError> {
        crate::mongo::bounded(self.deadline(), fut)
            .await
            .map_err(|e| ToolError::Mongo(MongoError::Timeout(e.to_string())))?
            .map_err(|e| ToolError::Mongo(e.into()))
    }

    /// Like [`ToolContext::bounded`] for writes: a timeout or I/O failure leaves the outcome unknown.
    pub async fn bounded_write<T>(
        &self,
        fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, ToolError> {
        crate::mongo::bounded(self.deadline(), fut)
            .await
            .map_err(|e| ToolError::AmbiguousWrite(e.to_string()))?
            .map_err(ToolError::from_write)
    }

    /// The hard deadline of one driver operation: `mongo.max_time` (sent as `maxTimeMS`) and a margin.
    fn deadline(&self) -> Duration {
        self.max_time + Duration::from_secs(2)
    }

    /// Asks for confirmation when `mcp.confirm_destructive` is on.
    ///
    /// # Errors
    /// [`ToolError::NotConfirmed`] when the user declines or cannot be asked; the message says how to allow it.
    pub async fn confirm(
        &self,
        confirmer: &impl Confirmer,
        question: String,
    ) -> Result<(), ToolError> {
        if !self.confirm_destructive {
            return Ok(());
        }
        match confirmer.confirm(question).await {
            Confirmation::Accepted => Ok(()),
            Confirmation::Declined => Err(ToolError::NotConfirmed(
                "the user declined the confirmation; nothing was changed".into(),
            )),
            Confirmation::Unsupported => Err(ToolError::NotConfirmed(
                "this operation is destructive and needs the user's confirmation, but this MCP client cannot ask \
                 for it (no elicitation support); nothing was changed. Use a client that supports elicitation, \
                 or have the operator set mcp.confirm_destructive = false"
                    .into(),
            )),
            Confirmation::AskFirst(question) => Err(ToolError::InputRequired(question)),
        }
    }
}

/// An optional document argument, converted from EJSON and checked for server-side JavaScript.
pub fn doc_arg(
    ctx: &ToolContext,
    name: &str,
    value: Option<&Value>,
) -> Result<Option<Document>, ToolError> {
    let Some(value) = value else { return Ok(None) };
    let doc = ejson::to_document(name, value)?;
    ctx.guard.query(name, &doc)?;
    Ok(Some(doc))
}

/// `namespace` as `db.coll`.
pub fn ns(db: &str, coll: &str) -> String {
    format!("{db}.{coll}")
}

/// "1 document" / "3 documents".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The `structuredContent` of a read that returns documents (`find`, `aggregate`), built by moving them in.
pub fn documents_structured(
    database: String,
    collection: String,
    documents: Vec<Document>,
    applied: &AppliedLimits,
) -> Value {
    let count = documents.len();
    super::render::object([
        ("database", database.into()),
        ("collection", collection.into()),
        ("documents", Value::Array(relaxed_all(documents))),
        ("count", count.into()),
        ("appliedLimits", serde_json::json!(applied)),
    ])
}

/// Documents as relaxed EJSON values.
pub fn relaxed_all(docs: Vec<Document>) -> Vec<Value> {
    docs.into_iter().map(ejson::relaxed).collect()
}
