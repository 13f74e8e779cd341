//! [`Store`] on the embedded SQLite file. Records are stored as JSON text; the
//! columns beside them exist only for lookups and ordering.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::db::{Database, Flush};
use crate::model::{
    Claim, ClaimCheck, ClaimOutcome, DeployedWorkflow, Execution, Gathering, Joined, KeyedAccept,
    LaneVersion, RunMessage,
};
use crate::ports::{
    ClaimStore, ExecutionFilter, ExecutionStore, Gathers, LaneVersions, Precondition, ReplayMarks,
    StoreError, WorkflowStore,
};

/// The store on one SQLite file. Its keyed accepts ([`Store::claim_run`]) queue
/// their runs in the same file, in the write that takes the claim: they are
/// delivered by the [`super::EmbeddedQueue`] open on that file, whatever queue
/// the rest of the app was given.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// An execution's write, with `when` checked in the same statement, on disk
    /// before it returns or just after (`flush`).
    async fn write_execution_as(
        &self,
        execution: &Execution,
        when: Precondition<'_>,
        flush: Flush,
    ) -> Result<bool, StoreError> {
        let record = encode(&*crate::ports::kept(execution)?)?;
        let (id, key) = (execution.id.clone(), execution.workflow_key.clone());
        // The precondition as SQL: the write and its check are one statement.
        let (sql, token) = match when {
            Precondition::Absent => (
                "INSERT OR IGNORE INTO executions (id, workflow_key, record) VALUES (?1, ?2, ?3)",
                None,
            ),
            Precondition::Always => (
                "INSERT OR REPLACE INTO executions (id, workflow_key, record) VALUES (?1, ?2, ?3)",
                None,
            ),
            Precondition::Running => (
                "INSERT INTO executions (id, workflow_key, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record
                 WHERE json_extract(executions.record, '$.status') = 'started'
                   AND json_extract(executions.record, '$.paused') IS NULL",
                None,
            ),
            Precondition::PausedOn(token) => (
                "UPDATE executions SET record = ?3
                 WHERE id = ?1 AND workflow_key = ?2
                   AND json_extract(record, '$.paused.token') = ?4",
                Some(token.to_string()),
            ),
        };
        self.db
            .write_as(
                flush,
                Box::new(move |conn| {
                    let mut statement = conn.prepare_cached(sql)?;
                    let n = match &token {
                        Some(token) => statement.execute(params![id, key, record, token])?,
                        None => statement.execute(params![id, key, record])?,
                    };
                    Ok(n == 1)
                }),
            )
            .await
            .map_err(backend)
    }
}

use super::db::store_error as backend;

fn decode<T: serde::de::DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::unencodable)
}

fn one_workflow(
    conn: &Connection,
    sql: &str,
    key: &str,
) -> rusqlite::Result<Option<Arc<DeployedWorkflow>>> {
    conn.prepare_cached(sql)?
        .query_row([key], |row| row.get::<_, String>(0))
        .optional()?
        .map(|text| decode(text).map(Arc::new))
        .transpose()
}

const CURRENT_BY_KEY: &str = "SELECT v.record FROM workflows w
    JOIN workflow_versions v ON v.key = w.key AND v.version = w.current_version
    WHERE w.key = ?1";
const CURRENT_BY_HOOK: &str = "SELECT v.record FROM workflows w
    JOIN workflow_versions v ON v.key = w.key AND v.version = w.current_version
    WHERE w.hook_id = ?1";

#[async_trait]
impl WorkflowStore for EmbeddedStore {
    async fn current_workflow(
        &self,
        key: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        let key = key.to_string();
        self.db
            .read(move |conn| one_workflow(conn, CURRENT_BY_KEY, &key))
            .await
            .map_err(backend)
    }

    async fn workflow_version(
        &self,
        key: &str,
        version: u32,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        let key = key.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT record FROM workflow_versions WHERE key = ?1 AND version = ?2",
                )?
                .query_row(params![key, version], |row| row.get::<_, String>(0))
                .optional()?
                .map(|text| decode(text).map(Arc::new))
                .transpose()
            })
            .await
            .map_err(backend)
    }

    async fn workflow_by_hook(
        &self,
        hook_id: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        let hook_id = hook_id.to_string();
        self.db
            .read(move |conn| one_workflow(conn, CURRENT_BY_HOOK, &hook_id))
            .await
            .map_err(backend)
    }

    async fn list_workflows(&self) -> Result<Vec<Arc<DeployedWorkflow>>, StoreError> {
        self.db
            .read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT v.record FROM workflows w
                     JOIN workflow_versions v ON v.key = w.key AND v.version = w.current_version
                     ORDER BY w.key",
                )?;
                let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
                rows.map(|r| r.and_then(decode).map(Arc::new)).collect()
            })
            .await
            .map_err(backend)
    }

    async fn publish(&self, workflow: &DeployedWorkflow) -> Result<(), StoreError> {
        let record = encode(workflow)?;
        let (key, version, hook_id) = (
            workflow.key.clone(),
            workflow.version,
            workflow.hook_id.clone(),
        );
        // The checks run inside the write so that two deploys cannot interleave.
        let owner: Option<String> = {
            let hook_id = hook_id.clone();
            self.db
                .read(move |conn| {
                    conn.query_row(
                        "SELECT key FROM workflows WHERE hook_id = ?1",
                        [hook_id],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .await
                .map_err(backend)?
        };
        if let Some(owner) = owner.filter(|o| *o != key) {
            return Err(StoreError::HookTaken { hook_id, owner });
        }
        let applied = {
            let (key, hook_id) = (key.clone(), hook_id.clone());
            self.db
                .write(Box::new(move |conn| {
                    let inserted = conn.execute(
                        "INSERT OR IGNORE INTO workflow_versions (key, version, hook_id, record) VALUES (?1, ?2, ?3, ?4)",
                        params![key, version, hook_id, record],
                    )?;
                    if inserted == 0 {
                        return Ok(false);
                    }
                    conn.execute(
                        "INSERT INTO workflows (key, current_version, hook_id) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET current_version = ?2, hook_id = ?3",
                        params![key, version, hook_id],
                    )?;
                    Ok(true)
                }))
                .await
        };
        match applied {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::VersionConflict { key, version }),
            Err(e) if e.message.contains("UNIQUE") => Err(StoreError::HookTaken {
                hook_id,
                owner: "another workflow".into(),
            }),
            Err(e) => Err(backend(e)),
        }
    }
}

#[async_trait]
impl ExecutionStore for EmbeddedStore {
    async fn write_execution(
        &self,
        execution: &Execution,
        when: Precondition<'_>,
    ) -> Result<bool, StoreError> {
        self.write_execution_as(execution, when, Flush::BeforeAnswer)
            .await
    }

    async fn save_answered(&self, execution: &Execution) -> Result<(), StoreError> {
        self.write_execution_as(execution, Precondition::Always, Flush::AfterAnswer)
            .await
            .map(drop)
    }

    async fn begin_execution(
        &self,
        execution: &Execution,
    ) -> Result<Option<Execution>, StoreError> {
        let record = encode(&*crate::ports::kept(execution)?)?;
        let (id, key) = (execution.id.clone(), execution.workflow_key.clone());
        let held: Arc<Mutex<Option<String>>> = Arc::default();
        let found = Arc::clone(&held);
        self.db
            .write(Box::new(move |conn| {
                let inserted = conn
                    .prepare_cached("INSERT OR IGNORE INTO executions (id, workflow_key, record) VALUES (?1, ?2, ?3)")?
                    .execute(params![id, key, record])?;
                if inserted == 0 {
                    let there = conn
                        .prepare_cached("SELECT record FROM executions WHERE id = ?1")?
                        .query_row([&id], |row| row.get::<_, String>(0))?;
                    *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(there);
                }
                Ok(true)
            }))
            .await
            .map_err(backend)?;
        let there = held.lock().unwrap_or_else(PoisonError::into_inner).take();
        there
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::unreadable("execution record", e))
            })
            .transpose()
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let id = id.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached("SELECT record FROM executions WHERE id = ?1")?
                    .query_row([id], |row| row.get::<_, String>(0))
                    .optional()?
                    .map(decode)
                    .transpose()
            })
            .await
            .map_err(backend)
    }

    async fn find_executions(
        &self,
        filter: &ExecutionFilter,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let query = Selection::new(filter);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                // Ids are UUIDv7: ordering by id is ordering by creation time, and
                // a time window is an id range on an index.
                let sql = format!(
                    "SELECT record FROM executions WHERE {} ORDER BY id DESC LIMIT ?5",
                    query.condition()
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(
                    params![
                        query.workflow,
                        query.lowest,
                        query.highest,
                        query.status,
                        limit
                    ],
                    |row| row.get::<_, String>(0),
                )?;
                rows.map(|r| r.and_then(decode)).collect()
            })
            .await
            .map_err(backend)
    }

    async fn count_paused(&self, workflow_key: &str, up_to: usize) -> Result<usize, StoreError> {
        let key = workflow_key.to_string();
        let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                // The same condition as the partial index's: answered from it.
                conn.prepare_cached(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM executions WHERE workflow_key = ?1
                     AND json_extract(record, '$.paused') IS NOT NULL LIMIT ?2)",
                )?
                .query_row(params![key, up_to], |row| row.get::<_, i64>(0))
            })
            .await
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(backend)
    }

    async fn prune_executions(
        &self,
        filter: &ExecutionFilter,
        max: usize,
    ) -> Result<usize, StoreError> {
        let query = Selection::new(filter);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let deleted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&deleted);
        self.db
            .write(Box::new(move |conn| {
                // A started execution (running, or paused and waiting) is live.
                let sql = format!(
                    "DELETE FROM executions WHERE id IN (
                         SELECT id FROM executions WHERE {}
                         AND json_extract(record, '$.status') <> 'started'
                         ORDER BY id LIMIT ?5)",
                    query.condition()
                );
                let n = conn.prepare_cached(&sql)?.execute(params![
                    query.workflow,
                    query.lowest,
                    query.highest,
                    query.status,
                    max
                ])?;
                count.store(n, Ordering::Relaxed);
                Ok(true)
            }))
            .await
            .map_err(backend)?;
        Ok(deleted.load(Ordering::Relaxed))
    }
}

#[async_trait]
impl ClaimStore for EmbeddedStore {
    async fn claim(&self, claim: &Claim, now: u64) -> Result<ClaimOutcome, StoreError> {
        super::claims::claim(&self.db, claim, now).await
    }

    async fn settle_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        super::claims::settle(&self.db, claim).await
    }

    async fn release_claim(&self, claim: &Claim) -> Result<(), StoreError> {
        super::claims::release(&self.db, claim).await
    }

    async fn claim_run(
        &self,
        claim: &Claim,
        run: &RunMessage,
        now: u64,
    ) -> Result<KeyedAccept, StoreError> {
        super::claims::claim_run(&self.db, claim, run, now).await
    }

    async fn retake_claim(&self, claim: &Claim, lease_was: u64) -> Result<bool, StoreError> {
        super::claims::retake(&self.db, claim, lease_was).await
    }

    async fn confirm_claim(
        &self,
        workflow_key: &str,
        key: &str,
        execution_id: &str,
        copy: &str,
    ) -> Result<ClaimCheck, StoreError> {
        super::claims::confirm(&self.db, workflow_key, key, execution_id, copy).await
    }
}

#[async_trait]
impl ReplayMarks for EmbeddedStore {
    async fn mark_replay(
        &self,
        original: &str,
        replay: &str,
        first_only: bool,
    ) -> Result<bool, StoreError> {
        super::replays::mark(&self.db, original, replay, first_only).await
    }

    async fn unmark_replay(&self, original: &str, replay: &str) -> Result<(), StoreError> {
        super::replays::unmark(&self.db, original, replay).await
    }

    async fn replays_marked(&self, originals: &[String]) -> Result<HashSet<String>, StoreError> {
        super::replays::marked(&self.db, originals).await
    }
}

#[async_trait]
impl Gathers for EmbeddedStore {
    async fn join(
        &self,
        group: &str,
        member: &str,
        now: u64,
        max: Option<u32>,
        generation: &str,
        flush_at: u64,
    ) -> Result<Joined, StoreError> {
        super::gathers::join(&self.db, group, member, now, max, (generation, flush_at)).await
    }

    async fn gathering(&self, group: &str) -> Result<Option<Gathering>, StoreError> {
        super::gathers::gathering(&self.db, group).await
    }

    async fn reschedule(
        &self,
        group: &str,
        generation: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE gatherings SET flush_at = ?4
                   WHERE group_id = ?1 AND generation = ?2 AND flush_at = ?3 AND sealed = 0";
        super::gathers::update(&self.db, sql, group, generation, Some((from, to))).await
    }

    async fn seal(&self, group: &str, generation: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE gatherings SET sealed = 1 WHERE group_id = ?1 AND generation = ?2";
        super::gathers::update(&self.db, sql, group, generation, None).await
    }

    async fn close(&self, group: &str, generation: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM gatherings WHERE group_id = ?1 AND generation = ?2";
        super::gathers::update(&self.db, sql, group, generation, None)
            .await
            .map(drop)
    }
}

#[async_trait]
impl LaneVersions for EmbeddedStore {
    async fn raise_lane_version(
        &self,
        lane: &str,
        version: &LaneVersion,
        execution_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        super::lanes::raise(&self.db, lane, version, execution_id).await
    }
}

/// A filter as SQL parameters `?1`..`?4` (workflow, lowest id, highest id, status).
struct Selection {
    workflow: Option<String>,
    lowest: String,
    highest: String,
    status: Option<&'static str>,
}

impl Selection {
    fn new(filter: &ExecutionFilter) -> Self {
        Self {
            workflow: filter.workflow.clone(),
            lowest: filter.lowest_id(),
            highest: filter.highest_id(),
            status: filter.status.map(|s| s.as_str()),
        }
    }

    /// The WHERE clause; with a workflow it is written so SQLite takes the
    /// (workflow_key, id) index, else the primary key's id range.
    fn condition(&self) -> &'static str {
        match self.workflow {
            Some(_) => {
                "workflow_key = ?1 AND id BETWEEN ?2 AND ?3
                 AND (?4 IS NULL OR json_extract(record, '$.status') = ?4)"
            }
            None => {
                "?1 IS NULL AND id BETWEEN ?2 AND ?3
                 AND (?4 IS NULL OR json_extract(record, '$.status') = ?4)"
            }
        }
    }
}
