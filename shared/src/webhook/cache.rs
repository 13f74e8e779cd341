//! A short-lived cache of hook lookups, so a warm process does not ask the store on
//! every request. Misses are cached too: probing random hook ids costs the store
//! nothing more. Bounded by entries and by bytes, least recently used out first, so
//! no stream of distinct ids can grow it (ids are at most 128 bytes by then: see
//! `model::is_hook_id`).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::model::DeployedWorkflow;
use crate::ports::{Store, StoreError};

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 10_000;
/// Bytes kept at most (ids, definitions, and a fixed cost per entry).
pub const MAX_BYTES: usize = 16 << 20;
/// What an entry costs besides its id and definition (map slot, list links, Arc).
const ENTRY_OVERHEAD: usize = 96;

struct Entry {
    at: Instant,
    found: Option<Arc<DeployedWorkflow>>,
    bytes: usize,
}

struct Entries {
    map: LruCache<String, Entry>,
    bytes: usize,
}

pub struct HookCache {
    ttl: Duration,
    max_bytes: usize,
    entries: Mutex<Entries>,
}

impl HookCache {
    /// A zero `ttl` disables caching.
    pub fn new(ttl: Duration) -> Self {
        Self::with_bounds(ttl, MAX_ENTRIES, MAX_BYTES)
    }

    pub fn with_bounds(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_bytes,
            entries: Mutex::new(Entries {
                map: LruCache::new(NonZeroUsize::new(max_entries).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
    }

    pub async fn get(
        &self,
        store: &dyn Store,
        hook_id: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        let kept = match self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(hook_id)
        {
            Some(entry) if entry.at.elapsed() < self.ttl => return Ok(entry.found.clone()),
            Some(entry) => entry.found.clone(),
            None => None,
        };
        let mut found = store.workflow_by_hook(hook_id).await?;
        // A version is never changed once published: the one kept, if it is still
        // current, stays, with what was compiled from it (`trigger.schema`).
        if let (Some(old), Some(new)) = (&kept, &found)
            && (old.key.as_str(), old.version) == (new.key.as_str(), new.version)
        {
            found = kept;
        }
        if !self.ttl.is_zero() {
            self.insert(hook_id, found.clone());
        }
        Ok(found)
    }

    fn insert(&self, hook_id: &str, found: Option<Arc<DeployedWorkflow>>) {
        // Sized once per miss, outside the lock.
        let definition = found.as_ref().map_or(0, |w| {
            serde_json::to_vec(&w.definition).map_or(0, |v| v.len())
        });
        let bytes = hook_id.len() + definition + ENTRY_OVERHEAD;
        let entry = Entry {
            at: Instant::now(),
            found,
            bytes,
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if bytes > self.max_bytes {
            // Never kept: it would push out everything else.
            if let Some(old) = entries.map.pop(hook_id) {
                entries.bytes -= old.bytes;
            }
            return;
        }
        if let Some((_, old)) = entries.map.push(hook_id.to_string(), entry) {
            // The id's earlier entry, or the least recently used one pushed out.
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
        while entries.bytes > self.max_bytes {
            match entries.map.pop_lru() {
                Some((_, old)) => entries.bytes -= old.bytes,
                None => break,
            }
        }
    }

    /// Entries and bytes held now.
    pub fn size(&self) -> (usize, usize) {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        (entries.map.len(), entries.bytes)
    }
}
