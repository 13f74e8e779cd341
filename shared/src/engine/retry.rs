//! A node's `retry`: which stops are retried, how long to wait, and the frame a
//! run that waits between attempts pauses with.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::halt::NodeStop;
use crate::model::RetryPolicy;

/// An async run waiting this long or more between attempts pauses (like `delay`)
/// instead of holding its worker; shorter waits, and every wait of a sync run,
/// sleep in place.
pub(super) const PAUSE_FROM: Duration = Duration::from_secs(1);

/// The frame of a run paused between two attempts of a node.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RetryFrame {
    /// Attempts made so far.
    pub attempts: u32,
}

const FRAME_KEY: &str = "$retry";

impl RetryFrame {
    pub(super) fn to_value(&self) -> Value {
        json!({ FRAME_KEY: self })
    }

    /// The retry frame in a paused cursor, if that is what it holds (a node's own
    /// pause holds its own frame).
    pub(super) fn read(frame: &Value) -> Option<Self> {
        frame
            .get(FRAME_KEY)
            .and_then(|f| serde_json::from_value(f.clone()).ok())
    }
}

/// The failure a retried stop leaves on the job while the next attempt waits;
/// `None` for stops that are never retried: a resolve, a deliberate `end`, a
/// `response`, a pause, or a halt coming up from the node's branches.
pub(super) fn retried(stop: &Result<Value, NodeStop>) -> Option<Value> {
    match stop {
        Err(NodeStop::Fail(value)) => Some(value.clone()),
        Err(NodeStop::Error(message)) => Some(json!({ "message": message })),
        _ => None,
    }
}

/// The wait before attempt `next`, with up to a quarter taken off at random.
pub(super) fn wait_before(policy: &RetryPolicy, next: u32) -> Duration {
    let full = policy.backoff_before(next);
    let jitter = rand::rng().random_range(0.0..=0.25);
    full.mul_f64(1.0 - jitter)
}
