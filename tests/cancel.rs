//! `CancelToken`: `cancel()` from another thread makes a call return
//! `ErrorKind::Cancelled` promptly, whatever phase it is blocked in; one
//! token covers many requests; a cancelled connection never goes back to the
//! pool; a token that is never cancelled costs nothing.
//!
//! Each test cancels only once the call is known to be blocked in its phase:
//! the server, the resolver, a request hook or the calling thread says so
//! through a channel; for a pool wait, which nothing reports, the pool's own
//! counts show the request queued.

mod common;
mod stall;

use std::io::{self, Read};
use std::time::Duration;

use windlass::{Agent, CancelToken, Error, ErrorKind};

use common::{ok, pool_key, Server};
use stall::{
    assert_cancelled, assert_prompt, blocking_resolver, body_stalls_after, cancel_and_finish,
    connect_started, full_backlog_or_skip, ignores_client_hello, never_answers, spawn,
    stops_reading, timed, wait_until, Stalled,
};

/// Large enough that the kernel's socket buffers (a few MiB on loopback)
/// fill long before the body is written.
const LARGE_BODY: usize = 64 * 1024 * 1024;

/// Start a GET with `token` on its own thread.
fn get(agent: &Agent, url: &str, token: &CancelToken) -> stall::Pending<Result<(), Error>> {
    let (agent, url, token) = (agent.clone(), url.to_string(), token.clone());
    spawn(move || agent.get(&url).cancel_token(&token).call().map(drop))
}

/// Read until the body fails, and return the error as `Read` reported it.
/// Panics if the body ends instead, or keeps succeeding for too long.
fn first_error(body: &mut windlass::Body) -> io::Error {
    let mut buf = [0u8; 64];
    for _ in 0..100_000 {
        match body.read(&mut buf) {
            Ok(0) => panic!("the body ended instead of failing"),
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    panic!("the body kept arriving");
}

/// The host's pool holds nothing: no idle connection, none checked out.
fn assert_pool_empty(agent: &Agent, port: u16) {
    let stats = agent.pool_stats();
    let host = stats.host(&pool_key(port)).expect("host stats");
    assert_eq!(
        (host.idle, host.active, host.connecting, host.waiting),
        (0, 0, 0, 0),
        "{stats}"
    );
}

/// The cancelled connection was closed as cancelled and is not idle.
fn assert_closed_as_cancelled(agent: &Agent, port: u16, count: u64) {
    assert_pool_empty(agent, port);
    let stats = agent.pool_stats();
    let host = stats.host(&pool_key(port)).expect("host stats");
    assert_eq!(host.closed.cancelled, count, "{host:?}");
}

#[test]
fn cancel_stops_a_blocked_dns_lookup() {
    let (resolver, gate) = blocking_resolver();
    let agent = common::builder().resolver(resolver).build().unwrap();
    let token = CancelToken::new();
    let call = get(&agent, "http://stalled.test/", &token);
    assert_eq!(gate.expect_lookup(), "stalled.test");
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
}

#[test]
fn cancel_stops_a_stalled_connect() {
    let Some(full) = full_backlog_or_skip("cancel_stops_a_stalled_connect") else {
        return;
    };
    let addr = full.addr();
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let (hook, started) = connect_started();
    let call = {
        let (agent, token) = (agent.clone(), token.clone());
        spawn(move || {
            agent
                .get(format!("http://{addr}/"))
                .cancel_token(&token)
                .hook(hook)
                .call()
                .map(drop)
        })
    };
    // A server sees nothing of a connect it cannot accept; the request
    // itself reports that the connect has started.
    assert_eq!(
        started.recv_timeout(stall::PATIENCE),
        Ok(addr),
        "the connect never started"
    );
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
    assert_pool_empty(&agent, addr.port());
}

#[cfg(feature = "tls")]
#[test]
fn cancel_stops_a_stalled_tls_handshake() {
    let server = ignores_client_hello();
    let port = server.port();
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let call = get(&agent, &format!("https://127.0.0.1:{port}/"), &token);
    server.expect_note("client hello");
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
    let stats = agent.pool_stats();
    let host = stats
        .host(&format!("https://127.0.0.1:{port}"))
        .expect("host stats");
    assert_eq!(
        (host.idle, host.active, host.connecting),
        (0, 0, 0),
        "{stats}"
    );
}

#[test]
fn cancel_stops_a_stalled_write() {
    let server = stops_reading();
    let url = server.url("/upload");
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let call = {
        let (agent, url, token) = (agent.clone(), url.clone(), token.clone());
        let body = vec![0u8; LARGE_BODY];
        spawn(move || {
            agent
                .post(&url)
                .cancel_token(&token)
                .send_bytes(&body)
                .map(drop)
        })
    };
    // The head is in; the body cannot all fit in the socket buffers.
    assert_eq!(server.request().request_line(), "POST /upload HTTP/1.1");
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
    assert_closed_as_cancelled(&agent, server.port(), 1);
}

#[test]
fn cancel_stops_the_wait_for_the_response_head() {
    let server = never_answers();
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let call = get(&agent, &server.url("/"), &token);
    server.request();
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
    assert_closed_as_cancelled(&agent, server.port(), 1);
}

#[test]
fn cancel_stops_a_body_read() {
    let server = body_stalls_after(1000, b"hello");
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let (reading_tx, reading) = crossbeam_channel::bounded(1);
    let call = {
        let (agent, token) = (agent.clone(), token.clone());
        spawn(move || {
            let mut body = agent.get(&url).cancel_token(&token).call()?.into_body();
            let mut first = [0u8; 5];
            body.read_exact(&mut first).map_err(Error::from_io)?;
            let _ = reading_tx.send(first);
            Ok::<_, Error>(first_error(&mut body))
        })
    };
    let first = reading
        .recv_timeout(stall::PATIENCE)
        .expect("the body started");
    assert_eq!(&first, b"hello");
    let (result, after) = cancel_and_finish(&token, call);
    let err = result.expect("the head arrives");
    assert_ne!(
        err.kind(),
        io::ErrorKind::Interrupted,
        "std's read_to_end, read_exact and io::copy retry Interrupted forever: {err}"
    );
    assert_cancelled(Err::<(), _>(Error::from_io(err)));
    assert_prompt(after);
    assert_closed_as_cancelled(&agent, server.port(), 1);
}

#[test]
fn a_cancelled_body_read_ends_read_to_end() {
    let server = body_stalls_after(1000, b"hello");
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let (reading_tx, reading) = crossbeam_channel::bounded(1);
    let call = {
        let (agent, token) = (agent.clone(), token.clone());
        spawn(move || {
            let mut body = agent.get(&url).cancel_token(&token).call()?.into_body();
            let mut first = [0u8; 5];
            body.read_exact(&mut first).map_err(Error::from_io)?;
            let _ = reading_tx.send(());
            body.read_to_end(&mut Vec::new()).map_err(Error::from_io)
        })
    };
    reading
        .recv_timeout(stall::PATIENCE)
        .expect("the body started");
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
}

#[test]
fn cancel_stops_a_pool_wait() {
    let server = body_stalls_after(10, b"hello");
    let url = server.url("/");
    let port = server.port();
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();
    // An unread body keeps the host's only connection checked out.
    let held = agent
        .get(&url)
        .call()
        .expect("the first request gets its head");
    let token = CancelToken::new();
    let call = get(&agent, &url, &token);
    wait_until("the second request waits in the pool", || {
        agent
            .pool_stats()
            .host(&pool_key(port))
            .is_some_and(|h| h.waiting == 1)
    });
    let (result, after) = cancel_and_finish(&token, call);
    assert_cancelled(result);
    assert_prompt(after);
    let stats = agent.pool_stats();
    let host = stats.host(&pool_key(port)).expect("host stats");
    assert_eq!(
        (host.waiting, host.active, host.opened),
        (0, 1, 1),
        "{stats}"
    );
    drop(held);
}

#[test]
fn one_token_cancels_three_concurrent_requests() {
    let server = never_answers();
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let calls: Vec<_> = (0..3).map(|_| get(&agent, &url, &token)).collect();
    for _ in 0..3 {
        server.request();
    }
    let cancelled_at = std::time::Instant::now();
    token.cancel();
    for call in calls {
        let done = call.finish();
        assert_cancelled(done.value);
        assert_prompt(done.returned_at.saturating_duration_since(cancelled_at));
    }
    assert_closed_as_cancelled(&agent, server.port(), 3);
}

#[test]
fn a_token_cancelled_before_the_call_stops_it_at_once() {
    let server = Server::fixed(ok("never sent"));
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    token.cancel();
    let (result, elapsed) = {
        let (agent, url, token) = (agent.clone(), server.url("/"), token.clone());
        timed(move || agent.get(&url).cancel_token(&token).call().map(drop))
    };
    assert_cancelled(result);
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    assert_eq!(server.accepted(), 0, "a connection was opened");
    assert_eq!(agent.pool_stats().opened(), 0);
}

#[test]
fn a_token_never_cancelled_costs_nothing() {
    let server = Server::fixed(ok("hello"));
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    for _ in 0..3 {
        let text = agent
            .get(&url)
            .cancel_token(&token)
            .call()
            .and_then(|r| r.text())
            .expect("a request with a token that is never cancelled succeeds");
        assert_eq!(text, "hello");
    }
    drop(token);
    // The connection the token's requests used is as good as any.
    let resp = agent.get(&url).call().expect("the connection is reused");
    assert!(resp.timings().reused);
    assert_eq!(resp.text().expect("body"), "hello");
    let stats = agent.pool_stats();
    let host = stats.host(&server.pool_key()).expect("host stats");
    assert_eq!(
        (host.opened, host.reused, host.idle, host.closed.total()),
        (1, 3, 1, 0),
        "{stats}"
    );
}

#[test]
fn a_cancelled_connection_is_never_reused() {
    // The first connection stalls in its body; later ones are answered.
    let server = Stalled::start(|conn, ctl| {
        if conn.index == 0 {
            if conn.read_request().is_some() {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello");
                ctl.hold();
            }
        } else {
            conn.serve(&|_| common::Reply::keep(ok("fresh")));
        }
    });
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    let token = CancelToken::new();
    let (reading_tx, reading) = crossbeam_channel::bounded(1);
    let call = {
        let (agent, url, token) = (agent.clone(), url.clone(), token.clone());
        spawn(move || {
            let mut body = agent.get(&url).cancel_token(&token).call()?.into_body();
            let mut first = [0u8; 5];
            body.read_exact(&mut first).map_err(Error::from_io)?;
            let _ = reading_tx.send(());
            Ok::<_, Error>(Error::from_io(first_error(&mut body)))
        })
    };
    reading
        .recv_timeout(stall::PATIENCE)
        .expect("the body started");
    let (result, _) = cancel_and_finish(&token, call);
    let err = result.expect("the head arrives");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert_closed_as_cancelled(&agent, server.port(), 1);

    let resp = agent.get(&url).call().expect("a new connection answers");
    assert!(!resp.timings().reused);
    assert_eq!(resp.text().expect("body"), "fresh");
    assert_eq!(server.accepted(), 2);
    let stats = agent.pool_stats();
    let host = stats.host(&server.pool_key()).expect("host stats");
    assert_eq!((host.opened, host.reused, host.idle), (2, 0, 1), "{stats}");
}
