//! Failure workflows (`options.onFailure`, issue 12) through `hookflow serve`: a
//! failed sync or async run starts the named workflow with what failed in
//! `$context.body.execution`; a resolved run starts nothing; a failure workflow
//! that fails starts nothing more.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, flaky_server};
use serde_json::{Value, json};

fn alert() -> Value {
    json!({"key": "alert", "trigger": {"type": "webhook", "hookId": "alert-hook"},
        "nodes": [{"key": "page", "type": "output",
            "config": {"value": "{{$context.body.execution.workflow}} failed at {{$context.body.execution.failedNode}}"}}]})
}

async fn post(server: &Server, hook: &str, body: Value) -> u16 {
    client()
        .post(server.hook_url(hook))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until workflow `key` has `n` executions, all finished.
async fn finished(server: &Server, key: &str, n: usize) -> Vec<Value> {
    let began = Instant::now();
    loop {
        let runs = server.executions(Some(key));
        if runs.len() == n && runs.iter().all(|r| r["status"] != "started") {
            return runs;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{key}: {} runs, not {n}: {runs:?}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failed_run_starts_its_failure_workflow_with_what_failed() {
    let (down, _) = flaky_server(usize::MAX);
    let server = Server::start_with(
        &[
            alert(),
            json!({"key": "pay", "sync": true, "options": {"onFailure": "alert"},
                "trigger": {"type": "webhook", "hookId": "pay-hook"},
                "nodes": [{"key": "charge", "type": "request", "config": {"url": down, "method": "POST"}}]}),
            json!({"key": "ship", "options": {"onFailure": "alert"},
                "trigger": {"type": "webhook", "hookId": "ship-hook"},
                "nodes": [
                    {"key": "check", "type": "output", "config": {"value": "{{$context.body.n}}"}},
                    {"key": "stop", "type": "end", "config": {"endStatus": -1}}]}),
            json!({"key": "fine", "sync": true, "options": {"onFailure": "alert"},
                "trigger": {"type": "webhook", "hookId": "fine-hook"}, "nodes": []}),
        ],
        &["--allow-loopback-requests"],
    );
    assert_eq!(post(&server, "fine-hook", json!({})).await, 200);
    assert_eq!(post(&server, "pay-hook", json!({"order": 1})).await, 500);
    let pay = &server.executions(Some("pay"))[0];
    let alerts = finished(&server, "alert", 1).await;
    let report = &alerts[0]["context"]["body"]["execution"];
    assert_eq!(report["id"], pay["id"]);
    assert_eq!(report["workflow"], "pay");
    assert_eq!(report["version"], 1);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["failedNode"], "charge");
    assert!(report["error"].to_string().contains("503"), "{report}");
    assert_eq!(alerts[0]["onFailureOf"], pay["id"]);
    assert_eq!(alerts[0]["jobs"][0]["result"], "pay failed at charge");

    assert_eq!(post(&server, "ship-hook", json!({"n": 2})).await, 200);
    let alerts = finished(&server, "alert", 2).await;
    assert_eq!(alerts[0]["jobs"][0]["result"], "ship failed at stop");
    assert_eq!(
        alerts[0]["context"]["body"]["execution"]["status"],
        "failed"
    );
    // The resolved run started nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.executions(Some("alert")).len(), 2);
}

#[tokio::test]
async fn failure_workflows_never_start_each_other_in_a_loop() {
    let failing = |key: &str, other: &str| {
        json!({"key": key, "options": {"onFailure": other},
            "trigger": {"type": "webhook", "hookId": format!("{key}-hook")},
            "nodes": [{"key": "stop", "type": "end", "config": {"endStatus": -1}}]})
    };
    let server = Server::start(&[failing("ping", "pong"), failing("pong", "ping")]);
    assert_eq!(post(&server, "ping-hook", json!({})).await, 200);
    let pong = finished(&server, "pong", 1).await;
    assert_eq!(pong[0]["status"], "failed");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.executions(Some("ping")).len(), 1);
    assert_eq!(server.executions(Some("pong")).len(), 1);
}
