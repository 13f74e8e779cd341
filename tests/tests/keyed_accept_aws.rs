//! A keyed async accept on DynamoDB and SQS (moto), where the claim and the enqueue
//! are two calls (issue 23, item 5): the claim stands for nothing until the worker
//! that takes the run confirms it, so a send that failed, or timed out and landed
//! after all, never leaves a duplicate answered for a run that did not happen, nor
//! lets the delivery run twice.

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
            return Err(QueueError::Backend("timed out".into()));
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

fn orders() -> Value {
    json!({"key": "orders", "trigger": {"type": "webhook", "hookId": "orders-hook",
            "request": {"headers": [{"key": "x-delivery"}]},
            "idempotency": {"key": "{{$context.headers.x-delivery}}"},
            "response": {"statusCode": 202, "body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": [{"key": "o", "type": "output", "config": {"value": "{{$context.body.n}}"}}]})
}

struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

async fn deliver(app: &App) -> Answer {
    let mut request = post("/api/webhook:trigger/orders-hook", r#"{"n": 7}"#);
    request
        .headers_mut()
        .insert("x-delivery", "evt-1".parse().unwrap());
    let response = app.webhook.handle(request).await;
    Answer {
        status: response.status().as_u16(),
        replayed: response.headers().contains_key("idempotent-replayed"),
        body: serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    }
}

/// Runs every queued message through the worker, as the worker Lambda would.
async fn drain(app: &App, queue: &LandsThenFails) -> usize {
    let mut processed = 0;
    loop {
        let batch = queue.receive(10, Duration::from_secs(1)).await.unwrap();
        if batch.is_empty() {
            return processed;
        }
        for delivery in batch {
            let done = app.worker.process(&delivery.body, delivery.attempt).await;
            assert!(matches!(done, Processed::Done), "{done:?}");
            queue.ack(&delivery).await.unwrap();
            processed += 1;
        }
    }
}

#[tokio::test]
async fn a_send_that_landed_after_a_failure_runs_once_and_is_never_replayed_before_it_runs() {
    moto_endpoint();
    let config = aws::load_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("keyed");
    aws::create_table(&dynamo, &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = aws::create_queue(&sqs, &unique_name("keyed"))
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(dynamo, table, None));
    let queue = Arc::new(LandsThenFails {
        inner: SqsQueue::new(sqs, url),
        sent: Mutex::default(),
    });
    let app = App::new(
        store,
        Arc::clone(&queue) as Arc<dyn Queue>,
        &Settings::default(),
    );
    let definition = hookflow::validate::validate(&orders(), &hookflow::nodes::builtin()).unwrap();
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
    // The retry takes the key over and is accepted as the delivery.
    let retry = deliver(&app).await;
    assert_eq!(
        (retry.status, retry.replayed),
        (202, false),
        "{}",
        retry.body
    );
    let accepted = retry.body["executionId"].as_str().unwrap().to_string();
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1], accepted);
    // Not confirmed yet: a duplicate is not answered for a run no worker took.
    let early = deliver(&app).await;
    assert!(!early.replayed, "{}", early.body);

    // Both messages reach the worker: the superseded one is dropped, the
    // accepted one runs.
    assert_eq!(drain(&app, &queue).await, 2);
    assert!(app.store.execution(&sent[0]).await.unwrap().is_none());
    let run = app.store.execution(&accepted).await.unwrap().unwrap();
    assert_eq!(run.status.as_str(), "resolved");
    assert_eq!(run.output, json!(7));

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
}
