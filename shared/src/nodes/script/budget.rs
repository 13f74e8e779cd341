//! What all scripts of a process may take together: how many run at once, and how
//! much memory their caps add up to. A script past the budget waits for room (up to
//! its own timeout) and then fails with a clear message, so a burst of scripts
//! queues instead of taking the process's memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Scripts running at once by default: twice the cores (a script is CPU work),
/// between 4 and 32.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .clamp(4, 32)
}

/// The memory all running scripts' caps may add up to, by default.
pub const DEFAULT_TOTAL_MEMORY_BYTES: usize = 512 << 20;

pub struct ScriptBudget {
    slots: Arc<Semaphore>,
    /// In MiB, so a permit count fits a `u32` whatever the caps.
    memory_mib: Arc<Semaphore>,
    concurrency: usize,
    total_mib: u32,
}

/// Room taken by one running script, given back when dropped.
pub struct Room {
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

impl ScriptBudget {
    pub fn new(concurrency: usize, total_memory_bytes: usize) -> Self {
        let concurrency = concurrency.max(1);
        let total_mib = u32::try_from((total_memory_bytes >> 20).max(1)).unwrap_or(u32::MAX);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            memory_mib: Arc::new(Semaphore::new(total_mib as usize)),
            concurrency,
            total_mib,
        }
    }

    /// Waits up to `wait` for a slot and for `memory_bytes` of the memory budget.
    pub async fn enter(&self, memory_bytes: usize, wait: Duration) -> Result<Room, String> {
        let mib = u32::try_from(memory_bytes.div_ceil(1 << 20))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_mib);
        let taken = tokio::time::timeout(wait, async {
            let slot = Arc::clone(&self.slots).acquire_owned().await.ok()?;
            let memory = Arc::clone(&self.memory_mib)
                .acquire_many_owned(mib)
                .await
                .ok()?;
            Some(Room {
                _slot: slot,
                _memory: memory,
            })
        })
        .await;
        match taken {
            Ok(Some(room)) => Ok(room),
            _ => Err(format!(
                "the script did not start within {} ms: this process already runs as many scripts as it may ({} at once, {} MiB of memory caps in all); retry later",
                wait.as_millis(),
                self.concurrency,
                self.total_mib
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_budget_a_script_waits_then_fails_clearly() {
        let budget = ScriptBudget::new(2, 64 << 20);
        let first = budget
            .enter(16 << 20, Duration::from_millis(10))
            .await
            .unwrap();
        let _second = budget
            .enter(16 << 20, Duration::from_millis(10))
            .await
            .unwrap();
        let third = budget.enter(1, Duration::from_millis(50)).await;
        let message = third.err().expect("no slot is left");
        assert!(message.contains("2 at once"), "{message}");
        drop(first);
        assert!(budget.enter(1, Duration::from_millis(50)).await.is_ok());
    }

    #[tokio::test]
    async fn memory_caps_add_up_to_the_total_at_most() {
        let budget = ScriptBudget::new(8, 64 << 20);
        let big = budget
            .enter(48 << 20, Duration::from_millis(10))
            .await
            .unwrap();
        assert!(
            budget
                .enter(32 << 20, Duration::from_millis(50))
                .await
                .is_err()
        );
        drop(big);
        // A cap larger than the whole budget takes the whole budget, not forever.
        assert!(
            budget
                .enter(1 << 30, Duration::from_millis(50))
                .await
                .is_ok()
        );
    }
}
