//! `create-collection`: create a collection (registered only when `mcp.read_only = false`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns};
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCollectionArgs {
    /// Database name (created if needed).
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateCollectionOutput {
    pub database: String,
    pub collection: String,
    pub created: bool,
}

/// `create-collection`, as the registry (`mcp::registry`) lists it.
pub struct CreateCollection;

impl Tool for CreateCollection {
    const NAME: &'static str = "create-collection";
    const TITLE: &'static str = "Create collection";
    const DESCRIPTION: &'static str = "Create a collection.";
    const EFFECT: Effect = Effect::Write;
    type Args = CreateCollectionArgs;
    type Structured = CreateCollectionOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: CreateCollectionArgs,
    ) -> Result<Output, ToolError> {
        ctx.collection(&a.database, &a.collection)?;
        let db = ctx.database(&a.database)?;
        ctx.bounded_write(db.create_collection(&a.collection))
            .await?;
        Ok(Output::plain(
            format!("Created collection {}.", ns(&a.database, &a.collection)),
            json!(CreateCollectionOutput {
                database: a.database,
                collection: a.collection,
                created: true,
            }),
        ))
    }
}
