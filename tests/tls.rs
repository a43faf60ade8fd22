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

#[test]
fn invalid_root_pem_is_a_tls_error_at_the_first_request() {
    let server = https_server(&common::pki().valid);
    let agent = common::builder()
        .add_root_certificate(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .resolve("localhost", vec![server.addr()])
        .build()
        .unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
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
    assert_eq!((metrics.tls_full, metrics.tls_resumed), (1, 1));
}
