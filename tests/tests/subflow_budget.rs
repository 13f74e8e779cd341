//! One budget for a run and all its subflow runs (issue 24 item 4), through
//! `hookflow serve`: a workflow that calls itself in a loop, from one 9-byte
//! request, started n^8 executions (each child had its own node budget); now the
//! whole tree stops at the root run's budget of 1,000 executions, and the root run
//! ends `error` naming it. A legitimate nested call still works.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, hookflow};
use serde_json::{Value, json};

/// The default `max_executions` of a run and its subflows.
const BUDGET: usize = 1_000;

/// Calls itself `n` times in a loop that goes on when an iteration fails.
fn recursive(key: &str, sync: bool) -> Value {
    json!({"key": key, "sync": sync, "trigger": {"type": "webhook", "hookId": key},
        "nodes": [{"key": "each", "type": "loop", "config": {"target": "{{$context.body.n}}", "exit": 2},
            "branches": {"0": [{"key": "again", "type": "subflow",
                "config": {"workflow": key, "context": {"body": {"n": "{{$context.body.n}}"}}}}]}}]})
}

/// Waits until the workflow's executions stop growing and are all finished; returns them.
async fn settled(server: &Server, key: &str) -> Vec<Value> {
    let began = Instant::now();
    let mut last = usize::MAX;
    loop {
        let runs = server.executions(Some(key));
        let done = runs.iter().all(|r| r["status"] != "started");
        if runs.len() == last && done {
            return runs;
        }
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "{key}: still growing after 90 s: {} executions",
            runs.len()
        );
        last = runs.len();
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
}

async fn recursion_ends_at_the_budget(sync: bool) {
    let key = if sync { "rec-sync" } else { "rec-async" };
    let server = Server::start(&[recursive(key, sync)]);
    let status = client()
        .post(server.hook_url(key))
        .body(r#"{"n": 4}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, if sync { 500 } else { 200 });
    let runs = settled(&server, key).await;
    assert!(
        runs.len() <= BUDGET,
        "{} executions from one request",
        runs.len()
    );
    let root = runs
        .iter()
        .find(|r| r.get("parentExecutionId").is_none_or(Value::is_null))
        .expect("the webhook's run");
    assert_eq!(root["status"], "error", "{root}");
    let message = format!("the run and its subflows started more than {BUDGET} executions");
    let says = |run: &Value| {
        run["jobs"].as_array().unwrap().iter().any(|j| {
            j["result"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&message))
        })
    };
    assert!(says(root), "{root}");
}

#[tokio::test]
async fn a_sync_workflow_calling_itself_in_a_loop_ends_at_the_budget() {
    recursion_ends_at_the_budget(true).await;
}

#[tokio::test]
async fn an_async_workflow_calling_itself_in_a_loop_ends_at_the_budget() {
    recursion_ends_at_the_budget(false).await;
}

/// An async child that pauses takes half of what is left along and its caller gets
/// back what it leaves: three children in a row, each waiting, all resolve.
#[tokio::test]
async fn children_that_pause_one_after_another_share_the_budget() {
    let child = json!({"key": "napper", "trigger": {"type": "webhook"}, "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": 200, "unit": 1}},
        {"key": "out", "type": "output", "config": {"value": "{{$context.i}}"}}]});
    let parent = json!({"key": "caller", "trigger": {"type": "webhook", "hookId": "caller"},
        "nodes": [{"key": "each", "type": "loop", "config": {"target": 12},
            "branches": {"0": [{"key": "call", "type": "subflow",
                "config": {"workflow": "napper", "context": {"i": "{{$scopes.each.index}}"}}}]}}]});
    let server = Server::start(&[child, parent]);
    let status = client()
        .post(server.hook_url("caller"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let began = Instant::now();
    loop {
        let runs = server.executions(Some("caller"));
        if let Some(run) = runs.first().filter(|r| r["status"] != "started") {
            assert_eq!(run["status"], "resolved", "{run}");
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "{runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let children = server.executions(Some("napper"));
    assert_eq!(children.len(), 12);
    assert!(children.iter().all(|c| c["status"] == "resolved"));
}

fn write(dir: &std::path::Path, workflows: &[Value]) {
    for w in workflows {
        let file = dir.join(format!("{}.json", w["key"].as_str().unwrap()));
        std::fs::write(file, w.to_string()).unwrap();
    }
}

fn calls(key: &str, callee: &str) -> Value {
    json!({"key": key, "trigger": {"type": "webhook"}, "nodes": [
        {"key": "first", "type": "output", "config": {"value": 1}},
        {"key": "maybe", "type": "condition", "config": {"calculation": {"calculator": "equal", "operands": [1, 1]}},
            "branches": {"1": [{"key": "call", "type": "subflow", "config": {"workflow": callee}}]}}]})
}

#[test]
fn validate_warns_of_subflow_call_cycles_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            recursive("selfish", false),
            calls("a", "b"),
            calls("b", "a"),
            calls("c", "a"),
        ],
    );
    let (ok, out, err) = hookflow(&["validate", dir.path().to_str().unwrap()]);
    // A warning, not a refusal: a bounded recursion may be meant, and the budget
    // of a run and its subflows ends one that is not.
    assert!(ok, "{out}{err}");
    let at = |key: &str| dir.path().join(format!("{key}.json")).display().to_string();
    for (key, path, cycle) in [
        (
            "selfish",
            "nodes[0].branches.0[0].config.workflow",
            "selfish → selfish (subflow node \"again\")",
        ),
        (
            "a",
            "nodes[1].branches.1[0].config.workflow",
            "a → b (subflow node \"call\") → a (subflow node \"call\")",
        ),
        (
            "b",
            "nodes[1].branches.1[0].config.workflow",
            "b → a (subflow node \"call\") → b (subflow node \"call\")",
        ),
    ] {
        let warning = format!(
            "{}: warning: {path}: calls this workflow again: {cycle}",
            at(key)
        );
        assert!(out.contains(&warning), "{warning}\n{out}");
    }
    // c calls into the cycle but is not on it.
    assert_eq!(out.matches("warning").count(), 3, "{out}");
}
