//! `collection-storage-size`: the storage a collection uses (`collStats`).

use mongodb::bson::{Bson, Document, doc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns};
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CollectionStorageSizeArgs {
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
#[serde(rename_all = "camelCase")]
pub struct CollectionStorageSizeOutput {
    pub database: String,
    pub collection: String,
    /// Storage size in `units` (human scale).
    pub size: f64,
    /// "bytes", "KB", "MB", "GB" or "TB" (powers of 1024).
    pub units: String,
    pub storage_size_bytes: u64,
    pub data_size_bytes: u64,
    pub total_index_size_bytes: u64,
    pub document_count: u64,
}

/// `collection-storage-size`, as the registry (`mcp::registry`) lists it.
pub struct CollectionStorageSize;

impl Tool for CollectionStorageSize {
    const NAME: &'static str = "collection-storage-size";
    const TITLE: &'static str = "Collection storage size";
    const DESCRIPTION: &'static str = "Report the storage a collection uses.";
    const EFFECT: Effect = Effect::Read;
    type Args = CollectionStorageSizeArgs;
    type Structured = CollectionStorageSizeOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: CollectionStorageSizeArgs,
    ) -> Result<Output, ToolError> {
        ctx.collection(&a.database, &a.collection)?;
        ctx.require_collection(&a.database, &a.collection).await?;
        let db = ctx.database(&a.database)?;
        let max_time_ms = ctx.max_time.as_millis() as i64;
        let stats = ctx
            .bounded(db.run_command(
                doc! { "collStats": &a.collection, "scale": 1, "maxTimeMS": max_time_ms },
            ))
            .await?;
        let storage = number(&stats, "storageSize");
        let (size, units) = human(storage);
        let summary = format!(
            "{} uses {size:.2} {units} of storage.",
            ns(&a.database, &a.collection)
        );
        let structured = json!(CollectionStorageSizeOutput {
            database: a.database,
            collection: a.collection,
            size,
            units: units.into(),
            storage_size_bytes: storage,
            data_size_bytes: number(&stats, "size"),
            total_index_size_bytes: number(&stats, "totalIndexSize"),
            document_count: number(&stats, "count"),
        });
        Ok(Output::plain(summary, structured))
    }
}

/// A numeric field of a command answer, whatever BSON number type the server used.
fn number(doc: &Document, key: &str) -> u64 {
    match doc.get(key) {
        Some(Bson::Int32(n)) => (*n).max(0) as u64,
        Some(Bson::Int64(n)) => (*n).max(0) as u64,
        Some(Bson::Double(n)) if *n > 0.0 => *n as u64,
        _ => 0,
    }
}

fn human(bytes: u64) -> (f64, &'static str) {
    let mut size = bytes as f64;
    for unit in ["bytes", "KB", "MB", "GB"] {
        if size < 1024.0 {
            return (size, unit);
        }
        size /= 1024.0;
    }
    (size, "TB")
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(512), (512.0, "bytes"));
        assert_eq!(super::human(3 * 1024 * 1024), (3.0, "MB"));
    }
}
