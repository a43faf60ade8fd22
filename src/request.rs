//! `RequestBuilder`: method, URL, query, headers, body and per-request overrides.
//!
//! Mistakes in what the caller builds (a bad URL, a header with CR or LF) are
//! kept and returned by the terminal call, before any byte is sent.

use std::io::Read;
use std::panic::Location;
use std::time::{Duration, Instant};

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use crate::agent::Agent;
use crate::deadline::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::response::Response;

mod sealed {
    pub trait Sealed {}
}

/// Anything that can be a request URL: `&str`, `String`, `&String`, [`url::Url`], `&Url`.
pub trait IntoUrl: sealed::Sealed {
    /// Parse and check the URL.
    fn into_url(self) -> Result<Url, Error>;
}

/// Longest URL text the parse cache keeps.
const CACHED_URL_MAX: usize = 2048;

thread_local! {
    /// The last URL text this thread parsed, and the result. Programs call the
    /// same endpoint over and over (`get(base).query(..)`, polling, health
    /// checks), and parsing is a third of a keep-alive request's instructions.
    /// Parsing is deterministic, so a hit is always right; one entry per
    /// thread needs no lock.
    static LAST_PARSED: std::cell::RefCell<Option<(String, Url)>> = const { std::cell::RefCell::new(None) };
}

fn parse_url(text: &str) -> Result<Url, Error> {
    let hit = LAST_PARSED.with(|last| match &*last.borrow() {
        Some((cached, url)) if cached == text => Some(url.clone()),
        _ => None,
    });
    if let Some(url) = hit {
        return Ok(url);
    }
    let url = parse_url_uncached(text)?;
    if text.len() <= CACHED_URL_MAX {
        LAST_PARSED.with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                match &mut *last {
                    // Reuse the cached String's allocation.
                    Some((cached, cached_url)) => {
                        cached.clear();
                        cached.push_str(text);
                        *cached_url = url.clone();
                    }
                    None => *last = Some((text.to_string(), url.clone())),
                }
            }
        });
    }
    Ok(url)
}

fn parse_url_uncached(text: &str) -> Result<Url, Error> {
    // The url crate silently drops tabs and newlines; a URL that carries them
    // is a mistake or an injection attempt, so refuse it instead.
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::new(
            ErrorKind::InvalidUrl,
            format!("URL contains the control character {c:?}"),
        ));
    }
    let url = Url::parse(text).map_err(|e| {
        Error::with_source(ErrorKind::InvalidUrl, format!("invalid URL {text:?}"), e)
    })?;
    check_url(url)
}

pub(crate) fn check_url(url: Url) -> Result<Url, Error> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::new(
                ErrorKind::InvalidUrl,
                format!("unsupported URL scheme {other:?}: windlass speaks http and https"),
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::new(ErrorKind::InvalidUrl, "URL has no host").at_url(&url));
    }
    Ok(url)
}

impl sealed::Sealed for &str {}
impl IntoUrl for &str {
    fn into_url(self) -> Result<Url, Error> {
        parse_url(self)
    }
}
impl sealed::Sealed for String {}
impl IntoUrl for String {
    fn into_url(self) -> Result<Url, Error> {
        parse_url(&self)
    }
}
impl sealed::Sealed for &String {}
impl IntoUrl for &String {
    fn into_url(self) -> Result<Url, Error> {
        parse_url(self)
    }
}
impl sealed::Sealed for Url {}
impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, Error> {
        check_url(self)
    }
}
impl sealed::Sealed for &Url {}
impl IntoUrl for &Url {
    fn into_url(self) -> Result<Url, Error> {
        check_url(self.clone())
    }
}

/// A request body.
pub(crate) enum SendBody {
    Empty,
    Bytes(Vec<u8>),
    /// A reader and, when the caller set Content-Length, its length.
    Reader(Box<dyn Read + Send>, Option<u64>),
    /// A reader body already sent once: it cannot be sent again.
    Spent,
}

impl SendBody {
    /// Whether the body can be sent again (for a retry or a 307/308).
    pub(crate) fn replayable(&self) -> bool {
        matches!(self, SendBody::Empty | SendBody::Bytes(_))
    }
}

/// Per-request settings that override the agent's.
#[derive(Default, Clone)]
pub(crate) struct Overrides {
    pub hook: Option<std::sync::Arc<dyn crate::observe::Hook>>,
    /// Phase limits for this request, each one set or left to the agent.
    pub phases: crate::agent::PhaseOverrides,
    /// The overall limit for this request; `Some(Duration::MAX)` when the
    /// caller switched it off (a limit too large to add is no limit).
    pub timeout: Option<Duration>,
    pub deadline: Option<Instant>,
    pub cancel: Option<CancelToken>,
    pub idempotent: Option<bool>,
    pub max_redirects: Option<u32>,
    /// Headers kept across origins on this request's redirects, beyond the agent's.
    pub redirect_keep_headers: Vec<http::HeaderName>,
    /// The slowest this response body may arrive, overriding the agent's.
    pub min_speed: Option<crate::MinSpeed>,
    /// The request line's version and target, when not the defaults.
    pub form: crate::http1::RequestForm,
    /// The server answered `Expect: 100-continue` with 417: no more of it.
    pub expect_refused: bool,
    /// Middleware opt-out, redirect policy, retry and decoding overrides.
    pub extras: crate::defaults::RequestOptions,
}

/// A request ready to run.
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: SendBody,
    pub overrides: Overrides,
    pub call_site: &'static Location<'static>,
}

/// Builds and sends one request. Made by [`Agent::get`](crate::Agent::get) and
/// friends, or the crate-level [`get`](crate::get) etc.
///
/// ```no_run
/// # fn main() -> Result<(), windlass::Error> {
/// let text = windlass::get("http://127.0.0.1:8080/items")
///     .query("page", "2")
///     .header("accept", "application/json")
///     .timeout(std::time::Duration::from_secs(5))
///     .call()?
///     .text()?;
/// # drop(text); Ok(()) }
/// ```
#[must_use = "a request does nothing until call() or a send_* method runs it"]
pub struct RequestBuilder {
    pub(crate) agent: Agent,
    method: Method,
    url: Result<Url, Error>,
    pub(crate) headers: HeaderMap,
    pub(crate) overrides: Overrides,
    error: Option<Error>,
    call_site: &'static Location<'static>,
}

impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url.as_ref().map(crate::error::redacted).ok())
            .finish_non_exhaustive()
    }
}

impl RequestBuilder {
    #[track_caller]
    pub(crate) fn new(
        agent: Agent,
        method: Result<Method, Error>,
        url: Result<Url, Error>,
    ) -> Self {
        let (method, error) = match method {
            Ok(m) => (m, None),
            Err(e) => (Method::GET, Some(e)),
        };
        RequestBuilder {
            agent,
            method,
            url,
            headers: HeaderMap::new(),
            overrides: Overrides::default(),
            error,
            call_site: Location::caller(),
        }
    }

    pub(crate) fn fail(&mut self, err: Error) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }

    /// Keep `err` for the terminal call (the first error wins), from
    /// builder methods defined in other modules.
    pub(crate) fn fail_with(&mut self, err: Error) {
        self.fail(err);
    }

    /// Append a query parameter, percent-encoded.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        if let Ok(url) = self.url.as_mut() {
            url.query_pairs_mut().append_pair(name, value);
        }
        self
    }

    /// Add a header. Names and values are checked: CR, LF, NUL and other bytes
    /// that could inject into the request make the call fail with
    /// [`ErrorKind::InvalidHeader`] before anything is sent.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        let name = match HeaderName::try_from(name) {
            Ok(n) => n,
            Err(_) => {
                self.fail(Error::new(ErrorKind::InvalidHeader, "invalid header name"));
                return self;
            }
        };
        match HeaderValue::try_from(value) {
            Ok(v) => {
                self.headers.append(name, v);
            }
            Err(_) => self.fail(Error::new(
                ErrorKind::InvalidHeader,
                format!("invalid value for header {name}"),
            )),
        }
        self
    }

    /// HTTP basic authentication.
    pub fn basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        let value = basic_auth_value(user, password.unwrap_or(""));
        self.headers.insert(AUTHORIZATION, value);
        self
    }

    /// An overall limit for this request, from now: redirects, retries and
    /// reading the body included (like Go's `Client.Timeout`), in place of
    /// the agent's [`timeout`](crate::AgentBuilder::timeout).
    ///
    /// `None`: no overall limit for this request, even if the agent has one;
    /// each phase's limit and the [`deadline`](RequestBuilder::deadline) still
    /// apply.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        // Deadline::after treats a limit too large to add as no limit.
        self.overrides.timeout = Some(timeout.into().unwrap_or(Duration::MAX));
        self
    }

    /// Limit for resolving the host name, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_dns(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.dns = Some(timeout.into());
        self
    }

    /// Limit for opening the TCP connection, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_connect(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.connect = Some(timeout.into());
        self
    }

    /// Limit for the TLS handshake, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_tls(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.tls = Some(timeout.into());
        self
    }

    /// Longest a write may make no progress, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_write(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.write = Some(timeout.into());
        self
    }

    /// Limit for the response head after the request was written, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_response_head(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.response_head = Some(timeout.into());
        self
    }

    /// Longest wait between two reads of body bytes, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_read(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.read = Some(timeout.into());
        self
    }

    /// Longest wait for a pool slot, for this request.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_pool_wait(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.overrides.phases.pool_wait = Some(timeout.into());
        self
    }

    /// An absolute deadline for this request, body included.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.overrides.deadline = Some(deadline);
        self
    }

    /// Make the request stoppable from another thread with `token.cancel()`.
    pub fn cancel_token(mut self, token: &CancelToken) -> Self {
        self.overrides.cancel = Some(token.clone());
        self
    }

    /// Declare whether the request may safely be sent twice, overriding the
    /// method's own idempotency for retries.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.overrides.idempotent = Some(idempotent);
        self
    }

    /// Most redirects to follow for this request; 0 returns the 3xx response.
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.overrides.max_redirects = Some(max);
        self
    }

    /// Fail this response's body if it arrives slower than `min`, overriding
    /// the agent's [`min_speed`](crate::AgentBuilder::min_speed).
    pub fn min_speed(mut self, min: crate::MinSpeed) -> Self {
        self.overrides.min_speed = Some(min);
        self
    }

    /// Keep this caller-set header when one of this request's redirects leads
    /// to another origin, in addition to the agent's list (see
    /// [`AgentBuilder::keep_header_on_redirect`](crate::AgentBuilder::keep_header_on_redirect)).
    pub fn keep_header_on_redirect(mut self, name: http::HeaderName) -> Self {
        self.overrides.redirect_keep_headers.push(name);
        self
    }

    /// Receive this request's [`Event`](crate::Event)s (in addition to the agent's hook).
    pub fn hook(mut self, hook: impl crate::observe::Hook) -> Self {
        self.overrides.hook = Some(std::sync::Arc::new(hook));
        self
    }

    /// Send the request without a body.
    pub fn call(self) -> Result<Response, Error> {
        self.send(SendBody::Empty)
    }

    /// Send `bytes` as the body, with a Content-Length.
    ///
    /// An owned buffer (`Vec<u8>`, `String::into_bytes()`) is sent as it is,
    /// without a copy; borrowed bytes (`&[u8]`, `b"..."`, `&vec`) are copied
    /// once, so that a retry or a 307/308 redirect can send them again.
    pub fn send_bytes<'b>(
        self,
        bytes: impl Into<std::borrow::Cow<'b, [u8]>>,
    ) -> Result<Response, Error> {
        self.send(SendBody::Bytes(bytes.into().into_owned()))
    }

    /// Send a string (`text/plain; charset=utf-8` unless a Content-Type is set).
    pub fn send_string(self, text: &str) -> Result<Response, Error> {
        self.with_default_type("text/plain; charset=utf-8")
            .send(SendBody::Bytes(text.as_bytes().to_vec()))
    }

    /// Send form fields as `application/x-www-form-urlencoded`.
    pub fn send_form(self, fields: &[(&str, &str)]) -> Result<Response, Error> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.with_default_type("application/x-www-form-urlencoded")
            .send(SendBody::Bytes(body.into_bytes()))
    }

    /// Stream a body from a reader: chunked, unless a Content-Length header was
    /// set, in which case exactly that many bytes are sent. A reader body
    /// cannot be replayed, so it is neither retried nor sent again on a 307/308.
    pub fn send_reader(self, reader: impl Read + Send + 'static) -> Result<Response, Error> {
        let length = match crate::http1::content_length(&self.headers) {
            Ok(length) => length,
            Err(_) => {
                return self.refuse(Error::new(
                    ErrorKind::InvalidHeader,
                    "invalid Content-Length",
                ))
            }
        };
        self.send(SendBody::Reader(Box::new(reader), length))
    }

    /// Stream exactly `length` bytes from a reader, with that Content-Length
    /// (no chunked coding, no header to set by hand). A reader that ends
    /// early fails the request, and windlass closes the connection rather
    /// than leave the server waiting for the rest; bytes beyond `length` are
    /// not read. Like [`send_reader`](RequestBuilder::send_reader), it is
    /// neither retried nor sent again on a 307/308.
    pub fn send_reader_sized(
        self,
        reader: impl Read + Send + 'static,
        length: u64,
    ) -> Result<Response, Error> {
        self.send(SendBody::Reader(Box::new(reader), Some(length)))
    }

    /// Send a `multipart/form-data` form (see [`Multipart`](crate::Multipart)),
    /// with its Content-Type (unless one is set) and, when every part's size
    /// is known, its Content-Length; chunked otherwise.
    pub fn send_multipart(mut self, form: crate::Multipart) -> Result<Response, Error> {
        if !self.headers.contains_key(CONTENT_TYPE) {
            match HeaderValue::from_str(&form.content_type()) {
                Ok(value) => {
                    self.headers.insert(CONTENT_TYPE, value);
                }
                Err(_) => {
                    return self.refuse(Error::new(
                        ErrorKind::InvalidHeader,
                        "invalid multipart boundary",
                    ))
                }
            }
        }
        let (reader, length) = form.into_reader();
        self.send(SendBody::Reader(Box::new(reader), length))
    }

    /// Send a value as JSON (`application/json` unless a Content-Type is set).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Json`] when `value` cannot be written as JSON (a map with
    /// non-string keys, a failing `Serialize`), before anything is sent; the
    /// serde_json error is the source.
    #[cfg(feature = "json")]
    pub fn send_json(self, value: &impl serde::Serialize) -> Result<Response, Error> {
        match serde_json::to_vec(value) {
            Ok(body) => self
                .with_default_type("application/json")
                .send(SendBody::Bytes(body)),
            Err(e) => self.refuse(Error::with_source(
                ErrorKind::Json,
                "the request body cannot be written as JSON",
                e,
            )),
        }
    }

    /// Fail with `err` (or an earlier mistake), sending nothing.
    fn refuse(mut self, err: Error) -> Result<Response, Error> {
        self.fail(err);
        self.send(SendBody::Empty)
    }

    fn with_default_type(mut self, content_type: &'static str) -> Self {
        if !self.headers.contains_key(CONTENT_TYPE) {
            self.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        self
    }

    pub(crate) fn send(self, body: SendBody) -> Result<Response, Error> {
        let RequestBuilder {
            agent,
            method,
            url,
            mut headers,
            overrides,
            error,
            call_site,
        } = self;
        let mut url = url?;
        if let Some(err) = error {
            return Err(err.at_url(&url));
        }
        if !headers.contains_key(AUTHORIZATION) {
            if let Some(auth) = basic_auth_from_url(&url) {
                headers.insert(AUTHORIZATION, auth);
            }
        }
        // Credentials travel in the header; the URL we keep and report has none.
        if !url.username().is_empty() || url.password().is_some() {
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let request = Request {
            method,
            url,
            headers,
            body,
            overrides,
            call_site,
        };
        crate::run::run(&agent, request)
    }
}

/// `Basic base64(user:password)`, marked sensitive so it is never logged.
pub(crate) fn basic_auth_value(user: &str, password: &str) -> HeaderValue {
    let token = crate::base64::encode(format!("{user}:{password}").as_bytes());
    let mut value =
        HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// Credentials from a URL's userinfo, percent-decoded.
pub(crate) fn basic_auth_from_url(url: &Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    Some(basic_auth_value(
        &percent_decode(url.username()),
        &percent_decode(url.password().unwrap_or("")),
    ))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parse a method name, refusing anything that is not an HTTP token.
pub(crate) fn parse_method(method: &str) -> Result<Method, Error> {
    Method::from_bytes(method.as_bytes()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidMethod,
            format!(
                "invalid HTTP method {method:?}: a method is one word, without spaces or control characters"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parse_cache_returns_what_a_parse_would() {
        for text in [
            "http://a/x?y=1",
            "http://a/x?y=1",
            "https://b:8443/",
            "http://a/x?y=1",
        ] {
            assert_eq!(text.into_url().unwrap(), Url::parse(text).unwrap());
        }
        // A refused URL is never cached as a success.
        assert!("http://a/\r\n".into_url().is_err());
        assert!("http://a/\r\n".into_url().is_err());
    }

    #[test]
    fn control_characters_in_urls_are_refused() {
        for bad in ["http://a/\r\nx", "http://a/\tb", "http://a/\0"] {
            assert_eq!(bad.into_url().unwrap_err().kind(), ErrorKind::InvalidUrl);
        }
        assert_eq!(
            "ftp://a/".into_url().unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
        assert!("http://a/b c".into_url().is_ok());
    }

    #[test]
    fn methods_must_be_tokens() {
        assert!(parse_method("PATCH").is_ok());
        let err = parse_method("GET /x HTTP/1.1\r\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidMethod);
        assert_eq!(
            parse_method("GE T").unwrap_err().kind(),
            ErrorKind::InvalidMethod
        );
        assert!(parse_method("").is_err());
    }

    #[test]
    fn userinfo_is_percent_decoded() {
        let url = Url::parse("http://us%40er:p%3Ass@a/").unwrap();
        let value = basic_auth_from_url(&url).unwrap();
        let expected = basic_auth_value("us@er", "p:ss");
        assert_eq!(value, expected);
    }
}
