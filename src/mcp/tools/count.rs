//! `count`: count the documents matching a query.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, doc_arg, ns};
use crate::mcp::args::{JsonObject, opt};
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CountArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The query filter; omit to count every document. Extended JSON accepted.
    #[serde(default)]
    pub query: Option<JsonObject>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CountOutput {
    pub database: String,
    pub collection: String,
    /// The number of matching documents.
    pub count: u64,
}

/// `count`, as the registry (`mcp::registry`) lists it.
pub struct Count;

impl Tool for Count {
    const NAME: &'static str = "count";
    const TITLE: &'static str = "Count documents";
    const DESCRIPTION: &'static str = "Count the documents of a collection that match a query.";
    const EFFECT: Effect = Effect::Read;
    type Args = CountArgs;
    type Structured = CountOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: CountArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let query = doc_arg(ctx, "query", opt(&a.query))?.unwrap_or_default();
        let what = if query.is_empty() { "" } else { "matching " };
        let count = ctx
            .bounded(coll.count_documents(query).max_time(ctx.max_time))
            .await?;
        if count == 0 {
            ctx.require_collection(&a.database, &a.collection).await?;
        }
        let summary = format!(
            "{} has {count} {what}document{}.",
            ns(&a.database, &a.collection),
            if count == 1 { "" } else { "s" }
        );
        Ok(Output::plain(
            summary,
            json!(CountOutput {
                database: a.database,
                collection: a.collection,
                count
            }),
        ))
    }
}
