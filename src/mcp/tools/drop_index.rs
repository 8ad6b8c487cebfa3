//! `drop-index`: drop an index (registered only when `mcp.read_only = false`). Destructive: asks first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns};
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DropIndexArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The name of the index to drop.
    pub index_name: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DropIndexOutput {
    pub database: String,
    pub collection: String,
    pub index_name: String,
    pub dropped: bool,
}

/// `drop-index`, as the registry (`mcp::registry`) lists it.
pub struct DropIndex;

impl Tool for DropIndex {
    const NAME: &'static str = "drop-index";
    const TITLE: &'static str = "Drop index";
    const DESCRIPTION: &'static str = "Drop an index of a collection, after the user confirms.";
    const EFFECT: Effect = Effect::Destructive;
    type Args = DropIndexArgs;
    type Structured = DropIndexOutput;

    async fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        a: DropIndexArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        if a.index_name.is_empty() || a.index_name == "*" {
            return Err(ToolError::BadArgument(
                "indexName: name one index (\"*\" is not accepted)".into(),
            ));
        }
        let namespace = ns(&a.database, &a.collection);
        ctx.confirm(
            confirmer,
            format!("Drop index {} of {namespace}?", a.index_name),
        )
        .await?;
        ctx.bounded_write(coll.drop_index(&a.index_name)).await?;
        Ok(Output::plain(
            format!("Dropped index {} of {namespace}.", a.index_name),
            json!(DropIndexOutput {
                database: a.database,
                collection: a.collection,
                index_name: a.index_name,
                dropped: true,
            }),
        ))
    }
}
