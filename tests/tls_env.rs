//! `SSL_CERT_FILE` and `SSL_CERT_DIR` replace the root store, as for
//! OpenSSL and curl. One test in its own binary: it sets process-wide
//! environment variables, which no other test may see.

#![cfg(feature = "tls")]

mod common;
mod tls_support;

use common::{Reply, Server};
use windlass::ErrorKind;

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";

#[test]
fn ssl_cert_file_and_ssl_cert_dir_replace_the_root_store() {
    let server = Server::serve_tls(tls_support::server(rustls::ALL_VERSIONS, None), |_| {
        Reply::keep(OK)
    });
    let dir = std::env::temp_dir().join(format!("windlass-ssl-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &tls_support::certs().ca_pem).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    let get = |builder: windlass::AgentBuilder| {
        builder
            .resolve("localhost", vec![server.addr()])
            .build()
            .and_then(|agent| agent.get(server.https_url("/")).call())
    };

    // Nothing set: the webpki roots do not know the test CA. (The machine
    // running the tests may set them to its own bundle.)
    std::env::remove_var("SSL_CERT_FILE");
    std::env::remove_var("SSL_CERT_DIR");
    let err = get(common::builder()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");

    std::env::set_var("SSL_CERT_FILE", &ca_file);
    let resp = get(common::builder()).unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
    let err = get(common::builder().ssl_cert_env(false)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "ignored when asked: {err}");

    std::env::set_var("SSL_CERT_FILE", dir.join("missing.pem"));
    let err = get(common::builder()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(
        err.to_string().starts_with("SSL_CERT_FILE: cannot read"),
        "{err}"
    );
    std::env::remove_var("SSL_CERT_FILE");

    std::env::set_var("SSL_CERT_DIR", &dir);
    let resp = get(common::builder()).unwrap();
    assert_eq!(resp.text().unwrap(), "secure");
    std::env::remove_var("SSL_CERT_DIR");

    std::fs::remove_dir_all(&dir).unwrap();
}
