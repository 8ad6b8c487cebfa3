//! `list-collections`: the collections of a database that this server may use.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ToolContext, ToolError, plural};
use crate::mcp::namespace::Namespace;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListCollectionsArgs {
    /// Database name.
    pub database: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default)]
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
    pub collections: Vec<CollectionEntry>,
    pub total_count: usize,
}

pub async fn run(ctx: &ToolContext, a: ListCollectionsArgs) -> Result<Output, ToolError> {
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
    let summary = format!(
        "Found {} in database {}.",
        plural(collections.len(), "collection", "collections"),
        a.database
    );
    let total_count = collections.len();
    let structured = json!(ListCollectionsOutput {
        database: a.database,
        collections,
        total_count
    });
    Ok(Output::data(summary, structured, "/collections"))
}
