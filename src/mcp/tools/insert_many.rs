//! `insert-many`: insert documents (registered only when `mcp.read_only = false`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns, plural};
use crate::mcp::args::JsonArray;
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InsertManyArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The documents to insert; Extended JSON accepted.
    pub documents: JsonArray,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsertManyOutput {
    pub database: String,
    pub collection: String,
    pub inserted_count: usize,
    /// The `_id` of each inserted document, in order.
    pub inserted_ids: Vec<Value>,
}

/// `insert-many`, as the registry (`mcp::registry`) lists it.
pub struct InsertMany;

impl Tool for InsertMany {
    const NAME: &'static str = "insert-many";
    const TITLE: &'static str = "Insert documents";
    const DESCRIPTION: &'static str = "Insert documents into a collection.";
    const EFFECT: Effect = Effect::Write;
    type Args = InsertManyArgs;
    type Structured = InsertManyOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: InsertManyArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let docs = ejson::to_documents("documents", &a.documents.0)?;
        if docs.is_empty() {
            return Err(ToolError::BadArgument(
                "documents: the array is empty".into(),
            ));
        }
        let result = ctx.bounded_write(coll.insert_many(docs)).await?;
        let mut ids: Vec<(usize, mongodb::bson::Bson)> = result.inserted_ids.into_iter().collect();
        ids.sort_by_key(|(i, _)| *i);
        let inserted_ids: Vec<Value> = ids
            .into_iter()
            .map(|(_, id)| ejson::relaxed_value(id))
            .collect();
        let summary = format!(
            "Inserted {} into {}.",
            plural(inserted_ids.len(), "document", "documents"),
            ns(&a.database, &a.collection)
        );
        Ok(Output::plain(
            summary,
            json!(InsertManyOutput {
                database: a.database,
                collection: a.collection,
                inserted_count: inserted_ids.len(),
                inserted_ids,
            }),
        ))
    }
}
