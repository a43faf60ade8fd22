//! Seeing what the client does: debug logs through env_logger, a hook that
//! prints every event, per-request timings, the in-flight table while a body
//! is held, the pool's stats and the Prometheus text.
//!
//! `RUST_LOG=windlass=debug cargo run --example observe [URL]`: without a URL,
//! a local demo server answers.

#[path = "support/demo_server.rs"]
mod demo_server;

struct PrintEvents;

impl windlass::Hook for PrintEvents {
    fn on_event(&self, request: &windlass::RequestInfo<'_>, event: &windlass::Event<'_>) {
        eprintln!("  event #{} {}: {event:?}", request.id, request.method);
    }
}

fn main() -> Result<(), windlass::Error> {
    env_logger::init();
    let base = std::env::args().nth(1).unwrap_or_else(demo_server::start);
    let agent = windlass::Agent::builder().hook(PrintEvents).build()?;

    for _ in 0..2 {
        let response = agent.get(&base).call()?;
        println!("timings:\n{}", response.timings());
        response.text()?;
    }

    let held = agent.get(format!("{base}/held")).call()?;
    println!("in flight while a body is held:\n{}", agent.in_flight());
    drop(held);
    println!(
        "in flight after the drop: {} requests",
        agent.in_flight().len()
    );

    println!("{}", agent.pool_stats());
    println!("{}", agent.metrics().to_prometheus());
    Ok(())
}
