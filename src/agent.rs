//! `Agent`, `AgentBuilder` and the immutable `Config` they share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};

use crate::error::{Error, ErrorKind};
use crate::inflight::{InFlightList, Registry};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::observe::Hook;
use crate::pool::{HostLimits, Pool, PoolConfig, PoolKey, PoolStats, Scheme};
use crate::proxy::Proxy;
use crate::ratelimit::{Limiter, RateLimit};
use crate::request::{IntoUrl, RequestBuilder};
use crate::resolve::{Dns, Resolver, SystemResolver};
use crate::retry::Retry;

/// Time limits for each phase. `None` means no limit for that phase.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeouts {
    pub overall: Option<Duration>,
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub write: Option<Duration>,
    pub response_head: Option<Duration>,
    pub read: Option<Duration>,
    pub pool_wait: Option<Duration>,
}

impl Timeouts {
    /// Safe, not unlimited: a slow server cannot hang the program.
    pub(crate) fn safe_defaults() -> Timeouts {
        let s = |n| Some(Duration::from_secs(n));
        Timeouts {
            overall: None,
            dns: s(10),
            connect: s(10),
            tls: s(10),
            write: s(30),
            response_head: s(30),
            read: s(30),
            pool_wait: s(30),
        }
    }

    /// These limits with every phase limit a request set taking precedence,
    /// a limit it switched off included.
    pub(crate) fn with(self, overrides: &PhaseOverrides) -> Timeouts {
        let PhaseOverrides {
            dns,
            connect,
            tls,
            write,
            response_head,
            read,
            pool_wait,
        } = *overrides;
        Timeouts {
            overall: self.overall,
            dns: dns.unwrap_or(self.dns),
            connect: connect.unwrap_or(self.connect),
            tls: tls.unwrap_or(self.tls),
            write: write.unwrap_or(self.write),
            response_head: response_head.unwrap_or(self.response_head),
            read: read.unwrap_or(self.read),
            pool_wait: pool_wait.unwrap_or(self.pool_wait),
        }
    }
}

/// The phase limits one request sets: `None` leaves the agent's limit,
/// `Some(None)` switches the phase's limit off, `Some(Some(d))` replaces it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PhaseOverrides {
    pub dns: Option<Option<Duration>>,
    pub connect: Option<Option<Duration>>,
    pub tls: Option<Option<Duration>>,
    pub write: Option<Option<Duration>>,
    pub response_head: Option<Option<Duration>>,
    pub read: Option<Option<Duration>>,
    pub pool_wait: Option<Option<Duration>>,
}

/// Everything an agent was built with; immutable afterwards.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub timeouts: Timeouts,
    pub pool: PoolConfig,
    pub max_redirects: u32,
    pub https_to_http: bool,
    /// Caller-set headers kept on a redirect to another origin, beyond the
    /// harmless ones (see `redirect::KEPT_ACROSS_ORIGINS`).
    pub redirect_keep_headers: Vec<http::HeaderName>,
    pub retry: Retry,
    pub user_agent: HeaderValue,
    pub body_limit: u64,
    pub max_head_size: usize,
    pub decompress: bool,
    pub proxy: crate::proxy::ProxyConfig,
    pub leak_warn_after: Option<Duration>,
    /// The slowest a body may arrive; `None`: only the read-idle timeout.
    pub min_speed: Option<crate::MinSpeed>,
    #[cfg(feature = "tls")]
    pub tls: crate::tls::TlsSettings,
    /// How many hosts get metric series of their own (see `metrics.rs`).
    pub metric_series: crate::metrics::SeriesLimits,
    /// Decoded-size limit, Expect: 100-continue, cookies.
    pub extras: crate::extras::Extras,
    /// Middleware, the redirect policy, default headers and the agent-wide
    /// cancel token (see `defaults`).
    pub defaults: crate::defaults::Defaults,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            timeouts: Timeouts::safe_defaults(),
            pool: PoolConfig {
                max_idle: 100,
                // Not Go's 2: a busy client churning through connections fills
                // TIME_WAIT; 32 covers real concurrency per host.
                max_idle_per_host: 32,
                max_connections_per_host: None,
                idle_timeout: Some(Duration::from_secs(90)),
                max_lifetime: None,
                host_limits: HashMap::new(),
            },
            max_redirects: 10,
            https_to_http: false,
            redirect_keep_headers: Vec::new(),
            retry: Retry::none(),
            user_agent: HeaderValue::from_static(concat!("windlass/", env!("CARGO_PKG_VERSION"))),
            body_limit: 10 * 1024 * 1024,
            max_head_size: 64 * 1024,
            decompress: crate::codings::ANY,
            proxy: crate::proxy::ProxyConfig::default(),
            leak_warn_after: Some(Duration::from_secs(60)),
            min_speed: None,
            #[cfg(feature = "tls")]
            tls: crate::tls::TlsSettings::default(),
            metric_series: crate::metrics::SeriesLimits::default(),
            extras: crate::extras::Extras::default(),
            defaults: crate::defaults::Defaults::default(),
        }
    }
}

/// What an agent shares between its clones.
pub(crate) struct AgentInner {
    pub config: Config,
    pub pool: Pool,
    pub dns: Dns,
    pub next_conn_id: AtomicU64,
    pub metrics: Arc<Metrics>,
    pub hook: Option<Arc<dyn Hook>>,
    pub limiter: Limiter,
    /// Built by `AgentBuilder::build`, so a bad certificate is an error there
    /// and not at the first https request.
    #[cfg(feature = "tls")]
    tls: Arc<rustls::ClientConfig>,
}

impl AgentInner {
    /// The agent's one TLS config, shared by its connections so they can
    /// resume sessions. Built and checked by `AgentBuilder::build`; the
    /// `Result` keeps callers ready for a config that can fail later (a
    /// reloaded certificate).
    #[cfg(feature = "tls")]
    pub(crate) fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        Ok(Arc::clone(&self.tls))
    }

    /// The proxy a request goes through: its own choice
    /// ([`RequestBuilder::proxy`](crate::RequestBuilder::proxy)), else the
    /// agent's (explicit, or the environment's, minus `no_proxy`).
    pub(crate) fn route(&self, req: &crate::request::Request) -> Option<Arc<crate::proxy::Proxy>> {
        match &req.overrides.extras.proxy {
            Some(choice) => choice.clone(),
            None => self.config.proxy.select(&req.url),
        }
    }

    /// The pool key for a URL. Every setting that changes what a connection
    /// *is* must appear here; destructuring makes adding one a decision.
    pub(crate) fn pool_key(
        &self,
        url: &url::Url,
        proxy: Option<Arc<crate::proxy::Proxy>>,
    ) -> Result<PoolKey, Error> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            _ => Scheme::Http,
        };
        let host = url
            .host_str()
            .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "URL has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "URL has no port"))?;
        // The URL parser already lowercases domain names; only an odd input
        // (an opaque host) pays for another copy.
        let host: Arc<str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Arc::from(host.to_ascii_lowercase())
        } else {
            Arc::from(host)
        };
        Ok(PoolKey {
            scheme,
            host,
            port,
            proxy,
            tls: (scheme == Scheme::Https).then(|| self.tls_mode()),
        })
    }

    #[cfg(feature = "tls")]
    fn tls_mode(&self) -> crate::pool::TlsMode {
        if self.config.tls.danger_accept_invalid_certs {
            crate::pool::TlsMode::DangerUnverified
        } else {
            crate::pool::TlsMode::Verified
        }
    }

    #[cfg(not(feature = "tls"))]
    fn tls_mode(&self) -> crate::pool::TlsMode {
        crate::pool::TlsMode::Verified
    }
}

impl Drop for AgentInner {
    fn drop(&mut self) {
        self.pool.shut_down();
    }
}

/// A thread-safe HTTP client with a connection pool. Clone it freely: clones
/// share the pool, the DNS cache and the TLS session cache.
///
/// ```no_run
/// use std::time::Duration;
/// # fn main() -> Result<(), windlass::Error> {
/// let agent = windlass::Agent::builder()
///     .timeout_connect(Duration::from_secs(5))
///     .timeout(Duration::from_secs(30))
///     .max_idle_per_host(32)
///     .max_connections_per_host(64)
///     .build().unwrap();
/// let body = agent.get("http://127.0.0.1:8080/").call()?.text()?;
/// # drop(body); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Arc<AgentInner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for Agent {
    fn default() -> Agent {
        Agent::new()
    }
}

macro_rules! verbs {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {
        $(
            $(#[$doc])*
            #[track_caller]
            pub fn $name(&self, url: impl IntoUrl) -> RequestBuilder {
                RequestBuilder::new(self.clone(), Ok(Method::$method), url.into_url())
            }
        )*
    };
}

impl Agent {
    /// An agent with the default settings.
    pub fn new() -> Agent {
        AgentBuilder::default()
            .build()
            .expect("the default settings are valid")
    }

    /// Start configuring an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    verbs! {
        /// A GET request.
        get => GET;
        /// A POST request.
        post => POST;
        /// A PUT request.
        put => PUT;
        /// A DELETE request.
        delete => DELETE;
        /// A HEAD request.
        head => HEAD;
        /// A PATCH request.
        patch => PATCH;
        /// An OPTIONS request.
        options => OPTIONS;
    }

    /// A request with any method, given as a string (`"PROPFIND"`) or an [`http::Method`].
    #[track_caller]
    pub fn request(&self, method: impl AsRef<str>, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder::new(
            self.clone(),
            crate::request::parse_method(method.as_ref()),
            url.into_url(),
        )
    }

    /// Counts per pool key: idle, active, connecting, waiting, opened, reused, closed.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Counters, gauges and histograms of everything this agent did;
    /// [`MetricsSnapshot::to_prometheus`] renders them for a scrape.
    pub fn metrics(&self) -> MetricsSnapshot {
        let max_hosts = self.inner.config.metric_series.max_hosts;
        let pool = crate::metrics::cap_hosts(self.inner.pool.stats(), max_hosts);
        self.inner.metrics.snapshot(pool)
    }

    /// Every request in flight: host, method, path, phase, age and the call
    /// site that built it. Print it to see what holds the pool's connections.
    pub fn in_flight(&self) -> InFlightList {
        self.inner.pool.in_flight().snapshot()
    }
}

/// Configures an [`Agent`]. Every setting has a safe default.
#[derive(Debug, Default)]
#[must_use]
pub struct AgentBuilder {
    pub(crate) config: Config,
    hook: Option<Arc<dyn Hook>>,
    rate_limit: Option<RateLimit>,
    host_rate_limits: HashMap<String, RateLimit>,
    resolver: Option<Arc<dyn Resolver>>,
    overrides: HashMap<String, Vec<SocketAddr>>,
    dns_ttl: Option<Duration>,
    /// The first setting that cannot work, reported by `build()`.
    error: Option<Error>,
}

impl std::fmt::Debug for dyn Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl std::fmt::Debug for dyn Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl AgentBuilder {
    /// Remember the first setting that cannot work; `build()` reports it.
    pub(crate) fn fail(&mut self, err: Error) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }

    /// Overall limit per request (redirects, retries and body included), like
    /// Go's `Client.Timeout`. Default: none (each phase is still bounded).
    ///
    /// `None`: no overall limit; each phase keeps its own.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.overall = timeout.into();
        self
    }

    /// Limit for resolving a host name. Default 10 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_dns(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.dns = timeout.into();
        self
    }

    /// Limit for opening a TCP connection, all addresses together. Default 10 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_connect(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.connect = timeout.into();
        self
    }

    /// Limit for the TLS handshake. Default 10 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_tls(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.tls = timeout.into();
        self
    }

    /// Longest a write may make no progress. Default 30 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_write(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.write = timeout.into();
        self
    }

    /// Limit for the response head, from the end of the request. Default 30 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_response_head(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.response_head = timeout.into();
        self
    }

    /// Longest wait between two reads of body bytes. Default 30 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_read(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.read = timeout.into();
        self
    }

    /// Longest wait for a connection slot when the host is at its limit. Default 30 s.
    ///
    /// `None`: no limit for this phase; the overall timeout/deadline still applies.
    pub fn timeout_pool_wait(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeouts.pool_wait = timeout.into();
        self
    }

    /// Most idle connections kept in total, least recently used evicted first. Default 100.
    pub fn max_idle(mut self, max: usize) -> Self {
        self.config.pool.max_idle = max;
        self
    }

    /// Most idle connections kept per host. Default 32 (0 disables keep-alive).
    pub fn max_idle_per_host(mut self, max: usize) -> Self {
        self.config.pool.max_idle_per_host = max;
        self
    }

    /// Most connections per host (connecting + active + idle). Beyond it,
    /// requests wait in FIFO order. Default unlimited.
    pub fn max_connections_per_host(mut self, max: usize) -> Self {
        self.config.pool.max_connections_per_host = Some(max.max(1));
        self
    }

    /// Limits for one host, overriding the agent's. `host_port` is the host
    /// and port as in a URL: `"api.example.com:443"`, `"10.0.0.7:8080"`,
    /// `"[::1]:8443"`. Host names are compared without regard to case.
    ///
    /// A key without a valid port (1 to 65535) or with an invalid host makes
    /// [`build`](AgentBuilder::build) fail with
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    pub fn host_limits(mut self, host_port: &str, limits: HostLimits) -> Self {
        match host_port_key("host_limits", host_port) {
            Ok(key) => {
                self.config.pool.host_limits.insert(key, limits);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// How long an idle connection is kept. Default 90 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.pool.idle_timeout = Some(timeout);
        self
    }

    /// Close connections older than this when they come back. Default none.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.pool.max_lifetime = Some(lifetime);
        self
    }

    /// Most redirects followed; 0 hands back the 3xx response. Default 10.
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.config.max_redirects = max;
        self
    }

    /// Allow following redirects from https to http. Default false.
    pub fn https_to_http_redirects(mut self, allow: bool) -> Self {
        self.config.https_to_http = allow;
        self
    }

    /// Keep a header the caller set when a redirect leads to another origin
    /// (scheme, host or port). By default only headers that say nothing about
    /// who is asking survive such a hop: `Accept`, `Accept-Charset`,
    /// `Accept-Encoding`, `Accept-Language`, `User-Agent`, `Cache-Control`,
    /// `Pragma`, the range and validator headers (`Range`, `If-Range`,
    /// `If-None-Match`, `If-Modified-Since`: a resumed download redirected to
    /// a CDN still asks for its range), and `Content-Type` /
    /// `Content-Language` / `Content-Encoding` when a 307/308 keeps the body. Everything else (an API key, a token, a cookie) is dropped, so
    /// a redirect cannot carry it to a host the caller never named. Naming
    /// `Authorization` here is the equivalent of curl's `--location-trusted`.
    /// A caller-set `Host` never crosses origins. May be called repeatedly.
    ///
    /// ```
    /// use windlass::http::HeaderName;
    /// let agent = windlass::Agent::builder()
    ///     .keep_header_on_redirect(HeaderName::from_static("x-request-id"))
    ///     .build().unwrap();
    /// # drop(agent);
    /// ```
    pub fn keep_header_on_redirect(mut self, name: http::HeaderName) -> Self {
        self.config.redirect_keep_headers.push(name);
        self
    }

    /// Fail a response body that arrives slower than `min` (curl's
    /// `--speed-limit` / `--speed-time`), with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)`(`[`Phase::LowSpeed`](crate::Phase::LowSpeed)`)`.
    /// The read-idle timeout restarts with every byte, so without this a
    /// server sending one byte every 29 s holds a call open forever. Default:
    /// none for streamed bodies; [`MinSpeed::BUFFERED_DEFAULT`](crate::MinSpeed::BUFFERED_DEFAULT)
    /// for [`Response::text`](crate::Response::text) and
    /// [`Response::bytes`](crate::Response::bytes).
    pub fn min_speed(mut self, min: crate::MinSpeed) -> Self {
        self.config.min_speed = Some(min);
        self
    }

    /// The retry policy for failures and retryable statuses. Default: none
    /// (the stale-connection retry is always on).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.config.retry = retry;
        self
    }

    /// The User-Agent sent when a request sets none. Default `windlass/VERSION`.
    ///
    /// A value that is not a valid header value (a CR, LF or other control
    /// character) makes [`build`](AgentBuilder::build) fail with
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        match HeaderValue::from_str(user_agent) {
            Ok(value) => self.config.user_agent = value,
            // The http crate's error says no more than this message.
            Err(_) => self.fail(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "user_agent: {user_agent:?} is not a valid header value \
                     (control characters such as CR and LF are not allowed)"
                ),
            )),
        }
        self
    }

    /// Most bytes `text()` and `bytes()` read. Default 10 MiB.
    pub fn body_limit(mut self, limit: u64) -> Self {
        self.config.body_limit = limit;
        self
    }

    /// Largest response head accepted. Default 64 KiB.
    pub fn max_head_size(mut self, size: usize) -> Self {
        self.config.max_head_size = size.max(256);
        self
    }

    /// Ask for and decode compressed bodies (gzip and deflate with the
    /// `gzip` feature, br with `brotli`, zstd with `zstd`). Default on when
    /// the build decodes any.
    pub fn decompress(mut self, on: bool) -> Self {
        self.config.decompress = on && crate::codings::ANY;
        self
    }

    /// Send every request through this proxy (but the hosts of
    /// [`no_proxy`](AgentBuilder::no_proxy)), instead of the environment's.
    /// See [`Proxy`] for the kinds.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.config.proxy.explicit = Some(Arc::new(proxy));
        self
    }

    /// Warn (once) about a response body held longer than this. Default 60 s.
    pub fn leak_warn_after(mut self, after: Duration) -> Self {
        self.config.leak_warn_after = Some(after);
        self
    }

    /// Use these addresses for `host` instead of resolving it (like curl's
    /// `--resolve`). A port of 0 means the URL's port. `host` is the host
    /// alone, without a port; names are compared without regard to case.
    ///
    /// An empty list or a host with a port makes
    /// [`build`](AgentBuilder::build) fail with
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    pub fn resolve(mut self, host: &str, addrs: Vec<SocketAddr>) -> Self {
        if addrs.is_empty() {
            self.fail(Error::new(
                ErrorKind::InvalidConfig,
                format!("resolve: no addresses given for {host:?}"),
            ));
            return self;
        }
        match host_key("resolve", host) {
            Ok(key) => {
                self.overrides.insert(key, addrs);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Resolve names with `resolver` instead of the system's.
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// How long resolved addresses are cached. Default 60 s.
    pub fn dns_ttl(mut self, ttl: Duration) -> Self {
        self.dns_ttl = Some(ttl);
        self
    }

    /// Also trust these certificates: PEM (one or more `CERTIFICATE`
    /// blocks) or DER (one certificate). May be called repeatedly.
    ///
    /// A server that presents one of them as its own certificate is trusted
    /// too, as curl trusts it (a self-signed certificate made by `openssl req
    /// -x509`); its name and validity dates are still checked.
    ///
    /// A PEM without a certificate, or a certificate that cannot be parsed or
    /// used as a root, makes [`build`](AgentBuilder::build) fail with
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(mut self, pem: &[u8]) -> Self {
        self.config.tls.extra_roots.push(pem.to_vec());
        self
    }

    /// Trust only the certificates added with `add_root_certificate`, not the
    /// built-in webpki roots. Without any added certificate no server could be
    /// trusted, so [`build`](AgentBuilder::build) fails with
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    #[cfg(feature = "tls")]
    pub fn only_added_roots(mut self, only: bool) -> Self {
        self.config.tls.only_extra_roots = only;
        self
    }

    /// Present a client certificate (PEM chain, leaf first, and PEM private
    /// key). A chain or key that cannot be parsed, or a key that does not
    /// belong to the certificate, makes [`build`](AgentBuilder::build) fail
    /// with [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    #[cfg(feature = "tls")]
    pub fn client_certificate(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Self {
        self.config.tls.client_cert = Some((chain_pem.to_vec(), key_pem.to_vec()));
        self
    }

    /// Accept any server certificate. Dangerous: anyone on the path can read
    /// and change the traffic. Logs a warning when the agent is built, and
    /// such connections are never shared with verifying requests.
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.config.tls.danger_accept_invalid_certs = accept;
        self
    }

    /// Limit the request rate to every host (each host has its own bucket).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Limit the request rate to one host, overriding
    /// [`rate_limit`](AgentBuilder::rate_limit) for it. `host_port` is written
    /// as for [`host_limits`](AgentBuilder::host_limits):
    /// `"api.example.com:443"`; a malformed one makes
    /// [`build`](AgentBuilder::build) fail.
    pub fn host_rate_limit(mut self, host_port: &str, limit: RateLimit) -> Self {
        match host_port_key("host_rate_limit", host_port) {
            Ok(key) => {
                self.host_rate_limits.insert(key, limit);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Receive every request's [`Event`](crate::Event)s.
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Build the agent, or report the first setting that cannot work.
    ///
    /// What is checked: the [`user_agent`](AgentBuilder::user_agent) value;
    /// the `host:port` keys of [`host_limits`](AgentBuilder::host_limits) and
    /// [`host_rate_limit`](AgentBuilder::host_rate_limit); the hosts and
    /// addresses given to [`resolve`](AgentBuilder::resolve); and, with the
    /// `tls` feature, the certificates (`add_root_certificate`,
    /// `client_certificate`) and `only_added_roots` without an added root.
    /// The TLS configuration is built here, once, so a bad certificate is
    /// reported now rather than by the first https request.
    ///
    /// ```
    /// let err = windlass::Agent::builder()
    ///     .host_limits("api.example.com", windlass::HostLimits::default())
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), windlass::ErrorKind::InvalidConfig);
    /// assert!(err.to_string().starts_with("host_limits: "));
    /// ```
    ///
    /// # Errors
    ///
    /// The first invalid setting, named at the start of the message, with
    /// kind [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    pub fn build(self) -> Result<Agent, Error> {
        let AgentBuilder {
            mut config,
            hook,
            rate_limit,
            host_rate_limits,
            resolver,
            overrides,
            dns_ttl,
            error,
        } = self;
        if let Some(err) = error {
            return Err(err);
        }
        #[cfg(feature = "tls")]
        config.proxy.prepare(&config.tls)?;
        #[cfg(not(feature = "tls"))]
        config.proxy.prepare()?;
        #[cfg(feature = "tls")]
        let tls = crate::tls::build_config(&config.tls)?;
        #[cfg(feature = "tls")]
        if config.tls.danger_accept_invalid_certs {
            log::warn!(
                "TLS certificate verification is OFF for this agent (danger_accept_invalid_certs): \
                 connections can be intercepted"
            );
        }
        let resolver = resolver.unwrap_or_else(|| Arc::new(SystemResolver));
        let dns = Dns::new(
            resolver,
            overrides,
            dns_ttl.unwrap_or(Duration::from_secs(60)),
        );
        let metrics = Arc::new(Metrics::default());
        let registry = Arc::new(Registry::new(config.leak_warn_after, Arc::clone(&metrics)));
        Ok(Agent {
            inner: Arc::new(AgentInner {
                pool: Pool::new(config.pool.clone(), registry),
                config,
                dns,
                next_conn_id: AtomicU64::new(1),
                metrics,
                hook,
                limiter: Limiter::new(rate_limit, host_rate_limits),
                #[cfg(feature = "tls")]
                tls,
            }),
        })
    }
}

/// A `host:port` key as the pool and the rate limiter look hosts up (the
/// form of [`PoolKey::authority`]): the host as the URL parser writes it
/// (lowercase, IDNA, IPv6 in brackets) and a port from 1 to 65535.
fn host_port_key(setting: &str, host_port: &str) -> Result<String, Error> {
    let invalid = |why: &str| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("{setting}: {host_port:?} is not host:port ({why})"),
        )
    };
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Err(invalid(
            "the port is missing, as in \"api.example.com:443\"",
        ));
    };
    if host.contains(':') && !host.starts_with('[') {
        return Err(invalid(
            "an IPv6 address goes in brackets, as in \"[::1]:443\"",
        ));
    }
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let port = match port.parse::<u16>() {
        Ok(n) if digits && n != 0 => n,
        _ => return Err(invalid("the port must be a number from 1 to 65535")),
    };
    if host.is_empty() {
        return Err(invalid("the host is missing"));
    }
    let host = url::Host::parse(host).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidConfig,
            format!("{setting}: {host_port:?} is not host:port (the host is not valid)"),
            e,
        )
    })?;
    Ok(format!("{host}:{port}"))
}

/// A host (no port) as the resolver looks it up: lowercase, IDNA, an IPv6
/// address without brackets.
fn host_key(setting: &str, host: &str) -> Result<String, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::Ipv6Addr>() {
        return Ok(ip.to_string());
    }
    if host.contains(':') {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "{setting}: {host:?} has a port; give the host alone \
                 (an address with port 0 takes the URL's port)"
            ),
        ));
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(name)) => Ok(name),
        Ok(other) => Ok(other.to_string()),
        Err(e) => Err(Error::with_source(
            ErrorKind::InvalidConfig,
            format!("{setting}: {host:?} is not a valid host name"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_keys_take_the_form_of_pool_keys() {
        let key = |s| host_port_key("host_limits", s);
        assert_eq!(key("API.Example.com:443").unwrap(), "api.example.com:443");
        assert_eq!(key("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(key("[0:0::1]:8443").unwrap(), "[::1]:8443");
        for bad in [
            "api.example.com",
            "api.example.com:",
            "api.example.com:0",
            "api.example.com:65536",
            "api.example.com:+80",
            ":443",
            "::1:443",
            "http://a:80",
            "a b:80",
        ] {
            let err = key(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{bad}");
            assert!(err.to_string().starts_with("host_limits: "), "{err}");
        }
    }

    #[test]
    fn resolve_hosts_take_the_form_of_url_hosts() {
        let key = |s| host_key("resolve", s);
        assert_eq!(key("LocalHost").unwrap(), "localhost");
        assert_eq!(key("[::1]").unwrap(), "::1");
        assert_eq!(key("10.0.0.1").unwrap(), "10.0.0.1");
        assert!(key("localhost:443").is_err());
        assert!(key("a b").is_err());
    }

    #[test]
    fn a_phase_switched_off_for_a_request_has_no_limit() {
        let agent = Timeouts::safe_defaults();
        let overrides = PhaseOverrides {
            connect: Some(None),
            read: Some(Some(Duration::from_secs(1))),
            ..PhaseOverrides::default()
        };
        let merged = agent.with(&overrides);
        assert_eq!(merged.connect, None);
        assert_eq!(merged.read, Some(Duration::from_secs(1)));
        assert_eq!(merged.dns, agent.dns);
    }
}
