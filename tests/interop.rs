//! `http` interop: an `http::Request<B>` is sent as windlass would send its
//! own, and a `Response` converts to `http::Response<Body>` and back, with
//! the final URL and the timings in the extensions.

mod common;

use std::io::Read;

use common::{Reply, Server};
use windlass::http;
use windlass::{Body, CancelToken, ErrorKind, Response, Timings};

#[test]
fn an_http_request_is_sent_with_its_method_headers_and_body() {
    let server = Server::fixed(common::ok("made"));
    let agent = common::agent();
    let request = http::Request::post(server.url("/items?x=1"))
        .header("content-type", "application/json")
        .header("x-a", "1")
        .header("x-a", "2")
        .body(r#"{"name":"bolt"}"#)
        .unwrap();
    let resp = agent.run(request).unwrap();
    assert_eq!(resp.text().unwrap(), "made");
    let seen = server.request();
    assert_eq!(seen.request_line(), "POST /items?x=1 HTTP/1.1");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header_all("x-a"), ["1", "2"]);
    assert_eq!(seen.header("content-length"), Some("15"));
    assert_eq!(seen.body, br#"{"name":"bolt"}"#);
}

#[test]
fn every_sendable_body_type_goes_out_whole() {
    let server = Server::fixed(common::ok("ok"));
    let agent = common::agent();
    let url = server.url("/");
    let send = |request: http::Request<()>| agent.run(request).unwrap().text().unwrap();
    send(http::Request::get(&url).body(()).unwrap());
    let seen = server.request();
    assert_eq!(seen.request_line(), "GET / HTTP/1.1");
    assert!(seen.body.is_empty());

    let r = http::Request::put(&url).body(b"bytes".to_vec()).unwrap();
    agent.run(r).unwrap().text().unwrap();
    assert_eq!(server.request().body, b"bytes");
    let r = http::Request::put(&url).body(&b"slice"[..]).unwrap();
    agent.run(r).unwrap().text().unwrap();
    assert_eq!(server.request().body, b"slice");
    let r = http::Request::put(&url)
        .body(String::from("string"))
        .unwrap();
    agent.run(r).unwrap().text().unwrap();
    assert_eq!(server.request().body, b"string");

    let stream: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(b"streamed".to_vec()));
    let r = http::Request::put(&url).body(stream).unwrap();
    agent.run(r).unwrap().text().unwrap();
    let seen = server.request();
    assert!(seen.chunked);
    assert_eq!(seen.body, b"streamed");

    let r = http::Request::put(&url)
        .header("content-length", "4")
        .body(Body::from_bytes("body"))
        .unwrap();
    agent.run(r).unwrap().text().unwrap();
    let seen = server.request();
    assert!(!seen.chunked);
    assert_eq!(seen.header("content-length"), Some("4"));
    assert_eq!(seen.body, b"body");
}

#[test]
fn an_http_request_with_a_relative_uri_is_an_invalid_url() {
    let agent = common::agent();
    let err = agent
        .run(http::Request::get("/only/a/path").body(()).unwrap())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
}

#[test]
fn a_cancel_token_in_the_extensions_is_attached() {
    let server = Server::fixed(common::ok("never"));
    let agent = common::agent();
    let token = CancelToken::new();
    token.cancel();
    let mut request = http::Request::get(server.url("/")).body(()).unwrap();
    request.extensions_mut().insert(token);
    let err = agent.run(request).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[test]
fn a_response_becomes_an_http_response_with_url_and_timings_in_extensions() {
    let server = Server::serve(|req| match req.target.as_str() {
        "/start" => {
            Reply::keep("HTTP/1.1 302 Found\r\nLocation: /end\r\nContent-Length: 0\r\n\r\n")
        }
        _ => Reply::keep("HTTP/1.1 201 Created\r\nX-Id: 7\r\nContent-Length: 4\r\n\r\ndone"),
    });
    let agent = common::agent();
    let resp = agent.get(server.url("/start")).call().unwrap();
    let converted: http::Response<Body> = resp.into();
    assert_eq!(converted.status(), http::StatusCode::CREATED);
    assert_eq!(converted.version(), http::Version::HTTP_11);
    assert_eq!(converted.headers()["x-id"], "7");
    let url = converted.extensions().get::<windlass::url::Url>().unwrap();
    assert_eq!(url.as_str(), server.url("/end"));
    let timings = converted.extensions().get::<Timings>().unwrap();
    assert_eq!(timings.redirects, 1);
    let mut text = String::new();
    converted.into_body().read_to_string(&mut text).unwrap();
    assert_eq!(text, "done");
}

#[test]
fn an_http_response_converts_back_keeping_url_and_timings() {
    let server = Server::fixed(common::ok("round trip"));
    let agent = common::agent();
    let original = agent.get(server.url("/rt")).call().unwrap();
    let attempts = original.timings().attempts;
    let back = Response::from(http::Response::<Body>::from(original));
    assert_eq!(back.url().as_str(), server.url("/rt"));
    assert_eq!(back.timings().attempts, attempts);
    assert_eq!(back.text().unwrap(), "round trip");

    let built = http::Response::builder()
        .status(404)
        .body(Body::from("made by hand"))
        .unwrap();
    let resp = Response::from(built);
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.url().as_str(), "http://localhost/");
    assert_eq!(resp.text().unwrap(), "made by hand");
}
