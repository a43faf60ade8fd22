//! Proxies from the environment, read the way curl and Go read them, and the
//! `NO_PROXY` matcher.
//!
//! Variables: `http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, each also
//! in uppercase. The lowercase form wins when both are set (curl's rule; Go
//! prefers uppercase, but curl's order is what shells have been written for).
//! `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set: in a CGI program it
//! can come from a request's `Proxy:` header ("httpoxy"). An empty value
//! counts as unset.

use std::net::IpAddr;
use std::sync::Arc;

use super::Proxy;

/// The proxies the environment names, parsed once when the agent is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvProxies {
    pub http: Option<Arc<Proxy>>,
    pub https: Option<Arc<Proxy>>,
    pub all: Option<Arc<Proxy>>,
    pub no_proxy: NoProxy,
}

impl EnvProxies {
    /// Read the variables through `get` (the process environment in
    /// production, a table in tests). A proxy URL that cannot be parsed is
    /// logged and ignored: a bad variable must not stop every agent from
    /// being built.
    pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> EnvProxies {
        let var = |lower: &str, upper: &str| {
            let value = get(lower)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| get(upper).filter(|v| !v.trim().is_empty()));
            value.map(|v| v.trim().to_string())
        };
        let proxy = |lower: &str, upper: &str| {
            let value = if upper == "HTTP_PROXY" && get("REQUEST_METHOD").is_some() {
                get(lower).filter(|v| !v.trim().is_empty())
            } else {
                var(lower, upper)
            }?;
            match Proxy::new(value.trim()) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    log::warn!("ignoring {lower}: {e}");
                    None
                }
            }
        };
        EnvProxies {
            http: proxy("http_proxy", "HTTP_PROXY"),
            https: proxy("https_proxy", "HTTPS_PROXY"),
            all: proxy("all_proxy", "ALL_PROXY"),
            no_proxy: NoProxy::parse(&var("no_proxy", "NO_PROXY").unwrap_or_default()),
        }
    }

    /// The proxy for a URL of this scheme, before `NO_PROXY` is consulted.
    pub(crate) fn for_scheme(&self, scheme: &str) -> Option<&Arc<Proxy>> {
        let specific = match scheme {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        };
        specific.or(self.all.as_ref())
    }
}

/// One entry of a `NO_PROXY` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// `*`: no host is proxied.
    All,
    /// A domain and its subdomains (`example.com`, `.example.com`).
    Domain { name: String, port: Option<u16> },
    /// An address (`10.0.0.1`, `[::1]:8080`).
    Ip { addr: IpAddr, port: Option<u16> },
    /// A range (`10.0.0.0/8`, `fd00::/8`).
    Cidr { net: IpAddr, bits: u8 },
}

/// A `NO_PROXY` list: hosts that are reached directly.
///
/// Comma (or space) separated entries, as curl and Go accept them: `*`;
/// domain names, with or without a leading dot (or `*.`), each matching the
/// name and every subdomain; IP addresses; CIDR ranges; and an optional
/// `:port` on names and addresses, which then match only that port. Case does
/// not matter. Entries that are none of these are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    rules: Vec<Rule>,
}

impl NoProxy {
    pub(crate) fn parse(list: &str) -> NoProxy {
        let rules = list
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .filter_map(Rule::parse)
            .collect();
        NoProxy { rules }
    }

    /// Whether `host` (as a URL writes it, IPv6 without brackets) at `port`
    /// is to be reached without the proxy.
    pub(crate) fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        let port_ok = |want: &Option<u16>| want.is_none_or(|p| p == port);
        self.rules.iter().any(|rule| match rule {
            Rule::All => true,
            Rule::Domain { name, port: want } => {
                port_ok(want)
                    && (host == *name
                        || (host.len() > name.len()
                            && host.ends_with(name.as_str())
                            && host.as_bytes()[host.len() - name.len() - 1] == b'.'))
            }
            Rule::Ip { addr, port: want } => port_ok(want) && ip == Some(*addr),
            Rule::Cidr { net, bits } => ip.is_some_and(|ip| in_range(ip, *net, *bits)),
        })
    }
}

impl Rule {
    fn parse(entry: &str) -> Option<Rule> {
        if entry == "*" {
            return Some(Rule::All);
        }
        let entry = entry.to_ascii_lowercase();
        if let Some((net, bits)) = entry.split_once('/') {
            let net: IpAddr = net
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Rule::Cidr { net, bits });
        }
        if let Ok(addr) = entry.parse::<IpAddr>() {
            return Some(Rule::Ip { addr, port: None });
        }
        // `[::1]:8080`, `[::1]`, `10.0.0.1:8080`, `example.com:8080`.
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => {
                let (addr, after) = rest.split_once(']')?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p.parse().ok()?),
                    None if after.is_empty() => None,
                    None => return None,
                };
                let addr = addr.parse().ok()?;
                return Some(Rule::Ip { addr, port });
            }
            None => match entry.rsplit_once(':') {
                Some((host, p)) => (host.to_string(), Some(p.parse::<u16>().ok()?)),
                None => (entry.clone(), None),
            },
        };
        if let Ok(addr) = host.parse::<IpAddr>() {
            return Some(Rule::Ip { addr, port });
        }
        let name = host
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.');
        (!name.is_empty()).then(|| Rule::Domain {
            name: name.to_string(),
            port,
        })
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> EnvProxies {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvProxies::read(|k| map.get(k).cloned())
    }

    fn authority(p: Option<&Arc<Proxy>>) -> Option<String> {
        p.map(|p| p.authority())
    }

    #[test]
    fn lowercase_wins_over_uppercase() {
        let e = env(&[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:2"),
        ]);
        assert_eq!(authority(e.for_scheme("http")), Some("lower:1".into()));
        let e = env(&[("HTTPS_PROXY", "http://upper:2")]);
        assert_eq!(authority(e.for_scheme("https")), Some("upper:2".into()));
    }

    #[test]
    fn uppercase_http_proxy_is_ignored_under_cgi() {
        let e = env(&[("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(authority(e.for_scheme("http")), None);
        let e = env(&[("http_proxy", "http://ok:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(authority(e.for_scheme("http")), Some("ok:1".into()));
    }

    #[test]
    fn all_proxy_is_the_fallback_and_empty_is_unset() {
        let e = env(&[("https_proxy", ""), ("ALL_PROXY", "socks5h://s:1080")]);
        assert_eq!(authority(e.for_scheme("https")), Some("s:1080".into()));
        assert_eq!(authority(e.for_scheme("http")), Some("s:1080".into()));
    }

    #[test]
    fn a_bad_proxy_variable_is_ignored() {
        let e = env(&[("http_proxy", "ftp://x:1")]);
        assert!(e.for_scheme("http").is_none());
    }

    #[test]
    fn no_proxy_matches_domains_with_and_without_a_dot() {
        let n = NoProxy::parse("example.com, .corp.test,*.wild.test");
        assert!(n.matches("example.com", 80));
        assert!(n.matches("api.example.com", 443));
        assert!(n.matches("API.Example.COM.", 443));
        assert!(!n.matches("badexample.com", 80));
        assert!(n.matches("corp.test", 80));
        assert!(n.matches("a.b.corp.test", 80));
        assert!(n.matches("x.wild.test", 80));
        assert!(!n.matches("example.org", 80));
    }

    #[test]
    fn no_proxy_matches_addresses_ranges_and_ports() {
        let n = NoProxy::parse("10.0.0.0/8,192.168.1.7,::1,[fd00::1]:8443,fe80::/10,db.test:5432");
        assert!(n.matches("10.200.3.4", 80));
        assert!(!n.matches("11.0.0.1", 80));
        assert!(n.matches("192.168.1.7", 8080));
        assert!(!n.matches("192.168.1.8", 8080));
        assert!(n.matches("[::1]", 80));
        assert!(n.matches("fd00::1", 8443));
        assert!(!n.matches("fd00::1", 443));
        assert!(n.matches("fe80::1234", 1));
        assert!(n.matches("db.test", 5432));
        assert!(!n.matches("db.test", 5433));
        assert!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8", 1));
    }

    #[test]
    fn star_matches_everything_and_junk_matches_nothing() {
        assert!(NoProxy::parse("*").matches("anything.test", 1));
        let junk = NoProxy::parse("10.0.0.0/99, host:notaport, [::1");
        assert!(!junk.matches("10.0.0.1", 80));
        assert!(!junk.matches("host", 80));
        assert!(!NoProxy::parse("").matches("x", 1));
    }
}
