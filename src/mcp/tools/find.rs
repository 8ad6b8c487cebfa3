//! `find`: run a query and return the matching documents. Unlike the official server, no hidden
//! `countDocuments` runs beside it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AppliedLimits, Confirmer, Effect, Tool, ToolContext, ToolError, doc_arg, documents_structured,
    ns, plural, response_bytes,
};
use crate::mcp::args::{Int, JsonObject, UInt, opt};
use crate::mcp::render::Output;
use crate::mongo::collect::collect;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FindArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The query filter, as for db.collection.find(); Extended JSON such as {"$oid": "..."} or
    /// {"$date": "2024-01-01T00:00:00Z"} is accepted.
    #[serde(default)]
    pub filter: Option<JsonObject>,
    /// The projection, as for db.collection.find().
    #[serde(default)]
    pub projection: Option<JsonObject>,
    /// The sort order, e.g. {"createdAt": -1}.
    #[serde(default)]
    pub sort: Option<JsonObject>,
    /// The maximum number of documents to return (default 10; capped by the server's mcp.max_documents).
    #[serde(default)]
    pub limit: Option<Int>,
    /// The number of documents to skip.
    #[serde(default)]
    pub skip: Option<Int>,
    /// The maximum number of bytes to return (capped by the server's mcp.max_bytes).
    #[serde(default)]
    pub response_bytes_limit: Option<UInt>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindOutput {
    pub database: String,
    pub collection: String,
    /// The documents, as relaxed Extended JSON.
    pub documents: Vec<Value>,
    /// How many documents were returned.
    pub count: usize,
    pub applied_limits: AppliedLimits,
}

/// `find`, as the registry (`mcp::registry`) lists it.
pub struct Find;

impl Tool for Find {
    const NAME: &'static str = "find";
    const TITLE: &'static str = "Find documents";
    const DESCRIPTION: &'static str = "Run a find query against a collection: filter, projection, sort, limit (default 10), skip.";
    const EFFECT: Effect = Effect::Read;
    type Args = FindArgs;
    type Structured = FindOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: FindArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let filter = doc_arg(ctx, "filter", opt(&a.filter))?.unwrap_or_default();
        let projection = doc_arg(ctx, "projection", opt(&a.projection))?;
        let sort = doc_arg(ctx, "sort", opt(&a.sort))?;
        let limits = ctx.guard.read_limits(a.limit.map(|l| l.0))?;
        let max_bytes = response_bytes(ctx, a.response_bytes_limit.map(|b| b.0));
        let mut find = coll
            .find(filter)
            .limit(limits.limit as i64)
            .max_time(ctx.max_time);
        if let Some(p) = projection {
            find = find.projection(p);
        }
        if let Some(s) = sort {
            find = find.sort(s);
        }
        match a.skip.map(|s| s.0) {
            Some(n) if n < 0 => {
                return Err(ToolError::BadArgument(format!(
                    "skip: must not be negative, got {n}"
                )));
            }
            Some(n) => find = find.skip(n as u64),
            None => {}
        }
        let cursor = ctx.bounded(find).await?;
        let collected = collect(cursor, limits.limit, max_bytes).await?;
        if collected.documents.is_empty() {
            ctx.require_collection(&a.database, &a.collection).await?;
        }
        let applied = AppliedLimits::new(&limits, max_bytes, &collected);
        let count = collected.documents.len();
        let summary = format!(
            "Found {} in {}{}.",
            plural(count, "document", "documents"),
            ns(&a.database, &a.collection),
            applied.note(count)
        );
        // The shape is `FindOutput` (the output schema).
        let structured =
            documents_structured(a.database, a.collection, collected.documents, &applied);
        Ok(Output::data(summary, structured, "/documents"))
    }
}
