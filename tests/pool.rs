//! The connection pool: per-host limits and the FIFO wait queue, idle reuse
//! and eviction, the reaper, liveness checks and the stale-connection retry,
//! and the numbers `pool_stats()` reports.
//!
//! Every server is scripted on 127.0.0.1. Unless a test says otherwise it
//! answers each request with `200 OK` and the request target as the body
//! ([`echo_target`]), so a test can tell which response went where, and it reports
//! when the client closes a connection ([`Origin::closed_by_client`]).
//!
//! Nothing here sleeps to synchronise: tests wait on channels with a timeout,
//! on the server's blocking read, or poll `pool_stats()` in a bounded loop.
//! Timing assertions are lower bounds (nothing may happen early) plus the
//! generous upper bound of the helpers' timeouts.

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{alone, echo_target, run_alone, Conn, PeerEnd, Reply, Request, Server, IO_TIMEOUT};
use windlass::{
    Agent, CancelToken, CloseReason, ClosedCounts, Error, ErrorKind, HostLimits, HostStats, Phase,
};

// ---------------------------------------------------------------------------
// Helpers

/// Serves a keep-alive connection with [`echo_target`] until the client closes it
/// (or stays silent for [`IO_TIMEOUT`]), then reports how it ended.
fn serve_reporting(
    conn: &mut Conn,
    extra: fn(&Request) -> &'static str,
    ends: &Sender<(usize, PeerEnd)>,
) {
    for _ in 0..common::MAX_REQUESTS_PER_CONNECTION {
        match conn.wait_for_request_or_close() {
            PeerEnd::SentData => match conn.read_request() {
                Some(req) => conn.write(&echo_target(&req, extra(&req))),
                None => break,
            },
            end => {
                let _ = ends.send((conn.index, end));
                return;
            }
        }
    }
    let _ = ends.send((conn.index, PeerEnd::Closed));
}

/// Serves a keep-alive connection with [`echo_target`], reporting nothing.
fn serve_plain(conn: &mut Conn) {
    conn.serve(&|req| Reply::keep(echo_target(req, "")));
}

fn no_extra(_: &Request) -> &'static str {
    ""
}

/// A keep-alive server that tells the test how each connection ended.
struct Origin {
    server: Server,
    ends: Receiver<(usize, PeerEnd)>,
}

impl Origin {
    /// Answers every request with [`echo_target`], adding `extra(request)` as headers.
    fn start(extra: fn(&Request) -> &'static str) -> Origin {
        let (tx, ends) = mpsc::channel();
        let server = Server::start(move |conn| serve_reporting(conn, extra, &tx));
        Origin { server, ends }
    }

    fn plain() -> Origin {
        Origin::start(no_extra)
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn host_port(&self) -> String {
        self.server.addr().to_string()
    }

    /// The pool key, as `pool_stats()` names it.
    fn key(&self) -> String {
        self.server.pool_key()
    }

    fn stats(&self, agent: &Agent) -> HostStats {
        host_stats(agent, &self.key())
    }

    /// The connection and target of the next request the server read.
    fn next_request(&self) -> (usize, String) {
        let req = self.server.request();
        (req.conn, req.target)
    }

    /// Blocks on the server's read until the client closes a connection;
    /// returns that connection's index. Fails if the client keeps every
    /// connection open for [`IO_TIMEOUT`].
    fn closed_by_client(&self) -> usize {
        let (index, end) = self
            .ends
            .recv_timeout(IO_TIMEOUT * 2)
            .expect("no connection ended");
        assert_eq!(end, PeerEnd::Closed, "connection {index} was not closed");
        index
    }
}

fn host_stats(agent: &Agent, key: &str) -> HostStats {
    let stats = agent.pool_stats();
    stats
        .host(key)
        .cloned()
        .unwrap_or_else(|| panic!("no pool entry for {key}: {stats:?}"))
}

/// Idle, active, connecting and waiting of one entry, for compact assertions.
fn counts(stats: &HostStats) -> [usize; 4] {
    [stats.idle, stats.active, stats.connecting, stats.waiting]
}

/// Lets `span` pass after `since`. Only for behaviour that is defined by
/// elapsed time (a lifetime running out, a caller pausing between requests);
/// it never stands in for waiting on another thread.
fn let_time_pass(since: Instant, span: Duration) {
    let (_keep, never) = mpsc::channel::<()>();
    while let Some(left) = span.checked_sub(since.elapsed()) {
        if left.is_zero() {
            break;
        }
        let _ = never.recv_timeout(left);
    }
}

/// `GET url` on a thread of its own, body read to the end.
fn spawn_get(agent: &Agent, url: String) -> JoinHandle<Result<String, Error>> {
    let agent = agent.clone();
    thread::spawn(move || agent.get(&url).call()?.text())
}

/// `GET url` with a cancel token, on a thread of its own.
fn spawn_get_with(
    agent: &Agent,
    url: String,
    token: &CancelToken,
) -> JoinHandle<Result<String, Error>> {
    let agent = agent.clone();
    let token = token.clone();
    thread::spawn(move || agent.get(&url).cancel_token(&token).call()?.text())
}

fn outcome(handle: JoinHandle<Result<String, Error>>) -> Result<String, Error> {
    handle.join().expect("request thread panicked")
}

/// Starts `GET url` on its own thread and waits until it is queued as the
/// `position`-th waiter of `key`.
fn queue_get(
    agent: &Agent,
    key: &str,
    url: String,
    position: usize,
) -> JoinHandle<Result<String, Error>> {
    let handle = spawn_get(agent, url);
    common::wait_until(&format!("{position} requests wait"), IO_TIMEOUT, || {
        host_stats(agent, key).waiting == position
    });
    handle
}

/// A resolver that answers 127.0.0.1 for any name, but holds each lookup
/// until the test lets it through: a way to keep a request in `connecting`.
struct Gate {
    entered: Sender<()>,
    /// The port to answer with; 0 keeps the port asked for.
    pass: Mutex<Receiver<u16>>,
}

struct GateControl {
    entered: Receiver<()>,
    pass: Sender<u16>,
}

fn gate() -> (Gate, GateControl) {
    let (entered_tx, entered) = mpsc::channel();
    let (pass, pass_rx) = mpsc::channel();
    (
        Gate {
            entered: entered_tx,
            pass: Mutex::new(pass_rx),
        },
        GateControl { entered, pass },
    )
}

impl GateControl {
    /// Waits until a lookup has reached the resolver.
    fn wait_entered(&self) {
        self.entered
            .recv_timeout(IO_TIMEOUT)
            .expect("no lookup reached the resolver");
    }

    /// Lets one lookup (waiting now or coming later) through.
    fn let_one_through(&self) {
        self.pass.send(0).unwrap();
    }

    /// Lets one lookup through with the address of a port nobody listens on,
    /// so its connect is refused.
    fn send_one_nowhere(&self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        self.pass.send(port).unwrap();
    }
}

impl windlass::Resolver for Gate {
    fn resolve(&self, _host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let _ = self.entered.send(());
        let pass = self.pass.lock().unwrap_or_else(|p| p.into_inner());
        match pass.recv_timeout(IO_TIMEOUT) {
            Ok(0) => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
            Ok(other) => Ok(vec![SocketAddr::from(([127, 0, 0, 1], other))]),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the test never let the lookup through",
            )),
        }
    }
}

/// An agent whose name lookups go through a [`Gate`], uncached.
fn gated_agent(builder: windlass::AgentBuilder) -> (Agent, GateControl) {
    let (gate, control) = gate();
    let agent = builder
        .resolver(gate)
        .dns_ttl(Duration::ZERO)
        .build()
        .unwrap();
    (agent, control)
}

fn gated_url(origin: &Origin, path: &str) -> String {
    format!("http://gated.test:{}{}", origin.server.port(), path)
}

fn gated_key(origin: &Origin) -> String {
    format!("http://gated.test:{}", origin.server.port())
}

// ---------------------------------------------------------------------------
// Limits and the wait queue

#[test]
fn waiters_are_served_in_fifo_order() {
    let origin = Origin::plain();
    let key = origin.key();
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();

    let held = agent.get(origin.url("/held")).call().unwrap();
    let waiters: Vec<_> = (1..=5)
        .map(|i| queue_get(&agent, &key, origin.url(&format!("/w{i}")), i))
        .collect();
    assert_eq!(counts(&origin.stats(&agent)), [0, 1, 0, 5]);

    // Reading the held body to its end hands the connection to the first
    // waiter; each waiter's own end hands it on to the next.
    assert_eq!(held.text().unwrap(), "/held");
    for (i, waiter) in waiters.into_iter().enumerate() {
        assert_eq!(outcome(waiter).unwrap(), format!("/w{}", i + 1));
    }

    let seen: Vec<_> = (0..6).map(|_| origin.next_request()).collect();
    let expected: Vec<_> = ["/held", "/w1", "/w2", "/w3", "/w4", "/w5"]
        .iter()
        .map(|t| (0, t.to_string()))
        .collect();
    assert_eq!(seen, expected);
    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!((stats.opened, stats.reused), (1, 5));
}

#[test]
fn a_waiter_that_gives_up_leaves_the_queue_without_disturbing_the_order() {
    let origin = Origin::plain();
    let key = origin.key();
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();

    let held = agent.get(origin.url("/held")).call().unwrap();
    let first = queue_get(&agent, &key, origin.url("/first"), 1);
    let token = CancelToken::new();
    let quitter = spawn_get_with(&agent, origin.url("/quitter"), &token);
    common::wait_until("the quitter waits", IO_TIMEOUT, || {
        host_stats(&agent, &key).waiting == 2
    });
    let last = queue_get(&agent, &key, origin.url("/last"), 3);

    token.cancel();
    assert_eq!(outcome(quitter).unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(origin.stats(&agent).waiting, 2);

    assert_eq!(held.text().unwrap(), "/held");
    assert_eq!(outcome(first).unwrap(), "/first");
    assert_eq!(outcome(last).unwrap(), "/last");
    let seen: Vec<_> = (0..3).map(|_| origin.next_request().1).collect();
    assert_eq!(seen, ["/held", "/first", "/last"]);
    assert!(origin.server.try_request().is_none());
}

#[test]
fn a_returned_connection_goes_to_the_waiter_while_another_is_still_being_opened() {
    // Late binding: a waiter is not tied to any particular connection; it
    // takes the first one handed back, even though another request's new
    // connection is still being opened.
    let origin = Origin::plain();
    let key = gated_key(&origin);
    let (agent, gate) = gated_agent(common::builder().max_connections_per_host(2));

    gate.let_one_through();
    let first = agent.get(gated_url(&origin, "/first")).call().unwrap();
    gate.wait_entered();

    let second = spawn_get(&agent, gated_url(&origin, "/second"));
    gate.wait_entered();
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [0, 1, 1, 0]);
    assert_eq!(stats.open(), 2);

    let waiter = queue_get(&agent, &key, gated_url(&origin, "/waiter"), 1);
    assert_eq!(first.text().unwrap(), "/first");
    assert_eq!(outcome(waiter).unwrap(), "/waiter");
    assert_eq!(origin.next_request(), (0, "/first".to_string()));
    assert_eq!(origin.next_request(), (0, "/waiter".to_string()));
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [1, 0, 1, 0], "second is still connecting");
    assert_eq!((stats.opened, stats.reused), (1, 1));

    gate.let_one_through();
    assert_eq!(outcome(second).unwrap(), "/second");
    assert_eq!(origin.next_request(), (1, "/second".to_string()));
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [2, 0, 0, 0]);
    assert_eq!((stats.opened, stats.reused), (2, 1));
}

#[test]
fn a_freed_slot_lets_the_longest_waiter_open_a_connection() {
    let origin = Origin::start(|req| {
        if req.target == "/close" {
            "Connection: close\r\n"
        } else {
            ""
        }
    });
    let key = origin.key();
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();

    let held = agent.get(origin.url("/close")).call().unwrap();
    let w1 = queue_get(&agent, &key, origin.url("/w1"), 1);
    let w2 = queue_get(&agent, &key, origin.url("/w2"), 2);

    // The held connection cannot be reused: its end frees the slot, and the
    // first waiter opens a connection in it; that one then goes to the second.
    assert_eq!(held.text().unwrap(), "/close");
    assert_eq!(outcome(w1).unwrap(), "/w1");
    assert_eq!(outcome(w2).unwrap(), "/w2");

    assert_eq!(origin.next_request(), (0, "/close".to_string()));
    assert_eq!(origin.next_request(), (1, "/w1".to_string()));
    assert_eq!(origin.next_request(), (1, "/w2".to_string()));
    assert_eq!(origin.closed_by_client(), 0);
    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!((stats.opened, stats.reused), (2, 1));
    assert_eq!(
        stats.closed,
        ClosedCounts::default().with(CloseReason::NotReusable, 1)
    );
}

#[test]
fn a_failed_connect_frees_its_slot_for_the_next_waiter() {
    let origin = Origin::plain();
    let key = gated_key(&origin);
    let (agent, gate) = gated_agent(common::builder().max_connections_per_host(1));

    let first = spawn_get(&agent, gated_url(&origin, "/first"));
    gate.wait_entered();
    let waiter = queue_get(&agent, &key, gated_url(&origin, "/waiter"), 1);
    gate.send_one_nowhere();
    let err = outcome(first).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");

    gate.wait_entered();
    gate.let_one_through();
    assert_eq!(outcome(waiter).unwrap(), "/waiter");
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!(stats.opened, 1);
    assert_eq!(stats.closed, ClosedCounts::default());
}

#[test]
fn a_request_cancelled_while_connecting_frees_its_slot_for_the_next_waiter() {
    let origin = Origin::plain();
    let key = gated_key(&origin);
    let (agent, gate) = gated_agent(common::builder().max_connections_per_host(1));

    let token = CancelToken::new();
    let first = spawn_get_with(&agent, gated_url(&origin, "/first"), &token);
    gate.wait_entered();
    let waiter = queue_get(&agent, &key, gated_url(&origin, "/waiter"), 1);
    token.cancel();
    let err = outcome(first).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");

    // The abandoned lookup is still in the resolver. The waiter either joins
    // it or, if it arrives after that lookup ended (this agent caches nothing),
    // starts its own: let both through; a pass nobody takes is harmless.
    gate.let_one_through();
    gate.let_one_through();
    assert_eq!(outcome(waiter).unwrap(), "/waiter");
    assert_eq!(origin.next_request(), (0, "/waiter".to_string()));
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!(stats.opened, 1);
}

#[test]
fn a_dropped_body_too_large_to_drain_frees_its_slot_for_the_next_waiter() {
    let (ends_tx, ends) = mpsc::channel();
    let server = Server::start(move |conn| {
        if conn.index == 0 {
            if conn.read_request().is_some() {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nten bytes.");
            }
            let _ = ends_tx.send(conn.wait_for_request_or_close());
        } else {
            serve_plain(conn);
        }
    });
    let key = server.pool_key();
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();

    let big = agent.get(server.url("/big")).call().unwrap();
    let waiter = queue_get(&agent, &key, server.url("/waiter"), 1);
    drop(big);
    assert_eq!(outcome(waiter).unwrap(), "/waiter");
    assert_eq!(ends.recv_timeout(IO_TIMEOUT * 2), Ok(PeerEnd::Closed));

    assert_eq!(server.request().conn, 0);
    assert_eq!(server.request().conn, 1);
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!(stats.opened, 2);
    assert_eq!(
        stats.closed,
        ClosedCounts::default().with(CloseReason::NotReusable, 1)
    );
}

#[test]
fn a_stale_connection_retry_keeps_its_place_in_the_queue() {
    // Connection 1 answers /warm, then holds the next request until the test
    // says go, and closes without answering. Other connections are served
    // normally.
    let (arrived_tx, arrived) = mpsc::channel::<()>();
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    let server = Server::start(move |conn| {
        if conn.index != 1 {
            return serve_plain(conn);
        }
        if let Some(req) = conn.read_request() {
            conn.write(&echo_target(&req, ""));
        }
        if conn.read_request().is_some() {
            let _ = arrived_tx.send(());
            let _ = go.lock().unwrap().recv_timeout(IO_TIMEOUT);
            conn.close();
        }
    });
    let key = server.pool_key();
    let agent = common::builder()
        .max_connections_per_host(2)
        .build()
        .unwrap();

    let held = agent.get(server.url("/held")).call().unwrap();
    assert_eq!(
        agent
            .get(server.url("/warm"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/warm"
    );
    // The retrier takes the idle connection 1, whose server is about to drop it.
    let retrier = spawn_get(&agent, server.url("/retrier"));
    arrived.recv_timeout(IO_TIMEOUT).unwrap();
    let (w1_tx, w1) = mpsc::channel();
    {
        let agent = agent.clone();
        let url = server.url("/w1");
        thread::spawn(move || w1_tx.send(agent.get(&url).call()).unwrap());
    }
    common::wait_until("w1 waits", IO_TIMEOUT, || {
        host_stats(&agent, &key).waiting == 1
    });

    // The drop frees connection 1's slot for w1; the retry has to queue.
    go_tx.send(()).unwrap();
    let w1 = w1.recv_timeout(IO_TIMEOUT).unwrap().unwrap();
    common::wait_until("the retry waits", IO_TIMEOUT, || {
        host_stats(&agent, &key).waiting == 1
    });
    let w2 = queue_get(&agent, &key, server.url("/w2"), 2);

    // w1's connection comes back: the retry has waited longest.
    assert_eq!(w1.text().unwrap(), "/w1");
    assert_eq!(outcome(retrier).unwrap(), "/retrier");
    assert_eq!(outcome(w2).unwrap(), "/w2");
    assert_eq!(held.text().unwrap(), "/held");

    let seen: Vec<_> = (0..6).map(|_| server.request().target).collect();
    assert_eq!(
        seen,
        ["/held", "/warm", "/retrier", "/w1", "/retrier", "/w2"],
        "the retry lost its place in the queue; {:?}",
        host_stats(&agent, &key)
    );
}

#[test]
fn pool_wait_times_out_with_phase_pool_wait() {
    let origin = Origin::plain();
    let agent = common::builder()
        .max_connections_per_host(1)
        .timeout_pool_wait(Duration::from_millis(150))
        .build()
        .unwrap();

    let held = agent.get(origin.url("/held")).call().unwrap();
    let started = Instant::now();
    let err = agent.get(origin.url("/late")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(counts(&origin.stats(&agent)), [0, 1, 0, 0]);

    // The connection the waiter gave up on goes to the pool, not to a ghost.
    assert_eq!(held.text().unwrap(), "/held");
    assert_eq!(counts(&origin.stats(&agent)), [1, 0, 0, 0]);
    let after = agent.get(origin.url("/after")).call().unwrap();
    assert!(after.timings().reused);
    assert_eq!(after.text().unwrap(), "/after");

    assert_eq!(origin.next_request(), (0, "/held".to_string()));
    assert_eq!(origin.next_request(), (0, "/after".to_string()));
    let stats = origin.stats(&agent);
    assert_eq!((stats.opened, stats.reused), (1, 1));
}

#[test]
fn pool_wait_is_bounded_by_the_request_timeout_and_deadline() {
    let origin = Origin::plain();
    // The agent's own pool wait limit stays at its 30 s default.
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();
    let held = agent.get(origin.url("/held")).call().unwrap();

    let started = Instant::now();
    let err = agent
        .get(origin.url("/timeout"))
        .timeout(Duration::from_millis(100))
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(100));

    let deadline = Instant::now() + Duration::from_millis(100);
    let err = agent
        .get(origin.url("/deadline"))
        .deadline(deadline)
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait), "{err}");
    assert!(Instant::now() >= deadline);

    assert_eq!(counts(&origin.stats(&agent)), [0, 1, 0, 0]);
    assert_eq!(held.text().unwrap(), "/held");
    assert_eq!(counts(&origin.stats(&agent)), [1, 0, 0, 0]);
}

#[test]
fn pool_wait_is_cancelled_by_the_token() {
    let origin = Origin::plain();
    let key = origin.key();
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();
    let held = agent.get(origin.url("/held")).call().unwrap();

    let token = CancelToken::new();
    let waiter = spawn_get_with(&agent, origin.url("/waiter"), &token);
    common::wait_until("the request waits", IO_TIMEOUT, || {
        host_stats(&agent, &key).waiting == 1
    });
    token.cancel();
    let err = outcome(waiter).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert_eq!(counts(&origin.stats(&agent)), [0, 1, 0, 0]);

    assert_eq!(held.text().unwrap(), "/held");
    assert_eq!(counts(&origin.stats(&agent)), [1, 0, 0, 0]);
    assert_eq!(origin.next_request(), (0, "/held".to_string()));
    assert!(origin.server.try_request().is_none());
}

#[test]
fn host_limits_override_the_agent_limits_for_one_host() {
    let limited = Origin::plain();
    let free = Origin::plain();
    let agent = common::builder()
        .host_limits(
            &limited.host_port(),
            HostLimits::new().max_connections(1).max_idle(0),
        )
        .build()
        .unwrap();

    let held = agent.get(limited.url("/held")).call().unwrap();
    let err = agent
        .get(limited.url("/late"))
        .timeout(Duration::from_millis(100))
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::PoolWait), "{err}");

    // Another host keeps the agent's limits: two connections at once.
    let a = agent.get(free.url("/a")).call().unwrap();
    let b = agent.get(free.url("/b")).call().unwrap();
    assert_eq!(counts(&free.stats(&agent)), [0, 2, 0, 0]);

    // max_idle 0 for the limited host: its connection is closed, not kept.
    assert_eq!(held.text().unwrap(), "/held");
    assert_eq!(limited.closed_by_client(), 0);
    let stats = limited.stats(&agent);
    assert_eq!(counts(&stats), [0, 0, 0, 0]);
    assert_eq!(stats.closed.pool_full, 1);

    assert_eq!(a.text().unwrap(), "/a");
    assert_eq!(b.text().unwrap(), "/b");
    assert_eq!(counts(&free.stats(&agent)), [2, 0, 0, 0]);
}

#[test]
fn a_connection_limit_of_zero_still_allows_one_connection() {
    // max_connections_per_host(0) is taken as 1; a per-host limit of 0 must
    // not turn into a host no request can ever reach.
    let agent_wide = Origin::plain();
    let per_host = Origin::plain();
    let agent = common::builder()
        .max_connections_per_host(0)
        .host_limits(&per_host.host_port(), HostLimits::new().max_connections(0))
        .build()
        .unwrap();
    for origin in [&agent_wide, &per_host] {
        let result = agent
            .get(origin.url("/"))
            .timeout(Duration::from_secs(2))
            .call()
            .and_then(|r| r.text());
        match result {
            Ok(body) => assert_eq!(body, "/"),
            Err(e) => panic!("{}: {e} ({:?})", origin.key(), e.kind()),
        }
    }
}

// ---------------------------------------------------------------------------
// Idle connections: reuse order and the idle limits

#[test]
fn idle_reuse_takes_the_most_recently_used_connection() {
    let origin = Origin::plain();
    let agent = common::agent();

    let a = agent.get(origin.url("/a")).call().unwrap();
    let b = agent.get(origin.url("/b")).call().unwrap();
    assert_eq!(a.text().unwrap(), "/a");
    assert_eq!(b.text().unwrap(), "/b");
    assert_eq!(
        agent.get(origin.url("/c")).call().unwrap().text().unwrap(),
        "/c"
    );
    assert_eq!(
        agent.get(origin.url("/d")).call().unwrap().text().unwrap(),
        "/d"
    );

    let seen: Vec<_> = (0..4).map(|_| origin.next_request()).collect();
    assert_eq!(
        seen,
        [(0, "/a"), (1, "/b"), (1, "/c"), (1, "/d")].map(|(c, t)| (c, t.to_string()))
    );
    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [2, 0, 0, 0]);
    assert_eq!((stats.opened, stats.reused), (2, 2));
}

#[test]
fn the_default_idle_limits_are_32_per_host_and_100_in_total() {
    let origins: Vec<_> = (0..4).map(|_| Origin::plain()).collect();
    let agent = common::agent();

    // 33 connections to one host at once; 32 may rest in the pool.
    let held: Vec<_> = (0..33)
        .map(|i| agent.get(origins[0].url(&format!("/{i}"))).call().unwrap())
        .collect();
    for resp in held {
        resp.text().unwrap();
    }
    let stats = origins[0].stats(&agent);
    assert_eq!((stats.opened, stats.idle), (33, 32));
    assert_eq!(stats.closed.pool_full, 1);

    // 26 more to each of the three other hosts: 32 + 78 = 110 idle in all,
    // and the 10 least recently used go, all from the first host.
    let held: Vec<_> = origins[1..]
        .iter()
        .flat_map(|o| (0..26).map(|i| o.url(&format!("/{i}"))))
        .map(|url| agent.get(url).call().unwrap())
        .collect();
    for resp in held {
        resp.text().unwrap();
    }
    assert_eq!(agent.pool_stats().idle(), 100);
    let stats = origins[0].stats(&agent);
    assert_eq!((stats.idle, stats.closed.pool_full), (22, 11));
    for origin in &origins[1..] {
        assert_eq!(origin.stats(&agent).idle, 26);
    }
}

#[test]
fn max_idle_per_host_zero_opens_a_new_connection_for_every_request() {
    let origin = Origin::plain();
    let agent = common::builder().max_idle_per_host(0).build().unwrap();

    for i in 0..3 {
        let path = format!("/{i}");
        let resp = agent.get(origin.url(&path)).call().unwrap();
        assert!(!resp.timings().reused);
        assert_eq!(resp.text().unwrap(), path);
        assert_eq!(origin.next_request(), (i, path));
        assert_eq!(origin.closed_by_client(), i);
    }
    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [0, 0, 0, 0]);
    assert_eq!((stats.opened, stats.reused), (3, 0));
    assert_eq!(stats.closed.pool_full, 3);
    assert_eq!(stats.closed.total(), 3);
}

#[test]
fn max_idle_per_host_closes_connections_beyond_it() {
    let origin = Origin::plain();
    let agent = common::builder().max_idle_per_host(1).build().unwrap();

    let a = agent.get(origin.url("/a")).call().unwrap();
    let b = agent.get(origin.url("/b")).call().unwrap();
    assert_eq!(a.text().unwrap(), "/a");
    assert_eq!(b.text().unwrap(), "/b");

    assert_eq!(origin.closed_by_client(), 1);
    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!(stats.closed.pool_full, 1);
    assert_eq!(stats.closed.total(), 1);
}

#[test]
fn max_idle_in_total_evicts_the_least_recently_used_connection() {
    let a = Origin::plain();
    let b = Origin::plain();
    let c = Origin::plain();
    let agent = common::builder().max_idle(2).build().unwrap();
    let get = |origin: &Origin, path: &str| {
        let body = agent.get(origin.url(path)).call().unwrap().text().unwrap();
        assert_eq!(body, path);
    };

    get(&a, "/1");
    get(&b, "/1");
    get(&c, "/1");
    // Three idle connections for a total of two: a's, the oldest, goes.
    assert_eq!(a.closed_by_client(), 0);
    assert_eq!(counts(&a.stats(&agent)), [0, 0, 0, 0]);
    assert_eq!(a.stats(&agent).closed.pool_full, 1);
    assert_eq!(b.stats(&agent).idle, 1);
    assert_eq!(c.stats(&agent).idle, 1);

    // Using b makes c the least recently used.
    get(&b, "/2");
    get(&a, "/2");
    assert_eq!(c.closed_by_client(), 0);
    assert_eq!(c.stats(&agent).closed.pool_full, 1);
    assert_eq!(agent.pool_stats().idle(), 2);
    assert_eq!(a.stats(&agent).idle, 1);
    let b_stats = b.stats(&agent);
    assert_eq!((b_stats.idle, b_stats.reused), (1, 1));
    assert_eq!(b_stats.closed.total(), 0);
}

// ---------------------------------------------------------------------------
// Idle eviction: the reaper, the server's Keep-Alive, max_lifetime

#[test]
fn the_reaper_closes_an_idle_connection_without_another_request() {
    let origin = Origin::plain();
    let agent = common::builder()
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();

    let started = Instant::now();
    assert_eq!(
        agent.get(origin.url("/")).call().unwrap().text().unwrap(),
        "/"
    );
    // No further request: only the reaper can close it.
    assert_eq!(origin.closed_by_client(), 0);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [0, 0, 0, 0]);
    assert_eq!(
        stats.closed,
        ClosedCounts::default().with(CloseReason::IdleTimeout, 1)
    );
}

#[test]
fn server_keep_alive_timeout_closes_the_connection_a_little_earlier() {
    // Keep-Alive: timeout=1 caps the idle life at 1 s - min(1 s / 4, 1 s) =
    // 750 ms, well under the agent's 90 s idle timeout.
    let origin = Origin::start(|_| "Keep-Alive: timeout=1\r\n");
    let agent = common::agent();

    let started = Instant::now();
    assert_eq!(
        agent.get(origin.url("/")).call().unwrap().text().unwrap(),
        "/"
    );
    assert_eq!(origin.closed_by_client(), 0);
    assert!(started.elapsed() >= Duration::from_millis(750));

    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [0, 0, 0, 0]);
    assert_eq!(stats.closed.idle_timeout, 1);
    assert_eq!(stats.closed.total(), 1);
}

#[test]
fn an_earlier_expiry_wakes_the_sleeping_reaper() {
    // /slow rests up to 3 s - 0.75 s = 2.25 s, /quick up to 0.75 s. The slow
    // connection goes idle first, so the reaper sleeps until its expiry; the
    // quick one, idle second, must still be closed first.
    let origin = Origin::start(|req| {
        if req.target == "/quick" {
            "Keep-Alive: timeout=1\r\n"
        } else {
            "Keep-Alive: timeout=3\r\n"
        }
    });
    let agent = common::agent();

    let slow = agent.get(origin.url("/slow")).call().unwrap();
    let quick = agent.get(origin.url("/quick")).call().unwrap();
    assert_eq!(slow.text().unwrap(), "/slow");
    assert_eq!(quick.text().unwrap(), "/quick");
    assert_eq!(
        origin.closed_by_client(),
        1,
        "the quick connection closes first"
    );
    assert_eq!(origin.stats(&agent).idle, 1);
    assert_eq!(origin.closed_by_client(), 0);
    assert_eq!(origin.stats(&agent).closed.idle_timeout, 2);
}

#[test]
fn max_lifetime_closes_an_idle_connection() {
    let origin = Origin::plain();
    let agent = common::builder()
        .max_lifetime(Duration::from_millis(300))
        .build()
        .unwrap();

    let started = Instant::now();
    assert_eq!(
        agent.get(origin.url("/")).call().unwrap().text().unwrap(),
        "/"
    );
    assert_eq!(origin.closed_by_client(), 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [0, 0, 0, 0]);
    assert_eq!(
        stats.closed,
        ClosedCounts::default().with(CloseReason::Lifetime, 1)
    );
}

#[test]
fn max_lifetime_closes_a_connection_that_comes_back_too_old() {
    let origin = Origin::plain();
    let lifetime = Duration::from_millis(200);
    let agent = common::builder().max_lifetime(lifetime).build().unwrap();

    let resp = agent.get(origin.url("/")).call().unwrap();
    let opened_before = Instant::now();
    let_time_pass(opened_before, lifetime);
    assert_eq!(resp.text().unwrap(), "/");

    let stats = origin.stats(&agent);
    assert_eq!(counts(&stats), [0, 0, 0, 0]);
    assert_eq!(stats.closed.lifetime, 1);
    assert_eq!(origin.closed_by_client(), 0);
}

// ---------------------------------------------------------------------------
// Liveness at checkout, and the stale-connection retry

/// Connection 0 answers one request and closes (no `Connection: close`);
/// later connections are served normally. `closed` hears when it has closed.
fn closes_after_first_answer(closed: Sender<()>) -> Server {
    Server::start(move |conn| {
        if conn.index == 0 {
            if let Some(req) = conn.read_request() {
                conn.write(&echo_target(&req, ""));
            }
            conn.close();
            let _ = closed.send(());
        } else {
            serve_plain(conn);
        }
    })
}

#[test]
fn liveness_check_discards_a_connection_the_server_closed() {
    let (closed_tx, closed) = mpsc::channel();
    let server = closes_after_first_answer(closed_tx);
    let key = server.pool_key();
    let agent = common::agent();

    assert_eq!(
        agent
            .get(server.url("/first"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/first"
    );
    closed.recv_timeout(IO_TIMEOUT).unwrap();
    // However recently it was used, a pooled connection is looked at first.

    // A POST is never retried, so its success shows the dead connection was
    // set aside before anything was written to it.
    let resp = agent.post(server.url("/post")).send_string("x").unwrap();
    assert!(!resp.timings().reused);
    assert_eq!(resp.timings().attempts, 1);
    assert_eq!(resp.text().unwrap(), "/post");

    let first = server.request();
    let post = server.request();
    assert_eq!((first.conn, post.conn), (0, 1));
    assert_eq!(post.method, "POST");
    let stats = host_stats(&agent, &key);
    assert_eq!((stats.opened, stats.reused), (2, 0));
    assert_eq!(
        stats.closed,
        ClosedCounts::default().with(CloseReason::ServerClosed, 1)
    );
}

#[test]
fn liveness_check_discards_a_connection_with_unsolicited_bytes() {
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    let (report, reports) = mpsc::channel();
    let server = Server::start(move |conn| {
        if conn.index == 0 {
            if let Some(req) = conn.read_request() {
                conn.write(&echo_target(&req, ""));
            }
            if go.lock().unwrap().recv_timeout(IO_TIMEOUT).is_err() {
                return;
            }
            conn.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n");
            let _ = report.send(PeerEnd::SentData);
            let _ = report.send(conn.wait_for_request_or_close());
        } else {
            serve_plain(conn);
        }
    });
    let key = server.pool_key();
    let agent = common::agent();

    assert_eq!(
        agent
            .get(server.url("/first"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/first"
    );
    go_tx.send(()).unwrap();
    assert_eq!(reports.recv_timeout(IO_TIMEOUT), Ok(PeerEnd::SentData));

    let resp = agent.post(server.url("/post")).send_string("x").unwrap();
    assert!(!resp.timings().reused);
    assert_eq!(resp.text().unwrap(), "/post");
    // The connection with the stray response was closed, not read from.
    assert_eq!(reports.recv_timeout(IO_TIMEOUT * 2), Ok(PeerEnd::Closed));

    assert_eq!(server.request().conn, 0);
    assert_eq!(server.request().conn, 1);
    let stats = host_stats(&agent, &key);
    assert_eq!((stats.opened, stats.reused), (2, 0));
    assert_eq!(stats.closed.server_closed, 1);
    assert_eq!(stats.closed.total(), 1);
}

/// Connection 0 answers `/first` with `ok`; when the test says so, it sends a
/// second response nobody asked for (`POISON`), reports it, and then answers
/// whatever else arrives with [`echo_target`]. Later connections are served
/// normally. A client that reused connection 0 would read `POISON` as the
/// answer to its next request, and every later answer one request late.
fn sends_a_late_response(tls: bool) -> (Server, Sender<()>, Receiver<PeerEnd>) {
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    let (report, reports) = mpsc::channel();
    let script = move |conn: &mut Conn| {
        if conn.index == 0 {
            if conn.read_request().is_some() {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            if go.lock().unwrap().recv_timeout(IO_TIMEOUT).is_err() {
                return;
            }
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON");
            let _ = report.send(PeerEnd::SentData);
            // A client that does not look would send its next request here.
            let _ = report.send(conn.wait_for_request_or_close());
            serve_plain(conn);
        } else {
            serve_plain(conn);
        }
    };
    let server = if tls {
        Server::start_tls(common::pki().valid.clone(), script)
    } else {
        Server::start(script)
    };
    (server, go_tx, reports)
}

fn assert_a_late_response_is_never_the_next_answer(tls: bool) {
    let (server, go, reports) = sends_a_late_response(tls);
    let key = if tls {
        format!("https://localhost:{}", server.port())
    } else {
        server.pool_key()
    };
    let url = |path: &str| {
        if tls {
            server.https_url(path)
        } else {
            server.url(path)
        }
    };
    let agent = common::builder()
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();

    assert_eq!(
        agent.get(url("/first")).call().unwrap().text().unwrap(),
        "ok"
    );
    let idle_from = Instant::now();
    go.send(()).unwrap();
    assert_eq!(reports.recv_timeout(IO_TIMEOUT), Ok(PeerEnd::SentData));
    // The caller waits 100 ms, well inside any "recently used" window.
    let_time_pass(idle_from, Duration::from_millis(100));

    for (i, path) in ["/a", "/b", "/c"].into_iter().enumerate() {
        let resp = agent.get(url(path)).call().unwrap();
        assert_eq!(resp.timings().reused, i > 0, "{path}");
        assert_eq!(resp.text().unwrap(), path);
    }
    // Connection 0 was closed, never written to again.
    assert_eq!(reports.recv_timeout(IO_TIMEOUT * 2), Ok(PeerEnd::Closed));
    let conns: Vec<usize> = (0..4).map(|_| server.request().conn).collect();
    assert_eq!(conns, [0, 1, 1, 1]);
    let stats = host_stats(&agent, &key);
    assert_eq!((stats.opened, stats.reused), (2, 2));
    assert_eq!(stats.closed.server_closed, 1);
    assert_eq!(stats.closed.total(), 1);
}

#[test]
fn a_late_response_is_never_read_as_the_next_requests_answer() {
    assert_a_late_response_is_never_the_next_answer(false);
}

#[cfg(feature = "tls")]
#[test]
fn a_late_response_over_tls_is_never_read_as_the_next_requests_answer() {
    assert_a_late_response_is_never_the_next_answer(true);
}

/// A server that answered without `Connection: close` and then closed: the
/// next request, whatever its method and however soon, goes on a new
/// connection, and nothing is retried (a POST never could be).
#[test]
fn a_request_right_after_a_keep_alive_close_goes_on_a_new_connection() {
    let cases: [(&str, Call); 3] = [
        ("POST", |a, u| a.post(u).send_string("post body")),
        ("PUT", |a, u| {
            a.put(u)
                .send_reader(io::Cursor::new(b"put body from a reader".to_vec()))
        }),
        ("GET", |a, u| a.get(u).call()),
    ];
    for (method, call) in cases {
        let (closed_tx, closed) = mpsc::channel();
        let server = closes_after_first_answer(closed_tx);
        let agent = common::agent();
        assert_eq!(
            agent
                .get(server.url("/first"))
                .call()
                .unwrap()
                .text()
                .unwrap(),
            "/first"
        );
        closed.recv_timeout(IO_TIMEOUT).unwrap();
        // No time passes: the close is already visible to the look at checkout.
        let resp = call(&agent, &server.url("/next"))
            .unwrap_or_else(|e| panic!("{method} after a keep-alive close failed: {e}"));
        assert!(!resp.timings().reused, "{method}");
        assert_eq!(resp.timings().attempts, 1, "{method}");
        assert_eq!(resp.text().unwrap(), "/next", "{method}");
        let first = server.request();
        let next = server.request();
        assert_eq!((first.conn, next.conn), (0, 1), "{method}");
        assert_eq!(next.method, method);
        assert_eq!(
            host_stats(&agent, &server.pool_key()).closed.server_closed,
            1
        );
    }
}

/// Every connection answers its first request, then reads the second and
/// closes without a word: what a server does when its idle timer fires just
/// as a request arrives. The request reached the server, and the client
/// cannot know whether it was processed.
fn answers_once_then_drops_the_next_request() -> Server {
    Server::start(|conn| {
        if let Some(req) = conn.read_request() {
            conn.write(&echo_target(&req, ""));
        }
        if conn.read_request().is_some() {
            conn.close();
        }
    })
}

type Call = fn(&Agent, &str) -> Result<windlass::Response, Error>;

#[test]
fn idempotent_requests_are_retried_once_on_a_fresh_connection_after_a_stale_one() {
    let server = answers_once_then_drops_the_next_request();
    let key = server.pool_key();
    let agent = common::agent();
    let cases: [(&str, Call); 8] = [
        ("GET", |a, u| a.get(u).call()),
        ("HEAD", |a, u| a.head(u).call()),
        ("OPTIONS", |a, u| a.options(u).call()),
        ("TRACE", |a, u| a.request("TRACE", u).call()),
        ("PUT", |a, u| a.put(u).send_string("put body")),
        ("DELETE", |a, u| a.delete(u).call()),
        ("POST", |a, u| {
            a.post(u)
                .header("Idempotency-Key", "k-1")
                .send_string("keyed body")
        }),
        ("POST", |a, u| {
            a.post(u).idempotent(true).send_string("marked body")
        }),
    ];

    assert_eq!(
        agent
            .get(server.url("/warm"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/warm"
    );
    assert_eq!(server.request().conn, 0);

    for (i, (method, call)) in cases.iter().enumerate() {
        // Connection i answered one request and is idle in the pool; the
        // server drops the next request it reads on it.
        let path = format!("/case{i}");
        let resp = call(&agent, &server.url(&path))
            .unwrap_or_else(|e| panic!("{method} {path} was not retried: {e}"));
        assert_eq!(resp.timings().attempts, 2, "{method} {path}");
        assert!(!resp.timings().reused, "{method} {path}: the retry reused");
        let expected = if *method == "HEAD" { "" } else { path.as_str() };
        assert_eq!(resp.text().unwrap(), expected);

        let stale = server.request();
        let retry = server.request();
        assert_eq!((stale.conn, retry.conn), (i, i + 1), "{method} {path}");
        for req in [&stale, &retry] {
            assert_eq!(
                (req.method.as_str(), req.target.as_str()),
                (*method, path.as_str())
            );
        }
        assert_eq!(
            stale.body, retry.body,
            "{method} {path}: the body was not sent again"
        );
    }

    let stats = host_stats(&agent, &key);
    let n = cases.len() as u64;
    assert_eq!((stats.opened, stats.reused), (n + 1, n));
    assert_eq!(
        stats.closed,
        ClosedCounts::default().with(CloseReason::Error, n)
    );
}

#[test]
fn post_on_a_stale_connection_gets_the_error() {
    let server = answers_once_then_drops_the_next_request();
    let key = server.pool_key();
    let agent = common::agent();

    assert_eq!(
        agent
            .get(server.url("/warm"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/warm"
    );
    let err = agent
        .post(server.url("/post"))
        .send_string("once")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");

    // A request marked not idempotent is not retried either.
    assert_eq!(
        agent
            .get(server.url("/next"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/next"
    );
    let err = agent
        .get(server.url("/marked"))
        .idempotent(false)
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(
        agent
            .get(server.url("/last"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/last"
    );

    // Each failed request reached the server exactly once.
    let seen: Vec<_> = (0..5)
        .map(|_| {
            let r = server.request();
            (r.conn, r.method, r.target)
        })
        .collect();
    let expected = [
        (0, "GET", "/warm"),
        (0, "POST", "/post"),
        (1, "GET", "/next"),
        (1, "GET", "/marked"),
        (2, "GET", "/last"),
    ]
    .map(|(c, m, t)| (c, m.to_string(), t.to_string()));
    assert_eq!(seen, expected);
    assert!(server.try_request().is_none());
    let stats = host_stats(&agent, &key);
    assert_eq!(stats.closed.error, 2);
    assert_eq!(stats.closed.total(), 2);
}

#[test]
fn the_stale_connection_retry_happens_only_once() {
    // Connection 0 answers once and drops the next request; every later
    // connection drops its very first request.
    let server = Server::start(|conn| {
        if conn.index == 0 {
            if let Some(req) = conn.read_request() {
                conn.write(&echo_target(&req, ""));
            }
        }
        if conn.read_request().is_some() {
            conn.close();
        }
    });
    let agent = common::agent();

    assert_eq!(
        agent
            .get(server.url("/warm"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "/warm"
    );
    let err = agent.get(server.url("/twice")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(err.timings().map(|t| t.attempts), Some(2));

    let seen: Vec<_> = (0..3)
        .map(|_| {
            let r = server.request();
            (r.conn, r.target)
        })
        .collect();
    assert_eq!(
        seen,
        [(0, "/warm"), (0, "/twice"), (1, "/twice")].map(|(c, t)| (c, t.to_string()))
    );
    assert!(server.try_request().is_none());
}

/// A small deterministic generator (xorshift64*), so a "random" schedule is
/// the same on every run.
fn scramble(seed: u64) -> u64 {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn a_server_closing_idle_connections_at_random_never_fails_an_idempotent_request() {
    // Each connection answers between 1 and 4 requests, then closes without
    // having said `Connection: close`.
    let server = Server::start(|conn| {
        let limit = 1 + scramble(conn.index as u64) % 4;
        for _ in 0..limit {
            let Some(req) = conn.read_request() else {
                return;
            };
            conn.write(&echo_target(&req, ""));
        }
        conn.close();
    });
    let key = server.pool_key();
    let agent = common::builder()
        .max_connections_per_host(2)
        .build()
        .unwrap();

    let threads = 4;
    let per_thread = 50;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let agent = agent.clone();
            let base = server.url("");
            thread::spawn(move || {
                let mut retries = 0;
                for i in 0..per_thread {
                    let path = format!("/{t}/{i}");
                    let resp = agent
                        .get(format!("{base}{path}"))
                        .call()
                        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
                    retries += resp.timings().attempts - 1;
                    assert_eq!(resp.text().unwrap(), path);
                }
                retries
            })
        })
        .collect();
    let retries: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();

    // Every request reached the server exactly once with an answer; a stale
    // attempt never gets as far as the server's read.
    for _ in 0..threads * per_thread {
        server.request();
    }
    assert!(server.try_request().is_none());
    let stats = host_stats(&agent, &key);
    assert_eq!([stats.active, stats.connecting, stats.waiting], [0, 0, 0]);
    assert!(stats.open() <= 2);
    // Each connection that failed under a request cost exactly one retry.
    assert_eq!(stats.closed.error, u64::from(retries), "{stats:?}");
    // The server closed dozens of connections the client had pooled; each was
    // found either by a failed attempt or by the liveness probe.
    assert!(
        stats.closed.error + stats.closed.server_closed > 0,
        "{stats:?}"
    );
    assert_eq!(stats.opened, stats.closed.total() + stats.idle as u64);
}

// ---------------------------------------------------------------------------
// pool_stats()

#[test]
fn pool_stats_follow_a_connection_through_every_state() {
    let origin = Origin::plain();
    let key = gated_key(&origin);
    let (agent, gate) = gated_agent(common::builder());
    assert!(agent.pool_stats().host(&key).is_none());

    let (tx, rx) = mpsc::channel();
    let first = {
        let agent = agent.clone();
        let url = gated_url(&origin, "/first");
        thread::spawn(move || tx.send(agent.get(&url).call()).unwrap())
    };
    gate.wait_entered();
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [0, 0, 1, 0], "connecting");
    assert_eq!((stats.open(), stats.opened), (1, 0));

    gate.let_one_through();
    let resp = rx.recv_timeout(IO_TIMEOUT).unwrap().unwrap();
    first.join().unwrap();
    let stats = host_stats(&agent, &key);
    assert_eq!(
        counts(&stats),
        [0, 1, 0, 0],
        "active while the body is unread"
    );
    assert_eq!(stats.opened, 1);

    assert_eq!(resp.text().unwrap(), "/first");
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [1, 0, 0, 0], "idle");
    assert_eq!((stats.opened, stats.reused), (1, 0));

    let second = agent.get(gated_url(&origin, "/second")).call().unwrap();
    assert!(second.timings().reused);
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [0, 1, 0, 0]);
    assert_eq!((stats.opened, stats.reused), (1, 1));

    // A short unread body is drained on drop and its connection kept.
    drop(second);
    let stats = host_stats(&agent, &key);
    assert_eq!(counts(&stats), [1, 0, 0, 0]);
    assert_eq!(stats.closed, ClosedCounts::default());
    assert_eq!(agent.pool_stats().hosts.len(), 1);
}

// ---------------------------------------------------------------------------
// The agent's end

#[test]
fn a_body_outliving_its_agent_closes_its_connection_at_the_end() {
    let origin = Origin::plain();
    let agent = common::agent();
    let resp = agent.get(origin.url("/held")).call().unwrap();
    drop(agent);
    assert_eq!(resp.text().unwrap(), "/held");
    assert_eq!(origin.closed_by_client(), 0);
}

/// Threads of this process named `windlass-reaper`: one for the whole
/// process, however many agents there are, and none once no pool needs it.
fn reapers() -> usize {
    reaper_tids().len()
}

/// The thread ids of [`reapers`].
fn reaper_tids() -> Vec<String> {
    common::threads()
        .into_iter()
        .filter(|(_, name)| name == "windlass-reaper")
        .map(|(tid, _)| tid)
        .collect()
}

const LEAK_CHECK: &str = "agent_drop_leak_check_in_a_process_of_its_own";

#[test]
fn dropping_every_agent_clone_releases_threads_and_sockets() {
    run_alone(LEAK_CHECK);
}

#[test]
#[ignore = "run alone in a child process by dropping_every_agent_clone_releases_threads_and_sockets"]
fn agent_drop_leak_check_in_a_process_of_its_own() {
    if !alone(LEAK_CHECK) {
        return;
    }
    let threads_before = common::thread_count();
    let fds_before = common::open_fds();

    let origin = Origin::plain();
    let agent = common::agent();
    assert_eq!(
        reapers(),
        0,
        "no reaper before a connection rests in the pool"
    );
    let workers = 4;
    let barrier = Arc::new(Barrier::new(workers));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let agent = agent.clone();
            let barrier = barrier.clone();
            let url = origin.url(&format!("/{w}"));
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..5 {
                    agent.get(&url).call().unwrap().text().unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let stats = origin.stats(&agent);
    assert_eq!([stats.active, stats.connecting, stats.waiting], [0, 0, 0]);
    assert!(stats.idle >= 1);
    assert_eq!(stats.opened, stats.idle as u64, "nothing was closed yet");
    // A new thread names itself once it runs, hence the wait.
    common::wait_until("an idle connection starts the reaper", IO_TIMEOUT, || {
        reapers() == 1
    });

    let last = agent.clone();
    drop(agent);
    assert_eq!(reapers(), 1, "the reaper lives while a clone is left");
    drop(last);
    common::wait_until("the reaper thread has ended", IO_TIMEOUT, || reapers() == 0);
    // Every idle connection was closed when the last clone went.
    for _ in 0..stats.opened {
        origin.closed_by_client();
    }

    drop(origin);
    common::wait_for_baseline(threads_before, fds_before, IO_TIMEOUT);
}

const ONE_SHOT: &str = "one_shot_agents_share_one_reaper_in_a_process_of_its_own";

#[test]
fn agents_made_and_dropped_one_after_another_share_one_reaper() {
    run_alone(ONE_SHOT);
}

#[test]
#[ignore = "run alone in a child process by agents_made_and_dropped_one_after_another_share_one_reaper"]
fn one_shot_agents_share_one_reaper_in_a_process_of_its_own() {
    if !alone(ONE_SHOT) {
        return;
    }
    let threads_before = common::thread_count();
    let fds_before = common::open_fds();
    let origin = Origin::plain();

    // Watches the count between the checks below too, until told to stop.
    let (stop, stopped) = mpsc::channel::<()>();
    let watcher = thread::spawn(move || {
        let mut most = 0;
        while let Err(mpsc::TryRecvError::Empty) = stopped.try_recv() {
            most = most.max(reapers());
            thread::yield_now();
        }
        most
    });

    let mut tids = std::collections::BTreeSet::new();
    for i in 0..50 {
        let agent = common::agent();
        let path = format!("/{i}");
        assert_eq!(
            agent.get(origin.url(&path)).call().unwrap().text().unwrap(),
            path
        );
        assert_eq!(origin.stats(&agent).idle, 1);
        // The idle connection registered this agent's pool with the reaper.
        // (A new thread names itself once it runs, hence the wait.)
        common::wait_until("one reaper for the process", IO_TIMEOUT, || reapers() == 1);
        tids.extend(reaper_tids());
        drop(agent);
        assert!(
            reapers() <= 1,
            "agent {i}: more than one reaper after a drop"
        );
        // The drop closed the idle connection without waiting for the reaper.
        origin.closed_by_client();
    }
    // The thread outlives a dropped agent for a moment, so the next one's
    // pool is served by the same thread instead of a new one per agent. (A
    // machine stalled for over that moment may start another, hence `<`.)
    assert!(
        tids.len() < 50,
        "a new reaper thread for every agent: {tids:?}"
    );
    // With no pool left to look after, the thread ends on its own.
    common::wait_until("the reaper thread has ended", IO_TIMEOUT, || reapers() == 0);

    stop.send(()).unwrap();
    let most = watcher.join().unwrap();
    assert_eq!(most, 1, "never more than one reaper at a time");

    drop(origin);
    common::wait_for_baseline(threads_before, fds_before, IO_TIMEOUT);
}
