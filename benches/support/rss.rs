//! Peak resident memory of one client, in a process of its own.
//!
//! The parent re-executes this bench binary with the scenario, the client
//! and where the server is in the environment; the child builds only that
//! client, runs the scenario's warm-up and one full round, and prints the
//! kernel's high-water mark of its resident set (`VmHWM` in
//! `/proc/self/status`). Every child is the same binary, so the figures
//! differ by what the client did, not by what was linked in.

use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "WINDLASS_BENCH_RSS";

/// Where the child finds the server of its scenario.
pub struct ChildSite {
    pub url: String,
    pub addr: SocketAddr,
    pub path: String,
    pub body_len: usize,
    pub ca_pem: Option<String>,
}

/// If this process is an RSS child: (scenario id, client, site).
pub fn child_request() -> Option<(String, String, ChildSite)> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    // The CA's PEM comes last: it has line breaks of its own.
    let mut it = spec.splitn(7, '\n');
    let mut next = || it.next().unwrap_or_default().to_string();
    let (id, client, url, addr, path, len) = (next(), next(), next(), next(), next(), next());
    let pem = next();
    let site = ChildSite {
        url,
        addr: addr.parse().expect("address from the parent"),
        path,
        body_len: len.parse().expect("body length from the parent"),
        ca_pem: (!pem.is_empty()).then_some(pem),
    };
    Some((id, client, site))
}

/// The peak resident set of this process so far, in KiB.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// What a child prints on success: the peak, then for the curious the
/// current anonymous and file-backed parts and the thread count.
pub fn report(kib: u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_string(), |v| {
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            })
    };
    println!(
        "VmHWM {kib} (now: RssAnon {}, RssFile {}, Threads {})",
        field("RssAnon:"),
        field("RssFile:"),
        field("Threads:")
    );
}

/// A child's resident memory, KiB.
#[derive(Clone, Copy)]
pub struct Rss {
    /// The peak (VmHWM).
    pub peak: u64,
    /// Anonymous (heap, stacks) and file-backed (the binary's code pages,
    /// mapped in 64 KiB runs around each fault) resident at the end.
    pub anon: u64,
    pub file: u64,
}

/// Runs `client` on scenario `id` in a child and returns its resident memory.
pub fn measure(id: &str, client: &str, site: &ChildSite, quick: bool) -> Result<Rss, String> {
    let spec = [
        id,
        client,
        &site.url,
        &site.addr.to_string(),
        &site.path,
        &site.body_len.to_string(),
        site.ca_pem.as_deref().unwrap_or(""),
    ]
    .join("\n");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("rss child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "VmHWM 4704 (now: RssAnon 296 kB, RssFile 4408 kB, Threads 2)"
    let parse = |line: &str| -> Option<Rss> {
        let words: Vec<&str> = line
            .split([' ', ',', '(', ')'])
            .filter(|w| !w.is_empty())
            .collect();
        let after = |name: &str| {
            words
                .iter()
                .position(|w| *w == name)
                .and_then(|i| words.get(i + 1)?.parse().ok())
        };
        Some(Rss {
            peak: after("VmHWM")?,
            anon: after("RssAnon")?,
            file: after("RssFile")?,
        })
    };
    let rss = stdout
        .lines()
        .find(|l| l.starts_with("VmHWM "))
        .and_then(parse);
    match rss {
        Some(rss) if out.status.success() => Ok(rss),
        _ => Err(format!(
            "rss child {}: {} {}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A child's failure, printed for the parent to relay.
pub fn fail(e: impl std::fmt::Display) -> ! {
    let _ = io::Write::flush(&mut io::stdout());
    eprintln!("{e}");
    std::process::exit(1);
}
