//! Idempotency keeps only answers that stand for a run (issue 23, items 4 and 5), on
//! a real `hookflow serve`: a first answer that failed on the server's side gives
//! the key up so the sender's retry runs, and a process killed (SIGKILL) while keyed
//! deliveries come in never leaves a key answered for a run that was not queued.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, flaky_server, stub_server};
use serde_json::{Value, json};

/// A sync keyed workflow that calls `url` and answers with what it got.
fn charge(url: &str, timeout_ms: u64) -> Value {
    json!({"key": "charge", "sync": true, "options": {"timeoutMs": timeout_ms},
    "trigger": {"type": "webhook", "hookId": "charge-hook",
        "request": {"headers": [{"key": "x-delivery"}]},
        "idempotency": {"key": "{{$context.headers.x-delivery}}"}},
    "nodes": [
        {"key": "call", "type": "request", "config": {"url": url, "method": "GET", "timeout": 5000}},
        {"key": "answer", "type": "response", "config": {"statusCode": 200,
            "body": {"charged": "{{$jobsMapByNodeKey.call.data.ok}}"}}}
    ]})
}

async fn deliver(server: &Server, hook: &str, delivery: &str) -> (u16, bool, String) {
    let answer = client()
        .post(server.hook_url(hook))
        .header("x-delivery", delivery)
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    let replayed = answer
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (
        answer.status().as_u16(),
        replayed,
        answer.text().await.unwrap(),
    )
}

fn statuses(server: &Server, workflow: &str) -> Vec<String> {
    let mut found: Vec<String> = server
        .executions(Some(workflow))
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_failed_first_answer_gives_the_key_up_so_the_retry_runs() {
    // The downstream service is out for the first call only.
    let (url, calls) = flaky_server(1);
    let server = Server::start_with(&[charge(&url, 10_000)], &["--allow-loopback-requests"]);
    let (status, replayed, body) = deliver(&server, "charge-hook", "evt-1").await;
    assert_eq!((status, replayed), (500, false), "{body}");
    // The sender retries because of the 5xx: this time it runs, and resolves.
    let (status, replayed, body) = deliver(&server, "charge-hook", "evt-1").await;
    assert_eq!((status, replayed), (200, false), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["charged"],
        true
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // From now on duplicates get the answer that stands, without running again.
    let (status, replayed, again) = deliver(&server, "charge-hook", "evt-1").await;
    assert_eq!((status, replayed, again), (200, true, body));
    assert_eq!(statuses(&server, "charge"), ["failed", "resolved"]);
}

#[tokio::test]
async fn a_timed_out_first_answer_gives_the_key_up_so_the_retry_runs() {
    // Slow for the first call only: the run's 1 s limit answers 504.
    let url = stub_server(|_, n| {
        if n == 1 {
            std::thread::sleep(Duration::from_millis(2_500));
        }
        (200, String::new(), "{\"ok\":true}".into())
    });
    let server = Server::start_with(&[charge(&url, 1_000)], &["--allow-loopback-requests"]);
    let (status, replayed, body) = deliver(&server, "charge-hook", "evt-2").await;
    assert_eq!((status, replayed), (504, false), "{body}");
    // The stub answers one call at a time: the retry comes once it is free.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let (status, replayed, body) = deliver(&server, "charge-hook", "evt-2").await;
    assert_eq!((status, replayed), (200, false), "{body}");
    assert_eq!(statuses(&server, "charge"), ["aborted", "resolved"]);
}

/// An async keyed workflow with one node.
fn orders() -> Value {
    json!({"key": "orders", "trigger": {"type": "webhook", "hookId": "orders-hook",
            "request": {"headers": [{"key": "x-delivery"}]},
            "idempotency": {"key": "{{$context.headers.x-delivery}}"}},
        "nodes": [{"key": "o", "type": "output", "config": {"value": "{{$context.headers.x-delivery}}"}}]})
}

/// Sends every key once to `url`, 16 at a time; the keys that got a 2xx.
async fn send_all(url: String, keys: Vec<String>) -> BTreeSet<String> {
    let mut accepted = BTreeSet::new();
    for chunk in keys.chunks(16) {
        let sends = chunk.iter().map(|key| {
            let url = url.clone();
            let key = key.clone();
            async move {
                let sent = client()
                    .post(url)
                    .header("x-delivery", &key)
                    .json(&json!({"k": key}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                (key, sent.is_ok_and(|r| r.status().is_success()))
            }
        });
        for (key, ok) in futures_util::future::join_all(sends).await {
            if ok {
                accepted.insert(key);
            }
        }
    }
    accepted
}

#[tokio::test]
async fn a_process_killed_among_keyed_deliveries_loses_and_doubles_none() {
    let mut server = Server::start(&[orders()]);
    let mut accepted = BTreeSet::new();
    for round in 0..3 {
        let keys: Vec<String> = (0..400).map(|i| format!("r{round}-k{i}")).collect();
        let url = server.hook_url("orders-hook");
        // Killed mid-way, at a different point each round.
        let sending = tokio::spawn(send_all(url, keys.clone()));
        tokio::time::sleep(Duration::from_millis(150 + 120 * round)).await;
        server.crash();
        accepted.extend(sending.await.unwrap());
        server.restart_with(&[]);
        // The sender retries every delivery, accepted or not (an answer may be
        // lost on the way): every key ends accepted.
        let url = server.hook_url("orders-hook");
        accepted.extend(send_all(url, keys.clone()).await);
        let missing: Vec<&String> = keys.iter().filter(|k| !accepted.contains(*k)).collect();
        assert!(missing.is_empty(), "keys never accepted: {missing:?}");
    }
    // Every accepted key ran exactly once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for record in server.executions(Some("orders")) {
            let key = record["idempotencyKey"].as_str().unwrap_or("").to_string();
            runs.entry(key)
                .or_default()
                .push(record["status"].as_str().unwrap().into());
        }
        let doubled: Vec<_> = runs.iter().filter(|(_, r)| r.len() > 1).collect();
        assert!(
            doubled.is_empty(),
            "keys that ran more than once: {doubled:?}"
        );
        let unfinished = accepted
            .iter()
            .filter(|k| runs.get(*k).is_none_or(|r| r != &["resolved"]))
            .count();
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} accepted keys have no resolved run"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
