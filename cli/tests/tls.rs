//! The TLS options under curl's names, and TLS failures as one plain line
//! with exit code 35. The server is the embedded loopback server with its
//! throwaway certificate.

mod common;

use common::{run, stderr, TempDir};
use windlass_loopback::{Server, ServerConfig};

fn https_server() -> Server {
    Server::start(ServerConfig {
        tls: true,
        ..ServerConfig::default()
    })
    .unwrap()
}

/// The server's CA in a file, for --cacert.
fn ca_file(server: &Server, dir: &TempDir) -> String {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, server.ca_pem().unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn an_untrusted_certificate_exits_35_with_one_plain_line() {
    let server = https_server();
    let out = run(&[&server.url()]);
    assert_eq!(out.status.code(), Some(35), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the server's certificate is not trusted: signed by an unknown authority; pass its CA with --cacert"),
        "{err}"
    );
    assert_eq!(
        err.matches("UnknownIssuer").count(),
        1,
        "the cause once: {err}"
    );
}

#[test]
fn cacert_and_the_version_options_reach_the_server() {
    let server = https_server();
    let dir = TempDir::new("cli-tls-versions");
    let ca = ca_file(&server, &dir);
    for args in [
        vec!["--cacert", &ca],
        vec!["--cacert", &ca, "--tlsv1.3"],
        vec!["--cacert", &ca, "--tlsv1.2", "--tls-max", "1.2"],
        vec!["--cacert", &ca, "--tls-max", "default"],
        vec![
            "--cacert",
            &ca,
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "--tls-max",
            "1.2",
        ],
        vec![
            "--cacert",
            &ca,
            "--tls13-ciphers",
            "TLS_CHACHA20_POLY1305_SHA256",
        ],
        vec!["--cacert", &ca, "--no-sessionid", "--ca-native"],
    ] {
        let url = server.url();
        let mut all = args.clone();
        all.push(&url);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(out.stdout, server.body(), "{args:?}");
    }
}

#[test]
fn tls13_only_against_a_tls12_maximum_is_refused_before_connecting() {
    let server = https_server();
    let out = run(&["--tlsv1.3", "--tls-max", "1.2", &server.url()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tls_min_version: TLSv1.3 is above tls_max_version TLSv1.2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.accepted(), 0);
}

#[test]
fn an_unknown_cipher_name_is_a_usage_error() {
    let server = https_server();
    let out = run(&["--ciphers", "RC4-MD5", &server.url()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown cipher suite \"RC4-MD5\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tls_max_takes_only_versions_windlass_speaks() {
    let out = run(&["--tls-max", "1.1", "https://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1.2 is the lowest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn key_without_cert_is_a_usage_error() {
    let out = run(&["--key", "/nonexistent.pem", "https://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--key needs --cert"),
        "{}",
        stderr(&out)
    );
}
