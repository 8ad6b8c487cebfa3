//! The tools, in one list, and how each becomes an rmcp route. A tool declares its name, title, description,
//! [`Effect`], arguments, output shape and `run` (the [`Tool`] trait, one file each under `tools/`); from that this
//! module builds what `tools/list` advertises (annotations from the effect; schemas rewritten so every client can
//! drive them) and the handler a call reaches (arguments deserialized, a confirmation bound to them for
//! destructive tools, then `NexusServer::call`, the one dispatch path).

use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::handler::server::tool::{ToolCallContext, ToolRoute, ToolRouter, parse_json_object};
use rmcp::model::{self, CallToolResponse, JsonObject, ToolAnnotations};
use serde_json::Value;

use super::confirm::{self, ClientConfirm};
use super::dispatch::request_meta;
use super::server::NexusServer;
use super::tools::aggregate::Aggregate;
use super::tools::collection_indexes::CollectionIndexes;
use super::tools::collection_schema::CollectionSchema;
use super::tools::collection_storage_size::CollectionStorageSize;
use super::tools::count::Count;
use super::tools::create_collection::CreateCollection;
use super::tools::create_index::CreateIndex;
use super::tools::db_stats::DbStats;
use super::tools::delete_many::DeleteMany;
use super::tools::distinct::Distinct;
use super::tools::drop_collection::DropCollection;
use super::tools::drop_database::DropDatabase;
use super::tools::drop_index::DropIndex;
use super::tools::explain::Explain;
use super::tools::find::Find;
use super::tools::insert_many::InsertMany;
use super::tools::list_collections::ListCollections;
use super::tools::list_databases::ListDatabases;
use super::tools::rename_collection::RenameCollection;
use super::tools::update_many::UpdateMany;
use super::tools::{Effect, Tool};

/// Every tool. `tools/list` sorts them by name.
fn all() -> [(Effect, ToolRoute<NexusServer>); 20] {
    [
        route::<ListDatabases>(),
        route::<ListCollections>(),
        route::<Find>(),
        route::<Aggregate>(),
        route::<Count>(),
        route::<Distinct>(),
        route::<CollectionSchema>(),
        route::<CollectionIndexes>(),
        route::<CollectionStorageSize>(),
        route::<DbStats>(),
        route::<Explain>(),
        route::<InsertMany>(),
        route::<UpdateMany>(),
        route::<DeleteMany>(),
        route::<CreateIndex>(),
        route::<DropIndex>(),
        route::<CreateCollection>(),
        route::<RenameCollection>(),
        route::<DropCollection>(),
        route::<DropDatabase>(),
    ]
}

/// The router: the read tools, and the writing ones unless `read_only` (every target read-only). With named
/// targets (`named`: their names), every tool takes `connectionId` and `list-connections` lists them.
pub fn router(read_only: bool, named: Option<&[String]>) -> ToolRouter<NexusServer> {
    let mut router = ToolRouter::new();
    for (effect, mut route) in all() {
        if effect == Effect::Read || !read_only {
            if let Some(names) = named {
                route.attr = with_connection_id(route.attr, names);
            }
            router.add_route(route);
        }
    }
    if named.is_some() {
        router.add_route(super::connections::route());
    }
    router
}

/// `tool` with the `connectionId` property: one of `names`.
fn with_connection_id(mut tool: model::Tool, names: &[String]) -> model::Tool {
    let mut schema = tool.input_schema.as_ref().clone();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.insert(
            super::targets::CONNECTION_ID.into(),
            serde_json::json!({
                "description": "Which database (see list-connections); may be omitted only when one is named \
                                `default`.",
                "type": "string",
                "enum": names,
            }),
        );
    }
    tool.input_schema = Arc::new(schema);
    tool
}

fn route<T: Tool>() -> (Effect, ToolRoute<NexusServer>) {
    (
        T::EFFECT,
        ToolRoute::new_dyn(attributes::<T>(), handler::<T>),
    )
}

/// What `tools/list` says of `T`.
fn attributes<T: Tool>() -> model::Tool {
    let (read_only, destructive) = match T::EFFECT {
        Effect::Read => (true, None),
        Effect::Write => (false, Some(false)),
        Effect::Destructive => (false, Some(true)),
    };
    let input = schema_for_input::<T::Args>()
        .unwrap_or_else(|e| panic!("invalid input schema for {}: {e}", T::NAME));
    let tool = model::Tool::new_with_raw(T::NAME, Some(T::DESCRIPTION.into()), input)
        .with_raw_output_schema(schema_for_output::<T::Structured>())
        .with_annotations(ToolAnnotations::from_raw(
            Some(T::TITLE.into()),
            Some(read_only),
            destructive,
            None,
            Some(false),
        ));
    portable_schemas(tool)
}

fn handler<T: Tool>(
    call: ToolCallContext<'_, NexusServer>,
) -> BoxFuture<'_, Result<CallToolResponse, ErrorData>> {
    Box::pin(run::<T>(call))
}

/// A call of `T`: arguments that do not deserialize are rmcp's "failed to deserialize parameters" error (the
/// router turns it into a tool error); everything else goes through [`NexusServer::call`].
async fn run<T: Tool>(
    call: ToolCallContext<'_, NexusServer>,
) -> Result<CallToolResponse, ErrorData> {
    let args: T::Args = parse_json_object(call.arguments.unwrap_or_default())?;
    let server = call.service;
    let rc = call.request_context;
    // Bound to the target too: a confirmation given for one database never authorizes the same call on another.
    let binding = (T::EFFECT == Effect::Destructive).then(|| {
        let caller = match super::dispatch::target_name() {
            Some(target) => format!("{}@{target}", request_meta(&rc).caller),
            None => request_meta(&rc).caller,
        };
        confirm::binding(&caller, T::NAME, &args)
    });
    let confirmer = ClientConfirm {
        rc: &rc,
        codec: &server.codec,
        binding: binding.clone().unwrap_or_default(),
        state: call.request_state,
        responses: call.input_responses,
    };
    server
        .call(T::NAME, T::EFFECT, binding, |ctx| async move {
            T::run(&ctx, &confirmer, args).await
        })
        .await
}

/// schemars marks integers with formats such as `uint64` that JSON Schema does not define; strict validators
/// (ajv in the MCP Inspector) warn about every one. Drop them: the `type` says enough. Input schemas are then
/// inlined and given one `type` per property (see `args`).
fn portable_schemas(mut tool: model::Tool) -> model::Tool {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let numeric = map.get("format").and_then(Value::as_str).is_some_and(|f| {
                    f.starts_with("int") || f.starts_with("uint") || f == "double" || f == "float"
                });
                if numeric {
                    map.remove("format");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    fn clean(schema: &Arc<JsonObject>) -> Arc<JsonObject> {
        let mut v = Value::Object(schema.as_ref().clone());
        strip(&mut v);
        match v {
            Value::Object(map) => Arc::new(map),
            _ => schema.clone(),
        }
    }
    tool.input_schema = clean(&tool.input_schema);
    let mut input = Value::Object(tool.input_schema.as_ref().clone());
    super::args::inline_refs(&mut input);
    super::args::single_types(&mut input);
    if let Value::Object(map) = input {
        tool.input_schema = Arc::new(map);
    }
    tool.output_schema = tool.output_schema.as_ref().map(clean);
    tool
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tools/list` as clients see it, byte for byte: names, descriptions, input schemas (after the schema
    /// rewrite), output schemas and annotations. Regenerate with `NEXUS_UPDATE_SNAPSHOTS=1 cargo test` only for
    /// a deliberate change, and review the diff.
    #[test]
    fn tools_list_is_pinned() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/mcp/testdata/tools-list.json"
        );
        let all = router(false, None).list_all();
        let text = serde_json::to_string_pretty(&all).unwrap() + "\n";
        if std::env::var_os("NEXUS_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let pinned = std::fs::read_to_string(path).unwrap();
        assert!(
            text == pinned,
            "tools/list changed; diff {path} against:\n{text}"
        );

        let read_only = router(true, None).list_all();
        let names: Vec<&str> = read_only.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "aggregate",
                "collection-indexes",
                "collection-schema",
                "collection-storage-size",
                "count",
                "db-stats",
                "distinct",
                "explain",
                "find",
                "list-collections",
                "list-databases"
            ]
        );
        for tool in &read_only {
            assert!(
                all.contains(tool),
                "{} differs in read-only mode",
                tool.name
            );
        }
    }

    #[test]
    fn every_tool_is_listed_once() {
        let names: std::collections::HashSet<_> =
            all().iter().map(|(_, r)| r.name().to_string()).collect();
        assert_eq!(names.len(), all().len());
    }
}
