//! POST a form, then a byte body, with a request header and an overall timeout.
//!
//! `cargo run --example post [URL]`: without a URL, a local demo server answers.

#[path = "support/demo_server.rs"]
mod demo_server;

use std::time::Duration;

fn main() -> Result<(), windlass::Error> {
    let base = std::env::args().nth(1).unwrap_or_else(demo_server::start);
    let form = windlass::post(&base)
        .header("x-request-id", "42")
        .timeout(Duration::from_secs(5))
        .send_form(&[("name", "windlass"), ("kind", "client")])?;
    println!("{}: {}", form.status(), form.text()?.trim_end());

    let bytes = windlass::post(&base)
        .header("content-type", "application/octet-stream")
        .send_bytes(&[0u8; 1024])?
        .error_for_status()?;
    println!("{}: {}", bytes.status(), bytes.text()?.trim_end());
    Ok(())
}
