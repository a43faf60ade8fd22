//! Through a real forward proxy: tinyproxy, started by `.ci/run`, which
//! exports `WINDLASS_TEST_TINYPROXY=127.0.0.1:PORT`. Without the variable the
//! tests say so and pass (a bare `cargo test`), except under CI, where they
//! fail: there the proxy must be present.

mod common;

use common::Server;
use windlass::{ErrorKind, Proxy, ProxyStatus};

fn tinyproxy() -> Option<Proxy> {
    match std::env::var("WINDLASS_TEST_TINYPROXY") {
        Ok(addr) if !addr.is_empty() => Some(Proxy::new(&addr).unwrap()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but WINDLASS_TEST_TINYPROXY is not: .ci/run starts tinyproxy"
            );
            eprintln!("skipped: WINDLASS_TEST_TINYPROXY is not set (.ci/run starts tinyproxy)");
            None
        }
    }
}

#[cfg(feature = "tls")]
#[test]
fn an_https_request_tunnels_through_tinyproxy_to_a_rustls_server() {
    let Some(proxy) = tinyproxy() else {
        return;
    };
    let origin = Server::serve_tls(common::pki().valid.clone(), |req| {
        common::Reply::keep(common::ok(&format!("secure {}", req.target)))
    });
    let agent = common::builder()
        .proxy(proxy)
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/t", origin.port());
    let resp = agent.get(&url).call().unwrap();
    let timings = resp.timings().clone();
    assert_eq!(resp.text().unwrap(), "secure /t");
    assert!(
        timings.proxy_handshake.is_some() && timings.tls.is_some(),
        "{timings:?}"
    );
    // The tunnel stays open for the next request.
    let again = agent.get(&url).call().unwrap();
    assert!(again.timings().reused, "{:?}", again.timings());
    assert_eq!(again.text().unwrap(), "secure /t");
    assert_eq!(origin.accepted(), 1);
}

#[test]
fn a_plain_request_goes_through_tinyproxy_in_absolute_form() {
    let Some(proxy) = tinyproxy() else {
        return;
    };
    let origin = Server::fixed(common::ok("plain"));
    let agent = common::builder().proxy(proxy).build().unwrap();
    let resp = agent.get(origin.url("/p?q=1")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "plain");
    let req = origin.request();
    // tinyproxy read the absolute form and sent the origin form on.
    assert_eq!(req.target, "/p?q=1");
    assert!(
        req.header("via").is_some_and(|v| v.contains("tinyproxy")),
        "{}",
        req.head_str()
    );
}

#[test]
fn tinyproxy_failing_to_reach_the_origin_is_a_proxy_error_with_its_status() {
    let Some(proxy) = tinyproxy() else {
        return;
    };
    let closed = common::refused_addr().port();
    let agent = common::builder().proxy(proxy).build().unwrap();
    let err = agent
        .get(format!("https://127.0.0.1:{closed}/"))
        .call()
        .unwrap_err();
    match err.kind() {
        ErrorKind::Proxy(ProxyStatus::Http(status)) => {
            assert!(status.is_server_error(), "{status}")
        }
        other => panic!("{other:?}: {err}"),
    }
}
