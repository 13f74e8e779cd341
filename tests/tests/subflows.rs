//! Subflows through the whole app on the embedded store: sync and async children,
//! depth limits, failures.

use std::time::Duration;

use hookflow::app::deploy;
use hookflow::wiring::{App, Settings};
use hookflow_tests::inproc;
use serde_json::{Value, json};

async fn app(dir: &std::path::Path, workflows: &[Value]) -> App {
    let settings = Settings {
        hook_cache_ttl: Duration::ZERO,
        ..Settings::default()
    };
    inproc::app(dir, workflows, &settings, None).await
}

async fn post(app: &App, hook: &str, body: Value) -> (u16, Value) {
    inproc::post_json(app, hook, &body).await
}

fn parent(calls: &str) -> Value {
    json!({"key": "parent", "sync": true, "trigger": {"type": "webhook", "hookId": "parent"}, "nodes": [
        {"key": "call", "type": "subflow", "config": {"workflow": calls, "context": {"n": "{{$context.body.n}}"}}},
        {"key": "answer", "type": "response", "config": {"body": {"child": "{{$jobsMapByNodeKey.call}}"}}}
    ]})
}

fn doubler(sync: bool) -> Value {
    json!({"key": "doubler", "sync": sync, "trigger": {"type": "webhook"}, "nodes": [
        {"key": "check", "type": "condition", "config": {"rejectOnFalse": true,
            "calculation": {"calculator": "gte", "operands": ["{{$context.n}}", 0]}}},
        {"key": "twice", "type": "calculation", "config": {"expression": "{{$context.n}} * 2"}},
        {"key": "out", "type": "output", "config": {"value": {"doubled": "{{$jobsMapByNodeKey.twice}}"}}}
    ]})
}

#[tokio::test]
async fn the_child_output_is_the_result_and_the_child_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), &[doubler(true), parent("doubler")]).await;
    let (status, body) = post(&app, "parent", json!({"n": 21})).await;
    assert_eq!((status, body), (200, json!({"child": {"doubled": 42}})));
    let children = app
        .store
        .list_executions(Some("doubler"), 10)
        .await
        .unwrap();
    let parents = app.store.list_executions(Some("parent"), 10).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(
        children[0].parent_execution_id.as_deref(),
        Some(parents[0].id.as_str())
    );
    assert_eq!(children[0].context, json!({"n": 21}));
}

#[tokio::test]
async fn a_failed_child_fails_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), &[doubler(true), parent("doubler")]).await;
    let (status, body) = post(&app, "parent", json!({"n": -1})).await;
    assert_eq!((status, body["status"].clone()), (500, json!("failed")));
    let parents = app.store.list_executions(Some("parent"), 10).await.unwrap();
    let call = &parents[0].jobs[0];
    assert_eq!(call.status.as_str(), "failed");
    assert_eq!(call.result["status"], "failed");
}

#[tokio::test]
async fn sync_parents_call_sync_children_only() {
    let dir = tempfile::tempdir().unwrap();
    // Deployed before its child existed, so only the call itself can refuse it.
    let app = app(dir.path(), &[parent("doubler"), doubler(false)]).await;
    let (status, _) = post(&app, "parent", json!({"n": 1})).await;
    assert_eq!(status, 500);
    let parents = app.store.list_executions(Some("parent"), 10).await.unwrap();
    let message = parents[0].jobs[0].result["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("may call only sync workflows"),
        "{message}"
    );
    assert!(
        app.store
            .list_executions(Some("doubler"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deploying_a_sync_caller_of_a_deployed_async_workflow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), &[doubler(false)]).await;
    let def =
        hookflow::validate::validate(&parent("doubler"), &hookflow::nodes::builtin()).unwrap();
    let err = deploy::deploy(app.store.as_ref(), &app.node_types, def)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("nodes[0].config.workflow: \"doubler\" is async"),
        "{err}"
    );
}

#[tokio::test]
async fn recursion_stops_at_the_depth_cap() {
    let dir = tempfile::tempdir().unwrap();
    let selfish = json!({"key": "selfish", "sync": true, "trigger": {"type": "webhook", "hookId": "selfish"}, "nodes": [
        {"key": "again", "type": "subflow", "config": {"workflow": "selfish"}}
    ]});
    let app = app(dir.path(), &[selfish]).await;
    let (status, _) = post(&app, "selfish", json!({})).await;
    assert_eq!(status, 500);
    let all = app
        .store
        .list_executions(Some("selfish"), 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 9, "the webhook's run and 8 nested calls");
    let deepest = all
        .iter()
        .find(|e| {
            e.jobs[0].result["message"]
                .as_str()
                .is_some_and(|m| m.contains("more than 8 deep"))
        })
        .expect("the capped call");
    assert_eq!(deepest.status.as_str(), "failed");
}

/// Runs the app's worker until the returned sender is dropped.
fn start_worker(app: &App) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(hookflow::app::worker::run_queue(
        std::sync::Arc::clone(&app.worker),
        std::sync::Arc::clone(&app.queue),
        4,
        stopped,
        Duration::from_secs(1),
    ));
    stop
}

async fn wait_final(app: &App, key: &str) -> hookflow::model::Execution {
    for _ in 0..100 {
        let all = app.store.list_executions(Some(key), 1).await.unwrap();
        if let Some(e) = all.into_iter().next().filter(|e| e.status.is_final()) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{key} did not finish");
}

/// Triggers `hook` `times` times in a row; each run must resolve with `output`.
async fn resolves_each_time(app: &App, hook: &str, times: usize, output: Value) {
    for _ in 0..times {
        let (status, body) = post(app, hook, json!({})).await;
        assert_eq!(status, 200);
        let done = wait_final_id(app, body["id"].as_str().unwrap()).await;
        assert_eq!(done.status.as_str(), "resolved", "{:?}", done.jobs);
        assert_eq!(done.output, output);
    }
}

async fn wait_final_id(app: &App, id: &str) -> hookflow::model::Execution {
    for _ in 0..200 {
        if let Some(e) = app.store.execution(id).await.unwrap()
            && e.status.is_final()
        {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} did not finish");
}

#[tokio::test]
async fn an_async_child_that_pauses_pauses_its_parent_until_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let child = json!({"key": "slow-child", "trigger": {"type": "webhook"}, "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": 1500, "unit": 1}},
        {"key": "out", "type": "output", "config": {"value": {"got": "{{$context.n}}"}}}
    ]});
    let parent = json!({"key": "waiting-parent", "trigger": {"type": "webhook", "hookId": "waiting-parent"}, "nodes": [
        {"key": "call", "type": "subflow", "config": {"workflow": "slow-child", "context": {"n": "{{$context.body.n}}"}}},
        {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.call}}"}}
    ]});
    let app = app(dir.path(), &[child, parent]).await;
    let _worker = start_worker(&app);
    let (status, _) = post(&app, "waiting-parent", json!({"n": 5})).await;
    assert_eq!(status, 200);
    // While the child waits, the parent is paused on it.
    // The child waits 1.5 s: room to see the pause on a loaded machine.
    let mut waiting = None;
    for _ in 0..300 {
        let parents = app
            .store
            .list_executions(Some("waiting-parent"), 1)
            .await
            .unwrap();
        if let Some(p) = parents.into_iter().next().filter(|p| p.is_paused()) {
            waiting = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiting = waiting.expect("the parent paused");
    let child_id = match &waiting.paused.as_ref().unwrap().waits[..] {
        [
            hookflow::model::Wait::Execution {
                execution_id,
                node_key,
            },
        ] if node_key == "call" => execution_id.clone(),
        other => panic!("{other:?}"),
    };
    let parent = wait_final(&app, "waiting-parent").await;
    assert_eq!(parent.status.as_str(), "resolved", "{:?}", parent.jobs);
    assert_eq!(parent.output, json!({"got": 5}));
    assert_eq!(
        inproc::trail(&parent.jobs),
        [("call".into(), "resolved"), ("out".into(), "resolved")]
    );
    let child = app.store.execution(&child_id).await.unwrap().unwrap();
    assert_eq!(child.status.as_str(), "resolved");
    assert_eq!(
        child.parent_execution_id.as_deref(),
        Some(parent.id.as_str())
    );
}

/// A busy branch beside a 1 ms delay: the pause is saved after its wake-up is
/// already due, so the wake-up can arrive before the save it follows.
fn busy_beside_short_delay() -> Value {
    json!({"key": "p", "type": "parallel", "config": {"mode": "all"}, "branches": {
        "0": [{"key": "short", "type": "delay", "config": {"duration": 1, "unit": 1}}],
        "1": [{"key": "l", "type": "loop", "config": {"target": 300}, "branches": {"0": [
            {"key": "c", "type": "calculation", "config": {"expression": "1 + 1"}}
        ]}}]
    }})
}

#[tokio::test]
async fn a_second_pause_whose_wake_up_is_due_at_once_still_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let flow = json!({"key": "two", "trigger": {"type": "webhook", "hookId": "two", "response": {"body": {"id": "{{$system.executionId}}"}}}, "nodes": [
        {"key": "w1", "type": "delay", "config": {"duration": 30, "unit": 1}},
        {"key": "w2", "type": "delay", "config": {"duration": 1, "unit": 1}},
        busy_beside_short_delay(),
        {"key": "out", "type": "output", "config": {"value": 1}}
    ]});
    let app = app(dir.path(), &[flow]).await;
    let _worker = start_worker(&app);
    resolves_each_time(&app, "two", 5, json!(1)).await;
}

#[tokio::test]
async fn a_child_whose_wake_up_beats_its_first_save_still_wakes_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let child = json!({"key": "kid", "trigger": {"type": "webhook"}, "nodes": [
        busy_beside_short_delay(),
        {"key": "out", "type": "output", "config": {"value": "kid done"}}
    ]});
    // The parent calls it twice: once alone, once beside a short delay of its own.
    let parent = json!({"key": "dad", "trigger": {"type": "webhook", "hookId": "dad", "response": {"body": {"id": "{{$system.executionId}}"}}}, "nodes": [
        {"key": "call", "type": "subflow", "config": {"workflow": "kid", "context": {}}},
        {"key": "p2", "type": "parallel", "config": {"mode": "all"}, "branches": {
            "0": [{"key": "short2", "type": "delay", "config": {"duration": 1, "unit": 1}}],
            "1": [{"key": "call2", "type": "subflow", "config": {"workflow": "kid", "context": {}}}]
        }},
        {"key": "out", "type": "output", "config": {"value": ["{{$jobsMapByNodeKey.call}}", "{{$jobsMapByNodeKey.call2}}"]}}
    ]});
    let app = app(dir.path(), &[child, parent]).await;
    let _worker = start_worker(&app);
    resolves_each_time(&app, "dad", 3, json!(["kid done", "kid done"])).await;
    let kids = app.store.list_executions(Some("kid"), 10).await.unwrap();
    assert_eq!(kids.len(), 6);
    assert!(kids.iter().all(|k| k.status.as_str() == "resolved"));
}
