//! Idempotency claims in the embedded SQLite file. A claim is one write, checked and
//! made inside the writer's transaction (`BEGIN IMMEDIATE`), so duplicates, in this
//! process or another one on the same file, start exactly one run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use super::db::Database;
use crate::model::{Claim, ClaimCheck, ClaimOutcome, KeyedAccept, RunMessage, key_hash};
use crate::ports::StoreError;

/// Every this many claims, ended claims are deleted (a few at a time), so the
/// table stays as large as the keys alive within their TTL.
const SWEEP_EVERY: u64 = 256;
const SWEEP_ROWS: u32 = 1_000;

static CLAIMS_MADE: AtomicU64 = AtomicU64::new(0);

use super::db::store_error as backend;

fn encode(claim: &Claim) -> Result<String, StoreError> {
    serde_json::to_string(claim).map_err(StoreError::unencodable)
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

/// Takes the claim if no claim on its key holds at `now`; else the holder.
fn take(
    conn: &Connection,
    claim: &Claim,
    record: &str,
    now: u64,
) -> rusqlite::Result<Option<Claim>> {
    let existing = kept(conn, &claim.workflow_key, &claim.key_hash())?;
    if let Some(held) = existing.filter(|c| c.holds_at(now)) {
        return Ok(Some(held));
    }
    write_claim(conn, claim, record)?;
    if CLAIMS_MADE
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(SWEEP_EVERY)
    {
        conn.execute(
            "DELETE FROM claims WHERE rowid IN
             (SELECT rowid FROM claims WHERE expires_at <= ?1 LIMIT ?2)",
            params![now as i64, SWEEP_ROWS],
        )?;
    }
    Ok(None)
}

/// Runs `then` after taking the claim, in the same write; the holder when the key
/// is held (and nothing is written).
async fn take_then(
    db: &Database,
    claim: &Claim,
    now: u64,
    then: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
) -> Result<Option<Claim>, StoreError> {
    let record = encode(claim)?;
    let holder: Arc<Mutex<Option<Claim>>> = Arc::default();
    let found = Arc::clone(&holder);
    let claim = claim.clone();
    let claimed = db
        .write(Box::new(move |conn| {
            match take(conn, &claim, &record, now)? {
                Some(held) => {
                    *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
                    Ok(false)
                }
                None => then(conn).map(|()| true),
            }
        }))
        .await
        .map_err(backend)?;
    if claimed {
        return Ok(None);
    }
    let held = holder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| StoreError::unavailable("a held claim was not returned"))?;
    Ok(Some(held))
}

pub async fn claim(db: &Database, claim: &Claim, now: u64) -> Result<ClaimOutcome, StoreError> {
    Ok(match take_then(db, claim, now, |_| Ok(())).await? {
        None => ClaimOutcome::Claimed,
        Some(held) => ClaimOutcome::Held(held),
    })
}

/// The claim and its run's queue row in one transaction: a claim is kept exactly
/// when its run is queued, so a crash anywhere around them loses neither a run
/// nor a duplicate's right to run (and needs no confirmation from the worker).
pub async fn claim_run(
    db: &Database,
    claim: &Claim,
    run: &RunMessage,
    now: u64,
) -> Result<KeyedAccept, StoreError> {
    // Its run is queued once this commits: its answer stands at once.
    let claim = Claim {
        pending: false,
        confirmed_by: None,
        lease_until: 0,
        ..claim.clone()
    };
    let row = super::queue::Row::of(run).map_err(StoreError::unencodable)?;
    let queued = move |conn: &Connection| {
        super::queue::insert_row(conn, &row)?;
        Ok(())
    };
    match take_then(db, &claim, now, queued).await? {
        Some(held) => Ok(KeyedAccept::Held(held)),
        None => {
            db.rows_queued();
            Ok(KeyedAccept::Queued)
        }
    }
}

/// The claim kept on `key`, read inside a write.
fn kept(conn: &Connection, workflow_key: &str, key_hash: &str) -> rusqlite::Result<Option<Claim>> {
    conn.prepare_cached("SELECT record FROM claims WHERE workflow_key = ?1 AND key_hash = ?2")?
        .query_row(params![workflow_key, key_hash], |r| r.get::<_, String>(0))
        .optional()?
        .map(decode)
        .transpose()
}

/// Runs `decide` on the claim kept on `key` inside one write; the claim it
/// returns is written back.
async fn update<T: Send + 'static>(
    db: &Database,
    workflow_key: &str,
    key: &str,
    decide: impl FnOnce(Option<Claim>) -> (T, Option<Claim>) + Send + 'static,
) -> Result<T, StoreError> {
    let (workflow, hash) = (workflow_key.to_string(), key_hash(key));
    let outcome: Arc<Mutex<Option<T>>> = Arc::default();
    let found = Arc::clone(&outcome);
    db.write(Box::new(move |conn| {
        let (result, changed) = decide(kept(conn, &workflow, &hash)?);
        if let Some(changed) = changed {
            let record = encode(&changed)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            write_claim(conn, &changed, &record)?;
        }
        *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        Ok(true)
    }))
    .await
    .map_err(backend)?;
    let result = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    result.ok_or_else(|| StoreError::unavailable("a claim update returned nothing"))
}

/// Confirms the claim on `key` for `copy` of run `execution_id` (see
/// [`Claim::check_copy`]), in one write.
pub async fn confirm(
    db: &Database,
    workflow_key: &str,
    key: &str,
    execution_id: &str,
    copy: &str,
) -> Result<ClaimCheck, StoreError> {
    let (execution_id, copy) = (execution_id.to_string(), copy.to_string());
    update(db, workflow_key, key, move |held| {
        let Some(held) = held else {
            return (ClaimCheck::Gone, None);
        };
        let check = held.check_copy(&execution_id, &copy);
        let confirms = check == ClaimCheck::Ours && held.pending;
        let confirmed = confirms.then(|| Claim {
            pending: false,
            confirmed_by: held.confirmed_by.clone().or(Some(copy)),
            ..held
        });
        (check, confirmed)
    })
    .await
}

/// Renews a pending claim's lease for a duplicate that re-queues its run.
pub async fn retake(db: &Database, claim: &Claim, lease_was: u64) -> Result<bool, StoreError> {
    let renewed = claim.clone();
    update(db, &claim.workflow_key, &claim.key, move |held| {
        let takes = held.is_some_and(|held| {
            held.execution_id == renewed.execution_id
                && held.pending
                && held.lease_until == lease_was
        });
        let renewed = Claim {
            pending: true,
            ..renewed
        };
        (takes, takes.then_some(renewed))
    })
    .await
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
