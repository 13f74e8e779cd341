//! The webhook endpoint (spec sections 3, 4 and 6) as one function from an HTTP
//! request to an HTTP response, on the `http` crate's types: the webhook Lambda and
//! `hookflow serve` convert their own types at their edges and run exactly this code.

mod access;
mod auth;
mod cache;
mod context;
mod handshake;
mod idempotency;
mod refusal;
mod reply;
mod route;
mod secrets;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::app::failures;
use crate::app::ids::new_execution_id;
use crate::app::runner::Runner;
use crate::model::{
    Claim, ClaimOutcome, DeployedWorkflow, HandshakeConfig, HandshakePreset, KeyedAccept,
    RunMessage, SecretRef, Secrets, SignatureConfig, SignaturePreset, is_hook_id,
};
use crate::ports::secrets::SecretSource;
use crate::ports::telemetry::{UNKNOWN_HOOK, count_recorded};
use crate::ports::{NoTelemetry, Queue, Store, Telemetry};
use crate::time::now_rfc3339;

use access::Caller;
pub use access::SourceIp;
pub use cache::HookCache;
pub use refusal::Refusal;
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

/// The answer to a request given before its body was read: a refusal, or a
/// sender's GET handshake.
pub type EarlyAnswer = Box<Response<Bytes>>;

/// How long past its sync timeout an unanswered claim holds (the run records
/// itself and answers within it); after that its process is taken to be gone.
const CLAIM_LEASE_MARGIN_SECONDS: u64 = 10;

/// How long a pending async claim is "being accepted" (duplicates get 409): its
/// first request has answered by then (its enqueue is bounded by
/// [`ACCEPT_ENQUEUE_LIMIT`]), and after it a claim whose run no worker confirmed
/// may be taken over.
const ACCEPT_WINDOW_SECONDS: u64 = 2;
const ACCEPT_ENQUEUE_LIMIT: Duration = Duration::from_millis(1_500);

/// Tries at giving up a claim whose run could not be enqueued.
const RELEASE_TRIES: u32 = 3;

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

fn internal_error(panic: &str) -> Refusal {
    tracing::error!(panic, "a request failed on an internal error");
    Refusal::Internal
}

/// What the checks on a request's head decided, short of admitting it.
enum Stop {
    Refused(Refusal),
    /// A sender's GET check, answered from the head.
    Answered(Response<Bytes>),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl Stop {
    fn into_response(self) -> Response<Bytes> {
        match self {
            Self::Refused(refusal) => refusal.into_response(),
            Self::Answered(answer) => answer,
        }
    }
}

pub struct WebhookService {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    runner: Arc<Runner>,
    hooks: HookCache,
    secrets: SecretCache,
    rates: access::RateLimiter,
    max_body: usize,
    telemetry: Arc<dyn Telemetry>,
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
            rates: access::RateLimiter::default(),
            max_body,
            telemetry: Arc::new(NoTelemetry),
        }
    }

    /// Counts every answer (see [`Telemetry::request`]).
    pub fn with_telemetry(mut self, telemetry: Arc<dyn Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
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
    pub async fn admit(&self, parts: &http::request::Parts) -> Result<Admitted, EarlyAnswer> {
        let (stop, hook) = match crate::guard::catch(self.check_head(parts)).await {
            Ok(Ok(admitted)) => return Ok(admitted),
            Ok(Err((stop, hook))) => (stop, hook),
            Err(panic) => (internal_error(&panic).into(), None),
        };
        let answer = stop.into_response();
        let hook = hook.as_deref().unwrap_or(UNKNOWN_HOOK);
        self.telemetry.request(hook, answer.status().as_u16());
        Err(Box::new(answer))
    }

    /// Answers an admitted request, with its body read (at most one byte past
    /// [`WebhookService::max_body`]).
    pub async fn complete(&self, admitted: Admitted, request: Request<Bytes>) -> Response<Bytes> {
        let hook = admitted.workflow.hook_id.clone();
        let response = match crate::guard::catch(self.answer(admitted, request)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(refusal)) => refusal.into_response(),
            Err(panic) => internal_error(&panic).into_response(),
        };
        self.telemetry.request(&hook, response.status().as_u16());
        response
    }

    /// The head's checks; a refusal carries the hook id when it names a deployed,
    /// enabled workflow (the label it is counted under).
    async fn check_head(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Admitted, (Stop, Option<String>)> {
        let (workflow, hook_id) = self.find_hook(parts).await.map_err(|r| (r.into(), None))?;
        match self.check_caller(parts, &workflow, &hook_id).await {
            Ok(()) => Ok(Admitted { workflow, hook_id }),
            Err(refused) => Err((refused, Some(hook_id))),
        }
    }

    /// Route, method and hook lookup: the enabled workflow a request is for.
    async fn find_hook(
        &self,
        parts: &http::request::Parts,
    ) -> Result<(Arc<DeployedWorkflow>, String), Refusal> {
        let Some(hook_id) = route::hook_id_from_path(parts.uri.path()) else {
            return Err(Refusal::NoSuchEndpoint);
        };
        // A GET is allowed only on a hook whose sender checks it with one
        // (inbound.md §4), so it is known after the lookup; 405 comes first for
        // anything else, as in part 1.
        let is_post = parts.method == Method::POST;
        // An id no workflow can have is not looked up (nor cached): 404 at once,
        // the answer any unknown id gets.
        let unknown = || match is_post {
            true => Refusal::UnknownHook,
            false => Refusal::MethodNotAllowed { get_too: false },
        };
        if !is_hook_id(&hook_id) {
            return Err(unknown());
        }
        let workflow = match self.hooks.get(self.store.as_ref(), &hook_id).await {
            Ok(Some(w)) if w.definition.enabled => w,
            Ok(_) => return Err(unknown()),
            Err(e) => {
                tracing::error!(error = %e, "hook lookup failed");
                return Err(Refusal::StoreUnavailable(e));
            }
        };
        Ok((workflow, hook_id))
    }

    /// What the hook's trigger asks of the caller: method, address, rate, a GET
    /// handshake (answered here), Basic auth, a declared length within bounds.
    async fn check_caller(
        &self,
        parts: &http::request::Parts,
        workflow: &DeployedWorkflow,
        hook_id: &str,
    ) -> Result<(), Stop> {
        let is_post = parts.method == Method::POST;
        let is_get = parts.method == Method::GET;
        let trigger = &workflow.definition.trigger;
        let get_handshake = trigger.handshake.as_ref().filter(|h| h.preset.is_get());
        if !(is_post || is_get && get_handshake.is_some()) {
            let get_too = get_handshake.is_some();
            return Err(Refusal::MethodNotAllowed { get_too }.into());
        }
        if !trigger.allow_ips.is_empty()
            && !access::allowed(
                parts.extensions.get::<SourceIp>().copied(),
                &trigger.allow_ips,
            )
        {
            tracing::warn!(hook_id, "a request from outside allowIps was refused");
            return Err(Refusal::AddressNotAllowed.into());
        }
        let source = parts.extensions.get::<SourceIp>().copied();
        let handshake = get_handshake.filter(|_| is_get);
        if let Some(limit) = trigger.rate_limit {
            // Nothing is taken from the hook's own bucket until the caller has
            // passed its checks; a GET handshake proves nothing, so it spends its
            // source's (see access::RateLimiter).
            let now = Instant::now();
            let unproven = Caller::Unproven(source);
            let room = match handshake {
                Some(_) => self.rates.take(hook_id, unproven, limit, now),
                None => self
                    .rates
                    .room(hook_id, Caller::Proven, limit, now)
                    .and(self.rates.room(hook_id, unproven, limit, now)),
            };
            room.map_err(|wait| Refusal::RateLimited { wait })?;
        }
        if let Some(handshake) = handshake {
            let answer = self
                .get_handshake(handshake, workflow, parts, hook_id)
                .await?;
            return Err(Stop::Answered(answer));
        }
        if let Some(expected) = &trigger.basic_authentication {
            let password = self
                .secret(
                    &expected.password,
                    "trigger.basicAuthentication.password",
                    hook_id,
                )
                .await?;
            if !auth::basic_matches(&parts.headers, &expected.username, &password) {
                self.count_failure(workflow, hook_id, source);
                return Err(Refusal::BadCredentials.into());
            }
        }
        if declared_length(&parts.headers).is_some_and(|n| n > self.max_body as u64) {
            return Err(self.too_large().into());
        }
        if trigger.signature.is_none() {
            // Nothing more to check: the caller is as proven as it gets.
            self.take_proven(workflow, hook_id)?;
        }
        Ok(())
    }

    /// Counts a failed check (Basic auth, the signature) against the caller's
    /// source address, never against the hook's own bucket.
    fn count_failure(&self, workflow: &DeployedWorkflow, hook_id: &str, source: Option<SourceIp>) {
        if let Some(limit) = workflow.definition.trigger.rate_limit {
            // Already refused: an empty bucket only makes the next try wait.
            let _ = self
                .rates
                .take(hook_id, Caller::Unproven(source), limit, Instant::now());
        }
    }

    /// Takes a token from the hook's bucket for a caller that passed every check;
    /// the 429 when there is none.
    fn take_proven(&self, workflow: &DeployedWorkflow, hook_id: &str) -> Result<(), Refusal> {
        let Some(limit) = workflow.definition.trigger.rate_limit else {
            return Ok(());
        };
        self.rates
            .take(hook_id, Caller::Proven, limit, Instant::now())
            .map_err(|wait| Refusal::RateLimited { wait })
    }

    /// The secret a handshake signs the sender's token with. Never one that signs
    /// bodies over a token anyone may send: `crc` (an unsigned GET) has only its
    /// own (and when X gives both one value, [`handshake::check_signed_body`]
    /// keeps its answers from serving as signatures); `zoom` is answered only on
    /// a hook that checked Zoom's signature first, so its token is Zoom's, and it
    /// may use the signature's first secret.
    async fn handshake_secret(
        &self,
        handshake: &HandshakeConfig,
        workflow: &DeployedWorkflow,
        hook_id: &str,
    ) -> Result<Option<Arc<str>>, Refusal> {
        if !handshake.preset.needs_secret() {
            return Ok(None);
        }
        let signature = workflow.definition.trigger.signature.as_ref();
        let (reference, at) = match (handshake.preset, &handshake.secret, signature) {
            (HandshakePreset::Zoom, _, None) => return Err(Refusal::ZoomUnsigned),
            (_, Some(own), _) => (own, "trigger.handshake.secret"),
            (HandshakePreset::Zoom, None, Some(signature)) => {
                (&signature.secret.refs()[0], "trigger.signature.secret")
            }
            _ => return Ok(None),
        };
        self.secret(reference, at, hook_id).await.map(Some)
    }

    async fn get_handshake(
        &self,
        handshake: &HandshakeConfig,
        workflow: &DeployedWorkflow,
        parts: &http::request::Parts,
        hook_id: &str,
    ) -> Result<Response<Bytes>, Refusal> {
        let verify_token = match &handshake.verify_token {
            Some(token) => Some(
                self.secret(token, "trigger.handshake.verifyToken", hook_id)
                    .await?,
            ),
            None => None,
        };
        let secret = self.handshake_secret(handshake, workflow, hook_id).await?;
        let answer = handshake::answer_get(
            handshake.preset,
            parts.uri.query().unwrap_or(""),
            handshake::GetSecrets {
                verify_token: verify_token.as_deref(),
                secret: secret.as_deref(),
            },
        );
        let status = match &answer {
            Ok(answer) => answer.status(),
            Err(refusal) => refusal.status(),
        };
        tracing::info!(hook_id, status = status.as_u16(), "handshake answered");
        answer
    }

    /// A configured secret's value; 503 naming where it is configured (`at`) when
    /// it cannot be read, never its value.
    async fn secret(
        &self,
        reference: &SecretRef,
        at: &str,
        hook_id: &str,
    ) -> Result<Arc<str>, Refusal> {
        self.secrets.value(reference).await.map_err(|source| {
            tracing::error!(hook_id, at, error = %source, "a configured secret cannot be read");
            Refusal::SecretUnavailable {
                at: at.to_string(),
                source,
            }
        })
    }

    /// `trigger.signature` over the exact bytes received (inbound.md §2).
    async fn check_signature(
        &self,
        config: &SignatureConfig,
        request: &Request<Bytes>,
        hook_id: &str,
    ) -> Result<(), Refusal> {
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
        let now = crate::time::unix_seconds();
        let checked = signature::verify_request(config, secrets, request, url, form, now).await;
        checked.map_err(|failure| {
            tracing::warn!(hook_id, reason = failure.class(), "signature refused");
            Refusal::BadSignature(failure)
        })
    }

    /// The signature, and what a hook with a `crc` handshake adds to it; a caller
    /// that passes takes a token from the hook's rate limit, one that fails from
    /// its source's.
    async fn check_signed(
        &self,
        config: &SignatureConfig,
        workflow: &DeployedWorkflow,
        request: &Request<Bytes>,
        hook_id: &str,
    ) -> Result<(), Refusal> {
        let mut checked = self.check_signature(config, request, hook_id).await;
        if checked.is_ok()
            && let Some(handshake) = &workflow.definition.trigger.handshake
            && let Err(refused) = handshake::check_signed_body(handshake.preset, request.body())
        {
            tracing::warn!(
                hook_id,
                "a signed body that is not a JSON object was refused on a crc hook"
            );
            checked = Err(refused);
        }
        if checked.is_err() {
            let source = request.extensions().get::<SourceIp>().copied();
            self.count_failure(workflow, hook_id, source);
        }
        checked?;
        self.take_proven(workflow, hook_id)
    }

    fn too_large(&self) -> Refusal {
        Refusal::TooLarge {
            limit: self.max_body,
        }
    }

    async fn answer(
        &self,
        admitted: Admitted,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, Refusal> {
        let Admitted { workflow, hook_id } = admitted;
        if request.body().len() > self.max_body {
            return Err(self.too_large());
        }
        let trigger = &workflow.definition.trigger;
        if let Some(config) = &trigger.signature {
            self.check_signed(config, &workflow, &request, &hook_id)
                .await?;
        }
        if let Some(handshake) = trigger.handshake.as_ref().filter(|h| !h.preset.is_get())
            && handshake::is_post_check(
                handshake.preset,
                request.uri().query().unwrap_or(""),
                request.body(),
            )
        {
            let secret = self
                .handshake_secret(handshake, &workflow, &hook_id)
                .await?;
            let query = request.uri().query().unwrap_or("");
            if let Some(answer) =
                handshake::answer_post(handshake.preset, query, request.body(), secret.as_deref())
            {
                tracing::info!(hook_id, "handshake answered");
                return Ok(answer);
            }
        }
        let context = context::trigger_context(&request, trigger)
            .await
            .map_err(Refusal::BadBody)?;
        let key = idempotency::key_of(trigger, request.headers(), request.body(), &context);
        let deadline = request.extensions().get::<Deadline>().copied();
        match key {
            Some(key) => self.run_once(&workflow, context, key, deadline).await,
            None if workflow.definition.sync => {
                self.run_sync(&workflow, context, deadline, new_execution_id(), None)
                    .await
            }
            None => {
                let message = async_message(&workflow, context, new_execution_id(), None);
                self.enqueue(&message, None).await?;
                Ok(async_answer(&workflow, &message))
            }
        }
    }

    /// A delivery with an idempotency key: the first runs, the others get its
    /// answer (inbound.md §5), but only an answer that means "done": a run that
    /// failed on the server's side (5xx, a timeout) gives its key up, so the
    /// sender's retry runs.
    async fn run_once(
        &self,
        workflow: &DeployedWorkflow,
        context: Value,
        key: String,
        deadline: Option<Deadline>,
    ) -> Result<Response<Bytes>, Refusal> {
        let now = crate::time::unix_seconds().max(0) as u64;
        let definition = &workflow.definition;
        let ttl = definition.idempotency_ttl();
        let id = new_execution_id();
        let lease_until = if definition.sync {
            now.saturating_add(definition.sync_timeout_ms().div_ceil(1000))
                .saturating_add(CLAIM_LEASE_MARGIN_SECONDS)
        } else {
            now.saturating_add(ACCEPT_WINDOW_SECONDS)
        };
        let mut claim = Claim {
            workflow_key: workflow.key.clone(),
            key: key.clone(),
            execution_id: id.clone(),
            // Never shorter than the first request's own answering.
            expires_at: now.saturating_add(ttl).max(lease_until),
            lease_until,
            answer: None,
            pending: false,
        };
        if !definition.sync {
            let message = async_message(workflow, context, id, Some(key));
            return self
                .accept_once(workflow, claim, &message, now, deadline)
                .await;
        }
        match self.store.claim(&claim, now).await {
            Ok(ClaimOutcome::Claimed) => {}
            Ok(ClaimOutcome::Held(held)) => return duplicate(workflow, &held, now),
            Err(e) => return Err(claims_unavailable(workflow, e)),
        }
        let answered = self
            .run_sync(workflow, context, deadline, id.clone(), Some(key))
            .await;
        // Only an answer that means "done" is kept: every refusal of a sync run
        // is the server's (5xx), as is a run that ended in error.
        let response = match answered {
            Ok(response) if !response.status().is_server_error() => response,
            failed => {
                self.release(&claim).await;
                return failed;
            }
        };
        claim.answer = Some(idempotency::keep(&response, &id));
        // Answered now: duplicates get this from here on.
        claim.lease_until = 0;
        if let Err(e) = self.store.settle_claim(&claim).await {
            // The run is recorded; a duplicate after the lease runs it again.
            tracing::error!(execution_id = %id, error = %e, "cannot keep the answer of an idempotent run");
        }
        Ok(response)
    }

    /// A keyed async delivery: its claim, with its answer known before the run is
    /// queued, and the run. On the embedded store both are one write. Elsewhere
    /// the claim is pending until the worker that takes the run confirms it, and
    /// stands for nothing meanwhile: when the enqueue fails (or times out and may
    /// yet land), the claim is left to end with its lease, after which a retry
    /// takes the key over and runs, and this run, if it was queued after all, is
    /// dropped by its worker. No duplicate is ever answered for a run that was
    /// not queued, and no delivery runs twice.
    async fn accept_once(
        &self,
        workflow: &DeployedWorkflow,
        mut claim: Claim,
        message: &RunMessage,
        now: u64,
        deadline: Option<Deadline>,
    ) -> Result<Response<Bytes>, Refusal> {
        let answer = async_answer(workflow, message);
        claim.answer = Some(idempotency::keep(&answer, &message.execution_id));
        match self.store.claim_run(&claim, message, now).await {
            Ok(KeyedAccept::Queued) => return Ok(answer),
            Ok(KeyedAccept::Held(held)) => return duplicate(workflow, &held, now),
            Ok(KeyedAccept::Claimed) => {}
            Err(e) => return Err(claims_unavailable(workflow, e)),
        }
        // Bounded, so the answer comes within the claim's lease (and before a
        // Lambda deadline). A retry waits for the claim's lease to end.
        let limit = sync_time_limit(ACCEPT_ENQUEUE_LIMIT.as_millis() as u64, deadline);
        let retry_after = ACCEPT_WINDOW_SECONDS;
        match tokio::time::timeout(limit, self.enqueue(message, Some(retry_after))).await {
            Ok(queued) => queued.map(|()| answer),
            Err(_) => {
                tracing::error!(execution_id = %message.execution_id, "enqueueing a keyed run took too long");
                Err(Refusal::NotQueuedInTime { retry_after })
            }
        }
    }

    /// Gives up a claim whose run was not recorded or enqueued, so the sender's
    /// retry runs; tried a few times, as a claim left behind would answer that
    /// retry with an answer for a run that never happened.
    async fn release(&self, claim: &Claim) {
        for attempt in 1..=RELEASE_TRIES {
            match self.store.release_claim(claim).await {
                Ok(()) => return,
                Err(e) if attempt == RELEASE_TRIES => {
                    tracing::error!(execution_id = %claim.execution_id, expires_at = claim.expires_at, error = %e,
                        "cannot release the idempotency claim of a run that was not queued; duplicates of its delivery will be answered as the first was until it expires");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await,
            }
        }
    }

    /// Runs a sync workflow and records it: its answer, or why it has none (each
    /// refusal a 5xx).
    async fn run_sync(
        &self,
        workflow: &DeployedWorkflow,
        context: Value,
        deadline: Option<Deadline>,
        id: String,
        idempotency_key: Option<String>,
    ) -> Result<Response<Bytes>, Refusal> {
        let mut execution = Runner::started(workflow, &id, context, now_rfc3339());
        execution.idempotency_key = idempotency_key;
        let timeout = sync_time_limit(workflow.definition.sync_timeout_ms(), deadline);
        let finished = self.runner.run(execution, workflow, Some(timeout)).await;
        if let Err(e) = self.store.save_execution(&finished.execution).await {
            tracing::error!(execution_id = %id, error = %e, "cannot record a sync execution");
            if !e.is_retryable() {
                return Err(self.record_refused(&finished.execution, &e).await);
            }
            return Err(Refusal::NotRecorded);
        }
        count_recorded(self.telemetry.as_ref(), &finished.execution);
        // Once the run is recorded; a start that cannot be queued is logged and the
        // answer stands (the run happened).
        let failures = failures::after_final_save(
            self.store.as_ref(),
            self.queue.as_ref(),
            &finished.execution,
        );
        if let Err(e) = failures.await {
            tracing::error!(execution_id = %id, error = %e, "cannot start the failure workflow of a failed sync run");
        }
        let status = finished.execution.status;
        if finished.timed_out {
            return Err(Refusal::TimedOut {
                limit: timeout,
                execution_id: id,
            });
        }
        let response = match finished.reply {
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
        };
        Ok(response)
    }

    /// A sync run whose record the store refused for good (too large, say): a retry
    /// would be refused the same way, so it is recorded small, as `error`, and
    /// answered 500 with the reason rather than 503 "retry later".
    async fn record_refused(
        &self,
        execution: &crate::model::Execution,
        refusal: &crate::ports::StoreError,
    ) -> Refusal {
        let reason = format!("the run could not be recorded: {refusal}");
        let record = crate::app::worker::refused_record(execution, &reason);
        let refused = Refusal::RecordRefused {
            reason: reason.clone(),
            execution_id: record.id.clone(),
        };
        if let Err(e) = self.store.save_execution(&record).await {
            tracing::error!(execution_id = %record.id, error = %e, "cannot record a refused sync execution");
            return refused;
        }
        count_recorded(self.telemetry.as_ref(), &record);
        let failures =
            failures::after_final_save(self.store.as_ref(), self.queue.as_ref(), &record);
        if let Err(e) = failures.await {
            tracing::error!(execution_id = %record.id, error = %e, "cannot start the failure workflow of a failed sync run");
        }
        refused
    }

    async fn enqueue(&self, message: &RunMessage, retry_after: Option<u64>) -> Result<(), Refusal> {
        self.queue.enqueue(message).await.map_err(|e| {
            tracing::error!(execution_id = %message.execution_id, error = %e, "cannot enqueue a run");
            Refusal::NotQueued { retry_after }
        })
    }
}

/// A duplicate's answer: the first's, once it stands, else "in progress".
fn duplicate(
    workflow: &DeployedWorkflow,
    held: &Claim,
    now: u64,
) -> Result<Response<Bytes>, Refusal> {
    tracing::info!(workflow = %workflow.key, execution_id = %held.execution_id, "a duplicate delivery was answered from its first");
    match held.answer_at(now) {
        Some(answer) => Ok(idempotency::replay(answer)),
        None => Err(Refusal::InProgress {
            execution_id: held.execution_id.clone(),
        }),
    }
}

fn claims_unavailable(workflow: &DeployedWorkflow, error: crate::ports::StoreError) -> Refusal {
    tracing::error!(workflow = %workflow.key, error = %error, "cannot claim an idempotency key");
    Refusal::ClaimsUnavailable(error)
}

fn async_message(
    workflow: &DeployedWorkflow,
    context: Value,
    execution_id: String,
    idempotency_key: Option<String>,
) -> RunMessage {
    RunMessage {
        execution_id,
        workflow_key: workflow.key.clone(),
        workflow_version: workflow.version,
        context,
        accepted_at: now_rfc3339(),
        wake: None,
        after: None,
        idempotency_key,
        replay_of: None,
        on_failure_of: None,
    }
}

/// An async workflow's configured immediate answer.
fn async_answer(workflow: &DeployedWorkflow, message: &RunMessage) -> Response<Bytes> {
    let configured = workflow
        .definition
        .trigger
        .response
        .clone()
        .unwrap_or_default();
    reply::trigger_response(&configured, &message.context, &message.execution_id)
}
