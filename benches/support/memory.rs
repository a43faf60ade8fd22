//! Memory held per idle pooled connection.
//!
//! The server runs in a child process (this same binary, re-executed), so
//! its per-connection threads and buffers stay out of the client's heap and
//! resident set. The client opens `n` connections at once by holding `n`
//! responses unread, then reads them all, which leaves `n` connections idle
//! in its pool; the heap grown in between, over the connections it opened,
//! is the cost of one idle connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use windlass_loopback::{Server, ServerConfig};

use super::alloc;
use super::clients;

const CHILD_ENV: &str = "WINDLASS_BENCH_CHILD_SERVER";

/// If this process is the child server, serves until stdin closes and
/// returns true.
pub fn serve_if_child() -> bool {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let config = ServerConfig {
        tls: mode == "tls",
        ..ServerConfig::default()
    };
    let server = Server::start(config).expect("child server starts");
    let mut out = io::stdout().lock();
    writeln!(out, "{}", server.url()).unwrap();
    if let Some(pem) = server.ca_pem() {
        write!(out, "{}", pem.trim_end()).unwrap();
        writeln!(out).unwrap();
    }
    writeln!(out, "END").unwrap();
    out.flush().unwrap();
    drop(out);
    // The parent closes our stdin when it is done (or when it dies).
    let _ = io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0);
}

/// A loopback server in a child process.
pub struct ChildServer {
    child: Child,
    pub url: String,
    pub ca_pem: Option<String>,
}

impl ChildServer {
    pub fn spawn(tls: bool) -> io::Result<ChildServer> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, if tls { "tls" } else { "plain" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut next = || {
            lines
                .next()
                .unwrap_or_else(|| Err(io::ErrorKind::UnexpectedEof.into()))
        };
        let url = next()?;
        let mut pem = String::new();
        loop {
            let line = next()?;
            if line == "END" {
                break;
            }
            pem.push_str(&line);
            pem.push('\n');
        }
        Ok(ChildServer {
            child,
            url,
            ca_pem: (!pem.is_empty()).then_some(pem),
        })
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What `n` idle connections cost one client.
pub struct Idle {
    /// Connections idle in the pool at the end (as reported by the client,
    /// where it can say).
    pub idle: Option<usize>,
    /// Connections opened during the measurement.
    pub opened: usize,
    /// Net heap growth, bytes.
    pub heap: i64,
    /// VmRSS growth, bytes.
    pub rss: i64,
}

impl Idle {
    pub fn heap_per_conn(&self) -> f64 {
        self.heap as f64 / self.opened.max(1) as f64
    }
    pub fn rss_per_conn(&self) -> f64 {
        self.rss as f64 / self.opened.max(1) as f64
    }
}

/// Warms the client with two requests on one connection (TLS config, DNS
/// cache and other one-time state), then holds `n` responses at once and
/// reads them all. The first of the `n` reuses the warm connection.
fn measure<R>(
    n: usize,
    mut call: impl FnMut() -> Result<R, String>,
    mut finish: impl FnMut(R) -> Result<(), String>,
) -> Result<Idle, String> {
    for _ in 0..2 {
        let r = call()?;
        finish(r)?;
    }
    let mut held = Vec::with_capacity(n);
    let rss0 = alloc::vm_rss().unwrap_or(0);
    alloc::start();
    let result = (|| {
        for _ in 0..n {
            held.push(call()?);
        }
        for r in held.drain(..) {
            finish(r)?;
        }
        Ok::<(), String>(())
    })();
    let heap = alloc::stop();
    let rss = alloc::vm_rss().unwrap_or(0) - rss0;
    result?;
    Ok(Idle {
        idle: None,
        opened: n - 1,
        heap,
        rss,
    })
}

pub fn windlass_idle(server: &ChildServer, n: usize) -> Result<Idle, String> {
    let agent = clients::windlass_agent(server.ca_pem.as_deref(), n + 8);
    let url = server.url.as_str();
    let mut idle = measure(
        n,
        || clients::windlass_call(&agent, url, false),
        |resp| {
            let mut body = resp.into_body();
            io::copy(&mut body, &mut io::sink())
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?;
    idle.idle = Some(agent.pool_stats().hosts.iter().map(|h| h.idle).sum());
    Ok(idle)
}

pub fn ureq_idle(server: &ChildServer, n: usize) -> Result<Idle, String> {
    let agent = clients::ureq_agent(server.ca_pem.as_deref(), n + 8)?;
    let url = server.url.as_str();
    measure(
        n,
        || clients::ureq_call(&agent, url, false),
        |mut resp| {
            io::copy(&mut resp.body_mut().as_reader(), &mut io::sink())
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
}
