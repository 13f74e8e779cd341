//! The idempotency protocol (inbound.md §5) over the store's claims, as
//! Powertools' persistence layer runs it: a claim in an explicit state
//! ([`ClaimState`]), the service that takes, completes, gives up and re-queues
//! claims for the webhook ([`IdempotencyService`]), and the check the worker makes
//! before it runs a keyed run. It knows nothing of HTTP: the webhook derives keys
//! and keeps answers (`webhook::idempotency`).

mod service;
mod state;

pub use service::{Claimed, IdempotencyService};
pub use state::{ACCEPT_WINDOW_SECONDS, ClaimState, KeyClaim};
