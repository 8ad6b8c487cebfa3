//! Property-based fuzzing of everything that parses input from the network: tool arguments, Extended JSON, the
//! guards, the audit shape, the edge's JSON-RPC envelope and the MongoDB URI parser. Properties: no panic, and the security-relevant invariant
//! of each (JavaScript operators are always refused, values never reach the audit log, passwords never appear in
//! errors).
//!
//! CI runs the default 256 cases per property; a long local run: `PROPTEST_CASES=1000000 cargo test --release
//! --test fuzz_inputs`.

use nexus_mcp::audit::shape;
use nexus_mcp::config::McpConfig;
use nexus_mcp::http::envelope::Envelope;
use nexus_mcp::mcp::ejson;
use nexus_mcp::mcp::guard::Guard;
use nexus_mcp::mcp::tools::{aggregate::AggregateArgs, explain::ExplainArgs, find::FindArgs};
use nexus_mcp::mongo::uri::MongoUri;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys an attacker (or a confused model) would try: operators, EJSON wrappers, dotted and empty names.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$where".to_string()),
        Just("$function".to_string()),
        Just("$accumulator".to_string()),
        Just("$oid".to_string()),
        Just("$date".to_string()),
        Just("$numberLong".to_string()),
        Just("$numberDecimal".to_string()),
        Just("$binary".to_string()),
        Just("$regularExpression".to_string()),
        Just("$out".to_string()),
        Just("$merge".to_string()),
        Just("$lookup".to_string()),
        Just("$unionWith".to_string()),
        Just("$facet".to_string()),
        Just("from".to_string()),
        Just("pipeline".to_string()),
        Just("".to_string()),
        "[a-z.$]{1,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,24}".prop_map(Value::String),
        Just(json!("65a1b2c3d4e5f60718293a4b")),
        Just(json!("2024-01-01T00:00:00Z")),
    ];
    leaf.prop_recursive(8, 128, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn guard(read_only: bool) -> Guard {
    Guard::new(&McpConfig {
        read_only,
        denied_databases: vec!["secret*".into()],
        ..McpConfig::shipped_defaults()
    })
}

fn contains_key(v: &Value, needle: &str) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == needle || contains_key(v, needle)),
        Value::Array(items) => items.iter().any(|v| contains_key(v, needle)),
        _ => false,
    }
}

proptest! {
    #[test]
    fn ejson_never_panics_and_errors_name_the_argument(v in json_value()) {
        match ejson::to_document("filter", &v) {
            Ok(_) => prop_assert!(v.is_object()),
            Err(e) => prop_assert!(e.path.starts_with("filter"), "{e}"),
        }
        let _ = ejson::to_documents("pipeline", &v);
    }

    #[test]
    fn javascript_operators_are_always_refused(v in json_value()) {
        let g = guard(true);
        if let Ok(doc) = ejson::to_document("filter", &v) {
            let verdict = g.query("filter", &doc);
            // A key inside an EJSON wrapper is part of a value, not an operator: only flag real documents.
            let doc_json = ejson::relaxed(doc.clone());
            if contains_key(&doc_json, "$where") || contains_key(&doc_json, "$function")
                || contains_key(&doc_json, "$accumulator") {
                prop_assert!(verdict.is_err());
            }
        }
    }

    #[test]
    fn pipelines_never_write_when_read_only(stages in prop::collection::vec(json_value(), 0..5)) {
        let g = guard(true);
        let v = Value::Array(stages);
        if let Ok(docs) = ejson::to_documents("pipeline", &v) {
            let writes = docs.iter().any(|d| d.contains_key("$out") || d.contains_key("$merge"));
            let verdict = g.pipeline("shop", &docs);
            if writes {
                prop_assert!(verdict.is_err());
            }
        }
    }

    #[test]
    fn tool_arguments_parse_or_fail_without_panicking(v in json_value()) {
        let _ = serde_json::from_value::<FindArgs>(v.clone());
        let _ = serde_json::from_value::<AggregateArgs>(v.clone());
        let _ = serde_json::from_value::<ExplainArgs>(v);
    }

    /// Whatever the body, the edge never lets a message carrying a method and an id pass as a non-call (which
    /// would skip the in-flight cap).
    #[test]
    fn a_request_is_never_taken_for_a_notification(v in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": v.clone() });
        prop_assert!(Envelope::peek(request.to_string().as_bytes()).is_call());
        let e = Envelope::peek(v.to_string().as_bytes());
        if v.get("method").is_some_and(Value::is_string) && v.get("id").is_some_and(|id| !id.is_null()) {
            prop_assert!(e.is_call());
        }
        let _ = Envelope::peek(&bytes);
    }

    #[test]
    fn the_audit_shape_carries_no_values(v in json_value(), secret in "[A-Za-z0-9]{12,20}") {
        let with_secret = json!({ "filter": { "email": secret.clone(), "nested": [v] } });
        let s = shape(&with_secret).to_string();
        prop_assert!(!s.contains(&secret));
    }

    #[test]
    fn uri_errors_never_echo_the_password(user in "[a-z]{1,8}", password in "[A-Za-z0-9]{10,16}",
                                          rest in "[ -~]{0,40}") {
        let uri = format!("mongodb://{user}:{password}@{rest}");
        match MongoUri::parse(&uri) {
            Ok(parsed) => {
                prop_assert!(!parsed.to_string().contains(&password));
                let debug = format!("{:?}", parsed);
                prop_assert!(!debug.contains(&password));
            }
            Err(e) => prop_assert!(!e.contains(&password)),
        }
    }
}
