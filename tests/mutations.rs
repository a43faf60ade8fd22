//! Mutated responses through the real client: valid responses are cut,
//! duplicated, flipped, sprinkled with CR, LF and NUL, and given huge
//! lengths and chunk sizes; each is served once over loopback and fetched
//! with an ordinary agent.
//!
//! The promise under test: whatever the server sends, the client never
//! panics, and a call either returns exactly the body the framing promises
//! or fails with a typed error. A small reference parser written here from
//! RFC 9112 (with windlass's documented limits) says what the framing
//! promises whenever the head is unambiguous; for heads it cannot judge
//! (bare LFs, odd bytes) only the weaker promises are checked.
//!
//! Seeded and bounded: the same cases every run, one short-lived server
//! per case, no sleeps.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use windlass::ErrorKind;

/// The seed of the case generator: change it to explore other cases.
const SEED: u64 = 0x5eed_f00d_2025;
/// How many mutated responses are tried.
const CASES: usize = 500;
/// Connections one case's server accepts (a retry opens a second one).
const MAX_ACCEPTS: usize = 4;
/// Most bytes of a request head the server reads.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Mutated responses stay under this size, far below the 64 KiB head limit
/// the reference does not model.
const MAX_RESPONSE: usize = 32 * 1024;

// --- the cases -------------------------------------------------------------

/// SplitMix64, for reproducible cases.
struct Rng(u64);

impl Rng {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`, for `n > 0`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`, which must not be empty.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A valid response and where its final body starts.
struct Base {
    bytes: Vec<u8>,
    body_at: usize,
}

/// Chunked framing of `parts`, with the last chunk and `trailers`.
fn chunked(parts: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// A base response: `heads` (informational ones, then the final one), then `body`.
fn base(heads: &str, body: &[u8]) -> Base {
    let mut bytes = heads.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    Base {
        bytes,
        body_at: heads.len(),
    }
}

/// Valid responses covering each framing.
fn bases() -> Vec<Base> {
    let binary: Vec<u8> = (0..=255u8)
        .chain(b"\r\n0\r\n\r\n".iter().copied())
        .collect();
    let large: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let many: Vec<&[u8]> = large.chunks(150).collect();
    let cl = |body: &[u8]| {
        base(
            &format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()),
            body,
        )
    };
    vec![
        cl(b"hello"),
        cl(&binary),
        cl(&large),
        base("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
        base(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"hello",
        ),
        base(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked(&[b"hello", b" world"], ""),
        ),
        base(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: t\r\n\r\n",
            b"5;name=value\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0;last\r\nX-Checksum: abc\r\n\r\n",
        ),
        base(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked(&many, "X-T: 1\r\n"),
        ),
        base(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"0\r\n\r\n",
        ),
        base(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked(&[b"hello"], ""),
        ),
        base(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"final",
        ),
        base(
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
             HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked(&[b"early"], ""),
        ),
        base("HTTP/1.1 204 No Content\r\n\r\n", b""),
        base(
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n",
            b"",
        ),
        base("HTTP/1.0 200 OK\r\n\r\n", b"until the end"),
        base(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n",
            b"no length",
        ),
        base(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
            b"ok",
        ),
    ]
}

/// Content-Length values past what any test server sends; some past `u64`.
const HUGE_LENGTHS: &[&str] = &[
    "99999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "9999999999999999999",
    "4294967296",
    "1000000",
];

/// Chunk sizes past what any test server sends; some past 16 hex digits.
const HUGE_CHUNKS: &[&str] = &[
    "ffffffffffffffff",
    "10000000000000000",
    "7fffffffffffffff",
    "00000000000000005",
    "fffffffff",
    "100000",
];

/// Replace the first Content-Length value before `body_at` with a huge one,
/// or add a Content-Length header when there is none.
fn huge_content_length(bytes: &mut Vec<u8>, body_at: usize, rng: &mut Rng) {
    let value = rng.pick(HUGE_LENGTHS).as_bytes();
    let head = String::from_utf8_lossy(&bytes[..body_at]).to_ascii_lowercase();
    match head.find("content-length: ") {
        Some(at) => {
            let start = at + "content-length: ".len();
            let end = start + head[start..].find('\r').unwrap_or(0);
            bytes.splice(start..end, value.iter().copied());
        }
        None => {
            // After the first line.
            let at = head.find("\r\n").map_or(0, |i| i + 2);
            let mut line = b"Content-Length: ".to_vec();
            line.extend_from_slice(value);
            line.extend_from_slice(b"\r\n");
            bytes.splice(at..at, line);
        }
    }
}

/// Replace the hex digits of the first chunk-size line with huge ones.
fn huge_chunk_size(bytes: &mut Vec<u8>, body_at: usize, rng: &mut Rng) {
    let value = rng.pick(HUGE_CHUNKS).as_bytes();
    let digits = bytes[body_at..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    bytes.splice(body_at..body_at + digits, value.iter().copied());
}

/// One byte-level mutation anywhere.
fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut Rng) {
    let len = bytes.len();
    let at = rng.below(len + 1);
    match rng.below(5) {
        // Truncate.
        0 => bytes.truncate(at),
        // Duplicate a range somewhere else.
        1 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let copy = bytes[start..end].to_vec();
            bytes.splice(at..at, copy);
        }
        // Flip bits of one byte.
        2 if at < len => bytes[at] ^= 1 << rng.below(8),
        // Inject CR, LF, NUL or CRLF.
        3 => {
            const INJECTED: &[&[u8]] = &[b"\r", b"\n", b"\0", b"\r\n"];
            let injected = *rng.pick(INJECTED);
            bytes.splice(at..at, injected.iter().copied());
        }
        // Delete a range.
        _ if at < len => {
            let end = (at + 1 + rng.below(16)).min(len);
            bytes.drain(at..end);
        }
        _ => {}
    }
}

/// A case: a base, maybe made huge in its framing, then 0 to 3 byte-level
/// mutations (about one case in ten stays valid).
fn make_case(bases: &[Base], rng: &mut Rng) -> Vec<u8> {
    let base = rng.pick(bases);
    let mut bytes = base.bytes.clone();
    match rng.below(10) {
        0 => huge_content_length(&mut bytes, base.body_at, rng),
        1 => huge_chunk_size(&mut bytes, base.body_at, rng),
        _ => {}
    }
    if rng.below(10) != 0 {
        for _ in 0..1 + rng.below(3) {
            mutate_bytes(&mut bytes, rng);
        }
    }
    bytes.truncate(MAX_RESPONSE);
    bytes
}

// --- the reference ---------------------------------------------------------

/// What the framing promises for a response.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The call succeeds with this status and exactly this body.
    Body(u16, Vec<u8>),
    /// The call or the body read fails.
    Fails,
    /// The head is outside what the reference judges (bare LF line ends,
    /// unusual bytes): only the weaker promises apply.
    Unclear,
}

/// A head the reference understood.
struct RefHead {
    status: u16,
    /// Lower-case names, values without surrounding white space.
    headers: Vec<(String, String)>,
    /// Where the head ended.
    end: usize,
}

/// What the reference finds at a position where a head should start.
enum HeadAt {
    Head(RefHead),
    /// The input ended inside a head (or before one): the call fails.
    Incomplete,
    /// A head no parser may accept: the call fails.
    Invalid,
    Unclear,
}

/// Informational responses a client skips before giving up.
const MAX_INFORMATIONAL: usize = 16;
/// windlass's limits on chunk-size lines and trailers.
const MAX_CHUNK_LINE: usize = 4096;
/// See [`MAX_CHUNK_LINE`].
const MAX_TRAILERS: usize = 64 * 1024;

/// What the framing of `bytes` promises a GET.
fn reference(bytes: &[u8]) -> Verdict {
    let mut at = 0;
    let mut informational = 0;
    loop {
        let head = match head_at(bytes, at) {
            HeadAt::Head(head) => head,
            HeadAt::Incomplete | HeadAt::Invalid => return Verdict::Fails,
            HeadAt::Unclear => return Verdict::Unclear,
        };
        // `http::StatusCode` starts at 100.
        if head.status < 100 {
            return Verdict::Fails;
        }
        at = head.end;
        // 1xx heads come before the final one; 101 is final (RFC 9110 §15.2).
        if head.status < 200 && head.status != 101 {
            informational += 1;
            if informational > MAX_INFORMATIONAL {
                return Verdict::Fails;
            }
            continue;
        }
        return body_of(&head, &bytes[at..]);
    }
}

/// The head starting at `start`, judged line by line.
fn head_at(bytes: &[u8], start: usize) -> HeadAt {
    let mut pos = start;
    let mut status = None;
    let mut headers = Vec::new();
    loop {
        let Some(lf) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return HeadAt::Incomplete;
        };
        let Some(line) = bytes[pos..pos + lf].strip_suffix(b"\r") else {
            return HeadAt::Unclear;
        };
        // A control byte (a NUL, a bare CR) is never valid in a head line
        // (RFC 9112 §2.2, §4, §5).
        if line.iter().any(|&b| b < 0x20 && b != b'\t') {
            return HeadAt::Invalid;
        }
        pos += lf + 1;
        let Some(code) = status else {
            match status_line(line) {
                Some(code) => status = Some(code),
                None => return HeadAt::Unclear,
            }
            continue;
        };
        if line.is_empty() {
            return HeadAt::Head(RefHead {
                status: code,
                headers,
                end: pos,
            });
        }
        match header_line(line) {
            Some(header) if headers.len() < 100 => headers.push(header),
            _ => return HeadAt::Unclear,
        }
    }
}

/// `HTTP/1.x DDD reason`, with a plain printable reason.
fn status_line(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let (code, reason) = (rest.get(..3)?, rest.get(3..)?);
    let reason = reason.strip_prefix(b" ")?;
    if !code.iter().all(u8::is_ascii_digit)
        || reason.is_empty()
        || !reason.iter().all(|b| (0x20..0x7f).contains(b))
    {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// `Name: value` with a plain name and a printable value.
fn header_line(line: &[u8]) -> Option<(String, String)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty()
        || !name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        || !value
            .iter()
            .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
    {
        return None;
    }
    let name = String::from_utf8(name.to_ascii_lowercase()).ok()?;
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    Some((name, value.to_string()))
}

/// RFC 9112 §6.3, for a GET.
fn body_of(head: &RefHead, rest: &[u8]) -> Verdict {
    let status = head.status;
    if status < 200 || status == 204 || status == 304 {
        return Verdict::Body(status, Vec::new());
    }
    let values = |name: &str| -> Vec<&str> {
        head.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // Every Content-Length value must be digits (at most 19 in windlass)
    // and all must agree, even when Transfer-Encoding overrides it.
    let mut length: Option<u64> = None;
    for value in values("content-length") {
        for part in value.split(',').map(|p| p.trim_matches([' ', '\t'])) {
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Verdict::Fails;
            }
            let n: u64 = part.parse().expect("19 digits fit a u64");
            if length.is_some_and(|l| l != n) {
                return Verdict::Fails;
            }
            length = Some(n);
        }
    }
    let codings = values("transfer-encoding");
    if !codings.is_empty() {
        let mut last_chunked = false;
        for coding in codings.iter().flat_map(|v| v.split(',')) {
            let coding = coding.trim_matches([' ', '\t']);
            if coding.is_empty() {
                continue;
            }
            last_chunked = match coding.to_ascii_lowercase().as_str() {
                "chunked" => true,
                "identity" => false,
                _ => return Verdict::Fails,
            };
        }
        if !last_chunked {
            return Verdict::Body(status, rest.to_vec());
        }
        return match dechunk(rest) {
            Dechunked::Body(body) => Verdict::Body(status, body),
            Dechunked::Fails => Verdict::Fails,
            Dechunked::Unclear => Verdict::Unclear,
        };
    }
    match length {
        Some(n) if n <= rest.len() as u64 => Verdict::Body(status, rest[..n as usize].to_vec()),
        Some(_) => Verdict::Fails,
        None => Verdict::Body(status, rest.to_vec()),
    }
}

/// What the reference makes of a chunked body.
enum Dechunked {
    Body(Vec<u8>),
    Fails,
    Unclear,
}

/// RFC 9112 §7.1, with windlass's limits: at most 16 hex digits, chunk-size
/// lines of at most 4 KiB, trailers of at most 64 KiB, lines end in CRLF.
fn dechunk(rest: &[u8]) -> Dechunked {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some((line, next)) = crlf_line(rest, pos, MAX_CHUNK_LINE) else {
            return Dechunked::Fails;
        };
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 16 {
            return Dechunked::Fails;
        }
        let text = std::str::from_utf8(&line[..digits]).unwrap();
        let size = u64::from_str_radix(text, 16).expect("16 hex digits fit a u64");
        // chunk-ext = *( BWS ";" ... ); a bare CR may be read as SP
        // (RFC 9112 §2.2).
        let after = &line[digits..];
        let bws = after
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        match after.get(bws) {
            None | Some(b';') => {}
            // Other ASCII white space is not BWS; windlass skips it too.
            Some(b'\x0c') => return Dechunked::Unclear,
            Some(_) => return Dechunked::Fails,
        }
        pos = next;
        if size == 0 {
            break;
        }
        if ((rest.len() - pos) as u64) < size {
            return Dechunked::Fails;
        }
        let end = pos + size as usize;
        body.extend_from_slice(&rest[pos..end]);
        if !rest[end..].starts_with(b"\r\n") {
            return Dechunked::Fails;
        }
        pos = end + 2;
    }
    let mut seen = 0;
    loop {
        let Some((line, next)) = crlf_line(rest, pos, MAX_TRAILERS - seen) else {
            return Dechunked::Fails;
        };
        pos = next;
        if line.is_empty() {
            return Dechunked::Body(body);
        }
        seen += line.len() + 2;
    }
}

/// The CRLF-terminated line at `pos` (without the CRLF) and where the next
/// starts, if its LF is among the first `max` bytes.
fn crlf_line(bytes: &[u8], pos: usize, max: usize) -> Option<(&[u8], usize)> {
    let lf = bytes[pos..].iter().position(|&b| b == b'\n')?;
    if lf >= max || lf == 0 || bytes[pos + lf - 1] != b'\r' {
        return None;
    }
    Some((&bytes[pos..pos + lf - 1], pos + lf + 1))
}

// --- the server and the client ----------------------------------------------

/// Serves one response to every connection, then closes it.
struct OneShot {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OneShot {
    /// Listen on 127.0.0.1 and answer every request with `response`.
    fn start(response: Vec<u8>) -> OneShot {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for _ in 0..MAX_ACCEPTS {
                let Ok((mut sock, _)) = listener.accept() else {
                    return;
                };
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let _ = sock.set_read_timeout(Some(common::IO_TIMEOUT));
                let _ = sock.set_write_timeout(Some(common::IO_TIMEOUT));
                // The whole request is read first, so closing sends a FIN
                // after the response, never a reset.
                if read_request_head(&mut sock) {
                    let _ = sock.write_all(&response);
                }
                let _ = sock.shutdown(Shutdown::Write);
            }
        });
        OneShot {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of the server's root.
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for OneShot {
    /// Stop accepting and join the thread, bounded by the socket timeouts.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept; refused if the server already returned.
        let _ = TcpStream::connect_timeout(&self.addr, common::IO_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read up to the blank line ending a request head (a GET has no body).
fn read_request_head(sock: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < MAX_REQUEST_HEAD {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
    }
    false
}

/// What the client made of a response.
#[derive(Debug)]
enum Outcome {
    Got(u16, Vec<u8>),
    Failed(ErrorKind),
}

/// One GET through the client, the whole body read.
fn fetch(agent: &windlass::Agent, url: &str) -> Outcome {
    // A fresh connection per case, closed after it: no case can see another's bytes.
    let resp = match agent.get(url).header("connection", "close").call() {
        Ok(resp) => resp,
        Err(e) => return Outcome::Failed(e.kind()),
    };
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    match resp.into_body().read_to_end(&mut body) {
        Ok(_) => Outcome::Got(status, body),
        Err(e) => Outcome::Failed(windlass::Error::from_io(e).kind()),
    }
}

/// The error kinds a hostile response may legitimately produce.
fn is_typed(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Protocol | ErrorKind::Io | ErrorKind::Timeout(_) | ErrorKind::BodyTooLarge
    )
}

// --- the test ------------------------------------------------------------------

#[test]
fn mutated_responses_give_the_promised_body_or_a_typed_error() {
    let started = Instant::now();
    let agent = windlass::Agent::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let bases = bases();
    let mut rng = Rng(SEED);
    let (mut exact_bodies, mut exact_failures, mut unclear) = (0, 0, 0);
    for case in 0..CASES {
        let bytes = make_case(&bases, &mut rng);
        let verdict = reference(&bytes);
        let server = OneShot::start(bytes.clone());
        let outcome = fetch(&agent, &server.url());
        drop(server);
        let shown = String::from_utf8_lossy(&bytes);
        match (&verdict, &outcome) {
            (Verdict::Body(status, body), Outcome::Got(got_status, got)) => {
                assert_eq!(
                    (status, body),
                    (got_status, got),
                    "case {case}: the body differs from what the framing promises\n{shown:?}"
                );
                exact_bodies += 1;
            }
            (Verdict::Fails, Outcome::Failed(kind)) => {
                assert!(
                    matches!(kind, ErrorKind::Protocol | ErrorKind::Io),
                    "case {case}: {kind:?}\n{shown:?}"
                );
                exact_failures += 1;
            }
            (Verdict::Unclear, Outcome::Got(_, body)) => {
                // Whatever the head meant, the body came from these bytes.
                assert!(body.len() <= bytes.len(), "case {case}\n{shown:?}");
                unclear += 1;
            }
            (Verdict::Unclear, Outcome::Failed(kind)) => {
                assert!(is_typed(*kind), "case {case}: {kind:?}\n{shown:?}");
                unclear += 1;
            }
            (verdict, outcome) => panic!(
                "case {case}: the reference says {verdict:?}, the client {outcome:?}\n{shown:?}"
            ),
        }
    }
    eprintln!(
        "{CASES} cases in {:?}: {exact_bodies} exact bodies, {exact_failures} expected failures, \
         {unclear} unclear heads",
        started.elapsed()
    );
    // The reference must judge most cases, or the test checks little.
    assert!(exact_bodies >= CASES / 5, "{exact_bodies} exact bodies");
    assert!(
        exact_failures >= CASES / 10,
        "{exact_failures} expected failures"
    );
    assert!(unclear <= CASES / 2, "{unclear} unclear heads");
}

#[test]
fn the_reference_reads_the_valid_responses() {
    // The reference itself, on the unmutated bases and by hand.
    for base in bases() {
        assert!(
            matches!(reference(&base.bytes), Verdict::Body(..)),
            "{:?}",
            String::from_utf8_lossy(&base.bytes)
        );
    }
    let ok = |s: &str| reference(s.as_bytes());
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"),
        Verdict::Body(200, b"hello".to_vec())
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello"),
        Verdict::Fails
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5\n\r\nhello"),
        Verdict::Unclear
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\r\nhello\r\n0\r\n\r\n"),
        Verdict::Body(200, b"hello".to_vec())
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
        Verdict::Fails
    );
    assert_eq!(ok(""), Verdict::Fails);
    assert_eq!(ok("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n"), Verdict::Fails);
    assert_eq!(ok("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n"), Verdict::Fails);
}
