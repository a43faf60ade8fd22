//! Settings of the everyday features (decoded-size limit, Expect:
//! 100-continue, the cookie jar), kept in one part of the agent's config,
//! and their builder methods.

use crate::agent::AgentBuilder;

/// Default bound on a decoded body read as a stream.
pub(crate) const DEFAULT_DECODED_LIMIT: u64 = 256 * 1024 * 1024;

/// The agent's settings for these features.
#[derive(Debug, Clone)]
pub(crate) struct Extras {
    /// Most bytes a decoded body may hand out when streamed.
    pub decoded_limit: u64,
}

impl Default for Extras {
    fn default() -> Extras {
        Extras {
            decoded_limit: DEFAULT_DECODED_LIMIT,
        }
    }
}

impl AgentBuilder {
    /// Most bytes a compressed response body may decode to when read as a
    /// stream ([`Response::into_body`](crate::Response::into_body)); beyond
    /// it a read fails with [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge),
    /// so a decompression bomb cannot fill memory or disk. Default 256 MiB.
    /// [`Body::with_limit`](crate::Body::with_limit) sets it per body;
    /// `text()` and `bytes()` keep to the smaller
    /// [`body_limit`](AgentBuilder::body_limit).
    pub fn decoded_limit(mut self, limit: u64) -> Self {
        self.config.extras.decoded_limit = limit;
        self
    }
}
