//! DynamoDB's and SQS's errors as the ports' errors, shared by the store's modules
//! (the table's items, claims, replay marks) and the queue's.

use crate::aws::CallError;
use crate::ports::{QueueError, StoreError};

/// DynamoDB's answers to a request it will refuse again, whenever it is sent: a
/// request it cannot take (an item over 400 KB, a value it does not accept) or an
/// item collection at its 10 GB limit. Throttling, timeouts and 5xx are passing.
const REFUSED_FOR_GOOD: &[&str] = &[
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationException",
];

/// DynamoDB's error code when a write's condition did not hold.
pub const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

pub fn backend(e: CallError) -> StoreError {
    let reason = e.describe();
    if REFUSED_FOR_GOOD.contains(&e.code.as_str()) {
        StoreError::Rejected {
            reason,
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::unavailable_by(reason, e)
    }
}

/// A conditional write's answer: `false` when the condition did not hold.
pub fn applied<T>(result: Result<T, CallError>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code == CONDITION_FAILED => Ok(false),
        Err(e) => Err(backend(e)),
    }
}

pub fn queue_backend(e: CallError) -> QueueError {
    QueueError::unavailable_by(e.describe(), e)
}
