//! A GET with a query parameter through the shared default agent.
//!
//! `cargo run --example get [URL]`: without a URL, a local demo server answers.

#[path = "support/demo_server.rs"]
mod demo_server;

fn main() -> Result<(), windlass::Error> {
    let base = std::env::args().nth(1).unwrap_or_else(demo_server::start);
    for page in ["1", "2"] {
        let response = windlass::get(&base).query("page", page).call()?;
        let status = response.status();
        let reused = response.timings().reused;
        let text = response.text()?;
        println!(
            "{status} (connection reused: {reused}): {}",
            text.trim_end()
        );
    }
    Ok(())
}
