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

/// The flags of the bounds on connections, which `hookflow serve` and `hookflow ui`
/// both take.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionFlags {
    /// Connections open at once; past it a new connection gets 503 with Retry-After.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection may take to send a request head.
    #[arg(long, default_value_t = Limits::default().header_timeout.as_secs())]
    header_timeout: u64,
    /// Seconds a kept-alive connection may stay open with no request.
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
}

impl ConnectionFlags {
    /// The limits these flags set (the others at their defaults), with the
    /// connection cap lowered to fit the open-file limit.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: super::connection_cap(self.max_connections),
            header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
            ..Limits::default()
        }
    }
}

/// The memory all bodies being read may take together, in bytes.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes of the budget held by one request until it is answered.
pub struct Reserved(Option<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
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

    /// Takes for `held` what `body` costs once parsed beyond its bytes (already
    /// held), at once or not at all. One body is charged at most half the budget,
    /// so a large body still gets in beside smaller ones rather than never.
    pub fn reserve_parsed(&self, held: &mut Reserved, body: &[u8]) -> bool {
        let cost = super::parsed::parsed_cost(body).min(self.total / 2);
        let holding = held.0.as_ref().map_or(0, |p| p.num_permits());
        self.reserve(held, cost.saturating_sub(holding))
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

    #[test]
    fn a_json_body_is_charged_what_it_becomes_once_parsed() {
        let budget = BodyBudget::new(32 << 20);
        let array = format!("[{}1]", "1,".repeat((1 << 20) / 2 - 1));
        let mut first = BodyBudget::empty();
        assert!(budget.reserve(&mut first, array.len()));
        assert!(budget.reserve_parsed(&mut first, array.as_bytes()));
        assert_eq!(budget.available(), 16 << 20, "half the budget, no more");
        let mut second = BodyBudget::empty();
        assert!(budget.reserve(&mut second, array.len()));
        assert!(budget.reserve_parsed(&mut second, array.as_bytes()));
        let mut third = BodyBudget::empty();
        assert!(
            !budget.reserve(&mut third, array.len()),
            "two such bodies at once hold the budget (32 counting raw bytes)"
        );
        // A body of text costs its bytes (and one value).
        let mut text = BodyBudget::empty();
        drop(second);
        assert!(budget.reserve_parsed(&mut text, b"\"hello\""));
        assert_eq!(budget.available(), (16 << 20) - 7 - 112);
    }
}
