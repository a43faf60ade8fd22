//! Where a request reports what happens to it: the agent's metrics, the
//! in-flight list, and the caller's hooks. With no hook set, reporting costs a
//! few relaxed atomic adds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use url::Url;

use crate::inflight::{InFlightPhase, TrackGuard};
use crate::metrics::{Metrics, Timer};
use crate::pool::CloseReason;

/// Which request an [`Event`] belongs to. Fields may be added.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestInfo<'a> {
    /// A number unique within the agent (one per attempt).
    pub id: u64,
    /// The method.
    pub method: &'a Method,
    /// The URL.
    pub url: &'a Url,
}

impl<'a> RequestInfo<'a> {
    /// A number unique within the agent (one per attempt).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The URL.
    pub fn url(&self) -> &'a Url {
        self.url
    }
}

/// Something that happened to a request, in the order it happens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Started waiting for a pool slot: sent only when the host is at its
    /// connection limit and the request joins the wait queue.
    PoolWaitStart,
    /// The wait that [`PoolWaitStart`](Event::PoolWaitStart) announced ended
    /// with a slot or a connection (not sent when there was no wait).
    PoolWaitEnd {
        /// Time spent waiting.
        waited: Duration,
    },
    /// Started finding the addresses to connect to: from an IP literal, a
    /// `resolve()` override, the DNS cache, or the resolver.
    DnsStart {
        /// The name.
        host: &'a str,
    },
    /// Found the addresses.
    DnsDone {
        /// The addresses found.
        addrs: &'a [SocketAddr],
        /// Time taken.
        elapsed: Duration,
    },
    /// Started a TCP connect to one address.
    ConnectStart {
        /// The address.
        addr: SocketAddr,
    },
    /// A TCP connect finished.
    ConnectDone {
        /// The address.
        addr: SocketAddr,
        /// Whether it connected.
        ok: bool,
        /// Time since the connect phase began.
        elapsed: Duration,
    },
    /// Started the TLS handshake.
    TlsStart,
    /// Started the TLS handshake with an `https://` proxy.
    ProxyTlsStart,
    /// Started the proxy's handshake (HTTP CONNECT or SOCKS).
    ProxyHandshakeStart,
    /// The proxy's handshake succeeded: the connection reaches the origin.
    ProxyHandshakeDone {
        /// Time taken.
        elapsed: Duration,
    },
    /// Finished the TLS handshake.
    TlsDone {
        /// Whether a previous session was resumed.
        resumed: bool,
        /// Time taken.
        elapsed: Duration,
    },
    /// A connection is ready for the request.
    GotConnection {
        /// It came from the pool.
        reused: bool,
        /// How long it had been idle, when reused.
        idle: Option<Duration>,
        /// The remote address.
        remote: SocketAddr,
    },
    /// The request head was written (with the body too, when it is small
    /// enough to go in the same write).
    WroteHeaders,
    /// The whole request, body included, was written.
    WroteRequest,
    /// The first response byte arrived (the final response head was parsed).
    FirstByte,
    /// The response body was read to its end.
    ResponseDone {
        /// Time from the response head to the end of the body.
        body: Duration,
    },
    /// The connection went back to the pool.
    ConnectionReturned,
    /// The connection was closed.
    ConnectionClosed {
        /// Why.
        reason: CloseReason,
    },
    /// The request head as written on the wire: request line, every header
    /// (the defaults windlass adds and any credentials included) and the
    /// blank line; not the body. Sent once per attempt, before
    /// [`WroteHeaders`](Event::WroteHeaders).
    RequestHead {
        /// The bytes.
        head: &'a [u8],
    },
    /// A response head was read: every informational (1xx) head and the
    /// final one, on every redirect hop.
    ResponseHead {
        /// The status.
        status: http::StatusCode,
        /// The version the server answered with.
        version: http::Version,
        /// The headers.
        headers: &'a http::HeaderMap,
        /// The reason phrase and the header names as the server wrote them.
        raw_head: &'a crate::http1::RawHead,
    },
    /// The request head went out with `Expect: 100-continue`; the body waits
    /// for the server's verdict.
    ExpectContinueStart,
    /// The wait for `100 Continue` ended.
    ExpectContinueDone {
        /// The server said `100 Continue` (false: the wait ran out, or a final
        /// response came instead).
        continued: bool,
        /// Time waited.
        waited: Duration,
    },
}

/// Receives the [`Event`]s of requests, on the thread that makes them happen
/// (the request's own thread, or the thread reading the body).
///
/// Set one on the agent with [`AgentBuilder::hook`](crate::AgentBuilder::hook)
/// or on a request with [`RequestBuilder::hook`](crate::RequestBuilder::hook).
/// Keep it quick: it runs inside the request.
///
/// ```
/// struct Print;
/// impl windlass::Hook for Print {
///     fn on_event(&self, request: &windlass::RequestInfo<'_>, event: &windlass::Event<'_>) {
///         eprintln!("#{} {} {:?}", request.id, request.url, event);
///     }
/// }
/// let agent = windlass::Agent::builder().hook(Print).build().unwrap();
/// # drop(agent);
/// ```
pub trait Hook: Send + Sync + 'static {
    /// Called for each event.
    fn on_event(&self, request: &RequestInfo<'_>, event: &Event<'_>);
}

/// The reporting handle a request attempt and its body carry.
pub(crate) struct Observer {
    pub metrics: Arc<Metrics>,
    hooks: [Option<Arc<dyn Hook>>; 2],
    /// What hooks are told about the request; kept only when there are hooks,
    /// so nobody pays for the copy of the URL when nobody looks.
    about: Option<Box<(Method, Url)>>,
    track: TrackGuard,
    /// When the request (not this attempt) began: redirects and retries count.
    request_started: Instant,
}

impl Observer {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        agent_hook: Option<Arc<dyn Hook>>,
        request_hook: Option<Arc<dyn Hook>>,
        track: TrackGuard,
        request: (&Method, &Url),
        request_started: Instant,
    ) -> Observer {
        let hooks = [agent_hook, request_hook];
        let about = hooks
            .iter()
            .any(Option::is_some)
            .then(|| Box::new((request.0.clone(), request.1.clone())));
        Observer {
            metrics,
            hooks,
            about,
            track,
            request_started,
        }
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        let Some(about) = self.about.as_deref() else {
            return;
        };
        let info = RequestInfo {
            id: self.track.tracked.id(),
            method: &about.0,
            url: &about.1,
        };
        for hook in self.hooks.iter().flatten() {
            hook.on_event(&info, &event);
        }
    }

    pub(crate) fn phase(&self, phase: InFlightPhase) {
        self.track.tracked.set_phase(phase);
    }

    pub(crate) fn tracked(&self) -> &crate::inflight::Tracked {
        &self.track.tracked
    }

    pub(crate) fn time(&self, timer: Timer, d: Duration) {
        self.metrics.time(timer, d);
    }

    pub(crate) fn connection_returned(&self) {
        self.emit(Event::ConnectionReturned);
    }

    pub(crate) fn connection_closed(&self, reason: CloseReason) {
        self.emit(Event::ConnectionClosed { reason });
    }

    /// The body, started at `body_started`, is complete, and with it the
    /// request. One clock read serves both durations.
    pub(crate) fn body_done(&self, body_started: Instant) {
        let now = Instant::now();
        self.metrics.time(
            Timer::Request,
            now.saturating_duration_since(self.request_started),
        );
        self.emit(Event::ResponseDone {
            body: now.saturating_duration_since(body_started),
        });
    }
}

/// Headers as text for trace logs, with credentials replaced by `***`.
pub(crate) fn redact_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let secret = value.is_sensitive()
                || matches!(
                    name.as_str(),
                    "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
                );
            let shown = if secret {
                "***".to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_string(), shown)
        })
        .collect()
}
