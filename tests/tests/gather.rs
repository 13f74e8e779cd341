//! Debounce and batch through `hookflow serve` (issue 28): deliveries of one key
//! gather into one run, each answered at once and recorded as taken by that run.
//! Debounce: 20 deliveries in 3 s make one run at least `periodMs` after the
//! last, with a count of 20; a steady stream is cut by `maxWaitMs`. Batch: 250
//! deliveries make runs of 100, 100 and 50 in accept order. Duplicates (an
//! idempotency key) add nothing; a kill -9 loses no accepted delivery.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, timed_server};
use serde_json::{Value, json};

fn start(workflows: &[Value]) -> Server {
    Server::start_with(workflows, &["--allow-loopback-requests"])
}

/// An async workflow whose runs call `url` with what they gathered.
fn gathers(key: &str, url: &str, options: Value) -> Value {
    json!({"key": key, "options": options,
    "trigger": {"type": "webhook", "hookId": key,
        "idempotency": {"key": "{{$context.headers.x-delivery}}"},
        "request": {"headers": [{"key": "x-delivery"}]},
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
    "nodes": [
        {"key": "call", "type": "request", "config": {"url": url, "method": "POST", "timeout": 10000,
            "data": {"debounce": "{{$context.debounce}}", "size": "{{$context.batch.length}}",
                     "seq": "{{$context.body.seq}}"}}}
    ]})
}

/// Posts a delivery (with `x-delivery` as its idempotency key): its execution id.
async fn send(server: &Server, hook: &str, body: Value, delivery: &str) -> String {
    let response = client()
        .post(server.hook_url(hook))
        .header("x-delivery", delivery)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    answer["executionId"].as_str().unwrap().to_string()
}

/// The runs gathered from `members` once every member is taken and every run
/// ended, each with its members, in the order the runs were made.
fn gathered_runs(
    server: &Server,
    members: &[String],
    kind: &str,
    within: Duration,
) -> Vec<(Value, Vec<Value>)> {
    let deadline = Instant::now() + within;
    loop {
        let taken: Vec<Value> = members
            .iter()
            .filter_map(|id| server.execution(id))
            .filter(|m| m["status"] == "resolved" && m["output"][kind].is_object())
            .collect();
        if taken.len() == members.len() {
            let mut runs: Vec<String> = taken
                .iter()
                .map(|m| m["output"][kind]["into"].as_str().unwrap().to_string())
                .collect();
            runs.sort();
            runs.dedup();
            let ran: Vec<Value> = runs.iter().filter_map(|id| server.execution(id)).collect();
            if ran.len() == runs.len() && ran.iter().all(|r| r["status"] == "resolved") {
                return ran
                    .into_iter()
                    .map(|run| {
                        let of = taken
                            .iter()
                            .filter(|m| m["output"][kind]["into"] == run["id"])
                            .cloned()
                            .collect();
                        (run, of)
                    })
                    .collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} deliveries taken",
            taken.len(),
            members.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test]
async fn twenty_deliveries_in_three_seconds_make_one_run_after_the_last() {
    let (url, visits) = timed_server(Duration::from_millis(1));
    let options =
        json!({"debounce": {"key": "{{$context.body.doc}}", "periodMs": 2000, "maxWaitMs": 30000}});
    let server = start(&[gathers("debounced", &url, options)]);
    let mut members = Vec::new();
    for n in 1..=20 {
        let id = send(
            &server,
            "debounced",
            json!({"doc": "d1", "seq": n}),
            &format!("d-{n}"),
        )
        .await;
        members.push(id);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let last_sent = Instant::now();
    // A duplicate of the fifth adds nothing: it gets the fifth's answer.
    let again = send(&server, "debounced", json!({"doc": "d1", "seq": 5}), "d-5").await;
    assert_eq!(again, members[4]);
    let runs = gathered_runs(&server, &members, "debounced", Duration::from_secs(30));
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (run, of) = &runs[0];
    assert_eq!(of.len(), 20);
    assert_eq!(run["context"]["debounce"]["count"], 20);
    // The last delivery's context, and when the first and the last came.
    assert_eq!(run["context"]["body"]["seq"], 20);
    let first = server.execution(&members[0]).unwrap();
    assert_eq!(run["context"]["debounce"]["firstAt"], first["createdAt"]);
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 1);
    assert!(
        visits[0].start >= last_sent + Duration::from_millis(2000) - Duration::from_millis(160),
        "ran {:?} after the last delivery",
        visits[0].start.duration_since(last_sent)
    );
    // Each delivery says which run took it.
    for (position, member) in of.iter().enumerate() {
        assert_eq!(member["output"]["debounced"]["into"], run["id"]);
        assert_eq!(member["output"]["debounced"]["position"], position + 1);
    }
}

#[tokio::test]
async fn a_steady_stream_is_cut_by_max_wait() {
    let (url, _visits) = timed_server(Duration::from_millis(1));
    let options =
        json!({"debounce": {"key": "{{$context.body.doc}}", "periodMs": 5000, "maxWaitMs": 30000}});
    let server = start(&[gathers("steady", &url, options)]);
    let mut members = Vec::new();
    let began = Instant::now();
    for n in 1..=40 {
        members.push(
            send(
                &server,
                "steady",
                json!({"doc": "d1", "seq": n}),
                &format!("s-{n}"),
            )
            .await,
        );
        let next = began + Duration::from_secs(n);
        tokio::time::sleep_until(next.into()).await;
    }
    let runs = gathered_runs(&server, &members, "debounced", Duration::from_secs(30));
    assert_eq!(runs.len(), 2, "{runs:?}");
    let counts: Vec<usize> = runs.iter().map(|(_, of)| of.len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 40);
    // The first was cut at 30 s of its first delivery: about 30 deliveries.
    assert!((29..=32).contains(&counts[0]), "{counts:?}");
}

#[tokio::test]
async fn two_hundred_fifty_deliveries_make_batches_of_100_100_and_50_in_order() {
    let (url, visits) = timed_server(Duration::from_millis(1));
    let options =
        json!({"batch": {"key": "{{$context.body.account}}", "maxSize": 100, "timeoutMs": 3000}});
    let server = start(&[gathers("batched", &url, options)]);
    let mut members = Vec::new();
    for n in 1..=250 {
        members.push(
            send(
                &server,
                "batched",
                json!({"account": "a1", "seq": n}),
                &format!("b-{n}"),
            )
            .await,
        );
        if n % 50 == 0 {
            // Duplicates add nothing to a batch.
            send(
                &server,
                "batched",
                json!({"account": "a1", "seq": n}),
                &format!("b-{n}"),
            )
            .await;
        }
    }
    let runs = gathered_runs(&server, &members, "batched", Duration::from_secs(60));
    let sizes: Vec<usize> = runs
        .iter()
        .map(|(run, _)| run["context"]["batch"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let mut next = 1;
    for (run, _) in &runs {
        for context in run["context"]["batch"].as_array().unwrap() {
            assert_eq!(context["body"]["seq"], next, "out of accept order");
            next += 1;
        }
    }
    assert_eq!(visits.lock().unwrap().len(), 3);
    let metrics = hookflow_tests::metrics_text(&server).await;
    assert!(
        metrics.contains(
            "hookflow_gathered_deliveries_total{workflow=\"batched\",kind=\"batched\"} 250"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_kill_9_while_deliveries_gather_loses_none() {
    let (url, _visits) = timed_server(Duration::from_millis(1));
    let options =
        json!({"batch": {"key": "{{$context.body.account}}", "maxSize": 40, "timeoutMs": 1500}});
    let mut server = start(&[gathers("kept", &url, options)]);
    let mut members = Vec::new();
    for n in 1..=100 {
        members.push(
            send(
                &server,
                "kept",
                json!({"account": "a1", "seq": n}),
                &format!("k-{n}"),
            )
            .await,
        );
    }
    server.crash();
    server.restart_with(&["--allow-loopback-requests"]);
    let runs = gathered_runs(&server, &members, "batched", Duration::from_secs(60));
    let mut seen: Vec<u64> = runs
        .iter()
        .flat_map(|(run, _)| run["context"]["batch"].as_array().unwrap().clone())
        .map(|c| c["body"]["seq"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=100).collect::<Vec<_>>());
}
