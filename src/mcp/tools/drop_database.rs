//! `drop-database`: drop a whole database (registered only when `mcp.read_only = false`). Destructive: asks
//! for confirmation first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError};
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DropDatabaseArgs {
    /// Database name.
    pub database: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DropDatabaseOutput {
    pub database: String,
    pub dropped: bool,
}

/// `drop-database`, as the registry (`mcp::registry`) lists it.
pub struct DropDatabase;

impl Tool for DropDatabase {
    const NAME: &'static str = "drop-database";
    const TITLE: &'static str = "Drop database";
    const DESCRIPTION: &'static str =
        "Drop a database with all its collections, after the user confirms.";
    const EFFECT: Effect = Effect::Destructive;
    type Args = DropDatabaseArgs;
    type Structured = DropDatabaseOutput;

    async fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        a: DropDatabaseArgs,
    ) -> Result<Output, ToolError> {
        let db = ctx.database(&a.database)?;
        ctx.confirm(
            confirmer,
            format!("Drop database {} with ALL its collections?", a.database),
        )
        .await?;
        ctx.bounded_write(db.drop()).await?;
        Ok(Output::plain(
            format!("Dropped database {}.", a.database),
            json!(DropDatabaseOutput {
                database: a.database,
                dropped: true,
            }),
        ))
    }
}
