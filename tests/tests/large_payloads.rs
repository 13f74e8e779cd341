//! Payloads of any size (issue 27), through the Lambda handlers on moto: a hook takes
//! bodies up to its `trigger.request.maxBodyBytes` (6 MiB at most) and answers 413
//! past it; a context too large for an SQS message (1 MiB) and a record too large for
//! a DynamoDB item (400 KB) go whole to the claim-check bucket, the message or item
//! pointing to the object. A run reads the body's last byte after a pause; `executions
//! show` and a replay see the whole context; prune removes the objects. The bucket is
//! read back with the AWS SDK for S3, the items with the SDK for DynamoDB.

use std::sync::Arc;
use std::time::Duration;

use hookflow::ports::Queue;
use hookflow::ports::aws::{self, SqsQueue};
use hookflow::wiring::{App, AwsEnv, Settings};
use hookflow_tests::on_moto::{self, Examples, body_of, event_to, sqs_event_of};
use hookflow_tests::{hookflow, moto_endpoint};
use serde_json::{Value, json};

/// What the template gives: SQS's largest message.
const MAX_MESSAGE: usize = 1 << 20;
const LIMIT: usize = 6 << 20;

struct Stack {
    examples: Examples,
    app: App,
    queue: SqsQueue,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn stack() -> Stack {
    let examples = on_moto::deploy_examples();
    moto_endpoint();
    let config = aws::load_config().await;
    let client = aws::client(&config);
    let env = AwsEnv {
        table: examples.table.clone(),
        queue_url: examples.queue_url.clone(),
        lane_queue_url: None,
        retention: Some(Duration::from_secs(86_400)),
        bucket: Some(examples.bucket.clone()),
        max_message_bytes: MAX_MESSAGE,
        settings: Settings::default(),
    };
    let app = env.app(Arc::clone(&client), Arc::clone(&client));
    // The SDKs, on the configuration the CLI loads.
    let sdk = config;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    Stack {
        queue: SqsQueue::new(client, &examples.queue_url),
        app,
        s3,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        examples,
    }
}

impl Stack {
    fn cli(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend([
            "--table",
            &self.examples.table,
            "--bucket",
            &self.examples.bucket,
        ]);
        let (ok, out, err) = hookflow(&all);
        assert!(ok, "hookflow {args:?} failed: {err}");
        out
    }

    fn deploy(&self, definition: &Value) {
        on_moto::deploy_to_table(&self.examples.table, definition);
    }

    fn show(&self, id: &str) -> Value {
        serde_json::from_str(&self.cli(&["executions", "show", id, "--json"])).unwrap()
    }

    async fn post(&self, hook: &str, body: &str) -> (u16, Value) {
        let headers = json!({"content-type": "application/json"});
        let event = event_to(hook, headers, body, "203.0.113.9");
        let response = hookflow_webhook::handle(&self.app, event).await.unwrap();
        (response.status().as_u16(), body_of(&response))
    }

    /// Receives the next queued message (waiting up to `wait`) and hands it to the
    /// worker Lambda; the message's body as it was on the queue.
    async fn work_next(&self, wait: Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let got = self.queue.receive(1, Duration::from_secs(1)).await.unwrap();
            if let Some(message) = got.first() {
                assert!(
                    message.body.len() <= MAX_MESSAGE,
                    "{} bytes",
                    message.body.len()
                );
                self.queue.ack(message).await.unwrap();
                let batch =
                    hookflow_worker::handle(&self.app, sqs_event_of(&[("m", &message.body)])).await;
                assert!(batch.batch_item_failures.is_empty());
                return serde_json::from_str(&message.body).unwrap();
            }
            assert!(started.elapsed() < wait, "no message within {wait:?}");
        }
    }

    /// The keys of the bucket's objects under `prefix`.
    async fn objects(&self, prefix: &str) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.examples.bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// The execution's item, as DynamoDB holds it: (`record` or `recordZ` present,
    /// `recordAt`).
    async fn item(&self, id: &str) -> (bool, Option<String>) {
        let (inline, at, _) = self.item_sized(id).await;
        (inline, at)
    }

    /// [`Self::item`], and the item's size as DynamoDB bills it (names and values;
    /// texts as UTF-8, binaries their bytes, numbers about their digits).
    async fn item_sized(&self, id: &str) -> (bool, Option<String>, usize) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.examples.table)
            .key("pk", AttributeValue::S(format!("EX#{id}")))
            .key("sk", AttributeValue::S("EX".into()))
            .send()
            .await
            .unwrap()
            .item
            .expect("the execution's item");
        let at = item.get("recordAt").and_then(|v| v.as_s().ok()).cloned();
        let size = item
            .iter()
            .map(|(name, value)| {
                name.len()
                    + match value {
                        AttributeValue::S(text) => text.len(),
                        AttributeValue::N(number) => number.len(),
                        AttributeValue::B(bytes) => bytes.as_ref().len(),
                        _ => 1,
                    }
            })
            .sum();
        let inline = item.contains_key("record") || item.contains_key("recordZ");
        (inline, at, size)
    }
}

/// A JSON body of exactly `bytes` bytes whose `blob` ends in "Z".
fn body_of_size(bytes: usize) -> String {
    let frame = r#"{"blob":""}"#.len();
    let body = json!({"blob": format!("{}Z", "a".repeat(bytes - frame - 1))}).to_string();
    assert_eq!(body.len(), bytes);
    body
}

/// Reads the body's last byte and its length: `{"last": "Z", "length": N}`.
fn last_byte() -> Value {
    json!({"key": "last", "type": "json-query", "config": {"engine": "jsonata",
        "source": "{{$context.body}}", "expression": "{\"last\": $substring(blob, -1), \"length\": $length(blob)}"}})
}

/// An async workflow that waits a second first, so its context is read back from
/// a paused record.
fn waits_then_reads(key: &str) -> Value {
    json!({"key": key, "sync": false,
    "trigger": {"type": "webhook", "hookId": key, "request": {"maxBodyBytes": LIMIT},
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
    "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": 1, "unit": 1000, "endStatus": 1}},
        last_byte(),
        {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.last}}"}}
    ]})
}

fn answers_at_once(key: &str) -> Value {
    json!({"key": key, "sync": true,
        "trigger": {"type": "webhook", "hookId": key, "request": {"maxBodyBytes": LIMIT}},
        "nodes": [last_byte(),
            {"key": "answer", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.last}}"}}]})
}

fn unique(prefix: &str) -> String {
    hookflow_tests::unique_name(prefix)
}

#[tokio::test]
async fn bodies_up_to_six_mib_run_whole_through_the_lambdas() {
    let stack = stack().await;
    let (sync_hook, async_hook) = (unique("big-sync"), unique("big-async"));
    stack.deploy(&answers_at_once(&sync_hook));
    stack.deploy(&waits_then_reads(&async_hook));

    for size in [700_000, 3_000_000, 5_500_000] {
        let body = body_of_size(size);
        let length = size - r#"{"blob":""}"#.len();
        let read = json!({"last": "Z", "length": length});

        // Sync: the answer is the run's reading; its record went to the bucket.
        let (status, answer) = stack.post(&sync_hook, &body).await;
        assert_eq!((status, &answer), (200, &read), "sync, {size} bytes");

        // Async: accepted, queued (the context in the bucket past 1 MiB), paused
        // with its whole state, woken, read.
        let (status, accepted) = stack.post(&async_hook, &body).await;
        assert_eq!(status, 202, "async, {size} bytes: {accepted}");
        let id = accepted["executionId"].as_str().unwrap().to_string();
        let message = stack.work_next(Duration::from_secs(10)).await;
        assert_eq!(message["executionId"], json!(id));
        assert_eq!(
            message.get("contextAt").is_some(),
            size > MAX_MESSAGE,
            "{size} bytes"
        );
        let paused = stack.show(&id);
        assert!(paused["paused"].is_object(), "{}", paused["status"]);
        let (inline, at) = stack.item(&id).await;
        assert!(!inline && at.as_deref().is_some_and(|k| k.starts_with("paused/")));
        let wake = stack.work_next(Duration::from_secs(10)).await;
        assert_eq!(wake["wake"], paused["paused"]["token"]);
        let done = stack.show(&id);
        assert_eq!(
            done["status"], "resolved",
            "{size} bytes: {}",
            done["output"]
        );
        assert_eq!(done["output"], read);
        assert_eq!(
            done["context"]["body"]["blob"].as_str().unwrap().len(),
            length
        );
        // One object per execution: the paused state's went when the pause ended,
        // the context's once the run was recorded.
        assert_eq!(
            stack.objects(&format!("paused/{id}/")).await,
            Vec::<String>::new()
        );
        assert_eq!(stack.objects(&format!("records/{id}/")).await.len(), 1);
        assert!(stack.objects(&format!("messages/{id}")).await.is_empty());
    }
}

#[tokio::test]
async fn bodies_past_the_hooks_limit_are_refused_413() {
    let stack = stack().await;
    let hook = unique("big-limit");
    stack.deploy(&answers_at_once(&hook));
    let (status, answer) = stack.post(&hook, &body_of_size(6_500_000)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("6291456"),
        "{answer}"
    );
    // A hook that sets no limit takes 1 MiB.
    let plain = unique("plain");
    let mut definition = answers_at_once(&plain);
    definition["trigger"]["request"] = json!({});
    stack.deploy(&definition);
    let (status, _) = stack.post(&plain, &body_of_size(1_100_000)).await;
    assert_eq!(status, 413);
    let (status, answer) = stack.post(&plain, &body_of_size(1_000_000)).await;
    assert_eq!((status, answer["last"].as_str()), (200, Some("Z")));
}

#[tokio::test]
async fn a_large_runs_replay_sees_its_whole_context_and_prune_removes_its_objects() {
    let stack = stack().await;
    let hook = unique("big-replay");
    stack.deploy(&waits_then_reads(&hook));
    let body = body_of_size(700_000);
    let (_, accepted) = stack.post(&hook, &body).await;
    let id = accepted["executionId"].as_str().unwrap().to_string();
    stack.work_next(Duration::from_secs(10)).await;
    stack.work_next(Duration::from_secs(10)).await;
    let original = stack.show(&id);
    assert_eq!(original["status"], "resolved");

    let (ok, out, err) = hookflow(&[
        "executions",
        "replay",
        &id,
        "--table",
        &stack.examples.table,
        "--bucket",
        &stack.examples.bucket,
        "--queue-url",
        &stack.examples.queue_url,
    ]);
    assert!(ok, "{out}{err}");
    let message = stack.work_next(Duration::from_secs(10)).await;
    let replay = message["executionId"].as_str().unwrap().to_string();
    assert_eq!(message["replayOf"], json!(id));
    stack.work_next(Duration::from_secs(10)).await;
    let replayed = stack.show(&replay);
    assert_eq!(replayed["status"], "resolved");
    assert_eq!(replayed["output"], original["output"]);
    assert_eq!(replayed["context"], original["context"]);

    for run in [&id, &replay] {
        assert_eq!(stack.objects(&format!("records/{run}/")).await.len(), 1);
    }
    stack.cli(&[
        "executions",
        "prune",
        "--older-than",
        "2999-01-01T00:00:00Z",
        "--workflow",
        &hook,
    ]);
    for run in [&id, &replay] {
        assert!(stack.objects(&format!("records/{run}/")).await.is_empty());
        assert!(stack.objects(&format!("messages/{run}")).await.is_empty());
        let (ok, _, _) = hookflow(&["executions", "show", run, "--table", &stack.examples.table]);
        assert!(!ok, "{run} is pruned");
    }
}

/// The same through `hookflow serve`, whose embedded store keeps large contexts
/// whole (no bucket): the async run pauses and resumes from its record.
#[tokio::test]
async fn bodies_up_to_six_mib_run_whole_through_serve() {
    let server =
        hookflow_tests::Server::start(&[answers_at_once("s-sync"), waits_then_reads("s-async")]);
    let send = |hook: &str, body: String| {
        hookflow_tests::client()
            .post(server.hook_url(hook))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for size in [700_000, 3_000_000, 5_500_000] {
        let read = json!({"last": "Z", "length": size - r#"{"blob":""}"#.len()});
        let answer = send("s-sync", body_of_size(size)).await.unwrap();
        assert_eq!(answer.status(), 200, "sync, {size} bytes");
        assert_eq!(answer.json::<Value>().await.unwrap(), read);
        let accepted = send("s-async", body_of_size(size)).await.unwrap();
        assert_eq!(accepted.status(), 202, "async, {size} bytes");
        let id = accepted.json::<Value>().await.unwrap()["executionId"]
            .as_str()
            .unwrap()
            .to_string();
        let done = server.wait_for_execution(&id, "resolved");
        assert_eq!(done["output"], read, "{size} bytes");
    }
    let refused = send("s-sync", body_of_size(6_500_000)).await.unwrap();
    assert_eq!(refused.status(), 413);
}

/// The AWS calls an async delivery costs by size (the issue's closing figures), and
/// the size of the execution's item that is kept: a record past 380 KB is a pointer.
/// Webhook: SendMessage, with a PutObject first past 1 MiB. Worker (a first
/// delivery of a run that ends at once): one PutItem, its end; past 380 KB it
/// writes its record's object first; past 1 MiB the context is read from the
/// bucket first and deleted once the run is recorded.
#[tokio::test]
async fn calls_per_async_delivery_by_size() {
    let stack = stack().await;
    let hook = unique("big-calls");
    stack.deploy(&json!({"key": hook, "sync": false,
        "trigger": {"type": "webhook", "hookId": hook, "request": {"maxBodyBytes": LIMIT},
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [last_byte()]}));
    let client = aws::client(&aws::load_config().await);
    let env = AwsEnv {
        table: stack.examples.table.clone(),
        queue_url: stack.examples.queue_url.clone(),
        lane_queue_url: None,
        retention: None,
        bucket: Some(stack.examples.bucket.clone()),
        max_message_bytes: MAX_MESSAGE,
        settings: Settings::default(),
    };
    let app = env.app(Arc::clone(&client), Arc::clone(&client));
    // Warm: the hook and the workflow version are cached by the first delivery.
    let mut counted = Vec::new();
    for size in [1_000, 1_000, 700_000, 5_000_000] {
        let before = client.calls();
        let event = event_to(
            &hook,
            json!({"content-type": "application/json"}),
            &body_of_size(size),
            "203.0.113.9",
        );
        let response = hookflow_webhook::handle(&app, event).await.unwrap();
        assert_eq!(response.status(), 202);
        let id = body_of(&response)["executionId"]
            .as_str()
            .unwrap()
            .to_string();
        let webhook = client.calls() - before;
        let message = loop {
            if let Some(m) = stack
                .queue
                .receive(1, Duration::from_secs(1))
                .await
                .unwrap()
                .pop()
            {
                break m;
            }
        };
        stack.queue.ack(&message).await.unwrap();
        let before = client.calls();
        let batch = hookflow_worker::handle(&app, sqs_event_of(&[("m", &message.body)])).await;
        assert!(batch.batch_item_failures.is_empty());
        let worker = client.calls() - before;
        let (inline, at, item_bytes) = stack.item_sized(&id).await;
        assert_eq!(stack.show(&id)["status"], "resolved");
        eprintln!(
            "{size} bytes: webhook {webhook} calls, worker {worker} calls, item {item_bytes} bytes, record {}",
            if inline {
                "in the item"
            } else {
                "in the bucket"
            }
        );
        counted.push((size, webhook, worker, at.is_some()));
    }
    assert_eq!(
        counted[1..],
        [
            (1_000, 1, 1, false),
            (700_000, 1, 2, true),
            (5_000_000, 2, 4, true)
        ]
    );
}

/// `hookflow serve` pointed at moto (`--table`, `--queue`, `--bucket`): the same
/// claim-check as the Lambdas, its queue at SQS's default size (256 KiB).
#[tokio::test]
async fn serve_on_aws_keeps_large_runs_in_its_bucket() {
    let endpoint = moto_endpoint();
    let (table, queue, bucket) = (
        unique("serve"),
        unique("serve-runs"),
        unique("serve-objects"),
    );
    let server = hookflow_tests::Server::start_with_env(
        &[answers_at_once("aws-sync"), waits_then_reads("aws-async")],
        &["--table", &table, "--queue", &queue, "--bucket", &bucket],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    let post = |hook: &str, size: usize| {
        hookflow_tests::client()
            .post(server.hook_url(hook))
            .header("content-type", "application/json")
            .body(body_of_size(size))
            .send()
    };
    let read = |size: usize| json!({"last": "Z", "length": size - r#"{"blob":""}"#.len()});
    let answer = post("aws-sync", 700_000).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), read(700_000));
    let accepted = post("aws-async", 1_500_000).await.unwrap();
    assert_eq!(accepted.status(), 202);
    let id = accepted.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (ok, out, _) = hookflow(&[
            "executions",
            "show",
            &id,
            "--json",
            "--table",
            &table,
            "--bucket",
            &bucket,
        ]);
        let shown: Value = if ok {
            serde_json::from_str(&out).unwrap()
        } else {
            Value::Null
        };
        if shown["status"] == "resolved" {
            break shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never resolved: {}",
            shown["status"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["output"], read(1_500_000));
}

/// A payment provider's event of about 1 KB, shaped as Stripe sends one.
fn payment_event() -> String {
    let event = json!({
        "id": "evt_3QbT5hL2mN8pQ4rS1aBcDeFg", "object": "event", "api_version": "2024-06-20",
        "created": 1_733_400_000, "livemode": false, "pending_webhooks": 1,
        "request": {"id": "req_Xy12Ab34Cd56Ef", "idempotency_key": "9f1c2b4e-7d3a-4c5b-9e8f-1a2b3c4d5e6f"},
        "type": "payment_intent.succeeded",
        "data": {"object": {
            "id": "pi_3QbT5hL2mN8pQ4rS1xYzWvUt", "object": "payment_intent", "amount": 4_990,
            "amount_capturable": 0, "amount_received": 4_990, "capture_method": "automatic_async",
            "client_secret": null, "confirmation_method": "automatic", "created": 1_733_399_990,
            "currency": "eur", "customer": "cus_R4nD0mCu5t0m3r", "description": "Order A-1042",
            "latest_charge": "ch_3QbT5hL2mN8pQ4rS1qRsTuVw", "livemode": false,
            "metadata": {"order_id": "A-1042", "cart": "c_88213"},
            "payment_method": "pm_1QbT5gL2mN8pQ4rSkLmNoPqR",
            "payment_method_types": ["card"], "receipt_email": "ana@example.com",
            "shipping": {"name": "Ana Example", "address": {"line1": "1 Main St", "city": "Lisbon",
                "postal_code": "1100-001", "country": "PT"}},
            "status": "succeeded", "statement_descriptor": null
        }}
    })
    .to_string();
    assert!((900..=1_100).contains(&event.len()), "{}", event.len());
    event
}

/// What a small delivery's record costs on DynamoDB: its item is written with the
/// record deflated (`recordZ`), under 1 KB for a 1 KB provider event, so each write
/// is 1 write unit; the record reads back whole (README, the cost table).
#[tokio::test]
async fn a_small_delivery_is_one_write_unit_and_reads_back_whole() {
    let stack = stack().await;
    let hook = unique("unit");
    stack.deploy(&json!({"key": hook, "sync": false,
        "trigger": {"type": "webhook", "hookId": hook,
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [{"key": "out", "type": "output", "config": {"value": "{{$context.body.data.object.metadata.order_id}}"}}]}));
    let body = payment_event();
    let (status, accepted) = stack.post(&hook, &body).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["executionId"].as_str().unwrap().to_string();
    stack.work_next(Duration::from_secs(10)).await;
    let (inline, at, item_bytes) = stack.item_sized(&id).await;
    eprintln!("a {} byte event: item {item_bytes} bytes", body.len());
    assert!(inline && at.is_none());
    assert!(item_bytes <= 1_024, "{item_bytes} bytes: 2 write units");
    let shown = stack.show(&id);
    assert_eq!(shown["status"], "resolved");
    assert_eq!(shown["output"], "A-1042");
    assert_eq!(
        shown["context"]["body"],
        serde_json::from_str::<Value>(&body).unwrap()
    );
}
