//! windlass against ureq 3 and a raw floor, in one process, on loopback.
//!
//! `cargo bench --bench compare` runs against Debian's nginx when `nginx` is
//! installed (started by the bench on free loopback ports with a generated
//! configuration, static files and a certificate made at start; see
//! `support/nginx.rs`), and against embedded keep-alive servers otherwise
//! (plain, TLS with a CA generated at start, and one serving a large body,
//! whose responses are canned). `--server nginx` or `--server embedded`
//! chooses; `--quick` uses the embedded servers unless told otherwise.
//! Scenarios (d) and (f) build a new agent per request, with default
//! settings, as a one-shot program does; (b) and (b1)–(b64) share one agent
//! between 1 to 64 threads. Every scenario
//! runs its rounds interleaved — windlass, ureq, raw, then rotated — so a
//! slow moment of the machine hits all three alike, and each round yields a
//! paired ratio. The raw floor is one stream, a prebuilt request and a
//! hand-parsed `Content-Length` (over rustls directly for HTTPS; a new
//! connection, and for HTTPS a new rustls configuration, per request where
//! the clients make a new agent).
//!
//! After the timed rounds, each client runs each scenario once more in a
//! child process of its own, which reports its peak resident set (VmHWM).
//!
//! Prints a markdown table and the targets of the issue with PASS/MISS, and
//! writes `target/compare.json`. `--quick` (or `WINDLASS_BENCH_QUICK=1`)
//! runs tiny counts in seconds, as a smoke test whose timings mean nothing.
//! Positional arguments run only the scenarios named (`-- a d memory`). The
//! exit status reports errors only, never a missed target.

#[path = "support/alloc.rs"]
mod alloc;
#[path = "support/clients.rs"]
mod clients;
#[path = "support/memory.rs"]
mod memory;
#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/observer.rs"]
mod observer;
#[path = "support/raw.rs"]
mod raw;
#[path = "support/report.rs"]
mod report;
#[path = "support/rss.rs"]
mod rss;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use report::{ClientRow, MemoryRow, ScenarioResult, Target, CLIENTS};
use windlass_loopback::{Server, ServerConfig};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const MIB: usize = 1024 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Tls,
    Big,
}

#[derive(Clone, Copy)]
enum Metric {
    /// µs per request, from one thread.
    Latency,
    /// Requests per second over all threads.
    Throughput,
    /// MiB of body per second.
    Bandwidth,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::Latency => "µs/req",
            Metric::Throughput => "req/s",
            Metric::Bandwidth => "MiB/s",
        }
    }

    fn of(self, elapsed: Duration, requests: usize, bytes: u64) -> f64 {
        let secs = elapsed.as_secs_f64();
        match self {
            Metric::Latency => secs * 1e6 / requests as f64,
            Metric::Throughput => requests as f64 / secs,
            Metric::Bandwidth => bytes as f64 / MIB as f64 / secs,
        }
    }
}

/// How a client meets the server in a scenario.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// One agent for the whole run; connections kept alive.
    KeepAlive,
    /// A new agent with default settings per request, dropped after it, as
    /// a one-shot program makes; the raw floor opens a connection per
    /// request (and over TLS builds a new configuration for it).
    NewAgent,
}

struct Scenario {
    id: &'static str,
    title: String,
    server: Kind,
    threads: usize,
    /// Requests per thread per round.
    requests: usize,
    mode: Mode,
    metric: Metric,
}

/// The body of scenario (c), in MiB.
fn big_mib(quick: bool) -> usize {
    if quick {
        4
    } else {
        100
    }
}

/// The scenarios of the issue; `quick` shrinks every count.
#[rustfmt::skip]
fn scenarios(quick: bool) -> Vec<Scenario> {
    let n = |full: usize, small: usize| if quick { small } else { full };
    let (seq, par, fresh) = (n(20_000, 200), n(10_000, 100), n(2_000, 50));
    let (tls, tls_fresh) = (n(10_000, 100), n(1_000, 20));
    // One agent at 1, 4 (that is (b)), 16 and 64 threads: the same total.
    let total = n(20_000, 256);
    // One 100 MiB body takes some 30 ms; five per round steady the figure.
    let (big, bigs) = (big_mib(quick), n(5, 1));
    let sc = |id, title, server, threads, requests, mode, metric| Scenario {
        id, title, server, threads, requests, mode, metric,
    };
    use {Kind::*, Metric::*, Mode::*};
    let mut all = vec![
        // id, title, server, threads, requests per thread, mode, metric
        sc("a", format!("{seq} sequential GETs, 128 B, one agent"),          Plain, 1, seq,       KeepAlive, Latency),
        sc("b", format!("4 threads × {par} GETs, one shared agent"),         Plain, 4, par,       KeepAlive, Throughput),
        sc("c", format!("{bigs} × {big} MiB body into io::sink"),            Big,   1, bigs,      KeepAlive, Bandwidth),
        sc("d", format!("{fresh} GETs, new agent per request"),              Plain, 1, fresh,     NewAgent,  Latency),
        sc("e", format!("{tls} HTTPS sequential GETs"),                      Tls,   1, tls,       KeepAlive, Latency),
        sc("f", format!("{tls_fresh} HTTPS GETs, new agent per request"),    Tls,   1, tls_fresh, NewAgent,  Latency),
    ];
    for (id, threads) in [("b1", 1), ("b16", 16), ("b64", 64)] {
        let per = total / threads;
        all.push(sc(id, format!("{threads} threads × {per} GETs, one shared agent"), Plain, threads, per, KeepAlive, Throughput));
    }
    all
}

/// Where one kind of scenario finds its server.
struct Site {
    url: String,
    addr: SocketAddr,
    /// The path the raw floor asks for.
    path: String,
    body_len: usize,
    ca_pem: Option<String>,
}

struct Servers {
    plain: Server,
    tls: Server,
    big: Server,
}

/// The server every scenario talks to.
enum Backend {
    Embedded(Servers),
    Nginx(nginx::Nginx),
}

impl Backend {
    fn embedded(big_body: usize) -> io::Result<Backend> {
        Ok(Backend::Embedded(Servers {
            plain: Server::start(ServerConfig::default())?,
            tls: Server::start(ServerConfig {
                tls: true,
                ..ServerConfig::default()
            })?,
            big: Server::start(ServerConfig {
                body_size: big_body,
                ..ServerConfig::default()
            })?,
        }))
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "the embedded loopback server",
            Backend::Nginx(_) => "nginx",
        }
    }

    fn site(&self, kind: Kind, big_body: usize) -> Site {
        match self {
            Backend::Embedded(s) => {
                let server = match kind {
                    Kind::Plain => &s.plain,
                    Kind::Tls => &s.tls,
                    Kind::Big => &s.big,
                };
                Site {
                    url: server.url(),
                    addr: server.addr(),
                    path: "/".into(),
                    body_len: server.body().len(),
                    ca_pem: server.ca_pem(),
                }
            }
            Backend::Nginx(n) => {
                let (tls, path, body_len) = match kind {
                    Kind::Plain => (false, nginx::SMALL, 128),
                    Kind::Tls => (true, nginx::SMALL, 128),
                    Kind::Big => (false, nginx::BIG, big_body),
                };
                Site {
                    url: n.url(tls, path),
                    addr: if tls { n.tls } else { n.plain },
                    path: path.into(),
                    body_len,
                    ca_pem: tls.then(|| n.ca_pem.clone()),
                }
            }
        }
    }

    /// Connections the server of `kind` accepted so far, if it can say.
    fn accepted(&self, kind: Kind) -> Option<u64> {
        match self {
            Backend::Embedded(s) => Some(
                match kind {
                    Kind::Plain => &s.plain,
                    Kind::Tls => &s.tls,
                    Kind::Big => &s.big,
                }
                .accepted(),
            ),
            Backend::Nginx(n) => n.accepted(),
        }
    }
}

/// What the clients need for one scenario, built before any timing; with
/// `only`, just that client (in an RSS child).
struct Ctx<'a> {
    sc: &'a Scenario,
    site: &'a Site,
    windlass: Option<windlass::Agent>,
    ureq: Option<ureq::Agent>,
    /// The raw floor's prebuilt request.
    req: Vec<u8>,
    /// One floor connection per thread, kept across rounds.
    floors: Vec<Mutex<raw::Floor>>,
}

impl<'a> Ctx<'a> {
    fn new(sc: &'a Scenario, site: &'a Site, only: Option<&str>) -> Result<Ctx<'a>, String> {
        let wants = |client: &str| only.is_none_or(|o| o == client);
        let ca_pem = site.ca_pem.as_deref();
        let keep = sc.mode == Mode::KeepAlive;
        let idle = 64;
        let floor_tls = match (ca_pem, sc.mode) {
            (None, _) => raw::FloorTls::Off,
            (Some(pem), Mode::KeepAlive) => raw::FloorTls::Shared(raw::tls_config(pem)?),
            (Some(pem), Mode::NewAgent) => raw::FloorTls::PerConnection(pem.to_string()),
        };
        Ok(Ctx {
            sc,
            site,
            windlass: (keep && wants("windlass")).then(|| clients::windlass_agent(ca_pem, idle)),
            ureq: (keep && wants("ureq"))
                .then(|| clients::ureq_agent(ca_pem, idle))
                .transpose()?,
            req: raw::request(&site.addr.to_string(), &site.path),
            floors: if wants("raw") {
                (0..sc.threads)
                    .map(|_| Mutex::new(raw::Floor::new(site.addr, floor_tls.clone())))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }

    /// One round of `client`: every thread sends `per_thread` requests.
    /// Returns the wall-clock time and the process's CPU seconds.
    fn round(&self, client: &str, per_thread: usize) -> Result<(Duration, f64), String> {
        let cpu = cpu_seconds();
        let start = Instant::now();
        let bytes = if self.sc.threads == 1 {
            self.worker(client, 0, per_thread)?
        } else {
            thread::scope(|s| {
                let workers: Vec<_> = (0..self.sc.threads)
                    .map(|t| s.spawn(move || self.worker(client, t, per_thread)))
                    .collect();
                workers.into_iter().try_fold(0, |sum, w| {
                    let bytes = w.join().map_err(|_| "worker panicked".to_string())??;
                    Ok::<u64, String>(sum + bytes)
                })
            })?
        };
        let elapsed = start.elapsed();
        let cpu = cpu_seconds() - cpu;
        let expected = (self.sc.threads * per_thread) as u64 * self.site.body_len as u64;
        if bytes != expected {
            return Err(format!("read {bytes} body bytes, expected {expected}"));
        }
        Ok((elapsed, cpu))
    }

    /// Thread `t` of a round: `n` requests, bodies into `io::sink`.
    fn worker(&self, client: &str, t: usize, n: usize) -> Result<u64, String> {
        let (url, sink) = (&self.site.url, &mut io::sink());
        let ca_pem = self.site.ca_pem.as_deref();
        let missing = || format!("{client}: not built in this process");
        match (client, self.sc.mode) {
            ("windlass", Mode::KeepAlive) => {
                let agent = self.windlass.as_ref().ok_or_else(missing)?;
                (0..n).try_fold(0, |sum, _| {
                    Ok(sum + clients::windlass_get(agent, url, false, sink)?)
                })
            }
            ("windlass", Mode::NewAgent) => (0..n).try_fold(0, |sum, _| {
                Ok(sum + clients::windlass_one_shot(ca_pem, url, sink)?)
            }),
            ("ureq", Mode::KeepAlive) => {
                let agent = self.ureq.as_ref().ok_or_else(missing)?;
                (0..n).try_fold(0, |sum, _| {
                    Ok(sum + clients::ureq_get(agent, url, false, sink)?)
                })
            }
            ("ureq", Mode::NewAgent) => (0..n).try_fold(0, |sum, _| {
                Ok(sum + clients::ureq_one_shot(ca_pem, url, sink)?)
            }),
            _ => {
                let mut floor = self.floors.get(t).ok_or_else(missing)?.lock().unwrap();
                let close = self.sc.mode == Mode::NewAgent;
                (0..n).try_fold(0, |sum, _| {
                    let len = floor.get(&self.req, close, sink);
                    Ok(sum + len.map_err(|e| format!("raw: {e}"))?)
                })
            }
        }
    }

    /// The floor's TLS handshakes so far, over all threads.
    fn handshakes(&self) -> raw::Handshakes {
        self.floors
            .iter()
            .fold(raw::Handshakes::default(), |sum, f| {
                let h = f.lock().unwrap().handshakes;
                raw::Handshakes {
                    resumed: sum.resumed + h.resumed,
                    full: sum.full + h.full,
                }
            })
    }
}

/// User + system CPU seconds of this process so far, threads that ended
/// included (`/proc/self/stat`, in clock ticks of 10 ms: rounds of a second
/// or more read it to about 1%). Wall-clock time on a shared machine also
/// counts the time other work held the cores; CPU time per request does not.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 14th and 15th fields of the line, 12th and 13th here.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    match ticks[..] {
        [user, system] => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Warms each client up, then runs `rounds` interleaved rounds.
fn run(sc: &Scenario, backend: &Backend, site: &Site, rounds: usize) -> ScenarioResult {
    let mut rows: Vec<ClientRow> = CLIENTS
        .iter()
        .map(|&client| ClientRow {
            client,
            rounds: Vec::new(),
            conns: Vec::new(),
            cpu: Vec::new(),
            peak_rss_kib: None,
            anon_file_kib: None,
            error: None,
        })
        .collect();
    let mut note = None;
    match Ctx::new(sc, site, None) {
        Err(e) => rows.iter_mut().for_each(|r| r.error = Some(e.clone())),
        Ok(ctx) => {
            let warm = sc.requests.div_ceil(10);
            for row in rows.iter_mut() {
                row.error = ctx.round(row.client, warm).err();
            }
            for round in 0..rounds {
                eprint!("\r({}) round {}/{rounds} ", sc.id, round + 1);
                for k in 0..rows.len() {
                    let row = &mut rows[(round + k) % CLIENTS.len()];
                    if row.error.is_some() {
                        continue;
                    }
                    let accepted = backend.accepted(sc.server);
                    match ctx.round(row.client, sc.requests) {
                        Ok((elapsed, cpu)) => {
                            let requests = sc.threads * sc.requests;
                            let bytes = requests as u64 * site.body_len as u64;
                            row.rounds.push(sc.metric.of(elapsed, requests, bytes));
                            row.cpu.push(cpu * 1e6 / requests as f64);
                            if let (Some(a), Some(b)) = (accepted, backend.accepted(sc.server)) {
                                row.conns.push(b - a);
                            }
                        }
                        Err(e) => row.error = Some(e),
                    }
                }
            }
            eprintln!();
            let raw::Handshakes { resumed, full } = ctx.handshakes();
            if resumed + full > 0 {
                note = Some(format!(
                    "raw floor: {resumed} of {} TLS handshakes resumed",
                    resumed + full
                ));
            }
        }
    }
    ScenarioResult {
        id: sc.id,
        title: sc.title.clone(),
        unit: sc.metric.unit(),
        higher_is_better: !matches!(sc.metric, Metric::Latency),
        rows,
        note,
    }
}

/// Each client's peak RSS in scenario `sc`, each in a child process.
fn peak_rss(sc: &Scenario, site: &Site, quick: bool, result: &mut ScenarioResult) {
    let child_site = rss::ChildSite {
        url: site.url.clone(),
        addr: site.addr,
        path: site.path.clone(),
        body_len: site.body_len,
        ca_pem: site.ca_pem.clone(),
    };
    for row in result.rows.iter_mut().filter(|r| r.error.is_none()) {
        eprint!("\r({}) peak RSS of {}      ", sc.id, row.client);
        match rss::measure(sc.id, row.client, &child_site, quick) {
            Ok(rss) => {
                row.peak_rss_kib = Some(rss.peak);
                row.anon_file_kib = Some((rss.anon, rss.file));
            }
            Err(e) => row.error = Some(e),
        }
    }
    eprintln!();
}

/// The RSS child: one client, the scenario's warm-up and one round.
fn rss_child(id: &str, client: &str, site: rss::ChildSite, quick: bool) -> ! {
    let Some(sc) = scenarios(quick).into_iter().find(|s| s.id == id) else {
        rss::fail(format!("no scenario {id}"));
    };
    let site = Site {
        url: site.url,
        addr: site.addr,
        path: site.path,
        body_len: site.body_len,
        ca_pem: site.ca_pem,
    };
    let ctx = Ctx::new(&sc, &site, Some(client)).unwrap_or_else(|e| rss::fail(e));
    let warm = sc.requests.div_ceil(10);
    for n in [warm, sc.requests] {
        if let Err(e) = ctx.round(client, n) {
            rss::fail(e);
        }
    }
    match rss::vm_hwm_kib() {
        Some(kib) => rss::report(kib),
        None => rss::fail("no VmHWM in /proc/self/status"),
    }
    drop(ctx);
    std::process::exit(0)
}

/// Idle-connection memory of windlass and ureq, plain and TLS.
fn memory(n: usize) -> Vec<MemoryRow> {
    let mut rows = Vec::new();
    for tls in [false, true] {
        eprintln!("memory: {n} idle connections, tls={tls}");
        let server = memory::ChildServer::spawn(tls);
        for client in ["windlass", "ureq"] {
            let idle = match &server {
                Err(e) => Err(format!("child server: {e}")),
                Ok(s) if client == "windlass" => memory::windlass_idle(s, n),
                Ok(s) => memory::ureq_idle(s, n),
            };
            rows.push(MemoryRow {
                tls,
                client,
                requested: n,
                idle: idle.as_ref().ok().and_then(|i| i.idle),
                opened: idle.as_ref().map_or(0, |i| i.opened),
                heap_per_conn: idle.as_ref().map_or(f64::NAN, |i| i.heap_per_conn()),
                rss_per_conn: idle.as_ref().map_or(f64::NAN, |i| i.rss_per_conn()),
                error: idle.err(),
            });
        }
    }
    rows
}

/// The targets of the issue: every scenario at least level with ureq, a
/// new agent within 1.15× of the raw floor, an HTTPS new agent at most
/// 0.9× ureq, peak RSS at most ureq's; and the earlier ones that still apply.
fn targets(scenarios: &[ScenarioResult], memory: &[MemoryRow]) -> Vec<Target> {
    let find = |id: &str| scenarios.iter().find(|s| s.id == id);
    let ratio = |id: &str, vs: &str| find(id).and_then(|s| s.ratio("windlass", vs));
    let kib = |tls: bool| {
        memory
            .iter()
            .find(|m| m.tls == tls && m.client == "windlass" && m.error.is_none())
            .map(|m| m.heap_per_conn / 1024.0)
    };
    let t = |name: String, measured, at_most, limit, unit| Target {
        name,
        measured,
        limit,
        at_most,
        unit,
    };
    let mut out: Vec<Target> = scenarios
        .iter()
        .map(|s| {
            let what = if s.higher_is_better {
                s.unit
            } else {
                "time/req"
            };
            let name = format!("({}) {what} vs ureq", s.id);
            t(
                name,
                s.ratio("windlass", "ureq"),
                !s.higher_is_better,
                1.0,
                "×",
            )
        })
        .collect();
    if find("d").is_some() {
        out.push(t(
            "(d) new agent, time/req vs raw".into(),
            ratio("d", "raw"),
            true,
            1.15,
            "×",
        ));
    }
    if find("f").is_some() {
        out.push(t(
            "(f) HTTPS new agent, time/req vs ureq".into(),
            ratio("f", "ureq"),
            true,
            0.90,
            "×",
        ));
    }
    // Peak RSS: the worst scenario's windlass / ureq ratio.
    let rss = scenarios
        .iter()
        .filter_map(|s| Some(s.peak_rss("windlass")? / s.peak_rss("ureq")?))
        .fold(None, |worst: Option<f64>, r| {
            Some(worst.map_or(r, |w| w.max(r)))
        });
    if scenarios.iter().any(|s| s.peak_rss("windlass").is_some()) {
        out.push(t(
            "peak RSS vs ureq, worst scenario".into(),
            rss,
            true,
            1.0,
            "×",
        ));
        // The same without the binary's code pages, which depend on how
        // the code of each client lies in the one bench binary.
        let anon = |s: &ScenarioResult, c: &str| {
            let row = s.rows.iter().find(|r| r.client == c)?;
            row.anon_file_kib.map(|(a, _)| a as f64)
        };
        let worst = scenarios
            .iter()
            .filter_map(|s| Some(anon(s, "windlass")? / anon(s, "ureq")?))
            .fold(None, |w: Option<f64>, r| Some(w.map_or(r, |w| w.max(r))));
        out.push(t(
            "anonymous RSS at the end vs ureq, worst scenario (information)".into(),
            worst,
            true,
            1.0,
            "×",
        ));
    }
    for (id, vs, at_most, limit) in [
        ("a", "raw", true, 1.10),
        ("b", "raw", false, 0.85),
        ("c", "raw", false, 0.90),
        ("e", "ureq", true, 0.85),
    ] {
        if find(id).is_some() {
            let name = format!("({id}) vs {vs} (earlier target)");
            out.push(t(name, ratio(id, vs), at_most, limit, "×"));
        }
    }
    if !memory.is_empty() {
        out.push(t(
            "idle connection heap, plain".into(),
            kib(false),
            true,
            24.0,
            " KiB",
        ));
        out.push(t(
            "idle connection heap, TLS".into(),
            kib(true),
            true,
            64.0,
            " KiB",
        ));
    }
    out
}

fn json_path() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("compare.json")
}

/// The value of `--name value` or `--name=value`.
fn option(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&format!("{name}="))
            .map(str::to_string)
            .or_else(|| (a == name).then(|| args.get(i + 1).cloned()).flatten())
    })
}

fn main() {
    if memory::serve_if_child() {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("WINDLASS_BENCH_QUICK").is_ok_and(|v| v == "1");
    if let Some((id, client, site)) = rss::child_request() {
        rss_child(&id, &client, site, quick);
    }
    let rounds = option("--rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 2 } else { 9 });
    let big_body = big_mib(quick) * MIB;

    // Positional arguments pick scenarios by id ("a" … "f", "b1", "b16",
    // "b64", "memory", "observer").
    let server_arg = option("--server");
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| {
            !a.starts_with('-')
                && Some(a) != server_arg.as_ref()
                && Some(a) != option("--rounds").as_ref()
        })
        .collect();
    let wanted = |id: &str| picked.is_empty() || picked.iter().any(|p| p == id);

    let load_start = report::load_average();
    let memory = if wanted("memory") {
        memory(if quick { 20 } else { 400 })
    } else {
        Vec::new()
    };

    let backend = match server_arg.as_deref() {
        Some("embedded") => None,
        Some("nginx") => Some(nginx::find().expect("--server nginx: nginx is not installed")),
        Some(other) => panic!("--server {other}: expected nginx or embedded"),
        None if quick => None,
        None => nginx::find(),
    }
    .map(|path| nginx::Nginx::start(&path, big_body).map(Backend::Nginx))
    .unwrap_or_else(|| Backend::embedded(big_body))
    .expect("the servers start");
    eprintln!("server: {}", backend.name());
    let results: Vec<ScenarioResult> = scenarios(quick)
        .iter()
        .filter(|sc| wanted(sc.id))
        .map(|sc| {
            let site = backend.site(sc.server, big_body);
            let mut result = run(sc, &backend, &site, rounds);
            peak_rss(sc, &site, quick, &mut result);
            result
        })
        .collect();
    // Positional "observer" (or a full run) measures the cost of a hook.
    let observer = if wanted("observer") {
        let requests = if quick { 200 } else { 20_000 };
        let url = backend.site(Kind::Plain, big_body).url;
        Some(observer::measure(&url, requests, rounds))
    } else {
        None
    };
    let server = backend.name();
    drop(backend);

    let targets = targets(&results, &memory);
    let run = report::Run {
        server,
        rounds,
        quick,
        load: [load_start, report::load_average()],
        scenarios: results,
        memory,
        targets,
    };
    print!("{}", report::markdown(&run));
    match &observer {
        Some(Ok(cost)) => print!("{}", observer::markdown(cost)),
        Some(Err(e)) => println!("\nobserver cost: error: {e}"),
        None => {}
    }
    let path = json_path();
    let json = report::json(&run);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, json));
    match written {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    let _ = io::stdout().flush();

    let failed = run
        .scenarios
        .iter()
        .flat_map(|s| &s.rows)
        .any(|r| r.error.is_some())
        || run.memory.iter().any(|m| m.error.is_some())
        || matches!(observer, Some(Err(_)));
    if failed {
        std::process::exit(1);
    }
}
