//! `aggregate`: run an aggregation pipeline. Write stages are refused in read-only mode, and the collections a
//! pipeline reaches (`$lookup`, `$unionWith`, …) pass the namespace guard.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AppliedLimits, Confirmer, Effect, Tool, ToolContext, ToolError, documents_structured, ns,
    plural, response_bytes,
};
use crate::mcp::args::{JsonArray, UInt};
use crate::mcp::ejson;
use crate::mcp::render::Output;
use crate::mongo::collect::collect;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
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
    #[serde(default, skip_serializing)]
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

/// `aggregate`, as the registry (`mcp::registry`) lists it.
pub struct Aggregate;

impl Tool for Aggregate {
    const NAME: &'static str = "aggregate";
    const TITLE: &'static str = "Aggregate";
    const DESCRIPTION: &'static str = "Run an aggregation pipeline against a collection.";
    const EFFECT: Effect = Effect::Read;
    type Args = AggregateArgs;
    type Structured = AggregateOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: AggregateArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let pipeline = ejson::to_documents("pipeline", &a.pipeline.0)?;
        ctx.pipeline("pipeline", &a.database, &pipeline)?;
        let limits = ctx
            .guard
            .read_limits(Some(ctx.guard.max_documents() as i64))?;
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
        // The shape is `AggregateOutput` (the output schema).
        let structured =
            documents_structured(a.database, a.collection, collected.documents, &applied);
        Ok(Output::data(summary, structured, "/documents"))
    }
}
