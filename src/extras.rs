//! Settings of the everyday features (decoded-size limit, Expect:
//! 100-continue, the cookie jar), kept in one part of the agent's config,
//! and their builder methods.

use std::time::Duration;

use crate::agent::AgentBuilder;

/// Default bound on a decoded body read as a stream.
pub(crate) const DEFAULT_DECODED_LIMIT: u64 = 256 * 1024 * 1024;

/// The agent's settings for these features.
#[derive(Debug, Clone)]
pub(crate) struct Extras {
    /// Most bytes a decoded body may hand out when streamed.
    pub decoded_limit: u64,
    /// How long a large body waits for `100 Continue`; `None`: no
    /// expectation unless the caller sets the header.
    pub expect_continue: Option<Duration>,
    /// Bodies from this size up (or of unknown size) carry the expectation.
    pub expect_threshold: u64,
    /// Bodies of unknown size carry the expectation too (only once the
    /// caller turned it on: most streamed bodies are small).
    pub expect_streamed: bool,
    /// The agent's cookie jar.
    #[cfg(feature = "cookies")]
    pub cookies: Option<std::sync::Arc<crate::CookieJar>>,
}

impl Default for Extras {
    fn default() -> Extras {
        Extras {
            decoded_limit: DEFAULT_DECODED_LIMIT,
            expect_continue: Some(crate::expect::DEFAULT_WAIT),
            expect_threshold: crate::expect::DEFAULT_THRESHOLD,
            expect_streamed: false,
            #[cfg(feature = "cookies")]
            cookies: None,
        }
    }
}

impl Extras {
    /// The `Cookie` header value the jar has for `url`.
    pub(crate) fn cookie_header(&self, url: &url::Url) -> Option<String> {
        #[cfg(feature = "cookies")]
        if let Some(jar) = &self.cookies {
            return jar.header_for(url);
        }
        let _ = url;
        None
    }

    /// Keep the cookies a response from `url` sets.
    pub(crate) fn store_cookies(&self, headers: &http::HeaderMap, url: &url::Url) {
        #[cfg(feature = "cookies")]
        if let Some(jar) = &self.cookies {
            jar.store_response(headers, url);
        }
        let _ = (headers, url);
    }
}

#[cfg(feature = "cookies")]
impl AgentBuilder {
    /// Keep cookies in `jar` and send them back where RFC 6265 allows: the
    /// jar sees every response (redirects included) and picks the cookies
    /// of every request and redirect hop for its URL. A request that sets
    /// its own `Cookie` header sends that instead. See
    /// [`CookieJar`](crate::CookieJar) for saving and loading.
    pub fn cookie_store(mut self, jar: std::sync::Arc<crate::CookieJar>) -> Self {
        self.config.extras.cookies = Some(jar);
        self
    }
}

impl AgentBuilder {
    /// Most bytes a compressed response body may decode to when read as a
    /// stream ([`Response::into_body`](crate::Response::into_body)); beyond
    /// it a read fails with [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge),
    /// so a decompression bomb cannot fill memory or disk. Default 256 MiB.
    /// [`Body::with_limit`](crate::Body::with_limit) sets it per body;
    /// `text()` and `bytes()` keep to the smaller
    /// [`body_limit`](AgentBuilder::body_limit).
    pub fn decoded_limit(mut self, limit: u64) -> Self {
        self.config.extras.decoded_limit = limit;
        self
    }

    /// Send `Expect: 100-continue` with request bodies of at least
    /// [`expect_continue_threshold`](AgentBuilder::expect_continue_threshold)
    /// bytes (1 MiB by default, as curl) or of unknown size, and wait up to
    /// `wait` for the server's verdict before sending the body (Go's
    /// `ExpectContinueTimeout`). `Duration::ZERO` turns the expectation off.
    ///
    /// The body goes on `100 Continue` or when `wait` runs out. A final
    /// response that comes first is the answer, and the body is not sent
    /// (the connection is then reused only if its framing allows: a chunked
    /// body can be ended empty, one with a Content-Length cannot). A `417
    /// Expectation Failed` is retried once without the expectation. The wait
    /// is its own [`Phase::ExpectContinue`](crate::Phase::ExpectContinue).
    ///
    /// By default bodies of a known size from 1 MiB up wait 1 s (curl's
    /// threshold, Go's wait), so a server that refuses a large upload (401,
    /// 413, a redirect) answers before it is sent; calling this also covers
    /// bodies of unknown size (as curl does for chunked uploads). A request
    /// that sets `Expect: 100-continue` itself gets the same handling.
    pub fn expect_continue(mut self, wait: Duration) -> Self {
        self.config.extras.expect_continue = (!wait.is_zero()).then_some(wait);
        self.config.extras.expect_streamed = true;
        self
    }

    /// The smallest request body that carries `Expect: 100-continue` once
    /// [`expect_continue`](AgentBuilder::expect_continue) is on. Default 1 MiB.
    pub fn expect_continue_threshold(mut self, bytes: u64) -> Self {
        self.config.extras.expect_threshold = bytes;
        self
    }
}
