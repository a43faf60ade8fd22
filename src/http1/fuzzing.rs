//! Entry points for the fuzz targets in `fuzz/`, and the invariants they
//! check.
//!
//! Each function takes the fuzzer's bytes, never panics on its own account,
//! and asserts what the rest of the crate relies on: a failed assertion is a
//! bug the fuzzer found. The first byte of an input is not response bytes: it
//! seeds the choices a connection would make (how the bytes are cut into
//! reads, how the caller reads the body, the request method and the head
//! limit), so one corpus entry explores them together with the bytes. The
//! rest of the input is what the server sent.
//!
//! Outside unit tests this module is compiled only under `--cfg fuzzing`,
//! which `cargo fuzz` sets, and reached through a hidden re-export in
//! `lib.rs`.

use http::Method;

use super::decoder::{Decoder, MAX_CHUNK_LINE, MAX_TRAILERS};
use super::framing::{content_length, framing, keep_alive_timeout, Framing};
use super::head::{parse_head as parse, read_head, Head};
use super::input::Input;
use super::slice::SliceInput;
use crate::error::{Error, ErrorKind};

/// The default `max_head_size`.
const DEFAULT_MAX_HEAD: usize = 64 * 1024;

/// Informational heads skipped before the final one, as the request path
/// (`run`) allows.
pub(crate) const MAX_INFORMATIONAL: usize = 16;

/// The largest buffer a body read is given: larger than any piece, so the
/// decoder's read-straight-into-the-caller's-buffer path runs too.
const LARGE_READ: usize = 16 * 1024;

/// Fuzz the response-head parser.
///
/// Checks that the pure parser and the reading loop agree however the bytes
/// are cut into reads; that a parsed head is exactly the bytes it claims and
/// reparses the same; that every error is a protocol error (or an I/O error
/// for an empty input); and that the framing rules never panic on a head and
/// never call a close-delimited body reusable.
pub fn parse_head(data: &[u8]) {
    let Some((&config, bytes)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::new(config);
    let max = pick_max_head(&mut rng);

    match parse(bytes) {
        Ok(Some((head, used))) => {
            assert!(used > 0 && used <= bytes.len(), "head of {used} bytes");
            assert_eq!(head.size, used);
            assert!(bytes[..used].ends_with(b"\n"), "a head ends with a line");
            let (again, used_again) = parse(&bytes[..used])
                .expect("a head's own bytes parse")
                .expect("a head's own bytes are a whole head");
            assert_eq!(used_again, used);
            assert_same_head(&again, &head);
            assert!(
                matches!(parse(&bytes[..used - 1]), Ok(None)),
                "a head is not complete before its last byte"
            );
            check_head_rules(&head);
        }
        Ok(None) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::Protocol, "{e}"),
    }

    let mut input = SliceInput::in_pieces(bytes, pieces(&mut rng));
    let mut got_bytes = false;
    let read = read_head(&mut input, max, &mut got_bytes);
    // The loop may only use the first `max` bytes, whatever the reads were.
    let window = &bytes[..bytes.len().min(max)];
    match (parse(window), read) {
        (Ok(Some((want, used))), Ok(head)) => {
            assert_same_head(&head, &want);
            assert_eq!(input.unread(), &bytes[used..], "read past the head");
        }
        (Ok(None) | Err(_), Err(e)) if bytes.is_empty() => {
            assert_eq!(e.kind(), ErrorKind::Io, "{e}");
            assert!(!got_bytes);
        }
        (Ok(None) | Err(_), Err(e)) => {
            assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
            assert!(got_bytes);
        }
        (want, read) => panic!("the parser says {want:?}, the reading loop {read:?}"),
    }
}

/// Fuzz the chunked body decoder.
///
/// Checks, against an independent reference decoder, that the body is
/// exactly the concatenated chunk data (also when the input is cut short or
/// broken: what came out before the error is the data before the fault),
/// that a complete body leaves the input right after its last CRLF, and that
/// every error is a protocol error.
pub fn decode_chunked(data: &[u8]) {
    let Some((&config, bytes)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::new(config);
    let mut input = SliceInput::in_pieces(bytes, pieces(&mut rng));
    let mut decoder = Decoder::new(Framing::Chunked);
    let (body, result) = take_body(&mut decoder, &mut input, &mut rng, bytes.len());
    check_chunked(bytes, &body, result, &input);
}

/// Fuzz a whole response: heads (informational ones skipped), framing, body.
///
/// Checks that a Content-Length body is exactly the declared length or an
/// error when fewer bytes came, that a chunked body matches the reference
/// decoder, that a close-delimited body is everything and is never reusable,
/// that a body never reads into what follows it, and that every error is a
/// protocol error (an I/O error only for an empty input).
pub fn read_response(data: &[u8]) {
    let Some((&config, bytes)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::new(config);
    let method = if rng.below(8) == 0 {
        Method::HEAD
    } else {
        Method::GET
    };
    let max = pick_max_head(&mut rng);
    let mut input = SliceInput::in_pieces(bytes, pieces(&mut rng));

    let head = match read_final_head(&mut input, max) {
        Ok(head) => head,
        Err(e) => {
            // An I/O error only when the server sent nothing at all.
            let want = if bytes.is_empty() {
                ErrorKind::Io
            } else {
                ErrorKind::Protocol
            };
            assert_eq!(e.kind(), want, "{e}");
            return;
        }
    };
    let (framing, reusable) = match framing(&method, &head) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
            return;
        }
    };
    let rest = input.unread();
    let mut decoder = Decoder::new(framing);
    let (body, result) = take_body(&mut decoder, &mut input, &mut rng, rest.len());
    match framing {
        Framing::Empty => {
            assert!(body.is_empty() && result.is_ok());
            assert_eq!(input.unread(), rest, "an empty body took bytes");
        }
        Framing::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= rest.len() => {
                assert!(result.is_ok(), "{result:?} with all {n} bytes there");
                assert_eq!(body, &rest[..n]);
                assert_eq!(input.unread(), &rest[n..], "read past Content-Length");
            }
            _ => {
                let e = result.expect_err("a short Content-Length body passed as whole");
                assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
                assert_eq!(body, rest, "not all of a short body was delivered");
            }
        },
        Framing::Chunked => check_chunked(rest, &body, result, &input),
        Framing::UntilClose => {
            assert!(!reusable, "a close-delimited body on a reusable connection");
            assert!(result.is_ok(), "{result:?}");
            assert_eq!(body, rest);
        }
    }
}

/// Read heads until a final one, skipping informational (1xx) heads other
/// than 101 as the request path does, at most [`MAX_INFORMATIONAL`] of them.
pub(crate) fn read_final_head<I: Input + ?Sized>(input: &mut I, max: usize) -> Result<Head, Error> {
    let mut got_bytes = false;
    for _ in 0..=MAX_INFORMATIONAL {
        let head = read_head(input, max, &mut got_bytes)?;
        if !head.status.is_informational() || head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(head);
        }
    }
    Err(Error::protocol(format!(
        "more than {MAX_INFORMATIONAL} informational (1xx) responses"
    )))
}

/// Decode a chunked body from `bytes` the simple way, as a reference for the
/// decoder: the chunk data found (up to a fault, if any), and where the body
/// ended, or `None` if it is broken or cut short.
pub(crate) fn reference_chunked(bytes: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Some((line, next)) = crlf_line(bytes, at, MAX_CHUNK_LINE) else {
            return (data, None);
        };
        let Some(size) = chunk_size(line) else {
            return (data, None);
        };
        at = next;
        if size == 0 {
            break;
        }
        let left = bytes.len() - at;
        if (left as u64) < size {
            data.extend_from_slice(&bytes[at..]);
            return (data, None);
        }
        // `size` fits: it is at most `left`.
        let end = at + size as usize;
        data.extend_from_slice(&bytes[at..end]);
        if bytes.get(end..end + 2) != Some(&b"\r\n"[..]) {
            return (data, None);
        }
        at = end + 2;
    }
    // Trailer lines, each counted with its CRLF, up to the empty line.
    let mut budget = MAX_TRAILERS;
    loop {
        let Some((line, next)) = crlf_line(bytes, at, budget) else {
            return (data, None);
        };
        at = next;
        if line.is_empty() {
            return (data, Some(at));
        }
        // A control byte (NUL included; tab allowed) breaks a trailer.
        if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return (data, None);
        }
        budget -= line.len() + 2;
    }
}

/// The line starting at `at`, without its CRLF, and where the next one
/// starts; `None` when no CRLF-terminated line with its LF among the first
/// `max` bytes starts there.
fn crlf_line(bytes: &[u8], at: usize, max: usize) -> Option<(&[u8], usize)> {
    let rest = &bytes[at..];
    let lf = rest.iter().position(|&b| b == b'\n')?;
    if lf >= max || lf == 0 || rest[lf - 1] != b'\r' {
        return None;
    }
    Some((&rest[..lf - 1], at + lf + 1))
}

/// 1 to 16 hex digits, then nothing, or ASCII white space and a `;`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let mut size = 0u64;
    let mut digits = 0;
    for &b in line {
        let Some(d) = (b as char).to_digit(16) else {
            break;
        };
        if digits == 16 {
            return None;
        }
        size = size * 16 + u64::from(d);
        digits += 1;
    }
    if digits == 0 {
        return None;
    }
    let after = &line[digits..];
    let skip = after
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c'))
        .count();
    match after.get(skip) {
        None | Some(b';') => Some(size),
        Some(_) => None,
    }
}

/// Check a chunked decoding of `bytes` against the reference.
fn check_chunked(bytes: &[u8], body: &[u8], result: Result<(), Error>, input: &SliceInput<'_>) {
    let (want, end) = reference_chunked(bytes);
    assert_eq!(body, want, "decoded data differs from the chunk data");
    match (end, result) {
        (Some(end), Ok(())) => {
            assert_eq!(input.unread(), &bytes[end..], "the body ended elsewhere");
        }
        (None, Err(e)) => assert_eq!(e.kind(), ErrorKind::Protocol, "{e}"),
        (end, result) => panic!("the reference ends at {end:?}, the decoder says {result:?}"),
    }
}

/// Take a whole body out of `decoder` in steps `rng` picks: reads into
/// buffers of varied sizes, or `fill_buf` and a partial `consume`. Returns
/// the bytes that came out, then how it ended.
fn take_body(
    decoder: &mut Decoder,
    input: &mut SliceInput<'_>,
    rng: &mut Rng,
    len: usize,
) -> (Vec<u8>, Result<(), Error>) {
    let mut body = Vec::new();
    let mut out = vec![0u8; LARGE_READ];
    // Every step takes at least one byte or ends the body.
    for _ in 0..=len + 1 {
        let before = decoder.known_remaining();
        let step = if rng.below(2) == 0 {
            let size = match rng.below(8) {
                0 => LARGE_READ,
                n => 1 << (n - 1),
            };
            decoder
                .read(input, &mut out[..size])
                .inspect(|&n| body.extend_from_slice(&out[..n]))
        } else {
            match decoder.fill_buf(input) {
                Ok([]) => Ok(0),
                Ok(buf) => {
                    let take = 1 + rng.below(buf.len());
                    body.extend_from_slice(&buf[..take]);
                    decoder.consume(input, take);
                    Ok(take)
                }
                Err(e) => Err(e),
            }
        };
        match step {
            Ok(0) => {
                assert!(decoder.is_done(), "the body ended before its framing");
                assert_eq!(decoder.known_remaining(), Some(0));
                return (body, Ok(()));
            }
            Ok(n) => {
                if let Some(left) = before {
                    assert_eq!(decoder.known_remaining(), Some(left - n as u64));
                }
            }
            Err(e) => {
                assert!(!decoder.is_done(), "an error after the body ended");
                return (body, Err(Error::from_io(e)));
            }
        }
    }
    panic!("the decoder stopped making progress");
}

/// What the framing rules make of a head must never panic, and must agree
/// with each other.
fn check_head_rules(head: &Head) {
    let _ = keep_alive_timeout(&head.headers);
    let length = content_length(&head.headers);
    for method in [Method::GET, Method::HEAD] {
        match framing(&method, head) {
            Ok((Framing::UntilClose, reusable)) => assert!(!reusable),
            Ok((Framing::Length(n), _)) => {
                assert_eq!(length.as_ref().ok(), Some(&Some(n)));
                assert!(n > 0 && method != Method::HEAD);
            }
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::Protocol, "{e}"),
        }
    }
}

/// Two heads are the same head.
fn assert_same_head(a: &Head, b: &Head) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.version, b.version);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.size, b.size);
}

/// Mostly the default head limit, sometimes a small one so the limit is
/// reached often.
fn pick_max_head(rng: &mut Rng) -> usize {
    if rng.below(4) == 0 {
        1 + rng.below(256)
    } else {
        DEFAULT_MAX_HEAD
    }
}

/// How the input is cut into reads: whole, a fixed small size, or a run of
/// random sizes.
fn pieces(rng: &mut Rng) -> Vec<usize> {
    match rng.below(6) {
        0 => vec![usize::MAX],
        1 => vec![1],
        2 => vec![2],
        3 => vec![3, 1],
        n => {
            let most = 1 << (2 * n);
            (0..16).map(|_| 1 + rng.below(most)).collect()
        }
    }
}

/// SplitMix64: small, fast and good enough to pick cut points.
struct Rng(u64);

impl Rng {
    /// A generator seeded from one byte of the fuzz input.
    fn new(seed: u8) -> Rng {
        Rng(u64::from(seed) ^ 0x9e37_79b9_7f4a_7c15)
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that reach every state of the parsers (also the fuzz seeds).
    const SEEDS: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"",
    ];

    /// Chunked bodies alone, for the chunked target.
    const CHUNKED: &[&[u8]] = &[
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"5;name=value\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0;last\r\n\r\n",
        b"2\r\nok\r\n0\r\nX-Checksum: abc\r\n\r\nNEXT",
        b"ffffffffffffffff\r\nabc",
        b"10000000000000000\r\nabc",
        b"5\r\nhello\n0\r\n\r\n",
        b"5 \r\r\nhello\r\n0\r\n\r\n",
        b"0\r\n\r\n",
        b"a\r\nhello",
    ];

    /// A deterministic variation of `seed`: a byte changed, inserted,
    /// removed, or the input cut.
    fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(v.len() + 1);
            match rng.below(5) {
                0 if at < v.len() => v[at] = rng.next() as u8,
                1 => v.insert(at, [b'\r', b'\n', 0, b' ', b'0', b'f'][rng.below(6)]),
                2 if at < v.len() => {
                    v.remove(at);
                }
                3 => v.truncate(at),
                _ => {}
            }
        }
        v
    }

    /// A fuzz input: the setup byte, then the response bytes.
    fn with_config(config: u8, bytes: &[u8]) -> Vec<u8> {
        let mut data = vec![config];
        data.extend_from_slice(bytes);
        data
    }

    #[test]
    fn the_targets_hold_on_the_seeds_with_every_setup() {
        for seed in SEEDS {
            for config in 0..=255 {
                let data = with_config(config, seed);
                parse_head(&data);
                read_response(&data);
            }
        }
        for seed in CHUNKED {
            for config in 0..=255 {
                decode_chunked(&with_config(config, seed));
            }
        }
    }

    #[test]
    fn the_targets_hold_on_mutated_seeds() {
        let mut rng = Rng::new(7);
        for _ in 0..3000 {
            let seed = SEEDS[rng.below(SEEDS.len())];
            let data = with_config(rng.next() as u8, &mutate(seed, &mut rng));
            parse_head(&data);
            read_response(&data);
            let seed = CHUNKED[rng.below(CHUNKED.len())];
            decode_chunked(&with_config(rng.next() as u8, &mutate(seed, &mut rng)));
        }
    }

    #[test]
    fn the_targets_accept_any_short_input() {
        parse_head(b"");
        decode_chunked(b"");
        read_response(b"");
        for config in 0..=255 {
            for byte in [b'\r', b'\n', b'0', b'H', 0] {
                parse_head(&[config, byte]);
                decode_chunked(&[config, byte]);
                read_response(&[config, byte]);
            }
        }
    }

    #[test]
    fn the_reference_decoder_knows_the_cases() {
        let (data, end) = reference_chunked(CHUNKED[0]);
        assert_eq!(
            (data.as_slice(), end),
            (&b"hello world"[..], Some(CHUNKED[0].len()))
        );
        let (data, end) = reference_chunked(b"2\r\nok\r\n0\r\nX: 1\r\n\r\nNEXT");
        assert_eq!((data.as_slice(), end), (&b"ok"[..], Some(18)));
        assert_eq!(reference_chunked(b"a\r\nhello"), (b"hello".to_vec(), None));
        assert_eq!(reference_chunked(b"5\nhello\r\n0\r\n\r\n").1, None);
        assert_eq!(reference_chunked(b"10000000000000000\r\n").1, None);
        assert_eq!(chunk_size(b"1A ; x"), Some(26));
        assert_eq!(chunk_size(b"1 2"), None);
    }

    #[test]
    fn the_generator_is_deterministic_and_in_range() {
        let mut a = Rng::new(3);
        let mut b = Rng::new(3);
        for _ in 0..100 {
            let n = a.below(10);
            assert_eq!(n, b.below(10));
            assert!(n < 10);
        }
    }
}
