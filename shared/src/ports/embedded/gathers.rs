//! Gatherings (`options.debounce`, `options.batch`) in the embedded SQLite file:
//! a row per open gathering with its members' ids as a JSON array, each step
//! one write in the writer's transaction.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{Database, store_error};
use crate::model::{Gathering, Joined};
use crate::ports::StoreError;

fn read(conn: &Connection, group: &str) -> rusqlite::Result<Option<Gathering>> {
    conn.prepare_cached(
        "SELECT generation, members, first_at, last_at, flush_at, sealed FROM gatherings WHERE group_id = ?1",
    )?
    .query_row([group], |r| {
        let members: String = r.get(1)?;
        Ok(Gathering {
            generation: r.get(0)?,
            members: serde_json::from_str(&members).unwrap_or_default(),
            first_at: r.get::<_, i64>(2)? as u64,
            last_at: r.get::<_, i64>(3)? as u64,
            flush_at: r.get::<_, i64>(4)? as u64,
            sealed: r.get(5)?,
        })
    })
    .optional()
}

fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

pub async fn join(
    db: &Database,
    group: &str,
    member: &str,
    now: u64,
    max: Option<u32>,
    (generation, flush_at): (&str, u64),
) -> Result<Joined, StoreError> {
    let (group, member, generation) = (
        group.to_string(),
        member.to_string(),
        generation.to_string(),
    );
    let found = Arc::new(Mutex::new(Joined::Closed));
    let out = Arc::clone(&found);
    db.write(Box::new(move |conn| {
        let joined = match read(conn, &group)? {
            Some(held) if held.members.contains(&member) => Joined::Already(held),
            Some(held) if held.sealed => Joined::Closed,
            Some(held) if max.is_some_and(|m| held.members.len() >= m as usize) => Joined::Closed,
            Some(mut held) => {
                held.members.push(member);
                held.last_at = now;
                conn.prepare_cached(
                    "UPDATE gatherings SET members = ?2, last_at = ?3 WHERE group_id = ?1",
                )?
                .execute(params![group, serde_json::to_string(&held.members).unwrap_or_default(), ms(now)])?;
                Joined::Added(held)
            }
            None => {
                let made = Gathering {
                    generation,
                    members: vec![member],
                    first_at: now,
                    last_at: now,
                    flush_at,
                    sealed: false,
                };
                conn.prepare_cached(
                    "INSERT INTO gatherings (group_id, generation, members, first_at, last_at, flush_at, sealed)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, 0)",
                )?
                .execute(params![
                    group,
                    made.generation,
                    serde_json::to_string(&made.members).unwrap_or_default(),
                    ms(now),
                    ms(flush_at)
                ])?;
                Joined::Added(made)
            }
        };
        let applied = matches!(joined, Joined::Added(_));
        *out.lock().unwrap_or_else(PoisonError::into_inner) = joined;
        Ok(applied)
    }))
    .await
    .map_err(store_error)?;
    let joined = std::mem::replace(
        &mut *found.lock().unwrap_or_else(PoisonError::into_inner),
        Joined::Closed,
    );
    Ok(joined)
}

pub async fn gathering(db: &Arc<Database>, group: &str) -> Result<Option<Gathering>, StoreError> {
    let group = group.to_string();
    db.read(move |conn| read(conn, &group))
        .await
        .map_err(store_error)
}

/// One conditional statement on a gathering: whether it changed a row.
pub async fn update(
    db: &Database,
    sql: &'static str,
    group: &str,
    generation: &str,
    times: Option<(u64, u64)>,
) -> Result<bool, StoreError> {
    let (group, generation) = (group.to_string(), generation.to_string());
    db.write(Box::new(move |conn| {
        let changed = match times {
            Some((from, to)) => {
                conn.prepare_cached(sql)?
                    .execute(params![group, generation, ms(from), ms(to)])?
            }
            None => conn
                .prepare_cached(sql)?
                .execute(params![group, generation])?,
        };
        Ok(changed == 1)
    }))
    .await
    .map_err(store_error)
}
