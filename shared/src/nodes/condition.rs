//! `condition`: tests a calculation; branch `"1"` runs when true, `"0"` when false.
//! With `rejectOnFalse`, a false result fails the execution instead.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::basic;
use crate::engine::{Branch, Checker, Node, NodeStop, RunContext};
use crate::model::NodeDefinition;

pub struct Condition;

/// `calculation` (the basic engine, operands templated) and `rejectOnFalse`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionConfig {
    #[serde(default)]
    calculation: Option<Value>,
    #[serde(default)]
    reject_on_false: bool,
}

#[async_trait]
impl Node for Condition {
    type Config = ConditionConfig;

    fn name(&self) -> &'static str {
        "condition"
    }

    fn check(&self, c: &ConditionConfig, at: &str, check: &mut Checker) {
        basic::validate_required(c.calculation.as_ref(), &format!("{at}.calculation"), check);
    }

    /// "true" drawn first, then "false".
    fn branch(&self, _: &ConditionConfig, index: &str) -> Option<Branch> {
        match index {
            "1" => Some(Branch::new("true", 0)),
            "0" => Some(Branch::new("false", 1)),
            _ => None,
        }
    }

    fn implied_branches(&self) -> &'static [&'static str] {
        &["1", "0"]
    }

    async fn run(
        &self,
        c: &ConditionConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let calculation = c.calculation.as_ref().unwrap_or(&Value::Null);
        let passed = basic::evaluate(calculation, &|v| cx.render(v));
        if !passed && c.reject_on_false {
            return Err(NodeStop::Fail(Value::Bool(false)));
        }
        cx.set_result(Value::Bool(passed));
        let branch = if passed { "1" } else { "0" };
        super::run_chosen_branch(node, cx, branch).await?;
        Ok(Value::Bool(passed))
    }

    async fn resume(
        &self,
        _: &ConditionConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        super::resume_chosen_branch(node, cx, frame).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::{run, trail};

    fn paid_check(reject: bool) -> serde_json::Value {
        json!([
            {"key": "paid", "type": "condition", "config": {
                "rejectOnFalse": reject,
                "calculation": {"calculator": "equal", "operands": ["{{$context.status}}", "paid"]}
            }, "branches": {
                "1": [{"key": "yes", "type": "output", "config": {"value": "took {{$jobsMapByNodeKey.paid}}"}}],
                "0": [{"key": "no", "type": "output", "config": {"value": "took false"}}]
            }},
            {"key": "after", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.paid}}"}}
        ])
    }

    #[tokio::test]
    async fn true_runs_branch_one_then_continues() {
        let (outcome, jobs, output) = run(paid_check(false), json!({"status": "paid"})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            trail(&jobs),
            [
                ("paid".into(), "resolved"),
                ("yes".into(), "resolved"),
                ("after".into(), "resolved")
            ]
        );
        assert_eq!(jobs[1].result, json!("took true"));
        assert_eq!(output, json!(true));
    }

    #[tokio::test]
    async fn false_runs_branch_zero() {
        let (outcome, jobs, output) = run(paid_check(false), json!({"status": "void"})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(jobs[1].node_key, "no");
        assert_eq!(output, json!(false));
    }

    #[tokio::test]
    async fn reject_on_false_fails_the_execution() {
        let (outcome, jobs, _) = run(paid_check(true), json!({"status": "void"})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(trail(&jobs), [("paid".into(), "failed")]);
        assert_eq!(jobs[0].result, json!(false));
    }

    #[tokio::test]
    async fn missing_branch_just_continues() {
        let nodes = json!([
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "gt", "operands": [1, 2]}},
             "branches": {"1": [{"key": "x", "type": "output", "config": {"value": 1}}]}},
            {"key": "o", "type": "output", "config": {"value": 2}}
        ]);
        let (outcome, jobs, output) = run(nodes, json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            trail(&jobs),
            [("c".into(), "resolved"), ("o".into(), "resolved")]
        );
        assert_eq!(output, json!(2));
    }
}
