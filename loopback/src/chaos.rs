//! A hostile server on 127.0.0.1: per request (or per connection) it picks a
//! [`Fault`] at the configured weights and answers with it: closes before or
//! in the head, resets in the body, stalls in each phase, dribbles, lies about
//! the length, breaks a chunk, sends garbage, a 503 with `Retry-After`, an
//! extra byte after the body, or a valid response. Optionally over TLS, where
//! [`Fault::TlsAbruptClose`] drops the TCP connection without `close_notify`.
//!
//! Every valid body is [`body_for`] the request's target, so a client can
//! check that what it got as a success is exactly what was sent. The fault
//! mix can be changed while the server runs ([`ChaosServer::set_mix`]): a
//! soak stalls the server for a while and then lets it recover.
//!
//! ```
//! use windlass_loopback::chaos::{ChaosConfig, ChaosServer, Fault};
//! let server = ChaosServer::start(ChaosConfig {
//!     mix: vec![(Fault::Valid, 1)],
//!     ..ChaosConfig::default()
//! })
//! .unwrap();
//! # use std::io::{Read, Write};
//! let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
//! s.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
//! let mut got = Vec::new();
//! s.read_to_end(&mut got).unwrap();
//! assert!(got.ends_with(&windlass_loopback::chaos::body_for("/x", 128)));
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::{lock, tls, Stop};

/// One way to answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `200 OK` with a correct `Content-Length` and [`body_for`] the target.
    Valid,
    /// Close the connection without a byte of response.
    CloseBeforeHead,
    /// Send part of the status line and headers, then close.
    CloseMidHead,
    /// Send the head and half the body, then reset the connection (RST).
    ResetMidBody,
    /// Wait [`ChaosConfig::stall`] before the head, then answer validly.
    StallBeforeHead,
    /// Send part of the head, wait, then the rest and the body.
    StallMidHead,
    /// Send the head and half the body, wait, then the rest.
    StallMidBody,
    /// Send a valid response a few bytes at a time, [`ChaosConfig::dribble`] apart.
    Dribble,
    /// Claim ten more body bytes than are sent, then close.
    WrongLength,
    /// Two `Content-Length` headers that disagree.
    ConflictingLength,
    /// A chunked body whose second chunk size is not hexadecimal.
    BrokenChunk,
    /// Bytes that are not HTTP at all.
    Garbage,
    /// `503 Service Unavailable` with `Retry-After: 1` and an empty body.
    ServiceUnavailable,
    /// A valid response followed by one byte nobody asked for, in the same
    /// write; the connection stays open.
    ExtraByte,
    /// With TLS: the head and half the body, then the TCP connection is shut
    /// without `close_notify`. Without TLS it is a plain close mid-body.
    TlsAbruptClose,
}

impl Fault {
    /// Every fault, in a stable order.
    pub const ALL: &'static [Fault] = &[
        Fault::Valid,
        Fault::CloseBeforeHead,
        Fault::CloseMidHead,
        Fault::ResetMidBody,
        Fault::StallBeforeHead,
        Fault::StallMidHead,
        Fault::StallMidBody,
        Fault::Dribble,
        Fault::WrongLength,
        Fault::ConflictingLength,
        Fault::BrokenChunk,
        Fault::Garbage,
        Fault::ServiceUnavailable,
        Fault::ExtraByte,
        Fault::TlsAbruptClose,
    ];

    /// Whether a client should report this answer as a success with the
    /// exact body (a 503 is a response too, with an empty body).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Fault::Valid
                | Fault::StallBeforeHead
                | Fault::StallMidHead
                | Fault::StallMidBody
                | Fault::Dribble
                | Fault::ExtraByte
        )
    }
}

/// How the chaos server misbehaves.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Faults with their weights; a request gets each with probability
    /// weight / sum of weights. Empty means all valid.
    pub mix: Vec<(Fault, u32)>,
    /// Pick one fault per connection (used for every request on it) rather
    /// than one per request.
    pub per_connection: bool,
    /// Serve HTTPS with a generated certificate (see [`ChaosServer::ca_pem`]).
    pub tls: bool,
    /// How long a stall lasts.
    pub stall: Duration,
    /// The pause between dribbled pieces.
    pub dribble: Duration,
    /// The size of every valid body.
    pub body_size: usize,
    /// Seed of the fault choice, so a run can be repeated.
    pub seed: u64,
}

impl Default for ChaosConfig {
    /// An even mix of every fault, per request, plain HTTP, 200 ms stalls,
    /// 1 ms dribble, 128-byte bodies.
    fn default() -> ChaosConfig {
        ChaosConfig {
            mix: Fault::ALL.iter().map(|f| (*f, 1)).collect(),
            per_connection: false,
            tls: false,
            stall: Duration::from_millis(200),
            dribble: Duration::from_millis(1),
            body_size: 128,
            seed: 1,
        }
    }
}

/// The body a valid answer to `target` carries: `size` bytes derived from
/// the target, so each request's body is distinct and checkable.
pub fn body_for(target: &str, size: usize) -> Vec<u8> {
    // FNV-1a of the target seeds a xorshift: printable, cheap, distinct.
    let mut x = target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut body = Vec::with_capacity(size);
    while body.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push(b'a' + (x % 26) as u8);
    }
    body
}

/// Connection threads with a handle on their sockets, to shut them on drop.
type ConnThreads = Mutex<Vec<(TcpStream, JoinHandle<()>)>>;

/// What the threads share.
struct Shared {
    mix: Mutex<Vec<(Fault, u32)>>,
    cfg: ChaosConfig,
    stop: Stop,
    served: Mutex<Vec<(Fault, u64)>>,
    next_conn: AtomicU64,
}

/// A running chaos server; dropping it stops it and joins its threads.
pub struct ChaosServer {
    addr: SocketAddr,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<ConnThreads>,
}

impl ChaosServer {
    /// Binds 127.0.0.1 on a free port and starts accepting connections.
    pub fn start(cfg: ChaosConfig) -> io::Result<ChaosServer> {
        let tls = if cfg.tls { Some(tls::setup()?) } else { None };
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mix: Mutex::new(cfg.mix.clone()),
            cfg,
            stop: Stop::new(),
            served: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
        });
        let conns = Arc::new(Mutex::new(Vec::new()));
        let config = tls.as_ref().map(|t| t.config.clone());
        let accept = {
            let (shared, conns) = (shared.clone(), conns.clone());
            thread::Builder::new()
                .name("chaos-accept".into())
                .spawn(move || accept_loop(&listener, &shared, &conns, config))?
        };
        Ok(ChaosServer {
            addr,
            ca_pem: tls.map(|t| t.ca_pem),
            shared,
            accept: Some(accept),
            conns,
        })
    }

    /// The address the server listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA certificate a client must trust (TLS only).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Change the fault mix from the next request (or connection) on.
    pub fn set_mix(&self, mix: Vec<(Fault, u32)>) {
        *lock(&self.shared.mix) = mix;
    }

    /// Answers given so far, by fault.
    pub fn served(&self) -> Vec<(Fault, u64)> {
        lock(&self.shared.served).clone()
    }
}

impl Drop for ChaosServer {
    fn drop(&mut self) {
        self.shared.stop.stop();
        if let Some(accept) = self.accept.take() {
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok() {
                let _ = accept.join();
            }
        }
        let conns = std::mem::take(&mut *lock(&self.conns));
        for (sock, _) in &conns {
            let _ = sock.shutdown(Shutdown::Both);
        }
        for (_, handle) in conns {
            let _ = handle.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    conns: &ConnThreads,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    loop {
        let accepted = listener.accept();
        if shared.stop.is_stopped() {
            return;
        }
        let Ok((stream, _)) = accepted else {
            if shared.stop.wait(Duration::from_millis(10)) {
                return;
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(sock) = stream.try_clone() else {
            continue;
        };
        let n = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let thread_shared = shared.clone();
        let tls = tls.clone();
        let spawned = thread::Builder::new()
            .name("chaos-conn".into())
            .spawn(move || {
                let seed = thread_shared.cfg.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                match tls {
                    Some(config) => {
                        if let Ok(c) = rustls::ServerConnection::new(config) {
                            let s = rustls::StreamOwned::new(c, stream);
                            serve(&mut Tls(s), &thread_shared, seed);
                        }
                    }
                    None => serve(&mut Plain(stream), &thread_shared, seed),
                }
            });
        let Ok(handle) = spawned else {
            continue;
        };
        let mut list = lock(conns);
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *list)
            .into_iter()
            .partition(|(_, h)| h.is_finished());
        *list = live;
        list.push((sock, handle));
        drop(list);
        for (_, h) in done {
            let _ = h.join();
        }
    }
}

/// A connection the chaos server can end politely or not.
trait Wire: Read + Write {
    /// A clean end (TLS: close_notify first).
    fn close(&mut self);
    /// An abrupt end: TCP shut with no TLS alert.
    fn drop_tcp(&mut self);
    /// A reset: RST instead of FIN.
    fn reset(&mut self);
}

struct Plain(TcpStream);
struct Tls(rustls::StreamOwned<rustls::ServerConnection, TcpStream>);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn reset_tcp(sock: &TcpStream) {
    // Linger 0 makes close send RST; the socket is closed when the thread's
    // stream is dropped, and shut down here so the peer sees it at once.
    let _ = socket2::SockRef::from(sock).set_linger(Some(Duration::ZERO));
    let _ = sock.shutdown(Shutdown::Both);
}

impl Wire for Plain {
    fn close(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
    fn drop_tcp(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
    fn reset(&mut self) {
        reset_tcp(&self.0);
    }
}

impl Wire for Tls {
    fn close(&mut self) {
        self.0.conn.send_close_notify();
        let _ = self.0.flush();
        let _ = self.0.sock.shutdown(Shutdown::Both);
    }
    fn drop_tcp(&mut self) {
        let _ = self.0.sock.shutdown(Shutdown::Both);
    }
    fn reset(&mut self) {
        reset_tcp(&self.0.sock);
    }
}

/// A small xorshift: the fault choice must be cheap and repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn pick(shared: &Shared, rng: &mut Rng) -> Fault {
    let mix = lock(&shared.mix);
    let total: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut at = rng.below(total);
    for (fault, w) in mix.iter() {
        if at < u64::from(*w) {
            return *fault;
        }
        at -= u64::from(*w);
    }
    Fault::Valid
}

/// A request head at most this long; longer ones end the connection.
const MAX_HEAD: usize = 64 * 1024;
/// Requests served on one connection at most.
const MAX_REQUESTS: usize = 100_000;

fn serve(wire: &mut impl Wire, shared: &Shared, seed: u64) {
    let mut rng = Rng(seed | 1);
    let per_conn = shared.cfg.per_connection.then(|| pick(shared, &mut rng));
    let mut buf = Vec::with_capacity(1024);
    for _ in 0..MAX_REQUESTS {
        let Some((target, close)) = read_request(wire, &mut buf) else {
            return;
        };
        let fault = per_conn.unwrap_or_else(|| pick(shared, &mut rng));
        {
            let mut served = lock(&shared.served);
            match served.iter_mut().find(|(f, _)| *f == fault) {
                Some((_, n)) => *n += 1,
                None => served.push((fault, 1)),
            }
        }
        let keep = answer(wire, shared, fault, &target, close).unwrap_or(false);
        if !keep || shared.stop.is_stopped() {
            return;
        }
    }
}

/// Read one request head (and skip a `Content-Length` body). Returns the
/// target and whether the client asked to close.
fn read_request(wire: &mut impl Read, buf: &mut Vec<u8>) -> Option<(String, bool)> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = wire.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?.to_string();
    let mut close = false;
    let mut length = 0usize;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        }
    }
    // Skip the body: what is buffered first, then the socket.
    let mut left = length;
    let take = left.min(buf.len());
    buf.drain(..take);
    left -= take;
    while left > 0 {
        let n = wire
            .read(&mut chunk[..left.min(4096)])
            .ok()
            .filter(|n| *n > 0)?;
        left -= n;
    }
    Some((target, close))
}

/// Answer with `fault`. `Ok(true)`: the connection can serve another request.
fn answer(
    wire: &mut impl Wire,
    shared: &Shared,
    fault: Fault,
    target: &str,
    close: bool,
) -> io::Result<bool> {
    let cfg = &shared.cfg;
    let body = body_for(target, cfg.body_size);
    let connection = if close { "Connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{connection}\r\n",
        body.len()
    )
    .into_bytes();
    let half = body.len() / 2;
    let stall = |wire: &mut dyn Write| -> io::Result<bool> {
        wire.flush()?;
        Ok(!shared.stop.wait(cfg.stall))
    };
    match fault {
        Fault::Valid => {
            wire.write_all(&head)?;
            wire.write_all(&body)?;
        }
        Fault::CloseBeforeHead => {
            wire.close();
            return Ok(false);
        }
        Fault::CloseMidHead => {
            wire.write_all(&head[..head.len() / 2])?;
            wire.flush()?;
            wire.close();
            return Ok(false);
        }
        Fault::ResetMidBody => {
            wire.write_all(&head)?;
            wire.write_all(&body[..half])?;
            wire.flush()?;
            wire.reset();
            return Ok(false);
        }
        Fault::StallBeforeHead => {
            if !stall(wire)? {
                return Ok(false);
            }
            wire.write_all(&head)?;
            wire.write_all(&body)?;
        }
        Fault::StallMidHead => {
            wire.write_all(&head[..head.len() / 2])?;
            if !stall(wire)? {
                return Ok(false);
            }
            wire.write_all(&head[head.len() / 2..])?;
            wire.write_all(&body)?;
        }
        Fault::StallMidBody => {
            wire.write_all(&head)?;
            wire.write_all(&body[..half])?;
            if !stall(wire)? {
                return Ok(false);
            }
            wire.write_all(&body[half..])?;
        }
        Fault::Dribble => {
            let all: Vec<u8> = head.iter().chain(body.iter()).copied().collect();
            for piece in all.chunks(16) {
                wire.write_all(piece)?;
                wire.flush()?;
                if shared.stop.wait(cfg.dribble) {
                    return Ok(false);
                }
            }
        }
        Fault::WrongLength => {
            let lie = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len() + 10
            );
            wire.write_all(lie.as_bytes())?;
            wire.write_all(&body)?;
            wire.flush()?;
            wire.close();
            return Ok(false);
        }
        Fault::ConflictingLength => {
            let lie = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Length: {}\r\n\r\n",
                body.len(),
                body.len() + 1
            );
            wire.write_all(lie.as_bytes())?;
            wire.write_all(&body)?;
            wire.flush()?;
            wire.close();
            return Ok(false);
        }
        Fault::BrokenChunk => {
            let start = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                half
            );
            wire.write_all(start.as_bytes())?;
            wire.write_all(&body[..half])?;
            wire.write_all(b"\r\nzz\r\n")?;
            wire.flush()?;
            wire.close();
            return Ok(false);
        }
        Fault::Garbage => {
            wire.write_all(b"\x00\x17garbage \xff\xfe not http\r\n\r\n")?;
            wire.flush()?;
            wire.close();
            return Ok(false);
        }
        Fault::ServiceUnavailable => {
            let busy = format!(
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n{connection}\r\n"
            );
            wire.write_all(busy.as_bytes())?;
        }
        Fault::ExtraByte => {
            // One write, so the stray byte arrives with the body and a
            // client can see it before reusing the connection. Kept open: a
            // client that reused it anyway would read the byte as the start
            // of its next response.
            let mut all = head;
            all.extend_from_slice(&body);
            all.push(b'X');
            wire.write_all(&all)?;
        }
        Fault::TlsAbruptClose => {
            wire.write_all(&head)?;
            wire.write_all(&body[..half])?;
            wire.flush()?;
            wire.drop_tcp();
            return Ok(false);
        }
    }
    wire.flush()?;
    if close {
        wire.close();
    }
    Ok(!close)
}
