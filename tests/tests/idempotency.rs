//! Duplicates answered once, on a real `hookflow serve` (inbound.md §5): concurrent
//! copies of one delivery start exactly one run, the first answer is replayed byte
//! for byte (after a restart too) once the first request has given it (before
//! that: 409), the key ends with its TTL, and an empty key means no deduplication.

use std::time::Duration;

use hookflow_tests::{Server, client, hookflow};
use serde_json::{Value, json};

fn workflows() -> Vec<Value> {
    vec![
        json!({"key": "orders", "trigger": {"type": "webhook", "hookId": "orders",
            "request": {"headers": [{"key": "x-delivery"}]},
            "idempotency": {"key": "{{$context.headers.x-delivery}}"},
            "response": {"statusCode": 202, "headers": [{"name": "x-order", "value": "{{$context.body.order}}"}],
                "body": {"executionId": "{{$system.executionId}}"}}},
            "nodes": [{"key": "order", "type": "output", "config": {"value": "{{$context.body.order}}"}}]}),
        json!({"key": "short-lived", "trigger": {"type": "webhook", "hookId": "short",
            "request": {"headers": [{"key": "x-delivery"}]},
            "idempotency": {"key": "{{$context.headers.x-delivery}}", "ttlSeconds": 5},
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}}}),
        json!({"key": "charge", "sync": true, "trigger": {"type": "webhook", "hookId": "charge",
        "request": {"headers": [{"key": "x-delivery"}]},
        "idempotency": {"key": "charge-{{$context.headers.x-delivery}}"}},
        "nodes": [
            {"key": "slow", "type": "script", "config": {"content": "const t = Date.now(); while (Date.now() - t < 1500) {} return 1;", "timeout": 5000}},
            {"key": "done", "type": "response", "config": {"statusCode": 201,
                "headers": [{"name": "x-charge", "value": "{{$context.body.amount}}"}],
                "body": {"charged": "{{$context.body.amount}}", "at": "{{$system.now}}"}}}
        ]}),
    ]
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn deliver(url: &str, delivery: Option<&str>, body: Value) -> Answer {
    let mut request = client().post(url).json(&body);
    if let Some(id) = delivery {
        request = request.header("x-delivery", id);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn replayed(answer: &Answer) -> bool {
    answer
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

fn execution_id(answer: &Answer) -> String {
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    body["executionId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn concurrent_copies_of_a_delivery_start_one_run_and_get_one_answer_across_a_restart() {
    let mut server = Server::start(&workflows());
    let url = server.hook_url("orders");
    let copies = (0..24).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { deliver(&url, Some("dlv-1"), json!({"order": 7})).await })
    });
    let answers: Vec<Answer> = futures_util::future::join_all(copies)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // One copy ran; the others, sent while it was being accepted, are told to
    // retry (409), or, past its accept window, get its answer.
    let fresh: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == 202 && !replayed(a))
        .collect();
    assert_eq!(fresh.len(), 1);
    let first = execution_id(fresh[0]);
    for answer in &answers {
        assert_eq!(execution_id(answer), first, "{}", answer.body);
        match answer.status {
            202 => assert_eq!(answer.headers["x-order"], "7"),
            409 => assert_eq!(answer.headers["retry-after"], "1"),
            other => panic!("{other}: {}", answer.body),
        }
    }
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let copy = deliver(&url, Some("dlv-1"), json!({"order": 7})).await;
    assert_eq!((copy.status, replayed(&copy)), (202, true));
    assert_eq!(copy.headers["x-order"], "7");
    assert_eq!(execution_id(&copy), first);
    let run = server.wait_for_execution(&first, "resolved");
    assert_eq!(run["idempotencyKey"], "dlv-1");
    let data = server.data_dir();
    let (ok, shown, _) = hookflow(&[
        "executions",
        "show",
        &first,
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok && shown.contains("Key        dlv-1"), "{shown}");
    assert_eq!(server.executions(Some("orders")).len(), 1);

    // The key survives a restart.
    server.restart_with(&[]);
    let url = server.hook_url("orders");
    let again = deliver(&url, Some("dlv-1"), json!({"order": 7})).await;
    assert_eq!((again.status, replayed(&again)), (202, true));
    assert_eq!(execution_id(&again), first);
    // Another key, and no key at all, run.
    let other = deliver(&url, Some("dlv-2"), json!({"order": 8})).await;
    assert!(!replayed(&other));
    assert_ne!(execution_id(&other), first);
    for _ in 0..2 {
        let unkeyed = deliver(&url, None, json!({"order": 9})).await;
        assert_eq!((unkeyed.status, replayed(&unkeyed)), (202, false));
        server.wait_for_execution(&execution_id(&unkeyed), "resolved");
    }
    server.wait_for_execution(&execution_id(&other), "resolved");
    assert_eq!(server.executions(Some("orders")).len(), 4);
}

#[tokio::test]
async fn a_key_ends_with_its_ttl() {
    let server = Server::start(&workflows());
    let url = server.hook_url("short");
    let first = deliver(&url, Some("dlv-ttl"), json!({})).await;
    // The claim and the queued run are one write here: its answer stands at once.
    let copy = deliver(&url, Some("dlv-ttl"), json!({})).await;
    assert!(replayed(&copy), "{}", copy.body);
    assert_eq!(execution_id(&copy), execution_id(&first));
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let after = deliver(&url, Some("dlv-ttl"), json!({})).await;
    assert!(!replayed(&after));
    assert_ne!(execution_id(&after), execution_id(&first));
    server.wait_for_execution(&execution_id(&after), "resolved");
}

/// Keys past 512 bytes are claimed as `sha256:<hex>`; a short key spelling such a
/// hash is a key of its own, whichever comes first (it cannot pre-claim the long
/// key, nor get its answer).
#[tokio::test]
async fn a_short_key_spelling_a_long_keys_hash_is_a_key_of_its_own() {
    use sha2::{Digest, Sha256};
    let server = Server::start(&workflows());
    let url = server.hook_url("orders");
    let hashed = |long: &str| format!("sha256:{}", hex::encode(Sha256::digest(long)));
    let (long_first, short_first) = ("L".repeat(600), "M".repeat(600));
    let firsts = [
        deliver(&url, Some(&long_first), json!({"order": 1})).await,
        deliver(&url, Some(&hashed(&short_first)), json!({"order": 2})).await,
    ];
    // Past the accept window, a duplicate would be answered as its first was.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let seconds = [
        deliver(&url, Some(&hashed(&long_first)), json!({"order": 3})).await,
        deliver(&url, Some(&short_first), json!({"order": 4})).await,
    ];
    for (first, second) in firsts.iter().zip(&seconds) {
        assert_eq!(
            (first.status, replayed(first)),
            (202, false),
            "{}",
            first.body
        );
        assert_eq!(
            (second.status, replayed(second)),
            (202, false),
            "{}",
            second.body
        );
        assert_ne!(execution_id(first), execution_id(second));
    }
    // Each key still answers its own duplicates.
    let again = deliver(&url, Some(&long_first), json!({"order": 1})).await;
    assert_eq!((again.status, replayed(&again)), (202, true));
    assert_eq!(execution_id(&again), execution_id(&firsts[0]));
    let short = server.wait_for_execution(&execution_id(&seconds[0]), "resolved");
    assert_eq!(
        short["idempotencyKey"],
        format!("raw:{}", hashed(&long_first))
    );
    let long = server.wait_for_execution(&execution_id(&firsts[0]), "resolved");
    assert_eq!(long["idempotencyKey"], hashed(&long_first));
    for answer in [&firsts[1], &seconds[1]] {
        server.wait_for_execution(&execution_id(answer), "resolved");
    }
    assert_eq!(server.executions(Some("orders")).len(), 4);
}

#[tokio::test]
async fn a_sync_duplicate_waits_for_the_first_answer_then_gets_it_byte_for_byte() {
    let server = Server::start(&workflows());
    let url = server.hook_url("charge");
    let first = tokio::spawn({
        let url = url.clone();
        async move { deliver(&url, Some("c-1"), json!({"amount": 42})).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let during = deliver(&url, Some("c-1"), json!({"amount": 42})).await;
    assert_eq!(during.status, 409, "{}", during.body);
    assert_eq!(during.headers["retry-after"], "1");
    let first = first.await.unwrap();
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!replayed(&first));
    let again = deliver(&url, Some("c-1"), json!({"amount": 42})).await;
    assert!(replayed(&again));
    assert_eq!(again.status, first.status);
    assert_eq!(
        again.body, first.body,
        "the body, with its timestamp, is the first one's"
    );
    for name in ["content-type", "x-charge"] {
        assert_eq!(again.headers[name], first.headers[name], "{name}");
    }
    let runs = server.executions(Some("charge"));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["idempotencyKey"], "charge-c-1");
}
