//! # windlass
//!
//! A synchronous, blocking HTTP/1.1 client that prevents, by construction, the
//! production failures blocking clients keep causing:
//!
//! - a response body returns its connection to the pool at EOF, drains a
//!   bounded remainder when dropped early, and otherwise closes it, so unread
//!   bodies cannot starve the pool;
//! - every phase has a finite default timeout, requests can have an overall
//!   deadline and a minimum transfer speed ([`MinSpeed`]), and errors name the
//!   phase and the setting that ran out ([`ErrorKind::Timeout`]);
//! - a [`CancelToken`] stops a request from another thread, in any phase;
//! - connections per host can be capped, with a fair FIFO wait queue;
//! - a pooled connection is looked at (one non-blocking peek) before every
//!   reuse, and one the server closed or sent anything unasked on is closed,
//!   never reused; a server's `Keep-Alive: timeout` is honoured, and an idempotent request that hits a stale
//!   connection is retried once on a fresh one;
//! - idle connections are closed by one reaper thread shared by every agent
//!   of the process, which ends on its own when no agent needs it;
//! - the pool is visible: [`Agent::pool_stats`];
//! - on a redirect to another origin only harmless caller-set headers follow
//!   (credentials, API keys and tokens do not), https→http redirects are
//!   refused, compressed and chunked bodies are bounded against servers that
//!   lie, and TLS verification can only be switched off through a
//!   `danger_` method that logs a warning.
//!
//! ```no_run
//! # fn main() -> Result<(), windlass::Error> {
//! // One-off calls share a lazily built default agent, so they reuse connections too.
//! let body = windlass::get("http://127.0.0.1:8080/items")
//!     .query("page", "2")
//!     .call()?
//!     .text()?;
//! # drop(body); Ok(()) }
//! ```
//!
//! ## Features
//!
//! - `tls` (default): https through rustls (ring) with the webpki roots.
//! - `gzip` (default): transparent gzip/deflate decoding.
//! - `json`: `send_json` and `Response::json` through serde_json.
//! - `metrics`: also report through the `metrics` crate facade.
//!
//! With `default-features = false`, windlass is a plain-HTTP client with no
//! TLS and no compression dependencies.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod agent;
mod base64;
mod body;
mod conn;
mod connect;
mod deadline;
mod error;
mod exchange;
mod fnv;
mod http1;
mod inflight;
mod metrics;
mod observe;
mod pool;
mod proxy;
mod ratelimit;
mod redirect;
mod request;
mod resolve;
mod response;
mod retry;
mod run;
mod speed;
mod timings;
#[cfg(feature = "tls")]
mod tls;

use std::sync::OnceLock;

pub use agent::{Agent, AgentBuilder};
pub use body::Body;
pub use deadline::CancelToken;
pub use error::{Error, ErrorKind, Phase};
pub use inflight::{InFlight, InFlightList, InFlightPhase};
pub use metrics::{HistogramSnapshot, MetricsSnapshot, BUCKETS};
pub use observe::{Event, Hook, RequestInfo};
pub use pool::{CloseReason, ClosedCounts, HostLimits, HostStats, PoolStats};
pub use proxy::Proxy;
pub use ratelimit::RateLimit;
pub use request::{IntoUrl, RequestBuilder};
pub use resolve::{Resolver, SystemResolver};
pub use response::Response;
pub use retry::Retry;
pub use speed::MinSpeed;
pub use timings::Timings;

/// The types of the `http` crate that windlass uses in its API.
pub use http;
/// The `url` crate, for [`url::Url`].
pub use url;

/// The agent behind the crate-level functions, built on first use.
fn default_agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(Agent::new)
}

macro_rules! shortcuts {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[track_caller]
            pub fn $name(url: impl IntoUrl) -> RequestBuilder {
                default_agent().$name(url)
            }
        )*
    };
}

shortcuts! {
    /// A GET request through the shared default agent.
    get;
    /// A POST request through the shared default agent.
    post;
    /// A PUT request through the shared default agent.
    put;
    /// A DELETE request through the shared default agent.
    delete;
    /// A HEAD request through the shared default agent.
    head;
    /// A PATCH request through the shared default agent.
    patch;
}

/// A request with any method through the shared default agent.
#[track_caller]
pub fn request(method: impl AsRef<str>, url: impl IntoUrl) -> RequestBuilder {
    default_agent().request(method, url)
}

/// The README's examples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
#[allow(unexpected_cfgs)]
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http1::fuzzing::*;
}
