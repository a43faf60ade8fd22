//! Turning the shared options into a windlass agent and requests.

use std::time::Duration;

use windlass::{Agent, AgentBuilder, CancelToken, RequestBuilder};

use crate::args::ClientArgs;
use crate::exit::Failure;

/// An agent plus what every request of the command carries.
pub struct Client {
    pub agent: Agent,
    headers: Vec<(String, String)>,
    auth: Option<(String, Option<String>)>,
    token: CancelToken,
}

/// Starts an agent builder from the shared options; callers add their own
/// settings and hand it to [`Client::new`].
pub fn builder(args: &ClientArgs) -> Result<AgentBuilder, Failure> {
    let mut b = Agent::builder();
    if let Some(t) = args.max_time {
        b = b.timeout(t);
    }
    if let Some(t) = args.connect_timeout {
        b = b.timeout_connect(t);
    }
    // curl's pair: either one alone switches the check on, the other takes
    // its default (1 byte a second, over 30 s).
    if args.speed_limit.is_some() || args.speed_time.is_some() {
        let bytes = args.speed_limit.unwrap_or(1);
        let window = args.speed_time.unwrap_or(Duration::from_secs(30));
        b = b.min_speed(windlass::MinSpeed::new(bytes, window));
    }
    if let Some(n) = args.retry {
        b = b.retry(windlass::Retry::new(n));
    }
    b = b.max_redirects(if args.location { args.max_redirs } else { 0 });
    if let Some(ua) = &args.user_agent {
        b = b.user_agent(ua);
    }
    if let Some(proxy) = &args.proxy {
        b = b.proxy(windlass::Proxy::new(proxy)?);
    }
    if let Some(path) = &args.cacert {
        let pem = std::fs::read(path).map_err(|e| Failure::read(&path.display().to_string(), e))?;
        b = b.add_root_certificate(&pem);
    }
    b = tls_options(b, &args.tls)?;
    if args.insecure {
        eprintln!(
            "windlass: warning: --insecure: server certificates are not verified; \
             anyone on the path can read and change this traffic"
        );
        b = b.danger_accept_invalid_certs(true);
    }
    Ok(b)
}

impl Client {
    pub fn new(agent: Agent, args: &ClientArgs, token: &CancelToken) -> Result<Client, Failure> {
        let headers = args
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let auth = args.user.as_ref().map(|u| match u.split_once(':') {
            Some((user, pass)) => (user.to_string(), Some(pass.to_string())),
            None => (u.clone(), None),
        });
        Ok(Client {
            agent,
            headers,
            auth,
            token: token.clone(),
        })
    }

    /// Whether the user set this header with -H.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// A request with the user's headers, credentials and the Ctrl-C token.
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder {
        let mut req = self.agent.request(method, url).cancel_token(&self.token);
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some((user, pass)) = &self.auth {
            req = req.basic_auth(user, pass.as_deref());
        }
        req
    }
}

/// `Name: value`, or curl's `Name;` for a header with an empty value.
fn parse_header(h: &str) -> Result<(String, String), Failure> {
    if let Some((name, value)) = h.split_once(':') {
        if !name.trim().is_empty() {
            return Ok((name.trim().to_string(), value.trim().to_string()));
        }
    } else if let Some(name) = h.strip_suffix(';') {
        if !name.trim().is_empty() {
            return Ok((name.trim().to_string(), String::new()));
        }
    }
    Err(Failure::usage(format!(
        "bad header `{h}`: expected 'Name: value'"
    )))
}

// --- TLS ---------------------------------------------------------------------------

/// The suites windlass offers by default for each version (ring's), for a
/// list that restricts only the other version, as curl's `--ciphers` leaves
/// TLS 1.3 alone and `--tls13-ciphers` leaves TLS 1.2 alone.
const TLS13_SUITES: &str =
    "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
const TLS12_SUITES: &str = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-RSA-CHACHA20-POLY1305";

/// curl's TLS options onto the builder.
fn tls_options(mut b: AgentBuilder, tls: &crate::args::TlsArgs) -> Result<AgentBuilder, Failure> {
    if tls.tlsv1_3 {
        b = b.tls_min_version(windlass::TlsVersion::Tls13);
    } else if tls.tlsv1_2 {
        b = b.tls_min_version(windlass::TlsVersion::Tls12);
    }
    if let Some(crate::args::TlsMax(Some(max))) = tls.tls_max {
        b = b.tls_max_version(max);
    }
    if tls.ciphers.is_some() || tls.tls13_ciphers.is_some() {
        let tls12 = tls.ciphers.as_deref().unwrap_or(TLS12_SUITES);
        let tls13 = tls.tls13_ciphers.as_deref().unwrap_or(TLS13_SUITES);
        let names: Vec<&str> = tls13
            .split(':')
            .chain(tls12.split(':'))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        b = b.cipher_suites(&names);
    }
    if tls.ca_native {
        b = b.root_store(windlass::RootStore::Both);
    }
    if let Some(cert_path) = &tls.cert {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| Failure::read(&path.display().to_string(), e))
        };
        let chain = read(cert_path)?;
        // Like curl, the key may sit in the certificate's file.
        let key = match &tls.key {
            Some(key_path) => read(key_path)?,
            None => chain.clone(),
        };
        b = b.client_certificate(&chain, &key);
    } else if tls.key.is_some() {
        return Err(Failure::usage("--key needs --cert"));
    }
    if tls.no_sessionid {
        b = b.tls_session_cache(0);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::parse_header;

    #[test]
    fn headers_parse_like_curl() {
        let ok = |h| parse_header(h).ok();
        assert_eq!(
            ok("Accept: text/plain"),
            Some(("Accept".into(), "text/plain".into()))
        );
        assert_eq!(ok("X-A:b:c"), Some(("X-A".into(), "b:c".into())));
        assert_eq!(ok("X-Empty;"), Some(("X-Empty".into(), String::new())));
        assert_eq!(ok("nonsense"), None);
        assert_eq!(ok(": v"), None);
    }
}
