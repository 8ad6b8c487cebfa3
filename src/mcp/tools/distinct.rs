//! `distinct`: the distinct values of a field among the documents matching a query.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    AppliedLimits, Confirmer, Effect, Tool, ToolContext, ToolError, cap_items, doc_arg, ns, plural,
};
use crate::mcp::args::{JsonObject, opt};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DistinctArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The field whose distinct values to return (dotted paths allowed, e.g. "address.country").
    pub field: String,
    /// The query filter; omit to consider every document. Extended JSON accepted.
    #[serde(default)]
    pub query: Option<JsonObject>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistinctOutput {
    pub database: String,
    pub collection: String,
    pub field: String,
    /// The distinct values, as relaxed Extended JSON (at most mcp.max_documents of them).
    pub values: Vec<Value>,
    /// How many distinct values exist in all.
    pub total: usize,
    /// Whether `values` was cut (by mcp.max_documents or mcp.max_bytes; appliedLimits says which).
    pub truncated: bool,
    pub applied_limits: AppliedLimits,
}

/// `distinct`, as the registry (`mcp::registry`) lists it.
pub struct Distinct;

impl Tool for Distinct {
    const NAME: &'static str = "distinct";
    const TITLE: &'static str = "Distinct values";
    const DESCRIPTION: &'static str =
        "List the distinct values of a field among the documents that match a query.";
    const EFFECT: Effect = Effect::Read;
    type Args = DistinctArgs;
    type Structured = DistinctOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: DistinctArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        if a.field.is_empty() || a.field.starts_with('$') {
            return Err(ToolError::BadArgument(
                "field: must be a field path such as \"status\"".into(),
            ));
        }
        let query = doc_arg(ctx, "query", opt(&a.query))?.unwrap_or_default();
        let values = ctx
            .bounded(coll.distinct(&a.field, query).max_time(ctx.max_time))
            .await?;
        if values.is_empty() {
            ctx.require_collection(&a.database, &a.collection).await?;
        }
        let total = values.len();
        let values: Vec<Value> = values.into_iter().map(ejson::relaxed_value).collect();
        let (values, applied_limits) = cap_items(ctx, values);
        let truncated = applied_limits.truncated_by.is_some();
        let note = applied_limits.showing(values.len());
        let summary = format!(
            "Field `{}` has {} in {}{note}.",
            a.field,
            plural(total, "distinct value", "distinct values"),
            ns(&a.database, &a.collection)
        );
        let structured = json!(DistinctOutput {
            database: a.database,
            collection: a.collection,
            field: a.field,
            values,
            total,
            truncated,
            applied_limits,
        });
        Ok(Output::data(summary, structured, "/values"))
    }
}
