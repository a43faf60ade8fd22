//! `Response`: status, headers, final URL, timings, and the body with helpers.

use http::{HeaderMap, HeaderValue, StatusCode, Version};
use url::Url;

use crate::body::Body;
use crate::error::{Error, ErrorKind};
use crate::timings::Timings;

/// A response: any status, 2xx or not, is a response and not an error (see
/// [`error_for_status`](Response::error_for_status)).
///
/// The body is read through [`into_body`](Response::into_body) (streaming) or
/// [`text`](Response::text) / [`bytes`](Response::bytes) (bounded by the
/// agent's body limit, 10 MiB by default).
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) timings: Timings,
    pub(crate) body: Body,
    pub(crate) body_limit: u64,
    /// The reason phrase and header names as the server wrote them.
    pub(crate) raw_head: crate::http1::RawHead,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("url", &crate::error::redacted(&self.url))
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// A response made without the network: what a
    /// [`Middleware`](crate::Middleware) answers from a cache, or a test
    /// double returns. `url` is what [`url`](Response::url) reports; the
    /// timings are all zero.
    ///
    /// ```
    /// use windlass::{http, Body, Response};
    /// let resp = Response::new(
    ///     http::StatusCode::OK,
    ///     http::HeaderMap::new(),
    ///     Body::from_bytes("cached"),
    ///     "http://127.0.0.1/item".parse().unwrap(),
    /// );
    /// assert_eq!(resp.text().unwrap(), "cached");
    /// ```
    pub fn new(status: StatusCode, headers: HeaderMap, body: Body, url: Url) -> Response {
        Response {
            status,
            version: Version::HTTP_11,
            headers,
            url,
            timings: Timings::default(),
            body,
            body_limit: 10 * 1024 * 1024,
            raw_head: crate::http1::RawHead::default(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version the server answered with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// All response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of a header, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The reason phrase of the status line as the server sent it
    /// (`Fine Thanks` in `HTTP/1.1 200 Fine Thanks`), possibly empty.
    pub fn reason(&self) -> &str {
        self.raw_head.reason()
    }

    /// Every header in the order the server sent them, each name spelled as
    /// the server spelled it (`X-Request-ID`, where
    /// [`headers`](Response::headers) has `x-request-id`): for showing a
    /// response as it came, the way curl's `-i` does.
    pub fn headers_as_sent(&self) -> Vec<(&str, &HeaderValue)> {
        self.raw_head.pair_with(&self.headers)
    }

    /// The URL that answered, after any redirects (without credentials).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The declared Content-Length, if any.
    pub fn content_length(&self) -> Option<u64> {
        crate::http1::content_length(&self.headers).ok().flatten()
    }

    /// How long each phase took.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// The body as a stream. Reading it to the end returns the connection to the pool.
    pub fn into_body(self) -> Body {
        self.body
    }

    /// The whole body (decoded), at most the agent's body limit.
    pub fn bytes(self) -> Result<Vec<u8>, Error> {
        let limit = self.body_limit;
        self.bytes_with_limit(limit)
    }

    /// The whole body (decoded), at most `limit` bytes, else [`ErrorKind::BodyTooLarge`].
    pub fn bytes_with_limit(mut self, limit: u64) -> Result<Vec<u8>, Error> {
        let url = self.url.clone();
        self.body.read_limited(limit).map_err(|e| e.at_url(&url))
    }

    /// The whole body as text, at most the agent's body limit.
    ///
    /// With the `charset` feature, decoded from the charset of the
    /// `Content-Type` (a byte order mark overrides it; no charset means
    /// UTF-8); without it, read as UTF-8. Bytes invalid in the charset are
    /// replaced with U+FFFD, never an error.
    pub fn text(self) -> Result<String, Error> {
        let limit = self.body_limit;
        self.text_with_limit(limit)
    }

    /// The whole body as text (as [`text`](Response::text)), at most `limit` bytes.
    pub fn text_with_limit(self, limit: u64) -> Result<String, Error> {
        self.decode_text(limit, "utf-8")
    }

    /// The whole body as text (as [`text`](Response::text)), decoded from
    /// `default` (a WHATWG encoding label such as `"windows-1252"` or
    /// `"shift_jis"`) when the response declares no charset and has no byte
    /// order mark. An unknown label means UTF-8.
    #[cfg(feature = "charset")]
    pub fn text_with_charset(self, default: &str) -> Result<String, Error> {
        let limit = self.body_limit;
        self.decode_text(limit, default)
    }

    fn decode_text(self, limit: u64, default: &str) -> Result<String, Error> {
        let content_type = self.header("content-type").map(str::to_string);
        let bytes = self.bytes_with_limit(limit)?;
        Ok(crate::charset::decode(
            &bytes,
            content_type.as_deref(),
            default,
        ))
    }

    /// The body parsed as JSON, at most the agent's body limit.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Json`] when the body is not JSON or not the shape of `T`
    /// (the serde_json error is the source); the errors of
    /// [`bytes`](Response::bytes) when the body cannot be read.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.url.clone();
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::with_source(
                ErrorKind::Json,
                "the response body is not the JSON asked for",
                e,
            )
            .at_url(&url)
        })
    }

    /// Turn a 4xx or 5xx response into an error of kind [`ErrorKind::Status`];
    /// any other response is returned unchanged.
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status.is_client_error() || self.status.is_server_error() {
            let err = Error::new(
                ErrorKind::Status(self.status),
                format!("HTTP status {}", self.status),
            )
            .at_url(&self.url)
            .with_timings(self.timings.clone());
            return Err(err);
        }
        Ok(self)
    }
}
