//! `rename-collection`: rename a collection within its database (registered only when `mcp.read_only =
//! false`). With `dropTarget`, an existing target is dropped: that asks for confirmation first.

use mongodb::bson::doc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns};
use crate::mcp::args::Flag;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenameCollectionArgs {
    /// Database name.
    pub database: String,
    /// The collection to rename.
    pub collection: String,
    /// The new name for the collection.
    pub new_name: String,
    /// If true, drops the target collection if it exists (asks for confirmation).
    #[serde(default)]
    pub drop_target: Option<Flag>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameCollectionOutput {
    pub database: String,
    pub old_collection: String,
    pub new_collection: String,
    pub renamed: bool,
}

/// `rename-collection`, as the registry (`mcp::registry`) lists it.
pub struct RenameCollection;

impl Tool for RenameCollection {
    const NAME: &'static str = "rename-collection";
    const TITLE: &'static str = "Rename collection";
    const DESCRIPTION: &'static str =
        "Rename a collection within its database (dropTarget asks the user to confirm).";
    const EFFECT: Effect = Effect::Destructive;
    type Args = RenameCollectionArgs;
    type Structured = RenameCollectionOutput;

    async fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        a: RenameCollectionArgs,
    ) -> Result<Output, ToolError> {
        ctx.collection(&a.database, &a.collection)?;
        ctx.collection_as(&a.database, "newName", &a.new_name)?;
        let from = ns(&a.database, &a.collection);
        let to = ns(&a.database, &a.new_name);
        let drop_target = a.drop_target.is_some_and(|f| f.0);
        if drop_target {
            ctx.confirm(
                confirmer,
                format!("Rename {from} to {to}, DROPPING {to} if it exists?"),
            )
            .await?;
        }
        let admin = ctx.client()?.database("admin");
        let command = doc! { "renameCollection": &from, "to": &to, "dropTarget": drop_target };
        ctx.bounded_write(admin.run_command(command)).await?;
        Ok(Output::plain(
            format!("Renamed {from} to {to}."),
            json!(RenameCollectionOutput {
                database: a.database,
                old_collection: a.collection,
                new_collection: a.new_name,
                renamed: true,
            }),
        ))
    }
}
