//! The SQLite file behind the embedded store and queue: one writer thread doing
//! group commit, and a small pool of read connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::ports::StoreError;

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
-- The paused executions of a workflow, counted from this index alone (maxPausedRuns).
CREATE INDEX IF NOT EXISTS executions_paused ON executions (workflow_key)
    WHERE json_extract(record, '$.paused') IS NOT NULL;
-- The run queue (queue.rs): a row per run from enqueue until ack, taken when its
-- visible_at (milliseconds since the epoch) has passed and then leased by moving it
-- ahead. visible_at comes before the body: a lease rewrites the row's first page only.
CREATE TABLE IF NOT EXISTS queue (
    id TEXT PRIMARY KEY,
    visible_at INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    -- Flow control (model/flow.rs): the run's lane and how many of it may run at
    -- once, its workflow and how many of that may; `taken` while a receiver holds
    -- it (in flight while its lease has not run out). Rows of a lane start in
    -- rowid order: the order they were queued.
    lane TEXT,
    lane_limit INTEGER,
    gate TEXT,
    gate_limit INTEGER,
    taken INTEGER NOT NULL DEFAULT 0
);
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
-- The highest staleGuard version each lane ran (lanes.rs), as a decimal text
-- (nanoseconds: past SQLite's integers), and the run that raised it.
CREATE TABLE IF NOT EXISTS lane_versions (
    lane TEXT PRIMARY KEY,
    scaled TEXT NOT NULL,
    value TEXT NOT NULL,
    run_id TEXT NOT NULL
);
-- Open gatherings of deliveries into one run (gathers.rs): members as a JSON
-- array of execution ids in the order they joined; times in unix ms.
CREATE TABLE IF NOT EXISTS gatherings (
    group_id TEXT PRIMARY KEY,
    generation TEXT NOT NULL,
    members TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    flush_at INTEGER NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS replay_marks_pruned AFTER DELETE ON executions
BEGIN DELETE FROM replay_marks WHERE original_id = old.id; END;
";

/// A write: runs inside the batch's transaction; `Ok(false)` means "not applied"
/// (for example a conditional insert that found the row).
pub type WriteOp = Box<dyn FnOnce(&Connection) -> rusqlite::Result<bool> + Send>;

/// When a write is on disk (the WAL fsync'd) relative to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Before the write returns: what a 2xx acknowledges (an accepted run, an
    /// idempotency claim) survives a power loss.
    BeforeAnswer,
    /// Committed before the write returns, so a killed process keeps it; on disk
    /// right after, with its batch (one fsync later: about a millisecond here). A
    /// sync run's record: its caller waits for the run, not for the disk.
    AfterAnswer,
}

struct WriteJob {
    op: WriteOp,
    flush: Flush,
    reply: oneshot::Sender<Result<bool, DbError>>,
}

/// Why a write failed, with SQLite's result code when SQLite gave one: the code
/// tells a write SQLite will refuse again (too big, a constraint) from an outage.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub message: String,
    pub code: Option<rusqlite::ErrorCode>,
}

impl DbError {
    /// SQLite refuses the same write the same way every time: retrying is useless.
    pub fn is_permanent(&self) -> bool {
        use rusqlite::ErrorCode::*;
        matches!(
            self.code,
            Some(TooBig | ConstraintViolation | TypeMismatch | ParameterOutOfRange)
        )
    }
}

impl From<String> for DbError {
    fn from(message: String) -> Self {
        Self {
            message,
            code: None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self {
            code: e.sqlite_error_code(),
            message: e.to_string(),
        }
    }
}

/// The store's error for a failed read or write: refused for good, or an outage.
pub(super) fn store_error(e: impl Into<DbError>) -> StoreError {
    let e = e.into();
    if e.is_permanent() {
        StoreError::Rejected {
            reason: e.message.clone(),
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::unavailable_by("the database", e)
    }
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
            .and_then(|()| upgrade_queue(&writer))
            .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
        let (writes, rx) = mpsc::channel();
        // The file SQLite opened (a symlink resolved), whose log is beside it.
        let wal = WalFile::of(writer.path().map_or(path.as_path(), Path::new));
        let writer = std::thread::Builder::new()
            .name("hookflow-db-writer".into())
            .spawn(move || write_loop(writer, wal, rx))
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
    pub async fn write(&self, op: WriteOp) -> Result<bool, DbError> {
        self.write_as(Flush::BeforeAnswer, op).await
    }

    /// Runs a write; returns once it is committed, and on disk when `flush` says.
    pub async fn write_as(&self, flush: Flush, op: WriteOp) -> Result<bool, DbError> {
        self.submit(flush, op)?
            .await
            .map_err(|_| DbError::from("the database writer has stopped".to_string()))?
    }

    /// Hands a write to the writer thread; its answer comes on the receiver.
    fn submit(
        &self,
        flush: Flush,
        op: WriteOp,
    ) -> Result<oneshot::Receiver<Result<bool, DbError>>, DbError> {
        let (reply, done) = oneshot::channel();
        self.writes
            .as_ref()
            .ok_or_else(|| DbError::from("the database is closed".to_string()))?
            .send(WriteJob { op, flush, reply })
            .map_err(|_| DbError::from("the database writer has stopped".to_string()))?;
        Ok(done)
    }

    /// Runs a write and waits for its commit on this thread, where nothing can be
    /// awaited (a queue giving its runs back as it is dropped).
    pub fn write_now(&self, op: WriteOp) -> Result<bool, DbError> {
        let mut done = self.submit(Flush::BeforeAnswer, op)?;
        loop {
            match done.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(DbError::from("the database writer has stopped".to_string()));
                }
            }
        }
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
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
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
            let result = f(&conn).map_err(DbError::from);
            db.readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            result
        })
        .await
        .map_err(|e| DbError::from(format!("a read stopped: {e}")))?
    }
}

/// A file from before the lease table (a queue of `id, body, attempts` and a
/// `delayed` table of wake-ups) gets `visible_at`, and its wake-ups move in.
fn upgrade_queue(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let upgraded = conn
        .query_row(
            "SELECT COUNT(*) = 0 FROM pragma_table_info('queue') WHERE name = 'visible_at'",
            [],
            |r| r.get::<_, bool>(0),
        )
        .and_then(|old| match old {
            true => conn.execute_batch(
                "ALTER TABLE queue ADD COLUMN visible_at INTEGER NOT NULL DEFAULT 0;
                 INSERT OR IGNORE INTO queue (id, body, visible_at)
                     SELECT id, body, available_at FROM delayed;
                 DROP TABLE delayed;",
            ),
            false => Ok(()),
        })
        .and_then(|()| {
            // A file from before flow control: its rows have no lane.
            let lanes = conn.query_row(
                "SELECT COUNT(*) = 0 FROM pragma_table_info('queue') WHERE name = 'lane'",
                [],
                |r| r.get::<_, bool>(0),
            )?;
            if lanes {
                conn.execute_batch(
                    "ALTER TABLE queue ADD COLUMN lane TEXT;
                     ALTER TABLE queue ADD COLUMN lane_limit INTEGER;
                     ALTER TABLE queue ADD COLUMN gate TEXT;
                     ALTER TABLE queue ADD COLUMN gate_limit INTEGER;
                     ALTER TABLE queue ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;",
                )?;
            }
            conn.execute_batch(
                "CREATE INDEX IF NOT EXISTS queue_by_time ON queue (visible_at, id);
                 CREATE INDEX IF NOT EXISTS queue_by_lane ON queue (lane) WHERE lane IS NOT NULL;
                 CREATE INDEX IF NOT EXISTS queue_lane_in_flight ON queue (lane, taken, visible_at)
                     WHERE lane IS NOT NULL;
                 CREATE INDEX IF NOT EXISTS queue_gate_in_flight ON queue (gate, taken, visible_at)
                     WHERE gate IS NOT NULL;
                 COMMIT;",
            )
        });
    if upgraded.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    upgraded
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
    // Every statement the store and queue use stays prepared (rusqlite keeps 16).
    conn.set_prepared_statement_cache_capacity(128);
    if !read_only {
        // WAL: readers in other processes (the CLI) never block the writer.
        // NORMAL: a commit is written to the WAL, not yet fsync'd; the writer
        // fsyncs the WAL after each batch itself (write_loop), which FULL would do
        // at the commit, so it can answer first the writes that need not wait.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(|e| format!("cannot configure {}: {e}", path.display()))?;
    }
    Ok(conn)
}

/// The database's write-ahead log, fsync'd by the writer after each batch.
struct WalFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl WalFile {
    fn of(db: &Path) -> Self {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        Self {
            path: path.into(),
            file: None,
        }
    }

    /// Puts every commit so far on disk (fsync of the log: what SQLite's
    /// `synchronous=FULL` does after each commit in WAL mode). The file is kept
    /// open: SQLite keeps the log (and rewrites it from its start after a
    /// checkpoint) while the writer's connection is open.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(std::fs::File::open(&self.path)?);
        }
        self.file.as_ref().map_or(Ok(()), std::fs::File::sync_data)
    }
}

/// Runs one of the writer's own statements (begin, commit, savepoints), prepared
/// once: they run several times per batch.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Takes every write that is waiting, runs each in its own savepoint (one failing
/// write does not undo the others), commits once, answers the writes that may be
/// flushed after their answer, fsyncs the log, then answers the others.
fn write_loop(conn: Connection, mut wal: WalFile, rx: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            let message = e.to_string();
            for job in batch {
                let _ = job.reply.send(Err(message.clone().into()));
            }
            continue;
        }
        let mut answers = Vec::with_capacity(batch.len());
        for job in batch {
            let result = run_in_savepoint(&conn, job.op);
            answers.push((job.flush, job.reply, result));
        }
        if let Err(e) = exec(&conn, "COMMIT") {
            let _ = exec(&conn, "ROLLBACK");
            for (_, reply, _) in answers {
                let _ = reply.send(Err(format!("commit failed: {e}").into()));
            }
            continue;
        }
        let mut after_flush = Vec::with_capacity(answers.len());
        for (flush, reply, result) in answers {
            match flush {
                Flush::AfterAnswer => {
                    let _ = reply.send(result);
                }
                Flush::BeforeAnswer => after_flush.push((reply, result)),
            }
        }
        let flushed = wal.flush();
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "cannot flush the database's log to disk: no more writes are taken; restart once the disk is sound");
        }
        for (reply, result) in after_flush {
            let _ = reply.send(match &flushed {
                Ok(()) => result,
                Err(e) => Err(format!("the write could not be flushed to disk: {e}").into()),
            });
        }
        // After a failed fsync the kernel may have dropped the pages and clears
        // the error: a later fsync succeeding would not make them durable. Every
        // write from here fails ("the database writer has stopped"), as
        // PostgreSQL stops, rather than acknowledge what may not be on disk.
        if flushed.is_err() {
            break;
        }
    }
}

fn run_in_savepoint(conn: &Connection, op: WriteOp) -> Result<bool, DbError> {
    exec(conn, "SAVEPOINT op")?;
    // A panic in one write (a bug) fails that write only: the writer thread, and
    // every write after it, goes on.
    let outcome = match crate::guard::catch_sync(|| op(conn)) {
        Ok(done) => done.map_err(DbError::from),
        Err(panic) => Err(format!("the write failed on an internal error: {panic}").into()),
    };
    match outcome {
        Ok(applied) => {
            exec(conn, "RELEASE op")?;
            Ok(applied)
        }
        Err(e) => {
            let _ = exec(conn, "ROLLBACK TO op").and_then(|()| exec(conn, "RELEASE op"));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite will refuse again (a constraint here; a record past its length
    /// limit alike) is a refusal, not an outage to wait out.
    #[tokio::test]
    async fn a_write_sqlite_refuses_for_good_is_not_retryable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let insert = || -> WriteOp {
            Box::new(|conn| {
                conn.execute(
                    "INSERT INTO workflows (key, current_version, hook_id) VALUES ('a', 1, 'h')",
                    [],
                )?;
                Ok(true)
            })
        };
        assert!(db.write(insert()).await.unwrap());
        let refused = store_error(db.write(insert()).await.unwrap_err());
        assert!(
            matches!(refused, StoreError::Rejected { .. }) && !refused.is_retryable(),
            "{refused:?}"
        );
        // SQLite's answer to a record past its length limit (1 GB by default).
        let too_big = db
            .write(Box::new(|_| {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
                    Some("string or blob too big".into()),
                ))
            }))
            .await
            .unwrap_err();
        assert_eq!(too_big.code, Some(rusqlite::ErrorCode::TooBig), "{too_big}");
        assert!(!store_error(too_big).is_retryable());
        let outage = store_error(DbError::from("commit failed: disk I/O error".to_string()));
        assert!(outage.is_retryable());
    }
}
