//! One connection: read requests (pipelined or not), skip their bodies,
//! answer each with the canned response.
//!
//! Parsing is deliberately cheap: find the end of the head, look at the
//! request line and the four headers that change framing or connection
//! handling, and ignore everything else. The server exists to measure a
//! client, so it must cost as little as possible per request.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::Shared;

/// A request head larger than this is refused with 431.
const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size or trailer line longer than this is a protocol error.
const MAX_LINE: usize = 8 * 1024;
/// Initial read buffer size; it grows only while a head is being gathered.
const READ_BUF: usize = 16 * 1024;
/// Bodies up to this size are copied next to the head and sent in one write.
pub(crate) const SMALL_BODY: usize = 64 * 1024;
/// Large bodies are written straight from the shared buffer in slices of this size.
const WRITE_CHUNK: usize = 1024 * 1024;
/// Pipelined responses are coalesced until the output buffer reaches this size.
const OUT_FLUSH: usize = 64 * 1024;

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const HEAD_TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A byte stream the server can close politely.
pub(crate) trait Transport: Read + Write {
    /// Ends the connection from our side (TLS: close_notify first).
    fn close(&mut self);
}

impl Transport for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Transport for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

/// The responses built once at start and shared by every connection.
pub(crate) struct Responses {
    head_keep: Vec<u8>,
    head_close: Vec<u8>,
    pub(crate) body: Vec<u8>,
}

impl Responses {
    pub(crate) fn new(body_size: usize) -> Responses {
        let head = |extra: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\n\
                 Content-Type: application/octet-stream\r\n{extra}\r\n"
            )
            .into_bytes()
        };
        Responses {
            head_keep: head(""),
            head_close: head("Connection: close\r\n"),
            body: body_bytes(body_size),
        }
    }
}

/// Printable lines of 64 bytes, so a body written to a terminal stays readable.
fn body_bytes(size: usize) -> Vec<u8> {
    const LINE: &[u8; 64] = b"windlass loopback body abcdefghijklmnopqrstuvwxyz 0123456789 ..\n";
    let mut body = Vec::with_capacity(size);
    while body.len() < size {
        let take = (size - body.len()).min(LINE.len());
        body.extend_from_slice(&LINE[..take]);
    }
    body
}

#[derive(Debug, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, PartialEq)]
struct RequestInfo {
    head_only: bool,
    close: bool,
    framing: Framing,
    expect_continue: bool,
}

/// Reads what matters from a request head (without its final CRLFCRLF).
/// `None` means the request is malformed.
fn parse_head(head: &[u8]) -> Option<RequestInfo> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let request_line = lines.next()?;
    let mut parts = request_line.split(|&b| b == b' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let _target = parts.next().filter(|t| !t.is_empty())?;
    let version = parts.next()?;
    if parts.next().is_some() || !version.starts_with(b"HTTP/1.") {
        return None;
    }
    let mut info = RequestInfo {
        head_only: method == b"HEAD",
        // An HTTP/1.0 client expects `Connection: keep-alive` in the answer
        // to keep the connection; the canned response never says it.
        close: version == b"HTTP/1.0",
        framing: Framing::None,
        expect_continue: false,
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for line in lines {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value).ok()?.parse::<u64>().ok()?;
            if length.is_some_and(|old| old != n) {
                return None;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only chunked is understood; any other coding cannot be framed.
            let last = value.rsplit(|&b| b == b',').next().map(trim)?;
            if !last.eq_ignore_ascii_case(b"chunked") {
                return None;
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"close"))
            {
                info.close = true;
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            info.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    info.framing = match (chunked, length) {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::None,
    };
    Some(info)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        n = n * 16 + (d as char).to_digit(16)? as u64;
    }
    Some(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Serves one connection until the client closes it, asks to close it, the
/// per-connection request limit is reached, or the server stops.
pub(crate) fn serve<S: Transport>(stream: S, shared: &Shared) {
    let mut conn = Conn {
        stream,
        buf: vec![0; READ_BUF],
        start: 0,
        end: 0,
        out: Vec::with_capacity(OUT_FLUSH),
    };
    // Any error (reset, malformed framing, server stopping) ends the connection.
    let _ = conn.run(shared);
    let _ = conn.flush();
    conn.stream.close();
}

/// What [`Conn::read_head`] found.
enum Head {
    /// A whole head of this length, up to (not including) the blank line.
    Complete(usize),
    /// A clean EOF between requests.
    Eof,
    /// More than [`MAX_HEAD`] bytes without a blank line.
    TooLarge,
}

struct Conn<S> {
    stream: S,
    /// Unconsumed input is `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Responses not yet written: pipelined answers are coalesced here and
    /// written before the next blocking read.
    out: Vec<u8>,
}

impl<S: Transport> Conn<S> {
    fn run(&mut self, shared: &Shared) -> io::Result<()> {
        let mut served: u64 = 0;
        loop {
            let head_len = match self.read_head()? {
                Head::Complete(n) => n,
                Head::Eof => return Ok(()),
                Head::TooLarge => {
                    self.out.extend_from_slice(HEAD_TOO_LARGE);
                    return Err(invalid("request head too large"));
                }
            };
            let info = parse_head(&self.buf[self.start..self.start + head_len]);
            self.start += head_len + 4;
            let Some(info) = info else {
                self.out.extend_from_slice(BAD_REQUEST);
                return Err(invalid("malformed request head"));
            };
            if info.expect_continue && !matches!(info.framing, Framing::None | Framing::Length(0)) {
                self.out.extend_from_slice(CONTINUE);
                self.flush()?;
            }
            match info.framing {
                Framing::None => {}
                Framing::Length(n) => self.skip(n)?,
                Framing::Chunked => self.skip_chunked()?,
            }
            if !shared.delay.is_zero() {
                self.flush()?;
                if shared.stop.wait(shared.delay) {
                    return Ok(());
                }
            }
            served += 1;
            let last = info.close || shared.max_requests.is_some_and(|max| served >= max);
            self.respond(shared, info.head_only, last)?;
            if last {
                return Ok(());
            }
        }
    }

    /// Queues (or, for a large body, writes) one response.
    fn respond(&mut self, shared: &Shared, head_only: bool, close: bool) -> io::Result<()> {
        let r = &shared.responses;
        let head = if close { &r.head_close } else { &r.head_keep };
        self.out.extend_from_slice(head);
        let large = !head_only && r.body.len() > SMALL_BODY;
        if !head_only && !large {
            self.out.extend_from_slice(&r.body);
        }
        // Counted before the bytes leave, so a client that has read the
        // response always sees it in `requests()`.
        shared
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if large {
            self.flush()?;
            for chunk in r.body.chunks(WRITE_CHUNK) {
                self.stream.write_all(chunk)?;
            }
            self.stream.flush()?;
        } else if self.out.len() >= OUT_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            let res = self.stream.write_all(&self.out);
            self.out.clear();
            res?;
            self.stream.flush()?;
        }
        Ok(())
    }

    /// Reads more input, after writing any queued responses (we are about
    /// to block, and the client may be waiting for them). `false` on EOF.
    fn fill(&mut self) -> io::Result<bool> {
        self.flush()?;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // Callers bound how much unconsumed input they gather.
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Gathers a whole request head.
    fn read_head(&mut self) -> io::Result<Head> {
        let mut scanned: usize = 0;
        loop {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            while self.buf[self.start..self.end].starts_with(b"\r\n") {
                self.start += 2;
                scanned = 0;
            }
            let avail = &self.buf[self.start..self.end];
            let from = scanned.saturating_sub(3);
            if let Some(p) = find(&avail[from..], b"\r\n\r\n") {
                return Ok(Head::Complete(from + p));
            }
            scanned = avail.len();
            if scanned >= MAX_HEAD {
                return Ok(Head::TooLarge);
            }
            if !self.fill()? {
                if self.start == self.end || &self.buf[self.start..self.end] == b"\r" {
                    return Ok(Head::Eof);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Consumes `n` body bytes.
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let take = ((self.end - self.start) as u64).min(n);
            self.start += take as usize;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Consumes one CRLF-terminated line; returns where it lies in `buf`
    /// (valid until the next read).
    fn read_line(&mut self) -> io::Result<(usize, usize)> {
        let mut scanned: usize = 0;
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(p) = find(&avail[scanned.saturating_sub(1)..], b"\r\n") {
                let len = scanned.saturating_sub(1) + p;
                let at = self.start;
                self.start += len + 2;
                return Ok((at, len));
            }
            scanned = avail.len();
            if scanned > MAX_LINE {
                return Err(invalid("line too long"));
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Consumes a chunked body, extensions and trailers included.
    fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let (at, len) = self.read_line()?;
            let line = &self.buf[at..at + len];
            let digits = trim(line.split(|&b| b == b';').next().unwrap_or(line));
            let size = parse_hex(digits).ok_or_else(|| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                while self.read_line()?.1 != 0 {}
                return Ok(());
            }
            self.skip(size)?;
            if self.read_line()?.1 != 0 {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_framing_and_connection_headers() {
        let info = parse_head(
            b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\nConnection: keep-alive, Close",
        )
        .unwrap();
        assert_eq!(info.framing, Framing::Length(5));
        assert!(info.close);
        assert!(!info.head_only);

        let info =
            parse_head(b"PUT /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3")
                .unwrap();
        assert_eq!(info.framing, Framing::Chunked);

        let info = parse_head(b"HEAD / HTTP/1.1\r\nHost: x").unwrap();
        assert!(info.head_only);
        assert!(!info.close);

        assert!(parse_head(b"GET / HTTP/1.0").unwrap().close);
    }

    #[test]
    fn rejects_malformed_heads() {
        assert_eq!(parse_head(b"GET /"), None);
        assert_eq!(parse_head(b"GET / SPDY/3"), None);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nno colon"), None);
        assert_eq!(parse_head(b"POST / HTTP/1.1\r\nContent-Length: x"), None);
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2"),
            None
        );
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip"),
            None
        );
    }

    #[test]
    fn body_is_printable_lines_of_the_requested_size() {
        assert_eq!(body_bytes(0).len(), 0);
        let body = body_bytes(130);
        assert_eq!(body.len(), 130);
        assert_eq!(body[63], b'\n');
        assert!(body.iter().all(|b| b.is_ascii()));
    }
}
