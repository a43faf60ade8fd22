//! Whole responses as byte slices: the twins of the wire tests in
//! `tests/framing.rs`, run through the same head reader, framing rules and
//! decoder as a connection, with the bytes cut into reads of every size.

use http::{Method, StatusCode, Version};

use super::decoder::Decoder;
use super::framing::{framing, Framing};
use super::fuzzing::read_final_head;
use super::slice::SliceInput;
use crate::error::Error;
use crate::ErrorKind;

/// The default `max_head_size`.
const MAX_HEAD: usize = 64 * 1024;

/// What the client made of one response.
#[derive(Debug)]
struct Exchange {
    status: StatusCode,
    version: Version,
    headers: http::HeaderMap,
    framing: Framing,
    reusable: bool,
    body: Vec<u8>,
    /// The bytes after the response: where the next one would start.
    rest: Vec<u8>,
}

/// Where an exchange failed: before the body (no response) or in it.
#[derive(Debug)]
enum Failure {
    Head(Error),
    Body(Error),
}

/// One exchange over `bytes` received in `pieces`, as the request path runs
/// it: heads (1xx skipped), framing, then the body by `read` calls.
fn exchange_in(
    method: &Method,
    bytes: &[u8],
    pieces: Vec<usize>,
    max_head: usize,
) -> Result<Exchange, Failure> {
    let mut input = SliceInput::in_pieces(bytes, pieces);
    let head = read_final_head(&mut input, max_head).map_err(Failure::Head)?;
    let (framing, reusable) = framing(method, &head).map_err(Failure::Head)?;
    let mut decoder = Decoder::new(framing);
    let mut body = Vec::new();
    let mut out = [0u8; 4096];
    // Every read returns at least one byte until the body ends.
    for _ in 0..=bytes.len() {
        match decoder.read(&mut input, &mut out) {
            Ok(0) => {
                assert!(decoder.is_done());
                return Ok(Exchange {
                    status: head.status,
                    version: head.version,
                    headers: head.headers,
                    framing,
                    reusable,
                    body,
                    rest: input.unread().to_vec(),
                });
            }
            Ok(n) => body.extend_from_slice(&out[..n]),
            Err(e) => return Err(Failure::Body(Error::from_io(e))),
        }
    }
    panic!("the body made no progress");
}

/// Run the exchange with the bytes whole, in 1-byte reads and in uneven
/// reads; all must agree (same outcome, same error message).
fn exchange_with(method: &Method, bytes: &[u8], max_head: usize) -> Result<Exchange, Failure> {
    let first = exchange_in(method, bytes, vec![usize::MAX], max_head);
    // 1-byte reads of a large head would re-parse it once per byte.
    let small = if bytes.len() < 8 * 1024 { 1 } else { 997 };
    for pieces in [vec![small], vec![small * 3, small, small * 7]] {
        let other = exchange_in(method, bytes, pieces.clone(), max_head);
        match (&first, &other) {
            (Ok(a), Ok(b)) => {
                assert_eq!(
                    (a.status, &a.body, a.reusable, &a.rest),
                    (b.status, &b.body, b.reusable, &b.rest),
                    "{pieces:?}"
                );
            }
            (Err(Failure::Head(a)), Err(Failure::Head(b)))
            | (Err(Failure::Body(a)), Err(Failure::Body(b))) => {
                assert_eq!(a.to_string(), b.to_string(), "{pieces:?}");
            }
            _ => panic!("{pieces:?}: {first:?} but {other:?}"),
        }
    }
    first
}

/// A GET answered with `bytes`, which must succeed.
fn get(bytes: impl AsRef<[u8]>) -> Exchange {
    exchange_with(&Method::GET, bytes.as_ref(), MAX_HEAD).expect("the exchange failed")
}

/// The kind of the error before any body (what `call()` returns).
fn get_err(bytes: impl AsRef<[u8]>) -> ErrorKind {
    match exchange_with(&Method::GET, bytes.as_ref(), MAX_HEAD) {
        Err(Failure::Head(e)) => e.kind(),
        other => panic!("expected an error before the body, got {other:?}"),
    }
}

/// The kind of the error reading the body, after the head was accepted.
fn body_err(bytes: impl AsRef<[u8]>) -> ErrorKind {
    match exchange_with(&Method::GET, bytes.as_ref(), MAX_HEAD) {
        Err(Failure::Body(e)) => e.kind(),
        other => panic!("expected a body error, got {other:?}"),
    }
}

// --- lengths --------------------------------------------------------------

#[test]
fn content_length_body_is_read_exactly() {
    let x = get("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(x.status, StatusCode::OK);
    assert_eq!(x.headers["content-length"], "5");
    assert_eq!(x.framing, Framing::Length(5));
    assert_eq!(x.body, b"hello");
    assert!(x.reusable);
    assert!(x.rest.is_empty());
}

#[test]
fn bytes_past_the_content_length_are_left_for_the_pool_to_see() {
    // The body ends at its length; what follows stays in the buffer, where
    // the pool's make_idle() finds it and refuses the connection.
    let x = get("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA");
    assert_eq!(x.body, b"hello");
    assert_eq!(x.rest, b"EXTRA");
}

#[test]
fn chunked_body_is_decoded() {
    let x = get("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(x.framing, Framing::Chunked);
    assert_eq!(x.body, b"hello world");
    assert!(x.rest.is_empty());
}

#[test]
fn chunk_extensions_are_skipped() {
    let x = get("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0;last\r\n\r\n");
    assert_eq!(x.body, b"hello world");
}

#[test]
fn chunked_trailers_are_consumed_and_the_connection_reused() {
    let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
    let x = get(response.repeat(2));
    assert_eq!(x.body, b"hello");
    assert!(x.reusable);
    // Trailers left unread would be parsed as the next response head.
    assert_eq!(x.rest, response.as_bytes());
    assert_eq!(get(&x.rest).body, b"hello");
}

#[test]
fn body_without_length_is_read_until_close() {
    let x = get("HTTP/1.1 200 OK\r\n\r\nuntil the end");
    assert_eq!(x.framing, Framing::UntilClose);
    assert_eq!(x.body, b"until the end");
    // A close-delimited connection cannot be reused.
    assert!(!x.reusable);
}

// --- responses without a body -----------------------------------------------

#[test]
fn head_response_has_no_body_despite_content_length() {
    let next = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    bytes.extend_from_slice(next);
    let x = exchange_with(&Method::HEAD, &bytes, MAX_HEAD).unwrap();
    assert_eq!(x.status, StatusCode::OK);
    assert_eq!(x.body, b"");
    // The connection is at a message boundary: the next GET reuses it.
    assert!(x.reusable);
    assert_eq!(x.rest, next);
}

#[test]
fn no_content_204_has_no_body() {
    let x = get("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1");
    assert_eq!(x.status, StatusCode::NO_CONTENT);
    assert_eq!(x.body, b"");
    assert!(x.reusable);
    assert_eq!(x.rest, b"HTTP/1.1");
}

#[test]
fn not_modified_304_has_no_body_despite_content_length() {
    let x = get("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n");
    assert_eq!(x.status, StatusCode::NOT_MODIFIED);
    assert_eq!(x.headers["etag"], "\"v1\"");
    assert_eq!(x.body, b"");
    assert!(x.reusable);
}

#[test]
fn a_zero_content_length_body_is_empty_and_reusable() {
    let x = get("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((x.framing, x.reusable), (Framing::Empty, true));
}

// --- informational responses -----------------------------------------------

#[test]
fn continue_100_before_the_final_response_is_skipped() {
    let x = get("HTTP/1.1 100 Continue\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
    assert_eq!(x.status, StatusCode::OK);
    assert_eq!(x.body, b"final");
}

#[test]
fn early_hints_103_before_the_final_response_are_skipped() {
    let x = get(
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
         HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    );
    assert_eq!(x.status, StatusCode::OK);
    assert!(!x.headers.contains_key("link"));
    assert_eq!(x.body, b"final");
}

#[test]
fn switching_protocols_101_is_final_and_has_no_body() {
    let x = get("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw bytes");
    assert_eq!(x.status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(x.body, b"");
    assert_eq!(x.rest, b"raw bytes");
}

#[test]
fn too_many_informational_responses_is_a_protocol_error() {
    let mut bytes = "HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
    bytes.push_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
    assert_eq!(get_err(bytes), ErrorKind::Protocol);
}

// --- ambiguous or malformed lengths ------------------------------------------

#[test]
fn transfer_encoding_with_content_length_uses_chunked_and_closes() {
    let x = get(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(x.body, b"hello");
    // A message with both is a smuggling attempt or a broken proxy: the
    // connection is not trusted with a second request.
    assert!(!x.reusable);
}

#[test]
fn differing_duplicate_content_length_is_a_protocol_error() {
    let bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_eq!(get_err(bytes), ErrorKind::Protocol);
}

#[test]
fn identical_duplicate_content_length_is_accepted() {
    let x = get("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(x.body, b"hello");
}

#[test]
fn content_length_with_plus_sign_is_a_protocol_error() {
    assert_eq!(
        get_err("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"),
        ErrorKind::Protocol
    );
}

#[test]
fn negative_content_length_is_a_protocol_error() {
    assert_eq!(
        get_err("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"),
        ErrorKind::Protocol
    );
}

#[test]
fn content_length_with_trailing_garbage_is_a_protocol_error() {
    assert_eq!(
        get_err("HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\nhello"),
        ErrorKind::Protocol
    );
}

#[test]
fn unknown_transfer_coding_is_a_protocol_error() {
    assert_eq!(
        get_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: compress, chunked\r\n\r\n"),
        ErrorKind::Protocol
    );
}

// --- truncated and broken bodies -------------------------------------------

#[test]
fn body_shorter_than_content_length_is_an_error() {
    let bytes = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
    assert_eq!(body_err(bytes), ErrorKind::Protocol);
    let Err(Failure::Body(e)) = exchange_in(&Method::GET, bytes.as_bytes(), vec![1], MAX_HEAD)
    else {
        panic!("expected a body error");
    };
    assert!(e
        .to_string()
        .contains("connection closed early: body shorter than Content-Length, 5 bytes missing"));
}

#[test]
fn huge_content_length_is_a_truncation_error() {
    let bytes = "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\nhello";
    assert_eq!(body_err(bytes), ErrorKind::Protocol);
}

#[test]
fn chunked_body_cut_off_is_an_error() {
    // A complete chunk, then the connection closes without the last chunk.
    assert_eq!(
        body_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        ErrorKind::Protocol
    );
}

#[test]
fn chunked_body_cut_off_inside_a_chunk_is_an_error() {
    assert_eq!(
        body_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhello"),
        ErrorKind::Protocol
    );
}

#[test]
fn invalid_chunk_size_is_a_protocol_error() {
    assert_eq!(
        body_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ErrorKind::Protocol
    );
}

#[test]
fn chunk_size_overflow_is_a_protocol_error() {
    assert_eq!(
        body_err(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"
        ),
        ErrorKind::Protocol
    );
}

#[test]
fn a_bare_lf_after_a_chunk_size_is_a_protocol_error() {
    assert_eq!(
        body_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
        ErrorKind::Protocol
    );
}

#[test]
fn a_bare_lf_after_chunk_data_is_a_protocol_error() {
    assert_eq!(
        body_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"),
        ErrorKind::Protocol
    );
}

#[test]
fn a_bare_lf_in_trailers_is_a_protocol_error() {
    assert_eq!(
        body_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\n\r\n"),
        ErrorKind::Protocol
    );
}

#[test]
fn white_space_before_a_header_colon_is_a_protocol_error() {
    assert_eq!(
        get_err("HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello"),
        ErrorKind::Protocol
    );
}

#[test]
fn garbage_status_line_is_a_protocol_error() {
    assert_eq!(get_err("SSH-2.0-OpenSSH_9.6\r\n\r\n"), ErrorKind::Protocol);
}

#[test]
fn non_numeric_status_code_is_a_protocol_error() {
    assert_eq!(
        get_err("HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
        ErrorKind::Protocol
    );
}

#[test]
fn a_closed_connection_without_a_response_is_an_io_error() {
    assert_eq!(get_err(""), ErrorKind::Io);
}

// --- head size -----------------------------------------------------------------

#[test]
fn response_head_under_the_default_limit_is_accepted() {
    let x = get(format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(60 * 1024)
    ));
    assert_eq!(x.headers["x-big"].len(), 60 * 1024);
    assert_eq!(x.body, b"ok");
}

#[test]
fn response_head_over_the_default_64_kib_limit_is_an_error() {
    assert_eq!(
        get_err(format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(70 * 1024)
        )),
        ErrorKind::Protocol
    );
}

#[test]
fn response_head_over_a_configured_max_head_size_is_an_error() {
    let bytes = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(2048)
    );
    match exchange_with(&Method::GET, bytes.as_bytes(), 1024) {
        Err(Failure::Head(e)) => assert_eq!(e.kind(), ErrorKind::Protocol),
        other => panic!("expected a head error, got {other:?}"),
    }
}

// --- connection persistence -------------------------------------------------

#[test]
fn http10_response_without_keep_alive_is_not_reused() {
    let x = get("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(x.version, Version::HTTP_10);
    assert_eq!(x.body, b"ok");
    assert!(!x.reusable);
}

#[test]
fn http10_response_with_keep_alive_is_reused() {
    let x = get("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(x.body, b"ok");
    assert!(x.reusable);
}

#[test]
fn http10_response_without_length_is_read_until_close() {
    let x = get("HTTP/1.0 200 OK\r\n\r\nuntil the end");
    assert_eq!(x.body, b"until the end");
    assert!(!x.reusable);
}

#[test]
fn connection_close_response_is_not_reused() {
    let x = get("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(x.body, b"ok");
    assert!(!x.reusable);
}

#[test]
fn keep_alive_response_is_reused() {
    let x = get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(x.reusable);
}

#[test]
fn trailers_over_64_kib_are_a_protocol_error() {
    let mut response =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
    for i in 0..800 {
        response.extend_from_slice(format!("x-t{i:05}: {}\r\n", "v".repeat(80)).as_bytes());
    }
    response.extend_from_slice(b"\r\n");
    assert_eq!(body_err(response), ErrorKind::Protocol);
}
