//! Shared helpers for the integration tests: scripted servers on 127.0.0.1
//! (plain TCP and rustls), certificates generated at test time, and counters
//! of open file descriptors and threads.
//!
//! Rules the helpers keep so a broken test cannot hang the suite:
//! - nothing sleeps to synchronise: tests wait on channels with a timeout;
//! - every loop is bounded in count, and every socket read or write in time
//!   ([`IO_TIMEOUT`]);
//! - a [`Server`] stops when it is dropped: it stops accepting, shuts down the
//!   sockets it accepted and joins its threads.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How long any server socket waits for a read or a write, and how long a
/// test waits for the server to report something.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A server accepts at most this many connections.
const MAX_CONNECTIONS: usize = 1000;
/// A keep-alive script serves at most this many requests on one connection.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// A request head the server reads is at most this long.
const MAX_REQUEST_HEAD: usize = 1 << 20;

/// An agent builder with a safety-net overall timeout, so a test that goes
/// wrong fails in seconds instead of waiting for the 30 s defaults.
pub fn builder() -> windlass::AgentBuilder {
    windlass::Agent::builder().timeout(IO_TIMEOUT)
}

/// An agent with the defaults and the safety-net timeout of [`builder`].
pub fn agent() -> windlass::Agent {
    builder().build().unwrap()
}

/// The agent's pool key for plain HTTP to 127.0.0.1:`port`, as
/// `pool_stats()` names it.
pub fn pool_key(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// `HTTP/1.1 200 OK` with a Content-Length body.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Requests as the server sees them

/// One request exactly as the server read it off the socket.
#[derive(Clone, Debug)]
pub struct Request {
    /// The connection (0-based accept order) the request arrived on.
    pub conn: usize,
    /// The head bytes, request line to the blank line inclusive.
    pub head: Vec<u8>,
    pub method: String,
    pub target: String,
    pub version: String,
    /// Header lines in wire order, name and value as sent (value trimmed).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
    /// The body bytes as they were on the wire (chunk framing included).
    pub raw_body: Vec<u8>,
    /// Whether the body was sent with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Request {
    /// The head as text.
    pub fn head_str(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of a header, by case-insensitive name.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `METHOD target VERSION`.
    pub fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version)
    }
}

/// What a [`Server::serve`] handler sends back.
pub struct Reply {
    pub bytes: Vec<u8>,
    /// Close the connection after writing.
    pub close: bool,
}

impl Reply {
    /// Write the bytes and keep the connection open for the next request.
    pub fn keep(bytes: impl AsRef<[u8]>) -> Reply {
        Reply {
            bytes: bytes.as_ref().to_vec(),
            close: false,
        }
    }

    /// Write the bytes and close the connection.
    pub fn close(bytes: impl AsRef<[u8]>) -> Reply {
        Reply {
            bytes: bytes.as_ref().to_vec(),
            close: true,
        }
    }
}

/// `200 OK` with the request target as the body (none for HEAD); `extra` is
/// inserted as header lines, each ending in CRLF. Lets a test tell which
/// response went where.
pub fn echo_target(req: &Request, extra: &str) -> Vec<u8> {
    let body = if req.method == "HEAD" {
        ""
    } else {
        req.target.as_str()
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        req.target.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Reading requests off any buffered stream

/// Reads one full request (head, then a body framed by Content-Length or
/// chunked) that arrived on connection `conn`. `None` when the peer closed,
/// timed out or sent something unparseable.
pub fn read_request_from(reader: &mut impl BufRead, conn: usize) -> Option<Request> {
    let mut req = read_request_head_from(reader, conn)?;
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if chunked {
        req.chunked = true;
        read_chunked(reader, &mut req)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().ok()?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        req.raw_body = body.clone();
        req.body = body;
    }
    Some(req)
}

/// Reads and parses one request head, leaving any body unread.
fn read_request_head_from(reader: &mut impl BufRead, conn: usize) -> Option<Request> {
    let head = read_head(reader)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.splitn(3, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let version = parts.next()?.to_string();
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Some(Request {
        conn,
        head,
        method,
        target,
        version,
        headers,
        body: Vec::new(),
        raw_body: Vec::new(),
        chunked: false,
    })
}

fn read_head(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader
            .by_ref()
            .take((MAX_REQUEST_HEAD - before) as u64)
            .read_until(b'\n', &mut head)
            .ok()?;
        if n == 0 || head.len() >= MAX_REQUEST_HEAD {
            return None;
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            return Some(head);
        }
    }
}

fn read_line(reader: &mut impl BufRead, out: &mut Vec<u8>) -> Option<String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .ok()?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return None;
    }
    out.extend_from_slice(&line);
    line.truncate(line.len() - 2);
    String::from_utf8(line).ok()
}

fn read_chunked(reader: &mut impl BufRead, req: &mut Request) -> Option<()> {
    let mut raw = Vec::new();
    for _ in 0..1_000_000 {
        let line = read_line(reader, &mut raw)?;
        let size = line.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            // Trailers up to the blank line.
            for _ in 0..1000 {
                if read_line(reader, &mut raw)?.is_empty() {
                    req.raw_body = raw;
                    return Some(());
                }
            }
            return None;
        }
        let mut data = vec![0; size + 2];
        reader.read_exact(&mut data).ok()?;
        raw.extend_from_slice(&data);
        if !data.ends_with(b"\r\n") {
            return None;
        }
        req.body.extend_from_slice(&data[..size]);
    }
    None
}

// ---------------------------------------------------------------------------
// One accepted connection, handed to a script

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Counts every byte read from the connection (after TLS decryption).
struct Counting {
    inner: Box<dyn Stream>,
    received: Arc<AtomicUsize>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.received.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }
}

/// How a [`Conn::wait_for_close`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEnd {
    /// The client closed (EOF, or a reset because it closed with unread data).
    Closed,
    /// Nothing happened within [`IO_TIMEOUT`]: the client kept it open.
    StillOpen,
    /// The client sent more bytes.
    SentData,
}

/// A read that timed out (a socket read timeout shows up as either kind).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// How a wait for the peer ended: `Ok(true)` if bytes arrived, `Ok(false)`
/// at EOF.
fn peer_end(read: io::Result<bool>) -> PeerEnd {
    match read {
        Ok(true) => PeerEnd::SentData,
        Ok(false) => PeerEnd::Closed,
        Err(e) if is_timeout(&e) => PeerEnd::StillOpen,
        Err(_) => PeerEnd::Closed,
    }
}

/// An accepted connection, as seen by a server script.
pub struct Conn {
    /// 0-based accept order of this connection on its server.
    pub index: usize,
    reader: BufReader<Counting>,
    tcp: TcpStream,
    requests: Sender<Request>,
}

impl Conn {
    /// Reads one full request (head, then a body framed by Content-Length or
    /// chunked), reports it to the test and returns it. `None` when the
    /// client closed, timed out or sent something unparseable.
    pub fn read_request(&mut self) -> Option<Request> {
        let req = read_request_from(&mut self.reader, self.index)?;
        let _ = self.requests.send(req.clone());
        Some(req)
    }

    /// Writes bytes and flushes. Errors are ignored: the client may have
    /// gone, which is often what the test is about.
    pub fn write(&mut self, bytes: &[u8]) {
        let stream = &mut self.reader.get_mut().inner;
        let _ = stream.write_all(bytes);
        let _ = stream.flush();
    }

    /// Reads whatever arrives until EOF, an error or [`IO_TIMEOUT`].
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.reader.read_to_end(&mut out);
        out
    }

    /// Waits for the client to close the connection.
    pub fn wait_for_close(&mut self) -> PeerEnd {
        let mut buf = [0u8; 1];
        peer_end(self.reader.read(&mut buf).map(|n| n > 0))
    }

    /// Writes bytes and flushes; false once the client is gone.
    pub fn try_write(&mut self, bytes: &[u8]) -> bool {
        let stream = &mut self.reader.get_mut().inner;
        stream.write_all(bytes).is_ok() && stream.flush().is_ok()
    }

    /// Closes both directions now.
    pub fn close(&mut self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    /// Serves requests on this connection with `handler` until the client
    /// closes, a reply says close, or the request bound is reached.
    pub fn serve(&mut self, handler: &dyn Fn(&Request) -> Reply) {
        for _ in 0..MAX_REQUESTS_PER_CONNECTION {
            let Some(req) = self.read_request() else {
                return;
            };
            let reply = handler(&req);
            self.write(&reply.bytes);
            if reply.close {
                self.close();
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The server

type Script = dyn Fn(&mut Conn) + Send + Sync + 'static;

/// A scripted server on 127.0.0.1: every accepted connection runs the script
/// on its own thread.
pub struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    requests: Receiver<Request>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    conn_threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept_thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    waker: Sender<SocketAddr>,
}

impl Server {
    /// A plain TCP server running `script` for every connection.
    pub fn start(script: impl Fn(&mut Conn) + Send + Sync + 'static) -> Server {
        Server::spawn(None, Arc::new(script))
    }

    /// A TLS server (rustls) running `script` for every connection.
    pub fn start_tls(
        config: Arc<ServerConfig>,
        script: impl Fn(&mut Conn) + Send + Sync + 'static,
    ) -> Server {
        Server::spawn(Some(config), Arc::new(script))
    }

    /// A keep-alive server answering every request with `handler`.
    pub fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start(move |conn| conn.serve(&handler))
    }

    /// A keep-alive TLS server answering every request with `handler`.
    pub fn serve_tls(
        config: Arc<ServerConfig>,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::start_tls(config, move |conn| conn.serve(&handler))
    }

    /// A keep-alive server answering every request with the same bytes.
    pub fn fixed(response: impl AsRef<[u8]>) -> Server {
        let response = response.as_ref().to_vec();
        Server::serve(move |_| Reply::keep(&response))
    }

    fn spawn(tls: Option<Arc<ServerConfig>>, script: Arc<Script>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let conn_threads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (req_tx, requests) = mpsc::channel();
        let (waker, waker_rx) = mpsc::channel::<SocketAddr>();

        let accept_thread = {
            let accepted = accepted.clone();
            let received = received.clone();
            let streams = streams.clone();
            let conn_threads = conn_threads.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut waker_addr = None;
                for _ in 0..=MAX_CONNECTIONS {
                    let Ok((tcp, peer)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        // Connections queued before the waker are still
                        // served; the waker itself ends the loop.
                        if waker_addr.is_none() {
                            waker_addr = waker_rx.recv_timeout(IO_TIMEOUT).ok();
                        }
                        if waker_addr.is_none_or(|w| w == peer) {
                            break;
                        }
                    }
                    let index = accepted.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
                    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
                    let _ = tcp.set_nodelay(true);
                    let Ok(control) = tcp.try_clone() else {
                        continue;
                    };
                    if let Ok(clone) = tcp.try_clone() {
                        streams.lock().unwrap().push(clone);
                    }
                    let script = script.clone();
                    let received = received.clone();
                    let req_tx = req_tx.clone();
                    let tls = tls.clone();
                    let handle = thread::spawn(move || {
                        let inner: Box<dyn Stream> = match tls {
                            Some(config) => match ServerConnection::new(config) {
                                Ok(sc) => Box::new(StreamOwned::new(sc, tcp)),
                                Err(_) => return,
                            },
                            None => Box::new(tcp),
                        };
                        let mut conn = Conn {
                            index,
                            reader: BufReader::new(Counting { inner, received }),
                            tcp: control,
                            requests: req_tx,
                        };
                        script(&mut conn);
                    });
                    conn_threads.lock().unwrap().push(handle);
                }
            })
        };

        Server {
            addr,
            accepted,
            received,
            requests,
            streams,
            conn_threads,
            accept_thread: Some(accept_thread),
            stop,
            waker,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The agent's pool key for this server, as `pool_stats()` names it.
    pub fn pool_key(&self) -> String {
        pool_key(self.port())
    }

    /// `https://localhost:PORT` + `path` (resolve `localhost` to [`Server::addr`]).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.port(), path)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes read from all connections so far.
    pub fn bytes_received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// The next request the server read; panics after [`IO_TIMEOUT`].
    pub fn request(&self) -> Request {
        self.requests
            .recv_timeout(IO_TIMEOUT)
            .expect("the server received no request")
    }

    /// A request the server has already read, if any.
    pub fn try_request(&self) -> Option<Request> {
        self.requests.try_recv().ok()
    }

    /// Stops accepting. Connections the client opened before this call are
    /// still accepted and counted.
    fn stop_accepting(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept() with a connection of our own; the accept
        // loop recognises it by its address.
        let waker = TcpStream::connect(self.addr);
        if let Ok(w) = &waker {
            if let Ok(local) = w.local_addr() {
                let _ = self.waker.send(local);
            }
        }
        let _ = accept_thread.join();
        drop(waker);
    }

    fn join_connections(&mut self) {
        let handles: Vec<_> = self.conn_threads.lock().unwrap().drain(..).collect();
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Stops accepting and waits for every connection script to end on its
    /// own (client closed, or [`IO_TIMEOUT`]). After it, [`Server::accepted`]
    /// and [`Server::bytes_received`] are final. Drop the client's agent
    /// first, or this waits for the timeout.
    pub fn finish(&mut self) {
        self.stop_accepting();
        self.join_connections();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_accepting();
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.join_connections();
    }
}

// ---------------------------------------------------------------------------
// Certificates

/// Certificates generated once per test binary, and a rustls server config
/// for each. Every leaf but `self_signed` is issued by `ca_pem`.
pub struct Pki {
    /// The test CA the client should trust.
    pub ca_pem: String,
    /// Leaf for `localhost` and `127.0.0.1`, issued by the CA: a valid chain.
    pub valid: Arc<ServerConfig>,
    /// Self-signed leaf for `localhost` and `127.0.0.1`.
    pub self_signed: Arc<ServerConfig>,
    /// Leaf issued by the CA for `wrong.example` only.
    pub wrong_name: Arc<ServerConfig>,
    /// Leaf issued by the CA for `localhost` and `127.0.0.1`, expired in 2001.
    pub expired: Arc<ServerConfig>,
}

/// The certificates of this test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(make_pki)
}

fn server_config(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
    Arc::new(config)
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "windlass test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let ca_der = ca.der().clone();

    let issued = |params: CertificateParams| {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &*ca).expect("leaf certificate");
        server_config(vec![cert.der().clone(), ca_der.clone()], &key)
    };

    let valid = issued(leaf_params(&["localhost", "127.0.0.1"]));
    let wrong_name = issued(leaf_params(&["wrong.example"]));
    let mut expired_params = leaf_params(&["localhost", "127.0.0.1"]);
    expired_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    expired_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let expired = issued(expired_params);

    let self_key = KeyPair::generate().expect("self-signed key");
    let self_cert = leaf_params(&["localhost", "127.0.0.1"])
        .self_signed(&self_key)
        .expect("self-signed certificate");
    let self_signed = server_config(vec![self_cert.der().clone()], &self_key);

    Pki {
        ca_pem: ca.pem(),
        valid,
        self_signed,
        wrong_name,
        expired,
    }
}

// ---------------------------------------------------------------------------
// Process counters

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// An address on 127.0.0.1 where connecting is refused, for the whole test
/// binary. A port let go after a bind can be handed to the next server a
/// parallel test starts, which would then answer for the "dead" one; the
/// local port of a connected client socket has no listener and stays taken
/// while the socket lives.
pub fn refused_addr() -> std::net::SocketAddr {
    static DEAD: std::sync::OnceLock<(TcpListener, TcpStream, TcpStream)> =
        std::sync::OnceLock::new();
    let (_, client, _) = DEAD.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        (listener, client, accepted)
    });
    client.local_addr().unwrap()
}

/// This process's threads as `(thread id, name)`, the name as the kernel
/// keeps it (`/proc/self/task/*/comm`, at most 15 bytes).
pub fn threads() -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let path = t.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let tid = path.file_name()?.to_string_lossy().into_owned();
            Some((tid, name.trim_end().to_string()))
        })
        .collect()
}

/// Set by [`run_alone`] for the child process it starts.
const RUN_ALONE: &str = "WINDLASS_TEST_RUN_ALONE";

/// Thread and descriptor counts belong to the whole process, and the other
/// tests of a binary run in parallel; so `test` (an ignored test) runs
/// alone, in a new process of this same test binary, and must pass there.
pub fn run_alone(test: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--ignored", "--test-threads=1"])
        .env(RUN_ALONE, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {test} ... ok")),
        "{test} did not run\n{stdout}"
    );
}

/// Whether this is the process [`run_alone`] started for `test`. Run beside
/// other tests (--include-ignored), the counts would move.
pub fn alone(test: &str) -> bool {
    if std::env::var_os(RUN_ALONE).is_some_and(|t| t == test) {
        return true;
    }
    eprintln!("skipped: runs only in the process its parent test starts");
    false
}

/// Polls `ready` until it holds or `within` has passed; whether it held. For
/// a state nothing signals (a request queued in the pool, a thread ended):
/// each check is cheap, and between checks it yields, then waits a
/// millisecond on a channel (never a bare sleep).
pub fn poll_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let (_keep, never) = mpsc::channel::<()>();
    let started = Instant::now();
    for round in 0u64.. {
        if ready() {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        if round < 200 {
            thread::yield_now();
        } else {
            let _ = never.recv_timeout(Duration::from_millis(1));
        }
    }
    false
}

/// [`poll_until`], failing the test when `ready` does not hold in time.
pub fn wait_until(what: &str, within: Duration, ready: impl FnMut() -> bool) {
    assert!(poll_until(within, ready), "gave up waiting until {what}");
}

/// Waits until the process is back to `threads` threads and `fds` open
/// descriptors; fails the test after `within`.
pub fn wait_for_baseline(threads: usize, fds: usize, within: Duration) {
    let mut now = (0, 0);
    let back = poll_until(within, || {
        now = (thread_count(), open_fds());
        now == (threads, fds)
    });
    assert!(
        back,
        "threads and descriptors {now:?} did not return to {:?}",
        (threads, fds)
    );
}

// ---------------------------------------------------------------------------
// Raw reads, for scripts that stall part-way through a request

impl Conn {
    /// Reads whatever bytes have arrived, without parsing them (a TLS
    /// ClientHello, say). Returns how many: at least one, or 0 at EOF, on an
    /// error or after [`IO_TIMEOUT`].
    pub fn read_some(&mut self) -> usize {
        let mut buf = [0u8; 16 * 1024];
        self.reader.read(&mut buf).unwrap_or(0)
    }

    /// Reads one request head, reports it like [`Conn::read_request`] and
    /// returns it, but leaves the body unread (for a server that stops
    /// reading while the client is still sending).
    pub fn read_request_head(&mut self) -> Option<Request> {
        let req = read_request_head_from(&mut self.reader, self.index)?;
        let _ = self.requests.send(req.clone());
        Some(req)
    }
}

// ---------------------------------------------------------------------------
// Idle connections (pool tests)

impl Conn {
    /// Waits up to [`IO_TIMEOUT`] for the client to either send its next
    /// request or close the connection, without consuming anything:
    /// [`PeerEnd::SentData`] means a request can be read now. Lets a script
    /// serve a keep-alive connection and still tell the client's close apart
    /// from the timeout.
    pub fn wait_for_request_or_close(&mut self) -> PeerEnd {
        peer_end(self.reader.fill_buf().map(|buf| !buf.is_empty()))
    }
}

// ---------------------------------------------------------------------------
// Bodies read after the head (Expect: 100-continue)

impl Conn {
    /// Reads exactly `n` bytes (a body after [`Conn::read_request_head`]);
    /// `None` if the client closed or [`IO_TIMEOUT`] passed first.
    pub fn read_exact_bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.reader.read_exact(&mut buf).ok()?;
        Some(buf)
    }
}

/// The `Accept-Encoding` windlass sends by default: exactly what this build
/// decodes.
pub fn accept_encoding() -> String {
    let mut codings = Vec::new();
    if cfg!(feature = "gzip") {
        codings.extend(["gzip", "deflate"]);
    }
    if cfg!(feature = "brotli") {
        codings.push("br");
    }
    if cfg!(feature = "zstd") {
        codings.push("zstd");
    }
    codings.join(", ")
}
