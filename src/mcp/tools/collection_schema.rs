//! `collection-schema`: the field paths of a sample of documents, with their types and how often they occur.

use std::collections::BTreeMap;

use mongodb::bson::{Bson, Document, doc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Confirmer, Effect, Tool, ToolContext, ToolError, ns, plural};
use crate::mcp::args::{Int, UInt};
use crate::mcp::render::Output;
use crate::mongo::collect::collect;

/// Sampled documents by default, as the official server.
const DEFAULT_SAMPLE: u64 = 50;
/// Nested fields deeper than this are summarised as their parent's type.
const MAX_PATH_DEPTH: usize = 8;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CollectionSchemaArgs {
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
    /// Number of documents to sample (default 50; at most the server's mcp.max_documents).
    #[serde(default)]
    pub sample_size: Option<Int>,
    /// The maximum number of bytes to sample (capped by the server's mcp.max_bytes).
    #[serde(default)]
    pub response_bytes_limit: Option<UInt>,
    /// Accepted for compatibility with the official MongoDB MCP server; ignored.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub connection_id: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FieldSummary {
    /// BSON type names seen at this path, most frequent first.
    pub types: Vec<String>,
    /// Share of sampled documents that have this path (0..1).
    pub frequency: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionSchemaOutput {
    pub database: String,
    pub collection: String,
    /// Field path (dotted; array elements share their array's path) → summary.
    pub schema: BTreeMap<String, FieldSummary>,
    pub fields_count: usize,
    pub sampled_documents: usize,
}

/// `collection-schema`, as the registry (`mcp::registry`) lists it.
pub struct CollectionSchema;

impl Tool for CollectionSchema {
    const NAME: &'static str = "collection-schema";
    const TITLE: &'static str = "Collection schema";
    const DESCRIPTION: &'static str = "Describe a collection's fields from a sample of documents: field paths, types, frequencies.";
    const EFFECT: Effect = Effect::Read;
    type Args = CollectionSchemaArgs;
    type Structured = CollectionSchemaOutput;

    async fn run(
        ctx: &ToolContext,
        _confirmer: &impl Confirmer,
        a: CollectionSchemaArgs,
    ) -> Result<Output, ToolError> {
        let coll = ctx.collection(&a.database, &a.collection)?;
        let size = match a.sample_size.map(|s| s.0) {
            None => DEFAULT_SAMPLE,
            Some(n) if n >= 1 => n as u64,
            Some(n) => {
                return Err(ToolError::BadArgument(format!(
                    "sampleSize: must be at least 1, got {n}"
                )));
            }
        }
        .min(ctx.guard.max_documents());
        let max_bytes = super::response_bytes(ctx, a.response_bytes_limit.map(|b| b.0));
        let sample = vec![doc! { "$sample": { "size": size as i64 } }];
        let cursor = match ctx
            .bounded(coll.aggregate(sample).max_time(ctx.max_time))
            .await
        {
            Ok(cursor) => cursor,
            // Servers without $sample: the first documents in natural order.
            Err(_) => {
                ctx.bounded(coll.find(doc! {}).limit(size as i64).max_time(ctx.max_time))
                    .await?
            }
        };
        let docs = collect(cursor, size, max_bytes).await?.documents;
        if docs.is_empty() {
            ctx.require_collection(&a.database, &a.collection).await?;
        }
        let schema = infer(&docs);
        let summary = format!(
            "Sampled {} of {}: {} found.",
            plural(docs.len(), "document", "documents"),
            ns(&a.database, &a.collection),
            plural(schema.len(), "field path", "field paths")
        );
        let fields_count = schema.len();
        let structured = json!(CollectionSchemaOutput {
            database: a.database,
            collection: a.collection,
            schema,
            fields_count,
            sampled_documents: docs.len(),
        });
        Ok(Output::data(summary, structured, "/schema"))
    }
}

/// Field paths → types and frequencies over `docs`.
pub fn infer(docs: &[Document]) -> BTreeMap<String, FieldSummary> {
    let mut seen: BTreeMap<String, (usize, BTreeMap<&'static str, usize>)> = BTreeMap::new();
    for doc in docs {
        let mut in_doc: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        walk(doc, "", 0, &mut in_doc);
        for (path, types) in in_doc {
            let entry = seen.entry(path).or_default();
            entry.0 += 1;
            for t in types {
                *entry.1.entry(t).or_default() += 1;
            }
        }
    }
    let n = docs.len().max(1) as f64;
    seen.into_iter()
        .map(|(path, (present, types))| {
            let mut types: Vec<(&str, usize)> = types.into_iter().collect();
            types.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
            let summary = FieldSummary {
                types: types.into_iter().map(|(t, _)| t.to_string()).collect(),
                frequency: (present as f64 / n * 1000.0).round() / 1000.0,
            };
            (path, summary)
        })
        .collect()
}

fn walk(doc: &Document, prefix: &str, depth: usize, out: &mut BTreeMap<String, Vec<&'static str>>) {
    for (key, value) in doc {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        record(&path, value, depth, out);
    }
}

fn record(path: &str, value: &Bson, depth: usize, out: &mut BTreeMap<String, Vec<&'static str>>) {
    let types = out.entry(path.to_string()).or_default();
    let name = type_name(value);
    if !types.contains(&name) {
        types.push(name);
    }
    if depth >= MAX_PATH_DEPTH {
        return;
    }
    match value {
        Bson::Document(sub) => walk(sub, path, depth + 1, out),
        Bson::Array(items) => {
            for item in items {
                if let Bson::Document(sub) = item {
                    walk(sub, path, depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => "javascript",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Decimal128(_) => "decimal",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_types_and_frequencies() {
        let docs = vec![
            doc! { "a": 1, "b": { "c": "x" }, "tags": [ { "k": 1 } ] },
            doc! { "a": "one", "b": { "c": "y" } },
        ];
        let s = infer(&docs);
        assert_eq!(s["a"].types, ["int", "string"]);
        assert_eq!(s["a"].frequency, 1.0);
        assert_eq!(s["b.c"].types, ["string"]);
        assert_eq!(s["tags.k"].frequency, 0.5);
        assert_eq!(s["tags"].types, ["array"]);
    }
}
