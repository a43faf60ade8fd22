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

/// A `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date (a date in
/// the past means now). Anything else is ignored and the back-off applies.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(value)?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An HTTP date in any of the three forms a recipient must accept (RFC 9110
/// §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850
/// `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`.
pub(crate) fn http_date(text: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [wd, day, month, year, time, "GMT"] if wd.ends_with(',') => {
            (*day, *month, year.parse::<u64>().ok()?, *time)
        }
        [wd, date, time, "GMT"] if wd.ends_with(',') => {
            let mut date = date.split('-');
            let (day, month, yy) = (date.next()?, date.next()?, date.next()?);
            if date.next().is_some() || yy.len() != 2 {
                return None;
            }
            // RFC 9110: a two-digit year more than 50 years ahead is in the past.
            let yy = yy.parse::<u64>().ok()?;
            (
                day,
                month,
                if yy < 70 { 2000 + yy } else { 1900 + yy },
                *time,
            )
        }
        [_, month, day, time, year] => (*day, *month, year.parse::<u64>().ok()?, *time),
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let day = day.parse::<u64>().ok().filter(|d| (1..=31).contains(d))?;
    let mut hms = time.split(':').map(|t| t.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let secs = days_since_epoch(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (year 1970 or later), by counting March-based years.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // 719_468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + doe - 719_468
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
    fn http_dates_parse_in_all_three_forms() {
        let want = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(want));
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(want));
        assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), Some(want));
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(http_date("Tue, 29 Feb 2000 00:00:00 GMT"), Some(leap));
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "soon",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            http::header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let secs = later
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        h.insert(
            http::header::RETRY_AFTER,
            imf_fixdate(secs).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(115) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    /// The IMF-fixdate of `secs` after the epoch, for the tests.
    fn imf_fixdate(secs: u64) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let days = secs / 86_400;
        let (mut y, mut m, mut d) = (1970, 1, 1);
        // Walk forward one day at a time from the epoch: slow, obviously right.
        for _ in 0..days {
            d += 1;
            if d > days_in(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        let t = secs % 86_400;
        format!(
            "Mon, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
            MONTHS[m - 1],
            t / 3600,
            t / 60 % 60,
            t % 60
        )
    }

    fn days_in(y: u64, m: usize) -> u64 {
        match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
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
