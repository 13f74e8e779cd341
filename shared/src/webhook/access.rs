//! Who may call a hook (inbound.md §6): `trigger.allowIps` and `trigger.rateLimit`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};

use crate::model::{RateLimit, parse_block};

/// The address a request came from, set by the edge as a request extension: the
/// connection's peer for `hookflow serve`, `requestContext.http.sourceIp` on API
/// Gateway. Never read from `X-Forwarded-For`, which the caller writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceIp(pub IpAddr);

/// Whether `source` is inside one of `allowed` (CIDR blocks, or single addresses).
/// IPv4 is judged as IPv4 on both sides: a caller seen as `::ffff:a.b.c.d` (on a
/// dual-stack socket) is the IPv4 address, and so is an entry written that way
/// (see [`block_of`]). Entries that do not read are skipped (`validate` refuses
/// them before a deploy).
pub fn allowed(source: Option<SourceIp>, allowed: &[String]) -> bool {
    let Some(SourceIp(ip)) = source else {
        return false;
    };
    let ip = ip.to_canonical();
    allowed.iter().any(|entry| match block_of(entry) {
        Some(block) => block.contains(&ip),
        None => false,
    })
}

/// An entry's block, with an IPv4-mapped one (`::ffff:203.0.113.0/120`, inside
/// `::ffff:0:0/96`) read as the IPv4 block it names (`203.0.113.0/24`): callers
/// are compared in their IPv4 form, which an IPv6 block never contains. A wider
/// IPv6 block (`::/0`) stays IPv6, as written.
fn block_of(entry: &str) -> Option<IpNet> {
    let block = parse_block(entry)?;
    if let IpNet::V6(v6) = block
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
    {
        let mapped = Ipv4Net::new(v4, v6.prefix_len() - 96).ok()?;
        return Some(IpNet::V4(mapped.trunc()));
    }
    Some(block)
}

/// `trigger.rateLimit`: token buckets kept per process (a Lambda's warm instance,
/// a `hookflow serve`), each reset when its hook's limit changes. Two kinds, so a
/// caller who fails the hook's checks never spends what its real sender needs:
/// - one per hook, spent only by callers that passed Basic auth and the signature
///   (by everyone, on a hook with neither);
/// - one per hook and source address (an IPv6 /64 counts as one address), spent
///   by callers that failed those checks and by GET handshakes. A source that
///   empties its bucket is refused before its body is read or a MAC computed, so
///   failing costs a bounded amount of work per address, and only that address
///   waits.
#[derive(Default)]
pub struct RateLimiter {
    proven: Buckets<String>,
    unproven: Buckets<(String, Option<IpAddr>)>,
}

/// Whose bucket a request spends (see [`RateLimiter`]).
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// Passed the hook's checks.
    Proven,
    /// Failed one, or a GET handshake: counted against its source address.
    Unproven(Option<SourceIp>),
}

impl RateLimiter {
    /// Whether `caller`'s bucket holds a token now (none is taken); `Err` is how
    /// long until one is free.
    pub fn room(
        &self,
        hook_id: &str,
        caller: Caller,
        limit: RateLimit,
        now: Instant,
    ) -> Result<(), Duration> {
        self.spend(hook_id, caller, limit, now, false)
    }

    /// Takes a token from `caller`'s bucket.
    pub fn take(
        &self,
        hook_id: &str,
        caller: Caller,
        limit: RateLimit,
        now: Instant,
    ) -> Result<(), Duration> {
        self.spend(hook_id, caller, limit, now, true)
    }

    fn spend(
        &self,
        hook_id: &str,
        caller: Caller,
        limit: RateLimit,
        now: Instant,
        take: bool,
    ) -> Result<(), Duration> {
        let hook = hook_id.to_string();
        match caller {
            Caller::Proven => self.proven.spend(hook, limit, now, take),
            Caller::Unproven(source) => {
                self.unproven
                    .spend((hook, source_key(source)), limit, now, take)
            }
        }
    }
}

/// The address a source's bucket is kept under: IPv4 as itself (also when seen as
/// `::ffff:a.b.c.d`), IPv6 by its /64, the block one host is usually given.
fn source_key(source: Option<SourceIp>) -> Option<IpAddr> {
    let SourceIp(ip) = source?;
    Some(match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    })
}

struct Buckets<K> {
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

/// So a burst of unique keys cannot grow a map without end: past this many
/// buckets, full (idle) ones are dropped, as they hold nothing a new one lacks;
/// if all are in use (many addresses failing at once) the map starts afresh,
/// which forgets failures rather than refuse anyone for want of room.
const MAX_BUCKETS: usize = 10_000;

impl<K: Hash + Eq> Buckets<K> {
    /// Refills `key`'s bucket to `now`; `Ok` when it holds a token, taken when
    /// `take`; else how long until one is free.
    fn spend(&self, key: K, limit: RateLimit, now: Instant, take: bool) -> Result<(), Duration> {
        let mut buckets = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| b.refilled(now) < b.limit.burst());
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let fresh = || Bucket {
            limit,
            tokens: limit.burst(),
            at: now,
        };
        let bucket = buckets.entry(key).or_insert_with(fresh);
        if bucket.limit != limit {
            *bucket = fresh();
        }
        bucket.tokens = bucket.refilled(now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            Ok(())
        } else {
            let rate = limit.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(
                ((1.0 - bucket.tokens) / rate).min(86_400.0),
            ))
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * self.limit.per_second).min(self.limit.burst())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<SourceIp> {
        Some(SourceIp(s.parse().unwrap()))
    }

    #[test]
    fn allowlists_read_ipv4_ipv6_and_single_addresses() {
        let list = vec![
            "192.30.252.0/22".to_string(),
            "2001:db8::/32".to_string(),
            "10.1.2.3".to_string(),
        ];
        assert!(allowed(ip("192.30.253.7"), &list));
        assert!(allowed(ip("::ffff:192.30.255.255"), &list));
        assert!(allowed(ip("2001:db8:1::5"), &list));
        assert!(allowed(ip("10.1.2.3"), &list));
        assert!(!allowed(ip("192.30.248.1"), &list));
        assert!(!allowed(ip("2001:db9::1"), &list));
        assert!(!allowed(ip("10.1.2.4"), &list));
        assert!(!allowed(None, &list), "an unknown source is refused");
        assert!(!allowed(ip("127.0.0.1"), &["not an address".to_string()]));
    }

    #[test]
    fn ipv4_mapped_entries_and_callers_match_as_ipv4() {
        let list = vec![
            "::ffff:203.0.113.7".to_string(),
            "::ffff:198.51.100.0/120".to_string(),
            " ::FFFF:C000:0200/126 ".to_string(),
        ];
        for caller in [
            "203.0.113.7",
            "::ffff:203.0.113.7",
            "198.51.100.0",
            "198.51.100.255",
            "::ffff:198.51.100.9",
            "192.0.2.3",
        ] {
            assert!(allowed(ip(caller), &list), "{caller}");
        }
        for caller in ["203.0.113.8", "198.51.101.0", "192.0.2.4", "::1"] {
            assert!(!allowed(ip(caller), &list), "{caller}");
        }
        // A plain IPv4 entry takes a caller seen on a dual-stack socket.
        assert!(allowed(
            ip("::ffff:203.0.113.7"),
            &["203.0.113.0/24".to_string()]
        ));
        // IPv6 blocks beyond the mapped range keep their IPv6 meaning.
        assert!(!allowed(ip("203.0.113.7"), &["::/0".to_string()]));
        assert!(allowed(ip("2001:db8::1"), &["::/0".to_string()]));
        assert_eq!(
            block_of("::ffff:203.0.113.99/120"),
            Some("203.0.113.0/24".parse().unwrap())
        );
    }

    fn per_second(per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst: Some(burst),
        }
    }

    #[test]
    fn the_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::default();
        let limit = per_second(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("h", Caller::Proven, limit, t0).is_ok());
        }
        let wait = limiter.take("h", Caller::Proven, limit, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(limiter.room("h", Caller::Proven, limit, t0), Err(wait));
        // Half a second later one token is back, and only one; looking takes none.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.room("h", Caller::Proven, limit, t1).is_ok());
        assert!(limiter.take("h", Caller::Proven, limit, t1).is_ok());
        assert!(limiter.take("h", Caller::Proven, limit, t1).is_err());
        // Another hook has its own bucket.
        assert!(limiter.take("other", Caller::Proven, limit, t1).is_ok());
        // A long quiet spell refills to the burst, not past it.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take("h", Caller::Proven, limit, t2).is_ok());
        }
        assert!(limiter.take("h", Caller::Proven, limit, t2).is_err());
        // A changed limit starts a fresh bucket.
        let wider = per_second(2.0, 5);
        for _ in 0..5 {
            assert!(limiter.take("h", Caller::Proven, wider, t2).is_ok());
        }
    }

    #[test]
    fn failures_are_counted_per_source_and_never_spend_the_hooks_bucket() {
        let limiter = RateLimiter::default();
        let limit = per_second(1.0, 2);
        let t0 = Instant::now();
        let attacker = ip("203.0.113.9");
        for _ in 0..50 {
            let _ = limiter.take("h", Caller::Unproven(attacker), limit, t0);
        }
        assert!(
            limiter
                .room("h", Caller::Unproven(attacker), limit, t0)
                .is_err()
        );
        // The same address seen on an IPv6 socket, and the rest of an IPv6 /64,
        // are the same source.
        assert!(
            limiter
                .room("h", Caller::Unproven(ip("::ffff:203.0.113.9")), limit, t0)
                .is_err()
        );
        for _ in 0..2 {
            let _ = limiter.take("h", Caller::Unproven(ip("2001:db8:1:2::1")), limit, t0);
        }
        assert!(
            limiter
                .room("h", Caller::Unproven(ip("2001:db8:1:2:ffff::9")), limit, t0)
                .is_err()
        );
        assert!(
            limiter
                .room("h", Caller::Unproven(ip("2001:db8:1:3::1")), limit, t0)
                .is_ok()
        );
        // Other addresses, and callers that pass, are untouched.
        assert!(
            limiter
                .room("h", Caller::Unproven(ip("192.30.252.1")), limit, t0)
                .is_ok()
        );
        assert!(limiter.take("h", Caller::Proven, limit, t0).is_ok());
        assert!(limiter.take("h", Caller::Proven, limit, t0).is_ok());
    }
}
