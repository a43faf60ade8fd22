//! Trust: certificates added as PEM or DER, a self-signed certificate
//! trusted as itself (what `openssl req -x509` makes and curl accepts with
//! `--cacert`), and client certificates that cannot be used, each reported
//! by `build()` in words that say what is wrong.

#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{Reply, Server};
use windlass::{AgentBuilder, ErrorKind};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";

fn serve(config: Arc<rustls::ServerConfig>) -> Server {
    Server::serve_tls(config, |_| Reply::keep(OK))
}

fn trusting(server: &Server, cert: &[u8]) -> AgentBuilder {
    common::builder()
        .add_root_certificate(cert)
        .resolve("localhost", vec![server.addr()])
        .resolve("other.example", vec![server.addr()])
}

fn build_error(builder: AgentBuilder) -> String {
    let err = builder.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    err.to_string()
}

#[test]
fn a_self_signed_ca_certificate_added_as_a_root_is_accepted_from_the_server_it_names() {
    let (pem, _, config) = tls_support::self_signed_ca_as_leaf(&["localhost"], (2020, 2090));
    let server = serve(config);
    let agent = trusting(&server, pem.as_bytes()).build().unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn a_self_signed_certificate_trusted_as_itself_is_still_checked_for_the_name() {
    let (pem, _, config) = tls_support::self_signed_ca_as_leaf(&["localhost"], (2020, 2090));
    let server = serve(config);
    let agent = trusting(&server, pem.as_bytes()).build().unwrap();
    let url = format!("https://other.example:{}/", server.port());
    let err = agent.get(&url).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string().starts_with(
            "the server's certificate is not valid for other.example (it is for localhost)"
        ),
        "{err}"
    );
}

#[test]
fn an_expired_self_signed_certificate_trusted_as_itself_is_rejected() {
    let (pem, _, config) = tls_support::self_signed_ca_as_leaf(&["localhost"], (2000, 2001));
    let server = serve(config);
    let agent = trusting(&server, pem.as_bytes()).build().unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string()
            .starts_with("the server's certificate has expired"),
        "{err}"
    );
}

#[test]
fn a_self_signed_ca_certificate_that_was_not_added_is_rejected_in_plain_words() {
    let (_, _, config) = tls_support::self_signed_ca_as_leaf(&["localhost"], (2020, 2090));
    let server = serve(config);
    let agent = trusting(&server, tls_support::certs().ca_pem.as_bytes())
        .build()
        .unwrap();
    let err = agent.get(server.https_url("/")).call().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string().starts_with(
            "the server's certificate is not trusted: it is a CA certificate presented \
             as the server's own"
        ),
        "{err}"
    );
    assert!(err.to_string().contains("add_root_certificate"), "{err}");
}

#[test]
fn a_root_certificate_given_as_der_is_trusted() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    let der = tls_support::certs().ca_der.to_vec();
    let agent = trusting(&server, &der).build().unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn a_der_root_that_cannot_be_parsed_is_reported_by_build() {
    let message = build_error(common::builder().add_root_certificate(&[0x30, 0x03, 1, 2, 3]));
    assert!(
        message.starts_with("add_root_certificate: the certificate cannot be parsed"),
        "{message}"
    );
}

/// A scratch directory for files the `openssl` binary writes.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("windlass-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    match Command::new("openssl").current_dir(dir).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        // No openssl binary on this machine: the rcgen-made certificate
        // above covers the same shape.
        Err(_) => false,
    }
}

#[test]
fn a_certificate_made_by_openssl_req_x509_is_accepted_with_it_as_the_root() {
    let dir = scratch("req-x509");
    let made = openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
    );
    if !made {
        eprintln!("no openssl binary: skipped");
        return;
    }
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();
    let key = std::fs::read(dir.join("key.pem")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let server = serve(tls_support::server_from_pem(&cert, &key));
    let agent = trusting(&server, &cert).build().unwrap();
    let resp = agent.get(server.https_url("/")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
}

#[test]
fn an_encrypted_client_key_is_reported_as_encrypted() {
    let c = tls_support::certs();
    let pkcs8 = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let legacy = b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n";
    for key in [&pkcs8[..], &legacy[..]] {
        let message =
            build_error(common::builder().client_certificate(c.client_cert_pem.as_bytes(), key));
        assert!(
            message.starts_with("client_certificate: the private key is encrypted"),
            "{message}"
        );
    }
}

#[test]
fn a_key_encrypted_by_openssl_is_reported_as_encrypted() {
    let c = tls_support::certs();
    let dir = scratch("encrypted-key");
    std::fs::write(dir.join("plain.pem"), &c.client_key_pem).unwrap();
    let made = openssl(
        &dir,
        &[
            "pkey",
            "-in",
            "plain.pem",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "enc.pem",
        ],
    );
    if !made {
        eprintln!("no openssl binary: skipped");
        return;
    }
    let key = std::fs::read(dir.join("enc.pem")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let message =
        build_error(common::builder().client_certificate(c.client_cert_pem.as_bytes(), &key));
    assert!(
        message.starts_with("client_certificate: the private key is encrypted"),
        "{message}"
    );
}

#[test]
fn a_client_chain_in_the_wrong_order_is_reported_as_such() {
    let c = tls_support::certs();
    let wrong_order = format!("{}{}", c.ca_pem, c.client_cert_pem);
    let message = build_error(
        common::builder().client_certificate(wrong_order.as_bytes(), c.client_key_pem.as_bytes()),
    );
    assert!(
        message.starts_with("client_certificate: the chain is in the wrong order"),
        "{message}"
    );
    let right_order = format!("{}{}", c.client_cert_pem, c.ca_pem);
    common::builder()
        .client_certificate(right_order.as_bytes(), c.client_key_pem.as_bytes())
        .build()
        .unwrap();
}

#[test]
fn a_key_of_another_certificate_is_reported_as_not_belonging() {
    let c = tls_support::certs();
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let message = build_error(
        common::builder().client_certificate(c.client_cert_pem.as_bytes(), other.as_bytes()),
    );
    assert!(
        message
            .starts_with("client_certificate: the private key does not belong to the certificate"),
        "{message}"
    );
}

#[cfg(feature = "native-roots")]
#[test]
fn the_os_store_alone_or_with_webpki_still_trusts_added_roots() {
    let server = serve(tls_support::server(rustls::ALL_VERSIONS, None));
    for store in [windlass::RootStore::Native, windlass::RootStore::Both] {
        // The environment may name the OS bundle: read the store itself.
        let agent = common::builder()
            .ssl_cert_env(false)
            .root_store(store)
            .resolve("localhost", vec![server.addr()])
            .build()
            .unwrap();
        let err = agent.get(server.https_url("/")).call().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{store:?}: {err}");
        let agent = trusting(&server, tls_support::certs().ca_pem.as_bytes())
            .ssl_cert_env(false)
            .root_store(store)
            .build()
            .unwrap();
        let resp = agent.get(server.https_url("/")).call().unwrap();
        assert_eq!(resp.text().unwrap(), "secure", "{store:?}");
    }
}
