//! `trigger.idempotency` (inbound.md §5): the key a delivery carries
//! ([`key_of`]), the protocol that lets the first delivery with a key run and
//! gives its duplicates its answer ([`IdempotencyService`], over a claim whose
//! [`ClaimState`] is explicit), and the answer as kept ([`keep`], [`replay`]).

mod answer;
mod key;
mod service;
mod state;

pub use answer::{keep, replay};
pub use key::key_of;
pub use service::{Claimed, IdempotencyService};
pub use state::{ACCEPT_WINDOW_SECONDS, ClaimState, KeyClaim};
