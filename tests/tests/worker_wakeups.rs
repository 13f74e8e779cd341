//! Wake-up orderings driven one step at a time (the races a busy worker meets),
//! through the whole app.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use hookflow::app::worker::Processed;
use hookflow::model::{Cursor, Execution, ExecutionStatus, Paused, RunMessage, Wait};
use hookflow::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
use hookflow::ports::{Queue, Store};
use hookflow::wiring::{App, Settings};

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
        attempts: 0,
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        budget: None,
        sealed: None,
        kept_as: Default::default(),
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
        idempotency_key: None,
        replay_of: None,
        on_failure_of: None,
        copy_id: None,
        context_at: None,
        gather: None,
        flow: None,
        sealed: None,
        sent_once: true,
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
