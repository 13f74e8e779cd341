//! A caller may choose how long a run waits (a delay read from the request), but
//! not past its workflow's bounds: `options.maxDelaySeconds` and
//! `options.maxPausedRuns` (issue 24 item 13), through a real `hookflow serve`.

use hookflow_tests::{Server, client, job_trail};
use serde_json::{Value, json};

fn reminder() -> Value {
    json!({
        "key": "bounded", "sync": false,
        "options": {"maxDelaySeconds": 60, "maxPausedRuns": 2},
        "trigger": {"type": "webhook", "hookId": "bounded",
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [
            {"key": "wait", "type": "delay", "config": {"duration": "{{$context.body.seconds}}", "unit": 1000}},
            {"key": "done", "type": "output", "config": {"value": "{{$context.body.seconds}}"}}
        ]
    })
}

async fn remind(server: &Server, seconds: u64) -> String {
    let r = client()
        .post(server.hook_url("bounded"))
        .json(&json!({"seconds": seconds}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    body["executionId"].as_str().unwrap().to_string()
}

fn wait_message(execution: &Value) -> &str {
    execution["jobs"][0]["result"]["message"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn a_delay_past_max_delay_seconds_fails_its_node() {
    let server = Server::start(&[reminder()]);
    let id = remind(&server, 3600).await;
    let failed = server.wait_for_execution(&id, "failed");
    assert_eq!(job_trail(&failed), [("wait", "failed")]);
    let message = wait_message(&failed);
    assert!(
        message.contains("longer than this workflow's options.maxDelaySeconds (60 s)"),
        "{failed}"
    );
    assert!(failed.get("paused").is_none(), "nothing is left waiting");

    // Within the bound it waits as before.
    let id = remind(&server, 30).await;
    wait_until_paused(&server, &id);
}

#[tokio::test]
async fn a_run_past_max_paused_runs_fails_instead_of_waiting() {
    let server = Server::start(&[reminder()]);
    for _ in 0..2 {
        let id = remind(&server, 50).await;
        wait_until_paused(&server, &id);
    }
    let id = remind(&server, 50).await;
    let failed = server.wait_for_execution(&id, "failed");
    let message = wait_message(&failed);
    assert!(
        message.contains("2 paused runs, its options.maxPausedRuns (2)"),
        "{failed}"
    );
    assert_eq!(failed["output"]["error"], message);
}

fn wait_until_paused(server: &Server, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server
        .execution(id)
        .is_none_or(|e| !e["paused"].is_object())
    {
        assert!(std::time::Instant::now() < deadline, "{id} never paused");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A subflow child's pause is bounded by the child's own workflow, as a delivery's
/// run is: a caller cannot park a child past its bounds.
#[tokio::test]
async fn a_subflow_child_is_held_to_its_own_workflows_bounds() {
    let caller = json!({"key": "caller", "trigger": {"type": "webhook", "hookId": "caller",
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [{"key": "call", "type": "subflow",
            "config": {"workflow": "bounded", "context": {"body": {"seconds": "{{$context.body.seconds}}"}}}}]});
    let server = Server::start(&[reminder(), caller]);
    let r = client()
        .post(server.hook_url("caller"))
        .json(&json!({"seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let child = loop {
        let found = server
            .executions(Some("bounded"))
            .into_iter()
            .find(|e| e["status"] == "failed");
        if let Some(child) = found {
            break child;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never failed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        wait_message(&child).contains("options.maxDelaySeconds (60 s)"),
        "{child}"
    );
    assert!(child.get("paused").is_none(), "nothing is left waiting");
}
