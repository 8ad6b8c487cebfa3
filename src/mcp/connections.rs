//! `list-connections`: the named targets and their state, listed only when the configuration names targets. It
//! runs without a target and without the health gate: it is how a client learns which database is down and why.

use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::tool::{ToolCallContext, ToolRoute};
use rmcp::model::{self, CallToolResponse, CallToolResult, ContentBlock, ToolAnnotations};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use super::server::NexusServer;

pub const NAME: &str = "list-connections";

/// One target as listed.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Only its schema is used: the rows are built by `Target::describe`.
pub struct Connection {
    /// The name to pass as `connectionId`.
    pub connection_id: String,
    /// `ready`, `starting` or `unavailable`.
    pub state: String,
    /// Whether the server's readiness depends on it.
    pub required: bool,
    /// Whether writes are refused on it.
    pub read_only: bool,
    /// Why it is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[allow(dead_code)]
pub struct ConnectionsOutput {
    pub connections: Vec<Connection>,
}

pub fn route() -> ToolRoute<NexusServer> {
    let input = json!({"type": "object", "properties": {}, "additionalProperties": false});
    let Value::Object(input) = input else {
        unreachable!("an object literal")
    };
    let attr = model::Tool::new_with_raw(
        NAME,
        Some(
            "List the databases (connections) this server reaches, with their state: pass one's connectionId \
             to the other tools."
                .into(),
        ),
        Arc::new(input),
    )
    .with_raw_output_schema(schema_for_output::<ConnectionsOutput>())
    .with_annotations(ToolAnnotations::from_raw(
        Some("List connections".into()),
        Some(true),
        None,
        None,
        Some(false),
    ));
    ToolRoute::new_dyn(attr, handler)
}

fn handler(
    call: ToolCallContext<'_, NexusServer>,
) -> BoxFuture<'_, Result<CallToolResponse, ErrorData>> {
    let rows: Vec<Value> = call.service.targets.iter().map(|t| t.describe()).collect();
    Box::pin(async move {
        let text = rows
            .iter()
            .map(|r| {
                let why = r["why"]
                    .as_str()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                format!(
                    "{}: {}{why}",
                    r["connectionId"].as_str().unwrap_or(""),
                    r["state"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(json!({ "connections": rows }));
        Ok(result.into())
    })
}
