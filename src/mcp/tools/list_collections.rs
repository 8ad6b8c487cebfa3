//! `list-collections`: the collections of a database that this server may use.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AppliedLimits, Confirmer, Effect, Tool, ToolContext, ToolError, cap_items, plural};
use crate::mcp::namespace::Namespace;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListCollectionsArgs {
    /// Database name.
    pub database: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CollectionEntry {
    pub name: String,
    /// "collection", "view" or "timeseries".
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListCollectionsOutput {
    pub database: String,
    /// The collections, cut to the server's limits (appliedLimits says when).
    pub collections: Vec<CollectionEntry>,
    /// How many collections this server may use in the database.
    pub total_count: usize,
    pub applied_limits: AppliedLimits,
}

/// `list-collections`, as the registry (`mcp::registry`) lists it.
pub struct ListCollections;

impl Tool for ListCollections {
    const NAME: &'static str = "list-collections";
    const TITLE: &'static str = "List collections";
    const DESCRIPTION: &'static str = "List the collections of a database.";
    const EFFECT: Effect = Effect::Read;
    type Args = ListCollectionsArgs;
    type Structured = ListCollectionsOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: ListCollectionsArgs,
    ) -> Result<Output, ToolError> {
        let db = ctx.database(&a.database)?;
        let specs = ctx.list_collection_specs(&db).await?;
        let mut collections: Vec<CollectionEntry> = specs
            .into_iter()
            .filter_map(|spec| {
                let name = spec.get_str("name").ok()?.to_string();
                let kind = spec.get_str("type").unwrap_or("collection").to_string();
                Some(CollectionEntry { name, kind })
            })
            .filter(|c| {
                Namespace::parse_both("database", &a.database, "name", &c.name)
                    .is_ok_and(|ns| ctx.guard.collection(&ns).is_ok())
            })
            .collect();
        collections.sort_by(|x, y| x.name.cmp(&y.name));
        let total_count = collections.len();
        let (collections, applied_limits) = cap_items(ctx, collections);
        let summary = format!(
            "Found {} in database {}{}.",
            plural(total_count, "collection", "collections"),
            a.database,
            applied_limits.showing(collections.len())
        );
        let structured = json!(ListCollectionsOutput {
            database: a.database,
            collections,
            total_count,
            applied_limits,
        });
        Ok(Output::data(summary, structured, "/collections"))
    }
}
