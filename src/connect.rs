//! Opening a connection: DNS, then TCP across the resolved addresses (Happy
//! Eyeballs, RFC 8305), then a proxy CONNECT tunnel and the TLS handshake,
//! each phase under its own deadline and the request's cancel token.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::AgentInner;
use crate::conn::{Conn, Socket};
use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, ErrorKind, Phase};
use crate::exchange::{Exchange, Limit};
use crate::observe::{Event, Observer};
use crate::pool::{PoolKey, Scheme};

/// RFC 8305's "Connection Attempt Delay": the next address is tried after this.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Open a new connection for `key`: DNS, TCP, the proxy tunnel and TLS,
/// each entered through the exchange.
pub(crate) fn open(
    agent: &AgentInner,
    key: &PoolKey,
    ex: &mut Exchange,
) -> Result<Box<Conn>, Error> {
    let (dial_host, dial_port) = match &agent.config.proxy {
        Some(proxy) => (proxy.host.as_str(), proxy.port),
        None => (&*key.host, key.port),
    };

    let limit = ex.enter(Phase::Dns);
    ex.emit(Event::DnsStart { host: dial_host });
    let (addrs, looked_up) = agent
        .dns
        .lookup(dial_host, dial_port, limit.deadline, ex.cancel())?;
    ex.emit(Event::DnsDone {
        addrs: &addrs,
        elapsed: limit.started.elapsed(),
    });

    let limit = ex.enter(Phase::Connect);
    if !looked_up {
        // An IP literal, an override or a cached answer: no lookup happened.
        ex.timings.dns = None;
    }
    let authority: Arc<str> = Arc::from(key.authority());
    let (tcp, remote) = connect_tcp(
        &addrs,
        limit.deadline,
        ex.cancel(),
        &authority,
        Some(&ex.observer),
    )?;
    ex.timings.remote_addr = Some(remote);

    let sock = Socket::new(tcp, Arc::clone(&authority));
    let id = agent.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let mut conn = Box::new(Conn::new(sock, id, remote));
    if !conn.watch(ex.cancel()) {
        return Err(Error::cancelled(Phase::Connect));
    }

    if key.scheme == Scheme::Https {
        if let Some(proxy) = &agent.config.proxy {
            crate::proxy::tunnel(&mut conn, proxy, key, agent.config.max_head_size, &limit)?;
        }
        let limit = ex.enter(Phase::Tls);
        handshake(agent, &mut conn, key, &limit, ex)?;
    }
    log::debug!("opened connection {id} to {key} ({remote})");
    Ok(conn)
}

#[cfg(feature = "tls")]
fn handshake(
    agent: &AgentInner,
    conn: &mut Conn,
    key: &PoolKey,
    limit: &Limit,
    ex: &mut Exchange,
) -> Result<(), Error> {
    let config = agent.tls_config()?;
    let name = crate::tls::server_name(&key.host)?;
    let tls = rustls::ClientConnection::new(config, name)
        .map_err(|e| Error::with_source(ErrorKind::Tls, "cannot start TLS", e))?;
    conn.set_tls(Box::new(tls));
    conn.tls_handshake(limit)
        .map_err(crate::tls::handshake_error)?;
    let elapsed = limit.started.elapsed();
    let resumed = conn.tls_resumed();
    ex.timings.tls_resumed = Some(resumed);
    ex.observer.metrics.tls_handshake(resumed);
    ex.emit(Event::TlsDone { resumed, elapsed });
    Ok(())
}

#[cfg(not(feature = "tls"))]
fn handshake(
    _agent: &AgentInner,
    _conn: &mut Conn,
    _key: &PoolKey,
    _limit: &Limit,
    _ex: &mut Exchange,
) -> Result<(), Error> {
    Err(Error::new(
        ErrorKind::TlsUnavailable,
        "https is not available: windlass was built without the `tls` feature",
    ))
}

fn connect_error(addr: SocketAddr, err: io::Error) -> Error {
    Error::with_source(ErrorKind::Connect, format!("cannot connect to {addr}"), err)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Connect to the first address that answers.
pub(crate) fn connect_tcp(
    addrs: &[SocketAddr],
    deadline: Deadline,
    cancel: Option<&CancelToken>,
    host: &str,
    observer: Option<&Observer>,
) -> Result<(TcpStream, SocketAddr), Error> {
    let started = Instant::now();
    let report = |event: Event<'_>| {
        if let Some(o) = observer {
            o.emit(event);
        }
    };
    if cancel.is_some_and(|c| c.is_cancelled()) {
        return Err(Error::cancelled(Phase::Connect));
    }
    // The common case, one address and nobody to cancel: connect on this
    // thread, bounded by the deadline, without paying for a thread.
    if let ([addr], None) = (addrs, cancel) {
        report(Event::ConnectStart { addr: *addr });
        let result = match deadline.remaining() {
            None => TcpStream::connect(addr),
            Some(Duration::ZERO) => {
                return Err(Error::timeout(Phase::Connect, host, started.elapsed()))
            }
            Some(left) => TcpStream::connect_timeout(addr, left),
        };
        report(Event::ConnectDone {
            addr: *addr,
            ok: result.is_ok(),
            elapsed: started.elapsed(),
        });
        return match result {
            Ok(tcp) => Ok((tcp, *addr)),
            Err(e) if is_timeout(&e) => {
                Err(Error::timeout(Phase::Connect, host, started.elapsed()))
            }
            Err(e) => Err(connect_error(*addr, e)),
        };
    }
    race(&interleave(addrs), deadline, cancel, host, started, &report)
}

/// Alternate address families, starting with the resolver's first choice.
fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .iter()
        .copied()
        .partition(|a| a.is_ipv6() == first.is_ipv6());
    same.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    while !same.is_empty() || !other.is_empty() {
        out.extend(same.pop());
        out.extend(other.pop());
    }
    out
}

enum Attempt {
    Done(SocketAddr, io::Result<TcpStream>),
    Cancelled,
}

/// Start an attempt every [`ATTEMPT_DELAY`] (or at once when the previous one
/// failed); the first success wins. Losing attempts run out on their own
/// thread, bounded by the deadline, and close their socket.
fn race(
    addrs: &[SocketAddr],
    deadline: Deadline,
    cancel: Option<&CancelToken>,
    host: &str,
    started: Instant,
    report: &dyn Fn(Event<'_>),
) -> Result<(TcpStream, SocketAddr), Error> {
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::Dns,
            format!("no addresses to connect to for {host}"),
        ));
    }
    let (tx, rx) = std::sync::mpsc::channel::<Attempt>();
    let _hook = match cancel {
        Some(token) => {
            let tx = tx.clone();
            match token.on_cancel(move || {
                let _ = tx.send(Attempt::Cancelled);
            }) {
                Some(hook) => Some(hook),
                None => return Err(Error::cancelled(Phase::Connect)),
            }
        }
        None => None,
    };
    let mut next = 0;
    let mut running = 0;
    let mut last_error: Option<Error> = None;
    let mut next_start = Instant::now();
    loop {
        if next >= addrs.len() && running == 0 {
            return Err(last_error.unwrap_or_else(|| {
                Error::new(ErrorKind::Connect, format!("cannot connect to {host}"))
            }));
        }
        if next < addrs.len() && Instant::now() >= next_start {
            let addr = addrs[next];
            next += 1;
            running += 1;
            next_start = Instant::now() + ATTEMPT_DELAY;
            report(Event::ConnectStart { addr });
            let tx = tx.clone();
            let budget = deadline.remaining();
            let spawned = std::thread::Builder::new()
                .name("windlass-connect".into())
                .spawn(move || {
                    let result = match budget {
                        None => TcpStream::connect(addr),
                        Some(left) => {
                            TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
                        }
                    };
                    // If the race is over, the send fails and the socket closes.
                    let _ = tx.send(Attempt::Done(addr, result));
                });
            if let Err(e) = spawned {
                running -= 1;
                last_error = Some(connect_error(addr, e));
                continue;
            }
        }
        let wake = if next < addrs.len() {
            Deadline::At(next_start).min(deadline)
        } else {
            deadline
        };
        let got = match wake.remaining() {
            None => rx.recv().ok(),
            Some(left) => match rx.recv_timeout(left) {
                Ok(msg) => Some(msg),
                Err(_) if deadline.expired() => {
                    return Err(Error::timeout(Phase::Connect, host, started.elapsed()))
                }
                Err(_) => continue,
            },
        };
        match got {
            Some(Attempt::Done(addr, Ok(tcp))) => {
                report(Event::ConnectDone {
                    addr,
                    ok: true,
                    elapsed: started.elapsed(),
                });
                return Ok((tcp, addr));
            }
            Some(Attempt::Done(addr, Err(e))) => {
                report(Event::ConnectDone {
                    addr,
                    ok: false,
                    elapsed: started.elapsed(),
                });
                running -= 1;
                last_error = Some(if is_timeout(&e) {
                    Error::timeout(Phase::Connect, host, started.elapsed())
                } else {
                    connect_error(addr, e)
                });
                next_start = Instant::now();
            }
            Some(Attempt::Cancelled) | None => return Err(Error::cancelled(Phase::Connect)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn families_alternate() {
        let v4 = |n| SocketAddr::from(([127, 0, 0, n], 80));
        let v6 = |n| SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, n], 80));
        let order = interleave(&[v6(1), v6(2), v4(1), v4(2), v4(3)]);
        assert_eq!(order, vec![v6(1), v4(1), v6(2), v4(2), v4(3)]);
    }

    #[test]
    fn a_refused_address_falls_through_to_the_next() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let good = listener.local_addr().unwrap();
        // A port we bound and closed again: connecting to it is refused.
        let refused = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let token = CancelToken::new();
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_secs(5)));
        let (_, addr) =
            connect_tcp(&[refused, good], deadline, Some(&token), "test", None).unwrap();
        assert_eq!(addr, good);
    }

    #[test]
    fn all_refused_is_a_connect_error() {
        let refused = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let deadline = Deadline::after(Instant::now(), Some(Duration::from_secs(5)));
        let err = connect_tcp(&[refused], deadline, None, "test", None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect);
    }
}
