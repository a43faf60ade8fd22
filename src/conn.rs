//! One connection: a TCP socket whose timeouts follow the current deadline,
//! optional TLS on top, and a read buffer that stays with the connection across
//! requests (so a pooled connection allocates nothing per request).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::{CancelHook, CancelToken, Deadline};
use crate::error::Error;
use crate::exchange::{Limit, Setting};

/// The read buffer's resting size; it grows for a large response head and
/// shrinks back before the connection goes idle.
const READ_BUF: usize = 8 * 1024;

/// Setting a socket timeout costs a syscall; a cached value that overshoots the
/// deadline by less than this is kept.
const TIMEOUT_SLACK: Duration = Duration::from_millis(2);

/// The last stretch before a deadline, waited out by polling (see `run_op`).
/// Larger than the kernel's timer tick (4 ms at HZ=250) plus the slack.
const PRECISE_WINDOW: Duration = Duration::from_millis(8);

/// How often that polling looks at the socket.
const POLL_STEP: Duration = Duration::from_micros(200);

/// A TCP socket whose reads and writes run under the [`Limit`] they are given.
/// It remembers only the kernel timeouts it last set, to skip the syscall
/// when they have not changed.
pub(crate) struct Socket {
    tcp: Arc<TcpStream>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// "host:port", for messages.
    pub host: Arc<str>,
}

#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

/// How long to let the kernel wait when `left` remains before the deadline.
///
/// The kernel rounds a socket timeout up to its timer wheel's granularity,
/// which grows with the timeout: about 1/8 of it for long ones (a 30 s timeout
/// fires up to 0.8 s late). Arming it an eighth early, and again for what is
/// left each time it fires, converges on the deadline in a few wake-ups; the
/// last [`PRECISE_WINDOW`] is polled.
fn kernel_wait(left: Duration) -> Duration {
    left.saturating_sub(left / 8)
        .saturating_sub(PRECISE_WINDOW)
        .max(Duration::from_millis(1))
}

impl Socket {
    /// A socket not yet in use.
    pub(crate) fn new(tcp: TcpStream, host: Arc<str>) -> Socket {
        let _ = tcp.set_nodelay(true);
        Socket {
            tcp: Arc::new(tcp),
            read_timeout: None,
            write_timeout: None,
            host,
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn apply_timeout(&mut self, dir: Dir, want: Option<Duration>) -> io::Result<()> {
        let cached = match dir {
            Dir::Read => &mut self.read_timeout,
            Dir::Write => &mut self.write_timeout,
        };
        // A kernel timeout shorter than the budget is harmless (the operation is
        // retried after it fires); one longer than the budget by more than the
        // slack would overshoot, so only then, or when unset, is a syscall paid.
        let needs_set = match (*cached, want) {
            (None, None) => false,
            (Some(_), None) => true,
            (None, Some(_)) => true,
            (Some(c), Some(w)) => c > w + TIMEOUT_SLACK || c * 2 < w,
        };
        if needs_set {
            // A zero timeout means "block forever" to the kernel; keep at least 1 ms.
            let value = want.map(|w| w.max(Duration::from_millis(1)));
            match dir {
                Dir::Read => self.tcp.set_read_timeout(value)?,
                Dir::Write => self.tcp.set_write_timeout(value)?,
            }
            *cached = want;
        }
        Ok(())
    }

    /// Shut the socket down (used by cancel hooks and when discarding).
    pub(crate) fn shutdown(&self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    /// Register a hook that shuts this socket down when `token` is cancelled.
    pub(crate) fn watch(&self, token: &CancelToken) -> Option<CancelHook> {
        let tcp = Arc::clone(&self.tcp);
        token.on_cancel(move || {
            let _ = tcp.shutdown(Shutdown::Both);
        })
    }

    /// Run one read or write under `limit`. A kernel timeout that fires
    /// early is not an error: the operation resumes with what is left.
    fn run_op(
        &mut self,
        dir: Dir,
        limit: &Limit,
        cancel: Option<&CancelToken>,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let cancelled = || cancel.is_some_and(CancelToken::is_cancelled);
        let (until, setting) = limit.for_op(Instant::now());
        loop {
            if cancelled() {
                return Err(Error::cancelled(limit.phase).into());
            }
            let budget = until.remaining();
            if budget == Some(Duration::ZERO) {
                return Err(self.timeout(limit, setting));
            }
            if budget.is_some_and(|left| left <= PRECISE_WINDOW) {
                return self.finish_precisely(until, limit, setting, cancel, &mut op);
            }
            self.apply_timeout(dir, budget.map(kernel_wait))?;
            match op(&self.tcp) {
                Ok(n) => return Ok(n),
                // A cancel shuts the socket down: whatever the error says.
                Err(_) if cancelled() => return Err(Error::cancelled(limit.phase).into()),
                // The kernel timeout fired, or a signal: look at the budget again.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn timeout(&self, limit: &Limit, setting: Option<Setting>) -> io::Error {
        limit.timeout(&self.host, setting).into()
    }

    /// Poll a non-blocking socket until the operation succeeds, fails, is
    /// cancelled, or `until` passes. Only ever the last few milliseconds
    /// before a deadline.
    fn finish_precisely(
        &mut self,
        until: Deadline,
        limit: &Limit,
        setting: Option<Setting>,
        cancel: Option<&CancelToken>,
        op: &mut impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let cancelled = || cancel.is_some_and(CancelToken::is_cancelled);
        self.tcp.set_nonblocking(true)?;
        let result = loop {
            if cancelled() {
                break Err(Error::cancelled(limit.phase).into());
            }
            match op(&self.tcp) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
            match until.remaining() {
                Some(Duration::ZERO) => break Err(self.timeout(limit, setting)),
                Some(left) => std::thread::sleep(left.min(POLL_STEP)),
                None => std::thread::sleep(POLL_STEP),
            }
        };
        let restored = self.tcp.set_nonblocking(false);
        let n = result?;
        restored?;
        Ok(n)
    }
}

/// A socket with the limit and token of the operation at hand: what rustls
/// and the read loops see as `Read` + `Write`.
pub(crate) struct Bound<'a> {
    sock: &'a mut Socket,
    limit: &'a Limit,
    cancel: Option<&'a CancelToken>,
}

impl Read for Bound<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .sock
            .run_op(Dir::Read, self.limit, self.cancel, |mut tcp| tcp.read(buf))?;
        // A cancel shuts the socket down, which reads as EOF.
        if n == 0 && !buf.is_empty() && self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::cancelled(self.limit.phase).into());
        }
        Ok(n)
    }
}

impl Write for Bound<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock
            .run_op(Dir::Write, self.limit, self.cancel, |mut tcp| {
                tcp.write(buf)
            })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Facts about a connection that outlive a single request.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub id: u64,
    pub remote: SocketAddr,
    pub created: Instant,
    /// When the connection last went idle (for idle time before reuse).
    pub idle_since: Option<Instant>,
    /// The server's `Keep-Alive: timeout=N`, if it sent one.
    pub server_keep_alive: Option<Duration>,
}

/// A connection: socket, optional TLS session, and its read buffer.
pub(crate) struct Conn {
    pub sock: Socket,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    /// The TLS session with an `https://` proxy, when the origin's session
    /// (`tls`) runs inside it.
    #[cfg(feature = "tls")]
    outer: Option<Box<rustls::ClientConnection>>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Reused buffer for writing request heads.
    pub wbuf: Vec<u8>,
    pub info: ConnInfo,
    /// The token of the request using the connection, and the hook that
    /// shuts the socket down when it is cancelled.
    watched: Option<(CancelToken, CancelHook)>,
}

/// A connection lent to the framing layer together with the limit of the
/// reads it will make: the framing code asks for bytes, the connection reads
/// them under this limit. Made by [`Conn::reading`]; it lives for one step.
pub(crate) struct Reading<'a> {
    pub conn: &'a mut Conn,
    pub limit: &'a Limit,
}

impl Conn {
    pub(crate) fn new(sock: Socket, id: u64, remote: SocketAddr) -> Conn {
        Conn {
            sock,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            outer: None,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            wbuf: Vec::new(),
            info: ConnInfo {
                id,
                remote,
                created: Instant::now(),
                idle_since: None,
                server_keep_alive: None,
            },
            watched: None,
        }
    }

    /// This connection, for reads under `limit`.
    pub(crate) fn reading<'a>(&'a mut self, limit: &'a Limit) -> Reading<'a> {
        Reading { conn: self, limit }
    }

    /// Speak TLS from now on. On a connection that already does (to an
    /// `https://` proxy), the new session runs inside the existing one.
    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&mut self, tls: Box<rustls::ClientConnection>) {
        if let Some(proxy_tls) = self.tls.take() {
            self.outer = Some(proxy_tls);
        }
        self.tls = Some(tls);
    }

    /// The TLS session, once `set_tls` gave it one.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_session(&self) -> Option<&rustls::ClientConnection> {
        self.tls.as_deref()
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_handshake(&mut self, limit: &Limit) -> io::Result<()> {
        let cancel = self.watched.as_ref().map(|(t, _)| t);
        let mut io = Bound {
            sock: &mut self.sock,
            limit,
            cancel,
        };
        if let Some(tls) = self.tls.as_mut() {
            while tls.is_handshaking() {
                match self.outer.as_mut() {
                    Some(outer) => tls.complete_io(&mut Layered { outer, io: &mut io })?,
                    None => tls.complete_io(&mut io)?,
                };
            }
        }
        Ok(())
    }

    /// Make `token` (the request's) stop this connection: a cancel shuts the
    /// socket down, so a blocked read or write returns at once. Returns false
    /// when the token is already cancelled.
    pub(crate) fn watch(&mut self, token: Option<&CancelToken>) -> bool {
        let Some(token) = token else {
            self.watched = None;
            return true;
        };
        let already = self
            .watched
            .as_ref()
            .is_some_and(|(old, _)| old.same_as(token));
        if !already {
            self.watched = match self.sock.watch(token) {
                Some(hook) => Some((token.clone(), hook)),
                None => return false,
            };
        }
        !token.is_cancelled()
    }

    /// Whether the request's token was cancelled.
    pub(crate) fn was_cancelled(&self) -> bool {
        self.watched
            .as_ref()
            .is_some_and(|(token, _)| token.is_cancelled())
    }

    fn read_transport(&mut self, out: &mut [u8], limit: &Limit) -> io::Result<usize> {
        let cancel = self.watched.as_ref().map(|(t, _)| t);
        let mut io = Bound {
            sock: &mut self.sock,
            limit,
            cancel,
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            return match self.outer.as_mut() {
                Some(outer) => read_tls_plaintext(tls, &mut Layered { outer, io: &mut io }, out),
                None => read_tls_plaintext(tls, &mut io, out),
            };
        }
        io.read(out)
    }

    /// Write all of `data` under `limit` (one syscall for plain TCP when the
    /// kernel takes it all).
    pub(crate) fn write_all(&mut self, data: &[u8], limit: &Limit) -> io::Result<()> {
        let cancel = self.watched.as_ref().map(|(t, _)| t);
        let mut io = Bound {
            sock: &mut self.sock,
            limit,
            cancel,
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            if let Some(outer) = self.outer.as_mut() {
                let mut layered = Layered { outer, io: &mut io };
                let mut stream = rustls::Stream::new(&mut **tls, &mut layered);
                stream.write_all(data)?;
                return stream.flush();
            }
            let mut stream = rustls::Stream::new(&mut **tls, &mut io);
            stream.write_all(data)?;
            return stream.flush();
        }
        io.write_all(data)
    }

    /// Buffered bytes not yet consumed.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Return buffered bytes, reading more under `limit` when none are
    /// left. Empty means EOF.
    pub(crate) fn fill_buf(&mut self, limit: &Limit) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            let mut buf = std::mem::take(&mut self.buf);
            let result = self.read_transport(&mut buf, limit);
            self.buf = buf;
            self.end = result?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Read more bytes after those buffered, growing the buffer up to `max`
    /// total. Returns the number of new bytes (0 = EOF), or an error if the
    /// buffer is already `max` bytes long.
    pub(crate) fn fill_more(&mut self, max: usize, limit: &Limit) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= max {
                return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer limit"));
            }
            let new_len = (self.buf.len() * 2).min(max);
            self.buf.resize(new_len, 0);
        }
        let mut buf = std::mem::take(&mut self.buf);
        let end = self.end;
        let result = self.read_transport(&mut buf[end..], limit);
        self.buf = buf;
        let n = result?;
        self.end += n;
        Ok(n)
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Read into `out`: from the buffer if it holds anything, otherwise straight
    /// from the socket when `out` is large (no copy through the buffer).
    pub(crate) fn read_into(&mut self, out: &mut [u8], limit: &Limit) -> io::Result<usize> {
        if self.start == self.end && out.len() >= self.buf.len() {
            return self.read_transport(out, limit);
        }
        let avail = self.fill_buf(limit)?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }

    /// The request is over: forget its token (idle and closing connections
    /// watch none). Returns true if it was cancelled, in which case the
    /// connection may already be shut down and must not be reused.
    ///
    /// The hook is removed before the flag is read: `cancel()` sets the flag
    /// before it takes the hooks, so a hook that still runs implies the flag.
    pub(crate) fn detach_cancel(&mut self) -> bool {
        match self.watched.take() {
            None => false,
            Some((token, hook)) => {
                drop(hook);
                token.is_cancelled()
            }
        }
    }

    /// Prepare to rest in the pool: no unread bytes may remain, and a buffer
    /// grown for a large head goes back to its resting size.
    /// (The pool has already detached the request's cancel token.)
    pub(crate) fn make_idle(&mut self, now: Instant) -> bool {
        if self.start != self.end || self.tls_has_unread_data() {
            return false;
        }
        self.start = 0;
        self.end = 0;
        if self.buf.len() > READ_BUF {
            self.buf.truncate(READ_BUF);
            self.buf.shrink_to_fit();
        }
        if self.wbuf.capacity() > 4 * 1024 {
            self.wbuf = Vec::new();
        }
        self.info.idle_since = Some(now);
        true
    }

    /// Whether rustls holds decrypted bytes nobody read: the server sent more
    /// than the response framing said.
    #[cfg(feature = "tls")]
    fn tls_has_unread_data(&mut self) -> bool {
        // Through an https proxy, bytes the proxy's session decrypted but the
        // origin's has not taken yet count too.
        [self.outer.as_mut(), self.tls.as_mut()]
            .into_iter()
            .flatten()
            .any(|tls| match tls.process_new_packets() {
                Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
                Err(_) => true,
            })
    }

    #[cfg(not(feature = "tls"))]
    fn tls_has_unread_data(&mut self) -> bool {
        false
    }

    /// Check, without blocking, that an idle connection is still usable: the
    /// server has not closed it and has sent nothing unsolicited. One
    /// `recv(MSG_PEEK | MSG_DONTWAIT)`, made before every reuse however
    /// recently the connection was used: a byte nobody asked for is a late or
    /// extra response, and reading it as the next request's answer would hand
    /// one caller's response to another.
    pub(crate) fn is_alive(&mut self) -> bool {
        // A signal may interrupt the peek; a second look settles it.
        for _ in 0..2 {
            match peek_now(self.sock.tcp()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                Ok(0) => return false,
                Ok(_) => return self.only_tls_housekeeping_pending(),
            }
        }
        false
    }

    /// Bytes arrived on an idle connection. For plain HTTP that is always wrong
    /// (an unsolicited 408, say). Over TLS they may be session tickets, which are
    /// fine; a close_notify or application data is not.
    #[cfg(feature = "tls")]
    fn only_tls_housekeeping_pending(&mut self) -> bool {
        let Some(tls) = self.tls.as_mut() else {
            return false;
        };
        if self.outer.is_some() {
            // Bytes under two TLS layers cannot be told apart without
            // reading them; a tunnelled connection with any waiting is not
            // reused (at worst, one more connection is opened).
            return false;
        }
        let mut tcp: &TcpStream = self.sock.tcp();
        if tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let only_housekeeping = loop {
            match tls.read_tls(&mut tcp) {
                Ok(0) => break false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
            match tls.process_new_packets() {
                Ok(state) => {
                    if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                        break false;
                    }
                }
                Err(_) => break false,
            }
        };
        let restored = tcp.set_nonblocking(false).is_ok();
        only_housekeeping && restored
    }

    #[cfg(not(feature = "tls"))]
    fn only_tls_housekeeping_pending(&mut self) -> bool {
        false
    }

    /// Close now, politely for TLS, without blocking for long.
    pub(crate) fn close(mut self: Box<Self>) {
        self.detach_cancel();
        #[cfg(feature = "tls")]
        if let Some(tls) = self.outer.as_mut().or(self.tls.as_mut()) {
            // Through an https proxy, the proxy's session is the one closed.
            tls.send_close_notify();
            let mut tcp: &TcpStream = self.sock.tcp();
            let _ = tcp.set_nonblocking(true);
            let _ = tls.write_tls(&mut tcp);
        }
        // With the cancel hook gone this is the socket's only handle and
        // dropping it closes the descriptor; a shutdown is only needed while
        // another handle could keep it open.
        if Arc::strong_count(&self.sock.tcp) > 1 {
            self.sock.shutdown();
        }
    }
}

/// Read decrypted bytes, fetching and processing records as needed.
///
/// Unlike `rustls::Stream`, a read never waits on sending: pending records
/// (an alert, a key update) go out best effort, so a connection whose sending
/// side has failed can still yield what the server said before it closed
/// (the early answer to an upload it refused).
#[cfg(feature = "tls")]
fn read_tls_plaintext(
    tls: &mut rustls::ClientConnection,
    sock: &mut (impl Read + Write),
    out: &mut [u8],
) -> io::Result<usize> {
    // Each pass reads at least one more record from the socket, or returns.
    loop {
        match tls.reader().read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Without close_notify, an EOF may be an attacker's FIN cutting
            // the data short. A framed body never reads past its end, so
            // this only surfaces where the data really is incomplete, or
            // for a body delimited by the close, where it must not pass
            // as complete.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Error::protocol(
                    "the TLS connection was closed without close_notify; the data may be truncated",
                )
                .into())
            }
            Err(e) => return Err(e),
        }
        if tls.wants_write() {
            let _ = tls.write_tls(sock);
        }
        tls.read_tls(sock)?;
        if let Err(e) = tls.process_new_packets() {
            // Tell the server why, as rustls' own stream does.
            let _ = tls.write_tls(sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// The plaintext of an `https://` proxy's TLS session, as the transport of
/// the origin's TLS session inside it.
#[cfg(feature = "tls")]
struct Layered<'a, 'b> {
    outer: &'a mut rustls::ClientConnection,
    io: &'a mut Bound<'b>,
}

#[cfg(feature = "tls")]
impl Read for Layered<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_tls_plaintext(self.outer, self.io, buf)
    }
}

#[cfg(feature = "tls")]
impl Write for Layered<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.outer.writer().write(buf)?;
        while self.outer.wants_write() {
            self.outer.write_tls(self.io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.outer.wants_write() {
            self.outer.write_tls(self.io)?;
        }
        Ok(())
    }
}

/// Peek at one byte without blocking and without changing the socket's mode:
/// `WouldBlock` means nothing is waiting, `Ok(0)` that the peer closed.
#[cfg(unix)]
fn peek_now(tcp: &TcpStream) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    socket2::SockRef::from(tcp).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// Without `MSG_DONTWAIT`, the socket is made non-blocking for the peek.
#[cfg(not(unix))]
fn peek_now(tcp: &TcpStream) -> io::Result<usize> {
    tcp.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let result = tcp.peek(&mut byte);
    tcp.set_nonblocking(false)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Phase;
    use std::net::TcpListener;

    fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let sock = Socket::new(client, Arc::from("test"));
        (Conn::new(sock, 1, addr), server)
    }

    #[test]
    fn read_times_out_with_the_phase_named() {
        let (mut conn, _server) = pair();
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_millis(30)));
        let limit = Limit::until(Phase::ResponseHead, deadline, None);
        let err = conn.fill_buf(&limit).unwrap_err();
        let err = Error::from_io(err);
        assert_eq!(err.kind(), crate::ErrorKind::Timeout(Phase::ResponseHead));
    }

    #[test]
    fn cancel_wakes_a_blocked_read() {
        let (mut conn, _server) = pair();
        let token = CancelToken::new();
        assert!(conn.watch(Some(&token)));
        let other = token.clone();
        let t = std::thread::spawn(move || {
            let limit = Limit::none(Phase::Body);
            let err = conn.fill_buf(&limit).map(|b| b.len()).unwrap_err();
            Error::from_io(err).kind()
        });
        other.cancel();
        assert_eq!(t.join().unwrap(), crate::ErrorKind::Cancelled);
    }

    #[test]
    fn a_long_kernel_timeout_is_armed_early_and_converges() {
        // Each wake-up leaves an eighth (plus the polled window) to go, so a
        // 30 s wait reaches the last 8 ms in a handful of wake-ups.
        let mut left = Duration::from_secs(30);
        let mut wakeups = 0;
        while left > PRECISE_WINDOW {
            let wait = kernel_wait(left);
            assert!(wait < left, "{wait:?} >= {left:?}");
            // The kernel may fire up to an eighth late: still before the deadline.
            assert!(wait + wait / 8 < left + Duration::from_millis(1));
            left -= wait;
            wakeups += 1;
            assert!(wakeups < 40, "does not converge");
        }
        assert!(wakeups <= 12, "{wakeups} wake-ups");
    }

    #[test]
    fn liveness_sees_server_close_and_unsolicited_bytes() {
        let (mut conn, server) = pair();
        assert!(conn.is_alive());
        (&server)
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .unwrap();
        // Wait (bounded) until the bytes are visible to the peek.
        let mut buf = [0u8; 1];
        conn.sock
            .tcp()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        conn.sock.tcp().peek(&mut buf).unwrap();
        assert!(!conn.is_alive());

        let (mut conn, server) = pair();
        drop(server);
        conn.sock
            .tcp()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(conn.sock.tcp().peek(&mut buf).unwrap(), 0);
        assert!(!conn.is_alive());
    }
}
