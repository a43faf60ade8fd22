//! curl's low-speed limit: a body that arrives too slowly fails, even when
//! every byte comes before the read-idle timeout.
//!
//! A read-idle timeout restarts with each byte, so a server that sends one
//! byte every 29 s holds a call open forever under the 30 s default. The
//! minimum speed closes that gap: in every window of the given length, at
//! least `bytes_per_second × window` bytes must arrive.

use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Phase};
use crate::exchange::{Limit, Setting};

/// The slowest a response body may arrive: at least `bytes_per_second` on
/// average over every `window` (curl's `--speed-limit` / `--speed-time`).
///
/// ```
/// use std::time::Duration;
/// let slowest = windlass::MinSpeed::new(1024, Duration::from_secs(30));
/// let agent = windlass::Agent::builder().min_speed(slowest).build().unwrap();
/// # drop(agent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinSpeed {
    bytes_per_second: u64,
    window: Duration,
}

impl MinSpeed {
    /// At least `bytes_per_second` on average over every `window`. A zero
    /// window is taken as one second.
    pub fn new(bytes_per_second: u64, window: Duration) -> MinSpeed {
        MinSpeed {
            bytes_per_second,
            window: if window.is_zero() {
                Duration::from_secs(1)
            } else {
                window
            },
        }
    }

    /// The default of [`Response::text`](crate::Response::text) and
    /// [`Response::bytes`](crate::Response::bytes) when none is set: 100 bytes
    /// a second over 30 s windows. A buffered read has nobody to give up on a
    /// server that dribbles; this bound is far below any real link (a poor
    /// mobile connection carries 50 times as much) yet ends a one-byte-a-minute
    /// drip within 30 s. Streamed bodies have no default, as in curl.
    pub const BUFFERED_DEFAULT: MinSpeed = MinSpeed {
        bytes_per_second: 100,
        window: Duration::from_secs(30),
    };

    /// Bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// The window the average is taken over.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn needed(&self) -> u64 {
        let bytes = u128::from(self.bytes_per_second) * self.window.as_millis() / 1000;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// The running measurement of one body.
#[derive(Debug)]
pub(crate) struct SpeedCheck {
    min: MinSpeed,
    window_start: Instant,
    window_bytes: u64,
}

impl SpeedCheck {
    pub(crate) fn new(min: MinSpeed, now: Instant) -> SpeedCheck {
        SpeedCheck {
            min,
            window_start: now,
            window_bytes: 0,
        }
    }

    fn setting(&self) -> Setting {
        Setting::MinSpeed(self.min.bytes_per_second, self.min.window)
    }

    /// The limit of the next read: `base`, or the end of the window when the
    /// window still lacks bytes and ends sooner.
    pub(crate) fn limit(&self, base: Limit) -> Limit {
        if self.window_bytes >= self.min.needed() {
            return base;
        }
        let window_end = Deadline::after(self.window_start, Some(self.min.window));
        if window_end.min(base.deadline) == base.deadline {
            return base;
        }
        Limit {
            phase: Phase::LowSpeed,
            started: self.window_start,
            deadline: window_end,
            bound_by: Some(self.setting()),
            per_op: base.per_op,
        }
    }

    /// `n` bytes arrived at `now`: fail if a window closed with too few.
    pub(crate) fn record(&mut self, n: usize, now: Instant, host: &str) -> Result<(), Error> {
        self.window_bytes += n as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < self.min.window {
            return Ok(());
        }
        if self.window_bytes < self.min.needed() {
            return Err(self.too_slow(elapsed, host));
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }

    fn too_slow(&self, elapsed: Duration, host: &str) -> Error {
        let rate = self.window_bytes as f64 / elapsed.as_secs_f64().max(0.001);
        Error::new(
            ErrorKind::Timeout(Phase::LowSpeed),
            format!(
                "the response body from {host} arrived at {rate:.0} bytes/s over {:.1} s, \
                 below the minimum ({})",
                elapsed.as_secs_f64(),
                self.setting()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_with_enough_bytes_starts_the_next_one() {
        let t0 = Instant::now();
        let mut check = SpeedCheck::new(MinSpeed::new(10, Duration::from_secs(1)), t0);
        check
            .record(5, t0 + Duration::from_millis(500), "h")
            .unwrap();
        check
            .record(5, t0 + Duration::from_millis(1000), "h")
            .unwrap();
        // A new window: 3 bytes in the next full second is too few.
        check
            .record(3, t0 + Duration::from_millis(1500), "h")
            .unwrap();
        let err = check
            .record(0, t0 + Duration::from_millis(2000), "h")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout(Phase::LowSpeed));
        assert!(
            err.to_string().contains("min_speed = 10 bytes/s over 1 s"),
            "{err}"
        );
    }

    #[test]
    fn a_short_window_limits_the_read_only_while_bytes_are_missing() {
        let t0 = Instant::now();
        let check = SpeedCheck::new(MinSpeed::new(10, Duration::from_secs(1)), t0);
        let base = Limit::none(Phase::Body);
        let limit = check.limit(base);
        assert_eq!(limit.phase, Phase::LowSpeed);
        assert_eq!(limit.deadline, Deadline::At(t0 + Duration::from_secs(1)));
        let mut full = check;
        full.window_bytes = 10;
        assert_eq!(full.limit(base).phase, Phase::Body);
    }
}
