//! W3C Trace Context propagation as middleware: every call gets a
//! `traceparent` header (version 00, the caller's trace id, a new span id
//! per call, sampled), unless the caller set one. A real program takes the
//! trace id from its tracing system (OpenTelemetry's current context);
//! here it comes from a thread-local the caller sets.
//!
//! `cargo run --example middleware_traceparent [URL]`: without a URL, a
//! local demo server answers.

#[path = "support/demo_server.rs"]
mod demo_server;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use windlass::middleware::{Next, Request};
use windlass::{Error, Response};

thread_local! {
    /// The current trace id (128 bits), as a tracing system would keep it.
    static TRACE_ID: Cell<u128> = const { Cell::new(0) };
}

/// A new, non-zero span id per call (unique within the process; a real
/// tracer would use random ids).
fn next_span_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

fn propagate(mut request: Request, next: Next<'_>) -> Result<Response, Error> {
    let trace_id = TRACE_ID.with(Cell::get);
    if trace_id != 0 && !request.headers().contains_key("traceparent") {
        let value = format!("00-{trace_id:032x}-{:016x}-01", next_span_id());
        request.headers_mut().insert(
            "traceparent",
            value.parse().expect("hex is a valid header value"),
        );
    }
    next.run(request)
}

/// The next layer: shows the header as the request leaves, for the demo.
fn show_header(request: Request, next: Next<'_>) -> Result<Response, Error> {
    if let Some(value) = request.headers().get("traceparent") {
        eprintln!("traceparent: {}", value.to_str().unwrap_or("?"));
    }
    next.run(request)
}

fn main() -> Result<(), Error> {
    let base = std::env::args().nth(1).unwrap_or_else(demo_server::start);
    let agent = windlass::Agent::builder()
        .middleware(propagate)
        .middleware(show_header)
        .build()?;
    TRACE_ID.with(|t| t.set(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736));
    for path in ["/a", "/b"] {
        let response = agent.get(format!("{base}{path}")).call()?;
        print!("{}", response.text()?);
    }
    Ok(())
}
