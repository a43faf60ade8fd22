//! What a response head says about its body (RFC 9112 §6.3) and about its
//! connection: the framing, whether the connection may carry another
//! request, and the server's keep-alive timeout. Pure functions of the head.

use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Version};

use super::head::Head;
use crate::error::Error;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// The body framing of a response and whether its connection may be reused.
pub(crate) fn framing(method: &Method, head: &Head) -> Result<(Framing, bool), Error> {
    let mut reusable = connection_reusable(head) && !head.closed_by_informational;
    let status = head.status.as_u16();
    if status == 204 || status == 304 {
        // No body whatever the head says, but a head whose Content-Length
        // values disagree is broken all the same (Go refuses it too).
        content_length(&head.headers)?;
        return Ok((Framing::Empty, reusable));
    }
    if method == Method::HEAD || head.status.is_informational() {
        return Ok((Framing::Empty, reusable));
    }
    if head.version == Version::HTTP_10 && head.headers.contains_key(TRANSFER_ENCODING) {
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
        // faulty framing, even with a Content-Length; the body runs to the
        // close and the connection is not trusted again.
        return Ok((Framing::UntilClose, false));
    }
    let length = content_length(&head.headers)?;
    if head.headers.contains_key(TRANSFER_ENCODING) {
        if length.is_some() {
            // RFC 9112 §6.3: chunked wins, but the message may be an attempt at
            // request smuggling; never trust this connection again.
            reusable = false;
        }
        return if last_coding_is_chunked(&head.headers)? {
            Ok((Framing::Chunked, reusable))
        } else {
            Ok((Framing::UntilClose, false))
        };
    }
    match length {
        Some(0) => Ok((Framing::Empty, reusable)),
        Some(n) => Ok((Framing::Length(n), reusable)),
        None => Ok((Framing::UntilClose, false)),
    }
}

/// Whether these headers carry `Connection: close`.
pub(crate) fn says_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("close"))
    })
}

/// Whether the head allows another request on the connection: HTTP/1.1
/// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
fn connection_reusable(head: &Head) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in head.headers.get_all(CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("close") {
                close = true;
            } else if token.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    match head.version {
        Version::HTTP_10 => keep_alive && !close,
        _ => !close,
    }
}

/// The Content-Length, if any. Duplicates must agree; anything but digits is an error.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            let n = parse_decimal(part).ok_or_else(|| {
                Error::protocol(format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ))
            })?;
            match found {
                Some(prev) if prev != n => {
                    return Err(Error::protocol(format!(
                        "conflicting Content-Length values {prev} and {n}"
                    )))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// 1 to 19 ASCII digits (every such number fits a `u64`); no sign, no space.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the last transfer coding is `chunked`. Only `chunked`,
/// `identity` and the codings this build decodes are understood; any other
/// coding is an error, since its body could not be decoded.
fn last_coding_is_chunked(headers: &HeaderMap) -> Result<bool, Error> {
    let mut last_chunked = false;
    for value in headers.get_all(TRANSFER_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| Error::protocol("invalid Transfer-Encoding"))?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            last_chunked = coding.eq_ignore_ascii_case("chunked");
            if !last_chunked
                && !coding.eq_ignore_ascii_case("identity")
                && !crate::codings::decodable_transfer_coding(coding)
            {
                return Err(Error::protocol(format!(
                    "unsupported transfer coding {coding:?}"
                )));
            }
        }
    }
    Ok(last_chunked)
}

/// The server's `Keep-Alive: timeout=N`, if present.
pub(crate) fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    // A HeaderName looks up without parsing and hashing a string first.
    static KEEP_ALIVE: http::HeaderName = http::HeaderName::from_static("keep-alive");
    let value = headers.get(&KEEP_ALIVE)?.to_str().ok()?;
    value.split(',').find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("timeout") {
            v.trim().parse::<u64>().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::head::parse_head;
    use super::*;
    use crate::ErrorKind;
    use http::{HeaderName, HeaderValue, StatusCode};

    /// A 200 head with these headers.
    fn head(version: Version, headers: &[(&str, &str)]) -> Head {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Head {
            status: StatusCode::OK,
            version,
            headers: map,
            size: 0,
            raw_head: Default::default(),
            closed_by_informational: false,
        }
    }

    /// The framing of a GET answered with exactly these head bytes.
    fn of(bytes: &str) -> Result<(Framing, bool), Error> {
        of_method(&Method::GET, bytes)
    }

    /// The framing of a `method` request answered with these head bytes.
    fn of_method(method: &Method, bytes: &str) -> Result<(Framing, bool), Error> {
        let (head, _) = parse_head(bytes.as_bytes()).unwrap().unwrap();
        framing(method, &head)
    }

    /// The message of the framing error for these head bytes, which must be
    /// a protocol error.
    fn protocol_error(bytes: &str) -> String {
        let err = of(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        err.to_string()
    }

    #[test]
    fn content_length_rules() {
        let h = |v: &[&str]| {
            let pairs: Vec<(&str, &str)> = v.iter().map(|v| ("content-length", *v)).collect();
            content_length(&head(Version::HTTP_11, &pairs).headers)
        };
        assert_eq!(h(&["5"]).unwrap(), Some(5));
        assert_eq!(h(&["5", "5"]).unwrap(), Some(5));
        assert_eq!(h(&["5, 5"]).unwrap(), Some(5));
        assert!(h(&["5", "6"]).is_err());
        assert!(h(&["+5"]).is_err());
        assert!(h(&["-1"]).is_err());
        assert!(h(&["5a"]).is_err());
        assert!(h(&[""]).is_err());
        assert!(h(&["99999999999999999999"]).is_err());
        assert_eq!(
            h(&["9999999999999999999"]).unwrap(),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(h(&[]).unwrap(), None);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let f = |h: Head| framing(&get, &h).unwrap();
        assert_eq!(
            f(head(Version::HTTP_11, &[("content-length", "3")])),
            (Framing::Length(3), true)
        );
        assert_eq!(
            f(head(
                Version::HTTP_11,
                &[("content-length", "3"), ("transfer-encoding", "chunked")]
            )),
            (Framing::Chunked, false)
        );
        assert_eq!(f(head(Version::HTTP_11, &[])), (Framing::UntilClose, false));
        assert_eq!(
            f(head(
                Version::HTTP_10,
                &[("content-length", "3"), ("connection", "keep-alive")]
            )),
            (Framing::Length(3), true)
        );
        assert_eq!(
            f(head(Version::HTTP_10, &[("content-length", "3")])),
            (Framing::Length(3), false)
        );
        assert_eq!(
            f(head(
                Version::HTTP_11,
                &[("content-length", "3"), ("connection", "close")]
            )),
            (Framing::Length(3), false)
        );
        let h = head(Version::HTTP_11, &[("content-length", "3")]);
        assert_eq!(framing(&Method::HEAD, &h).unwrap(), (Framing::Empty, true));
        assert!(framing(
            &get,
            &head(
                Version::HTTP_11,
                &[("transfer-encoding", "compress, chunked")]
            )
        )
        .is_err());
    }

    #[test]
    fn keep_alive_timeout_is_read() {
        let h = head(Version::HTTP_11, &[("keep-alive", "timeout=5, max=100")]);
        assert_eq!(keep_alive_timeout(&h.headers), Some(Duration::from_secs(5)));
        let h = head(Version::HTTP_11, &[("keep-alive", "max=100")]);
        assert_eq!(keep_alive_timeout(&h.headers), None);
        let h = head(Version::HTTP_11, &[("keep-alive", "timeout=soon")]);
        assert_eq!(keep_alive_timeout(&h.headers), None);
    }

    // --- the wire cases of tests/framing.rs, from the head bytes ----------

    #[test]
    fn content_length_head_frames_a_length_body_on_a_reusable_connection() {
        let f = of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Length(5), true));
    }

    #[test]
    fn a_zero_content_length_is_an_empty_body() {
        let f = of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Empty, true));
    }

    #[test]
    fn chunked_head_frames_a_chunked_body() {
        let f = of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Chunked, true));
        // Codings are case-insensitive and may be listed across headers.
        let f = of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
        );
        assert_eq!(f.unwrap(), (Framing::Chunked, true));
    }

    #[test]
    fn body_without_length_is_read_until_close_and_not_reused() {
        let f = of("HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::UntilClose, false));
    }

    #[test]
    fn chunked_not_last_is_read_until_close() {
        // RFC 9112 §6.3: a response whose final coding is not chunked ends
        // when the connection closes.
        let f = of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::UntilClose, false));
        let f = of("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::UntilClose, false));
    }

    #[test]
    fn head_response_has_no_body_despite_content_length() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        assert_eq!(
            of_method(&Method::HEAD, head).unwrap(),
            (Framing::Empty, true)
        );
        // Not even a chunked one.
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            of_method(&Method::HEAD, head).unwrap(),
            (Framing::Empty, true)
        );
    }

    #[test]
    fn no_content_204_has_no_body() {
        let f = of("HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Empty, true));
        let f = of("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Empty, true));
    }

    #[test]
    fn not_modified_304_has_no_body_despite_content_length() {
        let f = of("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n");
        assert_eq!(f.unwrap(), (Framing::Empty, true));
    }

    #[test]
    fn informational_heads_have_no_body() {
        for head in [
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert_eq!(of(head).unwrap(), (Framing::Empty, true), "{head}");
        }
    }

    #[test]
    fn transfer_encoding_with_content_length_uses_chunked_and_is_not_reusable() {
        let f = of("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(f.unwrap(), (Framing::Chunked, false));
    }

    #[test]
    fn differing_duplicate_content_length_is_a_protocol_error() {
        let msg =
            protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert!(
            msg.contains("conflicting Content-Length values 5 and 6"),
            "{msg}"
        );
        // Within one header too.
        protocol_error("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n");
    }

    #[test]
    fn identical_duplicate_content_length_is_accepted() {
        let f = of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(f.unwrap(), (Framing::Length(5), true));
    }

    #[test]
    fn malformed_content_lengths_are_protocol_errors() {
        for value in ["+5", "-1", "5a", "0x5", "5 5", "", "99999999999999999999"] {
            let msg = protocol_error(&format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n"
            ));
            assert!(msg.contains("invalid Content-Length"), "{value}: {msg}");
        }
    }

    #[test]
    fn an_invalid_content_length_is_an_error_even_beside_chunked() {
        protocol_error(
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn a_decodable_transfer_coding_before_chunked_frames_a_chunked_body() {
        let f = of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Chunked, true));
        let f = of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::UntilClose, false));
    }

    #[test]
    fn unknown_transfer_codings_are_protocol_errors() {
        for value in [
            "compress, chunked",
            "chunked, x-compress",
            "snappy",
            "chunked;q=1",
        ] {
            let msg = protocol_error(&format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: {value}\r\n\r\n"
            ));
            assert!(
                msg.contains("unsupported transfer coding"),
                "{value}: {msg}"
            );
        }
    }

    #[test]
    fn a_transfer_encoding_that_is_not_text_is_a_protocol_error() {
        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xff\r\n\r\n")
            .unwrap()
            .unwrap();
        let err = framing(&Method::GET, &head).unwrap_err();
        assert!(err.to_string().contains("invalid Transfer-Encoding"));
    }

    #[test]
    fn http10_response_without_keep_alive_is_not_reused() {
        let f = of("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Length(2), false));
    }

    #[test]
    fn http10_keep_alive_is_reused_unless_also_close() {
        let f = of("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(f.unwrap(), (Framing::Length(2), true));
        let f = of("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(f.unwrap(), (Framing::Length(2), false));
        // HTTP/1.0 without a length is read until close whatever it says.
        let f = of("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::UntilClose, false));
    }

    #[test]
    fn connection_close_response_is_not_reused() {
        let f = of("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Length(2), false));
        let f = of("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(f.unwrap(), (Framing::Length(2), false));
    }

    #[test]
    fn keep_alive_response_is_reused() {
        let f = of("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n").unwrap();
        assert_eq!(f, (Framing::Length(2), true));
    }
}
