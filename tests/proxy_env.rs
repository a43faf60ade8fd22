//! Proxies from the environment. Each case runs in a child process (this
//! test binary, running only `child_request_outcome`) with exactly the
//! variables it names, so tests never race on the environment.

mod common;

use std::process::Command;

use common::Server;

/// Every variable the proxy selection reads; removed from each child first.
const VARS: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// Run one request in a child with these variables; return what it got:
/// the body, or `error <kind>`.
fn outcome(url: &str, settings: &[(&str, String)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_request_outcome",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.env("WINDLASS_CHILD_URL", url);
    for (k, v) in settings {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("OUTCOME: ").map(|(_, o)| o))
        .unwrap_or_else(|| panic!("the child ran no request: {stdout}"))
        .to_string()
}

/// The child's side: one request as the environment says, its outcome on
/// stdout. Does nothing in the parent's own run.
#[test]
fn child_request_outcome() {
    let Ok(url) = std::env::var("WINDLASS_CHILD_URL") else {
        return;
    };
    let result = if std::env::var("WINDLASS_CHILD_DEFAULT_AGENT").is_ok() {
        windlass::get(&url).call()
    } else {
        let mut builder = common::builder();
        if let Ok(port) = std::env::var("WINDLASS_CHILD_ORIGIN_PORT") {
            let addr = format!("127.0.0.1:{port}").parse().unwrap();
            builder = builder.resolve("origin.test", vec![addr]);
        }
        if std::env::var("WINDLASS_CHILD_NO_ENV").is_ok() {
            builder = builder.proxy_from_env(false);
        }
        if let Ok(list) = std::env::var("WINDLASS_CHILD_NO_PROXY") {
            builder = builder.no_proxy(&list);
        }
        builder.build().unwrap().get(&url).call()
    };
    match result {
        Ok(resp) => println!("OUTCOME: {}", resp.text().unwrap()),
        Err(e) => println!("OUTCOME: error {:?}", e.kind()),
    }
}

fn var(name: &str, value: impl Into<String>) -> (&str, String) {
    (name, value.into())
}

#[test]
fn the_default_agent_uses_http_proxy_from_the_environment() {
    let proxy = Server::fixed(common::ok("via proxy"));
    let got = outcome(
        "http://origin.invalid/x",
        &[
            var("http_proxy", proxy.url("")),
            var("WINDLASS_CHILD_DEFAULT_AGENT", "1"),
        ],
    );
    assert_eq!(got, "via proxy");
    assert_eq!(proxy.request().target, "http://origin.invalid/x");
}

#[test]
fn lowercase_http_proxy_wins_over_uppercase() {
    let lower = Server::fixed(common::ok("lower"));
    let upper = Server::fixed(common::ok("upper"));
    let got = outcome(
        "http://origin.invalid/",
        &[
            var("HTTP_PROXY", upper.url("")),
            var("http_proxy", lower.url("")),
        ],
    );
    assert_eq!(got, "lower");
    let got = outcome(
        "http://origin.invalid/",
        &[var("HTTP_PROXY", upper.url(""))],
    );
    assert_eq!(got, "upper");
}

#[test]
fn uppercase_http_proxy_is_ignored_in_a_cgi_program() {
    let proxy = Server::fixed(common::ok("via proxy"));
    let origin = Server::fixed(common::ok("direct"));
    let url = format!("http://origin.test:{}/", origin.port());
    let got = outcome(
        &url,
        &[
            var("HTTP_PROXY", proxy.url("")),
            var("REQUEST_METHOD", "GET"),
            var("WINDLASS_CHILD_ORIGIN_PORT", origin.port().to_string()),
        ],
    );
    assert_eq!(got, "direct");
    assert_eq!(proxy.accepted(), 0);
}

#[test]
fn no_proxy_from_the_environment_sends_matching_hosts_direct() {
    let proxy = Server::fixed(common::ok("via proxy"));
    let origin = Server::fixed(common::ok("direct"));
    let url = format!("http://origin.test:{}/", origin.port());
    let run = |no_proxy: &str| {
        outcome(
            &url,
            &[
                var("http_proxy", proxy.url("")),
                var("NO_PROXY", no_proxy),
                var("WINDLASS_CHILD_ORIGIN_PORT", origin.port().to_string()),
            ],
        )
    };
    assert_eq!(run(".test"), "direct");
    assert_eq!(
        run(&format!("other.example, origin.test:{}", origin.port())),
        "direct"
    );
    assert_eq!(run("*"), "direct");
    assert_eq!(run("other.example,origin.test:1"), "via proxy");
}

#[test]
fn an_explicit_no_proxy_list_replaces_the_environments() {
    let proxy = Server::fixed(common::ok("via proxy"));
    let origin = Server::fixed(common::ok("direct"));
    let url = format!("http://origin.test:{}/", origin.port());
    let got = outcome(
        &url,
        &[
            var("http_proxy", proxy.url("")),
            var("no_proxy", "origin.test"),
            var("WINDLASS_CHILD_NO_PROXY", "elsewhere.example"),
            var("WINDLASS_CHILD_ORIGIN_PORT", origin.port().to_string()),
        ],
    );
    assert_eq!(got, "via proxy");
}

#[test]
fn proxy_from_env_false_ignores_the_environment() {
    let proxy = Server::fixed(common::ok("via proxy"));
    let origin = Server::fixed(common::ok("direct"));
    let got = outcome(
        &format!("http://origin.test:{}/", origin.port()),
        &[
            var("http_proxy", proxy.url("")),
            var("WINDLASS_CHILD_NO_ENV", "1"),
            var("WINDLASS_CHILD_ORIGIN_PORT", origin.port().to_string()),
        ],
    );
    assert_eq!(got, "direct");
}

#[test]
fn https_requests_use_https_proxy_then_all_proxy() {
    let refusing = |body: &str| {
        let answer = format!(
            "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nX-Who: {body}\r\n\r\n"
        );
        Server::fixed(answer)
    };
    let https = refusing("https");
    let all = refusing("all");
    let got = outcome(
        "https://origin.invalid/",
        &[
            var("https_proxy", https.url("")),
            var("ALL_PROXY", all.url("")),
        ],
    );
    assert_eq!(got, "error Proxy(Http(407))");
    assert_eq!(https.request().target, "origin.invalid:443");
    let got = outcome("https://origin.invalid/", &[var("ALL_PROXY", all.url(""))]);
    assert_eq!(got, "error Proxy(Http(407))");
    assert_eq!(all.request().target, "origin.invalid:443");
    // http_proxy is for http only.
    let got = outcome(
        "https://origin.invalid/",
        &[var("http_proxy", https.url(""))],
    );
    assert_eq!(got, "error Dns");
}

#[test]
fn loopback_hosts_go_through_an_environment_proxy_unless_no_proxy_names_them() {
    // As curl: no host is exempt by itself.
    let proxy = Server::fixed(common::ok("via proxy"));
    let origin = Server::fixed(common::ok("direct"));
    let got = outcome(&origin.url("/"), &[var("http_proxy", proxy.url(""))]);
    assert_eq!(got, "via proxy");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(origin.accepted(), 0);
    let got = outcome(
        &origin.url("/"),
        &[
            var("http_proxy", proxy.url("")),
            var("no_proxy", "localhost,127.0.0.1".to_string()),
        ],
    );
    assert_eq!(got, "direct");
    assert_eq!(proxy.accepted(), 1);
}

#[test]
fn a_socks_proxy_from_all_proxy_is_used() {
    // A "proxy" that speaks HTTP where SOCKS5 is expected: the request
    // reached it, and failed as a SOCKS handshake does against garbage.
    let proxy = Server::start(|conn| conn.write(b"HTTP/1.1 400 Bad Request\r\n\r\n"));
    let got = outcome(
        "http://origin.invalid/",
        &[var("all_proxy", format!("socks5h://{}", proxy.addr()))],
    );
    assert_eq!(got, "error Protocol");
    assert_eq!(proxy.accepted(), 1);
}
