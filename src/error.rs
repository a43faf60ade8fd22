//! The one error type of windlass: a kind a caller can match, the URL, and the source.

use std::fmt;
use std::io;
use std::time::Duration;

use url::Url;

use crate::timings::Timings;

/// The phase of a request that was running when something went wrong.
///
/// A [`ErrorKind::Timeout`] names the phase in which time ran out, whether the
/// phase's own limit or the request's overall deadline was the one that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Resolving the host name.
    Dns,
    /// Opening the TCP connection (all addresses together).
    Connect,
    /// The TLS handshake.
    Tls,
    /// Waiting for a free connection slot in the pool.
    PoolWait,
    /// Writing the request head or body.
    Write,
    /// Waiting for and reading the response head.
    ResponseHead,
    /// Reading the response body.
    Body,
    /// Waiting before a retry.
    RetryWait,
    /// Waiting for the host's rate limit.
    RateLimit,
    /// The response body arrived slower than the minimum transfer rate
    /// (curl's low-speed limit).
    LowSpeed,
    /// Opening the TCP connection to a proxy (limited by `timeout_connect`).
    ProxyConnect,
    /// The TLS handshake with an `https://` proxy (limited by `timeout_tls`).
    ProxyTls,
    /// The proxy's own handshake: HTTP CONNECT or SOCKS (limited by
    /// `timeout_connect`, started afresh).
    ProxyHandshake,
    /// Waiting for `100 Continue` before sending the request body.
    ExpectContinue,
}

impl Phase {
    /// Its label and the words that describe it in messages, one row per
    /// phase: a new phase needs a row here, one in the exchange's phase
    /// table, and the call that enters it.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Phase::Dns => ("dns", "resolving the host"),
            Phase::Connect => ("connect", "connecting to"),
            Phase::Tls => ("tls", "in the TLS handshake with"),
            Phase::PoolWait => ("pool_wait", "waiting for a free connection to"),
            Phase::Write => ("write", "writing the request to"),
            Phase::ResponseHead => ("response_head", "waiting for the response head from"),
            Phase::Body => ("body", "reading the response body from"),
            Phase::RetryWait => ("retry_wait", "waiting to retry"),
            Phase::RateLimit => ("rate_limit", "waiting for the rate limit of"),
            Phase::LowSpeed => ("low_speed", "receiving the response body too slowly from"),
            Phase::ProxyConnect => ("proxy_connect", "connecting to proxy"),
            Phase::ProxyTls => ("proxy_tls", "in the TLS handshake with proxy"),
            Phase::ProxyHandshake => ("proxy_handshake", "in the handshake with proxy"),
            Phase::ExpectContinue => ("expect_continue", "waiting for 100 Continue from"),
        }
    }

    /// A short lowercase name, as used in metrics labels.
    pub fn as_str(self) -> &'static str {
        self.words().0
    }

    fn describe(self) -> &'static str {
        self.words().1
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, as data a caller can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A deadline or timeout ran out during the named phase.
    Timeout(Phase),
    /// The request's [`CancelToken`](crate::CancelToken) was cancelled.
    Cancelled,
    /// The host name could not be resolved.
    Dns,
    /// No TCP connection could be opened.
    Connect,
    /// The TLS handshake failed or the certificate was rejected.
    Tls,
    /// The server broke HTTP/1.1: bad status line, bad framing, truncated body.
    Protocol,
    /// More redirects than the configured maximum.
    TooManyRedirects,
    /// A redirect from https to http, refused by default.
    InsecureRedirect,
    /// The body is larger than the limit the caller allowed.
    BodyTooLarge,
    /// The URL cannot be used: bad syntax, unsupported scheme, no host.
    InvalidUrl,
    /// A header name or value could inject into the request, or is not valid
    /// HTTP.
    InvalidHeader,
    /// The request method is not an HTTP token (it has a space, a CR or LF,
    /// or another byte a method cannot have).
    InvalidMethod,
    /// Another I/O error on the connection.
    Io,
    /// Returned by [`Response::error_for_status`](crate::Response::error_for_status) for 4xx and 5xx.
    Status(http::StatusCode),
    /// [`AgentBuilder::build`](crate::AgentBuilder::build) found a setting
    /// that cannot work (a bad certificate, an invalid header value, a
    /// malformed host key). The message names the setting.
    InvalidConfig,
    /// A value could not be written as JSON
    /// ([`RequestBuilder::send_json`](crate::RequestBuilder::send_json)), or
    /// the response body is not the JSON asked for
    /// ([`Response::json`](crate::Response::json)).
    Json,
    /// An https URL, and windlass was built without its `tls` feature.
    TlsUnavailable,
    /// The proxy would not carry the request: a CONNECT answered with a
    /// non-2xx status (407: credentials wanted), or a SOCKS request refused.
    /// A proxy that cannot be reached is [`ErrorKind::Connect`], and one that
    /// breaks its protocol is [`ErrorKind::Protocol`], each naming the proxy.
    Proxy(crate::ProxyStatus),
    /// A [`RedirectPolicy`](crate::redirect::RedirectPolicy) refused a
    /// redirect with [`Action::fail`](crate::redirect::Action::fail).
    RedirectRefused,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Timeout(p) => write!(f, "timeout ({p})"),
            ErrorKind::Cancelled => f.write_str("cancelled"),
            ErrorKind::Dns => f.write_str("dns"),
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Tls => f.write_str("tls"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::TooManyRedirects => f.write_str("too many redirects"),
            ErrorKind::InsecureRedirect => f.write_str("insecure redirect"),
            ErrorKind::BodyTooLarge => f.write_str("body too large"),
            ErrorKind::InvalidUrl => f.write_str("invalid url"),
            ErrorKind::InvalidHeader => f.write_str("invalid header"),
            ErrorKind::Io => f.write_str("io"),
            ErrorKind::Status(s) => write!(f, "status {}", s.as_u16()),
            ErrorKind::InvalidConfig => f.write_str("invalid config"),
            ErrorKind::Json => f.write_str("json"),
            ErrorKind::TlsUnavailable => f.write_str("tls unavailable"),
            ErrorKind::InvalidMethod => f.write_str("invalid method"),
            ErrorKind::Proxy(_) => f.write_str("proxy"),
            ErrorKind::RedirectRefused => f.write_str("redirect refused"),
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from windlass: [`kind()`](Error::kind), the [`url()`](Error::url)
/// it concerns, a message a person can act on, and the underlying source.
///
/// `Display` says one thing once: the message and the URL (its password
/// hidden), never the cause. The cause is the
/// [`source()`](std::error::Error::source); to show a person the whole story,
/// walk the chain:
///
/// ```
/// fn report(err: &windlass::Error) -> String {
///     let mut text = err.to_string();
///     let mut cause = std::error::Error::source(err);
///     while let Some(c) = cause {
///         text.push_str(&format!(": {c}"));
///         cause = c.source();
///     }
///     text
/// }
/// let err = windlass::get("http://exa mple.com/").call().unwrap_err();
/// assert!(report(&err).starts_with("invalid URL"));
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    url: Option<Url>,
    source: Option<Source>,
    timings: Option<Timings>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                url: None,
                source: None,
                timings: None,
            }),
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Source>,
    ) -> Error {
        let mut e = Error::new(kind, message);
        e.inner.source = Some(source.into());
        e
    }

    pub(crate) fn timeout(phase: Phase, host: &str, elapsed: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout(phase),
            format!(
                "timed out after {:.1} s {} {}",
                elapsed.as_secs_f64(),
                phase.describe(),
                host
            ),
        )
    }

    pub(crate) fn cancelled(phase: Phase) -> Error {
        Error::new(
            ErrorKind::Cancelled,
            format!("request cancelled while {}", phase.as_str()),
        )
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    /// Attach the URL unless one is already there (the innermost URL is the most precise).
    pub(crate) fn at_url(mut self, url: &Url) -> Error {
        if self.inner.url.is_none() {
            self.inner.url = Some(url.clone());
        }
        self
    }

    pub(crate) fn with_timings(mut self, timings: Timings) -> Error {
        self.inner.timings = Some(timings);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The URL of the request that failed, when known.
    pub fn url(&self) -> Option<&Url> {
        self.inner.url.as_ref()
    }

    /// How far the request got before it failed, when it got as far as a connection attempt.
    pub fn timings(&self) -> Option<&Timings> {
        self.inner.timings.as_ref()
    }

    /// True for [`ErrorKind::Timeout`] in any phase.
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Timeout(_))
    }

    /// Recover a windlass error from an `io::Error` produced by [`Body`](crate::Body)'s
    /// `Read` implementation; any other I/O error becomes kind [`ErrorKind::Io`].
    pub fn from_io(err: io::Error) -> Error {
        let is_ours = err
            .get_ref()
            .map(|inner| inner.is::<Error>())
            .unwrap_or(false);
        if is_ours {
            let inner = err.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        // A TLS alert or bad record after the handshake (on the first read,
        // for a TLS 1.3 server refusing the client certificate) is a TLS
        // error, not an I/O one: repeating the request cannot help.
        #[cfg(feature = "tls")]
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            let inner = err.into_inner().expect("checked above");
            let tls = *inner.downcast::<rustls::Error>().expect("checked above");
            return crate::tls::session_error(tls);
        }
        match err.kind() {
            io::ErrorKind::UnexpectedEof => {
                Error::with_source(ErrorKind::Protocol, "connection closed early", err)
            }
            _ => Error::with_source(ErrorKind::Io, "i/o error", err),
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::from_io(err)
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind() {
            ErrorKind::Timeout(_) => io::ErrorKind::TimedOut,
            ErrorKind::Cancelled => io::ErrorKind::Other,
            ErrorKind::Protocol => io::ErrorKind::InvalidData,
            ErrorKind::BodyTooLarge => io::ErrorKind::InvalidData,
            ErrorKind::Connect => io::ErrorKind::ConnectionRefused,
            ErrorKind::Json => io::ErrorKind::InvalidData,
            ErrorKind::InvalidMethod | ErrorKind::InvalidConfig => io::ErrorKind::InvalidInput,
            ErrorKind::TlsUnavailable => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(url) = &self.inner.url {
            d.field("url", &url.as_str());
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)?;
        // The cause is `source()`, not part of this text: a reporter that
        // walks the chain would otherwise print it twice.
        if let Some(url) = &self.inner.url {
            write!(f, " ({})", redacted(url))?;
        }
        Ok(())
    }
}

/// An error and every cause behind it on one line, for logs:
/// `message (url): cause: cause`.
pub(crate) struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        // Bounded: a cycle of sources would otherwise never end.
        for _ in 0..16 {
            let Some(cause) = next else { break };
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

/// A URL for messages and logs: the password, if any, is never printed.
pub(crate) fn redacted(url: &Url) -> String {
    if url.password().is_some() {
        let mut u = url.clone();
        let _ = u.set_password(Some("***"));
        u.to_string()
    } else {
        url.to_string()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_survives_a_trip_through_io_error() {
        let e = Error::timeout(
            Phase::ResponseHead,
            "example.com:443",
            Duration::from_secs(2),
        );
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        let back = Error::from_io(io);
        assert_eq!(back.kind(), ErrorKind::Timeout(Phase::ResponseHead));
        assert_eq!(
            back.to_string(),
            "timed out after 2.0 s waiting for the response head from example.com:443"
        );
    }

    #[test]
    fn passwords_are_not_printed() {
        let url = Url::parse("http://user:secret@example.com/").unwrap();
        let e = Error::new(ErrorKind::Connect, "refused").at_url(&url);
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn display_says_the_message_and_url_but_not_the_source() {
        let url = Url::parse("http://example.com/x").unwrap();
        let cause = io::Error::new(io::ErrorKind::ConnectionReset, "peer hung up");
        let e = Error::with_source(ErrorKind::Io, "the connection failed", cause).at_url(&url);
        assert_eq!(
            e.to_string(),
            "the connection failed (http://example.com/x)"
        );
        assert!(!e.to_string().contains("peer hung up"));
        let source = std::error::Error::source(&e).expect("the cause is the source");
        assert_eq!(source.to_string(), "peer hung up");
    }

    #[test]
    fn every_kind_has_a_short_name() {
        for kind in [
            ErrorKind::Json,
            ErrorKind::InvalidMethod,
            ErrorKind::TlsUnavailable,
            ErrorKind::InvalidConfig,
            ErrorKind::Proxy(crate::ProxyStatus::Socks5(5)),
        ] {
            let name = kind.to_string();
            assert!(!name.is_empty() && name == name.to_lowercase(), "{name}");
        }
    }
}
