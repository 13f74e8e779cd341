//! Accept: the checks an admitted request's body decides, in the spec's order:
//! its size, `trigger.signature` over the exact bytes received, a sender's
//! POST check (answered here), the body read into `$context` by its content
//! type, and `$context.body` against `trigger.schema`. What passes is an
//! [`Event`] to dispatch; a body that does not match, refused (422) or, with
//! `trigger.onInvalid: "keep"`, an event to record as `invalid`.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use serde_json::Value;

use super::access::SourceIp;
use super::admit::Admitted;
use super::callers::Callers;
use super::context;
use super::deadline::Deadline;
use super::handshake;
use super::idempotency;
use super::refusal::Refusal;
use super::signature;
use crate::app::invalid::body_mismatch;
use crate::app::redaction::{Redaction, Sealer};
use crate::model::{
    DeployedWorkflow, Mismatch, OnInvalid, Secrets, SignatureConfig, SignaturePreset,
};
use crate::ports::secrets::SecretError;

/// A delivery that passed every check, with its context built: what runs.
pub(super) struct Event {
    pub workflow: Arc<DeployedWorkflow>,
    pub context: Value,
    /// Its idempotency key, when the hook keeps one and the delivery has one.
    pub key: Option<String>,
    pub deadline: Option<Deadline>,
    /// For a hook that redacts (`trigger.redact`): what its run's records keep.
    pub redaction: Option<Arc<Redaction>>,
}

pub(super) enum Accepted {
    Event(Event),
    /// A body that does not match `trigger.schema`, to keep (`onInvalid: keep`).
    Invalid(Event, Mismatch),
    /// A sender's POST check, answered.
    Answered(Response<Bytes>),
}

pub(super) struct Accept {
    callers: Arc<Callers>,
    sealer: Arc<Sealer>,
}

impl Accept {
    pub(super) fn new(callers: Arc<Callers>, sealer: Arc<Sealer>) -> Self {
        Self { callers, sealer }
    }

    pub(super) async fn check(
        &self,
        admitted: Admitted,
        request: Request<Bytes>,
    ) -> Result<Accepted, Refusal> {
        let Admitted {
            workflow,
            hook_id,
            max_body,
        } = admitted;
        if request.body().len() > max_body {
            return Err(Refusal::TooLarge { limit: max_body });
        }
        let trigger = &workflow.definition.trigger;
        if let Some(config) = &trigger.signature {
            self.check_signed(config, &workflow, &request, &hook_id)
                .await?;
        }
        if let Some(handshake) = trigger.handshake.as_ref().filter(|h| !h.preset.is_get()) {
            let query = request.uri().query().unwrap_or("");
            // A quick look first, so events pay no parse and no secret read.
            if handshake::is_post_check(handshake.preset, query, request.body()) {
                let secret = self
                    .callers
                    .handshake_secret(handshake, &workflow, &hook_id)
                    .await?;
                let body = request.body();
                if let Some(answer) =
                    handshake::answer_post(handshake.preset, query, body, secret.as_deref())
                {
                    tracing::info!(hook_id, "handshake answered");
                    return Ok(Accepted::Answered(answer));
                }
            }
        }
        let context = context::trigger_context(&request, trigger)
            .await
            .map_err(Refusal::BadBody)?;
        let mismatch = body_mismatch(&workflow, &context).map_err(|problem| {
            // `validate` refuses such a schema: a definition deployed past it.
            tracing::error!(hook_id, %problem, "the workflow's trigger.schema cannot be used");
            Refusal::Internal
        })?;
        let key = idempotency::key_of(trigger, request.headers(), request.body(), &context);
        let deadline = request.extensions().get::<Deadline>().copied();
        let redaction = self.redaction(&workflow, &context, &hook_id).await?;
        let on_invalid = trigger.on_invalid;
        let event = Event {
            workflow,
            context,
            key,
            deadline,
            redaction,
        };
        match (mismatch, on_invalid) {
            (None, _) => Ok(Accepted::Event(event)),
            (Some(mismatch), OnInvalid::Refuse) => {
                // Not the path itself: a body's keys (a sender's text, maybe a
                // redacted value) are in it.
                tracing::info!(
                    hook_id,
                    depth = mismatch.instance_path.matches('/').count(),
                    "body refused by trigger.schema"
                );
                Err(Refusal::BodyMismatch(mismatch))
            }
            (Some(mismatch), OnInvalid::Keep) => Ok(Accepted::Invalid(event, mismatch)),
        }
    }

    /// The values `trigger.redact` finds in this delivery, with the keys it takes:
    /// its `hash` key and the key runs are sealed with.
    async fn redaction(
        &self,
        workflow: &DeployedWorkflow,
        context: &Value,
        hook_id: &str,
    ) -> Result<Option<Arc<Redaction>>, Refusal> {
        let Some(config) = &workflow.definition.trigger.redact else {
            return Ok(None);
        };
        let hash_key = match &config.key {
            Some(reference) => Some(
                self.callers
                    .secret(reference, "trigger.redact.key", hook_id)
                    .await?,
            ),
            None => None,
        };
        let unavailable = |e: crate::app::redaction::RedactionError| {
            tracing::error!(hook_id, error = %e, "a delivery to a hook that redacts cannot be kept");
            Refusal::SecretUnavailable {
                at: "trigger.redact".into(),
                source: SecretError::Unavailable(e.to_string()),
            }
        };
        let key = self.sealer.key().await.map_err(unavailable)?;
        let hash_key = hash_key.as_deref().map(str::as_bytes);
        Redaction::new(config, context, hash_key, key)
            .map(|r| Some(Arc::new(r)))
            .map_err(unavailable)
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
            self.callers.count_failure(workflow, hook_id, source);
        }
        checked?;
        self.callers.take_proven(workflow, hook_id)
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
            secrets.push(self.callers.secret(reference, &at, hook_id).await?);
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
}
