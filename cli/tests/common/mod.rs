//! Test support: a scripted HTTP server on 127.0.0.1 that answers with exact
//! bytes, and a bounded way to run the `windlass` binary.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Longest any test waits for anything before failing.
pub const BOUND: Duration = Duration::from_secs(30);

/// What the scripted server does with a request.
pub enum Reply {
    /// Write these bytes and close the connection.
    Bytes(Vec<u8>),
    /// Keep the connection open and never answer.
    Hang,
    /// Write with this function (pieces with waits between them, say), then
    /// close the connection.
    Write(Box<dyn FnOnce(&mut TcpStream) + Send>),
}

/// A response with a Content-Length and `Connection: close`.
pub fn ok(body: &[u8]) -> Reply {
    status(200, "OK", &[], body)
}

/// Any status, extra header lines, and a body.
pub fn status(code: u16, reason: &str, headers: &[&str], body: &[u8]) -> Reply {
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("Connection: close\r\n\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Bytes(bytes)
}

/// A server that reads each request (head and Content-Length body), reports
/// it on `requests`, and answers with what the handler says.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Every request received, head and body, as text.
    requests: Receiver<String>,
}

impl TestServer {
    /// Answers one connection at a time, in the order they arrive.
    pub fn start(handler: impl Fn(&str) -> Reply + Send + 'static) -> TestServer {
        TestServer::listen(move |stream, tx, held| answer(stream, &handler, &tx, &held))
    }

    /// Answers every connection on its own thread, so a handler may wait for
    /// another request to be answered first.
    pub fn start_concurrent(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> TestServer {
        let handler = Arc::new(handler);
        TestServer::listen(move |stream, tx, held| {
            let handler = handler.clone();
            std::thread::spawn(move || answer(stream, &*handler, &tx, &held));
        })
    }

    fn listen(
        mut on_connection: impl FnMut(TcpStream, Sender<String>, Held) + Send + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, requests) = mpsc::channel();
        let thread_stop = stop.clone();
        let thread = std::thread::spawn(move || {
            let held = Held::default();
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                on_connection(stream, tx.clone(), held.clone());
            }
        });
        TestServer {
            addr,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request received, within [`BOUND`].
    pub fn next_request(&self) -> String {
        self.requests
            .recv_timeout(BOUND)
            .expect("the server got no request")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Connections answered with [`Reply::Hang`], kept open until the server stops.
type Held = Arc<Mutex<Vec<TcpStream>>>;

/// Reads one request from the connection, reports it and answers it.
fn answer(
    mut stream: TcpStream,
    handler: &dyn Fn(&str) -> Reply,
    tx: &Sender<String>,
    held: &Held,
) {
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let reply = handler(&request);
    let _ = tx.send(request);
    match reply {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes);
            // The whole request was read, so closing sends a FIN, not a reset.
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        Reply::Write(write) => {
            write(&mut stream);
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        Reply::Hang => held.lock().unwrap().push(stream),
    }
}

/// Reads one request: the head, then a Content-Length body if any.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(BOUND)).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).to_string())
}

/// The binary with stdin closed.
fn windlass(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_windlass"));
    cmd.args(args).stdin(Stdio::null()).env_remove("RUST_LOG");
    cmd
}

/// Starts the binary with stdout and stderr captured; finish it with
/// [`wait_bounded`].
pub fn spawn(args: &[&str]) -> Child {
    windlass(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the binary to completion, failing the test if it takes longer than [`BOUND`].
pub fn run(args: &[&str]) -> Output {
    wait_bounded(spawn(args))
}

/// Waits for a child on a helper thread, so the wait itself is bounded.
pub fn wait_bounded(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(BOUND) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            signal(pid, Signal::SIGKILL);
            panic!("windlass did not finish within {BOUND:?}");
        }
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: Signal) {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), sig).expect("kill failed");
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    // A port freed after a bind can be handed to the next server another
    // test starts, which would then answer for the "dead" one. The local
    // port of a connected client socket has no listener (so connecting to it
    // is refused) and stays taken while the socket lives: keep it for the
    // whole test binary.
    static DEAD: std::sync::OnceLock<(TcpListener, std::net::TcpStream, std::net::TcpStream)> =
        std::sync::OnceLock::new();
    let (_, client, _) = DEAD.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        (listener, client, accepted)
    });
    client.local_addr().unwrap().port()
}

/// A fresh, empty directory under the target's temporary directory, removed
/// with everything in it when dropped (also when the test fails).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir(tempdir(name))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty directory under the target's temporary directory.
pub fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
