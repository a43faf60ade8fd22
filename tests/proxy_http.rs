//! HTTP and HTTPS proxies: CONNECT answered with an error, stalled or
//! garbled; TLS to an `https://` proxy, plain requests through it and TLS to
//! the origin inside it. The scripted proxy serves the origin itself.

#![cfg(feature = "tls")]

mod common;
mod proxy_support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_support::{read_head, serve_origin, serve_origin_tls, Scripted};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use windlass::{ErrorKind, Phase, Proxy, ProxyStatus};

fn agent_via(proxy: &str) -> windlass::Agent {
    common::builder()
        .proxy(Proxy::new(proxy).unwrap())
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .build()
        .unwrap()
}

/// A plain HTTP proxy that answers every CONNECT with `answer`.
fn answering(answer: &'static [u8]) -> Scripted {
    Scripted::start(move |mut s, tx| {
        let Some(head) = read_head(&mut s) else {
            return;
        };
        tx.send(head).unwrap();
        let _ = s.write_all(answer);
    })
}

#[test]
fn a_407_to_connect_is_a_proxy_error_carrying_the_status() {
    let proxy = answering(
        b"HTTP/1.1 407 Proxy Authentication Required\r\n\
          Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n",
    );
    let err = agent_via(&proxy.url("http"))
        .get("https://origin.test/")
        .call()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Proxy(ProxyStatus::Http(
            windlass::http::StatusCode::PROXY_AUTHENTICATION_REQUIRED
        ))
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("proxy {} refused", proxy.addr)),
        "{text}"
    );
    assert!(proxy
        .report()
        .starts_with("CONNECT origin.test:443 HTTP/1.1\r\n"));
}

#[test]
fn garbage_in_answer_to_connect_is_a_protocol_error_naming_the_proxy() {
    let proxy = answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    let err = agent_via(&proxy.url("http"))
        .get("https://origin.test/")
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(
        err.to_string().contains(&format!("proxy {}", proxy.addr)),
        "{err}"
    );
}

#[test]
fn a_proxy_closing_before_its_connect_answer_is_a_protocol_error() {
    let proxy = answering(b"HTTP/1.1 200 Connec");
    let err = agent_via(&proxy.url("http"))
        .get("https://origin.test/")
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
}

#[test]
fn a_stalled_connect_times_out_in_the_proxy_handshake_phase() {
    let proxy = Scripted::start(|mut s, tx| {
        let head = read_head(&mut s);
        tx.send(head.unwrap_or_default()).unwrap();
        let _ = s.read(&mut [0u8; 1]);
    });
    let agent = common::builder()
        .proxy(Proxy::new(&proxy.url("http")).unwrap())
        .timeout_connect(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = agent.get("https://origin.test/").call().unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(Phase::ProxyHandshake),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_dead_http_proxy_is_named_in_the_connect_error() {
    let port = common::refused_addr().port();
    let err = agent_via(&format!("127.0.0.1:{port}"))
        .get("http://origin.test/")
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("cannot connect to proxy 127.0.0.1:{port}")),
        "{err}"
    );
}

/// An `https://` proxy with `cert`: TLS, then either an absolute-form
/// request it answers, or a CONNECT after which it serves the origin over a
/// second TLS session inside the first.
fn https_proxy(cert: Arc<ServerConfig>) -> Scripted {
    Scripted::start(move |s, tx| {
        let Ok(conn) = ServerConnection::new(cert.clone()) else {
            return;
        };
        let mut tls = StreamOwned::new(conn, s);
        let Some(head) = read_head(&mut tls) else {
            return;
        };
        tx.send(head.clone()).unwrap();
        if head.starts_with("CONNECT ") {
            tls.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            serve_origin_tls(tls, common::pki().valid.clone(), "inside", tx);
        } else {
            let _ = tls.write_all(&common::ok("from the proxy"));
            let _ = tls.flush();
        }
    })
}

#[test]
fn an_https_proxy_gets_plain_requests_in_absolute_form_over_tls_with_credentials() {
    let proxy = https_proxy(common::pki().valid.clone());
    let agent = agent_via(&format!("https://u:p@localhost:{}", proxy.addr.port()));
    let resp = agent.get("http://origin.test/page").call().unwrap();
    let timings = resp.timings().clone();
    assert_eq!(resp.text().unwrap(), "from the proxy");
    let head = proxy.report();
    assert!(
        head.starts_with("GET http://origin.test/page HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Proxy-Authorization: Basic dTpw\r\n"),
        "{head}"
    );
    assert!(timings.proxy_tls.is_some(), "{timings:?}");
    assert_eq!(timings.proxy_handshake, None);
}

#[test]
fn an_https_origin_through_an_https_proxy_runs_tls_inside_tls() {
    let proxy = https_proxy(common::pki().valid.clone());
    let agent = agent_via(&format!("https://u:p@localhost:{}", proxy.addr.port()));
    let resp = agent.get("https://localhost:9443/in").call().unwrap();
    let timings = resp.timings().clone();
    assert_eq!(resp.text().unwrap(), "inside");
    let connect = proxy.report();
    assert!(
        connect.starts_with("CONNECT localhost:9443 HTTP/1.1\r\n"),
        "{connect}"
    );
    assert!(
        connect.contains("Proxy-Authorization: Basic dTpw\r\n"),
        "{connect}"
    );
    let inner = proxy.report();
    assert!(inner.starts_with("GET /in HTTP/1.1\r\n"), "{inner}");
    assert!(
        !inner.to_ascii_lowercase().contains("proxy-authorization"),
        "{inner}"
    );
    assert!(
        timings.proxy_tls.is_some() && timings.tls.is_some(),
        "{timings:?}"
    );
}

#[test]
fn an_https_proxy_with_an_untrusted_certificate_is_a_tls_error_naming_it() {
    let proxy = https_proxy(common::pki().self_signed.clone());
    let err = agent_via(&format!("https://localhost:{}", proxy.addr.port()))
        .get("http://origin.test/")
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("proxy localhost:"), "{err}");
}

#[test]
fn proxy_root_certificates_are_trusted_for_the_proxy_only() {
    let proxy = https_proxy(common::pki().valid.clone());
    let agent = common::builder()
        .proxy(Proxy::new(&format!("https://localhost:{}", proxy.addr.port())).unwrap())
        .proxy_root_certificate(common::pki().ca_pem.as_bytes())
        .build()
        .unwrap();
    let resp = agent.get("http://origin.test/").call().unwrap();
    assert_eq!(resp.text().unwrap(), "from the proxy");
    proxy.report();
    // The origin's certificate comes from the same CA, which the agent
    // does not trust for origins.
    let err = agent.get("https://localhost:9443/").call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
}

#[test]
fn a_plain_origin_through_a_connect_proxy_stays_in_absolute_form() {
    // No CONNECT for http: the proxy reads the request itself.
    let proxy = Scripted::start(|s, tx| serve_origin(s, "plain", tx));
    let resp = agent_via(&proxy.url("http"))
        .get("http://origin.test:8080/a")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "plain");
    assert!(proxy
        .report()
        .starts_with("GET http://origin.test:8080/a HTTP/1.1\r\n"));
}

#[test]
fn each_redirect_hop_picks_its_own_route() {
    // direct.test is on the no-proxy list and redirects to a host that is not.
    let origin = common::Server::fixed(
        "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.test/next\r\nContent-Length: 0\r\n\r\n",
    );
    let proxy = Scripted::start(|s, tx| serve_origin(s, "proxied hop", tx));
    let agent = common::builder()
        .proxy(Proxy::new(&proxy.url("http")).unwrap())
        .no_proxy("direct.test")
        .resolve("direct.test", vec![origin.addr()])
        .build()
        .unwrap();
    let resp = agent
        .get(format!("http://direct.test:{}/start", origin.port()))
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "proxied hop");
    assert_eq!(origin.request().target, "/start");
    assert!(proxy
        .report()
        .starts_with("GET http://elsewhere.test/next HTTP/1.1\r\n"));
}

#[test]
fn a_stalled_tls_handshake_with_an_https_proxy_times_out_in_its_own_phase() {
    let proxy = Scripted::start(|mut s, tx| {
        tx.send("accepted".into()).unwrap();
        // Reads the ClientHello and never answers.
        let _ = s.read(&mut [0u8; 4096]);
        let _ = s.read(&mut [0u8; 1]);
    });
    let agent = common::builder()
        .proxy(Proxy::new(&format!("https://localhost:{}", proxy.addr.port())).unwrap())
        .timeout_tls(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = agent.get("https://origin.test/").call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::ProxyTls), "{err}");
    assert!(err.to_string().contains("timeout_tls"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(proxy.report(), "accepted");
}

#[test]
fn an_https_tunnel_through_an_https_proxy_is_reused() {
    let proxy = https_proxy(common::pki().valid.clone());
    let agent = agent_via(&format!("https://localhost:{}", proxy.addr.port()));
    for round in 0..3 {
        let resp = agent.get("https://localhost:9443/r").call().unwrap();
        assert_eq!(resp.timings().reused, round > 0, "round {round}");
        assert_eq!(resp.text().unwrap(), "inside");
    }
    assert!(proxy
        .report()
        .starts_with("CONNECT localhost:9443 HTTP/1.1\r\n"));
    for _ in 0..3 {
        assert!(proxy.report().starts_with("GET /r HTTP/1.1\r\n"));
    }
}

#[test]
fn a_request_can_choose_its_own_proxy_or_go_direct() {
    let origin = common::Server::fixed("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ndirect");
    let proxy = Scripted::start(|s, tx| serve_origin(s, "proxied", tx));
    // An agent with no proxy: one request names its own.
    let plain = common::builder().proxy_from_env(false).build().unwrap();
    let resp = plain
        .get("http://origin.test:8080/own")
        .proxy(Proxy::new(&proxy.url("http")).unwrap())
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "proxied");
    assert!(proxy
        .report()
        .starts_with("GET http://origin.test:8080/own HTTP/1.1\r\n"));
    // An agent with a proxy: one request goes straight to the origin, in
    // origin form, on a connection of its own route.
    let proxied = agent_via(&proxy.url("http"));
    let resp = proxied
        .get(origin.url("/direct"))
        .without_proxy()
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "direct");
    assert_eq!(origin.request().target, "/direct");
}

#[test]
fn the_agents_insecure_setting_does_not_reach_an_https_proxy() {
    // `-k` is for origins; a proxy's check is off only with its own setting.
    let proxy = https_proxy(common::pki().self_signed.clone());
    let agent = common::builder()
        .proxy(Proxy::new(&format!("https://localhost:{}", proxy.addr.port())).unwrap())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let err = agent.get("http://origin.test/").call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("proxy localhost:"), "{err}");
}
