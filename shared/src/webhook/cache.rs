//! A short-lived cache of hook lookups, so a warm process does not ask the store on
//! every request. Misses are cached too: probing random hook ids costs the store
//! nothing more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::DeployedWorkflow;
use crate::ports::{Store, StoreError};

/// Past this many entries the cache starts over rather than grow without bound.
const MAX_ENTRIES: usize = 10_000;

type Entry = (Instant, Option<Arc<DeployedWorkflow>>);

pub struct HookCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl HookCache {
    /// A zero `ttl` disables caching.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        store: &dyn Store,
        hook_id: &str,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        if let Some((at, found)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hook_id)
            && at.elapsed() < self.ttl
        {
            return Ok(found.clone());
        }
        let found = store.workflow_by_hook(hook_id).await?;
        if !self.ttl.is_zero() {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(hook_id.to_string(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }
}
