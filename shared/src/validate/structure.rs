//! The structure of a definition (which fields each object has and must have, and
//! each field's JSON type) comes from the structs the loader reads it into, through
//! the schema derived from them for editors (`definition_schema`): the rules in
//! this module's siblings are about values and across fields only.

use serde_json::{Value, json};

use super::{Problem, definition_schema};
use crate::engine::NodeRegistry;
use crate::lang::shape;

/// Puts the structural problems of `doc` before `problems` (the rules' findings),
/// but none where (or under where) a rule already named a problem: a rule's
/// message says more than "must be a string".
pub(super) fn check(doc: &Value, registry: &NodeRegistry, problems: &mut Vec<Problem>) {
    let mut schema = definition_schema(registry);
    // A node's type is checked against the registry (test-only types included,
    // with the list of known ones in the message), its config by the node type.
    schema["$defs"]["NodeDefinition"]["properties"]["type"] = json!({"type": "string"});
    let found = shape::mismatches(&schema, &schema, doc, "");
    let mut structural: Vec<Problem> = found
        .into_iter()
        .filter(|m| !problems.iter().any(|p| within(&m.path, &p.path)))
        .map(|m| Problem {
            path: m.path,
            message: m.message,
        })
        .collect();
    structural.append(problems);
    *problems = structural;
}

/// Whether `path` is `at` or inside it (`at.field`, `at[0]`).
fn within(path: &str, at: &str) -> bool {
    match path.strip_prefix(at) {
        Some(rest) => at.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
}
