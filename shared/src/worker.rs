//! Runs what the queue delivers: new runs, and wake-ups of paused ones. The same [`Worker::process`] serves the in-process
//! worker of `hookflow serve` and the worker Lambda's SQS batches.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::model::{Execution, ExecutionStatus, RunMessage, Wait};
use crate::ports::{Delivery, Queue, Store};
use crate::run::Runner;
use crate::time::now_rfc3339;
use crate::wakeups::{self, CHILD_PREFIX, Wakeups};

/// After this many deliveries a run that keeps failing to be recorded is given up
/// and recorded as `error`, so nothing stays `started` forever.
pub const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, PartialEq)]
pub enum Processed {
    /// Recorded (now or by an earlier delivery): never deliver again.
    Done,
    /// Could not be recorded now (store unavailable): deliver again later.
    Retry(String),
    /// Not a run message at all: report it, do not retry.
    Poison(String),
}

pub struct Worker {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    wakeups: Arc<Wakeups>,
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, runner: Arc<Runner>, wakeups: Arc<Wakeups>) -> Self {
        Self {
            store,
            runner,
            wakeups,
        }
    }

    /// Runs one delivered message to a recorded execution (or a recorded pause).
    pub async fn process(&self, body: &str, attempt: u32) -> Processed {
        let message: RunMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => return Processed::Poison(format!("not a run message: {e}")),
        };
        let done = match &message.wake {
            Some(reason) => self.wake(&message, reason, attempt).await,
            None => self.start(&message, attempt).await,
        };
        match done {
            Ok(()) => Processed::Done,
            Err(e) => Processed::Retry(e),
        }
    }

    async fn start(&self, message: &RunMessage, attempt: u32) -> Result<(), String> {
        let existing = self
            .store
            .execution(&message.execution_id)
            .await
            .map_err(|e| e.to_string())?;
        // Finished, or paused with its wake-up sent: this is a duplicate delivery.
        if existing
            .as_ref()
            .is_some_and(|e| e.status.is_final() || e.is_paused())
        {
            return Ok(());
        }
        let workflow = self
            .store
            .workflow_version(&message.workflow_key, message.workflow_version)
            .await
            .map_err(|e| e.to_string())?;
        let Some(workflow) = workflow else {
            let reason = format!(
                "workflow {:?} version {} is not deployed",
                message.workflow_key, message.workflow_version
            );
            return self.record_error(message, &reason).await;
        };
        if attempt > MAX_ATTEMPTS {
            return self
                .record_error(
                    message,
                    "the run was delivered too many times without finishing",
                )
                .await;
        }
        let execution = Runner::started(
            &workflow,
            &message.execution_id,
            message.context.clone(),
            message.accepted_at.clone(),
        );
        // Conditional writes: a delivery that finds the run finished by another one
        // (a duplicate, or a redelivery racing the first) leaves that record alone.
        if !self
            .store
            .save_unless_finished(&execution)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(());
        }
        let finished = self.runner.run(execution, &workflow, None).await;
        self.record(&finished.execution, None).await
    }

    /// Goes on with a paused execution, if this wake-up is still the one it waits for.
    async fn wake(&self, message: &RunMessage, reason: &str, attempt: u32) -> Result<(), String> {
        let id = &message.execution_id;
        // Not there yet (the wake-up beat the save of its pause): retried a few times.
        let later = |why: &str| {
            if attempt > MAX_ATTEMPTS {
                tracing::warn!(execution_id = %id, why, "dropping a wake-up that never came due");
                Ok(())
            } else {
                Err(format!("{why}; the wake-up is retried"))
            }
        };
        let Some(execution) = self.store.execution(id).await.map_err(|e| e.to_string())? else {
            return later("the execution is not recorded yet");
        };
        if execution.status.is_final() {
            // A retried wake-up of a child that finished: its parent may not have
            // heard (sending that wake-up failed after the save).
            return self.wakeups.wake_parent(&execution).await;
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
                // Not (yet) a wait of this pause: the parent checks its children
                // itself after saving a pause on them.
                if !waits_for_it {
                    return Ok(());
                }
                let finished = self
                    .store
                    .execution(child)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some_and(|c| c.status.is_final());
                if !finished {
                    return later("the child has not recorded its end yet");
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
            // A wake-up of an earlier pause, or a duplicate of one already used.
            None => return Ok(()),
        }
        let workflow = self
            .store
            .workflow_version(&execution.workflow_key, execution.workflow_version)
            .await
            .map_err(|e| e.to_string())?;
        let finished = match workflow {
            Some(workflow) => self.runner.resume(execution, &workflow).await.execution,
            None => {
                let mut failed = execution;
                failed.paused = None;
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
    async fn record(&self, execution: &Execution, token: Option<&str>) -> Result<(), String> {
        self.wakeups
            .before_save(execution, token, token.is_some())
            .await?;
        let saved = match token {
            Some(token) => self.store.save_if_paused(execution, token).await,
            None => self.store.save_unless_finished(execution).await,
        }
        .map_err(|e| e.to_string())?;
        if !saved {
            tracing::info!(execution_id = %execution.id, "another delivery recorded this run first");
            return Ok(());
        }
        self.wakeups.after_save(execution).await
    }

    async fn record_error(&self, message: &RunMessage, reason: &str) -> Result<(), String> {
        tracing::warn!(execution_id = %message.execution_id, reason, "run recorded as error");
        let execution = Execution {
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
        };
        self.store
            .save_unless_finished(&execution)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
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
    let outcome = match worker.process(&delivery.body, delivery.attempt).await {
        Processed::Done => queue.ack(delivery).await,
        Processed::Poison(reason) => {
            tracing::error!(receipt = %delivery.receipt, reason, "dropping a message that is not a run");
            queue.ack(delivery).await
        }
        Processed::Retry(reason) => {
            tracing::warn!(receipt = %delivery.receipt, reason, attempt = delivery.attempt, "run will be retried");
            let backoff = Duration::from_millis(250 * 2u64.pow(delivery.attempt.min(6)));
            queue.retry(delivery, backoff).await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(receipt = %delivery.receipt, error = %e, "cannot settle a delivery");
    }
}
