//! Counters and fixed-bucket histograms kept with atomics, a snapshot of them,
//! and the Prometheus text exposition format.
//!
//! Per-host series are capped ([`AgentBuilder::metrics_max_hosts`], 100 by
//! default): the busiest hosts keep their own `host` label, the rest are
//! summed under `host="other"`, together with hosts whose pool entries have
//! expired. So a client talking to 10,000 hosts exports at most 101 series
//! per per-host metric, and the sum over a metric's series stays the agent's
//! total.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::agent::AgentBuilder;
use crate::error::ErrorKind;
use crate::pool::{CloseReason, HostStats, PoolStats};

/// Hosts with their own series unless configured otherwise.
const DEFAULT_MAX_HOSTS: usize = 100;

/// The label under which hosts beyond the cap are summed.
pub(crate) const OTHER_HOSTS: &str = "other";

/// How many hosts get series of their own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesLimits {
    pub max_hosts: usize,
}

impl Default for SeriesLimits {
    fn default() -> SeriesLimits {
        SeriesLimits {
            max_hosts: DEFAULT_MAX_HOSTS,
        }
    }
}

impl AgentBuilder {
    /// Most hosts with their own series in [`Agent::metrics`](crate::Agent::metrics)
    /// and [`MetricsSnapshot::to_prometheus`] (default 100). The hosts with
    /// the most open and waiting connections, then the most connections
    /// opened and reused, keep their `host` label; the rest, and hosts whose
    /// pool entries expired, are summed under `host="other"`. A host may move
    /// between its own label and `other` as traffic shifts; the sum over a
    /// metric's series is always the agent's total.
    /// [`Agent::pool_stats`](crate::Agent::pool_stats) is not capped.
    ///
    /// ```
    /// let agent = windlass::Agent::builder().metrics_max_hosts(20).build().unwrap();
    /// # drop(agent);
    /// ```
    pub fn metrics_max_hosts(mut self, max: usize) -> Self {
        self.config.metric_series.max_hosts = max;
        self
    }
}

/// `pool` with at most `max` hosts of its own, the rest and the expired
/// entries summed into one [`OTHER_HOSTS`] row (last).
pub(crate) fn cap_hosts(mut pool: PoolStats, max: usize) -> PoolStats {
    let expired = pool.expired;
    if pool.hosts.len() <= max && expired.hosts == 0 {
        return pool;
    }
    // Busiest first: what is open now, then what was done.
    pool.hosts.sort_by(|a, b| {
        let now = |h: &HostStats| h.open() + h.waiting;
        let done = |h: &HostStats| h.opened + h.reused;
        now(b)
            .cmp(&now(a))
            .then(done(b).cmp(&done(a)))
            .then(a.key.cmp(&b.key))
    });
    let rest = pool.hosts.split_off(max.min(pool.hosts.len()));
    pool.hosts.sort_by(|a, b| a.key.cmp(&b.key));
    let mut other = HostStats {
        key: OTHER_HOSTS.to_string(),
        idle: 0,
        active: 0,
        connecting: 0,
        waiting: 0,
        opened: expired.opened,
        reused: expired.reused,
        closed: expired.closed,
        max_connections: None,
        wait_mean: Duration::ZERO,
        latency_p95: None,
    };
    let mut limited = 0;
    let mut max_sum = 0;
    for h in &rest {
        other.idle += h.idle;
        other.active += h.active;
        other.connecting += h.connecting;
        other.waiting += h.waiting;
        other.opened += h.opened;
        other.reused += h.reused;
        other.closed.add_all(&h.closed);
        // The group's saturation: its active share of its summed limits,
        // with the worst wait against the slowest p95.
        if let Some(m) = h.max_connections {
            limited += 1;
            max_sum += m;
            other.wait_mean = other.wait_mean.max(h.wait_mean);
            other.latency_p95 = other.latency_p95.max(h.latency_p95);
        }
    }
    if limited > 0 && limited == rest.len() {
        other.max_connections = Some(max_sum);
    }
    pool.hosts.push(other);
    pool
}

/// Upper bounds of the histogram buckets, in seconds, ascending. A slice, not
/// an array: adding a bucket changes no public type.
pub const BUCKETS: &[f64] = &BOUNDS;

const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "other",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &Method) -> usize {
    METHODS[..7]
        .iter()
        .position(|name| *name == m.as_str())
        .unwrap_or(7)
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = std::array::from_fn(|i| {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            cumulative
        });
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// Which duration a histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    Request,
    PoolWait,
    Connect,
    Tls,
    FirstByte,
}

impl Timer {
    const ALL: [Timer; 5] = [
        Timer::Request,
        Timer::PoolWait,
        Timer::Connect,
        Timer::Tls,
        Timer::FirstByte,
    ];

    /// The metric name, for Prometheus text and the `metrics` facade alike.
    fn name(self) -> &'static str {
        match self {
            Timer::Request => "windlass_request_duration_seconds",
            Timer::PoolWait => "windlass_pool_wait_seconds",
            Timer::Connect => "windlass_connect_seconds",
            Timer::Tls => "windlass_tls_handshake_seconds",
            Timer::FirstByte => "windlass_first_byte_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Timer::Request => "Time from the start of a request to the end of its body.",
            Timer::PoolWait => "Time spent waiting for a pool slot.",
            Timer::Connect => "TCP connect time.",
            Timer::Tls => "TLS handshake time.",
            Timer::FirstByte => "Time to the first response byte.",
        }
    }
}

/// The live metrics of one agent.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: [[AtomicU64; 5]; 8],
    errors: Mutex<Vec<(ErrorKind, u64)>>,
    redirects: AtomicU64,
    tls_full: AtomicU64,
    tls_resumed: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    leaks: AtomicU64,
    request: Histogram,
    pool_wait: Histogram,
    connect: Histogram,
    tls: Histogram,
    first_byte: Histogram,
}

impl Metrics {
    pub(crate) fn response(&self, method: &Method, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        let m = method_index(method);
        self.requests[m][class].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("windlass_requests_total", "method" => METHODS[m], "status" => CLASSES[class]).increment(1);
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match errors.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => errors.push((kind, 1)),
        }
        #[cfg(feature = "metrics")]
        {
            let (kind, phase) = error_labels(kind);
            metrics::counter!("windlass_errors_total", "kind" => kind, "phase" => phase)
                .increment(1);
        }
    }

    pub(crate) fn redirect(&self) {
        self.redirects.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls_handshake(&self, resumed: bool) {
        if resumed {
            self.tls_resumed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.tls_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn leak(&self) {
        self.leaks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn time(&self, timer: Timer, d: Duration) {
        let h = match timer {
            Timer::Request => &self.request,
            Timer::PoolWait => &self.pool_wait,
            Timer::Connect => &self.connect,
            Timer::Tls => &self.tls,
            Timer::FirstByte => &self.first_byte,
        };
        h.observe(d);
        #[cfg(feature = "metrics")]
        metrics::histogram!(timer.name()).record(d.as_secs_f64());
    }

    pub(crate) fn snapshot(&self, pool: PoolStats) -> MetricsSnapshot {
        let mut requests = Vec::new();
        for (m, row) in self.requests.iter().enumerate() {
            for (c, n) in row.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    requests.push((METHODS[m], CLASSES[c], n));
                }
            }
        }
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        MetricsSnapshot {
            requests,
            errors,
            redirects: self.redirects.load(Ordering::Relaxed),
            tls_full: self.tls_full.load(Ordering::Relaxed),
            tls_resumed: self.tls_resumed.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            leaks: self.leaks.load(Ordering::Relaxed),
            request_duration: self.request.snapshot(),
            pool_wait: self.pool_wait.snapshot(),
            connect: self.connect.snapshot(),
            tls: self.tls.snapshot(),
            first_byte: self.first_byte.snapshot(),
            pool,
        }
    }
}

fn error_labels(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::Timeout(phase) => ("timeout", phase.as_str()),
        ErrorKind::Cancelled => ("cancelled", ""),
        ErrorKind::Dns => ("dns", ""),
        ErrorKind::Connect => ("connect", ""),
        ErrorKind::Tls => ("tls", ""),
        ErrorKind::Protocol => ("protocol", ""),
        ErrorKind::TooManyRedirects => ("too_many_redirects", ""),
        ErrorKind::InsecureRedirect => ("insecure_redirect", ""),
        ErrorKind::BodyTooLarge => ("body_too_large", ""),
        ErrorKind::InvalidUrl => ("invalid_url", ""),
        ErrorKind::InvalidHeader => ("invalid_header", ""),
        ErrorKind::Io => ("io", ""),
        ErrorKind::Status(_) => ("status", ""),
        ErrorKind::InvalidConfig => ("invalid_config", ""),
        ErrorKind::InvalidMethod => ("invalid_method", ""),
        ErrorKind::Json => ("json", ""),
        ErrorKind::TlsUnavailable => ("tls_unavailable", ""),
        ErrorKind::Proxy(_) => ("proxy", ""),
        ErrorKind::RedirectRefused => ("redirect_refused", ""),
    }
}

/// A histogram at one moment: cumulative bucket counts for [`BUCKETS`], count and sum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    buckets: [u64; BOUNDS.len()],
    count: u64,
    sum: Duration,
}

impl HistogramSnapshot {
    /// Observations at or below each bound of [`BUCKETS`], cumulative: one
    /// count per bound, in the same order.
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    /// The upper bounds of [`buckets`](HistogramSnapshot::buckets), in
    /// seconds (the same as [`BUCKETS`]).
    pub fn bounds(&self) -> &'static [f64] {
        BUCKETS
    }

    /// All observations (the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of all observations.
    pub fn sum(&self) -> Duration {
        self.sum
    }
}

/// An agent's metrics at one moment, from [`Agent::metrics`](crate::Agent::metrics).
///
/// Read it through its methods; [`to_prometheus`](MetricsSnapshot::to_prometheus)
/// renders all of it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    requests: Vec<(&'static str, &'static str, u64)>,
    errors: Vec<(ErrorKind, u64)>,
    redirects: u64,
    tls_full: u64,
    tls_resumed: u64,
    bytes_sent: u64,
    bytes_received: u64,
    leaks: u64,
    request_duration: HistogramSnapshot,
    pool_wait: HistogramSnapshot,
    connect: HistogramSnapshot,
    tls: HistogramSnapshot,
    first_byte: HistogramSnapshot,
    pool: PoolStats,
}

/// Escape a label value for the Prometheus text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    header(out, name, "histogram", help);
    for (bound, n) in h.bounds().iter().zip(h.buckets()) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum.as_secs_f64());
    let _ = writeln!(out, "{name}_count {}", h.count);
}

impl MetricsSnapshot {
    /// Responses by method and status class (`("GET", "2xx", count)`); rows
    /// with a zero count are left out. Methods other than the common seven
    /// are counted as `"other"`.
    pub fn requests(&self) -> &[(&'static str, &'static str, u64)] {
        &self.requests
    }

    /// Failed requests by error kind, in the order the kinds first occurred.
    pub fn errors(&self) -> &[(ErrorKind, u64)] {
        &self.errors
    }

    /// Failed requests of one kind.
    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Redirects followed.
    pub fn redirects(&self) -> u64 {
        self.redirects
    }

    /// Full TLS handshakes.
    pub fn tls_full(&self) -> u64 {
        self.tls_full
    }

    /// TLS handshakes that resumed an earlier session.
    pub fn tls_resumed(&self) -> u64 {
        self.tls_resumed
    }

    /// Request bytes written (heads and bodies).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Response bytes read (heads and framed bodies, before decompression).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bodies held longer than `leak_warn_after`.
    pub fn leaks(&self) -> u64 {
        self.leaks
    }

    /// From the start of a request (redirects and retries included) to the
    /// end of its body, read or drained; a body that fails or is closed
    /// unread is not counted.
    pub fn request_duration(&self) -> &HistogramSnapshot {
        &self.request_duration
    }

    /// Waiting for a pool slot.
    pub fn pool_wait(&self) -> &HistogramSnapshot {
        &self.pool_wait
    }

    /// TCP connects.
    pub fn connect(&self) -> &HistogramSnapshot {
        &self.connect
    }

    /// TLS handshakes.
    pub fn tls(&self) -> &HistogramSnapshot {
        &self.tls
    }

    /// From the start of a request to the first response byte.
    pub fn first_byte(&self) -> &HistogramSnapshot {
        &self.first_byte
    }

    /// The pool's gauges and connection counters.
    pub fn pool(&self) -> &PoolStats {
        &self.pool
    }

    fn histogram(&self, timer: Timer) -> &HistogramSnapshot {
        match timer {
            Timer::Request => &self.request_duration,
            Timer::PoolWait => &self.pool_wait,
            Timer::Connect => &self.connect,
            Timer::Tls => &self.tls,
            Timer::FirstByte => &self.first_byte,
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "windlass_requests_total",
            "counter",
            "Responses received, by method and status class.",
        );
        for (method, class, n) in &self.requests {
            let _ = writeln!(
                out,
                "windlass_requests_total{{method=\"{method}\",status=\"{class}\"}} {n}"
            );
        }
        header(
            &mut out,
            "windlass_errors_total",
            "counter",
            "Failed requests, by error kind and phase.",
        );
        for (kind, n) in &self.errors {
            let (k, phase) = error_labels(*kind);
            let _ = writeln!(
                out,
                "windlass_errors_total{{kind=\"{k}\",phase=\"{phase}\"}} {n}"
            );
        }
        let counters: [(&str, &str, u64); 5] = [
            (
                "windlass_redirects_total",
                "Redirects followed.",
                self.redirects,
            ),
            (
                "windlass_bytes_sent_total",
                "Request bytes written.",
                self.bytes_sent,
            ),
            (
                "windlass_bytes_received_total",
                "Response bytes read before decoding.",
                self.bytes_received,
            ),
            (
                "windlass_leaked_bodies_total",
                "Response bodies held longer than leak_warn_after.",
                self.leaks,
            ),
            (
                "windlass_tls_handshakes_resumed_total",
                "TLS handshakes that resumed a session.",
                self.tls_resumed,
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "windlass_tls_handshakes_total",
            "counter",
            "TLS handshakes, full or resumed.",
        );
        let _ = writeln!(
            out,
            "windlass_tls_handshakes_total{{kind=\"full\"}} {}",
            self.tls_full
        );
        let _ = writeln!(
            out,
            "windlass_tls_handshakes_total{{kind=\"resumed\"}} {}",
            self.tls_resumed
        );

        type Gauge = fn(&crate::pool::HostStats) -> u64;
        let gauges: [(&str, &str, Gauge); 4] = [
            ("windlass_pool_idle", "Idle pooled connections.", |h| {
                h.idle as u64
            }),
            (
                "windlass_pool_active",
                "Connections checked out by requests.",
                |h| h.active as u64,
            ),
            (
                "windlass_pool_connecting",
                "Connections being opened.",
                |h| h.connecting as u64,
            ),
            (
                "windlass_pool_waiting",
                "Requests waiting for a connection slot.",
                |h| h.waiting as u64,
            ),
        ];
        for (name, help, get) in gauges {
            header(&mut out, name, "gauge", help);
            for h in self.pool.hosts() {
                let _ = writeln!(out, "{name}{{host=\"{}\"}} {}", escape(h.key()), get(h));
            }
        }
        header(
            &mut out,
            "windlass_pool_saturation_ratio",
            "gauge",
            "active / max connections x (1 + 0.3 x mean pool wait / p95 request latency), \
             for hosts with a connection limit.",
        );
        for h in self.pool.hosts() {
            if let Some(ratio) = h.saturation() {
                let _ = writeln!(
                    out,
                    "windlass_pool_saturation_ratio{{host=\"{}\"}} {ratio}",
                    escape(h.key())
                );
            }
        }
        header(
            &mut out,
            "windlass_connections_opened_total",
            "counter",
            "Connections opened.",
        );
        for h in &self.pool.hosts {
            let _ = writeln!(
                out,
                "windlass_connections_opened_total{{host=\"{}\"}} {}",
                escape(&h.key),
                h.opened
            );
        }
        header(
            &mut out,
            "windlass_connections_reused_total",
            "counter",
            "Idle connections reused.",
        );
        for h in &self.pool.hosts {
            let _ = writeln!(
                out,
                "windlass_connections_reused_total{{host=\"{}\"}} {}",
                escape(&h.key),
                h.reused
            );
        }
        header(
            &mut out,
            "windlass_connections_closed_total",
            "counter",
            "Connections closed, by reason.",
        );
        for h in &self.pool.hosts {
            for &reason in CloseReason::ALL {
                let _ = writeln!(
                    out,
                    "windlass_connections_closed_total{{host=\"{}\",reason=\"{reason}\"}} {}",
                    escape(&h.key),
                    h.closed.get(reason)
                );
            }
        }
        for timer in Timer::ALL {
            histogram(&mut out, timer.name(), timer.help(), self.histogram(timer));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[3], 2);
        assert_eq!(s.buckets()[BUCKETS.len() - 1], 2);
        assert_eq!(s.buckets().len(), s.bounds().len());
        assert_eq!(s.count, 3);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn requests_are_counted_by_method_and_class() {
        let m = Metrics::default();
        m.response(&Method::GET, StatusCode::OK);
        m.response(
            &Method::from_bytes(b"PROPFIND").unwrap(),
            StatusCode::NOT_FOUND,
        );
        let s = m.snapshot(PoolStats::default());
        assert_eq!(s.requests(), [("GET", "2xx", 1), ("other", "4xx", 1)]);
        let text = s.to_prometheus();
        assert!(text.contains("windlass_requests_total{method=\"GET\",status=\"2xx\"} 1"));
    }
}
