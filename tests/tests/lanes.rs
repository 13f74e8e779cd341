//! Keyed lanes through `hookflow serve` (issue 28): runs of one key start in the
//! order their deliveries were accepted and never overlap, runs of two keys do;
//! a lane of `concurrency: 3` runs exactly three at once; `options.concurrency`
//! bounds a workflow over all keys; a stale version is skipped before its side
//! effect; a kill -9 loses no accepted delivery of a lane. The runs call a
//! stand-in service that takes 300 ms, which sees what ran when.

use std::time::{Duration, Instant};

use hookflow_tests::{
    Server, assert_in_order_one_at_a_time, most_at_once, post, seq, timed_server, visits_of,
};
use serde_json::{Value, json};

const RUN: Duration = Duration::from_millis(300);

/// An async workflow whose run posts `{customer, seq, version}` to `url`.
fn calls(key: &str, url: &str, options: Value) -> Value {
    json!({"key": key, "options": options,
    "trigger": {"type": "webhook", "hookId": key,
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
    "nodes": [
        {"key": "call", "type": "request", "config": {"url": url, "method": "POST", "timeout": 10000,
            "data": {"customer": "{{$context.body.customer}}", "seq": "{{$context.body.seq}}",
                     "version": "{{$context.body.version}}"}}}
    ]})
}

fn lane(concurrency: u32) -> Value {
    json!({"lane": {"key": "{{$context.body.customer}}", "concurrency": concurrency}})
}

fn start(workflows: &[Value]) -> Server {
    Server::start_with(workflows, &["--allow-loopback-requests"])
}

/// Posts each body in turn (each accepted before the next is sent): the
/// execution ids, in accept order.
async fn send(server: &Server, hook: &str, bodies: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for body in bodies {
        let (status, answer) = post(server, hook, body.clone()).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["executionId"].as_str().unwrap().to_string());
    }
    ids
}

/// Waits until every run in `ids` ended, and returns them.
fn ended(server: &Server, workflow: &str, ids: &[String], within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let runs = server.executions(Some(workflow));
        let done: Vec<Value> = runs
            .into_iter()
            .filter(|e| ids.iter().any(|id| e["id"] == id.as_str()))
            .filter(|e| !matches!(e["status"].as_str(), Some("started") | None))
            .collect();
        if done.len() == ids.len() {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} runs ended",
            done.len(),
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn runs_of_a_key_start_in_accept_order_and_never_overlap_while_keys_run_side_by_side() {
    let (url, visits) = timed_server(RUN);
    let server = start(&[calls("ordered", &url, lane(1))]);
    let mut bodies = Vec::new();
    for n in 1..=30 {
        bodies.push(json!({"customer": "A", "seq": n}));
        bodies.push(json!({"customer": "B", "seq": n}));
    }
    let began = Instant::now();
    let ids = send(&server, "ordered", &bodies).await;
    let runs = ended(&server, "ordered", &ids, Duration::from_secs(60));
    let took = began.elapsed();
    assert!(runs.iter().all(|r| r["status"] == "resolved"), "{runs:?}");
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 60);
    for customer in ["A", "B"] {
        assert_in_order_one_at_a_time(&visits, customer, 30);
    }
    // Side by side: 60 runs of 300 ms one after another would take 18 s.
    assert_eq!(most_at_once(&visits), 2);
    let serial = RUN * 60;
    assert!(
        took < serial * 3 / 4,
        "took {took:?}; one after another: {serial:?}"
    );
}

#[tokio::test]
async fn a_lane_of_three_runs_exactly_three_at_once_in_accept_order() {
    let (url, visits) = timed_server(RUN);
    let server = start(&[calls("three", &url, lane(3))]);
    let bodies: Vec<Value> = (1..=12)
        .map(|n| json!({"customer": "A", "seq": n}))
        .collect();
    let ids = send(&server, "three", &bodies).await;
    ended(&server, "three", &ids, Duration::from_secs(30));
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 12);
    assert_eq!(most_at_once(&visits), 3);
    // Three start, and the next three only as those end: by arrival, in threes.
    let of = visits_of(&visits, "A");
    for (i, three) in of.chunks(3).enumerate() {
        let mut got: Vec<u64> = three.iter().map(seq).collect();
        got.sort_unstable();
        let first = 3 * i as u64 + 1;
        assert_eq!(got, [first, first + 1, first + 2]);
    }
}

#[tokio::test]
async fn a_workflow_runs_at_most_its_concurrency_over_all_keys() {
    let (url, visits) = timed_server(RUN);
    let options = json!({"lane": {"key": "{{$context.body.customer}}"}, "concurrency": 2});
    let server = start(&[calls("bounded", &url, options)]);
    let bodies: Vec<Value> = (1..=8)
        .map(|n| json!({"customer": format!("C{n}"), "seq": n}))
        .collect();
    let ids = send(&server, "bounded", &bodies).await;
    ended(&server, "bounded", &ids, Duration::from_secs(30));
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 8);
    assert_eq!(most_at_once(&visits), 2);
}

#[tokio::test]
async fn an_older_version_after_a_newer_one_is_skipped_before_its_side_effect() {
    let (url, visits) = timed_server(Duration::from_millis(10));
    let mut options = lane(1);
    options["staleGuard"] = json!({"version": "{{$context.body.version}}"});
    let server = start(&[calls("guarded", &url, options)]);
    let bodies = [
        json!({"customer": "A", "seq": 1, "version": 1002}),
        json!({"customer": "A", "seq": 2, "version": 1001}),
        // Another lane has versions of its own.
        json!({"customer": "B", "seq": 3, "version": 5}),
        json!({"customer": "A", "seq": 4, "version": "2026-12-05T10:00:00Z"}),
    ];
    let ids = send(&server, "guarded", &bodies).await;
    ended(&server, "guarded", &ids, Duration::from_secs(30));
    let skipped = server.wait_for_execution(&ids[1], "resolved");
    assert_eq!(
        skipped["output"],
        json!({"skipped": "stale", "version": 1001, "laneVersion": 1002})
    );
    assert_eq!(skipped["jobs"], json!([]));
    let visits = visits.lock().unwrap().clone();
    let mut seen: Vec<u64> = visits.iter().map(seq).collect();
    seen.sort_unstable();
    // 1001 never reached the service; a time is greater than 1002 (seconds).
    assert_eq!(seen, [1, 3, 4]);
    let metrics = hookflow_tests::metrics_text(&server).await;
    assert!(
        metrics.contains("hookflow_stale_skips_total{workflow=\"guarded\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_kill_9_mid_lane_loses_no_accepted_delivery_and_keeps_the_order() {
    let (url, visits) = timed_server(Duration::from_millis(200));
    let mut server = start(&[calls("durable", &url, lane(1))]);
    let bodies: Vec<Value> = (1..=20)
        .map(|n| json!({"customer": "A", "seq": n}))
        .collect();
    let ids = send(&server, "durable", &bodies).await;
    // Killed with runs done, one in flight and the rest waiting in the lane.
    let deadline = Instant::now() + Duration::from_secs(20);
    while visits.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "the lane never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.crash();
    server.restart_with(&["--allow-loopback-requests"]);
    let runs = ended(&server, "durable", &ids, Duration::from_secs(60));
    assert!(runs.iter().all(|r| r["status"] == "resolved"), "{runs:?}");
    // Every delivery reached the service; the one in flight at the kill may
    // have twice (at least once), and the order held throughout.
    let of = visits_of(&visits.lock().unwrap(), "A");
    let mut order: Vec<u64> = of.iter().map(seq).collect();
    order.dedup();
    assert_eq!(order, (1..=20).collect::<Vec<_>>());
    assert!(of.len() <= 21, "{} visits", of.len());
}
