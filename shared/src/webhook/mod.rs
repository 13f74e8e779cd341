//! The webhook endpoint (spec sections 3, 4 and 6) as one function from an HTTP
//! request to an HTTP response, on the `http` crate's types: the webhook Lambda and
//! `hookflow serve` convert their own types at their edges and run exactly this code.
//!
//! A request goes through three stages, each refusing with a [`Refusal`]:
//! admit (admit.rs: its head alone), accept (accept.rs: its body) and dispatch
//! (dispatch/: the run, sync, async or keyed). [`WebhookService`] composes
//! them, answers panics and counts every answer.

mod accept;
mod access;
mod admit;
mod auth;
mod cache;
mod callers;
mod context;
mod deadline;
mod dispatch;
mod handshake;
pub mod idempotency;
mod refusal;
mod reply;
mod route;
mod secrets;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

use crate::app::runner::Runner;
use crate::ports::secrets::SecretSource;
use crate::ports::telemetry::UNKNOWN_HOOK;
use crate::ports::{NoTelemetry, Queue, Store, Telemetry};

use accept::{Accept, Accepted};
use admit::{Admit, Head};
use callers::Callers;
use dispatch::Dispatch;

pub use access::SourceIp;
pub use admit::{Admitted, declared_length};
pub use cache::HookCache;
pub use deadline::{DEADLINE_MARGIN, Deadline, sync_time_limit};
pub use refusal::Refusal;
pub use route::hook_id_from_path;
pub use secrets::SecretCache;

/// A hook's body limit when its trigger sets none (`maxBodyBytes`): 1 MiB.
pub const DEFAULT_MAX_BODY: usize = crate::model::RequestDeclarations::DEFAULT_MAX_BODY_BYTES;
/// The most any hook may take by default: 6 MiB, a Lambda's request limit.
pub const MAX_BODY_CEILING: usize = crate::model::RequestDeclarations::MAX_BODY_BYTES;

/// The answer to a request given before its body was read: a refusal, or a
/// sender's GET handshake.
pub type EarlyAnswer = Box<Response<Bytes>>;

pub struct WebhookService {
    admit: Admit,
    accept: Accept,
    dispatch: Dispatch,
    telemetry: Arc<dyn Telemetry>,
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        runner: Arc<Runner>,
        hook_cache_ttl: Duration,
        body_ceiling: usize,
        secrets: Arc<dyn SecretSource>,
        sealer: Arc<crate::app::redaction::Sealer>,
    ) -> Self {
        let callers = Arc::new(Callers::new(SecretCache::new(secrets, hook_cache_ttl)));
        let hooks = HookCache::new(hook_cache_ttl);
        Self {
            admit: Admit::new(
                Arc::clone(&store),
                hooks,
                Arc::clone(&callers),
                body_ceiling,
            ),
            accept: Accept::new(callers, sealer),
            dispatch: Dispatch::new(store, queue, runner),
            telemetry: Arc::new(NoTelemetry),
        }
    }

    /// Counts every answer (see [`Telemetry::request`]) and every sync run
    /// recorded.
    pub fn with_telemetry(mut self, telemetry: Arc<dyn Telemetry>) -> Self {
        self.dispatch.telemetry = Arc::clone(&telemetry);
        self.telemetry = telemetry;
        self
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
    pub async fn admit(&self, parts: &http::request::Parts) -> Result<Admitted, EarlyAnswer> {
        let (answer, hook) = match crate::guard::catch(self.admit.check(parts)).await {
            Ok(Head::Admitted(admitted)) => return Ok(admitted),
            Ok(Head::Answered { hook_id, answer }) => (answer, Some(hook_id)),
            Ok(Head::Refused { hook_id, refusal }) => (refusal.into_response(), hook_id),
            Err(panic) => (internal_error(&panic), None),
        };
        let hook = hook.as_deref().unwrap_or(UNKNOWN_HOOK);
        self.telemetry.request(hook, answer.status().as_u16());
        Err(Box::new(answer))
    }

    /// Answers an admitted request, with its body read (at most one byte past
    /// [`Admitted::max_body`]).
    pub async fn complete(&self, admitted: Admitted, request: Request<Bytes>) -> Response<Bytes> {
        let hook = admitted.workflow.hook_id.clone();
        let answered = crate::guard::catch(async {
            match self.accept.check(admitted, request).await? {
                Accepted::Event(event) => self.dispatch.run(event).await,
                Accepted::Invalid(event, mismatch) => self.dispatch.keep(event, &mismatch).await,
                Accepted::Answered(answer) => Ok(answer),
            }
        });
        let response = match answered.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(refusal)) => {
                if matches!(refusal, Refusal::BodyMismatch(_)) {
                    self.telemetry.body_mismatch(&hook, false);
                }
                refusal.into_response()
            }
            Err(panic) => internal_error(&panic),
        };
        self.telemetry.request(&hook, response.status().as_u16());
        response
    }
}

fn internal_error(panic: &str) -> Response<Bytes> {
    tracing::error!(panic, "a request failed on an internal error");
    Refusal::Internal.into_response()
}
