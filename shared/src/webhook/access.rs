//! Who may call a hook (inbound.md §6): `trigger.allowIps` and `trigger.rateLimit`.

use std::collections::HashMap;
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

/// A token bucket per hook: `burst` tokens, refilled at `perSecond`. Kept per
/// process (a Lambda's warm instance, a `hookflow serve`), and reset when the
/// hook's limit changes.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

/// So a burst of unique hooks cannot grow the map without end: past this many
/// buckets, full (idle) ones are dropped, as they hold nothing a new one lacks.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    /// Takes one token for `hook_id`; `Err` is how long until one is free.
    pub fn take(&self, hook_id: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(hook_id) {
            buckets.retain(|_, b| b.refilled(now) < b.limit.burst());
        }
        let bucket = buckets
            .entry(hook_id.to_string())
            .or_insert_with(|| Bucket {
                limit,
                tokens: limit.burst(),
                at: now,
            });
        if bucket.limit != limit {
            *bucket = Bucket {
                limit,
                tokens: limit.burst(),
                at: now,
            };
        }
        bucket.tokens = bucket.refilled(now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
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

    #[test]
    fn the_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::default();
        let limit = RateLimit {
            per_second: 2.0,
            burst: Some(3),
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("h", limit, t0).is_ok());
        }
        let wait = limiter.take("h", limit, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.take("h", limit, t1).is_ok());
        assert!(limiter.take("h", limit, t1).is_err());
        // Another hook has its own bucket.
        assert!(limiter.take("other", limit, t1).is_ok());
        // A long quiet spell refills to the burst, not past it.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take("h", limit, t2).is_ok());
        }
        assert!(limiter.take("h", limit, t2).is_err());
        // A changed limit starts a fresh bucket.
        let wider = RateLimit {
            per_second: 2.0,
            burst: Some(5),
        };
        for _ in 0..5 {
            assert!(limiter.take("h", wider, t2).is_ok());
        }
    }
}
