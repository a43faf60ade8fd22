//! Response framing: how windlass finds where a response ends, and what it
//! refuses. Every test shows the exact bytes the server sends.

mod common;

use std::io::Read;

use common::{Reply, Server};
#[cfg(feature = "gzip")]
use flate2::write::{GzEncoder, ZlibEncoder};
#[cfg(feature = "gzip")]
use flate2::Compression;
use windlass::http::Version;
use windlass::{Agent, ErrorKind, Response};

fn get(agent: &Agent, server: &Server) -> Response {
    agent.get(server.url("/")).call().expect("request failed")
}

fn get_err(agent: &Agent, server: &Server) -> ErrorKind {
    match agent.get(server.url("/")).call() {
        Ok(resp) => panic!("expected an error, got {}", resp.status()),
        Err(e) => e.kind(),
    }
}

/// The kind of the error reading the body, after the head was accepted.
fn body_err(resp: Response) -> ErrorKind {
    match resp.text() {
        Ok(text) => panic!("expected a body error, got the body {text:?}"),
        Err(e) => e.kind(),
    }
}

#[cfg(feature = "gzip")]
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[cfg(feature = "gzip")]
fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[cfg(feature = "gzip")]
fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

// --- lengths --------------------------------------------------------------

#[test]
fn content_length_body_is_read_exactly() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(5));
    assert_eq!(resp.header("content-length"), Some("5"));
    assert_eq!(resp.text().unwrap(), "hello");
}

#[test]
fn chunked_body_is_decoded() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.content_length(), None);
    assert_eq!(resp.text().unwrap(), "hello world");
}

#[test]
fn chunk_extensions_are_skipped() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0;last\r\n\r\n",
    );
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "hello world");
}

#[test]
fn chunked_trailers_are_consumed_and_the_connection_reused() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
    );
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "hello");
    // Trailers left unread would be parsed as the next response head.
    assert_eq!(get(&agent, &server).text().unwrap(), "hello");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn body_without_length_is_read_until_close() {
    let server = Server::serve(|_| Reply::close("HTTP/1.1 200 OK\r\n\r\nuntil the end"));
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.content_length(), None);
    assert_eq!(resp.text().unwrap(), "until the end");
    // A close-delimited connection cannot be reused.
    assert_eq!(get(&agent, &server).text().unwrap(), "until the end");
    assert_eq!(server.accepted(), 2);
}

// --- responses without a body -----------------------------------------------

#[test]
fn head_response_has_no_body_despite_content_length() {
    let server = Server::serve(|req| {
        if req.method == "HEAD" {
            Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        } else {
            Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }
    });
    let agent = common::agent();
    let resp = agent.head(server.url("/")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().unwrap(), b"");
    // The connection is at a message boundary: the next GET reuses it.
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn no_content_204_has_no_body() {
    let server = Server::serve(|req| {
        if req.target == "/empty" {
            Reply::keep("HTTP/1.1 204 No Content\r\n\r\n")
        } else {
            Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }
    });
    let agent = common::agent();
    let resp = agent.get(server.url("/empty")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(resp.bytes().unwrap(), b"");
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn not_modified_304_has_no_body_despite_content_length() {
    let server = Server::serve(|req| {
        if req.target == "/cached" {
            Reply::keep("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n")
        } else {
            Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }
    });
    let agent = common::agent();
    let resp = agent.get(server.url("/cached")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 304);
    assert_eq!(resp.header("etag"), Some("\"v1\""));
    assert_eq!(resp.bytes().unwrap(), b"");
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

// --- informational responses -----------------------------------------------

#[test]
fn continue_100_before_the_final_response_is_skipped() {
    let server = Server::fixed(
        "HTTP/1.1 100 Continue\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    );
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().unwrap(), "final");
}

#[test]
fn early_hints_103_before_the_final_response_are_skipped() {
    let server = Server::fixed(
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
         HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    );
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.header("link"), None);
    assert_eq!(resp.text().unwrap(), "final");
}

#[test]
fn too_many_informational_responses_is_a_protocol_error() {
    let mut bytes = "HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
    bytes.push_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
    let server = Server::fixed(bytes);
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

// --- ambiguous or malformed lengths ------------------------------------------

#[test]
fn transfer_encoding_with_content_length_uses_chunked_and_closes() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    );
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "hello");
    // A message with both is a smuggling attempt or a broken proxy: the
    // connection is not trusted with a second request.
    assert_eq!(get(&agent, &server).text().unwrap(), "hello");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn differing_duplicate_content_length_is_a_protocol_error() {
    let server =
        Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

#[test]
fn identical_duplicate_content_length_is_accepted() {
    let server =
        Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "hello");
}

#[test]
fn content_length_with_plus_sign_is_a_protocol_error() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello");
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

#[test]
fn negative_content_length_is_a_protocol_error() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello");
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

#[test]
fn content_length_with_trailing_garbage_is_a_protocol_error() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\nhello");
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

// --- truncated and broken bodies -------------------------------------------

#[test]
fn body_shorter_than_content_length_is_an_error() {
    let server =
        Server::serve(|_| Reply::close("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"));
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(body_err(resp), ErrorKind::Protocol);
}

#[test]
fn body_shorter_than_content_length_fails_the_stream_read() {
    let server =
        Server::serve(|_| Reply::close("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"));
    let agent = common::agent();
    let mut body = get(&agent, &server).into_body();
    let mut out = Vec::new();
    let err = body
        .read_to_end(&mut out)
        .expect_err("a truncated body must not read as EOF");
    assert_eq!(out, b"hello");
    assert_eq!(windlass::Error::from_io(err).kind(), ErrorKind::Protocol);
}

#[test]
fn chunked_body_cut_off_is_an_error() {
    // A complete chunk, then the connection closes without the last chunk.
    let server = Server::serve(|_| {
        Reply::close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    });
    let agent = common::agent();
    assert_eq!(body_err(get(&agent, &server)), ErrorKind::Protocol);
}

#[test]
fn chunked_body_cut_off_inside_a_chunk_is_an_error() {
    let server = Server::serve(|_| {
        Reply::close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhello")
    });
    let agent = common::agent();
    assert_eq!(body_err(get(&agent, &server)), ErrorKind::Protocol);
}

#[test]
fn invalid_chunk_size_is_a_protocol_error() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    let agent = common::agent();
    assert_eq!(body_err(get(&agent, &server)), ErrorKind::Protocol);
}

#[test]
fn a_bare_lf_after_a_chunk_size_is_a_protocol_error() {
    let server =
        Server::fixed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n");
    let agent = common::agent();
    assert_eq!(body_err(get(&agent, &server)), ErrorKind::Protocol);
}

#[test]
fn a_bare_lf_after_chunk_data_is_a_protocol_error() {
    let server =
        Server::fixed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n");
    let agent = common::agent();
    assert_eq!(body_err(get(&agent, &server)), ErrorKind::Protocol);
}

#[test]
fn white_space_before_a_header_colon_is_a_protocol_error() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
    );
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

#[test]
fn garbage_status_line_is_a_protocol_error() {
    let server = Server::fixed("SSH-2.0-OpenSSH_9.6\r\n\r\n");
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

#[test]
fn non_numeric_status_code_is_a_protocol_error() {
    let server = Server::fixed("HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n");
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

// --- head size -----------------------------------------------------------------

#[test]
fn response_head_under_the_default_limit_is_accepted() {
    let head = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(60 * 1024)
    );
    let server = Server::fixed(head);
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.header("x-big").map(str::len), Some(60 * 1024));
    assert_eq!(resp.text().unwrap(), "ok");
}

#[test]
fn response_head_over_the_default_64_kib_limit_is_an_error() {
    let head = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(70 * 1024)
    );
    let server = Server::fixed(head);
    let agent = common::agent();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

#[test]
fn response_head_over_a_configured_max_head_size_is_an_error() {
    let head = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(2048)
    );
    let server = Server::fixed(head);
    let agent = common::builder().max_head_size(1024).build().unwrap();
    assert_eq!(get_err(&agent, &server), ErrorKind::Protocol);
}

// --- content coding -----------------------------------------------------------

#[cfg(feature = "gzip")]
#[test]
fn gzip_body_is_decoded() {
    let original = "hello gzip ".repeat(100);
    let compressed = gzip(original.as_bytes());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        compressed.len()
    );
    let server = Server::fixed(with_body(&head, &compressed));
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), original);
}

#[cfg(feature = "gzip")]
#[test]
fn deflate_zlib_body_is_decoded() {
    let original = "hello deflate ".repeat(100);
    let compressed = zlib(original.as_bytes());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
        compressed.len()
    );
    let server = Server::fixed(with_body(&head, &compressed));
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), original);
}

#[cfg(feature = "gzip")]
#[test]
fn chunked_gzip_body_is_decoded() {
    let original = "chunked and gzipped ".repeat(50);
    let compressed = gzip(original.as_bytes());
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut bytes =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in [a, b] {
        bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let server = Server::fixed(bytes);
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), original);
}

#[cfg(feature = "gzip")]
#[test]
fn decoded_size_beyond_body_limit_is_body_too_large() {
    // 100 KB of zeros compresses to a few hundred bytes: the limit applies to
    // what the caller receives, not to what crossed the wire.
    let compressed = gzip(&vec![0u8; 100_000]);
    assert!(compressed.len() < 1000);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        compressed.len()
    );
    let server = Server::fixed(with_body(&head, &compressed));
    let agent = common::builder().body_limit(10_000).build().unwrap();
    let err = get(&agent, &server).bytes().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
}

// --- compressed streams that never produce output ------------------------------

/// The most a hostile stream is allowed to send in these tests; a client that
/// reads it all has failed to bound its input.
#[cfg(feature = "gzip")]
const ENDLESS_CAP: usize = 64 * 1024 * 1024;

/// Serves one chunked response with `Content-Encoding: coding` whose body is
/// `prefix` and then `unit` repeated until the client stops reading or
/// [`ENDLESS_CAP`] bytes are sent. Returns the server and a receiver of the
/// number of body bytes it managed to send.
#[cfg(feature = "gzip")]
fn endless(
    coding: &'static str,
    prefix: &'static [u8],
    unit: Vec<u8>,
) -> (Server, std::sync::mpsc::Receiver<usize>) {
    let (sent_tx, sent) = std::sync::mpsc::channel();
    let sent_tx = std::sync::Mutex::new(sent_tx);
    let server = Server::start(move |conn| {
        if conn.read_request().is_none() {
            return;
        }
        conn.write(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        );
        let chunk = |data: &[u8]| {
            let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
            chunk.extend_from_slice(data);
            chunk.extend_from_slice(b"\r\n");
            chunk
        };
        if !prefix.is_empty() && !conn.try_write(&chunk(prefix)) {
            return;
        }
        let block = unit.repeat(64 * 1024 / unit.len());
        let block = chunk(&block);
        let mut total = prefix.len();
        while total < ENDLESS_CAP && conn.try_write(&block) {
            total += block.len();
        }
        let _ = conn.try_write(b"0\r\n\r\n");
        let _ = sent_tx.lock().unwrap().send(total);
    });
    (server, sent)
}

/// The client gave up on the endless stream long before its end.
#[cfg(feature = "gzip")]
fn assert_stopped_early(what: &str, sent: &std::sync::mpsc::Receiver<usize>) {
    let sent = sent.recv_timeout(common::IO_TIMEOUT * 2).unwrap();
    assert!(
        sent < ENDLESS_CAP,
        "{what}: the client read all {sent} bytes"
    );
}

#[cfg(feature = "gzip")]
fn empty_gzip_member() -> Vec<u8> {
    gzip(b"")
}

/// A non-final stored deflate block of length 0.
#[cfg(feature = "gzip")]
const EMPTY_STORED_BLOCK: [u8; 5] = [0x00, 0x00, 0x00, 0xff, 0xff];

#[cfg(feature = "gzip")]
fn endless_streams() -> [(&'static str, &'static str, &'static [u8], Vec<u8>); 3] {
    [
        ("gzip members", "gzip", b"", empty_gzip_member()),
        // A zlib header, then empty blocks.
        (
            "zlib blocks",
            "deflate",
            &[0x78, 0x9c],
            EMPTY_STORED_BLOCK.to_vec(),
        ),
        (
            "raw deflate blocks",
            "deflate",
            b"",
            EMPTY_STORED_BLOCK.to_vec(),
        ),
    ]
}

#[cfg(feature = "gzip")]
#[test]
fn endless_empty_compressed_blocks_are_a_protocol_error_not_a_spin() {
    for (what, coding, prefix, unit) in endless_streams() {
        let (server, sent) = endless(coding, prefix, unit);
        // No overall timeout: the bound must come from the input itself.
        let agent = Agent::builder().build().unwrap();
        let err = agent
            .get(server.url("/"))
            .call()
            .unwrap()
            .text()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{what}: {err}");
        assert_stopped_early(what, &sent);
    }
}

#[cfg(feature = "gzip")]
#[test]
fn one_read_of_an_endless_empty_compressed_stream_returns_an_error() {
    for (what, coding, prefix, unit) in endless_streams() {
        let (server, sent) = endless(coding, prefix, unit);
        let resp = Agent::builder()
            .build()
            .unwrap()
            .get(server.url("/"))
            .call()
            .unwrap();
        let mut body = resp.into_body();
        let mut buf = [0u8; 1024];
        let err = body.read(&mut buf).unwrap_err();
        let err = windlass::Error::from_io(err);
        assert_eq!(err.kind(), ErrorKind::Protocol, "{what}: {err}");
        // And it stays failed.
        assert!(body.read(&mut buf).is_err(), "{what}");
        drop(body);
        assert_stopped_early(what, &sent);
    }
}

#[cfg(feature = "gzip")]
#[test]
fn the_body_limit_bounds_the_compressed_stream_too() {
    for (what, coding, prefix, unit) in endless_streams() {
        let (server, _sent) = endless(coding, prefix, unit);
        let agent = common::builder().body_limit(100_000).build().unwrap();
        let err = get(&agent, &server).text().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BodyTooLarge, "{what}: {err}");
    }
}

// --- body limit ---------------------------------------------------------------

#[test]
fn text_beyond_body_limit_is_body_too_large() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    let agent = common::builder().body_limit(10).build().unwrap();
    let err = get(&agent, &server).text().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
}

#[test]
fn chunked_text_beyond_body_limit_is_body_too_large() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
    );
    let agent = common::builder().body_limit(10).build().unwrap();
    let err = get(&agent, &server).text().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
}

#[test]
fn text_exactly_at_body_limit_is_accepted() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    let agent = common::builder().body_limit(11).build().unwrap();
    assert_eq!(get(&agent, &server).text().unwrap(), "hello world");
}

#[test]
fn text_with_limit_overrides_the_agent_body_limit() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    let agent = common::agent();
    let err = get(&agent, &server).text_with_limit(5).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
}

// --- connection persistence -------------------------------------------------

#[test]
fn http10_response_without_keep_alive_is_not_reused() {
    // The server leaves the connection open: reusing it would be the client's mistake.
    let server = Server::fixed("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.version(), Version::HTTP_10);
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn connection_close_response_is_not_reused() {
    // The server leaves the connection open: reusing it would be the client's mistake.
    let server =
        Server::fixed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn keep_alive_response_is_reused() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn trailers_over_64_kib_are_a_protocol_error() {
    let mut response =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
    for i in 0..800 {
        response.extend_from_slice(format!("x-t{i:05}: {}\r\n", "v".repeat(80)).as_bytes());
    }
    response.extend_from_slice(b"\r\n");
    let server = Server::fixed(response);
    let err = common::agent()
        .get(server.url("/"))
        .call()
        .unwrap()
        .text()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
}

// --- tolerance as curl and Go have it ---------------------------------------

#[test]
fn http10_response_with_transfer_encoding_is_read_until_close_and_not_reused() {
    // RFC 9112 §6.1: the chunked coding is not HTTP/1.0; the framing is
    // faulty, so the body is what comes before the close, taken as it is.
    let server = Server::serve(|_| {
        Reply::close("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    });
    let agent = common::agent();
    let resp = get(&agent, &server);
    assert_eq!(resp.version(), Version::HTTP_10);
    assert_eq!(resp.text().unwrap(), "5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(
        get(&agent, &server).text().unwrap(),
        "5\r\nhello\r\n0\r\n\r\n"
    );
    assert_eq!(server.accepted(), 2);
    assert_eq!(agent.pool_stats().idle(), 0);
}

#[test]
fn several_spaces_between_version_and_status_are_accepted() {
    let server = Server::fixed("HTTP/1.1   200 OK\r\nContent-Length: 2\r\n\r\nok");
    let resp = get(&common::agent(), &server);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "ok");
}

#[test]
fn conflicting_content_length_on_a_204_is_a_protocol_error() {
    let server =
        Server::fixed("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(get_err(&common::agent(), &server), ErrorKind::Protocol);
}

#[test]
fn conflicting_content_length_on_a_304_is_a_protocol_error() {
    let server = Server::fixed("HTTP/1.1 304 Not Modified\r\nContent-Length: 3, 4\r\n\r\n");
    assert_eq!(get_err(&common::agent(), &server), ErrorKind::Protocol);
}

#[test]
fn a_nul_in_a_trailer_is_a_protocol_error() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: a\0b\r\n\r\n",
    );
    let resp = get(&common::agent(), &server);
    assert_eq!(body_err(resp), ErrorKind::Protocol);
}

#[test]
fn connection_close_on_a_100_continue_means_the_connection_is_not_pooled() {
    let server = Server::fixed(
        "HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(agent.pool_stats().idle(), 0);
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn connection_close_on_the_final_response_means_the_connection_is_not_pooled() {
    let server = Server::fixed(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    );
    let agent = common::agent();
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(agent.pool_stats().idle(), 0);
    assert_eq!(get(&agent, &server).text().unwrap(), "ok");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn headers_as_sent_keep_the_servers_spelling_and_order() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nX-Request-ID: 1\r\ncontent-length: 2\r\nSET-cookie: a\r\nX-request-id: 2\r\n\r\nok",
    );
    let resp = get(&common::agent(), &server);
    let sent: Vec<(&str, &str)> = resp
        .headers_as_sent()
        .into_iter()
        .map(|(n, v)| (n, v.to_str().unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            ("X-Request-ID", "1"),
            ("content-length", "2"),
            ("SET-cookie", "a"),
            ("X-request-id", "2")
        ]
    );
    assert_eq!(resp.headers()["x-request-id"], "1");
}

#[test]
fn an_http10_request_says_http10_and_its_connection_is_not_reused() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let agent = common::agent();
    let resp = agent.get(server.url("/a")).http10().call().unwrap();
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(server.request().request_line(), "GET /a HTTP/1.0");
    assert_eq!(agent.pool_stats().idle(), 0);
    let resp = agent.get(server.url("/b")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(server.request().request_line(), "GET /b HTTP/1.1");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn an_http10_request_with_a_body_of_unknown_length_fails_before_sending_it() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let body: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(b"data".to_vec()));
    let err = common::agent()
        .post(server.url("/"))
        .http10()
        .send_reader(body)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn an_explicit_request_target_is_sent_as_given() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let agent = common::agent();
    let resp = agent
        .get(server.url("/ignored"))
        .request_target("/a/../b/./c?x=%20")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(
        server.request().request_line(),
        "GET /a/../b/./c?x=%20 HTTP/1.1"
    );
    let resp = agent
        .request("OPTIONS", server.url("/"))
        .request_target("*")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(server.request().request_line(), "OPTIONS * HTTP/1.1");
}

#[test]
fn a_request_target_with_a_space_or_a_line_break_is_refused_before_sending() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    for bad in ["/a b", "/a\r\nX-Injected: 1", ""] {
        let err = common::agent()
            .get(server.url("/"))
            .request_target(bad)
            .call()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{bad:?}");
    }
    assert_eq!(server.accepted(), 0);
}

#[test]
fn default_headers_can_be_left_out() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let resp = common::agent()
        .get(server.url("/"))
        .without_default_header(windlass::http::header::ACCEPT)
        .without_default_header(windlass::http::header::USER_AGENT)
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "ok");
    let req = server.request();
    assert_eq!(req.header("accept"), None);
    assert_eq!(req.header("user-agent"), None);
    assert_eq!(
        req.header("accept-encoding"),
        Some(common::accept_encoding().as_str())
    );
}

#[test]
fn the_reason_phrase_is_kept_as_sent() {
    let server = Server::fixed("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n\r\nok");
    let resp = get(&common::agent(), &server);
    assert_eq!(resp.reason(), "Fine Thanks");
    assert_eq!(resp.status(), 200);
}
