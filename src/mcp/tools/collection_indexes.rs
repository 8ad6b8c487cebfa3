//! `collection-indexes`: the indexes of a collection.

use futures::TryStreamExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns, plural};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CollectionIndexesArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IndexEntry {
    pub name: String,
    /// The index keys, e.g. {"email": 1}.
    pub key: Value,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionIndexesOutput {
    pub database: String,
    pub collection: String,
    pub classic_indexes: Vec<IndexEntry>,
    pub classic_indexes_count: usize,
}

/// `collection-indexes`, as the registry (`mcp::registry`) lists it.
pub struct CollectionIndexes;

impl Tool for CollectionIndexes {
    const NAME: &'static str = "collection-indexes";
    const TITLE: &'static str = "Collection indexes";
    const DESCRIPTION: &'static str = "List the indexes of a collection.";
    const EFFECT: Effect = Effect::Read;
    type Args = CollectionIndexesArgs;
    type Structured = CollectionIndexesOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: CollectionIndexesArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        ctx.require_collection(&a.database, &a.collection).await?;
        let cursor = ctx
            .bounded(coll.list_indexes().max_time(ctx.max_time))
            .await?;
        let models: Vec<mongodb::IndexModel> = ctx.bounded(cursor.try_collect()).await?;
        let indexes: Vec<IndexEntry> = models
            .into_iter()
            .map(|m| {
                let options = m.options.unwrap_or_default();
                IndexEntry {
                    name: options.name.unwrap_or_default(),
                    key: ejson::relaxed(m.keys),
                    unique: options.unique.unwrap_or(false),
                }
            })
            .collect();
        let summary = format!(
            "{} has {}.",
            ns(&a.database, &a.collection),
            plural(indexes.len(), "index", "indexes")
        );
        let count = indexes.len();
        let structured = json!(CollectionIndexesOutput {
            database: a.database,
            collection: a.collection,
            classic_indexes: indexes,
            classic_indexes_count: count,
        });
        Ok(Output::data(summary, structured, "/classicIndexes"))
    }
}
