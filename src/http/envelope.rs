//! What the edge reads of a JSON-RPC message before rmcp parses it: whether it is a request, its id and its
//! method — never its params. A body the edge cannot read is treated as a request (rmcp answers it with the error).

use serde::Deserialize;
use serde_json::Value;

/// The envelope of one JSON-RPC message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Envelope {
    /// The request id (`None` for a notification, or when unreadable).
    pub id: Option<Value>,
    pub method: Option<String>,
    /// Whether the body was a readable JSON-RPC object.
    readable: bool,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
}

impl Envelope {
    pub fn peek(body: &[u8]) -> Self {
        match serde_json::from_slice::<Raw>(body) {
            Ok(raw) => Self {
                id: raw.id.filter(|id| !id.is_null()),
                method: raw.method,
                readable: true,
            },
            Err(_) => Self::default(),
        }
    }

    /// A request that asks for work (a method and an id), or a body the edge cannot read. Notifications and the
    /// client's answers to the server's own requests (a confirmation, say) are answered at once with 202.
    pub fn is_call(&self) -> bool {
        !self.readable || (self.method.is_some() && self.id.is_some())
    }

    /// An `initialize` request: without an `Mcp-Session-Id`, it opens a legacy session.
    pub fn is_initialize(&self) -> bool {
        self.id.is_some() && self.method.as_deref() == Some("initialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_answers_are_told_apart() {
        let call = Envelope::peek(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"x":[1,2]}}"#,
        );
        assert!(call.is_call() && !call.is_initialize());
        assert_eq!(call.id, Some(Value::from(7)));
        let init =
            Envelope::peek(br#"{"jsonrpc":"2.0","id":"a","method":"initialize","params":{}}"#);
        assert!(init.is_call() && init.is_initialize());
        let note = Envelope::peek(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(!note.is_call() && !note.is_initialize());
        let answer = Envelope::peek(br#"{"jsonrpc":"2.0","id":3,"result":{"action":"accept"}}"#);
        assert!(!answer.is_call());
    }

    #[test]
    fn what_cannot_be_read_counts_as_a_call() {
        for body in [&b"{not json"[..], b"[1,2]", br#"{"id":1,"method":5}"#, b""] {
            let e = Envelope::peek(body);
            assert!(e.is_call() && !e.is_initialize(), "{body:?}");
        }
        let deep = format!(
            r#"{{"id":1,"method":"tools/call","params":{}1{}}}"#,
            r#"{"a":"#.repeat(10_000),
            "}".repeat(10_000)
        );
        assert!(Envelope::peek(deep.as_bytes()).is_call());
    }
}
