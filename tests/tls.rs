//! TLS: the certificate checks windlass makes, the one way to switch them
//! off, and connection reuse over TLS. Certificates are generated at test
//! time (see `common::pki`).

#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;

use common::{Reply, Server};
use rustls::{CertificateError, ServerConfig};
use windlass::{Agent, ErrorKind};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";

fn https_server(config: &Arc<ServerConfig>) -> Server {
    Server::serve_tls(config.clone(), |_| Reply::keep(OK))
}

/// An agent trusting the test CA, with `localhost` resolving to `server`.
fn trusting_agent(server: &Server) -> Agent {
    common::builder()
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap()
}

/// The rustls certificate error somewhere in the source chain of `err`.
fn certificate_error(err: &windlass::Error) -> Option<CertificateError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let found = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(cert)) = found {
            return Some(cert.clone());
        }
        next = e.source();
    }
    None
}

/// The request fails with a TLS error for `reason`, and not one byte of
/// HTTP reaches the server.
fn assert_rejected(mut server: Server, agent: Agent, reason: fn(&CertificateError) -> bool) {
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    let cause = certificate_error(&err).expect("a rustls certificate error as the source");
    assert!(reason(&cause), "rejected for another reason: {cause:?}");
    drop(agent);
    server.finish();
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.bytes_received(), 0);
    assert!(server.try_request().is_none());
}

#[test]
fn valid_chain_is_accepted() {
    let server = https_server(&common::pki().valid);
    let agent = trusting_agent(&server);
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.url().scheme(), "https");
    assert!(resp.timings().tls.is_some());
    assert_eq!(resp.text().unwrap(), "secure");
    let req = server.request();
    assert_eq!(req.request_line(), "GET / HTTP/1.1");
    assert_eq!(
        req.header_all("host"),
        [format!("localhost:{}", server.port())]
    );
}

#[test]
fn valid_chain_is_accepted_for_an_ip_address() {
    let server = https_server(&common::pki().valid);
    let agent = trusting_agent(&server);
    let url = format!("https://127.0.0.1:{}/", server.port());
    assert_eq!(agent.get(&url).call().unwrap().text().unwrap(), "secure");
}

#[test]
fn self_signed_certificate_is_rejected() {
    let server = https_server(&common::pki().self_signed);
    let agent = trusting_agent(&server);
    assert_rejected(server, agent, |e| {
        matches!(e, CertificateError::UnknownIssuer)
    });
}

#[test]
fn certificate_for_another_name_is_rejected() {
    let server = https_server(&common::pki().wrong_name);
    let agent = trusting_agent(&server);
    assert_rejected(server, agent, |e| {
        matches!(
            e,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    });
}

#[test]
fn expired_certificate_is_rejected() {
    let server = https_server(&common::pki().expired);
    let agent = trusting_agent(&server);
    assert_rejected(server, agent, |e| {
        matches!(
            e,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    });
}

#[test]
fn certificate_from_an_untrusted_ca_is_rejected() {
    // A valid chain, but the agent only trusts the public web roots.
    let server = https_server(&common::pki().valid);
    let agent = common::builder()
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    assert_rejected(server, agent, |e| {
        matches!(e, CertificateError::UnknownIssuer)
    });
}

// --- settings checked by build() ---------------------------------------------------

fn build_error(builder: windlass::AgentBuilder) -> windlass::Error {
    let err = builder
        .build()
        .expect_err("build() accepted a setting that cannot work");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    err
}

#[test]
fn a_root_pem_that_cannot_be_parsed_is_reported_by_build() {
    let err = build_error(common::builder().add_root_certificate(
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    ));
    assert!(
        err.to_string()
            .starts_with("add_root_certificate: the PEM cannot be parsed"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_root_pem_without_a_certificate_is_reported_by_build() {
    let err = build_error(common::builder().add_root_certificate(b"not a certificate"));
    assert!(
        err.to_string()
            .starts_with("add_root_certificate: no certificate found in the PEM"),
        "{err}"
    );
}

#[test]
fn a_root_pem_is_checked_even_with_verification_off() {
    build_error(
        common::builder()
            .danger_accept_invalid_certs(true)
            .add_root_certificate(b"not a certificate"),
    );
}

#[test]
fn only_added_roots_without_an_added_root_is_reported_by_build() {
    let err = build_error(common::builder().only_added_roots(true));
    assert!(err.to_string().starts_with("only_added_roots: "), "{err}");
}

#[test]
fn only_added_roots_trusts_the_added_ca() {
    let server = https_server(&common::pki().valid);
    let agent = common::builder()
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .only_added_roots(true)
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn a_client_certificate_that_cannot_be_used_is_reported_by_build() {
    let ca = common::pki().ca_pem.as_bytes();
    // No certificate in the chain.
    let err = build_error(common::builder().client_certificate(b"nothing", b"nothing"));
    assert!(
        err.to_string()
            .starts_with("client_certificate: no certificate found"),
        "{err}"
    );
    // A certificate, but no key.
    let err = build_error(common::builder().client_certificate(ca, b"nothing"));
    assert!(
        err.to_string()
            .starts_with("client_certificate: no private key found"),
        "{err}"
    );
    // A key that does not belong to the certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    let err =
        build_error(common::builder().client_certificate(ca, other.serialize_pem().as_bytes()));
    assert!(err.to_string().starts_with("client_certificate: "), "{err}");
}

// --- messages -----------------------------------------------------------------------

/// The request's error, after checking it reads as plain words: no rustls
/// Debug text, and no repetition of its source.
fn plain_tls_error(server: Server, agent: Agent) -> String {
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    let message = err.to_string();
    let source = std::error::Error::source(&err).expect("the rustls error as the source");
    assert!(
        source.is::<rustls::Error>(),
        "the source is the rustls error itself: {source:?}"
    );
    assert!(
        !message.contains(&source.to_string()),
        "the message repeats its source: {message}"
    );
    for debug in [
        "UnknownIssuer",
        "NotValidForName",
        "Expired",
        "InvalidCertificate",
        "{",
    ] {
        assert!(!message.contains(debug), "Debug text in {message}");
    }
    assert!(
        message.ends_with(&format!("({})", server.https_url("/"))),
        "{message}"
    );
    message
}

#[test]
fn an_untrusted_certificate_is_explained_in_plain_words() {
    let server = https_server(&common::pki().self_signed);
    let agent = trusting_agent(&server);
    let message = plain_tls_error(server, agent);
    assert!(
        message.starts_with(
            "the server's certificate is not trusted: signed by an unknown authority; \
             pass its CA with --cacert / add_root_certificate"
        ),
        "{message}"
    );
    assert!(message.contains("add_root_certificate"), "{message}");
}

#[test]
fn a_certificate_for_another_name_names_both_names() {
    let server = https_server(&common::pki().wrong_name);
    let agent = trusting_agent(&server);
    let message = plain_tls_error(server, agent);
    assert!(
        message.starts_with(
            "the server's certificate is not valid for localhost (it is for wrong.example)"
        ),
        "{message}"
    );
}

#[test]
fn an_expired_certificate_is_explained_in_plain_words() {
    let server = https_server(&common::pki().expired);
    let agent = trusting_agent(&server);
    let message = plain_tls_error(server, agent);
    assert!(
        message.starts_with("the server's certificate has expired"),
        "{message}"
    );
}

#[test]
fn https_to_a_plain_http_port_is_explained_in_plain_words() {
    // A plain-HTTP server answers the ClientHello with an HTTP error.
    let server = Server::start(|conn| {
        conn.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        conn.close();
    });
    let agent = common::agent();
    let url = format!("https://127.0.0.1:{}/", server.port());
    let err = agent.get(&url).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert_eq!(
        err.to_string(),
        format!("the server did not answer in TLS (is the port plain HTTP?) ({url})")
    );
}

#[test]
fn danger_accept_invalid_certs_accepts_a_self_signed_certificate() {
    let server = https_server(&common::pki().self_signed);
    let agent = common::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn danger_accept_invalid_certs_accepts_a_wrong_name_and_an_expired_certificate() {
    for config in [&common::pki().wrong_name, &common::pki().expired] {
        let server = https_server(config);
        let agent = common::builder()
            .danger_accept_invalid_certs(true)
            .resolve("localhost", vec![server.addr()])
            .build()
            .unwrap();
        let resp = agent.get(server.https_url("/")).call().unwrap();
        assert_eq!(resp.text().unwrap(), "secure");
    }
}

#[test]
fn connections_are_reused_over_tls() {
    let server = https_server(&common::pki().valid);
    let agent = trusting_agent(&server);
    for i in 0..5 {
        let resp = agent.get(server.https_url("/")).call().unwrap();
        assert_eq!(resp.timings().reused, i > 0);
        assert_eq!(resp.text().unwrap(), "secure");
    }
    assert_eq!(server.accepted(), 1);
}

#[test]
fn danger_accept_invalid_certs_is_scoped_to_its_agent() {
    // Switching verification off for one agent leaves every other agent
    // verifying.
    let server = https_server(&common::pki().self_signed);
    let lax = common::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    assert_eq!(
        lax.get(server.https_url("/"))
            .call()
            .unwrap()
            .text()
            .unwrap(),
        "secure"
    );
    let strict = trusting_agent(&server);
    let err = strict.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
}

#[test]
fn a_body_delimited_by_close_without_close_notify_is_an_error() {
    // A FIN without close_notify may be an attacker cutting the body short:
    // with no length to check against, it must not pass as complete.
    let server = Server::start_tls(common::pki().valid.clone(), |conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial body");
        }
        conn.close();
    });
    let agent = trusting_agent(&server);
    let resp = agent.get(server.https_url("/")).call().unwrap();
    let err = resp.text().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("close_notify"), "{err}");
}

#[test]
fn bytes_beyond_the_content_length_over_tls_prevent_reuse() {
    let server = Server::serve_tls(common::pki().valid.clone(), |_| {
        Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    });
    let agent = trusting_agent(&server);
    for _ in 0..2 {
        let text = agent
            .get(server.https_url("/"))
            .call()
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(text, "ok");
    }
    assert_eq!(
        server.accepted(),
        2,
        "the connection with stray bytes was not reused"
    );
}

#[test]
fn a_second_connection_resumes_the_tls_session() {
    let server = https_server(&common::pki().valid);
    // No idle connections kept: every request opens a new connection.
    let agent = common::builder()
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .resolve("localhost", vec![server.addr()])
        .max_idle_per_host(0)
        .build()
        .unwrap();
    let first = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(first.timings().tls_resumed, Some(false));
    first.text().unwrap();
    let second = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(second.timings().tls_resumed, Some(true));
    second.text().unwrap();
    let metrics = agent.metrics();
    assert_eq!((metrics.tls_full(), metrics.tls_resumed()), (1, 1));
}
