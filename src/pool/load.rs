//! How loaded one host is: the recent mean pool wait and the recent p95 of
//! how long requests hold a slot, for the pool saturation gauge.
//!
//! The gauge is the early warning before a proxy's 502s: per host,
//! `active / max_connections × (1 + 0.3 × mean pool wait / p95 request latency)`.
//! Busy slots alone say "full"; the wait term says "and callers are queueing
//! for it", relative to how long a request normally takes. Both terms forget
//! the past (an exponential mean, a histogram halved as it fills), so the
//! gauge falls again once a stall is over. A few dozen bytes per host, updated
//! under the pool lock the pool already holds.

use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds; one more bucket above.
const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Latencies kept before the histogram is halved: the p95 follows roughly the
/// last few hundred requests.
const HALVE_AT: u32 = 512;

/// Weight of a new pool wait in the running mean.
const WAIT_WEIGHT: f64 = 0.05;

/// One host's recent waits and latencies.
#[derive(Debug, Clone, Default)]
pub(super) struct Load {
    /// Exponential mean of pool waits, in seconds.
    wait_mean: f64,
    waits: u64,
    latency: [u32; BOUNDS.len() + 1],
    latency_count: u32,
}

impl Load {
    /// A checkout waited `d` for its connection or slot (zero when it got one at once).
    pub(super) fn wait(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        self.wait_mean = if self.waits == 0 {
            secs
        } else {
            self.wait_mean + (secs - self.wait_mean) * WAIT_WEIGHT
        };
        self.waits += 1;
    }

    /// A request held its slot for `d`, from checkout to release.
    pub(super) fn latency(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.latency[i] += 1;
        self.latency_count += 1;
        if self.latency_count >= HALVE_AT {
            self.latency_count = 0;
            for n in &mut self.latency {
                *n /= 2;
                self.latency_count += *n;
            }
        }
    }

    /// The upper bound of the bucket holding the 95th percentile; `None` with no samples.
    pub(super) fn p95(&self) -> Option<Duration> {
        self.p95_secs().map(Duration::from_secs_f64)
    }

    fn p95_secs(&self) -> Option<f64> {
        let total: u32 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (f64::from(total) * 0.95).ceil() as u32;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // Past the last bound: twice it, a finite stand-in for "slow".
                return Some(
                    BOUNDS
                        .get(i)
                        .copied()
                        .unwrap_or(2.0 * BOUNDS[BOUNDS.len() - 1]),
                );
            }
        }
        None
    }

    /// The recent mean pool wait.
    pub(super) fn wait_mean(&self) -> Duration {
        Duration::from_secs_f64(self.wait_mean)
    }
}

/// `active / max × (1 + 0.3 × mean wait / p95)`; `None` without a connection
/// limit (nothing to be saturated against).
pub(crate) fn saturation(
    active: usize,
    max: Option<usize>,
    wait_mean: Duration,
    p95: Option<Duration>,
) -> Option<f64> {
    let max = max?.max(1);
    let busy = active as f64 / max as f64;
    let queueing = match p95 {
        Some(p95) if !p95.is_zero() => 0.3 * wait_mean.as_secs_f64() / p95.as_secs_f64(),
        _ => 0.0,
    };
    Some(busy * (1.0 + queueing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(load: &Load, active: usize, max: Option<usize>) -> Option<f64> {
        saturation(active, max, load.wait_mean(), load.p95())
    }

    #[test]
    fn saturation_is_busy_share_without_waits() {
        let mut load = Load::default();
        for _ in 0..10 {
            load.wait(Duration::ZERO);
            load.latency(Duration::from_millis(20));
        }
        assert_eq!(load.p95_secs(), Some(0.025));
        assert_eq!(sat(&load, 2, Some(4)), Some(0.5));
        assert_eq!(sat(&load, 2, None), None);
    }

    #[test]
    fn waits_raise_saturation_and_it_falls_after() {
        let mut load = Load::default();
        for _ in 0..100 {
            load.latency(Duration::from_millis(100));
            load.wait(Duration::from_millis(100));
        }
        // Mean wait 0.1 s against a p95 of 0.1 s: 1 + 0.3.
        let high = sat(&load, 4, Some(4)).unwrap();
        assert!((high - 1.3).abs() < 1e-9, "{high}");
        for _ in 0..200 {
            load.wait(Duration::ZERO);
        }
        let low = sat(&load, 4, Some(4)).unwrap();
        assert!(low < 1.01, "{low}");
    }

    #[test]
    fn the_latency_histogram_forgets() {
        let mut load = Load::default();
        for _ in 0..400 {
            load.latency(Duration::from_secs(3));
        }
        assert_eq!(load.p95_secs(), Some(5.0));
        for _ in 0..4000 {
            load.latency(Duration::from_millis(1));
        }
        assert_eq!(load.p95_secs(), Some(0.001));
    }
}
