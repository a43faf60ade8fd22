//! Middleware: code of the caller's that sees every call an agent makes, and
//! may change the request, answer it without the network, or change the
//! response.
//!
//! # Where the chain sits
//!
//! ```text
//! RequestBuilder ─► default headers ─► middleware chain ─► redirects ─► retries ─► one exchange per attempt
//! ```
//!
//! A middleware sees **the call the user made**, once, after the agent's
//! default headers are added and before redirects, retries and the pool.
//! That is what a cache, a circuit breaker, request signing over the body
//! and trace propagation want: a cache keys on the URL the caller asked for,
//! a breaker counts calls and not attempts, and a signature or a
//! `traceparent` covers the request the caller sent. The response it gets
//! back from [`Next::run`] is the final one: after redirects were followed
//! and retries were spent. Watching every attempt and every hop is the job
//! of a [`Hook`](crate::Hook), which sees each one's events.
//!
//! The call's [`timeout`](crate::RequestBuilder::timeout) starts when the
//! last middleware hands the request on (a
//! [`deadline`](crate::RequestBuilder::deadline) is an instant and holds
//! throughout); a [`CancelToken`](crate::CancelToken) and
//! [`Agent::cancel_all`] reach every layer's network calls.
//!
//! A request can skip the chain with
//! [`RequestBuilder::without_middleware`](crate::RequestBuilder::without_middleware).

use std::sync::Arc;

use http::{HeaderMap, Method};
use url::Url;

use crate::agent::Agent;
use crate::error::Error;
use crate::request::{IntoUrl, SendBody};
use crate::response::Response;
use crate::AgentBuilder;

/// One layer around an agent's calls.
///
/// Implement it for a type, or pass a closure
/// `Fn(Request, Next) -> Result<Response, Error>`. A middleware calls
/// [`next.run(request)`](Next::run) to go on (changing the request before and
/// the response after), or returns a response of its own
/// ([`Response::new`]) or an error without calling it.
///
/// ```
/// use windlass::middleware::{Next, Request};
/// use windlass::{Error, Response};
///
/// // Adds a header to every request and logs the status of every response.
/// fn tag(mut request: Request, next: Next<'_>) -> Result<Response, Error> {
///     request.headers_mut().insert("x-client", "inventory".parse().unwrap());
///     let response = next.run(request)?;
///     log::info!("{} -> {}", response.url(), response.status());
///     Ok(response)
/// }
///
/// let agent = windlass::Agent::builder().middleware(tag).build().unwrap();
/// # drop(agent);
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Handle one call: pass it on with `next`, or answer it.
    fn handle(&self, request: Request, next: Next<'_>) -> Result<Response, Error>;
}

impl<F> Middleware for F
where
    F: Fn(Request, Next<'_>) -> Result<Response, Error> + Send + Sync + 'static,
{
    fn handle(&self, request: Request, next: Next<'_>) -> Result<Response, Error> {
        self(request, next)
    }
}

/// The rest of the chain: the middleware after this one, then the network.
pub struct Next<'a> {
    agent: &'a Agent,
    rest: &'a [Arc<dyn Middleware>],
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("layers_left", &self.rest.len())
            .finish()
    }
}

impl Next<'_> {
    /// Pass the request on and return what comes back.
    pub fn run(self, request: Request) -> Result<Response, Error> {
        run_chain(self.agent, self.rest, request.inner)
    }

    /// The agent making the call, for a middleware that needs to make
    /// calls of its own (use
    /// [`without_middleware`](crate::RequestBuilder::without_middleware) on
    /// them unless they should pass through the chain too).
    pub fn agent(&self) -> &Agent {
        self.agent
    }
}

/// The request as a middleware sees it: method, URL, headers and body.
pub struct Request {
    pub(crate) inner: crate::request::Request,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.inner.method)
            .field("url", &crate::error::redacted(&self.inner.url))
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.inner.method
    }

    /// Change the method.
    pub fn set_method(&mut self, method: Method) {
        self.inner.method = method;
    }

    /// The URL, query included (credentials from the URL are already moved
    /// into an `Authorization` header).
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// Send the request to another URL (an http or https one).
    pub fn set_url(&mut self, url: impl IntoUrl) -> Result<(), Error> {
        self.inner.url = url.into_url()?;
        Ok(())
    }

    /// The headers set so far: the caller's and the agent's defaults.
    /// `Host`, `User-Agent`, `Accept`, `Accept-Encoding` and the framing
    /// headers are added when the request is written, if absent.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// Change the headers.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.inner.headers
    }

    /// The body when it is in memory: `Some(&[])` for none, `None` for a
    /// streamed ([`send_reader`](crate::RequestBuilder::send_reader)) body.
    pub fn body(&self) -> Option<&[u8]> {
        match &self.inner.body {
            SendBody::Empty => Some(&[]),
            SendBody::Bytes(bytes) => Some(bytes),
            SendBody::Reader(..) | SendBody::Spent => None,
        }
    }

    /// Replace the body with these bytes (sent with a Content-Length).
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) {
        self.inner.body = SendBody::Bytes(body.into());
    }
}

/// Run `req` through `chain`, then redirects and retries.
pub(crate) fn run_chain(
    agent: &Agent,
    chain: &[Arc<dyn Middleware>],
    req: crate::request::Request,
) -> Result<Response, Error> {
    match chain.split_first() {
        None => crate::run::follow(&agent.inner, req),
        Some((first, rest)) => first.handle(Request { inner: req }, Next { agent, rest }),
    }
}

/// Middleware.
impl AgentBuilder {
    /// Add a middleware to the agent's chain. Middleware run in the order
    /// they were added: the first added sees the request first and the
    /// response last. See [`Middleware`] and the [module](crate::middleware)
    /// documentation for where the chain sits.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.config.defaults.middleware.push(Arc::new(middleware));
        self
    }
}
