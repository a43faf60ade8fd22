//! Time limits. Every phase has its own (DNS, connect, TLS, write, response
//! head, read idle, pool wait), a request can have an overall timeout or an
//! absolute deadline, and at any moment the earliest limit that applies is
//! the one that fires. Each test runs against a server (or resolver) that
//! stalls in exactly one phase, and checks the phase the error names and that
//! the call returned at its limit, not before and not much after.

mod common;
mod stall;

use std::io::Read;
use std::time::{Duration, Instant};

use windlass::{Agent, Error, Phase};

use common::{ok, Server};
use stall::{
    assert_timeout, assert_took, blocking_resolver, body_stalls_after, dribbles,
    full_backlog_or_skip, ignores_client_hello, never_answers, stops_reading, timed, Stalled,
    LIMIT, MARGIN,
};

/// Large enough that the kernel's socket buffers on both sides (a few MiB on
/// loopback) fill long before the body is written.
const LARGE_BODY: usize = 64 * 1024 * 1024;

#[test]
fn dns_timeout_when_the_resolver_blocks() {
    let (resolver, gate) = blocking_resolver();
    let agent = common::builder()
        .resolver(resolver)
        .timeout_dns(LIMIT)
        .build()
        .unwrap();
    let (result, elapsed) = timed(move || agent.get("http://stalled.test/").call().map(drop));
    let err = assert_timeout(result, Phase::Dns);
    assert_took(elapsed, LIMIT);
    assert_eq!(gate.expect_lookup(), "stalled.test");
    assert!(
        err.to_string().contains("resolving the host stalled.test"),
        "{err}"
    );
}

#[test]
fn overall_timeout_bounds_a_blocked_resolver() {
    let (resolver, gate) = blocking_resolver();
    let agent = common::builder()
        .resolver(resolver)
        .timeout_dns(Duration::from_secs(10))
        .build()
        .unwrap();
    let (result, elapsed) = timed(move || {
        agent
            .get("http://stalled.test/")
            .timeout(LIMIT)
            .call()
            .map(drop)
    });
    assert_timeout(result, Phase::Dns);
    assert_took(elapsed, LIMIT);
    assert_eq!(gate.expect_lookup(), "stalled.test");
}

#[test]
fn connect_timeout_when_the_accept_queue_is_full() {
    let Some(full) = full_backlog_or_skip("connect_timeout_when_the_accept_queue_is_full") else {
        return;
    };
    let addr = full.addr();
    let agent = common::builder().timeout_connect(LIMIT).build().unwrap();
    let (result, elapsed) = timed(move || agent.get(format!("http://{addr}/")).call().map(drop));
    let err = assert_timeout(result, Phase::Connect);
    assert_took(elapsed, LIMIT);
    assert!(
        err.to_string().contains(&format!("connecting to {addr}")),
        "{err}"
    );
}

#[test]
fn connect_timeout_covers_all_addresses_together() {
    let Some(full) = full_backlog_or_skip("connect_timeout_covers_all_addresses_together") else {
        return;
    };
    // Six addresses that all stall (the same full listener six times). Tried
    // one after another with the limit each, they would take 6 x 400 ms,
    // well beyond the margin; the limit is for all of them together.
    let limit = Duration::from_millis(400);
    let port = full.addr().port();
    let agent = common::builder()
        .resolve("stalled.test", vec![full.addr(); 6])
        .timeout_connect(limit)
        .build()
        .unwrap();
    let (result, elapsed) = timed(move || {
        agent
            .get(format!("http://stalled.test:{port}/"))
            .call()
            .map(drop)
    });
    assert_timeout(result, Phase::Connect);
    assert_took(elapsed, limit);
}

#[test]
fn a_stalled_address_does_not_hold_up_the_next_one() {
    let Some(full) = full_backlog_or_skip("a_stalled_address_does_not_hold_up_the_next_one") else {
        return;
    };
    let server = Server::fixed(ok("hello"));
    let good = server.addr();
    // Happy Eyeballs: the second address is tried 250 ms after the first,
    // without waiting for the first to fail (it would take the whole 10 s).
    let agent = common::builder()
        .resolve("eyeballs.test", vec![full.addr(), good])
        .timeout_connect(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("http://eyeballs.test:{}/", good.port());
    let (result, elapsed) = timed(move || {
        let resp = agent.get(&url).call()?;
        let remote = resp.timings().remote_addr;
        Ok::<_, Error>((remote, resp.text()?))
    });
    let (remote, text) = result.expect("the second address answers");
    assert_eq!(text, "hello");
    assert_eq!(remote, Some(good));
    assert!(
        elapsed < Duration::from_millis(250) + MARGIN,
        "took {elapsed:?}"
    );
}

#[cfg(feature = "tls")]
#[test]
fn tls_timeout_when_the_server_ignores_the_client_hello() {
    let server = ignores_client_hello();
    let port = server.port();
    let agent = common::builder().timeout_tls(LIMIT).build().unwrap();
    let (result, elapsed) = timed(move || {
        agent
            .get(format!("https://127.0.0.1:{port}/"))
            .call()
            .map(drop)
    });
    let err = assert_timeout(result, Phase::Tls);
    assert_took(elapsed, LIMIT);
    server.expect_note("client hello");
    assert!(
        err.to_string()
            .contains(&format!("in the TLS handshake with 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn an_upload_longer_than_the_write_limit_succeeds_while_it_keeps_moving() {
    // The server reads 16 MiB a mebibyte at a time with a pause after each:
    // the upload takes well over the write limit, but no write waits long.
    let server = Server::start(|conn| {
        let Some(head) = conn.read_request_head() else {
            return;
        };
        let mut left: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut since_pause = 0;
        for _ in 0..1_000_000 {
            if left == 0 {
                break;
            }
            let n = conn.read_some();
            if n == 0 {
                return;
            }
            left = left.saturating_sub(n);
            since_pause += n;
            if since_pause >= 1 << 20 {
                since_pause = 0;
                // Pacing the reader, not synchronising with the client.
                std::thread::sleep(Duration::from_millis(40));
            }
        }
        conn.write(&ok("stored"));
    });
    let agent = common::builder().timeout_write(LIMIT).build().unwrap();
    let body = vec![0u8; 16 << 20];
    let started = Instant::now();
    let resp = agent.post(server.url("/upload")).send_bytes(&body).unwrap();
    assert!(
        started.elapsed() > LIMIT,
        "the upload was too quick to show anything"
    );
    assert_eq!(resp.text().unwrap(), "stored");
}

#[test]
fn write_timeout_when_the_server_stops_reading() {
    let server = stops_reading();
    let url = server.url("/upload");
    // No `Expect: 100-continue` wait first: this server never answers one,
    // and the limit measured here is the write's alone.
    let agent = common::builder()
        .timeout_write(LIMIT)
        .expect_continue(Duration::ZERO)
        .build()
        .unwrap();
    let body = vec![0u8; LARGE_BODY];
    let (result, elapsed) = timed(move || agent.post(&url).send_bytes(&body).map(drop));
    let err = assert_timeout(result, Phase::Write);
    // The limit counts from the last progress, which came after the start.
    assert_took(elapsed, LIMIT);
    let head = server.request();
    assert_eq!(head.request_line(), "POST /upload HTTP/1.1");
    assert_eq!(
        head.header("content-length"),
        Some(LARGE_BODY.to_string().as_str())
    );
    assert!(
        err.to_string().contains(&format!(
            "writing the request to 127.0.0.1:{}",
            server.port()
        )),
        "{err}"
    );
}

#[test]
fn response_head_timeout_when_the_server_never_answers() {
    let server = never_answers();
    let url = server.url("/slow");
    let agent = common::builder()
        .timeout_response_head(LIMIT)
        .build()
        .unwrap();
    let agent_stats = agent.clone();
    let (result, elapsed) = {
        let url = url.clone();
        timed(move || agent.get(&url).call().map(drop))
    };
    let err = assert_timeout(result, Phase::ResponseHead);
    assert_took(elapsed, LIMIT);
    assert_eq!(server.request().request_line(), "GET /slow HTTP/1.1");
    assert_eq!(err.url().map(|u| u.as_str()), Some(url.as_str()));
    // The connection that timed out is closed, not pooled.
    let stats = agent_stats.pool_stats();
    let host = stats.host(&server.pool_key()).expect("host stats");
    assert_eq!(
        (host.idle, host.active, host.closed.error),
        (0, 0, 1),
        "{stats}"
    );

    // "timed out after 0.3 s waiting for the response head from 127.0.0.1:PORT (URL)"
    let message = err.to_string();
    let rest = message
        .strip_prefix("timed out after ")
        .unwrap_or_else(|| panic!("{message}"));
    let (seconds, rest) = rest
        .split_once(" s ")
        .unwrap_or_else(|| panic!("{message}"));
    let seconds: f64 = seconds.parse().unwrap_or_else(|_| panic!("{message}"));
    assert!(
        seconds >= 0.2 && seconds <= (LIMIT + MARGIN).as_secs_f64(),
        "{message}"
    );
    let expected = format!(
        "waiting for the response head from 127.0.0.1:{} (timeout_response_head = 0.25 s) ({url})",
        server.port()
    );
    assert_eq!(rest, expected, "the setting that ran out is named");
}

#[test]
fn read_timeout_when_the_body_stops_arriving() {
    let server = body_stalls_after(10, b"hello");
    let url = server.url("/");
    let agent = common::builder().timeout_read(LIMIT).build().unwrap();
    let (outcome, _) = timed(move || {
        let mut body = agent.get(&url).call()?.into_body();
        let mut first = [0u8; 5];
        body.read_exact(&mut first).map_err(Error::from_io)?;
        let idle_from = Instant::now();
        let rest = body.read_to_end(&mut Vec::new()).map_err(Error::from_io);
        Ok::<_, Error>((first, idle_from.elapsed(), rest))
    });
    let (first, idle, rest) = outcome.expect("the head and the first body bytes arrive");
    assert_eq!(&first, b"hello");
    assert_timeout(rest, Phase::Body);
    assert_took(idle, LIMIT);
}

#[test]
fn overall_timeout_fires_while_every_body_read_succeeds() {
    // One byte every 100 ms of a 1 MB body: no read is ever idle for long,
    // so only the request's overall limit can stop it.
    let server = dribbles(1_000_000, Duration::from_millis(100));
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    type Limit = fn(windlass::RequestBuilder) -> windlass::RequestBuilder;
    let limits: [(&str, Limit); 2] = [
        ("timeout", |r| r.timeout(LIMIT)),
        ("deadline", |r| r.deadline(Instant::now() + LIMIT)),
    ];
    for (case, limit) in limits {
        let (agent, url) = (agent.clone(), url.clone());
        let (outcome, elapsed) = timed(move || {
            let mut body = limit(agent.get(&url)).call()?.into_body();
            let mut got = 0;
            let mut buf = [0u8; 64];
            for _ in 0..1_000_000 {
                match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => return Ok((got, Err(Error::from_io(e)))),
                }
            }
            Ok::<_, Error>((got, Ok(())))
        });
        let (got, end) =
            outcome.unwrap_or_else(|e| panic!("{case}: the head arrives at once: {e}"));
        assert_timeout(end, Phase::Body);
        assert!(got >= 1, "{case}: no body byte was read before the limit");
        assert_took(elapsed, LIMIT);
    }
}

#[test]
fn pool_wait_timeout_when_the_only_connection_is_held() {
    let server = body_stalls_after(10, b"hello");
    let url = server.url("/");
    let agent = common::builder()
        .max_connections_per_host(1)
        .timeout_pool_wait(LIMIT)
        .build()
        .unwrap();
    // An unread body keeps the host's only connection checked out.
    let held = agent
        .get(&url)
        .call()
        .expect("the first request gets its head");
    let (result, elapsed) = {
        let agent = agent.clone();
        timed(move || agent.get(&url).call().map(drop))
    };
    let err = assert_timeout(result, Phase::PoolWait);
    assert_took(elapsed, LIMIT);
    assert!(
        err.to_string().contains(&format!(
            "waiting for a free connection to 127.0.0.1:{} (timeout_pool_wait = 0.25 s)",
            server.port()
        )),
        "{err}"
    );
    let stats = agent.pool_stats();
    let host = stats.host(&server.pool_key()).expect("host stats");
    assert_eq!((host.waiting, host.active, host.opened), (0, 1, 1));
    drop(held);
}

#[test]
fn overall_timeout_spans_a_redirect_chain() {
    // Every hop is answered after 150 ms, far inside the 400 ms limit, but
    // the chain never ends: the limit must cover the hops together.
    let hop = Duration::from_millis(150);
    let limit = Duration::from_millis(400);
    let server = Stalled::start(move |conn, ctl| {
        for _ in 0..100 {
            let Some(req) = conn.read_request() else {
                return;
            };
            if !ctl.pause(hop) {
                return;
            }
            let n: u32 = req.target.trim_start_matches("/hop/").parse().unwrap_or(0);
            let next = n + 1;
            conn.write(
                format!("HTTP/1.1 302 Found\r\nLocation: /hop/{next}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    let url = server.url("/hop/0");
    let agent = common::builder().timeout(limit).build().unwrap();
    let (result, elapsed) = timed(move || agent.get(&url).call().map(drop));
    assert_timeout(result, Phase::ResponseHead);
    assert_took(elapsed, limit);
    let mut targets = Vec::new();
    while let Some(req) = server.try_request() {
        targets.push(req.target);
    }
    assert!(
        targets.len() >= 2 && targets[..2] == ["/hop/0", "/hop/1"],
        "no redirect was followed before the limit: {targets:?}"
    );
}

#[test]
fn a_per_request_timeout_overrides_a_longer_agent_timeout() {
    let server = never_answers();
    let url = server.url("/");
    let agent = Agent::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (result, elapsed) = timed(move || agent.get(&url).timeout(LIMIT).call().map(drop));
    assert_timeout(result, Phase::ResponseHead);
    assert_took(elapsed, LIMIT);
}

#[test]
fn a_per_request_timeout_overrides_a_shorter_agent_timeout() {
    let slow = Duration::from_millis(600);
    let server = Stalled::start(move |conn, ctl| {
        for _ in 0..10 {
            if conn.read_request().is_none() || !ctl.pause(slow) {
                return;
            }
            conn.write(&ok("late"));
        }
    });
    let url = server.url("/");
    let agent = Agent::builder().timeout(LIMIT).build().unwrap();

    let (result, elapsed) = {
        let (agent, url) = (agent.clone(), url.clone());
        timed(move || agent.get(&url).call().map(drop))
    };
    assert_timeout(result, Phase::ResponseHead);
    assert_took(elapsed, LIMIT);

    let (result, elapsed) = timed(move || {
        agent
            .get(&url)
            .timeout(Duration::from_secs(10))
            .call()?
            .text()
    });
    assert_eq!(
        result.expect("the longer per-request limit applies"),
        "late"
    );
    assert!(elapsed >= slow, "answered after {elapsed:?}");
}

#[test]
fn a_per_request_deadline_bounds_the_call() {
    let server = never_answers();
    let url = server.url("/");
    let agent = common::builder().build().unwrap();
    let deadline = Instant::now() + LIMIT;
    let (result, elapsed) = timed(move || agent.get(&url).deadline(deadline).call().map(drop));
    assert_timeout(result, Phase::ResponseHead);
    assert_took(elapsed, LIMIT);
}

#[test]
fn the_earliest_limit_that_applies_fires() {
    let server = never_answers();
    let url = server.url("/");
    let long = Duration::from_secs(10);
    type MakeRequest = Box<dyn Fn(&Agent) -> windlass::RequestBuilder + Send>;
    let cases: Vec<(&str, Agent, MakeRequest)> = vec![
        (
            "phase limit under the overall timeout",
            Agent::builder()
                .timeout(long)
                .timeout_response_head(LIMIT)
                .build()
                .unwrap(),
            Box::new({
                let url = url.clone();
                move |a: &Agent| a.get(&url)
            }),
        ),
        (
            "deadline under the phase limit",
            Agent::builder()
                .timeout_response_head(long)
                .build()
                .unwrap(),
            Box::new({
                let url = url.clone();
                move |a: &Agent| a.get(&url).deadline(Instant::now() + LIMIT)
            }),
        ),
        (
            "per-request timeout under the deadline",
            Agent::builder()
                .timeout_response_head(long)
                .build()
                .unwrap(),
            Box::new({
                let url = url.clone();
                move |a: &Agent| a.get(&url).deadline(Instant::now() + long).timeout(LIMIT)
            }),
        ),
        (
            "deadline under the per-request timeout",
            Agent::builder()
                .timeout_response_head(long)
                .build()
                .unwrap(),
            Box::new({
                let url = url.clone();
                move |a: &Agent| a.get(&url).timeout(long).deadline(Instant::now() + LIMIT)
            }),
        ),
    ];
    for (case, agent, request) in cases {
        let (result, elapsed) = timed(move || request(&agent).call().map(drop));
        let err = result.expect_err(case);
        assert_eq!(
            err.kind(),
            windlass::ErrorKind::Timeout(Phase::ResponseHead),
            "{case}: {err}"
        );
        assert!(
            elapsed + stall::EARLY >= LIMIT && elapsed < LIMIT + MARGIN,
            "{case}: returned after {elapsed:?}"
        );
    }
}

#[test]
fn a_deadline_already_past_fails_at_once_without_connecting() {
    let server = Server::fixed(ok("never sent"));
    let agent = common::builder().build().unwrap();
    let past = Instant::now();
    let requests: Vec<(&str, windlass::RequestBuilder)> = vec![
        (
            "deadline in the past",
            agent.get(server.url("/")).deadline(past),
        ),
        (
            "zero timeout",
            agent.get(server.url("/")).timeout(Duration::ZERO),
        ),
    ];
    for (case, request) in requests {
        let (result, elapsed) = timed(move || request.call().map(drop));
        let err = result.expect_err(case);
        assert!(err.is_timeout(), "{case}: {err}");
        assert!(
            elapsed < Duration::from_millis(500),
            "{case}: took {elapsed:?}"
        );
    }
    assert_eq!(server.accepted(), 0, "a connection was opened");
    assert_eq!(agent.pool_stats().opened(), 0);
}

#[test]
fn a_per_request_phase_timeout_overrides_the_agents() {
    let server = never_answers();
    let agent = common::builder()
        .timeout_response_head(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = server.url("/slow");
    let (result, elapsed) = timed(move || {
        agent
            .get(&url)
            .timeout_response_head(LIMIT)
            .call()
            .map(drop)
    });
    assert_timeout(result, Phase::ResponseHead);
    assert_took(elapsed, LIMIT);
}

#[test]
fn a_per_request_read_timeout_overrides_the_agents() {
    let server = body_stalls_after(1000, b"partial");
    let agent = common::builder()
        .timeout_read(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = server.url("/stalls");
    let (result, elapsed) = timed(move || {
        let resp = agent.get(&url).timeout_read(LIMIT).call()?;
        let mut body = Vec::new();
        resp.into_body()
            .read_to_end(&mut body)
            .map_err(Error::from_io)
            .map(drop)
    });
    assert_timeout(result, Phase::Body);
    assert_took(elapsed, LIMIT);
}

// --- the minimum transfer speed ----------------------------------------------------

/// Reads a body to its end or its first error; the bytes read, the outcome,
/// and the time from the head to that outcome.
fn read_all(resp: windlass::Response) -> (usize, Result<(), Error>, Duration) {
    let started = Instant::now();
    let mut body = resp.into_body();
    let mut got = 0;
    let mut buf = [0u8; 64];
    for _ in 0..1_000_000 {
        match body.read(&mut buf) {
            Ok(0) => return (got, Ok(()), started.elapsed()),
            Ok(n) => got += n,
            Err(e) => return (got, Err(Error::from_io(e)), started.elapsed()),
        }
    }
    (got, Ok(()), started.elapsed())
}

#[test]
fn a_body_slower_than_the_minimum_speed_fails_with_phase_low_speed() {
    // 10 bytes a second against a minimum of 100 over half a second: every
    // read succeeds well inside the read-idle limit, yet the body fails.
    let server = dribbles(1_000_000, Duration::from_millis(100));
    let url = server.url("/");
    let window = Duration::from_millis(500);
    let agent = common::builder()
        .min_speed(windlass::MinSpeed::new(100, window))
        .build()
        .unwrap();
    let ((got, end, elapsed), _) = timed(move || read_all(agent.get(&url).call().unwrap()));
    let err = assert_timeout(end, Phase::LowSpeed);
    assert!(got >= 1, "no byte arrived before the window closed");
    assert_took(elapsed, window);
    assert!(
        err.to_string()
            .contains("min_speed = 100 bytes/s over 0.5 s"),
        "{err}"
    );
}

#[test]
fn a_request_minimum_speed_overrides_the_agents() {
    let server = dribbles(1_000_000, Duration::from_millis(100));
    let url = server.url("/");
    // The agent's minimum is met by 10 bytes a second; the request's is not.
    let agent = common::builder()
        .min_speed(windlass::MinSpeed::new(1, Duration::from_secs(5)))
        .build()
        .unwrap();
    let window = Duration::from_millis(400);
    let ((_, end, elapsed), _) = timed(move || {
        let resp = agent
            .get(&url)
            .min_speed(windlass::MinSpeed::new(1000, window))
            .call()
            .unwrap();
        read_all(resp)
    });
    assert_timeout(end, Phase::LowSpeed);
    assert_took(elapsed, window);
}

#[test]
fn a_body_that_stops_fails_at_the_end_of_its_speed_window() {
    // Nothing more after five bytes: the read-idle limit is far away, the
    // speed window is not.
    let server = body_stalls_after(10, b"hello");
    let url = server.url("/");
    let window = LIMIT;
    let agent = common::builder()
        .min_speed(windlass::MinSpeed::new(100, window))
        .build()
        .unwrap();
    let ((got, end, elapsed), _) = timed(move || read_all(agent.get(&url).call().unwrap()));
    assert_eq!(got, 5);
    assert_timeout(end, Phase::LowSpeed);
    assert_took(elapsed, window);
}

#[test]
fn a_body_faster_than_the_minimum_speed_is_read_whole() {
    let body = "x".repeat(100_000);
    let server = Server::fixed(ok(&body));
    let agent = common::builder()
        .min_speed(windlass::MinSpeed::new(1000, Duration::from_millis(200)))
        .build()
        .unwrap();
    assert_eq!(
        agent.get(server.url("/")).call().unwrap().text().unwrap(),
        body
    );
}
