//! A delivery with an idempotency key (inbound.md §5): the first runs, the
//! others get its answer, but only an answer that means "done". The protocol
//! is the [`IdempotencyService`](super::super::idempotency::IdempotencyService)'s;
//! this says what each of its outcomes answers.

use std::time::Duration;

use super::super::accept::Event;
use super::super::deadline::sync_time_limit;
use super::super::idempotency::{self, ACCEPT_WINDOW_SECONDS, ClaimState, Claimed, KeyClaim};
use super::super::refusal::Refusal;
use super::{Dispatch, async_answer};
use crate::app::ids::{new_copy_id, new_execution_id};
use crate::app::redaction::Redaction;
use crate::model::{DeployedWorkflow, Mismatch, RunMessage};
use crate::ports::StoreError;
use bytes::Bytes;
use http::Response;

/// How long a keyed run's enqueue may take: its request answers within its
/// claim's accept window.
const ACCEPT_ENQUEUE_LIMIT: Duration = Duration::from_millis(1_500);

impl Dispatch {
    /// A keyed sync delivery: a run that failed on the server's side (5xx, a
    /// timeout) gives its key up, so the sender's retry runs.
    pub(super) async fn run_sync_once(
        &self,
        event: Event,
        key: String,
    ) -> Result<Response<Bytes>, Refusal> {
        let workflow = event.workflow.as_ref();
        let now = unix_now();
        let id = new_execution_id();
        let claim = KeyClaim::sync_run(workflow, key.clone(), id.clone(), now);
        match self.claims.begin(&claim, now).await {
            Ok(Claimed::Held(held)) => return duplicate(workflow, held),
            Ok(_) => {}
            Err(e) => return Err(claims_unavailable(workflow, e)),
        }
        let redaction = event.redaction.clone();
        let run = super::SyncRun {
            context: event.context,
            redaction: event.redaction,
            deadline: event.deadline,
            idempotency_key: Some(key),
        };
        let answered = self.run_sync(workflow, run, id.clone()).await;
        // Only an answer that means "done" is kept: every refusal of a sync run
        // is the server's (5xx), as is a run that ended in error.
        let response = match answered {
            Ok(response) if !response.status().is_server_error() => response,
            failed => {
                self.claims.release(&claim).await;
                return failed;
            }
        };
        self.complete(claim, &response, &id, redaction.as_deref())
            .await;
        Ok(response)
    }

    /// Keeps the answer of a claimed delivery for its duplicates (scrubbed of what
    /// its hook redacts). The delivery is recorded: a claim that cannot be
    /// completed ends with its lease, and a duplicate after it runs again.
    async fn complete(
        &self,
        claim: KeyClaim,
        answer: &Response<Bytes>,
        id: &str,
        redaction: Option<&Redaction>,
    ) {
        let mut kept = idempotency::keep(answer, id);
        if let Some(redaction) = redaction {
            redaction.scrub_answer(&mut kept);
        }
        if let Err(e) = self.claims.complete(claim, kept).await {
            tracing::error!(execution_id = %id, error = %e, "cannot keep the answer of an idempotent delivery");
        }
    }

    /// A keyed delivery kept `invalid` ([`Dispatch::keep`]): kept once, its
    /// duplicates answered as it was (so one delivery is one execution to replay).
    pub(super) async fn keep_once(
        &self,
        event: Event,
        mismatch: &Mismatch,
        key: String,
    ) -> Result<Response<Bytes>, Refusal> {
        let workflow = std::sync::Arc::clone(&event.workflow);
        let now = unix_now();
        let id = new_execution_id();
        let claim = KeyClaim::sync_run(&workflow, key.clone(), id.clone(), now);
        match self.claims.begin(&claim, now).await {
            Ok(Claimed::Held(held)) => return duplicate(&workflow, held),
            Ok(_) => {}
            Err(e) => return Err(claims_unavailable(&workflow, e)),
        }
        let redaction = event.redaction.clone();
        let kept_invalid = self.keep_invalid(event, mismatch, id.clone(), Some(key));
        let answer = match kept_invalid.await {
            Ok(answer) => answer,
            failed => {
                self.claims.release(&claim).await;
                return failed;
            }
        };
        self.complete(claim, &answer, &id, redaction.as_deref())
            .await;
        Ok(answer)
    }

    /// A keyed async delivery: its claim, with its answer known before the run is
    /// queued, and the run. On the embedded store both are one write. Elsewhere
    /// the claim is pending until the worker that takes the run confirms it, and
    /// stands for nothing meanwhile: when the enqueue fails (or times out and may
    /// yet land), the claim is left to end with its lease, after which a retry
    /// queues the same run again, under the same execution id, and gives the same
    /// answer; the worker that takes a copy first runs it, and drops the others.
    /// No duplicate is ever answered for a run that was not queued, every answer
    /// names the one execution, and no delivery runs twice.
    pub(super) async fn accept_once(
        &self,
        event: &Event,
        mut message: RunMessage,
        key: String,
    ) -> Result<Response<Bytes>, Refusal> {
        let (workflow, deadline) = (event.workflow.as_ref(), event.deadline);
        let now = unix_now();
        message.copy_id = Some(new_copy_id());
        // Answered from the real context; kept, and queued, redacted.
        let answer = async_answer(workflow, &message.context, &message.execution_id);
        let id = message.execution_id.clone();
        let mut kept = idempotency::keep(&answer, &id);
        if let Some(redaction) = &event.redaction {
            redaction.scrub_answer(&mut kept);
        }
        super::seal(event, &mut message)?;
        let claim = KeyClaim::async_run(workflow, key, id, now, kept);
        let answer = match self.claims.accept(&claim, &message, now).await {
            Ok(Claimed::Queued) => return Ok(answer),
            Ok(Claimed::Held(held)) => return duplicate(workflow, held),
            Ok(Claimed::Ours) => answer,
            Ok(Claimed::Requeue {
                execution_id,
                answer,
            }) => {
                tracing::info!(workflow = %workflow.key, execution_id = %execution_id,
                    "a duplicate queues again a keyed run no worker has taken");
                message.execution_id = execution_id;
                idempotency::replay(&answer)
            }
            Err(e) => return Err(claims_unavailable(workflow, e)),
        };
        // Bounded, so the answer comes within the claim's lease (and before a
        // Lambda deadline). A retry waits for the claim's lease to end.
        let limit = sync_time_limit(ACCEPT_ENQUEUE_LIMIT.as_millis() as u64, deadline);
        let retry_after = ACCEPT_WINDOW_SECONDS;
        match tokio::time::timeout(limit, self.enqueue(&message, Some(retry_after))).await {
            Ok(queued) => queued.map(|()| answer),
            Err(_) => {
                tracing::error!(execution_id = %message.execution_id, "enqueueing a keyed run took too long");
                Err(Refusal::NotQueuedInTime { retry_after })
            }
        }
    }
}

fn unix_now() -> u64 {
    crate::time::unix_seconds().max(0) as u64
}

/// A duplicate's answer: the first's once it is completed, else "in progress".
fn duplicate(workflow: &DeployedWorkflow, held: KeyClaim) -> Result<Response<Bytes>, Refusal> {
    tracing::info!(workflow = %workflow.key, execution_id = %held.execution_id, "a duplicate delivery was answered from its first");
    match held.state {
        ClaimState::Completed { answer } => Ok(idempotency::replay(&answer)),
        // An unconfirmed claim is re-queued by an async delivery only.
        ClaimState::InProgress { .. } | ClaimState::Unconfirmed { .. } => {
            Err(Refusal::InProgress {
                execution_id: held.execution_id,
            })
        }
    }
}

fn claims_unavailable(workflow: &DeployedWorkflow, error: StoreError) -> Refusal {
    tracing::error!(workflow = %workflow.key, error = %error, "cannot claim an idempotency key");
    Refusal::ClaimsUnavailable(error)
}
