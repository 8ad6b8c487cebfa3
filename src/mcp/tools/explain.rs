//! `explain`: the query plan of a find, aggregate or count.

use mongodb::bson::{Bson, Document, doc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, doc_arg, ns};
use crate::mcp::ejson;
use crate::mcp::render::Output;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExplainArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// The operation to explain: {"name": "find"|"aggregate"|"count", "arguments": {...}} (find: filter,
    /// projection, sort, limit, skip; aggregate: pipeline; count: query). A one-element array is accepted too.
    #[serde(deserialize_with = "method_arg")]
    #[schemars(with = "Method")]
    pub method: MethodArg,
    /// "queryPlanner" (default, does not run the query), "executionStats" or "allPlansExecution".
    #[serde(default)]
    pub verbosity: Option<Verbosity>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MethodArg {
    One(Method),
    Many(Vec<Method>),
}

/// Published as the object form (one `type` for form-based clients); a one-element array and a JSON string of
/// either form are accepted too.
fn method_arg<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MethodArg, D::Error> {
    use serde::de::Error as _;
    let value = match Value::deserialize(d)? {
        Value::String(s) => serde_json::from_str(&s).map_err(|e| {
            D::Error::custom(format!(
                "expected an object; the string given is not valid JSON ({e})"
            ))
        })?,
        other => other,
    };
    serde_json::from_value(value).map_err(|e| {
        D::Error::custom(format!(
            "expected {{\"name\": \"find\"|\"aggregate\"|\"count\", \"arguments\": {{...}}}} ({e})"
        ))
    })
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Method {
    pub name: MethodName,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    Find,
    Aggregate,
    Count,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verbosity {
    #[default]
    QueryPlanner,
    ExecutionStats,
    AllPlansExecution,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainOutput {
    pub database: String,
    pub collection: String,
    pub method: MethodName,
    /// The server's explain output.
    pub explain_result: Value,
}

/// `explain`, as the registry (`mcp::registry`) lists it.
pub struct Explain;

impl Tool for Explain {
    const NAME: &'static str = "explain";
    const TITLE: &'static str = "Explain";
    const DESCRIPTION: &'static str =
        "Show the query plan of a find, aggregate or count (verbosity queryPlanner by default).";
    const EFFECT: Effect = Effect::Read;
    type Args = ExplainArgs;
    type Structured = ExplainOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: ExplainArgs,
    ) -> Result<Output, ToolError> {
        ctx.collection(&a.database, &a.collection)?;
        let db = ctx.database(&a.database)?;
        let method = match a.method {
            MethodArg::One(m) => m,
            MethodArg::Many(mut ms) if ms.len() == 1 => ms.remove(0),
            MethodArg::Many(ms) => {
                return Err(ToolError::BadArgument(format!(
                    "method: expected one operation, got {}",
                    ms.len()
                )));
            }
        };
        let args = Value::Object(method.arguments);
        let max_time_ms = ctx.max_time.as_millis() as i64;
        let command = match method.name {
            MethodName::Find => {
                let mut cmd = doc! { "find": &a.collection, "maxTimeMS": max_time_ms };
                for key in ["filter", "projection", "sort"] {
                    if let Some(d) = doc_arg(ctx, key, args.get(key))? {
                        cmd.insert(key, d);
                    }
                }
                for key in ["limit", "skip"] {
                    if let Some(v) = args.get(key) {
                        let n = v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                            ToolError::BadArgument(format!(
                                "method.arguments.{key}: must be a non-negative integer"
                            ))
                        })?;
                        cmd.insert(key, n);
                    }
                }
                cmd
            }
            MethodName::Aggregate => {
                let pipeline =
                    ejson::to_documents("pipeline", args.get("pipeline").unwrap_or(&Value::Null))?;
                ctx.pipeline("method.arguments.pipeline", &a.database, &pipeline)?;
                let stages: Vec<Bson> = pipeline.into_iter().map(Bson::Document).collect();
                doc! { "aggregate": &a.collection, "pipeline": stages, "cursor": {}, "maxTimeMS": max_time_ms }
            }
            MethodName::Count => {
                let query = doc_arg(ctx, "query", args.get("query"))?.unwrap_or_default();
                doc! { "count": &a.collection, "query": query, "maxTimeMS": max_time_ms }
            }
        };
        let verbosity = a.verbosity.unwrap_or_default();
        let verbosity_name = serde_json::to_value(verbosity)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        let mut result: Document = ctx
            .bounded(db.run_command(
                doc! { "explain": command, "verbosity": verbosity_name.unwrap_or_default() },
            ))
            .await?;
        for noise in ["ok", "$clusterTime", "operationTime"] {
            result.remove(noise);
        }
        let name = match method.name {
            MethodName::Find => "find",
            MethodName::Aggregate => "aggregate",
            MethodName::Count => "count",
        };
        let summary = format!(
            "Query plan of a {name} on {}.",
            ns(&a.database, &a.collection)
        );
        let structured = json!(ExplainOutput {
            database: a.database,
            collection: a.collection,
            method: method.name,
            explain_result: ejson::relaxed(result),
        });
        Ok(Output::data(summary, structured, "/explainResult"))
    }
}
