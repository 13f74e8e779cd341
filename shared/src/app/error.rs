//! Why the application could not do something now. Most are passing (the queue
//! delivers the run again later, and it goes on from what was recorded); what a
//! port refuses for good is not (see [`crate::ports::StoreError::is_retryable`]).

use crate::ports::{QueueError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the queue failed: {0}")]
    Queue(#[from] QueueError),
    /// The key runs that redact are sealed with could not be read now.
    #[error("{0}")]
    Sealing(#[from] crate::app::redaction::RedactionError),
    /// A wake-up that came before what it follows was recorded: delivered
    /// again later.
    #[error("{0}; tried again later")]
    NotYet(&'static str),
    /// Not ready for a moment (a gathering being run): tried again shortly.
    #[error("{0}; tried again in a moment")]
    Busy(&'static str),
}
