//! `multi-conditions`: `conditions: [{calculation}]` tested in order; the first true
//! one runs branch `"1".."n"`; none true runs branch `"0"` when present, else the
//! execution continues (`continueOnNoMatch`) or fails. Result: the branch taken
//! (1-based), or 0 when none matched.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::basic;
use crate::engine::{Branch, Checker, Node, NodeStop, RunContext};
use crate::model::NodeDefinition;

pub struct MultiConditions;

/// `conditions: [{calculation}]`, tested in order, and `continueOnNoMatch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiConfig {
    #[serde(default)]
    conditions: Vec<Tested>,
    #[serde(default)]
    continue_on_no_match: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Tested {
    #[serde(default)]
    calculation: Option<Value>,
}

#[async_trait]
impl Node for MultiConditions {
    type Config = MultiConfig;

    fn name(&self) -> &'static str {
        "multi-conditions"
    }

    /// A case per condition, in order, and "otherwise" (`"0"`) last.
    fn branch(&self, c: &MultiConfig, index: &str) -> Option<Branch> {
        let case = index.parse::<usize>().ok()?;
        if case > c.conditions.len() || index != case.to_string() {
            return None;
        }
        Some(match case {
            0 => Branch::new("otherwise", u64::MAX),
            n => Branch::new(format!("case {n}"), n as u64),
        })
    }

    fn implied_branches(&self) -> &'static [&'static str] {
        &["0"]
    }

    fn check(&self, c: &MultiConfig, at: &str, check: &mut Checker) {
        if c.conditions.is_empty() {
            check.error(
                format!("{at}.conditions"),
                "is required: a non-empty array of {calculation}",
            );
        }
        for (i, item) in c.conditions.iter().enumerate() {
            let at = format!("{at}.conditions[{i}].calculation");
            basic::validate_required(item.calculation.as_ref(), &at, check);
        }
    }

    async fn run(
        &self,
        c: &MultiConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let matched = c
            .conditions
            .iter()
            .position(|item| {
                let calculation = item.calculation.as_ref().unwrap_or(&Value::Null);
                basic::evaluate(calculation, &|v| cx.render(v))
            })
            .map(|i| i + 1);
        match matched {
            Some(branch) => {
                cx.set_result(json!(branch));
                let branch = branch.to_string();
                super::run_chosen_branch(node, cx, &branch).await?;
                Ok(cx.result())
            }
            None if node.branch("0").is_some() => {
                cx.set_result(json!(0));
                super::run_chosen_branch(node, cx, "0").await?;
                Ok(json!(0))
            }
            None if c.continue_on_no_match => Ok(json!(0)),
            None => Err(NodeStop::Fail(json!({ "message": "no condition matched" }))),
        }
    }

    async fn resume(
        &self,
        _: &MultiConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        super::resume_chosen_branch(node, cx, frame).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::{run, trail};

    fn routing(otherwise: bool, continue_on_no_match: bool) -> Value {
        let mut node = json!({"key": "route", "type": "multi-conditions", "config": {
        "continueOnNoMatch": continue_on_no_match,
        "conditions": [
            {"calculation": {"calculator": "equal", "operands": ["{{$context.kind}}", "a"]}},
            {"calculation": {"calculator": "startsWith", "operands": ["{{$context.kind}}", "b"]}},
            {"calculation": {"calculator": "startsWith", "operands": ["{{$context.kind}}", "bb"]}}
        ]},
        "branches": {
            "1": [{"key": "one", "type": "output", "config": {"value": 1}}],
            "2": [{"key": "two", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.route}}"}}],
            "3": [{"key": "three", "type": "output", "config": {"value": 3}}]
        }});
        if otherwise {
            node["branches"]["0"] =
                json!([{"key": "other", "type": "output", "config": {"value": 0}}]);
        }
        json!([node, {"key": "after", "type": "end", "config": {"endStatus": 1}}])
    }

    #[tokio::test]
    async fn the_first_true_condition_wins() {
        let (outcome, jobs, output) = run(routing(true, false), json!({"kind": "bbq"})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            trail(&jobs),
            [
                ("route".into(), "resolved"),
                ("two".into(), "resolved"),
                ("after".into(), "resolved")
            ]
        );
        assert_eq!(output, json!(2));
    }

    #[tokio::test]
    async fn otherwise_continue_or_fail() {
        let (_, jobs, output) = run(routing(true, false), json!({"kind": "z"})).await;
        assert_eq!(jobs[1].node_key, "other");
        assert_eq!(output, json!(0));
        let (outcome, jobs, _) = run(routing(false, true), json!({"kind": "z"})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            trail(&jobs),
            [("route".into(), "resolved"), ("after".into(), "resolved")]
        );
        let (outcome, jobs, _) = run(routing(false, false), json!({"kind": "z"})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(trail(&jobs), [("route".into(), "failed")]);
    }
}
