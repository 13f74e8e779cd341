//! Node configs as typed structs: the definition validator and the run read the
//! same struct, so what validation accepts is exactly what a run understands.
//!
//! Fields that may hold `{{ }}` templates stay JSON values until the run renders
//! them; everything else has its own type.

use std::sync::LazyLock;

use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::check::{Checker, join};
use super::halt::NodeStop;

/// Reads a node's config for validation. A field that does not read as its type
/// is reported with its JSON path; `None` then, and the node's own rules are not
/// checked until it reads. A field the struct does not have is reported too (it is
/// usually a typo), at any depth.
pub fn read<T: DeserializeOwned + JsonSchema>(
    config: &Value,
    at: &str,
    check: &mut Checker,
) -> Option<T> {
    let config = if config.is_null() { &EMPTY } else { config };
    let schema = SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    unknown_fields(config, &schema, &defs, at, check);
    match serde_path_to_error::deserialize::<_, T>(config) {
        Ok(typed) => Some(typed),
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." {
                at.to_string()
            } else {
                join(at, &path)
            };
            check.error(at, e.into_inner().to_string());
            None
        }
    }
}

/// Reports the fields of `value` that `schema` (a struct's, as derived for
/// editors) does not list. Runs stay lenient (see [`parse`]): a version stored
/// before a field was dropped still runs.
fn unknown_fields(value: &Value, schema: &Value, defs: &Value, at: &str, check: &mut Checker) {
    let Some(schema) = pick(schema, defs, value) else {
        return;
    };
    match value {
        Value::Object(map) => {
            let Some(known) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            // An object that lists what it reads and takes others too (a
            // `dateCalculation` step's arguments).
            let open = schema
                .get("additionalProperties")
                .is_some_and(|more| more != &Value::Bool(false));
            for (field, inner) in map {
                let path = join(at, field);
                match known.get(field) {
                    Some(field_schema) => unknown_fields(inner, field_schema, defs, &path, check),
                    None if open => {}
                    None => {
                        let names: Vec<&str> = known.keys().map(String::as_str).collect();
                        check.error(
                            path,
                            format!("unknown field; expected one of {}", names.join(", ")),
                        );
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item, item_schema, defs, &format!("{at}[{i}]"), check);
                }
            }
        }
        _ => {}
    }
}

/// The schema that describes `value`: `$ref`s followed, and of `anyOf`/`oneOf`
/// alternatives the one for its kind (an object's fields, an array's items); of
/// an enum's variants, the one its tag names (`{"function": "add", ...}`).
fn pick<'a>(schema: &'a Value, defs: &'a Value, value: &Value) -> Option<&'a Value> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => defs.get(reference.rsplit('/').next()?)?,
        None => schema,
    };
    let wanted = if value.is_object() {
        "properties"
    } else {
        "items"
    };
    if schema.get(wanted).is_some() {
        return Some(schema);
    }
    let alternatives: Vec<&Value> = ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|alternative| pick(alternative, defs, value))
        .filter(|s| s.get(wanted).is_some())
        .collect();
    alternatives
        .iter()
        .find(|s| tagged_as(s, value))
        .or(alternatives.first())
        .copied()
}

/// Whether every field `schema` fixes to one value (a tag) has it in `value`.
fn tagged_as(schema: &Value, value: &Value) -> bool {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(field, s)| {
            s.get("const")
                .is_none_or(|tag| value.get(field) == Some(tag))
        })
}

/// Reads a node's config for a run. Deployed definitions were validated, so a
/// config that does not read (a record edited by hand) errors the node.
pub fn parse<T: DeserializeOwned>(config: &Value) -> Result<T, NodeStop> {
    let config = if config.is_null() { &EMPTY } else { config };
    T::deserialize(config)
        .map_err(|e| NodeStop::Error(format!("the node's config is invalid: {e}")))
}

/// An absent config reads as `{}`.
static EMPTY: LazyLock<Value> = LazyLock::new(|| Value::Object(serde_json::Map::new()));

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::engine::Problem;

    #[derive(Debug, Deserialize, PartialEq, schemars::JsonSchema)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        #[serde(default)]
        status_code: Option<u16>,
        #[serde(default)]
        headers: Vec<Pair>,
    }

    #[derive(Debug, Deserialize, PartialEq, schemars::JsonSchema)]
    struct Pair {
        name: String,
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        let mut problems: Vec<Problem> = Vec::new();
        let mut check = Checker::new(&mut problems);
        let bad = json!({"statusCode": 200, "headers": [{"name": "a"}, {"name": 5}]});
        assert_eq!(read::<Sample>(&bad, "nodes[0].config", &mut check), None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "nodes[0].config.headers[1].name");
        assert!(
            problems[0].message.contains("expected a string"),
            "{}",
            problems[0]
        );
        let mut check = Checker::new(&mut problems);
        let good = read::<Sample>(&Value::Null, "c", &mut check).unwrap();
        assert_eq!(
            good,
            Sample {
                status_code: None,
                headers: vec![]
            }
        );
        assert!(parse::<Sample>(&json!({"statusCode": "x"})).is_err());

        // Unknown fields, at any depth, are named; a run still reads them.
        let mut problems: Vec<Problem> = Vec::new();
        let mut check = Checker::new(&mut problems);
        let typo = json!({"statusCod": 1, "headers": [{"name": "a", "nmae": "b"}]});
        assert!(read::<Sample>(&typo, "c", &mut check).is_some());
        let found: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
        assert_eq!(found, ["c.statusCod", "c.headers[0].nmae"]);
        assert!(
            problems[0]
                .message
                .contains("expected one of statusCode, headers")
        );
        assert!(parse::<Sample>(&typo).is_ok());
    }

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    enum Shape {
        Circle {
            radius: f64,
        },
        Square {
            side: f64,
            #[serde(default)]
            labels: Labels,
        },
    }

    /// Names it reads, and takes any other.
    #[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
    #[schemars(extend("additionalProperties" = true))]
    struct Labels {
        #[serde(default)]
        _top: Option<String>,
    }

    #[test]
    fn an_enum_variant_is_judged_by_its_own_fields_and_open_objects_take_any() {
        let mut problems: Vec<Problem> = Vec::new();
        let mut check = Checker::new(&mut problems);
        let square = json!({"kind": "square", "side": 2, "sdie": 2, "labels": {"left": "a"}});
        let read_square = read::<Shape>(&square, "c", &mut check);
        let circle = json!({"kind": "circle", "radius": 1.5});
        let read_circle = read::<Shape>(&circle, "c", &mut check);
        let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            ["c.sdie: unknown field; expected one of kind, side, labels"]
        );
        assert!(matches!(
            read_square,
            Some(Shape::Square {
                side: 2.0,
                labels: Labels { _top: None }
            })
        ));
        assert!(matches!(read_circle, Some(Shape::Circle { radius: 1.5 })));
    }
}
