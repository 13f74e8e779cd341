//! [`Queue`] on the embedded SQLite file. A run is a row from enqueue until ack; the
//! rows still there when the process starts (queued, or interrupted mid-run) are
//! delivered again.
//!
//! Up to [`BUFFER`] deliveries wait in memory; past that a run stays only in SQLite
//! and is read back when the buffer runs dry, so a large backlog costs disk, not RAM.
//!
//! A delayed run (the wake-up of a paused execution) is a row of the `delayed`
//! table and nothing in memory; one timer task sleeps until the earliest comes due,
//! then moves the due rows into the queue in one transaction and has them read
//! back. Rows that came due while the process was down move at start. Every second
//! the queue is read back as well, for rows another process added (a replay).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use tokio::sync::Notify;

use super::db::Database;
use crate::model::RunMessage;
use crate::ports::{Delivery, Queue, QueueError};

/// Deliveries held in memory at most.
pub const BUFFER: usize = 1024;

/// How often rows that another process queued are looked for, in milliseconds.
const OUTSIDE_POLL_MS: i64 = 1_000;

#[derive(Default)]
struct Pending {
    /// Ready to hand out, oldest first.
    ready: VecDeque<Delivery>,
    /// Receipts handed out (or waiting to be retried) and not settled yet.
    taken: HashSet<String>,
    /// Some rows are only in SQLite (the buffer was full, or the process restarted).
    spilled: bool,
    /// Counts deliveries left to SQLite, so a refill that raced one does not clear
    /// `spilled` and strand it.
    spills: u64,
}

pub struct EmbeddedQueue {
    db: Arc<Database>,
    buffer: usize,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    /// Tells the timer that a delayed run was added.
    delayed: Arc<Notify>,
    timer: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddedQueue {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Sleeps until the earliest delayed row comes due (or a new one is added), then
/// moves the due rows into the queue and wakes the receivers.
async fn timer_loop(
    db: Arc<Database>,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    delayed: Arc<Notify>,
) {
    loop {
        let added = delayed.notified();
        // Rows another writer of this file's queue committed (a keyed accept).
        let queued = db.queued_elsewhere();
        let next = db
            .read(|conn| {
                conn.query_row("SELECT MIN(available_at) FROM delayed", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })
            })
            .await;
        let wait_ms = match next {
            Ok(Some(due)) if due <= now_ms() => match promote_due(&db).await {
                Ok(moved) => {
                    if moved {
                        mark_spilled(&pending, &wake);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot move due runs into the queue; retrying in 1 s");
                    1_000
                }
            },
            Ok(Some(due)) => due - now_ms(),
            Ok(None) => OUTSIDE_POLL_MS,
            Err(e) => {
                tracing::error!(error = %e, "cannot read delayed runs; retrying in 1 s");
                1_000
            }
        };
        // Looked again at least every second, when the queue is read back too:
        // another process (`hookflow executions replay`) may have added rows.
        let wait =
            Duration::from_millis(u64::try_from(wait_ms.clamp(0, OUTSIDE_POLL_MS)).unwrap_or(0));
        tokio::select! {
            () = added => {}
            () = queued => mark_spilled(&pending, &wake),
            () = tokio::time::sleep(wait) => mark_spilled(&pending, &wake),
        }
    }
}

/// Moves the delayed rows that are due into the queue; `true` when some moved.
async fn promote_due(db: &Database) -> Result<bool, String> {
    let now = now_ms();
    db.write(Box::new(move |conn| {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO queue (id, body) SELECT id, body FROM delayed WHERE available_at <= ?1",
        )?
        .execute([now])?;
        let moved = conn
            .prepare_cached("DELETE FROM delayed WHERE available_at <= ?1")?
            .execute([now])?;
        Ok(moved > 0)
    }))
    .await
    .map_err(|e| e.message)
}

/// Queues a run's row (once: a run's id is its execution id). Also written by a
/// keyed accept, in the transaction that takes its idempotency claim.
pub(super) fn insert_row(
    conn: &rusqlite::Connection,
    id: &str,
    body: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO queue (id, body) VALUES (?1, ?2)")?
        .execute(params![id, body])?;
    Ok(())
}

/// Some rows wait in SQLite only: the next receive reads them back.
fn mark_spilled(pending: &Mutex<Pending>, wake: &Notify) {
    let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
    p.spilled = true;
    p.spills += 1;
    drop(p);
    wake.notify_waiters();
    wake.notify_one();
}

impl EmbeddedQueue {
    /// Opens the queue; runs left over from an earlier process are delivered first.
    pub async fn open(db: Arc<Database>) -> Result<Self, QueueError> {
        Self::with_buffer(db, BUFFER).await
    }

    pub async fn with_buffer(db: Arc<Database>, buffer: usize) -> Result<Self, QueueError> {
        // Wake-ups that came due while no process ran are queued before anything else.
        promote_due(&db).await.map_err(QueueError::Backend)?;
        let pending = Arc::new(Mutex::new(Pending {
            spilled: true,
            ..Pending::default()
        }));
        let wake = Arc::new(Notify::new());
        let delayed = Arc::new(Notify::new());
        let timer = tokio::spawn(timer_loop(
            Arc::clone(&db),
            Arc::clone(&pending),
            Arc::clone(&wake),
            Arc::clone(&delayed),
        ));
        Ok(Self {
            db,
            buffer: buffer.max(1),
            pending,
            wake,
            delayed,
            timer,
        })
    }

    /// How many runs wait (or run) right now.
    pub async fn depth(&self) -> Result<usize, QueueError> {
        self.count("SELECT COUNT(*) FROM queue").await
    }

    /// How many delayed runs (wake-ups of paused executions) are not due yet.
    pub async fn delayed(&self) -> Result<usize, QueueError> {
        self.count("SELECT COUNT(*) FROM delayed").await
    }

    async fn count(&self, sql: &'static str) -> Result<usize, QueueError> {
        self.db
            .read(move |conn| conn.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(QueueError::Backend)
    }

    /// Puts a delivery in the buffer, or leaves it to SQLite when the buffer is full.
    ///
    /// A fresh run that a refill already picked up (it read the committed row first)
    /// is not added twice; a retried one is released by its holder here.
    fn offer(
        pending: &Mutex<Pending>,
        wake: &Notify,
        buffer: usize,
        delivery: Delivery,
        retried: bool,
    ) {
        let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
        if retried {
            p.taken.remove(&delivery.receipt);
        } else if p.taken.contains(&delivery.receipt)
            || p.ready.iter().any(|d| d.receipt == delivery.receipt)
        {
            return;
        }
        if p.ready.len() < buffer && !p.spilled {
            p.ready.push_back(delivery);
        } else {
            p.spilled = true;
            p.spills += 1;
        }
        drop(p);
        wake.notify_one();
    }

    /// Refills the buffer from SQLite with rows nobody holds.
    async fn refill(&self) -> Result<(), QueueError> {
        let (skip, room, spills) = {
            let p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if !p.spilled || p.ready.len() >= self.buffer {
                return Ok(());
            }
            let skip: HashSet<String> = p
                .taken
                .iter()
                .cloned()
                .chain(p.ready.iter().map(|d| d.receipt.clone()))
                .collect();
            (skip, self.buffer - p.ready.len(), p.spills)
        };
        let limit = i64::try_from(room + skip.len()).unwrap_or(i64::MAX);
        let rows = self
            .db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT id, body, attempts FROM queue ORDER BY id LIMIT ?1")?;
                let rows = stmt.query_map([limit], |r| {
                    Ok(Delivery {
                        receipt: r.get(0)?,
                        body: r.get(1)?,
                        attempt: r.get::<_, u32>(2)? + 1,
                        waits: 0,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(QueueError::Backend)?;
        let fetched = rows.len();
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh: Vec<Delivery> = rows
            .into_iter()
            .filter(|d| !skip.contains(&d.receipt))
            .take(room)
            .collect();
        // Everything in SQLite is now in memory or held, unless the page was full.
        if fetched < usize::try_from(limit).unwrap_or(usize::MAX)
            && fresh.len() < room
            && p.spills == spills
        {
            p.spilled = false;
        }
        let known: HashSet<String> = p
            .taken
            .iter()
            .chain(p.ready.iter().map(|d| &d.receipt))
            .cloned()
            .collect();
        p.ready
            .extend(fresh.into_iter().filter(|d| !known.contains(&d.receipt)));
        Ok(())
    }

    fn take(&self, max: usize) -> Vec<Delivery> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let n = max.min(p.ready.len());
        let out: Vec<Delivery> = p.ready.drain(..n).collect();
        for d in &out {
            p.taken.insert(d.receipt.clone());
        }
        out
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(run).map_err(|e| QueueError::Backend(e.to_string()))?;
        let id = run.new_queue_id();
        let row_body = body.clone();
        let row_id = id.clone();
        self.db
            .write(Box::new(move |conn| {
                insert_row(conn, &row_id, &row_body)?;
                Ok(true)
            }))
            .await
            .map_err(|e| QueueError::Backend(e.message))?;
        let delivery = Delivery {
            receipt: id,
            body,
            attempt: 1,
            waits: 0,
        };
        Self::offer(&self.pending, &self.wake, self.buffer, delivery, false);
        Ok(())
    }

    async fn enqueue_after(&self, run: &RunMessage, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(run).map_err(|e| QueueError::Backend(e.to_string()))?;
        let id = run.new_queue_id();
        // Rounded up: a delayed run is never due early.
        let delay_ms = delay.as_micros().div_ceil(1000);
        let due = now_ms().saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
        self.db
            .write(Box::new(move |conn| {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO delayed (id, body, available_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, body, due])?;
                Ok(true)
            }))
            .await
            .map_err(|e| QueueError::Backend(e.message))?;
        // The timer looks again: this one may come due first (or be due already).
        self.delayed.notify_one();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for a wake-up before looking, so an enqueue in between is not missed.
            let notified = self.wake.notified();
            self.refill().await?;
            let out = self.take(max);
            if !out.is_empty() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let id = delivery.receipt.clone();
        let result = self
            .db
            .write(Box::new(move |conn| {
                conn.prepare_cached("DELETE FROM queue WHERE id = ?1")?
                    .execute([id])?;
                Ok(true)
            }))
            .await
            .map(drop)
            .map_err(|e| QueueError::Backend(e.message));
        // Released either way: if the row is still there, a refill delivers it again.
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.taken.remove(&delivery.receipt);
        if result.is_err() {
            p.spilled = true;
            p.spills += 1;
        }
        result
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let id = delivery.receipt.clone();
        let counted = self
            .db
            .write(Box::new(move |conn| {
                conn.prepare_cached("UPDATE queue SET attempts = attempts + 1 WHERE id = ?1")?
                    .execute([id])?;
                Ok(true)
            }))
            .await
            .map(drop)
            .map_err(|e| QueueError::Backend(e.message));
        // Offered again even when the count could not be written: a run must not stay
        // held until a restart.
        self.offer_later(
            Delivery {
                attempt: delivery.attempt + 1,
                ..delivery.clone()
            },
            delay,
        );
        counted
    }

    async fn back_off(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        // Nothing written: the store is what failed, and an outage is no attempt.
        self.offer_later(
            Delivery {
                waits: delivery.waits + 1,
                ..delivery.clone()
            },
            delay,
        );
        Ok(())
    }
}

/// An accepted run still waiting in the queue (no worker took it to its end yet),
/// by execution id: what `executions show` tells of a run that has no record yet.
pub async fn queued_run(
    db: &Arc<Database>,
    execution_id: &str,
) -> Result<Option<RunMessage>, QueueError> {
    let id = execution_id.to_string();
    let body = db
        .read(move |conn| {
            conn.prepare_cached("SELECT body FROM queue WHERE id = ?1")?
                .query_row([id], |r| r.get::<_, String>(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
        })
        .await
        .map_err(QueueError::Backend)?;
    Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
}

/// How many runs (not wake-ups) wait in the queue.
pub async fn queued_runs(db: &Arc<Database>) -> Result<usize, QueueError> {
    db.read(|conn| {
        conn.query_row(
            "SELECT COUNT(*) FROM queue WHERE id NOT LIKE '%/wake/%'",
            [],
            |r| r.get::<_, i64>(0),
        )
    })
    .await
    .map(|n| usize::try_from(n).unwrap_or(0))
    .map_err(QueueError::Backend)
}

impl EmbeddedQueue {
    /// Hands a held delivery out again after `delay`. Its row stays in SQLite all
    /// along, so a restart in between delivers it too.
    fn offer_later(&self, again: Delivery, delay: Duration) {
        let (pending, wake, buffer) = (
            Arc::clone(&self.pending),
            Arc::clone(&self.wake),
            self.buffer,
        );
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            Self::offer(&pending, &wake, buffer, again, true);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(n: usize) -> RunMessage {
        RunMessage {
            execution_id: format!("run-{n:06}"),
            workflow_key: "k".into(),
            workflow_version: 1,
            context: json!({"n": n}),
            accepted_at: "t".into(),
            wake: None,
            after: None,
            idempotency_key: None,
            replay_of: None,
            on_failure_of: None,
            copy_id: None,
        }
    }

    #[tokio::test]
    async fn a_backlog_larger_than_the_buffer_is_delivered_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let queue = EmbeddedQueue::with_buffer(Database::open(dir.path()).unwrap(), 8)
            .await
            .unwrap();
        for n in 0..100 {
            queue.enqueue(&run(n)).await.unwrap();
        }
        assert!(
            queue.pending.lock().unwrap().ready.len() <= 8,
            "memory holds the buffer only"
        );
        let mut seen = HashSet::new();
        loop {
            let batch = queue.receive(5, Duration::from_millis(200)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for d in batch {
                assert!(
                    seen.insert(d.receipt.clone()),
                    "{} delivered twice",
                    d.receipt
                );
                queue.ack(&d).await.unwrap();
            }
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(queue.depth().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_outage_wait_is_no_attempt_and_a_retry_is() {
        let dir = tempfile::tempdir().unwrap();
        let queue = EmbeddedQueue::open(Database::open(dir.path()).unwrap())
            .await
            .unwrap();
        queue.enqueue(&run(1)).await.unwrap();
        let first = queue.receive(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!((first[0].attempt, first[0].waits), (1, 0));
        queue
            .back_off(&first[0], Duration::from_millis(20))
            .await
            .unwrap();
        let waited = queue.receive(1, Duration::from_secs(2)).await.unwrap();
        assert_eq!((waited[0].attempt, waited[0].waits), (1, 1));
        assert_eq!(waited[0].tries(), 1);
        queue
            .retry(&waited[0], Duration::from_millis(20))
            .await
            .unwrap();
        let retried = queue.receive(1, Duration::from_secs(2)).await.unwrap();
        assert_eq!(retried[0].attempt, 2);
        assert_eq!(retried[0].tries(), 2);
        drop(queue);
        // Only the retry was written: after a restart it is the second attempt.
        let queue = EmbeddedQueue::open(Database::open(dir.path()).unwrap())
            .await
            .unwrap();
        let again = queue.receive(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!((again[0].attempt, again[0].waits), (2, 0));
    }

    #[tokio::test]
    async fn unsettled_runs_come_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = EmbeddedQueue::open(Database::open(dir.path()).unwrap())
                .await
                .unwrap();
            queue.enqueue(&run(1)).await.unwrap();
            queue.enqueue(&run(2)).await.unwrap();
            let got = queue.receive(1, Duration::from_secs(1)).await.unwrap();
            queue.ack(&got[0]).await.unwrap();
            // run 2 was never received; a third is received but never settled.
            queue.enqueue(&run(3)).await.unwrap();
            let _taken = queue.receive(10, Duration::from_secs(1)).await.unwrap();
        }
        let queue = EmbeddedQueue::open(Database::open(dir.path()).unwrap())
            .await
            .unwrap();
        let again: Vec<String> = queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.receipt)
            .collect();
        assert_eq!(again, ["run-000002", "run-000003"]);
    }
}
