//! Turning the shared options into a windlass agent and requests.

use std::time::Duration;

use windlass::{Agent, AgentBuilder, CancelToken, RequestBuilder};

use crate::args::ClientArgs;
use crate::exit::Failure;

/// An agent plus what every request of the command carries.
pub struct Client {
    pub agent: Agent,
    headers: Vec<(String, String)>,
    /// Names given as `-H 'Name:'`: not to be sent at all.
    emptied: Vec<String>,
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
        b = b.retry(retry_policy(n, args.retry_delay, args.retry_max_time));
    }
    if args.ipv4 || args.ipv6 {
        b = b.resolver(OneFamily { v4: args.ipv4 });
    }
    b = b.max_redirects(if args.location { args.max_redirs } else { 0 });
    if let Some(ua) = &args.user_agent {
        b = b.user_agent(ua);
    }
    b = crate::proxy::apply(b, args.proxy.as_deref(), &args.proxies)?;
    if let Some(path) = &args.cacert {
        let pem = std::fs::read(path).map_err(|e| Failure::read(&path.display().to_string(), e))?;
        b = b.add_root_certificate(&pem);
    }
    b = tls_options(b, &args.tls)?;
    if args.insecure {
        // The library logs a warning about this setting itself: a second
        // one here would only repeat it.
        b = b.danger_accept_invalid_certs(true);
    }
    Ok(b)
}

/// curl's retry timing: 1 s before the first retry, doubling (up to
/// 10 minutes), or `--retry-delay` every time. windlass spreads each wait
/// over the upper half of its back-off, so the back-off is set to twice the
/// wait wanted: the wait then never falls below curl's.
fn retry_policy(n: u32, delay: Option<Duration>, max_time: Option<Duration>) -> windlass::Retry {
    let policy = match delay {
        Some(d) => windlass::Retry::new(n).backoff(d * 2, d * 2),
        None => windlass::Retry::new(n).backoff(Duration::from_secs(2), Duration::from_secs(1200)),
    };
    match max_time {
        Some(t) => policy.max_elapsed(t),
        None => policy,
    }
}

/// The system resolver, keeping the addresses of one family (`-4`, `-6`).
struct OneFamily {
    v4: bool,
}

impl windlass::Resolver for OneFamily {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let all = windlass::SystemResolver.resolve(host, port)?;
        let kept: Vec<_> = all.into_iter().filter(|a| a.is_ipv4() == self.v4).collect();
        if kept.is_empty() {
            let family = if self.v4 { "IPv4" } else { "IPv6" };
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} has no {family} address"),
            ));
        }
        Ok(kept)
    }
}

impl Client {
    pub fn new(agent: Agent, args: &ClientArgs, token: &CancelToken) -> Result<Client, Failure> {
        let mut headers = Vec::new();
        let mut emptied = Vec::new();
        for h in expand_header_files(&args.headers)? {
            match parse_header(&h)? {
                // curl's `Name:`: send no such header, not even a default one.
                (name, None) => emptied.push(name),
                (name, Some(value)) => headers.push((name, value)),
            }
        }
        let auth = args.user.as_ref().map(|u| match u.split_once(':') {
            Some((user, pass)) => (user.to_string(), Some(pass.to_string())),
            None => (u.clone(), None),
        });
        Ok(Client {
            agent,
            headers,
            emptied,
            auth,
            token: token.clone(),
        })
    }

    /// The default headers the user removed with `-H 'Name:'`.
    pub fn emptied_defaults(&self) -> Vec<windlass::http::HeaderName> {
        self.emptied
            .iter()
            .filter_map(|n| crate::transfer::default_header(n))
            .collect()
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

/// `-H @FILE` reads headers from a file (or stdin), one a line.
fn expand_header_files(args: &[String]) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    for h in args {
        match h.strip_prefix('@') {
            Some(path) => {
                let bytes = crate::payload::read_source(path)?;
                let text = String::from_utf8_lossy(&bytes);
                out.extend(
                    text.lines()
                        .map(str::trim_end)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
            None => out.push(h.clone()),
        }
    }
    Ok(out)
}

/// `Name: value`; curl's `Name;` for a header with an empty value, and
/// `Name:` (nothing after the colon) for no header at all (`None`).
fn parse_header(h: &str) -> Result<(String, Option<String>), Failure> {
    if let Some((name, value)) = h.split_once(':') {
        if !name.trim().is_empty() {
            let value = value.trim();
            let value = (!value.is_empty()).then(|| value.to_string());
            return Ok((name.trim().to_string(), value));
        }
    } else if let Some(name) = h.strip_suffix(';') {
        if !name.trim().is_empty() {
            return Ok((name.trim().to_string(), Some(String::new())));
        }
    }
    Err(Failure::usage(format!(
        "bad header `{h}`: expected 'Name: value'"
    )))
}

// --- -F, -b, -c: multipart forms and cookies ---------------------------------

/// The cookies of a transfer: a jar (from -b FILE, kept for -c) and the
/// literal cookies of -b 'NAME=VALUE'.
pub struct Cookies {
    jar: Option<std::sync::Arc<windlass::CookieJar>>,
    literal: Option<String>,
    save_to: Option<std::path::PathBuf>,
}

impl Cookies {
    /// From -b and -c. As curl: an argument with `=` is cookies to send as
    /// they are; anything else is a cookie file (one that does not exist
    /// starts an empty jar); -c alone switches the jar on.
    pub fn new(args: &crate::args::FormCookieArgs) -> Result<Cookies, Failure> {
        let mut files = Vec::new();
        let mut literal = Vec::new();
        for arg in &args.cookie {
            if arg.contains('=') {
                literal.push(arg.trim().trim_end_matches(';').to_string());
                continue;
            }
            match std::fs::read(arg) {
                Ok(text) => {
                    files.extend_from_slice(&text);
                    files.push(b'\n');
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Failure::read(arg, e)),
            }
        }
        let wanted = args.cookie_jar.is_some() || args.cookie.iter().any(|a| !a.contains('='));
        let jar = if wanted {
            let jar = windlass::CookieJar::load_netscape(&files[..])
                .map_err(|e| Failure::read("the cookie file", e))?;
            Some(std::sync::Arc::new(jar))
        } else {
            None
        };
        Ok(Cookies {
            jar,
            literal: (!literal.is_empty()).then(|| literal.join("; ")),
            save_to: args.cookie_jar.clone(),
        })
    }

    /// The agent with the jar, if there is one.
    pub fn agent(&self, mut b: AgentBuilder) -> AgentBuilder {
        if let Some(jar) = &self.jar {
            b = b.cookie_store(std::sync::Arc::clone(jar));
        }
        b
    }

    /// The request with the literal cookies, if any.
    pub fn request(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.literal {
            Some(cookies) => req.header("cookie", cookies.as_str()),
            None => req,
        }
    }

    /// Write the jar for -c.
    pub fn save(&self) -> Result<(), Failure> {
        let (Some(jar), Some(path)) = (&self.jar, &self.save_to) else {
            return Ok(());
        };
        jar.save_file(path).map_err(|e| {
            Failure::new(
                crate::exit::WRITE,
                format!("cannot write the cookie jar {}: {e}", path.display()),
            )
        })
    }
}

/// The multipart form of -F, if any: `NAME=VALUE`, `NAME=@FILE` with
/// `;type=` and `;filename=`, `NAME=<FILE` (a file's content as the value).
pub fn form(args: &crate::args::FormCookieArgs) -> Result<Option<windlass::Multipart>, Failure> {
    if args.form.is_empty() {
        return Ok(None);
    }
    let mut form = windlass::Multipart::new();
    for field in &args.form {
        let Some((name, content)) = field.split_once('=') else {
            return Err(Failure::usage(format!(
                "bad form field `{field}`: expected NAME=CONTENT"
            )));
        };
        if let Some(spec) = content.strip_prefix('@') {
            let mut params = spec.split(';');
            let path = params.next().unwrap_or_default();
            let mut part = windlass::Part::file(path).map_err(|e| Failure::read(path, e))?;
            for param in params {
                match param.split_once('=') {
                    Some((key, value)) if key.trim().eq_ignore_ascii_case("type") => {
                        part = part.content_type(value.trim());
                    }
                    Some((key, value)) if key.trim().eq_ignore_ascii_case("filename") => {
                        part = part.file_name(value.trim().trim_matches('"'));
                    }
                    _ => {
                        return Err(Failure::usage(format!(
                            "bad form field `{field}`: unknown `{param}`"
                        )))
                    }
                }
            }
            form = form.part(name, part);
        } else if let Some(path) = content.strip_prefix('<') {
            let text = std::fs::read(path).map_err(|e| Failure::read(path, e))?;
            form = form.part(name, windlass::Part::bytes(text));
        } else {
            form = form.text(name, content);
        }
    }
    Ok(Some(form))
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
            Some(("Accept".into(), Some("text/plain".into())))
        );
        assert_eq!(ok("X-A:b:c"), Some(("X-A".into(), Some("b:c".into()))));
        assert_eq!(
            ok("X-Empty;"),
            Some(("X-Empty".into(), Some(String::new())))
        );
        assert_eq!(ok("Accept:"), Some(("Accept".into(), None)));
        assert_eq!(ok("nonsense"), None);
        assert_eq!(ok(": v"), None);
    }
}
