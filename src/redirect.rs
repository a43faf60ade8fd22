//! Redirects: which responses are followed, how the method and body change,
//! which credentials are dropped on the way (curl's rule), and the policy a
//! caller can set to decide each hop ([`RedirectPolicy`]).

use http::header::{
    ACCEPT, ACCEPT_CHARSET, ACCEPT_ENCODING, ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_LANGUAGE, CONTENT_TYPE, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LOCATION,
    PRAGMA, PROXY_AUTHORIZATION, RANGE, USER_AGENT,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};
use url::Url;

use crate::error::{Error, ErrorKind};

/// What to do with a 3xx response.
#[derive(Debug)]
pub(crate) enum Next {
    /// Not a redirect we follow: hand the response to the caller.
    Stop,
    /// Follow to `url`; `to_get` turns the request into a GET without body.
    Follow { url: Url, to_get: bool },
}

/// Decide whether and where to follow a response.
pub(crate) fn next(
    status: StatusCode,
    headers: &HeaderMap,
    method: &Method,
    current: &Url,
    https_to_http: bool,
) -> Result<Next, Error> {
    let to_get = match status.as_u16() {
        // RFC 9110 §15.4: 301/302 may turn POST into GET, and every client does;
        // 303 means "see other" with GET for anything but HEAD.
        301 | 302 => *method == Method::POST,
        303 => *method != Method::HEAD && *method != Method::GET,
        307 | 308 => false,
        _ => return Ok(Next::Stop),
    };
    let mut locations = headers.get_all(LOCATION).iter();
    let Some(location) = locations.next() else {
        return Ok(Next::Stop);
    };
    // Two different targets: following either one is a guess (Go refuses
    // the response too). The same value repeated is harmless.
    if locations.any(|other| other != location) {
        return Err(Error::protocol(
            "redirect with two different Location headers",
        ));
    }
    let location = std::str::from_utf8(location.as_bytes())
        .map_err(|_| Error::protocol("redirect Location is not valid UTF-8"))?;
    // An empty Location points nowhere (joined to the current URL it would
    // loop on itself): the 3xx is the answer, as curl and Go return it.
    if location.trim().is_empty() {
        return Ok(Next::Stop);
    }
    let url = current.join(location).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidUrl,
            format!("invalid redirect Location {location:?}"),
            e,
        )
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::new(
                ErrorKind::InvalidUrl,
                format!("refusing to follow a redirect to a {other}: URL"),
            ))
        }
    }
    if current.scheme() == "https" && url.scheme() == "http" && !https_to_http {
        return Err(Error::new(
            ErrorKind::InsecureRedirect,
            format!("refusing to follow a redirect from https to {url}; enable https_to_http_redirects to allow it"),
        ));
    }
    Ok(Next::Follow { url, to_get })
}

/// Whether two URLs have the same scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Caller-set headers that travel to another origin: they say what the client
/// can take, never who is asking. Anything else may be a secret (an API key, a
/// token, a session id) meant for the origin the caller named.
///
/// The range and validator headers describe the representation, not the
/// caller: a resumed download redirected to a CDN or an object store (release
/// assets, presigned URLs) must still ask for the same range.
const KEPT_ACROSS_ORIGINS: [HeaderName; 11] = [
    ACCEPT,
    ACCEPT_CHARSET,
    ACCEPT_ENCODING,
    ACCEPT_LANGUAGE,
    USER_AGENT,
    CACHE_CONTROL,
    PRAGMA,
    RANGE,
    IF_RANGE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
];

/// Before a redirect to another scheme, host or port, drop every caller-set
/// header but the harmless ones, the body's description when the body goes
/// along (`body_kept`), and those the caller named in `keep`. `Host` and
/// `Proxy-Authorization` never cross, whatever `keep` says.
pub(crate) fn strip_for_new_origin(headers: &mut HeaderMap, body_kept: bool, keep: &[HeaderName]) {
    let kept = |name: &HeaderName| {
        if *name == HOST || *name == PROXY_AUTHORIZATION {
            return false;
        }
        KEPT_ACROSS_ORIGINS.contains(name)
            || (body_kept
                && (*name == CONTENT_TYPE
                    || *name == CONTENT_LANGUAGE
                    || *name == CONTENT_ENCODING))
            || keep.contains(name)
    };
    let dropped: Vec<HeaderName> = headers.keys().filter(|n| !kept(n)).cloned().collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// Most hops any policy may follow: a custom policy that always says
/// [`Action::follow`] still ends on a redirect loop (curl's default limit).
pub(crate) const MAX_HOPS: u32 = 50;

/// One redirect about to be followed, as a [`RedirectPolicy`] sees it.
#[derive(Debug)]
pub struct Hop<'a> {
    pub(crate) status: StatusCode,
    pub(crate) method: &'a Method,
    pub(crate) from: &'a Url,
    pub(crate) to: &'a Url,
    pub(crate) count: u32,
}

impl Hop<'_> {
    /// The redirect's status (301, 302, 303, 307 or 308).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The method of the request that got the redirect.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The URL that answered with the redirect.
    pub fn from(&self) -> &Url {
        self.from
    }

    /// Where the redirect points (resolved, without credentials).
    pub fn to(&self) -> &Url {
        self.to
    }

    /// Which hop this is: 1 for the first redirect of the call.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the hop leaves https for http.
    pub fn is_downgrade(&self) -> bool {
        self.from.scheme() == "https" && self.to.scheme() == "http"
    }

    /// Whether the hop stays on the same scheme, host and port.
    pub fn is_same_origin(&self) -> bool {
        same_origin(self.from, self.to)
    }
}

/// What a [`RedirectPolicy`] decides for a hop.
#[derive(Debug)]
pub struct Action(pub(crate) Decision);

#[derive(Debug)]
pub(crate) enum Decision {
    Follow,
    Stop,
    Fail(Error),
}

impl Action {
    /// Follow the redirect.
    pub fn follow() -> Action {
        Action(Decision::Follow)
    }

    /// Stop and hand the 3xx response to the caller.
    pub fn stop() -> Action {
        Action(Decision::Stop)
    }

    /// Fail the call with [`ErrorKind::RedirectRefused`] and this message.
    pub fn fail(message: impl Into<String>) -> Action {
        Action(Decision::Fail(Error::new(
            ErrorKind::RedirectRefused,
            message,
        )))
    }
}

/// Decides, hop by hop, whether a redirect is followed.
///
/// Set one with [`AgentBuilder::redirect_policy`](crate::AgentBuilder::redirect_policy)
/// or per request; a closure `Fn(&Hop) -> Action` is one. It replaces the
/// default policy ([`DefaultRedirects`]: `max_redirects` and no https→http);
/// a policy that wants those rules too calls it. Whatever the policy says, a
/// call follows at most 50 hops, a request's own
/// [`max_redirects`](crate::RequestBuilder::max_redirects) still holds, and
/// credentials are still dropped on a hop to another origin.
///
/// ```
/// use windlass::redirect::{Action, DefaultRedirects, Hop, RedirectPolicy};
///
/// // Follow only within the same host, under the default rules.
/// let same_host = |hop: &Hop<'_>| {
///     if hop.from().host_str() != hop.to().host_str() {
///         return Action::stop();
///     }
///     DefaultRedirects::new(5).redirect(hop)
/// };
/// let agent = windlass::Agent::builder().redirect_policy(same_host).build().unwrap();
/// # drop(agent);
/// ```
pub trait RedirectPolicy: Send + Sync + 'static {
    /// Decide what to do with this hop.
    fn redirect(&self, hop: &Hop<'_>) -> Action;
}

impl<F> RedirectPolicy for F
where
    F: Fn(&Hop<'_>) -> Action + Send + Sync + 'static,
{
    fn redirect(&self, hop: &Hop<'_>) -> Action {
        self(hop)
    }
}

/// The default policy: follow up to `max` redirects (then fail with
/// [`ErrorKind::TooManyRedirects`]; `max` 0 returns the first 3xx), and
/// refuse https→http with [`ErrorKind::InsecureRedirect`] unless allowed.
/// What [`AgentBuilder::max_redirects`](crate::AgentBuilder::max_redirects)
/// and [`https_to_http_redirects`](crate::AgentBuilder::https_to_http_redirects) set.
#[derive(Debug, Clone, Copy)]
pub struct DefaultRedirects {
    max: u32,
    https_to_http: bool,
}

impl DefaultRedirects {
    /// Up to `max` redirects, never from https to http.
    pub fn new(max: u32) -> DefaultRedirects {
        DefaultRedirects {
            max,
            https_to_http: false,
        }
    }

    /// Allow (or refuse) redirects from https to http.
    pub fn https_to_http(mut self, allow: bool) -> DefaultRedirects {
        self.https_to_http = allow;
        self
    }
}

impl RedirectPolicy for DefaultRedirects {
    fn redirect(&self, hop: &Hop<'_>) -> Action {
        if hop.is_downgrade() && !self.https_to_http {
            return Action(Decision::Fail(Error::new(
                ErrorKind::InsecureRedirect,
                format!(
                    "refusing to follow a redirect from https to {}; enable https_to_http_redirects to allow it",
                    hop.to
                ),
            )));
        }
        cap(self.max, hop.count).unwrap_or_else(Action::follow)
    }
}

/// The rule of a maximum: `max` 0 stops at the first 3xx, a hop past it fails.
pub(crate) fn cap(max: u32, count: u32) -> Option<Action> {
    if max == 0 {
        return Some(Action::stop());
    }
    if count > max {
        return Some(Action(Decision::Fail(Error::new(
            ErrorKind::TooManyRedirects,
            format!("stopped after {max} redirects"),
        ))));
    }
    None
}

/// Redirect policies.
impl crate::AgentBuilder {
    /// Decide every redirect hop with `policy` instead of the default rules
    /// ([`DefaultRedirects`]). See [`RedirectPolicy`].
    pub fn redirect_policy(mut self, policy: impl RedirectPolicy) -> Self {
        self.config.defaults.redirect_policy = Some(std::sync::Arc::new(policy));
        self
    }
}

/// Redirect policies.
impl crate::RequestBuilder {
    /// Decide this request's redirect hops with `policy`, in place of the
    /// agent's. See [`RedirectPolicy`].
    pub fn redirect_policy(mut self, policy: impl RedirectPolicy) -> Self {
        self.overrides.extras.redirect_policy = Some(std::sync::Arc::new(policy));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(l: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, l.parse().unwrap());
        h
    }

    fn follow(status: u16, method: Method, from: &str, to: &str) -> Result<Next, Error> {
        next(
            StatusCode::from_u16(status).unwrap(),
            &loc(to),
            &method,
            &Url::parse(from).unwrap(),
            false,
        )
    }

    #[test]
    fn method_rewrites() {
        let get = |s, m| match follow(s, m, "http://a/x", "/y").unwrap() {
            Next::Follow { to_get, .. } => to_get,
            Next::Stop => panic!("should follow"),
        };
        assert!(get(301, Method::POST));
        assert!(get(302, Method::POST));
        assert!(get(303, Method::PUT));
        assert!(!get(303, Method::HEAD));
        assert!(!get(307, Method::POST));
        assert!(!get(308, Method::PUT));
    }

    #[test]
    fn relative_locations_resolve_against_the_current_url() {
        match follow(302, Method::GET, "http://a/dir/x", "y?z=1").unwrap() {
            Next::Follow { url, .. } => assert_eq!(url.as_str(), "http://a/dir/y?z=1"),
            Next::Stop => panic!("should follow"),
        }
    }

    #[test]
    fn downgrade_and_odd_schemes_are_refused() {
        let e = follow(302, Method::GET, "https://a/", "http://a/").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InsecureRedirect);
        let e = follow(302, Method::GET, "http://a/", "file:///etc/passwd").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUrl);
    }

    #[test]
    fn only_harmless_headers_cross_origins() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer t"),
            ("cookie", "a=b"),
            ("proxy-authorization", "Basic x"),
            ("x-api-key", "secret"),
            ("x-auth-token", "secret"),
            ("host", "a.example"),
            ("accept", "text/plain"),
            ("accept-language", "en"),
            ("user-agent", "t/1"),
            ("content-type", "text/plain"),
            ("x-request-id", "7"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().unwrap());
        }
        let mut without_body = h.clone();
        strip_for_new_origin(&mut without_body, false, &[]);
        let mut names: Vec<&str> = without_body.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "accept-language", "user-agent"]);

        let keep = [
            HeaderName::from_static("x-request-id"),
            HOST,
            PROXY_AUTHORIZATION,
        ];
        strip_for_new_origin(&mut h, true, &keep);
        let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "accept-language",
                "content-type",
                "user-agent",
                "x-request-id"
            ]
        );
    }

    #[test]
    fn an_empty_location_is_not_followed_and_two_different_ones_are_an_error() {
        assert!(matches!(
            follow(302, Method::GET, "http://a/x", ""),
            Ok(Next::Stop)
        ));
        let mut two = loc("/a");
        two.append(LOCATION, "/b".parse().unwrap());
        let from = Url::parse("http://a/").unwrap();
        let e = next(StatusCode::FOUND, &two, &Method::GET, &from, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        let mut same = loc("/a");
        same.append(LOCATION, "/a".parse().unwrap());
        let same = next(StatusCode::FOUND, &same, &Method::GET, &from, false).unwrap();
        assert!(matches!(same, Next::Follow { .. }));
    }

    #[test]
    fn origin_comparison_includes_the_port() {
        let u = |s| Url::parse(s).unwrap();
        assert!(same_origin(&u("http://a/x"), &u("http://a:80/y")));
        assert!(!same_origin(&u("http://a/"), &u("http://a:81/")));
        assert!(!same_origin(&u("http://a/"), &u("https://a/")));
        assert!(!same_origin(&u("http://a/"), &u("http://b/")));
    }
}
