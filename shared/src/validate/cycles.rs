//! Cycles across a set of definitions, both warnings rather than refusals:
//!
//! - through failure workflows: a workflow whose failure workflow reaches it
//!   again, through subflows or the failure workflows of failure workflows. Never
//!   a loop at run time (no run in a failure workflow's lineage starts a failure
//!   workflow), but when the workflow fails again there, its own failure workflow
//!   is not started for it (calling the failed workflow again is a retry);
//! - through subflow calls: a workflow whose `subflow` nodes reach it again
//!   (itself, or a → b → a). A recursion bounded by its own data may be meant,
//!   and one that is not ends at the budget of a run and its subflows.

use std::collections::{HashMap, VecDeque};

use super::Problem;
use crate::engine::NodeRegistry;
use crate::model::{NodeDefinition, WorkflowDefinition};

/// One way a run of a workflow starts a run of another.
#[derive(Debug, Clone)]
struct Edge {
    to: String,
    /// How, as the cycle's path shows it: `onFailure`, `subflow node "call"`.
    how: String,
    /// The subflow node's `config.workflow` path; `None` for `onFailure`.
    at: Option<String>,
}

/// Failure workflow cycles, then subflow call cycles (see the module's doc).
pub fn cycles(definitions: &[WorkflowDefinition], types: &NodeRegistry) -> Vec<(usize, Problem)> {
    let mut found = failure_cycles(definitions, types);
    found.extend(subflow_cycles(definitions, types));
    found
}

/// One warning per workflow on a cycle of subflow calls, at the first `subflow`
/// node it takes, with the shortest path back; each with the workflow's index.
pub fn subflow_cycles(
    definitions: &[WorkflowDefinition],
    types: &NodeRegistry,
) -> Vec<(usize, Problem)> {
    // Only calls: a failure workflow's run starts no failure workflow, so an
    // `onFailure` edge never repeats at run time.
    let edges: HashMap<&str, Vec<Edge>> = definitions
        .iter()
        .map(|d| {
            let mut calls = Vec::new();
            subflow_calls(types, &d.nodes, "nodes", &mut calls);
            (d.key.as_str(), calls)
        })
        .collect();
    let mut found = Vec::new();
    for (index, definition) in definitions.iter().enumerate() {
        let key = definition.key.as_str();
        let Some(path) = path_around(&edges, key) else {
            continue;
        };
        let steps = described(&path);
        found.push((
            index,
            Problem {
                path: path[0].at.clone().unwrap_or_default(),
                message: format!(
                    "calls this workflow again: {key}{steps}. Each run and all its subflow \
                     runs share one budget, which ends a recursion its data does not end"
                ),
            },
        ));
    }
    found
}

/// A chain of calls as text: ` → b (subflow node "call") → a (...)`.
fn described(path: &[Edge]) -> String {
    path.iter()
        .map(|e| format!(" → {} ({})", e.to, e.how))
        .collect()
}

/// The shortest chain of calls from `key` back to itself, if any.
fn path_around(edges: &HashMap<&str, Vec<Edge>>, key: &str) -> Option<Vec<Edge>> {
    let calls = edges.get(key)?;
    if let Some(direct) = calls.iter().find(|e| e.to == key) {
        return Some(vec![direct.clone()]);
    }
    calls
        .iter()
        .filter_map(|first| {
            let rest = path_back(edges, &first.to, key)?;
            Some(
                std::iter::once(first.clone())
                    .chain(rest)
                    .collect::<Vec<_>>(),
            )
        })
        .min_by_key(Vec::len)
}

/// One warning per workflow whose failure workflow reaches it again, at
/// `options.onFailure`, with the shortest such path; each with the workflow's
/// index in `definitions`.
pub fn failure_cycles(
    definitions: &[WorkflowDefinition],
    types: &NodeRegistry,
) -> Vec<(usize, Problem)> {
    let edges: HashMap<&str, Vec<Edge>> = definitions
        .iter()
        .map(|d| (d.key.as_str(), edges_of(d, types)))
        .collect();
    let mut found = Vec::new();
    for (index, definition) in definitions.iter().enumerate() {
        let Some(target) = definition.options.on_failure.as_deref() else {
            continue;
        };
        let Some(path) = path_back(&edges, target, &definition.key) else {
            continue;
        };
        let key = &definition.key;
        let steps = described(&path);
        found.push((
            index,
            Problem {
                path: "options.onFailure".into(),
                message: format!(
                    "{target:?} reaches this workflow again: {key} → {target} (onFailure){steps}. \
                     It never loops (runs under a failure workflow start no failure workflow), \
                     but when {key} fails there, {target} is not started for that failure"
                ),
            },
        ));
    }
    found
}

/// What a run of `definition` may start: its failure workflow and the workflows
/// its `subflow` nodes call.
fn edges_of(definition: &WorkflowDefinition, types: &NodeRegistry) -> Vec<Edge> {
    let mut edges: Vec<Edge> = definition
        .options
        .on_failure
        .iter()
        .map(|to| Edge {
            to: to.clone(),
            how: "onFailure".into(),
            at: None,
        })
        .collect();
    subflow_calls(types, &definition.nodes, "nodes", &mut edges);
    edges
}

/// The workflows the nodes in `nodes` (at JSON path `at`) call, at any depth, as
/// their types say.
fn subflow_calls(types: &NodeRegistry, nodes: &[NodeDefinition], at: &str, edges: &mut Vec<Edge>) {
    for (i, node) in nodes.iter().enumerate() {
        let node_at = format!("{at}[{i}]");
        if let Some(call) = types.calls(node) {
            edges.push(Edge {
                to: call.workflow,
                how: format!("{} node {:?}", node.kind, node.key),
                at: Some(format!("{node_at}.config.{}", call.field)),
            });
        }
        for (index, branch) in &node.branches {
            subflow_calls(types, branch, &format!("{node_at}.branches.{index}"), edges);
        }
    }
}

/// The shortest chain of edges from `from` to `to` (breadth first), if any.
fn path_back(edges: &HashMap<&str, Vec<Edge>>, from: &str, to: &str) -> Option<Vec<Edge>> {
    let mut came_by: HashMap<String, (String, Edge)> = HashMap::new();
    let mut queue = VecDeque::from([from.to_string()]);
    while let Some(at) = queue.pop_front() {
        for edge in edges.get(at.as_str()).into_iter().flatten() {
            if edge.to == from || came_by.contains_key(&edge.to) {
                continue;
            }
            came_by.insert(edge.to.clone(), (at.clone(), edge.clone()));
            if edge.to == to {
                let mut path = Vec::new();
                let mut step = to.to_string();
                while let Some((previous, edge)) = came_by.get(&step) {
                    path.push(edge.clone());
                    step = previous.clone();
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(edge.to.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn definitions(docs: &[Value]) -> Vec<WorkflowDefinition> {
        docs.iter()
            .map(|d| crate::validate::validate(d, &crate::nodes::builtin()).unwrap())
            .collect()
    }

    fn workflow(key: &str, on_failure: Option<&str>, calls: &[&str]) -> Value {
        let nodes: Vec<Value> = calls
            .iter()
            .map(|c| json!({"key": format!("call_{c}"), "type": "subflow", "config": {"workflow": c}}))
            .collect();
        let mut doc = json!({"key": key, "trigger": {"type": "webhook"}, "nodes": nodes});
        if let Some(f) = on_failure {
            doc["options"] = json!({"onFailure": f});
        }
        doc
    }

    type Finder = fn(&[WorkflowDefinition], &NodeRegistry) -> Vec<(usize, Problem)>;

    /// What `find` reports, as `key: path: message`.
    fn found_by(find: Finder, docs: &[Value]) -> Vec<String> {
        let definitions = definitions(docs);
        find(&definitions, &crate::nodes::builtin())
            .into_iter()
            .map(|(i, p)| format!("{}: {p}", definitions[i].key))
            .collect()
    }

    #[test]
    fn a_failure_workflow_calling_the_failed_one_is_a_cycle() {
        let found = cycles(&[
            workflow("a", Some("fix"), &[]),
            workflow("fix", None, &["a"]),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "a: options.onFailure: \"fix\" reaches this workflow again: a → fix (onFailure) → a (subflow node \"call_a\")"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn deeper_paths_and_failure_workflows_of_failure_workflows() {
        // a → fix → (subflow) middle → (onFailure) alert → (subflow) a: both
        // workflows whose failure workflow is on the cycle are told.
        let found = cycles(&[
            workflow("a", Some("fix"), &[]),
            workflow("fix", None, &["middle"]),
            workflow("middle", Some("alert"), &[]),
            workflow("alert", None, &["a"]),
        ]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[1].contains("middle → alert (onFailure) → a"),
            "{found:?}"
        );
        assert!(found[0].contains(
            "a → fix (onFailure) → middle (subflow node \"call_middle\") → alert (onFailure) → a (subflow node \"call_a\")"
        ), "{found:?}");
        // Two workflows naming each other: each is told.
        let found = cycles(&[
            workflow("ping", Some("pong"), &[]),
            workflow("pong", Some("ping"), &[]),
        ]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("ping → pong (onFailure) → ping (onFailure)"));
    }

    #[test]
    fn no_cycle_no_warning() {
        assert!(
            cycles(&[
                workflow("a", Some("alert"), &["b"]),
                workflow("b", Some("alert"), &[]),
                workflow("alert", None, &["notify"]),
                workflow("notify", None, &[]),
                // Subflow cycles without a failure workflow are subflow_cycles'.
                workflow("x", None, &["y"]),
                workflow("y", None, &["x"]),
            ])
            .is_empty()
        );
    }

    fn cycles(docs: &[Value]) -> Vec<String> {
        found_by(failure_cycles, docs)
    }

    fn call_cycles(docs: &[Value]) -> Vec<String> {
        found_by(subflow_cycles, docs)
    }

    #[test]
    fn subflow_calls_back_to_the_caller_are_cycles_with_their_shortest_path() {
        let found = call_cycles(&[
            workflow("me", None, &["other", "me"]),
            workflow("a", None, &["b"]),
            workflow("b", None, &["c", "a"]),
            workflow("c", None, &["a"]),
            workflow("outside", Some("a"), &["a"]),
            workflow("other", None, &[]),
        ]);
        assert_eq!(
            found,
            [
                "me: nodes[1].config.workflow: calls this workflow again: me → me (subflow node \"call_me\")",
                "a: nodes[0].config.workflow: calls this workflow again: a → b (subflow node \"call_b\") → a (subflow node \"call_a\")",
                "b: nodes[1].config.workflow: calls this workflow again: b → a (subflow node \"call_a\") → b (subflow node \"call_b\")",
                "c: nodes[0].config.workflow: calls this workflow again: c → a (subflow node \"call_a\") → b (subflow node \"call_b\") → c (subflow node \"call_c\")",
            ]
            .map(|s| format!(
                "{s}. Each run and all its subflow runs share one budget, which ends a recursion its data does not end"
            ))
        );
    }
}
