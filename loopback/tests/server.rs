//! The loopback server, driven with plain std sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use windlass_loopback::{Server, ServerConfig};

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn response(body: &[u8], close: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn head_of(full: &[u8]) -> Vec<u8> {
    let end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    full[..end].to_vec()
}

fn read_exact_vec(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Everything the server sends until it closes the connection.
fn read_all(s: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    got
}

/// The server has closed (or reset) the connection.
fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn keep_alive_answers_many_requests_on_one_connection() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let expected = response(server.body(), false);
    let mut s = connect(&server);
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_exact_vec(&mut s, expected.len()), expected);
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 3);
}

#[test]
fn pipelined_requests_are_answered_in_order_and_head_gets_no_body() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let full = response(server.body(), false);
    let mut s = connect(&server);
    s.write_all(b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\n\r\nGET /3 HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut expected = full.clone();
    expected.extend_from_slice(&head_of(&full));
    expected.extend_from_slice(&response(server.body(), true));
    let got = read_all(&mut s);
    assert_eq!(got, expected);
    assert_eq!(server.requests(), 3);
}

#[test]
fn request_bodies_are_read_past() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let expected = response(server.body(), false);
    let mut s = connect(&server);
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world")
        .unwrap();
    assert_eq!(read_exact_vec(&mut s, expected.len()), expected);
    s.write_all(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_exact_vec(&mut s, expected.len()), expected);
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(read_exact_vec(&mut s, cont.len()), cont);
    s.write_all(b"abc").unwrap();
    assert_eq!(read_exact_vec(&mut s, expected.len()), expected);
    assert_eq!(server.requests(), 3);
}

#[test]
fn malformed_request_gets_400_and_close() {
    let server = Server::start(ServerConfig::default()).unwrap();
    let mut s = connect(&server);
    s.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let got = read_all(&mut s);
    assert!(got.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn max_requests_per_conn_closes_after_the_limit() {
    let cfg = ServerConfig {
        max_requests_per_conn: Some(2),
        ..ServerConfig::default()
    };
    let server = Server::start(cfg).unwrap();
    let mut s = connect(&server);
    s.write_all(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut expected = response(server.body(), false);
    expected.extend_from_slice(&response(server.body(), true));
    let got = read_all(&mut s);
    assert_eq!(got, expected);
}

#[test]
fn large_body_arrives_whole() {
    let cfg = ServerConfig {
        body_size: 3 * 1024 * 1024 + 7,
        ..ServerConfig::default()
    };
    let server = Server::start(cfg).unwrap();
    let mut s = connect(&server);
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let got = read_all(&mut s);
    assert_eq!(got, response(server.body(), true));
}

#[test]
fn drop_ends_open_connections_and_joins_their_threads() {
    let server = Server::start(ServerConfig::default()).unwrap();
    // Blocked in the middle of a request body.
    let mut reading = connect(&server);
    reading
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf")
        .unwrap();
    // Accept is in order, so an answer here proves both are being served.
    let mut idle = connect(&server);
    idle.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let expected = response(server.body(), false);
    assert_eq!(read_exact_vec(&mut idle, expected.len()), expected);
    let started = std::time::Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(5));
    for s in [&mut reading, &mut idle] {
        assert_closed(s);
    }
}

#[test]
fn drop_does_not_wait_for_the_response_delay() {
    let cfg = ServerConfig {
        delay: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = Server::start(cfg).unwrap();
    let mut s = connect(&server);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let started = std::time::Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_closed(&mut s);
}

#[test]
fn tls_serves_a_client_that_trusts_ca_pem() {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let cfg = ServerConfig {
        tls: true,
        ..ServerConfig::default()
    };
    let server = Server::start(cfg).unwrap();
    assert!(server.url().starts_with("https://localhost:"));
    let ca = CertificateDer::from_pem_slice(server.ca_pem().unwrap().as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    for name in ["localhost", "127.0.0.1"] {
        let conn =
            rustls::ClientConnection::new(config.clone(), ServerName::try_from(name).unwrap())
                .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, connect(&server));
        tls.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let got = read_all(&mut tls);
        assert_eq!(got, response(server.body(), true));
    }
}
