//! In-process proxies for the proxy tests: each accepted connection runs a
//! script on its own thread with the raw socket; scripts report what they
//! saw on a channel. Nothing here connects anywhere: a "proxy" that accepts a
//! tunnel serves the origin itself on the same socket (plain or TLS).

#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::common::{self, IO_TIMEOUT};

/// Most connections one scripted proxy accepts.
const MAX_CONNECTIONS: usize = 64;

pub type Script = dyn Fn(TcpStream, &Sender<String>) + Send + Sync + 'static;

/// A proxy on 127.0.0.1 running a script per connection. Dropping it stops
/// accepting, shuts down its sockets and joins its threads.
pub struct Scripted {
    pub addr: SocketAddr,
    reports: Receiver<String>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Scripted {
    pub fn start(script: impl Fn(TcpStream, &Sender<String>) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, reports) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let accept = {
            let (stop, streams, threads) = (stop.clone(), streams.clone(), threads.clone());
            thread::spawn(move || {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((tcp, _)) = listener.accept() else {
                        return;
                    };
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                    streams.lock().unwrap().push(tcp.try_clone().unwrap());
                    let (script, tx) = (script.clone(), tx.clone());
                    // The registry keeps a clone of the socket: when the
                    // script ends, the connection ends with it.
                    let ender = tcp.try_clone().unwrap();
                    let handle = thread::spawn(move || {
                        script(tcp, &tx);
                        let _ = ender.shutdown(Shutdown::Both);
                    });
                    threads.lock().unwrap().push(handle);
                }
            })
        };
        Scripted {
            addr,
            reports,
            stop,
            accept: Some(accept),
            streams,
            threads,
        }
    }

    /// The next thing a script reported; panics after [`IO_TIMEOUT`].
    pub fn report(&self) -> String {
        self.reports
            .recv_timeout(IO_TIMEOUT)
            .expect("the proxy reported nothing")
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

pub fn read_n(stream: &mut impl Read, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Most requests served on one tunnel.
const MAX_REQUESTS: usize = 100;

/// Serve requests on `stream` (the origin's side of a tunnel) until the
/// client closes it: report each head, answer each with `body`.
pub fn serve_origin(stream: impl Read + Write, body: &str, tx: &Sender<String>) {
    let mut reader = BufReader::new(stream);
    for _ in 0..MAX_REQUESTS {
        let Some(req) = common::read_request_from(&mut reader, 0) else {
            return;
        };
        let _ = tx.send(req.head_str());
        let _ = reader.get_mut().write_all(&common::ok(body));
        let _ = reader.get_mut().flush();
    }
}

/// As [`serve_origin`], over TLS with `config`.
pub fn serve_origin_tls(
    stream: impl Read + Write,
    config: Arc<ServerConfig>,
    body: &str,
    tx: &Sender<String>,
) {
    let tls = StreamOwned::new(ServerConnection::new(config).unwrap(), stream);
    serve_origin(tls, body, tx);
}

/// Read an HTTP request head (a CONNECT or an absolute-form request).
pub fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The SOCKS5 request a script read: the address as the client sent it.
#[derive(Debug, PartialEq, Eq)]
pub enum Socks5Target {
    Name(String, u16),
    Ip(std::net::IpAddr, u16),
}

/// Read a SOCKS5 CONNECT request (after the method negotiation).
pub fn read_socks5_request(stream: &mut TcpStream) -> Option<Socks5Target> {
    let head = read_n(stream, 4)?;
    assert_eq!(&head[..3], &[5, 1, 0], "a SOCKS5 CONNECT");
    let port = |b: Vec<u8>| u16::from_be_bytes([b[0], b[1]]);
    Some(match head[3] {
        1 => {
            let a = read_n(stream, 4)?;
            let ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).into();
            Socks5Target::Ip(ip, port(read_n(stream, 2)?))
        }
        4 => {
            let a: [u8; 16] = read_n(stream, 16)?.try_into().unwrap();
            Socks5Target::Ip(std::net::Ipv6Addr::from(a).into(), port(read_n(stream, 2)?))
        }
        3 => {
            let len = read_n(stream, 1)?[0] as usize;
            let name = String::from_utf8(read_n(stream, len)?).unwrap();
            Socks5Target::Name(name, port(read_n(stream, 2)?))
        }
        other => panic!("address type {other}"),
    })
}

/// A SOCKS5 success reply (bound address 0.0.0.0:0).
pub const SOCKS5_OK: &[u8] = &[5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
