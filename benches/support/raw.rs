//! The raw floor: one stream, a prebuilt request, the response head scanned
//! by hand for `Content-Length`. No URL parsing, no header map, no allocation
//! per request. Whatever a client spends above this is its own cost, because
//! the server and the kernel are the same for everyone.
//!
//! Like a pooled client, the floor keeps its connection and its buffer from
//! one round to the next, so neither a connect nor the page faults of a new
//! buffer land in a timed round unless the scenario asks for them. For the
//! "new agent per request" scenarios it opens a connection per request, and
//! over TLS builds a new client configuration for each (a full handshake,
//! as a fresh program makes).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A prebuilt `GET path` for `host`.
pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// How the floor speaks TLS.
#[derive(Clone)]
pub enum FloorTls {
    /// Plain TCP.
    Off,
    /// One configuration for every connection (its session cache resumes).
    Shared(Arc<rustls::ClientConfig>),
    /// A configuration built from this CA for each connection.
    PerConnection(String),
}

/// A rustls client configuration trusting only `ca_pem`. One `Arc` shared by
/// every connection keeps rustls' session cache, so resumption works.
pub fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots.add(cert).map_err(|e| format!("CA: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Plain TCP, or rustls over TCP for the name `localhost`.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects; a TLS handshake runs on the first write, as in every client.
    fn connect(addr: SocketAddr, tls: &FloorTls) -> io::Result<Stream> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let config = match tls {
            FloorTls::Off => return Ok(Stream::Tcp(tcp)),
            FloorTls::Shared(config) => config.clone(),
            FloorTls::PerConnection(ca_pem) => tls_config(ca_pem).map_err(io::Error::other)?,
        };
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    /// Whether the TLS handshake was a resumption (`None` for plain TCP).
    fn resumed(&self) -> Option<bool> {
        match self {
            Stream::Tcp(_) => None,
            Stream::Tls(s) => Some(s.conn.handshake_kind()? == rustls::HandshakeKind::Resumed),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// TLS handshakes the floor made, for the record.
#[derive(Default, Clone, Copy)]
pub struct Handshakes {
    pub resumed: u64,
    pub full: u64,
}

/// One floor connection (opened on demand) and its read buffer.
pub struct Floor {
    addr: SocketAddr,
    tls: FloorTls,
    stream: Option<Stream>,
    /// 256 KiB, so a big body costs few reads (ureq's default is 128 KiB).
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[lo..hi]`.
    lo: usize,
    hi: usize,
    pub handshakes: Handshakes,
}

impl Floor {
    pub fn new(addr: SocketAddr, tls: FloorTls) -> Floor {
        // Written once so the pages are faulted in before any timing.
        let buf = vec![1u8; 256 * 1024].into_boxed_slice();
        Floor {
            addr,
            tls,
            stream: None,
            buf,
            lo: 0,
            hi: 0,
            handshakes: Handshakes::default(),
        }
    }

    /// Sends `req`, checks for a 200, copies the body (framed by
    /// `Content-Length`) into `sink` and returns its length. With `close`
    /// the connection is dropped afterwards.
    pub fn get(&mut self, req: &[u8], close: bool, sink: &mut impl Write) -> io::Result<u64> {
        if self.stream.is_none() {
            self.stream = Some(Stream::connect(self.addr, &self.tls)?);
            self.lo = 0;
            self.hi = 0;
        }
        let result = self.exchange(req, sink);
        if close || result.is_err() {
            match self.stream.take().and_then(|s| s.resumed()) {
                Some(true) => self.handshakes.resumed += 1,
                Some(false) => self.handshakes.full += 1,
                None => {}
            }
        }
        result
    }

    fn exchange(&mut self, req: &[u8], sink: &mut impl Write) -> io::Result<u64> {
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(req)?;
        let head_len = read_head(stream, &mut self.buf, &mut self.lo, &mut self.hi)?;
        let head = &self.buf[self.lo..self.lo + head_len];
        if !head.starts_with(b"HTTP/1.1 200 ") {
            return Err(io::Error::other("status is not 200"));
        }
        let len = content_length(head).ok_or_else(|| io::Error::other("no Content-Length"))?;
        self.lo += head_len;

        let mut left = len;
        while left > 0 {
            if self.lo == self.hi {
                self.lo = 0;
                self.hi = stream.read(&mut self.buf)?;
                if self.hi == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let take = (self.hi - self.lo).min(usize::try_from(left).unwrap_or(usize::MAX));
            sink.write_all(&self.buf[self.lo..self.lo + take])?;
            self.lo += take;
            left -= take as u64;
        }
        Ok(len)
    }
}

/// Reads until `buf[lo..hi]` starts with a whole head; returns its length.
fn read_head(
    stream: &mut impl Read,
    buf: &mut [u8],
    lo: &mut usize,
    hi: &mut usize,
) -> io::Result<usize> {
    let mut scanned: usize = 0;
    loop {
        let have = &buf[*lo..*hi];
        let from = scanned.saturating_sub(3);
        if let Some(at) = have[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(from + at + 4);
        }
        scanned = have.len();
        if *lo > 0 {
            buf.copy_within(*lo..*hi, 0);
            *hi -= *lo;
            *lo = 0;
        }
        if *hi == buf.len() {
            return Err(io::Error::other("response head too large"));
        }
        let n = stream.read(&mut buf[*hi..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        *hi += n;
    }
}

/// The value of the `Content-Length` header, found by a case-insensitive scan.
fn content_length(head: &[u8]) -> Option<u64> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
    })
}
