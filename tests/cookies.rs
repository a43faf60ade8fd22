//! The cookie jar against real servers: cookies set are sent back where the
//! rules allow, on redirects too, a hand-set Cookie header still obeys the
//! cross-origin rule, and the jar saves and loads in the Netscape format.
#![cfg(feature = "cookies")]

mod common;

use std::sync::Arc;

use common::{Reply, Server};
use windlass::CookieJar;

fn agent(jar: &Arc<CookieJar>) -> windlass::Agent {
    common::builder()
        .cookie_store(Arc::clone(jar))
        .build()
        .unwrap()
}

fn set_cookie(value: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nSet-Cookie: {value}\r\nContent-Length: 2\r\n\r\nok").into_bytes()
}

#[test]
fn a_cookie_set_by_a_response_is_sent_back() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/login" => Reply::keep(set_cookie("sid=abc; Path=/; HttpOnly; SameSite=Lax")),
        _ => Reply::keep(common::ok("ok")),
    });
    let jar = Arc::new(CookieJar::new());
    let agent = agent(&jar);
    agent.get(server.url("/login")).call().unwrap();
    agent.get(server.url("/account")).call().unwrap();
    assert_eq!(server.request().header("cookie"), None);
    assert_eq!(server.request().header("cookie"), Some("sid=abc"));
    assert_eq!(jar.len(), 1);
}

#[test]
fn a_cookie_is_sent_only_under_its_path() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/app/login" => Reply::keep(set_cookie("s=1; Path=/app")),
        _ => Reply::keep(common::ok("ok")),
    });
    let jar = Arc::new(CookieJar::new());
    let agent = agent(&jar);
    agent.get(server.url("/app/login")).call().unwrap();
    agent.get(server.url("/app/page")).call().unwrap();
    agent.get(server.url("/other")).call().unwrap();
    server.request();
    assert_eq!(server.request().header("cookie"), Some("s=1"));
    assert_eq!(server.request().header("cookie"), None);
}

#[test]
fn max_age_zero_removes_a_cookie() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/set" => Reply::keep(set_cookie("a=1")),
        "/unset" => Reply::keep(set_cookie("a=; Max-Age=0")),
        _ => Reply::keep(common::ok("ok")),
    });
    let jar = Arc::new(CookieJar::new());
    let agent = agent(&jar);
    agent.get(server.url("/set")).call().unwrap();
    agent.get(server.url("/unset")).call().unwrap();
    agent.get(server.url("/check")).call().unwrap();
    server.request();
    assert_eq!(server.request().header("cookie"), Some("a=1"));
    assert_eq!(server.request().header("cookie"), None);
    assert!(jar.is_empty());
}

#[test]
fn a_cookie_set_on_a_redirect_goes_to_the_next_hop_where_the_rules_allow() {
    let target = Server::serve(|_| Reply::keep(common::ok("landed")));
    let location = target.url("/next");
    let first = Server::serve(move |req| {
        match req.target.as_str() {
        "/start" => Reply::keep(
            format!(
                "HTTP/1.1 302 Found\r\nSet-Cookie: host=1; Path=/\r\n\
                 Set-Cookie: narrow=2; Path=/start\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        ),
        _ => Reply::keep(common::ok("?")),
    }
    });
    let jar = Arc::new(CookieJar::new());
    let resp = agent(&jar).get(first.url("/start")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "landed");
    // Cookies are not port-specific (RFC 6265 §8.5): same host, another
    // port, the host cookie goes; the one for /start does not.
    assert_eq!(target.request().header("cookie"), Some("host=1"));
}

#[test]
fn a_hand_set_cookie_header_is_dropped_on_a_cross_origin_redirect() {
    let target = Server::serve(|_| Reply::keep(common::ok("landed")));
    let location = target.url("/next");
    let first = Server::fixed(
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .into_bytes(),
    );
    let jar = Arc::new(CookieJar::new());
    agent(&jar)
        .get(first.url("/start"))
        .header("cookie", "mine=secret")
        .call()
        .unwrap();
    assert_eq!(first.request().header("cookie"), Some("mine=secret"));
    assert_eq!(target.request().header("cookie"), None);
}

#[test]
fn a_hand_set_cookie_header_replaces_the_jars() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/set" => Reply::keep(set_cookie("jar=1")),
        _ => Reply::keep(common::ok("ok")),
    });
    let jar = Arc::new(CookieJar::new());
    let agent = agent(&jar);
    agent.get(server.url("/set")).call().unwrap();
    agent
        .get(server.url("/x"))
        .header("cookie", "mine=2")
        .call()
        .unwrap();
    server.request();
    assert_eq!(server.request().header_all("cookie"), ["mine=2"]);
}

#[test]
fn a_saved_jar_loads_into_another_agent() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/set" => Reply::keep(set_cookie("keep=yes; Max-Age=3600; Path=/")),
        _ => Reply::keep(common::ok("ok")),
    });
    let jar = Arc::new(CookieJar::new());
    agent(&jar).get(server.url("/set")).call().unwrap();
    let path = std::env::temp_dir().join(format!("windlass-cookies-{}.txt", std::process::id()));
    jar.save_file(&path).unwrap();
    let loaded = Arc::new(CookieJar::load_file(&path).unwrap());
    let _ = std::fs::remove_file(&path);
    agent(&loaded).get(server.url("/again")).call().unwrap();
    server.request();
    assert_eq!(server.request().header("cookie"), Some("keep=yes"));
}
