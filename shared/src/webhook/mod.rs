//! The webhook endpoint (spec sections 3, 4 and 6) as one function from an HTTP
//! request to an HTTP response, on the `http` crate's types: the webhook Lambda and
//! `hookflow serve` convert their own types at their edges and run exactly this code.

mod auth;
mod cache;
mod context;
mod reply;
mod route;
mod secrets;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::app::ids::new_execution_id;
use crate::app::runner::Runner;
use crate::model::{
    DeployedWorkflow, RunMessage, SecretRef, Secrets, SignatureConfig, SignaturePreset, is_hook_id,
};
use crate::ports::secrets::SecretSource;
use crate::ports::{Queue, Store};
use crate::time::now_rfc3339;

pub use cache::HookCache;
pub use reply::error as error_response;
pub use route::hook_id_from_path;
pub use secrets::SecretCache;

/// When the process answering a request is cut off (a Lambda invocation's
/// deadline), set by the edge as a request extension. A sync run stops in time to
/// answer 504 and record itself as `aborted` before then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// The time kept back before a [`Deadline`] to record the aborted run and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_000);

/// How long a sync run may take: its `timeoutMs`, or less when the process has a
/// deadline that comes sooner.
pub fn sync_time_limit(timeout_ms: u64, deadline: Option<Deadline>) -> Duration {
    let configured = Duration::from_millis(timeout_ms);
    match deadline {
        Some(Deadline(at)) => configured.min(
            at.saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_MARGIN),
        ),
        None => configured,
    }
}

/// The default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The answer to a request refused before its body was read.
pub type Refusal = Box<Response<Bytes>>;

/// A request that passed every check made before its body is read.
pub struct Admitted {
    workflow: Arc<DeployedWorkflow>,
    hook_id: String,
}

/// The `Content-Length` a request declares, if any (and readable).
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn not_found() -> Response<Bytes> {
    reply::error(
        StatusCode::NOT_FOUND,
        "no enabled workflow has this webhook",
    )
}

fn internal_error(panic: &str) -> Response<Bytes> {
    tracing::error!(panic, "a request failed on an internal error");
    reply::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the request failed on an internal error",
    )
}

pub struct WebhookService {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    runner: Arc<Runner>,
    hooks: HookCache,
    secrets: SecretCache,
    max_body: usize,
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        runner: Arc<Runner>,
        hook_cache_ttl: Duration,
        max_body: usize,
        secrets: Arc<dyn SecretSource>,
    ) -> Self {
        Self {
            store,
            queue,
            runner,
            hooks: HookCache::new(hook_cache_ttl),
            secrets: SecretCache::new(secrets, hook_cache_ttl),
            max_body,
        }
    }

    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Answers one request whose body is already read (the webhook Lambda). Every
    /// failure is a JSON `{"error": ...}` with its status, checked in the spec's
    /// order. A panic (a bug) costs this request a 500, and nothing else; a sync
    /// run's own panics are caught sooner and recorded.
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        match self.admit(&parts).await {
            Ok(admitted) => {
                self.complete(admitted, Request::from_parts(parts, body))
                    .await
            }
            Err(refused) => *refused,
        }
    }

    /// The checks that need no body (route, method, hook, Basic auth, a declared
    /// length past the limit), so a server reads a body only for a request that
    /// passed them: probing unknown hooks or sending unauthenticated uploads costs
    /// no memory.
    pub async fn admit(&self, parts: &http::request::Parts) -> Result<Admitted, Refusal> {
        match crate::guard::catch(self.check_head(parts)).await {
            Ok(checked) => checked.map_err(Box::new),
            Err(panic) => Err(Box::new(internal_error(&panic))),
        }
    }

    /// Answers an admitted request, with its body read (at most one byte past
    /// [`WebhookService::max_body`]).
    pub async fn complete(&self, admitted: Admitted, request: Request<Bytes>) -> Response<Bytes> {
        crate::guard::catch(self.answer(admitted, request))
            .await
            .unwrap_or_else(|panic| internal_error(&panic))
    }

    async fn check_head(&self, parts: &http::request::Parts) -> Result<Admitted, Response<Bytes>> {
        let Some(hook_id) = route::hook_id_from_path(parts.uri.path()) else {
            return Err(reply::error(
                StatusCode::NOT_FOUND,
                "no such endpoint; webhooks are POST /api/webhook:trigger/{hookId}",
            ));
        };
        if parts.method != Method::POST {
            let mut response =
                reply::error(StatusCode::METHOD_NOT_ALLOWED, "webhooks accept POST only");
            reply::set_header(&mut response, "allow", "POST");
            return Err(response);
        }
        // An id no workflow can have is not looked up (nor cached): 404 at once,
        // the answer any unknown id gets.
        if !is_hook_id(&hook_id) {
            return Err(not_found());
        }
        let workflow = match self.hooks.get(self.store.as_ref(), &hook_id).await {
            Ok(Some(w)) if w.definition.enabled => w,
            Ok(_) => return Err(not_found()),
            Err(e) => {
                tracing::error!(error = %e, "hook lookup failed");
                return Err(reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the webhook store is unavailable; retry later",
                ));
            }
        };
        if let Some(expected) = &workflow.definition.trigger.basic_authentication {
            let password = self
                .secret(
                    &expected.password,
                    "trigger.basicAuthentication.password",
                    &hook_id,
                )
                .await?;
            if !auth::basic_matches(&parts.headers, &expected.username, &password) {
                let mut response =
                    reply::error(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
                reply::set_header(
                    &mut response,
                    "www-authenticate",
                    "Basic realm=\"hookflow\"",
                );
                return Err(response);
            }
        }
        if declared_length(&parts.headers).is_some_and(|n| n > self.max_body as u64) {
            return Err(self.too_large());
        }
        Ok(Admitted { workflow, hook_id })
    }

    /// A configured secret's value; 503 naming where it is configured (`at`) when
    /// it cannot be read, never its value.
    async fn secret(
        &self,
        reference: &SecretRef,
        at: &str,
        hook_id: &str,
    ) -> Result<Arc<str>, Response<Bytes>> {
        self.secrets.value(reference).await.map_err(|e| {
            tracing::error!(hook_id, at, error = %e, "a configured secret cannot be read");
            reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the secret at {at} cannot be read now; retry later"),
            )
        })
    }

    /// `trigger.signature` over the exact bytes received (inbound.md §2).
    async fn check_signature(
        &self,
        config: &SignatureConfig,
        request: &Request<Bytes>,
        hook_id: &str,
    ) -> Result<(), Response<Bytes>> {
        let mut secrets = Vec::new();
        for (i, reference) in config.secret.refs().iter().enumerate() {
            let at = match &config.secret {
                Secrets::One(_) => "trigger.signature.secret".to_string(),
                Secrets::Many(_) => format!("trigger.signature.secret[{i}]"),
            };
            secrets.push(self.secret(reference, &at, hook_id).await?);
        }
        // Only Twilio signs the URL and the form fields.
        let (form, url) = if config.preset == SignaturePreset::Twilio {
            (
                context::form_fields(request),
                context::received_url(request),
            )
        } else {
            (Vec::new(), String::new())
        };
        let signed = signature::Signed {
            headers: request.headers(),
            body: request.body(),
            url: &url,
            form: &form,
            now: crate::time::unix_seconds(),
        };
        signature::verify(config, &secrets, &signed).map_err(|failure| {
            tracing::warn!(hook_id, reason = failure.class(), "signature refused");
            reply::error(StatusCode::UNAUTHORIZED, &failure.message())
        })
    }

    fn too_large(&self) -> Response<Bytes> {
        let message = format!("the request body is larger than {} bytes", self.max_body);
        reply::error(StatusCode::PAYLOAD_TOO_LARGE, &message)
    }

    async fn answer(&self, admitted: Admitted, request: Request<Bytes>) -> Response<Bytes> {
        let Admitted { workflow, hook_id } = admitted;
        if request.body().len() > self.max_body {
            return self.too_large();
        }
        if let Some(config) = &workflow.definition.trigger.signature
            && let Err(refused) = self.check_signature(config, &request, &hook_id).await
        {
            return refused;
        }
        let context = match context::trigger_context(&request, &workflow.definition.trigger).await {
            Ok(c) => c,
            Err(message) => return reply::error(StatusCode::BAD_REQUEST, &message),
        };
        if workflow.definition.sync {
            let deadline = request.extensions().get::<Deadline>().copied();
            self.run_sync(&workflow, context, deadline).await
        } else {
            self.accept_async(&workflow, context).await
        }
    }

    async fn run_sync(
        &self,
        workflow: &DeployedWorkflow,
        context: Value,
        deadline: Option<Deadline>,
    ) -> Response<Bytes> {
        let id = new_execution_id();
        let execution = Runner::started(workflow, &id, context, now_rfc3339());
        let timeout = sync_time_limit(workflow.definition.sync_timeout_ms(), deadline);
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

    async fn accept_async(&self, workflow: &DeployedWorkflow, context: Value) -> Response<Bytes> {
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
