//! Per-request timings, in the spirit of curl's `CURLINFO_*_TIME` and Go's httptrace.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Phase;

/// How long each phase of a request took. Phases that did not run are `None`
/// (a reused connection has no DNS, connect or TLS time).
///
/// With redirects or retries, the phase times describe the last attempt;
/// `total` covers them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Resolving the host name (absent when cached, an IP literal, or reused).
    pub dns: Option<Duration>,
    /// Opening the TCP connection.
    pub connect: Option<Duration>,
    /// The TLS handshake.
    pub tls: Option<Duration>,
    /// Whether that handshake resumed an earlier session (abbreviated handshake).
    pub tls_resumed: Option<bool>,
    /// The TLS version that handshake negotiated.
    pub tls_version: Option<TlsVersion>,
    /// The cipher suite that handshake negotiated, by its IANA name
    /// (`"TLS_AES_128_GCM_SHA256"`).
    pub tls_cipher: Option<&'static str>,
    /// Waiting for a connection slot in the pool.
    pub pool_wait: Option<Duration>,
    /// From the start of the request until the request was fully written.
    pub request_written: Option<Duration>,
    /// From the start of the request until the first byte of the response.
    pub first_byte: Option<Duration>,
    /// From the start of the request until the body was complete: set when
    /// there was no body left to read at return (HEAD, 204, 304, an empty
    /// body). A streamed body reports its time through
    /// [`Event::ResponseDone`](crate::Event::ResponseDone).
    pub body_done: Option<Duration>,
    /// From the start of the request until the response head was read
    /// (for a response) or until the error (for an error).
    pub total: Duration,
    /// Whether the connection came from the pool.
    pub reused: bool,
    /// How long the reused connection had been idle.
    pub idle_before_reuse: Option<Duration>,
    /// The address connected to.
    pub remote_addr: Option<SocketAddr>,
    /// Attempts made for the last hop (1 without retries).
    pub attempts: u32,
    /// Redirects followed.
    pub redirects: u32,
    /// Opening the TCP connection to a proxy (also counted in `connect`,
    /// which is the TCP connect to whatever was dialled).
    pub proxy_connect: Option<Duration>,
    /// The TLS handshake with an `https://` proxy.
    pub proxy_tls: Option<Duration>,
    /// The proxy's CONNECT or SOCKS handshake.
    pub proxy_handshake: Option<Duration>,
    /// Time spent waiting for `100 Continue` before sending the body (see
    /// [`AgentBuilder::expect_continue`](crate::AgentBuilder::expect_continue)).
    pub expect_continue: Option<Duration>,
}

impl Timings {
    /// A phase ended: `d` is its duration, or for a milestone (request
    /// written, first byte, body done) the time since the request began.
    pub(crate) fn record(&mut self, phase: Phase, d: Duration) {
        match phase {
            Phase::Dns => self.dns = Some(d),
            Phase::Connect => self.connect = Some(d),
            Phase::Tls => self.tls = Some(d),
            Phase::PoolWait => self.pool_wait = Some(d),
            Phase::Write => self.request_written = Some(d),
            Phase::ResponseHead => self.first_byte = Some(d),
            Phase::Body | Phase::LowSpeed => self.body_done = Some(d),
            Phase::ProxyConnect => {
                self.connect = Some(d);
                self.proxy_connect = Some(d);
            }
            Phase::ProxyTls => self.proxy_tls = Some(d),
            Phase::ProxyHandshake => self.proxy_handshake = Some(d),
            Phase::ExpectContinue => self.expect_continue = Some(d),
            // Waits with no field of their own (retry, rate limit, and any
            // phase added without one) leave no mark.
            _ => {}
        }
    }
}

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.3} ms", d.as_secs_f64() * 1000.0),
        None => "-".to_string(),
    }
}

impl fmt::Display for Timings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dns          {}", ms(self.dns))?;
        writeln!(f, "connect      {}", ms(self.connect))?;
        let mut about: Vec<&str> = Vec::new();
        about.extend(self.tls_version.map(TlsVersion::as_str));
        about.extend(self.tls_cipher);
        if self.tls_resumed == Some(true) {
            about.push("resumed");
        }
        let resumed = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        writeln!(f, "tls          {}{resumed}", ms(self.tls))?;
        writeln!(f, "pool wait    {}", ms(self.pool_wait))?;
        writeln!(f, "written      {}", ms(self.request_written))?;
        writeln!(f, "first byte   {}", ms(self.first_byte))?;
        writeln!(f, "body done    {}", ms(self.body_done))?;
        writeln!(f, "total        {}", ms(Some(self.total)))?;
        write!(
            f,
            "reused       {}{}",
            if self.reused { "yes" } else { "no" },
            match self.idle_before_reuse {
                Some(idle) if self.reused => format!(" (idle {})", ms(Some(idle))),
                _ => String::new(),
            }
        )
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl TlsVersion {
    /// The name as OpenSSL and curl print it: `"TLSv1.2"`, `"TLSv1.3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
