//! Requests on the wire: the bytes the server receives for each way of
//! building a request, and the requests windlass refuses to send at all.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

use common::{accept_encoding, Reply, Server};
use windlass::{Agent, Error, ErrorKind, Response};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A reader whose length windlass cannot know in advance.
struct Unsized(std::io::Cursor<Vec<u8>>);

impl Read for Unsized {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

// --- the request head ------------------------------------------------------------

// The default Accept-Encoding names what the `gzip` feature decodes.
#[cfg(feature = "gzip")]
#[test]
fn get_request_head_is_exact() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent.get(server.url("/path/x?a=1")).call().unwrap();
    let req = server.request();
    assert_eq!(
        req.head_str(),
        format!(
            "GET /path/x?a=1 HTTP/1.1\r\n\
             Host: 127.0.0.1:{}\r\n\
             User-Agent: windlass/0.1.0\r\n\
             Accept: */*\r\n\
             Accept-Encoding: {ae}\r\n\
             \r\n",
            server.port(),
            ae = accept_encoding(),
        )
    );
    assert!(req.body.is_empty());
}

// The default Accept-Encoding names what the `gzip` feature decodes.
#[cfg(feature = "gzip")]
#[test]
fn post_request_head_with_bytes_is_exact() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .post(server.url("/upload"))
        .send_bytes(b"hello")
        .unwrap();
    let req = server.request();
    assert_eq!(
        req.head_str(),
        format!(
            "POST /upload HTTP/1.1\r\n\
             Host: 127.0.0.1:{}\r\n\
             User-Agent: windlass/0.1.0\r\n\
             Accept: */*\r\n\
             Accept-Encoding: {ae}\r\n\
             Content-Length: 5\r\n\
             \r\n",
            server.port(),
            ae = accept_encoding(),
        )
    );
    assert_eq!(req.body, b"hello");
}

#[test]
fn each_method_is_sent_by_name() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    let url = server.url("/m");
    let calls: Vec<(&str, Result<Response, Error>)> = vec![
        ("GET", agent.get(&url).call()),
        ("POST", agent.post(&url).call()),
        ("PUT", agent.put(&url).call()),
        ("DELETE", agent.delete(&url).call()),
        ("HEAD", agent.head(&url).call()),
        ("PATCH", agent.patch(&url).call()),
        ("OPTIONS", agent.request("OPTIONS", &url).call()),
    ];
    for (method, result) in calls {
        let resp = result.unwrap();
        if method != "HEAD" {
            assert_eq!(resp.text().unwrap(), "ok");
        }
        assert_eq!(
            server.request().request_line(),
            format!("{method} /m HTTP/1.1")
        );
    }
}

#[test]
fn send_bytes_sends_content_length_and_the_body() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .post(server.url("/upload"))
        .send_bytes(b"hello")
        .unwrap();
    let req = server.request();
    assert_eq!(req.request_line(), "POST /upload HTTP/1.1");
    assert_eq!(req.header_all("content-length"), ["5"]);
    assert_eq!(req.header("transfer-encoding"), None);
    assert_eq!(req.body, b"hello");
}

#[test]
fn send_string_sends_content_length_and_the_body() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent.put(server.url("/doc")).send_string("héllo").unwrap();
    let req = server.request();
    assert_eq!(req.request_line(), "PUT /doc HTTP/1.1");
    assert_eq!(req.header_all("content-length"), ["6"]);
    assert_eq!(req.body, "héllo".as_bytes());
}

#[test]
fn send_reader_uses_chunked_transfer_encoding() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    let reader = Unsized(std::io::Cursor::new(b"hello world".to_vec()));
    agent
        .post(server.url("/stream"))
        .send_reader(reader)
        .unwrap();
    let req = server.request();
    assert_eq!(req.request_line(), "POST /stream HTTP/1.1");
    assert_eq!(req.header_all("transfer-encoding"), ["chunked"]);
    assert_eq!(req.header("content-length"), None);
    assert!(req.chunked);
    assert_eq!(req.body, b"hello world");
    assert!(req.raw_body.ends_with(b"0\r\n\r\n"));
}

#[test]
fn send_form_is_urlencoded_with_its_content_type() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .post(server.url("/form"))
        .send_form(&[("name", "a b"), ("x", "&="), ("é", "1")])
        .unwrap();
    let req = server.request();
    let body = "name=a+b&x=%26%3D&%C3%A9=1";
    assert_eq!(
        req.header_all("content-type"),
        ["application/x-www-form-urlencoded"]
    );
    assert_eq!(req.header_all("content-length"), [body.len().to_string()]);
    assert_eq!(String::from_utf8(req.body).unwrap(), body);
}

// --- query -------------------------------------------------------------------------

#[test]
fn query_pairs_are_percent_encoded() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/search"))
        .query("q", "a b&c=d/é")
        .query("x", "1")
        .call()
        .unwrap();
    assert_eq!(
        server.request().target,
        "/search?q=a+b%26c%3Dd%2F%C3%A9&x=1"
    );
}

#[test]
fn query_pairs_are_appended_to_the_url_query() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/search?a=1"))
        .query("b", "2")
        .call()
        .unwrap();
    assert_eq!(server.request().target, "/search?a=1&b=2");
}

// --- headers -------------------------------------------------------------------------

#[test]
fn custom_user_agent_header_replaces_the_default() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .header("User-Agent", "custom/1")
        .call()
        .unwrap();
    assert_eq!(server.request().header_all("user-agent"), ["custom/1"]);
}

#[test]
fn custom_accept_encoding_header_replaces_the_default() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .header("accept-encoding", "identity")
        .call()
        .unwrap();
    assert_eq!(server.request().header_all("accept-encoding"), ["identity"]);
}

#[test]
fn agent_user_agent_replaces_the_default() {
    let server = Server::fixed(OK);
    let agent = common::builder().user_agent("agent/2").build().unwrap();
    agent.get(server.url("/")).call().unwrap();
    assert_eq!(server.request().header_all("user-agent"), ["agent/2"]);
}

#[test]
fn custom_headers_are_sent() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .header("X-Request-Id", "42")
        .header("Accept", "application/json")
        .call()
        .unwrap();
    let req = server.request();
    assert_eq!(req.header_all("x-request-id"), ["42"]);
    assert_eq!(req.header_all("accept"), ["application/json"]);
}

#[test]
fn basic_auth_sends_an_authorization_header() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .basic_auth("user", Some("pass"))
        .call()
        .unwrap();
    assert_eq!(
        server.request().header_all("authorization"),
        ["Basic dXNlcjpwYXNz"]
    );
}

#[test]
fn basic_auth_without_password_keeps_the_colon() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .basic_auth("user", None)
        .call()
        .unwrap();
    assert_eq!(
        server.request().header_all("authorization"),
        ["Basic dXNlcjo="]
    );
}

#[test]
fn url_userinfo_becomes_basic_authorization() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    let url = format!("http://user:pass@127.0.0.1:{}/private", server.port());
    agent.get(&url).call().unwrap();
    let req = server.request();
    assert_eq!(req.header_all("authorization"), ["Basic dXNlcjpwYXNz"]);
    // The credentials travel only in Authorization.
    assert_eq!(req.target, "/private");
    assert_eq!(
        req.header_all("host"),
        [format!("127.0.0.1:{}", server.port())]
    );
    assert!(!req.head_str().contains("pass@"));
}

#[test]
fn url_userinfo_is_percent_decoded_before_encoding() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    let url = format!("http://us%40er:p%3Ass@127.0.0.1:{}/", server.port());
    agent.get(&url).call().unwrap();
    // base64("us@er:p:ss")
    assert_eq!(
        server.request().header_all("authorization"),
        ["Basic dXNAZXI6cDpzcw=="]
    );
}

// --- injection: rejected before a single byte is sent ----------------------

/// A server that records every byte it receives.
fn recording_server() -> Server {
    Server::start(|conn| {
        conn.read_to_end();
    })
}

/// Runs `call` against a recording server; asserts it fails with `kind` and
/// that the server received no byte at all.
fn assert_refused_before_sending(
    kind: ErrorKind,
    call: impl FnOnce(&Agent, &str) -> Result<Response, Error>,
) {
    let mut server = recording_server();
    let agent = common::agent();
    let err = match call(&agent, &server.url("/")) {
        Ok(resp) => panic!("expected {kind:?}, got {}", resp.status()),
        Err(e) => e,
    };
    assert_eq!(err.kind(), kind, "{err}");
    drop(agent);
    server.finish();
    assert_eq!(server.bytes_received(), 0, "bytes reached the server");
}

#[test]
fn crlf_in_header_value_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Test", "a\r\nX-Injected: 1").call()
    });
}

#[test]
fn lone_lf_in_header_value_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Test", "a\nX-Injected: 1").call()
    });
}

#[test]
fn lone_cr_in_header_value_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Test", "a\rb").call()
    });
}

#[test]
fn nul_in_header_value_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Test", "a\0b").call()
    });
}

#[test]
fn crlf_in_header_name_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Test\r\nX-Injected", "1").call()
    });
}

#[test]
fn nul_in_header_name_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Te\0st", "1").call()
    });
}

#[test]
fn colon_or_space_in_header_name_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent.get(url).header("X-Test: evil", "1").call()
    });
}

#[test]
fn invalid_header_is_rejected_even_with_a_body() {
    assert_refused_before_sending(ErrorKind::InvalidHeader, |agent, url| {
        agent
            .post(url)
            .header("X-Test", "a\r\nb")
            .send_bytes(b"payload")
    });
}

#[test]
fn method_with_crlf_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidMethod, |agent, url| {
        agent
            .request("GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", url)
            .call()
    });
}

#[test]
fn method_with_space_is_rejected_before_sending() {
    assert_refused_before_sending(ErrorKind::InvalidMethod, |agent, url| {
        agent.request("GE T", url).call()
    });
}

#[test]
fn an_invalid_method_is_named_in_plain_words() {
    let err = common::agent()
        .request("GE T", "http://127.0.0.1:1/")
        .call()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidMethod);
    assert_eq!(
        err.to_string(),
        "invalid HTTP method \"GE T\": a method is one word, without spaces or \
         control characters (http://127.0.0.1:1/)"
    );
}

#[test]
fn url_with_crlf_never_puts_a_raw_crlf_on_the_wire() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    let url = format!("{}\r\nX-Injected: 1", server.url("/a b"));
    match agent.get(&url).call() {
        // Refusing the URL is fine...
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidUrl, "{e}");
            assert_eq!(server.bytes_received(), 0);
        }
        // ...and so is sending it with the CR, LF and space removed or encoded.
        Ok(_) => {
            let req = server.request();
            assert_eq!(req.header("x-injected"), None, "{}", req.head_str());
            assert!(!req.target.contains([' ', '\r', '\n']), "{:?}", req.target);
            assert_eq!(req.head_str().matches("\r\n\r\n").count(), 1);
            assert!(req.target.starts_with("/a%20b"), "{:?}", req.target);
        }
    }
}

#[test]
fn query_value_with_crlf_is_percent_encoded() {
    let server = Server::fixed(OK);
    let agent = common::agent();
    agent
        .get(server.url("/"))
        .query("q", "a\r\nX-Injected: 1")
        .call()
        .unwrap();
    let req = server.request();
    assert_eq!(req.target, "/?q=a%0D%0AX-Injected%3A+1");
    assert_eq!(req.header("x-injected"), None);
}

// --- URLs -------------------------------------------------------------------------

#[test]
fn non_http_scheme_is_an_invalid_url() {
    let agent = common::agent();
    for url in [
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:1/",
    ] {
        let err = agent.get(url).call().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url}: {err}");
    }
}

#[test]
fn unparseable_url_is_an_invalid_url() {
    let agent = common::agent();
    for url in ["not a url", "http://", "http://[::1"] {
        let err = agent.get(url).call().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url}: {err}");
    }
}

// --- status codes ---------------------------------------------------------------

#[test]
fn non_2xx_responses_are_not_errors() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/missing" => Reply::keep("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"),
        _ => Reply::keep("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"),
    });
    let agent = common::agent();
    let resp = agent.get(server.url("/missing")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.text().unwrap(), "not found");
    let resp = agent.get(server.url("/broken")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.text().unwrap(), "oops");
}

#[test]
fn error_for_status_turns_404_into_a_status_error() {
    let server = Server::fixed("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    let agent = common::agent();
    let err = agent
        .get(server.url("/missing"))
        .call()
        .unwrap()
        .error_for_status()
        .unwrap_err();
    match err.kind() {
        ErrorKind::Status(code) => assert_eq!(code.as_u16(), 404),
        other => panic!("expected Status(404), got {other:?}"),
    }
    assert_eq!(err.url().map(|u| u.path()), Some("/missing"));
}

#[test]
fn error_for_status_turns_503_into_a_status_error() {
    let server = Server::fixed("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    let agent = common::agent();
    let err = agent
        .get(server.url("/"))
        .call()
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Status(windlass::http::StatusCode::SERVICE_UNAVAILABLE)
    );
}

#[test]
fn error_for_status_passes_2xx_and_3xx_through() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/moved" => Reply::keep(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n",
        ),
        _ => Reply::keep("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
    });
    let agent = common::builder().max_redirects(0).build().unwrap();
    let resp = agent.get(server.url("/new")).call().unwrap();
    let resp = resp.error_for_status().unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.text().unwrap(), "ok");
    let resp = agent.get(server.url("/moved")).call().unwrap();
    assert_eq!(resp.error_for_status().unwrap().status().as_u16(), 301);
}

// --- the crate-level functions ------------------------------------------------

#[test]
fn crate_level_get_reuses_one_connection_across_calls() {
    let server = Server::fixed(OK);
    let url = server.url("/");
    assert_eq!(windlass::get(&url).call().unwrap().text().unwrap(), "ok");
    assert_eq!(windlass::get(&url).call().unwrap().text().unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn a_callers_content_length_cannot_contradict_the_body() {
    let server = Server::fixed(common::ok("fine"));
    let agent = common::agent();
    agent
        .post(server.url("/"))
        .header("content-length", "3")
        .header("transfer-encoding", "chunked")
        .send_bytes(b"hello")
        .unwrap()
        .text()
        .unwrap();
    let req = server.request();
    assert_eq!(req.header_all("content-length"), ["5"]);
    assert!(req.header("transfer-encoding").is_none());
    assert_eq!(req.body, b"hello");
    // The connection stayed in step: the next request reuses it cleanly.
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(server.accepted(), 1);
}

#[test]
fn durations_too_large_to_add_mean_never() {
    let server = Server::fixed(common::ok("fine"));
    let agent = common::builder()
        .idle_timeout(std::time::Duration::MAX)
        .max_lifetime(std::time::Duration::MAX)
        .leak_warn_after(std::time::Duration::MAX)
        .dns_ttl(std::time::Duration::MAX)
        .max_connections_per_host(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let text = agent.get(server.url("/")).call().unwrap().text().unwrap();
        assert_eq!(text, "fine");
    }
    assert_eq!(server.accepted(), 1);
}

// --- an answer that arrives before the upload is finished -------------------------

/// How the server ends the connection after its early answer.
#[derive(Clone, Copy, Debug)]
enum EarlyClose {
    /// Close with the upload unread: the kernel answers the client with RST.
    Reset,
    /// Shut down the sending side first (FIN), then close.
    ShutdownThenClose,
}

/// Reads only the head of each of `uploads` uploads, answers `status` with
/// `Connection: close`, and closes without reading the body. A raw listener
/// rather than [`Server`], which keeps a handle to every connection and so
/// could not close one for real (a close with unread data is what sends RST).
fn answers_early(status: Option<u16>, close: EarlyClose, tls: bool, uploads: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..uploads {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            tcp.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
            tcp.set_write_timeout(Some(common::IO_TIMEOUT)).unwrap();
            // The answer must leave before the close: a close with unread
            // data sends RST and discards whatever Nagle still holds back
            // (over TLS, the answer follows the session tickets).
            tcp.set_nodelay(true).unwrap();
            let control = tcp.try_clone().unwrap();
            let mut stream: Box<dyn ReadWrite> = if tls {
                let server = rustls::ServerConnection::new(common::pki().valid.clone()).unwrap();
                Box::new(rustls::StreamOwned::new(server, tcp))
            } else {
                Box::new(tcp)
            };
            if !read_head_only(&mut stream) {
                return;
            }
            if let Some(status) = status {
                let answer = format!(
                    "HTTP/1.1 {status} Refused\r\nConnection: close\r\nContent-Length: 7\r\n\r\nrefused"
                );
                let _ = stream.write_all(answer.as_bytes());
                let _ = stream.flush();
            }
            if let EarlyClose::ShutdownThenClose = close {
                let _ = control.shutdown(std::net::Shutdown::Write);
            }
            // Both handles dropped here: the close, with the upload unread.
        }
    });
    addr
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Reads until the end of a request head (bounded); false if it never came.
fn read_head_only(stream: &mut dyn ReadWrite) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
    }
    false
}

/// One way of sending the upload.
type Upload = fn(windlass::RequestBuilder) -> Result<Response, Error>;

const BIG_UPLOAD: usize = 32 * 1024 * 1024;

fn assert_the_early_answer_is_returned(status: u16, close: EarlyClose, tls: bool) {
    let addr = answers_early(Some(status), close, tls, 2);
    // The answer must come during the upload itself, not to an
    // `Expect: 100-continue` (where a 417 means "again, without it").
    let builder = common::builder()
        .resolve("localhost", vec![addr])
        .expect_continue(std::time::Duration::ZERO);
    #[cfg(feature = "tls")]
    let builder = builder.add_root_certificate(common::pki().ca_pem.as_bytes());
    let agent = builder.build().unwrap();
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{}/upload", addr.port());
    let uploads: [(&str, Upload); 2] = [
        ("bytes", |r| r.send_bytes(vec![b'x'; BIG_UPLOAD])),
        ("reader", |r| {
            r.send_reader(Unsized(std::io::Cursor::new(vec![b'x'; BIG_UPLOAD])))
        }),
    ];
    for (how, upload) in uploads {
        let what = format!("{status} {close:?} tls={tls} {how}");
        let resp = upload(agent.post(&url)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(resp.status().as_u16(), status, "{what}");
        assert!(!resp.timings().reused, "{what}");
        assert_eq!(resp.text().unwrap(), "refused", "{what}");
    }
}

#[test]
fn an_early_413_during_an_upload_is_returned_after_a_reset() {
    assert_the_early_answer_is_returned(413, EarlyClose::Reset, false);
}

#[test]
fn an_early_413_during_an_upload_is_returned_after_a_shutdown_and_close() {
    assert_the_early_answer_is_returned(413, EarlyClose::ShutdownThenClose, false);
}

#[test]
fn early_401_403_and_417_during_an_upload_are_returned() {
    for status in [401, 403, 417] {
        assert_the_early_answer_is_returned(status, EarlyClose::Reset, false);
    }
}

#[cfg(feature = "tls")]
#[test]
fn an_early_413_during_an_upload_over_tls_is_returned() {
    assert_the_early_answer_is_returned(413, EarlyClose::Reset, true);
    assert_the_early_answer_is_returned(413, EarlyClose::ShutdownThenClose, true);
}

#[test]
fn a_connection_that_fails_mid_upload_without_an_answer_is_an_io_error() {
    // Closed with the upload unread and nothing said.
    let addr = answers_early(None, EarlyClose::Reset, false, 1);
    let err = common::agent()
        .post(format!("http://{addr}/upload"))
        .send_bytes(vec![b'x'; BIG_UPLOAD])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

// --- JSON -----------------------------------------------------------------------

/// A value whose `Serialize` always fails.
#[cfg(feature = "json")]
struct Unserializable;

#[cfg(feature = "json")]
impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value has no JSON form"))
    }
}

#[cfg(feature = "json")]
#[test]
fn a_value_that_cannot_be_json_is_a_json_error_before_sending() {
    assert_refused_before_sending(ErrorKind::Json, |agent, url| {
        agent.post(url).send_json(&Unserializable)
    });
}

#[cfg(feature = "json")]
#[test]
fn a_body_that_is_not_the_json_asked_for_is_a_json_error() {
    #[derive(Debug, serde::Deserialize)]
    struct Item {
        #[allow(dead_code)]
        id: u32,
    }
    let server = Server::fixed(common::ok("{\"id\": \"seven\"}"));
    let resp = common::agent().get(server.url("/item")).call().unwrap();
    let err = resp.json::<Item>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Json, "{err}");
    // The serde_json error is the source, not part of the message.
    let source = std::error::Error::source(&err).expect("the parse error");
    assert!(source.to_string().contains("invalid type"), "{source}");
    assert!(!err.to_string().contains("invalid type"), "{err}");
}

#[cfg(not(feature = "tls"))]
#[test]
fn https_without_the_tls_feature_is_tls_unavailable() {
    let server = Server::fixed(OK);
    let url = format!("https://127.0.0.1:{}/", server.port());
    let err = common::agent().get(&url).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsUnavailable, "{err}");
    assert!(err.to_string().contains("`tls` feature"), "{err}");
}

// --- the agent's settings, checked by build() -------------------------------------

fn build_error(builder: windlass::AgentBuilder) -> Error {
    let err = builder
        .build()
        .expect_err("build() accepted a setting that cannot work");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    err
}

#[test]
fn an_invalid_user_agent_is_reported_by_build() {
    let err = build_error(common::builder().user_agent("agent/1\r\nX-Injected: 1"));
    assert!(err.to_string().starts_with("user_agent: "), "{err}");
}

#[test]
fn the_first_invalid_setting_is_the_one_reported() {
    let err = build_error(
        common::builder()
            .host_rate_limit("nowhere", windlass::RateLimit::per_second(1.0))
            .user_agent("bad\n"),
    );
    assert!(err.to_string().starts_with("host_rate_limit: "), "{err}");
}

#[test]
fn host_keys_without_a_valid_port_are_reported_by_build() {
    for key in [
        "api.example.com",
        "api.example.com:0",
        "api.example.com:https",
        "::1:80",
    ] {
        let err = build_error(common::builder().host_limits(key, windlass::HostLimits::default()));
        assert!(err.to_string().starts_with("host_limits: "), "{key}: {err}");
        let err = build_error(
            common::builder().host_rate_limit(key, windlass::RateLimit::per_second(1.0)),
        );
        assert!(
            err.to_string().starts_with("host_rate_limit: "),
            "{key}: {err}"
        );
    }
}

#[test]
fn a_host_rate_limit_key_matches_regardless_of_case() {
    let server = Server::fixed(OK);
    let agent = common::builder()
        .resolve("localhost", vec![server.addr()])
        .host_rate_limit(
            &format!("LocalHost:{}", server.port()),
            windlass::RateLimit::per_second(0.001),
        )
        .build()
        .unwrap();
    let url = format!("http://localhost:{}/", server.port());
    agent.get(&url).call().unwrap().text().unwrap();
    // The one token is spent: the next request would wait far past its timeout.
    let err = agent
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .call()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(windlass::Phase::RateLimit),
        "{err}"
    );
}

#[test]
fn resolve_without_addresses_or_with_a_port_is_reported_by_build() {
    let err = build_error(common::builder().resolve("localhost", Vec::new()));
    assert!(err.to_string().starts_with("resolve: "), "{err}");
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let err = build_error(common::builder().resolve("localhost:80", vec![addr]));
    assert!(err.to_string().starts_with("resolve: "), "{err}");
}

// --- timeouts that can be switched off ----------------------------------------------

/// Answers each request after `delay`.
fn slow_server(delay: std::time::Duration) -> Server {
    Server::start(move |conn| {
        while conn.read_request().is_some() {
            let (_keep, never) = std::sync::mpsc::channel::<()>();
            let _ = never.recv_timeout(delay);
            conn.write(OK.as_bytes());
        }
    })
}

#[test]
fn a_phase_limit_switched_off_for_a_request_lets_a_slow_answer_through() {
    let server = slow_server(std::time::Duration::from_millis(300));
    let agent = common::builder()
        .timeout_response_head(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let err = agent.get(server.url("/limited")).call().unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout(windlass::Phase::ResponseHead),
        "{err}"
    );
    let text = agent
        .get(server.url("/unlimited"))
        .timeout_response_head(None)
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "ok");
}

#[test]
fn a_phase_limit_switched_off_on_the_agent_lets_a_slow_answer_through() {
    let server = slow_server(std::time::Duration::from_millis(300));
    let agent = common::builder()
        .timeout_response_head(None)
        .timeout_read(None)
        .build()
        .unwrap();
    let text = agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(text, "ok");
}

#[test]
fn the_overall_timeout_switched_off_for_a_request_lets_a_slow_answer_through() {
    let server = slow_server(std::time::Duration::from_millis(300));
    let agent = common::builder()
        .timeout(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let err = agent.get(server.url("/limited")).call().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let text = agent
        .get(server.url("/unlimited"))
        .timeout(None)
        .call()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "ok");
}
