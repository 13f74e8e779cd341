//! Why the application could not do something now. Each is passing: the queue
//! delivers the run again later, and it goes on from what was recorded.

use crate::ports::{QueueError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the queue failed: {0}")]
    Queue(#[from] QueueError),
    /// A wake-up that came before what it follows was recorded.
    #[error("{0}; the wake-up is retried")]
    NotYet(&'static str),
}
