//! The body framing decoder: a state machine that takes a body's bytes out
//! of an [`Input`](crate::http1::input::Input) (Content-Length, chunked,
//! until close), with the chunk framing lines parsed by pure functions over
//! bytes.

use std::io;

use super::framing::Framing;
use super::input::Input;
use crate::error::Error;

/// Longest chunk-size line, extensions included.
pub(crate) const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most bytes of trailers after a chunked body.
pub(crate) const MAX_TRAILERS: usize = 64 * 1024;

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

/// Decodes a body's framing from an input's buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
}

/// The error for input that ended before the framing did.
fn truncated(what: &str) -> io::Error {
    Error::protocol(format!("connection closed early: {what}")).into()
}

/// The error for a framing line longer than its limit.
fn line_too_long() -> Error {
    Error::protocol("chunk framing line too long")
}

impl Decoder {
    /// A decoder at the start of a body with this framing.
    pub(crate) fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Decoder { state }
    }

    /// Whether the body has ended: its framing is complete and nothing of it
    /// is left in the input.
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
    pub(crate) fn fill_buf<'c, I: Input + ?Sized>(
        &mut self,
        input: &'c mut I,
    ) -> io::Result<&'c [u8]> {
        loop {
            match self.state {
                State::Done => return Ok(&[]),
                State::Length(n) => {
                    let buf = input.fill_buf()?;
                    if buf.is_empty() {
                        return Err(truncated(&format!(
                            "body shorter than Content-Length, {n} bytes missing"
                        )));
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    return Ok(&buf[..take]);
                }
                State::ChunkData(n) => {
                    let buf = input.fill_buf()?;
                    if buf.is_empty() {
                        return Err(truncated("chunked body cut off inside a chunk"));
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    return Ok(&buf[..take]);
                }
                State::UntilClose => {
                    if input.fill_buf()?.is_empty() {
                        self.state = State::Done;
                        return Ok(&[]);
                    }
                    return Ok(input.buffered());
                }
                State::ChunkSize => {
                    let size = read_line(input, MAX_CHUNK_LINE, parse_chunk_size)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    read_line(input, MAX_CHUNK_LINE, |line| {
                        if line.is_empty() {
                            Ok(())
                        } else {
                            Err(Error::protocol("missing CRLF after chunk data"))
                        }
                    })?;
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let len = read_line(input, MAX_TRAILERS.saturating_sub(seen), |line| {
                        // Trailers are header fields: a NUL or another
                        // control byte is as invalid here as in the head.
                        if line
                            .iter()
                            .any(|&b| b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
                        {
                            return Err(Error::protocol("control character in a trailer"));
                        }
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
    pub(crate) fn consume<I: Input + ?Sized>(&mut self, input: &mut I, n: usize) {
        input.consume(n);
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
    /// straight from the input into `out` (from the socket, for a connection).
    pub(crate) fn read<I: Input + ?Sized>(
        &mut self,
        input: &mut I,
        out: &mut [u8],
    ) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let State::Length(left) = self.state {
            if input.buffered().is_empty() {
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(out.len());
                let n = input.read_into(&mut out[..want])?;
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
        let buf = self.fill_buf(input)?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(input, n);
        Ok(n)
    }
}

/// Find the CRLF-terminated line at the start of `buf`: the line without
/// its terminator and the bytes it took with it, `None` while the line may
/// still end within `max` bytes, or an error for a line that is too long
/// or ends in a bare LF. The first `scanned` bytes are known to hold no LF
/// (0 when nothing is known): a line that arrives in many small reads is
/// then scanned once, not once per read.
pub(crate) fn split_line(
    buf: &[u8],
    max: usize,
    scanned: usize,
) -> Result<Option<(&[u8], usize)>, Error> {
    let scanned = scanned.min(buf.len());
    if let Some(pos) = buf[scanned..].iter().position(|b| *b == b'\n') {
        let pos = scanned + pos;
        // A line already in the buffer is still held to the limit.
        if pos >= max {
            return Err(line_too_long());
        }
        // A bare LF is refused: a proxy in front that reads lines another
        // way would see different chunk boundaries (request smuggling;
        // Go's CVE-2025-22871).
        let Some(line) = buf[..pos].strip_suffix(b"\r") else {
            return Err(Error::protocol("chunk framing line ends in a bare LF"));
        };
        return Ok(Some((line, pos + 1)));
    }
    if buf.len() >= max {
        return Err(line_too_long());
    }
    Ok(None)
}

/// Read one CRLF-terminated line of at most `max` bytes and hand it,
/// without the terminator, to `f`.
fn read_line<I: Input + ?Sized, T>(
    input: &mut I,
    max: usize,
    f: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> io::Result<T> {
    let mut scanned = 0;
    loop {
        let buf = input.buffered();
        if let Some((line, used)) = split_line(buf, max, scanned)? {
            let value = f(line)?;
            input.consume(used);
            return Ok(value);
        }
        // Receiving more only appends: what was looked at holds no LF.
        scanned = buf.len();
        match input.fill_more(max.max(1)) {
            Ok(0) => return Err(truncated("chunked body cut off")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => return Err(line_too_long().into()),
            Err(e) => return Err(e),
        }
    }
}

/// The size in a chunk-size line (without its CRLF): 1 to 16 hex digits,
/// optionally followed by white space and `;` extensions, which are skipped.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
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
    use super::super::slice::SliceInput;
    use super::*;
    use crate::ErrorKind;

    /// How a test takes the body out of the decoder.
    #[derive(Debug, Clone, Copy)]
    enum Via {
        /// `fill_buf` and `consume` of everything returned.
        Buf,
        /// `read` into a buffer of this size.
        Read(usize),
    }

    /// Decode one body of `framing` from `data` received in `pieces`.
    /// Returns the body or the error, and the input for a look at what is left.
    fn decode_with(
        framing: Framing,
        data: &[u8],
        pieces: Vec<usize>,
        via: Via,
    ) -> (Result<Vec<u8>, Error>, SliceInput<'_>) {
        let mut input = SliceInput::in_pieces(data, pieces);
        let mut decoder = Decoder::new(framing);
        let mut body = Vec::new();
        // Each step yields a byte or ends the body, so this is bounded.
        for _ in 0..=data.len() + 1 {
            let step = match via {
                Via::Buf => decoder.fill_buf(&mut input).map(|buf| {
                    let n = buf.len();
                    body.extend_from_slice(buf);
                    n
                }),
                Via::Read(size) => {
                    let mut out = vec![0; size];
                    decoder
                        .read(&mut input, &mut out)
                        .inspect(|&n| body.extend_from_slice(&out[..n]))
                }
            };
            match step {
                Err(e) => return (Err(Error::from_io(e)), input),
                Ok(0) => {
                    assert!(decoder.is_done(), "an empty read before the end");
                    return (Ok(body), input);
                }
                Ok(n) => {
                    if let Via::Buf = via {
                        decoder.consume(&mut input, n);
                    }
                }
            }
        }
        panic!("the decoder made no progress");
    }

    /// Decode in every way (whole, 1-byte pieces, uneven pieces; fill_buf and
    /// read with small and large buffers) and check all agree; returns the
    /// body or the error, and the unread rest of the input.
    fn decode(framing: Framing, data: &[u8]) -> (Result<Vec<u8>, Error>, Vec<u8>) {
        let (first, input) = decode_with(framing, data, vec![usize::MAX], Via::Buf);
        let rest = input.unread().to_vec();
        for pieces in [vec![1], vec![3, 1, 7], vec![usize::MAX]] {
            for via in [Via::Buf, Via::Read(1), Via::Read(5), Via::Read(1 << 16)] {
                let (other, input) = decode_with(framing, data, pieces.clone(), via);
                match (&first, &other) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a, b, "{pieces:?} {via:?}");
                        assert_eq!(input.unread(), rest, "{pieces:?} {via:?}");
                    }
                    (Err(a), Err(b)) => {
                        assert_eq!(a.to_string(), b.to_string(), "{pieces:?} {via:?}")
                    }
                    _ => panic!("{pieces:?} {via:?}: {first:?} but {other:?}"),
                }
            }
        }
        (first, rest)
    }

    /// The body, checking that the input is left exactly at `rest`.
    fn body(framing: Framing, data: &[u8], rest: &[u8]) -> Vec<u8> {
        let (result, left) = decode(framing, data);
        assert_eq!(left, rest, "bytes left after the body");
        result.unwrap()
    }

    /// The message of the error decoding `data`, which must be a protocol error.
    fn error(framing: Framing, data: &[u8]) -> String {
        let err = decode(framing, data).0.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        err.to_string()
    }

    /// A chunked body that must decode, leaving nothing unread.
    fn chunked(data: &[u8]) -> Vec<u8> {
        body(Framing::Chunked, data, b"")
    }

    #[test]
    fn chunk_sizes_parse_with_extensions_and_reject_junk() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"1A;name=value").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"10 ; x").unwrap(), 16);
        assert_eq!(parse_chunk_size(b"0").unwrap(), 0);
        assert_eq!(parse_chunk_size(b"ffffffffffffffff").unwrap(), u64::MAX);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"-1").is_err());
        assert!(parse_chunk_size(b"zz").is_err());
        assert!(parse_chunk_size(b"1 2").is_err());
        assert!(parse_chunk_size(b"0x5").is_err());
        assert!(parse_chunk_size(b";ext").is_err());
        assert!(parse_chunk_size(b"11111111111111111").is_err());
    }

    #[test]
    fn split_line_finds_crlf_lines_and_holds_them_to_the_limit() {
        assert_eq!(
            split_line(b"5\r\nhello", 10, 0).unwrap(),
            Some((&b"5"[..], 3))
        );
        assert_eq!(split_line(b"\r\n", 10, 0).unwrap(), Some((&b""[..], 2)));
        assert_eq!(split_line(b"5;a=b", 10, 0).unwrap(), None);
        assert_eq!(split_line(b"", 10, 0).unwrap(), None);
        // The LF must sit within the first `max` bytes.
        assert_eq!(
            split_line(b"abc\r\n", 5, 0).unwrap(),
            Some((&b"abc"[..], 5))
        );
        assert!(split_line(b"abcd\r\n", 5, 0).is_err());
        assert!(split_line(b"abcde", 5, 0).is_err());
        assert!(split_line(b"5\n", 10, 0).is_err());
        assert!(split_line(b"\n", 10, 0).is_err());
        // With no room at all, not even an empty line fits.
        assert!(split_line(b"\r\n", 0, 0).is_err());
    }

    // --- Content-Length ---------------------------------------------------

    #[test]
    fn content_length_body_is_read_exactly() {
        assert_eq!(body(Framing::Length(5), b"hello", b""), b"hello");
    }

    #[test]
    fn content_length_body_leaves_what_follows_unread() {
        // The next response on a kept-alive connection starts right there.
        let data = b"helloHTTP/1.1 200 OK\r\n";
        assert_eq!(
            body(Framing::Length(5), data, b"HTTP/1.1 200 OK\r\n"),
            b"hello"
        );
    }

    #[test]
    fn body_shorter_than_content_length_is_an_error() {
        let msg = error(Framing::Length(10), b"hello");
        assert!(
            msg.contains(
                "connection closed early: body shorter than Content-Length, 5 bytes missing"
            ),
            "{msg}"
        );
        let msg = error(Framing::Length(10), b"");
        assert!(msg.contains("10 bytes missing"), "{msg}");
    }

    #[test]
    fn a_huge_content_length_is_a_truncation_not_an_allocation() {
        let msg = error(Framing::Length(u64::MAX), b"abc");
        assert!(msg.contains("connection closed early"), "{msg}");
    }

    #[test]
    fn a_truncated_body_yields_what_arrived_before_the_error() {
        let mut input = SliceInput::new(b"hel");
        let mut decoder = Decoder::new(Framing::Length(5));
        let mut out = [0u8; 16];
        assert_eq!(decoder.read(&mut input, &mut out).unwrap(), 3);
        assert_eq!(decoder.known_remaining(), Some(2));
        let err = Error::from_io(decoder.read(&mut input, &mut out).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(!decoder.is_done());
    }

    #[test]
    fn known_remaining_counts_down_a_length_body() {
        let mut input = SliceInput::in_pieces(b"hello world", vec![4]);
        let mut decoder = Decoder::new(Framing::Length(11));
        assert_eq!(decoder.known_remaining(), Some(11));
        let mut out = [0u8; 3];
        assert_eq!(decoder.read(&mut input, &mut out).unwrap(), 3);
        assert_eq!(decoder.known_remaining(), Some(8));
        let n = decoder.fill_buf(&mut input).unwrap().len();
        assert_eq!(n, 1);
        decoder.consume(&mut input, n);
        assert_eq!(decoder.known_remaining(), Some(7));
        let mut rest = [0u8; 64];
        let mut got = 4;
        while !decoder.is_done() {
            got += decoder.read(&mut input, &mut rest).unwrap();
        }
        assert_eq!(got, 11);
        assert_eq!(decoder.known_remaining(), Some(0));
        assert_eq!(decoder.read(&mut input, &mut rest).unwrap(), 0);
    }

    #[test]
    fn a_large_read_of_a_length_body_stops_at_its_end() {
        // Read straight from the input into the caller's buffer: never past
        // the body, even when the buffer and the input have more room.
        let mut input = SliceInput::new(b"helloNEXT");
        let mut decoder = Decoder::new(Framing::Length(5));
        let mut out = [0u8; 64];
        assert_eq!(decoder.read(&mut input, &mut out).unwrap(), 5);
        assert!(decoder.is_done());
        assert_eq!(input.unread(), b"NEXT");
    }

    #[test]
    fn reading_into_an_empty_buffer_reads_nothing() {
        let mut input = SliceInput::new(b"");
        let mut decoder = Decoder::new(Framing::Length(5));
        assert_eq!(decoder.read(&mut input, &mut []).unwrap(), 0);
        assert_eq!(input.receives(), 0);
    }

    #[test]
    fn empty_bodies_are_done_before_any_read() {
        for framing in [Framing::Empty, Framing::Length(0)] {
            let decoder = Decoder::new(framing);
            assert!(decoder.is_done());
            assert_eq!(decoder.known_remaining(), Some(0));
            // Nothing is taken from the input, which may hold the next response.
            assert_eq!(body(framing, b"HTTP/1.1", b"HTTP/1.1"), b"");
        }
    }

    // --- until close ------------------------------------------------------

    #[test]
    fn body_without_length_is_read_until_close() {
        assert_eq!(
            body(Framing::UntilClose, b"until the end", b""),
            b"until the end"
        );
        assert_eq!(body(Framing::UntilClose, b"", b""), b"");
        assert_eq!(Decoder::new(Framing::UntilClose).known_remaining(), None);
    }

    #[test]
    fn until_close_takes_bytes_that_look_like_framing_as_data() {
        let data = b"0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(body(Framing::UntilClose, data, b""), data);
    }

    // --- chunked ------------------------------------------------------------

    #[test]
    fn chunked_body_is_decoded() {
        assert_eq!(
            chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
    }

    #[test]
    fn an_empty_chunked_body_is_just_the_last_chunk() {
        assert_eq!(chunked(b"0\r\n\r\n"), b"");
    }

    #[test]
    fn chunk_sizes_are_hex_in_either_case() {
        let data = b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n";
        assert_eq!(chunked(data), b"0123456789abcdefghij");
    }

    #[test]
    fn chunk_extensions_are_skipped() {
        let data = b"5;name=value\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0;last\r\n\r\n";
        assert_eq!(chunked(data), b"hello world");
        assert_eq!(chunked(b"5 \t; x\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn chunk_data_may_hold_crlf_and_framing_lookalikes() {
        let data = b"7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n";
        assert_eq!(chunked(data), b"0\r\n\r\n\r\n");
    }

    #[test]
    fn chunked_trailers_are_consumed_up_to_the_next_message() {
        let data = b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\nHTTP/1.1 200 OK\r\n";
        // Trailers left unread would be parsed as the next response head.
        assert_eq!(
            body(Framing::Chunked, data, b"HTTP/1.1 200 OK\r\n"),
            b"hello"
        );
    }

    #[test]
    fn chunked_body_leaves_what_follows_unread() {
        let data = b"2\r\nok\r\n0\r\n\r\nNEXT";
        assert_eq!(body(Framing::Chunked, data, b"NEXT"), b"ok");
    }

    #[test]
    fn trailers_over_64_kib_are_a_protocol_error() {
        let mut data = b"2\r\nok\r\n0\r\n".to_vec();
        for i in 0..800 {
            data.extend_from_slice(format!("x-t{i:05}: {}\r\n", "v".repeat(80)).as_bytes());
        }
        data.extend_from_slice(b"\r\n");
        let msg = error(Framing::Chunked, &data);
        assert!(msg.contains("chunk framing line too long"), "{msg}");
    }

    #[test]
    fn trailers_are_counted_with_their_crlf_up_to_64_kib() {
        // Trailer lines of 1022 bytes plus CRLF: 64 of them fill 64 KiB to
        // the byte, after which not even the final empty line fits.
        let line = format!("x: {}\r\n", "v".repeat(1019));
        assert_eq!(line.len(), 1024);
        let trailers = |n: usize| {
            let mut data = b"2\r\nok\r\n0\r\n".to_vec();
            data.extend_from_slice(line.repeat(n).as_bytes());
            data.extend_from_slice(b"\r\n");
            data
        };
        assert_eq!(chunked(&trailers(63)), b"ok");
        error(Framing::Chunked, &trailers(64));
    }

    #[test]
    fn one_trailer_line_over_64_kib_is_a_protocol_error() {
        let mut data = b"0\r\nx: ".to_vec();
        data.extend_from_slice(&vec![b'v'; MAX_TRAILERS]);
        data.extend_from_slice(b"\r\n\r\n");
        error(Framing::Chunked, &data);
    }

    #[test]
    fn a_bare_lf_after_a_chunk_size_is_a_protocol_error() {
        let msg = error(Framing::Chunked, b"5\nhello\r\n0\r\n\r\n");
        assert!(msg.contains("bare LF"), "{msg}");
    }

    #[test]
    fn a_bare_lf_after_chunk_data_is_a_protocol_error() {
        let msg = error(Framing::Chunked, b"5\r\nhello\n0\r\n\r\n");
        assert!(msg.contains("bare LF"), "{msg}");
    }

    #[test]
    fn a_bare_lf_in_the_last_chunk_line_is_a_protocol_error() {
        let msg = error(Framing::Chunked, b"5\r\nhello\r\n0\n\r\n");
        assert!(msg.contains("bare LF"), "{msg}");
    }

    #[test]
    fn a_bare_lf_in_trailers_is_a_protocol_error() {
        let msg = error(Framing::Chunked, b"0\r\nX-A: 1\n\r\n");
        assert!(msg.contains("bare LF"), "{msg}");
        let msg = error(Framing::Chunked, b"0\r\nX-A: 1\r\n\n");
        assert!(msg.contains("bare LF"), "{msg}");
        let msg = error(Framing::Chunked, b"0\r\n\n");
        assert!(msg.contains("bare LF"), "{msg}");
    }

    #[test]
    fn anything_but_crlf_after_chunk_data_is_a_protocol_error() {
        let msg = error(Framing::Chunked, b"5\r\nhello!\r\n0\r\n\r\n");
        assert!(msg.contains("missing CRLF after chunk data"), "{msg}");
        error(Framing::Chunked, b"5\r\nhello\r\r\n0\r\n\r\n");
        error(Framing::Chunked, b"5\r\nhello 0\r\n\r\n");
    }

    #[test]
    fn invalid_chunk_size_is_a_protocol_error() {
        let msg = error(Framing::Chunked, b"zz\r\nhello\r\n0\r\n\r\n");
        assert!(msg.contains("invalid chunk size line"), "{msg}");
        error(Framing::Chunked, b"\r\nhello\r\n0\r\n\r\n");
        error(Framing::Chunked, b"-5\r\nhello\r\n0\r\n\r\n");
        error(Framing::Chunked, b"+5\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn chunk_size_of_17_hex_digits_is_a_protocol_error() {
        // Even with leading zeros: the length alone is refused, so the value
        // can never overflow.
        error(Framing::Chunked, b"10000000000000000\r\n");
        error(Framing::Chunked, b"00000000000000005\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn the_largest_chunk_size_is_a_truncation_not_an_allocation() {
        let msg = error(Framing::Chunked, b"ffffffffffffffff\r\nhello");
        assert!(
            msg.contains("connection closed early: chunked body cut off inside a chunk"),
            "{msg}"
        );
    }

    #[test]
    fn chunk_size_line_over_4_kib_is_a_protocol_error() {
        // The LF must come within the first 4096 bytes of the line.
        let line = |ext: usize| {
            let mut data = b"5;".to_vec();
            data.extend_from_slice(&vec![b'x'; ext]);
            data.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
            data
        };
        // 2 + 4092 + CR = 4095 bytes before the LF.
        assert_eq!(chunked(&line(MAX_CHUNK_LINE - 4)), b"hello");
        let msg = error(Framing::Chunked, &line(MAX_CHUNK_LINE - 3));
        assert!(msg.contains("chunk framing line too long"), "{msg}");
        // A line that never ends is refused once it passes the limit, not at EOF.
        let msg = error(Framing::Chunked, &vec![b'1'; 2 * MAX_CHUNK_LINE]);
        assert!(msg.contains("chunk framing line too long"), "{msg}");
    }

    #[test]
    fn chunked_body_cut_off_is_an_error() {
        let msg = error(Framing::Chunked, b"5\r\nhello\r\n");
        assert!(
            msg.contains("connection closed early: chunked body cut off"),
            "{msg}"
        );
    }

    #[test]
    fn chunked_body_cut_off_inside_a_chunk_is_an_error() {
        let msg = error(Framing::Chunked, b"a\r\nhello");
        assert!(msg.contains("cut off inside a chunk"), "{msg}");
    }

    #[test]
    fn chunked_body_cut_off_anywhere_is_an_error() {
        let data = b"5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(chunked(data), b"hello");
        for cut in 0..data.len() {
            error(Framing::Chunked, &data[..cut]);
        }
    }

    #[test]
    fn a_chunk_body_yields_data_before_its_end_arrives() {
        // A slow server's chunks reach the caller as they arrive.
        let mut input = SliceInput::in_pieces(b"a\r\nhello", vec![4, 1]);
        let mut decoder = Decoder::new(Framing::Chunked);
        assert_eq!(decoder.fill_buf(&mut input).unwrap(), b"h");
        assert_eq!(decoder.known_remaining(), None);
    }
}
