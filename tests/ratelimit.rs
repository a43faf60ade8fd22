//! Per-host token buckets: a burst passes at once, later requests are spaced
//! at the rate, a wait that cannot finish before the deadline fails at once,
//! and a wait can be cancelled. Only lower bounds on time are asserted; the
//! machine may be slower, never faster, than the rate allows.

mod common;

use std::time::{Duration, Instant};

use common::{ok, Server};
use windlass::{ErrorKind, InFlightPhase, Phase, RateLimit};

#[test]
fn a_burst_passes_then_requests_are_spaced_at_the_rate() {
    let server = Server::fixed(ok("x"));
    let agent = common::builder()
        .rate_limit(RateLimit::per_second(20.0).burst(3))
        .build()
        .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        agent.get(server.url("/")).call().unwrap().text().unwrap();
    }
    // Three tokens at most were there; two more need 2 × 50 ms.
    for _ in 0..2 {
        agent.get(server.url("/")).call().unwrap().text().unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(95),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_wait_longer_than_the_deadline_fails_at_once() {
    let server = Server::fixed(ok("x"));
    let agent = common::builder()
        .rate_limit(RateLimit::per_second(0.1))
        .build()
        .unwrap();
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    let started = Instant::now();
    let err = agent
        .get(server.url("/"))
        .timeout(Duration::from_secs(2))
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::RateLimit));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed without sleeping"
    );
    assert_eq!(server.accepted(), 1);
}

#[test]
fn a_host_limit_leaves_other_hosts_alone() {
    let slow = Server::fixed(ok("slow"));
    let fast = Server::fixed(ok("fast"));
    let agent = common::builder()
        .host_rate_limit(&slow.addr().to_string(), RateLimit::per_second(0.1))
        .build()
        .unwrap();
    agent.get(slow.url("/")).call().unwrap().text().unwrap();
    for _ in 0..20 {
        agent.get(fast.url("/")).call().unwrap().text().unwrap();
    }
    let err = agent
        .get(slow.url("/"))
        .timeout(Duration::from_secs(1))
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::RateLimit));
}

#[test]
fn a_rate_limit_wait_is_cancelled_promptly() {
    let server = Server::fixed(ok("x"));
    let agent = common::builder()
        .rate_limit(RateLimit::per_second(0.2))
        .build()
        .unwrap();
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    let token = windlass::CancelToken::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let agent = agent.clone();
        let token = token.clone();
        let url = server.url("/");
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = agent
                .get(&url)
                .timeout(Duration::from_secs(30))
                .cancel_token(&token)
                .call()
                .map(drop);
            tx.send(started.elapsed()).unwrap();
            result
        })
    };
    // Cancel only once the request is known to wait for its token.
    common::wait_until(
        "the request waits for the rate limit",
        Duration::from_secs(5),
        || {
            agent
                .in_flight()
                .iter()
                .any(|e| e.phase == InFlightPhase::RateLimited)
        },
    );
    let cancelled_at = Instant::now();
    token.cancel();
    let elapsed = rx.recv_timeout(Duration::from_secs(5)).expect("returned");
    let err = waiter.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(elapsed < Duration::from_secs(5));
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(500),
        "returned {:?} after the cancel",
        cancelled_at.elapsed()
    );
}
