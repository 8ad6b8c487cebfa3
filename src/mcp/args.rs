//! Tool argument types that every MCP client can drive.
//!
//! Form-based clients (the MCP Inspector's CLI and form, several IDE hosts) decide how to convert what the user
//! typed from the property's `type`: only a single string `type` gets a number, boolean, object or array; anything
//! else (`["integer","null"]`, no `type` at all) is sent as a string. So each argument here publishes exactly one
//! `type`, and accepts the string a form sends where that is unambiguous:
//! - [`Int`] / [`UInt`] / [`Flag`]: a JSON number / boolean, or a string holding one (`"5"`, `"true"`);
//! - [`JsonObject`] / [`JsonArray`]: a JSON value, or a string holding JSON (`"{\"status\":\"paid\"}"`). The
//!   value itself is checked later by the tool (EJSON conversion names the argument), so a wrong shape keeps its
//!   usual, precise error.
//!
//! Optional arguments are `Option<…>` of these; [`single_types`] removes the `null` alternative schemars adds.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// An integer argument; also accepts a string holding an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int(pub i64);

/// A non-negative integer argument; also accepts a string holding one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UInt(pub u64);

/// A boolean argument; also accepts `"true"` / `"false"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

/// An object argument (a filter, projection, sort, update…); also accepts a string holding JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonObject(pub Value);

/// An array argument (a pipeline, documents…); also accepts a string holding JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonArray(pub Value);

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("expected an integer, got {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("expected an integer, got the string {v:?}")))
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor).map(Int)
    }
}

impl<'de> Deserialize<'de> for UInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(IntVisitor)?;
        u64::try_from(v)
            .map(UInt)
            .map_err(|_| de::Error::custom(format!("must not be negative, got {v}")))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl Visitor<'_> for FlagVisitor {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
                match v.trim() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(E::custom(format!(
                        "expected true or false, got the string {v:?}"
                    ))),
                }
            }
        }
        d.deserialize_any(FlagVisitor).map(Flag)
    }
}

/// A JSON value, or a string that holds JSON of the `expected` kind ("object" or "array").
fn json_or_string<'de, D: Deserializer<'de>>(d: D, expected: &str) -> Result<Value, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => {
            let trimmed = s.trim_start();
            let opens = if expected == "array" { '[' } else { '{' };
            if !trimmed.starts_with(opens) {
                return Err(de::Error::custom(format!(
                    "expected an {expected}, got a string that is not a JSON {expected}"
                )));
            }
            serde_json::from_str(&s).map_err(|e| {
                de::Error::custom(format!(
                    "expected an {expected}; the string given is not valid JSON ({e})"
                ))
            })
        }
        other => Ok(other),
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        json_or_string(d, "object").map(JsonObject)
    }
}

impl<'de> Deserialize<'de> for JsonArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        json_or_string(d, "array").map(JsonArray)
    }
}

// Serialized as the plain value: confirmation bindings hash the arguments as the tool understood them.
macro_rules! serialize_inner {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
    )*};
}

serialize_inner!(Int, UInt, Flag, JsonObject, JsonArray);

impl AsRef<Value> for JsonObject {
    fn as_ref(&self) -> &Value {
        &self.0
    }
}

impl AsRef<Value> for JsonArray {
    fn as_ref(&self) -> &Value {
        &self.0
    }
}

/// The value of an optional object or array argument.
pub fn opt<T: AsRef<Value>>(arg: &Option<T>) -> Option<&Value> {
    arg.as_ref().map(AsRef::as_ref)
}

macro_rules! single_type_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

single_type_schema!(Int, "Int", { "type": "integer" });
single_type_schema!(UInt, "UInt", { "type": "integer", "minimum": 0 });
single_type_schema!(Flag, "Flag", { "type": "boolean" });
single_type_schema!(JsonObject, "JsonObject", { "type": "object" });
single_type_schema!(JsonArray, "JsonArray", { "type": "array", "items": { "type": "object" } });

/// Replaces each local `{"$ref": "#/$defs/Name"}` with the definition itself (keeping the referring schema's
/// own keys, e.g. its description) and drops `$defs`: form-based clients read a property's `type` directly and
/// do not follow references. Definitions here are never recursive; nesting is bounded anyway.
pub fn inline_refs(schema: &mut Value) {
    let defs = match schema.as_object_mut().and_then(|m| m.remove("$defs")) {
        Some(Value::Object(defs)) => defs,
        _ => return,
    };
    fn walk(value: &mut Value, defs: &serde_json::Map<String, Value>, depth: u8) {
        match value {
            Value::Object(map) => {
                let target = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .and_then(|name| defs.get(name));
                if let (Some(Value::Object(def)), true) = (target, depth < 8) {
                    map.remove("$ref");
                    for (k, v) in def {
                        map.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                map.values_mut().for_each(|v| walk(v, defs, depth + 1));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, defs, depth + 1)),
            _ => {}
        }
    }
    walk(schema, &defs, 0);
}

/// Rewrites a generated input schema so every property has one `type`: `{"type": [T, "null"]}` becomes
/// `{"type": T}` and `{"anyOf": [S, {"type": "null"}]}` becomes `S` (an omitted optional argument needs no
/// `null`; an explicit `null` is still accepted).
pub fn single_types(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get("type") {
                let non_null: Vec<Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1 {
                    map.insert("type".into(), non_null[0].clone());
                }
            }
            for key in ["anyOf", "oneOf"] {
                let Some(Value::Array(alternatives)) = map.get(key) else {
                    continue;
                };
                let non_null: Vec<Value> = alternatives
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1
                    && let Value::Object(inner) = &non_null[0]
                {
                    let inner = inner.clone();
                    map.remove(key);
                    for (k, v) in inner {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(single_types);
        }
        Value::Array(items) => items.iter_mut().for_each(single_types),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Args {
        #[serde(default)]
        limit: Option<Int>,
        #[serde(default)]
        skip: Option<UInt>,
        #[serde(default)]
        upsert: Option<Flag>,
        #[serde(default)]
        filter: Option<JsonObject>,
        pipeline: JsonArray,
    }

    fn parse(v: Value) -> Result<Args, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn form_strings_are_read_as_the_declared_type() {
        let a = parse(json!({
            "limit": "5", "skip": " 2 ", "upsert": "true",
            "filter": "{\"status\": \"paid\"}", "pipeline": "[{\"$match\": {}}]"
        }))
        .unwrap();
        assert_eq!(a.limit, Some(Int(5)));
        assert_eq!(a.skip, Some(UInt(2)));
        assert_eq!(a.upsert, Some(Flag(true)));
        assert_eq!(a.filter, Some(JsonObject(json!({"status": "paid"}))));
        assert_eq!(a.pipeline, JsonArray(json!([{"$match": {}}])));
    }

    #[test]
    fn typed_values_pass_unchanged() {
        let a = parse(json!({"limit": 5, "filter": {"a": 1}, "pipeline": []})).unwrap();
        assert_eq!(a.limit, Some(Int(5)));
        assert_eq!(a.filter, Some(JsonObject(json!({"a": 1}))));
        let a = parse(json!({"limit": null, "pipeline": []})).unwrap();
        assert_eq!(a.limit, None);
    }

    #[test]
    fn bad_strings_say_what_was_expected() {
        let e = parse(json!({"limit": "five", "pipeline": []})).unwrap_err();
        assert!(e.contains("expected an integer"), "{e}");
        let e = parse(json!({"skip": -1, "pipeline": []})).unwrap_err();
        assert!(e.contains("must not be negative"), "{e}");
        let e = parse(json!({"filter": "status=paid", "pipeline": []})).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
        let e = parse(json!({"pipeline": "[{\"$match\": }]"})).unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = parse(json!({"pipeline": [], "fitler": {}})).unwrap_err();
        assert!(e.contains("unknown field `fitler`"), "{e}");
    }

    #[test]
    fn every_property_gets_a_single_type() {
        let mut schema = serde_json::to_value(schemars::schema_for!(Args)).unwrap();
        inline_refs(&mut schema);
        single_types(&mut schema);
        let props = schema["properties"].as_object().unwrap();
        for (name, expected) in [
            ("limit", "integer"),
            ("skip", "integer"),
            ("upsert", "boolean"),
            ("filter", "object"),
            ("pipeline", "array"),
        ] {
            assert_eq!(props[name]["type"], json!(expected), "{name}: {schema}");
        }
        assert_eq!(schema["required"], json!(["pipeline"]));
    }
}
