//! The connection a response body holds: returned at EOF, drained when a
//! small remainder is dropped, closed when a large one is.

mod common;

use std::io::Read;
use std::sync::mpsc;
use std::sync::Mutex;

use common::{PeerEnd, Reply, Server, IO_TIMEOUT};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn hundred_sequential_gets_use_one_connection() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    for _ in 0..100 {
        let resp = agent.get(server.url("/")).call().unwrap();
        assert_eq!(resp.text().unwrap(), "ok");
    }
    assert_eq!(server.accepted(), 1);
    let stats = agent.pool_stats();
    let host = stats
        .host(&server.pool_key())
        .expect("pool entry for the server");
    assert_eq!(host.opened, 1);
    assert_eq!(host.reused, 99);
}

#[test]
fn body_read_to_eof_returns_the_connection_to_the_pool() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    let agent = common::agent();
    let mut body = agent.get(server.url("/")).call().unwrap().into_body();
    let mut out = Vec::new();
    body.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"hello world");
    // EOF alone, before the body is dropped, hands the connection back.
    let stats = agent.pool_stats();
    let host = stats
        .host(&server.pool_key())
        .expect("pool entry for the server");
    assert_eq!((host.idle, host.active), (1, 0));
    drop(body);

    let resp = agent.get(server.url("/")).call().unwrap();
    assert!(resp.timings().reused);
    assert_eq!(resp.text().unwrap(), "hello world");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn chunked_body_read_to_eof_returns_the_connection_to_the_pool() {
    let server = Server::fixed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let agent = common::agent();
    let mut body = agent.get(server.url("/")).call().unwrap().into_body();
    let mut out = Vec::new();
    body.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"hello");
    assert_eq!(agent.pool_stats().idle(), 1);
    drop(body);
    assert_eq!(
        agent.get(server.url("/")).call().unwrap().text().unwrap(),
        "hello"
    );
    assert_eq!(server.accepted(), 1);
}

#[test]
fn body_dropped_early_with_a_small_remainder_is_drained_and_reused() {
    let body = "x".repeat(1000);
    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{body}");
    let server = Server::fixed(response);
    let agent = common::agent();

    let mut reader = agent.get(server.url("/")).call().unwrap().into_body();
    let mut first = [0u8; 10];
    reader.read_exact(&mut first).unwrap();
    drop(reader);

    // The 990 unread bytes were drained, so the next response parses.
    let resp = agent.get(server.url("/")).call().unwrap();
    assert!(resp.timings().reused);
    assert_eq!(resp.text().unwrap(), body);
    assert_eq!(server.accepted(), 1);
}

#[test]
fn response_dropped_unread_with_a_small_body_is_drained_and_reused() {
    let server = Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    let agent = common::agent();
    drop(agent.get(server.url("/")).call().unwrap());
    assert_eq!(
        agent.get(server.url("/")).call().unwrap().text().unwrap(),
        "hello world"
    );
    assert_eq!(server.accepted(), 1);
}

#[test]
fn body_dropped_early_with_a_large_remainder_closes_the_connection() {
    let (closed_tx, closed_rx) = mpsc::channel();
    let closed_tx = Mutex::new(closed_tx);
    let server = Server::start(move |conn| {
        if conn.index == 0 {
            // Announce 10 MiB, send 16 KiB, then wait to see what the client does.
            if conn.read_request().is_none() {
                return;
            }
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n");
            conn.write(&[b'x'; 16 * 1024]);
            let end = conn.wait_for_close();
            let _ = closed_tx.lock().unwrap().send(end);
        } else {
            conn.serve(&|_| Reply::keep(OK));
        }
    });
    let agent = common::agent();

    let mut reader = agent.get(server.url("/big")).call().unwrap().into_body();
    let mut first = [0u8; 100];
    reader.read_exact(&mut first).unwrap();
    drop(reader);

    // The client closed the connection rather than reading ~10 MiB.
    let end = closed_rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(end, PeerEnd::Closed);
    assert_eq!(agent.pool_stats().idle(), 0);

    // The next request opens a new connection.
    let resp = agent.get(server.url("/")).call().unwrap();
    assert!(!resp.timings().reused);
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn body_dropped_before_the_server_finishes_sending_closes_the_connection() {
    // Content-Length is small, but the server stops half-way and stays
    // silent: dropping the body must not wait for bytes that never come.
    let (closed_tx, closed_rx) = mpsc::channel();
    let closed_tx = Mutex::new(closed_tx);
    let server = Server::start(move |conn| {
        if conn.index == 0 {
            if conn.read_request().is_none() {
                return;
            }
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello");
            let end = conn.wait_for_close();
            let _ = closed_tx.lock().unwrap().send(end);
        } else {
            conn.serve(&|_| Reply::keep(OK));
        }
    });
    let agent = common::agent();

    let mut reader = agent.get(server.url("/")).call().unwrap().into_body();
    let mut first = [0u8; 5];
    reader.read_exact(&mut first).unwrap();
    drop(reader);

    assert_eq!(closed_rx.recv_timeout(IO_TIMEOUT).unwrap(), PeerEnd::Closed);
    assert_eq!(
        agent.get(server.url("/")).call().unwrap().text().unwrap(),
        "ok"
    );
    assert_eq!(server.accepted(), 2);
}

#[test]
fn failed_body_does_not_return_the_connection() {
    // The first response is truncated by the server closing; the pool must
    // not keep the dead connection.
    let server = Server::serve(|req| {
        if req.target == "/short" {
            Reply::close("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        } else {
            Reply::keep(OK)
        }
    });
    let agent = common::agent();
    assert!(agent
        .get(server.url("/short"))
        .call()
        .unwrap()
        .text()
        .is_err());
    assert_eq!(agent.pool_stats().idle(), 0);
    assert_eq!(
        agent.get(server.url("/")).call().unwrap().text().unwrap(),
        "ok"
    );
    assert_eq!(server.accepted(), 2);
}

#[test]
fn a_body_sent_after_a_head_response_never_reaches_the_next_request() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let server = Server::start(move |conn| {
        if conn.index == 0 {
            if conn.read_request().is_some() {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
            }
            // The bug being defended against: a body for HEAD, sent after the
            // client has finished with the response.
            if go_rx.lock().unwrap().recv_timeout(IO_TIMEOUT).is_ok() {
                conn.write(b"hello");
                let _ = sent_tx.send(());
            }
            let _ = conn.wait_for_request_or_close();
        } else {
            conn.serve(&|_| Reply::keep(common::ok("fresh")));
        }
    });
    let agent = common::agent();
    let head = agent.head(server.url("/")).call().unwrap();
    assert_eq!(head.status(), 200);
    drop(head);
    go_tx.send(()).unwrap();
    sent_rx.recv_timeout(IO_TIMEOUT).unwrap();
    // The stray bytes wait on the pooled connection; the next request must
    // not read them as its response.
    let text = agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(text, "fresh");
    assert_eq!(server.accepted(), 2);
}
