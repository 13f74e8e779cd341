//! What admit and accept both check a caller against: the hook's configured
//! secrets (read through a cache) and its rate buckets. A check that fails is
//! counted against the caller's source address, one that passes against the
//! hook (see [`RateLimiter`]).

use std::sync::Arc;
use std::time::Instant;

use super::access::{Caller, RateLimiter, SourceIp};
use super::refusal::Refusal;
use super::secrets::SecretCache;
use crate::model::{DeployedWorkflow, HandshakeConfig, HandshakePreset, RateLimit, SecretRef};

pub(super) struct Callers {
    secrets: SecretCache,
    rates: RateLimiter,
}

impl Callers {
    pub(super) fn new(secrets: SecretCache) -> Self {
        Self {
            secrets,
            rates: RateLimiter::default(),
        }
    }

    /// Whether a caller not yet proven may go on. Nothing is taken from the
    /// hook's own bucket until the caller has passed its checks; a GET handshake
    /// proves nothing, so it spends its source's (`spends`).
    pub(super) fn room(
        &self,
        hook_id: &str,
        limit: RateLimit,
        source: Option<SourceIp>,
        spends: bool,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        let unproven = Caller::Unproven(source);
        let room = if spends {
            self.rates.take(hook_id, unproven, limit, now)
        } else {
            self.rates
                .room(hook_id, Caller::Proven, limit, now)
                .and(self.rates.room(hook_id, unproven, limit, now))
        };
        room.map_err(|wait| Refusal::RateLimited { wait })
    }

    /// Counts a failed check (Basic auth, the signature) against the caller's
    /// source address, never against the hook's own bucket.
    pub(super) fn count_failure(
        &self,
        workflow: &DeployedWorkflow,
        hook_id: &str,
        source: Option<SourceIp>,
    ) {
        if let Some(limit) = workflow.definition.trigger.rate_limit {
            // Already refused: an empty bucket only makes the next try wait.
            let _ = self
                .rates
                .take(hook_id, Caller::Unproven(source), limit, Instant::now());
        }
    }

    /// Takes a token from the hook's bucket for a caller that passed every check;
    /// the 429 when there is none.
    pub(super) fn take_proven(
        &self,
        workflow: &DeployedWorkflow,
        hook_id: &str,
    ) -> Result<(), Refusal> {
        let Some(limit) = workflow.definition.trigger.rate_limit else {
            return Ok(());
        };
        self.rates
            .take(hook_id, Caller::Proven, limit, Instant::now())
            .map_err(|wait| Refusal::RateLimited { wait })
    }

    /// A configured secret's value; 503 naming where it is configured (`at`) when
    /// it cannot be read, never its value.
    pub(super) async fn secret(
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

    /// The secret a handshake signs the sender's token with. Never one that signs
    /// bodies over a token anyone may send: `crc` (an unsigned GET) has only its
    /// own (and when X gives both one value, `handshake::check_signed_body`
    /// keeps its answers from serving as signatures); `zoom` is answered only on
    /// a hook that checked Zoom's signature first, so its token is Zoom's, and it
    /// may use the signature's first secret.
    pub(super) async fn handshake_secret(
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
}
