//! SOCKS5 (RFC 1928, username/password per RFC 1929) and SOCKS4/4a: the
//! CONNECT command only, over a connection already open to the proxy.

use std::net::{IpAddr, SocketAddr};

use super::{Proxy, ProxyKind, ProxyStatus};
use crate::conn::Conn;
use crate::error::{Error, ErrorKind};
use crate::exchange::Limit;

/// Where the proxy is asked to connect: a name it resolves (socks5h,
/// socks4a) or an address resolved here.
pub(crate) enum Target<'a> {
    Name(&'a str, u16),
    Addr(SocketAddr),
}

/// Give an error from a proxy step a message naming the proxy, keeping its
/// kind; timeouts and cancels already say what they need to.
pub(crate) fn named(proxy: &Proxy, doing: &str, err: Error) -> Error {
    match err.kind() {
        ErrorKind::Timeout(_) | ErrorKind::Cancelled => err,
        kind => Error::with_source(
            kind,
            format!("{doing} proxy {} failed", proxy.authority()),
            err,
        ),
    }
}

/// Run the SOCKS handshake for `target` on `conn`.
pub(crate) fn handshake(
    conn: &mut Conn,
    proxy: &Proxy,
    target: Target<'_>,
    limit: &Limit,
) -> Result<(), Error> {
    let mut io = Io { conn, proxy, limit };
    match proxy.kind {
        ProxyKind::Socks4 | ProxyKind::Socks4a => socks4(&mut io, target),
        _ => socks5(&mut io, target),
    }?;
    if !io.conn.buffered().is_empty() {
        return Err(Error::protocol(format!(
            "SOCKS proxy {} sent data after its reply",
            proxy.authority()
        )));
    }
    Ok(())
}

struct Io<'a> {
    conn: &'a mut Conn,
    proxy: &'a Proxy,
    limit: &'a Limit,
}

impl Io<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.conn
            .write_all(bytes, self.limit)
            .map_err(|e| named(self.proxy, "the SOCKS handshake with", Error::from_io(e)))
    }

    /// Exactly `N` bytes; an early close is a protocol error naming the proxy.
    fn read<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        self.read_into(&mut out)?;
        Ok(out)
    }

    fn read_into(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0;
        while filled < out.len() {
            let n = self
                .conn
                .read_into(&mut out[filled..], self.limit)
                .map_err(|e| named(self.proxy, "the SOCKS handshake with", Error::from_io(e)))?;
            if n == 0 {
                return Err(self.garbled("closed the connection during the SOCKS handshake"));
            }
            filled += n;
        }
        Ok(())
    }

    fn garbled(&self, what: &str) -> Error {
        Error::protocol(format!("proxy {} {what}", self.proxy.authority()))
    }

    fn refused(&self, status: ProxyStatus) -> Error {
        Error::new(
            ErrorKind::Proxy(status),
            format!(
                "proxy {} refused the connection: {status}",
                self.proxy.authority()
            ),
        )
    }
}

const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

fn socks5(io: &mut Io<'_>, target: Target<'_>) -> Result<(), Error> {
    let creds = io.proxy.user.clone();
    // Greeting: the methods we can do.
    let greeting: &[u8] = if creds.is_some() {
        &[5, 2, NO_AUTH, USER_PASS]
    } else {
        &[5, 1, NO_AUTH]
    };
    io.send(greeting)?;
    let [version, method] = io.read::<2>()?;
    if version != 5 {
        return Err(io.garbled("is not a SOCKS5 proxy (bad version in its answer)"));
    }
    match (method, &creds) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some((user, pass))) => {
            if user.len() > 255 || pass.len() > 255 {
                return Err(Error::new(
                    ErrorKind::InvalidUrl,
                    "SOCKS5 username and password are limited to 255 bytes each",
                ));
            }
            let mut msg = vec![1, user.len() as u8];
            msg.extend_from_slice(user.as_bytes());
            msg.push(pass.len() as u8);
            msg.extend_from_slice(pass.as_bytes());
            io.send(&msg)?;
            let [_, status] = io.read::<2>()?;
            if status != 0 {
                return Err(io.refused(ProxyStatus::Socks5AuthFailed(status)));
            }
        }
        (NO_ACCEPTABLE, _) => return Err(io.refused(ProxyStatus::Socks5NoAcceptableAuth)),
        _ => return Err(io.garbled("chose a SOCKS5 authentication method not offered")),
    }

    // CONNECT request.
    let mut req = vec![5, 1, 0];
    let port = match target {
        Target::Addr(addr) => {
            put_ip(&mut req, addr.ip());
            addr.port()
        }
        Target::Name(host, port) => {
            match host.parse::<IpAddr>() {
                Ok(ip) => put_ip(&mut req, ip),
                Err(_) => {
                    let len = u8::try_from(host.len()).map_err(|_| {
                        Error::new(ErrorKind::InvalidUrl, "host name too long for SOCKS5")
                    })?;
                    req.push(3);
                    req.push(len);
                    req.extend_from_slice(host.as_bytes());
                }
            }
            port
        }
    };
    req.extend_from_slice(&port.to_be_bytes());
    io.send(&req)?;

    let [version, reply, _reserved, atyp] = io.read::<4>()?;
    if version != 5 {
        return Err(io.garbled("sent a reply that is not SOCKS5"));
    }
    if reply != 0 {
        return Err(io.refused(ProxyStatus::Socks5(reply)));
    }
    // The bound address and port: read and forgotten.
    let addr_len = match atyp {
        1 => 4,
        4 => 16,
        3 => usize::from(io.read::<1>()?[0]),
        _ => return Err(io.garbled("sent a SOCKS5 reply with an unknown address type")),
    };
    let mut rest = vec![0u8; addr_len + 2];
    io.read_into(&mut rest)?;
    Ok(())
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(1);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(4);
            out.extend_from_slice(&v6.octets());
        }
    }
}

fn socks4(io: &mut Io<'_>, target: Target<'_>) -> Result<(), Error> {
    let user = io.proxy.user.as_ref().map_or("", |(u, _)| u.as_str());
    let mut req = vec![4, 1];
    let mut name = None;
    match target {
        Target::Addr(SocketAddr::V4(addr)) => {
            req.extend_from_slice(&addr.port().to_be_bytes());
            req.extend_from_slice(&addr.ip().octets());
        }
        Target::Addr(SocketAddr::V6(_)) => {
            return Err(Error::new(
                ErrorKind::Connect,
                format!(
                    "SOCKS4 proxy {} cannot reach an IPv6 address",
                    io.proxy.authority()
                ),
            ))
        }
        Target::Name(host, port) => {
            req.extend_from_slice(&port.to_be_bytes());
            // SOCKS4a: 0.0.0.x asks the proxy to resolve the name that follows.
            req.extend_from_slice(&[0, 0, 0, 1]);
            name = Some(host);
        }
    }
    req.extend_from_slice(user.as_bytes());
    req.push(0);
    if let Some(host) = name {
        req.extend_from_slice(host.as_bytes());
        req.push(0);
    }
    io.send(&req)?;
    let reply = io.read::<8>()?;
    if reply[0] != 0 {
        return Err(io.garbled("sent a reply that is not SOCKS4"));
    }
    if reply[1] != 0x5a {
        return Err(io.refused(ProxyStatus::Socks4(reply[1])));
    }
    Ok(())
}
