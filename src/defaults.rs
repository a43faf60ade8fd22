//! What an agent adds to every request (default headers, a bearer token),
//! what one request may override (retry, decoding, the redirect policy,
//! middleware), and the agent-wide cancel token.
//!
//! The agent's part lives in one [`Defaults`] field of its config and the
//! request's in one [`RequestOptions`] field of its overrides, so the rest of
//! the request path reads them in one place: [`crate::run`].

use std::sync::{Arc, RwLock};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::deadline::CancelToken;
use crate::error::{Error, ErrorKind};
use crate::middleware::Middleware;
use crate::redirect::RedirectPolicy;
use crate::retry::Retry;
use crate::{AgentBuilder, RequestBuilder};

/// The agent's middleware, redirect policy, default headers and cancel token.
#[derive(Clone, Default)]
pub(crate) struct Defaults {
    /// Sent with every request that does not set the header itself.
    pub default_headers: HeaderMap,
    /// Outermost first.
    pub middleware: Vec<Arc<dyn Middleware>>,
    /// `None`: the default policy (`max_redirects`, the https→http rule).
    pub redirect_policy: Option<Arc<dyn RedirectPolicy>>,
    /// The token every request of the agent also obeys; `cancel_all` cancels
    /// it and puts a fresh one in its place. A read lock per call: calls on
    /// many threads do not queue behind each other.
    pub cancel: Arc<RwLock<CancelToken>>,
}

impl std::fmt::Debug for Defaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defaults")
            .field(
                "default_headers",
                &crate::observe::redact_headers(&self.default_headers),
            )
            .field("middleware", &self.middleware.len())
            .field("redirect_policy", &self.redirect_policy.is_some())
            .finish_non_exhaustive()
    }
}

impl Defaults {
    /// The agent's current cancel token.
    pub(crate) fn cancel_token(&self) -> CancelToken {
        self.cancel
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Cancel the current token and start a new one for later requests.
    pub(crate) fn cancel_all(&self) {
        let old = std::mem::take(&mut *self.cancel.write().unwrap_or_else(|p| p.into_inner()));
        // Outside the lock: cancelling shuts sockets down.
        old.cancel();
    }

    /// Add the default headers `headers` lacks.
    pub(crate) fn apply_defaults(&self, headers: &mut HeaderMap) {
        for name in self.default_headers.keys() {
            if !headers.contains_key(name) {
                for value in self.default_headers.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }
}

/// What one request overrides of the agent's extras.
#[derive(Clone, Default)]
pub(crate) struct RequestOptions {
    /// Skip the agent's middleware for this request.
    pub skip_middleware: bool,
    pub retry: Option<Retry>,
    pub decompress: Option<bool>,
    pub redirect_policy: Option<Arc<dyn RedirectPolicy>>,
    /// `Some(Some(p))`: through `p`; `Some(None)`: straight to the origin;
    /// `None`: the agent's choice (explicit, or the environment's).
    pub proxy: Option<Option<Arc<crate::Proxy>>>,
}

/// `Bearer TOKEN`, marked sensitive so it is never logged.
fn bearer_value(token: &str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        Error::new(
            ErrorKind::InvalidHeader,
            "bearer_auth: the token is not a valid header value",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Agent-wide defaults.
impl AgentBuilder {
    /// Send this header with every request that does not set it itself
    /// (a request's own value replaces the default, all values of it).
    /// May be called repeatedly; the same name twice sends both values.
    ///
    /// An invalid name or value makes [`build`](AgentBuilder::build) fail
    /// with [`ErrorKind::InvalidConfig`].
    ///
    /// ```
    /// let agent = windlass::Agent::builder()
    ///     .default_header("x-api-version", "2024-06-01")
    ///     .build()
    ///     .unwrap();
    /// # drop(agent);
    /// ```
    pub fn default_header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        let name = HeaderName::try_from(name).ok();
        let value = HeaderValue::try_from(value).ok();
        match (name, value) {
            (Some(name), Some(value)) => {
                self.config.defaults.default_headers.append(name, value);
            }
            _ => self.fail(Error::new(
                ErrorKind::InvalidConfig,
                "default_header: not a valid header name and value",
            )),
        }
        self
    }

    /// Send `Authorization: Bearer TOKEN` with every request that sets no
    /// `Authorization` of its own. Like any credential, it is dropped on a
    /// redirect to another origin, and never logged.
    ///
    /// A token that is not a valid header value makes
    /// [`build`](AgentBuilder::build) fail with [`ErrorKind::InvalidConfig`].
    pub fn bearer_auth(mut self, token: &str) -> Self {
        match bearer_value(token) {
            Ok(value) => {
                self.config
                    .defaults
                    .default_headers
                    .insert(AUTHORIZATION, value);
            }
            Err(_) => self.fail(Error::new(
                ErrorKind::InvalidConfig,
                "bearer_auth: the token is not a valid header value",
            )),
        }
        self
    }
}

/// Per-request overrides of the agent's defaults.
impl RequestBuilder {
    /// `Authorization: Bearer TOKEN` for this request, replacing any other
    /// `Authorization` (the agent's [`bearer_auth`](AgentBuilder::bearer_auth)
    /// included).
    pub fn bearer_auth(mut self, token: &str) -> Self {
        match bearer_value(token) {
            Ok(value) => {
                self.headers.insert(AUTHORIZATION, value);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// The retry policy for this request, in place of the agent's
    /// ([`AgentBuilder::retry`]); `Retry::none()` switches retries off.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.overrides.extras.retry = Some(retry);
        self
    }

    /// Ask for and decode compressed bodies on this request, or not,
    /// whatever the agent's [`decompress`](AgentBuilder::decompress) says.
    /// A build that can decode no coding ignores `true`.
    pub fn decompress(mut self, on: bool) -> Self {
        self.overrides.extras.decompress = Some(on && crate::codings::ANY);
        self
    }

    /// Send this request through `proxy`, whatever the agent's proxy,
    /// `no_proxy` list or environment say. Its connections are pooled
    /// apart from those of other routes.
    pub fn proxy(mut self, proxy: crate::Proxy) -> Self {
        self.overrides.extras.proxy = Some(Some(Arc::new(proxy)));
        self
    }

    /// Send this request straight to the origin, past any proxy the agent
    /// or the environment names.
    pub fn without_proxy(mut self) -> Self {
        self.overrides.extras.proxy = Some(None);
        self
    }

    /// Send this request past the agent's middleware, straight to the
    /// redirect and retry loop (a middleware's own inner calls use this to
    /// avoid running themselves again).
    pub fn without_middleware(mut self) -> Self {
        self.overrides.extras.skip_middleware = true;
        self
    }
}
