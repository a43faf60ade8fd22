//! A tiny in-memory cache as middleware: a GET whose response said
//! `Cache-Control: max-age=N` is answered from memory for N seconds, without
//! a connection. Only whole 200 responses up to 1 MiB are kept.
//!
//! `cargo run --example middleware_cache [URL]`: without a URL, a local demo
//! server answers (it sends no Cache-Control, so this example marks its
//! responses fresh for 60 s itself, where a real server would).

#[path = "support/demo_server.rs"]
mod demo_server;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use windlass::http::{HeaderMap, Method, StatusCode};
use windlass::middleware::{Middleware, Next, Request};
use windlass::{Body, Error, Response};

const MAX_ENTRY: u64 = 1024 * 1024;

struct Entry {
    headers: HeaderMap,
    body: Vec<u8>,
    url: windlass::url::Url,
    fresh_until: Instant,
}

#[derive(Default)]
struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
    /// For the demo server, which sends no Cache-Control.
    assume_max_age: Option<Duration>,
}

fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("cache-control")?.to_str().ok()?;
    if value.contains("no-store") || value.contains("private") {
        return None;
    }
    let secs = value
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))?
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

impl Middleware for Cache {
    fn handle(&self, request: Request, next: Next<'_>) -> Result<Response, Error> {
        if request.method() != Method::GET || request.headers().contains_key("authorization") {
            return next.run(request);
        }
        let key = request.url().to_string();
        if let Some(hit) = self.entries.lock().unwrap().get(&key) {
            if hit.fresh_until > Instant::now() {
                let mut headers = hit.headers.clone();
                headers.insert("x-cache", "hit".parse().unwrap());
                let body = Body::from_bytes(hit.body.clone());
                return Ok(Response::new(
                    StatusCode::OK,
                    headers,
                    body,
                    hit.url.clone(),
                ));
            }
        }
        let response = next.run(request)?;
        let fresh_for = max_age(response.headers()).or(self.assume_max_age);
        let small = response.content_length().is_some_and(|n| n <= MAX_ENTRY);
        let (Some(fresh_for), true, StatusCode::OK) = (fresh_for, small, response.status()) else {
            return Ok(response);
        };
        let (headers, url) = (response.headers().clone(), response.url().clone());
        let body = response.bytes_with_limit(MAX_ENTRY)?;
        self.entries.lock().unwrap().insert(
            key,
            Entry {
                headers: headers.clone(),
                body: body.clone(),
                url: url.clone(),
                fresh_until: Instant::now() + fresh_for,
            },
        );
        Ok(Response::new(
            StatusCode::OK,
            headers,
            Body::from_bytes(body),
            url,
        ))
    }
}

fn main() -> Result<(), Error> {
    let given = std::env::args().nth(1);
    let demo = given.is_none();
    let base = given.unwrap_or_else(demo_server::start);
    let cache = Cache {
        assume_max_age: demo.then_some(Duration::from_secs(60)),
        ..Cache::default()
    };
    let agent = windlass::Agent::builder().middleware(cache).build()?;
    for _ in 0..3 {
        let response = agent.get(format!("{base}/catalog")).call()?;
        let from = response.header("x-cache").unwrap_or("network").to_string();
        println!("{from:>7}: {}", response.text()?.trim_end());
    }
    println!("connections opened: {}", agent.pool_stats().opened());
    Ok(())
}
