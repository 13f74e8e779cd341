//! Keeping storage bounded: finished executions older than a cutoff are deleted
//! in small batches (each one short write), so a prune beside live traffic never
//! stalls it. Started executions, running or paused, are never deleted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use crate::ports::{ExecutionFilter, Store, StoreError};

/// Executions deleted per store call: a few milliseconds of writing.
pub const PRUNE_BATCH: usize = 200;

/// How often `hookflow serve` prunes by its retention.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// Deletes every finished execution the filter selects; returns how many.
///
/// Paced: after each batch it rests as long as the batch took (at most 10 ms),
/// so requests and runs get the store at least half the time. That matters most to a prune from
/// another process (`hookflow executions prune` beside `hookflow serve`), which
/// competes for SQLite's file lock, whose waits back off in steps of milliseconds.
pub async fn prune(store: &dyn Store, filter: &ExecutionFilter) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let began = Instant::now();
        let deleted = store.prune_executions(filter, PRUNE_BATCH).await?;
        total += deleted;
        if deleted < PRUNE_BATCH {
            return Ok(total);
        }
        // At most 10 ms: a batch that took long mostly waited for the lock,
        // while the others wrote.
        let rest = began
            .elapsed()
            .clamp(Duration::from_millis(1), Duration::from_millis(10));
        tokio::time::sleep(rest).await;
    }
}

/// Prunes executions older than `keep` soon after the start and then every hour,
/// until `stop` turns true.
pub async fn keep_for(store: Arc<dyn Store>, keep: Duration, mut stop: watch::Receiver<bool>) {
    let mut wait = Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        wait = RETENTION_EVERY;
        let Ok(keep) = chrono::Duration::from_std(keep) else {
            return;
        };
        let filter = ExecutionFilter {
            until: Utc::now().checked_sub_signed(keep),
            ..ExecutionFilter::default()
        };
        if filter.until.is_none() {
            return;
        }
        let began = Instant::now();
        match prune(store.as_ref(), &filter).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(
                deleted,
                seconds = began.elapsed().as_secs_f64(),
                "pruned executions past the retention"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "pruning by retention failed; next try in an hour")
            }
        }
    }
}
