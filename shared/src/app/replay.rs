//! Running a recorded execution again: a new execution with the same trigger
//! context, queued like any async run (a sync workflow too: nobody waits for a
//! replay), on the workflow's current version or the one that ran. The original
//! is marked replayed in the store before its replay is queued, so a bulk replay
//! knows it from then on, not only once the replay has run and been recorded.
//!
//! A replay passes that version's `trigger.schema` as a delivery does: a context
//! whose body does not match is recorded `invalid` again (no node runs), whatever
//! `onInvalid` says, since no sender waits for a 422. So an `invalid` execution
//! runs once its workflow or schema is fixed, and not before.

use std::collections::HashSet;

use crate::model::{Execution, ExecutionStatus, Mismatch, RunMessage, SchemaProblem};
use crate::ports::{ExecutionFilter, Queue, QueueError, Store, StoreError};
use crate::time::now_rfc3339;

use super::ids::new_execution_id;
use super::invalid::{body_mismatch, invalid_record};

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
    #[error("execution {0} was replayed meanwhile by another replay")]
    ReplayedMeanwhile(String),
    #[error("workflow {key:?} version {version}'s trigger.schema cannot be used: {problem}")]
    Schema {
        key: String,
        version: u32,
        problem: SchemaProblem,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A replay that was queued, or recorded `invalid` at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub execution_id: String,
    pub workflow_key: String,
    pub workflow_version: u32,
    /// Set when the body still does not match the version's `trigger.schema`:
    /// the replay was recorded `invalid`, not queued.
    pub invalid: Option<Mismatch>,
}

/// Queues a new run of `original`'s workflow with its trigger context: on the
/// current version, or with `same_version` on the one that ran. With `once`, not
/// if a replay of it was marked meanwhile (another bulk replay running at once).
pub async fn replay(
    store: &dyn Store,
    queue: &dyn Queue,
    original: &Execution,
    same_version: bool,
    once: bool,
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
    let workflow = if same_version {
        store
            .workflow_version(key, original.workflow_version)
            .await?
            .ok_or_else(|| ReplayError::NoVersion {
                key: key.clone(),
                version: original.workflow_version,
            })?
    } else {
        current
    };
    let version = workflow.version;
    let invalid =
        body_mismatch(&workflow, &original.context).map_err(|problem| ReplayError::Schema {
            key: key.clone(),
            version,
            problem,
        })?;
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
        copy_id: None,
        context_at: None,
        gather: None,
        // In its lane again, behind what waits there (its stale guard is not
        // asked: a replay runs what was kept, whatever ran since).
        flow: crate::app::lanes::ticket(&workflow, &original.context),
        sealed: None,
        sent_once: false,
    };
    let (id, replay_id) = (&original.id, &message.execution_id);
    if !store.mark_replay(id, replay_id, once).await? {
        return Err(ReplayError::ReplayedMeanwhile(id.clone()));
    }
    let done = match &invalid {
        Some(mismatch) => {
            let mut record =
                invalid_record(&workflow, replay_id, message.context.clone(), mismatch);
            record.replay_of = message.replay_of.clone();
            record.on_failure_of = message.on_failure_of.clone();
            store
                .insert_execution(&record)
                .await
                .map(drop)
                .map_err(ReplayError::from)
        }
        None => queue.enqueue(&message).await.map_err(ReplayError::from),
    };
    // Neither queued nor recorded, or recorded `invalid` (nothing ran): the mark
    // goes, so the next bulk replay (after the schema is fixed) takes it.
    if (done.is_err() || invalid.is_some())
        && let Err(unmark) = store.unmark_replay(id, replay_id).await
    {
        tracing::warn!(execution_id = %id, error = %unmark,
            "a replay that did not run stays marked; `--again` replays it");
    }
    done?;
    Ok(Replayed {
        execution_id: message.execution_id,
        workflow_key: message.workflow_key,
        workflow_version: version,
        invalid,
    })
}

/// What a store with a record size limit keeps of a context too large for it.
fn is_truncation_marker(context: &serde_json::Value) -> bool {
    context.get("truncated") == Some(&serde_json::Value::Bool(true))
        && context.get("bytes").is_some_and(serde_json::Value::is_u64)
        && context.as_object().is_some_and(|o| o.len() == 2)
}

/// The most executions a bulk replay looks through.
const SCAN_AT_MOST: usize = 10_000;

/// What a bulk replay takes, oldest first, and what it leaves.
#[derive(Debug, Default)]
pub struct Selection {
    pub originals: Vec<Execution>,
    /// Matched, and replayed before (a replay was queued, or recorded): left
    /// unless `again`.
    pub replayed_before: usize,
    /// Matched, but started by another run (a subflow's child, a failure
    /// workflow's run, a replay): their own origin is what to replay.
    pub not_originals: usize,
    /// Matched past `limit`: the next call takes them.
    pub more: usize,
}

/// The executions `filter` selects for a bulk replay, oldest first, at most
/// `limit`: originals only (not a subflow's child, a failure workflow's run or a
/// replay), and, unless `again`, none replayed before, so running the same bulk
/// replay twice does not run anything twice.
pub async fn select(
    store: &dyn Store,
    filter: &ExecutionFilter,
    limit: usize,
    again: bool,
) -> Result<Selection, StoreError> {
    let matched = store.find_executions(filter, SCAN_AT_MOST).await?;
    let replayed = if again {
        HashSet::new()
    } else {
        replayed_before(store, filter, &matched).await?
    };
    let mut out = Selection::default();
    for e in matched.into_iter().rev() {
        if !is_original(&e) {
            out.not_originals += 1;
        } else if replayed.contains(&e.id) {
            out.replayed_before += 1;
        } else if out.originals.len() < limit {
            out.originals.push(e);
        } else {
            out.more += 1;
        }
    }
    Ok(out)
}

/// Not started by another run: a subflow's child, a failure workflow's run (or a
/// run under it), a replay.
fn is_original(e: &Execution) -> bool {
    e.parent_execution_id.is_none() && e.on_failure_of.is_none() && e.replay_of.is_none()
}

/// Which of `matched` were replayed before: marked when their replay was queued,
/// or, for replays queued before marks were kept, a recorded replay names them.
async fn replayed_before(
    store: &dyn Store,
    filter: &ExecutionFilter,
    matched: &[Execution],
) -> Result<HashSet<String>, StoreError> {
    let ids: Vec<String> = matched
        .iter()
        .filter(|e| is_original(e))
        .map(|e| e.id.clone())
        .collect();
    let mut replayed = store.replays_marked(&ids).await?;
    // Replays are made after their originals: look from the window's start on.
    let later = ExecutionFilter {
        workflow: filter.workflow.clone(),
        since: filter.since,
        ..ExecutionFilter::default()
    };
    let recorded = store.find_executions(&later, SCAN_AT_MOST).await?;
    // A replay recorded `invalid` ran nothing: its original is not replayed.
    replayed.extend(
        recorded
            .into_iter()
            .filter(|e| e.status != ExecutionStatus::Invalid)
            .filter_map(|e| e.replay_of),
    );
    Ok(replayed)
}
