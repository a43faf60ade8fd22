//! An embedded keep-alive HTTP/1.1 server on 127.0.0.1 for load tests and
//! benchmarks of windlass.
//!
//! It answers every request with the same response, built once at start:
//! `200 OK`, a `Content-Length`, `Content-Type: application/octet-stream`
//! and a body of [`ServerConfig::body_size`] bytes. It reads request bodies
//! (`Content-Length` or chunked), answers pipelined requests in order,
//! honours `Connection: close`, answers `HEAD` with the head alone, and can
//! serve over TLS with a certificate for `localhost` and `127.0.0.1` signed
//! by a CA generated at start.
//!
//! One thread per connection. Dropping the [`Server`] stops the accept loop,
//! shuts down every open connection and joins every thread it started.
//!
//! ```
//! use std::io::{Read, Write};
//! let server = windlass_loopback::Server::start(Default::default()).unwrap();
//! let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
//! s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//! let mut response = Vec::new();
//! s.read_to_end(&mut response).unwrap();
//! assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert_eq!(server.requests(), 1);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chaos;
mod conn;
mod tls;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use conn::Responses;

/// How the server answers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Size of every response body, in bytes. Bodies up to 64 KiB go out
    /// with the head in one write; larger ones are written in 1 MiB slices
    /// of one buffer allocated at start.
    pub body_size: usize,
    /// Time to wait before answering each request (after reading its body).
    pub delay: Duration,
    /// Serve HTTPS with a generated certificate (see [`Server::ca_pem`]).
    pub tls: bool,
    /// Answer at most this many requests per connection; the last answer
    /// carries `Connection: close`. `None` for no limit.
    pub max_requests_per_conn: Option<u64>,
}

impl Default for ServerConfig {
    /// A 128-byte body, no delay, plain HTTP, no per-connection limit.
    fn default() -> ServerConfig {
        ServerConfig {
            body_size: 128,
            delay: Duration::ZERO,
            tls: false,
            max_requests_per_conn: None,
        }
    }
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<ConnThread>>>,
}

/// State shared by the accept loop and every connection thread.
pub(crate) struct Shared {
    pub(crate) responses: Responses,
    pub(crate) delay: Duration,
    pub(crate) max_requests: Option<u64>,
    pub(crate) requests: AtomicU64,
    accepted: AtomicU64,
    pub(crate) stop: Stop,
}

/// A stop flag that sleeping threads can wait on.
pub(crate) struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    pub(crate) fn new() -> Stop {
        Stop {
            stopped: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.lock()
    }

    pub(crate) fn stop(&self) {
        *self.lock() = true;
        self.cv.notify_all();
    }

    /// Waits up to `d`; returns true if the server is stopping.
    pub(crate) fn wait(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut stopped = self.lock();
        while !*stopped {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            stopped = self
                .cv
                .wait_timeout(stopped, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// A connection thread and a handle on its socket, to shut it down on drop.
struct ConnThread {
    sock: TcpStream,
    handle: JoinHandle<()>,
}

impl Server {
    /// Binds 127.0.0.1 on a free port and starts accepting connections.
    pub fn start(cfg: ServerConfig) -> io::Result<Server> {
        let tls = if cfg.tls { Some(tls::setup()?) } else { None };
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            responses: Responses::new(cfg.body_size),
            delay: cfg.delay,
            max_requests: cfg.max_requests_per_conn,
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            stop: Stop::new(),
        });
        let conns = Arc::new(Mutex::new(Vec::new()));
        let tls_config = tls.as_ref().map(|t| t.config.clone());
        let accept = {
            let shared = shared.clone();
            let conns = conns.clone();
            thread::Builder::new()
                .name("loopback-accept".into())
                .spawn(move || accept_loop(listener, shared, conns, tls_config))?
        };
        Ok(Server {
            addr,
            tls: cfg.tls,
            ca_pem: tls.map(|t| t.ca_pem),
            shared,
            accept: Some(accept),
            conns,
        })
    }

    /// The address the server listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`, or `https://localhost:PORT/` with TLS
    /// (the certificate is valid for both `localhost` and `127.0.0.1`).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/", self.addr.port())
        } else {
            format!("http://127.0.0.1:{}/", self.addr.port())
        }
    }

    /// PEM of the CA certificate a client must trust (TLS only).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The response body every request gets.
    pub fn body(&self) -> &[u8] {
        &self.shared.responses.body
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Requests answered so far (counted as each response is sent).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("accepted", &self.accepted())
            .field("requests", &self.requests())
            .finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.stop();
        // Wake the accept loop, which is blocked in accept(): it sees the
        // flag and returns. If even that connect fails the thread is left
        // to end with the process rather than hanging this drop.
        if let Some(accept) = self.accept.take() {
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok() {
                let _ = accept.join();
            }
        }
        // No new connection can appear now. Shutting a socket down makes a
        // blocked read or write in its thread return; sleeping threads were
        // woken by the stop flag.
        let conns = std::mem::take(&mut *lock(&self.conns));
        for c in &conns {
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
        }
        for c in conns {
            let _ = c.handle.join();
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    conns: Arc<Mutex<Vec<ConnThread>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    loop {
        let accepted = listener.accept();
        if shared.stop.is_stopped() {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                if shared.stop.wait(Duration::from_millis(10)) {
                    return;
                }
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let Ok(sock) = stream.try_clone() else {
            continue;
        };
        let thread_shared = shared.clone();
        let tls = tls.clone();
        let spawned =
            thread::Builder::new()
                .name("loopback-conn".into())
                .spawn(move || match tls {
                    Some(config) => {
                        if let Ok(tls_conn) = rustls::ServerConnection::new(config) {
                            conn::serve(rustls::StreamOwned::new(tls_conn, stream), &thread_shared);
                        }
                    }
                    None => conn::serve(stream, &thread_shared),
                });
        let Ok(handle) = spawned else {
            continue;
        };
        let mut conns = lock(&conns);
        // Reap threads whose connection has ended, so a long benchmark with
        // short connections does not grow the list without bound.
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *conns)
            .into_iter()
            .partition(|c| c.handle.is_finished());
        *conns = live;
        conns.push(ConnThread { sock, handle });
        drop(conns);
        for c in done {
            let _ = c.handle.join();
        }
    }
}
