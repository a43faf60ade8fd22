//! `windlass soak`: a long, wide, nasty run through one agent against chaos
//! servers on 127.0.0.1, checking at the end what must hold after any amount
//! of traffic:
//!
//! - every body reported as a success is exactly what the server sent;
//! - threads and descriptors return to where they were before the run;
//! - with the run over, every client socket the kernel still has open to the
//!   servers is an idle connection in the pool (`open == idle + active +
//!   connecting` with nothing active), and nothing is active or waiting;
//! - no host ever had more connections open than its limit (sampled);
//! - the resident set does not grow after warm-up (start, middle, end);
//! - cancels from other threads end calls quickly (p50, p99, max);
//! - the pool saturation gauge rises while the servers stall and falls after.
//!
//! It exits non-zero when one of these fails.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use windlass::{Agent, CancelToken, ErrorKind};
use windlass_loopback::chaos::{body_for, ChaosConfig, ChaosServer, Fault};

use crate::exit::{self, Failure};

mod cancel;
mod system;

use cancel::{canceller, Cancel};
use system::{client_sockets, fds, rss_kib, threads};

/// `windlass soak`.
#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Requests in all
    #[arg(
        short = 'n',
        long = "requests",
        value_name = "N",
        default_value_t = 1_000_000
    )]
    pub requests: u64,

    /// Worker threads sharing one agent
    #[arg(short = 'c', long = "threads", value_name = "T", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: u32,

    /// Chaos servers, one port each on 127.0.0.1
    #[arg(long = "hosts", value_name = "H", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub hosts: u32,

    /// Stop after this many seconds even if requests remain
    #[arg(short = 'd', long = "duration", value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Most connections per host
    #[arg(long = "max-conns-per-host", value_name = "N", default_value_t = 8)]
    pub max_conns_per_host: usize,

    /// How long a server stall lasts, in milliseconds
    #[arg(long = "stall-ms", value_name = "MS", default_value_t = 50)]
    pub stall_ms: u64,

    /// Serve HTTPS (abrupt TLS closes among the faults)
    #[arg(long = "tls")]
    pub tls: bool,

    /// Seed of every random choice, to repeat a run
    #[arg(long = "seed", value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Show debug logs
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim_end_matches('s').parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// The mix in normal times: mostly valid, every fault present.
fn normal_mix() -> Vec<(Fault, u32)> {
    let mut mix: Vec<(Fault, u32)> = Fault::ALL.iter().map(|f| (*f, 1)).collect();
    mix[0].1 = 86; // Fault::Valid
    mix
}

/// The mix of the servers in trouble: every answer stalls.
fn stalled_mix() -> Vec<(Fault, u32)> {
    vec![(Fault::StallBeforeHead, 4), (Fault::StallMidBody, 1)]
}

/// The run's three parts: before, during and after the stall.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Before,
    Stall,
    After,
}

/// A small xorshift per worker: cheap and repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What the workers saw.
#[derive(Default)]
struct Tally {
    outcomes: HashMap<String, u64>,
    corrupt: u64,
    cancel_latencies: Vec<Duration>,
}

impl Tally {
    fn count(&mut self, outcome: String) {
        *self.outcomes.entry(outcome).or_insert(0) += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (k, n) in other.outcomes {
            *self.outcomes.entry(k).or_insert(0) += n;
        }
        self.corrupt += other.corrupt;
        self.cancel_latencies.extend(other.cancel_latencies);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn kind_name(kind: ErrorKind) -> String {
    match kind {
        ErrorKind::Timeout(phase) => format!("timeout({phase:?})"),
        other => format!("{other:?}"),
    }
    .to_lowercase()
}

/// Shared by the workers.
struct Run {
    agent: Agent,
    addrs: Vec<String>,
    next: AtomicU64,
    total: u64,
    stop_at: Option<Instant>,
    stop: AtomicBool,
    body_size: usize,
    epoch: Instant,
}

impl Run {
    /// The next request number, or `None` when the run is over.
    fn take(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) || self.stop_at.is_some_and(|t| Instant::now() >= t) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.total).then_some(n)
    }
}

fn worker(run: &Run, seed: u64, cancels: &Sender<Cancel>) -> Tally {
    let mut rng = Rng(seed | 1);
    let mut tally = Tally::default();
    let mut buf = [0u8; 64];
    while let Some(n) = run.take() {
        let addr = &run.addrs[rng.below(run.addrs.len() as u64) as usize];
        let target = format!("/soak/{n}");
        let mut req = run.agent.get(format!("{addr}{target}"));
        let roll = rng.below(100);
        // 10%: a random deadline of 1 to 50 ms.
        if roll < 10 {
            req = req.timeout(Duration::from_millis(1 + rng.below(50)));
        }
        // 5%: cancelled from another thread 0 to 30 ms in.
        let fired = Arc::new(AtomicU64::new(0));
        if (10..15).contains(&roll) {
            let token = CancelToken::new();
            req = req.cancel_token(&token);
            let due = Instant::now() + Duration::from_millis(rng.below(30));
            let _ = cancels.send(Cancel {
                due,
                token,
                fired: Arc::clone(&fired),
            });
        }
        // 10%: the body is dropped after a few bytes.
        let drop_early = rng.below(10) == 0;
        let result = req.call().and_then(|response| {
            let status = response.status().as_u16();
            if drop_early {
                let mut body = response.into_body();
                let _ = body.read(&mut buf);
                return Ok((status, None));
            }
            response.bytes().map(|b| (status, Some(b)))
        });
        let fired_at = fired.load(Ordering::SeqCst);
        match result {
            Ok((200, Some(body))) => {
                if body == body_for(&target, run.body_size) {
                    tally.count("ok 200, body exact".into());
                } else {
                    tally.corrupt += 1;
                    tally.count("ok 200, BODY WRONG".into());
                }
            }
            Ok((status, Some(_))) => tally.count(format!("ok {status}")),
            Ok((status, None)) => tally.count(format!("ok {status}, body dropped early")),
            Err(e) => {
                if e.kind() == ErrorKind::Cancelled && fired_at > 0 {
                    let now = run.epoch.elapsed().as_nanos() as u64;
                    tally
                        .cancel_latencies
                        .push(Duration::from_nanos(now.saturating_sub(fired_at)));
                }
                tally.count(format!("error {}", kind_name(e.kind())));
            }
        }
    }
    tally
}

/// What the sampler saw, per part of the run.
#[derive(Default)]
struct Samples {
    peak_open: HashMap<String, usize>,
    /// Sum and count of the highest host saturation per sample, per part.
    saturation: HashMap<&'static str, (f64, u32)>,
    rss_mid: u64,
}

/// Run the soak; `Err` with exit code 1 when a check fails.
pub fn run(args: &SoakArgs, token: &CancelToken) -> Result<(), Failure> {
    let threads_before = threads();
    let fds_before = fds();
    let rss_start;
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let stall = Duration::from_millis(args.stall_ms);
    let (tally, samples, requests, final_stats, kernel_open, idle_end) = {
        let servers: Vec<ChaosServer> = (0..args.hosts)
            .map(|i| {
                ChaosServer::start(ChaosConfig {
                    mix: normal_mix(),
                    tls: args.tls,
                    stall,
                    seed: args.seed.wrapping_add(u64::from(i)),
                    ..ChaosConfig::default()
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|e| Failure::new(exit::OTHER, format!("cannot start a chaos server: {e}")))?;
        let ports: Vec<u16> = servers.iter().map(|s| s.addr().port()).collect();
        let mut builder = Agent::builder()
            .timeout(Duration::from_secs(5))
            .max_connections_per_host(args.max_conns_per_host)
            .max_idle_per_host(args.max_conns_per_host);
        let addrs: Vec<String> = if args.tls {
            for s in &servers {
                builder = builder.add_root_certificate(s.ca_pem().unwrap_or_default().as_bytes());
            }
            ports
                .iter()
                .map(|p| format!("https://localhost:{p}"))
                .collect()
        } else {
            ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect()
        };
        let agent = builder
            .build()
            .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
        rss_start = rss_kib();
        let run = Arc::new(Run {
            agent: agent.clone(),
            addrs,
            next: AtomicU64::new(0),
            total: args.requests,
            stop_at: args.duration.map(|d| started + d),
            stop: AtomicBool::new(false),
            body_size: ChaosConfig::default().body_size,
            epoch: started,
        });
        let (cancel_tx, cancel_rx) = std::sync::mpsc::channel();
        let canceller_thread = thread::spawn(move || canceller(&cancel_rx, started));
        let workers: Vec<_> = (0..args.threads)
            .map(|t| {
                let (run, tx) = (Arc::clone(&run), cancel_tx.clone());
                let seed = args.seed ^ (u64::from(t) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                thread::spawn(move || worker(&run, seed, &tx))
            })
            .collect();
        drop(cancel_tx);
        let samples = sample(&run, &servers, args, token, started);
        let mut tally = Tally::default();
        for w in workers {
            match w.join() {
                Ok(t) => tally.merge(t),
                Err(_) => failures.push("a worker thread panicked".into()),
            }
        }
        let _ = canceller_thread.join();
        let requests = run.next.load(Ordering::Relaxed).min(args.requests);
        drop(run);
        let final_stats = agent.pool_stats();
        let kernel_open = client_sockets(&ports);
        let idle_end = final_stats.idle();
        drop(agent);
        drop(servers);
        (tally, samples, requests, final_stats, kernel_open, idle_end)
    };
    let elapsed = started.elapsed();
    let rss_end = rss_kib();

    println!(
        "soak: {requests} requests, {} threads, {} hosts, in {:.1} s ({:.0}/s)",
        args.threads,
        args.hosts,
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!("outcomes:");
    let mut outcomes: Vec<_> = tally.outcomes.iter().collect();
    outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (what, n) in outcomes {
        println!("  {n:>10}  {what}");
    }
    println!(
        "bodies reported as success but not what the server sent: {}",
        tally.corrupt
    );
    if tally.corrupt > 0 {
        failures.push(format!(
            "{} corrupt or truncated bodies reported as success",
            tally.corrupt
        ));
    }

    // Pool at rest: nothing active, connecting or waiting, and every client
    // socket the kernel has open is an idle connection of the pool.
    let busy = (final_stats.active(), final_stats.waiting());
    let connecting: usize = final_stats.hosts().iter().map(|h| h.connecting).sum();
    println!(
        "pool at rest: idle {idle_end}, active {}, connecting {connecting}, waiting {}; \
         client sockets open in the kernel: {kernel_open}",
        busy.0, busy.1
    );
    if busy != (0, 0) || connecting != 0 || kernel_open != idle_end {
        failures.push(format!(
            "open != idle + active + connecting at rest: {kernel_open} sockets, \
             idle {idle_end}, active {}, connecting {connecting}, waiting {}",
            busy.0, busy.1
        ));
    }
    let peak = samples.peak_open.values().copied().max().unwrap_or(0);
    println!(
        "per-host peak open connections (sampled every 20 ms): {peak}, limit {}",
        args.max_conns_per_host
    );
    if peak > args.max_conns_per_host {
        failures.push(format!(
            "a host had {peak} connections open, over its limit"
        ));
    }

    // Threads and descriptors back to where they were (the reaper lingers a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_keep, never) = std::sync::mpsc::channel::<()>();
    let mut now = (threads(), fds());
    while now != (threads_before, fds_before) && Instant::now() < deadline {
        let _ = never.recv_timeout(Duration::from_millis(20));
        now = (threads(), fds());
    }
    println!(
        "threads {threads_before} -> {}, descriptors {fds_before} -> {}",
        now.0, now.1
    );
    if now != (threads_before, fds_before) {
        failures.push("threads or descriptors did not return to their baseline".into());
    }

    println!(
        "RSS: start {} KiB, middle {} KiB, end {} KiB",
        rss_start, samples.rss_mid, rss_end
    );
    // After warm-up (the middle) the RSS may move by allocator noise only.
    let allowed = (samples.rss_mid / 10).max(16 * 1024);
    if samples.rss_mid > 0 && rss_end > samples.rss_mid + allowed {
        failures.push(format!(
            "RSS grew after warm-up: {} KiB -> {rss_end} KiB",
            samples.rss_mid
        ));
    }

    let mut lat = tally.cancel_latencies;
    lat.sort();
    println!(
        "cancel latency ({} cancels that ended a call): p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    if percentile(&lat, 0.99) > Duration::from_millis(250) {
        failures.push("cancels took more than 250 ms at p99".into());
    }

    let mean = |part: &str| {
        samples
            .saturation
            .get(part)
            .map_or(0.0, |(sum, n)| sum / f64::from((*n).max(1)))
    };
    let (before, during, after) = (mean("before"), mean("stall"), mean("after"));
    println!(
        "pool saturation (highest host, mean of samples): before {before:.3}, \
         while stalling {during:.3}, after {after:.3}"
    );
    if samples.saturation.contains_key("stall") && !(during > before && during > after) {
        failures.push("the saturation gauge did not rise during the stall and fall after".into());
    }

    if token.is_cancelled() {
        return Err(Failure::silent(exit::CANCELLED));
    }
    if failures.is_empty() {
        println!("soak: all checks passed");
        Ok(())
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        Err(Failure::new(
            exit::OTHER,
            format!("soak: {} checks failed", failures.len()),
        ))
    }
}

/// Sample the pool every 20 ms until the workers are done; switch an eighth
/// of the servers to stalling for the middle fifth of the run and back.
fn sample(
    run: &Run,
    servers: &[ChaosServer],
    args: &SoakArgs,
    token: &CancelToken,
    started: Instant,
) -> Samples {
    let mut samples = Samples::default();
    let (_keep, never) = std::sync::mpsc::channel::<()>();
    let mut part = Part::Before;
    let progress = |run: &Run| -> f64 {
        let by_count = run.next.load(Ordering::Relaxed) as f64 / args.requests as f64;
        let by_time = args
            .duration
            .map_or(0.0, |d| started.elapsed().as_secs_f64() / d.as_secs_f64());
        by_count.max(by_time)
    };
    loop {
        if token.is_cancelled() {
            run.stop.store(true, Ordering::Relaxed);
        }
        let done = progress(run);
        if done >= 1.0 || run.stop.load(Ordering::Relaxed) {
            break;
        }
        let want = match done {
            d if d < 0.4 => Part::Before,
            d if d < 0.6 => Part::Stall,
            _ => Part::After,
        };
        if want != part {
            if part == Part::Before {
                samples.rss_mid = rss_kib();
            }
            // An eighth of the hosts stall (at least one): callers pile up
            // on them as they would behind a slow backend, while the rest
            // keep answering.
            let mix = if want == Part::Stall {
                stalled_mix()
            } else {
                normal_mix()
            };
            for s in &servers[..servers.len().div_ceil(8)] {
                s.set_mix(mix.clone());
            }
            part = want;
        }
        let stats = run.agent.pool_stats();
        let mut highest: f64 = 0.0;
        for h in stats.hosts() {
            let peak = samples.peak_open.entry(h.key().to_string()).or_insert(0);
            *peak = (*peak).max(h.open());
            highest = highest.max(h.saturation().unwrap_or(0.0));
        }
        let name = match part {
            Part::Before => "before",
            Part::Stall => "stall",
            Part::After => "after",
        };
        let entry = samples.saturation.entry(name).or_insert((0.0, 0));
        entry.0 += highest;
        entry.1 += 1;
        let _ = never.recv_timeout(Duration::from_millis(20));
    }
    if samples.rss_mid == 0 {
        samples.rss_mid = rss_kib();
    }
    samples
}
