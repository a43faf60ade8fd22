//! The cost of HTTPS setup: a new agent and its first HTTPS request
//! (root store, client config, TCP connect, full handshake, one GET), for
//! windlass against ureq, in one process, on loopback.
//!
//! `cargo bench --bench tls_setup` runs the embedded loopback server with
//! TLS and, interleaving the clients so that both see the same machine
//! load, for each iteration builds a new agent trusting the loopback CA
//! (`add_root_certificate`; ureq: `RootCerts::Specific`), makes one GET,
//! reads the 128-byte body and drops the agent. It also times windlass's
//! `build()` alone, and a new agent with default TLS settings (the CA given
//! through `SSL_CERT_FILE`), which shares the process-wide config and so
//! resumes sessions. Prints the median and mean per client and the ratio
//! against the target (windlass ≤ 0.9 × ureq). `--quick` (or
//! `WINDLASS_BENCH_QUICK=1`) runs 30 iterations instead of 500; `--ip`
//! requests `https://127.0.0.1:PORT/` instead of `https://localhost:PORT/`.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use windlass_loopback::{Server, ServerConfig};

fn windlass_once(url: &str, ca: &str) -> Duration {
    let started = Instant::now();
    let agent = windlass::Agent::builder()
        .add_root_certificate(ca.as_bytes())
        .build()
        .expect("windlass agent");
    let mut body = agent.get(url).call().expect("windlass GET").into_body();
    let mut sink = Vec::new();
    body.read_to_end(&mut sink).expect("windlass body");
    drop(body);
    drop(agent);
    started.elapsed()
}

/// A new agent with no TLS setting of its own: the CA comes through
/// `SSL_CERT_FILE`, so every such agent shares one config, sessions included.
fn windlass_default_once(url: &str) -> Duration {
    let started = Instant::now();
    let agent = windlass::Agent::new();
    let mut body = agent.get(url).call().expect("windlass GET").into_body();
    let mut sink = Vec::new();
    body.read_to_end(&mut sink).expect("windlass body");
    drop(body);
    drop(agent);
    started.elapsed()
}

fn windlass_build_only(ca: &str) -> Duration {
    let started = Instant::now();
    let agent = windlass::Agent::builder()
        .add_root_certificate(ca.as_bytes())
        .build()
        .expect("windlass agent");
    let elapsed = started.elapsed();
    drop(agent);
    elapsed
}

fn ureq_once(url: &str, ca: &str) -> Duration {
    let started = Instant::now();
    let cert = ureq::tls::Certificate::from_pem(ca.as_bytes()).expect("ureq CA");
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    let mut resp = agent.get(url).call().expect("ureq GET");
    let mut sink = Vec::new();
    resp.body_mut()
        .as_reader()
        .read_to_end(&mut sink)
        .expect("ureq body");
    drop(resp);
    drop(agent);
    started.elapsed()
}

struct Stats {
    median: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let total: Duration = samples.iter().sum();
    Stats {
        median: samples[samples.len() / 2],
        mean: total / samples.len() as u32,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("WINDLASS_BENCH_QUICK").is_some();
    let n = if quick { 30 } else { 500 };
    let server = Server::start(ServerConfig {
        tls: true,
        ..ServerConfig::default()
    })
    .expect("loopback server");
    // `--ip`: https://127.0.0.1:PORT/ (the certificate names it too), to
    // leave name resolution and the address race out of the measurement.
    let url = if std::env::args().any(|a| a == "--ip") {
        format!("https://127.0.0.1:{}/", server.addr().port())
    } else {
        server.url()
    };
    let ca = server.ca_pem().expect("loopback CA");

    // `--only windlass|ureq`: that client alone, n times, and nothing else:
    // for counting its instructions with `perf stat`, which a loaded
    // machine does not blur as it blurs wall time.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let client = args.get(i + 1).map(String::as_str);
        for _ in 0..n {
            match client {
                Some("windlass") => windlass_once(&url, &ca),
                Some("ureq") => ureq_once(&url, &ca),
                _ => panic!("--only windlass|ureq"),
            };
        }
        return;
    }

    // Warm up both (process-wide state, the server's threads, page cache).
    for _ in 0..10 {
        windlass_once(&url, &ca);
        ureq_once(&url, &ca);
    }
    let (mut w, mut u, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            w.push(windlass_once(&url, &ca));
            u.push(ureq_once(&url, &ca));
        } else {
            u.push(ureq_once(&url, &ca));
            w.push(windlass_once(&url, &ca));
        }
        b.push(windlass_build_only(&ca));
    }
    // Last, so that the rows above run in the environment as inherited.
    // For the default-settings row: the CA as the process's SSL_CERT_FILE.
    let ca_file =
        std::env::temp_dir().join(format!("windlass-tls-setup-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &ca).expect("CA file");
    std::env::set_var("SSL_CERT_FILE", &ca_file);
    std::env::remove_var("SSL_CERT_DIR");

    for _ in 0..n {
        d.push(windlass_default_once(&url));
    }
    let _ = std::fs::remove_file(&ca_file);
    let (w, u, b, d) = (stats(w), stats(u), stats(b), stats(d));
    println!("HTTPS setup: new agent + first GET of {url}, {n} iterations each, interleaved");
    println!(
        "  windlass          median {:7.1} µs   mean {:7.1} µs",
        us(w.median),
        us(w.mean)
    );
    println!(
        "  ureq              median {:7.1} µs   mean {:7.1} µs",
        us(u.median),
        us(u.mean)
    );
    println!(
        "  windlass build()  median {:7.1} µs   mean {:7.1} µs",
        us(b.median),
        us(b.mean)
    );
    println!(
        "  windlass, default TLS settings (CA via SSL_CERT_FILE; shared config, resumed sessions)\n                    median {:7.1} µs   mean {:7.1} µs",
        us(d.median),
        us(d.mean)
    );
    let ratio = w.median.as_secs_f64() / u.median.as_secs_f64();
    println!(
        "  windlass / ureq (median) {ratio:.2}×  target ≤ 0.90×  {}",
        if ratio <= 0.9 { "PASS" } else { "MISS" }
    );
}
