//! Wake-ups of paused executions, sent through the run queue: at the earliest time
//! a paused execution waits for, and to a parent when a child it waits for finishes.
//!
//! Ordering, so that no pause waits forever:
//! - a pause's own wake-up is sent before the pause is saved (a save without its
//!   wake-up would wait forever); a wake-up that arrives before the save finds the
//!   record still running (or paused with the token it replaces, `after`) and is
//!   retried;
//! - a child's wake-up of its parent is sent before the child's final save, and the
//!   parent's worker retries until the child's record is final;
//! - after a parent saves a pause on children, it looks at them once more and wakes
//!   itself for any that finished meanwhile, so a child's wake-up that came too early
//!   for the parent to know the wait is never needed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::AppError;
use super::failures;
use crate::model::{Execution, RunMessage, Wait};
use crate::ports::{Queue, Store};

/// The prefix of a wake-up sent by a finished child (`child:<its id>`).
pub const CHILD_PREFIX: &str = "child:";

pub struct Wakeups {
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
}

impl Wakeups {
    pub fn new(queue: Arc<dyn Queue>, store: Arc<dyn Store>) -> Self {
        Self { queue, store }
    }

    /// Enqueues what a record about to be saved needs: a paused execution's wake-up
    /// at its earliest time wait (`replaces`: the token of the pause it follows, if
    /// any) and, when `resumed` (it finished after a pause of its own), its parent's
    /// wake-up.
    pub async fn before_save(
        &self,
        execution: &Execution,
        replaces: Option<&str>,
        resumed: bool,
    ) -> Result<(), AppError> {
        if let Some(paused) = &execution.paused {
            if let Some(at) = &paused.wake_at {
                let mut message = RunMessage::wake(&execution.id, &paused.token);
                message.after = replaces.map(str::to_string);
                self.send(&message, until(at)).await?;
            }
        } else if resumed && execution.status.is_final() {
            self.wake_parent(execution).await?;
        }
        Ok(())
    }

    /// After a pause on children is saved: wakes the execution if a child finished
    /// in the meantime. One wake-up at most (the resume looks at every wait), so
    /// copies of it do not run the rest of the workflow side by side.
    pub async fn after_save(&self, execution: &Execution) -> Result<(), AppError> {
        let Some(paused) = &execution.paused else {
            return Ok(());
        };
        for wait in &paused.waits {
            if let Wait::Execution { execution_id, .. } = wait {
                let child = self.store.execution(execution_id).await?;
                if child.is_some_and(|c| c.status.is_final()) {
                    let reason = format!("{CHILD_PREFIX}{execution_id}");
                    return self
                        .send(&RunMessage::wake(&execution.id, reason), Duration::ZERO)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// [`Wakeups::after_save`], and for a run that ended in failure, the start of
    /// its failure workflow (see [`super::failures`]). Called again by a retried
    /// delivery that finds the record saved, so a start that failed is made then.
    pub async fn after_worker_save(&self, execution: &Execution) -> Result<(), AppError> {
        self.after_save(execution).await?;
        if execution.status.is_final() {
            failures::after_final_save(self.store.as_ref(), self.queue.as_ref(), execution).await?;
        }
        Ok(())
    }

    /// The run queue wake-ups go to.
    pub fn queue(&self) -> &dyn Queue {
        self.queue.as_ref()
    }

    /// Tells a finished child's parent (if any) that the child is done.
    pub async fn wake_parent(&self, child: &Execution) -> Result<(), AppError> {
        let Some(parent) = &child.parent_execution_id else {
            return Ok(());
        };
        let reason = format!("{CHILD_PREFIX}{}", child.id);
        self.send(&RunMessage::wake(parent, reason), Duration::ZERO)
            .await
    }

    /// Sends a wake-up that came too early (SQS delays 15 minutes at most) again
    /// for the rest of the wait.
    pub async fn again(&self, execution_id: &str, token: &str, at: &str) -> Result<(), AppError> {
        self.send(&RunMessage::wake(execution_id, token), until(at))
            .await
    }

    async fn send(&self, message: &RunMessage, delay: Duration) -> Result<(), AppError> {
        let sent = if delay.is_zero() {
            self.queue.enqueue(message).await
        } else {
            self.queue.enqueue_after(message, delay).await
        };
        Ok(sent?)
    }
}

/// How long until an RFC 3339 time, rounded up to the millisecond (a wake-up is
/// never due early); zero once it has passed (or cannot be read).
pub fn until(at: &str) -> Duration {
    DateTime::parse_from_rfc3339(at)
        .ok()
        .and_then(|t| (t.with_timezone(&Utc) - Utc::now()).to_std().ok())
        .map(|d| {
            Duration::from_millis(u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX))
        })
        .unwrap_or(Duration::ZERO)
}
