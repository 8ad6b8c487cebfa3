//! `list-databases`: the databases this server may use (others are hidden, and their number is said).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AppliedLimits, Confirmer, Effect, Tool, ToolContext, ToolError, cap_items, plural};
use crate::mcp::namespace::DatabaseName;
use crate::mcp::render::Output;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListDatabasesArgs {
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DatabaseEntry {
    pub name: String,
    /// Size on disk in bytes.
    pub size: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDatabasesOutput {
    /// The databases, cut to the server's limits (appliedLimits says when).
    pub databases: Vec<DatabaseEntry>,
    pub total_count: usize,
    /// Databases that exist but are hidden by mcp.allowed_databases / mcp.denied_databases.
    pub hidden_count: usize,
    pub applied_limits: AppliedLimits,
}

/// `list-databases`, as the registry (`mcp::registry`) lists it.
pub struct ListDatabases;

impl Tool for ListDatabases {
    const NAME: &'static str = "list-databases";
    const TITLE: &'static str = "List databases";
    const DESCRIPTION: &'static str =
        "List the databases this server may access, with their sizes.";
    const EFFECT: Effect = Effect::Read;
    type Args = ListDatabasesArgs;
    type Structured = ListDatabasesOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        _a: ListDatabasesArgs,
    ) -> Result<Output, ToolError> {
        let all = ctx.bounded(ctx.client()?.list_databases()).await?;
        let total = all.len();
        let databases: Vec<DatabaseEntry> = all
            .into_iter()
            .filter(|d| {
                DatabaseName::parse("name", &d.name).is_ok_and(|db| ctx.guard.database(db).is_ok())
            })
            .map(|d| DatabaseEntry {
                name: d.name,
                size: d.size_on_disk,
            })
            .collect();
        let hidden_count = total - databases.len();
        let hidden = if hidden_count > 0 {
            format!(" ({hidden_count} more hidden by the server's database rules)")
        } else {
            String::new()
        };
        let total_count = databases.len();
        let (databases, applied_limits) = cap_items(ctx, databases);
        let summary = format!(
            "Found {}{hidden}{}.",
            plural(total_count, "database", "databases"),
            applied_limits.showing(databases.len())
        );
        let structured = json!(ListDatabasesOutput {
            databases,
            total_count,
            hidden_count,
            applied_limits,
        });
        Ok(Output::data(summary, structured, "/databases"))
    }
}
