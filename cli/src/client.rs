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
    b = crate::proxy::apply(b, args.proxy.as_deref(), &args.proxies)?;
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
