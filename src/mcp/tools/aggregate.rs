//! `aggregate`: run an aggregation pipeline. Write stages are refused in read-only mode, and the collections a
//! pipeline reaches (`$lookup`, `$unionWith`, …) pass the namespace guard.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AppliedLimits, ToolContext, ToolError, ns, plural, relaxed_all, response_bytes};
use crate::mcp::args::{JsonArray, UInt};
use crate::mcp::ejson;
use crate::mcp::render::{Output, object};
use crate::mongo::collect::collect;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AggregateArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The pipeline: an array of stages, e.g. [{"$match": {...}}, {"$group": {...}}]; Extended JSON accepted.
    pub pipeline: JsonArray,
    /// The maximum number of bytes to return (capped by the server's mcp.max_bytes).
    #[serde(default)]
    pub response_bytes_limit: Option<UInt>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateOutput {
    pub database: String,
    pub collection: String,
    /// The result documents, as relaxed Extended JSON.
    pub documents: Vec<Value>,
    pub count: usize,
    pub applied_limits: AppliedLimits,
}

pub async fn run(ctx: &ToolContext, a: AggregateArgs) -> Result<Output, ToolError> {
    let coll = ctx.collection(&a.database, &a.collection)?;
    let pipeline = ejson::to_documents("pipeline", &a.pipeline.0)?;
    ctx.pipeline("pipeline", &a.database, &pipeline)?;
    let limits = ctx
        .guard
        .read_limits(Some(ctx.guard.max_documents() as i64))
        .map_err(ToolError::BadArgument)?;
    let max_bytes = response_bytes(ctx, a.response_bytes_limit.map(|b| b.0));
    let cursor = ctx
        .bounded(coll.aggregate(pipeline).max_time(ctx.max_time))
        .await?;
    let collected = collect(cursor, limits.limit, max_bytes).await?;
    if collected.documents.is_empty() {
        ctx.require_collection(&a.database, &a.collection).await?;
    }
    let applied = AppliedLimits::new(&limits, max_bytes, &collected);
    let count = collected.documents.len();
    let note = if applied.truncated_by.is_some() {
        applied.note(count)
    } else {
        String::new()
    };
    let summary = format!(
        "The pipeline on {} returned {}{note}.",
        ns(&a.database, &a.collection),
        plural(count, "document", "documents"),
    );
    // Built by moving the documents in; the shape is `AggregateOutput` (the output schema).
    let structured = object([
        ("database", a.database.into()),
        ("collection", a.collection.into()),
        ("documents", Value::Array(relaxed_all(collected.documents))),
        ("count", count.into()),
        ("appliedLimits", json!(applied)),
    ]);
    Ok(Output::data(summary, structured, "/documents"))
}
