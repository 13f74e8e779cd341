//! No request can crash `hookflow serve`: the reproduction of issue 9 (a
//! `dateCalculation` adding 1e15 days used to abort the server, and the queued
//! run killed it again at every start), and a node that panics on purpose (the
//! test crate's `test-panic` type, on serve's app in this process), which must
//! cost its own execution only.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hookflow::app::worker::run_queue;
use hookflow::wiring::{App, Settings};
use hookflow_tests::{Server, inproc, job_trail, post, test_nodes};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

fn add_days(key: &str, sync: bool) -> Value {
    let mut flow = json!({
        "key": key, "sync": sync,
        "trigger": {"type": "webhook", "hookId": key},
        "nodes": [
            {"key": "due", "type": "dateCalculation", "config": {
                "input": "2024-01-01T00:00:00Z",
                "steps": [{"function": "add", "arguments": {"number": "{{$context.body.n}}", "unit": "day"}}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.due}}"}}
        ]
    });
    if !sync {
        flow["trigger"]["response"] =
            json!({"statusCode": 202, "body": {"id": "{{$system.executionId}}"}});
    }
    flow
}

fn panicking(key: &str, sync: bool) -> Value {
    let mut flow = json!({
        "key": key, "sync": sync,
        "trigger": {"type": "webhook", "hookId": key},
        "nodes": [
            {"key": "boom", "type": "test-panic", "config": {"when": "{{$context.body.panic}}"}},
            {"key": "out", "type": "output", "config": {"value": "{{$context.body.n}}"}}
        ]
    });
    if !sync {
        flow["trigger"]["response"] =
            json!({"statusCode": 202, "body": {"id": "{{$system.executionId}}"}});
    }
    flow
}

fn job_message(execution: &Value, node: &str) -> String {
    execution["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["nodeKey"] == node)
        .and_then(|j| j["result"]["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn adding_1e15_days_fails_the_node_sync_async_and_after_a_restart() {
    let mut server = Server::start(&[add_days("days-sync", true), add_days("days-async", false)]);

    let (status, body) = post(&server, "days-sync", json!({"n": 1e15})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["status"], "failed");
    let failed = server
        .execution(body["executionId"].as_str().unwrap())
        .unwrap();
    assert_eq!(job_trail(&failed), [("due", "failed")]);
    assert!(
        job_message(&failed, "due").contains("out of range"),
        "{failed}"
    );
    // The server is still there, and right.
    let (status, body) = post(&server, "days-sync", json!({"n": 1})).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("resolved")),
        "{body}"
    );

    let (status, accepted) = post(&server, "days-async", json!({"n": 1e15})).await;
    assert_eq!(status, 202);
    let id = accepted["id"].as_str().unwrap().to_string();
    let failed = server.wait_for_execution(&id, "failed");
    assert_eq!(job_trail(&failed), [("due", "failed")]);

    // A restart does not run it again, and the server comes up and answers.
    server.restart_with(&[]);
    let (status, _) = post(&server, "days-sync", json!({"n": 2})).await;
    assert_eq!(status, 200);
    let after = server.execution(&id).unwrap();
    assert_eq!(after["status"], "failed");
    assert_eq!(after["jobs"], failed["jobs"], "the run was not run again");
}

/// `hookflow serve`'s app in this process, on an embedded store in `dir`, with the
/// test-only node types and its worker loop running: `test-panic` lives in the
/// test crate, so no `hookflow` binary can offer it.
struct Serving {
    app: App,
    stop: watch::Sender<bool>,
    workers: JoinHandle<()>,
}

impl Serving {
    async fn start(dir: &Path, workflows: &[Value]) -> Self {
        let settings = Settings {
            node_types: test_nodes::with_test_nodes,
            ..Settings::default()
        };
        let app = inproc::app(dir, workflows, &settings, None).await;
        let (stop, stopped) = watch::channel(false);
        let workers = tokio::spawn(run_queue(
            Arc::clone(&app.worker),
            Arc::clone(&app.queue),
            4,
            stopped,
            Duration::from_secs(10),
        ));
        Self { app, stop, workers }
    }

    /// Stops the worker loop as serve does at SIGINT, runs in flight finished.
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.workers.await.expect("the worker loop ends");
    }

    /// The execution record as `hookflow executions show --json` prints it.
    async fn execution(&self, id: &str) -> Value {
        let record = self.app.store.execution(id).await.unwrap();
        serde_json::to_value(record.expect("the execution is recorded")).unwrap()
    }

    async fn wait_for_execution(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(record) = self.app.store.execution(id).await.unwrap() {
                let record = serde_json::to_value(record).unwrap();
                if record["status"] == status {
                    return record;
                }
                assert!(Instant::now() < deadline, "still {record}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_fails_only_its_own_execution() {
    let dir = tempfile::tempdir().unwrap();
    let flows = [panicking("boom-sync", true), panicking("boom-async", false)];
    let serving = Serving::start(dir.path(), &flows).await;
    let app = &serving.app;

    // One panicking request among others in flight at the same time.
    let bodies: Vec<Value> = (0..8).map(|i| json!({"panic": i == 3, "n": i})).collect();
    let calls = bodies
        .iter()
        .map(|body| inproc::post_json(app, "boom-sync", body));
    let answers = join_all(calls).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        if i == 3 {
            assert_eq!(*status, 500, "{body}");
            assert_eq!(body["status"], "error");
            let id = body["executionId"].as_str().expect("the execution id");
            let record = serving.execution(id).await;
            assert_eq!(record["status"], "error");
            assert_eq!(job_trail(&record), [("boom", "error")]);
            let message = job_message(&record, "boom");
            assert!(message.contains("internal error (a bug)"), "{message}");
            assert!(message.contains("panicked on purpose"), "{message}");
        } else {
            assert_eq!(
                (*status, &body["status"]),
                (200, &json!("resolved")),
                "{body}"
            );
        }
    }

    // Async: the panicking run is recorded as error and acknowledged; its
    // neighbours resolve.
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, accepted) =
            inproc::post_json(app, "boom-async", &json!({"panic": i == 1, "n": i})).await;
        assert_eq!(status, 202);
        ids.push(accepted["id"].as_str().unwrap().to_string());
    }
    let broken = serving.wait_for_execution(&ids[1], "error").await;
    assert_eq!(job_trail(&broken), [("boom", "error")]);
    for id in [&ids[0], &ids[2]] {
        let done = serving.wait_for_execution(id, "resolved").await;
        assert_eq!(
            job_trail(&done),
            [("boom", "resolved"), ("out", "resolved")]
        );
    }
    serving.stop().await;

    // Nothing comes back at the next start: no crash loop, no second run.
    let again = Serving::start(dir.path(), &[]).await;
    let waiting = again
        .app
        .queue
        .receive(10, Duration::from_millis(200))
        .await;
    assert!(waiting.unwrap().is_empty(), "a run came back");
    assert_eq!(again.execution(&ids[1]).await["jobs"], broken["jobs"]);
    let (status, _) = inproc::post_json(&again.app, "boom-sync", &json!({"panic": false})).await;
    assert_eq!(status, 200);
    again.stop().await;
}

/// A panic is a bug, not a node failure: a loop that goes on past failed
/// iterations (`exit: 2`) still ends the execution at one.
#[tokio::test]
async fn a_panic_in_a_loop_body_ends_the_execution_even_with_exit_continue() {
    let dir = tempfile::tempdir().unwrap();
    let flow = json!({
        "key": "loop", "sync": true,
        "trigger": {"type": "webhook", "hookId": "loop-hook"},
        "nodes": [
            {"key": "each", "type": "loop", "config": {"target": 3, "exit": 2}, "branches": {"0": [
                {"key": "boom", "type": "test-panic", "config": {}}
            ]}},
            {"key": "after", "type": "output", "config": {"value": 1}}
        ]
    });
    let serving = Serving::start(dir.path(), &[flow]).await;
    let (status, body) = inproc::post_json(&serving.app, "loop-hook", &json!({})).await;
    assert_eq!((status, &body["status"]), (500, &json!("error")), "{body}");
    let record = serving
        .execution(body["executionId"].as_str().unwrap())
        .await;
    assert_eq!(job_trail(&record), [("each", "error"), ("boom", "error")]);
    serving.stop().await;
}
