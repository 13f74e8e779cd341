//! A run whose begin coincided with a process death is quarantined after 2
//! begins (issue 24): through a real `hookflow serve`, killed twice mid-run.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, post};
use serde_json::json;

/// A run whose begin coincided with a process death twice is quarantined: the
/// third start records it `error` instead of beginning it a third time (a run
/// that takes its process down would take it down again at every start).
#[tokio::test]
async fn a_run_cut_off_by_two_process_deaths_is_quarantined() {
    // A service that never answers in time: the run is in flight when the process dies.
    let hang = hookflow_tests::stub_server(|_, _| {
        std::thread::sleep(Duration::from_secs(600));
        (200, String::new(), "{}".into())
    });
    let flow = json!({
        "key": "hangs", "sync": false,
        "trigger": {"type": "webhook", "hookId": "hangs",
            "response": {"statusCode": 202, "body": {"id": "{{$system.executionId}}"}}},
        "nodes": [{"key": "call", "type": "request", "config": {"url": hang, "method": "POST", "timeout": 300000}}]
    });
    let loopback = ["--allow-loopback-requests"];
    let mut server = Server::start_with(&[flow], &loopback);
    let (status, accepted) = post(&server, "hangs", json!({})).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    // Begun once (a first delivery's run is recorded `started` a second into
    // it), then the process dies; begun a second time, and it dies again. A run
    // still `queued` (never started) does not count.
    for begins in [1, 2] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = server.execution(&id);
            let attempts = found
                .as_ref()
                .filter(|e| e["status"] == "started")
                .map(|e| e["attempts"].as_u64().unwrap_or(1));
            if attempts == Some(begins) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never begun {begins} times: {found:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server.crash();
        server.restart_with(&loopback);
    }
    let quarantined = server.wait_for_execution(&id, "error");
    let error = quarantined["output"]["error"].as_str().unwrap();
    assert!(error.contains("begun 2 times"), "{quarantined}");
    // And the server goes on answering.
    let (status, _) = post(&server, "hangs", json!({})).await;
    assert_eq!(status, 202);
}
