//! `text()` decodes by the declared charset and a byte order mark (feature
//! `charset`), and is lossy UTF-8 without the feature.

mod common;

use common::Server;

fn respond(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn text(content_type: &str, body: &[u8]) -> String {
    let server = Server::fixed(respond(content_type, body));
    common::agent()
        .get(server.url("/"))
        .call()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn utf8_without_a_charset_is_read_as_utf8() {
    assert_eq!(text("text/plain", "naïve ☃".as_bytes()), "naïve ☃");
}

#[test]
fn a_utf8_bom_is_not_part_of_the_text() {
    assert_eq!(text("text/plain", b"\xef\xbb\xbfhello"), "hello");
}

#[cfg(feature = "charset")]
#[test]
fn a_latin1_body_is_decoded_by_its_declared_charset() {
    assert_eq!(text("text/html; charset=ISO-8859-1", b"caf\xe9"), "café");
}

#[cfg(feature = "charset")]
#[test]
fn a_shift_jis_body_is_decoded() {
    // "日本" in Shift_JIS.
    assert_eq!(
        text("text/plain; charset=\"Shift_JIS\"", b"\x93\xfa\x96\x7b"),
        "日本"
    );
}

#[cfg(feature = "charset")]
#[test]
fn a_utf16_bom_overrides_the_declared_charset() {
    assert_eq!(
        text("text/plain; charset=iso-8859-1", b"\xfe\xff\0h\0i"),
        "hi"
    );
}

#[cfg(feature = "charset")]
#[test]
fn text_with_charset_applies_when_none_is_declared() {
    let server = Server::fixed(respond("text/plain", b"caf\xe9"));
    let resp = common::agent().get(server.url("/")).call().unwrap();
    assert_eq!(resp.text_with_charset("windows-1252").unwrap(), "café");
    // A declared charset still wins.
    let server = Server::fixed(respond("text/plain; charset=utf-8", "café".as_bytes()));
    let resp = common::agent().get(server.url("/")).call().unwrap();
    assert_eq!(resp.text_with_charset("windows-1252").unwrap(), "café");
}

#[cfg(not(feature = "charset"))]
#[test]
fn without_the_feature_a_latin1_body_is_lossy_utf8() {
    assert_eq!(
        text("text/html; charset=ISO-8859-1", b"caf\xe9"),
        "caf\u{fffd}"
    );
}
