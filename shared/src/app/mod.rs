//! The application: runs recorded as executions (the [`runner`]), the queue's
//! [`worker`], durable [`wakeups`] of paused runs, [`subflows`], [`deploy`]ing
//! definitions, execution [`ids`], [`replay`], bodies that do not match
//! `trigger.schema` ([`invalid`]), [`retention`], the [`idempotency`] protocol. It
//! speaks to storage through [`crate::ports`]' traits only; the wiring above builds
//! it on real adapters.

#[cfg(feature = "authoring")]
pub mod deploy;
mod error;
pub mod failures;
pub mod gather;
pub mod idempotency;
pub mod ids;
pub mod invalid;
pub mod lanes;
pub mod pauses;
pub mod redaction;
pub mod replay;
pub mod retention;
pub mod runner;
pub mod subflows;
pub mod versions;
pub mod wakeups;
pub mod worker;

pub use error::AppError;
