//! The webhook service through the whole app on the embedded store: accepts,
//! queue failures, redeliveries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hookflow::model::RunMessage;
use hookflow::ports::{Delivery, Queue, QueueError};
use hookflow::wiring::{App, Settings};
use hookflow_tests::inproc;
use serde_json::{Value, json};

/// A queue whose backend is down.
struct DownQueue;

#[async_trait]
impl Queue for DownQueue {
    async fn enqueue(&self, _: &RunMessage) -> Result<(), QueueError> {
        Err(QueueError::unavailable("connection refused"))
    }
    async fn enqueue_after(&self, _: &RunMessage, _: Duration) -> Result<(), QueueError> {
        Err(QueueError::unavailable("connection refused"))
    }
    async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, QueueError> {
        Ok(Vec::new())
    }
    async fn ack(&self, _: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }
    async fn retry(&self, _: &Delivery, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

fn post(hook: &str, body: &str) -> http::Request<Bytes> {
    inproc::post(&format!("/api/webhook:trigger/{hook}?a[]=1&a[]=2"), body)
}

async fn app_with_queue(dir: &std::path::Path, queue: Option<Arc<dyn Queue>>) -> App {
    let doc = json!({"key": "a", "trigger": {"type": "webhook", "hookId": "async-hook"}});
    inproc::app(dir, &[doc], &Settings::default(), queue).await
}

#[tokio::test]
async fn async_accept_is_503_when_the_run_cannot_be_queued() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_queue(dir.path(), Some(Arc::new(DownQueue))).await;
    let response = app.webhook.handle(post("async-hook", "{}")).await;
    assert_eq!(response.status(), 503);
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("could not be queued")
    );
}

#[tokio::test]
async fn async_accept_queues_the_parsed_context() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_queue(dir.path(), None).await;
    let response = app.webhook.handle(post("async-hook", r#"{"x": 1}"#)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"ok");
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let delivered = app.queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(delivered.len(), 1);
    let message: RunMessage = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(message.workflow_key, "a");
    assert_eq!(message.context["query"], json!({"a": ["1", "2"]}));
    assert_eq!(message.context["body"], json!({"x": 1}));
}

#[tokio::test]
async fn a_redelivered_run_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_queue(dir.path(), None).await;
    app.webhook.handle(post("async-hook", "{}")).await;
    let delivery = app
        .queue
        .receive(1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        app.worker.process(&delivery.body, 1).await,
        hookflow::app::worker::Processed::Done
    );
    let first = app.store.list_executions(None, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, hookflow::model::ExecutionStatus::Resolved);
    // The same message again changes nothing.
    assert_eq!(
        app.worker.process(&delivery.body, 2).await,
        hookflow::app::worker::Processed::Done
    );
    assert_eq!(app.store.list_executions(None, 10).await.unwrap(), first);
    // A message that is not a run is reported as poison, not retried.
    assert!(matches!(
        app.worker.process("{garbage", 1).await,
        hookflow::app::worker::Processed::Poison(_)
    ));
}

#[tokio::test]
async fn an_id_no_workflow_can_have_is_404_like_any_unknown_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_queue(dir.path(), None).await;
    let answer = |hook: String| {
        let request = inproc::post(&format!("/api/webhook:trigger/{hook}"), "{}");
        let webhook = std::sync::Arc::clone(&app.webhook);
        async move {
            let response = webhook.handle(request).await;
            (response.status(), response.body().clone())
        }
    };
    let unknown = answer("no-such-hook".into()).await;
    assert_eq!(unknown.0, 404);
    for invalid in [
        "x".repeat(60_000),
        "a.b".into(),
        "%F0%9F%94%A5".into(),
        "x".repeat(129),
    ] {
        assert_eq!(answer(invalid).await, unknown);
    }
    // Valid ids are still served.
    assert_eq!(answer("async-hook".into()).await.0, 200);
}

#[tokio::test]
async fn the_hook_cache_stays_within_its_bounds_and_still_finds_hooks() {
    use hookflow::webhook::HookCache;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_queue(dir.path(), None).await;
    let cache = HookCache::with_bounds(Duration::from_secs(600), 100, 20_000);
    // Probes with distinct, valid-looking ids: each a miss, cached, none kept long.
    for n in 0..3_000 {
        let id = format!("{n:0>128}");
        assert!(cache.get(app.store.as_ref(), &id).await.unwrap().is_none());
        let (entries, bytes) = cache.size();
        assert!(
            entries <= 100 && bytes <= 20_000,
            "{entries} entries, {bytes} bytes"
        );
    }
    let found = cache.get(app.store.as_ref(), "async-hook").await.unwrap();
    assert_eq!(found.unwrap().key, "a");
    // The most recent entries stay: the hook is served from the cache now.
    let (entries, _) = cache.size();
    assert!(entries > 10, "{entries}");
}

/// A refresh that finds the same version keeps the definition it had, and with it
/// what was compiled from it (`trigger.schema`): compiled once per version, not once
/// per TTL; a new version is picked up as before.
#[tokio::test]
async fn the_hook_cache_keeps_an_unchanged_version_across_refreshes() {
    use hookflow::webhook::HookCache;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_queue(dir.path(), None).await;
    let cache = HookCache::new(Duration::from_millis(1));
    let get = || cache.get(app.store.as_ref(), "async-hook");
    let first = get().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let refreshed = get().await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &refreshed), "the same version is kept");
    let doc = json!({"key": "a", "title": "changed", "trigger": {"type": "webhook", "hookId": "async-hook"}});
    let def = hookflow::validate::validate(&doc, &app.node_types).unwrap();
    hookflow::app::deploy::deploy(app.store.as_ref(), &app.node_types, def)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let next = get().await.unwrap().unwrap();
    assert_eq!(
        (next.version, next.definition.title.as_deref()),
        (2, Some("changed"))
    );
}

/// On the embedded store a keyed delivery's run is queued in the very write that
/// takes its idempotency claim (in the file's own queue), so there is no claim
/// without its run: the accept does not wait on another queue, the run is delivered
/// from the file after a restart, and the sender's retry is answered as the first
/// delivery, which did happen.
#[tokio::test]
async fn a_keyed_run_is_queued_with_its_claim_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"key": "keyed", "trigger": {"type": "webhook", "hookId": "keyed-hook",
        "idempotency": {"key": "{{$context.body.id}}"}}});
    let elsewhere = inproc::app(
        dir.path(),
        std::slice::from_ref(&doc),
        &Settings::default(),
        Some(Arc::new(DownQueue)),
    )
    .await;
    let accepted = elsewhere
        .webhook
        .handle(post("keyed-hook", r#"{"id": "evt_1"}"#))
        .await;
    assert_eq!(accepted.status(), 200);
    drop(elsewhere);
    let up = inproc::app(dir.path(), &[doc], &Settings::default(), None).await;
    let delivered = up.queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(delivered.len(), 1);
    let message: RunMessage = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(message.idempotency_key.as_deref(), Some("evt_1"));
    let recorded = up.store.execution(&message.execution_id).await.unwrap();
    assert!(recorded.is_none(), "not run yet: only queued");
    let retried = up
        .webhook
        .handle(post("keyed-hook", r#"{"id": "evt_1"}"#))
        .await;
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    assert_eq!(retried.body(), accepted.body());
}
