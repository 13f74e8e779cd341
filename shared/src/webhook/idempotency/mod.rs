//! `trigger.idempotency` (inbound.md §5) at the door: the key a delivery carries
//! ([`key_of`]) and the answer as kept and replayed ([`keep`], [`replay`]). The
//! protocol itself is the application's ([`crate::app::idempotency`]).

mod answer;
mod key;

pub use crate::app::idempotency::{
    ACCEPT_WINDOW_SECONDS, ClaimState, Claimed, IdempotencyService, KeyClaim,
};
pub use answer::{keep, replay};
pub use key::key_of;
