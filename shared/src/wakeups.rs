//! Wake-ups of paused executions, sent through the run queue: at the earliest time
//! a paused execution waits for, and to a parent when a child it waits for finishes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{Execution, RunMessage};
use crate::ports::{Queue, QueueError};

/// The prefix of a wake-up sent by a finished child (`child:<its id>`).
pub const CHILD_PREFIX: &str = "child:";

pub struct Wakeups {
    queue: Arc<dyn Queue>,
}

impl Wakeups {
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        Self { queue }
    }

    /// Enqueues what a record about to be saved needs: a paused execution's
    /// wake-up at its earliest time wait and, when `resumed` (it finished after a
    /// pause of its own), its parent's wake-up. Called before the record is saved:
    /// a wake-up that arrives first finds the run still going and is retried, while
    /// a pause recorded without its wake-up would wait forever.
    pub async fn before_save(
        &self,
        execution: &Execution,
        resumed: bool,
    ) -> Result<(), QueueError> {
        if let Some(paused) = &execution.paused {
            if let Some(at) = &paused.wake_at {
                let message = RunMessage::wake(&execution.id, &paused.token);
                self.queue.enqueue_after(&message, until(at)).await?;
            }
        } else if resumed
            && execution.status.is_final()
            && let Some(parent) = &execution.parent_execution_id
        {
            let reason = format!("{CHILD_PREFIX}{}", execution.id);
            self.queue
                .enqueue(&RunMessage::wake(parent, reason))
                .await?;
        }
        Ok(())
    }

    /// Sends a wake-up that came too early (SQS delays 15 minutes at most) again
    /// for the rest of the wait.
    pub async fn again(&self, execution_id: &str, token: &str, at: &str) -> Result<(), QueueError> {
        let message = RunMessage::wake(execution_id, token);
        self.queue.enqueue_after(&message, until(at)).await
    }
}

/// How long until an RFC 3339 time; zero once it has passed (or cannot be read).
pub fn until(at: &str) -> Duration {
    DateTime::parse_from_rfc3339(at)
        .ok()
        .and_then(|t| (t.with_timezone(&Utc) - Utc::now()).to_std().ok())
        .unwrap_or(Duration::ZERO)
}
