//! A circuit breaker per host as middleware: after 3 failures in a row
//! (errors or 5xx) a host is "open" for 10 s and calls to it fail at once
//! without touching the network; the first call after that is a trial.
//!
//! `cargo run --example middleware_breaker`: calls a closed local port, so
//! the breaker opens after three connect failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use windlass::http::{HeaderMap, StatusCode};
use windlass::middleware::{Middleware, Next, Request};
use windlass::{Body, Error, Response};

const FAILURES_TO_OPEN: u32 = 3;
const OPEN_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Breaker {
    hosts: Mutex<HashMap<String, State>>,
}

#[derive(Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

impl Middleware for Breaker {
    fn handle(&self, request: Request, next: Next<'_>) -> Result<Response, Error> {
        let host = format!(
            "{}:{}",
            request.url().host_str().unwrap_or(""),
            request.url().port_or_known_default().unwrap_or(0)
        );
        let open = self
            .hosts
            .lock()
            .unwrap()
            .get(&host)
            .and_then(|s| s.open_until)
            .is_some_and(|until| Instant::now() < until);
        if open {
            // Answer for the host: a 503 the caller handles like the host's own.
            let mut headers = HeaderMap::new();
            headers.insert("x-circuit", "open".parse().unwrap());
            let body = Body::from_bytes(format!("circuit open for {host}"));
            return Ok(Response::new(
                StatusCode::SERVICE_UNAVAILABLE,
                headers,
                body,
                request.url().clone(),
            ));
        }
        let result = next.run(request);
        let failed = match &result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        let mut hosts = self.hosts.lock().unwrap();
        let state = hosts.entry(host).or_default();
        if failed {
            state.failures += 1;
            if state.failures >= FAILURES_TO_OPEN {
                state.open_until = Some(Instant::now() + OPEN_FOR);
            }
        } else {
            *state = State::default();
        }
        result
    }
}

fn main() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let agent = windlass::Agent::builder()
        .timeout_connect(Duration::from_secs(1))
        .middleware(Breaker::default())
        .build()
        .expect("valid settings");
    for attempt in 1..=5 {
        let started = Instant::now();
        match agent.get(format!("http://127.0.0.1:{port}/health")).call() {
            Ok(response) => println!(
                "call {attempt}: {} ({}) in {:?}",
                response.status(),
                response.header("x-circuit").unwrap_or("closed"),
                started.elapsed()
            ),
            Err(err) => println!("call {attempt}: {} in {:?}", err.kind(), started.elapsed()),
        }
    }
}
