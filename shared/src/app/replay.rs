//! Running a recorded execution again: a new execution with the same trigger
//! context, queued like any async run (a sync workflow too: nobody waits for a
//! replay), on the workflow's current version or the one that ran.

use crate::model::{Execution, ExecutionStatus, RunMessage};
use crate::ports::{Queue, QueueError, Store, StoreError};
use crate::time::now_rfc3339;

use super::ids::new_execution_id;

/// Why an execution cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("execution {0} is still running or paused; replay it once it has finished")]
    NotFinished(String),
    #[error("workflow {key:?} version {version} is not deployed")]
    NoVersion { key: String, version: u32 },
    #[error("workflow {0:?} is not deployed")]
    NoWorkflow(String),
    #[error("workflow {0:?} is disabled; enable it first (`hookflow workflows enable {0}`)")]
    Disabled(String),
    #[error(
        "execution {0}'s trigger context was too large to keep whole in its record, so it cannot be replayed"
    )]
    ContextNotKept(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A replay that was queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub execution_id: String,
    pub workflow_key: String,
    pub workflow_version: u32,
}

/// Queues a new run of `original`'s workflow with its trigger context: on the
/// current version, or with `same_version` on the one that ran.
pub async fn replay(
    store: &dyn Store,
    queue: &dyn Queue,
    original: &Execution,
    same_version: bool,
) -> Result<Replayed, ReplayError> {
    if original.status == ExecutionStatus::Started {
        return Err(ReplayError::NotFinished(original.id.clone()));
    }
    if is_truncation_marker(&original.context) {
        return Err(ReplayError::ContextNotKept(original.id.clone()));
    }
    let key = &original.workflow_key;
    let current = store
        .current_workflow(key)
        .await?
        .ok_or_else(|| ReplayError::NoWorkflow(key.clone()))?;
    if !current.definition.enabled {
        return Err(ReplayError::Disabled(key.clone()));
    }
    let version = if same_version {
        store
            .workflow_version(key, original.workflow_version)
            .await?
            .ok_or_else(|| ReplayError::NoVersion {
                key: key.clone(),
                version: original.workflow_version,
            })?
            .version
    } else {
        current.version
    };
    let message = RunMessage {
        execution_id: new_execution_id(),
        workflow_key: key.clone(),
        workflow_version: version,
        context: original.context.clone(),
        accepted_at: now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: Some(original.id.clone()),
        // A failure workflow's run replayed is one still: it starts no other.
        on_failure_of: original.on_failure_of.clone(),
    };
    queue.enqueue(&message).await?;
    Ok(Replayed {
        execution_id: message.execution_id,
        workflow_key: message.workflow_key,
        workflow_version: version,
    })
}

/// What a store with a record size limit keeps of a context too large for it.
fn is_truncation_marker(context: &serde_json::Value) -> bool {
    context.get("truncated") == Some(&serde_json::Value::Bool(true))
        && context.get("bytes").is_some_and(serde_json::Value::is_u64)
        && context.as_object().is_some_and(|o| o.len() == 2)
}
