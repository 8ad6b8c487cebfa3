//! `update-many`: update the documents matching a filter (registered only when `mcp.read_only = false`). It
//! counts the matching documents first and asks for confirmation when more than `mcp.confirm_update_above` match
//! (always without a filter).

use mongodb::bson::Document;
use mongodb::options::UpdateModifications;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, doc_arg, ns, plural};
use crate::mcp::args::{Flag, JsonObject, opt};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateManyArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The filter selecting the documents to update; omitted or {} means every document (asks for
    /// confirmation). Extended JSON accepted.
    #[serde(default)]
    pub filter: Option<JsonObject>,
    /// The update: an operator document such as {"$set": {...}}, or an aggregation pipeline (array).
    pub update: JsonObject,
    /// Insert a document when none matches.
    #[serde(default)]
    pub upsert: Option<Flag>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateManyOutput {
    pub database: String,
    pub collection: String,
    pub matched_count: u64,
    pub modified_count: u64,
    pub upserted_count: u64,
    /// The `_id` of the upserted document, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upserted_id: Option<Value>,
}

/// `update-many`, as the registry (`mcp::registry`) lists it.
pub struct UpdateMany;

impl Tool for UpdateMany {
    const NAME: &'static str = "update-many";
    const TITLE: &'static str = "Update documents";
    const DESCRIPTION: &'static str = "Update the documents matching a filter ($set and other update operators, or a pipeline). \
                                        Without a filter every document is updated, after the user confirms.";
    const EFFECT: Effect = Effect::Destructive;
    type Args = UpdateManyArgs;
    type Structured = UpdateManyOutput;

    async fn run(
        ctx: &ToolContext,
        confirmer: &impl Confirmer,
        a: UpdateManyArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let filter: Document = doc_arg(ctx, "filter", opt(&a.filter))?.unwrap_or_default();
        let update = match &a.update.0 {
            Value::Array(_) => {
                let stages = ejson::to_documents("update", &a.update.0)?;
                ctx.pipeline("update", &a.database, &stages)?;
                UpdateModifications::Pipeline(stages)
            }
            other => {
                let doc = ejson::to_document("update", other)?;
                ctx.guard.query("update", &doc)?;
                if doc.keys().next().is_none_or(|k| !k.starts_with('$')) {
                    return Err(ToolError::BadArgument(
                        "update: expected update operators such as {\"$set\": {...}} (to replace documents, use $set \
                         on each field)"
                            .into(),
                    ));
                }
                UpdateModifications::Document(doc)
            }
        };
        let namespace = ns(&a.database, &a.collection);
        // Count first: a filter that matches many documents is as broad as no filter (`{"_id": {"$exists": true}}`).
        if ctx.confirm_destructive {
            let matching = ctx
                .bounded(coll.count_documents(filter.clone()).max_time(ctx.max_time))
                .await?;
            let question = if filter.is_empty() {
                Some(format!(
                    "Update EVERY document in {namespace} ({}, no filter)?",
                    plural(matching as usize, "document", "documents")
                ))
            } else if matching > ctx.confirm_update_above {
                Some(format!(
                    "Update {} matching {} in {namespace}?",
                    plural(matching as usize, "document", "documents"),
                    ejson::relaxed(filter.clone())
                ))
            } else {
                None
            };
            if let Some(question) = question {
                ctx.confirm(confirmer, question).await?;
            }
        }
        let result = ctx
            .bounded_write(
                coll.update_many(filter, update)
                    .upsert(a.upsert.is_some_and(|f| f.0)),
            )
            .await?;
        let upserted_id = result.upserted_id.map(ejson::relaxed_value);
        let summary = format!(
            "Matched {}, modified {} in {namespace}{}.",
            plural(result.matched_count as usize, "document", "documents"),
            result.modified_count,
            if upserted_id.is_some() {
                ", upserted 1"
            } else {
                ""
            }
        );
        Ok(Output::plain(
            summary,
            json!(UpdateManyOutput {
                database: a.database,
                collection: a.collection,
                matched_count: result.matched_count,
                modified_count: result.modified_count,
                upserted_count: u64::from(upserted_id.is_some()),
                upserted_id,
            }),
        ))
    }
}
