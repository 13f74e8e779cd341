//! Ports: what the application needs from storage and queueing, as traits.
//! [`embedded`] implements both on one local SQLite file; the AWS adapters
//! (DynamoDB, SQS) implement the same traits.

pub mod aws;
/// The embedded adapters; left out of the Lambdas, which never use them.
#[cfg(feature = "embedded")]
pub mod embedded;
mod error;
mod filter;
mod precondition;
pub mod secrets;
pub mod telemetry;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{
    Claim, ClaimCheck, ClaimOutcome, DeployedWorkflow, Execution, Gathering, Joined, KeyedAccept,
    LaneVersion, RunMessage,
};

pub use error::{BoxError, Outage, QueueError, StoreError};
pub use filter::ExecutionFilter;
pub use precondition::Precondition;
pub use telemetry::{NoTelemetry, Telemetry};

/// Everything the application keeps: one adapter implements the four parts
/// (DynamoDB, the embedded SQLite file), and each part of the application asks
/// only for the part it uses (the idempotency protocol for claims, the worker's
/// version cache for workflows).
pub trait Store:
    WorkflowStore + ExecutionStore + ClaimStore + ReplayMarks + LaneVersions + Gathers
{
}

impl<T: WorkflowStore + ExecutionStore + ClaimStore + ReplayMarks + LaneVersions + Gathers> Store
    for T
{
}

/// Workflows with their versions.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// The current version of a workflow key.
    async fn current_workflow(
        &self,
        key: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError>;

    /// One version of a workflow key.
    async fn workflow_version(
        &self,
        key: &str,
        version: u32,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError>;

    /// The current version of the workflow that owns a hook id (enabled or not).
    async fn workflow_by_hook(
        &self,
        hook_id: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError>;

    /// The current version of every workflow, by key.
    async fn list_workflows(&self) -> Result<Vec<Arc<DeployedWorkflow>>, StoreError>;

    /// Records a new version and makes it current. Fails when the version exists
    /// already (a concurrent deploy) or the hook id belongs to another key.
    async fn publish(&self, workflow: &DeployedWorkflow) -> Result<(), StoreError>;
}

/// Execution records, each written under a [`Precondition`].
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Writes `execution` if `when` holds for the record the store has, checked
    /// and written in one atomic step; `false` when the record was left as it is.
    async fn write_execution(
        &self,
        execution: &Execution,
        when: Precondition<'_>,
    ) -> Result<bool, StoreError>;

    /// Records `execution` if no record has its id yet (`None`); else the record
    /// there, read in the same step, so a worker learns whether its run is new
    /// and begins it with one call.
    async fn begin_execution(&self, execution: &Execution)
    -> Result<Option<Execution>, StoreError>;

    /// Records a new execution; `false` when one with this id exists already, so a
    /// redelivered run is recorded once.
    async fn insert_execution(&self, execution: &Execution) -> Result<bool, StoreError> {
        self.write_execution(execution, Precondition::Absent).await
    }

    /// Writes an execution's current state over the previous one.
    async fn save_execution(&self, execution: &Execution) -> Result<(), StoreError> {
        self.write_execution(execution, Precondition::Always)
            .await
            .map(drop)
    }

    /// Records the final state of a run that is answered now (a sync run), as
    /// [`ExecutionStore::save_execution`] does, except that a store may put it on
    /// disk just after this returns rather than before: `hookflow serve`'s
    /// embedded store commits it first (a process killed after keeps it) and
    /// flushes it within milliseconds (README, "Durability").
    async fn save_answered(&self, execution: &Execution) -> Result<(), StoreError> {
        self.save_execution(execution).await
    }

    /// Writes an execution unless its recorded state is already final or paused;
    /// `false` when the record was left as it is (another delivery of the run got
    /// further first). A paused record changes only through [`Store::save_if_paused`].
    async fn save_unless_finished(&self, execution: &Execution) -> Result<bool, StoreError> {
        self.write_execution(execution, Precondition::Running).await
    }

    /// Writes a resumed execution only if its record is still paused with `token`;
    /// `false` when another wake-up of the same pause got there first.
    async fn save_if_paused(&self, execution: &Execution, token: &str) -> Result<bool, StoreError> {
        self.write_execution(execution, Precondition::PausedOn(token))
            .await
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError>;

    /// The execution as a save would write it. A store with a record size limit
    /// writes a pause that does not fit as an error (a pause must be kept whole to
    /// resume); callers decide what to send on what is written.
    fn as_written<'a>(&self, execution: &'a Execution) -> Cow<'a, Execution> {
        Cow::Borrowed(execution)
    }

    /// Executions newest first, of one workflow or of all.
    async fn list_executions(
        &self,
        workflow_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let filter = ExecutionFilter {
            workflow: workflow_key.map(str::to_string),
            ..ExecutionFilter::default()
        };
        self.find_executions(&filter, limit).await
    }

    /// Executions matching `filter`, newest first, at most `limit`.
    async fn find_executions(
        &self,
        filter: &ExecutionFilter,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError>;

    /// How many executions of a workflow are paused, counted up to `up_to` (a store
    /// may stop counting there). It may count more than are paused (DynamoDB
    /// counts runs in progress too) but never fewer: what `maxPausedRuns` bounds.
    async fn count_paused(&self, workflow_key: &str, up_to: usize) -> Result<usize, StoreError>;

    /// Deletes up to `max` finished executions matching `filter`, oldest first, and
    /// says how many. A `started` one (running, or paused and waiting) is never
    /// deleted, whatever the filter. Callers call again while it deletes `max`, so a
    /// large prune never holds the store for long.
    async fn prune_executions(
        &self,
        filter: &ExecutionFilter,
        max: usize,
    ) -> Result<usize, StoreError>;
}

/// Idempotency claims (see `app::idempotency`).
#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Claims an idempotency key atomically: [`ClaimOutcome::Claimed`] when no
    /// claim on it holds at `now` (unix seconds; see [`Claim::holds_at`]), else the
    /// claim that holds, read in the same step, so concurrent duplicates across
    /// processes start exactly one run.
    async fn claim(&self, claim: &Claim, now: u64) -> Result<ClaimOutcome, StoreError>;

    /// Keeps the answer of a claim this execution still holds (a sync run's).
    async fn settle_claim(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Gives a claim up (its run could not be recorded or enqueued), if this
    /// execution still holds it, so the sender's retry runs.
    async fn release_claim(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Claims an idempotency key for an async run and queues the run in the same
    /// step, where the store can ([`KeyedAccept::Queued`]: the embedded store,
    /// whose queue shares its file). Elsewhere the claim is taken `pending`
    /// ([`KeyedAccept::Claimed`]): the caller enqueues the run, and the worker that
    /// takes it confirms the claim ([`Store::confirm_claim`]) before it runs.
    async fn claim_run(
        &self,
        claim: &Claim,
        _run: &RunMessage,
        now: u64,
    ) -> Result<KeyedAccept, StoreError> {
        let pending = Claim {
            pending: true,
            ..claim.clone()
        };
        Ok(match self.claim(&pending, now).await? {
            ClaimOutcome::Claimed => KeyedAccept::Claimed,
            ClaimOutcome::Held(holder) => KeyedAccept::Held(holder),
        })
    }

    /// Renews the lease of a pending claim no worker confirmed
    /// ([`Claim::unconfirmed_at`]), for a duplicate that re-queues its run:
    /// `claim` as it will stand, if the claim is still pending, still
    /// `claim.execution_id`'s and its lease still `lease_was`. `false` when
    /// another request re-queued it first or a worker confirmed it meanwhile.
    async fn retake_claim(&self, claim: &Claim, lease_was: u64) -> Result<bool, StoreError>;

    /// What the worker holding `copy` of the keyed run `execution_id` finds of its
    /// claim ([`Claim::check_copy`]): [`ClaimCheck::Ours`] confirms it for that
    /// copy (a pending claim is pending no more, and duplicates get its answer
    /// from now on).
    async fn confirm_claim(
        &self,
        workflow_key: &str,
        key: &str,
        execution_id: &str,
        copy: &str,
    ) -> Result<ClaimCheck, StoreError>;
}

/// Replay marks: which executions a replay was queued for, written before the
/// replay is queued, so "replayed before" holds while it waits in the queue.
#[async_trait]
pub trait ReplayMarks: Send + Sync {
    /// Marks `original` as replayed by the run `replay`. With `first_only`, only if
    /// no replay of it is marked: `false` then, and nothing written (two bulk
    /// replays at once replay it once).
    async fn mark_replay(
        &self,
        original: &str,
        replay: &str,
        first_only: bool,
    ) -> Result<bool, StoreError>;

    /// Takes back the mark of a replay that could not be queued, if it still
    /// names `replay`.
    async fn unmark_replay(&self, original: &str, replay: &str) -> Result<(), StoreError>;

    /// Which of `originals` have a replay marked.
    async fn replays_marked(&self, originals: &[String]) -> Result<HashSet<String>, StoreError>;
}

/// The highest `options.staleGuard` version each lane ran (model/flow.rs).
#[async_trait]
pub trait LaneVersions: Send + Sync {
    /// Raises `lane`'s version to `version` for the run `execution_id`, in one
    /// atomic step, when it is greater than the lane's, or equal and raised by
    /// this same run before (a redelivery of it): `None`, and the run goes on.
    /// Else the lane's version as the run that raised it had it: this run is
    /// stale.
    async fn raise_lane_version(
        &self,
        lane: &str,
        version: &LaneVersion,
        execution_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
}

/// Gatherings of deliveries into one run (`options.debounce`, `options.batch`;
/// app/gather.rs): one open gathering per key, its members' execution ids in
/// the order they joined, each step one atomic write.
#[async_trait]
pub trait Gathers: Send + Sync {
    /// Adds `member` to the open gathering `group` at `now` (unix ms), at most
    /// `max` members; a gathering made now is `generation`'s, its check due at
    /// `flush_at`. A member there already is [`Joined::Already`]; a gathering
    /// full or sealed is [`Joined::Closed`].
    #[allow(clippy::too_many_arguments)]
    async fn join(
        &self,
        group: &str,
        member: &str,
        now: u64,
        max: Option<u32>,
        generation: &str,
        flush_at: u64,
    ) -> Result<Joined, StoreError>;

    /// The open gathering `group`, read consistently.
    async fn gathering(&self, group: &str) -> Result<Option<Gathering>, StoreError>;

    /// Moves the check of `generation`'s gathering from `from` to `to` (unix
    /// ms) while it is open: `false` when another check moved it first.
    async fn reschedule(
        &self,
        group: &str,
        generation: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError>;

    /// Closes `generation`'s gathering to deliveries (they wait) while its run
    /// is made: `false` when it is not that generation's any more.
    async fn seal(&self, group: &str, generation: &str) -> Result<bool, StoreError>;

    /// Removes `generation`'s gathering: its run is queued, its members recorded.
    async fn close(&self, group: &str, generation: &str) -> Result<(), StoreError>;
}

/// One message handed to a worker. `body` is the raw text, so a message that does not
/// parse can be reported rather than lost.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// Times this delivery was put back because the store or queue failed, which
    /// does not count as an attempt (a queue that cannot tell them apart, SQS,
    /// counts them in `attempt` and leaves this 0).
    pub waits: u32,
    /// From the queue of ordered lanes (SQS FIFO, [`crate::model::FlowTicket`]):
    /// its retries are that queue's.
    pub ordered: bool,
}

impl Delivery {
    /// How often it was tried before: what its next wait grows with.
    pub fn tries(&self) -> u32 {
        self.attempt.saturating_sub(1).saturating_add(self.waits)
    }
}

/// Async runs waiting for a worker.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Durably enqueues a run: when this returns `Ok`, the run will be delivered.
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError>;

    /// Durably enqueues a run to be delivered no sooner than `delay` from now. A
    /// queue may cap the delay (SQS: 15 minutes); a worker that gets a wake-up too
    /// early enqueues it again for the rest.
    async fn enqueue_after(&self, run: &RunMessage, delay: Duration) -> Result<(), QueueError>;

    /// Waits up to `wait` for at most `max` deliveries (fewer, or none, on timeout).
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// The run is done (or can never be done): do not deliver it again.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// The run could not be processed now: deliver it again after `delay`, as its
    /// next attempt.
    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError>;

    /// The store or queue failed before the run could begin: deliver it again
    /// after `delay` without counting an attempt where the queue can (SQS counts
    /// every receive; its retry changes the message's visibility and nothing else).
    async fn back_off(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.retry(delivery, delay).await
    }

    /// The run of `execution_id` while it waits in the queue or runs, not yet
    /// settled, without taking it: what `executions show` tells of an accepted run
    /// with no record yet. Wake-ups of paused executions are not runs of their own.
    async fn peek(&self, _execution_id: &str) -> Result<Option<RunMessage>, QueueError> {
        Err(QueueError::Unsupported(
            "find a queued run by its execution id",
        ))
    }

    /// Puts back the context of a run whose message was too large for the queue
    /// and carries the key of its claim-check object instead
    /// ([`RunMessage::context_at`], which stays set): `false` when that object is
    /// gone (the run was recorded and it was deleted, or it expired).
    async fn open(&self, _run: &mut RunMessage) -> Result<bool, QueueError> {
        Ok(true)
    }

    /// The run's end is recorded: its claim-check object, if it had one, is no
    /// longer needed.
    async fn close(&self, _run: &RunMessage) {}

    /// Takes a place for `run` under its workflow's `options.concurrency`, where
    /// the queue cannot bound what it hands out (SQS; the embedded queue hands
    /// out within the bound, and takes nothing here): `false` when every place
    /// is held, and the run waits.
    async fn take_place(&self, _run: &RunMessage) -> Result<bool, QueueError> {
        Ok(true)
    }

    /// Frees the place [`Queue::take_place`] took for `run`, which was recorded.
    async fn free_place(&self, _run: &RunMessage) {}
}

/// What a store writes of `execution`: [`Execution::kept`], the record of a run
/// whose trigger redacts scrubbed (and its real state sealed while it waits).
/// Every adapter's execution writes go through it.
pub fn kept(execution: &Execution) -> Result<std::borrow::Cow<'_, Execution>, StoreError> {
    execution.kept().map_err(|reason| StoreError::Rejected {
        reason: format!("the run's record cannot be redacted: {reason}"),
        source: None,
    })
}
