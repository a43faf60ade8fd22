//! What the deadline and cancel tests share: servers that stall in exactly one
//! phase of a request, a listener whose accept queue is full, a resolver that
//! blocks, and a way to run a call on its own thread and time it.
//!
//! Nothing here sleeps to synchronise. A stalled server reports how far the
//! request got through a channel; a server that must wait does so on a
//! channel that is closed when the test ends, so it lets go at once.

#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use windlass::{Error, ErrorKind, Phase};

use crate::common::{self, is_timeout, Conn, Server};

/// The limit most tests set: short, so the suite stays fast.
pub const LIMIT: Duration = Duration::from_millis(250);
/// How late a call may return after its limit (or after a cancel) on a loaded
/// 2-core machine.
pub const MARGIN: Duration = Duration::from_millis(1500);
/// How early a call may return before its limit: clocks differ a little.
pub const EARLY: Duration = Duration::from_millis(10);
/// Longest a test waits for anything before it declares the library hung.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// Longest a stalled server holds a connection if nobody releases it.
const HOLD_MAX: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Running a call on its own thread

/// A call running on its own thread.
pub struct Pending<T> {
    done: Receiver<(T, Instant)>,
    started: Instant,
}

/// What a finished call returned, and when.
pub struct Finished<T> {
    pub value: T,
    /// From just before the call started until it returned.
    pub elapsed: Duration,
    pub returned_at: Instant,
}

/// Start `call` on its own thread, so a test can act while it is blocked and
/// a hung call fails the test instead of hanging the suite.
pub fn spawn<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
    let (tx, done) = crossbeam_channel::bounded(1);
    let started = Instant::now();
    std::thread::spawn(move || {
        let value = call();
        let _ = tx.send((value, Instant::now()));
    });
    Pending { done, started }
}

impl<T> Pending<T> {
    /// Wait for the call to return; panics after [`PATIENCE`].
    pub fn finish(self) -> Finished<T> {
        match self.done.recv_timeout(PATIENCE) {
            Ok((value, returned_at)) => Finished {
                value,
                elapsed: returned_at - self.started,
                returned_at,
            },
            Err(_) => panic!("the call had not returned after {PATIENCE:?}"),
        }
    }
}

/// Run `call` on its own thread; what it returned and how long it took.
pub fn timed<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> (T, Duration) {
    let done = spawn(call).finish();
    (done.value, done.elapsed)
}

/// Cancel `token` now and wait for `call`; what it returned and how long it
/// took to return after the cancel.
pub fn cancel_and_finish<T>(token: &windlass::CancelToken, call: Pending<T>) -> (T, Duration) {
    let cancelled_at = Instant::now();
    token.cancel();
    let done = call.finish();
    (
        done.value,
        done.returned_at.saturating_duration_since(cancelled_at),
    )
}

// ---------------------------------------------------------------------------
// Assertions

/// The call failed with a timeout in `phase`.
pub fn assert_timeout<T>(result: Result<T, Error>, phase: Phase) -> Error {
    match result {
        Ok(_) => panic!("expected a timeout in phase {phase}, the call succeeded"),
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Timeout(phase), "{err}");
            err
        }
    }
}

/// The call failed because it was cancelled.
pub fn assert_cancelled<T>(result: Result<T, Error>) -> Error {
    match result {
        Ok(_) => panic!("expected the call to be cancelled, it succeeded"),
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
            err
        }
    }
}

/// `elapsed` is `limit`, give or take what a loaded machine adds.
pub fn assert_took(elapsed: Duration, limit: Duration) {
    assert!(
        elapsed + EARLY >= limit,
        "returned after {elapsed:?}, before its limit of {limit:?}"
    );
    assert!(
        elapsed < limit + MARGIN,
        "returned after {elapsed:?}; the limit was {limit:?}"
    );
}

/// A cancelled call returned promptly.
pub fn assert_prompt(after_cancel: Duration) {
    assert!(
        after_cancel < MARGIN,
        "returned {after_cancel:?} after the cancel"
    );
}

/// Wait, without sleeping, until `ready` holds; panics after [`PATIENCE`].
/// For a state the library sends no signal for (a request queued in the
/// pool): each check is cheap and the state shows up within milliseconds.
pub fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    common::wait_until(what, PATIENCE, ready);
}

// ---------------------------------------------------------------------------
// A server that stalls

/// What a stalling script can do besides talk to its connection.
#[derive(Clone)]
pub struct Ctl {
    release: Receiver<()>,
    notes: Sender<&'static str>,
}

impl Ctl {
    /// Keep the connection open and do nothing (neither read nor write)
    /// until the test ends.
    pub fn hold(&self) {
        let _ = self.release.recv_timeout(HOLD_MAX);
    }

    /// Wait `pace` (pacing, not synchronisation); false once the test has
    /// ended and the script should stop.
    pub fn pause(&self, pace: Duration) -> bool {
        matches!(
            self.release.recv_timeout(pace),
            Err(RecvTimeoutError::Timeout)
        )
    }

    /// Tell the test how far the request got.
    pub fn note(&self, what: &'static str) {
        let _ = self.notes.send(what);
    }
}

/// A [`Server`] whose script gets a [`Ctl`].
pub struct Stalled {
    // Fields drop in order: closing `release` first lets every script go, so
    // the server's drop finds nothing left to wait for.
    release: Option<Sender<()>>,
    notes: Receiver<&'static str>,
    server: Server,
}

impl Stalled {
    /// A plain TCP server running `script` for every connection.
    pub fn start(script: impl Fn(&mut Conn, &Ctl) + Send + Sync + 'static) -> Stalled {
        let (release_tx, release) = crossbeam_channel::bounded::<()>(0);
        let (notes_tx, notes) = crossbeam_channel::unbounded();
        let ctl = Ctl {
            release,
            notes: notes_tx,
        };
        let server = Server::start(move |conn| script(conn, &ctl));
        Stalled {
            release: Some(release_tx),
            notes,
            server,
        }
    }

    /// Wait for the script to note `what`; panics after [`PATIENCE`].
    pub fn expect_note(&self, what: &'static str) {
        match self.notes.recv_timeout(PATIENCE) {
            Ok(got) => assert_eq!(got, what, "the server noted something else first"),
            Err(_) => panic!("the server never noted {what:?}"),
        }
    }
}

impl Deref for Stalled {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Reads the request, then never answers.
pub fn never_answers() -> Stalled {
    Stalled::start(|conn, ctl| {
        if conn.read_request().is_some() {
            ctl.hold();
        }
    })
}

/// Accepts TCP, reads the TLS ClientHello, and never answers it.
pub fn ignores_client_hello() -> Stalled {
    Stalled::start(|conn, ctl| {
        if conn.read_some() > 0 {
            ctl.note("client hello");
            ctl.hold();
        }
    })
}

/// Reads the request head, then stops reading: a large body fills the
/// socket buffers and the client's write stalls.
pub fn stops_reading() -> Stalled {
    Stalled::start(|conn, ctl| {
        if conn.read_request_head().is_some() {
            ctl.hold();
        }
    })
}

/// Answers with a head announcing `length` body bytes, sends `first`, and
/// then sends nothing more.
pub fn body_stalls_after(length: usize, first: &'static [u8]) -> Stalled {
    Stalled::start(move |conn, ctl| {
        if conn.read_request().is_some() {
            conn.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n").as_bytes());
            conn.write(first);
            ctl.note("body started");
            ctl.hold();
        }
    })
}

// ---------------------------------------------------------------------------
// A listener whose accept queue is full

/// Most connections opened to fill an accept queue (std listens with a
/// backlog of 128; Linux queues backlog + 1 before it drops SYNs).
const FILL_MAX: usize = 2000;
/// Longest filling may take.
const FILL_TIME: Duration = Duration::from_secs(20);
/// A connect to a listener with room completes in microseconds on loopback;
/// one that takes this long is not being answered.
const FILL_PROBE: Duration = Duration::from_millis(200);
/// The longer probe that confirms the queue is full.
const FILL_CONFIRM: Duration = Duration::from_millis(500);

/// A listener that never accepts, with its accept queue full: the kernel
/// drops a new connection's SYN, so the client's connect stalls (it would
/// retransmit after 1 s, 3 s, ...). Dropping it closes the listener and the
/// queued connections.
pub struct FullBacklog {
    listener: TcpListener,
    queued: Vec<TcpStream>,
}

impl FullBacklog {
    /// Fill a new listener's accept queue; `Err` says why that did not work.
    pub fn new() -> Result<FullBacklog, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut queued = Vec::new();
        while queued.len() < FILL_MAX && started.elapsed() < FILL_TIME {
            match TcpStream::connect_timeout(&addr, FILL_PROBE) {
                Ok(stream) => queued.push(stream),
                Err(e) if is_timeout(&e) => {
                    // One slow connect on a busy machine proves little; a
                    // second, longer one that also stalls does.
                    match TcpStream::connect_timeout(&addr, FILL_CONFIRM) {
                        Err(e) if is_timeout(&e) => return Ok(FullBacklog { listener, queued }),
                        Ok(stream) => queued.push(stream),
                        Err(e) => return Err(format!("connect to {addr}: {e}")),
                    }
                }
                Err(e) => return Err(format!("connect to {addr}: {e}")),
            }
        }
        Err(format!(
            "the accept queue of {addr} never filled: {} connections in {:?}",
            queued.len(),
            started.elapsed()
        ))
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    /// Connections sitting in the queue.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }
}

/// A full listener, or `None` after printing why the test is skipped.
pub fn full_backlog_or_skip(test: &str) -> Option<FullBacklog> {
    match FullBacklog::new() {
        Ok(full) => Some(full),
        Err(reason) => {
            eprintln!("{test}: skipped, cannot make a connect stall on this kernel: {reason}");
            None
        }
    }
}

/// A request [`Hook`](windlass::Hook) that tells the test when the request
/// starts a TCP connect.
pub struct ConnectStarted(Sender<SocketAddr>);

impl windlass::Hook for ConnectStarted {
    fn on_event(&self, _request: &windlass::RequestInfo<'_>, event: &windlass::Event<'_>) {
        if let windlass::Event::ConnectStart { addr } = event {
            let _ = self.0.send(*addr);
        }
    }
}

/// The hook, and where it reports each connect it sees start.
pub fn connect_started() -> (ConnectStarted, Receiver<SocketAddr>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (ConnectStarted(tx), rx)
}

// ---------------------------------------------------------------------------
// Resolvers

/// Keeps [`BlockingResolver`]s blocked until it is dropped, and hears about
/// every lookup they start.
pub struct ResolverGate {
    called: Receiver<String>,
    _release: Sender<()>,
}

impl ResolverGate {
    /// Wait until the resolver was asked for a name; panics after [`PATIENCE`].
    pub fn expect_lookup(&self) -> String {
        self.called
            .recv_timeout(PATIENCE)
            .expect("the resolver was never called")
    }
}

/// A resolver that blocks until its [`ResolverGate`] is dropped, then fails.
pub struct BlockingResolver {
    called: Sender<String>,
    release: Receiver<()>,
}

impl windlass::Resolver for BlockingResolver {
    fn resolve(&self, host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        let _ = self.called.send(host.to_string());
        let _ = self.release.recv_timeout(HOLD_MAX);
        Err(io::Error::other("released by the test"))
    }
}

/// A resolver that blocks, and the gate that releases it.
pub fn blocking_resolver() -> (BlockingResolver, ResolverGate) {
    let (called_tx, called) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::bounded(0);
    (
        BlockingResolver {
            called: called_tx,
            release,
        },
        ResolverGate {
            called,
            _release: release_tx,
        },
    )
}

/// Answers with a head announcing `length` body bytes, then sends one byte
/// every `pace`: every read succeeds, none is ever idle for long.
pub fn dribbles(length: usize, pace: Duration) -> Stalled {
    Stalled::start(move |conn, ctl| {
        if conn.read_request().is_none() {
            return;
        }
        conn.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n").as_bytes());
        for _ in 0..length.min(600) {
            conn.write(b"x");
            if !ctl.pause(pace) {
                return;
            }
        }
    })
}
