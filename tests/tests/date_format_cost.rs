//! A `dateCalculation` format a sender writes costs the run a bounded amount (issue
//! 24, item 7): a 700,000-`[` format used to hold the run's thread for seconds per
//! request (the parser looked for a `]` after each `[`), so a sync run answered 200
//! long after its `timeoutMs`. Now the node fails at once with a message naming
//! the bound, and the answer comes within the timeout.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, job_trail};
use serde_json::{Value, json};

const TIMEOUT_MS: u64 = 3000;

fn formatting(key: &str) -> Value {
    json!({
        "key": key, "sync": true, "options": {"timeoutMs": TIMEOUT_MS},
        "trigger": {"type": "webhook", "hookId": key},
        "nodes": [
            {"key": "f", "type": "dateCalculation", "config": {"input": "2024-07-04T18:30:05Z",
                "steps": [{"function": "format", "arguments": {"format": "{{$context.body.format}}"}}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.f}}"}}
        ]
    })
}

#[tokio::test]
async fn a_sync_run_with_a_700000_bracket_format_answers_within_its_timeout() {
    let server = Server::start(&[formatting("fmt")]);
    let url = server.hook_url("fmt");

    let plain = client()
        .post(&url)
        .json(&json!({"format": "[on] YYYY-MM-DD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let body: Value = plain.json().await.unwrap();
    let execution = server
        .execution(body["executionId"].as_str().unwrap())
        .unwrap();
    assert_eq!(execution["jobs"][0]["result"], "on 2024-07-04");

    let hostile = json!({"format": "[".repeat(700_000)});
    let started = Instant::now();
    let response = client().post(&url).json(&hostile).send().await.unwrap();
    let took = started.elapsed();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(
        took < Duration::from_millis(TIMEOUT_MS + 1000),
        "answered {status} after {took:?}, past timeoutMs {TIMEOUT_MS}"
    );
    assert_eq!(status, 500, "the node fails, the run answers 500: {body}");
    assert_eq!(body["status"], "failed");
    let execution = server
        .execution(body["executionId"].as_str().unwrap())
        .unwrap();
    assert_eq!(job_trail(&execution), [("f", "failed")]);
    assert_eq!(
        execution["jobs"][0]["result"]["message"],
        "step 1 (format): format is 700000 characters long; dateCalculation reads at most 1000"
    );
}
