//! The JSON Schema (draft 2020-12) of the definition format, for editors.
//!
//! It is derived (`schemars`) from the structs the loader reads definitions into
//! and from each node type's typed config, the one `validate` reads, so it cannot
//! drift from what is accepted. What the derive cannot see is added here: the
//! patterns of keys and hook ids, the node types a deployment knows, and which
//! config each of them takes. Rules across fields (a branch's node keys, templates'
//! paths) stay with `validate`; the schema catches typos and wrong types as you type.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::engine::NodeRegistry;
use crate::model::WorkflowDefinition;

/// What `key` and node keys may be (see `is_identifier`).
const KEY_PATTERN: &str = r"^(?!\.+$)[A-Za-z0-9._-]{1,128}$";
/// What a hook id may be (see `model::is_hook_id`).
const HOOK_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";

/// The schema of a definition whose nodes are of `registry`'s types.
pub fn definition_schema(registry: &NodeRegistry) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let configs: Vec<(&str, Value)> = registry
        .names()
        .into_iter()
        .filter_map(|name| {
            let node = registry.get(name).filter(|node| !node.test_only())?;
            Some((name, node.config_schema(&mut generator).to_value()))
        })
        .collect();
    let mut schema = generator
        .into_root_schema_for::<WorkflowDefinition>()
        .to_value();
    schema["title"] = json!("hookflow workflow definition");
    let root = &mut schema["properties"];
    root["$schema"] = json!({
        "type": "string",
        "description": "Where editors find this schema (ignored by hookflow)."
    });
    root["description"] = json!({"type": ["string", "null"]});
    root["key"]["pattern"] = json!(KEY_PATTERN);

    let trigger = &mut schema["$defs"]["TriggerDefinition"]["properties"];
    trigger["type"] = json!({"const": "webhook"});
    trigger["hookId"]["pattern"] = json!(HOOK_ID_PATTERN);

    let node = &mut schema["$defs"]["NodeDefinition"];
    node["properties"]["description"] = json!({"type": ["string", "null"]});
    node["properties"]["key"]["pattern"] = json!(KEY_PATTERN);
    node["properties"]["type"] = json!({
        "enum": configs.iter().map(|(name, _)| *name).collect::<Vec<_>>()
    });
    node["properties"]["config"] = json!({"type": ["object", "null"]});
    // Before the conditions below: an `if` closed to other fields would never match.
    close_objects(&mut schema);
    let node = &mut schema["$defs"]["NodeDefinition"];
    node["allOf"] = configs
        .into_iter()
        .map(|(name, config)| {
            json!({
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"properties": {"config": {"anyOf": [config, {"type": "null"}]}}}
            })
        })
        .collect();
    schema
}

/// Every object schema that lists its properties refuses others, as `validate`
/// does: a misspelt field is an error, not a silently ignored one.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_type_has_its_config_schema() {
        let registry = crate::nodes::builtin();
        let schema = definition_schema(&registry);
        let node = &schema["$defs"]["NodeDefinition"];
        let documented = registry
            .names()
            .into_iter()
            .filter(|name| *name != "test-panic")
            .count();
        assert_eq!(node["allOf"].as_array().map(Vec::len), Some(documented));
        assert!(
            !node["properties"]["type"]["enum"]
                .to_string()
                .contains("test-panic")
        );
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}
