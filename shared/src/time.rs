//! One clock format for every record: RFC 3339, UTC, milliseconds.

use chrono::{SecondsFormat, Utc};

/// Now as `2026-11-28T01:44:17.123Z`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now in unix seconds (signed timestamps are compared with it).
pub fn unix_seconds() -> i64 {
    Utc::now().timestamp()
}
