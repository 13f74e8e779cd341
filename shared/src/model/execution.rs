//! Execution and job records (spec section 7), and the message that carries an async run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Paused;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// An accepted async run is a message on the queue, not yet an execution: its record
/// appears, `started`, when a worker takes it.
pub enum ExecutionStatus {
    Started,
    Resolved,
    Failed,
    Error,
    Aborted,
    Canceled,
    /// A delivery whose body did not match `trigger.schema`, kept
    /// (`trigger.onInvalid: "keep"`) for a replay: no node ran.
    Invalid,
}

impl ExecutionStatus {
    /// A finished execution is never run again, whatever the queue redelivers.
    pub fn is_final(self) -> bool {
        self != Self::Started
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Resolved => "resolved",
            Self::Failed => "failed",
            Self::Error => "error",
            Self::Aborted => "aborted",
            Self::Canceled => "canceled",
            Self::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Resolved,
    Failed,
    Error,
    Aborted,
    Canceled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Failed => "failed",
            Self::Error => "error",
            Self::Aborted => "aborted",
            Self::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub node_key: String,
    pub node_type: String,
    pub status: JobStatus,
    pub result: Value,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Lines the node wrote (a script's `console.log`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// How many times the node ran, on a node with `retry` (0 on others).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: String,
    pub workflow_key: String,
    pub workflow_version: u32,
    pub status: ExecutionStatus,
    pub context: Value,
    pub output: Value,
    pub jobs: Vec<Job>,
    pub created_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Set on an execution a `subflow` node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<String>,
    /// Set while the execution (status `started`) waits: for a time, or for a child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
    /// How many deliveries began this async run: shown past 1, when a worker was
    /// cut off mid-run or its end could not be recorded and the run began again.
    /// A delivery that found the store unavailable began nothing and does not count.
    #[serde(default, skip_serializing_if = "at_most_once")]
    pub attempts: u32,
    /// The idempotency key the run was started under (`trigger.idempotency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Set on a run `hookflow executions replay` started: the execution whose
    /// trigger context it ran again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// Set on a run in a failure workflow's lineage: the failure workflow's run
    /// (`options.onFailure`) and every subflow run under it, at any depth, paused
    /// and resumed or not. It names the failed execution that failure workflow was
    /// started for. Such a run never starts a failure workflow itself, so no chain
    /// of failure workflows and subflows can loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure_of: Option<String>,
    /// What this run and the subflow runs working with it may spend, kept while
    /// it waits: a run paused, or a subflow run that paused and took its share of
    /// its caller's budget along (read back, once it finished, for what it left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Allowance>,
    /// While a run of a workflow that redacts (`trigger.redact`) waits: its real
    /// context and state, sealed (AES-256-GCM), so it resumes with the real values
    /// while the record shows only the redacted ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// How a store keeps this run (see [`super::KeptAs`]): set in memory only.
    #[serde(skip)]
    pub kept_as: super::KeptAs,
}

/// A budget as a record keeps it: how many node runs and started executions it
/// allows, and how many of each were spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allowance {
    pub nodes: usize,
    pub nodes_used: usize,
    pub executions: usize,
    pub executions_used: usize,
}

impl Allowance {
    /// What is left of it: `(nodes, executions)`.
    pub fn unspent(&self) -> (usize, usize) {
        (
            self.nodes.saturating_sub(self.nodes_used),
            self.executions.saturating_sub(self.executions_used),
        )
    }
}

fn at_most_once(attempts: &u32) -> bool {
    *attempts <= 1
}

impl Execution {
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Ends every job still pending as `canceled` at `now`: a finished run has no
    /// job still running.
    pub fn cancel_pending_jobs(&mut self, now: &str) {
        for job in self
            .jobs
            .iter_mut()
            .filter(|j| j.status == JobStatus::Pending)
        {
            job.status = JobStatus::Canceled;
            job.finished_at = Some(now.to_string());
        }
    }
}

/// What the queue carries for one async run: enough to run it without asking the
/// webhook again. The execution id is fixed at accept time, so a redelivered message
/// maps onto the same execution record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMessage {
    pub execution_id: String,
    pub workflow_key: String,
    pub workflow_version: u32,
    pub context: Value,
    pub accepted_at: String,
    /// Set on a wake-up of a paused execution: the pause's token. The record holds
    /// the context then, so `context` is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<String>,
    /// On the wake-up of a pause that follows another: that pause's token. Until
    /// the new pause is saved the record still holds it, and the wake-up waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The idempotency key the run was accepted under, for its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The execution this run replays, for its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// The failed execution this failure workflow run reports, for its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure_of: Option<String>,
    /// Which copy of a keyed run this is, where the claim and the enqueue are two
    /// steps: a duplicate re-queues a run whose claim no worker confirmed, under
    /// the same execution id, and only the copy that confirms it runs
    /// ([`crate::model::Claim::check_copy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_id: Option<String>,
    /// Where the context is when the message was too large for the queue: the
    /// key of its claim-check object (S3), `context` being null until the queue
    /// puts it back (the queue port's `open`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_at: Option<String>,
    /// For a workflow that redacts: the real context and the values to scrub,
    /// sealed; `context` then holds the redacted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// Its lane and concurrency bounds (`options.lane`, `options.concurrency`),
    /// decided when the delivery was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<super::FlowTicket>,
    /// A delivery that gathers with others of its key (`options.debounce`,
    /// `options.batch`), or the check of a gathering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gather: Option<super::GatherTicket>,
    /// A webhook's accept: its execution id was made for this message, which
    /// hookflow sends once, so only the queue can deliver it twice. Its first
    /// delivery writes nothing before the run ends (app/worker.rs). Any other
    /// start (a failure workflow's, a gathering's run, a replay) may be sent again
    /// by a retried step, and is begun first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_once: bool,
}

impl RunMessage {
    /// The wake-up of a paused execution. It names the execution only (the record
    /// has the rest) and `reason`: the pause's token, or `child:<id>` when a child
    /// it waits for finished.
    pub fn wake(execution_id: &str, reason: impl Into<String>) -> Self {
        Self {
            execution_id: execution_id.to_string(),
            workflow_key: String::new(),
            workflow_version: 0,
            context: Value::Null,
            accepted_at: crate::time::now_rfc3339(),
            wake: Some(reason.into()),
            after: None,
            idempotency_key: None,
            replay_of: None,
            on_failure_of: None,
            copy_id: None,
            context_at: None,
            gather: None,
            flow: None,
            sealed: None,
            sent_once: false,
        }
    }

    /// A queue identity for the message: a run's is its execution id, so enqueueing
    /// the same run twice is one message; each wake-up is a message of its own.
    pub fn new_queue_id(&self) -> String {
        let flush = self.gather.as_ref().is_some_and(|g| g.flush.is_some());
        match &self.wake {
            Some(_) => format!(
                "{}/wake/{}",
                self.execution_id,
                uuid::Uuid::new_v4().simple()
            ),
            // A gathering's checks: each its own (the next is queued while the
            // one before it is still held).
            None if flush => format!(
                "{}/flush/{}",
                self.execution_id,
                uuid::Uuid::new_v4().simple()
            ),
            None => self.execution_id.clone(),
        }
    }
}
