//! `create-index`: create a classic index (registered only when `mcp.read_only = false`).

use mongodb::IndexModel;
use mongodb::options::IndexOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns};
use crate::mcp::args::{Flag, JsonObject};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateIndexArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The index keys and directions, e.g. {"customerId": 1, "createdAt": -1}.
    #[serde(default)]
    pub keys: Option<JsonObject>,
    /// The official server's form: [{"type": "classic", "keys": {...}}]; used when `keys` is absent.
    #[serde(default)]
    pub definition: Option<Vec<IndexDefinition>>,
    /// The index name (default: derived from the keys).
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the index enforces uniqueness.
    #[serde(default)]
    pub unique: Option<Flag>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct IndexDefinition {
    /// Only "classic" indexes are supported.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub keys: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateIndexOutput {
    pub database: String,
    pub collection: String,
    pub index_name: String,
}

/// `create-index`, as the registry (`mcp::registry`) lists it.
pub struct CreateIndex;

impl Tool for CreateIndex {
    const NAME: &'static str = "create-index";
    const TITLE: &'static str = "Create index";
    const DESCRIPTION: &'static str = "Create an index on a collection.";
    const EFFECT: Effect = Effect::Write;
    type Args = CreateIndexArgs;
    type Structured = CreateIndexOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: CreateIndexArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let keys = match (&a.keys, a.definition.as_deref()) {
            (Some(keys), _) => ejson::to_document("keys", &keys.0)?,
            (None, Some([def])) if def.kind.as_deref().is_none_or(|k| k == "classic") => {
                ejson::to_document("definition[0].keys", &def.keys)?
            }
            _ => {
                return Err(ToolError::BadArgument(
                    "keys: give the index keys, e.g. {\"email\": 1} (only classic indexes are supported)".into(),
                ));
            }
        };
        if keys.is_empty() {
            return Err(ToolError::BadArgument(
                "keys: at least one field is needed".into(),
            ));
        }
        let options = IndexOptions::builder()
            .name(a.name.clone())
            .unique(a.unique.map(|f| f.0))
            .build();
        let model = IndexModel::builder().keys(keys).options(options).build();
        let created = ctx.bounded_write(coll.create_index(model)).await?;
        let summary = format!(
            "Created index {} on {}.",
            created.index_name,
            ns(&a.database, &a.collection)
        );
        Ok(Output::plain(
            summary,
            json!(CreateIndexOutput {
                database: a.database,
                collection: a.collection,
                index_name: created.index_name,
            }),
        ))
    }
}
