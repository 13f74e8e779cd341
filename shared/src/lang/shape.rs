//! Whether a JSON value has the shape a JSON Schema describes, as `schemars`
//! derives one from the structs a value is read into: the fields an object may
//! have and must have, and the JSON type of each. So the structs are the one
//! place a format's structure is written, for editors (the schema) and for the
//! checks that name every problem with its path before the value is read.
//!
//! The keywords the derive emits for structure are read: `$ref` (to `#/$defs`),
//! `type`, `properties`, `required`, `additionalProperties: false`, `items`,
//! `const`, `anyOf`/`oneOf`. Rules about values (ranges, patterns, rules across
//! fields) are the caller's.

use serde_json::{Map, Value};

/// One place where a value does not have its schema's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The JSON path, as `trigger.request.headers[0].key`.
    pub path: String,
    pub message: String,
}

/// Every place in `value` (found at `at`) that does not have the shape of
/// `schema`, whose `$ref`s point into `root`'s `$defs`.
pub fn mismatches(root: &Value, schema: &Value, value: &Value, at: &str) -> Vec<Mismatch> {
    let mut found = Vec::new();
    Walk { root }.check(schema, value, at, &mut found);
    found
}

struct Walk<'a> {
    root: &'a Value,
}

impl<'a> Walk<'a> {
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        // A chain of references ends within the `$defs` it names (bounded: a
        // reference to itself would be a schema with no value).
        for _ in 0..16 {
            let Some(name) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            else {
                break;
            };
            match self.root.pointer(&format!("/$defs/{name}")) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn check(&self, schema: &'a Value, value: &Value, at: &str, found: &mut Vec<Mismatch>) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            return;
        };
        if let Some(expected) = keywords.get("const")
            && expected != value
        {
            return push(found, at, format!("must be {expected}"));
        }
        if let Some(Value::Array(allowed)) = keywords.get("enum")
            && !allowed.contains(value)
        {
            return push(found, at, format!("must be {}", one_of(allowed)));
        }
        if let Some(types) = keywords.get("type")
            && !types_of(types).any(|t| is_of(value, t))
        {
            return push(found, at, format!("must be {}", expected(schema)));
        }
        for alternatives in ["anyOf", "oneOf"] {
            if let Some(Value::Array(choices)) = keywords.get(alternatives) {
                self.check_alternatives(choices, value, at, found);
            }
        }
        match value {
            Value::Object(fields) => self.check_object(keywords, fields, at, found),
            Value::Array(items) => {
                if let Some(item) = keywords.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.check(item, v, &format!("{at}[{i}]"), found);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        keywords: &'a Map<String, Value>,
        fields: &Map<String, Value>,
        at: &str,
        found: &mut Vec<Mismatch>,
    ) {
        let Some(Value::Object(known)) = keywords.get("properties") else {
            return;
        };
        for name in keywords
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                push(found, &join(at, name), "is required".into());
            }
        }
        let closed = keywords.get("additionalProperties") == Some(&Value::Bool(false));
        for (name, v) in fields {
            match known.get(name) {
                Some(field) => self.check(field, v, &join(at, name), found),
                None if closed => {
                    let names: Vec<&str> = known.keys().map(String::as_str).collect();
                    push(
                        found,
                        &join(at, name),
                        format!("unknown field; expected one of {}", names.join(", ")),
                    );
                }
                None => {}
            }
        }
    }

    /// A value matches one of `choices`: of those of its kind, the one it fits
    /// best speaks for it (an object with a stray field is told about that field,
    /// not that it is none of the forms).
    fn check_alternatives(
        &self,
        choices: &'a [Value],
        value: &Value,
        at: &str,
        found: &mut Vec<Mismatch>,
    ) {
        let mut best: Option<Vec<Mismatch>> = None;
        for choice in choices {
            let choice = self.resolve(choice);
            if !admits_kind(choice, value) {
                continue;
            }
            let mut own = Vec::new();
            self.check(choice, value, at, &mut own);
            if own.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| own.len() < b.len()) {
                best = Some(own);
            }
        }
        match best {
            Some(closest) => found.extend(closest),
            None if choices
                .iter()
                .all(|c| self.resolve(c).get("const").is_some()) =>
            {
                let constants: Vec<Value> = choices
                    .iter()
                    .filter_map(|c| self.resolve(c).get("const").cloned())
                    .collect();
                push(found, at, format!("must be {}", one_of(&constants)));
            }
            None => {
                let forms: Vec<String> = choices
                    .iter()
                    .map(|c| expected(self.resolve(c)))
                    .filter(|form| !form.is_empty())
                    .collect();
                push(found, at, format!("must be {}", forms.join(" or ")));
            }
        }
    }
}

/// What `schema` expects, for messages: `"webhook"`, `true or false`, `an object
/// {maxAttempts, backoffMs}` (an object's fields tell what is meant); empty for
/// only `null`, which a definition never needs to be told to write.
fn expected(schema: &Value) -> String {
    if let Some(constant) = schema.get("const") {
        return constant.to_string();
    }
    let Some(types) = schema.get("type") else {
        return String::new();
    };
    let described = kinds(types_of(types));
    match schema.get("properties") {
        Some(Value::Object(fields)) if described == "an object" => {
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            format!("an object {{{}}}", names.join(", "))
        }
        _ => described,
    }
}

/// "one of github, stripe, hmac": names as they are written in a definition.
fn one_of(allowed: &[Value]) -> String {
    let names: Vec<String> = allowed
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect();
    format!("one of {}", names.join(", "))
}

/// Whether `schema` could describe a value of `value`'s JSON kind.
fn admits_kind(schema: &Value, value: &Value) -> bool {
    match (schema.get("const"), schema.get("type")) {
        (Some(constant), _) => constant == value,
        (None, Some(types)) => types_of(types).any(|t| is_of(value, t)),
        (None, None) => true,
    }
}

fn types_of(types: &Value) -> impl Iterator<Item = &str> + Clone {
    let list: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    list.into_iter()
}

fn is_of(value: &Value, kind: &str) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// "true or false", "a string", "an object or a string", ... for messages.
fn kinds<'t>(types: impl Iterator<Item = &'t str>) -> String {
    let names: Vec<&str> = types
        .filter(|t| *t != "null")
        .map(|t| match t {
            "boolean" => "true or false",
            "string" => "a string",
            "integer" => "a whole number",
            "number" => "a number",
            "array" => "an array",
            "object" => "an object",
            other => other,
        })
        .collect();
    names.join(" or ")
}

fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_string()
    } else {
        format!("{at}.{field}")
    }
}

fn push(found: &mut Vec<Mismatch>, at: &str, message: String) {
    found.push(Mismatch {
        path: at.to_string(),
        message,
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "sync": {"type": "boolean"},
                "kind": {"const": "webhook"},
                "preset": {"type": "string", "enum": ["github", "hmac"]},
                "handshake": {"oneOf": [{"type": "string", "const": "meta"}, {"type": "string", "const": "crc"}]},
                "auth": {"anyOf": [{"$ref": "#/$defs/Auth"}, {"type": "null"}, {"const": false}]},
                "secret": {"anyOf": [
                    {"type": "object", "properties": {"env": {"type": "string"}}, "required": ["env"], "additionalProperties": false},
                    {"type": "string"}
                ]},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Auth"}}
            },
            "required": ["key"],
            "additionalProperties": false,
            "$defs": {"Auth": {"type": "object", "properties": {"username": {"type": "string"}}, "required": ["username"], "additionalProperties": false}}
        })
    }

    fn found(value: Value) -> Vec<String> {
        let root = schema();
        mismatches(&root, &root, &value, "")
            .into_iter()
            .map(|m| format!("{}: {}", m.path, m.message))
            .collect()
    }

    #[test]
    fn a_value_of_the_shape_has_no_mismatch() {
        assert!(
            found(json!({"key": "k", "sync": true, "kind": "webhook", "auth": false})).is_empty()
        );
        assert!(
            found(json!({"key": "k", "auth": {"username": "u"}, "secret": {"env": "A"}}))
                .is_empty()
        );
        assert!(
            found(json!({"key": "k", "secret": "plain", "items": [{"username": "a"}]})).is_empty()
        );
    }

    #[test]
    fn each_mismatch_is_named_by_its_path() {
        assert_eq!(
            found(
                json!({"sync": "yes", "snyc": 1, "kind": "cron", "items": [{"username": 1}, {}]})
            ),
            [
                "key: is required",
                "sync: must be true or false",
                "snyc: unknown field; expected one of key, sync, kind, preset, handshake, auth, secret, items",
                "kind: must be \"webhook\"",
                "items[0].username: must be a string",
                "items[1].username: is required",
            ]
        );
    }

    #[test]
    fn names_are_told_which_are_known() {
        assert!(found(json!({"key": "k", "preset": "hmac", "handshake": "crc"})).is_empty());
        assert_eq!(
            found(json!({"key": "k", "preset": "gitlab", "handshake": "zoom"})),
            [
                "preset: must be one of github, hmac",
                "handshake: must be one of meta, crc",
            ]
        );
    }

    #[test]
    fn of_alternatives_the_closest_speaks() {
        assert_eq!(
            found(json!({"key": "k", "auth": 5, "secret": {"env": "A", "x": 1}})),
            [
                "auth: must be an object {username} or false",
                "secret.x: unknown field; expected one of env",
            ]
        );
        assert_eq!(
            found(json!({"key": "k", "auth": true})),
            ["auth: must be an object {username} or false"]
        );
    }
}
