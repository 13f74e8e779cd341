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
    ///
    /// The verdict stops at the first mismatch. Explaining one under `anyOf` or
    /// `oneOf` makes the validator collect every error of every alternative (for a
    /// large array, millions): past [`MAX_EXPLAINED_NODES`] values such a mismatch
    /// is reported without its location.
    pub fn check(&self, body: &Value) -> Result<Option<Mismatch>, SchemaProblem> {
        let validator = self.compiled()?;
        if validator.is_valid(body) {
            return Ok(None);
        }
        if has_alternatives(&self.document) && !at_most_nodes(body, MAX_EXPLAINED_NODES) {
            return Ok(Some(Mismatch {
                error: "the body does not match trigger.schema (a mismatch under anyOf or \
                        oneOf is not located in a body this large)"
                    .into(),
                instance_path: String::new(),
                schema_path: String::new(),
            }));
        }
        Ok(validator.validate(body).err().map(|e| Mismatch {
            error: bounded(e.to_string()),
            instance_path: bounded(e.instance_path.to_string()),
            schema_path: bounded(e.schema_path.to_string()),
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
        // Draft 2020-12's `format` is an annotation; older drafts' validation of
        // it is off too, as the docs say (and `format: "regex"` would parse a
        // sender's text in quadratic time).
        .should_validate_formats(false)
        // A schema's patterns take bounded memory, whatever their author wrote.
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(MAX_PATTERN_BYTES)
                .dfa_size_limit(MAX_PATTERN_BYTES),
        )
        .build(document)
        .map(Arc::new)
        .map_err(|e| SchemaProblem {
            // Where in the schema (the instance the metaschema checked).
            pointer: e.instance_path.to_string(),
            message: e.to_string(),
        })
}

/// How many values a body may hold for a mismatch under `anyOf`/`oneOf` to be
/// located (see [`BodySchema::check`]).
const MAX_EXPLAINED_NODES: usize = 20_000;
/// What one compiled pattern may take (its program, and its lazy DFA's cache).
const MAX_PATTERN_BYTES: usize = 1 << 20;

fn has_alternatives(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("anyOf")
                || map.contains_key("oneOf")
                || map.values().any(has_alternatives)
        }
        Value::Array(items) => items.iter().any(has_alternatives),
        _ => false,
    }
}

/// Whether `value` holds at most `limit` values (itself included); stops counting
/// at the limit.
fn at_most_nodes(value: &Value, limit: usize) -> bool {
    fn count(value: &Value, left: &mut usize) -> bool {
        if *left == 0 {
            return false;
        }
        *left -= 1;
        match value {
            Value::Array(items) => items.iter().all(|v| count(v, left)),
            Value::Object(map) => map.values().all(|v| count(v, left)),
            _ => true,
        }
    }
    let mut left = limit;
    count(value, &mut left)
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
    fn format_is_an_annotation_in_every_draft() {
        for draft in [
            "https://json-schema.org/draft/2020-12/schema",
            "http://json-schema.org/draft-07/schema#",
        ] {
            let schema = json!({"$schema": draft, "properties": {"e": {"format": "email"}}});
            assert_eq!(check(schema, json!({"e": "nope"})), None, "{draft}");
        }
    }

    #[test]
    fn a_large_body_failing_alternatives_is_refused_without_collecting_every_error() {
        let schema =
            json!({"anyOf": [{"items": {"type": "integer"}}, {"items": {"type": "number"}}]});
        // 300k failing items: explained, it would be 600k owned errors.
        let body = Value::Array(vec![json!("a"); 300_000]);
        let mismatch = check(schema.clone(), body).expect("refused");
        assert_eq!(
            (
                mismatch.instance_path.as_str(),
                mismatch.schema_path.as_str()
            ),
            ("", "")
        );
        assert!(
            mismatch.error.contains("anyOf or oneOf"),
            "{}",
            mismatch.error
        );
        // A small one is still located.
        let small = check(schema, json!(["a"])).expect("refused");
        assert_eq!(small.schema_path, "/anyOf");
    }

    #[test]
    fn compiled_once_and_shared_by_clones() {
        let schema = BodySchema::new(json!({"type": "object"}));
        let first = schema.compiled().unwrap();
        assert!(Arc::ptr_eq(&first, &schema.clone().compiled().unwrap()));
        assert!(Arc::ptr_eq(&first, &schema.compiled().unwrap()));
    }
}
