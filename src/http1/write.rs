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

/// How a request line is written, when the caller asks for something other
/// than `METHOD origin-form HTTP/1.1` (curl's `-0`, `--request-target` and
/// `--path-as-is`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestForm {
    /// Send `HTTP/1.0`; the connection is then not reused.
    pub http10: bool,
    /// The request target to send instead of the URL's; checked to be
    /// visible ASCII without spaces when set. First hop only: a redirect's
    /// target comes from its Location.
    pub target: Option<String>,
    /// Default headers (User-Agent, Accept, Accept-Encoding) to leave out.
    pub omit: Vec<http::HeaderName>,
    /// Redirect statuses (301, 302, 303) after which a POST stays a POST
    /// with its body, as curl's `--post301` and friends.
    pub keep_post: Vec<u16>,
}

impl RequestForm {
    /// Whether the default header `name` is to be written.
    pub(crate) fn writes_default(&self, name: &http::HeaderName) -> bool {
        !self.omit.contains(name)
    }
}

/// Whether `target` can go in a request line as it is: visible ASCII only,
/// so nothing can end the line or split it into other fields.
pub(crate) fn valid_target(target: &str) -> bool {
    !target.is_empty() && target.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The request line as `form` says: its target in place of `target` and
/// its version.
pub(crate) fn put_request_line_as(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    form: &RequestForm,
) {
    let target = form.target.as_deref().unwrap_or(target);
    if !form.http10 {
        return put_request_line(out, method, target);
    }
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.0\r\n");
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

/// Per-request settings for the request line.
impl crate::RequestBuilder {
    /// Send this request as HTTP/1.0 (curl's `-0`): `HTTP/1.0` in the
    /// request line, and the connection is closed after the response
    /// instead of being pooled. A body must have a known length (HTTP/1.0 has
    /// no chunked coding): a reader sent without a Content-Length fails.
    pub fn http10(mut self) -> Self {
        self.overrides.form.http10 = true;
        self
    }

    /// Leave out a header windlass adds by default (`User-Agent`, `Accept`,
    /// `Accept-Encoding`), as curl's `-H 'Accept:'` does. Other names have no
    /// default to leave out and change nothing.
    pub fn without_default_header(mut self, name: http::HeaderName) -> Self {
        self.overrides.form.omit.push(name);
        self
    }

    /// After a 301, 302 or 303 (`status`), follow with the same POST and
    /// body instead of a GET without one (curl's `--post301`, `--post302`,
    /// `--post303`). Browsers and the default turn the POST into a GET.
    pub fn keep_post_on_redirect(mut self, status: u16) -> Self {
        self.overrides.form.keep_post.push(status);
        self
    }

    /// Send `target` as the request target instead of the URL's path and
    /// query (curl's `--request-target`, and `--path-as-is` for a path
    /// with `..` segments the URL parser would resolve away). The URL still
    /// names the host to connect to. Only the first request uses it; a
    /// redirect goes where its Location says.
    ///
    /// The target must be visible ASCII without spaces (percent-encode the
    /// rest); anything else fails the call with
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) before a byte is sent.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), windlass::Error> {
    /// let resp = windlass::request("OPTIONS", "http://127.0.0.1:8080/")
    ///     .request_target("*")
    ///     .call()?;
    /// # drop(resp); Ok(()) }
    /// ```
    pub fn request_target(mut self, target: &str) -> Self {
        if valid_target(target) {
            self.overrides.form.target = Some(target.to_string());
        } else {
            self.fail_with(crate::Error::new(
                crate::ErrorKind::InvalidUrl,
                format!("invalid request target {target:?}: only visible ASCII, no spaces"),
            ));
        }
        self
    }
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

    #[test]
    fn a_request_form_sets_the_version_and_the_target() {
        let mut out = Vec::new();
        let form = RequestForm {
            http10: true,
            target: Some("/a/../b".into()),
            ..RequestForm::default()
        };
        put_request_line_as(&mut out, &Method::GET, "/b", &form);
        assert_eq!(out, b"GET /a/../b HTTP/1.0\r\n");
        out.clear();
        put_request_line_as(&mut out, &Method::GET, "/b", &RequestForm::default());
        assert_eq!(out, b"GET /b HTTP/1.1\r\n");
    }

    #[test]
    fn only_visible_ascii_is_a_valid_target() {
        assert!(valid_target("/a/../b?c=%20"));
        assert!(valid_target("*"));
        for bad in ["", "/a b", "/a\r\nX: y", "/\u{e9}", "/a\tb"] {
            assert!(!valid_target(bad), "{bad:?}");
        }
    }
}
