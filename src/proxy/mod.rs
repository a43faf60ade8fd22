//! Proxies: which one a request goes through (an explicit one, or the
//! environment's with `NO_PROXY`), and how a connection is made through it
//! (HTTP CONNECT in [`tunnel`], SOCKS in [`socks`]). Opening the connection
//! itself is `connect::open`, which calls in here phase by phase.

mod env;
pub(crate) mod socks;
pub(crate) mod tunnel;

use std::fmt;
use std::sync::Arc;

use http::header::HeaderValue;
use url::Url;

use crate::agent::AgentBuilder;
use crate::error::{Error, ErrorKind};

pub(crate) use env::{EnvProxies, NoProxy};

/// What kind of proxy a [`Proxy`] is, from its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// `http://`: plain requests in absolute form, https through CONNECT.
    Http,
    /// `https://`: as `Http`, inside a TLS connection to the proxy.
    Https,
    /// `socks5://`: SOCKS5 (RFC 1928), the host name resolved here.
    Socks5,
    /// `socks5h://`: SOCKS5, the proxy resolves the host name.
    Socks5h,
    /// `socks4://`: SOCKS4, the host name resolved here (IPv4 only).
    Socks4,
    /// `socks4a://`: SOCKS4a, the proxy resolves the host name.
    Socks4a,
}

impl ProxyKind {
    fn from_scheme(scheme: &str) -> Option<ProxyKind> {
        Some(match scheme {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            "socks4" => ProxyKind::Socks4,
            "socks4a" => ProxyKind::Socks4a,
            _ => return None,
        })
    }

    /// The scheme as written in a proxy URL.
    pub fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
            ProxyKind::Socks4 => "socks4",
            ProxyKind::Socks4a => "socks4a",
        }
    }

    /// The port when the URL names none: Go's choice (80, 443, 1080).
    fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 80,
            ProxyKind::Https => 443,
            _ => 1080,
        }
    }

    /// Whether the proxy speaks HTTP (reads absolute-form requests, CONNECT).
    pub(crate) fn is_http(self) -> bool {
        matches!(self, ProxyKind::Http | ProxyKind::Https)
    }
}

/// A proxy: `http://`, `https://`, `socks5://`, `socks5h://`, `socks4://` or
/// `socks4a://`, with optional `user:password@` credentials. A URL without a
/// scheme is taken as `http://`, as curl does (`127.0.0.1:3128`).
///
/// The credentials are sent to the proxy only (`Proxy-Authorization: Basic`
/// for HTTP proxies, RFC 1929 for SOCKS5, the user id for SOCKS4), never to
/// the origin. Two proxies with different credentials never share a pooled
/// connection.
///
/// ```
/// let proxy = windlass::Proxy::new("socks5h://user:secret@127.0.0.1:1080").unwrap();
/// assert_eq!(proxy.kind(), windlass::ProxyKind::Socks5h);
/// let agent = windlass::Agent::builder().proxy(proxy).build().unwrap();
/// # drop(agent);
/// assert_eq!(windlass::Proxy::new("127.0.0.1:3128").unwrap().kind(), windlass::ProxyKind::Http);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    pub(crate) kind: ProxyKind,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Basic …` for HTTP proxies.
    pub(crate) auth: Option<HeaderValue>,
    /// Decoded user and password, for SOCKS.
    pub(crate) user: Option<(String, String)>,
}

impl Proxy {
    /// Parse a proxy URL. A missing port is 80 for `http`, 443 for `https`
    /// and 1080 for SOCKS.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`] for a URL that cannot be parsed, has no
    /// host, or has another scheme.
    pub fn new(url: &str) -> Result<Proxy, Error> {
        let url = url.trim();
        let with_scheme;
        let url = if url.contains("://") {
            url
        } else {
            with_scheme = format!("http://{url}");
            &with_scheme
        };
        let parsed = Url::parse(url).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidUrl,
                format!("invalid proxy URL {:?}", redact(url)),
                e,
            )
        })?;
        let kind = ProxyKind::from_scheme(parsed.scheme()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidUrl,
                format!(
                    "unsupported proxy scheme {:?}; use http, https, socks5, socks5h, socks4 or socks4a",
                    parsed.scheme()
                ),
            )
        })?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "proxy URL has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = parsed.port().unwrap_or(kind.default_port());
        let auth = crate::request::basic_auth_from_url(&parsed);
        let user = auth.as_ref().map(|_| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (
                decode(parsed.username()),
                decode(parsed.password().unwrap_or("")),
            )
        });
        Ok(Proxy {
            kind,
            host,
            port,
            auth,
            user,
        })
    }

    /// Use these credentials with the proxy, replacing any in its URL
    /// (curl's `--proxy-user`): Basic auth for HTTP proxies, RFC 1929 for
    /// SOCKS5, the user id for SOCKS4.
    ///
    /// ```
    /// let proxy = windlass::Proxy::new("socks5h://127.0.0.1:1080")
    ///     .unwrap()
    ///     .credentials("user", "secret");
    /// # drop(proxy);
    /// ```
    #[must_use]
    pub fn credentials(mut self, user: &str, password: &str) -> Proxy {
        self.auth = Some(crate::request::basic_auth_value(user, password));
        self.user = Some((user.to_string(), password.to_string()));
        self
    }

    /// What kind of proxy this is.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// `host:port` of the proxy (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A proxy URL for a message, its password hidden.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `socks5h://127.0.0.1:1080`, without the credentials.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.kind.scheme(), self.authority())
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.user.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why a proxy would not carry a request: the data of
/// [`ErrorKind::Proxy`](crate::ErrorKind::Proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyStatus {
    /// An HTTP(S) proxy answered CONNECT with this status; 407 means it
    /// wants (other) credentials.
    Http(http::StatusCode),
    /// A SOCKS5 proxy refused the connection with this reply code
    /// (RFC 1928 section 6: 1 general failure, 2 not allowed by ruleset,
    /// 3 network unreachable, 4 host unreachable, 5 connection refused,
    /// 6 TTL expired, 7 command not supported, 8 address type not supported).
    Socks5(u8),
    /// A SOCKS5 proxy accepts none of the authentication methods offered
    /// (none, or username and password when the proxy URL has them).
    Socks5NoAcceptableAuth,
    /// A SOCKS5 proxy rejected the username and password (RFC 1929), with
    /// this status.
    Socks5AuthFailed(u8),
    /// A SOCKS4 proxy refused the connection with this code (91 rejected,
    /// 92 and 93 identd failures).
    Socks4(u8),
}

impl fmt::Display for ProxyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProxyStatus::Http(s) => write!(f, "status {s}"),
            ProxyStatus::Socks5(code) => {
                let why = match code {
                    1 => "general failure",
                    2 => "not allowed by ruleset",
                    3 => "network unreachable",
                    4 => "host unreachable",
                    5 => "connection refused",
                    6 => "TTL expired",
                    7 => "command not supported",
                    8 => "address type not supported",
                    _ => "unknown reply",
                };
                write!(f, "SOCKS5 reply {code} ({why})")
            }
            ProxyStatus::Socks5NoAcceptableAuth => {
                f.write_str("no acceptable SOCKS5 authentication method")
            }
            ProxyStatus::Socks5AuthFailed(code) => {
                write!(f, "SOCKS5 username/password rejected (status {code})")
            }
            ProxyStatus::Socks4(code) => write!(f, "SOCKS4 reply {code}"),
        }
    }
}

/// The agent's proxy settings: one field of `Config`.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
    /// Set with `AgentBuilder::proxy`: every request, except `no_proxy` hosts.
    pub explicit: Option<Arc<Proxy>>,
    /// Read the environment when the agent is built (default true).
    pub from_env: bool,
    /// Set with `AgentBuilder::no_proxy`; replaces the environment's list.
    pub no_proxy: Option<NoProxy>,
    /// What the environment said, read by `prepare` (in `build`).
    pub env: EnvProxies,
    /// Extra roots trusted for `https://` proxies only (curl's `--proxy-cacert`).
    #[cfg(feature = "tls")]
    pub extra_roots: Vec<Vec<u8>>,
    /// Do not verify an `https://` proxy's certificate (`--proxy-insecure`).
    #[cfg(feature = "tls")]
    pub danger_accept_invalid_certs: bool,
    /// The TLS config for `https://` proxies: built by `prepare` when the
    /// proxy has TLS settings of its own (so a bad one fails `build()`),
    /// else on first use.
    #[cfg(feature = "tls")]
    pub tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            explicit: None,
            from_env: true,
            no_proxy: None,
            env: EnvProxies::default(),
            #[cfg(feature = "tls")]
            extra_roots: Vec::new(),
            #[cfg(feature = "tls")]
            danger_accept_invalid_certs: false,
            #[cfg(feature = "tls")]
            tls: std::sync::OnceLock::new(),
        }
    }
}

impl ProxyConfig {
    /// Called once by `AgentBuilder::build`: read the environment (once, so
    /// requests do not race with a program changing it) and build the proxy
    /// TLS config.
    pub(crate) fn prepare(
        &mut self,
        #[cfg(feature = "tls")] agent_tls: &crate::tls::TlsSettings,
    ) -> Result<(), Error> {
        if self.from_env && self.explicit.is_none() {
            self.env = EnvProxies::read(|k| std::env::var(k).ok());
        }
        #[cfg(feature = "tls")]
        if !self.extra_roots.is_empty() || self.danger_accept_invalid_certs {
            if self.danger_accept_invalid_certs {
                log::warn!(
                    "TLS certificate verification is OFF for https proxies \
                     (danger_accept_invalid_proxy_certs)"
                );
            }
            self.tls_config(agent_tls)?;
        }
        Ok(())
    }

    /// The TLS config for an `https://` proxy: the agent's policy (root
    /// store and added roots, versions, suites, provider) plus
    /// `proxy_root_certificate`, and no client certificate. Only
    /// `danger_accept_invalid_proxy_certs` turns the proxy's check off: the
    /// agent's `danger_accept_invalid_certs` and client certificate are for
    /// origins, as curl keeps `-k` and `--cert` apart from
    /// `--proxy-insecure` and `--proxy-cert`.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_config(
        &self,
        agent_tls: &crate::tls::TlsSettings,
    ) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(config) = self.tls.get() {
            return Ok(Arc::clone(config));
        }
        let mut extra_roots = agent_tls.extra_roots.clone();
        extra_roots.extend(self.extra_roots.iter().cloned());
        let settings = crate::tls::TlsSettings {
            extra_roots,
            only_extra_roots: false,
            client_cert: None,
            danger_accept_invalid_certs: self.danger_accept_invalid_certs,
            custom: None,
            ..agent_tls.clone()
        };
        // The TLS module names its own setting; say which one was used.
        let config = crate::tls::build_config(&settings).map_err(|e| {
            let message = e.to_string();
            let message = message.replace("add_root_certificate", "proxy_root_certificate");
            Error::with_source(ErrorKind::InvalidConfig, message, e)
        })?;
        Ok(Arc::clone(self.tls.get_or_init(|| config)))
    }

    /// The proxy for this URL, if any. An explicit proxy serves every host
    /// but the `no_proxy` ones; the environment's serves every host but its
    /// `NO_PROXY` ones (or the explicit list). Loopback hosts are proxied
    /// too unless a list names them, as curl, ureq and reqwest do.
    pub(crate) fn select(&self, url: &Url) -> Option<Arc<Proxy>> {
        let host = url.host_str()?;
        let port = url.port_or_known_default().unwrap_or(0);
        let bypass = |list: Option<&NoProxy>| list.is_some_and(|l| l.matches(host, port));
        if let Some(proxy) = &self.explicit {
            return (!bypass(self.no_proxy.as_ref())).then(|| Arc::clone(proxy));
        }
        let proxy = self.env.for_scheme(url.scheme())?;
        let list = self.no_proxy.as_ref().unwrap_or(&self.env.no_proxy);
        if list.matches(host, port) {
            return None;
        }
        Some(Arc::clone(proxy))
    }
}

impl AgentBuilder {
    /// Use the proxies named by the environment: `http_proxy`,
    /// `https_proxy`, `all_proxy`, `no_proxy` and their uppercase forms, as
    /// curl and Go read them. Default: on. The variables are read once, by
    /// [`build`](AgentBuilder::build); an agent does not see later changes.
    /// A proxy set with [`proxy`](AgentBuilder::proxy) takes precedence.
    ///
    /// Lowercase wins over uppercase; `HTTP_PROXY` is ignored when
    /// `REQUEST_METHOD` is set (a CGI program, "httpoxy"); an unparsable
    /// value is logged and ignored. As with curl, loopback hosts go through
    /// the proxy too unless `NO_PROXY` names them (`localhost,127.0.0.1`).
    ///
    /// ```
    /// let agent = windlass::Agent::builder().proxy_from_env(false).build().unwrap();
    /// # drop(agent);
    /// ```
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.config.proxy.from_env = on;
        self
    }

    /// Hosts reached without a proxy, written as `NO_PROXY` is: a comma
    /// list of `*`, domains (with or without a leading dot; each matches its
    /// subdomains too), IP addresses and CIDR ranges, each optionally with a
    /// `:port`. Applies to the [`proxy`](AgentBuilder::proxy) set here and
    /// replaces the environment's `NO_PROXY`.
    ///
    /// ```
    /// let agent = windlass::Agent::builder()
    ///     .proxy(windlass::Proxy::new("http://127.0.0.1:3128").unwrap())
    ///     .no_proxy("internal.example, .corp.example, 10.0.0.0/8, [::1]:8080")
    ///     .build()
    ///     .unwrap();
    /// # drop(agent);
    /// ```
    pub fn no_proxy(mut self, list: &str) -> Self {
        self.config.proxy.no_proxy = Some(NoProxy::parse(list));
        self
    }

    /// Also trust these certificates (PEM) for `https://` proxies, and only
    /// for them (curl's `--proxy-cacert`). A bad PEM makes
    /// [`build`](AgentBuilder::build) fail.
    #[cfg(feature = "tls")]
    pub fn proxy_root_certificate(mut self, pem: &[u8]) -> Self {
        self.config.proxy.extra_roots.push(pem.to_vec());
        self
    }

    /// Accept any certificate from an `https://` proxy (curl's
    /// `--proxy-insecure`). Dangerous: whoever is on the path to the proxy
    /// sees its credentials and every plain-http request. Logs a warning
    /// when the agent is built.
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_proxy_certs(mut self, accept: bool) -> Self {
        self.config.proxy.danger_accept_invalid_certs = accept;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_default_ports() {
        let p = |s| Proxy::new(s).unwrap();
        assert_eq!(p("http://h").port, 80);
        assert_eq!(p("https://h").port, 443);
        assert_eq!(p("socks5://h").port, 1080);
        assert_eq!(p("socks5h://h:9050").kind, ProxyKind::Socks5h);
        assert_eq!(p("socks4a://h").kind, ProxyKind::Socks4a);
        assert_eq!(p("127.0.0.1:3128").to_string(), "http://127.0.0.1:3128");
        assert_eq!(p("[::1]:3128").authority(), "[::1]:3128");
        assert_eq!(
            p("HTTP://Proxy.Example:1").to_string(),
            "http://proxy.example:1"
        );
        for bad in ["ftp://h:1", "http://", "socks6://h"] {
            assert_eq!(
                Proxy::new(bad).unwrap_err().kind(),
                ErrorKind::InvalidUrl,
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_are_decoded_kept_apart_and_never_printed() {
        let p = Proxy::new("socks5://us%40er:p%3Ass@h:1").unwrap();
        assert_eq!(p.user, Some(("us@er".into(), "p:ss".into())));
        assert!(!format!("{p:?} {p}").contains("p:ss"));
        assert_ne!(p, Proxy::new("socks5://us%40er:other@h:1").unwrap());
        let given = Proxy::new("socks5://h:1")
            .unwrap()
            .credentials("us@er", "p:ss");
        assert_eq!(given, p);
        let err = Proxy::new("ftp://u:secret@h").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn pool_keys_tell_proxies_apart_by_kind_address_and_credentials() {
        use crate::pool::{PoolKey, Scheme};
        let key = |p: &str| PoolKey {
            scheme: Scheme::Https,
            host: Arc::from("origin.example"),
            port: 443,
            proxy: Some(Arc::new(Proxy::new(p).unwrap())),
            tls: None,
        };
        assert_eq!(key("http://a:b@p:1"), key("http://a:b@p:1"));
        assert_ne!(key("http://a:b@p:1"), key("http://a:c@p:1"));
        assert_ne!(key("http://p:1"), key("http://p:2"));
        assert_ne!(key("socks5://p:1"), key("socks5h://p:1"));
        assert_ne!(
            key("http://p:1"),
            PoolKey {
                proxy: None,
                ..key("http://p:1")
            }
        );
        assert_eq!(
            key("socks5h://u:secret@p:1").to_string(),
            "https://origin.example:443 via socks5h://p:1"
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_bad_proxy_root_certificate_fails_the_build_naming_the_setting() {
        let err = crate::Agent::builder()
            .proxy_root_certificate(b"not a pem")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(
            err.to_string().starts_with("proxy_root_certificate: "),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_proxy_serves_all_but_its_no_proxy_hosts() {
        let cfg = ProxyConfig {
            explicit: Some(Arc::new(Proxy::new("http://p:1").unwrap())),
            no_proxy: Some(NoProxy::parse(".internal")),
            ..ProxyConfig::default()
        };
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(cfg.select(&url("http://127.0.0.1:8080/")).is_some());
        assert!(cfg.select(&url("https://example.com/")).is_some());
        assert!(cfg.select(&url("https://a.internal/")).is_none());
    }

    #[test]
    fn environment_proxies_skip_no_proxy_hosts_and_only_those() {
        let cfg = ProxyConfig {
            env: EnvProxies {
                https: Some(Arc::new(Proxy::new("http://p:1").unwrap())),
                no_proxy: NoProxy::parse("skip.example"),
                ..EnvProxies::default()
            },
            ..ProxyConfig::default()
        };
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(cfg.select(&url("https://example.com/")).is_some());
        assert!(cfg.select(&url("http://example.com/")).is_none());
        assert!(cfg.select(&url("https://api.skip.example/")).is_none());
        assert!(cfg.select(&url("https://localhost:8443/")).is_some());
        assert!(cfg.select(&url("https://[::1]/")).is_some());
        let explicit_list = ProxyConfig {
            no_proxy: Some(NoProxy::parse("example.com")),
            ..cfg.clone()
        };
        assert!(explicit_list.select(&url("https://example.com/")).is_none());
        assert!(explicit_list
            .select(&url("https://api.skip.example/"))
            .is_some());
    }
}
