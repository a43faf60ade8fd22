//! windlass against ureq 3 and a raw floor, in one process, on loopback.
//!
//! `cargo bench --bench compare` starts embedded keep-alive servers (plain,
//! TLS with a CA generated at start, and one serving a large body) whose
//! responses are canned, so the client is what is measured. Every scenario
//! runs its rounds interleaved — windlass, ureq, raw, then rotated — so a
//! slow moment of the machine hits all three alike, and each round yields a
//! paired ratio. The raw floor is one stream, a prebuilt request and a
//! hand-parsed `Content-Length` (over rustls directly for HTTPS).
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
#[path = "support/observer.rs"]
mod observer;
#[path = "support/raw.rs"]
mod raw;
#[path = "support/report.rs"]
mod report;

use std::io::{self, Write};
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

struct Scenario {
    id: &'static str,
    title: String,
    server: Kind,
    threads: usize,
    /// Requests per thread per round.
    requests: usize,
    /// Send `Connection: close`: a new connection per request.
    close: bool,
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
    // One 100 MiB body takes some 30 ms; five per round steady the figure.
    let (big, bigs) = (big_mib(quick), n(5, 1));
    let sc = |id, title, server, threads, requests, close, metric| Scenario {
        id, title, server, threads, requests, close, metric,
    };
    use {Kind::*, Metric::*};
    vec![
        // id, title, server, threads, requests per thread, Connection: close, metric
        sc("a", format!("{seq} sequential GETs, 128 B, one agent"),          Plain, 1, seq,       false, Latency),
        sc("b", format!("4 threads × {par} GETs, one shared agent"),         Plain, 4, par,       false, Throughput),
        sc("c", format!("{bigs} × {big} MiB body into io::sink"),            Big,   1, bigs,      false, Bandwidth),
        sc("d", format!("{fresh} GETs, new connection each"),                Plain, 1, fresh,     true,  Latency),
        sc("e", format!("{tls} HTTPS sequential GETs"),                      Tls,   1, tls,       false, Latency),
        sc("f", format!("{tls_fresh} HTTPS GETs, new connection each"),      Tls,   1, tls_fresh, true,  Latency),
    ]
}

struct Servers {
    plain: Server,
    tls: Server,
    big: Server,
}

impl Servers {
    fn start(big_body: usize) -> io::Result<Servers> {
        Ok(Servers {
            plain: Server::start(ServerConfig::default())?,
            tls: Server::start(ServerConfig {
                tls: true,
                ..ServerConfig::default()
            })?,
            big: Server::start(ServerConfig {
                body_size: big_body,
                ..ServerConfig::default()
            })?,
        })
    }

    fn get(&self, kind: Kind) -> &Server {
        match kind {
            Kind::Plain => &self.plain,
            Kind::Tls => &self.tls,
            Kind::Big => &self.big,
        }
    }
}

/// What every client needs for one scenario, built before any timing.
struct Ctx<'a> {
    sc: &'a Scenario,
    url: String,
    body_len: u64,
    windlass: windlass::Agent,
    ureq: ureq::Agent,
    /// The raw floor's prebuilt request.
    req: Vec<u8>,
    /// One floor connection per thread, kept across rounds.
    floors: Vec<Mutex<raw::Floor>>,
}

impl<'a> Ctx<'a> {
    fn new(sc: &'a Scenario, server: &Server, body_len: usize) -> Result<Ctx<'a>, String> {
        let ca_pem = server.ca_pem();
        let idle = 64;
        let tls = ca_pem.as_deref().map(raw::tls_config).transpose()?;
        Ok(Ctx {
            sc,
            url: server.url(),
            body_len: body_len as u64,
            windlass: clients::windlass_agent(ca_pem.as_deref(), idle),
            ureq: clients::ureq_agent(ca_pem.as_deref(), idle)?,
            req: raw::request(&server.addr().to_string(), sc.close),
            floors: (0..sc.threads)
                .map(|_| Mutex::new(raw::Floor::new(server.addr(), tls.clone())))
                .collect(),
        })
    }

    /// One round of `client`: every thread sends `per_thread` requests.
    fn round(&self, client: &str, per_thread: usize) -> Result<Duration, String> {
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
        let expected = (self.sc.threads * per_thread) as u64 * self.body_len;
        if bytes != expected {
            return Err(format!("read {bytes} body bytes, expected {expected}"));
        }
        Ok(elapsed)
    }

    /// Thread `t` of a round: `n` requests, bodies into `io::sink`.
    fn worker(&self, client: &str, t: usize, n: usize) -> Result<u64, String> {
        let (url, close, sink) = (&self.url, self.sc.close, &mut io::sink());
        match client {
            "windlass" => (0..n).try_fold(0, |sum, _| {
                Ok(sum + clients::windlass_get(&self.windlass, url, close, sink)?)
            }),
            "ureq" => (0..n).try_fold(0, |sum, _| {
                Ok(sum + clients::ureq_get(&self.ureq, url, close, sink)?)
            }),
            _ => {
                let mut floor = self.floors[t].lock().unwrap();
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

/// Warms each client up, then runs `rounds` interleaved rounds.
fn run(sc: &Scenario, server: &Server, body_len: usize, rounds: usize) -> ScenarioResult {
    let mut rows: Vec<ClientRow> = CLIENTS
        .iter()
        .map(|&client| ClientRow {
            client,
            rounds: Vec::new(),
            conns: Vec::new(),
            error: None,
        })
        .collect();
    let mut note = None;
    match Ctx::new(sc, server, body_len) {
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
                    let accepted = server.accepted();
                    match ctx.round(row.client, sc.requests) {
                        Ok(elapsed) => {
                            let requests = sc.threads * sc.requests;
                            let bytes = requests as u64 * body_len as u64;
                            row.rounds.push(sc.metric.of(elapsed, requests, bytes));
                            row.conns.push(server.accepted() - accepted);
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

fn targets(scenarios: &[ScenarioResult], memory: &[MemoryRow]) -> Vec<Target> {
    let ratio = |id: &str, vs: &str| {
        scenarios
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.ratio("windlass", vs))
    };
    let kib = |tls: bool| {
        memory
            .iter()
            .find(|m| m.tls == tls && m.client == "windlass" && m.error.is_none())
            .map(|m| m.heap_per_conn / 1024.0)
    };
    let t = |name: &str, measured, at_most, limit, unit| Target {
        name: name.to_string(),
        measured,
        limit,
        at_most,
        unit,
    };
    vec![
        t("(a) time/req vs raw", ratio("a", "raw"), true, 1.10, "×"),
        t("(b) throughput vs raw", ratio("b", "raw"), false, 0.85, "×"),
        t("(c) MiB/s vs raw", ratio("c", "raw"), false, 0.90, "×"),
        t("(d) time/req vs raw", ratio("d", "raw"), true, 1.15, "×"),
        t("(e) time/req vs ureq", ratio("e", "ureq"), true, 0.85, "×"),
        t("(f) time/req vs ureq", ratio("f", "ureq"), true, 0.60, "×"),
        t(
            "idle connection heap, plain",
            kib(false),
            true,
            24.0,
            " KiB",
        ),
        t("idle connection heap, TLS", kib(true), true, 64.0, " KiB"),
    ]
}

fn json_path() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("compare.json")
}

fn main() {
    if memory::serve_if_child() {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("WINDLASS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let rounds = if quick { 2 } else { 9 };
    let big_body = big_mib(quick) * MIB;

    // Positional arguments pick scenarios by id ("a" … "f", "memory", "observer").
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |id: &str| picked.is_empty() || picked.iter().any(|p| p == id);

    let load_start = report::load_average();
    let memory = if wanted("memory") {
        memory(if quick { 20 } else { 400 })
    } else {
        Vec::new()
    };

    let servers = Servers::start(big_body).expect("loopback servers start");
    let results: Vec<ScenarioResult> = scenarios(quick)
        .iter()
        .filter(|sc| wanted(sc.id))
        .map(|sc| {
            let body = match sc.server {
                Kind::Big => big_body,
                _ => ServerConfig::default().body_size,
            };
            run(sc, servers.get(sc.server), body, rounds)
        })
        .collect();
    // Positional "observer" (or a full run) measures the cost of a hook.
    let observer = if wanted("observer") {
        let requests = if quick { 200 } else { 20_000 };
        Some(observer::measure(&servers.plain.url(), requests, rounds))
    } else {
        None
    };
    drop(servers);

    let targets = targets(&results, &memory);
    let run = report::Run {
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
