//! One pool key's connections, as a state machine over their slots.
//!
//! A host has `open` slots, each counted against its connection limit and
//! each in exactly one [`Slot`] state: connecting, active or idle. The counts
//! change only through the named transitions below, and every transition ends
//! in [`Host::check`], so `open == idle + active + connecting` and
//! `open <= max_connections` are asserted after every change in debug builds
//! and tests. All of it runs under the pool lock, and none of it closes a
//! connection: connections leave through out-parameters or return values, to
//! be closed by the caller after the lock is released.

use std::collections::VecDeque;
use std::time::Instant;

use std::sync::mpsc::{SyncSender, TrySendError};

use super::load::Load;
use super::{CloseReason, ClosedCounts, HostStats, Poolable};

/// Where one of a host's connection slots is in its life.
///
/// A [`Lease`](super::Lease) holds a slot in `Connecting` or `Active`; the
/// idle list holds slots in `Idle`; `Closed` is the state before a slot is
/// opened and after it is freed (for a lease: it has handed its slot back or
/// passed it on, and owns nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Reserved for a connection being opened (DNS, TCP, TLS).
    Connecting,
    /// Holding a connection a request is using.
    Active,
    /// Holding a connection that rests in the idle list.
    Idle,
    /// Not open.
    Closed,
}

/// Something the pool hands to a waiter.
pub(super) enum Grant<C> {
    /// An idle connection, with its slot (still `Active`: it goes from one
    /// request to the next without resting).
    Conn(Box<C>),
    /// A slot to open a new connection in, already counted as `Connecting`.
    Slot,
    /// The waiter's token was cancelled.
    Cancelled,
}

/// A request in a host's wait queue.
pub(super) struct Waiter<C> {
    pub id: u64,
    pub tx: SyncSender<Grant<C>>,
}

/// A connection resting in the idle list.
struct IdleConn<C> {
    conn: Box<C>,
    /// Its place in the pool-wide idle order (see `State::idle_order`).
    seq: u64,
    /// When it must be closed, and why.
    expires: Option<(Instant, CloseReason)>,
}

/// One pool key's slots, idle connections, wait queue and counters.
pub(super) struct Host<C> {
    /// Most recently used at the back.
    idle: VecDeque<IdleConn<C>>,
    /// Connecting + active + idle: the slots counted against the limit.
    open: usize,
    active: usize,
    connecting: usize,
    waiters: VecDeque<Waiter<C>>,
    max_connections: Option<usize>,
    max_idle: usize,
    opened: u64,
    reused: u64,
    closed: ClosedCounts,
    /// Idle connections that left the idle list since the pool last looked:
    /// their `seq`s, for the pool to drop from its idle order.
    pub(super) left_idle: Vec<u64>,
    /// The `seq` of a connection just parked, for the pool to add to its idle order.
    pub(super) joined_idle: Option<u64>,
    /// Set while the host is empty and queued to be forgotten: its place in
    /// the pool's queue of empty hosts.
    pub(super) empty_seq: Option<u64>,
    /// Recent waits and latencies, for the saturation gauge.
    pub(super) load: Load,
}

impl<C: Poolable> Host<C> {
    pub(super) fn new(max_connections: Option<usize>, max_idle: usize) -> Host<C> {
        Host {
            idle: VecDeque::new(),
            open: 0,
            active: 0,
            connecting: 0,
            waiters: VecDeque::new(),
            max_connections,
            max_idle,
            opened: 0,
            reused: 0,
            closed: ClosedCounts::default(),
            left_idle: Vec::new(),
            joined_idle: None,
            empty_seq: None,
            load: Load::default(),
        }
    }

    /// The accounting invariants. Called at the end of every transition.
    pub(super) fn check(&self) {
        debug_assert_eq!(
            self.open,
            self.idle.len() + self.active + self.connecting,
            "open != idle ({}) + active ({}) + connecting ({})",
            self.idle.len(),
            self.active,
            self.connecting
        );
        debug_assert!(
            self.max_connections.is_none_or(|max| self.open <= max),
            "{} open over a limit of {:?}",
            self.open,
            self.max_connections
        );
        debug_assert!(
            self.idle.len() <= self.max_idle,
            "{} idle over a limit of {}",
            self.idle.len(),
            self.max_idle
        );
    }

    /// No open slot and nobody waiting: the entry can be forgotten.
    pub(super) fn is_empty(&self) -> bool {
        self.open == 0 && self.waiters.is_empty()
    }

    pub(super) fn idle_len(&self) -> usize {
        self.idle.len()
    }

    /// The pool-wide order number of the least recently used idle connection.
    pub(super) fn oldest_idle_seq(&self) -> Option<u64> {
        self.idle.front().map(|i| i.seq)
    }

    pub(super) fn stats(&self, key: String) -> HostStats {
        HostStats {
            key,
            idle: self.idle.len(),
            active: self.active,
            connecting: self.connecting,
            waiting: self.waiters.len(),
            opened: self.opened,
            reused: self.reused,
            closed: self.closed,
            max_connections: self.max_connections,
            wait_mean: self.load.wait_mean(),
            latency_p95: self.load.p95(),
        }
    }

    /// Lifetime counters: opened, reused, closed.
    pub(super) fn counters(&self) -> (u64, u64, ClosedCounts) {
        (self.opened, self.reused, self.closed)
    }

    /// Move one slot's count. `Idle` has no counter of its own (the idle
    /// list's length is the count), so callers push or pop the list next to
    /// the shift; `Closed` as the source opens a slot and as the target
    /// frees one. Not a transition by itself: transitions call [`Host::check`]
    /// once they are whole.
    fn shift(&mut self, from: Slot, to: Slot) {
        match from {
            Slot::Connecting => self.connecting -= 1,
            Slot::Active => self.active -= 1,
            Slot::Idle => {}
            Slot::Closed => self.open += 1,
        }
        match to {
            Slot::Connecting => self.connecting += 1,
            Slot::Active => self.active += 1,
            Slot::Idle => {}
            Slot::Closed => self.open -= 1,
        }
    }

    /// `from` → `Closed`, with the freed slot going to the longest waiter
    /// still listening (who opens a connection in it: `Connecting`).
    fn free(&mut self, from: Slot) {
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.tx.try_send(Grant::Slot).is_ok() {
                self.shift(from, Slot::Connecting);
                return;
            }
        }
        self.shift(from, Slot::Closed);
    }

    /// `Closed` → `Connecting`: a new slot, if the host is under its limit
    /// and nobody is queued first.
    pub(super) fn try_open_slot(&mut self) -> bool {
        let room = self.waiters.is_empty() && self.max_connections.is_none_or(|m| self.open < m);
        if room {
            self.shift(Slot::Closed, Slot::Connecting);
        }
        self.check();
        room
    }

    /// Whether every slot the host may have is open.
    pub(super) fn at_limit(&self) -> bool {
        self.max_connections.is_some_and(|max| self.open >= max)
    }

    pub(super) fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// `Connecting` → `Active`: the new connection is up.
    pub(super) fn connected(&mut self) {
        self.shift(Slot::Connecting, Slot::Active);
        self.opened += 1;
        self.check();
    }

    /// `Idle` → `Active`: the most recently used idle connection that has
    /// not expired by `now`. Its reuse is counted now, under this lock, so
    /// the common case locks once; [`Host::reuse_failed`] takes it back if
    /// the connection turns out dead. Expired connections met on the way go
    /// `Idle` → `Closed` into `to_close`.
    pub(super) fn reuse_idle(
        &mut self,
        now: Instant,
        to_close: &mut Vec<(Box<C>, CloseReason)>,
    ) -> Option<Box<C>> {
        let mut found = None;
        while let Some(idle) = self.idle.pop_back() {
            self.left_idle.push(idle.seq);
            match idle.expires {
                Some((at, reason)) if at <= now => {
                    self.closed.add(reason);
                    self.free(Slot::Idle);
                    to_close.push((idle.conn, reason));
                }
                _ => {
                    self.shift(Slot::Idle, Slot::Active);
                    self.reused += 1;
                    found = Some(idle.conn);
                    break;
                }
            }
        }
        self.check();
        found
    }

    /// A connection [`Host::reuse_idle`] counted as reused was dead: take
    /// the count back and count the close. Its slot stays `Active` until the
    /// lease that holds it is dropped.
    pub(super) fn reuse_failed(&mut self) {
        self.reused -= 1;
        self.closed.add(CloseReason::ServerClosed);
        self.check();
    }

    /// A connection handed to a waiter passed its peek: count the reuse.
    pub(super) fn count_reuse(&mut self) {
        self.reused += 1;
        self.check();
    }

    /// `Idle` → `Connecting`: close the least recently used idle connection
    /// and keep its slot for a new one (a retry that must not reuse, at the
    /// limit with nobody waiting).
    pub(super) fn trade_oldest_idle(&mut self) -> Option<Box<C>> {
        let idle = self.idle.pop_front()?;
        self.left_idle.push(idle.seq);
        self.closed.add(CloseReason::NotReusable);
        self.shift(Slot::Idle, Slot::Connecting);
        self.check();
        Some(idle.conn)
    }

    /// `Active` → `Connecting`: the connection is closed (by the caller) but
    /// its slot kept, to open a new connection in.
    pub(super) fn reopen(&mut self, reason: CloseReason) {
        self.closed.add(reason);
        self.shift(Slot::Active, Slot::Connecting);
        self.check();
    }

    /// `from` (`Connecting` or `Active`) → `Closed`: a lease's slot is freed,
    /// for the longest waiter if there is one. `reason` counts the close of
    /// the connection it held, when there was one to count.
    pub(super) fn close(&mut self, from: Slot, reason: Option<CloseReason>) {
        debug_assert!(
            matches!(from, Slot::Connecting | Slot::Active),
            "only a lease's slot is closed this way, not {from:?}"
        );
        if let Some(reason) = reason {
            self.closed.add(reason);
        }
        self.free(from);
        self.check();
    }

    /// Join the wait queue (no slot changes state).
    pub(super) fn enqueue(&mut self, waiter: Waiter<C>) {
        self.waiters.push_back(waiter);
        self.check();
    }

    /// Leave the wait queue. False if the waiter was already served (its
    /// grant is in its channel) or gone.
    pub(super) fn leave_queue(&mut self, id: u64) -> bool {
        let position = self.waiters.iter().position(|w| w.id == id);
        if let Some(i) = position {
            self.waiters.remove(i);
        }
        self.check();
        position.is_some()
    }

    /// `Active` → `Active` under another lease: hand a returned connection to
    /// the longest waiter still listening. Gives it back if nobody took it.
    pub(super) fn hand_to_waiter(&mut self, conn: Box<C>) -> Option<Box<C>> {
        let mut conn = conn;
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.tx.try_send(Grant::Conn(conn)) {
                Ok(()) => {
                    self.check();
                    return None;
                }
                Err(TrySendError::Full(grant) | TrySendError::Disconnected(grant)) => match grant {
                    Grant::Conn(c) => conn = c,
                    _ => unreachable!("a connection grant comes back as a connection grant"),
                },
            }
        }
        self.check();
        Some(conn)
    }

    /// `Active` → `Idle`, if the host's idle list has room; the connection
    /// comes back otherwise, still `Active`, for the caller to close.
    pub(super) fn park(
        &mut self,
        conn: Box<C>,
        expires: Option<(Instant, CloseReason)>,
        seq: u64,
    ) -> Result<(), Box<C>> {
        if self.idle.len() >= self.max_idle {
            self.check();
            return Err(conn);
        }
        self.joined_idle = Some(seq);
        self.idle.push_back(IdleConn { conn, seq, expires });
        self.shift(Slot::Active, Slot::Idle);
        self.check();
        Ok(())
    }

    /// `Idle` → `Closed`: the least recently used idle connection, for a
    /// limit over all hosts.
    pub(super) fn evict_oldest(&mut self, reason: CloseReason) -> Option<Box<C>> {
        let idle = self.idle.pop_front()?;
        self.left_idle.push(idle.seq);
        self.closed.add(reason);
        self.free(Slot::Idle);
        self.check();
        Some(idle.conn)
    }

    /// `Idle` → `Closed` for every idle connection expired by `now`, pushed
    /// to `out`. Returns when the next of the rest expires.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        out: &mut Vec<(Box<C>, CloseReason)>,
    ) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut keep = VecDeque::with_capacity(self.idle.len());
        for idle in std::mem::take(&mut self.idle) {
            match idle.expires {
                Some((at, reason)) if at <= now => {
                    self.left_idle.push(idle.seq);
                    self.closed.add(reason);
                    self.free(Slot::Idle);
                    out.push((idle.conn, reason));
                }
                Some((at, _)) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    keep.push_back(idle);
                }
                None => keep.push_back(idle),
            }
        }
        self.idle = keep;
        self.check();
        next
    }

    /// `Idle` → `Closed` for every idle connection, into `out`. The slots are
    /// not offered to waiters: the agent is gone.
    pub(super) fn close_all_idle(&mut self, reason: CloseReason, out: &mut Vec<Box<C>>) {
        for idle in std::mem::take(&mut self.idle) {
            self.left_idle.push(idle.seq);
            self.closed.add(reason);
            self.shift(Slot::Idle, Slot::Closed);
            out.push(idle.conn);
        }
        self.check();
    }
}
