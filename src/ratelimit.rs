//! Token-bucket rate limits per host, applied before a request takes a pool
//! slot: a burst is allowed, then requests are spaced out at the rate.
//!
//! A request that would have to wait past its deadline fails at once with
//! `Timeout(RateLimit)` instead of sleeping to no purpose; waits wake on cancel.
//!
//! A bucket that has refilled to its burst is the same as no bucket, so full
//! buckets are dropped whenever the map has doubled since the last sweep:
//! thousands of hosts cost memory only while they are being limited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, Phase};

/// A rate limit: `rate` requests per second on average, bursts of up to `burst`.
///
/// ```
/// let agent = windlass::Agent::builder()
///     .rate_limit(windlass::RateLimit::per_second(50.0).burst(10))
///     .host_rate_limit("api.example.com:443", windlass::RateLimit::per_second(5.0))
///     .build().unwrap();
/// # drop(agent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    rate: f64,
    burst: u32,
}

impl RateLimit {
    /// On average `rate` requests per second (at least one per hour), bursts of one.
    pub fn per_second(rate: f64) -> RateLimit {
        let rate = if rate.is_finite() {
            rate.max(1.0 / 3600.0)
        } else {
            f64::MAX
        };
        RateLimit { rate, burst: 1 }
    }

    /// Allow bursts of up to `burst` requests.
    pub fn burst(mut self, burst: u32) -> RateLimit {
        self.burst = burst.max(1);
        self
    }
}

struct Bucket {
    /// Tokens available; negative when requests have reserved future tokens.
    tokens: f64,
    last: Instant,
    /// When it will have refilled to its burst: from then on it can be forgotten.
    full_at: Instant,
}

/// The buckets, and the size that triggers the next sweep of full ones.
#[derive(Default)]
struct Buckets {
    map: HashMap<String, Bucket>,
    sweep_at: usize,
}

/// Fewest buckets before a sweep: small maps are not worth walking.
const SWEEP_MIN: usize = 64;

impl Buckets {
    /// Forget buckets that are full by `now`, once the map has doubled since
    /// the last sweep: each sweep walks at most twice the buckets added since
    /// the one before, so the cost per request is constant.
    fn sweep(&mut self, now: Instant) {
        if self.map.len() < self.sweep_at.max(SWEEP_MIN) {
            return;
        }
        self.map.retain(|_, b| b.full_at > now);
        self.sweep_at = self.map.len() * 2;
    }
}

/// The buckets of one agent.
pub(crate) struct Limiter {
    default: Option<RateLimit>,
    per_host: HashMap<String, RateLimit>,
    buckets: Mutex<Buckets>,
}

impl Limiter {
    pub(crate) fn new(default: Option<RateLimit>, per_host: HashMap<String, RateLimit>) -> Limiter {
        Limiter {
            default,
            per_host,
            buckets: Mutex::default(),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.default.is_some() || !self.per_host.is_empty()
    }

    /// Take a token for `authority` (`host:port`), waiting for it if needed.
    /// Returns the time waited.
    pub(crate) fn acquire(
        &self,
        authority: &str,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<Duration, Error> {
        let Some(limit) = self
            .per_host
            .get(authority)
            .or(self.default.as_ref())
            .copied()
        else {
            return Ok(Duration::ZERO);
        };
        let now = Instant::now();
        // Reserve a token now, even one not yet earned: waiters then leave in
        // the order they arrived, with no thundering herd.
        let wait = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            buckets.sweep(now);
            let bucket = buckets.map.entry(authority.to_string()).or_insert(Bucket {
                tokens: f64::from(limit.burst),
                last: now,
                full_at: now,
            });
            let earned = now.duration_since(bucket.last).as_secs_f64() * limit.rate;
            bucket.tokens = (bucket.tokens + earned).min(f64::from(limit.burst));
            bucket.last = now;
            bucket.tokens -= 1.0;
            bucket.full_at = full_at(bucket, limit, now);
            let wait = if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.tokens / limit.rate)
            };
            if deadline.remaining_from(now).is_some_and(|left| left < wait) {
                bucket.tokens += 1.0;
                bucket.full_at = full_at(bucket, limit, now);
                return Err(Error::timeout(Phase::RateLimit, authority, Duration::ZERO));
            }
            wait
        };
        if wait > Duration::ZERO && crate::deadline::sleep(wait, cancel).is_err() {
            self.refund(authority, limit);
            return Err(Error::cancelled(Phase::RateLimit));
        }
        Ok(wait)
    }

    fn refund(&self, authority: &str, limit: RateLimit) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = buckets.map.get_mut(authority) {
            bucket.tokens += 1.0;
            bucket.full_at = full_at(bucket, limit, bucket.last);
        }
    }

    /// Buckets held now (for tests of the sweep).
    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }
}

/// When `bucket`, as of `now`, will be back to `limit`'s burst.
fn full_at(bucket: &Bucket, limit: RateLimit, now: Instant) -> Instant {
    let missing = (f64::from(limit.burst) - bucket.tokens).max(0.0);
    // Capped at an hour: a bucket left alone that long is forgotten even if
    // not yet full (a little lenient at the slowest rates), and the sum
    // cannot overflow.
    now.checked_add(Duration::from_secs_f64((missing / limit.rate).min(3600.0)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_are_spaced() {
        let limiter = Limiter::new(Some(RateLimit::per_second(1000.0).burst(3)), HashMap::new());
        for _ in 0..3 {
            assert_eq!(
                limiter.acquire("h:80", Deadline::Never, None).unwrap(),
                Duration::ZERO
            );
        }
        let waited = limiter.acquire("h:80", Deadline::Never, None).unwrap();
        assert!(waited > Duration::ZERO && waited <= Duration::from_millis(2));
    }

    #[test]
    fn a_wait_past_the_deadline_fails_at_once_and_refunds() {
        let limiter = Limiter::new(Some(RateLimit::per_second(0.5)), HashMap::new());
        limiter.acquire("h:80", Deadline::Never, None).unwrap();
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_millis(50)));
        let err = limiter.acquire("h:80", deadline, None).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout(Phase::RateLimit));
    }

    #[test]
    fn full_buckets_are_forgotten_so_many_hosts_stay_bounded() {
        let limiter = Limiter::new(Some(RateLimit::per_second(1e9).burst(1)), HashMap::new());
        for i in 0..100_000u32 {
            limiter
                .acquire(&format!("h{i}:80"), Deadline::Never, None)
                .unwrap();
        }
        // At a billion tokens a second every bucket is full again within a
        // microsecond, so a sweep keeps almost none; the map never holds
        // much more than twice what survived the last sweep.
        assert!(limiter.bucket_count() < 1000, "{}", limiter.bucket_count());
    }

    #[test]
    fn a_bucket_still_refilling_is_kept() {
        let limiter = Limiter::new(Some(RateLimit::per_second(0.01).burst(1)), HashMap::new());
        limiter.acquire("slow:80", Deadline::Never, None).unwrap();
        for i in 0..1000u32 {
            let _ = limiter.acquire(&format!("h{i}:80"), Deadline::Never, None);
        }
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_millis(10)));
        let err = limiter.acquire("slow:80", deadline, None).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout(Phase::RateLimit));
    }

    #[test]
    fn hosts_have_their_own_buckets_and_overrides() {
        let mut per_host = HashMap::new();
        per_host.insert("slow:80".to_string(), RateLimit::per_second(0.001));
        let limiter = Limiter::new(None, per_host);
        assert!(limiter.is_active());
        limiter.acquire("slow:80", Deadline::Never, None).unwrap();
        // Other hosts are unlimited.
        for _ in 0..100 {
            limiter.acquire("fast:80", Deadline::Never, None).unwrap();
        }
        let token = CancelToken::new();
        token.cancel();
        let err = limiter
            .acquire("slow:80", Deadline::Never, Some(&token))
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Cancelled);
    }
}
