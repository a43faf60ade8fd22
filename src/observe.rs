//! Where a request reports what happens to it: the agent's metrics and the
//! caller's hooks. Costs a branch when nobody listens.

use std::sync::Arc;
use std::time::Duration;

use crate::conn::Conn;
use crate::pool::CloseReason;

/// The reporting handle a request and its body carry.
#[derive(Clone, Default)]
pub(crate) struct Observer {
    inner: Option<Arc<()>>,
}

impl Observer {
    pub(crate) fn connection_returned(&self, conn: &Conn) {
        let _ = (&self.inner, conn);
    }

    pub(crate) fn connection_closed(&self, conn: &Conn, reason: CloseReason) {
        let _ = (&self.inner, conn, reason);
    }

    pub(crate) fn body_done(&self, elapsed: Duration) {
        let _ = (&self.inner, elapsed);
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
