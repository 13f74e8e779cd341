//! The port through which a `subflow` node runs another workflow. The engine only
//! knows this trait; the application implements it with the store and the runner.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::Budget;
use crate::model::{Allowance, ExecutionStatus};

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
    /// Set when the parent runs for a failure workflow (`Execution::on_failure_of`):
    /// the child does too, so it starts no failure workflow either.
    pub parent_on_failure_of: Option<String>,
    /// How the parent's records are kept (`trigger.redact`): the child's are too.
    pub parent_kept_as: crate::model::KeptAs,
    /// The budget the parent spends: the child counts against it, and spends it.
    pub budget: Arc<Budget>,
}

/// How the child execution ended; `started` when it paused (it then goes on by
/// itself, and wakes its parent when it finishes).
#[derive(Debug, Clone, PartialEq)]
pub struct SubflowResult {
    pub execution_id: String,
    pub status: ExecutionStatus,
    pub output: Value,
    /// What a child that paused (and took a share of the parent's budget along)
    /// left of that share when it ended, to give back.
    pub left: Option<Allowance>,
}

/// Why a child could not run, or could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum SubflowError {
    /// The call breaks a rule: too deep, a sync parent calling an async child, no
    /// enabled workflow with that key.
    #[error("{0}")]
    Refused(String),
    /// Storage or the queue failed while starting or reading the child.
    #[error("{0}")]
    Unavailable(String),
    /// The deployment has no subflow service (an engine built on its own).
    #[error("subflows are not available in this deployment")]
    NotConfigured,
}

#[async_trait]
pub trait Subflows: Send + Sync {
    /// Runs the child to its end and records it; `Err` says why it could not run.
    async fn call(&self, call: SubflowCall) -> Result<SubflowResult, SubflowError>;

    /// How a child that paused stands now: `None` while it still waits.
    async fn outcome(&self, execution_id: &str) -> Result<Option<SubflowResult>, SubflowError>;
}
