//! The webhook endpoint (spec sections 3, 4 and 6) as one function from an HTTP
//! request to an HTTP response, on `lambda_http`'s types: the webhook Lambda and
//! `hookflow serve` run exactly this code.

mod auth;
mod cache;
mod context;
mod reply;
mod route;

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use crate::model::{DeployedWorkflow, RunMessage};
use crate::ports::{Queue, Store};
use crate::run::Runner;
use crate::time::now_rfc3339;

pub use cache::HookCache;
pub use context::is_json_type;
pub use reply::error as error_response;
pub use route::hook_id_from_path;

/// The default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

pub struct WebhookService {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    runner: Arc<Runner>,
    hooks: HookCache,
    max_body: usize,
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        runner: Arc<Runner>,
        hook_cache_ttl: Duration,
        max_body: usize,
    ) -> Self {
        Self {
            store,
            queue,
            runner,
            hooks: HookCache::new(hook_cache_ttl),
            max_body,
        }
    }

    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Answers one request. Every failure is a JSON `{"error": ...}` with its status,
    /// checked in the spec's order.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let Some(hook_id) = route::hook_id_from_path(request.uri().path()) else {
            return reply::error(
                StatusCode::NOT_FOUND,
                "no such endpoint; webhooks are POST /api/webhook:trigger/{hookId}",
            );
        };
        if request.method() != Method::POST {
            let mut response =
                reply::error(StatusCode::METHOD_NOT_ALLOWED, "webhooks accept POST only");
            reply::set_header(&mut response, "allow", "POST");
            return response;
        }
        let workflow = match self.hooks.get(self.store.as_ref(), &hook_id).await {
            Ok(Some(w)) if w.definition.enabled => w,
            Ok(_) => {
                return reply::error(
                    StatusCode::NOT_FOUND,
                    "no enabled workflow has this webhook",
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "hook lookup failed");
                return reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the webhook store is unavailable; retry later",
                );
            }
        };
        if let Some(expected) = &workflow.definition.trigger.basic_authentication
            && !auth::basic_matches(request.headers(), expected)
        {
            let mut response =
                reply::error(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
            reply::set_header(
                &mut response,
                "www-authenticate",
                "Basic realm=\"hookflow\"",
            );
            return response;
        }
        if request.body().len() > self.max_body {
            let message = format!("the request body is larger than {} bytes", self.max_body);
            return reply::error(StatusCode::PAYLOAD_TOO_LARGE, &message);
        }
        let context = match context::trigger_context(&request, &workflow.definition.trigger) {
            Ok(c) => c,
            Err(message) => return reply::error(StatusCode::BAD_REQUEST, &message),
        };
        if workflow.definition.sync {
            self.run_sync(&workflow, context).await
        } else {
            self.accept_async(&workflow, context).await
        }
    }

    async fn run_sync(&self, workflow: &DeployedWorkflow, context: Value) -> Response<Body> {
        let id = new_execution_id();
        let execution = Runner::started(workflow, &id, context, now_rfc3339());
        let timeout = Duration::from_millis(workflow.definition.sync_timeout_ms());
        let finished = self.runner.run(execution, workflow, Some(timeout)).await;
        if let Err(e) = self.store.save_execution(&finished.execution).await {
            tracing::error!(execution_id = %id, error = %e, "cannot record a sync execution");
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the run could not be recorded; retry later",
            );
        }
        let status = finished.execution.status;
        if finished.timed_out {
            let body = json!({
                "error": format!("the workflow did not answer within {} ms", timeout.as_millis()),
                "executionId": id,
            });
            return reply::json(StatusCode::GATEWAY_TIMEOUT, &body);
        }
        match finished.reply {
            Some(r) => reply::from_reply(&r),
            None => {
                let code = if status == crate::model::ExecutionStatus::Resolved {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                reply::json(
                    code,
                    &json!({ "executionId": id, "status": status.as_str() }),
                )
            }
        }
    }

    async fn accept_async(&self, workflow: &DeployedWorkflow, context: Value) -> Response<Body> {
        let message = RunMessage {
            execution_id: new_execution_id(),
            workflow_key: workflow.key.clone(),
            workflow_version: workflow.version,
            context,
            accepted_at: now_rfc3339(),
            wake: None,
            after: None,
        };
        if let Err(e) = self.queue.enqueue(&message).await {
            tracing::error!(execution_id = %message.execution_id, error = %e, "cannot enqueue a run");
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the run could not be queued; retry later",
            );
        }
        let configured = workflow
            .definition
            .trigger
            .response
            .clone()
            .unwrap_or_default();
        reply::trigger_response(&configured, &message.context, &message.execution_id)
    }
}

/// UUIDv7: unique, and ordered by creation time for "newest first" listings.
pub fn new_execution_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use super::*;
    use crate::app::{App, Settings};
    use crate::deploy;
    use crate::nodes::NodeRegistry;
    use crate::ports::embedded::{Database, EmbeddedQueue, EmbeddedStore};
    use crate::ports::{Delivery, QueueError};
    use async_trait::async_trait;

    /// A queue whose backend is down.
    struct DownQueue;

    #[async_trait]
    impl Queue for DownQueue {
        async fn enqueue(&self, _: &RunMessage) -> Result<(), QueueError> {
            Err(QueueError::Backend("connection refused".into()))
        }
        async fn enqueue_after(&self, _: &RunMessage, _: Duration) -> Result<(), QueueError> {
            Err(QueueError::Backend("connection refused".into()))
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

    fn post(hook: &str, body: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/api/webhook:trigger/{hook}?a[]=1&a[]=2"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }

    async fn app_with_queue(dir: &std::path::Path, queue: Option<Arc<dyn Queue>>) -> App {
        let db = Database::open(dir).unwrap();
        let store = Arc::new(EmbeddedStore::new(Arc::clone(&db)));
        let queue = match queue {
            Some(q) => q,
            None => Arc::new(EmbeddedQueue::open(db).await.unwrap()),
        };
        let app = App::new(store, queue, &Settings::default());
        let doc = json!({"key": "a", "trigger": {"type": "webhook", "hookId": "async-hook"}});
        let def = crate::validate::validate(&doc, &NodeRegistry::builtin()).unwrap();
        deploy::deploy(app.store.as_ref(), def).await.unwrap();
        app
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
            crate::worker::Processed::Done
        );
        let first = app.store.list_executions(None, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].status, crate::model::ExecutionStatus::Resolved);
        // The same message again changes nothing.
        assert_eq!(
            app.worker.process(&delivery.body, 2).await,
            crate::worker::Processed::Done
        );
        assert_eq!(app.store.list_executions(None, 10).await.unwrap(), first);
        // A message that is not a run is reported as poison, not retried.
        assert!(matches!(
            app.worker.process("{garbage", 1).await,
            crate::worker::Processed::Poison(_)
        ));
    }
}
