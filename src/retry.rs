//! The retry policy: which failures are retried, how often, and how long to wait.
//!
//! Independently of this policy, a request that fails on a *reused*
//! connection before any response byte arrived is retried once on a fresh
//! connection when it is idempotent: the server most likely closed the idle
//! connection as we picked it up, and nothing reached it.

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};

use crate::error::{Error, ErrorKind, Phase};

/// When and how often to retry a request.
///
/// Only idempotent requests are retried (GET, HEAD, OPTIONS, TRACE, PUT,
/// DELETE, one with an `Idempotency-Key` header, or one marked
/// [`idempotent(true)`](crate::RequestBuilder::idempotent)), and only when the
/// body can be sent again. Back-off is exponential with jitter, capped, and
/// never runs past the request's deadline; a `Retry-After` from the server is
/// honoured up to the cap.
///
/// ```
/// use std::time::Duration;
/// let policy = windlass::Retry::new(3).backoff(Duration::from_millis(50), Duration::from_secs(2));
/// let agent = windlass::Agent::builder().retry(policy).build().unwrap();
/// # drop(agent);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    max_retries: u32,
    base: Duration,
    cap: Duration,
    statuses: Vec<StatusCode>,
    /// No retry starts this long after the request began.
    max_elapsed: Option<Duration>,
}

impl Default for Retry {
    /// Two retries of connect errors, timeouts before the response and 429/502/503/504,
    /// starting at 100 ms, capped at 5 s.
    fn default() -> Retry {
        Retry::new(2)
    }
}

impl Retry {
    /// Up to `max_retries` retries with the default back-off and statuses.
    pub fn new(max_retries: u32) -> Retry {
        Retry {
            max_retries,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            statuses: vec![
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
            max_elapsed: None,
        }
    }

    /// Start no retry once this long has passed since the request began
    /// (curl's `--retry-max-time`); the attempt under way is not cut short.
    pub fn max_elapsed(mut self, limit: Duration) -> Retry {
        self.max_elapsed = Some(limit);
        self
    }

    /// Whether a retry may still start for a request that began at `started`.
    pub(crate) fn may_start(&self, started: std::time::Instant) -> bool {
        self.max_elapsed
            .is_none_or(|limit| started.elapsed() < limit)
    }

    /// No retries beyond the stale-connection retry.
    pub fn none() -> Retry {
        Retry::new(0)
    }

    /// The first back-off and the largest one.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Retry {
        self.base = base;
        self.cap = cap.max(base);
        self
    }

    /// The response statuses that are retried.
    pub fn statuses(mut self, statuses: &[StatusCode]) -> Retry {
        self.statuses = statuses.to_vec();
        self
    }

    /// Most retries.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    pub(crate) fn retries_status(&self, status: StatusCode) -> bool {
        self.statuses.contains(&status)
    }

    /// Whether this error is worth another attempt.
    pub(crate) fn retries_error(&self, err: &Error) -> bool {
        matches!(
            err.kind(),
            ErrorKind::Connect
                | ErrorKind::Dns
                | ErrorKind::Io
                | ErrorKind::Timeout(Phase::Connect)
                | ErrorKind::Timeout(Phase::Tls)
                | ErrorKind::Timeout(Phase::Dns)
        )
    }

    /// How long to wait before retry number `retry` (1-based).
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.cap);
        }
        let exp = self.base.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exp.min(self.cap);
        // Full jitter in the upper half: spread clients out, keep a floor.
        let half = capped / 2;
        half + jitter(half)
    }
}

/// A cheap pseudo-random duration in `[0, max]`; good enough to spread retries.
fn jitter(max: Duration) -> Duration {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let r = h.finish();
    let nanos = max.as_nanos() as u64;
    if nanos == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(r % (nanos + 1))
    }
}

/// Whether a request may be sent twice without harm.
pub(crate) fn is_idempotent(method: &Method, headers: &HeaderMap, marked: Option<bool>) -> bool {
    if let Some(marked) = marked {
        return marked;
    }
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || headers.contains_key("idempotency-key")
}

/// A `Retry-After` in seconds (HTTP dates are not honoured; the back-off applies).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = Retry::new(5).backoff(Duration::from_millis(100), Duration::from_millis(300));
        for _ in 0..20 {
            let d1 = r.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d5 = r.delay(5, None);
            assert!(d5 >= Duration::from_millis(150) && d5 <= Duration::from_millis(300));
        }
        assert_eq!(
            r.delay(1, Some(Duration::from_secs(60))),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn idempotency() {
        let h = HeaderMap::new();
        assert!(is_idempotent(&Method::GET, &h, None));
        assert!(is_idempotent(&Method::PUT, &h, None));
        assert!(!is_idempotent(&Method::POST, &h, None));
        assert!(is_idempotent(&Method::POST, &h, Some(true)));
        assert!(!is_idempotent(&Method::GET, &h, Some(false)));
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", "abc".parse().unwrap());
        assert!(is_idempotent(&Method::POST, &h, None));
    }
}
