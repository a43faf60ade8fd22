//! The pool's accounting, driven with a fake connection: no sockets, and the
//! `debug_assert!`s of every transition run on every step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::mpsc::Receiver;

use super::*;
use crate::error::{ErrorKind, Phase};

/// What happened to every fake connection of one test.
#[derive(Default)]
struct Counters {
    next_id: AtomicU64,
    peeks: AtomicUsize,
    /// Ids passed to `close`, in order.
    closed: Mutex<Vec<u64>>,
    /// Fakes dropped, closed or not.
    gone: AtomicUsize,
}

impl Counters {
    fn closed(&self) -> Vec<u64> {
        self.closed.lock().unwrap().clone()
    }

    fn created(&self) -> usize {
        self.next_id.load(Ordering::SeqCst) as usize
    }
}

/// A connection that is only flags.
struct Fake {
    id: u64,
    created: Instant,
    /// What `is_alive` answers; the test flips it to play a server's close.
    alive: Arc<AtomicBool>,
    reusable: bool,
    cancelled: bool,
    keep_alive: Option<Duration>,
    counters: Arc<Counters>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.counters.gone.fetch_add(1, Ordering::SeqCst);
    }
}

impl Poolable for Fake {
    fn id(&self) -> u64 {
        self.id
    }

    fn created(&self) -> Instant {
        self.created
    }

    fn server_keep_alive(&self) -> Option<Duration> {
        self.keep_alive
    }

    fn detach_cancel(&mut self) -> bool {
        self.cancelled
    }

    fn make_idle(&mut self, _now: Instant) -> bool {
        self.reusable
    }

    fn is_alive(&mut self) -> bool {
        self.counters.peeks.fetch_add(1, Ordering::SeqCst);
        self.alive.load(Ordering::SeqCst)
    }

    fn close(self: Box<Self>) {
        self.counters.closed.lock().unwrap().push(self.id);
    }
}

/// Generous limits and no timers, for each test to tighten.
fn config() -> PoolConfig {
    PoolConfig {
        max_idle: 100,
        max_idle_per_host: 10,
        max_connections_per_host: None,
        idle_timeout: None,
        max_lifetime: None,
        host_limits: HashMap::new(),
    }
}

fn key(host: &str) -> PoolKey {
    PoolKey {
        scheme: Scheme::Http,
        host: host.into(),
        port: 80,
        proxy: None,
        tls: None,
    }
}

/// A deadline that has already passed: a checkout that would wait fails at once.
fn no_wait() -> Deadline {
    Deadline::At(Instant::now())
}

struct Bench {
    pool: Pool<Fake>,
    counters: Arc<Counters>,
}

impl Bench {
    fn new(cfg: PoolConfig) -> Bench {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let registry = Arc::new(crate::inflight::Registry::new(None, metrics));
        Bench {
            pool: Pool::new(cfg, registry),
            counters: Arc::default(),
        }
    }

    fn fake(&self) -> Box<Fake> {
        Box::new(Fake {
            id: self.counters.next_id.fetch_add(1, Ordering::SeqCst),
            created: Instant::now(),
            alive: Arc::new(AtomicBool::new(true)),
            reusable: true,
            cancelled: false,
            keep_alive: None,
            counters: Arc::clone(&self.counters),
        })
    }

    /// Check out a new slot and connect in it.
    fn open(&self, key: &PoolKey) -> (Lease<Fake>, Box<Fake>) {
        let checkout = self.pool.checkout(key, false, no_wait(), None).unwrap();
        assert!(checkout.conn.is_none(), "expected a new slot, got a reuse");
        let mut lease = checkout.lease;
        lease.connected();
        (lease, self.fake())
    }

    fn stats(&self, key: &PoolKey) -> HostStats {
        let key = key.to_string();
        self.pool
            .stats()
            .host(&key)
            .cloned()
            .unwrap_or_else(|| Host::<Fake>::new(None, 0).stats(key))
    }

    /// `[idle, active, connecting, waiting]`.
    fn counts(&self, key: &PoolKey) -> [usize; 4] {
        let s = self.stats(key);
        assert_eq!(s.open(), s.idle + s.active + s.connecting);
        [s.idle, s.active, s.connecting, s.waiting]
    }

    /// Join the wait queue by hand, as a waiter that has not looked at its
    /// channel yet.
    fn queue(&self, key: &PoolKey) -> (u64, Receiver<Grant<Fake>>) {
        let shared = &self.pool.shared;
        let mut state = shared.lock();
        let id = state.next_waiter;
        state.next_waiter += 1;
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        shared.with_host(&mut state, key, |host| host.enqueue(Waiter { id, tx }));
        (id, rx)
    }

    fn give_up(&self, key: &PoolKey, id: u64, rx: &Receiver<Grant<Fake>>) {
        let err = Error::new(ErrorKind::Io, "gave up");
        self.pool.give_up(key, id, rx, Instant::now(), err);
    }
}

/// Poll until `cond` holds, for what another thread does.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_new_slot_connects_and_goes_idle_on_release() {
    let bench = Bench::new(config());
    let k = key("a");
    let checkout = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    assert!(checkout.conn.is_none());
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    assert_eq!(bench.stats(&k).opened, 0);

    let mut lease = checkout.lease;
    lease.connected();
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
    assert_eq!(bench.stats(&k).opened, 1);

    bench.pool.release(lease, bench.fake());
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    assert!(bench.counters.closed().is_empty());
}

#[test]
fn an_idle_connection_is_peeked_then_reused() {
    let bench = Bench::new(config());
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let id = conn.id;
    bench.pool.release(lease, conn);

    let checkout = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    assert_eq!(checkout.conn.as_ref().map(|c| c.id), Some(id));
    assert_eq!(bench.counters.peeks.load(Ordering::SeqCst), 1);
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
    let stats = bench.stats(&k);
    assert_eq!((stats.opened, stats.reused), (1, 1));
}

#[test]
fn a_dead_idle_connection_is_closed_at_checkout_and_not_counted_as_reused() {
    let bench = Bench::new(config());
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let (id, alive) = (conn.id, Arc::clone(&conn.alive));
    bench.pool.release(lease, conn);
    alive.store(false, Ordering::SeqCst);

    let checkout = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    assert!(
        checkout.conn.is_none(),
        "a dead connection must not be reused"
    );
    assert_eq!(bench.counters.closed(), [id]);
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    let stats = bench.stats(&k);
    assert_eq!(stats.reused, 0);
    assert_eq!(stats.closed.server_closed, 1);
    assert_eq!(stats.closed.total(), 1);
}

#[test]
fn waiters_at_the_limit_are_served_in_fifo_order() {
    let bench = Arc::new(Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    }));
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let first_id = conn.id;

    let (order_tx, order_rx) = crossbeam_channel::unbounded();
    let mut threads = Vec::new();
    for n in 0..3 {
        let (shared, key, order_tx) = (Arc::clone(&bench), k.clone(), order_tx.clone());
        threads.push(std::thread::spawn(move || {
            let checkout = shared
                .pool
                .checkout(&key, false, Deadline::Never, None)
                .unwrap();
            let conn = checkout.conn.expect("a connection handed over");
            order_tx.send((n, conn.id)).unwrap();
            shared.pool.release(checkout.lease, conn);
        }));
        // Queue them one at a time, so the queue order is known.
        eventually("the waiter is queued", || bench.stats(&k).waiting == n + 1);
    }
    assert_eq!(bench.counts(&k), [0, 1, 0, 3]);

    bench.pool.release(lease, conn);
    for thread in threads {
        thread.join().unwrap();
    }
    let order: Vec<(usize, u64)> = order_rx.try_iter().collect();
    assert_eq!(order, [(0, first_id), (1, first_id), (2, first_id)]);
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    let stats = bench.stats(&k);
    assert_eq!((stats.opened, stats.reused), (1, 3));
}

#[test]
fn a_freed_slot_goes_to_the_longest_waiter() {
    let bench = Arc::new(Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    }));
    let k = key("a");
    let connecting = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    let waiter = {
        let (bench, k) = (Arc::clone(&bench), k.clone());
        std::thread::spawn(move || {
            let checkout = bench
                .pool
                .checkout(&k, false, Deadline::Never, None)
                .unwrap();
            assert!(checkout.conn.is_none(), "a slot, not a connection");
            checkout.lease
        })
    };
    eventually("the waiter is queued", || bench.stats(&k).waiting == 1);

    // The connect failed: the slot passes to the waiter, still connecting.
    drop(connecting);
    let mut lease = waiter.join().unwrap();
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    lease.connected();
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
}

#[test]
fn a_waiter_that_gives_up_passes_on_a_connection_it_was_granted() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let id = conn.id;
    let (first, first_rx) = bench.queue(&k);
    let (_, second_rx) = bench.queue(&k);

    bench.pool.release(lease, conn);
    assert_eq!(bench.counts(&k), [0, 1, 0, 1]);

    // The first waiter timed out just as the connection reached it.
    bench.give_up(&k, first, &first_rx);
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
    let Ok(Grant::Conn(conn)) = second_rx.try_recv() else {
        panic!("the second waiter should have the connection");
    };
    assert_eq!(conn.id, id);
    // The second waiter uses it and gives it back as usual.
    bench
        .pool
        .release(bench.pool.lease(&k, Slot::Active, Instant::now()), conn);
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
}

#[test]
fn a_connection_passed_on_by_the_last_waiter_goes_idle() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let (waiter, rx) = bench.queue(&k);
    bench.pool.release(lease, conn);
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);

    bench.give_up(&k, waiter, &rx);
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    assert!(bench.counters.closed().is_empty());
}

#[test]
fn a_waiter_that_gives_up_passes_on_a_slot_it_was_granted() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let connecting = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    let (first, first_rx) = bench.queue(&k);
    let (second, second_rx) = bench.queue(&k);
    assert_eq!(bench.counts(&k), [0, 0, 1, 2]);

    drop(connecting);
    assert_eq!(bench.counts(&k), [0, 0, 1, 1]);
    bench.give_up(&k, first, &first_rx);
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    // The second waiter gives up too: nobody is left, and the slot closes.
    bench.give_up(&k, second, &second_rx);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
}

#[test]
fn a_waiter_still_queued_leaves_without_a_trace() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let _held = bench.open(&k);
    let (waiter, rx) = bench.queue(&k);
    bench.give_up(&k, waiter, &rx);
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
    assert!(rx.try_recv().is_err());
}

#[test]
fn waiting_ends_at_the_deadline_or_on_cancel() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let _held = bench.open(&k);

    let started = Instant::now();
    let deadline = Deadline::At(started + Duration::from_millis(50));
    let err = bench
        .pool
        .checkout(&k, false, deadline, None)
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);

    let token = CancelToken::new();
    token.cancel();
    let err = bench
        .pool
        .checkout(&k, false, Deadline::Never, Some(&token))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
}

#[test]
fn max_idle_per_host_closes_the_connection_that_does_not_fit() {
    let bench = Bench::new(PoolConfig {
        max_idle_per_host: 1,
        ..config()
    });
    let k = key("a");
    let (a_lease, a) = bench.open(&k);
    let (b_lease, b) = bench.open(&k);
    let b_id = b.id;
    bench.pool.release(a_lease, a);
    bench.pool.release(b_lease, b);
    assert_eq!(bench.counters.closed(), [b_id]);
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    assert_eq!(bench.stats(&k).closed.pool_full, 1);
}

#[test]
fn max_idle_evicts_the_least_recently_used_connection_of_any_host() {
    let bench = Bench::new(PoolConfig {
        max_idle: 2,
        ..config()
    });
    let (h1, h2) = (key("one"), key("two"));
    let (a_lease, a) = bench.open(&h1);
    let (b_lease, b) = bench.open(&h2);
    let (c_lease, c) = bench.open(&h1);
    let a_id = a.id;
    // Apart in time, so "least recently used" has one answer.
    bench.pool.release(a_lease, a);
    std::thread::sleep(Duration::from_millis(2));
    bench.pool.release(b_lease, b);
    std::thread::sleep(Duration::from_millis(2));
    bench.pool.release(c_lease, c);

    assert_eq!(bench.counters.closed(), [a_id]);
    assert_eq!(bench.counts(&h1), [1, 0, 0, 0]);
    assert_eq!(bench.counts(&h2), [1, 0, 0, 0]);
    assert_eq!(bench.stats(&h1).closed.pool_full, 1);
}

#[test]
fn an_idle_connection_expires_after_the_idle_timeout() {
    let bench = Bench::new(PoolConfig {
        idle_timeout: Some(Duration::ZERO),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let id = conn.id;
    bench.pool.release(lease, conn);

    // Expired as soon as it is parked: the checkout or the reaper closes it,
    // whichever comes first; either way it is not reused.
    let checkout = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    assert!(checkout.conn.is_none());
    eventually("the connection is closed", || {
        bench.counters.closed() == [id]
    });
    assert_eq!(bench.stats(&k).closed.idle_timeout, 1);
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    bench.pool.shut_down();
}

#[test]
fn the_reaper_closes_expired_idle_connections_on_its_own() {
    let bench = Bench::new(PoolConfig {
        idle_timeout: Some(Duration::from_millis(20)),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    bench.pool.release(lease, conn);
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    eventually("the reaper closes it", || {
        bench.counters.closed().len() == 1
    });
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
    assert_eq!(bench.stats(&k).closed.idle_timeout, 1);
    bench.pool.shut_down();
}

#[test]
fn a_server_keep_alive_timeout_caps_the_idle_life_a_little_under_it() {
    let bench = Bench::new(PoolConfig {
        idle_timeout: Some(Duration::from_secs(90)),
        ..config()
    });
    let now = Instant::now();
    let mut conn = bench.fake();
    conn.keep_alive = Some(Duration::from_secs(4));
    let expected = (now + Duration::from_secs(3), CloseReason::IdleTimeout);
    assert_eq!(bench.pool.expiry(&conn, now), Some(expected));
    conn.keep_alive = Some(Duration::from_secs(2));
    let expected = (now + Duration::from_millis(1500), CloseReason::IdleTimeout);
    assert_eq!(bench.pool.expiry(&conn, now), Some(expected));
    conn.keep_alive = Some(Duration::from_secs(600));
    let expected = (now + Duration::from_secs(90), CloseReason::IdleTimeout);
    assert_eq!(bench.pool.expiry(&conn, now), Some(expected));
}

#[test]
fn max_lifetime_closes_at_release_and_while_idle() {
    let bench = Bench::new(PoolConfig {
        max_lifetime: Some(Duration::ZERO),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    bench.pool.release(lease, conn);
    assert_eq!(bench.counters.closed().len(), 1);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
    assert_eq!(bench.stats(&k).closed.lifetime, 1);

    let bench = Bench::new(PoolConfig {
        max_lifetime: Some(Duration::from_millis(30)),
        ..config()
    });
    let (lease, conn) = bench.open(&k);
    bench.pool.release(lease, conn);
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    std::thread::sleep(Duration::from_millis(40));
    let checkout = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    assert!(checkout.conn.is_none(), "past its lifetime: not reused");
    assert_eq!(bench.stats(&k).closed.lifetime, 1);
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    bench.pool.shut_down();
}

#[test]
fn a_lease_dropped_without_release_frees_its_slot() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    drop(lease);
    drop(conn);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);

    let connecting = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    drop(connecting);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
    // The one slot is free again: no wait.
    assert!(bench.pool.checkout(&k, false, no_wait(), None).is_ok());
}

#[test]
fn a_fresh_checkout_at_the_limit_trades_an_idle_connection_for_a_new_one() {
    let bench = Bench::new(PoolConfig {
        max_connections_per_host: Some(1),
        ..config()
    });
    let k = key("a");
    let (lease, conn) = bench.open(&k);
    let id = conn.id;
    bench.pool.release(lease, conn);

    let checkout = bench.pool.checkout(&k, true, no_wait(), None).unwrap();
    assert!(checkout.conn.is_none());
    assert_eq!(bench.counters.closed(), [id]);
    assert_eq!(bench.counts(&k), [0, 0, 1, 0]);
    assert_eq!(bench.stats(&k).closed.not_reusable, 1);
}

#[test]
fn a_connection_that_cannot_rest_is_closed_at_release() {
    let bench = Bench::new(config());
    let k = key("a");
    let (lease, mut conn) = bench.open(&k);
    conn.reusable = false;
    bench.pool.release(lease, conn);
    let (lease, mut conn) = bench.open(&k);
    conn.cancelled = true;
    bench.pool.release(lease, conn);
    let (lease, conn) = bench.open(&k);
    bench.pool.discard(lease, conn, CloseReason::Error);

    assert_eq!(bench.counters.closed().len(), 3);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
    let closed = bench.stats(&k).closed;
    assert_eq!(
        (closed.not_reusable, closed.cancelled, closed.error),
        (1, 1, 1)
    );
}

#[test]
fn releasing_a_lease_never_marked_connected_counts_the_connection_as_opened() {
    let bench = Bench::new(config());
    let k = key("a");
    let checkout = bench.pool.checkout(&k, false, no_wait(), None).unwrap();
    bench.pool.release(checkout.lease, bench.fake());
    assert_eq!(bench.counts(&k), [1, 0, 0, 0]);
    assert_eq!(bench.stats(&k).opened, 1);
}

#[test]
fn after_shut_down_idle_connections_are_closed_and_checkouts_refused() {
    let bench = Bench::new(config());
    let k = key("a");
    let (a_lease, a) = bench.open(&k);
    let (b_lease, b) = bench.open(&k);
    bench.pool.release(a_lease, a);
    bench.pool.shut_down();
    assert_eq!(bench.counters.closed().len(), 1);
    assert_eq!(bench.counts(&k), [0, 1, 0, 0]);
    assert!(bench.pool.checkout(&k, false, no_wait(), None).is_err());

    bench.pool.release(b_lease, b);
    assert_eq!(bench.counters.closed().len(), 2);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
    assert_eq!(bench.stats(&k).closed.agent_dropped, 2);
}

#[test]
fn host_limits_override_the_agent_and_zero_connections_means_one() {
    let limits = HostLimits::new().max_connections(0).max_idle(0);
    assert_eq!(limits.max_connections, Some(0));
    assert_eq!(limits.max_idle, Some(0));
    assert_eq!(HostLimits::new(), HostLimits::default());

    let mut cfg = PoolConfig {
        max_connections_per_host: Some(5),
        ..config()
    };
    cfg.host_limits.insert("limited:80".into(), limits);
    let bench = Bench::new(cfg);
    let k = key("limited");
    let (lease, conn) = bench.open(&k);
    let err = bench
        .pool
        .checkout(&k, false, no_wait(), None)
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait));
    // max_idle 0: nothing rests.
    bench.pool.release(lease, conn);
    assert_eq!(bench.counts(&k), [0, 0, 0, 0]);
    assert_eq!(bench.stats(&k).closed.pool_full, 1);
}

/// xorshift64: a fixed, dependency-free sequence for the random test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A lease the random test holds, with its connection once it has one.
struct Held {
    host: usize,
    lease: Lease<Fake>,
    conn: Option<Box<Fake>>,
}

#[test]
fn random_operations_keep_the_counts_whole() {
    const HOSTS: [&str; 3] = ["h0", "h1", "h2"];
    const MAX_CONNECTIONS: [usize; 3] = [3, 3, 1];
    const MAX_IDLE_PER_HOST: usize = 2;
    const MAX_IDLE: usize = 4;

    let mut cfg = PoolConfig {
        max_idle: MAX_IDLE,
        max_idle_per_host: MAX_IDLE_PER_HOST,
        max_connections_per_host: Some(MAX_CONNECTIONS[0]),
        ..config()
    };
    cfg.host_limits.insert(
        "h2:80".into(),
        HostLimits::new().max_connections(MAX_CONNECTIONS[2]),
    );
    let bench = Bench::new(cfg);
    let keys: Vec<PoolKey> = HOSTS.iter().map(|h| key(h)).collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut held: Vec<Held> = Vec::new();
    let mut flags: Vec<Arc<AtomicBool>> = Vec::new();
    let mut opened = [0u64; 3];
    let mut reused = [0u64; 3];

    for step in 0..10_000 {
        let op = rng.below(100);
        match op {
            // Check out, now or never: a checkout that would wait fails.
            0..=24 => {
                let h = rng.below(HOSTS.len());
                let fresh = rng.below(8) == 0;
                match bench.pool.checkout(&keys[h], fresh, no_wait(), None) {
                    Ok(checkout) => {
                        if checkout.conn.is_some() {
                            reused[h] += 1;
                        }
                        held.push(Held {
                            host: h,
                            lease: checkout.lease,
                            conn: checkout.conn,
                        });
                    }
                    Err(err) => {
                        assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait));
                        let stats = bench.stats(&keys[h]);
                        assert_eq!(stats.open(), MAX_CONNECTIONS[h], "step {step}");
                        assert_eq!(stats.idle, 0, "step {step}: waited with idle connections");
                    }
                }
            }
            // A connect succeeds, or fails.
            25..=49 => {
                let connecting: Vec<usize> = (0..held.len())
                    .filter(|&i| held[i].conn.is_none())
                    .collect();
                if !connecting.is_empty() {
                    let i = connecting[rng.below(connecting.len())];
                    if op < 45 {
                        let conn = bench.fake();
                        flags.push(Arc::clone(&conn.alive));
                        held[i].lease.connected();
                        held[i].conn = Some(conn);
                        opened[held[i].host] += 1;
                    } else {
                        drop(held.swap_remove(i));
                    }
                }
            }
            // A request ends: released (sometimes unfit to rest), discarded,
            // or dropped with no word to the pool.
            50..=84 => {
                let active: Vec<usize> = (0..held.len())
                    .filter(|&i| held[i].conn.is_some())
                    .collect();
                if !active.is_empty() {
                    let i = active[rng.below(active.len())];
                    let Held { lease, conn, .. } = held.swap_remove(i);
                    let mut conn = conn.expect("active");
                    match op {
                        50..=74 => {
                            conn.reusable = rng.below(10) != 0;
                            conn.cancelled = rng.below(20) == 0;
                            bench.pool.release(lease, conn);
                        }
                        75..=81 => bench.pool.discard(lease, conn, CloseReason::Error),
                        _ => drop((lease, conn)),
                    }
                }
            }
            // The server closes a connection, wherever it is.
            _ => {
                // Only connections that still exist (the fake holds the other count).
                flags.retain(|alive| Arc::strong_count(alive) > 1);
                if !flags.is_empty() && rng.below(3) == 0 {
                    flags[rng.below(flags.len())].store(false, Ordering::SeqCst);
                }
            }
        }

        let mut idle_total = 0;
        let mut closed_total = 0;
        for (h, k) in keys.iter().enumerate() {
            let stats = bench.stats(k);
            let connecting = held
                .iter()
                .filter(|x| x.host == h && x.conn.is_none())
                .count();
            let active = held
                .iter()
                .filter(|x| x.host == h && x.conn.is_some())
                .count();
            assert_eq!(stats.connecting, connecting, "step {step}, {k}");
            assert_eq!(stats.active, active, "step {step}, {k}");
            assert_eq!(stats.waiting, 0, "step {step}, {k}");
            assert_eq!(
                stats.open(),
                stats.idle + stats.active + stats.connecting,
                "step {step}, {k}"
            );
            assert!(stats.open() <= MAX_CONNECTIONS[h], "step {step}, {k}");
            assert!(stats.idle <= MAX_IDLE_PER_HOST, "step {step}, {k}");
            assert_eq!(
                (stats.opened, stats.reused),
                (opened[h], reused[h]),
                "step {step}, {k}"
            );
            idle_total += stats.idle;
            closed_total += stats.closed.total();
        }
        assert!(idle_total <= MAX_IDLE, "step {step}");
        // Every connection still in existence is idle or in a request's hands.
        let alive = bench.counters.created() - bench.counters.gone.load(Ordering::SeqCst);
        let in_hand = held.iter().filter(|x| x.conn.is_some()).count();
        assert_eq!(alive, idle_total + in_hand, "step {step}");
        // And every close the pool made is counted under a reason.
        assert_eq!(
            closed_total,
            bench.counters.closed().len() as u64,
            "step {step}"
        );
    }

    drop(held);
    for k in &keys {
        let stats = bench.stats(k);
        assert_eq!(stats.open(), stats.idle, "{k}");
    }
    bench.pool.shut_down();
    assert_eq!(
        bench.counters.gone.load(Ordering::SeqCst),
        bench.counters.created()
    );
    assert!(keys.iter().all(|k| bench.stats(k).open() == 0));
}

// ---------------------------------------------------------------------------
// Many hosts: bounded state, eviction order, flat cost

#[test]
fn empty_hosts_beyond_the_keep_limit_are_forgotten_with_their_counters_kept() {
    let bench = Bench::new(config());
    let hosts = KEEP_EMPTY_HOSTS + 500;
    for i in 0..hosts {
        let (lease, conn) = bench.open(&key(&format!("h{i}")));
        bench.pool.discard(lease, conn, CloseReason::Error);
    }
    let stats = bench.pool.stats();
    assert_eq!(stats.hosts().len(), KEEP_EMPTY_HOSTS);
    assert_eq!(stats.expired.hosts, 500);
    assert_eq!(stats.opened(), hosts as u64);
    assert_eq!(stats.closed().get(CloseReason::Error), hosts as u64);
    // The newest empty hosts are the ones kept.
    assert!(stats
        .host(&key(&format!("h{}", hosts - 1)).to_string())
        .is_some());
    assert!(stats.host(&key("h0").to_string()).is_none());
}

#[test]
fn a_host_with_an_idle_connection_or_a_checkout_is_never_forgotten() {
    let bench = Bench::new(config());
    let (lease, conn) = bench.open(&key("busy"));
    let (idle_lease, idle_conn) = bench.open(&key("idle"));
    bench.pool.release(idle_lease, idle_conn);
    for i in 0..(KEEP_EMPTY_HOSTS * 3) {
        let (l, c) = bench.open(&key(&format!("h{i}")));
        bench.pool.discard(l, c, CloseReason::Error);
    }
    assert_eq!(bench.counts(&key("busy")), [0, 1, 0, 0]);
    assert_eq!(bench.counts(&key("idle")), [1, 0, 0, 0]);
    bench.pool.release(lease, conn);
    let checkout = bench
        .pool
        .checkout(&key("idle"), false, no_wait(), None)
        .unwrap();
    assert!(
        checkout.conn.is_some(),
        "the idle connection is still there"
    );
}

#[test]
fn idle_connections_beyond_max_idle_are_evicted_oldest_first_across_hosts() {
    let bench = Bench::new(PoolConfig {
        max_idle: 3,
        ..config()
    });
    let mut ids = Vec::new();
    for host in ["a", "b", "c", "d", "e"] {
        let (lease, conn) = bench.open(&key(host));
        ids.push(conn.id());
        bench.pool.release(lease, conn);
    }
    // a, b, c fill the pool; d evicts a, e evicts b.
    assert_eq!(bench.counters.closed(), vec![ids[0], ids[1]]);
    assert_eq!(bench.counts(&key("a")), [0, 0, 0, 0]);
    assert_eq!(bench.counts(&key("c")), [1, 0, 0, 0]);
    // A reused connection goes to the back of the order: the next eviction
    // takes d, not c.
    let checkout = bench
        .pool
        .checkout(&key("c"), false, no_wait(), None)
        .unwrap();
    bench.pool.release(checkout.lease, checkout.conn.unwrap());
    let (lease, conn) = bench.open(&key("f"));
    bench.pool.release(lease, conn);
    assert_eq!(bench.counters.closed(), vec![ids[0], ids[1], ids[3]]);
    assert_eq!(bench.counts(&key("c")), [1, 0, 0, 0]);
    assert_eq!(bench.pool.stats().idle(), 3);
}

/// Time per checkout + release over `hosts` distinct keys, with the pool
/// holding at most `max_idle` idle connections; then one `stats()` call and
/// one reaper pass.
fn cost_per_request(hosts: usize, rounds: usize) -> (Duration, Duration, Duration) {
    let bench = Bench::new(PoolConfig {
        max_idle: 100,
        idle_timeout: Some(Duration::from_secs(60)),
        ..config()
    });
    let keys: Vec<PoolKey> = (0..hosts).map(|i| key(&format!("h{i}"))).collect();
    let started = Instant::now();
    let mut n = 0u32;
    for _ in 0..rounds {
        for k in &keys {
            let checkout = bench.pool.checkout(k, false, no_wait(), None).unwrap();
            let mut lease = checkout.lease;
            let conn = checkout.conn.unwrap_or_else(|| {
                lease.connected();
                bench.fake()
            });
            bench.pool.release(lease, conn);
            n += 1;
        }
    }
    let per_request = started.elapsed() / n;
    let started = Instant::now();
    let stats = bench.pool.stats();
    let stats_cost = started.elapsed();
    assert!(stats.hosts().len() <= 100 + KEEP_EMPTY_HOSTS);
    assert_eq!(stats.idle(), hosts.min(100));
    let started = Instant::now();
    let next = super::reaper::Reap::reap(&*bench.pool.shared);
    let reap_cost = started.elapsed();
    assert!(next.is_some(), "idle connections are left to expire");
    (per_request, stats_cost, reap_cost)
}

/// Bounded state at 10, 1,000 and 10,000 hosts (asserted inside
/// `cost_per_request`). The costs are printed for the record, never asserted:
/// timing belongs in benchmarks, not in tests.
#[test]
fn pool_state_stays_bounded_from_ten_to_ten_thousand_hosts() {
    // Warm the allocator and caches first.
    cost_per_request(100, 10);
    let (at_10, stats_10, reap_10) = cost_per_request(10, 2000);
    let (at_1k, stats_1k, reap_1k) = cost_per_request(1_000, 20);
    let (at_10k, stats_10k, reap_10k) = cost_per_request(10_000, 2);
    eprintln!(
        "pool checkout+release per request: 10 hosts {at_10:?}, 1,000 hosts {at_1k:?}, \
         10,000 hosts {at_10k:?}; stats(): {stats_10:?}, {stats_1k:?}, {stats_10k:?}; \
         one reaper pass: {reap_10:?}, {reap_1k:?}, {reap_10k:?}"
    );
}
