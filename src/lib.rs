#![doc = include_str!("guide.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod agent;
mod base64;
pub mod batch;
mod body;
mod charset;
mod codings;
mod conn;
mod connect;
#[cfg(feature = "cookies")]
mod cookies;
mod deadline;
mod defaults;
mod download;
mod error;
mod exchange;
mod expect;
mod extras;
mod fnv;
mod http1;
mod inflight;
mod interop;
mod metrics;
pub mod middleware;
mod multipart;
mod observe;
mod pool;
mod proxy;
mod ratelimit;
pub mod redirect;
mod request;
mod resolve;
mod response;
mod retry;
mod run;
mod speed;
mod timings;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tracing")]
mod trace;
mod workers;

use std::sync::OnceLock;

pub use agent::{Agent, AgentBuilder};
pub use batch::Batch;
pub use body::Body;
#[cfg(feature = "cookies")]
pub use cookies::CookieJar;
pub use deadline::CancelToken;
pub use download::Progress;
pub use error::{Error, ErrorKind, Phase};
pub use http1::RawHead;
pub use inflight::{InFlight, InFlightList, InFlightPhase};
pub use interop::SendableBody;
pub use metrics::{HistogramSnapshot, MetricsSnapshot, BUCKETS};
pub use middleware::Middleware;
pub use multipart::{Multipart, Part};
pub use observe::{Event, Hook, RequestInfo};
pub use pool::ExpiredHosts;
pub use pool::{CloseReason, ClosedCounts, HostLimits, HostStats, PoolStats};
pub use proxy::{Proxy, ProxyKind, ProxyStatus};
pub use ratelimit::RateLimit;
pub use request::{IntoUrl, RequestBuilder};
pub use resolve::{Resolver, SystemResolver};
pub use response::Response;
pub use retry::Retry;
pub use speed::MinSpeed;
pub use timings::{Timings, TlsVersion};
#[cfg(feature = "tls")]
pub use tls::{RootStore, TlsProvider};

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
