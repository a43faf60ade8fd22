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
