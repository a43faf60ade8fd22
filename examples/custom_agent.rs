//! An agent with explicit limits, used from several threads, a request
//! cancelled from another thread, and the pool's own account of itself.
//!
//! `cargo run --example custom_agent [URL]`: without a URL, a local demo server
//! answers. Set `RUST_LOG=windlass=debug` to watch connections open and return.

#[path = "support/demo_server.rs"]
mod demo_server;

use std::time::Duration;

fn main() -> Result<(), windlass::Error> {
    env_logger::init();
    let base = std::env::args().nth(1).unwrap_or_else(demo_server::start);
    let agent = windlass::Agent::builder()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .max_idle_per_host(8)
        .max_connections_per_host(4)
        .idle_timeout(Duration::from_secs(60))
        .retry(windlass::Retry::default())
        // Reports a setting that cannot work (a malformed host key, a bad
        // certificate) instead of failing later.
        .build()?;

    let workers: Vec<_> = (0..8)
        .map(|i| {
            let agent = agent.clone();
            let url = format!("{base}/item/{i}");
            std::thread::spawn(move || agent.get(&url).call()?.text())
        })
        .collect();
    for worker in workers {
        let text = worker.join().expect("worker thread")?;
        print!("{text}");
    }

    let token = windlass::CancelToken::new();
    token.cancel();
    let err = agent
        .get(&base)
        .cancel_token(&token)
        .call()
        .expect_err("a cancelled token stops the request");
    // Display says what went wrong and where; the cause, if any, is
    // `source()`: walk the chain to show everything.
    let mut report = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        report.push_str(&format!(": {c}"));
        cause = c.source();
    }
    println!("cancelled request: {report}");

    print!("{}", agent.pool_stats());
    Ok(())
}
