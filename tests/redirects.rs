//! Redirects: which are followed, what the follow-up request carries, and
//! which are refused.

mod common;

use std::io::Read;

use common::{Reply, Server};
use windlass::ErrorKind;

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone";

fn redirect(code: u16, location: &str) -> Reply {
    Reply::keep(format!(
        "HTTP/1.1 {code} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// `/start` redirects with `code` to `/end`; `/end` answers `done`.
fn start_to_end(code: u16) -> Server {
    Server::serve(move |req| match req.target.as_str() {
        "/start" => redirect(code, "/end"),
        _ => Reply::keep(OK),
    })
}

/// A reader whose length windlass cannot know in advance.
struct Unsized(std::io::Cursor<Vec<u8>>);

impl Read for Unsized {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

// --- method and body --------------------------------------------------------

fn assert_post_becomes_get_without_body(code: u16) {
    let server = start_to_end(code);
    let agent = common::agent();
    let resp = agent
        .post(server.url("/start"))
        .header("Content-Type", "text/plain")
        .send_bytes(b"payload")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().unwrap(), "done");

    let first = server.request();
    assert_eq!(first.request_line(), "POST /start HTTP/1.1");
    assert_eq!(first.body, b"payload");

    let second = server.request();
    assert_eq!(second.request_line(), "GET /end HTTP/1.1");
    assert!(second.body.is_empty());
    assert_eq!(
        second.header("content-length"),
        None,
        "{}",
        second.head_str()
    );
    assert_eq!(second.header("transfer-encoding"), None);
    assert_eq!(second.header("content-type"), None);
}

#[test]
fn redirect_301_turns_post_into_get_without_body() {
    assert_post_becomes_get_without_body(301);
}

#[test]
fn redirect_302_turns_post_into_get_without_body() {
    assert_post_becomes_get_without_body(302);
}

#[test]
fn redirect_303_turns_post_into_get_without_body() {
    assert_post_becomes_get_without_body(303);
}

#[test]
fn redirect_303_turns_put_into_get_without_body() {
    let server = start_to_end(303);
    let agent = common::agent();
    agent
        .put(server.url("/start"))
        .send_bytes(b"payload")
        .unwrap();
    assert_eq!(server.request().request_line(), "PUT /start HTTP/1.1");
    let second = server.request();
    assert_eq!(second.request_line(), "GET /end HTTP/1.1");
    assert!(second.body.is_empty());
}

fn assert_method_and_body_kept(code: u16) {
    let server = start_to_end(code);
    let agent = common::agent();
    let resp = agent
        .post(server.url("/start"))
        .header("Content-Type", "text/plain")
        .send_bytes(b"payload")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().unwrap(), "done");

    assert_eq!(server.request().request_line(), "POST /start HTTP/1.1");
    let second = server.request();
    assert_eq!(second.request_line(), "POST /end HTTP/1.1");
    assert_eq!(second.header_all("content-length"), ["7"]);
    assert_eq!(second.header_all("content-type"), ["text/plain"]);
    assert_eq!(second.body, b"payload");
}

#[test]
fn redirect_307_keeps_method_and_body() {
    assert_method_and_body_kept(307);
}

#[test]
fn redirect_308_keeps_method_and_body() {
    assert_method_and_body_kept(308);
}

#[test]
fn redirect_307_with_a_reader_body_returns_the_307_response() {
    // A streamed body cannot be replayed, so the redirect is the answer.
    let server = start_to_end(307);
    let agent = common::agent();
    let reader = Unsized(std::io::Cursor::new(b"streamed".to_vec()));
    let resp = agent
        .post(server.url("/start"))
        .send_reader(reader)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(resp.header("location"), Some("/end"));
    assert_eq!(resp.url().path(), "/start");
    assert_eq!(server.request().body, b"streamed");
    drop(resp);
    assert!(server.try_request().is_none());
}

// --- how far --------------------------------------------------------------------

/// `/chain/N` redirects to `/chain/N-1`; `/chain/0` answers `done`.
fn chain_server() -> Server {
    Server::serve(|req| {
        let n: u32 = req
            .target
            .strip_prefix("/chain/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n == 0 {
            Reply::keep(OK)
        } else {
            redirect(302, &format!("/chain/{}", n - 1))
        }
    })
}

#[test]
fn ten_redirects_are_followed_by_default() {
    let server = chain_server();
    let agent = common::agent();
    let resp = agent.get(server.url("/chain/10")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.url().path(), "/chain/0");
    assert_eq!(resp.timings().redirects, 10);
    assert_eq!(resp.text().unwrap(), "done");
}

#[test]
fn eleven_redirects_are_too_many_by_default() {
    let server = chain_server();
    let agent = common::agent();
    let err = agent.get(server.url("/chain/11")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
}

#[test]
fn configured_max_redirects_is_the_limit() {
    let server = chain_server();
    let agent = common::builder().max_redirects(3).build().unwrap();
    let resp = agent.get(server.url("/chain/3")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    let err = agent.get(server.url("/chain/4")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
}

#[test]
fn max_redirects_zero_returns_the_redirect_response() {
    let server = start_to_end(302);
    let agent = common::builder().max_redirects(0).build().unwrap();
    let resp = agent.get(server.url("/start")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(resp.header("location"), Some("/end"));
    assert_eq!(resp.url().path(), "/start");
    drop(resp);
    server.request();
    assert!(server.try_request().is_none());
}

#[test]
fn request_max_redirects_zero_returns_the_redirect_response() {
    let server = start_to_end(301);
    let agent = common::agent();
    let resp = agent
        .get(server.url("/start"))
        .max_redirects(0)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 301);
    assert_eq!(resp.header("location"), Some("/end"));
}

#[test]
fn redirect_without_location_is_returned_as_is() {
    let server = Server::fixed("HTTP/1.1 302 Found\r\nContent-Length: 5\r\n\r\nfound");
    let agent = common::agent();
    let resp = agent.get(server.url("/")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(resp.text().unwrap(), "found");
}

// --- where --------------------------------------------------------------------------

#[test]
fn relative_location_is_resolved_against_the_request_url() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/a/b/c" => redirect(302, "../d/e?x=1"),
        _ => Reply::keep(OK),
    });
    let agent = common::agent();
    let resp = agent.get(server.url("/a/b/c")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    server.request();
    assert_eq!(server.request().target, "/a/d/e?x=1");
}

#[test]
fn final_url_is_reported_after_redirects() {
    let server = start_to_end(301);
    let agent = common::agent();
    let resp = agent.get(server.url("/start")).call().unwrap();
    assert_eq!(resp.url().as_str(), server.url("/end"));
    assert_eq!(resp.timings().redirects, 1);
}

#[test]
fn location_with_a_non_http_scheme_is_an_error() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/ftp" => redirect(302, "ftp://127.0.0.1/file"),
        "/file" => redirect(302, "file:///etc/passwd"),
        _ => redirect(302, "javascript:alert(1)"),
    });
    let agent = common::agent();
    for path in ["/ftp", "/file", "/js"] {
        let err = agent.get(server.url(path)).call().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{path}: {err}");
    }
}

// --- credentials -------------------------------------------------------------------

/// Sends a request to `start` carrying all three credential headers.
fn send_with_credentials(agent: &windlass::Agent, start: &str) -> windlass::Response {
    agent
        .get(start)
        .header("Authorization", "Bearer secret")
        .header("Cookie", "session=1")
        .header("Proxy-Authorization", "Basic cHJveHk6cGFzcw==")
        .call()
        .unwrap()
}

fn assert_no_credentials(req: &common::Request) {
    assert_eq!(req.header("authorization"), None, "{}", req.head_str());
    assert_eq!(req.header("cookie"), None, "{}", req.head_str());
    assert_eq!(
        req.header("proxy-authorization"),
        None,
        "{}",
        req.head_str()
    );
}

#[test]
fn credentials_are_kept_on_a_same_origin_redirect() {
    let server = start_to_end(302);
    let agent = common::agent();
    let resp = send_with_credentials(&agent, &server.url("/start"));
    assert_eq!(resp.text().unwrap(), "done");
    server.request();
    let second = server.request();
    assert_eq!(second.target, "/end");
    assert_eq!(second.header_all("authorization"), ["Bearer secret"]);
    assert_eq!(second.header_all("cookie"), ["session=1"]);
    // Proxy credentials never reach an origin, on a redirect or not: there
    // is no proxy here to read them.
    assert_eq!(second.header("proxy-authorization"), None);
}

#[test]
fn credentials_are_dropped_when_the_host_changes() {
    // Same socket, another host name: 127.0.0.1 -> localhost.
    let server = Server::serve(|req| match req.target.as_str() {
        "/start" => {
            let port = req.header("host").unwrap().rsplit(':').next().unwrap();
            redirect(302, &format!("http://localhost:{port}/end"))
        }
        _ => Reply::keep(OK),
    });
    let agent = common::builder()
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    let resp = send_with_credentials(&agent, &server.url("/start"));
    assert_eq!(resp.url().host_str(), Some("localhost"));
    assert_eq!(resp.text().unwrap(), "done");
    let first = server.request();
    assert_eq!(first.header_all("authorization"), ["Bearer secret"]);
    let second = server.request();
    assert_eq!(second.target, "/end");
    assert_eq!(
        second.header_all("host"),
        [format!("localhost:{}", server.port())]
    );
    assert_no_credentials(&second);
}

#[test]
fn credentials_are_dropped_when_the_port_changes() {
    let other = Server::fixed(OK);
    let target = other.url("/end");
    let server = Server::serve(move |_| redirect(302, &target));
    let agent = common::agent();
    let resp = send_with_credentials(&agent, &server.url("/start"));
    assert_eq!(resp.text().unwrap(), "done");
    let second = other.request();
    assert_eq!(second.target, "/end");
    assert_no_credentials(&second);
}

#[test]
fn basic_auth_from_the_url_is_dropped_when_the_host_changes() {
    let other = Server::fixed(OK);
    let target = other.url("/end");
    let server = Server::serve(move |_| redirect(302, &target));
    let agent = common::agent();
    let url = format!("http://user:pass@127.0.0.1:{}/start", server.port());
    agent.get(&url).call().unwrap();
    assert_eq!(
        server.request().header_all("authorization"),
        ["Basic dXNlcjpwYXNz"]
    );
    assert_no_credentials(&other.request());
}

// --- other caller-set headers across origins -----------------------------------------

/// Sends a GET with the secrets and harmless headers a caller typically sets.
fn send_with_custom_headers(request: windlass::RequestBuilder) -> windlass::Response {
    request
        .header("X-Api-Key", "key-123")
        .header("X-Auth-Token", "token-456")
        .header("X-Custom", "anything")
        .header("Accept", "application/json")
        .header("Accept-Language", "en")
        .header("User-Agent", "caller/1.0")
        .call()
        .unwrap()
}

/// A server on another port that `start` redirects to with `code`.
fn redirecting_to_other_port(code: u16) -> (Server, Server) {
    let other = Server::fixed(OK);
    let target = other.url("/end");
    let server = Server::serve(move |_| redirect(code, &target));
    (server, other)
}

#[test]
fn caller_set_secret_headers_are_dropped_when_the_origin_changes() {
    let (server, other) = redirecting_to_other_port(302);
    let resp = send_with_custom_headers(common::agent().get(server.url("/start")));
    assert_eq!(resp.text().unwrap(), "done");
    assert_eq!(server.request().header("x-api-key"), Some("key-123"));
    let second = other.request();
    for name in ["x-api-key", "x-auth-token", "x-custom"] {
        assert_eq!(second.header(name), None, "{name}: {}", second.head_str());
    }
    // What the client accepts and who it says it is still travel.
    assert_eq!(second.header_all("accept"), ["application/json"]);
    assert_eq!(second.header_all("accept-language"), ["en"]);
    assert_eq!(second.header_all("user-agent"), ["caller/1.0"]);
}

#[test]
fn a_resumed_download_keeps_its_range_across_origins() {
    // A release asset redirected to a CDN: the range is about the file, not
    // the caller, and must reach the new origin.
    let (server, other) = redirecting_to_other_port(302);
    common::agent()
        .get(server.url("/start"))
        .header("Range", "bytes=100-")
        .header("If-Range", "\"v1\"")
        .header("X-Api-Key", "key-123")
        .call()
        .unwrap()
        .text()
        .unwrap();
    let second = other.request();
    assert_eq!(second.header_all("range"), ["bytes=100-"]);
    assert_eq!(second.header_all("if-range"), ["\"v1\""]);
    assert_eq!(second.header("x-api-key"), None, "{}", second.head_str());
}

#[test]
fn caller_set_headers_are_kept_on_a_same_origin_redirect() {
    let server = start_to_end(302);
    let resp = send_with_custom_headers(common::agent().get(server.url("/start")));
    assert_eq!(resp.text().unwrap(), "done");
    server.request();
    let second = server.request();
    assert_eq!(second.target, "/end");
    assert_eq!(second.header_all("x-api-key"), ["key-123"]);
    assert_eq!(second.header_all("x-auth-token"), ["token-456"]);
    assert_eq!(second.header_all("x-custom"), ["anything"]);
}

#[test]
fn a_header_named_on_the_agent_or_the_request_is_kept_across_origins() {
    use windlass::http::HeaderName;
    let (server, other) = redirecting_to_other_port(302);
    let agent = common::builder()
        .keep_header_on_redirect(HeaderName::from_static("x-custom"))
        .build()
        .unwrap();
    let request = agent
        .get(server.url("/start"))
        .keep_header_on_redirect(HeaderName::from_static("x-auth-token"));
    send_with_custom_headers(request).text().unwrap();
    let second = other.request();
    assert_eq!(second.header_all("x-custom"), ["anything"]);
    assert_eq!(second.header_all("x-auth-token"), ["token-456"]);
    assert_eq!(second.header("x-api-key"), None, "{}", second.head_str());
}

#[test]
fn a_caller_set_host_never_crosses_origins() {
    use windlass::http::HeaderName;
    let (server, other) = redirecting_to_other_port(302);
    let agent = common::builder()
        .keep_header_on_redirect(HeaderName::from_static("host"))
        .build()
        .unwrap();
    agent
        .get(server.url("/start"))
        .header("Host", "internal.example")
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(server.request().header_all("host"), ["internal.example"]);
    assert_eq!(
        other.request().header_all("host"),
        [format!("127.0.0.1:{}", other.port())]
    );
}

#[test]
fn a_307_to_another_origin_keeps_the_body_and_its_content_type_only() {
    let (server, other) = redirecting_to_other_port(307);
    let resp = common::agent()
        .post(server.url("/start"))
        .header("Content-Type", "application/json")
        .header("X-Api-Key", "key-123")
        .send_string("{}")
        .unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    let second = other.request();
    assert_eq!(second.request_line(), "POST /end HTTP/1.1");
    assert_eq!(second.body, b"{}");
    assert_eq!(second.header_all("content-type"), ["application/json"]);
    assert_eq!(second.header("x-api-key"), None, "{}", second.head_str());
}

#[test]
fn a_303_to_another_origin_drops_the_content_type_with_the_body() {
    let (server, other) = redirecting_to_other_port(303);
    common::agent()
        .post(server.url("/start"))
        .header("Content-Type", "application/json")
        .send_string("{}")
        .unwrap()
        .text()
        .unwrap();
    let second = other.request();
    assert_eq!(second.request_line(), "GET /end HTTP/1.1");
    assert_eq!(second.header("content-type"), None, "{}", second.head_str());
}

// --- https -> http ------------------------------------------------------------------

#[cfg(feature = "tls")]
fn https_redirecting_to(target: String) -> Server {
    Server::serve_tls(common::pki().valid.clone(), move |_| redirect(302, &target))
}

#[cfg(feature = "tls")]
#[test]
fn https_to_http_redirect_is_refused_by_default() {
    let mut plain = Server::fixed(OK);
    let tls = https_redirecting_to(plain.url("/end"));
    let agent = common::builder()
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .resolve("localhost", vec![tls.addr()])
        .build()
        .unwrap();
    let err = agent.get(tls.https_url("/start")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsecureRedirect);
    assert_eq!(tls.request().target, "/start");
    drop(agent);
    plain.finish();
    assert_eq!(plain.accepted(), 0);
}

/// An agent that trusts the test CA, reaches `localhost` at `tls`, and
/// follows https→http redirects.
#[cfg(feature = "tls")]
fn allowing_https_to_http(tls: &Server) -> windlass::Agent {
    common::builder()
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .resolve("localhost", vec![tls.addr()])
        .https_to_http_redirects(true)
        .build()
        .unwrap()
}

#[cfg(feature = "tls")]
#[test]
fn https_to_http_redirect_is_followed_when_allowed() {
    let plain = Server::fixed(OK);
    let tls = https_redirecting_to(plain.url("/end"));
    let agent = allowing_https_to_http(&tls);
    let resp = send_with_credentials(&agent, &tls.https_url("/start"));
    assert_eq!(resp.url().scheme(), "http");
    assert_eq!(resp.text().unwrap(), "done");
    // A scheme change is a change of origin: no credentials follow.
    assert_no_credentials(&plain.request());
}

#[cfg(feature = "tls")]
#[test]
fn secrets_are_not_sent_in_cleartext_after_an_allowed_https_to_http_redirect() {
    let plain = Server::fixed(OK);
    let tls = https_redirecting_to(plain.url("/end"));
    let agent = allowing_https_to_http(&tls);
    send_with_custom_headers(agent.get(tls.https_url("/start")))
        .text()
        .unwrap();
    assert_eq!(tls.request().header("x-api-key"), Some("key-123"));
    let second = plain.request();
    assert_eq!(second.header("x-api-key"), None, "{}", second.head_str());
    assert_eq!(second.header("x-auth-token"), None, "{}", second.head_str());
}

#[test]
fn credentials_in_a_location_are_neither_used_nor_kept() {
    let target = Server::fixed(common::ok("landed"));
    let location = format!("http://user:secret@{}/landing", target.addr());
    let redirect =
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
    let origin = Server::fixed(redirect);
    let resp = common::agent().get(origin.url("/start")).call().unwrap();
    assert_eq!(resp.url().password(), None);
    assert_eq!(resp.url().username(), "");
    assert_eq!(resp.text().unwrap(), "landed");
    assert!(target.request().header("authorization").is_none());
}

// --- Location oddities --------------------------------------------------------

#[test]
fn an_empty_location_is_not_followed_and_the_redirect_is_returned() {
    let server =
        Server::fixed("HTTP/1.1 302 Found\r\nLocation: \r\nContent-Length: 4\r\n\r\nmoved");
    let resp = common::agent().get(server.url("/")).call().unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.text().unwrap(), "move");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn two_different_location_headers_are_a_protocol_error() {
    let server = Server::fixed(
        "HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n",
    );
    let err = common::agent().get(server.url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[test]
fn a_request_target_applies_to_the_first_hop_only() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/x/../start" => redirect(302, "/end"),
        _ => Reply::keep(OK),
    });
    let resp = common::agent()
        .get(server.url("/start"))
        .request_target("/x/../start")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    assert_eq!(server.request().target, "/x/../start");
    assert_eq!(server.request().target, "/end");
}

#[test]
fn keep_post_on_redirect_follows_a_301_with_the_same_post_and_body() {
    let server = start_to_end(301);
    let resp = common::agent()
        .post(server.url("/start"))
        .keep_post_on_redirect(301)
        .send_bytes(b"a=1")
        .unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    let first = server.request();
    assert_eq!(first.request_line(), "POST /start HTTP/1.1");
    let second = server.request();
    assert_eq!(second.request_line(), "POST /end HTTP/1.1");
    assert_eq!(second.body, b"a=1");
}
