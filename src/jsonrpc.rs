//! JSON-RPC 2.0 message hygiene, shared by the stdio transport and the HTTP edge: what is not a JSON-RPC request,
//! notification or response gets the spec's error answer (-32700 parse error, -32600 invalid request, with the id
//! when one can be read) instead of silence or a transport-level status. Knows nothing of MCP.

use serde_json::{Value, json};

/// Whether `message` is a JSON-RPC message (its id, or null); otherwise the error to answer with (one JSON line,
/// newline-terminated).
pub fn check(line: &[u8]) -> Result<Value, Vec<u8>> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| error_line(Value::Null, -32700, &format!("parse error: {e}")))?;
    let id = value
        .get("id")
        .cloned()
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64());
    let invalid = |why: &str| error_line(id.clone().unwrap_or(Value::Null), -32600, why);
    let Some(message) = value.as_object() else {
        return Err(invalid("invalid request: expected a JSON-RPC 2.0 object"));
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("invalid request: \"jsonrpc\" must be \"2.0\""));
    }
    let is_request = message.get("method").is_some_and(Value::is_string);
    let is_response = message.contains_key("result") || message.contains_key("error");
    if !is_request && !is_response {
        return Err(invalid(
            "invalid request: no \"method\" (nor a result or error)",
        ));
    }
    if message.contains_key("id") && id.is_none() {
        return Err(invalid(
            "invalid request: \"id\" must be a string or an integer",
        ));
    }
    Ok(id.unwrap_or(Value::Null))
}

pub fn error_line(id: Value, code: i64, message: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    }))
    .unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Option<Value> {
        check(line.as_bytes())
            .err()
            .map(|l| serde_json::from_slice(&l).unwrap())
    }

    #[test]
    fn good_messages_pass_with_their_id() {
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#),
            Ok(json!("a"))
        );
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Value::Null)
        );
    }

    #[test]
    fn good_messages_pass() {
        assert!(answer(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_none());
        assert!(answer(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_none());
        assert!(answer(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).is_none());
    }

    #[test]
    fn bad_lines_are_answered_with_their_id_when_known() {
        let a = answer(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list""#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        let a = answer(r#"{"jsonrpc":"2.0","id":7}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (json!(7), json!(-32600))
        );
        let a = answer(r#"{"id":"x","method":"ping"}"#).unwrap();
        assert_eq!(a["id"], json!("x"));
        let a = answer(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert_eq!(a["error"]["code"], json!(-32600));
        let a = answer(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#).unwrap();
        assert_eq!(
            (a["id"].clone(), a["error"]["code"].clone()),
            (Value::Null, json!(-32600))
        );
    }

    proptest::proptest! {
        /// Any line: no panic, and an answer when it is not a JSON-RPC message.
        #[test]
        fn any_line_is_passed_or_answered(line in "[ -~]{0,80}") {
            if let Err(answer) = check(line.as_bytes()) {
                let v: Value = serde_json::from_slice(&answer).unwrap();
                let codes = [json!(-32700), json!(-32600)];
                proptest::prop_assert!(codes.contains(&v["error"]["code"]), "{v}");
            }
        }
    }
}
