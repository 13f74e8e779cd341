//! `end`: ends the whole execution, even from inside a branch.
//! `endStatus` 1 resolves it, -1 fails it.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Checker, Node, NodeStop, RunContext};
use crate::model::NodeDefinition;

pub struct End;

/// `endStatus`: 1 (resolved, the default) or -1 (failed). Shared with `delay`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndConfig {
    #[serde(default = "resolved")]
    pub end_status: i64,
}

pub(super) fn resolved() -> i64 {
    1
}

impl EndConfig {
    pub fn check(&self, at: &str, check: &mut Checker) {
        if !matches!(self.end_status, 1 | -1) {
            check.error(
                format!("{at}.endStatus"),
                "must be 1 (resolved) or -1 (failed)",
            );
        }
    }
}

#[async_trait]
impl Node for End {
    type Config = EndConfig;

    fn name(&self) -> &'static str {
        "end"
    }

    fn check(&self, c: &EndConfig, at: &str, check: &mut Checker) {
        c.check(at, check);
    }

    async fn run(
        &self,
        c: &EndConfig,
        _node: &NodeDefinition,
        _cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        Err(NodeStop::End {
            resolved: c.end_status != -1,
        })
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
