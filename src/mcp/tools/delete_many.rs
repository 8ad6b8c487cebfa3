//! `delete-many`: delete the documents matching a filter (registered only when `mcp.read_only = false`).
//! Destructive: asks for confirmation first (`mcp.confirm_destructive`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, doc_arg, ns, plural};
use crate::mcp::args::{JsonObject, opt};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteManyArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The filter selecting the documents to delete; omitted or {} deletes every document. Extended JSON
    /// accepted.
    #[serde(default)]
    pub filter: Option<JsonObject>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteManyOutput {
    pub database: String,
    pub collection: String,
    pub deleted_count: u64,
}

/// `delete-many`, as the registry (`mcp::registry`) lists it.
pub struct DeleteMany;

impl Tool for DeleteMany {
    const NAME: &'static str = "delete-many";
    const TITLE: &'static str = "Delete documents";
    const DESCRIPTION: &'static str =
        "Delete the documents matching a filter, after the user confirms.";
    const EFFECT: Effect = Effect::Destructive;
    type Args = DeleteManyArgs;
    type Structured = DeleteManyOutput;

    async fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        a: DeleteManyArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let filter = doc_arg(ctx, "filter", opt(&a.filter))?.unwrap_or_default();
        let namespace = ns(&a.database, &a.collection);
        if ctx.confirm_destructive {
            let question = if filter.is_empty() {
                format!("Delete EVERY document in {namespace}?")
            } else {
                let matching = ctx
                    .bounded(coll.count_documents(filter.clone()).max_time(ctx.max_time))
                    .await?;
                format!(
                    "Delete {} matching {} in {namespace}?",
                    plural(matching as usize, "document", "documents"),
                    ejson::relaxed(filter.clone())
                )
            };
            ctx.confirm(confirmer, question).await?;
        }
        let result = ctx.bounded_write(coll.delete_many(filter)).await?;
        let summary = format!(
            "Deleted {} from {namespace}.",
            plural(result.deleted_count as usize, "document", "documents")
        );
        Ok(Output::plain(
            summary,
            json!(DeleteManyOutput {
                database: a.database,
                collection: a.collection,
                deleted_count: result.deleted_count,
            }),
        ))
    }
}
