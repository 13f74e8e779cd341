//! A claim on an idempotency key and where it stands: in progress under a
//! lease, or completed with the answer duplicates get again. The stores keep
//! it as a [`Claim`] (where a lease of 0 stands for "answered");
//! [`KeyClaim::record`] and [`KeyClaim::held`] translate at that boundary.

use crate::model::{Claim, DeployedWorkflow, StoredAnswer};

/// How long past its sync timeout an unanswered claim holds (the run records
/// itself and answers within it); after that its process is taken to be gone.
const CLAIM_LEASE_MARGIN_SECONDS: u64 = 10;

/// How long an async run's claim is "being accepted" (duplicates are told to
/// retry): its first request has answered by then (its enqueue is bounded
/// within it), and after it a claim whose run no worker confirmed may be taken
/// over.
pub const ACCEPT_WINDOW_SECONDS: u64 = 2;

/// Where a claim stands for a duplicate.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimState {
    /// The first request is still answering, until `lease_until` (unix
    /// seconds): a sync run running, or an async run being queued, whose
    /// answer is decided (`kept`) but not given while the run is not known to
    /// be queued. Duplicates are told to retry; past the lease, a claim still
    /// in progress belongs to a process taken to be gone, and the key is free.
    InProgress {
        lease_until: u64,
        kept: Option<StoredAnswer>,
    },
    /// An async run's claim past its lease that no worker has confirmed: the
    /// first request answered (or died) and its run may never have been queued.
    /// A duplicate queues the run again, under the same execution id, and gives
    /// `answer`, the first request's; a worker runs one copy.
    Unconfirmed {
        lease_until: u64,
        answer: StoredAnswer,
    },
    /// Answered: duplicates get `answer` again until the claim expires.
    Completed { answer: StoredAnswer },
}

/// A claim on one key of one workflow, held by one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyClaim {
    pub workflow_key: String,
    pub key: String,
    pub execution_id: String,
    /// Unix seconds when the claim ends (`ttlSeconds` after it was made).
    pub expires_at: u64,
    pub state: ClaimState,
}

impl KeyClaim {
    /// A sync run's claim, taken at `now`: in progress until the run's time
    /// limit and a margin to record itself and answer are over.
    pub fn sync_run(
        workflow: &DeployedWorkflow,
        key: String,
        execution_id: String,
        now: u64,
    ) -> Self {
        let timeout = workflow.definition.sync_timeout_ms().div_ceil(1000);
        let lease = timeout.saturating_add(CLAIM_LEASE_MARGIN_SECONDS);
        Self::in_progress(workflow, key, execution_id, now, lease, None)
    }

    /// An async run's claim, taken at `now` with the `answer` its request
    /// gives: in progress while the run is queued.
    pub fn async_run(
        workflow: &DeployedWorkflow,
        key: String,
        execution_id: String,
        now: u64,
        answer: StoredAnswer,
    ) -> Self {
        let lease = ACCEPT_WINDOW_SECONDS;
        Self::in_progress(workflow, key, execution_id, now, lease, Some(answer))
    }

    fn in_progress(
        workflow: &DeployedWorkflow,
        key: String,
        execution_id: String,
        now: u64,
        lease: u64,
        kept: Option<StoredAnswer>,
    ) -> Self {
        let lease_until = now.saturating_add(lease);
        let ttl = workflow.definition.idempotency_ttl();
        Self {
            workflow_key: workflow.key.clone(),
            key,
            execution_id,
            // Never shorter than the first request's own answering.
            expires_at: now.saturating_add(ttl).max(lease_until),
            state: ClaimState::InProgress { lease_until, kept },
        }
    }

    /// The claim as the stores keep it.
    pub fn record(&self) -> Claim {
        let (lease_until, answer, pending) = match &self.state {
            ClaimState::InProgress { lease_until, kept } => (*lease_until, kept.clone(), false),
            ClaimState::Unconfirmed {
                lease_until,
                answer,
            } => (*lease_until, Some(answer.clone()), true),
            // A lease over since 1970: the stores read it as answered, and
            // replay the answer to duplicates from now on.
            ClaimState::Completed { answer } => (0, Some(answer.clone()), false),
        };
        Claim {
            workflow_key: self.workflow_key.clone(),
            key: self.key.clone(),
            execution_id: self.execution_id.clone(),
            expires_at: self.expires_at,
            lease_until,
            answer,
            // A store that cannot queue a run with its claim marks it pending
            // itself (`Store::claim_run`).
            pending,
            confirmed_by: None,
        }
    }

    /// A claim a store holds, as it stands at `now`: completed once its answer
    /// may be given (see [`Claim::answer_at`]), else in progress.
    pub fn held(claim: Claim, now: u64) -> Self {
        let (given, unconfirmed) = (claim.answer_at(now).is_some(), claim.unconfirmed_at(now));
        let state = match claim.answer {
            Some(answer) if given => ClaimState::Completed { answer },
            Some(answer) if unconfirmed => ClaimState::Unconfirmed {
                lease_until: claim.lease_until,
                answer,
            },
            kept => ClaimState::InProgress {
                lease_until: claim.lease_until,
                kept,
            },
        };
        Self {
            workflow_key: claim.workflow_key,
            key: claim.key,
            execution_id: claim.execution_id,
            expires_at: claim.expires_at,
            state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> StoredAnswer {
        StoredAnswer {
            status: 201,
            headers: vec![],
            body: b"ok".to_vec(),
        }
    }

    fn claim(state: ClaimState) -> KeyClaim {
        KeyClaim {
            workflow_key: "w".into(),
            key: "evt_1".into(),
            execution_id: "e".into(),
            expires_at: 100,
            state,
        }
    }

    #[test]
    fn a_completed_claim_is_kept_answered_and_read_back_completed() {
        let completed = claim(ClaimState::Completed { answer: answer() });
        let record = completed.record();
        assert_eq!((record.lease_until, record.pending), (0, false));
        assert!(record.holds_at(99) && !record.holds_at(100));
        assert_eq!(KeyClaim::held(record, 1), completed);
    }

    #[test]
    fn an_answer_kept_in_progress_is_given_only_after_its_lease() {
        let accepting = claim(ClaimState::InProgress {
            lease_until: 50,
            kept: Some(answer()),
        });
        let record = accepting.record();
        assert_eq!(KeyClaim::held(record.clone(), 49), accepting);
        assert_eq!(
            KeyClaim::held(record.clone(), 50).state,
            ClaimState::Completed { answer: answer() }
        );
        // Pending (its run not known to be queued): in progress during its
        // lease, unconfirmed after it, never answered.
        let pending = Claim {
            pending: true,
            ..record
        };
        assert!(matches!(
            KeyClaim::held(pending.clone(), 49).state,
            ClaimState::InProgress {
                lease_until: 50,
                ..
            }
        ));
        let unconfirmed = KeyClaim::held(pending.clone(), 60);
        assert_eq!(
            unconfirmed.state,
            ClaimState::Unconfirmed {
                lease_until: 50,
                answer: answer()
            }
        );
        assert_eq!(unconfirmed.record(), pending);
    }
}
