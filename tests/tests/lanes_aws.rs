//! Keyed lanes through the Lambda handlers on moto (issue 28): the webhook sends a
//! lane's runs to the FIFO lane queue, grouped by lane; pollers standing in for
//! Lambda's SQS event source hand batches to the worker handler and delete what
//! it did not return, as Lambda does. Runs of one key start in accept order and
//! never overlap, two keys run side by side; a stale version is skipped before its
//! side effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookflow::aws::SignedClient;
use hookflow::ports::aws;
use hookflow::wiring::{App, AwsEnv, Settings};
use hookflow_tests::on_moto::{self, Examples, body_of, event_to};
use hookflow_tests::{
    Visit, assert_in_order_one_at_a_time, most_at_once, moto_endpoint, seq, timed_server,
};
use serde_json::{Value, json};

const RUN: Duration = Duration::from_millis(300);

struct Stack {
    examples: Examples,
    app: Arc<App>,
    /// The handlers' own client, whose calls are counted.
    app_client: Arc<SignedClient>,
    /// The test's client: what stands in for Lambda's pollers.
    sqs: Arc<SignedClient>,
}

async fn stack() -> Stack {
    let examples = on_moto::deploy_examples();
    moto_endpoint();
    let config = aws::load_config().await;
    let client = aws::client(&config);
    let mut settings = Settings::default();
    settings.nodes.network.allow_loopback = true;
    let env = AwsEnv {
        table: examples.table.clone(),
        queue_url: examples.queue_url.clone(),
        lane_queue_url: Some(examples.lane_queue_url.clone()),
        retention: Some(Duration::from_secs(86_400)),
        bucket: Some(examples.bucket.clone()),
        max_message_bytes: 1 << 20,
        settings,
    };
    Stack {
        app: Arc::new(env.app(Arc::clone(&client), Arc::clone(&client))),
        app_client: client,
        sqs: aws::client(&config),
        examples,
    }
}

fn calls(key: &str, url: &str, options: Value) -> Value {
    json!({"key": key, "options": options,
    "trigger": {"type": "webhook", "hookId": key,
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
    "nodes": [
        {"key": "call", "type": "request", "config": {"url": url, "method": "POST", "timeout": 10000,
            "data": {"customer": "{{$context.body.customer}}", "seq": "{{$context.body.seq}}"}}}
    ]})
}

impl Stack {
    async fn send(&self, hook: &str, bodies: &[Value]) -> Vec<String> {
        let mut ids = Vec::new();
        for body in bodies {
            let headers = json!({"content-type": "application/json"});
            let event = event_to(hook, headers, &body.to_string(), "203.0.113.9");
            let response = hookflow_webhook::handle(&self.app, event).await.unwrap();
            let answer = body_of(&response);
            assert_eq!(response.status(), 202, "{answer}");
            ids.push(answer["executionId"].as_str().unwrap().to_string());
        }
        ids
    }

    /// Polls the lane queue with `pollers` at once, as Lambda's event source
    /// does, until every run in `ids` ended; what each batch returned comes
    /// back after its wait.
    async fn drain(
        &self,
        workflow: &str,
        pollers: usize,
        ids: &[String],
        within: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let pollers = self.pollers(&self.examples.lane_queue_url, pollers);
        let runs = loop {
            let listed = on_moto::executions_on(&self.examples.table, workflow);
            let runs: Vec<Value> = ids
                .iter()
                .filter_map(|id| listed.iter().find(|r| r["id"] == id.as_str()).cloned())
                .collect();
            if runs.len() == ids.len()
                && runs
                    .iter()
                    .all(|r| !matches!(r["status"].as_str(), Some("started") | None))
            {
                break ids.iter().map(|id| self.show(id)).collect::<Vec<_>>();
            }
            assert!(Instant::now() < deadline, "runs did not end: {runs:?}");
            tokio::time::sleep(Duration::from_millis(1000)).await;
        };
        pollers.stop().await;
        runs
    }

    fn show(&self, id: &str) -> Value {
        let (ok, out, _) = hookflow_tests::hookflow(&[
            "executions",
            "show",
            id,
            "--json",
            "--table",
            &self.examples.table,
        ]);
        if ok {
            serde_json::from_str(&out).unwrap()
        } else {
            Value::Null
        }
    }
}

/// Pollers of one queue, running until stopped.
struct Pollers {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pollers {
    /// Stops at once, wherever they are (a handler mid-batch included).
    fn cut_off(self) {
        for task in self.tasks {
            task.abort();
        }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

impl Stack {
    /// `n` pollers of the queue at `url`, as Lambda's event source runs them.
    fn pollers(&self, url: &str, n: usize) -> Pollers {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..n)
            .map(|_| {
                let (app, sqs) = (Arc::clone(&self.app), Arc::clone(&self.sqs));
                let (stop, url) = (Arc::clone(&stop), url.to_string());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        poll_once(&app, &sqs, &url).await;
                    }
                })
            })
            .collect();
        Pollers { stop, tasks }
    }
}

/// One receive of the lane queue handed to the worker Lambda's handler, with
/// what Lambda's event source puts in a record of a FIFO queue.
async fn poll_once(app: &App, sqs: &SignedClient, url: &str) {
    // Short polls: moto's long poll waits its whole time unless it has all ten
    // (a FIFO group it hands out one at a time), which Lambda's pollers do not.
    let input = json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0,
        "MessageSystemAttributeNames": ["All"]});
    let out = sqs.sqs("ReceiveMessage", &input).await.unwrap();
    let messages = out["Messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"], "attributes": m["Attributes"], "messageAttributes": {},
            "eventSource": "aws:sqs"})
        })
        .collect();
    let event = serde_json::from_value(json!({"Records": records})).unwrap();
    let response = hookflow_worker::handle(app, event).await;
    let returned: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    for m in &messages {
        if !returned.iter().any(|id| m["MessageId"] == id.as_str()) {
            let delete = json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]});
            sqs.sqs("DeleteMessage", &delete).await.unwrap();
        }
    }
}

#[tokio::test]
async fn on_aws_a_lane_is_a_fifo_group_in_accept_order_and_keys_run_side_by_side() {
    let (url, visits) = timed_server(RUN);
    let stack = stack().await;
    let options = json!({"lane": {"key": "{{$context.body.customer}}"}});
    on_moto::deploy_to_table(&stack.examples.table, &calls("ordered", &url, options));
    let mut bodies = Vec::new();
    for n in 1..=30 {
        bodies.push(json!({"customer": "A", "seq": n}));
        bodies.push(json!({"customer": "B", "seq": n}));
    }
    let ids = stack.send("ordered", &bodies).await;
    let runs = stack
        .drain("ordered", 4, &ids, Duration::from_secs(90))
        .await;
    assert!(runs.iter().all(|r| r["status"] == "resolved"), "{runs:?}");
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 60);
    for customer in ["A", "B"] {
        assert_in_order_one_at_a_time(&visits, customer, 30);
    }
    assert_eq!(most_at_once(&visits), 2);
    // Side by side: most of A's runs had one of B's running beside them. (Not
    // timed against one after another: moto's writes, in Python, take the rest.)
    let beside = |a: &Visit| {
        visits
            .iter()
            .any(|b| b.body["customer"] == "B" && b.start < a.end && a.start < b.end)
    };
    let overlapped = visits
        .iter()
        .filter(|v| v.body["customer"] == "A" && beside(v))
        .count();
    assert!(
        overlapped >= 25,
        "{overlapped} of A's 30 runs had B's beside them"
    );
}

#[tokio::test]
async fn on_aws_an_older_version_after_a_newer_one_is_skipped() {
    let (url, visits) = timed_server(Duration::from_millis(10));
    let stack = stack().await;
    let options = json!({"lane": {"key": "{{$context.body.customer}}"},
        "staleGuard": {"version": "{{$context.body.version}}"}});
    let mut definition = calls("guarded", &url, options);
    definition["nodes"][0]["config"]["data"]["version"] = json!("{{$context.body.version}}");
    on_moto::deploy_to_table(&stack.examples.table, &definition);
    let bodies = [
        json!({"customer": "A", "seq": 1, "version": "2026-12-05T10:00:00.5Z"}),
        json!({"customer": "A", "seq": 2, "version": "2026-12-05T10:00:00Z"}),
        json!({"customer": "A", "seq": 3, "version": 1_800_000_000}),
    ];
    let ids = stack.send("guarded", &bodies).await;
    let runs = stack
        .drain("guarded", 2, &ids, Duration::from_secs(60))
        .await;
    assert_eq!(
        runs[1]["output"],
        json!({"skipped": "stale", "version": "2026-12-05T10:00:00Z", "laneVersion": "2026-12-05T10:00:00.5Z"})
    );
    assert_eq!(runs[1]["status"], "resolved");
    let mut seen: Vec<u64> = visits.lock().unwrap().iter().map(seq).collect();
    seen.sort_unstable();
    // 1,800,000,000 s is in 2027: newer than the lane's time.
    assert_eq!(seen, [1, 3]);
}

impl Stack {
    /// Four pollers of the run queue (standard), ten messages a batch, until the
    /// service saw `calls`: all runs are handed out at once, and places hold
    /// them to their bound.
    async fn poll_run_queue(&self, visits: &std::sync::Mutex<Vec<Visit>>, calls: usize) {
        let pollers = self.pollers(&self.examples.queue_url, 4);
        let deadline = Instant::now() + Duration::from_secs(90);
        while visits.lock().unwrap().len() < calls {
            let seen = visits.lock().unwrap().len();
            assert!(Instant::now() < deadline, "{seen} of {calls} runs called");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pollers.stop().await;
    }
}

#[tokio::test]
async fn on_aws_a_workflow_runs_at_most_its_concurrency_over_all_keys() {
    let (url, visits) = timed_server(RUN);
    let stack = stack().await;
    let options = json!({"concurrency": 2});
    on_moto::deploy_to_table(&stack.examples.table, &calls("bounded", &url, options));
    let bodies: Vec<Value> = (1..=8)
        .map(|n| json!({"customer": format!("C{n}"), "seq": n}))
        .collect();
    let ids = stack.send("bounded", &bodies).await;
    stack.poll_run_queue(&visits, 8).await;
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 8);
    assert_eq!(most_at_once(&visits), 2);
    // Every place was freed: the workflow's item holds none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let item = stack
        .sqs
        .dynamodb(
            "GetItem",
            &json!({"TableName": stack.examples.table,
            "Key": {"pk": {"S": "GATE#bounded"}, "sk": {"S": "PLACES"}}, "ConsistentRead": true}),
        )
        .await
        .unwrap();
    assert_eq!(item["Item"]["holders"], json!({"M": {}}), "{item}");
    for id in &ids {
        assert_eq!(stack.show(id)["status"], "resolved");
    }
}

#[tokio::test]
async fn on_aws_a_lane_of_three_runs_exactly_three_at_once() {
    let (url, visits) = timed_server(RUN);
    let stack = stack().await;
    let options = json!({"lane": {"key": "{{$context.body.customer}}", "concurrency": 3}});
    on_moto::deploy_to_table(&stack.examples.table, &calls("three", &url, options));
    let bodies: Vec<Value> = (1..=12)
        .map(|n| json!({"customer": "A", "seq": n}))
        .collect();
    let ids = stack.send("three", &bodies).await;
    stack.poll_run_queue(&visits, 12).await;
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), 12);
    assert_eq!(most_at_once(&visits), 3);
    for id in &ids {
        assert_eq!(stack.show(id)["status"], "resolved");
    }
}

/// An async workflow that debounces or batches, its runs calling `url`.
fn gathers(key: &str, url: &str, options: Value) -> Value {
    let mut definition = calls(key, url, options);
    definition["trigger"]["idempotency"] = json!({"key": "{{$context.body.delivery}}"});
    definition
}

impl Stack {
    /// Pollers of both queues: members ride the lane queue; checks and the
    /// gathered runs, the run queue.
    fn worker_pollers(&self) -> [Pollers; 2] {
        [
            self.pollers(&self.examples.lane_queue_url, 2),
            self.pollers(&self.examples.queue_url, 2),
        ]
    }

    /// Pollers of both queues until every member in `ids` was taken and its run
    /// ended: the runs (by `executions list`), in the order made.
    async fn gathered(&self, workflow: &str, ids: &[String], kind: &str) -> Vec<Value> {
        let pollers = self.worker_pollers();
        let runs = self.taken(workflow, ids, kind).await;
        for p in pollers {
            p.stop().await;
        }
        runs
    }

    /// Waits until every member in `ids` was taken and its run ended.
    async fn taken(&self, workflow: &str, ids: &[String], kind: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let listed = on_moto::executions_on(&self.examples.table, workflow);
            let taken: Vec<&Value> = listed
                .iter()
                .filter(|e| ids.iter().any(|id| e["id"] == id.as_str()))
                .filter(|e| e["output"][kind].is_object())
                .collect();
            let mut into: Vec<&str> = taken
                .iter()
                .map(|m| m["output"][kind]["into"].as_str().unwrap())
                .collect();
            into.sort_unstable();
            into.dedup();
            let runs: Vec<Value> = into
                .iter()
                .filter_map(|id| listed.iter().find(|e| e["id"] == *id).cloned())
                .filter(|r| r["status"] == "resolved")
                .collect();
            if taken.len() == ids.len() && runs.len() == into.len() {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} deliveries taken",
                taken.len(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
}

#[tokio::test]
async fn on_aws_a_steady_stream_is_cut_by_max_wait() {
    let (url, _visits) = timed_server(Duration::from_millis(1));
    let stack = stack().await;
    let options = json!({"debounce": {"key": "{{$context.body.customer}}", "periodMs": 5000, "maxWaitMs": 30000}});
    on_moto::deploy_to_table(&stack.examples.table, &calls("steady", &url, options));
    // The worker takes deliveries as they come, as Lambda's pollers do.
    let pollers = stack.worker_pollers();
    let began = Instant::now();
    let mut ids = Vec::new();
    for n in 1..=40u64 {
        ids.extend(
            stack
                .send("steady", &[json!({"customer": "A", "seq": n})])
                .await,
        );
        tokio::time::sleep_until((began + Duration::from_secs(n)).into()).await;
    }
    let runs = stack.taken("steady", &ids, "debounced").await;
    for p in pollers {
        p.stop().await;
    }
    let counts: Vec<u64> = runs
        .iter()
        .map(|r| r["context"]["debounce"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 40);
    assert!((28..=32).contains(&counts[0]), "{counts:?}");
}

#[tokio::test]
async fn on_aws_a_worker_cut_off_mid_batch_loses_no_delivery() {
    let (url, _visits) = timed_server(Duration::from_millis(1));
    let stack = stack().await;
    let options =
        json!({"batch": {"key": "{{$context.body.customer}}", "maxSize": 40, "timeoutMs": 5000}});
    on_moto::deploy_to_table(&stack.examples.table, &calls("cut", &url, options));
    let bodies: Vec<Value> = (1..=100)
        .map(|n| json!({"customer": "A", "seq": n}))
        .collect();
    let ids = stack.send("cut", &bodies).await;
    // Cut off mid-way, as a Lambda timeout or crash would: the messages it
    // held stay in flight, unsettled, until their visibility runs out.
    let pollers = stack.worker_pollers();
    tokio::time::sleep(Duration::from_secs(4)).await;
    for p in pollers {
        p.cut_off();
    }
    let listed = on_moto::executions_on(&stack.examples.table, "cut");
    let batched = listed
        .iter()
        .filter(|e| e["output"]["batched"].is_object())
        .count();
    assert!(batched < 100, "the cut came after everything ran");
    let runs = stack.gathered("cut", &ids, "batched").await;
    let mut seqs: Vec<u64> = runs
        .iter()
        .flat_map(|r| r["context"]["batch"].as_array().unwrap().clone())
        .map(|c| c["body"]["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn on_aws_twenty_deliveries_in_three_seconds_make_one_debounced_run() {
    let (url, visits) = timed_server(Duration::from_millis(1));
    let stack = stack().await;
    let options = json!({"debounce": {"key": "{{$context.body.customer}}", "periodMs": 2000}});
    on_moto::deploy_to_table(&stack.examples.table, &gathers("debounced", &url, options));
    let mut ids = Vec::new();
    for n in 1..=20 {
        let body = json!({"customer": "A", "seq": n, "delivery": format!("d-{n}")});
        ids.extend(stack.send("debounced", &[body]).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // A duplicate adds nothing.
    let again = json!({"customer": "A", "seq": 7, "delivery": "d-7"});
    assert_eq!(stack.send("debounced", &[again]).await, [ids[6].clone()]);
    let runs = stack.gathered("debounced", &ids, "debounced").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["context"]["debounce"]["count"], 20);
    assert_eq!(runs[0]["context"]["body"]["seq"], 20);
    assert_eq!(visits.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn on_aws_two_hundred_fifty_deliveries_make_batches_of_100_100_and_50_in_order() {
    let (url, visits) = timed_server(Duration::from_millis(1));
    let stack = stack().await;
    // Long enough that the first two batches fill before it (moto's writes, in
    // Python, take a good part of a second a delivery); the last 50 wait for it.
    // No idempotency key here (the debounce test has duplicates): a call less.
    let options =
        json!({"batch": {"key": "{{$context.body.customer}}", "maxSize": 100, "timeoutMs": 45000}});
    on_moto::deploy_to_table(&stack.examples.table, &calls("batched", &url, options));
    let bodies: Vec<Value> = (1..=250)
        .map(|n| json!({"customer": "A", "seq": n, "delivery": format!("b-{n}")}))
        .collect();
    let ids = stack.send("batched", &bodies).await;
    let runs = stack.gathered("batched", &ids, "batched").await;
    let sizes: Vec<usize> = runs
        .iter()
        .map(|r| r["context"]["batch"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let seqs: Vec<u64> = runs
        .iter()
        .flat_map(|r| r["context"]["batch"].as_array().unwrap().clone())
        .map(|c| c["body"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=250).collect::<Vec<_>>());
    assert_eq!(visits.lock().unwrap().len(), 3);
}

/// AWS calls the handlers make per delivery, warm, by what bounds its run: the
/// figures the docs give (a lane of one costs nothing over an async run).
#[tokio::test]
async fn on_aws_calls_per_delivery_by_flow_control() {
    let (url, _visits) = timed_server(Duration::from_millis(1));
    let stack = stack().await;
    let lane = json!({"lane": {"key": "{{$context.body.customer}}"}});
    let mut guarded = lane.clone();
    guarded["staleGuard"] = json!({"version": "{{$context.body.seq}}"});
    let flows = [
        ("plain", json!({})),
        ("lane", lane),
        ("guarded", guarded),
        ("bounded", json!({"concurrency": 5})),
    ];
    for (key, options) in &flows {
        on_moto::deploy_to_table(&stack.examples.table, &calls(key, &url, options.clone()));
    }
    let counted = || stack.app_client.calls();
    let pollers = stack.worker_pollers();
    let mut figures = Vec::new();
    for (key, _) in &flows {
        // Warm: the hook, the version and a workflow's places item are read or
        // made once per process.
        let first = stack.send(key, &[json!({"customer": "A", "seq": 1})]).await;
        stack.taken_runs(key, &first).await;
        let before = counted();
        let id = stack.send(key, &[json!({"customer": "A", "seq": 2})]).await;
        let webhook = counted() - before;
        stack.taken_runs(key, &id).await;
        let worker = counted() - before - webhook;
        figures.push((*key, webhook, worker));
    }
    // Ten deliveries debounced into one run: the worker's calls for all of
    // them (the members, the gathering's checks, the run).
    let debounce = json!({"debounce": {"key": "{{$context.body.customer}}", "periodMs": 1000}});
    on_moto::deploy_to_table(&stack.examples.table, &calls("gathered", &url, debounce));
    let warm = stack
        .send("gathered", &[json!({"customer": "W", "seq": 0})])
        .await;
    stack.taken("gathered", &warm, "debounced").await;
    let before = counted();
    let bodies: Vec<Value> = (1..=10)
        .map(|n| json!({"customer": "A", "seq": n}))
        .collect();
    let ids = stack.send("gathered", &bodies).await;
    stack.taken("gathered", &ids, "debounced").await;
    // Webhook and worker together (the worker takes members while they come).
    let gathered = counted() - before;
    for p in pollers {
        p.stop().await;
    }
    eprintln!("calls (webhook, worker): {figures:?}; 10 debounced into one run: {gathered}");
    // Each: its send, its record and its join, its record read and written
    // again when taken; the gathering's checks; its run's end.
    assert!(
        gathered <= 70,
        "{gathered} calls for 10 debounced deliveries"
    );
    assert_eq!(
        figures,
        [
            // A first delivery's run that ends at once: its end's PutItem.
            ("plain", 1, 1),
            // The FIFO queue's SendMessage instead of the run queue's.
            ("lane", 1, 1),
            // One conditional UpdateItem raises the lane's version.
            ("guarded", 1, 2),
            // A place taken and freed.
            ("bounded", 1, 3),
        ]
    );
}

impl Stack {
    /// Waits until the runs `ids` ended.
    async fn taken_runs(&self, workflow: &str, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = on_moto::executions_on(&self.examples.table, workflow);
            let ended = ids.iter().all(|id| {
                listed
                    .iter()
                    .any(|e| e["id"] == id.as_str() && e["status"] == "resolved")
            });
            if ended {
                return;
            }
            assert!(Instant::now() < deadline, "{ids:?} did not end");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
