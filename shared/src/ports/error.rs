//! What a port's call can fail with: each error keeps its source and says whether
//! the same call may succeed later (an outage: runs wait and are tried again) or
//! will fail the same way (a refused write, an unreadable record: retrying cannot
//! help), as restate's SDK separates retryable from terminal errors.

use std::fmt::Display;

/// The cause an adapter's error keeps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `": cause"` when there is one: an error's text says what actually went wrong,
/// as logs print errors by their text.
fn cause(source: &Option<BoxError>) -> String {
    source
        .as_ref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default()
}

/// An outage a call ran into: what it was doing, and why it failed, when the
/// adapter has an error value for that.
#[derive(Debug, thiserror::Error)]
#[error("{what}{}", cause(source))]
pub struct Outage {
    what: String,
    #[source]
    source: Option<BoxError>,
}

impl Outage {
    pub fn new(what: impl Display) -> Self {
        Self {
            what: what.to_string(),
            source: None,
        }
    }

    pub fn caused_by(what: impl Display, source: impl Into<BoxError>) -> Self {
        Self {
            what: what.to_string(),
            source: Some(source.into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("hook id {hook_id:?} already belongs to workflow {owner:?}")]
    HookTaken { hook_id: String, owner: String },
    #[error("workflow {key:?} changed while deploying (version {version} exists); deploy again")]
    VersionConflict { key: String, version: u32 },
    #[error("{0}")]
    InvalidDefinition(String),
    /// Passing: the same call may succeed later (a full disk, a throttled or
    /// unreachable table). Runs wait for it and are tried again.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Outage),
    /// The store refused this write for good (a record too large, a constraint, a
    /// value it does not take): it would refuse it again, so retrying cannot help.
    #[error("the store refused the write: {reason}")]
    Rejected {
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A record the store holds that this hookflow cannot read (damaged, or
    /// written by a newer version): reading it again gives the same.
    #[error("unreadable {what}{}", cause(source))]
    Unreadable {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// An outage, said in words only (the adapter has no error value for it).
    pub fn unavailable(what: impl Display) -> Self {
        Self::Unavailable(Outage::new(what))
    }

    /// An outage `what` ran into, caused by `source`.
    pub fn unavailable_by(what: impl Display, source: impl Into<BoxError>) -> Self {
        Self::Unavailable(Outage::caused_by(what, source))
    }

    /// A record that cannot be written as JSON: it never will be.
    pub fn unencodable(source: serde_json::Error) -> Self {
        Self::Rejected {
            reason: format!("the record cannot be written as JSON: {source}"),
            source: Some(Box::new(source)),
        }
    }

    /// A record that cannot be read, for good.
    pub fn unreadable(what: impl Display, source: impl Into<BoxError>) -> Self {
        Self::Unreadable {
            what: what.to_string(),
            source: Some(source.into()),
        }
    }

    /// Whether the same call may succeed later. Only an outage is worth waiting
    /// for; what the store refuses, cannot read, or a definition that conflicts
    /// stays so.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Passing: the queue could not be reached or did not take the call.
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Outage),
    /// What this queue cannot do (SQS cannot find a message by its run).
    #[error("this queue cannot {0}")]
    Unsupported(&'static str),
}

impl QueueError {
    /// An outage, said in words only.
    pub fn unavailable(what: impl Display) -> Self {
        Self::Unavailable(Outage::new(what))
    }

    /// An outage `what` ran into, caused by `source`.
    pub fn unavailable_by(what: impl Display, source: impl Into<BoxError>) -> Self {
        Self::Unavailable(Outage::caused_by(what, source))
    }

    /// Whether the same call may succeed later: an outage may end; what the queue
    /// cannot do, it never will.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_outage_keeps_its_cause_and_may_be_retried_and_a_refusal_may_not() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
        let outage = StoreError::unavailable_by("saving execution e-1", io);
        assert_eq!(
            outage.to_string(),
            "store unavailable: saving execution e-1: disk full"
        );
        assert!(outage.is_retryable());
        let cause = outage.source().and_then(|outage| outage.source());
        assert_eq!(cause.unwrap().to_string(), "disk full");
        let damaged = StoreError::unreadable(
            "execution record",
            serde_json::from_str::<u8>("x").unwrap_err(),
        );
        assert!(!damaged.is_retryable());
        assert!(damaged.source().is_some());
        assert!(!QueueError::Unsupported("peek").is_retryable());
        assert!(QueueError::unavailable("send").is_retryable());
    }
}
