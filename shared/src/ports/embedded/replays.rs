//! Replay marks in the embedded SQLite file (`replay_marks`, see `db.rs`): one row
//! per execution a replay was queued for.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::params;

use super::db::Database;
use crate::ports::StoreError;

use super::db::store_error as backend;

pub async fn mark(
    db: &Database,
    original: &str,
    replay: &str,
    first_only: bool,
) -> Result<bool, StoreError> {
    let (original, replay) = (original.to_string(), replay.to_string());
    let sql = if first_only {
        "INSERT INTO replay_marks (original_id, replay_id) VALUES (?1, ?2)
         ON CONFLICT (original_id) DO NOTHING"
    } else {
        "INSERT OR REPLACE INTO replay_marks (original_id, replay_id) VALUES (?1, ?2)"
    };
    db.write(Box::new(move |conn| {
        let n = conn
            .prepare_cached(sql)?
            .execute(params![original, replay])?;
        Ok(n == 1)
    }))
    .await
    .map_err(backend)
}

pub async fn unmark(db: &Database, original: &str, replay: &str) -> Result<(), StoreError> {
    let (original, replay) = (original.to_string(), replay.to_string());
    db.write(Box::new(move |conn| {
        conn.prepare_cached("DELETE FROM replay_marks WHERE original_id = ?1 AND replay_id = ?2")?
            .execute(params![original, replay])?;
        Ok(true)
    }))
    .await
    .map(drop)
    .map_err(backend)
}

pub async fn marked(
    db: &Arc<Database>,
    originals: &[String],
) -> Result<HashSet<String>, StoreError> {
    // One statement for any number of ids: they go in as one JSON array.
    let ids = serde_json::to_string(originals).map_err(|e| backend(e.to_string()))?;
    db.read(move |conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT original_id FROM replay_marks
             WHERE original_id IN (SELECT value FROM json_each(?1))",
        )?;
        let rows = stmt.query_map([ids], |row| row.get::<_, String>(0))?;
        rows.collect()
    })
    .await
    .map_err(backend)
}
