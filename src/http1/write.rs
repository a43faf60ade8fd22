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

/// A header whose value is a number, written without the formatting
/// machinery (which costs more than the rest of the head on the hot path).
pub(crate) fn put_header_number(out: &mut Vec<u8>, name: &str, value: u64) {
    put_name(out, name);
    put_decimal(out, value);
    out.extend_from_slice(b"\r\n");
}

/// `Host: host:port`, written without the formatting machinery.
pub(crate) fn put_host_port(out: &mut Vec<u8>, host: &str, port: u16) {
    put_name(out, "host");
    out.extend_from_slice(host.as_bytes());
    out.push(b':');
    put_decimal(out, u64::from(port));
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal ASCII.
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `Name: ` in Title-Case: copied whole, then the first letter and each one
/// after a dash raised in place.
fn put_name(out: &mut Vec<u8>, name: &str) {
    let start = out.len();
    out.extend_from_slice(name.as_bytes());
    let mut upper = true;
    for b in &mut out[start..] {
        if upper {
            b.make_ascii_uppercase();
        }
        upper = *b == b'-';
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
        put_header_number(&mut out, "x-request-id", 7);
        assert_eq!(
            out,
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: 7\r\n"
        );
        assert_eq!(target(&url, true), "http://example.com/a?b=c");
    }
}
