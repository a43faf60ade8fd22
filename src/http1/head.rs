//! The response head in: a pure parser over bytes (httparse) and the loop
//! that feeds it from an [`Input`](crate::http1::input::Input) until a whole
//! head has arrived.

use std::io;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::input::Input;
use crate::error::Error;

/// Most headers a response may carry.
pub(crate) const MAX_HEADERS: usize = 128;

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// Bytes the head took on the wire.
    pub size: usize,
    /// The reason phrase and header names as the server wrote them.
    pub raw_head: RawHead,
    /// An informational (1xx) head before this one said `Connection: close`:
    /// the server means to close after this exchange, so the connection is
    /// not pooled whatever the final head says.
    pub closed_by_informational: bool,
}

/// What a response head looked like on the wire beyond what the parsed
/// head keeps: the reason phrase of the status line and the header names as
/// the server spelled them, in order. Kept beside the [`HeaderMap`] (which
/// lowercases names) for callers that show a response the way the server
/// sent it, as curl's `-i` does.
///
/// Stored as one string (reason, then each name, `\n`-separated), so keeping
/// it costs one allocation per response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawHead(String);

impl RawHead {
    /// The reason phrase of the status line as sent (`OK`, `Fine Thanks`),
    /// possibly empty.
    pub fn reason(&self) -> &str {
        self.0.split('\n').next().unwrap_or("")
    }

    /// Each header name as sent, in wire order (a repeated name appears
    /// each time).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        // Neither names (tokens) nor the reason can hold a newline.
        self.0.split('\n').skip(1).filter(|n| !n.is_empty())
    }

    /// Each header of `headers` (the map parsed from the same head) in wire
    /// order, with its name spelled as sent.
    pub fn pair_with<'h>(&'h self, headers: &'h HeaderMap) -> Vec<(&'h str, &'h HeaderValue)> {
        let names: Vec<&str> = self.names().collect();
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            // The k-th time a name appears is its k-th value in the map.
            let k = names[..i]
                .iter()
                .filter(|n| n.eq_ignore_ascii_case(name))
                .count();
            if let Some(value) = headers.get_all(*name).iter().nth(k) {
                out.push((*name, value));
            }
        }
        out
    }
}

/// Read one response head (possibly a 1xx). `got_bytes` is set as soon as any
/// byte of a response has arrived, which decides whether a retry is safe.
pub(crate) fn read_head<I: Input + ?Sized>(
    input: &mut I,
    max: usize,
    got_bytes: &mut bool,
) -> Result<Head, Error> {
    loop {
        let buf = input.buffered();
        if !buf.is_empty() {
            *got_bytes = true;
            // Only the first `max` bytes may hold the head: a head that
            // arrived whole in one large read is still held to the limit.
            let window = &buf[..buf.len().min(max)];
            if let Some((head, used)) = parse_head(window)? {
                input.consume(used);
                return Ok(head);
            }
            if buf.len() >= max {
                return Err(head_too_large(max));
            }
        }
        let n = match input.fill_more(max) {
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

/// The error for a head that does not fit in `max` bytes.
fn head_too_large(max: usize) -> Error {
    Error::protocol(format!("response head is larger than the {max} byte limit"))
}

/// Parse a response head at the start of `buf`: the head and the bytes it
/// took, `None` when `buf` ends before the head does, or an error for a head
/// that can never become valid whatever follows.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Error> {
    // Left uninitialised: zeroing 128 header slots (4 KiB) for every
    // response cost more instructions than the whole rest of the parse.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    // httparse's defaults refuse white space between a header name and its
    // colon (RFC 9112 §5.1): `Transfer-Encoding : chunked` is how a smuggled
    // message hides its framing from one parser and not another.
    //
    // Several spaces between the version and the status code are accepted,
    // as curl and Go accept them: some embedded servers pad the status line.
    let used = match httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
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
    let reason = resp.reason.unwrap_or("");
    let names_len: usize = resp.headers.iter().map(|h| h.name.len() + 1).sum();
    let mut raw_head = String::with_capacity(reason.len() + names_len);
    raw_head.push_str(reason);
    for h in resp.headers.iter() {
        raw_head.push('\n');
        raw_head.push_str(h.name);
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
            raw_head: RawHead(raw_head),
            closed_by_informational: false,
        },
        used,
    )))
}

#[cfg(test)]
mod tests {
    use super::super::slice::SliceInput;
    use super::*;
    use crate::ErrorKind;

    /// The default `max_head_size`.
    const MAX: usize = 64 * 1024;

    /// Read one head from `data` delivered in `pieces`; the head, or the
    /// error and whether any byte had arrived.
    fn read(data: &[u8], pieces: Vec<usize>, max: usize) -> (Result<Head, Error>, bool) {
        let mut input = SliceInput::in_pieces(data, pieces);
        let mut got = false;
        (read_head(&mut input, max, &mut got), got)
    }

    /// The kind of the error reading `data` whole with the limit `max`.
    fn err_kind(data: &[u8], max: usize) -> ErrorKind {
        match read(data, vec![usize::MAX], max).0 {
            Ok(head) => panic!("expected an error, got {head:?}"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn a_complete_head_parses_and_leaves_the_body() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello";
        let mut input = SliceInput::new(data);
        let mut got = false;
        let head = read_head(&mut input, MAX, &mut got).unwrap();
        assert!(got);
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.size, data.len() - 5);
        assert_eq!(head.headers["content-length"], "5");
        let all: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(input.unread(), b"hello");
    }

    #[test]
    fn the_raw_head_keeps_the_reason_and_the_names_as_sent() {
        let data = b"HTTP/1.1 200 Fine Thanks\r\nX-Request-ID: 1\r\nx-a: 2\r\n\r\n";
        let (head, _) = parse_head(data).unwrap().unwrap();
        assert_eq!(head.raw_head.reason(), "Fine Thanks");
        let names: Vec<&str> = head.raw_head.names().collect();
        assert_eq!(names, ["X-Request-ID", "x-a"]);
        let (head, _) = parse_head(b"HTTP/1.1 204 \r\n\r\n").unwrap().unwrap();
        assert_eq!(head.raw_head.reason(), "");
        assert_eq!(head.raw_head.names().count(), 0);
    }

    #[test]
    fn parse_head_is_pure_and_says_when_it_needs_more() {
        let data = b"HTTP/1.1 204 No Content\r\nA: b\r\n\r\n";
        for cut in 0..data.len() {
            assert!(parse_head(&data[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let (head, used) = parse_head(data).unwrap().unwrap();
        assert_eq!(used, data.len());
        assert_eq!(head.status, StatusCode::NO_CONTENT);
    }

    #[test]
    fn head_split_across_many_one_byte_reads() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        let mut input = SliceInput::in_pieces(data, vec![1]);
        let mut got = false;
        let head = read_head(&mut input, MAX, &mut got).unwrap();
        assert_eq!(head.headers["content-type"], "text/plain");
        assert_eq!(input.unread(), b"ok");
        // One receive per byte of the head, none past it.
        assert_eq!(input.receives(), head.size);
    }

    #[test]
    fn head_in_uneven_pieces_gives_the_same_head() {
        let data = b"HTTP/1.0 404 Not Found\r\nServer: x\r\nContent-Length: 0\r\n\r\n";
        for pieces in [vec![1], vec![2, 7], vec![5, 1, 13], vec![usize::MAX]] {
            let head = read(data, pieces.clone(), MAX).0.unwrap();
            assert_eq!(head.status, StatusCode::NOT_FOUND, "{pieces:?}");
            assert_eq!(head.version, Version::HTTP_10);
            assert_eq!(head.size, data.len());
        }
    }

    #[test]
    fn empty_input_is_an_io_error_and_no_byte_was_seen() {
        let (result, got) = read(b"", vec![1], MAX);
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(!got, "a retry is safe: nothing arrived");
    }

    #[test]
    fn input_ending_inside_the_head_is_a_protocol_error() {
        let (result, got) = read(b"HTTP/1.1 200 OK\r\nContent-Le", vec![3], MAX);
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err
            .to_string()
            .contains("in the middle of the response head"));
        assert!(got);
    }

    #[test]
    fn response_head_over_the_max_is_a_protocol_error() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(2048)
        );
        for pieces in [vec![usize::MAX], vec![100], vec![1]] {
            let err = read(big.as_bytes(), pieces, 1024).0.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol);
            assert!(err.to_string().contains("larger than the 1024 byte limit"));
        }
    }

    #[test]
    fn a_head_that_arrived_whole_is_still_held_to_the_max() {
        // The whole response is buffered by one receive, but the head ends
        // past the limit.
        let data = b"HTTP/1.1 200 OK\r\nX-Pad: 0123456789\r\n\r\n";
        assert_eq!(err_kind(data, data.len() - 1), ErrorKind::Protocol);
        assert!(read(data, vec![usize::MAX], data.len()).0.is_ok());
    }

    #[test]
    fn a_head_of_exactly_the_max_is_accepted_in_any_pieces() {
        let data = b"HTTP/1.1 200 OK\r\nX-Pad: 0123456789\r\n\r\nbody";
        let max = data.len() - 4;
        for pieces in [vec![usize::MAX], vec![1], vec![3]] {
            let head = read(data, pieces, max).0.unwrap();
            assert_eq!(head.size, max);
        }
    }

    #[test]
    fn head_under_the_default_limit_is_accepted() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(60 * 1024)
        );
        let parsed = read(head.as_bytes(), vec![4096], MAX).0.unwrap();
        assert_eq!(parsed.headers["x-big"].len(), 60 * 1024);
    }

    #[test]
    fn head_over_the_default_64_kib_limit_is_an_error() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(70 * 1024)
        );
        assert_eq!(err_kind(head.as_bytes(), MAX), ErrorKind::Protocol);
    }

    #[test]
    fn too_many_headers_is_a_protocol_error() {
        let head = |n: usize| {
            let mut s = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..n {
                s.push_str(&format!("X-H{i}: v\r\n"));
            }
            s.push_str("\r\n");
            s
        };
        let ok = read(head(MAX_HEADERS).as_bytes(), vec![usize::MAX], MAX).0;
        assert_eq!(ok.unwrap().headers.len(), MAX_HEADERS);
        let err = read(head(MAX_HEADERS + 1).as_bytes(), vec![usize::MAX], MAX)
            .0
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("more than 128 headers"));
    }

    #[test]
    fn informational_heads_are_read_one_at_a_time() {
        let data = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal";
        let mut input = SliceInput::in_pieces(data, vec![7]);
        let mut got = false;
        let first = read_head(&mut input, MAX, &mut got).unwrap();
        assert_eq!(first.status, StatusCode::CONTINUE);
        let second = read_head(&mut input, MAX, &mut got).unwrap();
        assert_eq!(second.status.as_u16(), 103);
        assert_eq!(second.headers["link"], "</style.css>; rel=preload");
        let last = read_head(&mut input, MAX, &mut got).unwrap();
        assert_eq!(last.status, StatusCode::OK);
        assert!(!last.headers.contains_key("link"));
        assert_eq!(input.unread(), b"final");
    }

    #[test]
    fn white_space_before_a_header_colon_is_a_protocol_error() {
        let data =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(err_kind(data, MAX), ErrorKind::Protocol);
    }

    #[test]
    fn garbage_status_line_is_a_protocol_error() {
        assert_eq!(
            err_kind(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", MAX),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn garbage_is_refused_before_the_head_ends() {
        // No need to wait for more bytes: nothing can make this a head.
        assert!(parse_head(b"SSH-2.0").is_err());
        let (result, got) = read(b"SSH-2.0-OpenSSH_9.6\r\n", vec![1], MAX);
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Protocol);
        assert!(got);
    }

    #[test]
    fn non_numeric_status_code_is_a_protocol_error() {
        let data = b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(err_kind(data, MAX), ErrorKind::Protocol);
    }

    #[test]
    fn status_code_below_100_is_a_protocol_error() {
        let err = read(b"HTTP/1.1 099 Odd\r\n\r\n", vec![usize::MAX], MAX)
            .0
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("invalid status code 99"));
    }

    #[test]
    fn nul_and_control_bytes_in_a_header_value_are_refused() {
        for data in [
            &b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        ] {
            assert_eq!(err_kind(data, MAX), ErrorKind::Protocol, "{data:?}");
        }
    }

    #[test]
    fn a_timeout_from_the_input_keeps_its_kind() {
        /// Delivers nothing and times out, as a connection past its deadline does.
        struct Stalled;
        impl Input for Stalled {
            fn buffered(&self) -> &[u8] {
                &[]
            }
            fn fill_more(&mut self, _max: usize) -> io::Result<usize> {
                Err(Error::timeout(
                    crate::Phase::ResponseHead,
                    "127.0.0.1:1",
                    std::time::Duration::ZERO,
                )
                .into())
            }
            fn consume(&mut self, _n: usize) {}
        }
        let err = read_head(&mut Stalled, MAX, &mut false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout(crate::Phase::ResponseHead));
    }
}
