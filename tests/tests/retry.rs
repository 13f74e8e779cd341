//! A node's `retry` (issue 12) against a local flaky server, through `hookflow
//! serve`: failures and errors are retried with growing waits, the job records its
//! attempts, a deliberate end or a condition's "no" is never retried, and an async
//! run waiting a long backoff pauses instead of holding a worker.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, flaky_server, job_trail};
use serde_json::{Value, json};

fn call(key: &str, url: &str, sync: bool, retry: Value) -> Value {
    let mut nodes = vec![json!({"key": "call", "type": "request",
        "config": {"url": url, "method": "GET", "timeout": 2000}, "retry": retry})];
    if sync {
        nodes.push(json!({"key": "answer", "type": "response",
            "config": {"statusCode": 200, "body": "{{$jobsMapByNodeKey.call}}"}}));
    }
    json!({"key": key, "sync": sync, "trigger": {"type": "webhook", "hookId": format!("{key}-hook")},
        "nodes": nodes})
}

fn start(workflows: &[Value]) -> Server {
    Server::start_with(workflows, &["--allow-loopback-requests"])
}

async fn post(server: &Server, key: &str) -> (u16, Value) {
    let answer = client()
        .post(server.hook_url(&format!("{key}-hook")))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn last(server: &Server, key: &str) -> Value {
    server.executions(Some(key)).remove(0)
}

#[tokio::test]
async fn a_flaky_call_is_retried_until_it_answers() {
    let (url, calls) = flaky_server(2);
    let server = start(&[call(
        "flaky",
        &url,
        true,
        json!({"maxAttempts": 3, "backoffMs": 100}),
    )]);
    let began = Instant::now();
    let (status, body) = post(&server, "flaky").await;
    let took = began.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["request"], 3, "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Waits of about 100 and 200 ms (each up to a quarter shorter).
    assert!(took >= Duration::from_millis(225), "{took:?}");
    let run = last(&server, "flaky");
    assert_eq!(run["status"], "resolved");
    assert_eq!(run["jobs"][0]["attempts"], 3);
    assert_eq!(
        job_trail(&run),
        [("call", "resolved"), ("answer", "resolved")]
    );
}

#[tokio::test]
async fn a_call_failing_every_attempt_fails_the_run_after_the_last() {
    let (url, calls) = flaky_server(usize::MAX);
    let (closed, _) = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (
            format!("http://{}", listener.local_addr().unwrap()),
            drop(listener),
        )
    };
    let server = start(&[
        call(
            "down",
            &url,
            true,
            json!({"maxAttempts": 2, "backoffMs": 10}),
        ),
        // A refused connection errors the node: retried as well.
        call(
            "gone",
            &closed,
            true,
            json!({"maxAttempts": 3, "backoffMs": 10}),
        ),
    ]);
    let (status, _) = post(&server, "down").await;
    assert_eq!(status, 500);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let run = last(&server, "down");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["jobs"][0]["attempts"], 2);
    assert_eq!(run["jobs"][0]["status"], "failed");
    assert_eq!(run["jobs"][0]["result"]["status"], 503, "{run}");

    post(&server, "gone").await;
    let run = last(&server, "gone");
    assert_eq!(run["jobs"][0]["attempts"], 3, "{run}");
    assert_ne!(run["status"], "resolved");
}

#[tokio::test]
async fn a_deliberate_end_and_a_conditions_no_are_not_retried() {
    let server = start(&[json!({"key": "nope", "sync": true,
    "trigger": {"type": "webhook", "hookId": "nope-hook"},
    "nodes": [
        {"key": "check", "type": "condition", "retry": {"maxAttempts": 5, "backoffMs": 10},
         "config": {"rejectOnFalse": false, "calculation": {"calculator": "equal", "operands": [1, 2]}}},
        {"key": "stop", "type": "end", "config": {"endStatus": -1}, "retry": {"maxAttempts": 5, "backoffMs": 10}}
    ]})]);
    post(&server, "nope").await;
    let run = last(&server, "nope");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["jobs"][0]["attempts"], 1, "{run}");
    assert_eq!(run["jobs"][0]["result"], false);
    assert_eq!(run["jobs"][1]["attempts"], 1, "{run}");
}

#[tokio::test]
async fn an_async_run_pauses_through_a_long_backoff() {
    let (url, calls) = flaky_server(1);
    let server = start(&[call(
        "patient",
        &url,
        false,
        json!({"maxAttempts": 3, "backoffMs": 2000}),
    )]);
    let (status, _) = post(&server, "patient").await;
    assert_eq!(status, 200);
    // The first attempt failed; the run waits paused, its job pending with why.
    let began = Instant::now();
    let waiting = loop {
        let runs = server.executions(Some("patient"));
        if let Some(run) = runs.first().filter(|r| r["paused"].is_object()) {
            break run.clone();
        }
        assert!(began.elapsed() < Duration::from_secs(5), "{runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(waiting["status"], "started");
    assert_eq!(waiting["jobs"][0]["status"], "pending");
    assert_eq!(waiting["jobs"][0]["attempts"], 1);
    assert_eq!(waiting["jobs"][0]["result"]["status"], 503);
    assert_eq!(waiting["paused"]["waits"][0]["nodeKey"], "call");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let id = waiting["id"].as_str().unwrap();
    let done = server.wait_for_execution(id, "resolved");
    assert!(
        began.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(done["jobs"][0]["attempts"], 2);
    assert_eq!(done["jobs"][0]["result"]["data"]["request"], 2);
    assert_eq!(
        done["jobs"].as_array().unwrap().len(),
        1,
        "one job for all attempts"
    );
}

#[tokio::test]
async fn a_retried_node_that_pauses_keeps_its_count_across_the_pause() {
    // Each child waits a second (the parent pauses on it), then fails.
    let child = json!({"key": "slow-fail", "trigger": {"type": "webhook", "hookId": "slow-fail-hook"},
        "nodes": [{"key": "nap", "type": "delay", "config": {"duration": 1, "endStatus": -1}}]});
    let parent = json!({"key": "caller", "trigger": {"type": "webhook", "hookId": "caller-hook"},
        "nodes": [{"key": "call", "type": "subflow", "config": {"workflow": "slow-fail", "context": {}},
                   "retry": {"maxAttempts": 2, "backoffMs": 10}}]});
    let server = start(&[child, parent]);
    let (status, _) = post(&server, "caller").await;
    assert_eq!(status, 200);
    let began = Instant::now();
    let run = loop {
        let runs = server.executions(Some("caller"));
        if let Some(run) = runs.first().filter(|r| r["status"] != "started") {
            break run.clone();
        }
        assert!(began.elapsed() < Duration::from_secs(15), "{runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["status"], "failed");
    assert_eq!(run["jobs"][0]["attempts"], 2, "{run}");
    // Two children in all: the count held across each child's pause.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.executions(Some("slow-fail")).len(), 2);
}
