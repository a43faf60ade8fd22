//! HTTP/1.1 on the wire: the request head out, the response head in (httparse),
//! and the body framing of RFC 9112 §6.3.

use std::io;
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use crate::conn::Conn;
use crate::error::Error;

/// Most headers a response may carry.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most bytes of trailers after a chunked body.
const MAX_TRAILERS: usize = 64 * 1024;

/// Start a request head: `METHOD target HTTP/1.1`.
pub(crate) fn put_request_line(out: &mut Vec<u8>, method: &Method, target: &str) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// The request target of `url`: origin form (path and query), or absolute
/// form (everything before the fragment) for a request through a proxy.
pub(crate) fn target(url: &url::Url, absolute: bool) -> &str {
    let from = if absolute {
        url::Position::BeforeScheme
    } else {
        url::Position::BeforePath
    };
    &url[from..url::Position::AfterQuery]
}

/// Write a header line with the name in the conventional Title-Case: names are
/// case-insensitive, but some old servers are not.
pub(crate) fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    put_name(out, name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// [`put_header`] with a formatted value, written in place (no allocation).
pub(crate) fn put_header_fmt(out: &mut Vec<u8>, name: &str, value: std::fmt::Arguments<'_>) {
    put_name(out, name);
    // Writing into a Vec cannot fail.
    let _ = std::io::Write::write_fmt(out, value);
    out.extend_from_slice(b"\r\n");
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut upper = true;
    for b in name.bytes() {
        out.push(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
    out.extend_from_slice(b": ");
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// Bytes the head took on the wire.
    pub size: usize,
}

/// Read one response head (possibly a 1xx). `got_bytes` is set as soon as any
/// byte of a response has arrived, which decides whether a retry is safe.
pub(crate) fn read_head(conn: &mut Conn, max: usize, got_bytes: &mut bool) -> Result<Head, Error> {
    loop {
        let buf = conn.buffered();
        if !buf.is_empty() {
            *got_bytes = true;
            // Only the first `max` bytes may hold the head: a head that
            // arrived whole in one large read is still held to the limit.
            let window = &buf[..buf.len().min(max)];
            if let Some((head, used)) = parse_head(window)? {
                conn.consume(used);
                return Ok(head);
            }
            if buf.len() >= max {
                return Err(head_too_large(max));
            }
        }
        let n = match conn.fill_more(max) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => return Err(head_too_large(max)),
            Err(e) => return Err(Error::from_io(e)),
        };
        if n == 0 {
            return Err(if *got_bytes {
                Error::protocol("connection closed in the middle of the response head")
            } else {
                Error::new(
                    crate::ErrorKind::Io,
                    "connection closed by the server before any response",
                )
            });
        }
    }
}

fn head_too_large(max: usize) -> Error {
    Error::protocol(format!("response head is larger than the {max} byte limit"))
}

fn line_too_long() -> io::Error {
    Error::protocol("chunk framing line too long").into()
}

fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Error> {
    // Left uninitialised: zeroing 128 header slots (4 KiB) for every
    // response cost more instructions than the whole rest of the parse.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    // httparse's defaults refuse white space between a header name and its
    // colon (RFC 9112 §5.1): `Transfer-Encoding : chunked` is how a smuggled
    // message hides its framing from one parser and not another.
    let used = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::protocol(format!(
                "response has more than {MAX_HEADERS} headers"
            )))
        }
        Err(e) => {
            return Err(Error::with_source(
                crate::ErrorKind::Protocol,
                "malformed response head",
                e,
            ))
        }
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| Error::protocol(format!("invalid status code {code}")))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Error::protocol(format!("invalid header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| Error::protocol(format!("invalid value for header {}", h.name)))?;
        headers.append(name, value);
    }
    Ok(Some((
        Head {
            status,
            version,
            headers,
            size: used,
        },
        used,
    )))
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// The body framing of a response and whether its connection may be reused.
pub(crate) fn framing(method: &Method, head: &Head) -> Result<(Framing, bool), Error> {
    let mut reusable = connection_reusable(head);
    let status = head.status.as_u16();
    if method == Method::HEAD || head.status.is_informational() || status == 204 || status == 304 {
        return Ok((Framing::Empty, reusable));
    }
    let length = content_length(&head.headers)?;
    if head.headers.contains_key(TRANSFER_ENCODING) {
        if length.is_some() {
            // RFC 9112 §6.3: chunked wins, but the message may be an attempt at
            // request smuggling; never trust this connection again.
            reusable = false;
        }
        return if last_coding_is_chunked(&head.headers)? {
            Ok((Framing::Chunked, reusable))
        } else {
            Ok((Framing::UntilClose, false))
        };
    }
    match length {
        Some(0) => Ok((Framing::Empty, reusable)),
        Some(n) => Ok((Framing::Length(n), reusable)),
        None => Ok((Framing::UntilClose, false)),
    }
}

fn connection_reusable(head: &Head) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in head.headers.get_all(CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("close") {
                close = true;
            } else if token.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    match head.version {
        Version::HTTP_10 => keep_alive && !close,
        _ => !close,
    }
}

/// The Content-Length, if any. Duplicates must agree; anything but digits is an error.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            let n = parse_decimal(part).ok_or_else(|| {
                Error::protocol(format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ))
            })?;
            match found {
                Some(prev) if prev != n => {
                    return Err(Error::protocol(format!(
                        "conflicting Content-Length values {prev} and {n}"
                    )))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn last_coding_is_chunked(headers: &HeaderMap) -> Result<bool, Error> {
    let mut last_chunked = false;
    for value in headers.get_all(TRANSFER_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| Error::protocol("invalid Transfer-Encoding"))?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            last_chunked = coding.eq_ignore_ascii_case("chunked");
            if !last_chunked && !coding.eq_ignore_ascii_case("identity") {
                return Err(Error::protocol(format!(
                    "unsupported transfer coding {coding:?}"
                )));
            }
        }
    }
    Ok(last_chunked)
}

/// The server's `Keep-Alive: timeout=N`, if present.
pub(crate) fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("keep-alive")?.to_str().ok()?;
    value.split(',').find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("timeout") {
            v.trim().parse::<u64>().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

/// Where a body decoder is in its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a Content-Length body.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Bytes left of the current chunk.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Reading trailer lines; the number of trailer bytes so far.
    Trailers(usize),
    /// Reading until the server closes.
    UntilClose,
    /// The body is complete.
    Done,
}

/// Decodes a body's framing from a connection's buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
}

fn truncated(what: &str) -> io::Error {
    Error::protocol(format!("connection closed early: {what}")).into()
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Decoder { state }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes known to be left, when the framing says (Content-Length).
    pub(crate) fn known_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Body bytes available now; empty means the body is complete.
    pub(crate) fn fill_buf<'c>(&mut self, conn: &'c mut Conn) -> io::Result<&'c [u8]> {
        loop {
            match self.state {
                State::Done => return Ok(&[]),
                State::Length(n) => {
                    let buf = conn.fill_buf()?;
                    if buf.is_empty() {
                        return Err(truncated(&format!(
                            "body shorter than Content-Length, {n} bytes missing"
                        )));
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    return Ok(&buf[..take]);
                }
                State::ChunkData(n) => {
                    let buf = conn.fill_buf()?;
                    if buf.is_empty() {
                        return Err(truncated("chunked body cut off inside a chunk"));
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    return Ok(&buf[..take]);
                }
                State::UntilClose => {
                    if conn.fill_buf()?.is_empty() {
                        self.state = State::Done;
                        return Ok(&[]);
                    }
                    return Ok(conn.buffered());
                }
                State::ChunkSize => {
                    let size = read_line(conn, MAX_CHUNK_LINE, parse_chunk_size)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    read_line(conn, MAX_CHUNK_LINE, |line| {
                        if line.is_empty() {
                            Ok(())
                        } else {
                            Err(Error::protocol("missing CRLF after chunk data"))
                        }
                    })?;
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let len = read_line(conn, MAX_TRAILERS.saturating_sub(seen), |line| {
                        Ok(line.len())
                    })?;
                    self.state = if len == 0 {
                        State::Done
                    } else {
                        State::Trailers(seen + len + 2)
                    };
                }
            }
        }
    }

    /// Mark `n` bytes returned by [`fill_buf`](Decoder::fill_buf) as used.
    pub(crate) fn consume(&mut self, conn: &mut Conn, n: usize) {
        conn.consume(n);
        let n = n as u64;
        self.state = match self.state {
            State::Length(left) if left <= n => State::Done,
            State::Length(left) => State::Length(left - n),
            State::ChunkData(left) if left <= n => State::ChunkEnd,
            State::ChunkData(left) => State::ChunkData(left - n),
            other => other,
        };
    }

    /// Read body bytes into `out`; large reads of a Content-Length body go
    /// straight from the socket into `out`.
    pub(crate) fn read(&mut self, conn: &mut Conn, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let State::Length(left) = self.state {
            if conn.buffered().is_empty() {
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(out.len());
                let n = conn.read_into(&mut out[..want])?;
                if n == 0 {
                    return Err(truncated(&format!(
                        "body shorter than Content-Length, {left} bytes missing"
                    )));
                }
                self.state = if n as u64 >= left {
                    State::Done
                } else {
                    State::Length(left - n as u64)
                };
                return Ok(n);
            }
        }
        let buf = self.fill_buf(conn)?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(conn, n);
        Ok(n)
    }
}

/// Read one CRLF-terminated line of at most `max` bytes and hand it,
/// without the terminator, to `f`.
fn read_line<T>(
    conn: &mut Conn,
    max: usize,
    f: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> io::Result<T> {
    loop {
        let buf = conn.buffered();
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            // A line already in the buffer is still held to the limit.
            if pos >= max {
                return Err(line_too_long());
            }
            // A bare LF is refused: a proxy in front that reads lines another
            // way would see different chunk boundaries (request smuggling;
            // Go's CVE-2025-22871).
            let Some(line) = buf[..pos].strip_suffix(b"\r") else {
                return Err(Error::protocol("chunk framing line ends in a bare LF").into());
            };
            let value = f(line)?;
            conn.consume(pos + 1);
            return Ok(value);
        }
        if buf.len() >= max {
            return Err(line_too_long());
        }
        match conn.fill_more(max.max(1)) {
            Ok(0) => return Err(truncated("chunked body cut off")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => return Err(line_too_long()),
            Err(e) => return Err(e),
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
    // chunk-size [ BWS ";" extensions ]: the extensions are skipped.
    let end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(end);
    let rest = rest.trim_ascii_start();
    if digits.is_empty() || digits.len() > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err(Error::protocol(format!(
            "invalid chunk size line {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let text = std::str::from_utf8(digits).map_err(|_| Error::protocol("invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| Error::protocol("invalid chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: Version, headers: &[(&str, &str)]) -> Head {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Head {
            status: StatusCode::OK,
            version,
            headers: map,
            size: 0,
        }
    }

    #[test]
    fn chunk_sizes_parse_with_extensions_and_reject_junk() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"1A;name=value").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"10 ; x").unwrap(), 16);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"-1").is_err());
        assert!(parse_chunk_size(b"zz").is_err());
        assert!(parse_chunk_size(b"1 2").is_err());
        assert!(parse_chunk_size(b"11111111111111111").is_err());
    }

    #[test]
    fn content_length_rules() {
        let h = |v: &[&str]| {
            let pairs: Vec<(&str, &str)> = v.iter().map(|v| ("content-length", *v)).collect();
            content_length(&head(Version::HTTP_11, &pairs).headers)
        };
        assert_eq!(h(&["5"]).unwrap(), Some(5));
        assert_eq!(h(&["5", "5"]).unwrap(), Some(5));
        assert_eq!(h(&["5, 5"]).unwrap(), Some(5));
        assert!(h(&["5", "6"]).is_err());
        assert!(h(&["+5"]).is_err());
        assert!(h(&["-1"]).is_err());
        assert!(h(&["5a"]).is_err());
        assert!(h(&[""]).is_err());
        assert!(h(&["99999999999999999999"]).is_err());
        assert_eq!(h(&[]).unwrap(), None);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let f = |h: Head| framing(&get, &h).unwrap();
        assert_eq!(
            f(head(Version::HTTP_11, &[("content-length", "3")])),
            (Framing::Length(3), true)
        );
        assert_eq!(
            f(head(
                Version::HTTP_11,
                &[("content-length", "3"), ("transfer-encoding", "chunked")]
            )),
            (Framing::Chunked, false)
        );
        assert_eq!(f(head(Version::HTTP_11, &[])), (Framing::UntilClose, false));
        assert_eq!(
            f(head(
                Version::HTTP_10,
                &[("content-length", "3"), ("connection", "keep-alive")]
            )),
            (Framing::Length(3), true)
        );
        assert_eq!(
            f(head(Version::HTTP_10, &[("content-length", "3")])),
            (Framing::Length(3), false)
        );
        assert_eq!(
            f(head(
                Version::HTTP_11,
                &[("content-length", "3"), ("connection", "close")]
            )),
            (Framing::Length(3), false)
        );
        let h = head(Version::HTTP_11, &[("content-length", "3")]);
        assert_eq!(framing(&Method::HEAD, &h).unwrap(), (Framing::Empty, true));
        assert!(framing(
            &get,
            &head(Version::HTTP_11, &[("transfer-encoding", "gzip, chunked")])
        )
        .is_err());
    }

    #[test]
    fn keep_alive_timeout_is_read() {
        let h = head(Version::HTTP_11, &[("keep-alive", "timeout=5, max=100")]);
        assert_eq!(keep_alive_timeout(&h.headers), Some(Duration::from_secs(5)));
    }

    #[test]
    fn head_is_written_in_order() {
        let mut out = Vec::new();
        let url = url::Url::parse("http://example.com/a?b=c#frag").unwrap();
        put_request_line(&mut out, &Method::GET, target(&url, false));
        put_header(&mut out, "host", b"example.com");
        put_header_fmt(&mut out, "x-request-id", format_args!("{}", 7));
        assert_eq!(
            out,
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: 7\r\n"
        );
        assert_eq!(target(&url, true), "http://example.com/a?b=c");
    }
}
