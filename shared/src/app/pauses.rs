//! Bounds on what waits: a paused run keeps its context, its results and a wake-up
//! until it goes on, exempt from retention. The delay a caller may choose
//! (`options.maxDelaySeconds`) and the runs of one workflow paused at once
//! (`options.maxPausedRuns`) are bounded, so no sender parks runs by the thousand
//! for a year.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::model::{Execution, ExecutionStatus, JobStatus, Wait, WorkflowDefinition};
use crate::ports::{Store, StoreError};
use crate::time::now_rfc3339;

/// Ends `execution` `failed` when the pause it stopped at goes past a bound of
/// its workflow: the delay node that waits too long fails with the reason, or,
/// for a run that pauses now for the first time (`first_pause`), every job it
/// waits on when the workflow has as many paused runs as it may.
pub async fn bound(
    store: &dyn Store,
    definition: &WorkflowDefinition,
    execution: &mut Execution,
    first_pause: bool,
) -> Result<(), StoreError> {
    let Some(paused) = &execution.paused else {
        return Ok(());
    };
    let max_delay = definition.options.max_delay_seconds();
    let now = Utc::now();
    let too_long = paused.waits.iter().find_map(|wait| match wait {
        Wait::Until { node_key, until } => {
            let until = DateTime::parse_from_rfc3339(until).ok()?;
            let seconds = (until.with_timezone(&Utc) - now).num_milliseconds() as f64 / 1000.0;
            (seconds > max_delay as f64).then(|| (node_key.clone(), seconds))
        }
        Wait::Execution { .. } => None,
    });
    if let Some((node, seconds)) = too_long {
        let reason = format!(
            "a delay of {seconds:.0} s is longer than this workflow's options.maxDelaySeconds ({max_delay} s); raise it to wait longer"
        );
        fail(execution, Some(&node), &reason);
        return Ok(());
    }
    if !first_pause {
        return Ok(());
    }
    let max_paused = definition.options.max_paused_runs();
    let up_to = usize::try_from(max_paused).unwrap_or(usize::MAX);
    let paused_now = store.count_paused(&execution.workflow_key, up_to).await?;
    if paused_now >= up_to {
        let reason = format!(
            "this workflow has {paused_now} paused runs, its options.maxPausedRuns ({max_paused}): this run cannot wait"
        );
        fail(execution, None, &reason);
    }
    Ok(())
}

/// Ends a paused run `failed` with `reason`: the pending job of `node` (or every
/// pending job, when none is named) fails with it.
fn fail(execution: &mut Execution, node: Option<&str>, reason: &str) {
    tracing::warn!(execution_id = %execution.id, reason, "a run's pause goes past a bound of its workflow");
    let now = now_rfc3339();
    for job in execution
        .jobs
        .iter_mut()
        .filter(|j| j.status == JobStatus::Pending && node.is_none_or(|key| key == j.node_key))
    {
        job.status = JobStatus::Failed;
        job.result = json!({ "message": reason });
        job.finished_at = Some(now.clone());
    }
    // The other jobs a pause left pending (other branches' waits) end with it.
    execution.cancel_pending_jobs(&now);
    execution.paused = None;
    execution.status = ExecutionStatus::Failed;
    execution.output = json!({ "error": reason });
    execution.finished_at = Some(now);
}
