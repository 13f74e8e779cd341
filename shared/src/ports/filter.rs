//! Which executions a listing, a prune or a bulk replay selects.
//!
//! Execution ids are UUIDv7, whose first 48 bits are the creation time in
//! milliseconds: a time window is an id range, which both stores answer from an
//! index (SQLite's primary key, DynamoDB's sort key) instead of reading every record.

use chrono::{DateTime, Utc};

use crate::model::ExecutionStatus;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    /// Only executions of this workflow key.
    pub workflow: Option<String>,
    pub status: Option<ExecutionStatus>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created at or before.
    pub until: Option<DateTime<Utc>>,
}

impl ExecutionFilter {
    /// The lowest id created within the window (every id sorts at or above it).
    pub fn lowest_id(&self) -> String {
        match self.since {
            Some(t) => id_bound(t, "0000-0000-000000000000"),
            None => "0".into(),
        }
    }

    /// The highest id created within the window.
    pub fn highest_id(&self) -> String {
        match self.until {
            Some(t) => id_bound(t, "ffff-ffff-ffffffffffff"),
            None => "g".into(),
        }
    }

    /// Whether an execution record falls within the filter (for stores, or pages of
    /// them, that cannot ask their index everything).
    pub fn matches(&self, id: &str, workflow: &str, status: ExecutionStatus) -> bool {
        self.workflow.as_deref().is_none_or(|w| w == workflow)
            && self.status.is_none_or(|s| s == status)
            && *id >= *self.lowest_id()
            && *id <= *self.highest_id()
    }
}

/// The UUIDv7 text whose time is `t` (milliseconds, before 1970 clamped to 0) and
/// whose other bits are `rest`.
fn id_bound(t: DateTime<Utc>, rest: &str) -> String {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    let hex = format!("{ms:012x}");
    format!("{}-{}-{rest}", &hex[..8], &hex[8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_window_is_the_range_of_ids_created_in_it() {
        let id = uuid::Uuid::now_v7().to_string();
        let now = Utc::now();
        let before = now - chrono::Duration::seconds(1);
        let window = ExecutionFilter {
            since: Some(before),
            until: Some(now + chrono::Duration::seconds(1)),
            ..Default::default()
        };
        assert!(window.lowest_id() < id && id < window.highest_id());
        let later = ExecutionFilter {
            since: Some(now + chrono::Duration::seconds(1)),
            ..Default::default()
        };
        assert!(id < later.lowest_id());
        let earlier = ExecutionFilter {
            until: Some(before),
            ..Default::default()
        };
        assert!(earlier.highest_id() < id);
        assert!(ExecutionFilter::default().matches(&id, "k", ExecutionStatus::Resolved));
        assert!(!later.matches(&id, "k", ExecutionStatus::Resolved));
    }
}
