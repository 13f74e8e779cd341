//! Executions that pause and resume in a real `hookflow serve`: a `delay` waits on a
//! durable timer, nothing of the run stays in memory, and a restart (even a crash)
//! during the wait loses nothing.

use std::time::{Duration, Instant};

use chrono::DateTime;
use hookflow_tests::{Server, client, hookflow, job_trail};
use serde_json::{Value, json};

/// Waits `seconds` from the request body, then records what it saw before the wait.
fn reminder() -> Value {
    json!({
        "key": "reminder", "sync": false,
        "trigger": {"type": "webhook", "hookId": "remind",
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [
            {"key": "first", "type": "output", "config": {"value": "{{$context.body.name}}"}},
            {"key": "wait", "type": "delay", "config": {"duration": "{{$context.body.seconds}}", "unit": 1000}},
            {"key": "done", "type": "output", "config": {"value": {"name": "{{$jobsMapByNodeKey.first}}", "waited": "{{$context.body.seconds}}"}}}
        ]
    })
}

async fn remind(server: &Server, name: &str, seconds: f64) -> String {
    let r = client()
        .post(server.hook_url("remind"))
        .json(&json!({"name": name, "seconds": seconds}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    body["executionId"].as_str().unwrap().to_string()
}

/// Polls until the execution is recorded as paused, and returns it.
fn wait_until_paused(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = server.execution(id);
        if let Some(e) = found.as_ref().filter(|e| e["paused"].is_object()) {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "{id} never paused: {found:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn millis_between(from: &Value, to: &Value) -> i64 {
    let parse = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (parse(to) - parse(from)).num_milliseconds()
}

fn assert_resolved_after_its_wait(execution: &Value, name: &str, seconds: f64) {
    assert_eq!(execution["status"], "resolved", "{execution}");
    assert!(execution.get("paused").is_none());
    assert_eq!(
        execution["output"],
        json!({"name": name, "waited": seconds})
    );
    assert_eq!(
        job_trail(execution),
        [
            ("first", "resolved"),
            ("wait", "resolved"),
            ("done", "resolved")
        ],
        "each job recorded once"
    );
    let waited = millis_between(
        &execution["jobs"][1]["startedAt"],
        &execution["jobs"][1]["finishedAt"],
    );
    assert!(
        waited >= (seconds * 1000.0) as i64 - 5,
        "the delay ended after {waited} ms"
    );
}

#[tokio::test]
async fn a_delayed_run_pauses_then_resolves_after_its_delay() {
    let server = Server::start(&[reminder()]);
    let id = remind(&server, "ada", 1.5).await;

    let paused = wait_until_paused(&server, &id);
    assert_eq!(paused["status"], "started");
    let waits = &paused["paused"]["waits"];
    assert_eq!(waits[0]["kind"], "until");
    assert_eq!(waits[0]["nodeKey"], "wait");
    assert_eq!(paused["paused"]["wakeAt"], waits[0]["until"]);
    assert_eq!(paused["jobs"][1]["status"], "pending");
    let wait_ms = millis_between(&paused["jobs"][1]["startedAt"], &waits[0]["until"]);
    assert!(
        (1495..=2500).contains(&wait_ms),
        "waits until {wait_ms} ms after the node started"
    );

    // What a person reads: paused, what it waits for and until when.
    let data = server.data_dir();
    let (ok, text, err) = hookflow(&["executions", "show", &id, "--data", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(text.contains("Status     paused"), "{text}");
    let until = waits[0]["until"].as_str().unwrap();
    assert!(
        text.contains(&format!("Waiting    delay \"wait\" until {until}")),
        "{text}"
    );
    let (ok, list, _) = hookflow(&["executions", "list", "--data", data.to_str().unwrap()]);
    assert!(ok && list.contains("paused"), "{list}");

    let done = server.wait_for_execution(&id, "resolved");
    assert_resolved_after_its_wait(&done, "ada", 1.5);
}

#[tokio::test]
async fn delays_survive_a_crash_and_a_restart() {
    let mut server = Server::start(&[reminder()]);
    // One wait comes due while the server is down, one after it is back.
    let short = remind(&server, "short", 1.0).await;
    let long = remind(&server, "long", 4.0).await;
    wait_until_paused(&server, &short);
    wait_until_paused(&server, &long);
    server.crash();
    std::thread::sleep(Duration::from_millis(1500));

    server.restart_with(&[]);
    let banner = server.banner.join("\n");
    assert!(banner.contains("resuming 1 queued run(s)"), "{banner}");
    assert!(
        banner.contains("1 paused execution(s) wait for a delay"),
        "{banner}"
    );
    let restarted = Instant::now();

    // The wait that came due while down runs right after the start.
    let done = server.wait_for_execution(&short, "resolved");
    assert!(restarted.elapsed() < Duration::from_secs(3));
    assert_resolved_after_its_wait(&done, "short", 1.0);

    // The other is still paused, then resolves when its time comes, not before.
    assert!(server.execution(&long).unwrap()["paused"].is_object());
    let done = server.wait_for_execution(&long, "resolved");
    assert_resolved_after_its_wait(&done, "long", 4.0);
    assert_eq!(server.executions(Some("reminder")).len(), 2);
}

#[tokio::test]
async fn a_graceful_stop_during_a_delay_keeps_the_pause() {
    let mut server = Server::start(&[reminder()]);
    let id = remind(&server, "grace", 2.0).await;
    wait_until_paused(&server, &id);
    // A stop does not wait for the delay: nothing runs while it waits.
    let stopping = Instant::now();
    server.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        stopping.elapsed()
    );
    server.restart_with(&[]);
    let done = server.wait_for_execution(&id, "resolved");
    assert_resolved_after_its_wait(&done, "grace", 2.0);
}
