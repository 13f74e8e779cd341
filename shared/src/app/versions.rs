//! Deployed workflow versions as the worker reads them: a version never changes
//! once deployed, so a warm worker asks the store for each one once (a DynamoDB
//! read per run saved on AWS) and reuses its parsed node configs. Only versions
//! found are kept, the most recently used first out past [`MAX_VERSIONS`], so the
//! cache is bounded by what operators deploy, never by what senders send.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::model::DeployedWorkflow;
use crate::ports::{StoreError, WorkflowStore};

/// Versions kept at most.
pub const MAX_VERSIONS: usize = 256;

type Key = (String, u32);

pub struct VersionCache {
    store: Arc<dyn WorkflowStore>,
    kept: Mutex<LruCache<Key, Arc<DeployedWorkflow>>>,
}

impl VersionCache {
    pub fn new(store: Arc<dyn WorkflowStore>) -> Self {
        let capacity = NonZeroUsize::new(MAX_VERSIONS).unwrap_or(NonZeroUsize::MIN);
        Self {
            store,
            kept: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Version `version` of workflow `key`, if it is deployed.
    pub async fn get(
        &self,
        key: &str,
        version: u32,
    ) -> Result<Option<Arc<DeployedWorkflow>>, StoreError> {
        let id = (key.to_string(), version);
        if let Some(found) = self.kept().get(&id) {
            return Ok(Some(Arc::clone(found)));
        }
        let found = self.store.workflow_version(key, version).await?;
        if let Some(found) = &found {
            self.kept().put(id, Arc::clone(found));
        }
        Ok(found)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Arc<DeployedWorkflow>>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Store;
    use crate::ports::embedded::{Database, EmbeddedStore};

    #[tokio::test]
    async fn a_version_is_read_from_the_store_once_and_a_missing_one_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::new(Database::open(dir.path()).unwrap()));
        let definition = crate::validate::validate(
            &serde_json::json!({"key": "w", "trigger": {"type": "webhook"}, "nodes": []}),
            &crate::nodes::builtin(),
        )
        .unwrap();
        let cache = VersionCache::new(store.clone());
        assert!(cache.get("w", 1).await.unwrap().is_none());
        crate::app::deploy::deploy(store.as_ref(), &crate::nodes::builtin(), definition)
            .await
            .unwrap();
        // Not cached while missing: found once deployed.
        let first = cache.get("w", 1).await.unwrap().unwrap();
        let again = cache.get("w", 1).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "read from the store twice");
    }
}
