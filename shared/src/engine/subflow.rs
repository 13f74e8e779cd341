//! The port through which a `subflow` node runs another workflow. The engine only
//! knows this trait; the application implements it with the store and the runner.

use async_trait::async_trait;
use serde_json::Value;

use crate::model::ExecutionStatus;

/// One call of a child workflow.
#[derive(Debug, Clone)]
pub struct SubflowCall {
    pub workflow_key: String,
    /// The child's `$context`.
    pub context: Value,
    pub parent_execution_id: String,
    /// A sync parent may call sync children only.
    pub parent_sync: bool,
    /// The parent's call depth (0 for a workflow triggered by a webhook).
    pub parent_depth: usize,
}

/// How the child execution ended; `started` when it paused (it then goes on by
/// itself, and wakes its parent when it finishes).
#[derive(Debug, Clone, PartialEq)]
pub struct SubflowResult {
    pub execution_id: String,
    pub status: ExecutionStatus,
    pub output: Value,
}

#[async_trait]
pub trait Subflows: Send + Sync {
    /// Runs the child to its end and records it; `Err` says why it could not run.
    async fn call(&self, call: SubflowCall) -> Result<SubflowResult, String>;

    /// How a child that paused stands now: `None` while it still waits.
    async fn outcome(&self, execution_id: &str) -> Result<Option<SubflowResult>, String>;
}
