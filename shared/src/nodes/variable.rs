//! `variable`: with `target: null` declares a variable whose value is the node's
//! result; with `target: "<key of a declaring node>"` assigns to it, and later reads
//! of `$jobsMapByNodeKey.<that key>` see the new value.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::lang::limits;
use crate::model::NodeDefinition;

pub struct Variable;

/// `target`: null declares (the value is this node's result), or the key of a
/// declaring node to assign to; `value`, templated.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct VariableConfig {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    value: Value,
}

#[async_trait]
impl Node for Variable {
    type Config = VariableConfig;

    fn name(&self) -> &'static str {
        "variable"
    }

    fn check(&self, c: &VariableConfig, at: &str, check: &mut Checker) {
        match &c.target {
            None => {}
            Some(target) => {
                let declares = check.node(target).is_some_and(|n| {
                    n.get("type").and_then(Value::as_str) == Some("variable")
                        && n.get("config")
                            .and_then(|c| c.get("target"))
                            .is_none_or(Value::is_null)
                });
                if !declares {
                    check.error(
                        format!("{at}.target"),
                        format!("{target:?} is not a variable node that declares (type \"variable\", target null)"),
                    );
                }
            }
        }
    }

    async fn run(
        &self,
        c: &VariableConfig,
        _node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let value = cx.render(&c.value);
        // Checked before it is assigned: the walk checks results only after.
        if let Some(problem) = limits::check_result(&value) {
            return Err(NodeStop::Fail(serde_json::json!({ "message": problem })));
        }
        if let Some(target) = &c.target {
            cx.assign_result(target, value.clone());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::run;

    #[test]
    fn assigning_needs_a_declaring_variable_node() {
        let doc = json!({"key": "k", "trigger": {"type": "webhook"}, "nodes": [
            {"key": "count", "type": "variable", "config": {"target": null, "value": 1}},
            {"key": "ok", "type": "variable", "config": {"target": "count", "value": 2}},
            {"key": "bad", "type": "variable", "config": {"target": "ok", "value": 3}},
            {"key": "worse", "type": "variable", "config": {"target": "nowhere", "value": 3}}
        ]});
        let problems = crate::validate::validate(&doc, &crate::nodes::builtin()).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["nodes[2].config.target", "nodes[3].config.target"]);
    }

    #[tokio::test]
    async fn declare_then_assign() {
        let nodes = json!([
            {"key": "count", "type": "variable", "config": {"target": null, "value": 1}},
            {"key": "bump", "type": "variable", "config": {"target": "count", "value": "{{$context.n}}"}},
            {"key": "out", "type": "output", "config": {"value": "count is {{$jobsMapByNodeKey.count}}"}}
        ]);
        let (outcome, jobs, output) = run(nodes, json!({"n": 5})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            jobs[0].result,
            json!(1),
            "the declaring job keeps what it declared"
        );
        assert_eq!(output, json!("count is 5"));
    }
}
