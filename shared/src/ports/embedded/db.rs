//! The SQLite file behind the embedded store and queue: one writer thread doing
//! group commit, and a small pool of read connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

/// The most writes one transaction takes; more wait for the next commit.
const MAX_BATCH: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workflow_versions (
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    hook_id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
CREATE TABLE IF NOT EXISTS workflows (
    key TEXT PRIMARY KEY,
    current_version INTEGER NOT NULL,
    hook_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    workflow_key TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_workflow ON executions (workflow_key, id);
CREATE TABLE IF NOT EXISTS queue (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
-- Runs to deliver later (wake-ups of paused executions), apart from the queue so
-- its hot path keeps one index; moved into the queue when due (milliseconds since
-- the epoch).
CREATE TABLE IF NOT EXISTS delayed (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    available_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS delayed_by_due ON delayed (available_at);
-- Idempotency claims (inbound.md §5): the record is the claim with its answer;
-- the columns beside it are for lookups and sweeping ended claims.
CREATE TABLE IF NOT EXISTS claims (
    workflow_key TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (workflow_key, key_hash)
);
CREATE INDEX IF NOT EXISTS claims_by_expiry ON claims (expires_at);
-- Replay marks: the execution a replay was queued for, and the replay's id; gone
-- with the execution when it is deleted (not when its record is written again:
-- INSERT OR REPLACE fires no delete trigger while recursive triggers are off).
CREATE TABLE IF NOT EXISTS replay_marks (
    original_id TEXT PRIMARY KEY,
    replay_id TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS replay_marks_pruned AFTER DELETE ON executions
BEGIN DELETE FROM replay_marks WHERE original_id = old.id; END;
";

/// A write: runs inside the batch's transaction; `Ok(false)` means "not applied"
/// (for example a conditional insert that found the row).
pub type WriteOp = Box<dyn FnOnce(&Connection) -> rusqlite::Result<bool> + Send>;

struct WriteJob {
    op: WriteOp,
    reply: oneshot::Sender<Result<bool, String>>,
}

pub struct Database {
    path: PathBuf,
    /// `None` once dropped (see the `Drop` impl).
    writes: Option<mpsc::Sender<WriteJob>>,
    writer: Option<std::thread::JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    /// Rung when a write outside the queue's own (a keyed accept's) queued a run.
    queued: tokio::sync::Notify,
}

/// Connections are closed one after the other: the readers here, then the writer's
/// on its thread, waited for. SQLite closing two connections to one file at the
/// same moment on two threads can deadlock (its global unix mutex and the file's
/// lock mutex, taken in opposite orders while a WAL is closed): seen as a CLI
/// that never exited.
impl Drop for Database {
    fn drop(&mut self) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Database {
    /// Opens (creating when needed) `dir/hookflow.db`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("hookflow.db");
        let writer = open_connection(&path, false)?;
        writer
            .execute_batch(SCHEMA)
            .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
        let (writes, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("hookflow-db-writer".into())
            .spawn(move || write_loop(writer, rx))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Self {
            path,
            writes: Some(writes),
            writer: Some(writer),
            readers: Mutex::new(Vec::new()),
            queued: tokio::sync::Notify::new(),
        }))
    }

    /// Runs a write; returns once it is committed to disk.
    pub async fn write(&self, op: WriteOp) -> Result<bool, String> {
        let (reply, done) = oneshot::channel();
        self.writes
            .as_ref()
            .ok_or_else(|| "the database is closed".to_string())?
            .send(WriteJob { op, reply })
            .map_err(|_| "the database writer has stopped".to_string())?;
        done.await
            .map_err(|_| "the database writer has stopped".to_string())?
    }

    /// Tells the queue that a committed write queued a run without it.
    pub fn rows_queued(&self) {
        self.queued.notify_one();
    }

    /// Resolves at the next [`Database::rows_queued`] (or at once for one that
    /// came while nobody waited).
    pub fn queued_elsewhere(&self) -> tokio::sync::futures::Notified<'_> {
        self.queued.notified()
    }

    /// Runs a read on a pooled connection, off the async threads.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = match db
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
            {
                Some(conn) => conn,
                None => open_connection(&db.path, true)?,
            };
            let result = f(&conn).map_err(|e| e.to_string());
            db.readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            result
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, String> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    if !read_only {
        // WAL: readers in other processes (the CLI) never block the writer.
        // FULL: a commit is on disk (fsync) before it is acknowledged.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(|e| format!("cannot configure {}: {e}", path.display()))?;
    }
    Ok(conn)
}

/// Takes every write that is waiting, runs each in its own savepoint (one failing
/// write does not undo the others), commits once, then answers them all.
fn write_loop(conn: Connection, rx: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            for job in batch {
                let _ = job.reply.send(Err(e.to_string()));
            }
            continue;
        }
        let mut answers = Vec::with_capacity(batch.len());
        for job in batch {
            let result = run_in_savepoint(&conn, job.op);
            answers.push((job.reply, result));
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                for (reply, _) in answers {
                    let _ = reply.send(Err(format!("commit failed: {e}")));
                }
            }
        }
    }
}

fn run_in_savepoint(conn: &Connection, op: WriteOp) -> Result<bool, String> {
    conn.execute_batch("SAVEPOINT op")
        .map_err(|e| e.to_string())?;
    // A panic in one write (a bug) fails that write only: the writer thread, and
    // every write after it, goes on.
    let outcome = match crate::guard::catch_sync(|| op(conn)) {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(panic) => Err(format!("the write failed on an internal error: {panic}")),
    };
    match outcome {
        Ok(applied) => {
            conn.execute_batch("RELEASE op")
                .map_err(|e| e.to_string())?;
            Ok(applied)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}
