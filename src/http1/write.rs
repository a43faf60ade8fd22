//! The request head out: request line and header lines, written into a
//! buffer the caller sends in one go.

use http::Method;

/// Start a request head: `METHOD target HTTP/1.1`.
pub(crate) fn put_request_line(out: &mut Vec<u8>, method: &Method, target: &str) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// The request target of `url`: origin form (path and query), or absolute
/// form (everything before the fragment) for a request through a proxy.
pub(crate) fn target(url: &url::Url, absolute: bool) -> &str {
    let from = if absolute {
        url::Position::BeforeScheme
    } else {
        url::Position::BeforePath
    };
    &url[from..url::Position::AfterQuery]
}

/// Write a header line with the name in the conventional Title-Case: names are
/// case-insensitive, but some old servers are not.
pub(crate) fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    put_name(out, name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// [`put_header`] with a formatted value, written in place (no allocation).
pub(crate) fn put_header_fmt(out: &mut Vec<u8>, name: &str, value: std::fmt::Arguments<'_>) {
    put_name(out, name);
    // Writing into a Vec cannot fail.
    let _ = std::io::Write::write_fmt(out, value);
    out.extend_from_slice(b"\r\n");
}

/// `Name: ` in Title-Case.
fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut upper = true;
    for b in name.bytes() {
        out.push(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
    out.extend_from_slice(b": ");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_written_in_order() {
        let mut out = Vec::new();
        let url = url::Url::parse("http://example.com/a?b=c#frag").unwrap();
        put_request_line(&mut out, &Method::GET, target(&url, false));
        put_header(&mut out, "host", b"example.com");
        put_header_fmt(&mut out, "x-request-id", format_args!("{}", 7));
        assert_eq!(
            out,
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: 7\r\n"
        );
        assert_eq!(target(&url, true), "http://example.com/a?b=c");
    }
}
