//! `drop-collection`: drop a collection and its indexes (registered only when `mcp.read_only = false`).
//! Destructive: asks for confirmation first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns};
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DropCollectionArgs {
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
pub struct DropCollectionOutput {
    pub database: String,
    pub collection: String,
    pub dropped: bool,
}

/// `drop-collection`, as the registry (`mcp::registry`) lists it.
pub struct DropCollection;

impl Tool for DropCollection {
    const NAME: &'static str = "drop-collection";
    const TITLE: &'static str = "Drop collection";
    const DESCRIPTION: &'static str =
        "Drop a collection and all its documents, after the user confirms.";
    const EFFECT: Effect = Effect::Destructive;
    type Args = DropCollectionArgs;
    type Structured = DropCollectionOutput;

    async fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        a: DropCollectionArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let namespace = ns(&a.database, &a.collection);
        ctx.confirm(
            confirmer,
            format!("Drop collection {namespace} and all its documents?"),
        )
        .await?;
        ctx.bounded_write(coll.drop()).await?;
        Ok(Output::plain(
            format!("Dropped collection {namespace}."),
            json!(DropCollectionOutput {
                database: a.database,
                collection: a.collection,
                dropped: true,
            }),
        ))
    }
}
