//! What the pool reports about itself.

use std::fmt;
use std::time::Duration;

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// It sat idle longer than the idle timeout (or the server's keep-alive timeout).
    IdleTimeout,
    /// It reached `max_lifetime`.
    Lifetime,
    /// The server closed it, or sent something unsolicited while it was idle.
    ServerClosed,
    /// The idle pool (per host or in total) was full.
    PoolFull,
    /// An error happened on it.
    Error,
    /// Its request was cancelled.
    Cancelled,
    /// The response said not to reuse it, or its framing could not be trusted,
    /// or the body was dropped with too much left to drain.
    NotReusable,
    /// The agent was dropped.
    AgentDropped,
}

impl CloseReason {
    /// All reasons, in a stable order. A slice, not an array: adding a reason
    /// changes no public type.
    pub const ALL: &'static [CloseReason] = &[
        CloseReason::IdleTimeout,
        CloseReason::Lifetime,
        CloseReason::ServerClosed,
        CloseReason::PoolFull,
        CloseReason::Error,
        CloseReason::Cancelled,
        CloseReason::NotReusable,
        CloseReason::AgentDropped,
    ];

    /// A short lowercase name, as used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Lifetime => "lifetime",
            CloseReason::ServerClosed => "server_closed",
            CloseReason::PoolFull => "pool_full",
            CloseReason::Error => "error",
            CloseReason::Cancelled => "cancelled",
            CloseReason::NotReusable => "not_reusable",
            CloseReason::AgentDropped => "agent_dropped",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connections closed, counted by reason.
///
/// Read a count with [`get`](ClosedCounts::get) (or the field of the same
/// name); build an expected value for a comparison with
/// [`with`](ClosedCounts::with):
///
/// ```
/// use windlass::{CloseReason, ClosedCounts};
/// let expected = ClosedCounts::default().with(CloseReason::PoolFull, 1);
/// assert_eq!(expected.get(CloseReason::PoolFull), 1);
/// assert_eq!(expected.total(), 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedCounts {
    /// Idle longer than the idle timeout.
    pub idle_timeout: u64,
    /// Reached `max_lifetime`.
    pub lifetime: u64,
    /// Closed by the server (seen at checkout or by the reaper).
    pub server_closed: u64,
    /// Did not fit in the idle pool.
    pub pool_full: u64,
    /// Failed with an error.
    pub error: u64,
    /// Their request was cancelled.
    pub cancelled: u64,
    /// Not reusable after their response.
    pub not_reusable: u64,
    /// Closed because the agent was dropped.
    pub agent_dropped: u64,
}

impl ClosedCounts {
    pub(crate) fn add(&mut self, reason: CloseReason) {
        *self.get_mut(reason) += 1;
    }

    fn get_mut(&mut self, reason: CloseReason) -> &mut u64 {
        match reason {
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::Lifetime => &mut self.lifetime,
            CloseReason::ServerClosed => &mut self.server_closed,
            CloseReason::PoolFull => &mut self.pool_full,
            CloseReason::Error => &mut self.error,
            CloseReason::Cancelled => &mut self.cancelled,
            CloseReason::NotReusable => &mut self.not_reusable,
            CloseReason::AgentDropped => &mut self.agent_dropped,
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::IdleTimeout => self.idle_timeout,
            CloseReason::Lifetime => self.lifetime,
            CloseReason::ServerClosed => self.server_closed,
            CloseReason::PoolFull => self.pool_full,
            CloseReason::Error => self.error,
            CloseReason::Cancelled => self.cancelled,
            CloseReason::NotReusable => self.not_reusable,
            CloseReason::AgentDropped => self.agent_dropped,
        }
    }

    /// These counts with the count for `reason` set to `count`.
    pub fn with(mut self, reason: CloseReason, count: u64) -> ClosedCounts {
        *self.get_mut(reason) = count;
        self
    }

    /// All closes together.
    pub fn total(&self) -> u64 {
        CloseReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// The state of one pool key (scheme, host, port, proxy, TLS settings).
///
/// Each field has a method of the same name; new counters may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStats {
    /// The key, as `scheme://host:port`, with ` via PROXY` or ` (unverified tls)` when they apply.
    pub key: String,
    /// Connections resting in the pool.
    pub idle: usize,
    /// Connections checked out by a request (including bodies not yet read).
    pub active: usize,
    /// Connections being opened (DNS, TCP, TLS).
    pub connecting: usize,
    /// Requests waiting for a connection slot.
    pub waiting: usize,
    /// Connections opened since the agent was built.
    pub opened: u64,
    /// Times an idle connection was reused.
    pub reused: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
    /// The host's connection limit, if it has one.
    pub max_connections: Option<usize>,
    /// The recent mean time checkouts waited for a connection or slot (an
    /// exponential mean, zero waits included).
    pub wait_mean: Duration,
    /// The recent 95th percentile of how long a request held its slot, from
    /// checkout to the connection's return or close (the upper bound of its
    /// histogram bucket); `None` before the first request ended.
    pub latency_p95: Option<Duration>,
}

impl HostStats {
    /// The pool saturation ratio, the early warning before a proxy in front
    /// starts answering 502: `active / max_connections × (1 + 0.3 × mean
    /// pool wait / p95 request latency)`. 1.0 means every slot is busy and
    /// nobody queues; above it, callers queue for slots. `None` for a host
    /// without a connection limit. Exported as `windlass_pool_saturation_ratio`.
    ///
    /// ```
    /// let agent = windlass::Agent::builder().max_connections_per_host(4).build().unwrap();
    /// for host in agent.pool_stats().hosts() {
    ///     println!("{} {:?}", host.key(), host.saturation());
    /// }
    /// ```
    pub fn saturation(&self) -> Option<f64> {
        super::load::saturation(
            self.active,
            self.max_connections,
            self.wait_mean,
            self.latency_p95,
        )
    }

    /// The key, as `scheme://host:port`, with ` via PROXY` or ` (unverified tls)` when they apply.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Connections resting in the pool.
    pub fn idle(&self) -> usize {
        self.idle
    }

    /// Connections checked out by a request (including bodies not yet read).
    pub fn active(&self) -> usize {
        self.active
    }

    /// Connections being opened (DNS, TCP, TLS).
    pub fn connecting(&self) -> usize {
        self.connecting
    }

    /// Requests waiting for a connection slot.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Connections opened since the agent was built.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Times an idle connection was reused.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Connections closed, by reason.
    pub fn closed(&self) -> &ClosedCounts {
        &self.closed
    }

    /// Connections counted against `max_connections_per_host`: idle, active and connecting.
    pub fn open(&self) -> usize {
        self.idle + self.active + self.connecting
    }
}

/// A snapshot of the whole pool, from [`Agent::pool_stats`](crate::Agent::pool_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// One entry per pool key, sorted by key.
    pub hosts: Vec<HostStats>,
    /// What hosts whose entries expired had counted. A host's entry is
    /// dropped once it has no connection and no waiter and 256 other hosts
    /// emptied since (so thousands of hosts cannot grow the pool without
    /// bound); its lifetime counters are added here, so the totals
    /// ([`opened`](PoolStats::opened), [`reused`](PoolStats::reused),
    /// [`closed`](PoolStats::closed)) never lose them.
    pub expired: ExpiredHosts,
}

/// The summed lifetime counters of host entries the pool has dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpiredHosts {
    /// Host entries dropped.
    pub hosts: u64,
    /// Connections they had opened.
    pub opened: u64,
    /// Reuses they had counted.
    pub reused: u64,
    /// Connections they had closed, by reason.
    pub closed: ClosedCounts,
}

impl ClosedCounts {
    /// Add `other`'s counts to these.
    pub(crate) fn add_all(&mut self, other: &ClosedCounts) {
        for &reason in CloseReason::ALL {
            *self.get_mut(reason) += other.get(reason);
        }
    }
}

impl PoolStats {
    /// One entry per pool key, sorted by key.
    pub fn hosts(&self) -> &[HostStats] {
        &self.hosts
    }

    /// The entry for a key such as `"http://127.0.0.1:8080"`.
    pub fn host(&self, key: &str) -> Option<&HostStats> {
        self.hosts.iter().find(|h| h.key == key)
    }

    /// Idle connections over all hosts.
    pub fn idle(&self) -> usize {
        self.hosts.iter().map(|h| h.idle).sum()
    }

    /// Active connections over all hosts.
    pub fn active(&self) -> usize {
        self.hosts.iter().map(|h| h.active).sum()
    }

    /// Requests waiting over all hosts.
    pub fn waiting(&self) -> usize {
        self.hosts.iter().map(|h| h.waiting).sum()
    }

    /// Connections opened over all hosts, expired entries included.
    pub fn opened(&self) -> u64 {
        self.expired.opened + self.hosts.iter().map(|h| h.opened).sum::<u64>()
    }

    /// Reuses over all hosts, expired entries included.
    pub fn reused(&self) -> u64 {
        self.expired.reused + self.hosts.iter().map(|h| h.reused).sum::<u64>()
    }

    /// Connections closed over all hosts, by reason, expired entries included.
    pub fn closed(&self) -> ClosedCounts {
        let mut all = self.expired.closed;
        for h in &self.hosts {
            all.add_all(&h.closed);
        }
        all
    }
}

impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<40} {:>5} {:>6} {:>10} {:>7} {:>8} {:>8} {:>8}",
            "host", "idle", "active", "connecting", "waiting", "opened", "reused", "closed"
        )?;
        for h in &self.hosts {
            writeln!(
                f,
                "{:<40} {:>5} {:>6} {:>10} {:>7} {:>8} {:>8} {:>8}",
                h.key,
                h.idle,
                h.active,
                h.connecting,
                h.waiting,
                h.opened,
                h.reused,
                h.closed.total()
            )?;
        }
        Ok(())
    }
}
