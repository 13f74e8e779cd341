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
}

impl Claim {
    /// The id the stores file a claim under: the key's SHA-256, so a key of any
    /// length fits a store's key limits.
    pub fn key_hash(&self) -> String {
        hex::encode(Sha256::digest(self.key.as_bytes()))
    }

    /// Whether the claim still stops a duplicate at `now` (unix seconds).
    pub fn holds_at(&self, now: u64) -> bool {
        now < self.expires_at && (self.answer.is_some() || now < self.lease_until)
    }

    /// The answer a duplicate gets again at `now`: only once the first request
    /// has answered (its lease is over).
    pub fn answer_at(&self, now: u64) -> Option<&StoredAnswer> {
        self.answer.as_ref().filter(|_| now >= self.lease_until)
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
