//! Agent defaults and per-request overrides: default headers, bearer
//! tokens, retry and decompression per request, and the last response handed
//! back when a `Retry-After` would pass the deadline.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Reply, Server};
use windlass::{ErrorKind, Retry};

const BUSY: &str = "HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 4\r\n\r\nbusy";

/// 503 for the first `failures` requests, then 200 `done`.
fn busy_then_ok(failures: usize) -> Server {
    let count = Arc::new(AtomicUsize::new(0));
    Server::serve(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) < failures {
            Reply::keep(BUSY)
        } else {
            Reply::keep(common::ok("done"))
        }
    })
}

#[test]
fn default_headers_are_sent_unless_the_request_sets_its_own() {
    let server = Server::fixed(common::ok("x"));
    let agent = common::builder()
        .default_header("x-team", "storage")
        .default_header("x-tag", "a")
        .default_header("x-tag", "b")
        .build()
        .unwrap();
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    let first = server.request();
    assert_eq!(first.header("x-team"), Some("storage"));
    assert_eq!(first.header_all("x-tag"), ["a", "b"]);
    agent
        .get(server.url("/"))
        .header("x-tag", "mine")
        .call()
        .unwrap()
        .text()
        .unwrap();
    let second = server.request();
    assert_eq!(second.header_all("x-tag"), ["mine"]);
    assert_eq!(second.header("x-team"), Some("storage"));
}

#[test]
fn an_invalid_default_header_fails_the_build() {
    let err = windlass::Agent::builder()
        .default_header("x-bad", "a\r\nb")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = windlass::Agent::builder()
        .bearer_auth("t\nx")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn agent_bearer_auth_is_sent_and_a_request_token_replaces_it() {
    let server = Server::fixed(common::ok("x"));
    let agent = common::builder()
        .bearer_auth("agent-token")
        .build()
        .unwrap();
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(
        server.request().header_all("authorization"),
        ["Bearer agent-token"]
    );
    agent
        .get(server.url("/"))
        .bearer_auth("own")
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(server.request().header_all("authorization"), ["Bearer own"]);
    // Credentials in the URL win over the agent's default too.
    let with_user = server.url("/").replace("http://", "http://u:p@");
    agent.get(with_user).call().unwrap().text().unwrap();
    assert_eq!(server.request().header_all("authorization"), ["Basic dTpw"]);
}

#[test]
fn agent_bearer_auth_is_dropped_on_a_redirect_to_another_origin() {
    let other = Server::fixed(common::ok("there"));
    let target = other.url("/end");
    let first = Server::serve(move |_| {
        Reply::keep(format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
        ))
    });
    let agent = common::builder().bearer_auth("secret").build().unwrap();
    let resp = agent.get(first.url("/start")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "there");
    assert_eq!(
        first.request().header("authorization"),
        Some("Bearer secret")
    );
    assert_eq!(other.request().header("authorization"), None);
}

#[test]
fn a_request_retry_policy_overrides_the_agent_one() {
    let server = busy_then_ok(1);
    let agent = common::agent();
    let resp = agent
        .get(server.url("/"))
        .retry(Retry::new(1).backoff(Duration::ZERO, Duration::ZERO))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.timings().attempts, 2);

    let server = busy_then_ok(1);
    let retrying = common::builder()
        .retry(Retry::new(3).backoff(Duration::ZERO, Duration::ZERO))
        .build()
        .unwrap();
    let resp = retrying
        .get(server.url("/"))
        .retry(Retry::none())
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.timings().attempts, 1);
}

#[test]
fn a_retry_after_past_the_deadline_hands_back_the_last_response() {
    let server =
        Server::fixed("HTTP/1.1 503 Busy\r\nRetry-After: 30\r\nContent-Length: 4\r\n\r\nbusy");
    let agent = common::builder()
        .retry(Retry::new(3).backoff(Duration::ZERO, Duration::from_secs(60)))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = agent
        .get(server.url("/"))
        .timeout(Duration::from_secs(2))
        .call()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.header("retry-after"), Some("30"));
    assert_eq!(resp.timings().attempts, 1);
    assert_eq!(resp.text().unwrap(), "busy");
}

#[cfg(feature = "gzip")]
#[test]
fn decompression_can_be_switched_per_request() {
    let server = Server::fixed(common::ok("x"));
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .decompress(false)
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(server.request().header("accept-encoding"), None);

    let plain = common::builder().decompress(false).build().unwrap();
    plain.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(server.request().header("accept-encoding"), None);
    plain
        .get(server.url("/"))
        .decompress(true)
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        server.request().header("accept-encoding"),
        Some(common::accept_encoding().as_str())
    );
}

#[cfg(feature = "gzip")]
#[test]
fn a_request_that_switches_decompression_on_decodes_the_body() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"unpacked").unwrap();
    let packed = gz.finish().unwrap();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        packed.len()
    )
    .into_bytes();
    response.extend_from_slice(&packed);
    let server = Server::fixed(response);
    let plain = common::builder().decompress(false).build().unwrap();
    let raw = plain.get(server.url("/")).call().unwrap().bytes().unwrap();
    assert_eq!(raw, packed);
    let text = plain
        .get(server.url("/"))
        .decompress(true)
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "unpacked");
}
