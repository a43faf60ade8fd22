//! How fast a blocked windlass call gives up.
//!
//! `cargo bench --bench cancel` runs a TCP server on 127.0.0.1 that reads
//! each request and never answers, then measures
//!
//! - cancel latency: the call is blocked reading the response head; another
//!   thread records an instant and calls `token.cancel()`; the latency runs
//!   from that instant to the call's return;
//! - deadline overshoot: a call with `.timeout(50 ms)`; the overshoot is the
//!   time it took beyond those 50 ms;
//! - cancel latency while the call waits for a resolver that never answers
//!   (the lookup runs on the process's resolver threads), and while it
//!   waits for a TCP connect to a listener whose accept queue is full (the
//!   connect waits on the calling thread).
//!
//! A third row, without a target, measures the same overshoot for a bare
//! std socket with a read timeout (`SO_RCVTIMEO`): the floor of any client
//! that times its reads out that way on this machine. Then the same for
//! response-head limits of 10 s and 30 s (three calls each, side by side),
//! where the kernel's timer wheel rounds a plain socket timeout by hundreds
//! of milliseconds.
//!
//! Prints median and p99 of each against the targets (median < 1 ms,
//! p99 < 10 ms) with PASS/MISS. `--quick` (or `WINDLASS_BENCH_QUICK=1`) runs
//! 10 iterations instead of 200. The exit status reports errors (a call that
//! did not end the way it should), never a missed target.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use windlass::{CancelToken, ErrorKind, Phase};

/// The deadline of the overshoot measurement.
const DEADLINE: Duration = Duration::from_millis(50);
/// How long the canceller waits after the request arrived, so that the
/// call is surely blocked in `read` when it cancels.
const SETTLE: Duration = Duration::from_millis(2);

/// Starts the stalling server; the receiver gets one message per request
/// head the server has read in full.
fn stall_server() -> (SocketAddr, Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            thread::spawn(move || hold(stream, tx));
        }
    });
    (addr, rx)
}

/// Reads requests and reports each head; answers nothing. Returns when the
/// client closes the connection.
fn hold(mut stream: TcpStream, heads: Sender<()>) {
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            let _ = heads.send(());
        }
    }
}

/// Latencies in seconds, and the calls that ended the wrong way.
#[derive(Default, Debug)]
struct Sample {
    secs: Vec<f64>,
    errors: Vec<String>,
}

/// A call blocked on the head, cancelled from another thread.
fn cancel_latency(agent: &windlass::Agent, url: &str, heads: &Mutex<Receiver<()>>) -> Sample {
    let mut sample = Sample::default();
    // A stale message from an earlier failed iteration would let the
    // canceller fire before the request is out.
    while heads.lock().unwrap().try_recv().is_ok() {}
    let token = CancelToken::new();
    let (cancelled_at, result, returned_at) = thread::scope(|s| {
        let canceller = s.spawn(|| {
            let arrived = heads.lock().unwrap();
            arrived.recv_timeout(Duration::from_secs(5)).ok()?;
            thread::sleep(SETTLE);
            let at = Instant::now();
            token.cancel();
            Some(at)
        });
        let result = agent.get(url).cancel_token(&token).call();
        let returned_at = Instant::now();
        (canceller.join().expect("canceller"), result, returned_at)
    });
    match (cancelled_at, result) {
        (Some(at), Err(e)) if e.kind() == ErrorKind::Cancelled => {
            sample.secs.push((returned_at - at).as_secs_f64());
        }
        (None, _) => sample
            .errors
            .push("the request never reached the server".into()),
        (_, Err(e)) => sample.errors.push(format!("wrong error: {e}")),
        (_, Ok(_)) => sample.errors.push("a response from a silent server".into()),
    }
    sample
}

/// A resolver that reports each lookup and holds it until the bench ends.
struct Silent {
    asked: Mutex<Sender<()>>,
    released: Arc<(Mutex<bool>, Condvar)>,
}

impl windlass::Resolver for Silent {
    fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let _ = self.asked.lock().expect("asked").send(());
        let (lock, cvar) = &*self.released;
        let released = lock.lock().expect("released");
        let _ = cvar.wait_timeout_while(released, Duration::from_secs(60), |r| !*r);
        Err(std::io::Error::other("the bench is over"))
    }
}

/// A call cancelled once `started` says it is blocked (a lookup began, a
/// connect began): the latency from `cancel()` to the call's return.
fn cancel_blocked(
    call: impl FnOnce(&CancelToken) -> Result<(), windlass::Error> + Send,
    started: &Mutex<Receiver<()>>,
) -> Sample {
    let mut sample = Sample::default();
    let token = CancelToken::new();
    let (cancelled_at, result, returned_at) = thread::scope(|s| {
        let canceller = s.spawn(|| {
            let started = started.lock().expect("started");
            started.recv_timeout(Duration::from_secs(5)).ok()?;
            thread::sleep(SETTLE);
            let at = Instant::now();
            token.cancel();
            Some(at)
        });
        let result = call(&token);
        let returned_at = Instant::now();
        (canceller.join().expect("canceller"), result, returned_at)
    });
    match (cancelled_at, result) {
        (Some(at), Err(e)) if e.kind() == ErrorKind::Cancelled => {
            sample.secs.push((returned_at - at).as_secs_f64());
        }
        (None, _) => sample.errors.push("the call never blocked".into()),
        (_, Err(e)) => sample.errors.push(format!("wrong error: {e}")),
        (_, Ok(())) => sample
            .errors
            .push("a call that should block succeeded".into()),
    }
    sample
}

/// Cancel while the lookup hangs, a new name each time.
fn cancel_dns(n: usize) -> Sample {
    let (asked, started) = mpsc::channel();
    let started = Mutex::new(started);
    let released = Arc::new((Mutex::new(false), Condvar::new()));
    let agent = windlass::Agent::builder()
        .resolver(Silent {
            asked: Mutex::new(asked),
            released: Arc::clone(&released),
        })
        .build()
        .expect("agent");
    let sample = repeat(n, || {
        let url = format!("http://name{}.test/", rand_suffix());
        cancel_blocked(
            |t| agent.get(&url).cancel_token(t).call().map(drop),
            &started,
        )
    });
    *released.0.lock().expect("released") = true;
    released.1.notify_all();
    sample
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A listener whose accept queue is full, so a new connect stalls; `None`
/// when the kernel does not let it fill.
fn full_listener() -> Option<(TcpListener, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = listener.local_addr().ok()?;
    let mut queued = Vec::new();
    while queued.len() < 4096 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(e) if is_timeout(&e) => return Some((listener, queued)),
            Err(_) => return None,
        }
    }
    None
}

/// Reports each connect a request starts.
struct ConnectStarted(Mutex<Sender<()>>);

impl windlass::Hook for ConnectStarted {
    fn on_event(&self, _: &windlass::RequestInfo<'_>, event: &windlass::Event<'_>) {
        if let windlass::Event::ConnectStart { .. } = event {
            let _ = self.0.lock().expect("started").send(());
        }
    }
}

/// Cancel while the connect stalls.
fn cancel_connect(n: usize) -> Option<Sample> {
    let (full, _queued) = full_listener()?;
    let url = format!("http://{}/", full.local_addr().ok()?);
    let (tx, started) = mpsc::channel();
    let started = Mutex::new(started);
    let agent = windlass::Agent::builder()
        .hook(ConnectStarted(Mutex::new(tx)))
        .build()
        .expect("agent");
    Some(repeat(n, || {
        cancel_blocked(
            |t| agent.get(&url).cancel_token(t).call().map(drop),
            &started,
        )
    }))
}

/// How far past `limit` a call against the silent server returned, when
/// `limited` sets that limit (an overall timeout, or a response-head limit:
/// the long ones are what the kernel's timer wheel rounds most coarsely).
fn overshoot(
    agent: &windlass::Agent,
    url: &str,
    limit: Duration,
    limited: fn(windlass::RequestBuilder, Duration) -> windlass::RequestBuilder,
) -> Sample {
    let mut sample = Sample::default();
    let start = Instant::now();
    let result = limited(agent.get(url), limit).call();
    let elapsed = start.elapsed();
    match result {
        Err(e) if e.kind() == ErrorKind::Timeout(Phase::ResponseHead) => {
            sample
                .secs
                .push(elapsed.as_secs_f64() - limit.as_secs_f64());
        }
        Err(e) => sample.errors.push(format!("wrong error: {e}")),
        Ok(_) => sample.errors.push("a response from a silent server".into()),
    }
    sample
}

/// The overshoot floor of `SO_RCVTIMEO`: a bare std socket with
/// `set_read_timeout(limit)` (`SO_RCVTIMEO`) reading from the silent server.
/// The kernel rounds that timeout to its timer tick, so a client built on
/// it cannot overshoot less than this.
fn rcvtimeo_overshoot(addr: SocketAddr, limit: Duration) -> Sample {
    let mut sample = Sample::default();
    let result = TcpStream::connect(addr).and_then(|mut s| {
        s.set_read_timeout(Some(limit))?;
        let start = Instant::now();
        let read = s.read(&mut [0u8; 16]);
        Ok((read, start.elapsed()))
    });
    match result {
        Ok((Err(e), elapsed)) if is_timeout(&e) => {
            sample
                .secs
                .push(elapsed.as_secs_f64() - limit.as_secs_f64());
        }
        Ok((Err(e), _)) | Err(e) => sample.errors.push(format!("std socket: {e}")),
        Ok((Ok(_), _)) => sample
            .errors
            .push("std socket: data from a silent server".into()),
    }
    sample
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn repeat(n: usize, mut f: impl FnMut() -> Sample) -> Sample {
    let mut all = Sample::default();
    for _ in 0..n {
        let s = f();
        all.secs.extend(s.secs);
        all.errors.extend(s.errors);
    }
    all
}

/// The value below which `q` of the sorted values lie (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(secs: f64) -> String {
    format!("{:.3} ms", secs * 1e3)
}

/// One table row, with PASS/MISS against the targets when `judged`.
fn row(name: &str, n: usize, sample: &Sample, judged: bool) {
    let mut sorted = sample.secs.clone();
    sorted.sort_by(f64::total_cmp);
    let (median, p99) = (quantile(&sorted, 0.5), quantile(&sorted, 0.99));
    let pass = median < 1e-3 && p99 < 10e-3;
    let (target, result) = match (judged, pass) {
        (false, _) => ("reference, no target", ""),
        (true, true) => ("median < 1 ms, p99 < 10 ms", "PASS"),
        (true, false) => ("median < 1 ms, p99 < 10 ms", "MISS"),
    };
    println!(
        "| {name} | {}/{n} | {} | {} | {} | {} | {target} | {result} |",
        sorted.len(),
        ms(median),
        ms(p99),
        ms(sorted.first().copied().unwrap_or(f64::NAN)),
        ms(sorted.last().copied().unwrap_or(f64::NAN)),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("WINDLASS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let n = if quick { 10 } else { 200 };

    let (addr, heads) = stall_server();
    let heads = Mutex::new(heads);
    let url = format!("http://{addr}/");
    let agent = windlass::Agent::new();

    let cancel = repeat(n, || cancel_latency(&agent, &url, &heads));
    let overall = repeat(n, || overshoot(&agent, &url, DEADLINE, |r, d| r.timeout(d)));
    let floor = repeat(n.min(50), || rcvtimeo_overshoot(addr, DEADLINE));
    let dns = cancel_dns(n);
    let connect = cancel_connect(n);
    // The long limits run side by side (3 calls each, about 30 s in all);
    // --quick skips them.
    let long: Vec<(String, Sample, bool)> = if quick {
        Vec::new()
    } else {
        let runs: Vec<(String, thread::JoinHandle<Sample>, bool)> = [10u64, 30]
            .into_iter()
            .flat_map(|secs| {
                let limit = Duration::from_secs(secs);
                let (agent, url) = (agent.clone(), url.clone());
                let ours = thread::spawn(move || {
                    let parts: Vec<_> = (0..3)
                        .map(|_| {
                            let (agent, url) = (agent.clone(), url.clone());
                            thread::spawn(move || {
                                overshoot(&agent, &url, limit, |r, d| r.timeout_response_head(d))
                            })
                        })
                        .collect();
                    let mut all = Sample::default();
                    for p in parts {
                        let s = p.join().unwrap_or_default();
                        all.secs.extend(s.secs);
                        all.errors.extend(s.errors);
                    }
                    all
                });
                let bare = thread::spawn(move || repeat(1, || rcvtimeo_overshoot(addr, limit)));
                [
                    (
                        format!("overshoot, `.timeout_response_head({secs} s)`"),
                        ours,
                        true,
                    ),
                    (
                        format!("overshoot of a bare std socket, `set_read_timeout({secs} s)`"),
                        bare,
                        false,
                    ),
                ]
            })
            .collect();
        runs.into_iter()
            .map(|(name, h, judged)| (name, h.join().unwrap_or_default(), judged))
            .collect()
    };

    println!("## windlass: cancel and deadline latency ({n} iterations each)\n");
    println!("| measurement | ok/n | median | p99 | min | max | target | result |");
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    row(
        "cancel() → call returns, blocked reading the head",
        n,
        &cancel,
        true,
    );
    row(
        "deadline overshoot, `.timeout(50 ms)`, silent server",
        n,
        &overall,
        true,
    );
    row(
        "overshoot of a bare std socket, `set_read_timeout(50 ms)`",
        n.min(50),
        &floor,
        false,
    );
    row("cancel() → call returns, blocked in DNS", n, &dns, true);
    match &connect {
        Some(sample) => row(
            "cancel() → call returns, blocked in a TCP connect",
            n,
            sample,
            true,
        ),
        None => {
            println!("| cancel during a TCP connect | skipped: the accept queue never filled |")
        }
    }
    for (name, sample, judged) in &long {
        let n = sample.secs.len() + sample.errors.len();
        row(name, n, sample, *judged);
    }

    let errors: Vec<_> = [&cancel, &overall, &floor, &dns]
        .into_iter()
        .chain(connect.as_ref())
        .chain(long.iter().map(|(_, s, _)| s))
        .flat_map(|s| &s.errors)
        .collect();
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        std::process::exit(1);
    }
}
