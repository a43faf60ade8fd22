//! Request signing as middleware: an HMAC-SHA256 over the method, the path
//! (with its query) and the SHA-256 of the body, sent as `x-signature` with
//! the key id. The middleware sees the call once, before redirects and
//! retries, so a retried request carries the same signature.
//!
//! `cargo run --example middleware_signing [URL]`: without a URL, a local
//! demo server answers.

#[path = "support/demo_server.rs"]
mod demo_server;

use ring::{digest, hmac};
use windlass::http::HeaderValue;
use windlass::middleware::{Middleware, Next, Request};
use windlass::{Error, Response};

struct Signer {
    key_id: String,
    key: hmac::Key,
}

impl Signer {
    fn new(key_id: &str, secret: &[u8]) -> Signer {
        Signer {
            key_id: key_id.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Middleware for Signer {
    fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response, Error> {
        // A streamed body cannot be hashed before it is sent: sign an
        // "UNSIGNED-PAYLOAD" marker instead, as S3's signature v4 does.
        let body_hash = match request.body() {
            Some(body) => hex(digest::digest(&digest::SHA256, body).as_ref()),
            None => "UNSIGNED-PAYLOAD".to_string(),
        };
        let url = request.url();
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let canonical = format!("{}\n{path}\n{body_hash}", request.method());
        let tag = hmac::sign(&self.key, canonical.as_bytes());
        let value = format!("keyid={},sig={}", self.key_id, hex(tag.as_ref()));
        let mut value = HeaderValue::from_str(&value).expect("hex is a valid header value");
        value.set_sensitive(true);
        request.headers_mut().insert("x-signature", value);
        next.run(request)
    }
}

/// The next layer: shows the header as the request leaves, for the demo.
fn show_header(request: Request, next: Next<'_>) -> Result<Response, Error> {
    if let Some(value) = request.headers().get("x-signature") {
        eprintln!("x-signature: {}", value.to_str().unwrap_or("?"));
    }
    next.run(request)
}

fn main() -> Result<(), Error> {
    let base = std::env::args().nth(1).unwrap_or_else(demo_server::start);
    let agent = windlass::Agent::builder()
        .middleware(Signer::new("key-1", b"not a real secret"))
        .middleware(show_header)
        .build()?;
    let text = agent
        .post(format!("{base}/orders?dry_run=1"))
        .send_string("{\"item\": 42}")?
        .text()?;
    print!("{text}");
    Ok(())
}
