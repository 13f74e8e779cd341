//! `subflow`: runs another workflow (`workflow`: its key; its current enabled version)
//! with `context` (templated) as the child's `$context`. The child's output is the
//! node's result; a child that does not resolve fails the node. The child is recorded
//! as its own execution with `parentExecutionId`; calls nest at most 8 deep, and a
//! run and all its children share one budget (node runs, executions started, time:
//! see `engine::Budget`); once it is spent, the node errors with the budget's
//! message, whatever the child did. A child that pauses (an async child waiting in
//! a `delay`) pauses this execution too, until the child finishes and wakes it.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{Call, Checker, Node, NodeStop, RunContext, SubflowResult, read_frame};
use crate::model::{ExecutionStatus, NodeDefinition, Wait};

pub struct Subflow;

/// `workflow`: the key of the workflow to call; `context`: its `$context`, templated.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SubflowConfig {
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    context: Value,
}

#[async_trait]
impl Node for Subflow {
    type Config = SubflowConfig;

    fn name(&self) -> &'static str {
        "subflow"
    }

    fn calls(&self, c: &SubflowConfig) -> Option<Call> {
        (!c.workflow.is_empty()).then(|| Call {
            workflow: c.workflow.clone(),
            field: "workflow",
        })
    }

    fn check(&self, c: &SubflowConfig, at: &str, check: &mut Checker) {
        if c.workflow.is_empty() {
            check.error(
                format!("{at}.workflow"),
                "is required: the key of the workflow to call",
            );
        }
    }

    async fn run(
        &self,
        c: &SubflowConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let context = cx.render(&c.context);
        let child = cx.call_subflow(&c.workflow, context).await.map_err(|e| {
            over_budget(cx).unwrap_or_else(|| NodeStop::Fail(json!({ "message": e.to_string() })))
        })?;
        settle(c, node, cx, child)
    }

    /// The child paused: it wakes this execution when it finishes.
    async fn resume(
        &self,
        c: &SubflowConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        let Waiting { execution: id } = read_frame(frame)?;
        match cx.subflow_outcome(&id).await {
            Ok(Some(child)) => settle(c, node, cx, child),
            Ok(None) => Err(wait_for(node, id)),
            // The store could not say (a passing error): keep waiting. The worker
            // looks at the child again right after saving this pause.
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "cannot read a child execution");
                Err(wait_for(node, id))
            }
        }
    }
}

/// The node's answer to how the child stands: its output, a failure, or a wait.
fn settle(
    c: &SubflowConfig,
    node: &NodeDefinition,
    cx: &mut RunContext<'_>,
    child: SubflowResult,
) -> Result<Value, NodeStop> {
    let key = &c.workflow;
    let ended = !matches!(
        child.status,
        ExecutionStatus::Resolved | ExecutionStatus::Started
    );
    // The child stopped because the budget it shares with this run is spent: so
    // is this run's, and it stops for that reason, named.
    if ended && let Some(stop) = over_budget(cx) {
        return Err(stop);
    }
    match child.status {
        ExecutionStatus::Resolved => Ok(child.output),
        ExecutionStatus::Started => {
            cx.set_result(json!({ "executionId": child.execution_id }));
            Err(wait_for(node, child.execution_id))
        }
        status => Err(NodeStop::Fail(json!({
            "message": format!("workflow {key:?} ended {}", status.as_str()),
            "executionId": child.execution_id,
            "status": status.as_str(),
            "output": child.output,
        }))),
    }
}

/// The run's budget (shared with its children) is spent: the node errors with the
/// budget's message.
fn over_budget(cx: &RunContext<'_>) -> Option<NodeStop> {
    cx.budget_spent().map(NodeStop::Error)
}

/// A `subflow` node's state while its child waits: the child's execution.
#[derive(Debug, Serialize, Deserialize)]
struct Waiting {
    execution: String,
}

fn wait_for(node: &NodeDefinition, execution_id: String) -> NodeStop {
    let waits = vec![Wait::Execution {
        node_key: node.key.clone(),
        execution_id: execution_id.clone(),
    }];
    NodeStop::pause(
        &Waiting {
            execution: execution_id,
        },
        waits,
    )
}
