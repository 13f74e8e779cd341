//! Idempotency claims in the embedded SQLite file. A claim is one write, checked and
//! made inside the writer's transaction (`BEGIN IMMEDIATE`), so duplicates, in this
//! process or another one on the same file, start exactly one run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use super::db::Database;
use crate::model::{Claim, ClaimOutcome};
use crate::ports::StoreError;

/// Every this many claims, ended claims are deleted (a few at a time), so the
/// table stays as large as the keys alive within their TTL.
const SWEEP_EVERY: u64 = 256;
const SWEEP_ROWS: u32 = 1_000;

static CLAIMS_MADE: AtomicU64 = AtomicU64::new(0);

fn backend(e: String) -> StoreError {
    StoreError::Backend(e)
}

fn encode(claim: &Claim) -> Result<String, StoreError> {
    serde_json::to_string(claim).map_err(|e| StoreError::Backend(e.to_string()))
}

fn decode(text: String) -> rusqlite::Result<Claim> {
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn write_claim(conn: &Connection, claim: &Claim, record: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO claims (workflow_key, key_hash, execution_id, expires_at, record)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        claim.workflow_key,
        claim.key_hash(),
        claim.execution_id,
        claim.expires_at as i64,
        record
    ])?;
    Ok(())
}

pub async fn claim(db: &Database, claim: &Claim, now: u64) -> Result<ClaimOutcome, StoreError> {
    let record = encode(claim)?;
    let holder: Arc<Mutex<Option<Claim>>> = Arc::default();
    let found = Arc::clone(&holder);
    let claim = claim.clone();
    let sweep = CLAIMS_MADE
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(SWEEP_EVERY);
    let claimed = db
        .write(Box::new(move |conn| {
            let existing = conn
                .prepare_cached(
                    "SELECT record FROM claims WHERE workflow_key = ?1 AND key_hash = ?2",
                )?
                .query_row(params![claim.workflow_key, claim.key_hash()], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?
                .map(decode)
                .transpose()?;
            if let Some(held) = existing.filter(|c| c.holds_at(now)) {
                *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
                return Ok(false);
            }
            write_claim(conn, &claim, &record)?;
            if sweep {
                conn.execute(
                    "DELETE FROM claims WHERE rowid IN
                     (SELECT rowid FROM claims WHERE expires_at <= ?1 LIMIT ?2)",
                    params![now as i64, SWEEP_ROWS],
                )?;
            }
            Ok(true)
        }))
        .await
        .map_err(backend)?;
    if claimed {
        return Ok(ClaimOutcome::Claimed);
    }
    let held = holder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| StoreError::Backend("a held claim was not returned".into()))?;
    Ok(ClaimOutcome::Held(held))
}

pub async fn settle(db: &Database, claim: &Claim) -> Result<(), StoreError> {
    let record = encode(claim)?;
    let claim = claim.clone();
    db.write(Box::new(move |conn| {
        // Still ours: another request may have taken it over after the lease.
        let ours = conn
            .prepare_cached(
                "SELECT 1 FROM claims WHERE workflow_key = ?1 AND key_hash = ?2 AND execution_id = ?3",
            )?
            .query_row(
                params![claim.workflow_key, claim.key_hash(), claim.execution_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if ours {
            write_claim(conn, &claim, &record)?;
        }
        Ok(ours)
    }))
    .await
    .map(drop)
    .map_err(backend)
}

pub async fn release(db: &Database, claim: &Claim) -> Result<(), StoreError> {
    let claim = claim.clone();
    db.write(Box::new(move |conn| {
        let n = conn
            .prepare_cached(
                "DELETE FROM claims WHERE workflow_key = ?1 AND key_hash = ?2 AND execution_id = ?3",
            )?
            .execute(params![
                claim.workflow_key,
                claim.key_hash(),
                claim.execution_id
            ])?;
        Ok(n == 1)
    }))
    .await
    .map(drop)
    .map_err(backend)
}
