//! [`Queue`] on the embedded SQLite file: one table, a row per run from enqueue
//! until ack. A row is due once its `visible_at` has passed: at once for a new run,
//! later for a wake-up of a paused execution or a retry. A receive leases the due
//! rows in one `UPDATE … RETURNING` that moves them a lease ahead; the queue renews
//! the leases of the runs it holds, so the runs of a process that died come due
//! again when their lease runs out, and a queue dropped (serve stopping) gives its
//! runs back at once.
//!
//! Receivers wait on a notify: an enqueue here rings it, and so does one timer, at
//! the earliest row to come due (a delayed run, a lease that ran out) and at least
//! every second for rows another process queued (`hookflow executions replay`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::db::{Database, WriteOp};
use crate::model::{FlowTicket, RunMessage};
use crate::ports::{Delivery, Queue, QueueError};

/// How long a received run stays with its queue without a renewal: how late the
/// runs of a process that died come back.
pub const LEASE: Duration = Duration::from_secs(6);

/// How often rows that another process queued are looked for, in milliseconds.
const POLL_MS: i64 = 1_000;

pub struct EmbeddedQueue {
    shared: Arc<Shared>,
    /// Started by a receive, on its runtime, where the receivers it wakes run (a
    /// queue that only enqueues, the CLI's, has none); again if that runtime ended.
    timer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    db: Arc<Database>,
    lease_ms: i64,
    /// Apart, so a write that reads it holds no reference to the database: the
    /// last one dropped on the writer thread would wait for that thread to end.
    holding: Arc<Mutex<Holding>>,
    /// Rows may be due: receivers look.
    ready: Notify,
    /// A row's time was set: the timer looks again.
    changed: Notify,
}

#[derive(Default)]
struct Holding {
    /// Receipts handed out and not settled: the leases renewed.
    held: HashSet<String>,
    /// Times a run was put back for an outage, which is no attempt; kept in
    /// memory only, as the outage is.
    waits: HashMap<String, u32>,
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    // Rounded up: a delayed run is never due early.
    i64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// A run's row as it is queued: its id, its message, and where it waits its turn.
pub(super) struct Row {
    id: String,
    body: String,
    flow: Option<FlowTicket>,
    workflow_key: String,
}

impl Row {
    pub(super) fn of(run: &RunMessage) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: run.new_queue_id(),
            body: serde_json::to_string(run)?,
            flow: run.flow.clone(),
            workflow_key: run.workflow_key.clone(),
        })
    }
}

/// Queues a run's row, due at once (once: a run's id is its execution id). Also
/// written by a keyed accept, in the transaction that takes its idempotency claim.
pub(super) fn insert_row(conn: &Connection, row: &Row) -> rusqlite::Result<()> {
    insert_at(conn, row, now_ms())
}

fn insert_at(conn: &Connection, row: &Row, at: i64) -> rusqlite::Result<()> {
    let flow = row.flow.as_ref();
    let lane = flow.and_then(|f| f.lane.as_deref());
    let lane_limit = lane.and(flow.map(|f| f.lane_concurrency));
    let gate_limit = flow.and_then(|f| f.concurrency);
    let gate = gate_limit.map(|_| row.workflow_key.as_str());
    conn.prepare_cached(
        "INSERT OR IGNORE INTO queue (id, body, visible_at, lane, lane_limit, gate, gate_limit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        row.id, row.body, at, lane, lane_limit, gate, gate_limit
    ])?;
    Ok(())
}

/// The due rows a receive may take, oldest first: each the first of its lane
/// still waiting (earlier rows of the lane all in flight), its lane and its
/// workflow under their limits of rows in flight. Several rows of one lane or
/// workflow are then taken only while their limits allow ([`Limits`]). A row
/// still `taken` whose lease ran out went to a receiver that died: that counts
/// as a delivery (`attempts + taken`), as SQS counts every receive, since a
/// run's first delivery writes nothing before its end (app/worker.rs).
const DUE: &str = "
SELECT id, body, attempts + taken, lane, lane_limit, gate, gate_limit FROM queue q
WHERE visible_at <= ?1
  AND (lane IS NULL OR (
        NOT EXISTS (SELECT 1 FROM queue e WHERE e.lane = q.lane AND e.rowid < q.rowid
                      AND NOT (e.taken = 1 AND e.visible_at > ?1))
        AND (SELECT COUNT(*) FROM queue r WHERE r.lane = q.lane
               AND r.taken = 1 AND r.visible_at > ?1) < q.lane_limit))
  AND (gate IS NULL OR (SELECT COUNT(*) FROM queue r WHERE r.gate = q.gate
               AND r.taken = 1 AND r.visible_at > ?1) < q.gate_limit)
ORDER BY visible_at, id LIMIT ?2";

/// How many rows in flight each lane and workflow has: what one receive adds to
/// the counts [`DUE`] read.
#[derive(Default)]
struct Limits {
    taken: HashMap<String, i64>,
}

impl Limits {
    fn in_flight(conn: &Connection, column: &str, key: &str, now: i64) -> rusqlite::Result<i64> {
        let sql = match column {
            "lane" => {
                "SELECT COUNT(*) FROM queue WHERE lane = ?1 AND taken = 1 AND visible_at > ?2"
            }
            _ => "SELECT COUNT(*) FROM queue WHERE gate = ?1 AND taken = 1 AND visible_at > ?2",
        };
        conn.prepare_cached(sql)?
            .query_row(params![key, now], |r| r.get(0))
    }

    /// Whether one more row of `key` (a lane's or a workflow's) fits under
    /// `limit`; counted when it does.
    fn admit(
        &mut self,
        conn: &Connection,
        column: &'static str,
        key: &str,
        limit: i64,
        now: i64,
    ) -> rusqlite::Result<bool> {
        let slot = format!("{column}\n{key}");
        let count = match self.taken.get(&slot) {
            Some(n) => *n,
            None => Self::in_flight(conn, column, key, now)?,
        };
        self.taken.insert(slot, count + 1);
        Ok(count < limit)
    }
}

type DueRow = (
    String,
    String,
    u32,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// Takes up to `max` due rows for `lease_ms`, each within its lane's order and
/// its limits.
fn take_due(
    conn: &Connection,
    now: i64,
    lease_ms: i64,
    max: usize,
) -> rusqlite::Result<Vec<(String, String, u32)>> {
    // More than `max`: rows past a limit reached within this receive are
    // skipped here, and others take their places.
    let limit = i64::try_from(max.saturating_mul(4)).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(DUE)?
        .query_map(params![now, limit], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<DueRow>>>()?;
    let mut limits = Limits::default();
    let mut seen_lanes = HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for (id, body, attempts, lane, lane_limit, gate, gate_limit) in rows {
        if let (Some(lane), Some(limit)) = (&lane, lane_limit) {
            // One row per lane a receive: the next is the first waiting only
            // once this one is taken, which the next receive sees.
            if !seen_lanes.insert(lane.clone()) || !limits.admit(conn, "lane", lane, limit, now)? {
                continue;
            }
        }
        if let (Some(gate), Some(limit)) = (&gate, gate_limit)
            && !limits.admit(conn, "gate", gate, limit, now)?
        {
            continue;
        }
        conn.prepare_cached(
            "UPDATE queue SET visible_at = ?2, attempts = attempts + taken, taken = 1 WHERE id = ?1",
        )?
            .execute(params![id, now + lease_ms])?;
        out.push((id, body, attempts));
        if out.len() == max {
            break;
        }
    }
    Ok(out)
}

/// Sets the time of the rows held when the write runs, `ahead_ms` from then (read
/// then, so a run settled meanwhile keeps the time its settling gave it).
fn move_held(holding: &Arc<Mutex<Holding>>, ahead_ms: i64) -> WriteOp {
    let holding = Arc::clone(holding);
    Box::new(move |conn| {
        let held: Vec<String> = {
            let holding = holding.lock().unwrap_or_else(PoisonError::into_inner);
            holding.held.iter().cloned().collect()
        };
        let ids = serde_json::to_string(&held).unwrap_or_default();
        conn.prepare_cached(
            "UPDATE queue SET visible_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))",
        )?
        .execute(params![now_ms() + ahead_ms, ids])?;
        Ok(true)
    })
}

impl Shared {
    fn holding(&self) -> std::sync::MutexGuard<'_, Holding> {
        self.holding.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn write(&self, op: WriteOp) -> Result<(), QueueError> {
        self.db
            .write(op)
            .await
            .map(drop)
            .map_err(|e| QueueError::unavailable_by("the queue's database", e))
    }

    /// Leases up to `max` due rows, oldest first.
    async fn claim(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let claimed = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::clone(&claimed);
        let (now, lease) = (now_ms(), self.lease_ms);
        self.write(Box::new(move |conn| {
            let rows = take_due(conn, now, lease, max)?;
            *out.lock().unwrap_or_else(PoisonError::into_inner) = rows;
            Ok(true)
        }))
        .await?;
        let mut rows = std::mem::take(&mut *claimed.lock().unwrap_or_else(PoisonError::into_inner));
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut holding = self.holding();
        let mut out = Vec::with_capacity(rows.len());
        for (receipt, body, attempts) in rows {
            // Held here already (its renewal came late): leased again, not handed out twice.
            if holding.held.insert(receipt.clone()) {
                let waits = holding.waits.get(&receipt).copied().unwrap_or(0);
                out.push(Delivery {
                    receipt,
                    body,
                    attempt: attempts + 1,
                    waits,
                    ordered: false,
                });
            }
        }
        Ok(out)
    }

    /// Settles a held run with `sql` (`?1` its id, `?2` a time when given one).
    /// Let go of first, whatever the write does: a run whose write failed is
    /// renewed no more, so it comes back when its lease runs out, not held.
    async fn settle(
        &self,
        receipt: &str,
        sql: &'static str,
        at: Option<i64>,
    ) -> Result<(), QueueError> {
        self.holding().held.remove(receipt);
        let id = receipt.to_string();
        let result = self
            .write(Box::new(move |conn| {
                let mut stmt = conn.prepare_cached(sql)?;
                match at {
                    Some(at) => stmt.execute(params![id, at])?,
                    None => stmt.execute([id])?,
                };
                Ok(true)
            }))
            .await;
        // The timer looks again: the run may come due before anything else.
        self.changed.notify_one();
        result
    }

    /// Queues a run's row, due at `at` (at once when not given).
    async fn put(&self, run: &RunMessage, at: Option<i64>) -> Result<(), QueueError> {
        let row = Row::of(run).map_err(|e| QueueError::unavailable_by("encoding a run", e))?;
        self.write(Box::new(move |conn| {
            insert_at(conn, &row, at.unwrap_or_else(now_ms))?;
            Ok(true)
        }))
        .await
    }
}

/// Renews the held leases, and wakes the receivers when a row comes due.
async fn timer_loop(shared: Arc<Shared>) {
    let renew_every = shared.lease_ms / 3;
    let mut renewed = now_ms();
    loop {
        let changed = shared.changed.notified();
        // Rows another writer of this file committed (a keyed accept).
        let elsewhere = shared.db.queued_elsewhere();
        if now_ms() - renewed >= renew_every {
            renewed = now_ms();
            let holds = !shared.holding().held.is_empty();
            if holds
                && let Err(e) = shared
                    .write(move_held(&shared.holding, shared.lease_ms))
                    .await
            {
                tracing::error!(error = %e, "cannot renew the leases of runs in progress");
            }
        }
        let next = shared
            .db
            .read(|conn| {
                conn.query_row("SELECT MIN(visible_at) FROM queue", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })
            })
            .await;
        let now = now_ms();
        let wait_ms = match next {
            Ok(Some(due)) if due <= now => {
                shared.ready.notify_waiters();
                POLL_MS
            }
            Ok(Some(due)) => due - now,
            Ok(None) => POLL_MS,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the queue; looking again in 1 s");
                POLL_MS
            }
        };
        let wait_ms = wait_ms.min(POLL_MS).min(renewed + renew_every - now);
        let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
        tokio::select! {
            () = changed => {}
            () = elsewhere => shared.ready.notify_waiters(),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

impl EmbeddedQueue {
    pub async fn open(db: Arc<Database>) -> Result<Self, QueueError> {
        Self::with_lease(db, LEASE).await
    }

    /// A queue whose received runs stay leased for `lease` without a renewal
    /// (renewed every third of it).
    pub async fn with_lease(db: Arc<Database>, lease: Duration) -> Result<Self, QueueError> {
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                lease_ms: millis(lease).max(3),
                holding: Arc::default(),
                ready: Notify::new(),
                changed: Notify::new(),
            }),
            timer: Mutex::default(),
        })
    }

    /// How many runs wait (or run) right now: all but the wake-ups not due yet.
    pub async fn depth(&self) -> Result<usize, QueueError> {
        let sql = "SELECT COUNT(*) FROM queue WHERE NOT (visible_at > ?1 AND id LIKE '%/wake/%')";
        self.count(sql, Some(now_ms())).await
    }

    /// How many wake-ups of paused executions are not due yet (or running).
    pub async fn delayed(&self) -> Result<usize, QueueError> {
        let sql = "SELECT COUNT(*) FROM queue WHERE visible_at > ?1 AND id LIKE '%/wake/%'";
        self.count(sql, Some(now_ms())).await
    }

    /// How many runs (not wake-ups) are queued or running, not settled.
    pub async fn waiting_runs(&self) -> Result<usize, QueueError> {
        let sql = "SELECT COUNT(*) FROM queue WHERE id NOT LIKE '%/wake/%'";
        self.count(sql, None).await
    }

    /// How many runs wait their turn in a lane or under a workflow's
    /// concurrency (queued, not in flight), by workflow.
    pub async fn lane_backlog(&self) -> Result<Vec<(String, usize)>, QueueError> {
        let now = now_ms();
        self.shared
            .db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT json_extract(body, '$.workflowKey'), COUNT(*) FROM queue
                     WHERE (lane IS NOT NULL OR gate IS NOT NULL)
                       AND NOT (taken = 1 AND visible_at > ?1)
                     GROUP BY 1",
                )?
                .query_map([now], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .map(|row| row.map(|(w, n)| (w, usize::try_from(n).unwrap_or(0))))
                .collect()
            })
            .await
            .map_err(|e| QueueError::unavailable_by("reading the queue", e))
    }

    async fn count(&self, sql: &'static str, now: Option<i64>) -> Result<usize, QueueError> {
        self.shared
            .db
            .read(move |conn| {
                let args = rusqlite::params_from_iter(now);
                conn.query_row(sql, args, |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| QueueError::unavailable_by("reading the queue", e))
    }

    fn start_timer(&self) {
        let mut timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner);
        if timer.as_ref().is_none_or(JoinHandle::is_finished) {
            *timer = Some(tokio::spawn(timer_loop(Arc::clone(&self.shared))));
        }
    }
}

/// The runs still held go back at once (a stop, or runs still in flight at its
/// end), for the next start or another worker; a process that dies leaves them
/// to their leases.
impl Drop for EmbeddedQueue {
    fn drop(&mut self) {
        if let Some(timer) = self
            .timer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            timer.abort();
        }
        // Not locked while the write runs: the write reads what is held.
        let holds = !self.shared.holding().held.is_empty();
        if holds && let Err(e) = self.shared.db.write_now(move_held(&self.shared.holding, 0)) {
            tracing::warn!(error = %e, "runs in progress come back when their lease runs out");
        }
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, run: &RunMessage) -> Result<(), QueueError> {
        self.shared.put(run, None).await?;
        self.shared.ready.notify_one();
        Ok(())
    }

    async fn enqueue_after(&self, run: &RunMessage, delay: Duration) -> Result<(), QueueError> {
        let due = now_ms().saturating_add(millis(delay));
        self.shared.put(run, Some(due)).await?;
        self.shared.changed.notify_one();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.start_timer();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a row queued in between is not missed.
            let notified = self.shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let out = self.shared.claim(max).await?;
            if !out.is_empty() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let sql = "DELETE FROM queue WHERE id = ?1";
        let result = self.shared.settle(&delivery.receipt, sql, None).await;
        self.shared.holding().waits.remove(&delivery.receipt);
        result
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let at = now_ms().saturating_add(millis(delay));
        let sql =
            "UPDATE queue SET attempts = attempts + 1, visible_at = ?2, taken = 0 WHERE id = ?1";
        self.shared.settle(&delivery.receipt, sql, Some(at)).await
    }

    async fn back_off(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let waits = delivery.waits + 1;
        self.shared
            .holding()
            .waits
            .insert(delivery.receipt.clone(), waits);
        let at = now_ms().saturating_add(millis(delay));
        let sql = "UPDATE queue SET visible_at = ?2, taken = 0 WHERE id = ?1";
        self.shared.settle(&delivery.receipt, sql, Some(at)).await
    }

    async fn peek(&self, execution_id: &str) -> Result<Option<RunMessage>, QueueError> {
        let id = execution_id.to_string();
        let body = self
            .shared
            .db
            .read(move |conn| {
                conn.prepare_cached("SELECT body FROM queue WHERE id = ?1")?
                    .query_row([id], |r| r.get::<_, String>(0))
                    .optional()
            })
            .await
            .map_err(|e| QueueError::unavailable_by("reading the queue", e))?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
