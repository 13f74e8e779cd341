//! A storage outage delays runs, never fails them (issue 15): runs accepted before
//! and during an outage of the store all resolve after it ends, and only runs that
//! actually began count as attempts.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hookflow::app::worker::{self, Processed};
use hookflow::model::{
    Claim, ClaimCheck, ClaimOutcome, DeployedWorkflow, Execution, ExecutionStatus, Gathering,
    Joined, KeyedAccept, LaneVersion, RunMessage,
};
use hookflow::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
use hookflow::ports::{
    ClaimStore, ExecutionFilter, ExecutionStore, Gathers, LaneVersions, Precondition, Queue,
    ReplayMarks, Store, StoreError, WorkflowStore,
};
use hookflow::wiring::{App, Settings};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The embedded store, with a switch that makes every call fail as a full disk or
/// a throttled table would.
struct FlakyStore {
    inner: EmbeddedStore,
    down: AtomicBool,
    /// Execution records longer than this (JSON bytes) are refused for good, as
    /// SQLite refuses one past its length limit; 0 refuses none.
    refuse_over: AtomicUsize,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("database or disk is full"))
        } else {
            Ok(())
        }
    }

    fn check_size(&self, execution: &Execution) -> Result<(), StoreError> {
        self.check()?;
        let limit = self.refuse_over.load(Ordering::SeqCst);
        let size = serde_json::to_vec(execution).unwrap().len();
        if limit > 0 && size > limit {
            return Err(StoreError::Rejected {
                reason: "string or blob too big".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl WorkflowStore for FlakyStore {
    async fn current_workflow(
        &self,
        key: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        self.check()?;
        self.inner.current_workflow(key).await
    }
    async fn workflow_version(
        &self,
        key: &str,
        version: u32,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        self.check()?;
        self.inner.workflow_version(key, version).await
    }
    async fn workflow_by_hook(
        &self,
        hook_id: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        self.check()?;
        self.inner.workflow_by_hook(hook_id).await
    }
    async fn list_workflows(&self) -> Result<Vec<Arc<DeployedWorkflow>>, StoreError> {
        self.check()?;
        self.inner.list_workflows().await
    }
    async fn publish(&self, workflow: &DeployedWorkflow) -> Result<(), StoreError> {
        self.check()?;
        self.inner.publish(workflow).await
    }
}

#[async_trait]
impl ExecutionStore for FlakyStore {
    async fn begin_execution(
        &self,
        execution: &Execution,
    ) -> Result<Option<Execution>, StoreError> {
        self.check()?;
        self.inner.begin_execution(execution).await
    }
    async fn write_execution(
        &self,
        execution: &Execution,
        when: Precondition<'_>,
    ) -> Result<bool, StoreError> {
        // As a store with a record size limit: inserts fail only in an outage.
        match when {
            Precondition::Absent => self.check()?,
            _ => self.check_size(execution)?,
        }
        self.inner.write_execution(execution, when).await
    }
    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        self.check()?;
        self.inner.execution(id).await
    }
    fn as_written<'a>(&self, execution: &'a Execution) -> Cow<'a, Execution> {
        self.inner.as_written(execution)
    }
    async fn find_executions(
        &self,
        filter: &ExecutionFilter,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        self.check()?;
        self.inner.find_executions(filter, limit).await
    }
    async fn count_paused(&self, workflow_key: &str, up_to: usize) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.count_paused(workflow_key, up_to).await
    }
    async fn prune_executions(
        &self,
        filter: &ExecutionFilter,
        max: usize,
    ) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.prune_executions(filter, max).await
    }
}

#[async_trait]
impl ClaimStore for FlakyStore {
    async fn claim(&self, claim: &Claim, now: u64) -> Result<ClaimOutcome, StoreError> {
        self.check()?;
        self.inner.claim(claim, now).await
    }
    async fn settle_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        self.check()?;
        self.inner.settle_claim(claim).await
    }
    async fn release_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release_claim(claim).await
    }
    async fn claim_run(
        &self,
        claim: &Claim,
        run: &RunMessage,
        now: u64,
    ) -> Result<KeyedAccept, StoreError> {
        self.check()?;
        self.inner.claim_run(claim, run, now).await
    }
    async fn retake_claim(&self, claim: &Claim, lease_was: u64) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.retake_claim(claim, lease_was).await
    }
    async fn confirm_claim(
        &self,
        workflow_key: &str,
        key: &str,
        execution_id: &str,
        copy: &str,
    ) -> Result<ClaimCheck, StoreError> {
        self.check()?;
        self.inner
            .confirm_claim(workflow_key, key, execution_id, copy)
            .await
    }
}

#[async_trait]
impl Gathers for FlakyStore {
    async fn join(
        &self,
        group: &str,
        member: &str,
        now: u64,
        max: Option<u32>,
        generation: &str,
        flush_at: u64,
    ) -> Result<Joined, StoreError> {
        self.check()?;
        self.inner
            .join(group, member, now, max, generation, flush_at)
            .await
    }
    async fn gathering(&self, group: &str) -> Result<Option<Gathering>, StoreError> {
        self.check()?;
        self.inner.gathering(group).await
    }
    async fn reschedule(
        &self,
        group: &str,
        generation: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.reschedule(group, generation, from, to).await
    }
    async fn seal(&self, group: &str, generation: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.seal(group, generation).await
    }
    async fn close(&self, group: &str, generation: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.close(group, generation).await
    }
}

#[async_trait]
impl LaneVersions for FlakyStore {
    async fn raise_lane_version(
        &self,
        lane: &str,
        version: &LaneVersion,
        execution_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.check()?;
        self.inner
            .raise_lane_version(lane, version, execution_id)
            .await
    }
}

#[async_trait]
impl ReplayMarks for FlakyStore {
    async fn mark_replay(
        &self,
        original: &str,
        replay: &str,
        first_only: bool,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.mark_replay(original, replay, first_only).await
    }
    async fn unmark_replay(&self, original: &str, replay: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.unmark_replay(original, replay).await
    }
    async fn replays_marked(
        &self,
        originals: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        self.check()?;
        self.inner.replays_marked(originals).await
    }
}

fn workflow() -> Value {
    json!({"key": "orders", "trigger": {"type": "webhook", "hookId": "orders-hook",
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}}, "nodes": [
        {"key": "total", "type": "calculation", "config": {"engine": "math.js", "expression": "{{$context.body.n}} * 2"}},
        {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.total}}"}}
    ]})
}

/// Echoes the body's `pad` in its output: a finished record about three times the
/// size of the request (context, job result, output), the started one the size
/// of the request.
fn echo(sync: bool) -> Value {
    let key = if sync { "echo-sync" } else { "echo" };
    json!({"key": key, "sync": sync, "trigger": {"type": "webhook", "hookId": format!("{key}-hook")}, "nodes": [
        {"key": "out", "type": "output", "config": {"value": "{{$context.body.pad}}"}}
    ]})
}

async fn setup(dir: &std::path::Path) -> (App, Arc<FlakyStore>, Arc<EmbeddedQueue>) {
    let db = Database::open(dir).unwrap();
    let store = Arc::new(FlakyStore {
        inner: EmbeddedStore::new(Arc::clone(&db)),
        down: AtomicBool::new(false),
        refuse_over: AtomicUsize::new(0),
    });
    let queue = Arc::new(EmbeddedQueue::open(db).await.unwrap());
    let app = App::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&queue) as Arc<dyn Queue>,
        &Settings {
            hook_cache_ttl: Duration::from_secs(600),
            ..Settings::default()
        },
    );
    for workflow in [workflow(), echo(false), echo(true)] {
        let definition =
            hookflow::validate::validate(&workflow, &hookflow::nodes::builtin()).unwrap();
        hookflow::app::deploy::deploy(app.store.as_ref(), &app.node_types, definition)
            .await
            .unwrap();
    }
    (app, store, queue)
}

#[tokio::test]
async fn runs_accepted_before_and_during_an_outage_all_resolve_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (app, store, queue) = setup(dir.path()).await;
    let (stop, stopped) = watch::channel(false);
    let worker_loop = tokio::spawn(worker::run_queue(
        Arc::clone(&app.worker),
        queue as Arc<dyn Queue>,
        4,
        stopped,
        Duration::from_secs(5),
    ));
    let mut accepted = Vec::new();
    for n in 0..60 {
        // The store goes down a third of the way in, with runs in flight.
        if n == 20 {
            store.down.store(true, Ordering::SeqCst);
        }
        let (status, body) =
            hookflow_tests::inproc::post_json(&app, "orders-hook", &json!({"n": n})).await;
        // The hook is cached and the queue is up: accepted all along.
        assert_eq!(status, 202, "{body}");
        accepted.push((n, body["executionId"].as_str().unwrap().to_string()));
    }
    // Longer than the five deliveries that used to fail a run for good.
    tokio::time::sleep(Duration::from_secs(9)).await;
    store.down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    for (n, id) in &accepted {
        loop {
            let execution = app.store.execution(id).await.unwrap();
            match execution {
                Some(e) if e.status.is_final() => {
                    assert_eq!(
                        e.status,
                        ExecutionStatus::Resolved,
                        "run {n}: {:?}",
                        e.output
                    );
                    assert_eq!(e.output, json!(n * 2), "run {n}");
                    // Began once or twice (cut off by the outage mid-run), never more.
                    assert!(e.attempts <= 2, "run {n} began {} times", e.attempts);
                    break;
                }
                _ => {
                    assert!(
                        back.elapsed() < Duration::from_secs(40),
                        "run {n} ({id}) still not done 40 s after the outage"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = stop.send(true);
    worker_loop.await.unwrap();
}

fn run_message(id: &str) -> RunMessage {
    RunMessage {
        execution_id: id.into(),
        workflow_key: "orders".into(),
        workflow_version: 1,
        context: json!({"body": {"n": 4}}),
        accepted_at: hookflow::time::now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: true,
    }
}

/// A `started` record left by deliveries that began the run and were cut off.
async fn begun(app: &App, id: &str, attempts: u32) {
    let workflow = app
        .store
        .workflow_version("orders", 1)
        .await
        .unwrap()
        .unwrap();
    let mut started = hookflow::app::runner::Runner::started(
        &workflow,
        id,
        json!({"body": {"n": 4}}),
        hookflow::time::now_rfc3339(),
    );
    started.attempts = attempts;
    app.store.save_execution(&started).await.unwrap();
}

#[tokio::test]
async fn only_runs_that_began_count_and_the_second_is_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (app, store, _queue) = setup(dir.path()).await;
    let body = serde_json::to_string(&run_message("run-a")).unwrap();

    // Deliveries that meet the outage begin nothing, however many there are.
    store.down.store(true, Ordering::SeqCst);
    for delivery in 1..=20 {
        let out = app.worker.process(&body, delivery).await;
        assert!(matches!(out, Processed::Unavailable(_)), "{out:?}");
    }
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(app.worker.process(&body, 21).await, Processed::Done);
    let a = app.store.execution("run-a").await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.output.clone()),
        (ExecutionStatus::Resolved, json!(8))
    );
    assert!(a.attempts <= 1, "began once: {}", a.attempts);

    // Begun once before (cut off): its next delivery, the second, begins it a
    // second time and is recorded so.
    begun(&app, "run-b", 1).await;
    let body = serde_json::to_string(&run_message("run-b")).unwrap();
    assert_eq!(app.worker.process(&body, 2).await, Processed::Done);
    let b = app.store.execution("run-b").await.unwrap().unwrap();
    assert_eq!((b.status, b.attempts), (ExecutionStatus::Resolved, 2));
    let shown = serde_json::to_value(&b).unwrap();
    assert_eq!(shown["attempts"], 2, "records show attempts past one");

    // Begun twice: given up as error, naming why (a third begin could take the
    // process down a third time).
    begun(&app, "run-c", 2).await;
    let body = serde_json::to_string(&run_message("run-c")).unwrap();
    assert_eq!(app.worker.process(&body, 3).await, Processed::Done);
    let c = app.store.execution("run-c").await.unwrap().unwrap();
    assert_eq!(c.status, ExecutionStatus::Error);
    assert!(
        c.output["error"]
            .as_str()
            .unwrap()
            .contains("begun 2 times"),
        "{}",
        c.output
    );
}

/// A record the store refuses for good (as SQLite refuses one too big) is not an
/// outage: the run ends `error` with the reason after one begin, not after the
/// whole run was begun again and again; the record kept is the small one.
#[tokio::test]
async fn a_record_the_store_refuses_ends_the_run_error_after_one_begin() {
    let dir = tempfile::tempdir().unwrap();
    let (app, store, _queue) = setup(dir.path()).await;
    store.refuse_over.store(25_000, Ordering::SeqCst);
    let pad = "x".repeat(10_000);
    let message = RunMessage {
        workflow_key: "echo".into(),
        context: json!({"body": {"pad": pad}}),
        ..run_message("run-big")
    };
    let body = serde_json::to_string(&message).unwrap();
    assert_eq!(app.worker.process(&body, 1).await, Processed::Done);
    let e = app.store.execution("run-big").await.unwrap().unwrap();
    // Began once (a record shows attempts only past one).
    assert_eq!((e.status, e.attempts.max(1)), (ExecutionStatus::Error, 1));
    let error = e.output["error"].as_str().unwrap();
    assert!(
        error.contains("could not be recorded") && error.contains("string or blob too big"),
        "{error}"
    );

    // A sync run: answered 500 with the reason, not 503 "retry later", and recorded.
    let (status, answer) =
        hookflow_tests::inproc::post_json(&app, "echo-sync-hook", &json!({"pad": pad})).await;
    assert_eq!(status, 500, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("string or blob too big"), "{answer}");
    let id = answer["executionId"].as_str().unwrap();
    let e = app.store.execution(id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Error);
    assert!(e.jobs.iter().all(|j| j.result.is_null()), "{:?}", e.jobs);
}

/// `hookflow serve`'s queue puts a delivery back after an outage without counting
/// it as an attempt; it may follow one that ran the nodes and could not record
/// their end, so it is begun first and counts begins: one begun twice before is
/// given up, not run a third time.
#[tokio::test]
async fn a_delivery_put_back_after_an_outage_is_begun_first() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _store, _queue) = setup(dir.path()).await;
    begun(&app, "run-w", 2).await;
    let delivery = hookflow::ports::Delivery {
        receipt: "run-w".into(),
        body: serde_json::to_string(&run_message("run-w")).unwrap(),
        attempt: 1,
        waits: 1,
        ordered: false,
    };
    assert_eq!(
        app.worker.process_delivery(&delivery).await,
        Processed::Done
    );
    let w = app.store.execution("run-w").await.unwrap().unwrap();
    assert_eq!(w.status, ExecutionStatus::Error);
    assert!(
        w.output["error"]
            .as_str()
            .unwrap()
            .contains("begun 2 times"),
        "{}",
        w.output
    );
}
