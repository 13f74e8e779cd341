//! `end`: ends the whole execution, even from inside a branch.
//! `endStatus` 1 resolves it, -1 fails it.

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::{Checker, NodeStop, NodeType, RunContext};
use crate::model::NodeDefinition;

pub struct End;

#[async_trait]
impl NodeType for End {
    fn name(&self) -> &'static str {
        "end"
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        match config.get("endStatus") {
            None => {}
            Some(v) if v.as_i64() == Some(1) || v.as_i64() == Some(-1) => {}
            Some(_) => check.error(
                format!("{at}.endStatus"),
                "must be 1 (resolved) or -1 (failed)",
            ),
        }
    }

    async fn run(
        &self,
        node: &NodeDefinition,
        _cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let resolved = node.config.get("endStatus").and_then(Value::as_i64) != Some(-1);
        Err(NodeStop::End { resolved })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::ExecutionStatus;
    use crate::nodes::test_support::{run, trail};

    fn ending(status: i64) -> serde_json::Value {
        json!([
            {"key": "c", "type": "condition", "config": {"calculation": {"calculator": "equal", "operands": [1, 1]}},
             "branches": {"1": [{"key": "stop", "type": "end", "config": {"endStatus": status}}]}},
            {"key": "after", "type": "output", "config": {"value": 2}}
        ])
    }

    #[tokio::test]
    async fn end_in_a_branch_ends_the_execution() {
        let (outcome, jobs, output) = run(ending(1), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Resolved);
        assert_eq!(
            trail(&jobs),
            [("c".into(), "resolved"), ("stop".into(), "resolved")]
        );
        assert_eq!(output, json!(null));
    }

    #[tokio::test]
    async fn end_with_minus_one_fails_it() {
        let (outcome, jobs, _) = run(ending(-1), json!({})).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(
            trail(&jobs),
            [("c".into(), "failed"), ("stop".into(), "failed")]
        );
    }
}
