//! No request can crash `hookflow serve`: the reproduction of issue 9 (a
//! `dateCalculation` adding 1e15 days used to abort the server, and the queued
//! run killed it again at every start), and a node that panics on purpose (the
//! `test-panic` type of test builds), which must cost its own execution only.

use futures_util::future::join_all;
use hookflow_tests::{Server, client, job_trail};
use serde_json::{Value, json};

fn add_days(key: &str, sync: bool) -> Value {
    let mut flow = json!({
        "key": key, "sync": sync,
        "trigger": {"type": "webhook", "hookId": key},
        "nodes": [
            {"key": "due", "type": "dateCalculation", "config": {
                "input": "2024-01-01T00:00:00Z",
                "steps": [{"function": "add", "arguments": {"number": "{{$context.body.n}}", "unit": "day"}}]}},
            {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.due}}"}}
        ]
    });
    if !sync {
        flow["trigger"]["response"] =
            json!({"statusCode": 202, "body": {"id": "{{$system.executionId}}"}});
    }
    flow
}

fn panicking(key: &str, sync: bool) -> Value {
    let mut flow = json!({
        "key": key, "sync": sync,
        "trigger": {"type": "webhook", "hookId": key},
        "nodes": [
            {"key": "boom", "type": "test-panic", "config": {"when": "{{$context.body.panic}}"}},
            {"key": "out", "type": "output", "config": {"value": "{{$context.body.n}}"}}
        ]
    });
    if !sync {
        flow["trigger"]["response"] =
            json!({"statusCode": 202, "body": {"id": "{{$system.executionId}}"}});
    }
    flow
}

async fn post(server: &Server, hook: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(server.hook_url(hook))
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

fn job_message(execution: &Value, node: &str) -> String {
    execution["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["nodeKey"] == node)
        .and_then(|j| j["result"]["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn adding_1e15_days_fails_the_node_sync_async_and_after_a_restart() {
    let mut server = Server::start(&[add_days("days-sync", true), add_days("days-async", false)]);

    let (status, body) = post(&server, "days-sync", json!({"n": 1e15})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["status"], "failed");
    let failed = server
        .execution(body["executionId"].as_str().unwrap())
        .unwrap();
    assert_eq!(job_trail(&failed), [("due", "failed")]);
    assert!(
        job_message(&failed, "due").contains("out of range"),
        "{failed}"
    );
    // The server is still there, and right.
    let (status, body) = post(&server, "days-sync", json!({"n": 1})).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("resolved")),
        "{body}"
    );

    let (status, accepted) = post(&server, "days-async", json!({"n": 1e15})).await;
    assert_eq!(status, 202);
    let id = accepted["id"].as_str().unwrap().to_string();
    let failed = server.wait_for_execution(&id, "failed");
    assert_eq!(job_trail(&failed), [("due", "failed")]);

    // A restart does not run it again, and the server comes up and answers.
    server.restart_with(&[]);
    let (status, _) = post(&server, "days-sync", json!({"n": 2})).await;
    assert_eq!(status, 200);
    let after = server.execution(&id).unwrap();
    assert_eq!(after["status"], "failed");
    assert_eq!(after["jobs"], failed["jobs"], "the run was not run again");
}

#[tokio::test]
async fn a_panicking_node_fails_only_its_own_execution() {
    let mut server = Server::start(&[panicking("boom-sync", true), panicking("boom-async", false)]);

    // One panicking request among others in flight at the same time.
    let calls = (0..8).map(|i| post(&server, "boom-sync", json!({"panic": i == 3, "n": i})));
    let answers = join_all(calls).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        if i == 3 {
            assert_eq!(*status, 500, "{body}");
            assert_eq!(body["status"], "error");
            let id = body["executionId"].as_str().expect("the execution id");
            let record = server.execution(id).unwrap();
            assert_eq!(record["status"], "error");
            assert_eq!(job_trail(&record), [("boom", "error")]);
            let message = job_message(&record, "boom");
            assert!(message.contains("internal error (a bug)"), "{message}");
            assert!(message.contains("panicked on purpose"), "{message}");
        } else {
            assert_eq!(
                (*status, &body["status"]),
                (200, &json!("resolved")),
                "{body}"
            );
        }
    }

    // Async: the panicking run is recorded as error and acknowledged; its
    // neighbours resolve.
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, accepted) =
            post(&server, "boom-async", json!({"panic": i == 1, "n": i})).await;
        assert_eq!(status, 202);
        ids.push(accepted["id"].as_str().unwrap().to_string());
    }
    let broken = server.wait_for_execution(&ids[1], "error");
    assert_eq!(job_trail(&broken), [("boom", "error")]);
    for id in [&ids[0], &ids[2]] {
        let done = server.wait_for_execution(id, "resolved");
        assert_eq!(
            job_trail(&done),
            [("boom", "resolved"), ("out", "resolved")]
        );
    }

    // Nothing comes back at the next start: no crash loop, no second run.
    server.restart_with(&[]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let again = server.execution(&ids[1]).unwrap();
    assert_eq!(again["jobs"], broken["jobs"]);
    let (status, _) = post(&server, "boom-sync", json!({"panic": false})).await;
    assert_eq!(status, 200);
}
