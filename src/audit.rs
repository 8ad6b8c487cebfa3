//! The audit log: one JSON line per tool call — who, what, on which namespace, the outcome and its size — on a
//! dedicated sink (stderr or a file). Never document contents, never argument values (a filter is recorded by
//! its *shape*: keys and operators kept, every value replaced by `"?"`), never secrets.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

/// Where audit lines go (`server.audit_log`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditTarget {
    Off,
    Stderr,
    File(PathBuf),
}

/// Who sent a request and its id; set by the HTTP edge (or for stdio), read by the audit log and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    /// `X-Request-Id` as received (if well-formed) or generated.
    pub id: String,
    /// The bearer token's *name*, an access token's `sub` (and client), `anonymous@<ip>` without tokens, or
    /// `stdio`.
    pub caller: String,
    /// The tool classes the caller's credentials grant (all but for OAuth access tokens).
    pub grants: crate::access::Grants,
}

impl RequestMeta {
    /// A fresh random request id.
    pub fn new_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }
}

/// One audit line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub timestamp: String,
    pub request_id: String,
    pub caller: String,
    /// The target (connection) the call named, when the configuration names targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// ok, error, rejected, unavailable, input_required.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    pub duration_ms: f64,
    /// Documents (or values) returned.
    pub documents: u64,
    /// Bytes of the text content returned.
    pub bytes: u64,
    /// The arguments with every value replaced by "?".
    pub arguments: Value,
}

/// The audit sink. Writes are serialized; a failing sink is reported once per failure, never panics.
pub struct Audit {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

impl Audit {
    /// Opens the configured sink (a file is appended to, created with mode 0600).
    ///
    /// # Errors
    /// The I/O error of opening the file.
    pub fn open(target: &AuditTarget) -> std::io::Result<Self> {
        let sink: Option<Box<dyn Write + Send>> = match target {
            AuditTarget::Off => None,
            AuditTarget::Stderr => Some(Box::new(std::io::stderr())),
            AuditTarget::File(path) => {
                use std::os::unix::fs::OpenOptionsExt as _;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)?;
                Some(Box::new(std::io::LineWriter::new(file)))
            }
        };
        Ok(Self {
            sink: sink.map(Mutex::new),
        })
    }

    /// Writes one line.
    pub fn record(&self, record: &AuditRecord) {
        let Some(sink) = &self.sink else { return };
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sink.write_all(&line).and_then(|()| sink.flush()) {
            tracing::error!(cause = %e, "cannot write the audit log");
        }
    }
}

/// The shape of an argument: objects keep their keys, arrays their first elements' shapes, scalars become "?".
pub fn shape(value: &Value) -> Value {
    shape_at(value, 0)
}

/// Deeper structure is summarised as "…" (arguments are bounded anyway).
const SHAPE_DEPTH: usize = 12;
/// Array elements shown per array.
const SHAPE_ITEMS: usize = 5;

fn shape_at(value: &Value, depth: usize) -> Value {
    if depth >= SHAPE_DEPTH {
        return Value::String("…".into());
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shape_at(v, depth + 1)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .take(SHAPE_ITEMS)
                .map(|v| shape_at(v, depth + 1))
                .collect(),
        ),
        _ => Value::String("?".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shapes_keep_structure_and_drop_values() {
        let args = json!({
            "database": "shop",
            "filter": {"email": "alice@example.com", "age": {"$gt": 30}, "tags": {"$in": ["vip", "x"]}},
            "limit": 5
        });
        let s = shape(&args);
        assert_eq!(
            s,
            json!({"database": "?", "filter": {"email": "?", "age": {"$gt": "?"}, "tags": {"$in": ["?", "?"]}}, "limit": "?"})
        );
        assert!(!s.to_string().contains("alice"));
    }
}
