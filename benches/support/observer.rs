//! The cost of watching: the same sequential GETs through an agent with no
//! hook and through one whose hook sees every event, rounds interleaved so
//! both meet the same machine. Metrics and the in-flight list are always on,
//! so "no hook" is windlass's ordinary hot path.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A hook that does the least a real one would: count.
struct Counter(Arc<AtomicU64>);

impl windlass::Hook for Counter {
    fn on_event(&self, _: &windlass::RequestInfo<'_>, _: &windlass::Event<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// µs per request of each round, without and with the hook.
pub struct ObserverCost {
    pub requests: usize,
    pub plain: Vec<f64>,
    pub hooked: Vec<f64>,
    pub events: u64,
}

fn round(agent: &windlass::Agent, url: &str, requests: usize) -> Result<f64, String> {
    let start = Instant::now();
    for _ in 0..requests {
        let mut body = agent
            .get(url)
            .call()
            .map_err(|e| format!("windlass: {e}"))?
            .into_body();
        io::copy(&mut body, &mut io::sink()).map_err(|e| format!("body: {e}"))?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / requests as f64)
}

/// Interleaved rounds against `url`.
pub fn measure(url: &str, requests: usize, rounds: usize) -> Result<ObserverCost, String> {
    let events = Arc::new(AtomicU64::new(0));
    let plain = windlass::Agent::new();
    let hooked = windlass::Agent::builder()
        .hook(Counter(Arc::clone(&events)))
        .build()
        .unwrap();
    round(&plain, url, requests.div_ceil(10))?;
    round(&hooked, url, requests.div_ceil(10))?;
    events.store(0, Ordering::Relaxed);
    let mut cost = ObserverCost {
        requests,
        plain: Vec::new(),
        hooked: Vec::new(),
        events: 0,
    };
    for r in 0..rounds {
        // Alternate which goes first.
        if r % 2 == 0 {
            cost.plain.push(round(&plain, url, requests)?);
            cost.hooked.push(round(&hooked, url, requests)?);
        } else {
            cost.hooked.push(round(&hooked, url, requests)?);
            cost.plain.push(round(&plain, url, requests)?);
        }
    }
    cost.events = events.load(Ordering::Relaxed);
    Ok(cost)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The section of the report.
pub fn markdown(cost: &ObserverCost) -> String {
    let paired: Vec<f64> = cost
        .hooked
        .iter()
        .zip(&cost.plain)
        .map(|(h, p)| h / p)
        .collect();
    let per_request = cost.events as f64 / (cost.requests * cost.hooked.len()) as f64;
    format!(
        "\n## Observer cost ({} sequential GETs per round, {} rounds)\n\n\
         | agent | median µs/req | paired ratio |\n|---|---:|---:|\n\
         | no hook (metrics and in-flight list only) | {:.1} | |\n\
         | hook counting every event ({per_request:.0} events/request) | {:.1} | {:.3}× |\n",
        cost.requests,
        cost.plain.len(),
        median(cost.plain.clone()),
        median(cost.hooked.clone()),
        median(paired),
    )
}
