//! Middleware: it sees each call once (after the agent's defaults, before
//! redirects and retries), can change the request, answer without the
//! network, change the response, runs in the order added, and a request can
//! skip it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Reply, Server};
use windlass::http::{HeaderMap, HeaderValue, StatusCode};
use windlass::middleware::{Next, Request};
use windlass::{Body, Error, ErrorKind, Response};

#[test]
fn middleware_changes_the_request_the_server_sees() {
    let server = Server::fixed(common::ok("fine"));
    let agent = common::builder()
        .middleware(|mut req: Request, next: Next<'_>| {
            req.headers_mut()
                .insert("x-signed", HeaderValue::from_static("yes"));
            next.run(req)
        })
        .build()
        .unwrap();
    let resp = agent.get(server.url("/a")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "fine");
    assert_eq!(server.request().header("x-signed"), Some("yes"));
}

#[test]
fn middleware_answers_without_opening_a_connection() {
    let server = Server::fixed(common::ok("from the network"));
    let agent = common::builder()
        .middleware(|req: Request, _next: Next<'_>| {
            let mut headers = HeaderMap::new();
            headers.insert("x-cache", HeaderValue::from_static("hit"));
            Ok(Response::new(
                StatusCode::OK,
                headers,
                Body::from_bytes("from memory"),
                req.url().clone(),
            ))
        })
        .build()
        .unwrap();
    let resp = agent.get(server.url("/a")).call().unwrap();
    assert_eq!(resp.header("x-cache"), Some("hit"));
    assert_eq!(resp.url().as_str(), server.url("/a"));
    assert_eq!(resp.text().unwrap(), "from memory");
    assert_eq!(server.accepted(), 0);
    assert!(agent.in_flight().is_empty());
}

#[test]
fn middleware_can_fail_a_call_before_it_is_sent() {
    let server = Server::fixed(common::ok("x"));
    let agent = common::builder()
        .middleware(|req: Request, next: Next<'_>| {
            if req.url().path().starts_with("/admin") {
                // Any windlass error will do; a real breaker would make its own.
                return Err(windlass::get("ftp://refused/").call().unwrap_err());
            }
            next.run(req)
        })
        .build()
        .unwrap();
    let err = agent.get(server.url("/admin")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    assert_eq!(server.accepted(), 0);
    assert_eq!(agent.metrics().error_count(ErrorKind::InvalidUrl), 1);
}

#[test]
fn middleware_changes_the_response() {
    let server = Server::fixed(common::ok("body"));
    let agent = common::builder()
        .middleware(|req: Request, next: Next<'_>| {
            let resp = next.run(req)?;
            let (status, url) = (resp.status(), resp.url().clone());
            let text = resp.text()?.to_uppercase();
            Ok(Response::new(
                status,
                HeaderMap::new(),
                Body::from_bytes(text),
                url,
            ))
        })
        .build()
        .unwrap();
    assert_eq!(
        agent.get(server.url("/")).call().unwrap().text().unwrap(),
        "BODY"
    );
}

fn recorder(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> impl windlass::Middleware {
    let log = Arc::clone(log);
    move |req: Request, next: Next<'_>| {
        log.lock().unwrap().push(format!("{name} in"));
        let resp = next.run(req);
        log.lock().unwrap().push(format!("{name} out"));
        resp
    }
}

#[test]
fn middleware_runs_in_the_order_added_first_in_last_out() {
    let server = Server::fixed(common::ok("x"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let agent = common::builder()
        .middleware(recorder("outer", &log))
        .middleware(recorder("inner", &log))
        .build()
        .unwrap();
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["outer in", "inner in", "inner out", "outer out"]
    );
}

#[test]
fn a_request_without_middleware_skips_the_chain() {
    let server = Server::fixed(common::ok("x"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let agent = common::builder()
        .middleware(recorder("m", &log))
        .build()
        .unwrap();
    agent
        .get(server.url("/"))
        .without_middleware()
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert!(log.lock().unwrap().is_empty());
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[test]
fn middleware_sees_the_call_once_not_each_redirect_or_retry() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let server = Server::serve(move |req| match req.target.as_str() {
        "/start" => {
            Reply::keep("HTTP/1.1 302 Found\r\nLocation: /end\r\nContent-Length: 0\r\n\r\n")
        }
        _ if counter.fetch_add(1, Ordering::SeqCst) == 0 => {
            Reply::keep("HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n")
        }
        _ => Reply::keep(common::ok("done")),
    });
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let agent = common::builder()
        .retry(windlass::Retry::new(2).backoff(Duration::ZERO, Duration::ZERO))
        .middleware(move |req: Request, next: Next<'_>| {
            seen.lock().unwrap().push(req.url().path().to_string());
            let resp = next.run(req)?;
            seen.lock()
                .unwrap()
                .push(format!("{}", resp.status().as_u16()));
            Ok(resp)
        })
        .build()
        .unwrap();
    let resp = agent.get(server.url("/start")).call().unwrap();
    assert_eq!(resp.timings().redirects, 1);
    assert_eq!(resp.timings().attempts, 2);
    assert_eq!(resp.text().unwrap(), "done");
    assert_eq!(*calls.lock().unwrap(), ["/start", "200"]);
}

#[test]
fn middleware_sees_the_agent_default_headers_and_the_body() {
    let server = Server::fixed(common::ok("x"));
    let seen = Arc::new(Mutex::new(None));
    let saw = Arc::clone(&seen);
    let agent = common::builder()
        .default_header("x-team", "storage")
        .middleware(move |req: Request, next: Next<'_>| {
            *saw.lock().unwrap() = Some((
                req.headers().get("x-team").cloned(),
                req.body().map(<[u8]>::to_vec),
            ));
            next.run(req)
        })
        .build()
        .unwrap();
    agent
        .post(server.url("/"))
        .send_bytes(b"payload")
        .unwrap()
        .text()
        .unwrap();
    let (team, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(team.unwrap(), "storage");
    assert_eq!(body.as_deref(), Some(&b"payload"[..]));
}

#[test]
fn a_middleware_can_rewrite_the_url_and_body() {
    let server = Server::fixed(common::ok("x"));
    let target = server.url("/moved");
    let agent = common::builder()
        .middleware(move |mut req: Request, next: Next<'_>| {
            req.set_url(target.as_str())?;
            req.set_body("rewritten");
            next.run(req)
        })
        .build()
        .unwrap();
    agent
        .post("http://127.0.0.1:9/never")
        .send_bytes(b"original")
        .unwrap()
        .text()
        .unwrap();
    let seen = server.request();
    assert_eq!(seen.request_line(), "POST /moved HTTP/1.1");
    assert_eq!(seen.body, b"rewritten");
}

fn _object_safe(_: &dyn windlass::Middleware) -> Result<(), Error> {
    Ok(())
}
