//! `db-stats`: statistics of a database (`dbStats`).

use mongodb::bson::doc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DbStatsArgs {
    /// Database name.
    pub database: String,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DbStatsOutput {
    pub database: String,
    /// The dbStats command's answer (collections, objects, dataSize, storageSize, indexes, indexSize, …).
    pub stats: Value,
}

/// `db-stats`, as the registry (`mcp::registry`) lists it.
pub struct DbStats;

impl Tool for DbStats {
    const NAME: &'static str = "db-stats";
    const TITLE: &'static str = "Database statistics";
    const DESCRIPTION: &'static str =
        "Report statistics of a database: collections, objects, data and index sizes.";
    const EFFECT: Effect = Effect::Read;
    type Args = DbStatsArgs;
    type Structured = DbStatsOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: DbStatsArgs,
    ) -> Result<Output, ToolError> {
        let db = ctx.database(&a.database)?;
        let max_time_ms = ctx.max_time.as_millis() as i64;
        let mut stats = ctx
            .bounded(db.run_command(doc! { "dbStats": 1, "scale": 1, "maxTimeMS": max_time_ms }))
            .await?;
        for noise in ["ok", "$clusterTime", "operationTime"] {
            stats.remove(noise);
        }
        let summary = format!("Statistics of database {}.", a.database);
        let structured = json!(DbStatsOutput {
            database: a.database,
            stats: ejson::relaxed(stats)
        });
        Ok(Output::data(summary, structured, "/stats"))
    }
}
