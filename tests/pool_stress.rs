//! The pool under load: many threads over a few hosts with a per-host
//! connection limit, while requests are cancelled from other threads, run out
//! of time while they wait, and servers close pooled connections at random.
//!
//! What must hold: every request ends in a response or a typed error; no
//! waiter is stranded; a host never has more connections open than its limit;
//! afterwards nothing is active, connecting or waiting, the counters add up,
//! and dropping the agent gives back every thread and socket.
//!
//! This file holds one test on purpose: thread and descriptor counts belong to
//! the whole process, and a second test running beside it would move them.

mod common;

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use windlass::{Agent, CancelToken, ErrorKind};

/// 32 threads × 500 requests over 4 hosts, at most 4 connections each. On a
/// 2-core machine the run takes a few seconds in a debug build.
const THREADS: usize = 32;
const REQUESTS: usize = 500;
const SERVERS: usize = 4;
const LIMIT: usize = 4;

/// Every thread must be done within this; a stranded waiter would never be.
const RUN_BOUND: Duration = Duration::from_secs(120);
/// Threads and descriptors must be back to their baseline within this.
const SETTLE_BOUND: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The servers
//
// tests/common's Server keeps every accepted socket until it is dropped and
// accepts at most 1000 connections; this run opens thousands, so it has a
// server of its own that forgets connections once they end.

/// The connections still being served: a handle on each socket (to shut it
/// down when the server stops) and its thread.
type Live = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

/// A keep-alive server on 127.0.0.1, one thread per connection. Each
/// connection answers between 1 and 8 requests (`200 OK`, the request target
/// as the body: [`common::echo_target`]) and then closes without having sent `Connection: close`.
struct ChurnServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    live: Live,
    accepted: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
}

impl ChurnServer {
    fn start(seed: u64) -> ChurnServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let live: Live = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let accept = {
            let (stop, live, accepted, answered) = (
                stop.clone(),
                live.clone(),
                accepted.clone(),
                answered.clone(),
            );
            thread::spawn(move || loop {
                let incoming = listener.accept();
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok((tcp, _)) = incoming else {
                    continue;
                };
                let n = accepted.fetch_add(1, Ordering::SeqCst);
                let limit = 1 + Rng::new(seed ^ (n << 8)).below(8);
                let Ok(handle_side) = tcp.try_clone() else {
                    continue;
                };
                let answered = answered.clone();
                let thread = thread::spawn(move || serve(tcp, limit, &answered));
                let mut live = live.lock().unwrap();
                // Forget connections that have ended, so the list stays short.
                let (done, running): (Vec<_>, Vec<_>) =
                    live.drain(..).partition(|(_, t)| t.is_finished());
                *live = running;
                live.push((handle_side, thread));
                drop(live);
                for (_, t) in done {
                    let _ = t.join();
                }
            })
        };
        ChurnServer {
            addr,
            stop,
            accept: Some(accept),
            live,
            accepted,
            answered,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn key(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ChurnServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wake the blocked accept() so it sees the flag.
            if TcpStream::connect(self.addr).is_ok() {
                let _ = accept.join();
            }
        }
        let live: Vec<_> = self.live.lock().unwrap().drain(..).collect();
        for (sock, _) in &live {
            let _ = sock.shutdown(Shutdown::Both);
        }
        for (_, t) in live {
            let _ = t.join();
        }
    }
}

/// Answers up to `limit` requests on one connection, then closes it.
fn serve(tcp: TcpStream, limit: u64, answered: &AtomicU64) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_nodelay(true);
    let Ok(mut out) = tcp.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(tcp);
    for _ in 0..limit {
        let Some(req) = common::read_request_from(&mut reader, 0) else {
            return;
        };
        if out.write_all(&common::echo_target(&req, "")).is_err() {
            return;
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
    let _ = out.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// The clients

/// xorshift64*: a fixed seed gives the same schedule on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a request is allowed to end in, besides a response.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// GET, no limit but the agent's, no token: must succeed (the
    /// stale-connection retry covers the servers' closes).
    Plain,
    /// POST, never retried: a stale connection is an `Io` error.
    Post,
    /// GET with a short overall timeout: may time out, in any phase.
    Timed(Duration),
    /// GET whose token other threads may cancel at any moment.
    Cancellable,
    /// GET with a token and a deadline only milliseconds away.
    CancellableWithDeadline(Duration),
}

impl Kind {
    fn allows(self, kind: ErrorKind) -> bool {
        match self {
            Kind::Plain => false,
            Kind::Post => kind == ErrorKind::Io,
            Kind::Timed(_) => matches!(kind, ErrorKind::Timeout(_)),
            Kind::Cancellable => kind == ErrorKind::Cancelled,
            Kind::CancellableWithDeadline(_) => {
                matches!(kind, ErrorKind::Timeout(_) | ErrorKind::Cancelled)
            }
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    timed_out: u64,
    cancelled: u64,
    stale_post: u64,
    pool_wait_timeouts: u64,
    /// Requests that ended in something they must not: described.
    wrong: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.timed_out += other.timed_out;
        self.cancelled += other.cancelled;
        self.stale_post += other.stale_post;
        self.pool_wait_timeouts += other.pool_wait_timeouts;
        self.wrong.extend(other.wrong);
    }
}

/// The token each thread's current request carries, for others to cancel.
type Tokens = Arc<Vec<Mutex<Option<CancelToken>>>>;

fn worker(id: usize, agent: Agent, urls: Vec<String>, tokens: Tokens) -> Tally {
    let mut rng = Rng::new(1000 + id as u64);
    let mut tally = Tally::default();
    for i in 0..REQUESTS {
        // Now and then cancel whatever another thread is doing.
        if rng.below(16) == 0 {
            let victim = rng.below(THREADS as u64) as usize;
            let token = tokens[victim].lock().unwrap().clone();
            if let Some(token) = token {
                token.cancel();
            }
        }
        let kind = match rng.below(100) {
            0..=54 => Kind::Plain,
            55..=64 => Kind::Post,
            65..=79 => Kind::Timed(Duration::from_millis(1 + rng.below(20))),
            80..=94 => Kind::Cancellable,
            _ => Kind::CancellableWithDeadline(Duration::from_millis(rng.below(10))),
        };
        let path = format!("/{id}/{i}");
        let url = format!("{}{path}", urls[rng.below(SERVERS as u64) as usize]);
        let token = CancelToken::new();
        if matches!(kind, Kind::Cancellable | Kind::CancellableWithDeadline(_)) {
            *tokens[id].lock().unwrap() = Some(token.clone());
        }
        let result = match kind {
            Kind::Plain => agent.get(&url).call(),
            Kind::Post => agent.post(&url).send_string("payload"),
            Kind::Timed(limit) => agent.get(&url).timeout(limit).call(),
            Kind::Cancellable => agent.get(&url).cancel_token(&token).call(),
            Kind::CancellableWithDeadline(left) => agent
                .get(&url)
                .cancel_token(&token)
                .deadline(Instant::now() + left)
                .call(),
        }
        .and_then(|resp| resp.text());
        *tokens[id].lock().unwrap() = None;

        match result {
            Ok(body) if body == path => tally.ok += 1,
            Ok(body) => tally
                .wrong
                .push(format!("{kind:?} {url}: got the body {body:?}")),
            Err(e) if kind.allows(e.kind()) => match e.kind() {
                ErrorKind::Timeout(phase) => {
                    tally.timed_out += 1;
                    if phase == windlass::Phase::PoolWait {
                        tally.pool_wait_timeouts += 1;
                    }
                }
                ErrorKind::Cancelled => tally.cancelled += 1,
                _ => tally.stale_post += 1,
            },
            Err(e) => tally
                .wrong
                .push(format!("{kind:?} {url}: {:?}: {e}", e.kind())),
        }
    }
    tally
}

/// What the sampler saw of the pool during the run.
#[derive(Default, Debug)]
struct Samples {
    taken: u64,
    max_open: usize,
    max_waiting: usize,
    over_limit: Vec<String>,
}

/// Samples `pool_stats()` every millisecond until told to stop.
fn sample(agent: Agent, stop: mpsc::Receiver<()>) -> Samples {
    let mut seen = Samples::default();
    loop {
        match stop.recv_timeout(Duration::from_millis(1)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return seen,
        }
        let stats = agent.pool_stats();
        seen.taken += 1;
        for host in &stats.hosts {
            seen.max_open = seen.max_open.max(host.open());
            seen.max_waiting = seen.max_waiting.max(host.waiting);
            if host.open() > LIMIT && seen.over_limit.len() < 10 {
                seen.over_limit.push(format!("{host:?}"));
            }
        }
    }
}

#[test]
fn many_threads_over_limited_hosts_with_cancels_deadlines_and_server_closes() {
    let threads_before = common::thread_count();
    let fds_before = common::open_fds();

    let servers: Vec<_> = (0..SERVERS as u64).map(ChurnServer::start).collect();
    let agent = Agent::builder()
        .max_connections_per_host(LIMIT)
        .build()
        .unwrap();
    let urls: Vec<_> = servers.iter().map(|s| s.url("")).collect();
    let tokens: Tokens = Arc::new((0..THREADS).map(|_| Mutex::new(None)).collect());

    let (stop_sampler, sampler_stop) = mpsc::channel();
    let sampler = {
        let agent = agent.clone();
        thread::spawn(move || sample(agent, sampler_stop))
    };

    let started = Instant::now();
    let (done_tx, done) = mpsc::channel();
    for id in 0..THREADS {
        let (agent, urls, tokens, done_tx) =
            (agent.clone(), urls.clone(), tokens.clone(), done_tx.clone());
        thread::spawn(move || {
            let tally = worker(id, agent, urls, tokens);
            let _ = done_tx.send((id, tally));
        });
    }
    drop(done_tx);

    let mut tally = Tally::default();
    let mut finished = [false; THREADS];
    for _ in 0..THREADS {
        let left = RUN_BOUND.saturating_sub(started.elapsed());
        match done.recv_timeout(left) {
            Ok((id, t)) => {
                finished[id] = true;
                tally.add(t);
            }
            Err(e) => {
                let stuck: Vec<_> = (0..THREADS).filter(|&i| !finished[i]).collect();
                panic!(
                    "threads {stuck:?} did not finish within {RUN_BOUND:?} ({e:?})\n{}",
                    agent.pool_stats()
                );
            }
        }
    }
    let elapsed = started.elapsed();
    stop_sampler.send(()).unwrap();
    let samples = sampler.join().expect("the sampler panicked");

    println!(
        "{} requests in {elapsed:?}: {tally:?}\nsampler: {samples:?}\n{}",
        THREADS * REQUESTS,
        agent.pool_stats()
    );
    let total = tally.ok + tally.timed_out + tally.cancelled + tally.stale_post;
    assert!(
        tally.wrong.is_empty(),
        "{} requests ended wrongly, first ones: {:#?}",
        tally.wrong.len(),
        &tally.wrong[..tally.wrong.len().min(10)]
    );
    assert_eq!(total, (THREADS * REQUESTS) as u64);
    assert!(samples.taken > 0);
    assert!(
        samples.over_limit.is_empty(),
        "more than {LIMIT} connections open: {:#?}",
        samples.over_limit
    );

    let stats = agent.pool_stats();
    let mut opened = 0;
    for server in &servers {
        let host = stats.host(&server.key()).expect("every host was used");
        assert_eq!(
            [host.active, host.connecting, host.waiting],
            [0, 0, 0],
            "{host:?}"
        );
        assert!(host.open() <= LIMIT, "{host:?}");
        assert_eq!(
            host.opened,
            host.closed.total() + host.idle as u64,
            "every connection opened is idle or closed: {host:?}"
        );
        opened += host.opened;
    }
    let accepted: u64 = servers
        .iter()
        .map(|s| s.accepted.load(Ordering::SeqCst))
        .sum();
    let answered: u64 = servers
        .iter()
        .map(|s| s.answered.load(Ordering::SeqCst))
        .sum();
    assert!(accepted >= opened, "accepted {accepted}, opened {opened}");
    assert!(answered >= tally.ok, "answered {answered}, ok {}", tally.ok);

    drop(agent);
    drop(servers);
    common::wait_for_baseline(threads_before, fds_before, SETTLE_BOUND);
}
