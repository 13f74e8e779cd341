//! A keyed async accept on DynamoDB and SQS (moto), where the claim and the enqueue
//! are two calls (issue 23, item 5): the claim stands for nothing until the worker
//! that takes the run confirms it, so a send that failed, or timed out and landed
//! after all, never leaves a duplicate answered for a run that did not happen, nor
//! lets the delivery run twice. A duplicate after the claim's lease queues the same
//! run again (same execution id, same answer), and the worker runs one copy, so
//! every answer for a key names the one execution that runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hookflow::app::worker::Processed;
use hookflow::model::RunMessage;
use hookflow::ports::aws::{self, DynamoStore, SqsQueue};
use hookflow::ports::{Delivery, Queue, QueueError, Store};
use hookflow::wiring::{App, Settings};
use hookflow_tests::inproc::post;
use hookflow_tests::{moto_endpoint, unique_name};
use serde_json::{Value, json};

/// SQS whose first send lands and then reports a failure, as a send whose answer
/// was lost (a timeout) does. Keeps the execution id of every run it was given.
struct LandsThenFails {
    inner: SqsQueue,
    sent: Mutex<Vec<String>>,
}

#[async_trait]
impl Queue for LandsThenFails {
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError> {
        self.inner.enqueue(run).await?;
        let mut sent = self.sent.lock().unwrap();
        sent.push(run.execution_id.clone());
        if sent.len() == 1 {
            return Err(QueueError::unavailable("timed out"));
        }
        Ok(())
    }
    async fn enqueue_after(&self, run: &RunMessage, delay: Duration) -> Result<(), QueueError> {
        self.inner.enqueue_after(run, delay).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, wait).await
    }
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.inner.ack(delivery).await
    }
    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry(delivery, delay).await
    }
}

/// Each run also sends its delivery's key to `ran`, so the runs that happened can
/// be counted.
fn orders(ran: &str) -> Value {
    json!({"key": "orders", "trigger": {"type": "webhook", "hookId": "orders-hook",
        "request": {"headers": [{"key": "x-delivery"}]},
        "idempotency": {"key": "{{$context.headers.x-delivery}}"},
        "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
    "nodes": [
        {"key": "ran", "type": "sqs", "config": {"queueUrl": ran,
            "messageBody": "{{$context.headers.x-delivery}}"}},
        {"key": "o", "type": "output", "config": {"value": "{{$context.body.n}}"}}
    ]})
}

/// The keys of the runs that happened, sorted.
async fn runs_of(sqs: &aws_sdk_sqs::Client, ran: &str) -> Vec<String> {
    let mut keys = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(ran)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let batch = got.messages.unwrap_or_default();
        if batch.is_empty() {
            keys.sort();
            return keys;
        }
        for message in batch {
            keys.push(message.body.unwrap_or_default());
            sqs.delete_message()
                .queue_url(ran)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

async fn deliver(app: &App) -> Answer {
    deliver_key(app, "evt-1").await
}

async fn deliver_key(app: &App, key: &str) -> Answer {
    let mut request = post("/api/webhook:trigger/orders-hook", r#"{"n": 7}"#);
    request
        .headers_mut()
        .insert("x-delivery", key.parse().unwrap());
    let response = app.webhook.handle(request).await;
    Answer {
        status: response.status().as_u16(),
        replayed: response.headers().contains_key("idempotent-replayed"),
        body: serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    }
}

/// Runs every queued message through the worker, a batch at a time and its
/// messages at once, as concurrent worker Lambdas would.
async fn drain(app: &App, queue: &LandsThenFails) -> usize {
    let mut processed = 0;
    loop {
        let batch = queue.receive(10, Duration::from_secs(1)).await.unwrap();
        if batch.is_empty() {
            return processed;
        }
        let done = futures_util::future::join_all(
            batch
                .iter()
                .map(|delivery| app.worker.process(&delivery.body, delivery.attempt)),
        )
        .await;
        for (delivery, done) in batch.iter().zip(done) {
            assert!(matches!(done, Processed::Done), "{done:?}");
            queue.ack(delivery).await.unwrap();
            processed += 1;
        }
    }
}

#[tokio::test]
async fn a_send_that_landed_after_a_failure_runs_once_and_is_never_replayed_before_it_runs() {
    moto_endpoint();
    let config = aws::load_config().await;
    let client = aws::client(&config);
    let table = unique_name("keyed");
    aws::create_table(&client, &table).await.unwrap();
    let url = aws::create_queue(&client, &unique_name("keyed"))
        .await
        .unwrap();
    let ran = aws::create_queue(&client, &unique_name("ran"))
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(Arc::clone(&client), table, None));
    let queue = Arc::new(LandsThenFails {
        inner: SqsQueue::new(client, url),
        sent: Mutex::default(),
    });
    let app = App::new(
        store,
        Arc::clone(&queue) as Arc<dyn Queue>,
        &Settings::default(),
    );
    let definition =
        hookflow::validate::validate(&orders(&ran), &hookflow::nodes::builtin()).unwrap();
    hookflow::app::deploy::deploy(app.store.as_ref(), &app.node_types, definition)
        .await
        .unwrap();

    // The send reports a failure: the sender is told to retry, when the claim's
    // lease is over.
    let first = deliver(&app).await;
    assert_eq!(first.status, 503, "{}", first.body);
    // Meanwhile a duplicate waits: the claim stands for no run yet.
    let during = deliver(&app).await;
    assert_eq!(
        (during.status, during.replayed),
        (409, false),
        "{}",
        during.body
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // The retry queues the same run again and gives its answer.
    let retry = deliver(&app).await;
    assert_eq!(
        (retry.status, retry.replayed),
        (202, true),
        "{}",
        retry.body
    );
    let accepted = retry.body["executionId"].as_str().unwrap().to_string();
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent, vec![accepted.clone(), accepted.clone()]);
    // Not confirmed yet: a duplicate is not answered for a run no worker took.
    let early = deliver(&app).await;
    assert_eq!(
        (early.status, early.replayed),
        (409, false),
        "{}",
        early.body
    );

    // Both copies reach the worker: the first it takes runs, the other is
    // dropped.
    assert_eq!(drain(&app, &queue).await, 2);
    let run = app.store.execution(&accepted).await.unwrap().unwrap();
    assert_eq!(run.status.as_str(), "resolved");
    assert_eq!(run.output, json!(7));
    assert_eq!(runs_of(&sqs, &ran).await, ["evt-1"], "one copy ran");

    // From now on (past the accept window) duplicates get the accepted answer,
    // and run nothing.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let again = deliver(&app).await;
    assert_eq!(
        (again.status, again.replayed),
        (202, true),
        "{}",
        again.body
    );
    assert_eq!(again.body["executionId"], accepted.as_str());
    assert_eq!(queue.sent.lock().unwrap().len(), 2);

    // A first request that was answered, whose run no worker has taken yet (a
    // backlog) when a duplicate comes after the lease: both answers name the same
    // execution, and it runs once.
    let first = deliver_key(&app, "evt-2").await;
    assert_eq!(
        (first.status, first.replayed),
        (202, false),
        "{}",
        first.body
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let late = deliver_key(&app, "evt-2").await;
    assert_eq!((late.status, late.replayed), (202, true), "{}", late.body);
    assert_eq!(late.body["executionId"], first.body["executionId"]);
    assert_eq!(drain(&app, &queue).await, 2);
    let id = first.body["executionId"].as_str().unwrap();
    let run = app.store.execution(id).await.unwrap().unwrap();
    assert_eq!(run.status.as_str(), "resolved");
    assert_eq!(runs_of(&sqs, &ran).await, ["evt-2"], "one copy ran");
    let runs = app
        .store
        .list_executions(Some("orders"), 100)
        .await
        .unwrap();
    assert_eq!(runs.len(), 2, "one run per key");
}
