//! Runs what the queue delivers: new runs, and wake-ups of paused ones. The same [`Worker::process`] serves the in-process
//! worker of `hookflow serve` and the worker Lambda's SQS batches.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Semaphore, watch};

use super::error::AppError;
use crate::app::idempotency::IdempotencyService;
use crate::app::redaction::{self, Opened, RedactionError, Sealer};
use crate::app::runner::Runner;
use crate::app::versions::VersionCache;
use crate::app::wakeups::{self, CHILD_PREFIX, Wakeups};
use crate::app::{lanes, pauses};
use crate::model::{DeployedWorkflow, Execution, ExecutionStatus, JobStatus, RunMessage, Wait};
use crate::ports::telemetry::count_recorded;
use crate::ports::{Delivery, Queue, Store, StoreError, Telemetry};
use crate::time::now_rfc3339;

/// A run begun this many times without finishing (each time its worker was cut off,
/// or its end could not be recorded) is recorded as `error` rather than begun again,
/// so nothing stays `started` forever. Two: a run whose begin coincided with a
/// process death gets one more chance (the death may have been another run's), and
/// a run that takes its process down each time does so once more, not four times.
/// Deliveries that found the store unavailable before the run began do not count.
/// A webhook accept's first delivery records its begin only after [`SHOWN_AFTER`],
/// so a run that takes its process down sooner than that does so once more before
/// this counts.
pub const MAX_BEGINS: u32 = 2;

/// How long a first delivery's run goes unrecorded: one that ends sooner is
/// written once, at its end (the one write a simple run costs); one still
/// running then is recorded `started` while it goes on.
pub const SHOWN_AFTER: Duration = Duration::from_secs(1);

/// The deliveries a wake-up waits for what it follows (the save of a pause, a
/// child's end) before it is dropped.
pub const MAX_WAKE_TRIES: u32 = 5;

/// The longest wait before a delivery is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a delivery waits before its next try: exponential from 250 ms, capped
/// at [`MAX_BACKOFF`], with up to a quarter of jitter so runs parked by one outage
/// do not all come back at the same instant.
pub fn backoff(tries: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << tries.min(20));
    let capped = base.min(MAX_BACKOFF);
    let jitter = capped.mul_f64(rand::random::<f64>() * 0.25);
    (capped + jitter).min(MAX_BACKOFF)
}

#[derive(Debug, PartialEq)]
pub enum Processed {
    /// Recorded (now or by an earlier delivery): never deliver again.
    Done,
    /// Not ready yet (a wake-up ahead of what it follows): deliver again later;
    /// counts as an attempt.
    Retry(String),
    /// The store or queue failed: deliver again later, with a growing wait. Does
    /// not count as an attempt (an outage delays runs, never fails them).
    Unavailable(String),
    /// Not a run message at all: report it, do not retry.
    Poison(String),
    /// Not ready for a moment (its gathering is being run): deliver again after
    /// this short, fixed wait, not a growing one; counts as an attempt.
    Later(String, Duration),
}

impl Processed {
    /// How long a delivery that comes back waits; `None` when it is settled.
    pub fn returned_after(&self, delivery: &Delivery) -> Option<Duration> {
        match self {
            Self::Done | Self::Poison(_) => None,
            Self::Retry(_) | Self::Unavailable(_) => Some(backoff(delivery.tries())),
            // Doubling every eight tries, up to 30 s: a delivery behind a
            // gathering being run for long spends its receives slowly.
            Self::Later(_, wait) => {
                let doublings = (delivery.tries() / 8).min(5);
                Some(
                    wait.saturating_mul(1 << doublings)
                        .min(Duration::from_secs(30)),
                )
            }
        }
    }
}

pub struct Worker {
    store: Arc<dyn Store>,
    versions: VersionCache,
    runner: Arc<Runner>,
    wakeups: Arc<Wakeups>,
    telemetry: Arc<dyn Telemetry>,
    /// Opens the sealed context and state of runs that redact.
    sealer: Arc<Sealer>,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        wakeups: Arc<Wakeups>,
        telemetry: Arc<dyn Telemetry>,
        sealer: Arc<Sealer>,
    ) -> Self {
        Self {
            sealer,
            versions: VersionCache::new(store.clone()),
            store,
            runner,
            wakeups,
            telemetry,
        }
    }

    /// Runs a message delivered for the `attempt`th time, counting every
    /// receive ([`Worker::process_delivery`] with no uncounted waits).
    pub async fn process(&self, body: &str, attempt: u32) -> Processed {
        self.process_as(body, attempt, attempt <= 1).await
    }

    /// Runs a delivery, as `hookflow serve`'s queue and the worker Lambda hand it
    /// out. Only one never handed out before is a first delivery: SQS counts
    /// every receive in `attempt`; serve's queue puts one back after an outage
    /// without counting it, in `waits`.
    pub async fn process_delivery(&self, delivery: &Delivery) -> Processed {
        let first = delivery.attempt <= 1 && delivery.waits == 0;
        self.process_as(&delivery.body, delivery.attempt, first)
            .await
    }

    /// Runs one delivered message to a recorded execution (or a recorded pause);
    /// `first` when no delivery of it can have been handed out before.
    async fn process_as(&self, body: &str, attempt: u32, first: bool) -> Processed {
        let mut message: RunMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => return Processed::Poison(format!("not a run message: {e}")),
        };
        match self.wakeups.queue().open(&mut message).await {
            Ok(true) => {}
            Ok(false) => return self.without_context(&message).await,
            Err(e) => return Processed::Unavailable(e.to_string()),
        }
        // A run that redacts: its real context was sealed; `message.context` is the
        // redacted one, which is what a record of its failure keeps.
        let opened = match self.open_sealed(&message).await {
            Ok(opened) => opened,
            Err(e @ RedactionError::KeyUnavailable(_)) => {
                return Processed::Unavailable(e.to_string());
            }
            Err(e) => {
                return match self.record_failure(&message, &e.to_string()).await {
                    Ok(()) => Processed::Done,
                    Err(e) => Processed::Unavailable(e.to_string()),
                };
            }
        };
        // A delivery that gathers with others, or the check of a gathering.
        if let Some(ticket) = message.gather.clone() {
            let done = crate::guard::catch(self.gathered(&message, &ticket, opened)).await;
            if ticket.flush.is_some() {
                return checked(&message, done);
            }
            return self.settled(&message, done).await;
        }
        // A run under `options.concurrency` waits while every place is held.
        if message.wake.is_none() {
            match self.wakeups.queue().take_place(&message).await {
                Ok(true) => {}
                Ok(false) => {
                    return Processed::Unavailable(
                        "every place under the workflow's options.concurrency is held".into(),
                    );
                }
                Err(e) => return Processed::Unavailable(e.to_string()),
            }
        }
        let done = crate::guard::catch(async {
            match &message.wake {
                Some(reason) => self.wake(&message, reason, attempt).await,
                None => self.start(&message, opened, first).await,
            }
        })
        .await;
        let processed = self.settled(&message, done).await;
        if message.wake.is_none() && processed == Processed::Done {
            // Recorded: its place is free.
            self.wakeups.queue().free_place(&message).await;
        }
        processed
    }

    /// A gathering's member or check (app/gather.rs).
    async fn gathered(
        &self,
        message: &RunMessage,
        ticket: &crate::model::GatherTicket,
        opened: Option<Opened>,
    ) -> Result<(), AppError> {
        let workflow = self
            .versions
            .get(&message.workflow_key, message.workflow_version)
            .await?;
        let Some(workflow) = workflow else {
            if ticket.flush.is_some() {
                return Ok(());
            }
            let reason = format!(
                "workflow {:?} version {} is not deployed",
                message.workflow_key, message.workflow_version
            );
            return self.record_error(message, &reason).await;
        };
        let gather = crate::app::gather::Gather {
            store: &self.store,
            queue: self.wakeups.queue(),
            telemetry: self.telemetry.as_ref(),
        };
        match &ticket.flush {
            Some(flush) => gather.flush(&workflow, message, ticket, flush).await,
            None => {
                let context = match opened {
                    Some(opened) => opened.context,
                    None => message.context.clone(),
                };
                gather.member(&workflow, message, ticket, context).await
            }
        }
    }

    /// What a delivery's processing came to.
    async fn settled(
        &self,
        message: &RunMessage,
        done: Result<Result<(), AppError>, String>,
    ) -> Processed {
        match done {
            Ok(Ok(())) => Processed::Done,
            Ok(Err(e @ AppError::NotYet(_))) => Processed::Retry(e.to_string()),
            Ok(Err(e @ AppError::Busy(_))) => {
                Processed::Later(e.to_string(), Duration::from_secs(1))
            }
            Ok(Err(AppError::Sealing(e @ RedactionError::Unsealable(_)))) => {
                match self.record_failure(message, &e.to_string()).await {
                    Ok(()) => Processed::Done,
                    Err(e) => Processed::Unavailable(e.to_string()),
                }
            }
            Ok(Err(AppError::Store(e))) if !e.is_retryable() => {
                self.after_refusal(message, &e).await
            }
            Ok(Err(e)) => Processed::Unavailable(e.to_string()),
            Err(panic) => self.after_panic(message, &panic).await,
        }
    }

    /// The real context of a message sealed for a workflow that redacts.
    async fn open_sealed(&self, message: &RunMessage) -> Result<Option<Opened>, RedactionError> {
        let Some(sealed) = &message.sealed else {
            return Ok(None);
        };
        redaction::open(sealed, self.sealer.key().await?).map(Some)
    }

    /// A run whose context went to the claim-check bucket and is no longer there:
    /// a redelivery of a run already recorded (its worker deleted the context), or
    /// a message older than the bucket keeps contexts.
    async fn without_context(&self, message: &RunMessage) -> Processed {
        let outcome = match self.store.execution(&message.execution_id).await {
            Ok(Some(existing)) if left_running(&existing) => Ok(()),
            Ok(_) => {
                let reason = format!(
                    "the run's context ({}) is no longer kept",
                    message.context_at.as_deref().unwrap_or_default()
                );
                self.record_failure(message, &reason).await
            }
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(()) => Processed::Done,
            Err(e) => Processed::Unavailable(e.to_string()),
        }
    }

    /// A delivery whose processing panicked (a bug outside any node: nodes have
    /// their own guard). Its execution is recorded as `error` and the delivery
    /// acknowledged, so a bug never loops through redeliveries or into the DLQ;
    /// only a store that cannot take that record now brings it back.
    async fn after_panic(&self, message: &RunMessage, panic: &str) -> Processed {
        tracing::error!(execution_id = %message.execution_id, panic, "a run failed on an internal error");
        let reason = format!("the run failed on an internal error (a bug): {panic}");
        match crate::guard::catch(self.record_failure(message, &reason)).await {
            Ok(Ok(())) => Processed::Done,
            Ok(Err(e)) => Processed::Unavailable(e.to_string()),
            // Recording it panicked too: write the plainest record of the failure
            // there is, with nothing else on the way (no wake-ups, no reshaping).
            Err(again) => {
                tracing::error!(execution_id = %message.execution_id, panic = again, "recording the failed run panicked too");
                match self
                    .store
                    .save_unless_finished(&error_record(message, &reason))
                    .await
                {
                    Ok(_) => Processed::Done,
                    Err(e) => Processed::Unavailable(e.to_string()),
                }
            }
        }
    }

    /// A delivery the store refused a write of for good (a record too large, say):
    /// running it again would be refused again, so the run ends `error` with the
    /// reason, on its last record that was kept (small: what the refused write
    /// added is not in it).
    async fn after_refusal(&self, message: &RunMessage, refusal: &StoreError) -> Processed {
        tracing::error!(execution_id = %message.execution_id, error = %refusal, "the store refused a run's record for good");
        let reason = format!("the run could not be recorded and is not run again: {refusal}");
        match self.record_failure(message, &reason).await {
            Ok(()) => Processed::Done,
            // Even that was refused (the trigger context itself, say): the record
            // without the context.
            Err(AppError::Store(e)) if !e.is_retryable() => {
                let mut record = error_record(message, &reason);
                record.context = json!({ "omitted": "the store refused the run's record" });
                match self.store.save_unless_finished(&record).await {
                    Ok(_) => Processed::Done,
                    Err(e) => Processed::Unavailable(e.to_string()),
                }
            }
            Err(e) => Processed::Unavailable(e.to_string()),
        }
    }

    /// Records a run as `error` with `reason`, wherever it stood.
    async fn record_failure(&self, message: &RunMessage, reason: &str) -> Result<(), AppError> {
        let existing = self.store.execution(&message.execution_id).await?;
        match existing {
            Some(existing) if existing.status.is_final() => Ok(()),
            Some(mut failed) => {
                let token = failed.paused.take().map(|p| p.token);
                failed.sealed = None;
                let now = now_rfc3339();
                for job in failed
                    .jobs
                    .iter_mut()
                    .filter(|j| j.status == JobStatus::Pending)
                {
                    job.status = JobStatus::Error;
                    job.result = json!({ "message": reason });
                    job.finished_at = Some(now.clone());
                }
                failed.status = ExecutionStatus::Error;
                failed.output = json!({ "error": reason });
                failed.finished_at = Some(now);
                self.record(&failed, token.as_deref()).await
            }
            // A wake-up of an execution that is not there: nothing to record on.
            None if message.wake.is_some() => Ok(()),
            None => self.record_error(message, reason).await,
        }
    }

    /// Starts a run; once it is recorded (by this delivery or another), the
    /// claim-check object of its context, if it has one, is deleted.
    async fn start(
        &self,
        message: &RunMessage,
        opened: Option<Opened>,
        first: bool,
    ) -> Result<(), AppError> {
        let stands = self.start_once(message, opened, first).await?;
        if stands {
            // Recorded, ended or paused, with its context: a redelivery stands on
            // the record.
            self.wakeups.queue().close(message).await;
        }
        Ok(())
    }

    /// `false` when this copy of a keyed run is not the one that runs (another
    /// copy needs the context).
    async fn start_once(
        &self,
        message: &RunMessage,
        opened: Option<Opened>,
        first: bool,
    ) -> Result<bool, AppError> {
        // Cached once read: a warm worker reads no version.
        let workflow = self
            .versions
            .get(&message.workflow_key, message.workflow_version)
            .await?;
        let Some(workflow) = workflow else {
            // A duplicate of a run that finished or paused stands on its record.
            if let Some(existing) = self.store.execution(&message.execution_id).await?
                && left_running(&existing)
            {
                return self
                    .wakeups
                    .after_worker_save(&existing)
                    .await
                    .map(|()| true);
            }
            let reason = format!(
                "workflow {:?} version {} is not deployed",
                message.workflow_key, message.workflow_version
            );
            return self.record_error(message, &reason).await.map(|()| true);
        };
        if let Some(key) = &message.idempotency_key
            && !IdempotencyService::new(self.store.clone())
                .run_stands(message, key, workflow.definition.idempotency_ttl())
                .await?
        {
            return Ok(false);
        }
        let (context, kept_as) = match opened {
            Some(opened) => (opened.context, opened.kept_as),
            None => (message.context.clone(), Default::default()),
        };
        let mut execution = Runner::started(
            &workflow,
            &message.execution_id,
            context,
            message.accepted_at.clone(),
        );
        execution.kept_as = kept_as;
        execution.attempts = 1;
        execution.idempotency_key = message.idempotency_key.clone();
        execution.replay_of = message.replay_of.clone();
        execution.on_failure_of = message.on_failure_of.clone();
        // A webhook accept's first delivery writes nothing before its run ends (or
        // has run for SHOWN_AFTER): one write for a run that ends at once. Any
        // other delivery (its queue counts a receiver that died as one) begins the
        // run first, in one call: its `started` record is written, or the record
        // already there comes back.
        let first = first && message.sent_once;
        if !first && let Some(existing) = self.store.begin_execution(&execution).await? {
            // Finished, or paused with its wake-up sent: this is a duplicate
            // delivery, or a retry of one whose look at its children failed after
            // the save.
            if left_running(&existing) {
                return self
                    .wakeups
                    .after_worker_save(&existing)
                    .await
                    .map(|()| true);
            }
            // `started`: an earlier delivery began the run and never recorded its
            // end (its worker was cut off, or the store failed after the run).
            let begun = existing.attempts.max(1);
            if begun >= MAX_BEGINS {
                let reason = format!(
                    "the run was begun {begun} times and never finished (its worker was cut off, or its end could not be recorded)"
                );
                return self.record_error(message, &reason).await.map(|()| true);
            }
            execution.attempts = begun + 1;
            // Conditional: a delivery that finds the run finished by another one
            // (a redelivery racing the first) leaves that record alone.
            if !self.store.save_unless_finished(&execution).await? {
                return Ok(true);
            }
        }
        if let lanes::Verdict::Ended(skipped) =
            lanes::guard(self.store.as_ref(), &workflow, message, &execution).await?
        {
            if skipped.status == ExecutionStatus::Resolved {
                self.telemetry.stale_skipped(&workflow.key);
            }
            self.record(&skipped, None).await?;
            return Ok(true);
        }
        // A sync workflow run from the queue (a replay, a failure workflow) keeps
        // its time limit: its retries sleep in place rather than pause.
        let timeout = workflow
            .definition
            .sync
            .then(|| Duration::from_millis(workflow.definition.sync_timeout_ms()));
        let mut finished = match first {
            true => self.run_shown_late(execution, &workflow, timeout).await,
            false => {
                self.runner
                    .run(execution, &workflow, timeout)
                    .await
                    .execution
            }
        };
        pauses::bound(
            self.store.as_ref(),
            &workflow.definition,
            &mut finished,
            true,
        )
        .await?;
        self.record(&finished, None).await?;
        Ok(true)
    }

    /// Runs a first delivery's run; one still running after [`SHOWN_AFTER`] is
    /// recorded `started` meanwhile, so it shows (and counts as begun, should its
    /// process die). Its end is written by the caller, conditionally: that write
    /// is the run's only one when it ends sooner.
    async fn run_shown_late(
        &self,
        execution: Execution,
        workflow: &DeployedWorkflow,
        timeout: Option<Duration>,
    ) -> Execution {
        let started = execution.clone();
        let run = self.runner.run(execution, workflow, timeout);
        tokio::pin!(run);
        tokio::select! {
            biased;
            finished = &mut run => return finished.execution,
            () = tokio::time::sleep(SHOWN_AFTER) => {}
        }
        let (begun, finished) = tokio::join!(self.store.begin_execution(&started), run);
        match begun {
            Ok(None) => {}
            // Another delivery's record: the end's conditional write settles which stands.
            Ok(Some(_)) => {
                tracing::info!(execution_id = %started.id, "another delivery recorded this run meanwhile");
            }
            Err(e) => {
                tracing::warn!(execution_id = %started.id, error = %e, "a long run's begin was not recorded; it shows at its end");
            }
        }
        finished.execution
    }

    /// Goes on with a paused execution, if this wake-up is still the one it waits for.
    async fn wake(&self, message: &RunMessage, reason: &str, attempt: u32) -> Result<(), AppError> {
        let id = &message.execution_id;
        // Not there yet (the wake-up beat the save of its pause): retried a few times.
        let later = |why: &'static str| {
            if attempt > MAX_WAKE_TRIES {
                tracing::warn!(execution_id = %id, why, "dropping a wake-up that never came due");
                Ok(())
            } else {
                Err(AppError::NotYet(why))
            }
        };
        // A child's wake-up waits for the child's final record first: whatever pause
        // the parent then saves on that child, its look at its children sees it done.
        if let Some(child) = reason.strip_prefix(CHILD_PREFIX) {
            let finished = self
                .store
                .execution(child)
                .await?
                .is_some_and(|c| c.status.is_final());
            if !finished {
                return later("the child has not recorded its end yet");
            }
        }
        let Some(execution) = self.store.execution(id).await? else {
            return later("the execution is not recorded yet");
        };
        if execution.status.is_final() {
            // A retried wake-up of a run that finished: its parent may not have
            // heard, or its failure workflow not been started (sending either
            // failed after the save).
            self.wakeups.wake_parent(&execution).await?;
            return self.wakeups.after_worker_save(&execution).await;
        }
        let Some(paused) = &execution.paused else {
            return later("the execution has not recorded its pause yet");
        };
        let token = paused.token.clone();
        match reason.strip_prefix(CHILD_PREFIX) {
            Some(child) => {
                let waits_for_it = paused.waits.iter().any(
                    |w| matches!(w, Wait::Execution { execution_id, .. } if execution_id == child),
                );
                // Not (yet) a wait of this pause: the parent looks at its children
                // itself after saving a pause on them (again here, in case that
                // look failed after the save).
                if !waits_for_it {
                    return self.wakeups.after_save(&execution).await;
                }
            }
            None if reason == token => {
                if let Some(at) = &paused.wake_at
                    && !wakeups::until(at).is_zero()
                {
                    return self.wakeups.again(id, &token, at).await;
                }
            }
            // The pause this wake-up follows is still recorded: its save is on the way.
            None if message.after.as_deref() == Some(token.as_str()) => {
                return later("the pause has not been recorded yet");
            }
            // A wake-up of an earlier pause, or a duplicate of one already used (the
            // pause it led to looks at its children once more, in case that failed).
            None => return self.wakeups.after_save(&execution).await,
        }
        let workflow = self
            .versions
            .get(&execution.workflow_key, execution.workflow_version)
            .await?;
        let finished = match workflow {
            Some(workflow) => {
                // A run that redacts goes on with its real state, from the seal.
                let mut execution = execution;
                if execution.sealed.is_some() {
                    redaction::reopen(&mut execution, self.sealer.key().await?)?;
                }
                let mut resumed = self.runner.resume(execution, &workflow).await.execution;
                let store = self.store.as_ref();
                pauses::bound(store, &workflow.definition, &mut resumed, false).await?;
                resumed
            }
            None => {
                let mut failed = execution;
                failed.paused = None;
                failed.sealed = None;
                failed.status = ExecutionStatus::Error;
                failed.output = json!({ "error": "the workflow version is no longer deployed" });
                failed.finished_at = Some(now_rfc3339());
                failed
            }
        };
        self.record(&finished, Some(&token)).await
    }

    /// Saves a run's new state, with the wake-ups it needs sent first. With `token`
    /// (a resumed pause) only if no other wake-up of that pause saved first.
    async fn record(&self, execution: &Execution, token: Option<&str>) -> Result<(), AppError> {
        // Decided on the record as the store writes it (a pause too large to keep
        // is written as an error, and must then wake its parent).
        let execution = &*self.store.as_written(execution);
        self.wakeups
            .before_save(execution, token, token.is_some())
            .await?;
        let saved = match token {
            Some(token) => self.store.save_if_paused(execution, token).await,
            None => self.store.save_unless_finished(execution).await,
        }?;
        if !saved {
            tracing::info!(execution_id = %execution.id, "another delivery recorded this run first");
            // What follows that delivery's save (a failure workflow's start, a
            // parent's look at its children) may not have happened: its process
            // died, or a send failed. Made sure of here, on the record it saved.
            if token.is_none()
                && let Some(existing) = self.store.execution(&execution.id).await?
                && left_running(&existing)
            {
                return self.wakeups.after_worker_save(&existing).await;
            }
            return Ok(());
        }
        count_recorded(self.telemetry.as_ref(), execution);
        self.wakeups.after_worker_save(execution).await
    }

    async fn record_error(&self, message: &RunMessage, reason: &str) -> Result<(), AppError> {
        tracing::warn!(execution_id = %message.execution_id, reason, "run recorded as error");
        let record = error_record(message, reason);
        // Not saved: another delivery finished the run, and what it recorded stands.
        if !self.store.save_unless_finished(&record).await? {
            return Ok(());
        }
        count_recorded(self.telemetry.as_ref(), &record);
        self.wakeups.after_worker_save(&record).await
    }
}

/// What a gathering's check came to. Its message names the gathering's run, so
/// a failure is never recorded on it (that would stand for the run): the check
/// comes again, and goes on from what the store holds.
fn checked(message: &RunMessage, done: Result<Result<(), AppError>, String>) -> Processed {
    match done {
        Ok(Ok(())) => Processed::Done,
        Ok(Err(e @ AppError::Busy(_))) => Processed::Later(e.to_string(), Duration::from_secs(1)),
        Ok(Err(e)) => Processed::Unavailable(e.to_string()),
        Err(panic) => {
            tracing::error!(execution_id = %message.execution_id, panic, "a gathering's check failed on an internal error; it comes again");
            Processed::Unavailable(format!(
                "a gathering's check failed on an internal error: {panic}"
            ))
        }
    }
}

/// What a run that ended as `execution` keeps when the store refused its record for
/// good: `error` with `reason`, its jobs without their results (what made it large),
/// and its trigger context only when that is small.
pub fn refused_record(execution: &Execution, reason: &str) -> Execution {
    const KEPT_CONTEXT_BYTES: usize = 64 * 1024;
    let mut record = execution.clone();
    for job in &mut record.jobs {
        job.result = serde_json::Value::Null;
    }
    let context_bytes = serde_json::to_vec(&record.context).map_or(usize::MAX, |v| v.len());
    if context_bytes > KEPT_CONTEXT_BYTES {
        record.context =
            json!({ "omitted": format!("{context_bytes} bytes, not kept with a refused record") });
    }
    record.status = ExecutionStatus::Error;
    record.paused = None;
    record.output = json!({ "error": reason });
    record.finished_at.get_or_insert_with(now_rfc3339);
    record
}

/// A run that never ran (or whose processing failed on a bug), recorded as `error`.
fn error_record(message: &RunMessage, reason: &str) -> Execution {
    Execution {
        id: message.execution_id.clone(),
        workflow_key: message.workflow_key.clone(),
        workflow_version: message.workflow_version,
        status: ExecutionStatus::Error,
        context: message.context.clone(),
        output: json!({ "error": reason }),
        jobs: Vec::new(),
        created_at: message.accepted_at.clone(),
        parent_execution_id: None,
        paused: None,
        finished_at: Some(now_rfc3339()),
        attempts: 0,
        idempotency_key: message.idempotency_key.clone(),
        replay_of: message.replay_of.clone(),
        on_failure_of: message.on_failure_of.clone(),
        budget: None,
        sealed: None,
        kept_as: Default::default(),
    }
}

/// Pulls runs from a queue and processes up to `concurrency` at once until
/// `shutdown` turns true; then waits up to `grace` for runs in flight. Runs that do
/// not finish in time stay in the queue for the next start.
pub async fn run_queue(
    worker: Arc<Worker>,
    queue: Arc<dyn Queue>,
    concurrency: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let deliveries = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            received = queue.receive(slots.available_permits() + 1, Duration::from_secs(1)) => received,
        };
        let deliveries = match deliveries {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot receive runs; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut permit = Some(permit);
        for delivery in deliveries {
            let permit = match permit.take() {
                Some(p) => p,
                None => Arc::clone(&slots)
                    .acquire_owned()
                    .await
                    .expect("semaphore open"),
            };
            let (worker, queue) = (Arc::clone(&worker), Arc::clone(&queue));
            tokio::spawn(async move {
                settle(&worker, queue.as_ref(), &delivery).await;
                drop(permit);
            });
        }
    }
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("runs still in flight at shutdown stay queued for the next start");
    }
}

async fn settle(worker: &Worker, queue: &dyn Queue, delivery: &Delivery) {
    let processed = worker.process_delivery(delivery).await;
    // The same waits as the worker Lambda's: one rule.
    let wait = processed.returned_after(delivery).unwrap_or_default();
    let outcome = match processed {
        Processed::Done => queue.ack(delivery).await,
        Processed::Poison(reason) => {
            tracing::error!(receipt = %delivery.receipt, reason, "dropping a message that is not a run");
            queue.ack(delivery).await
        }
        Processed::Retry(reason) => {
            tracing::info!(receipt = %delivery.receipt, reason, attempt = delivery.attempt, "run will be retried");
            queue.retry(delivery, wait).await
        }
        Processed::Later(reason, _) => {
            tracing::debug!(receipt = %delivery.receipt, reason, "delivery waits a moment");
            queue.retry(delivery, wait).await
        }
        Processed::Unavailable(reason) => {
            tracing::warn!(receipt = %delivery.receipt, reason, wait_ms = wait.as_millis() as u64, "storage unavailable; the run waits and is tried again");
            queue.back_off(delivery, wait).await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(receipt = %delivery.receipt, error = %e, "cannot settle a delivery");
    }
}

/// Whether a run's record says it is no longer running here: finished, or
/// paused with its wake-up sent. A start delivered again then only makes sure
/// what follows the save happened (its parent heard, its children looked at).
fn left_running(execution: &Execution) -> bool {
    execution.status.is_final() || execution.is_paused()
}
