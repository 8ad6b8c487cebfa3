//! Property-based fuzzing of everything that parses input from the network or a file: tool arguments, Extended
//! JSON, the guards, database and collection names, the audit shape, the edge's JSON-RPC envelope, the MongoDB URI
//! parser, the config loader (environment and file) and the tokens file (known_hosts, the JSON-RPC line check and
//! the HTTP headers Host/Origin/Authorization are fuzzed beside their private parsers, in the library's unit
//! tests). Properties: no panic, and the security-relevant invariant of
//! each (JavaScript operators are always refused, a name that passes follows MongoDB's rules and a denied database
//! is refused in any case, values never reach the audit log, passwords and tokens never appear in errors).
//!
//! CI runs the default 256 cases per property; a long local run: `PROPTEST_CASES=1000000 cargo test --release
//! --test fuzz_inputs`.

use nexus_mcp::audit::shape;
use nexus_mcp::config::{self, Sources};
use nexus_mcp::http::envelope::Envelope;
use nexus_mcp::http::tokens::Tokens;
use nexus_mcp::mcp::McpConfig;
use nexus_mcp::mcp::ejson;
use nexus_mcp::mcp::guard::Guard;
use nexus_mcp::mcp::namespace::{DatabaseName, Namespace};
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

/// Tool arguments as MCP carries them: an object, with the argument names tools know among random ones.
fn tool_arguments() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("database".to_string()),
        Just("collection".to_string()),
        Just("filter".to_string()),
        Just("limit".to_string()),
        Just("pipeline".to_string()),
        Just("method".to_string()),
        Just("responseBytesLimit".to_string()),
        key(),
    ];
    prop::collection::vec((name, json_value()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>()))
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
        ..config::mcp_defaults()
    })
}

/// Names: anything at all, the denied one in mixed case, and the characters MongoDB treats specially.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(?i:secret)[a-z_]{0,6}",
        "[a-z.$ /\\\x00]{0,8}",
        "[a-z]{60,70}",
        "[a-zé]{240,260}",
    ]
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
            let verdict = g.pipeline("pipeline", DatabaseName::parse("database", "shop").unwrap(), &docs);
            if writes {
                prop_assert!(verdict.is_err());
            }
        }
    }

    #[test]
    fn tool_arguments_parse_or_fail_without_panicking(v in tool_arguments()) {
        // Parsed arguments always carry the namespace (required fields cannot be defaulted away), and a refusal
        // always says something.
        match serde_json::from_value::<FindArgs>(v.clone()) {
            Ok(a) => prop_assert!(v["database"] == a.database.as_str() && v["collection"] == a.collection.as_str()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match serde_json::from_value::<AggregateArgs>(v.clone()) {
            Ok(a) => prop_assert!(v["database"] == a.database.as_str() && v.get("pipeline").is_some()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match serde_json::from_value::<ExplainArgs>(v.clone()) {
            Ok(a) => prop_assert!(v["collection"] == a.collection.as_str() && v.get("method").is_some()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
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
    fn uri_errors_never_echo_the_password(user in "[a-z]{1,8}", password in "[A-Za-z0-9/?@:]{10,16}",
                                          rest in "[ -~]{0,40}") {
        let uri = format!("mongodb://{user}:{password}@{rest}");
        match MongoUri::parse(&uri) {
            Ok(parsed) => {
                prop_assert!(!parsed.to_string().contains(&password));
                let debug = format!("{:?}", parsed);
                prop_assert!(!debug.contains(&password));
            }
            Err(e) => prop_assert!(!e.to_string().contains(&password)),
        }
    }

    #[test]
    fn the_config_loader_names_the_key_and_never_panics(
        key in prop::sample::select(vec![
            "NEXUS_SSH__PORT", "NEXUS_SSH__KEEPALIVE_INTERVAL", "NEXUS_SSH__JUMP", "NEXUS_SSH__HOST",
            "NEXUS_SERVER__LISTEN", "NEXUS_SERVER__BODY_LIMIT", "NEXUS_SERVER__REQUEST_TIMEOUT",
            "NEXUS_TUNNEL__LOCAL_LISTEN", "NEXUS_TUNNEL__MAX_CONNECTIONS", "NEXUS_MONGO__URI",
            "NEXUS_MONGO__MAX_TIME", "NEXUS_MCP__MAX_BYTES", "NEXUS_MCP__DEFAULT_LIMIT", "NEXUS_LOG__LEVEL",
            "NEXUS_SSH__NO_SUCH_KEY", "LOCAL_PORT", "MCP_PORT", "MONGO_URI",
        ]),
        value in "[ -~]{0,40}",
    ) {
        let mut env = std::collections::HashMap::from([
            ("NEXUS_SSH__HOST".to_string(), "bastion".to_string()),
            ("NEXUS_SSH__USER".to_string(), "u".to_string()),
            ("NEXUS_SSH__AGENT".to_string(), "true".to_string()),
            ("NEXUS_SSH__KNOWN_HOSTS".to_string(), "/dev/null".to_string()),
            ("NEXUS_MONGO__URI".to_string(), "mongodb://app:s3cr3t-pw@mongo:27017/db".to_string()),
        ]);
        env.insert(key.to_string(), value);
        let sources = Sources { file: None, env, transport: None, listen: None, insecure_no_auth: false };
        if let Err(e) = config::load(&sources) {
            let e = e.to_string();
            prop_assert!(e.contains(':'), "no key named: {e}");
            prop_assert!(!e.contains("s3cr3t-pw"), "{e}");
        }
    }

    #[test]
    fn the_tokens_file_never_panics_or_echoes_a_token(lines in prop::collection::vec("[ -~]{0,40}", 0..6),
                                                      token in "[A-Za-z0-9]{16,24}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let mut text = lines.join("\n");
        text.push_str(&format!("\nbad name:{token}\n"));
        std::fs::write(&path, text).unwrap();
        match Tokens::load(&path) {
            Ok(tokens) => prop_assert!(tokens.identify(&token).is_none()),
            Err(e) => prop_assert!(!e.to_string().contains(&token)),
        }
    }

    #[test]
    fn names_pass_only_under_mongodb_rules_and_denials_ignore_case(db in name(), coll in name()) {
        const DATABASE_FORBIDDEN: [char; 13] = ['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0'];
        let name = match DatabaseName::parse("database", &db) {
            Ok(name) => name,
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.starts_with("`database`") && text.len() < 1000, "{text}");
                prop_assert!(db.is_empty() || db.len() > 63 || db.contains(DATABASE_FORBIDDEN));
                return Ok(());
            }
        };
        prop_assert!(!db.is_empty() && db.len() < 64 && !db.contains(DATABASE_FORBIDDEN));
        if db.is_ascii() && db.to_ascii_lowercase().starts_with("secret") {
            prop_assert_eq!(guard(false).database(name).unwrap_err().rule, "mcp.denied_databases");
        }
        match Namespace::parse(name, "collection", &coll) {
            Ok(_) => prop_assert!(!coll.is_empty() && !coll.contains(['$', '\0']) && !coll.starts_with('.')
                && db.len() + 1 + coll.len() <= 255),
            Err(e) => prop_assert!(e.to_string().starts_with("`collection`"), "{e}"),
        }
    }
}

proptest! {
    // Each case writes a file and runs the whole load: fewer cases keep the whole fuzz run under 10 s.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A config file of real section and key names in any combination, with values of every TOML type and text
    /// that is not TOML. The loader never panics, and no error echoes the URI's password.
    #[test]
    fn the_config_file_never_panics_or_echoes_the_uri_password(
        lines in prop::collection::vec((
            prop::sample::select(vec!["ssh", "tunnel", "mongo", "mcp", "server", "log", "health", "ssh.jump"]),
            prop::sample::select(vec![
                "port", "host", "user", "uri", "listen", "local_listen", "max_connections", "max_time",
                "read_only", "denied_databases", "level", "keepalive_interval", "mode", "no_such_key",
            ]),
            prop_oneof![
                "[ -~]{0,20}".prop_map(|v| format!("{v:?}")),
                any::<i64>().prop_map(|v| v.to_string()),
                any::<bool>().prop_map(|v| v.to_string()),
                "[ -~]{0,12}".prop_map(|v| format!("[{v:?}, 1]")),
                "[ -~]{0,20}",
            ],
        ), 0..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        // Each section once and each key once (a repeat is only a TOML syntax error): the fuzzed lines override.
        let mut sections = std::collections::BTreeMap::<&str, std::collections::BTreeMap<&str, String>>::new();
        for (section, key, value) in [
            ("ssh", "host", "\"bastion\"".to_string()),
            ("ssh", "user", "\"u\"".to_string()),
            ("ssh", "agent", "true".to_string()),
            ("ssh", "known_hosts", "\"/dev/null\"".to_string()),
            ("mongo", "uri", "\"mongodb://app:s3cr3t-pw@mongo:27017/db\"".to_string()),
        ].into_iter().chain(lines) {
            sections.entry(section).or_default().insert(key, value);
        }
        let mut text = String::new();
        for (section, keys) in &sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        std::fs::write(&path, &text).unwrap();
        let sources = Sources {
            file: Some(path),
            env: Default::default(),
            transport: None,
            listen: None,
            insecure_no_auth: false,
        };
        if let Err(e) = config::load(&sources) {
            let e = e.to_string();
            prop_assert!(!e.is_empty());
            prop_assert!(!e.contains("s3cr3t-pw"), "{e}\n--- the file:\n{text}");
        }
    }
}
