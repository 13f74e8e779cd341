//! Failure workflows (`options.onFailure`, issue 12) through `hookflow serve`: a
//! failed sync or async run starts the named workflow with what failed in
//! `$context.body.execution`; a resolved run starts nothing; a failure workflow
//! that fails starts nothing more.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, flaky_server, hookflow};
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

/// Workflow `a` fails (its `end` node) and names `fix` as its failure workflow;
/// `fix` calls `a` again as a subflow, through `middle` when `nested`. With
/// `pause`, `a` waits 1 s first: it pauses, and ends through a wake-up.
fn failure_loop(sync: bool, nested: bool, pause: bool) -> Vec<Value> {
    let mut a_nodes = Vec::new();
    if pause {
        a_nodes.push(json!({"key": "wait", "type": "delay", "config": {"duration": 1}}));
    }
    a_nodes.push(json!({"key": "stop", "type": "end", "config": {"endStatus": -1}}));
    let call = |key: &str, target: &str| {
        json!({"key": key, "trigger": {"type": "webhook", "hookId": format!("{key}-hook")},
            "nodes": [{"key": "call", "type": "subflow", "config": {"workflow": target, "context": {}}}]})
    };
    let mut workflows = vec![
        json!({"key": "a", "sync": sync, "options": {"onFailure": "fix"},
            "trigger": {"type": "webhook", "hookId": "a-hook"}, "nodes": a_nodes}),
        call("fix", if nested { "middle" } else { "a" }),
    ];
    if nested {
        workflows.push(call("middle", "a"));
    }
    workflows
}

/// How many executions `server` has recorded, once the count has held still for
/// `quiet` (a loop never holds still), within 20 s.
async fn settled_count(server: &Server, quiet: Duration) -> usize {
    let began = Instant::now();
    let mut last = server.executions(None).len();
    let mut still_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = server.executions(None).len();
        if now != last {
            (last, still_since) = (now, Instant::now());
        } else if still_since.elapsed() >= quiet {
            return now;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "executions keep growing: {now} after {:?}",
            began.elapsed()
        );
    }
}

/// Starts `a` once through its hook (answered `hook_answer`), and checks what
/// follows: its failure workflow ran once, the `a` it called failed and started
/// nothing, and the count of executions, `total`, holds. Returns the server.
async fn start_the_loop_once(
    sync: bool,
    nested: bool,
    pause: bool,
    hook_answer: u16,
    total: usize,
) -> Server {
    let server = Server::start(&failure_loop(sync, nested, pause));
    assert_eq!(post(&server, "a-hook", json!({})).await, hook_answer);
    let fixes = finished(&server, "fix", 1).await;
    let count = settled_count(&server, Duration::from_secs(2)).await;
    let runs = server.executions(Some("a"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (first, child) = (&runs[1], &runs[0]);
    assert_eq!(first["status"], "failed");
    assert_eq!(fixes[0]["onFailureOf"], first["id"]);
    assert_eq!(child["status"], "failed", "{child}");
    // The child ran in the failure workflow's lineage, so its failure started nothing.
    assert_eq!(child["onFailureOf"], first["id"]);
    assert_eq!(count, total);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.executions(None).len(),
        total,
        "executions grew after settling"
    );
    server
}

#[tokio::test]
async fn a_failure_workflow_calling_the_sync_failed_workflow_again_does_not_loop() {
    start_the_loop_once(true, false, false, 500, 3).await;
}

#[tokio::test]
async fn a_failure_workflow_calling_the_async_failed_workflow_again_does_not_loop() {
    start_the_loop_once(false, false, false, 200, 3).await;
}

#[tokio::test]
async fn runs_deeper_under_a_failure_workflow_that_pause_and_fail_start_nothing() {
    // fix → middle → a, and a pauses 1 s before it fails: it ends through a wake-up.
    let server = start_the_loop_once(false, true, true, 200, 4).await;
    let middle = server.executions(Some("middle"));
    let first = &server.executions(Some("a"))[1];
    assert_eq!(middle.len(), 1);
    assert_eq!(middle[0]["onFailureOf"], first["id"]);
}

#[test]
fn validate_reports_a_failure_workflow_that_reaches_the_failed_one_again() {
    let dir = tempfile::tempdir().unwrap();
    for workflow in failure_loop(false, true, false) {
        let file = dir
            .path()
            .join(format!("{}.json", workflow["key"].as_str().unwrap()));
        std::fs::write(file, workflow.to_string()).unwrap();
    }
    let (ok, out, err) = hookflow(&["validate", dir.path().to_str().unwrap()]);
    // Reported, not refused: calling the failed workflow again is a retry, and runs
    // under a failure workflow start no failure workflow, so it never loops.
    assert!(ok, "{out}{err}");
    let warning = format!(
        "{}: warning: options.onFailure: \"fix\" reaches this workflow again: \
         a → fix (onFailure) → middle (subflow node \"call\") → a (subflow node \"call\").",
        dir.path().join("a.json").display()
    );
    assert!(out.contains(&warning), "{out}");
    assert_eq!(out.matches("warning").count(), 1, "{out}");
}
