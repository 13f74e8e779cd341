//! `subflow`: runs another workflow (`workflow`: its key; its current enabled version)
//! with `context` (templated) as the child's `$context`. The child's output is the
//! node's result; a child that does not resolve fails the node. The child is recorded
//! as its own execution with `parentExecutionId`; calls nest at most 8 deep.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::NodeType;
use crate::engine::{NodeStop, RunContext};
use crate::model::{ExecutionStatus, NodeDefinition};
use crate::validate::Checker;

pub struct Subflow;

#[async_trait]
impl NodeType for Subflow {
    fn name(&self) -> &'static str {
        "subflow"
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        if config
            .get("workflow")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            check.error(
                format!("{at}.workflow"),
                "is required: the key of the workflow to call",
            );
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let key = node
            .config
            .get("workflow")
            .and_then(Value::as_str)
            .unwrap_or("");
        let context = cx.render(node.config.get("context").unwrap_or(&Value::Null));
        let child = cx
            .call_subflow(key, context)
            .await
            .map_err(|message| NodeStop::Fail(json!({ "message": message })))?;
        if child.status == ExecutionStatus::Resolved {
            Ok(child.output)
        } else {
            Err(NodeStop::Fail(json!({
                "message": format!("workflow {key:?} ended {}", child.status.as_str()),
                "executionId": child.execution_id,
                "status": child.status.as_str(),
                "output": child.output,
            })))
        }
    }
}
