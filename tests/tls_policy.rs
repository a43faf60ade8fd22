//! TLS policy: protocol versions, cipher suites, session resumption, SNI,
//! a config of the caller's own, and what `timings()` reports of the
//! handshake. Each test runs a rustls server that offers only what the test
//! gives it.

#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::sync::Arc;

use common::{Reply, Server};
use rustls::CipherSuite;
use windlass::{AgentBuilder, ErrorKind, TlsVersion};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";
const OK_CLOSE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure";

fn serve(config: Arc<rustls::ServerConfig>) -> Server {
    Server::serve_tls(config, |_| Reply::keep(OK))
}

/// A builder trusting the test CA, with `localhost` resolving to `server`.
fn trusting(server: &Server) -> AgentBuilder {
    common::builder()
        .add_root_certificate(tls_support::certs().ca_pem.as_bytes())
        .resolve("localhost", vec![server.addr()])
}

fn build_error(builder: AgentBuilder) -> windlass::Error {
    let err = builder.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    err
}

#[test]
fn timings_name_the_negotiated_version_and_suite() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    let agent = trusting(&server).build().unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    let t = resp.timings().clone();
    assert_eq!(t.tls_version, Some(TlsVersion::Tls13));
    assert_eq!(t.tls_cipher, Some("TLS_AES_256_GCM_SHA384"));
    assert_eq!(t.tls_resumed, Some(false));
    assert!(
        t.to_string().contains("TLSv1.3, TLS_AES_256_GCM_SHA384"),
        "{t}"
    );
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn a_tls12_only_server_is_reached_with_tls12() {
    let server = serve(tls_support::server(&[&rustls::version::TLS12], None));
    let agent = trusting(&server).build().unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.timings().tls_version, Some(TlsVersion::Tls12));
    assert_eq!(
        resp.timings().tls_cipher,
        Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
    );
}

#[test]
fn min_version_tls13_refuses_a_tls12_only_server() {
    let mut server = serve(tls_support::server(&[&rustls::version::TLS12], None));
    let agent = trusting(&server)
        .tls_min_version(TlsVersion::Tls13)
        .build()
        .unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string()
            .starts_with("the server does not speak an allowed TLS version"),
        "{err}"
    );
    server.finish();
    assert_eq!(server.accepted(), 1);
    assert!(server.try_request().is_none());
}

#[test]
fn max_version_tls12_is_what_a_tls13_server_gets() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    let agent = trusting(&server)
        .tls_max_version(TlsVersion::Tls12)
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.timings().tls_version, Some(TlsVersion::Tls12));
}

#[test]
fn max_version_tls12_refuses_a_tls13_only_server() {
    let server = serve(tls_support::server(&[&rustls::version::TLS13], None));
    let agent = trusting(&server)
        .tls_max_version(TlsVersion::Tls12)
        .build()
        .unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("TLS version"), "{err}");
}

#[test]
fn a_min_version_above_the_max_is_a_build_error() {
    let err = build_error(
        windlass::Agent::builder()
            .tls_min_version(TlsVersion::Tls13)
            .tls_max_version(TlsVersion::Tls12),
    );
    assert!(err.to_string().starts_with("tls_min_version: "), "{err}");
}

#[test]
fn the_allowed_suite_is_the_one_negotiated() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    let agent = trusting(&server)
        .cipher_suites(&["TLS_CHACHA20_POLY1305_SHA256"])
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(
        resp.timings().tls_cipher,
        Some("TLS_CHACHA20_POLY1305_SHA256")
    );
}

#[test]
fn openssl_suite_names_are_accepted_too() {
    let server = serve(tls_support::server(&[&rustls::version::TLS12], None));
    let agent = trusting(&server)
        .cipher_suites(&["ECDHE-ECDSA-CHACHA20-POLY1305"])
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(
        resp.timings().tls_cipher,
        Some("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")
    );
}

#[test]
fn no_suite_in_common_fails_in_plain_words() {
    let server = serve(tls_support::server(
        &[&rustls::version::TLS12],
        Some(&[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]),
    ));
    let agent = trusting(&server)
        .cipher_suites(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])
        .build()
        .unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string()
            .starts_with("the server refused the TLS handshake (no cipher suite"),
        "{err}"
    );
}

#[test]
fn an_unknown_suite_name_is_a_build_error() {
    let err = build_error(windlass::Agent::builder().cipher_suites(&["TLS_FAKE_SUITE"]));
    assert!(
        err.to_string()
            .starts_with("cipher_suites: unknown cipher suite \"TLS_FAKE_SUITE\""),
        "{err}"
    );
}

#[test]
fn tls13_suites_with_max_version_tls12_are_a_build_error() {
    let err = build_error(
        windlass::Agent::builder()
            .cipher_suites(&["TLS_AES_128_GCM_SHA256"])
            .tls_max_version(TlsVersion::Tls12),
    );
    assert!(err.to_string().starts_with("cipher_suites: "), "{err}");
}

/// Two requests, each on a new connection (the server closes after each).
fn two_handshakes(builder: AgentBuilder, server: &Server) -> (Option<bool>, Option<bool>) {
    let agent = builder.build().unwrap();
    let first = agent.get(server.https_url("/")).call().unwrap();
    let first_resumed = first.timings().tls_resumed;
    assert_eq!(first.text().unwrap(), "secure");
    let second = agent.get(server.https_url("/")).call().unwrap();
    assert!(!second.timings().reused);
    (first_resumed, second.timings().tls_resumed)
}

#[test]
fn sessions_resume_by_default_and_not_with_a_cache_of_zero() {
    let server = Server::serve_tls(tls_support::server(rustls::ALL_VERSIONS, None), |_| {
        Reply::close(OK_CLOSE)
    });
    assert_eq!(
        two_handshakes(trusting(&server), &server),
        (Some(false), Some(true))
    );
    assert_eq!(
        two_handshakes(trusting(&server).tls_session_cache(0), &server),
        (Some(false), Some(false))
    );
}

#[test]
fn sni_is_sent_by_default_and_not_when_turned_off() {
    let (config, log) = tls_support::server_logging_sni();
    let server = serve(config);
    trusting(&server)
        .build()
        .unwrap()
        .get(server.https_url("/"))
        .call()
        .unwrap();
    trusting(&server)
        .tls_sni(false)
        .build()
        .unwrap()
        .get(server.https_url("/"))
        .call()
        .unwrap();
    assert_eq!(
        *log.seen.lock().unwrap(),
        [Some("localhost".to_string()), None]
    );
}

fn own_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(tls_support::certs().ca_der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[test]
fn a_config_of_ones_own_is_used_as_it_is() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    let agent = common::builder()
        .tls_config(own_config(&[b"http/1.1"]))
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    // TLS 1.2: the version the config allows, not windlass's default.
    assert_eq!(resp.timings().tls_version, Some(TlsVersion::Tls12));
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn a_config_of_ones_own_cannot_be_combined_with_other_tls_settings() {
    let err = build_error(
        windlass::Agent::builder()
            .tls_config(own_config(&[]))
            .add_root_certificate(tls_support::certs().ca_pem.as_bytes()),
    );
    assert!(err.to_string().starts_with("tls_config: "), "{err}");
    assert!(err.to_string().contains("add_root_certificate"), "{err}");
}

#[test]
fn a_server_choosing_h2_through_ones_own_config_is_a_tls_error() {
    let mut server = serve(tls_support::server_with_alpn(b"h2"));
    let agent = common::builder()
        .tls_config(own_config(&[b"h2", b"http/1.1"]))
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("\"h2\""), "{err}");
    server.finish();
    assert_eq!(server.bytes_received(), 0);
}

#[cfg(feature = "aws-lc-rs")]
#[test]
fn the_aws_lc_rs_provider_completes_a_handshake() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    let agent = trusting(&server)
        .tls_provider(windlass::TlsProvider::AwsLcRs)
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.timings().tls_version, Some(TlsVersion::Tls13));
    assert_eq!(resp.text().unwrap(), "secure");
}
