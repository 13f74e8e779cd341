//! How long a request may take to answer: a sync run's `timeoutMs`, cut short
//! by the deadline of the process answering it (a Lambda invocation's).

use std::time::{Duration, Instant};

/// When the process answering a request is cut off (a Lambda invocation's
/// deadline), set by the edge as a request extension. A sync run stops in time to
/// answer 504 and record itself as `aborted` before then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// The time kept back before a [`Deadline`] to record the aborted run and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_000);

/// How long a sync run may take: its `timeoutMs`, or less when the process has a
/// deadline that comes sooner.
pub fn sync_time_limit(timeout_ms: u64, deadline: Option<Deadline>) -> Duration {
    let configured = Duration::from_millis(timeout_ms);
    match deadline {
        Some(Deadline(at)) => configured.min(
            at.saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_MARGIN),
        ),
        None => configured,
    }
}
