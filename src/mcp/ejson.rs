//! Extended JSON in and out.
//!
//! In: tool arguments arrive as JSON; values such as `{"$oid": ..}`, `{"$date": ..}` or `{"$numberLong": ..}`
//! (canonical or relaxed EJSON v2) become BSON types; query operators (`$gt`, `$in`, …) stay documents. Errors
//! name the argument path (`filter.createdAt.$gte: ...`). Nesting is bounded ([`MAX_DEPTH`]).
//!
//! Out: documents are rendered as relaxed EJSON (`{"$oid": ..}`, ISO dates, plain numbers).

use mongodb::bson::{Bson, Document};
use serde_json::{Map, Value};

/// Deepest nesting accepted in an argument (MongoDB itself allows 100 levels of BSON nesting).
pub const MAX_DEPTH: usize = 100;

/// The EJSON v2 type wrappers: an object whose first key is one of these is one BSON value.
const WRAPPERS: &[&str] = &[
    "$oid",
    "$date",
    "$numberLong",
    "$numberInt",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$timestamp",
    "$regularExpression",
    "$symbol",
    "$code",
    "$minKey",
    "$maxKey",
    "$undefined",
    "$dbPointer",
];

/// An argument that is not valid (extended) JSON for its purpose; the message names the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EjsonError {
    pub path: String,
    pub reason: String,
}

/// Converts an argument that must be a document (filter, projection, sort, update, a pipeline stage…).
///
/// # Errors
/// [`EjsonError`] naming `name` and the path inside it.
pub fn to_document(name: &str, value: &Value) -> Result<Document, EjsonError> {
    match to_bson(value, &mut name.to_string(), 0)? {
        Bson::Document(doc) => Ok(doc),
        other => Err(EjsonError {
            path: name.into(),
            reason: format!("expected an object, got {}", kind(&other)),
        }),
    }
}

/// Converts an argument that must be an array of documents (pipeline, documents to insert).
///
/// # Errors
/// [`EjsonError`] naming `name[i]` and the path inside it.
pub fn to_documents(name: &str, value: &Value) -> Result<Vec<Document>, EjsonError> {
    let Value::Array(items) = value else {
        return Err(EjsonError {
            path: name.into(),
            reason: "expected an array of objects".into(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| to_document(&format!("{name}[{i}]"), item))
        .collect()
}

/// Converts any argument value.
///
/// # Errors
/// [`EjsonError`] naming `name` and the path inside it.
pub fn to_value(name: &str, value: &Value) -> Result<Bson, EjsonError> {
    to_bson(value, &mut name.to_string(), 0)
}

fn to_bson(value: &Value, path: &mut String, depth: usize) -> Result<Bson, EjsonError> {
    if depth > MAX_DEPTH {
        return Err(EjsonError {
            path: path.clone(),
            reason: format!("nested deeper than {MAX_DEPTH} levels"),
        });
    }
    match value {
        Value::Object(map) if is_wrapper(map) => {
            Bson::try_from(value.clone()).map_err(|e| EjsonError {
                path: path.clone(),
                reason: format!("invalid extended JSON value: {e}"),
            })
        }
        Value::Object(map) => {
            let mut doc = Document::new();
            for (key, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let converted = to_bson(item, path, depth + 1)?;
                path.truncate(len);
                doc.insert(key.clone(), converted);
            }
            Ok(Bson::Document(doc))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(to_bson(item, path, depth + 1)?);
                path.truncate(len);
            }
            Ok(Bson::Array(out))
        }
        scalar => Bson::try_from(scalar.clone()).map_err(|e| EjsonError {
            path: path.clone(),
            reason: e.to_string(),
        }),
    }
}

fn is_wrapper(map: &Map<String, Value>) -> bool {
    map.keys()
        .next()
        .is_some_and(|k| WRAPPERS.contains(&k.as_str()))
}

fn kind(b: &Bson) -> &'static str {
    match b {
        Bson::Array(_) => "an array",
        Bson::String(_) => "a string",
        Bson::Null => "null",
        Bson::Boolean(_) => "a boolean",
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => "a number",
        _ => "a scalar value",
    }
}

/// A document as relaxed extended JSON.
pub fn relaxed(doc: Document) -> Value {
    Bson::Document(doc).into_relaxed_extjson()
}

/// A BSON value as relaxed extended JSON.
pub fn relaxed_value(value: Bson) -> Value {
    value.into_relaxed_extjson()
}

#[cfg(test)]
mod tests {
    use mongodb::bson::oid::ObjectId;
    use serde_json::json;

    use super::*;

    #[test]
    fn wrappers_become_bson_types_and_operators_stay_documents() {
        let filter = json!({
            "_id": {"$oid": "65a1b2c3d4e5f60718293a4b"},
            "createdAt": {"$gte": {"$date": "2024-01-01T00:00:00Z"}},
            "qty": {"$numberLong": "5"},
            "tags": {"$in": ["a", "b"]}
        });
        let doc = to_document("filter", &filter).unwrap();
        assert_eq!(
            doc.get_object_id("_id").unwrap(),
            ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap()
        );
        assert!(matches!(
            doc.get_document("createdAt").unwrap().get("$gte"),
            Some(Bson::DateTime(_))
        ));
        assert_eq!(doc.get_i64("qty").unwrap(), 5);
        assert!(doc.get_document("tags").unwrap().get_array("$in").is_ok());
        let keys: Vec<_> = doc.keys().collect();
        assert_eq!(
            keys,
            ["_id", "createdAt", "qty", "tags"],
            "key order is preserved (sort specs need it)"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let e = to_document("filter", &json!({"a": {"b": [1, {"$oid": "nope"}]}})).unwrap_err();
        assert_eq!(e.path, "filter.a.b[1]");
        let e = to_document("sort", &json!([1])).unwrap_err();
        assert_eq!(e.to_string(), "sort: expected an object, got an array");
        let e = to_documents("pipeline", &json!([{"$match": {}}, 3])).unwrap_err();
        assert_eq!(e.path, "pipeline[1]");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut v = json!(1);
        for _ in 0..(MAX_DEPTH + 5) {
            v = json!({ "a": v });
        }
        let e = to_document("filter", &v).unwrap_err();
        assert!(e.reason.contains("nested deeper"), "{e}");
    }

    #[test]
    fn output_is_relaxed_extended_json() {
        let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        let doc = mongodb::bson::doc! { "_id": oid, "n": 5_i64, "x": 1.5 };
        assert_eq!(
            relaxed(doc),
            json!({"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "n": 5, "x": 1.5})
        );
    }
}
