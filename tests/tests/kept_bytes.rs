//! What one delivery may make a process hold and a record keep (issue 24 items 5,
//! 6 and 11), through `hookflow serve`, with its peak resident memory read from
//! /proc (`VmHWM`):
//! - a loop whose 1,000 items each render a 400 KB body into a result (1.7 GB RSS
//!   and a 780 MB store before) ends `error` at the bytes an execution keeps;
//! - a `parallel` of 1,500 branches over a 300 KB body (each branch had its own
//!   copy of the context: 2.5 GB) completes with bounded memory;
//! - 100 concurrent 1 MiB JSON arrays to a sync hook (the body budget counted raw
//!   bytes while each parses into ~36 MiB: 1.04 GB) are held to the budget.

use serde_json::{Value, json};

use hookflow_tests::{Server, client};

const MIB: u64 = 1 << 20;

fn pad(bytes: usize) -> String {
    json!({"status": "paid", "pad": "x".repeat(bytes)}).to_string()
}

async fn post(server: &Server, hook: &str, body: String) -> (u16, Value) {
    let response = client()
        .post(server.hook_url(hook))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn store_bytes(server: &Server) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(server.data_dir()).unwrap().flatten() {
        total += entry.metadata().map_or(0, |m| m.len());
    }
    total
}

#[tokio::test]
async fn a_loop_echoing_the_body_ends_at_the_bytes_an_execution_keeps() {
    let echo = json!({"key": "echo", "trigger": {"type": "webhook", "hookId": "echo",
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [{"key": "each", "type": "loop", "config": {"target": 1000, "exit": 2},
            "branches": {"0": [{"key": "copy", "type": "output", "config": {"value": "{{$context.body.pad}}"}}]}}]});
    let plain = json!({"key": "plain", "sync": true, "trigger": {"type": "webhook", "hookId": "plain"},
        "nodes": [{"key": "r", "type": "response", "config": {"statusCode": 200, "body": "ok"}}]});
    let server = Server::start(&[echo, plain]);
    let (status, body) = post(&server, "echo", pad(400 << 10)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["executionId"]
        .as_str()
        .expect("an execution id")
        .to_string();
    let run = server.wait_for_execution(&id, "error");
    let jobs = run["jobs"].as_array().unwrap();
    let last = jobs.last().unwrap();
    assert_eq!(last["nodeKey"], "copy");
    assert_eq!(
        last["result"]["message"],
        "the run's results exceed 32 MiB (the bytes an execution may keep: results, logs and output)"
    );
    assert!(jobs.len() < 200, "{} jobs: it stopped early", jobs.len());
    assert!(
        run["attempts"].as_u64() <= Some(1),
        "begun once: {}",
        run["attempts"]
    );
    // The process is up and answers at once.
    assert_eq!(post(&server, "plain", "{}".into()).await.0, 200);
    let peak = server.peak_rss().expect("VmHWM");
    let store = store_bytes(&server);
    eprintln!(
        "loop echo: peak RSS {} MiB, store {} MiB",
        peak / MIB,
        store / MIB
    );
    assert!(peak < 400 * MIB, "peak RSS {} MiB (was 1.7 GB)", peak / MIB);
    assert!(store < 120 * MIB, "store {} MiB (was 780 MB)", store / MIB);
}

#[tokio::test]
async fn a_parallel_of_1500_branches_over_a_large_body_shares_it() {
    let branches: serde_json::Map<String, Value> = (0..1500)
        .map(|i| {
            let check = json!([{"key": format!("b{i}"), "type": "condition", "config": {"calculation":
                {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}}}]);
            (i.to_string(), check)
        })
        .collect();
    let fan = json!({"key": "fan", "sync": true, "trigger": {"type": "webhook", "hookId": "fan"},
        "nodes": [{"key": "all", "type": "parallel", "config": {"mode": "all"}, "branches": branches},
            {"key": "r", "type": "response", "config": {"statusCode": 200, "body": "{{$jobsMapByNodeKey.b1499}}"}}]});
    let server = Server::start(&[fan]);
    let (status, body) = post(&server, "fan", pad(300 << 10)).await;
    assert_eq!((status, body), (200, json!(true)));
    let peak = server.peak_rss().expect("VmHWM");
    eprintln!("fan-out: peak RSS {} MiB", peak / MIB);
    assert!(peak < 300 * MIB, "peak RSS {} MiB (was 2.5 GB)", peak / MIB);
}

#[tokio::test]
async fn concurrent_json_arrays_are_held_to_the_body_budget() {
    let count = json!({"key": "count", "sync": true, "trigger": {"type": "webhook", "hookId": "count"},
        "nodes": [{"key": "r", "type": "response", "config": {"statusCode": 200, "body": "counted"}}]});
    let server = Server::start(&[count]);
    // Just under the 1 MiB a body may have.
    let array = format!("[{}1]", "1,".repeat((1 << 20) / 2 - 2));
    let sends = (0..100).map(|_| post(&server, "count", array.clone()));
    let answers = futures_util::future::join_all(sends).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let busy = answers.iter().filter(|(s, _)| *s == 503).count();
    assert_eq!(ok + busy, 100, "only 200 or 503 (retry): {answers:?}");
    assert!(ok >= 1, "one at least gets through");
    let peak = server.peak_rss().expect("VmHWM");
    eprintln!(
        "100 arrays: {ok} answered 200, {busy} 503; peak RSS {} MiB",
        peak / MIB
    );
    assert!(
        peak < 400 * MIB,
        "peak RSS {} MiB (was 1.04 GB)",
        peak / MIB
    );
}
