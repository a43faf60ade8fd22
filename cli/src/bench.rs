//! `windlass bench [URL]`: a load test through one shared agent.
//!
//! Worker threads share one [`windlass::Agent`], so the numbers describe the
//! pool as a real multi-threaded program would use it: how many connections
//! it opened and reused, how long callers waited for one, how fast requests
//! went. Without a URL the test runs against an embedded server on
//! 127.0.0.1, which needs no network and finishes in seconds.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use windlass::{CancelToken, ErrorKind};
use windlass_loopback::{Server, ServerConfig};

use crate::args::BenchArgs;
use crate::client::{self, Client};
use crate::exit::{self, Failure};
use crate::progress::{self, duration};

/// Requests when neither -n nor -d is given.
const DEFAULT_REQUESTS: u64 = 20_000;

/// Pool wait from which a request counts as having queued for a connection.
const QUEUED: Duration = Duration::from_millis(1);

/// What one worker saw.
#[derive(Default)]
struct Tally {
    /// Latency of each successful request (call to end of body), in µs.
    latencies_us: Vec<u32>,
    errors: HashMap<String, (ErrorKind, u64)>,
    statuses: HashMap<u16, u64>,
    body_bytes: u64,
    reused: u64,
    pool_wait_total: Duration,
    pool_wait_max: Duration,
    waited: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, (kind, n)) in other.errors {
            self.errors.entry(k).or_insert((kind, 0)).1 += n;
        }
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_insert(0) += n;
        }
        self.body_bytes += other.body_bytes;
        self.reused += other.reused;
        self.pool_wait_total += other.pool_wait_total;
        self.pool_wait_max = self.pool_wait_max.max(other.pool_wait_max);
        self.waited += other.waited;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().map(|(_, n)| n).sum()
    }
}

/// When the workers stop.
struct Plan {
    requests: Option<u64>,
    until: Option<Instant>,
}

pub fn run(args: &BenchArgs, token: &CancelToken) -> Result<(), Failure> {
    let (server, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let server = start_server(args)?;
            let url = server.url();
            (Some(server), url)
        }
    };

    let mut builder = client::builder(&args.client)?;
    if let Some(s) = &server {
        if let Some(pem) = s.ca_pem() {
            builder = builder.add_root_certificate(pem.as_bytes());
        }
        // The TLS URL names `localhost`; pin it to the server's address so
        // the test never depends on how this machine resolves it.
        builder = builder.resolve("localhost", vec![s.addr()]);
    }
    if let Some(n) = args.max_conns_per_host {
        builder = builder.max_connections_per_host(n);
    }
    if let Some(n) = args.max_idle_per_host {
        builder = builder.max_idle_per_host(n);
    }
    if let Some(t) = args.idle_timeout {
        builder = builder.idle_timeout(t);
    }
    let client = Client::new(builder.build()?, &args.client, token)?;

    let requests = match (args.requests, args.duration) {
        (None, None) => Some(DEFAULT_REQUESTS),
        (n, _) => n,
    };
    let method = args.method.to_ascii_uppercase();
    println!("windlass bench {method} {url}");
    if server.is_some() {
        let delay = if args.delay_ms > 0 {
            format!(", {} ms delay", args.delay_ms)
        } else {
            String::new()
        };
        let limit = args
            .max_requests_per_conn
            .map(|n| format!(", {n} requests per connection"))
            .unwrap_or_default();
        println!(
            "  embedded server: {} body{}{delay}{limit}",
            progress::bytes(args.body_size),
            if args.tls { ", TLS" } else { "" },
        );
    }
    println!(
        "  {} threads, {}",
        args.concurrency,
        match (requests, args.duration) {
            (Some(n), Some(d)) => format!("{n} requests or {}, whichever ends first", duration(d)),
            (Some(n), None) => format!("{n} requests"),
            (None, Some(d)) => format!("for {}", duration(d)),
            (None, None) => "no limit".to_string(),
        }
    );
    let _ = io::stdout().flush();

    let started = Instant::now();
    let plan = Plan {
        requests,
        until: args.duration.map(|d| started + d),
    };
    let tally = run_workers(&client, &method, &url, &plan, args.concurrency, token);
    let elapsed = started.elapsed();

    report(&tally, elapsed, &client);
    if let Some(s) = &server {
        println!(
            "  server        {} connections accepted, {} requests answered",
            s.accepted(),
            s.requests()
        );
    }
    if args.metrics {
        print_metrics(&client);
    }

    if token.is_cancelled() {
        return Err(Failure::new(
            exit::CANCELLED,
            "bench cancelled; partial results above",
        ));
    }
    // A run in which nothing succeeded failed; report its most common error.
    if tally.latencies_us.is_empty() {
        if let Some((kind, _)) = tally.errors.values().max_by_key(|(_, n)| *n) {
            return Err(Failure::new(
                exit::code_for(*kind),
                format!("every request failed ({kind})"),
            ));
        }
    }
    Ok(())
}

fn start_server(args: &BenchArgs) -> Result<Server, Failure> {
    let body_size = usize::try_from(args.body_size)
        .map_err(|_| Failure::usage("--body-size is too large for this machine"))?;
    Server::start(ServerConfig {
        body_size,
        delay: Duration::from_millis(args.delay_ms),
        tls: args.tls,
        max_requests_per_conn: args.max_requests_per_conn,
    })
    .map_err(|e| {
        Failure::new(
            exit::OTHER,
            format!("cannot start the embedded server: {e}"),
        )
    })
}

/// Runs the workers to the end of the plan; on a terminal, shows a live
/// request count meanwhile.
fn run_workers(
    client: &Client,
    method: &str,
    url: &str,
    plan: &Plan,
    concurrency: u32,
    token: &CancelToken,
) -> Tally {
    let next = AtomicU64::new(0);
    let completed = AtomicU64::new(0);
    let live = progress::stderr_is_terminal();
    let (done_tx, done_rx) = mpsc::channel::<Tally>();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            let done_tx = done_tx.clone();
            let (next, completed) = (&next, &completed);
            scope.spawn(move || {
                let tally = worker(client, method, url, plan, next, completed, token);
                let _ = done_tx.send(tally);
            });
        }
        drop(done_tx);
        let started = Instant::now();
        let mut total = Tally::default();
        let mut finished = 0;
        while finished < concurrency {
            match done_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(t) => {
                    total.merge(t);
                    finished += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if live {
                let n = completed.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                eprint!("\r  {n} requests, {:.0} req/s   ", n as f64 / secs);
            }
        }
        if live {
            eprint!("\r{}\r", " ".repeat(40));
        }
        total
    })
}

fn worker(
    client: &Client,
    method: &str,
    url: &str,
    plan: &Plan,
    next: &AtomicU64,
    completed: &AtomicU64,
    token: &CancelToken,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        if token.is_cancelled() {
            break;
        }
        if let Some(n) = plan.requests {
            if next.fetch_add(1, Ordering::Relaxed) >= n {
                break;
            }
        }
        if plan.until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let start = Instant::now();
        match one_request(client, method, url, &mut tally) {
            Ok(()) => {
                let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
                tally.latencies_us.push(us);
            }
            Err(err) => {
                if token.is_cancelled() {
                    break;
                }
                let kind = err.kind();
                tally.errors.entry(kind.to_string()).or_insert((kind, 0)).1 += 1;
            }
        }
        completed.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// One request with its body read to the end (which returns the connection).
fn one_request(
    client: &Client,
    method: &str,
    url: &str,
    tally: &mut Tally,
) -> Result<(), windlass::Error> {
    let resp = client.request(method, url).call()?;
    let t = resp.timings();
    if t.reused {
        tally.reused += 1;
    }
    if let Some(w) = t.pool_wait {
        tally.pool_wait_total += w;
        tally.pool_wait_max = tally.pool_wait_max.max(w);
        // The checkout itself (lock, liveness check) takes microseconds;
        // a millisecond or more means the caller queued for a connection.
        if w >= QUEUED {
            tally.waited += 1;
        }
    }
    *tally.statuses.entry(resp.status().as_u16()).or_insert(0) += 1;
    let mut body = resp.into_body();
    let n = io::copy(&mut body, &mut io::sink()).map_err(windlass::Error::from_io)?;
    tally.body_bytes += n;
    Ok(())
}

fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest value with at least p% of values at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Duration::from_micros(sorted[rank.clamp(1, sorted.len()) - 1] as u64)
}

fn report(tally: &Tally, elapsed: Duration, client: &Client) {
    let mut lat = tally.latencies_us.clone();
    lat.sort_unstable();
    let ok = lat.len() as u64;
    let errors = tally.error_count();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!();
    println!(
        "  requests      {ok} ok, {errors} errors in {}",
        duration(elapsed)
    );
    // Only answered requests count: a dead server fails fast, and its
    // refusals are not throughput.
    println!(
        "  throughput    {:.0} req/s, {} of body{}",
        ok as f64 / secs,
        progress::rate(tally.body_bytes, elapsed),
        if errors > 0 {
            " (failed requests not counted)"
        } else {
            ""
        }
    );
    if ok > 0 {
        println!(
            "  latency       p50 {}   p90 {}   p99 {}   max {}",
            duration(percentile(&lat, 50.0)),
            duration(percentile(&lat, 90.0)),
            duration(percentile(&lat, 99.0)),
            duration(Duration::from_micros(*lat.last().unwrap_or(&0) as u64)),
        );
    }
    let mut statuses: Vec<_> = tally.statuses.iter().collect();
    statuses.sort();
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    if !statuses.is_empty() {
        println!("  statuses      {}", statuses.join(", "));
    }

    let stats = client.agent.pool_stats();
    let (opened, reused) = (stats.opened(), stats.reused());
    let checkouts = (opened + reused).max(1);
    println!(
        "  connections   {opened} opened, {reused} reused ({:.2}% of requests on a pooled connection)",
        reused as f64 * 100.0 / checkouts as f64
    );
    println!(
        "  pool wait     mean {}, max {}; {} requests waited {} or more",
        duration(tally.pool_wait_total.div_f64(ok.max(1) as f64)),
        duration(tally.pool_wait_max),
        tally.waited,
        duration(QUEUED),
    );
    if errors == 0 {
        println!("  errors        none");
    } else {
        let mut errs: Vec<_> = tally.errors.iter().collect();
        errs.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
        let errs: Vec<String> = errs.iter().map(|(k, (_, n))| format!("{k}: {n}")).collect();
        println!("  errors        {}", errs.join(", "));
    }
}

fn print_metrics(client: &Client) {
    println!();
    print!("{}", client.agent.metrics().to_prometheus());
}

#[cfg(test)]
mod tests {
    use super::percentile;
    use std::time::Duration;

    #[test]
    fn percentiles_pick_from_the_sorted_latencies() {
        let lat: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&lat, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&lat, 90.0), Duration::from_micros(90));
        assert_eq!(percentile(&lat, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&lat, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
