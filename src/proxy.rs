//! HTTP proxies: plain requests in absolute form, and CONNECT tunnels for https.

use http::header::HeaderValue;
use http::Method;
use url::Url;

use crate::conn::Conn;
use crate::error::{Error, ErrorKind};
use crate::exchange::Limit;
use crate::http1;
use crate::pool::PoolKey;

/// An HTTP proxy, `http://[user:password@]host:port`.
///
/// ```
/// let proxy = windlass::Proxy::new("http://user:secret@127.0.0.1:3128").unwrap();
/// let agent = windlass::Agent::builder().proxy(proxy).build().unwrap();
/// # drop(agent);
/// ```
#[derive(Clone)]
pub struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) auth: Option<HeaderValue>,
}

impl Proxy {
    /// Parse a proxy URL. Only `http://` proxies are supported; a missing port means 80.
    pub fn new(url: &str) -> Result<Proxy, Error> {
        let parsed = Url::parse(url).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidUrl,
                format!("invalid proxy URL {url:?}"),
                e,
            )
        })?;
        if parsed.scheme() != "http" {
            return Err(Error::new(
                ErrorKind::InvalidUrl,
                format!(
                    "unsupported proxy scheme {:?}; only http:// proxies are supported",
                    parsed.scheme()
                ),
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, "proxy URL has no host"))?
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let auth = crate::request::basic_auth_from_url(&parsed);
        Ok(Proxy { host, port, auth })
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Open a CONNECT tunnel through the proxy to the key's host.
pub(crate) fn tunnel(
    conn: &mut Conn,
    proxy: &Proxy,
    key: &PoolKey,
    max_head: usize,
    limit: &Limit,
) -> Result<(), Error> {
    let target = key.authority();
    let mut head = Vec::new();
    http1::put_request_line(&mut head, &Method::CONNECT, &target);
    http1::put_header(&mut head, "host", target.as_bytes());
    if let Some(auth) = &proxy.auth {
        http1::put_header(&mut head, "proxy-authorization", auth.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    conn.write_all(&head, limit).map_err(Error::from_io)?;
    let mut got = false;
    let response = crate::http1::read_head(&mut conn.reading(limit), max_head, &mut got)?;
    if !response.status.is_success() {
        return Err(Error::new(
            ErrorKind::Connect,
            format!(
                "proxy {} refused to open a tunnel to {target}: {}",
                proxy.authority(),
                response.status
            ),
        ));
    }
    if !conn.buffered().is_empty() {
        return Err(Error::protocol(
            "proxy sent data after its CONNECT response",
        ));
    }
    Ok(())
}
