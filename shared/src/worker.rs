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
        // Finished, or paused with its wake-up sent: this is a duplicate delivery, or
        // a retry of one whose look at its children failed after the save.
        if let Some(existing) = existing
            .as_ref()
            .filter(|e| e.status.is_final() || e.is_paused())
        {
            return self.wakeups.after_save(existing).await;
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
        // A child's wake-up waits for the child's final record first: whatever pause
        // the parent then saves on that child, its look at its children sees it done.
        if let Some(child) = reason.strip_prefix(CHILD_PREFIX) {
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
        // Decided on the record as the store writes it (a pause too large to keep
        // is written as an error, and must then wake its parent).
        let execution = &*self.store.as_written(execution);
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

/// Wake-up orderings driven one step at a time (the races a busy worker meets).
#[cfg(all(test, feature = "embedded"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::Processed;
    use crate::app::{App, Settings};
    use crate::model::{Cursor, Execution, ExecutionStatus, Paused, RunMessage, Wait};
    use crate::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
    use crate::ports::{Queue, Store};

    fn execution(id: &str, parent: Option<&str>, paused: Option<Paused>) -> Execution {
        Execution {
            id: id.into(),
            workflow_key: "k".into(),
            workflow_version: 1,
            status: ExecutionStatus::Started,
            context: json!({}),
            output: json!(null),
            jobs: vec![],
            created_at: "2026-11-28T00:00:00.000Z".into(),
            finished_at: None,
            parent_execution_id: parent.map(str::to_string),
            paused,
        }
    }

    fn finished_child() -> Execution {
        let mut c = execution("C", Some("P"), None);
        c.status = ExecutionStatus::Resolved;
        c
    }

    fn pause(token: &str, waits: Vec<Wait>) -> Paused {
        Paused {
            wake_at: Paused::earliest_until(&waits),
            waits,
            token: token.into(),
            cursor: Cursor {
                index: 0,
                job: 0,
                frame: json!(null),
            },
            results: json!({}),
            scopes: json!({}),
            node_runs: 1,
            depth: 0,
        }
    }

    fn on_child() -> Vec<Wait> {
        vec![Wait::Execution {
            node_key: "call".into(),
            execution_id: "C".into(),
        }]
    }

    async fn setup(dir: &std::path::Path) -> (App, Arc<EmbeddedQueue>) {
        let db = Database::open(dir).unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::new(Arc::clone(&db)));
        let queue = Arc::new(EmbeddedQueue::open(db).await.unwrap());
        let app = App::new(store, queue.clone() as Arc<dyn Queue>, &Settings::default());
        (app, queue)
    }

    /// P paused on child C, which has finished (its look at C failed or was cut off).
    async fn paused_on_a_finished_child(dir: &std::path::Path) -> (App, Arc<EmbeddedQueue>) {
        let (app, queue) = setup(dir).await;
        app.store.save_execution(&finished_child()).await.unwrap();
        app.store
            .save_execution(&execution("P", None, Some(pause("T1", on_child()))))
            .await
            .unwrap();
        (app, queue)
    }

    /// Exactly one wake-up of P waits in the queue, sent for C.
    async fn assert_one_child_wake_up(queue: &EmbeddedQueue) {
        let got = queue
            .receive(100, Duration::from_millis(300))
            .await
            .unwrap();
        let wakes: Vec<RunMessage> = got
            .into_iter()
            .map(|d| serde_json::from_str::<RunMessage>(&d.body).unwrap())
            .filter(|m| m.execution_id == "P" && m.wake.is_some())
            .collect();
        assert_eq!(wakes.len(), 1, "one wake-up, not one per look: {wakes:?}");
        assert_eq!(wakes[0].wake.as_deref(), Some("child:C"));
    }

    async fn process(app: &App, message: &RunMessage) -> Processed {
        app.worker
            .process(&serde_json::to_string(message).unwrap(), 1)
            .await
    }

    #[tokio::test]
    async fn a_child_wake_up_waits_for_the_childs_end_whatever_the_parent_waits_for() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _queue) = setup(dir.path()).await;
        let far = "2099-01-01T00:00:00.000Z";
        let on_delay = vec![Wait::Until {
            node_key: "d".into(),
            until: far.into(),
        }];
        app.store
            .save_execution(&execution("P", None, Some(pause("T0", on_delay))))
            .await
            .unwrap();
        app.store
            .save_execution(&execution("C", Some("P"), Some(pause("TC", vec![]))))
            .await
            .unwrap();
        // C sent its parent's wake-up and has not saved its end; P is on an earlier pause.
        let out = process(&app, &RunMessage::wake("P", "child:C")).await;
        assert!(matches!(out, Processed::Retry(_)), "{out:?}");
        // P then pauses on C, and C's end lands: the retried wake-up resumes P.
        let on_c = execution("P", None, Some(pause("T1", on_child())));
        assert!(app.store.save_if_paused(&on_c, "T0").await.unwrap());
        assert!(
            app.store
                .save_if_paused(&finished_child(), "TC")
                .await
                .unwrap()
        );
        let out = process(&app, &RunMessage::wake("P", "child:C")).await;
        assert_eq!(out, Processed::Done);
        let p = app.store.execution("P").await.unwrap().unwrap();
        assert_ne!(
            p.paused.map(|x| x.token),
            Some("T1".into()),
            "P resumed from T1"
        );
    }

    #[tokio::test]
    async fn a_retried_start_looks_at_the_children_of_the_pause_it_finds() {
        let dir = tempfile::tempdir().unwrap();
        let (app, queue) = paused_on_a_finished_child(dir.path()).await;
        let start = RunMessage {
            execution_id: "P".into(),
            workflow_key: "k".into(),
            workflow_version: 1,
            context: json!({}),
            accepted_at: "t".into(),
            wake: None,
            after: None,
        };
        assert_eq!(process(&app, &start).await, Processed::Done);
        assert_one_child_wake_up(&queue).await;
    }

    #[tokio::test]
    async fn a_stale_wake_up_looks_at_the_children_of_the_pause_it_finds() {
        let dir = tempfile::tempdir().unwrap();
        let (app, queue) = paused_on_a_finished_child(dir.path()).await;
        let out = process(&app, &RunMessage::wake("P", "T0")).await;
        assert_eq!(out, Processed::Done);
        assert_one_child_wake_up(&queue).await;
    }
}
