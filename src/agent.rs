//! `Agent`, `AgentBuilder` and the immutable `Config` they share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderValue, Method};

use crate::error::Error;
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

    /// These limits with every limit set in `overrides` taking precedence.
    pub(crate) fn with(self, overrides: &Timeouts) -> Timeouts {
        Timeouts {
            overall: overrides.overall.or(self.overall),
            dns: overrides.dns.or(self.dns),
            connect: overrides.connect.or(self.connect),
            tls: overrides.tls.or(self.tls),
            write: overrides.write.or(self.write),
            response_head: overrides.response_head.or(self.response_head),
            read: overrides.read.or(self.read),
            pool_wait: overrides.pool_wait.or(self.pool_wait),
        }
    }
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
    pub proxy: Option<Proxy>,
    pub leak_warn_after: Option<Duration>,
    #[cfg(feature = "tls")]
    pub tls: crate::tls::TlsSettings,
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
            decompress: cfg!(feature = "gzip"),
            proxy: None,
            leak_warn_after: Some(Duration::from_secs(60)),
            #[cfg(feature = "tls")]
            tls: crate::tls::TlsSettings::default(),
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
    #[cfg(feature = "tls")]
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
    #[cfg(not(feature = "tls"))]
    #[allow(dead_code)]
    tls: OnceLock<()>,
}

impl AgentInner {
    /// The agent's one TLS config, built on first use so plain-HTTP agents
    /// never pay for loading the root store.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let built = self
            .tls
            .get_or_init(|| crate::tls::build_config(&self.config.tls).map_err(|e| e.to_string()));
        match built {
            Ok(config) => Ok(Arc::clone(config)),
            Err(message) => Err(Error::new(crate::ErrorKind::Tls, message.clone())),
        }
    }

    /// The pool key for a URL. Every setting that changes what a connection
    /// *is* must appear here; destructuring makes adding one a decision.
    pub(crate) fn pool_key(&self, url: &url::Url) -> Result<PoolKey, Error> {
        let Config { proxy, .. } = &self.config;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            _ => Scheme::Http,
        };
        let host = url
            .host_str()
            .ok_or_else(|| Error::new(crate::ErrorKind::InvalidUrl, "URL has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Error::new(crate::ErrorKind::InvalidUrl, "URL has no port"))?;
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
            proxy: proxy.as_ref().map(|p| Arc::from(p.authority())),
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
        self.inner.metrics.snapshot(self.inner.pool.stats())
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
    config: Config,
    hook: Option<Arc<dyn Hook>>,
    rate_limit: Option<RateLimit>,
    host_rate_limits: HashMap<String, RateLimit>,
    resolver: Option<Arc<dyn Resolver>>,
    overrides: HashMap<String, Vec<SocketAddr>>,
    dns_ttl: Option<Duration>,
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
    /// Overall limit per request (redirects, retries and body included), like
    /// Go's `Client.Timeout`. Default: none (each phase is still bounded).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.overall = Some(timeout);
        self
    }

    /// Limit for resolving a host name. Default 10 s.
    pub fn timeout_dns(mut self, timeout: Duration) -> Self {
        self.config.timeouts.dns = Some(timeout);
        self
    }

    /// Limit for opening a TCP connection, all addresses together. Default 10 s.
    pub fn timeout_connect(mut self, timeout: Duration) -> Self {
        self.config.timeouts.connect = Some(timeout);
        self
    }

    /// Limit for the TLS handshake. Default 10 s.
    pub fn timeout_tls(mut self, timeout: Duration) -> Self {
        self.config.timeouts.tls = Some(timeout);
        self
    }

    /// Longest a write may make no progress. Default 30 s.
    pub fn timeout_write(mut self, timeout: Duration) -> Self {
        self.config.timeouts.write = Some(timeout);
        self
    }

    /// Limit for the response head, from the end of the request. Default 30 s.
    pub fn timeout_response_head(mut self, timeout: Duration) -> Self {
        self.config.timeouts.response_head = Some(timeout);
        self
    }

    /// Longest wait between two reads of body bytes. Default 30 s.
    pub fn timeout_read(mut self, timeout: Duration) -> Self {
        self.config.timeouts.read = Some(timeout);
        self
    }

    /// Longest wait for a connection slot when the host is at its limit. Default 30 s.
    pub fn timeout_pool_wait(mut self, timeout: Duration) -> Self {
        self.config.timeouts.pool_wait = Some(timeout);
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

    /// Limits for one host (`"api.example.com:443"`), overriding the agent's.
    pub fn host_limits(mut self, host_port: &str, limits: HostLimits) -> Self {
        self.config
            .pool
            .host_limits
            .insert(host_port.to_ascii_lowercase(), limits);
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
    /// `Pragma`, and `Content-Type` / `Content-Language` when a 307/308 keeps
    /// the body. Everything else (an API key, a token, a cookie) is dropped, so
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

    /// The retry policy for failures and retryable statuses. Default: none
    /// (the stale-connection retry is always on).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.config.retry = retry;
        self
    }

    /// The User-Agent sent when a request sets none. Default `windlass/VERSION`.
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(user_agent) {
            self.config.user_agent = value;
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

    /// Ask for and decode gzip/deflate bodies. Default on (with the `gzip` feature).
    pub fn decompress(mut self, on: bool) -> Self {
        self.config.decompress = on && cfg!(feature = "gzip");
        self
    }

    /// Send every request through an HTTP proxy (CONNECT for https).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.config.proxy = Some(proxy);
        self
    }

    /// Warn (once) about a response body held longer than this. Default 60 s.
    pub fn leak_warn_after(mut self, after: Duration) -> Self {
        self.config.leak_warn_after = Some(after);
        self
    }

    /// Use these addresses for `host` instead of resolving it (like curl's
    /// `--resolve`). A port of 0 means the URL's port.
    pub fn resolve(mut self, host: &str, addrs: Vec<SocketAddr>) -> Self {
        self.overrides.insert(host.to_ascii_lowercase(), addrs);
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

    /// Also trust the certificates in this PEM. A PEM without a certificate
    /// makes https requests fail with [`ErrorKind::Tls`](crate::ErrorKind::Tls).
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(mut self, pem: &[u8]) -> Self {
        self.config.tls.extra_roots.push(pem.to_vec());
        self
    }

    /// Trust only the certificates added with `add_root_certificate`, not the
    /// built-in webpki roots.
    #[cfg(feature = "tls")]
    pub fn only_added_roots(mut self, only: bool) -> Self {
        self.config.tls.only_extra_roots = only;
        self
    }

    /// Present a client certificate (PEM chain and PEM private key).
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

    /// Limit the request rate to one host (`"api.example.com:443"`),
    /// overriding [`rate_limit`](AgentBuilder::rate_limit) for it.
    pub fn host_rate_limit(mut self, host_port: &str, limit: RateLimit) -> Self {
        self.host_rate_limits
            .insert(host_port.to_ascii_lowercase(), limit);
        self
    }

    /// Receive every request's [`Event`](crate::Event)s.
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Build the agent, or report the first setting that cannot work.
    ///
    /// # Errors
    ///
    /// An invalid setting, named in the error, with kind
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig).
    pub fn build(self) -> Result<Agent, Error> {
        let AgentBuilder {
            config,
            hook,
            rate_limit,
            host_rate_limits,
            resolver,
            overrides,
            dns_ttl,
        } = self;
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
                tls: OnceLock::new(),
            }),
        })
    }
}
