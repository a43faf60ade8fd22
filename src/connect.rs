//! Opening a connection: DNS, then TCP across the resolved addresses (Happy
//! Eyeballs, RFC 8305), then a proxy CONNECT tunnel and the TLS handshake,
//! each phase under its own deadline and the request's cancel token.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::AgentInner;
use crate::conn::{Conn, Socket};
use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, ErrorKind, Phase};
use crate::exchange::{Exchange, Limit};
use crate::observe::{Event, Observer};
use crate::pool::{PoolKey, Scheme};
use crate::proxy::socks::{self, Target};
use crate::proxy::{Proxy, ProxyKind};

/// RFC 8305's "Connection Attempt Delay": the next address is tried after this.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Open a new connection for `key`: DNS, TCP, the proxy's steps and TLS,
/// each entered through the exchange.
///
/// Through a proxy (the key's), the steps are: DNS for the proxy, TCP to it
/// (`ProxyConnect`), TLS with it for an `https://` proxy (`ProxyTls`), then
/// its handshake (`ProxyHandshake`: CONNECT for an https origin, SOCKS
/// always), then TLS with the origin. Plain http through an HTTP proxy needs
/// no handshake: the request goes to the proxy in absolute form.
pub(crate) fn open(
    agent: &AgentInner,
    key: &PoolKey,
    ex: &mut Exchange,
) -> Result<Box<Conn>, Error> {
    let proxy = key.proxy.as_deref();
    let (dial_host, dial_port) = match proxy {
        Some(proxy) => (proxy.host.as_str(), proxy.port),
        None => (&*key.host, key.port),
    };

    let limit = ex.enter(Phase::Dns);
    ex.emit(Event::DnsStart { host: dial_host });
    let (addrs, looked_up) = agent
        .dns
        .lookup(dial_host, dial_port, limit.deadline, ex.cancel())
        .map_err(|e| match proxy {
            Some(p) => crate::proxy::socks::named(p, "resolving", e),
            None => e,
        })?;
    ex.emit(Event::DnsDone {
        addrs: &addrs,
        elapsed: limit.started.elapsed(),
    });

    let limit = ex.enter(match proxy {
        Some(_) => Phase::ProxyConnect,
        None => Phase::Connect,
    });
    if !looked_up {
        // An IP literal, an override or a cached answer: no lookup happened.
        ex.timings.dns = None;
    }
    let authority: Arc<str> = Arc::from(key.authority());
    // Messages about the proxy's steps name the proxy.
    let dialled: Arc<str> = match proxy {
        Some(p) => Arc::from(p.authority()),
        None => Arc::clone(&authority),
    };
    let (tcp, remote) = connect_tcp(
        &addrs,
        limit.deadline,
        ex.cancel(),
        &dialled,
        Some(&ex.observer),
    )
    .map_err(|e| match proxy {
        Some(p) => proxy_connect_error(p, e, &limit),
        None => e,
    })?;
    ex.timings.remote_addr = Some(remote);

    let sock = Socket::new(tcp, dialled);
    let id = agent.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let mut conn = Box::new(Conn::new(sock, id, remote));
    if !conn.watch(ex.cancel()) {
        return Err(Error::cancelled(Phase::Connect));
    }

    if let Some(proxy) = proxy {
        through_proxy(agent, &mut conn, proxy, key, ex)?;
        conn.sock.host = Arc::clone(&authority);
    }
    if key.scheme == Scheme::Https {
        let limit = ex.enter(Phase::Tls);
        handshake(agent, &mut conn, key, &limit, ex)?;
    }
    log::debug!("opened connection {id} to {key} ({remote})");
    Ok(conn)
}

/// A failed TCP connect to a proxy, told as one: "cannot connect to proxy …".
fn proxy_connect_error(proxy: &Proxy, err: Error, limit: &Limit) -> Error {
    match err.kind() {
        ErrorKind::Timeout(_) => Error::timeout(
            Phase::ProxyConnect,
            &proxy.authority(),
            limit.started.elapsed(),
        ),
        ErrorKind::Cancelled => Error::cancelled(Phase::ProxyConnect),
        kind => Error::with_source(
            kind,
            format!("cannot connect to proxy {}", proxy.authority()),
            err,
        ),
    }
}

/// The proxy's steps on an open TCP connection to it: TLS for an
/// `https://` proxy, then CONNECT or the SOCKS handshake when needed.
fn through_proxy(
    agent: &AgentInner,
    conn: &mut Conn,
    proxy: &Proxy,
    key: &PoolKey,
    ex: &mut Exchange,
) -> Result<(), Error> {
    if proxy.kind == ProxyKind::Https {
        let limit = ex.enter(Phase::ProxyTls);
        proxy_tls(agent, conn, proxy, &limit)?;
    }
    let tunnel = !proxy.kind.is_http() || key.scheme == Scheme::Https;
    if !tunnel {
        return Ok(());
    }
    let limit = ex.enter(Phase::ProxyHandshake);
    match proxy.kind {
        ProxyKind::Http | ProxyKind::Https => crate::proxy::tunnel::connect(
            conn,
            proxy,
            &key.authority(),
            agent.config.max_head_size,
            &limit,
        )?,
        ProxyKind::Socks5h | ProxyKind::Socks4a => {
            socks::handshake(conn, proxy, Target::Name(&key.host, key.port), &limit)?
        }
        _ => {
            // socks5:// and socks4:// resolve the origin here.
            let (addrs, _) = agent
                .dns
                .lookup(&key.host, key.port, limit.deadline, ex.cancel())?;
            let addr = match proxy.kind {
                ProxyKind::Socks4 => addrs.iter().find(|a| a.is_ipv4()),
                _ => addrs.first(),
            };
            let addr = *addr.ok_or_else(|| {
                Error::new(
                    ErrorKind::Dns,
                    format!("no usable address for {} to send to the proxy", key.host),
                )
            })?;
            socks::handshake(conn, proxy, Target::Addr(addr), &limit)?
        }
    }
    ex.emit(Event::ProxyHandshakeDone {
        elapsed: limit.started.elapsed(),
    });
    Ok(())
}

/// TLS with an `https://` proxy, verified against the proxy's host name and
/// the proxy's own TLS config (never the origin's trust or client
/// certificate).
#[cfg(feature = "tls")]
fn proxy_tls(
    agent: &AgentInner,
    conn: &mut Conn,
    proxy: &Proxy,
    limit: &Limit,
) -> Result<(), Error> {
    let config = agent.config.proxy.tls_config(&agent.config.tls)?;
    let name = crate::tls::server_name(&proxy.host)?;
    let tls = rustls::ClientConnection::new(config, name)
        .map_err(|e| Error::with_source(ErrorKind::Tls, "cannot start TLS", e))?;
    conn.set_tls(Box::new(tls));
    conn.tls_handshake(limit)
        .map_err(crate::tls::handshake_error)
        .map_err(|e| socks::named(proxy, "the TLS handshake with", e))
}

#[cfg(not(feature = "tls"))]
fn proxy_tls(
    _agent: &AgentInner,
    _conn: &mut Conn,
    proxy: &Proxy,
    _limit: &Limit,
) -> Result<(), Error> {
    Err(Error::new(
        ErrorKind::TlsUnavailable,
        format!(
            "https proxy {} needs TLS: windlass was built without the `tls` feature",
            proxy.authority()
        ),
    ))
}

#[cfg(feature = "tls")]
fn handshake(
    agent: &AgentInner,
    conn: &mut Conn,
    key: &PoolKey,
    limit: &Limit,
    ex: &mut Exchange,
) -> Result<(), Error> {
    let config = agent.tls_config()?;
    let name = crate::tls::server_name(&key.host)?;
    let done = tls_handshake(conn, name, config, limit)?;
    let elapsed = limit.started.elapsed();
    ex.timings.tls_resumed = Some(done.resumed);
    ex.timings.tls_version = done.version;
    ex.timings.tls_cipher = done.cipher;
    ex.observer.metrics.tls_handshake(done.resumed);
    ex.emit(Event::TlsDone {
        resumed: done.resumed,
        elapsed,
    });
    Ok(())
}

/// What a TLS handshake negotiated.
#[cfg(feature = "tls")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsDone {
    /// An abbreviated handshake that resumed an earlier session.
    pub resumed: bool,
    pub version: Option<crate::TlsVersion>,
    /// The IANA name of the cipher suite.
    pub cipher: Option<&'static str>,
}

/// Run a TLS handshake on `conn` (a TCP connection, or a tunnel through a
/// proxy) under `limit`, verifying the server as `name`. Its errors are
/// [`ErrorKind::Tls`] in plain words, or the timeout / cancel of `limit`.
/// Also what an HTTPS proxy's own handshake uses.
#[cfg(feature = "tls")]
pub(crate) fn tls_handshake(
    conn: &mut Conn,
    name: rustls::pki_types::ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    limit: &Limit,
) -> Result<TlsDone, Error> {
    let tls = rustls::ClientConnection::new(config, name)
        .map_err(|e| Error::with_source(ErrorKind::Tls, "cannot start TLS", e))?;
    conn.set_tls(Box::new(tls));
    conn.tls_handshake(limit)
        .map_err(crate::tls::handshake_error)?;
    let Some(session) = conn.tls_session() else {
        return Err(Error::new(
            ErrorKind::Tls,
            "no TLS session after the handshake",
        ));
    };
    // A config of the caller's may offer h2; this client speaks HTTP/1.1 only.
    if let Some(proto) = session.alpn_protocol().filter(|p| *p != b"http/1.1") {
        return Err(Error::new(
            ErrorKind::Tls,
            format!(
                "the server chose {:?} over ALPN, but windlass speaks HTTP/1.1 only; \
                 offer only http/1.1 in the config given to tls_config",
                String::from_utf8_lossy(proto)
            ),
        ));
    }
    Ok(TlsDone {
        resumed: session.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        version: match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => Some(crate::TlsVersion::Tls12),
            Some(rustls::ProtocolVersion::TLSv1_3) => Some(crate::TlsVersion::Tls13),
            _ => None,
        },
        cipher: session
            .negotiated_cipher_suite()
            .and_then(|s| crate::tls::suite_name(s.suite())),
    })
}

#[cfg(not(feature = "tls"))]
fn handshake(
    _agent: &AgentInner,
    _conn: &mut Conn,
    _key: &PoolKey,
    _limit: &Limit,
    _ex: &mut Exchange,
) -> Result<(), Error> {
    Err(Error::new(
        ErrorKind::TlsUnavailable,
        "https is not available: windlass was built without the `tls` feature",
    ))
}

// ---------------------------------------------------------------------------
// TCP across the resolved addresses.
//
// No thread is started per connection. An attempt's socket starts connecting
// without blocking, then waits in the kernel for the handshake in bounded
// steps; the calling thread waits for the first attempt itself, and hands an
// attempt to the process's connect workers only when Happy Eyeballs needs a
// second one while the first is still under way. Cancel, a winner or the
// deadline end every attempt at once by shutting its socket down, which
// wakes a thread waiting on it, so a worker is never held by a race that is
// over.

use std::sync::mpsc;

use socket2::{Domain, Protocol, Type};

use crate::deadline::CancelHook;
use crate::workers;

/// Attempts of one connect that run at once. RFC 8305 starts another every
/// [`ATTEMPT_DELAY`] while earlier ones are still waiting; without a bound, a
/// resolver answering with a thousand addresses that all stall would make a
/// thousand sockets. Four covers both families with a fallback each.
const MAX_RACING: usize = 4;

/// The longest single wait in the kernel. A socket timeout is rounded to the
/// kernel's timer wheel, coarsely for long ones (about an eighth of a 10 s
/// wait); steps this short keep the connect deadline precise to a tick.
const WAIT_STEP: Duration = Duration::from_millis(50);

fn connect_error(addr: SocketAddr, err: io::Error) -> Error {
    Error::with_source(ErrorKind::Connect, format!("cannot connect to {addr}"), err)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Connect to the first address that answers.
pub(crate) fn connect_tcp(
    addrs: &[SocketAddr],
    deadline: Deadline,
    cancel: Option<&CancelToken>,
    host: &str,
    observer: Option<&Observer>,
) -> Result<(TcpStream, SocketAddr), Error> {
    let started = Instant::now();
    let report = |event: Event<'_>| {
        if let Some(o) = observer {
            o.emit(event);
        }
    };
    if cancel.is_some_and(|c| c.is_cancelled()) {
        return Err(Error::cancelled(Phase::Connect));
    }
    race(&interleave(addrs), deadline, cancel, host, started, &report)
}

/// Alternate address families, starting with the resolver's first choice.
fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .iter()
        .copied()
        .partition(|a| a.is_ipv6() == first.is_ipv6());
    same.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    while !same.is_empty() || !other.is_empty() {
        out.extend(same.pop());
        out.extend(other.pop());
    }
    out
}

/// Where a connect stands after a wait.
enum Progress {
    Connected,
    Failed(io::Error),
    /// Still under way when the wait's limit came.
    Pending,
}

/// One connection attempt: a socket whose connect has been started.
struct Attempt {
    addr: SocketAddr,
    sock: Arc<TcpStream>,
}

impl Attempt {
    /// Start connecting to `addr` without waiting for the handshake. The
    /// connect is under way before anyone can shut the socket down, so a
    /// shutdown always ends it (on a socket not yet connecting it would not).
    fn begin(addr: SocketAddr) -> io::Result<Attempt> {
        // Linux: non-blocking from the start (SOCK_NONBLOCK), saving a syscall.
        #[cfg(target_os = "linux")]
        let kind = Type::from(libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
        #[cfg(not(target_os = "linux"))]
        let kind = Type::STREAM;
        let sock = socket2::Socket::new(Domain::for_address(addr), kind, Some(Protocol::TCP))?;
        #[cfg(not(target_os = "linux"))]
        sock.set_nonblocking(true)?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if in_progress(&e) => {}
            Err(e) => return Err(e),
        }
        let tcp = TcpStream::from(sock);
        // Linux waits in blocking calls (see `settle`); std's switch is one
        // ioctl.
        #[cfg(target_os = "linux")]
        tcp.set_nonblocking(false)?;
        Ok(Attempt {
            addr,
            sock: Arc::new(tcp),
        })
    }

    /// Wait until the connect ends or `until` comes. The socket is looked
    /// at at least once, however late this thread got here.
    fn wait(&self, until: Deadline) -> Progress {
        loop {
            let left = until.remaining();
            let step = left.map_or(WAIT_STEP, |left| left.min(WAIT_STEP));
            match settle(&self.sock, step) {
                Ok(true) if self.talks_to_itself() => {
                    return Progress::Failed(io::ErrorKind::ConnectionRefused.into())
                }
                Ok(true) => return Progress::Connected,
                Ok(false) if until.expired() => return Progress::Pending,
                Ok(false) => {}
                Err(e) => return Progress::Failed(e),
            }
        }
    }

    /// Dialling a local port nothing listens on, the kernel may give the
    /// socket that very port as its own: TCP's simultaneous open then
    /// connects it to itself, and a request would be read back as its own
    /// answer. Nothing listens there, so it is a refusal (Go checks the same).
    fn talks_to_itself(&self) -> bool {
        self.addr.ip().is_loopback() && self.sock.local_addr().is_ok_and(|local| local == self.addr)
    }

    /// Wait on this thread, until `until` or `cancel`.
    fn wait_here(&self, until: Deadline, cancel: Option<&CancelToken>) -> Result<Progress, Error> {
        let _hook: Option<CancelHook> = match cancel {
            Some(token) => {
                let sock = Arc::clone(&self.sock);
                match token.on_cancel(move || {
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                }) {
                    Some(hook) => Some(hook),
                    None => return Err(Error::cancelled(Phase::Connect)),
                }
            }
            None => None,
        };
        let progress = self.wait(until);
        // A cancelled wait ends with the shut-down socket's error.
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::cancelled(Phase::Connect));
        }
        Ok(progress)
    }

    /// The connected stream, blocking, with no socket timeout left behind
    /// (the connection's reads and writes set their own).
    fn into_stream(self) -> io::Result<TcpStream> {
        let tcp = Arc::try_unwrap(self.sock)
            .map_err(|_| io::Error::other("the connected socket is still shared"))?;
        #[cfg(not(target_os = "linux"))]
        tcp.set_nonblocking(false)?;
        tcp.set_write_timeout(None)?;
        Ok(tcp)
    }
}

fn in_progress(err: &io::Error) -> bool {
    #[cfg(unix)]
    if matches!(err.raw_os_error(), Some(libc::EINPROGRESS | libc::EALREADY)) {
        return true;
    }
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Wait up to `step` for the handshake; whether it completed.
///
/// Linux: a send of nothing on a blocking socket waits, for at most the
/// socket's send timeout, until the connect completes, and fails at once
/// with its error (refused, reset, or the shutdown of a cancel), without
/// restarting it as a second `connect` would after a shutdown. Nothing is
/// sent on the connected socket.
#[cfg(target_os = "linux")]
fn settle(tcp: &TcpStream, step: Duration) -> io::Result<bool> {
    use std::io::Write;
    tcp.set_write_timeout(Some(step.max(Duration::from_millis(1))))?;
    // std sends with MSG_NOSIGNAL: a shut-down socket cannot raise SIGPIPE.
    match (&mut &*tcp).write(&[]) {
        Ok(_) => Ok(true),
        Err(e) if in_progress(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Elsewhere the socket stays non-blocking and is looked at after a short
/// pause: connected once it has a peer, failed once it holds an error.
#[cfg(not(target_os = "linux"))]
fn settle(tcp: &TcpStream, step: Duration) -> io::Result<bool> {
    if let Some(e) = tcp.take_error()? {
        return Err(e);
    }
    if tcp.peer_addr().is_ok() {
        return Ok(true);
    }
    std::thread::sleep(step.min(Duration::from_millis(1)));
    if let Some(e) = tcp.take_error()? {
        return Err(e);
    }
    Ok(tcp.peer_addr().is_ok())
}

/// What a worker says about the attempt it was handed.
enum Report {
    Done(SocketAddr, Arc<TcpStream>, io::Result<()>),
    Cancelled,
}

/// The attempts of one race that run on workers. Dropping it (the race is
/// won, lost, timed out or cancelled) shuts their sockets down: each worker
/// returns at once and its thread is free for the next job.
struct Racing {
    running: Vec<Arc<TcpStream>>,
}

impl Racing {
    fn forget(&mut self, sock: &Arc<TcpStream>) {
        self.running.retain(|s| !Arc::ptr_eq(s, sock));
    }
}

impl Drop for Racing {
    fn drop(&mut self) {
        for sock in self.running.drain(..) {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Start an attempt every [`ATTEMPT_DELAY`] (or at once when the previous one
/// failed), at most [`MAX_RACING`] at a time; the first success wins.
///
/// While no other attempt runs, the calling thread waits for the new one
/// itself, up to the attempt delay (to the deadline for the last address):
/// a connect that succeeds or fails within it, the common case, involves no
/// other thread. One still under way then moves to a connect worker while
/// the calling thread starts the next and waits for whichever ends first.
fn race(
    addrs: &[SocketAddr],
    deadline: Deadline,
    cancel: Option<&CancelToken>,
    host: &str,
    started: Instant,
    report: &dyn Fn(Event<'_>),
) -> Result<(TcpStream, SocketAddr), Error> {
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::Dns,
            format!("no addresses to connect to for {host}"),
        ));
    }
    // No time left: no connection attempt.
    if deadline.expired() {
        return Err(Error::timeout(Phase::Connect, host, started.elapsed()));
    }
    let timeout = || Error::timeout(Phase::Connect, host, started.elapsed());
    let done = |addr: SocketAddr, ok: bool| {
        report(Event::ConnectDone {
            addr,
            ok,
            elapsed: started.elapsed(),
        })
    };
    let (tx, rx) = mpsc::channel::<Report>();
    // Registered once a worker is involved: only then does the calling
    // thread wait on the channel.
    let mut cancel_hook: Option<CancelHook> = None;
    let mut racing = Racing {
        running: Vec::new(),
    };
    let mut next = 0;
    let mut last_error: Option<Error> = None;
    let mut next_start = Instant::now();
    loop {
        if next >= addrs.len() && racing.running.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                Error::new(ErrorKind::Connect, format!("cannot connect to {host}"))
            }));
        }
        if deadline.expired() {
            return Err(timeout());
        }
        if next < addrs.len() && racing.running.len() < MAX_RACING && Instant::now() >= next_start {
            let addr = addrs[next];
            next += 1;
            report(Event::ConnectStart { addr });
            let attempt = match Attempt::begin(addr) {
                Ok(attempt) => attempt,
                Err(e) => {
                    done(addr, false);
                    last_error = Some(connect_error(addr, e));
                    continue;
                }
            };
            let last = next >= addrs.len();
            if racing.running.is_empty() && (last || cfg!(target_os = "linux")) {
                let until = if last {
                    deadline
                } else {
                    Deadline::At(Instant::now() + ATTEMPT_DELAY).min(deadline)
                };
                match attempt.wait_here(until, cancel)? {
                    Progress::Connected => {
                        done(addr, true);
                        return attempt
                            .into_stream()
                            .map(|tcp| (tcp, addr))
                            .map_err(|e| connect_error(addr, e));
                    }
                    Progress::Failed(e) => {
                        done(addr, false);
                        last_error = Some(connect_error(addr, e));
                        next_start = Instant::now();
                        continue;
                    }
                    Progress::Pending if deadline.expired() => {
                        done(addr, false);
                        return Err(timeout());
                    }
                    // The attempt delay has passed: on to the next address
                    // while a worker keeps waiting for this one.
                    Progress::Pending => next_start = Instant::now(),
                }
            } else {
                next_start = Instant::now() + ATTEMPT_DELAY;
            }
            if cancel_hook.is_none() {
                if let Some(token) = cancel {
                    let tx = tx.clone();
                    cancel_hook = token.on_cancel(move || {
                        let _ = tx.send(Report::Cancelled);
                    });
                    if cancel_hook.is_none() {
                        return Err(Error::cancelled(Phase::Connect));
                    }
                }
            }
            if let Err(e) = hand_over(attempt, deadline, &tx, &mut racing) {
                done(addr, false);
                last_error = Some(Error::new(
                    ErrorKind::Connect,
                    format!("cannot connect to {addr}: {e}"),
                ));
                next_start = Instant::now();
            }
            continue;
        }
        let wake = if next < addrs.len() && racing.running.len() < MAX_RACING {
            Deadline::At(next_start).min(deadline)
        } else {
            deadline
        };
        let got = match wake.remaining() {
            None => rx.recv().ok(),
            Some(left) => match rx.recv_timeout(left) {
                Ok(msg) => Some(msg),
                Err(_) => continue,
            },
        };
        match got {
            Some(Report::Done(addr, sock, Ok(()))) => {
                done(addr, true);
                racing.forget(&sock);
                let attempt = Attempt { addr, sock };
                return attempt
                    .into_stream()
                    .map(|tcp| (tcp, addr))
                    .map_err(|e| connect_error(addr, e));
            }
            Some(Report::Done(addr, sock, Err(e))) => {
                // Its place goes to the next address.
                racing.forget(&sock);
                drop(sock);
                done(addr, false);
                last_error = Some(if is_timeout(&e) {
                    timeout()
                } else {
                    connect_error(addr, e)
                });
                next_start = Instant::now();
            }
            Some(Report::Cancelled) | None => return Err(Error::cancelled(Phase::Connect)),
        }
    }
}

/// Let a connect worker wait for `attempt` until the deadline and report.
fn hand_over(
    attempt: Attempt,
    deadline: Deadline,
    tx: &mpsc::Sender<Report>,
    racing: &mut Racing,
) -> Result<(), workers::Refused> {
    racing.running.push(Arc::clone(&attempt.sock));
    let tx = tx.clone();
    let job = move || {
        let result = match attempt.wait(deadline) {
            Progress::Connected => Ok(()),
            Progress::Failed(e) => Err(e),
            Progress::Pending => Err(io::ErrorKind::TimedOut.into()),
        };
        workers::CONNECT.finishing();
        // Once the race is over nobody receives: the socket closes here.
        let _ = tx.send(Report::Done(attempt.addr, attempt.sock, result));
    };
    workers::CONNECT.submit(job).inspect_err(|_| {
        racing.running.pop();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn families_alternate() {
        let v4 = |n| SocketAddr::from(([127, 0, 0, n], 80));
        let v6 = |n| SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, n], 80));
        let order = interleave(&[v6(1), v6(2), v4(1), v4(2), v4(3)]);
        assert_eq!(order, vec![v6(1), v4(1), v6(2), v4(2), v4(3)]);
    }

    #[test]
    fn a_refused_address_falls_through_to_the_next() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let good = listener.local_addr().unwrap();
        // A port we bound and closed again: connecting to it is refused.
        let refused = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let token = CancelToken::new();
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_secs(5)));
        let (_, addr) =
            connect_tcp(&[refused, good], deadline, Some(&token), "test", None).unwrap();
        assert_eq!(addr, good);
    }

    #[test]
    fn all_refused_is_a_connect_error() {
        let refused = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_secs(5)));
        let err = connect_tcp(&[refused], deadline, None, "test", None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect);
    }
}
