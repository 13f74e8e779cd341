//! What one caller may hold of the server: connections, time, and memory for bodies.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The server's bounds; `hookflow serve` takes each from a flag.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past it a new one gets 503 and is closed.
    pub max_connections: usize,
    /// Bytes of request bodies held in memory at once, over all requests; past it
    /// a request gets 503 (its sender retries) rather than the process growing.
    pub max_body_memory: usize,
    /// From a connection's first byte of a request head (or from its opening) to the
    /// end of the head.
    pub header_timeout: Duration,
    /// To read a whole body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request (or an answer nobody reads).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_body_memory: 32 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The memory all bodies being read may take together, in bytes.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
}

/// Bytes of the budget held by one request until it is answered.
pub struct Reserved(Option<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    pub fn empty() -> Reserved {
        Reserved(None)
    }

    /// Takes `n` more bytes for `held`, at once or not at all (a request never
    /// waits for memory: it is refused and retried by its sender).
    pub fn reserve(&self, held: &mut Reserved, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match Arc::clone(&self.bytes).try_acquire_many_owned(n) {
            Ok(permit) => {
                match &mut held.0 {
                    Some(existing) => existing.merge(permit),
                    None => held.0 = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_holds_its_bytes_until_dropped() {
        let budget = BodyBudget::new(100);
        let mut first = BodyBudget::empty();
        assert!(budget.reserve(&mut first, 60));
        assert!(budget.reserve(&mut first, 30));
        let mut second = BodyBudget::empty();
        assert!(!budget.reserve(&mut second, 20), "only 10 bytes are left");
        assert!(budget.reserve(&mut second, 10));
        drop(first);
        assert_eq!(budget.available(), 90);
        drop(second);
        assert_eq!(budget.available(), 100);
    }
}
