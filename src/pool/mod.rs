//! The connection pool: one mutex around all pool state, never held across I/O.
//!
//! Each pool key (scheme, host, port, proxy, TLS settings) has a [`Host`] with
//! its idle connections (most recently used reused first), its open slots
//! counted against `max_connections_per_host`, and a FIFO queue of waiters.
//! Every open slot is in one [`Slot`] state (connecting, active or idle), and
//! the host changes them only through named transitions that assert
//! `open == idle + active + connecting` when they end (see `host.rs`).
//!
//! A request holds a [`Lease`] for its slot; the lease gives the slot back on
//! drop, so no error path can leak one. A returned connection goes straight to
//! the longest waiter; a freed slot wakes the next one. Connections are closed
//! only after the lock is released: closing may write (a TLS close_notify).
//!
//! The pool is generic over what it holds ([`Poolable`], [`Conn`] by default),
//! so the accounting is unit-tested with a fake connection (`tests.rs`).

mod host;
mod load;
mod poolable;
mod reaper;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::sync::mpsc::{self, Receiver, SyncSender};

pub(crate) use poolable::Poolable;
pub use stats::{CloseReason, ClosedCounts, ExpiredHosts, HostStats, PoolStats};

use host::{Grant, Host, Slot, Waiter};

use crate::conn::Conn;
use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, ErrorKind, Phase};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// How a TLS connection was verified. Connections made without verification
/// are never handed to a request that expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TlsMode {
    Verified,
    DangerUnverified,
}

/// Which requests may share a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub scheme: Scheme,
    pub host: Arc<str>,
    pub port: u16,
    /// The proxy the connection goes through, if any: kind, host, port and
    /// credentials all tell connections apart.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    pub tls: Option<TlsMode>,
}

impl PoolKey {
    /// `host:port` as written in messages (IPv6 in brackets).
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.authority())?;
        if let Some(proxy) = &self.proxy {
            write!(f, " via {proxy}")?;
        }
        if self.tls == Some(TlsMode::DangerUnverified) {
            f.write_str(" (unverified tls)")?;
        }
        Ok(())
    }
}

/// Limits for one host, overriding the agent's.
///
/// ```
/// let limits = windlass::HostLimits::new().max_connections(8).max_idle(4);
/// assert_eq!(limits.max_connections, Some(8));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostLimits {
    /// Most connections open to the host (connecting + active + idle); `None` = the agent's.
    pub max_connections: Option<usize>,
    /// Most idle connections kept for the host; `None` = the agent's.
    pub max_idle: Option<usize>,
}

impl HostLimits {
    /// The agent's limits, until overridden by the setters.
    pub const fn new() -> HostLimits {
        HostLimits {
            max_connections: None,
            max_idle: None,
        }
    }

    /// Most connections open to the host (connecting + active + idle).
    /// Beyond it, requests wait in FIFO order. 0 is taken as 1.
    pub const fn max_connections(mut self, max: usize) -> HostLimits {
        self.max_connections = Some(max);
        self
    }

    /// Most idle connections kept for the host; 0 keeps none.
    pub const fn max_idle(mut self, max: usize) -> HostLimits {
        self.max_idle = Some(max);
        self
    }
}

/// The pool's settings, fixed when the agent is built.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub max_idle: usize,
    pub max_idle_per_host: usize,
    pub max_connections_per_host: Option<usize>,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    /// Keyed by `host:port`.
    pub host_limits: HashMap<String, HostLimits>,
}

/// How [`Pool::verify_idle`] accounts for the connection it looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Taken from the idle list: its reuse is already counted, and if it is
    /// dead, its lease frees the slot.
    Counted,
    /// Handed to a waiter: its reuse is not counted yet, and if it is dead,
    /// the waiter keeps its slot to open a new connection in.
    KeepSlot,
}

/// Empty host entries kept (for their counters and to save re-creating
/// them); beyond this, the longest-empty is forgotten, its counters folded
/// into [`ExpiredHosts`]. Bounds the pool's memory however many distinct
/// hosts a program talks to.
const KEEP_EMPTY_HOSTS: usize = 256;

struct State<C> {
    hosts: HashMap<PoolKey, Host<C>, crate::fnv::BuildFnv>,
    /// Idle connections over all hosts, for `max_idle`.
    idle_total: usize,
    /// Every idle connection of every host by the order it went idle (its
    /// `seq`), so the pool-wide limit evicts the least recently used in
    /// O(log n) and the reaper visits only hosts with idle connections.
    idle_order: BTreeMap<u64, PoolKey>,
    /// Hosts that became empty, oldest first, with the `empty_seq` they had
    /// then (a host used again since has another or none: the entry is stale).
    empties: VecDeque<(u64, PoolKey)>,
    /// The next `seq` for `idle_order` and `empties`.
    next_seq: u64,
    /// Counters of forgotten hosts.
    expired: ExpiredHosts,
    next_waiter: u64,
    closed: bool,
    /// When the reaper will next look at this pool, if it is registered with
    /// a due time.
    reaper_next: Option<Instant>,
}

impl<C> Default for State<C> {
    fn default() -> Self {
        State {
            hosts: HashMap::default(),
            idle_total: 0,
            idle_order: BTreeMap::new(),
            empties: VecDeque::new(),
            next_seq: 0,
            expired: ExpiredHosts::default(),
            next_waiter: 0,
            closed: false,
            reaper_next: None,
        }
    }
}

impl<C: Poolable> State<C> {
    /// `idle_total` is the sum of the hosts' idle lists. A walk over every
    /// host, so only in debug builds, and only while the pool is small
    /// (tests with thousands of hosts would be quadratic).
    fn check_idle_total(&self) {
        #[cfg(debug_assertions)]
        if self.hosts.len() <= 64 {
            let sum: usize = self.hosts.values().map(Host::idle_len).sum();
            debug_assert_eq!(self.idle_total, sum, "idle_total out of step");
            debug_assert_eq!(self.idle_order.len(), sum, "idle_order out of step");
        }
    }
}

pub(crate) struct Shared<C: Poolable = Conn> {
    state: Mutex<State<C>>,
    cfg: PoolConfig,
    reaper: reaper::Handle,
    /// Requests in flight, for `in_flight()` and the reaper's leak warnings.
    pub(crate) in_flight: Arc<crate::inflight::Registry>,
}

/// A handle to the pool; cheap to clone.
pub(crate) struct Pool<C: Poolable = Conn> {
    shared: Arc<Shared<C>>,
}

impl<C: Poolable> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The right to one open slot for a key. Dropping it frees the slot.
///
/// Its state is the slot's: `Connecting` until [`Lease::connected`], then
/// `Active`; `Closed` once [`Pool::release`] or [`Pool::discard`] took the
/// slot over, when dropping it does nothing.
pub(crate) struct Lease<C: Poolable = Conn> {
    shared: Arc<Shared<C>>,
    key: PoolKey,
    slot: Slot,
    /// When the checkout began: the slot's time in use feeds the host's load.
    since: Instant,
}

impl<C: Poolable> Lease<C> {
    /// The key the connection was checked out under.
    pub(crate) fn key(&self) -> &PoolKey {
        &self.key
    }

    /// `Connecting` → `Active`: the new connection is up; count it as opened.
    pub(crate) fn connected(&mut self) {
        if self.slot == Slot::Connecting {
            self.slot = Slot::Active;
            let mut state = self.shared.lock();
            self.shared
                .with_host(&mut state, &self.key, Host::connected);
        }
    }

    /// The lease ends with its connection in the caller's hands: `Active`
    /// (a connection in hand was opened, even if nobody said so) → `Closed`,
    /// the caller now accounting for the slot. Returns the key.
    fn finish(mut self) -> PoolKey {
        self.connected();
        self.slot = Slot::Closed;
        self.key.clone()
    }
}

impl<C: Poolable> Drop for Lease<C> {
    fn drop(&mut self) {
        let slot = std::mem::replace(&mut self.slot, Slot::Closed);
        if slot != Slot::Closed {
            let held = self.since.elapsed();
            let mut state = self.shared.lock();
            self.shared.with_host(&mut state, &self.key, |host| {
                host.load.latency(held);
                host.close(slot, None);
            });
        }
    }
}

/// What a checkout produced.
pub(crate) struct Checkout<C: Poolable = Conn> {
    pub lease: Lease<C>,
    /// A reused connection, or `None`: open a new one under the lease.
    pub conn: Option<Box<C>>,
    pub waited: Duration,
}

impl<C: Poolable> Pool<C> {
    pub(crate) fn new(cfg: PoolConfig, in_flight: Arc<crate::inflight::Registry>) -> Pool<C> {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                cfg,
                reaper: reaper::Handle::default(),
                in_flight,
            }),
        }
    }

    pub(crate) fn in_flight(&self) -> &Arc<crate::inflight::Registry> {
        &self.shared.in_flight
    }

    /// A body was handed to the caller: make sure the reaper looks at it by `due`.
    pub(crate) fn watch_leak(&self, due: Instant) {
        let wake = {
            let mut state = self.shared.lock();
            let wake = !state.closed && state.reaper_next.is_none_or(|next| due < next);
            if wake {
                state.reaper_next = Some(due);
            }
            wake
        };
        if wake {
            reaper::wake(&self.shared, due);
        }
    }

    /// Take an idle connection for `key`, or a slot to open one, waiting in
    /// FIFO order when the host is at its limit. `fresh` skips idle connections
    /// (a retry after a stale one failed).
    #[cfg(test)]
    pub(crate) fn checkout(
        &self,
        key: &PoolKey,
        fresh: bool,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<Checkout<C>, Error> {
        self.checkout_telling(key, fresh, deadline, cancel, || {})
    }

    /// [`checkout`](Pool::checkout), calling `about_to_wait` once when the
    /// host is at its limit and the caller joins the wait queue (and never
    /// when a connection or slot is had at once), so a "waiting" event means
    /// a real wait.
    pub(crate) fn checkout_telling(
        &self,
        key: &PoolKey,
        fresh: bool,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
        about_to_wait: impl FnOnce(),
    ) -> Result<Checkout<C>, Error> {
        let mut about_to_wait = Some(about_to_wait);
        let started = Instant::now();
        let done = |lease, conn| Checkout {
            lease,
            conn,
            waited: started.elapsed(),
        };
        // Each pass either returns or discards one dead idle connection, and a
        // host holds finitely many, so this ends; the bound is a safety net.
        for _ in 0..10_000 {
            let mut to_close = Vec::new();
            let taken = {
                let mut state = self.shared.lock();
                if state.closed {
                    return Err(Error::new(ErrorKind::Io, "the agent was dropped"));
                }
                let now = Instant::now();
                let id = state.next_waiter;
                let taken = self.shared.with_host(&mut state, key, |host| {
                    let taken = take(host, fresh, now, id, &mut to_close);
                    if !matches!(taken, Taken::Wait(..)) {
                        host.load.wait(now.saturating_duration_since(started));
                    }
                    taken
                });
                if let Taken::Wait(..) = taken {
                    state.next_waiter += 1;
                }
                taken
            };
            // Closing may write (TLS close_notify): never under the lock.
            close_all(to_close);
            match taken {
                Taken::Slot => return Ok(done(self.lease(key, Slot::Connecting, started), None)),
                Taken::Idle(conn) => {
                    let lease = self.lease(key, Slot::Active, started);
                    if let Some(conn) = self.verify_idle(key, conn, Probe::Counted) {
                        return Ok(done(lease, Some(conn)));
                    }
                    // Dead: its lease drops here, freeing the slot; try again.
                }
                Taken::Wait(id, tx, rx) => {
                    if let Some(tell) = about_to_wait.take() {
                        tell();
                    }
                    let granted = self.wait(key, id, tx, rx, deadline, cancel, started)?;
                    {
                        let mut state = self.shared.lock();
                        self.shared.with_host(&mut state, key, |host| {
                            host.load.wait(started.elapsed());
                        });
                    }
                    let conn = match granted {
                        // A retry after a stale connection wants a new one: close
                        // the one handed over but keep its slot, so the retry
                        // does not lose its place in the queue.
                        Some(conn) if fresh => {
                            self.reopen_slot(key, conn, CloseReason::NotReusable);
                            None
                        }
                        Some(conn) => self.verify_idle(key, conn, Probe::KeepSlot),
                        None => None,
                    };
                    let slot = match conn {
                        Some(_) => Slot::Active,
                        None => Slot::Connecting,
                    };
                    return Ok(done(self.lease(key, slot, started), conn));
                }
            }
        }
        Err(Error::new(ErrorKind::Io, "pool checkout did not settle"))
    }

    fn lease(&self, key: &PoolKey, slot: Slot, since: Instant) -> Lease<C> {
        Lease {
            shared: Arc::clone(&self.shared),
            key: key.clone(),
            slot,
            since,
        }
    }

    /// Close a connection handed to a waiter but keep its slot, now counted
    /// as connecting: the waiter opens a new connection in it.
    fn reopen_slot(&self, key: &PoolKey, conn: Box<C>, reason: CloseReason) {
        {
            let mut state = self.shared.lock();
            self.shared
                .with_host(&mut state, key, |host| host.reopen(reason));
        }
        log::debug!("closing connection {} to {key}: {reason}", conn.id());
        conn.close();
    }

    /// Look at an idle connection before it is reused (every time: a byte
    /// that arrived since it went idle means it cannot be trusted), and count
    /// the reuse or the close. A dead one's slot is freed by its lease, or kept
    /// as connecting with [`Probe::KeepSlot`] for the caller to open a new
    /// connection in.
    fn verify_idle(&self, key: &PoolKey, mut conn: Box<C>, probe: Probe) -> Option<Box<C>> {
        if conn.is_alive() {
            if probe == Probe::KeepSlot {
                let mut state = self.shared.lock();
                self.shared.with_host(&mut state, key, Host::count_reuse);
            }
            log::debug!("reusing connection {} to {key}", conn.id());
            return Some(conn);
        }
        {
            let mut state = self.shared.lock();
            self.shared.with_host(&mut state, key, |host| match probe {
                Probe::Counted => host.reuse_failed(),
                Probe::KeepSlot => host.reopen(CloseReason::ServerClosed),
            });
        }
        log::debug!(
            "idle connection {} to {key} was closed by the server or has unread bytes",
            conn.id()
        );
        conn.close();
        None
    }

    /// Wait for a grant. `Ok(Some)` is a connection, `Ok(None)` a slot.
    #[allow(clippy::too_many_arguments)]
    fn wait(
        &self,
        key: &PoolKey,
        id: u64,
        tx: SyncSender<Grant<C>>,
        rx: Receiver<Grant<C>>,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
        started: Instant,
    ) -> Result<Option<Box<C>>, Error> {
        let hook = match cancel {
            Some(token) => match token.on_cancel(move || {
                let _ = tx.try_send(Grant::Cancelled);
            }) {
                Some(hook) => Some(hook),
                None => {
                    let err = Error::cancelled(Phase::PoolWait);
                    return Err(self.give_up(key, id, &rx, started, err));
                }
            },
            None => {
                drop(tx);
                None
            }
        };
        let got = match deadline.remaining() {
            None => rx.recv().ok(),
            Some(left) => rx.recv_timeout(left).ok(),
        };
        drop(hook);
        match got {
            Some(Grant::Conn(conn)) => Ok(Some(conn)),
            Some(Grant::Slot) => Ok(None),
            Some(Grant::Cancelled) => {
                Err(self.give_up(key, id, &rx, started, Error::cancelled(Phase::PoolWait)))
            }
            None => {
                let err = Error::timeout(Phase::PoolWait, &key.authority(), started.elapsed());
                Err(self.give_up(key, id, &rx, started, err))
            }
        }
    }

    /// Leave the wait queue. A grant already sent to us is passed on, so a
    /// waiter that gives up never strands a connection or a slot.
    fn give_up(
        &self,
        key: &PoolKey,
        id: u64,
        rx: &Receiver<Grant<C>>,
        started: Instant,
        err: Error,
    ) -> Error {
        let still_queued = {
            let mut state = self.shared.lock();
            self.shared.with_host(&mut state, key, |host| {
                host.load.wait(started.elapsed());
                host.leave_queue(id)
            })
        };
        if !still_queued {
            // Grants are sent under the lock, so it is in the channel by now.
            for grant in rx.try_iter() {
                match grant {
                    // Still active: the release passes it to the next waiter
                    // or the idle list.
                    Grant::Conn(conn) => {
                        self.release(self.lease(key, Slot::Active, Instant::now()), conn);
                    }
                    // The granter counted us as connecting; the lease undoes that.
                    Grant::Slot => drop(self.lease(key, Slot::Connecting, Instant::now())),
                    Grant::Cancelled => {}
                }
            }
        }
        err
    }

    /// Give a connection back after a complete response. It goes to the
    /// longest waiter, else to the idle list, else it is closed.
    pub(crate) fn release(&self, lease: Lease<C>, mut conn: Box<C>) {
        let since = lease.since;
        let key = lease.finish();
        let now = Instant::now();
        let cancelled = conn.detach_cancel();
        let lifetime_end = self
            .shared
            .cfg
            .max_lifetime
            .and_then(|l| conn.created().checked_add(l));
        if cancelled {
            return self.close_slot(&key, conn, CloseReason::Cancelled, since);
        }
        if lifetime_end.is_some_and(|end| end <= now) {
            return self.close_slot(&key, conn, CloseReason::Lifetime, since);
        }
        if !conn.make_idle(now) {
            return self.close_slot(&key, conn, CloseReason::NotReusable, since);
        }
        let expires = self.expiry(&conn, now);
        let mut evicted = None;
        let mut wake_reaper = None;
        let outcome = {
            let mut state = self.shared.lock();
            if state.closed {
                drop(state);
                return self.close_slot(&key, conn, CloseReason::AgentDropped, since);
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let outcome = self.shared.with_host(&mut state, &key, |host| {
                let Some(conn) = host.hand_to_waiter(conn) else {
                    host.load.latency(now.saturating_duration_since(since));
                    return Outcome::HandedOff;
                };
                match host.park(conn, expires, seq) {
                    Ok(()) => {
                        host.load.latency(now.saturating_duration_since(since));
                        Outcome::Idle
                    }
                    Err(conn) => Outcome::Close(conn),
                }
            });
            if let Outcome::Idle = outcome {
                if state.idle_total > self.shared.cfg.max_idle {
                    evicted = self.shared.evict_oldest(&mut state);
                }
                if let Some((at, _)) = expires {
                    if state.reaper_next.is_none_or(|next| at < next) {
                        state.reaper_next = Some(at);
                        wake_reaper = Some(at);
                    }
                }
            }
            outcome
        };
        if let Some(conn) = evicted {
            log::debug!("closing idle connection {}: pool full", conn.id());
            conn.close();
        }
        match outcome {
            Outcome::HandedOff => log::debug!("connection to {key} handed to a waiter"),
            Outcome::Idle => {
                log::debug!("connection to {key} returned to the pool");
                if let Some(at) = wake_reaper {
                    reaper::wake(&self.shared, at);
                }
            }
            Outcome::Close(conn) => self.close_slot(&key, conn, CloseReason::PoolFull, since),
        }
    }

    /// Close a checked-out connection and free its slot.
    pub(crate) fn discard(&self, lease: Lease<C>, conn: Box<C>, reason: CloseReason) {
        let since = lease.since;
        let key = lease.finish();
        self.close_slot(&key, conn, reason, since);
    }

    /// `Active` → `Closed`: close a connection whose lease has finished, then
    /// free its slot.
    fn close_slot(&self, key: &PoolKey, conn: Box<C>, reason: CloseReason, since: Instant) {
        log::debug!("closing connection {} to {key}: {reason}", conn.id());
        // Closed before its slot is handed on, so a connection that failed
        // or was cancelled is gone before a waiter opens another; counted
        // and freed under one lock. (Idle connections evicted or expired
        // under the lock free their slot first and are closed just after
        // it is released: closing may write, never under the lock.)
        conn.close();
        let held = since.elapsed();
        let mut state = self.shared.lock();
        self.shared.with_host(&mut state, key, |host| {
            host.load.latency(held);
            host.close(Slot::Active, Some(reason));
        });
    }

    /// When an idle connection must be closed, and why.
    fn expiry(&self, conn: &C, now: Instant) -> Option<(Instant, CloseReason)> {
        let cfg = &self.shared.cfg;
        // A server's Keep-Alive timeout caps the idle life a little under it, so
        // we close first instead of racing the server's close.
        let server = conn
            .server_keep_alive()
            .map(|t| t - (t / 4).min(Duration::from_secs(1)));
        let idle = match (cfg.idle_timeout, server) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A duration too large to add means "never".
        let idle_end = idle
            .and_then(|d| now.checked_add(d))
            .map(|at| (at, CloseReason::IdleTimeout));
        let life_end = cfg
            .max_lifetime
            .and_then(|l| conn.created().checked_add(l))
            .map(|at| (at, CloseReason::Lifetime));
        match (idle_end, life_end) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// A snapshot of every key's counts.
    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        let mut hosts: Vec<HostStats> = state
            .hosts
            .iter()
            .map(|(key, h)| h.stats(key.to_string()))
            .collect();
        hosts.sort_by(|a, b| a.key.cmp(&b.key));
        PoolStats {
            hosts,
            expired: state.expired,
        }
    }

    /// The agent is gone: close every idle connection, refuse new checkouts,
    /// close connections as they come back, and leave the reaper's registry
    /// (never waiting for its thread).
    pub(crate) fn shut_down(&self) {
        let idle = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.idle_total = 0;
            state.idle_order.clear();
            let mut all = Vec::new();
            for host in state.hosts.values_mut() {
                host.close_all_idle(CloseReason::AgentDropped, &mut all);
                host.left_idle.clear();
            }
            state.check_idle_total();
            all
        };
        for conn in idle {
            conn.close();
        }
        reaper::stop(&self.shared);
    }
}

enum Taken<C> {
    /// An idle connection, its reuse already counted.
    Idle(Box<C>),
    /// A slot to open a connection in, counted as connecting.
    Slot,
    /// Queued under this id, waiting for a grant.
    Wait(u64, SyncSender<Grant<C>>, Receiver<Grant<C>>),
}

enum Outcome<C> {
    HandedOff,
    Idle,
    Close(Box<C>),
}

/// One look at the host for a checkout: an idle connection, a new slot, or
/// a place in the wait queue (under `id`).
fn take<C: Poolable>(
    host: &mut Host<C>,
    fresh: bool,
    now: Instant,
    id: u64,
    to_close: &mut Vec<(Box<C>, CloseReason)>,
) -> Taken<C> {
    if !fresh {
        if let Some(conn) = host.reuse_idle(now, to_close) {
            return Taken::Idle(conn);
        }
    }
    if fresh && host.at_limit() && !host.has_waiters() {
        // A retry that must not reuse: trade the oldest idle
        // connection's slot for a new connection rather than
        // wait behind connections nobody is using.
        if let Some(conn) = host.trade_oldest_idle() {
            to_close.push((conn, CloseReason::NotReusable));
            return Taken::Slot;
        }
    }
    if host.try_open_slot() {
        return Taken::Slot;
    }
    let (tx, rx) = mpsc::sync_channel(2);
    host.enqueue(Waiter { id, tx: tx.clone() });
    Taken::Wait(id, tx, rx)
}

fn close_all<C: Poolable>(conns: Vec<(Box<C>, CloseReason)>) {
    for (conn, reason) in conns {
        log::debug!("closing idle connection {}: {reason}", conn.id());
        conn.close();
    }
}

impl<C: Poolable> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // Nothing under the lock is expected to panic but a failed debug
        // check (a bug already made), and the counts are whole between
        // transitions, so a poisoned lock is still usable: one thread's panic
        // must not wedge every request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the key's host (made on first use), keeping `idle_total`
    /// in step with the host's idle list.
    fn with_host<R>(
        &self,
        state: &mut State<C>,
        key: &PoolKey,
        f: impl FnOnce(&mut Host<C>) -> R,
    ) -> R {
        if !state.hosts.contains_key(key) {
            state.hosts.insert(key.clone(), self.new_host(key));
        }
        let host = state.hosts.get_mut(key).expect("inserted above");
        let before = host.idle_len();
        let out = f(host);
        state.idle_total = state.idle_total + host.idle_len() - before;
        for seq in host.left_idle.drain(..) {
            state.idle_order.remove(&seq);
        }
        if let Some(seq) = host.joined_idle.take() {
            state.idle_order.insert(seq, key.clone());
        }
        note_empty(host, key, &mut state.empties, &mut state.next_seq);
        forget_empty_hosts(state);
        state.check_idle_total();
        out
    }

    fn new_host(&self, key: &PoolKey) -> Host<C> {
        let limits = self
            .cfg
            .host_limits
            .get(&key.authority())
            .copied()
            .unwrap_or_default();
        Host::new(
            // A limit of 0 would make the host unreachable; it means 1, as it
            // does for max_connections_per_host.
            limits
                .max_connections
                .map(|m| m.max(1))
                .or(self.cfg.max_connections_per_host),
            limits.max_idle.unwrap_or(self.cfg.max_idle_per_host),
        )
    }

    /// `Idle` → `Closed` for the least recently used idle connection of any
    /// host (the limit over all hosts).
    fn evict_oldest(&self, state: &mut State<C>) -> Option<Box<C>> {
        let (&seq, key) = state.idle_order.first_key_value()?;
        let key = key.clone();
        self.with_host(state, &key, |host| {
            // A host's idle list is in `seq` order, so the pool's oldest is
            // at the front of its host's.
            debug_assert_eq!(host.oldest_idle_seq(), Some(seq));
            host.evict_oldest(CloseReason::PoolFull)
        })
    }
}

/// Queue `host` to be forgotten if it just became empty; mark it in use
/// again otherwise (its queue entry, if any, goes stale).
fn note_empty<C: Poolable>(
    host: &mut Host<C>,
    key: &PoolKey,
    empties: &mut VecDeque<(u64, PoolKey)>,
    next_seq: &mut u64,
) {
    if !host.is_empty() {
        host.empty_seq = None;
    } else if host.empty_seq.is_none() {
        host.empty_seq = Some(*next_seq);
        empties.push_back((*next_seq, key.clone()));
        *next_seq += 1;
    }
}

/// Forget the longest-empty hosts beyond [`KEEP_EMPTY_HOSTS`], folding their
/// counters into the expired totals. Each call pops at most what was pushed
/// since the last, so the cost per pool operation is constant.
fn forget_empty_hosts<C: Poolable>(state: &mut State<C>) {
    while state.empties.len() > KEEP_EMPTY_HOSTS {
        let Some((seq, key)) = state.empties.pop_front() else {
            break;
        };
        let still_empty = state
            .hosts
            .get(&key)
            .is_some_and(|h| h.empty_seq == Some(seq));
        if !still_empty {
            continue;
        }
        if let Some(host) = state.hosts.remove(&key) {
            let (opened, reused, closed) = host.counters();
            let expired = &mut state.expired;
            expired.hosts += 1;
            expired.opened += opened;
            expired.reused += reused;
            expired.closed.add_all(&closed);
        }
    }
}
