//! Resolved secrets, kept for at most the hook cache TTL: a warm process reads a
//! reference once per TTL, and a rotated value is picked up within it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::SecretRef;
use crate::ports::secrets::{SecretError, SecretSource};

pub struct SecretCache {
    source: Arc<dyn SecretSource>,
    ttl: Duration,
    entries: Mutex<HashMap<SecretRef, (Instant, Arc<str>)>>,
}

impl SecretCache {
    pub fn new(source: Arc<dyn SecretSource>, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of one reference (a written value is returned as it is).
    pub async fn value(&self, reference: &SecretRef) -> Result<Arc<str>, SecretError> {
        if let SecretRef::Plain(value) = reference {
            return Ok(Arc::from(value.as_str()));
        }
        if let Some((at, value)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(reference)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(value));
        }
        let value: Arc<str> = Arc::from(self.source.read(reference).await?);
        if !self.ttl.is_zero() {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            // References come from deployed definitions only, so this stays small;
            // dropping expired ones keeps it so across redeploys.
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            entries.insert(reference.clone(), (Instant::now(), Arc::clone(&value)));
        }
        Ok(value)
    }
}
