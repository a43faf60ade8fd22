//! The connection pool: one mutex around all pool state, never held across I/O.
//!
//! Each pool key (scheme, host, port, proxy, TLS settings) has a [`Host`] with
//! its idle connections (most recently used reused first), the number of open
//! connections (connecting + active + idle) counted against
//! `max_connections_per_host`, and a FIFO queue of waiters. A request holds a
//! [`Lease`] for its slot; the lease gives the slot back on drop, so no error
//! path can leak one. A returned connection goes straight to the longest
//! waiter; a freed slot wakes the next one.

mod reaper;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

pub use stats::{CloseReason, ClosedCounts, HostStats, PoolStats};

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
    /// The proxy's `host:port`, when the connection goes through one.
    pub proxy: Option<Arc<str>>,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostLimits {
    /// Most connections open to the host (connecting + active + idle); `None` = the agent's.
    pub max_connections: Option<usize>,
    /// Most idle connections kept for the host; `None` = the agent's.
    pub max_idle: Option<usize>,
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
    /// Taken from the idle list: its reuse is already counted.
    Counted,
    /// Handed to a waiter: its reuse is not counted yet, and if it is dead,
    /// the waiter keeps its slot to open a new connection in.
    KeepSlot,
}

/// Something the pool hands to a waiter.
enum Grant {
    /// An idle connection, with its slot.
    Conn(Box<Conn>),
    /// A slot to open a new connection in.
    Slot,
    /// The waiter's token was cancelled.
    Cancelled,
}

struct Waiter {
    id: u64,
    tx: Sender<Grant>,
}

struct IdleConn {
    conn: Box<Conn>,
    expires: Option<(Instant, CloseReason)>,
}

struct Host {
    idle: VecDeque<IdleConn>,
    /// Connecting + active + idle.
    open: usize,
    connecting: usize,
    waiters: VecDeque<Waiter>,
    max_connections: Option<usize>,
    max_idle: usize,
    opened: u64,
    reused: u64,
    closed: ClosedCounts,
}

impl Host {
    fn is_empty(&self) -> bool {
        self.open == 0 && self.waiters.is_empty()
    }

    /// One of this host's slots is free: hand it to the longest waiter (who
    /// will open a connection in it), or shrink the open count.
    fn slot_freed(&mut self) {
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.tx.try_send(Grant::Slot).is_ok() {
                self.connecting += 1;
                return;
            }
        }
        self.open -= 1;
    }
}

#[derive(Default)]
struct State {
    hosts: HashMap<PoolKey, Host, crate::fnv::BuildFnv>,
    idle_total: usize,
    next_waiter: u64,
    closed: bool,
    /// When the reaper will next wake on its own, if it sleeps with a timeout.
    reaper_next: Option<Instant>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    cfg: PoolConfig,
    reaper: reaper::Handle,
    /// Requests in flight, for `in_flight()` and the reaper's leak warnings.
    pub(crate) in_flight: Arc<crate::inflight::Registry>,
}

/// A handle to the pool; cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

/// The right to one open connection to a key. Dropping it frees the slot.
pub(crate) struct Lease {
    shared: Arc<Shared>,
    key: PoolKey,
    connecting: bool,
    done: bool,
}

impl Lease {
    /// The new connection is up: count it as opened and active.
    pub(crate) fn connected(&mut self) {
        if self.connecting {
            self.connecting = false;
            let mut state = self.shared.lock();
            if let Some(host) = state.hosts.get_mut(&self.key) {
                host.connecting -= 1;
                host.opened += 1;
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            self.shared.free_slot(&self.key, self.connecting);
        }
    }
}

/// What a checkout produced.
pub(crate) struct Checkout {
    pub lease: Lease,
    /// A reused connection, or `None`: open a new one under the lease.
    pub conn: Option<Box<Conn>>,
    pub waited: Duration,
}

impl Pool {
    pub(crate) fn new(cfg: PoolConfig, in_flight: Arc<crate::inflight::Registry>) -> Pool {
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
            reaper::wake(&self.shared);
        }
    }

    /// Take an idle connection for `key`, or a slot to open one, waiting in
    /// FIFO order when the host is at its limit. `fresh` skips idle connections
    /// (a retry after a stale one failed).
    pub(crate) fn checkout(
        &self,
        key: &PoolKey,
        fresh: bool,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<Checkout, Error> {
        let started = Instant::now();
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
                let mut found = None;
                let State {
                    hosts, idle_total, ..
                } = &mut *state;
                let host = self.shared.host(hosts, key);
                if !fresh {
                    while let Some(idle) = host.idle.pop_back() {
                        *idle_total -= 1;
                        match idle.expires {
                            Some((at, reason)) if at <= now => {
                                host.closed.add(reason);
                                host.slot_freed();
                                to_close.push((idle.conn, reason));
                            }
                            _ => {
                                // Counted as reused now, under this lock, so
                                // the common case locks once; the probe below
                                // takes the count back if the connection is dead.
                                host.reused += 1;
                                found = Some(idle.conn);
                                break;
                            }
                        }
                    }
                }
                let at_limit = host.max_connections.is_some_and(|max| host.open >= max);
                if fresh && at_limit && host.waiters.is_empty() {
                    // A retry that must not reuse: trade the oldest idle
                    // connection's slot for a new connection rather than wait
                    // behind connections nobody is using.
                    if let Some(idle) = host.idle.pop_front() {
                        *idle_total -= 1;
                        host.closed.add(CloseReason::NotReusable);
                        host.connecting += 1;
                        to_close.push((idle.conn, CloseReason::NotReusable));
                        // Closing may write (TLS close_notify): never under the lock.
                        drop(state);
                        close_all(to_close);
                        return Ok(Checkout {
                            lease: self.lease(key, true),
                            conn: None,
                            waited: started.elapsed(),
                        });
                    }
                }
                match found {
                    Some(conn) => Taken::Idle(conn),
                    None if host.waiters.is_empty()
                        && host.max_connections.is_none_or(|max| host.open < max) =>
                    {
                        host.open += 1;
                        host.connecting += 1;
                        Taken::Slot
                    }
                    None => {
                        let (tx, rx) = crossbeam_channel::bounded(2);
                        let id = state.next_waiter;
                        state.next_waiter += 1;
                        let host = self.shared.host(&mut state.hosts, key);
                        host.waiters.push_back(Waiter { id, tx: tx.clone() });
                        Taken::Wait(id, tx, rx)
                    }
                }
            };
            close_all(to_close);
            let lease = |connecting| self.lease(key, connecting);
            match taken {
                Taken::Slot => {
                    return Ok(Checkout {
                        lease: lease(true),
                        conn: None,
                        waited: started.elapsed(),
                    })
                }
                Taken::Idle(conn) => {
                    let lease = lease(false);
                    if let Some(conn) = self.verify_idle(key, conn, Probe::Counted) {
                        return Ok(Checkout {
                            lease,
                            conn: Some(conn),
                            waited: started.elapsed(),
                        });
                    }
                    // Dead: its lease drops here, freeing the slot; try again.
                }
                Taken::Wait(id, tx, rx) => {
                    let granted = self.wait(key, id, tx, rx, deadline, cancel, started)?;
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
                    let connecting = conn.is_none();
                    return Ok(Checkout {
                        lease: lease(connecting),
                        conn,
                        waited: started.elapsed(),
                    });
                }
            }
        }
        Err(Error::new(ErrorKind::Io, "pool checkout did not settle"))
    }

    fn lease(&self, key: &PoolKey, connecting: bool) -> Lease {
        Lease {
            shared: Arc::clone(&self.shared),
            key: key.clone(),
            connecting,
            done: false,
        }
    }

    /// Close a connection handed to a waiter but keep its slot, now counted
    /// as connecting: the waiter opens a new connection in it.
    fn reopen_slot(&self, key: &PoolKey, conn: Box<Conn>, reason: CloseReason) {
        {
            let mut state = self.shared.lock();
            let host = self.shared.host(&mut state.hosts, key);
            host.closed.add(reason);
            host.connecting += 1;
        }
        log::debug!("closing connection {} to {key}: {reason}", conn.info.id);
        conn.close();
    }

    /// Look at an idle connection before it is reused (every time: a byte
    /// that arrived since it went idle means it cannot be trusted), and count
    /// the reuse or the close. A dead one's slot is freed by its lease, or kept
    /// as connecting with [`Probe::KeepSlot`] for the caller to open a new
    /// connection in.
    fn verify_idle(&self, key: &PoolKey, mut conn: Box<Conn>, probe: Probe) -> Option<Box<Conn>> {
        if conn.is_alive() {
            if probe == Probe::KeepSlot {
                let mut state = self.shared.lock();
                self.shared.host(&mut state.hosts, key).reused += 1;
            }
            log::debug!("reusing connection {} to {key}", conn.info.id);
            return Some(conn);
        }
        {
            let mut state = self.shared.lock();
            let host = self.shared.host(&mut state.hosts, key);
            host.closed.add(CloseReason::ServerClosed);
            match probe {
                Probe::Counted => host.reused -= 1,
                Probe::KeepSlot => host.connecting += 1,
            }
        }
        log::debug!(
            "idle connection {} to {key} was closed by the server or has unread bytes",
            conn.info.id
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
        tx: Sender<Grant>,
        rx: Receiver<Grant>,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
        started: Instant,
    ) -> Result<Option<Box<Conn>>, Error> {
        let hook = match cancel {
            Some(token) => match token.on_cancel(move || {
                let _ = tx.try_send(Grant::Cancelled);
            }) {
                Some(hook) => Some(hook),
                None => return Err(self.give_up(key, id, &rx, Error::cancelled(Phase::PoolWait))),
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
                Err(self.give_up(key, id, &rx, Error::cancelled(Phase::PoolWait)))
            }
            None => {
                let err = Error::timeout(Phase::PoolWait, &key.authority(), started.elapsed());
                Err(self.give_up(key, id, &rx, err))
            }
        }
    }

    /// Leave the wait queue. A grant already sent to us is passed on, so a
    /// waiter that gives up never strands a connection or a slot.
    fn give_up(&self, key: &PoolKey, id: u64, rx: &Receiver<Grant>, err: Error) -> Error {
        let still_queued = {
            let mut state = self.shared.lock();
            let host = self.shared.host(&mut state.hosts, key);
            match host.waiters.iter().position(|w| w.id == id) {
                Some(i) => {
                    host.waiters.remove(i);
                    true
                }
                None => false,
            }
        };
        if !still_queued {
            // Grants are sent under the lock, so it is in the channel by now.
            for grant in rx.try_iter() {
                match grant {
                    Grant::Conn(conn) => self.release(self.lease(key, false), conn),
                    // The granter counted us as connecting; the lease undoes that.
                    Grant::Slot => drop(self.lease(key, true)),
                    Grant::Cancelled => {}
                }
            }
        }
        err
    }

    /// Give a connection back after a complete response. It goes to the
    /// longest waiter, else to the idle list, else it is closed.
    pub(crate) fn release(&self, mut lease: Lease, mut conn: Box<Conn>) {
        lease.done = true;
        let key = lease.key.clone();
        drop(lease);
        let now = Instant::now();
        let cancelled = conn.detach_cancel();
        let lifetime_end = self
            .shared
            .cfg
            .max_lifetime
            .and_then(|l| conn.info.created.checked_add(l));
        if cancelled {
            return self.close_slot(&key, conn, CloseReason::Cancelled);
        }
        if lifetime_end.is_some_and(|end| end <= now) {
            return self.close_slot(&key, conn, CloseReason::Lifetime);
        }
        if !conn.make_idle() {
            return self.close_slot(&key, conn, CloseReason::NotReusable);
        }
        let mut evicted = None;
        let mut wake_reaper = false;
        let outcome = {
            let mut state = self.shared.lock();
            if state.closed {
                drop(state);
                return self.close_slot(&key, conn, CloseReason::AgentDropped);
            }
            let host = self.shared.host(&mut state.hosts, &key);
            let mut conn = Some(conn);
            while let Some(waiter) = host.waiters.pop_front() {
                match waiter
                    .tx
                    .try_send(Grant::Conn(conn.take().expect("present")))
                {
                    Ok(()) => break,
                    Err(e) => match e.into_inner() {
                        Grant::Conn(c) => conn = Some(c),
                        _ => unreachable_grant(),
                    },
                }
            }
            match conn {
                None => Outcome::HandedOff,
                Some(conn) if host.idle.len() >= host.max_idle => Outcome::Close(conn),
                Some(conn) => {
                    let expires = self.expiry(&conn, now);
                    host.idle.push_back(IdleConn { conn, expires });
                    state.idle_total += 1;
                    if state.idle_total > self.shared.cfg.max_idle {
                        evicted = self.shared.evict_oldest(&mut state);
                    }
                    if let Some((at, _)) = expires {
                        wake_reaper = state.reaper_next.is_none_or(|next| at < next);
                        if wake_reaper {
                            state.reaper_next = Some(at);
                        }
                    }
                    Outcome::Idle
                }
            }
        };
        if let Some(conn) = evicted {
            log::debug!("closing idle connection {}: pool full", conn.info.id);
            conn.close();
        }
        match outcome {
            Outcome::HandedOff => log::debug!("connection to {key} handed to a waiter"),
            Outcome::Idle => {
                log::debug!("connection to {key} returned to the pool");
                if wake_reaper {
                    reaper::wake(&self.shared);
                }
            }
            Outcome::Close(conn) => self.close_slot(&key, conn, CloseReason::PoolFull),
        }
    }

    /// Close a checked-out connection and free its slot.
    pub(crate) fn discard(&self, mut lease: Lease, conn: Box<Conn>, reason: CloseReason) {
        lease.done = true;
        let key = lease.key.clone();
        drop(lease);
        self.close_slot(&key, conn, reason);
    }

    fn close_slot(&self, key: &PoolKey, conn: Box<Conn>, reason: CloseReason) {
        log::debug!("closing connection {} to {key}: {reason}", conn.info.id);
        // Closed before its slot is handed on, so the host never has more
        // sockets than its limit; counted and freed under one lock.
        conn.close();
        let mut state = self.shared.lock();
        let host = self.shared.host(&mut state.hosts, key);
        host.closed.add(reason);
        host.slot_freed();
    }

    /// When an idle connection must be closed, and why.
    fn expiry(&self, conn: &Conn, now: Instant) -> Option<(Instant, CloseReason)> {
        let cfg = &self.shared.cfg;
        // A server's Keep-Alive timeout caps the idle life a little under it, so
        // we close first instead of racing the server's close.
        let server = conn
            .info
            .server_keep_alive
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
            .and_then(|l| conn.info.created.checked_add(l))
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
            .map(|(key, h)| HostStats {
                key: key.to_string(),
                idle: h.idle.len(),
                active: h.open - h.idle.len() - h.connecting,
                connecting: h.connecting,
                waiting: h.waiters.len(),
                opened: h.opened,
                reused: h.reused,
                closed: h.closed,
            })
            .collect();
        hosts.sort_by(|a, b| a.key.cmp(&b.key));
        PoolStats { hosts }
    }

    /// The agent is gone: close every idle connection, refuse new checkouts,
    /// close connections as they come back, and stop the reaper.
    pub(crate) fn shut_down(&self) {
        let idle: Vec<Box<Conn>> = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.idle_total = 0;
            let mut all = Vec::new();
            for host in state.hosts.values_mut() {
                for idle in host.idle.drain(..) {
                    host.open -= 1;
                    host.closed.add(CloseReason::AgentDropped);
                    all.push(idle.conn);
                }
            }
            all
        };
        for conn in idle {
            conn.close();
        }
        reaper::stop(&self.shared);
    }
}

enum Taken {
    /// An idle connection, its reuse already counted.
    Idle(Box<Conn>),
    Slot,
    Wait(u64, Sender<Grant>, Receiver<Grant>),
}

enum Outcome {
    HandedOff,
    Idle,
    Close(Box<Conn>),
}

fn unreachable_grant() -> ! {
    unreachable!("a connection grant comes back as a connection grant")
}

fn close_all(conns: Vec<(Box<Conn>, CloseReason)>) {
    for (conn, reason) in conns {
        log::debug!("closing idle connection {}: {reason}", conn.info.id);
        conn.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements that can panic, so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn host<'s>(
        &self,
        hosts: &'s mut HashMap<PoolKey, Host, crate::fnv::BuildFnv>,
        key: &PoolKey,
    ) -> &'s mut Host {
        if !hosts.contains_key(key) {
            let limits = self
                .cfg
                .host_limits
                .get(&key.authority())
                .copied()
                .unwrap_or_default();
            hosts.insert(
                key.clone(),
                Host {
                    idle: VecDeque::new(),
                    open: 0,
                    connecting: 0,
                    waiters: VecDeque::new(),
                    // A limit of 0 would make the host unreachable; it means 1,
                    // as it does for max_connections_per_host.
                    max_connections: limits
                        .max_connections
                        .map(|m| m.max(1))
                        .or(self.cfg.max_connections_per_host),
                    max_idle: limits.max_idle.unwrap_or(self.cfg.max_idle_per_host),
                    opened: 0,
                    reused: 0,
                    closed: ClosedCounts::default(),
                },
            );
        }
        hosts.get_mut(key).expect("inserted above")
    }

    /// A slot is free: hand it to the longest waiter, or shrink the open count.
    fn free_slot(&self, key: &PoolKey, was_connecting: bool) {
        let mut state = self.lock();
        let host = self.host(&mut state.hosts, key);
        if was_connecting {
            host.connecting -= 1;
        }
        host.slot_freed();
    }

    /// Remove the least recently used idle connection of any host.
    fn evict_oldest(&self, state: &mut State) -> Option<Box<Conn>> {
        let (key, _) = state
            .hosts
            .iter()
            .filter_map(|(k, h)| h.idle.front().map(|i| (k, i.conn.info.idle_since)))
            .min_by_key(|(_, since)| *since)?;
        let key = key.clone();
        let host = state.hosts.get_mut(&key)?;
        let idle = host.idle.pop_front()?;
        host.closed.add(CloseReason::PoolFull);
        host.slot_freed();
        state.idle_total -= 1;
        Some(idle.conn)
    }
}
