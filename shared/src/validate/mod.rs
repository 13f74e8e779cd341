//! Workflow definition rules (spec section 2). Every problem is reported with its
//! JSON path, so a user fixes a file in one pass rather than one error at a time.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

pub use crate::engine::{Checker, Problem, is_header_name, is_path};
use crate::engine::{Mode, NodeRegistry};
use crate::lang::path;
use crate::lang::template;
use crate::model::{BodySchema, WorkflowDefinition, is_hook_id};

mod callers;
mod cycles;
mod flow;
mod inbound;
mod operate;
mod schema;
mod structure;

pub use cycles::{cycles, failure_cycles, subflow_cycles};
pub use schema::definition_schema;

/// Lambda's own ceiling; a sync answer past API Gateway's 30 s is cut off anyway.
pub(crate) const MAX_TIMEOUT_MS: u64 = 900_000;

/// How long API Gateway's HTTP API waits for an answer.
pub const API_GATEWAY_TIMEOUT_MS: u64 = 30_000;

/// What a valid definition allows but surely does not mean, for tools to print;
/// never a reason to refuse it (`hookflow serve` has no 30 s limit, for one).
pub fn warnings(definition: &WorkflowDefinition) -> Vec<Problem> {
    let mut found = Vec::new();
    if let Some(t) = definition.options.timeout_ms
        && definition.sync
        && t > API_GATEWAY_TIMEOUT_MS
    {
        found.push(Problem {
            path: "options.timeoutMs".into(),
            message: format!(
                "{t} ms is longer than API Gateway waits for an answer ({API_GATEWAY_TIMEOUT_MS} \
                 ms): on AWS the caller gets a 503 first, and the webhook function stops the \
                 run at its own time limit"
            ),
        });
    }
    inbound::secret_warnings(definition, &mut found);
    found
}

/// Checks a definition and, when it is valid, returns it typed.
pub fn validate(doc: &Value, registry: &NodeRegistry) -> Result<WorkflowDefinition, Vec<Problem>> {
    let doc = &without_nulls(doc, false);
    let mut problems = Vec::new();
    let mut check = Checker::new(&mut problems);
    check_root(doc, registry, &mut check);
    structure::check(doc, registry, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(doc.clone()).map_err(|e| {
        vec![Problem {
            path: String::new(),
            message: e.to_string(),
        }]
    })
}

/// The definition with `null` fields left out, as if absent (which is how the
/// schema editors read describes them), except inside node configs, which their
/// own structs read. `node` says whether `value` is a node.
fn without_nulls(value: &Value, node: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let kept = match k.as_str() {
                        "config" if node => v.clone(),
                        "nodes" if !node => without_nulls(v, true),
                        "branches" if node => match v {
                            Value::Object(lanes) => Value::Object(
                                lanes
                                    .iter()
                                    .map(|(i, lane)| (i.clone(), without_nulls(lane, true)))
                                    .collect(),
                            ),
                            other => other.clone(),
                        },
                        _ => without_nulls(v, false),
                    };
                    (k.clone(), kept)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| without_nulls(v, node)).collect()),
        other => other.clone(),
    }
}

fn check_root(doc: &Value, registry: &NodeRegistry, check: &mut Checker) {
    let Some(root) = doc.as_object() else {
        check.error("", "a workflow definition must be a JSON object");
        return;
    };
    if let Some(key) = root.get("key").and_then(Value::as_str)
        && !is_identifier(key, 128)
    {
        check.error(
            "key",
            "must be 1..=128 characters of letters, digits, '-', '_' or '.'",
        );
    }
    let sync = root.get("sync").and_then(Value::as_bool).unwrap_or(false);
    if let Some(options) = root.get("options") {
        let key = root.get("key").and_then(Value::as_str).unwrap_or_default();
        operate::check_options(options, key, check);
        if let Some(options) = options.as_object() {
            let redacts = root
                .get("trigger")
                .is_some_and(|t| t.get("redact").is_some_and(|r| !r.is_null()));
            flow::check(options, sync, redacts, check);
        }
    }
    check.set_nodes(collect_nodes(root.get("nodes")));
    let node_keys: HashSet<String> = check.node_keys().cloned().collect();
    if let Some(trigger) = root.get("trigger") {
        check_trigger(trigger, sync, &node_keys, check);
    }
    if let Some(Value::Array(nodes)) = root.get("nodes") {
        let mut seen = HashSet::new();
        let cx = NodeCheck {
            registry,
            sync,
            node_keys: &node_keys,
        };
        check_nodes(nodes, "nodes", &cx, &mut seen, check);
    }
}

/// Fixed facts every node check needs.
struct NodeCheck<'a> {
    registry: &'a NodeRegistry,
    sync: bool,
    node_keys: &'a HashSet<String>,
}

fn check_trigger(trigger: &Value, sync: bool, node_keys: &HashSet<String>, check: &mut Checker) {
    let Some(map) = trigger.as_object() else {
        return;
    };
    match map.get("hookId") {
        Some(Value::String(id)) if !is_hook_id(id) => check.error(
            "trigger.hookId",
            "must be 1..=128 URL-safe characters (letters, digits, '-', '_')",
        ),
        _ => {}
    }
    if let Some(Value::Object(auth)) = map.get("basicAuthentication") {
        match auth.get("username").and_then(Value::as_str) {
            Some(u) if !u.is_empty() && !u.contains(':') => {}
            _ => check.error(
                "trigger.basicAuthentication.username",
                "is required: a non-empty string without ':'",
            ),
        }
        inbound::check_secret(
            auth.get("password"),
            "trigger.basicAuthentication.password",
            check,
        );
    }
    if let Some(request) = map.get("request") {
        check_request(request, check);
    }
    inbound::check_declared_credentials(map, check);
    if let Some(signature) = map.get("signature") {
        inbound::check_signature(signature, check);
    }
    if let Some(redact) = map.get("redact") {
        inbound::check_redact(redact, check);
    }
    callers::check(map, check);
    // Other types are the structure check's to name.
    if let Some(schema) = map
        .get("schema")
        .filter(|s| s.is_object() || s.is_boolean() || s.is_string())
        && let Err(problem) = BodySchema::new(schema.clone()).compiled()
    {
        check.error("trigger.schema", problem.to_string());
    }
    if let Some(response) = map.get("response") {
        if sync {
            check.error(
                "trigger.response",
                "applies to async workflows only; a sync workflow answers with a response node",
            );
        } else if response.is_object() {
            check.status_code(response.get("statusCode"), "trigger.response.statusCode");
            check.name_values(response.get("headers"), "trigger.response.headers");
            check_templates(response, "trigger.response", node_keys, check);
        }
    }
}

fn check_request(request: &Value, check: &mut Checker) {
    if let Some(limit) = request.get("maxBodyBytes") {
        let most = crate::model::RequestDeclarations::MAX_BODY_BYTES;
        if !limit
            .as_u64()
            .is_some_and(|n| (1..=most as u64).contains(&n))
        {
            check.error(
                "trigger.request.maxBodyBytes",
                format!("must be a whole number of bytes from 1 to {most} (6 MiB, a Lambda's request limit)"),
            );
        }
    }
    for part in ["headers", "query", "body"] {
        let at = format!("trigger.request.{part}");
        let Some(Value::Array(items)) = request.get(part) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let valid = match item.get("key").and_then(Value::as_str) {
                Some(k) if part == "headers" => is_header_name(k),
                Some(k) => path::parse(k).is_some(),
                None => true,
            };
            if !valid {
                let what = if part == "headers" {
                    "a header name"
                } else {
                    "a path such as a.b[0].c"
                };
                check.error(format!("{at}[{i}].key"), format!("must be {what}"));
            }
        }
    }
}

fn check_nodes(
    nodes: &[Value],
    at: &str,
    cx: &NodeCheck,
    seen: &mut HashSet<String>,
    check: &mut Checker,
) {
    for (i, node) in nodes.iter().enumerate() {
        check_node(node, &format!("{at}[{i}]"), cx, seen, check);
    }
}

fn check_node(
    node: &Value,
    at: &str,
    cx: &NodeCheck,
    seen: &mut HashSet<String>,
    check: &mut Checker,
) {
    let Some(map) = node.as_object() else {
        check.error(at, "a node must be an object {key, type, config}");
        return;
    };
    if let Some(key) = map.get("key").and_then(Value::as_str) {
        if !is_identifier(key, 128) {
            check.error(
                format!("{at}.key"),
                "must be 1..=128 letters, digits, '-', '_' or '.'",
            );
        } else if !seen.insert(key.to_string()) {
            check.error(
                format!("{at}.key"),
                format!("{key:?} is used by another node"),
            );
        }
    }
    let config = map
        .get("config")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    let kind = match map.get("type").and_then(Value::as_str) {
        Some(name) => match cx.registry.get(name) {
            Some(kind) => Some(kind),
            None => {
                check.error(
                    format!("{at}.type"),
                    format!(
                        "unknown node type {name:?}; known: {}",
                        cx.registry.names().join(", ")
                    ),
                );
                None
            }
        },
        None => None,
    };
    if let Some(kind) = kind {
        match kind.mode() {
            Mode::SyncOnly if !cx.sync => check.error(
                format!("{at}.type"),
                format!(
                    "{:?} nodes work in sync workflows only (\"sync\": true)",
                    kind.name()
                ),
            ),
            Mode::AsyncOnly if cx.sync => check.error(
                format!("{at}.type"),
                format!(
                    "{:?} nodes work in async workflows only (\"sync\": false)",
                    kind.name()
                ),
            ),
            _ => {}
        }
        if config.is_object() {
            kind.validate(&config, &format!("{at}.config"), check);
        }
    }
    check_templates(&config, &format!("{at}.config"), cx.node_keys, check);
    if let Some(retry) = map.get("retry") {
        operate::check_retry(retry, &format!("{at}.retry"), check);
    }
    if let Some(Value::Object(branches)) = map.get("branches") {
        for (index, nodes) in branches {
            let branch_at = format!("{at}.branches.{index}");
            if let Some(kind) = kind
                && !kind.allows_branch(&config, index)
            {
                check.error(
                    &branch_at,
                    format!("{:?} nodes have no branch {index:?}", kind.name()),
                );
            }
            if let Some(nodes) = nodes.as_array() {
                check_nodes(nodes, &branch_at, cx, seen, check);
            }
        }
    }
}

/// Every `{{ }}` reference must name a known root and a well-formed path; a
/// `$jobsMapByNodeKey` reference must name a node of this workflow.
fn check_templates(value: &Value, at: &str, node_keys: &HashSet<String>, check: &mut Checker) {
    match value {
        Value::String(s) => {
            for reference in template::references(s) {
                let segments = path::parse(reference);
                let root = segments.as_ref().and_then(|s| match s.first() {
                    Some(path::Segment::Key(k)) => Some(k.as_str()),
                    _ => None,
                });
                match root {
                    None => check.error(
                        at,
                        format!("{{{{{reference}}}}} is not a valid variable path"),
                    ),
                    Some(root) if !template::ROOTS.contains(&root) => check.error(
                        at,
                        format!(
                            "{{{{{reference}}}}} starts with an unknown variable; use one of {}",
                            template::ROOTS.join(", ")
                        ),
                    ),
                    Some("$jobsMapByNodeKey") => {
                        let node = segments.as_ref().and_then(|s| match s.get(1) {
                            Some(path::Segment::Key(k)) => Some(k),
                            _ => None,
                        });
                        if !node.is_some_and(|k| node_keys.contains(k)) {
                            check.error(
                                at,
                                format!("{{{{{reference}}}}} names no node of this workflow"),
                            );
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_templates(item, &format!("{at}[{i}]"), node_keys, check);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_templates(v, &format!("{at}.{k}"), node_keys, check);
            }
        }
        _ => {}
    }
}

fn collect_nodes(nodes: Option<&Value>) -> HashMap<String, Value> {
    let mut keys = HashMap::new();
    fn walk(nodes: &Value, keys: &mut HashMap<String, Value>) {
        for node in nodes.as_array().into_iter().flatten() {
            if let Some(k) = node.get("key").and_then(Value::as_str) {
                keys.entry(k.to_string()).or_insert_with(|| node.clone());
            }
            for branch in node
                .get("branches")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|b| b.values())
            {
                walk(branch, keys);
            }
        }
    }
    if let Some(nodes) = nodes {
        walk(nodes, &mut keys);
    }
    keys
}

/// Letters, digits, `-`, `_` and `.`, but not dots alone (`.` and `..` would be
/// path segments in the viewer's links).
fn is_identifier(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !s.bytes().all(|b| b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(doc: Value) -> Vec<String> {
        validate(&doc, &crate::nodes::builtin())
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn spec_example() -> Value {
        json!({
            "key": "payment-callback", "title": "Payment provider callback", "enabled": true, "sync": true,
            "options": {"timeoutMs": 25000},
            "trigger": {"type": "webhook", "hookId": "pay-3kq9x0v2m1",
                "basicAuthentication": {"username": "acme", "password": "s3cret"},
                "request": {"headers": [{"key": "x-request-id"}], "query": [{"key": "query[0].a", "alias": "First A"}],
                            "body": [{"key": "order.id", "alias": "Order"}, {"key": "status"}]}},
            "nodes": [{"key": "paid", "type": "condition", "config": {"rejectOnFalse": false,
                "calculation": {"group": {"type": "and", "calculations": [
                    {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}},
                "branches": {
                    "1": [{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": {"received": "{{$context.body.order.id}}"}}}],
                    "0": [{"key": "nope", "type": "response", "config": {"statusCode": 422, "body": {"error": "unexpected status {{$context.body.status}}"}}}]
                }}]
        })
    }

    #[test]
    fn the_spec_example_is_valid() {
        let def = validate(&spec_example(), &crate::nodes::builtin()).expect("valid");
        assert_eq!(def.key, "payment-callback");
        assert!(def.sync);
        assert_eq!(def.trigger.basic_authentication.unwrap().username, "acme");
        assert_eq!(def.nodes[0].branches["1"][0].key, "ok");
    }

    #[test]
    fn a_minimal_async_definition_is_valid() {
        let def = validate(
            &json!({"key": "k", "trigger": {"type": "webhook"}}),
            &crate::nodes::builtin(),
        )
        .unwrap();
        assert!(!def.sync);
        assert!(def.enabled);
        assert_eq!(def.trigger.hook_id, None);
    }

    #[test]
    fn trigger_schema_is_checked_itself() {
        let with = |schema: Value, on_invalid: Value| {
            problems(
                json!({"key": "k", "trigger": {"type": "webhook", "schema": schema, "onInvalid": on_invalid}}),
            )
        };
        assert_eq!(
            with(json!({"required": ["id"]}), json!("keep")),
            Vec::<String>::new()
        );
        assert_eq!(with(json!(true), json!("refuse")), Vec::<String>::new());
        let bad = with(
            json!({"properties": {"id": {"type": "intger"}}}),
            json!("keep"),
        );
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].starts_with("trigger.schema: ")
                && bad[0].contains("(at /properties/id/type in the schema)"),
            "{bad:?}"
        );
        let path = with(json!("order.schema.json"), json!("keep"));
        assert!(path[0].contains("beside the workflow file"), "{path:?}");
        let found = with(json!(3), json!("drop"));
        assert!(
            found.iter().any(|p| p.starts_with("trigger.schema")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("trigger.onInvalid")),
            "{found:?}"
        );
    }

    #[test]
    fn lists_every_problem_with_its_path() {
        let mut doc = spec_example();
        doc["nodes"][0]["branches"]["1"][0]["config"]["statusCode"] = json!(700);
        doc["nodes"][0]["branches"]["0"][0]["key"] = json!("paid");
        doc["nodes"][0]["config"]["calculation"]["group"]["calculations"][0]["calculator"] =
            json!("equals");
        doc["trigger"]["basicAuthentication"] = json!({"username": "a:b"});
        doc["trigger"]["hookId"] = json!("has space");
        doc["sync"] = json!("yes");
        doc["snyc"] = json!(true);
        let found = problems(doc);
        let expected = [
            "snyc: unknown field",
            "sync: must be true or false",
            "trigger.hookId: must be",
            "trigger.basicAuthentication.username: is required",
            "trigger.basicAuthentication.password: is required",
            "nodes[0].config.calculation.group.calculations[0].calculator: unknown calculator \"equals\"",
            "nodes[0].branches.0[0].key: \"paid\" is used by another node",
            "nodes[0].branches.1[0].config.statusCode: must be 200..=599",
        ];
        for e in expected {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn response_nodes_need_a_sync_workflow() {
        let mut doc = spec_example();
        doc["sync"] = json!(false);
        let found = problems(doc);
        assert!(found.iter().any(|f| {
            f.starts_with("nodes[0].branches.1[0].type: \"response\" nodes work in sync")
        }));
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("nodes[0].branches.0[0].type: \"response\""))
        );
    }

    #[test]
    fn sync_workflows_have_no_trigger_response() {
        let mut doc = spec_example();
        doc["trigger"]["response"] = json!({"statusCode": 202});
        assert!(problems(doc)[0].starts_with("trigger.response: applies to async workflows only"));
    }

    #[test]
    fn required_fields_and_types() {
        let found =
            problems(json!({"nodes": [{"type": "output"}, 5], "options": {"timeoutMs": 0}}));
        for e in [
            "key: is required",
            "options.timeoutMs: must be",
            "trigger: is required",
            "nodes[0].key: is required",
            "nodes[1]: a node must be",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(
            problems(json!([1])),
            ["a workflow definition must be a JSON object"]
        );
    }

    #[test]
    fn unknown_types_branches_and_variables() {
        let doc = json!({"key": "k", "trigger": {"type": "webhook", "response": {"body": "{{$context.body.x}} {{$nope.y}}"}},
        "nodes": [
            {"key": "a", "type": "teleport"},
            {"key": "b", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.zzz}}"}, "branches": {"1": []}},
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "equal", "operands": ["{{$jobsMapByNodeKey.b}}", 1]}}, "branches": {"2": []}},
            {"key": "d", "type": "end", "config": {"endStatus": 0}}
        ]});
        let found = problems(doc);
        for e in [
            "trigger.response.body: {{$nope.y}} starts with an unknown variable",
            "nodes[0].type: unknown node type \"teleport\"",
            "nodes[1].config.value: {{$jobsMapByNodeKey.zzz}} names no node",
            "nodes[1].branches.1: \"output\" nodes have no branch \"1\"",
            "nodes[2].branches.2: \"condition\" nodes have no branch \"2\"",
            "nodes[3].config.endStatus: must be 1 (resolved) or -1 (failed)",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), 6, "{found:#?}");
    }
}
