//! Failure workflows (`options.onFailure`): when a run ends `failed`, `error` or
//! `aborted`, the named workflow is started as an async run with
//! `$context.body.execution` telling what failed. No run in a failure workflow's
//! lineage (its run, and the subflow runs under it at any depth, which carry its
//! `on_failure_of`) starts another, so no chain of failure workflows and subflows
//! can loop: not even a failure workflow that calls the failed workflow again.
//!
//! Started after the failed run's final record is saved, from that record: a
//! delivery retried because the start could not be queued finds the record final
//! and starts it then. The start's execution id is derived from the failed run's,
//! so a start sent twice is one execution.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::AppError;
use crate::model::{Execution, ExecutionStatus, JobStatus, RunMessage};
use crate::ports::{Queue, Store};
use crate::time::now_rfc3339;

/// Whether a run that ended so starts its workflow's failure workflow.
fn is_failure(status: ExecutionStatus) -> bool {
    matches!(
        status,
        ExecutionStatus::Failed | ExecutionStatus::Error | ExecutionStatus::Aborted
    )
}

/// Whether the run was started, directly or through subflows, by a failure
/// workflow's run (or is one): such a run starts no failure workflow.
fn in_failure_lineage(execution: &Execution) -> bool {
    execution.on_failure_of.is_some()
}

/// Starts the failure workflow of a finished run, if it failed and its version
/// names one.
pub async fn after_final_save(
    store: &dyn Store,
    queue: &dyn Queue,
    execution: &Execution,
) -> Result<(), AppError> {
    if !is_failure(execution.status) || in_failure_lineage(execution) {
        return Ok(());
    }
    // The report is kept (the failure workflow's context): what a record keeps.
    let execution = &*crate::ports::kept(execution)?;
    let Some(workflow) = store
        .workflow_version(&execution.workflow_key, execution.workflow_version)
        .await?
    else {
        return Ok(());
    };
    let Some(target) = workflow.definition.options.on_failure.as_deref() else {
        return Ok(());
    };
    let Some(handler) = store
        .current_workflow(target)
        .await?
        .filter(|w| w.definition.enabled)
    else {
        tracing::error!(execution_id = %execution.id, workflow = %execution.workflow_key, on_failure = target,
            "the failure workflow is not deployed or is disabled; nothing was started for this failed run");
        return Ok(());
    };
    let message = RunMessage {
        execution_id: start_id(execution),
        workflow_key: handler.key.clone(),
        workflow_version: handler.version,
        context: json!({"headers": {}, "query": {}, "body": {"execution": report(execution)}}),
        accepted_at: now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: Some(execution.id.clone()),
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: false,
    };
    queue.enqueue(&message).await?;
    Ok(())
}

/// `$context.body.execution`: `{id, workflow, version, status, failedNode, error}`.
pub fn report(execution: &Execution) -> Value {
    let failed = execution.jobs.iter().rev().find(|j| {
        matches!(
            j.status,
            JobStatus::Failed | JobStatus::Error | JobStatus::Aborted
        )
    });
    let error = match failed {
        Some(job) => match job.result.get("message") {
            Some(message) => message.clone(),
            None => job.result.clone(),
        },
        None => execution
            .output
            .get("error")
            .cloned()
            .unwrap_or(Value::Null),
    };
    json!({
        "id": execution.id,
        "workflow": execution.workflow_key,
        "version": execution.workflow_version,
        "status": execution.status.as_str(),
        "failedNode": failed.map(|j| j.node_key.as_str()),
        "error": error,
    })
}

/// A UUIDv7 for the failure run of `failed`: its time is when the failed run
/// ended (as recorded), its other bits a hash of the failed run's id, so every
/// start sent for one failed run names one execution.
fn start_id(failed: &Execution) -> String {
    let at = failed
        .finished_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || chrono::Utc::now().timestamp_millis(),
            |t| t.timestamp_millis(),
        );
    let digest = Sha256::digest(format!("onFailure:{}", failed.id));
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(at).unwrap_or(0), &bits)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failed_run_starts_one_execution_id() {
        let mut e: Execution = serde_json::from_value(json!({
            "id": "019ad1a8-0000-7000-8000-000000000001", "workflowKey": "k", "workflowVersion": 2,
            "status": "failed", "context": {}, "output": null, "createdAt": "2026-11-29T10:00:00.000Z",
            "finishedAt": "2026-11-29T10:00:01.000Z",
            "jobs": [
                {"nodeKey": "a", "nodeType": "output", "status": "resolved", "result": 1, "startedAt": ""},
                {"nodeKey": "pay", "nodeType": "request", "status": "failed", "result": {"message": "503"}, "startedAt": ""}
            ]
        }))
        .unwrap();
        let id = start_id(&e);
        assert_eq!(start_id(&e), id);
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        assert!(
            id.starts_with("01a226bf-4ce8-7"),
            "the failed run's end: {id}"
        );
        assert_eq!(
            report(&e),
            json!({"id": e.id, "workflow": "k", "version": 2, "status": "failed", "failedNode": "pay", "error": "503"})
        );
        e.id = "019ad1a8-0000-7000-8000-000000000002".into();
        assert_ne!(start_id(&e), id);
    }
}
