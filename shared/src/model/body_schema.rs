//! `trigger.schema`: a JSON Schema the body (`$context.body`) must match before a
//! run starts, and `trigger.onInvalid`: what a body that does not match gets.
//!
//! The validator is the `jsonschema` crate: draft 2020-12 unless the schema's own
//! `$schema` names another, `format` an annotation only (as 2020-12 says), no
//! `$ref` ever fetched (the crate is built without its file and HTTP resolvers,
//! so a deployed schema cannot make the webhook read a file or call out). What a
//! sender can make it cost is bounded: a body is checked up to its first
//! mismatch only (a body of a million failing items makes one error, not a
//! million), and `pattern`s run on the `regex` crate, in linear time, so no
//! string a sender picks backtracks. A slow schema is the author's to fix.
//!
//! A schema is compiled once per loaded definition and kept with it (the
//! webhook's hook cache keeps a version's definition while it is current).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A `422` answer's `error`, and a kept execution's, is cut to this many bytes:
/// the crate's messages quote the value that failed, which a sender may make as
/// long as the body.
const MAX_ERROR_BYTES: usize = 512;

type Compiled = Result<Arc<jsonschema::Validator>, SchemaProblem>;

/// `trigger.schema` as the definition holds it: a schema (an object or a
/// boolean), or, in a workflow file, the path of a JSON file beside it, which
/// loading the file reads in its place.
#[derive(Default)]
pub struct BodySchema {
    document: Value,
    compiled: OnceLock<Compiled>,
}

/// Why a schema cannot be used: where in it (a JSON Pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", at_pointer(pointer))]
pub struct SchemaProblem {
    pub pointer: String,
    pub message: String,
}

fn at_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        format!(" (at {pointer} in the schema)")
    }
}

/// Why a body does not match: the contract's `error`, `instancePath` and
/// `schemaPath` (JSON Pointers into the body and into the schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub error: String,
    pub instance_path: String,
    pub schema_path: String,
}

impl BodySchema {
    pub fn new(document: Value) -> Self {
        Self {
            document,
            compiled: OnceLock::new(),
        }
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The path a workflow file names in place of a schema.
    pub fn path(&self) -> Option<&str> {
        self.document.as_str()
    }

    /// The compiled schema: compiled the first time, then kept (a schema that
    /// does not compile is kept as such too: it will not compile the next time).
    pub fn compiled(&self) -> Compiled {
        self.compiled
            .get_or_init(|| compile(&self.document))
            .clone()
    }

    /// `Ok(None)` when `body` matches, else its first mismatch.
    pub fn check(&self, body: &Value) -> Result<Option<Mismatch>, SchemaProblem> {
        let validator = self.compiled()?;
        Ok(validator.validate(body).err().map(|e| Mismatch {
            error: bounded(e.to_string()),
            instance_path: e.instance_path.to_string(),
            schema_path: e.schema_path.to_string(),
        }))
    }
}

fn compile(document: &Value) -> Compiled {
    if let Some(path) = document.as_str() {
        return Err(SchemaProblem {
            pointer: String::new(),
            message: format!(
                "{path:?} is a path: it is read from beside the workflow file when the file is \
                 loaded (validate, deploy, serve); a deployed definition holds the schema itself"
            ),
        });
    }
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(document)
        .map(Arc::new)
        .map_err(|e| SchemaProblem {
            // Where in the schema (the instance the metaschema checked).
            pointer: e.instance_path.to_string(),
            message: e.to_string(),
        })
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A clone shares what was compiled: it is the same schema.
impl Clone for BodySchema {
    fn clone(&self) -> Self {
        Self {
            document: self.document.clone(),
            compiled: self.compiled.clone(),
        }
    }
}

impl PartialEq for BodySchema {
    fn eq(&self, other: &Self) -> bool {
        self.document == other.document
    }
}

impl fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodySchema({})", self.document)
    }
}

impl Serialize for BodySchema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.document.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BodySchema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Self::new)
    }
}

impl JsonSchema for BodySchema {
    fn schema_name() -> Cow<'static, str> {
        "BodySchema".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A JSON Schema (draft 2020-12) for $context.body, or the path of a JSON file beside the workflow file that holds one.",
            "anyOf": [{"type": "object"}, {"type": "boolean"}, {"type": "string"}]
        })
    }
}

/// `trigger.onInvalid`: a body that does not match `trigger.schema` is refused
/// with 422 (`refuse`, the default), or answered as accepted and recorded as an
/// execution with status `invalid` that ran no node (`keep`), for a replay once
/// the workflow or its schema is fixed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    #[default]
    Refuse,
    Keep,
}

impl OnInvalid {
    pub fn is_refuse(&self) -> bool {
        *self == Self::Refuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, body: Value) -> Option<Mismatch> {
        BodySchema::new(schema).check(&body).expect("compiles")
    }

    #[test]
    fn the_first_mismatch_names_its_pointers() {
        let schema = json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer"},
                "items": {"type": "array", "items": {"$ref": "#/$defs/item"}}
            },
            "$defs": {"item": {"properties": {"sku": {"pattern": "^[A-Z]+$"}}}}
        });
        assert_eq!(check(schema.clone(), json!({"id": 1})), None);
        let missing = check(schema.clone(), json!({})).unwrap();
        assert_eq!(
            (missing.instance_path.as_str(), missing.schema_path.as_str()),
            ("", "/required")
        );
        assert!(missing.error.contains("\"id\""), "{}", missing.error);
        let deep = check(
            schema,
            json!({"id": 1, "items": [{"sku": "AB"}, {"sku": "ab"}]}),
        )
        .unwrap();
        assert_eq!(deep.instance_path, "/items/1/sku");
        assert_eq!(
            deep.schema_path,
            "/properties/items/items/$ref/properties/sku/pattern"
        );
    }

    #[test]
    fn draft_2020_12_unless_the_schema_names_another() {
        // prefixItems is 2020-12's; draft 7 knows only the array form of items.
        let prefix = json!({"prefixItems": [{"type": "string"}]});
        assert!(check(prefix, json!([1])).is_some());
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]});
        assert!(check(draft7, json!([1])).is_some());
        // format is an annotation in 2020-12.
        assert_eq!(check(json!({"format": "email"}), json!("nope")), None);
    }

    #[test]
    fn a_schema_that_cannot_be_used_says_where() {
        let problem = BodySchema::new(json!({"properties": {"n": {"minLength": -1}}}))
            .compiled()
            .unwrap_err();
        assert_eq!(problem.pointer, "/properties/n/minLength");
        assert!(
            problem
                .to_string()
                .contains("(at /properties/n/minLength in the schema)")
        );
        // No reference is ever fetched, from a file or the network.
        for reference in ["file:///etc/hostname", "https://example.com/s.json"] {
            assert!(
                BodySchema::new(json!({"$ref": reference}))
                    .compiled()
                    .is_err()
            );
        }
        // A path left unread is not a schema.
        let unread = BodySchema::new(json!("order.schema.json"))
            .compiled()
            .unwrap_err();
        assert!(
            unread.message.contains("beside the workflow file"),
            "{unread}"
        );
        // Look-around and backreferences need backtracking: not patterns the
        // linear-time engine runs.
        for pattern in ["(?<=x)a", "(a)\\1"] {
            let schema = BodySchema::new(json!({"pattern": pattern}));
            assert!(schema.compiled().is_err(), "{pattern}");
        }
    }

    #[test]
    fn a_sender_pays_for_one_mismatch_of_bounded_size() {
        let started = std::time::Instant::now();
        // A pattern that backtracks exponentially elsewhere.
        let evil = json!({"properties": {"a": {"pattern": "^(a+)+$"}}});
        let body = json!({"a": format!("{}!", "a".repeat(100_000))});
        assert!(check(evil, body).is_some());
        let many = Value::Array(vec![json!("x".repeat(2_000)); 100_000]);
        let found = check(json!({"items": {"type": "integer"}}), many).unwrap();
        assert_eq!(found.instance_path, "/0");
        assert!(found.error.len() <= MAX_ERROR_BYTES + '…'.len_utf8());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn compiled_once_and_shared_by_clones() {
        let schema = BodySchema::new(json!({"type": "object"}));
        let first = schema.compiled().unwrap();
        assert!(Arc::ptr_eq(&first, &schema.clone().compiled().unwrap()));
        assert!(Arc::ptr_eq(&first, &schema.compiled().unwrap()));
    }
}
