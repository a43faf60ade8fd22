//! HTTP CONNECT (RFC 9110 section 9.3.6): ask an HTTP or HTTPS proxy for a
//! tunnel to the origin.

use http::Method;

use super::{Proxy, ProxyStatus};
use crate::conn::Conn;
use crate::error::{Error, ErrorKind};
use crate::exchange::Limit;
use crate::http1;

/// Open a CONNECT tunnel to `target` (`host:port`). A non-2xx answer is
/// [`ErrorKind::Proxy`] with its status; the connection is then useless
/// and the caller drops it.
pub(crate) fn connect(
    conn: &mut Conn,
    proxy: &Proxy,
    target: &str,
    max_head: usize,
    limit: &Limit,
) -> Result<(), Error> {
    let mut head = Vec::new();
    http1::put_request_line(&mut head, &Method::CONNECT, target);
    http1::put_header(&mut head, "host", target.as_bytes());
    if let Some(auth) = &proxy.auth {
        http1::put_header(&mut head, "proxy-authorization", auth.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    conn.write_all(&head, limit)
        .map_err(|e| super::socks::named(proxy, "sending CONNECT to", Error::from_io(e)))?;
    let mut got = false;
    let response = http1::read_head(&mut conn.reading(limit), max_head, &mut got)
        .map_err(|e| super::socks::named(proxy, "reading the CONNECT answer of", e))?;
    if !response.status.is_success() {
        return Err(Error::new(
            ErrorKind::Proxy(ProxyStatus::Http(response.status)),
            format!(
                "proxy {} refused to open a tunnel to {target}: {}",
                proxy.authority(),
                response.status
            ),
        ));
    }
    if !conn.buffered().is_empty() {
        return Err(Error::protocol(format!(
            "proxy {} sent data after its CONNECT response",
            proxy.authority()
        )));
    }
    Ok(())
}
