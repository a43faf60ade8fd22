//! Content and transfer codings: every coding the build decodes, stacked
//! codings, transfer codings, what the response says after decoding, lazy
//! decoder choice, and decompression bombs of 1 GiB in every coding.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Conn, Server};
use windlass::ErrorKind;

/// A response with `extra` header lines (each ending in CRLF) and `body`
/// framed by Content-Length.
fn response(extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(feature = "gzip")]
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[cfg(feature = "gzip")]
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[cfg(feature = "gzip")]
fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[cfg(feature = "brotli")]
fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

#[cfg(feature = "zstd")]
fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn text() -> String {
    "windlass decodes what it asks for. ".repeat(200)
}

/// Serves `bytes` once and returns the response the agent made of it.
fn fetch(bytes: Vec<u8>) -> (windlass::Response, Server) {
    let server = Server::fixed(bytes);
    let resp = common::agent().get(server.url("/")).call().unwrap();
    (resp, server)
}

// --- each coding --------------------------------------------------------------

/// A decoded response no longer claims the coding nor the compressed length.
fn assert_decoded(coding: &str, compressed: Vec<u8>) {
    let (resp, _server) = fetch(response(
        &format!("Content-Encoding: {coding}\r\n"),
        &compressed,
    ));
    assert_eq!(resp.header("content-encoding"), None, "{coding}");
    assert_eq!(resp.content_length(), None, "{coding}");
    assert_eq!(resp.text().unwrap(), text(), "{coding}");
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_body_is_decoded_and_loses_its_coding_and_compressed_length() {
    assert_decoded("gzip", gzip(text().as_bytes()));
    assert_decoded("x-gzip", gzip(text().as_bytes()));
}

#[cfg(feature = "gzip")]
#[test]
fn deflate_body_is_decoded_zlib_wrapped_or_raw() {
    assert_decoded("deflate", zlib(text().as_bytes()));
    assert_decoded("deflate", raw_deflate(text().as_bytes()));
}

#[cfg(feature = "brotli")]
#[test]
fn brotli_body_is_decoded() {
    assert_decoded("br", brotli(text().as_bytes()));
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_body_is_decoded() {
    assert_decoded("zstd", zstd(text().as_bytes()));
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_body_of_several_frames_and_a_skippable_one_is_decoded_whole() {
    let t = text();
    let (a, b) = t.as_bytes().split_at(1000);
    let mut body = zstd(a);
    // A skippable frame (RFC 8878 §3.1.2): magic 0x184D2A50, length 3.
    body.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    body.extend_from_slice(&zstd(b));
    assert_decoded("zstd", body);
}

#[cfg(feature = "gzip")]
#[test]
fn stacked_content_codings_are_undone_in_reverse_order() {
    // `deflate, gzip`: deflate was applied first, so gzip comes off first.
    assert_decoded("deflate, gzip", gzip(&zlib(text().as_bytes())));
}

#[cfg(all(feature = "gzip", feature = "brotli", feature = "zstd"))]
#[test]
fn every_coding_stacked_is_undone() {
    let body = zstd(&brotli(&gzip(text().as_bytes())));
    assert_decoded("gzip, br, zstd", body);
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_transfer_coding_before_chunked_is_decoded() {
    let compressed = gzip(text().as_bytes());
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
    bytes.extend(chunk(a));
    bytes.extend(chunk(b));
    bytes.extend_from_slice(b"0\r\n\r\n");
    let (resp, _server) = fetch(bytes);
    assert_eq!(resp.text().unwrap(), text());
}

#[cfg(feature = "gzip")]
#[test]
fn transfer_coding_is_decoded_even_when_the_caller_set_accept_encoding() {
    let compressed = gzip(text().as_bytes());
    let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
    bytes.extend(chunk(&compressed));
    bytes.extend_from_slice(b"0\r\n\r\n");
    let server = Server::fixed(bytes);
    let resp = common::agent()
        .get(server.url("/"))
        .header("accept-encoding", "identity")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), text());
}

#[test]
fn a_coding_the_build_cannot_decode_is_left_with_its_header() {
    let body = b"\x1f\x9d not really compressed";
    let (resp, _server) = fetch(response("Content-Encoding: compress\r\n", body));
    assert_eq!(resp.header("content-encoding"), Some("compress"));
    assert_eq!(resp.content_length(), Some(body.len() as u64));
    assert_eq!(resp.bytes().unwrap(), body);
}

#[cfg(feature = "gzip")]
#[test]
fn a_stack_with_one_unknown_coding_is_left_whole() {
    let body = gzip(b"inner is not gzip");
    let (resp, _server) = fetch(response("Content-Encoding: compress, gzip\r\n", &body));
    assert_eq!(resp.header("content-encoding"), Some("compress, gzip"));
    assert_eq!(resp.bytes().unwrap(), body);
}

#[cfg(not(feature = "brotli"))]
#[test]
fn brotli_without_its_feature_is_left_with_its_header() {
    let (resp, _server) = fetch(response("Content-Encoding: br\r\n", b"\x0b\x02\x80hi\x03"));
    assert_eq!(resp.header("content-encoding"), Some("br"));
    assert_eq!(resp.bytes().unwrap(), b"\x0b\x02\x80hi\x03");
}

#[cfg(feature = "gzip")]
#[test]
fn a_caller_set_accept_encoding_gets_the_coded_body_as_sent() {
    let compressed = gzip(text().as_bytes());
    let server = Server::fixed(response("Content-Encoding: gzip\r\n", &compressed));
    let resp = common::agent()
        .get(server.url("/"))
        .header("accept-encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(resp.content_length(), Some(compressed.len() as u64));
    assert_eq!(resp.bytes().unwrap(), compressed);
}

#[test]
fn accept_encoding_lists_exactly_what_the_build_decodes() {
    let server = Server::fixed(common::ok("x"));
    common::agent().get(server.url("/")).call().unwrap();
    let mut expected = Vec::new();
    if cfg!(feature = "gzip") {
        expected.extend(["gzip", "deflate"]);
    }
    if cfg!(feature = "brotli") {
        expected.push("br");
    }
    if cfg!(feature = "zstd") {
        expected.push("zstd");
    }
    let req = server.request();
    if expected.is_empty() {
        assert_eq!(req.header("accept-encoding"), None);
    } else {
        assert_eq!(req.header("accept-encoding"), Some(&*expected.join(", ")));
    }
}

#[cfg(feature = "gzip")]
#[test]
fn truncated_compressed_body_is_an_error() {
    let compressed = gzip(text().as_bytes());
    let cut = &compressed[..compressed.len() - 10];
    let (resp, _server) = fetch(response("Content-Encoding: gzip\r\n", cut));
    assert!(resp.text().is_err());
}

// --- lazy decoder ----------------------------------------------------------------

/// `call()` returns on the head; the decoder looks at the body on the first
/// read (a deflate body must be sniffed for its zlib header).
#[cfg(feature = "gzip")]
#[test]
fn call_returns_before_a_slow_deflate_body_arrives() {
    let (release_tx, release) = mpsc::channel::<()>();
    let release = std::sync::Mutex::new(release);
    let compressed = zlib(text().as_bytes());
    let server = Server::start(move |conn| {
        if conn.read_request().is_none() {
            return;
        }
        conn.write(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
                compressed.len()
            )
            .as_bytes(),
        );
        // The body waits until the test has its response.
        let _ = release.lock().unwrap().recv_timeout(common::IO_TIMEOUT);
        conn.write(&compressed);
    });
    let started = Instant::now();
    let resp = common::agent().get(server.url("/")).call().unwrap();
    let waited = started.elapsed();
    release_tx.send(()).unwrap();
    assert!(
        waited < Duration::from_secs(2),
        "call() waited {waited:?} for body bytes"
    );
    assert_eq!(resp.text().unwrap(), text());
}

// --- decompression bombs -----------------------------------------------------------

/// Zeros the bomb servers compress: 1 GiB.
const BOMB: u64 = 1 << 30;
/// The limit the client sets in these tests.
const LIMIT: u64 = 8 << 20;

/// Writes each buffer as one chunk; fails once the client is gone.
struct Chunks<'a>(&'a mut Conn);

impl Write for Chunks<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.0.try_write(&chunk(buf)) {
            Ok(buf.len())
        } else {
            Err(std::io::Error::other("client gone"))
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feeds 1 GiB of zeros to `encoder`, 64 KiB at a time, until it fails (the
/// client hung up) or all is written. The compressed stream is made as the
/// client reads it, so a client that stops early costs little.
fn feed_zeros<W: Write>(mut encoder: W) -> std::io::Result<W> {
    let zeros = vec![0u8; 64 * 1024];
    for _ in 0..BOMB / zeros.len() as u64 {
        encoder.write_all(&zeros)?;
    }
    Ok(encoder)
}

/// A zstd frame of 1 GiB of zeros written by hand: 8192 RLE blocks of
/// 128 KiB, 4 bytes each (RFC 8878 §3.1.1.2).
#[cfg(feature = "zstd")]
fn zstd_zeros(out: &mut impl Write) -> std::io::Result<()> {
    // Magic, a frame header without size or checksum, a 128 KiB window.
    out.write_all(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38])?;
    let blocks = BOMB / (128 * 1024);
    let mut buf = Vec::new();
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((128 * 1024) << 3);
        buf.extend_from_slice(&header.to_le_bytes()[..3]);
        buf.push(0);
        if buf.len() >= 16 * 1024 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// A server streaming 1 GiB of zeros in `coding` (chunked).
fn bomb_server(coding: &'static str) -> Server {
    Server::start(move |conn| {
        if conn.read_request().is_none() {
            return;
        }
        let te = if coding == "gzip-transfer" {
            "Transfer-Encoding: gzip, chunked\r\n"
        } else {
            "Transfer-Encoding: chunked\r\n"
        };
        let ce = match coding {
            "gzip-transfer" => String::new(),
            c => format!("Content-Encoding: {c}\r\n"),
        };
        conn.write(format!("HTTP/1.1 200 OK\r\n{ce}{te}\r\n").as_bytes());
        let out = Chunks(conn);
        let fast = || flate2::Compression::fast();
        let done = match coding {
            "gzip" | "gzip-transfer" => feed_zeros(flate2::write::GzEncoder::new(out, fast()))
                .and_then(|e| e.finish().map(drop)),
            "deflate" => feed_zeros(flate2::write::ZlibEncoder::new(out, fast()))
                .and_then(|e| e.finish().map(drop)),
            #[cfg(feature = "brotli")]
            "br" => feed_zeros(brotli::CompressorWriter::new(out, 64 * 1024, 1, 22)).map(drop),
            #[cfg(feature = "zstd")]
            "zstd" => {
                let mut out = out;
                zstd_zeros(&mut out)
            }
            _ => Ok(()),
        };
        if done.is_ok() {
            conn.write(b"0\r\n\r\n");
        }
    })
}

/// Reads the body as a stream: the bytes handed out and how it ended.
fn stream(body: windlass::Body) -> (u64, Result<(), windlass::Error>) {
    let mut body = body;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    // At most a read per 1 KiB of 1 GiB: a bounded loop.
    for _ in 0..BOMB / 1024 {
        match body.read(&mut buf) {
            Ok(0) => return (total, Ok(())),
            Ok(n) => total += n as u64,
            Err(e) => return (total, Err(windlass::Error::from_io(e))),
        }
    }
    (total, Ok(()))
}

fn assert_bomb_stopped(coding: &'static str) {
    // Buffered: the body limit.
    let server = bomb_server(coding);
    let agent = common::builder().body_limit(LIMIT).build().unwrap();
    let started = Instant::now();
    let err = agent
        .get(server.url("/"))
        .call()
        .unwrap()
        .bytes()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge, "{coding}: {err}");
    // Streamed: the decoded limit.
    let agent = common::builder().decoded_limit(LIMIT).build().unwrap();
    let (total, end) = stream(agent.get(server.url("/")).call().unwrap().into_body());
    let err = end.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge, "{coding}: {err}");
    assert!(total <= LIMIT, "{coding}: handed out {total} bytes");
    // Streamed with a limit set on the body.
    let agent = common::agent();
    let body = agent.get(server.url("/")).call().unwrap().into_body();
    let (total, end) = stream(body.with_limit(LIMIT / 2));
    assert_eq!(end.unwrap_err().kind(), ErrorKind::BodyTooLarge, "{coding}");
    assert!(total <= LIMIT / 2, "{coding}: handed out {total} bytes");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{coding}: took {:?}",
        started.elapsed()
    );
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_bomb_of_1_gib_fails_with_body_too_large() {
    assert_bomb_stopped("gzip");
}

#[cfg(feature = "gzip")]
#[test]
fn deflate_bomb_of_1_gib_fails_with_body_too_large() {
    assert_bomb_stopped("deflate");
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_transfer_coded_bomb_of_1_gib_fails_with_body_too_large() {
    assert_bomb_stopped("gzip-transfer");
}

#[cfg(feature = "brotli")]
#[test]
fn brotli_bomb_of_1_gib_fails_with_body_too_large() {
    assert_bomb_stopped("br");
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_bomb_of_1_gib_fails_with_body_too_large() {
    assert_bomb_stopped("zstd");
}

// zstd: its bomb costs the server nothing to make (4 bytes per 128 KiB).
#[cfg(feature = "zstd")]
#[test]
fn a_streamed_bomb_is_bounded_by_the_default_decoded_limit() {
    let server = bomb_server("zstd");
    let agent = common::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (total, end) = stream(agent.get(server.url("/")).call().unwrap().into_body());
    assert_eq!(end.unwrap_err().kind(), ErrorKind::BodyTooLarge);
    assert!(total <= 256 << 20, "handed out {total} bytes");
}

// --- input without output ----------------------------------------------------------

/// Most bytes a hostile stream sends here; a client that reads them all
/// failed to bound its input.
const ENDLESS_CAP: usize = 64 << 20;

/// Serves `prefix`, then `unit` repeated, chunked, until the client stops
/// reading; reports how much it sent.
fn endless(
    coding: &'static str,
    prefix: &'static [u8],
    unit: u8,
) -> (Server, mpsc::Receiver<usize>) {
    let (sent_tx, sent) = mpsc::channel();
    let sent_tx = std::sync::Mutex::new(sent_tx);
    let server = Server::start(move |conn| {
        if conn.read_request().is_none() {
            return;
        }
        conn.write(
            format!("HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        );
        let mut total = prefix.len();
        if conn.try_write(&chunk(prefix)) {
            let block = chunk(&[unit; 64 * 1024]);
            while total < ENDLESS_CAP && conn.try_write(&block) {
                total += 64 * 1024;
            }
        }
        let _ = sent_tx.lock().unwrap().send(total);
    });
    (server, sent)
}

fn assert_stops_without_output(coding: &'static str, prefix: &'static [u8], unit: u8) {
    let (server, sent) = endless(coding, prefix, unit);
    let err = common::agent()
        .get(server.url("/"))
        .call()
        .unwrap()
        .bytes()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{coding}: {err}");
    let sent = sent.recv_timeout(common::IO_TIMEOUT).unwrap();
    assert!(
        sent < ENDLESS_CAP,
        "{coding}: the client read all {sent} bytes"
    );
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_stream_of_empty_blocks_is_stopped() {
    // A frame header, then empty raw blocks (3 zero bytes each) forever.
    assert_stops_without_output("zstd", &[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38], 0);
}

#[cfg(feature = "brotli")]
#[test]
fn brotli_stream_of_empty_metadata_blocks_is_stopped() {
    // A 64 KiB window and an empty metadata block, then more of them.
    assert_stops_without_output("br", &[0x0c], 0x06);
}

#[test]
fn a_body_can_move_to_and_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<windlass::Body>();
    send_sync::<windlass::Response>();
}

#[cfg(feature = "gzip")]
#[test]
fn more_than_five_stacked_codings_are_left_as_sent() {
    // A lying head can list thousands; none is undone past five.
    let body = b"not decoded".to_vec();
    let (resp, _server) = fetch(response(
        "Content-Encoding: gzip, gzip, gzip, gzip, gzip, gzip\r\n",
        &body,
    ));
    assert_eq!(
        resp.header("content-encoding"),
        Some("gzip, gzip, gzip, gzip, gzip, gzip")
    );
    assert_eq!(resp.bytes().unwrap(), body);
}
