//! TLS errors that are what they say: a server that requires a client
//! certificate refuses a client without one with kind `Tls`, whether the
//! refusal comes in the handshake (TLS 1.2) or as an alert on the first
//! read after it (TLS 1.3), and such a refusal is never retried.

#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::time::Duration;

use common::{Reply, Server};
use windlass::{AgentBuilder, ErrorKind, Retry};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";

fn requiring_client_cert(version: &'static rustls::SupportedProtocolVersion) -> Server {
    Server::serve_tls(
        tls_support::server_requiring_client_cert(&[version]),
        |_| Reply::keep(OK),
    )
}

/// Trusting the test CA, retrying every retryable error three times.
fn retrying(server: &Server) -> AgentBuilder {
    common::builder()
        .add_root_certificate(tls_support::certs().ca_pem.as_bytes())
        .resolve("localhost", vec![server.addr()])
        .retry(Retry::new(3).backoff(Duration::from_millis(1), Duration::from_millis(1)))
}

fn refused_without_a_client_certificate(version: &'static rustls::SupportedProtocolVersion) {
    let mut server = requiring_client_cert(version);
    let agent = retrying(&server).build().unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    assert!(
        err.to_string()
            .starts_with("the server requires a client certificate: give one with"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("the rustls error as the source");
    assert!(source.is::<rustls::Error>(), "{source:?}");
    drop(agent);
    server.finish();
    assert_eq!(server.accepted(), 1, "a TLS refusal is not retried");
}

#[test]
fn a_tls13_server_refusing_the_missing_client_certificate_after_the_handshake_is_a_tls_error() {
    refused_without_a_client_certificate(&rustls::version::TLS13);
}

#[test]
fn a_tls12_server_refusing_the_missing_client_certificate_is_a_tls_error() {
    refused_without_a_client_certificate(&rustls::version::TLS12);
}

#[test]
fn a_client_certificate_the_server_trusts_is_accepted() {
    let c = tls_support::certs();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let server = requiring_client_cert(version);
        let chain = format!("{}{}", c.client_cert_pem, c.ca_pem);
        let agent = retrying(&server)
            .client_certificate(chain.as_bytes(), c.client_key_pem.as_bytes())
            .build()
            .unwrap();
        let resp = agent.get(server.https_url("/")).call().unwrap();
        assert_eq!(resp.text().unwrap(), "secure");
    }
}
