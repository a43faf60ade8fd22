//! Many hosts through one agent: per-host state (pool entries, rate-limit
//! buckets, metric series) stays bounded, idle connections beyond `max_idle`
//! are evicted oldest first, and the Prometheus text stays small.
//!
//! Host names are mapped to 127.0.0.1 by a test resolver: many distinct pool
//! keys, one address. The live heap is measured with a counting allocator, so
//! the tests of this file run one at a time.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use windlass::{ErrorKind, RateLimit, Resolver};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the
// counter is only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: the heap counter is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn live_heap() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Every name is 127.0.0.1.
struct AllLocal;

impl Resolver for AllLocal {
    fn resolve(&self, _host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }
}

/// The resident set, from /proc (0 where there is none).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Distinct hosts for the refused-hosts test; `WINDLASS_MANY_HOSTS` raises it
/// (200,000 for the figures in the README).
fn refused_host_count() -> usize {
    std::env::var("WINDLASS_MANY_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn refused_hosts_leave_bounded_pool_buckets_and_metrics_with_a_flat_heap() {
    let _one = serial();
    let port = common::refused_addr().port();
    let agent = common::builder()
        .resolver(AllLocal)
        .rate_limit(RateLimit::per_second(1e9).burst(10))
        .build()
        .unwrap();
    let hosts = refused_host_count();
    let mut heap_at_half = 0;
    let mut rss_at_half = 0;
    for i in 0..hosts {
        if i == hosts / 2 {
            heap_at_half = live_heap();
            rss_at_half = rss_kib();
        }
        let err = agent
            .get(format!("http://h{i}.test:{port}/"))
            .call()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    }
    let heap_at_end = live_heap();
    let stats = agent.pool_stats();
    assert!(
        stats.hosts().len() <= 256,
        "{} entries",
        stats.hosts().len()
    );
    assert_eq!(
        stats.expired.hosts as usize + stats.hosts().len(),
        hosts,
        "every host is either kept or counted as expired"
    );
    let text = agent.metrics().to_prometheus();
    // 100 hosts and `other`; each host's series take under 2 KiB.
    assert!(text.len() < 250_000, "{} bytes of metrics", text.len());
    assert!(text.contains("windlass_pool_idle{host=\"other\"} 0"));
    assert_eq!(text.matches("windlass_pool_idle{").count(), 101);
    let growth = heap_at_end - heap_at_half;
    eprintln!(
        "{hosts} refused hosts: live heap {heap_at_half} B at half, {heap_at_end} B at end \
         ({growth:+} B); RSS {rss_at_half} KiB at half, {} KiB at end; {} pool entries, \
         {} B of Prometheus text",
        rss_kib(),
        stats.hosts().len(),
        text.len()
    );
    // Flat: the DNS cache of the agent (bounded) and the kept entries may
    // churn, but nothing grows with the number of hosts.
    assert!(
        growth < 1_000_000,
        "the heap grew {growth} B over the second half"
    );
}

#[test]
fn thousands_of_keys_to_one_server_keep_max_idle_and_evict_the_oldest() {
    let _one = serial();
    let server = windlass_loopback::Server::start(Default::default()).unwrap();
    let port = server.addr().port();
    let agent = common::builder()
        .resolver(AllLocal)
        .max_idle(50)
        .max_connections_per_host(2)
        .build()
        .unwrap();
    let hosts = 3_000;
    for i in 0..hosts {
        let body = agent
            .get(format!("http://h{i}.test:{port}/"))
            .call()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(body.len(), 128);
    }
    let stats = agent.pool_stats();
    assert_eq!(stats.idle(), 50);
    // The idle connections are those of the last 50 hosts used.
    for i in hosts - 50..hosts {
        let key = format!("http://h{i}.test:{port}");
        assert_eq!(stats.host(&key).map(|h| h.idle), Some(1), "{key}");
    }
    assert!(stats.hosts().len() <= 50 + 256, "{}", stats.hosts().len());
    assert_eq!(stats.opened(), hosts as u64);
    assert_eq!(
        stats.closed().get(windlass::CloseReason::PoolFull),
        (hosts - 50) as u64
    );
    // Metrics: 100 hosts of their own and `other`, and the saturation gauge
    // (every host has a limit) for each.
    let text = agent.metrics().to_prometheus();
    assert_eq!(text.matches("windlass_pool_saturation_ratio{").count(), 101);
    let opened: u64 = text
        .lines()
        .filter(|l| l.starts_with("windlass_connections_opened_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(opened, hosts as u64, "the series sum to the agent's total");
}

#[test]
fn the_series_cap_is_configurable() {
    let _one = serial();
    let server = windlass_loopback::Server::start(Default::default()).unwrap();
    let port = server.addr().port();
    let agent = common::builder()
        .resolver(AllLocal)
        .metrics_max_hosts(3)
        .build()
        .unwrap();
    for i in 0..10 {
        agent
            .get(format!("http://h{i}.test:{port}/"))
            .call()
            .unwrap()
            .bytes()
            .unwrap();
    }
    let snapshot = agent.metrics();
    let keys: Vec<&str> = snapshot.pool().hosts().iter().map(|h| h.key()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(keys[3], "other");
    assert_eq!(snapshot.pool().hosts()[3].idle, 7);
    assert_eq!(snapshot.pool().opened(), 10);
    // pool_stats() itself is not capped.
    assert_eq!(agent.pool_stats().hosts().len(), 10);
    drop(server);
}
