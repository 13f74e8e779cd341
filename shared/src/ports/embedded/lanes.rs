//! Lane versions (`options.staleGuard`) in the embedded SQLite file: a row per
//! lane with its highest version, compared here (an i128 does not fit SQLite's
//! integers) inside the writer's transaction, so the read and the raise are one
//! step.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::db::{Database, store_error};
use crate::model::LaneVersion;
use crate::ports::StoreError;

pub async fn raise(
    db: &Database,
    lane: &str,
    version: &LaneVersion,
    execution_id: &str,
) -> Result<Option<Value>, StoreError> {
    let (lane, run) = (lane.to_string(), execution_id.to_string());
    let (scaled, value) = (version.scaled, version.value.to_string());
    let stale = Arc::new(Mutex::new(None));
    let found = Arc::clone(&stale);
    db.write(Box::new(move |conn| {
        let held: Option<(String, String, String)> = conn
            .prepare_cached("SELECT scaled, value, run_id FROM lane_versions WHERE lane = ?1")?
            .query_row([&lane], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((held, held_value, held_by)) = held {
            let held: i128 = held.parse().unwrap_or(i128::MIN);
            if held > scaled || (held == scaled && held_by != run) {
                *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(held_value);
                return Ok(false);
            }
        }
        conn.prepare_cached(
            "INSERT OR REPLACE INTO lane_versions (lane, scaled, value, run_id) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![lane, scaled.to_string(), value, run])?;
        Ok(true)
    }))
    .await
    .map_err(store_error)?;
    let held = stale.lock().unwrap_or_else(PoisonError::into_inner).take();
    Ok(held.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))))
}
