//! The process-wide worker threads: DNS lookups and connection attempts run
//! on a few reused threads, however many requests, names or addresses there
//! are; a burst of healthy lookups queues instead of failing; only a resolver
//! that really hangs is refused, and the error says so; cancel still ends a
//! call at once while it waits for DNS or a connect.
//!
//! The worker pools belong to the whole process, so each test that counts
//! threads or fills the pools runs alone, in a new process of this test
//! binary (the `run_alone` pattern of tests/pool.rs).

mod common;
mod stall;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use windlass::{CancelToken, ErrorKind, Phase};

use common::{alone, ok, run_alone, Server};
use stall::{assert_cancelled, assert_prompt, cancel_and_finish, full_backlog_or_skip, spawn};

/// Resolver threads the library keeps at most, and connect threads.
const DNS_THREADS: usize = 16;
const CONNECT_THREADS: usize = 32;
/// Idle worker threads exit within this (2 s of idleness, plus slack for a
/// loaded machine).
const SETTLE: Duration = Duration::from_secs(15);

/// Waits `dur` on a channel nobody sends to: a resolver's simulated
/// latency, not a synchronisation.
fn take(dur: Duration) {
    let (_keep, never) = mpsc::channel::<()>();
    let _ = never.recv_timeout(dur);
}

/// The highest value `value` has been seen at.
fn raise(max: &AtomicUsize, value: usize) {
    max.fetch_max(value, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// A burst of healthy lookups

/// Answers every name with `addr` after 20 ms, noting how many lookups run
/// at once and how many resolver threads exist meanwhile.
struct Slow {
    addr: SocketAddr,
    calls: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    most_dns_threads: AtomicUsize,
}

impl windlass::Resolver for Slow {
    fn resolve(&self, _host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        raise(&self.most_running, now);
        raise(&self.most_dns_threads, threads_named("windlass-dns"));
        take(Duration::from_millis(20));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(vec![SocketAddr::new(self.addr.ip(), port)])
    }
}

const BURST: &str = "burst_in_a_process_of_its_own";

#[test]
fn a_burst_of_200_distinct_names_all_resolve_on_a_bounded_number_of_threads() {
    run_alone(BURST);
}

#[test]
#[ignore = "run alone in a child process by a_burst_of_200_distinct_names_all_resolve_on_a_bounded_number_of_threads"]
fn burst_in_a_process_of_its_own() {
    if !alone(BURST) {
        return;
    }
    let threads_before = common::thread_count();
    let fds_before = common::open_fds();
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(&ok("hi"));
        }
    });
    let resolver = Arc::new(Slow {
        addr: server.addr(),
        calls: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        most_running: AtomicUsize::new(0),
        most_dns_threads: AtomicUsize::new(0),
    });
    struct Shared(Arc<Slow>);
    impl windlass::Resolver for Shared {
        fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            self.0.resolve(host, port)
        }
    }
    let agent = common::builder()
        .resolver(Shared(Arc::clone(&resolver)))
        .build()
        .unwrap();
    let names = 200;
    let start = Arc::new(Barrier::new(names));
    let callers: Vec<_> = (0..names)
        .map(|i| {
            let (agent, start) = (agent.clone(), Arc::clone(&start));
            let url = format!("http://name{i}.test:{}/", server.port());
            thread::spawn(move || {
                start.wait();
                agent.get(&url).call().map(|r| r.status().as_u16())
            })
        })
        .collect();
    let results: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(results.iter().all(|r| matches!(r, Ok(200))));
    assert_eq!(resolver.calls.load(Ordering::SeqCst), names);
    let most = resolver.most_running.load(Ordering::SeqCst);
    assert!((1..=DNS_THREADS).contains(&most), "{most} lookups at once");
    let dns_threads = resolver.most_dns_threads.load(Ordering::SeqCst);
    assert!(dns_threads <= DNS_THREADS, "{dns_threads} resolver threads");
    assert_eq!(
        threads_named("windlass-connect"),
        0,
        "single-address connects use no thread"
    );

    drop(agent);
    drop(server);
    common::wait_until("the worker threads exit", SETTLE, || {
        threads_named("windlass-") == 0
    });
    common::wait_for_baseline(threads_before, fds_before, SETTLE);
}

// ---------------------------------------------------------------------------
// A resolver that hangs

/// Blocks every lookup until the gate opens (or a minute passes), telling
/// the test about each one that starts; answers with `addr` once open.
struct Hanging {
    addr: SocketAddr,
    open: Arc<(Mutex<bool>, Condvar)>,
    started: Mutex<Sender<String>>,
}

impl windlass::Resolver for Hanging {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let _ = self.started.lock().unwrap().send(host.to_string());
        let (lock, cvar) = &*self.open;
        let open = lock.lock().unwrap();
        let (open, _) = cvar
            .wait_timeout_while(open, Duration::from_secs(60), |open| !*open)
            .unwrap();
        if *open {
            Ok(vec![SocketAddr::new(self.addr.ip(), port)])
        } else {
            Err(io::Error::other("still hanging"))
        }
    }
}

const HUNG: &str = "hung_resolver_in_a_process_of_its_own";

#[test]
fn a_hanging_resolver_is_refused_only_once_every_resolver_thread_is_stuck() {
    run_alone(HUNG);
}

#[test]
#[ignore = "run alone in a child process by a_hanging_resolver_is_refused_only_once_every_resolver_thread_is_stuck"]
fn hung_resolver_in_a_process_of_its_own() {
    if !alone(HUNG) {
        return;
    }
    let server = Server::fixed(ok("up"));
    let open = Arc::new((Mutex::new(false), Condvar::new()));
    let (started_tx, started) = mpsc::channel();
    let agent = common::builder()
        .resolver(Hanging {
            addr: server.addr(),
            open: Arc::clone(&open),
            started: Mutex::new(started_tx),
        })
        .timeout_dns(Duration::from_millis(200))
        .build()
        .unwrap();
    let url = |name: &str| format!("http://{name}:{}/", server.port());
    let get = |name: &str| agent.get(url(name)).call().map(drop);

    // Every resolver thread takes a lookup that hangs; once all have
    // started, their callers are cancelled and the lookups go on.
    let first_lookup = Instant::now();
    let token = CancelToken::new();
    let callers: Vec<_> = (0..DNS_THREADS)
        .map(|i| {
            let (agent, url) = (agent.clone(), url(&format!("hang{i}.test")));
            let token = token.clone();
            thread::spawn(move || {
                agent
                    .get(url)
                    .timeout(None)
                    .timeout_dns(Duration::from_secs(60))
                    .cancel_token(&token)
                    .call()
                    .map(drop)
            })
        })
        .collect();
    for _ in 0..DNS_THREADS {
        started
            .recv_timeout(stall::PATIENCE)
            .expect("a lookup started");
    }
    token.cancel();
    for caller in callers {
        let err = caller.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    }

    // Busy threads that have not run long are not stuck: a new name queues
    // and runs out its own limit, it is not refused.
    let early = first_lookup.elapsed() < Duration::from_millis(4500);
    let err = get("queued.test").unwrap_err();
    if early {
        assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Dns), "{err}");
    }

    // Once every thread has been in its lookup for over 5 s, new names are
    // refused at once, with an error that says why.
    let mut refused = None;
    let found = common::poll_until(Duration::from_secs(30), || {
        let asked = Instant::now();
        match get("late.test") {
            Err(e) if e.kind() == ErrorKind::Dns => {
                refused = Some((e, asked.elapsed()));
                true
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Timeout(Phase::Dns), "{e}");
                false
            }
            Ok(()) => panic!("a hanging resolver answered"),
        }
    });
    assert!(found, "new names were never refused");
    let (err, took) = refused.unwrap();
    assert!(first_lookup.elapsed() >= Duration::from_secs(5));
    assert!(took < Duration::from_millis(100), "refusing took {took:?}");
    let message = err.to_string();
    assert!(
        message.contains("16 lookups have hung for over 5 s; the resolver is not answering"),
        "{message}"
    );

    // The resolver answers again: the threads come free, names resolve.
    *open.0.lock().unwrap() = true;
    open.1.notify_all();
    let back = common::poll_until(Duration::from_secs(10), || get("back.test").is_ok());
    assert!(back, "lookups did not resume after the resolver recovered");
}

// ---------------------------------------------------------------------------
// A thousand addresses

/// Answers with a fixed list of addresses.
struct Many(Vec<SocketAddr>);

impl windlass::Resolver for Many {
    fn resolve(&self, _host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(self.0.clone())
    }
}

/// Counts connection attempts started.
struct CountConnects(Arc<AtomicUsize>);

impl windlass::Hook for CountConnects {
    fn on_event(&self, _request: &windlass::RequestInfo<'_>, event: &windlass::Event<'_>) {
        if let windlass::Event::ConnectStart { .. } = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Runs 64 concurrent GETs of a name that resolves to `addrs`, each on a new
/// agent (no shared pool or DNS cache); returns their results, the most
/// `windlass-connect` threads seen and the number of connects started.
fn concurrent_gets(
    addrs: Vec<SocketAddr>,
    port: u16,
    connect_limit: Duration,
) -> (Vec<Result<u16, windlass::Error>>, usize, usize) {
    let requests = 64;
    let attempts = Arc::new(AtomicUsize::new(0));
    let most_threads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(requests + 1));
    let callers: Vec<_> = (0..requests)
        .map(|_| {
            let agent = common::builder()
                .resolver(Many(addrs.clone()))
                .timeout(Duration::from_secs(60))
                .timeout_connect(connect_limit)
                .hook(CountConnects(Arc::clone(&attempts)))
                .build()
                .unwrap();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                agent
                    .get(format!("http://many.test:{port}/"))
                    .call()
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    start.wait();
    // Sample the connect threads until every call has returned.
    let mut results = Vec::new();
    for caller in callers {
        while !caller.is_finished() {
            raise(&most_threads, threads_named("windlass-connect"));
            take(Duration::from_millis(1));
        }
        results.push(caller.join().unwrap());
    }
    (
        results,
        most_threads.load(Ordering::SeqCst),
        attempts.load(Ordering::SeqCst),
    )
}

const MANY: &str = "thousand_addresses_in_a_process_of_its_own";

#[test]
fn a_thousand_addresses_for_64_concurrent_requests_keep_threads_bounded() {
    run_alone(MANY);
}

#[test]
#[ignore = "run alone in a child process by a_thousand_addresses_for_64_concurrent_requests_keep_threads_bounded"]
fn thousand_addresses_in_a_process_of_its_own() {
    if !alone(MANY) {
        return;
    }
    // The refused address holds its sockets for the whole process: made
    // before the baseline is read.
    let refused = common::refused_addr();
    let threads_before = common::thread_count();
    let fds_before = common::open_fds();
    let server = Server::fixed(ok("last"));

    // 999 refused addresses, then the server: each call walks the list on
    // its own thread, one refusal after another, and no worker is needed.
    let mut addrs = vec![refused; 999];
    addrs.push(server.addr());
    let (results, most_threads, attempts) =
        concurrent_gets(addrs, server.port(), Duration::from_secs(30));
    assert!(
        results.iter().all(|r| matches!(r, Ok(200))),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(attempts, 64 * 1000);
    assert_eq!(most_threads, 0, "refused addresses needed connect threads");

    // 1,000 addresses that all stall: each call races at most 4 attempts
    // and gives up at its connect limit; the connect threads of all 64
    // stay within the process-wide bound.
    let Some(full) = full_backlog_or_skip("thousand_addresses_in_a_process_of_its_own") else {
        return;
    };
    let limit = Duration::from_millis(1200);
    let (results, most_threads, attempts) =
        concurrent_gets(vec![full.addr(); 1000], full.addr().port(), limit);
    for r in &results {
        let err = r.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout(Phase::Connect), "{err}");
    }
    assert!(attempts <= 64 * 4, "{attempts} attempts started");
    assert!(
        most_threads <= CONNECT_THREADS,
        "{most_threads} connect threads"
    );
    drop(full);
    drop(server);
    common::wait_until("the worker threads exit", SETTLE, || {
        threads_named("windlass-") == 0
    });
    common::wait_for_baseline(threads_before, fds_before, SETTLE);
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    common::threads()
        .iter()
        .filter(|(_, name)| name.starts_with(prefix))
        .count()
}

/// The thread ids of this process's `windlass-*` threads.
fn library_tids() -> Vec<String> {
    let mut tids: Vec<String> = common::threads()
        .into_iter()
        .filter(|(_, name)| name.starts_with("windlass-"))
        .map(|(tid, name)| format!("{tid} {name}"))
        .collect();
    tids.sort();
    tids
}

const STEADY: &str = "steady_state_in_a_process_of_its_own";

#[test]
fn a_new_agent_per_request_with_a_cancel_token_starts_no_library_thread() {
    run_alone(STEADY);
}

#[test]
#[ignore = "run alone in a child process by a_new_agent_per_request_with_a_cancel_token_starts_no_library_thread"]
fn steady_state_in_a_process_of_its_own() {
    if !alone(STEADY) {
        return;
    }
    let server = Server::fixed(ok("again"));
    // Two addresses, like `localhost`: the race runs, and the first one
    // answers within the attempt delay.
    let addrs = vec![server.addr(), common::refused_addr()];
    let one_request = || {
        let agent = common::builder()
            .resolver(Many(addrs.clone()))
            .build()
            .unwrap();
        let token = CancelToken::new();
        let resp = agent
            .get(format!("http://fresh.test:{}/", server.port()))
            .cancel_token(&token)
            .call()
            .unwrap();
        assert_eq!(resp.text().unwrap(), "again");
    };
    // The first requests start the resolver thread and the reaper (a new
    // thread takes its name once it runs, hence the wait).
    for _ in 0..3 {
        one_request();
    }
    common::wait_until("the resolver thread and the reaper run", SETTLE, || {
        threads_named("windlass-dns") == 1 && threads_named("windlass-reaper") == 1
    });
    let before = library_tids();
    for _ in 0..50 {
        one_request();
    }
    assert_eq!(library_tids(), before, "a request started a library thread");
}

// ---------------------------------------------------------------------------
// Cancel, with the work on pooled threads or on the calling one

#[test]
fn cancel_while_the_lookup_waits_for_a_resolver_thread_returns_at_once() {
    let (resolver, gate) = stall::blocking_resolver();
    let agent = common::builder().resolver(resolver).build().unwrap();
    let token = CancelToken::new();
    let call = {
        let (agent, token) = (agent.clone(), token.clone());
        spawn(move || {
            agent
                .get("http://stalled.test/")
                .cancel_token(&token)
                .call()
                .map(drop)
        })
    };
    assert_eq!(gate.expect_lookup(), "stalled.test");
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
}

#[test]
fn cancel_during_a_single_address_connect_returns_at_once() {
    let Some(full) = full_backlog_or_skip("cancel_during_a_single_address_connect") else {
        return;
    };
    let addr = full.addr();
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let (hook, started) = stall::connect_started();
    let call = {
        let (agent, token) = (agent.clone(), token.clone());
        spawn(move || {
            agent
                .get(format!("http://{addr}/"))
                .cancel_token(&token)
                .hook(hook)
                .call()
                .map(drop)
        })
    };
    assert_eq!(started.recv_timeout(stall::PATIENCE), Ok(addr));
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert!(
        after < Duration::from_millis(100),
        "returned {after:?} after the cancel"
    );
}

#[test]
fn cancel_during_a_happy_eyeballs_race_returns_at_once() {
    let Some(full) = full_backlog_or_skip("cancel_during_a_happy_eyeballs_race") else {
        return;
    };
    // Three addresses that stall: by the time the third attempt starts, two
    // wait on connect threads and one on the calling thread.
    let agent = common::builder()
        .resolve("stalled.test", vec![full.addr(); 3])
        .build()
        .unwrap();
    let token = CancelToken::new();
    let (hook, started) = stall::connect_started();
    let port = full.addr().port();
    let call = {
        let (agent, token) = (agent.clone(), token.clone());
        spawn(move || {
            agent
                .get(format!("http://stalled.test:{port}/"))
                .cancel_token(&token)
                .hook(hook)
                .call()
                .map(drop)
        })
    };
    for _ in 0..3 {
        assert!(
            started.recv_timeout(stall::PATIENCE).is_ok(),
            "an attempt never started"
        );
    }
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert!(
        after < Duration::from_millis(100),
        "returned {after:?} after the cancel"
    );
}

#[test]
fn a_connect_that_succeeds_at_once_reports_one_attempt() {
    let server = Server::fixed(ok("fine"));
    let attempts = Arc::new(AtomicUsize::new(0));
    let agent = common::builder()
        .resolve("two.test", vec![server.addr(), common::refused_addr()])
        .hook(CountConnects(Arc::clone(&attempts)))
        .build()
        .unwrap();
    let token = CancelToken::new();
    let resp = agent
        .get(format!("http://two.test:{}/", server.port()))
        .cancel_token(&token)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[test]
fn a_race_goes_on_past_attempts_that_fail_on_connect_threads() {
    let Some(full) = full_backlog_or_skip("a_race_goes_on_past_attempts_that_fail") else {
        return;
    };
    // The first address stalls, so the attempts after it run on connect
    // threads; each of the next eight is refused and gives its place to the
    // next, until the server answers.
    let server = Server::fixed(ok("reached"));
    let mut addrs = vec![full.addr()];
    addrs.extend(vec![common::refused_addr(); 8]);
    addrs.push(server.addr());
    let attempts = Arc::new(AtomicUsize::new(0));
    let agent = common::builder()
        .resolve("mixed.test", addrs)
        .hook(CountConnects(Arc::clone(&attempts)))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = agent
        .get(format!("http://mixed.test:{}/", server.port()))
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "reached");
    assert_eq!(attempts.load(Ordering::SeqCst), 10);
    // One attempt delay for the stalled address, none for the refused ones.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
