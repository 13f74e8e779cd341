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
        if let Some(expected) = &workflow.definition.trigger.basic_authentication {
            if !auth::basic_matches(request.headers(), expected) {
                let mut response =
                    reply::error(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
                reply::set_header(
                    &mut response,
                    "www-authenticate",
                    "Basic realm=\"hookflow\"",
                );
                return response;
            }
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
