//! One connection: a TCP socket whose timeouts follow the current deadline,
//! optional TLS on top, and a read buffer that stays with the connection across
//! requests (so a pooled connection allocates nothing per request).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::{CancelHook, CancelToken, Deadline};
use crate::error::{Error, Phase};

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

/// What the current operation on a connection is allowed.
#[derive(Clone)]
pub(crate) struct IoCtx {
    /// The limit for the phase as a whole (overall deadline included).
    pub deadline: Deadline,
    /// A limit per read or write, restarted each time (the read-idle timeout).
    pub per_op: Option<Duration>,
    pub phase: Phase,
    pub phase_started: Instant,
    pub cancel: Option<CancelToken>,
}

impl IoCtx {
    pub(crate) fn new(phase: Phase, deadline: Deadline, cancel: Option<&CancelToken>) -> IoCtx {
        IoCtx {
            deadline,
            per_op: None,
            phase,
            phase_started: Instant::now(),
            cancel: cancel.cloned(),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }
}

/// A TCP socket that applies the [`IoCtx`] to every read and write.
pub(crate) struct Socket {
    tcp: Arc<TcpStream>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    pub ctx: IoCtx,
    /// "host:port", for messages.
    pub host: Arc<str>,
}

#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

impl Socket {
    /// A socket not yet in use: [`Conn::begin`] gives it its limits.
    pub(crate) fn new(tcp: TcpStream, host: Arc<str>) -> Socket {
        let _ = tcp.set_nodelay(true);
        Socket {
            tcp: Arc::new(tcp),
            read_timeout: None,
            write_timeout: None,
            ctx: IoCtx::new(Phase::Connect, Deadline::Never, None),
            host,
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Time allowed for one operation, `Err` when it has already run out.
    fn op_deadline(&self) -> Deadline {
        self.ctx
            .deadline
            .min(Deadline::after(Instant::now(), self.ctx.per_op))
    }

    fn budget(&self, until: Deadline) -> io::Result<Option<Duration>> {
        if self.ctx.is_cancelled() {
            return Err(Error::cancelled(self.ctx.phase).into());
        }
        match until.remaining() {
            Some(Duration::ZERO) => Err(self.timeout_error()),
            other => Ok(other),
        }
    }

    fn timeout_error(&self) -> io::Error {
        Error::timeout(self.ctx.phase, &self.host, self.ctx.phase_started.elapsed()).into()
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

    /// Map an error from the socket to what the caller should see.
    fn map_err(&self, e: io::Error) -> Option<io::Error> {
        if self.ctx.is_cancelled() {
            return Some(Error::cancelled(self.ctx.phase).into());
        }
        match e.kind() {
            // The kernel timeout fired; retry unless the budget is really spent.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => None,
            io::ErrorKind::Interrupted => None,
            _ => Some(e),
        }
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
}

impl Socket {
    /// Run one read or write under the current limits. The kernel timeout is
    /// set to end [`PRECISE_WINDOW`] early: the kernel rounds it up to its
    /// timer tick, which would overshoot the deadline by milliseconds, so the
    /// last stretch is waited out by polling instead.
    fn run_op(
        &mut self,
        dir: Dir,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let until = self.op_deadline();
        loop {
            let budget = self.budget(until)?;
            if budget.is_some_and(|left| left <= PRECISE_WINDOW) {
                return self.finish_precisely(until, &mut op);
            }
            self.apply_timeout(dir, budget.map(|left| left - PRECISE_WINDOW))?;
            match op(&self.tcp) {
                Ok(n) => return Ok(n),
                Err(e) => {
                    if let Some(e) = self.map_err(e) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Poll a non-blocking socket until the operation succeeds, fails, is
    /// cancelled, or `until` passes. Only ever the last few milliseconds
    /// before a deadline.
    fn finish_precisely(
        &mut self,
        until: Deadline,
        op: &mut impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.tcp.set_nonblocking(true)?;
        let result = loop {
            if self.ctx.is_cancelled() {
                break Err(Error::cancelled(self.ctx.phase).into());
            }
            match op(&self.tcp) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(self.map_err(e).unwrap_or_else(|| self.timeout_error())),
            }
            match until.remaining() {
                Some(Duration::ZERO) => break Err(self.timeout_error()),
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

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.run_op(Dir::Read, |mut tcp| tcp.read(buf))?;
        // A cancel shuts the socket down, which reads as EOF.
        if n == 0 && !buf.is_empty() && self.ctx.is_cancelled() {
            return Err(Error::cancelled(self.ctx.phase).into());
        }
        Ok(n)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.run_op(Dir::Write, |mut tcp| tcp.write(buf))
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
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Reused buffer for writing request heads.
    pub wbuf: Vec<u8>,
    pub info: ConnInfo,
    cancel_hook: Option<CancelHook>,
}

impl Conn {
    pub(crate) fn new(sock: Socket, id: u64, remote: SocketAddr) -> Conn {
        Conn {
            sock,
            #[cfg(feature = "tls")]
            tls: None,
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
            cancel_hook: None,
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&mut self, tls: Box<rustls::ClientConnection>) {
        self.tls = Some(tls);
    }

    /// Whether the TLS handshake resumed an earlier session.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_resumed(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|t| t.handshake_kind())
            .is_some_and(|k| k == rustls::HandshakeKind::Resumed)
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_handshake(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.is_handshaking() {
                tls.complete_io(&mut self.sock)?;
            }
        }
        Ok(())
    }

    /// Start an operation: set its limits and, with a token, make cancel shut
    /// the socket down. Returns false when the token is already cancelled.
    pub(crate) fn begin(&mut self, ctx: IoCtx) -> bool {
        // A connection opened for this request already watches its token.
        let watching = self.cancel_hook.is_some()
            && match (&self.sock.ctx.cancel, &ctx.cancel) {
                (Some(old), Some(new)) => old.same_as(new),
                _ => false,
            };
        self.sock.ctx = ctx;
        if !watching {
            self.cancel_hook = match &self.sock.ctx.cancel {
                None => None,
                Some(token) => match self.sock.watch(token) {
                    Some(hook) => Some(hook),
                    None => return false,
                },
            };
        }
        !self.sock.ctx.is_cancelled()
    }

    /// Switch to the next phase of the same request.
    pub(crate) fn set_phase(&mut self, phase: Phase, deadline: Deadline, per_op: Option<Duration>) {
        self.sock.ctx.phase = phase;
        self.sock.ctx.deadline = deadline;
        self.sock.ctx.per_op = per_op;
        self.sock.ctx.phase_started = Instant::now();
    }

    pub(crate) fn was_cancelled(&self) -> bool {
        self.sock.ctx.is_cancelled()
    }

    fn read_transport(&mut self, out: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            return read_tls_plaintext(tls, &mut self.sock, out);
        }
        self.sock.read(out)
    }

    /// Write all of `data` (one syscall for plain TCP when the kernel takes it all).
    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            let mut stream = rustls::Stream::new(&mut **tls, &mut self.sock);
            stream.write_all(data)?;
            return stream.flush();
        }
        self.sock.write_all(data)
    }

    /// Buffered bytes not yet consumed.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Return buffered bytes, reading more when none are left. Empty means EOF.
    pub(crate) fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            let mut buf = std::mem::take(&mut self.buf);
            let result = self.read_transport(&mut buf);
            self.buf = buf;
            self.end = result?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Read more bytes after those buffered, growing the buffer up to `max`
    /// total. Returns the number of new bytes (0 = EOF), or an error if the
    /// buffer is already `max` bytes long.
    pub(crate) fn fill_more(&mut self, max: usize) -> io::Result<usize> {
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
        let result = self.read_transport(&mut buf[end..]);
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
    pub(crate) fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && out.len() >= self.buf.len() {
            return self.read_transport(out);
        }
        let avail = self.fill_buf()?;
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
        drop(self.cancel_hook.take());
        let cancelled = self.sock.ctx.is_cancelled();
        self.sock.ctx.cancel = None;
        cancelled
    }

    /// Prepare to rest in the pool: no unread bytes may remain, and a buffer
    /// grown for a large head goes back to its resting size.
    pub(crate) fn make_idle(&mut self) -> bool {
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
        self.detach_cancel();
        self.info.idle_since = Some(Instant::now());
        true
    }

    /// Whether rustls holds decrypted bytes nobody read: the server sent more
    /// than the response framing said.
    #[cfg(feature = "tls")]
    fn tls_has_unread_data(&mut self) -> bool {
        match self.tls.as_mut() {
            None => false,
            Some(tls) => match tls.process_new_packets() {
                Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
                Err(_) => true,
            },
        }
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
        if let Some(tls) = self.tls.as_mut() {
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
    sock: &mut Socket,
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
        conn.set_phase(Phase::ResponseHead, deadline, None);
        let err = conn.fill_buf().unwrap_err();
        let err = Error::from_io(err);
        assert_eq!(err.kind(), crate::ErrorKind::Timeout(Phase::ResponseHead));
    }

    #[test]
    fn cancel_wakes_a_blocked_read() {
        let (mut conn, _server) = pair();
        let token = CancelToken::new();
        assert!(conn.begin(IoCtx::new(Phase::Body, Deadline::Never, Some(&token))));
        let other = token.clone();
        let t = std::thread::spawn(move || {
            let err = conn.fill_buf().map(|b| b.len()).unwrap_err();
            Error::from_io(err).kind()
        });
        other.cancel();
        assert_eq!(t.join().unwrap(), crate::ErrorKind::Cancelled);
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
