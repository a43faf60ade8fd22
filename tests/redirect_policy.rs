//! The redirect policy: a callback sees each hop (status, from, to, count)
//! and follows, stops with the 3xx, or fails; `max_redirects` and the
//! https→http rule are the default policy.

mod common;

use std::sync::{Arc, Mutex};

use common::{Reply, Server};
use windlass::redirect::{Action, DefaultRedirects, Hop};
use windlass::ErrorKind;

/// `/r/N` redirects to `/r/N-1` with a 302; `/r/0` answers `done`.
fn countdown() -> Server {
    Server::serve(|req| {
        let n: u32 = req.target.trim_start_matches("/r/").parse().unwrap_or(0);
        if n == 0 {
            Reply::keep(common::ok("done"))
        } else {
            Reply::keep(format!(
                "HTTP/1.1 302 Found\r\nLocation: /r/{}\r\nContent-Length: 0\r\n\r\n",
                n - 1
            ))
        }
    })
}

#[test]
fn the_policy_sees_each_hop_status_from_to_and_count() {
    let server = countdown();
    let hops = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&hops);
    let agent = common::builder()
        .redirect_policy(move |hop: &Hop<'_>| {
            seen.lock().unwrap().push((
                hop.status().as_u16(),
                hop.from().path().to_string(),
                hop.to().path().to_string(),
                hop.count(),
                hop.is_same_origin(),
            ));
            Action::follow()
        })
        .build()
        .unwrap();
    let resp = agent.get(server.url("/r/2")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    assert_eq!(
        *hops.lock().unwrap(),
        [
            (302, "/r/2".to_string(), "/r/1".to_string(), 1, true),
            (302, "/r/1".to_string(), "/r/0".to_string(), 2, true),
        ]
    );
}

#[test]
fn a_policy_that_stops_returns_the_redirect_response() {
    let server = countdown();
    let agent = common::builder()
        .redirect_policy(|hop: &Hop<'_>| {
            if hop.count() > 1 {
                Action::stop()
            } else {
                Action::follow()
            }
        })
        .build()
        .unwrap();
    let resp = agent.get(server.url("/r/5")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(resp.url().path(), "/r/4");
    assert_eq!(resp.header("location"), Some("/r/3"));
}

#[test]
fn a_policy_that_fails_makes_a_redirect_refused_error() {
    let server = countdown();
    let agent = common::builder()
        .redirect_policy(|_: &Hop<'_>| Action::fail("no redirects for this client"))
        .build()
        .unwrap();
    let err = agent.get(server.url("/r/1")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RedirectRefused);
    assert!(err.to_string().contains("no redirects for this client"));
    assert_eq!(err.url().unwrap().path(), "/r/1");
}

#[test]
fn a_request_policy_replaces_the_agent_policy() {
    let server = countdown();
    let agent = common::builder()
        .redirect_policy(|_: &Hop<'_>| Action::fail("agent policy"))
        .build()
        .unwrap();
    let resp = agent
        .get(server.url("/r/3"))
        .redirect_policy(|_: &Hop<'_>| Action::follow())
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "done");
}

#[test]
fn a_request_max_redirects_holds_whatever_the_policy_says() {
    let server = countdown();
    let agent = common::builder()
        .redirect_policy(|_: &Hop<'_>| Action::follow())
        .build()
        .unwrap();
    let err = agent
        .get(server.url("/r/5"))
        .max_redirects(2)
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
}

#[test]
fn a_policy_that_always_follows_still_ends_a_redirect_loop() {
    let server = Server::serve(|_| {
        Reply::keep("HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
    });
    let agent = common::builder()
        .redirect_policy(|_: &Hop<'_>| Action::follow())
        .build()
        .unwrap();
    let err = agent.get(server.url("/loop")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
    assert!(err.to_string().contains("50"), "{err}");
}

#[test]
fn the_default_policy_is_max_redirects_and_can_be_delegated_to() {
    let server = countdown();
    let agent = common::builder()
        .redirect_policy(|hop: &Hop<'_>| DefaultRedirects::new(3).redirect(hop))
        .build()
        .unwrap();
    let ok = agent.get(server.url("/r/3")).call().unwrap();
    assert_eq!(ok.text().unwrap(), "done");
    let err = agent.get(server.url("/r/4")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
    assert_eq!(
        err.to_string().split(" (").next(),
        Some("stopped after 3 redirects")
    );
    let stop = agent
        .get(server.url("/r/1"))
        .redirect_policy(DefaultRedirects::new(0))
        .call()
        .unwrap();
    assert_eq!(stop.status().as_u16(), 302);
}

#[cfg(feature = "tls")]
#[test]
fn a_policy_sees_a_downgrade_and_the_default_policy_can_allow_it() {
    let plain = Server::fixed(common::ok("plain"));
    let target = plain.url("/end");
    let tls = Server::serve_tls(common::pki().valid.clone(), move |_| {
        Reply::keep(format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
        ))
    });
    let agent = |policy: DefaultRedirects| {
        common::builder()
            .add_root_certificate(common::pki().ca_pem.as_bytes())
            .resolve("localhost", vec![tls.addr()])
            .redirect_policy(move |hop: &Hop<'_>| {
                assert!(hop.is_downgrade());
                policy.redirect(hop)
            })
            .build()
            .unwrap()
    };
    let err = agent(DefaultRedirects::new(10))
        .get(tls.https_url("/start"))
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsecureRedirect);
    let resp = agent(DefaultRedirects::new(10).https_to_http(true))
        .get(tls.https_url("/start"))
        .call()
        .unwrap();
    assert_eq!(resp.url().scheme(), "http");
    assert_eq!(resp.text().unwrap(), "plain");
}

use windlass::redirect::RedirectPolicy as _;

#[test]
fn a_request_max_redirects_can_raise_the_agents() {
    let server = countdown();
    let agent = common::builder().max_redirects(2).build().unwrap();
    let resp = agent
        .get(server.url("/r/5"))
        .max_redirects(6)
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    let err = agent.get(server.url("/r/5")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
}
