//! The idempotency protocol over a [`ClaimStore`], as Powertools' persistence layer
//! runs it: claim a key in progress before the work (`save_inprogress`), keep
//! the answer when it means "done" (`save_success`), give the key up when the
//! work failed on the server's side (`delete_record`), and tell a duplicate what
//! the claim it met stands for; and for the worker, whether the copy of a keyed
//! run it took is the one that runs. It knows nothing of HTTP: the webhook keeps
//! its answers, and a replay or the CLI may claim keys with it as well.

use std::sync::Arc;
use std::time::Duration;

use super::state::{ACCEPT_WINDOW_SECONDS, ClaimState, KeyClaim};
use crate::model::{ClaimCheck, ClaimOutcome, KeyedAccept, RunMessage, StoredAnswer};
use crate::ports::{ClaimStore, StoreError};

/// The copy id of a keyed run queued before messages carried one: there was one
/// such message per execution.
pub const FIRST_COPY: &str = "first";

/// Tries at giving up a claim whose run could not be recorded or enqueued.
const RELEASE_TRIES: u32 = 3;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// The key is this request's: its run goes on (an async run is queued now).
    Ours,
    /// The claim and its run were written in one step (the embedded store): the
    /// run is queued and the claim completed.
    Queued,
    /// Another request holds the key, as it stands now.
    Held(KeyClaim),
    /// The key's run was claimed by an earlier request, and no worker took it
    /// (it may never have been queued): this request now holds the claim, under
    /// the same execution id, and queues the run again (a worker runs one copy),
    /// then gives the first request's `answer`.
    Requeue {
        execution_id: String,
        answer: StoredAnswer,
    },
}

pub struct IdempotencyService {
    store: Arc<dyn ClaimStore>,
}

impl IdempotencyService {
    pub fn new(store: Arc<dyn ClaimStore>) -> Self {
        Self { store }
    }

    /// Claims a key for a run that answers itself (a sync run), in progress,
    /// atomically: of concurrent duplicates across processes one gets
    /// [`Claimed::Ours`].
    pub async fn begin(&self, claim: &KeyClaim, now: u64) -> Result<Claimed, StoreError> {
        Ok(match self.store.claim(&claim.record(), now).await? {
            ClaimOutcome::Claimed => Claimed::Ours,
            ClaimOutcome::Held(held) => Claimed::Held(KeyClaim::held(held, now)),
        })
    }

    /// Claims the key of an async run, with the run, in one step where the
    /// store can ([`Claimed::Queued`]). Elsewhere the claim is taken pending
    /// ([`Claimed::Ours`]): the caller queues the run, and the worker that takes
    /// it confirms the claim (`ClaimStore::confirm_claim`) before it runs; until then
    /// its answer is never given.
    pub async fn accept(
        &self,
        claim: &KeyClaim,
        run: &RunMessage,
        now: u64,
    ) -> Result<Claimed, StoreError> {
        Ok(
            match self.store.claim_run(&claim.record(), run, now).await? {
                KeyedAccept::Queued => Claimed::Queued,
                KeyedAccept::Claimed => Claimed::Ours,
                KeyedAccept::Held(held) => self.retake(KeyClaim::held(held, now), now).await?,
            },
        )
    }

    /// Takes over an [`ClaimState::Unconfirmed`] claim for a request that queues
    /// its run again, with a lease of its own; any other claim holds.
    async fn retake(&self, held: KeyClaim, now: u64) -> Result<Claimed, StoreError> {
        let ClaimState::Unconfirmed {
            lease_until,
            answer,
        } = held.state
        else {
            return Ok(Claimed::Held(held));
        };
        let renewed = KeyClaim {
            state: ClaimState::Unconfirmed {
                lease_until: now.saturating_add(ACCEPT_WINDOW_SECONDS),
                answer: answer.clone(),
            },
            ..held
        };
        if self
            .store
            .retake_claim(&renewed.record(), lease_until)
            .await?
        {
            return Ok(Claimed::Requeue {
                execution_id: renewed.execution_id,
                answer,
            });
        }
        // Another duplicate queued it again first, or a worker confirmed it: a
        // retry finds which.
        Ok(Claimed::Held(KeyClaim {
            state: ClaimState::InProgress {
                lease_until: now.saturating_add(ACCEPT_WINDOW_SECONDS),
                kept: None,
            },
            ..renewed
        }))
    }

    /// Keeps the answer of a claim this execution still holds: duplicates get
    /// it from now on.
    pub async fn complete(
        &self,
        mut claim: KeyClaim,
        answer: StoredAnswer,
    ) -> Result<(), StoreError> {
        claim.state = ClaimState::Completed { answer };
        self.store.settle_claim(&claim.record()).await
    }

    /// Whether the worker holding `run`, a keyed run accepted under `key`, runs
    /// it: the claim is confirmed for this copy of the run (see
    /// [`crate::model::Claim::check_copy`]). A copy another copy of the same run
    /// confirmed first is dropped: that one runs. A message queued before copies
    /// had ids is one copy too ([`FIRST_COPY`]), so it and a copy a new instance
    /// queued again never both run.
    ///
    /// A claim another execution holds: a copy's claim is never taken over while it
    /// holds, so the key expired and another delivery claimed it, and this run
    /// goes on. A message without a copy id may instead be one whose claim a
    /// duplicate took over under the protocol before copies (a new execution
    /// id): within the key's `ttl_seconds` that duplicate runs instead.
    pub async fn run_stands(
        &self,
        run: &RunMessage,
        key: &str,
        ttl_seconds: u64,
    ) -> Result<bool, StoreError> {
        let copy = run.copy_id.as_deref().unwrap_or(FIRST_COPY);
        let check = self
            .store
            .confirm_claim(&run.workflow_key, key, &run.execution_id, copy)
            .await?;
        let holder = match check {
            ClaimCheck::Ours | ClaimCheck::Gone => return Ok(true),
            ClaimCheck::OtherCopy => {
                tracing::info!(execution_id = %run.execution_id,
                    "another copy of this keyed run was taken first and runs: this copy is dropped");
                return Ok(false);
            }
            ClaimCheck::HeldBy(holder) => holder,
        };
        if run.copy_id.is_some() {
            return Ok(true);
        }
        let accepted = chrono::DateTime::parse_from_rfc3339(&run.accepted_at)
            .map(|t| t.timestamp().max(0) as u64);
        let now = crate::time::unix_seconds().max(0) as u64;
        let within_ttl = accepted.is_ok_and(|at| now < at.saturating_add(ttl_seconds));
        if within_ttl {
            tracing::info!(execution_id = %run.execution_id, holder = %holder,
                "a keyed run whose claim a duplicate took over is not run: the duplicate runs instead");
        }
        Ok(!within_ttl)
    }

    /// Gives up a claim whose run was not recorded or enqueued, so the sender's
    /// retry runs; tried a few times, as a claim left behind would answer that
    /// retry with an answer for a run that never happened.
    pub async fn release(&self, claim: &KeyClaim) {
        let record = claim.record();
        for attempt in 1..=RELEASE_TRIES {
            match self.store.release_claim(&record).await {
                Ok(()) => return,
                Err(e) if attempt == RELEASE_TRIES => {
                    tracing::error!(execution_id = %claim.execution_id, expires_at = claim.expires_at, error = %e,
                        "cannot release the idempotency claim of a run that was not queued; duplicates of its delivery will be answered as the first was until it expires");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeployedWorkflow;
    use crate::ports::embedded::{Database, EmbeddedStore};

    fn workflow() -> DeployedWorkflow {
        serde_json::from_value(serde_json::json!({
            "key": "orders", "version": 1, "hookId": "h", "deployedAt": "2026-01-01T00:00:00Z",
            "definition": {
                "key": "orders", "name": "orders", "sync": true,
                "trigger": {"type": "webhook", "idempotency": {"ttlSeconds": 600}},
                "nodes": []
            }
        }))
        .unwrap()
    }

    fn answer() -> StoredAnswer {
        StoredAnswer {
            status: 200,
            headers: vec![],
            body: b"done".to_vec(),
        }
    }

    #[tokio::test]
    async fn a_key_is_in_progress_then_completed_or_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::new(Database::open(dir.path()).unwrap());
        let service = IdempotencyService::new(Arc::new(store));
        let (w, now) = (workflow(), 1_000);
        let first = KeyClaim::sync_run(&w, "evt_1".into(), "e-1".into(), now);
        let again = KeyClaim::sync_run(&w, "evt_1".into(), "e-2".into(), now);
        assert_eq!(service.begin(&first, now).await.unwrap(), Claimed::Ours);
        let Claimed::Held(held) = service.begin(&again, now).await.unwrap() else {
            panic!("a duplicate claimed a key in progress");
        };
        assert_eq!(held.execution_id, "e-1");
        assert!(matches!(
            held.state,
            ClaimState::InProgress { kept: None, .. }
        ));
        // Given up: the sender's retry runs.
        service.release(&first).await;
        assert_eq!(service.begin(&again, now).await.unwrap(), Claimed::Ours);
        // Completed: duplicates get the answer, now and after the lease.
        service.complete(again, answer()).await.unwrap();
        let third = KeyClaim::sync_run(&w, "evt_1".into(), "e-3".into(), now + 1);
        let Claimed::Held(held) = service.begin(&third, now + 1).await.unwrap() else {
            panic!("a completed key was claimed again");
        };
        assert_eq!(held.state, ClaimState::Completed { answer: answer() });
        assert_eq!(held.execution_id, "e-2");
    }

    fn keyed_run(id: &str, copy: Option<&str>) -> RunMessage {
        serde_json::from_value(serde_json::json!({
            "executionId": id, "workflowKey": "orders", "workflowVersion": 1,
            "context": {}, "acceptedAt": crate::time::now_rfc3339(),
            "idempotencyKey": "evt_1", "copyId": copy,
        }))
        .unwrap()
    }

    fn pending(id: &str, now: u64) -> crate::model::Claim {
        crate::model::Claim {
            workflow_key: "orders".into(),
            key: "evt_1".into(),
            execution_id: id.into(),
            expires_at: now + 600,
            lease_until: now + 2,
            answer: Some(answer()),
            pending: true,
            confirmed_by: None,
        }
    }

    #[tokio::test]
    async fn a_message_from_before_copies_is_one_copy_and_a_copy_outlives_its_expired_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::new(Database::open(dir.path()).unwrap()));
        let service = IdempotencyService::new(store.clone());
        let now = crate::time::unix_seconds() as u64;
        store.claim(&pending("e-1", now), now).await.unwrap();
        // A message without a copy id confirms the claim as the first copy: a
        // copy another instance queued again is dropped, and it runs on.
        assert!(
            service
                .run_stands(&keyed_run("e-1", None), "evt_1", 600)
                .await
                .unwrap()
        );
        let again = keyed_run("e-1", Some("c2"));
        assert!(!service.run_stands(&again, "evt_1", 600).await.unwrap());
        assert!(
            service
                .run_stands(&keyed_run("e-1", None), "evt_1", 600)
                .await
                .unwrap()
        );
        // The key expired and another delivery claimed it: a copy of the first run
        // still runs (both were answered 2xx); an old message within its time
        // does not (its claim was taken over under the protocol before copies).
        let later = now + 700;
        store.claim(&pending("e-3", later), later).await.unwrap();
        assert!(service.run_stands(&again, "evt_1", 600).await.unwrap());
        assert!(
            !service
                .run_stands(&keyed_run("e-1", None), "evt_1", 600)
                .await
                .unwrap()
        );
    }
}
