//! Execution ids.

/// UUIDv7: unique, and ordered by creation time for "newest first" listings.
pub fn new_execution_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The id of one copy of a keyed run's message ([`crate::model::RunMessage::copy_id`]).
pub fn new_copy_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
