//! Execution ids.

/// UUIDv7: unique, and ordered by creation time for "newest first" listings.
pub fn new_execution_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
