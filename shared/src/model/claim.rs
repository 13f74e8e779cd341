//! An idempotency key claimed for one workflow (inbound.md §5): the first request
//! with the key runs; later ones get its answer again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A claim on `key` for `workflow_key`, held by one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub workflow_key: String,
    pub key: String,
    pub execution_id: String,
    /// Unix seconds when the claim ends (`ttlSeconds` after it was made).
    pub expires_at: u64,
    /// Unix seconds until which the first request is still answering: a sync run
    /// still running (no answer yet), or an async run being enqueued (its answer
    /// kept, not given yet). Duplicates meanwhile get 409, never an answer the first
    /// request may still take back. Past it, a claim without an answer is taken to
    /// belong to a process that is gone, and a duplicate may claim the key again.
    pub lease_until: u64,
    /// The first request's answer, replayed to duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
    /// An async run's claim taken before its run was known to be queued (a store
    /// that cannot take the claim and the enqueue in one step: DynamoDB and SQS).
    /// Its answer is never replayed while it is pending: a duplicate gets 409
    /// during the lease, and after it re-queues the same run, under the same
    /// execution id, with a lease of its own ([`Claim::unconfirmed_at`]): the first
    /// request may have died before its enqueue. The first copy of the run a
    /// worker takes confirms the claim ([`Claim::check_copy`]) and runs; the
    /// others are dropped. So every answer for the key names one execution, a
    /// replayed "accepted" stands for a run that was queued, and the delivery
    /// runs once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The copy of the run ([`crate::model::RunMessage::copy_id`]) whose worker
    /// confirmed the claim: a redelivery of that copy runs on, another copy is
    /// dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
}

impl Claim {
    /// The id the stores file a claim under: the key's SHA-256, so a key of any
    /// length fits a store's key limits.
    pub fn key_hash(&self) -> String {
        key_hash(&self.key)
    }

    /// Whether the claim still stops a duplicate at `now` (unix seconds).
    pub fn holds_at(&self, now: u64) -> bool {
        now < self.expires_at && (now < self.lease_until || self.answer.is_some())
    }

    /// Whether, at `now`, the claim is pending past its lease: the request that
    /// took it has answered or is gone, and no worker has taken its run, which
    /// may never have been queued. A duplicate then re-queues the run
    /// (`Store::retake_claim`).
    pub fn unconfirmed_at(&self, now: u64) -> bool {
        self.pending && now >= self.lease_until && now < self.expires_at
    }

    /// What the worker holding `copy` of run `execution_id` finds of this claim:
    /// the one rule every store applies (DynamoDB as a condition). A pending
    /// claim of the run is confirmed by the first copy that comes; a confirmed one
    /// stands for that copy only.
    pub fn check_copy(&self, execution_id: &str, copy: &str) -> ClaimCheck {
        if self.execution_id != execution_id {
            return ClaimCheck::HeldBy(self.execution_id.clone());
        }
        match &self.confirmed_by {
            Some(by) if !self.pending && copy != by => ClaimCheck::OtherCopy,
            _ => ClaimCheck::Ours,
        }
    }

    /// The answer a duplicate gets again at `now`: only once the first request
    /// has answered (its lease is over) and its run is known to have happened.
    pub fn answer_at(&self, now: u64) -> Option<&StoredAnswer> {
        self.answer
            .as_ref()
            .filter(|_| now >= self.lease_until && !self.pending)
    }
}

/// An HTTP answer as kept for replay: status, headers and body byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAnswer {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

/// The id a claim on `key` is filed under (see [`Claim::key_hash`]).
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// What a keyed async accept did ([`crate::model::Claim`] and its run together).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyedAccept {
    /// The claim and the run were written in one step: the run is queued.
    Queued,
    /// The claim was taken, `pending`: the caller enqueues the run now.
    Claimed,
    /// Another request holds the key: nothing was written.
    Held(Claim),
}

/// What the worker that took a keyed run found of its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimCheck {
    /// The claim is this run's (and now confirmed): it runs.
    Ours,
    /// Another execution holds the key: a delivery after this run's claim expired.
    HeldBy(String),
    /// Another copy of this run (queued again by a duplicate while the claim was
    /// pending) confirmed the claim first and runs: this copy is dropped.
    OtherCopy,
    /// No claim is kept for the key (it expired and was swept).
    Gone,
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The key was free (or its claim had ended): this request runs.
    Claimed,
    /// Another request holds the key.
    Held(Claim),
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(answer: Option<StoredAnswer>) -> Claim {
        Claim {
            workflow_key: "w".into(),
            key: "evt_1".into(),
            execution_id: "e".into(),
            expires_at: 100,
            lease_until: 50,
            answer,
            pending: false,
            confirmed_by: None,
        }
    }

    #[test]
    fn a_claim_holds_until_it_expires_and_an_unanswered_one_until_its_lease() {
        let open = claim(None);
        assert!(open.holds_at(49));
        assert!(!open.holds_at(50));
        let answered = claim(Some(StoredAnswer {
            status: 200,
            headers: vec![],
            body: b"ok".to_vec(),
        }));
        assert!(answered.holds_at(99));
        assert!(!answered.holds_at(100));
        // Kept but not given yet (an async run being enqueued): not replayed.
        assert!(answered.answer_at(49).is_none());
        assert!(answered.answer_at(50).is_some());
        // Pending (its run not known to be queued): never replayed, held until
        // it expires, and unconfirmed once its lease is over.
        let pending = Claim {
            pending: true,
            ..answered
        };
        assert!(pending.holds_at(49) && pending.holds_at(99));
        assert!(!pending.holds_at(100));
        assert!(pending.answer_at(50).is_none());
        assert!(!pending.unconfirmed_at(49));
        assert!(pending.unconfirmed_at(50) && !pending.unconfirmed_at(100));
        // Written before this field existed: read as not pending.
        let old: Claim = serde_json::from_value(serde_json::json!({
            "workflowKey": "w", "key": "k", "executionId": "e", "expiresAt": 100,
            "leaseUntil": 50, "answer": {"status": 200, "body": ""}
        }))
        .unwrap();
        assert!(!old.pending && old.holds_at(99));
    }

    #[test]
    fn the_first_copy_of_a_run_confirms_its_claim_and_the_others_are_dropped() {
        let pending = Claim {
            pending: true,
            ..claim(None)
        };
        assert_eq!(pending.check_copy("e", "c1"), ClaimCheck::Ours);
        assert_eq!(
            pending.check_copy("f", "c1"),
            ClaimCheck::HeldBy("e".into())
        );
        let confirmed = Claim {
            pending: false,
            confirmed_by: Some("c1".into()),
            ..pending
        };
        // A redelivery of the copy that confirmed runs on; another copy does not.
        assert_eq!(confirmed.check_copy("e", "c1"), ClaimCheck::Ours);
        assert_eq!(confirmed.check_copy("e", "c2"), ClaimCheck::OtherCopy);
        // A claim taken with its run in one step (never pending) is its run's.
        assert_eq!(claim(None).check_copy("e", "c2"), ClaimCheck::Ours);
    }

    #[test]
    fn answers_keep_their_bytes() {
        let answer = StoredAnswer {
            status: 201,
            headers: vec![("x-a".into(), "1".into())],
            body: vec![0, 159, 255, b'a'],
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(serde_json::from_str::<StoredAnswer>(&text).unwrap(), answer);
        assert_eq!(claim(None).key_hash().len(), 64);
    }
}
