//! The proxy options and variables: curl's names, curl's behaviour.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{closed_port, ok, stderr, stdout, wait_bounded, TestServer};

/// The binary with the proxy variables cleared, then `env` set.
fn windlass(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_windlass"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    wait_bounded(cmd.spawn().unwrap())
}

#[test]
fn http_proxy_from_the_environment_is_used_and_noproxy_bypasses_it() {
    let proxy = TestServer::start(|_| ok(b"via proxy"));
    let env = [("http_proxy", proxy.url(""))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = windlass(&["http://origin.invalid/page"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "via proxy");
    assert!(proxy
        .next_request()
        .starts_with("GET http://origin.invalid/page HTTP/1.1\r\n"));

    // Direct, the name does not resolve: curl's exit code 6.
    let out = windlass(
        &["--noproxy", "origin.invalid", "http://origin.invalid/"],
        &env,
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
}

#[test]
fn a_proxy_without_a_scheme_is_an_http_proxy() {
    let proxy = TestServer::start(|_| ok(b"schemeless"));
    let addr = proxy.url("").trim_start_matches("http://").to_string();
    let out = windlass(&["-x", &addr, "http://origin.invalid/"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "schemeless");
}

#[test]
fn a_dead_proxy_is_named_as_the_proxy_in_the_error() {
    let port = closed_port();
    let out = windlass(
        &["-x", &format!("127.0.0.1:{port}"), "http://origin.invalid/"],
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot connect to proxy 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn socks5_hostname_lets_the_proxy_resolve_the_name() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let proxy = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).unwrap();
        s.write_all(&[5, 0]).unwrap();
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let mut name = vec![0u8; head[4] as usize + 2];
        s.read_exact(&mut name).unwrap();
        tx.send((head, name)).unwrap();
        s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        let mut req = [0u8; 1024];
        let _ = s.read(&mut req);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsocks")
            .unwrap();
    });
    let out = windlass(
        &[
            "--socks5-hostname",
            &addr.to_string(),
            "http://origin.invalid:81/",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "socks");
    let (head, name) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(head, [5, 1, 0, 3, 14]);
    assert_eq!(&name[..14], b"origin.invalid");
    assert_eq!(&name[14..], &81u16.to_be_bytes());
    proxy.join().unwrap();
}

#[test]
fn proxy_user_sends_basic_credentials_to_the_proxy() {
    let proxy = TestServer::start(|_| ok(b"authed"));
    let out = windlass(
        &[
            "-x",
            &proxy.url(""),
            "-U",
            "al:s3cret",
            "http://origin.invalid/",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let head = proxy.next_request();
    assert!(
        head.to_ascii_lowercase()
            .contains("proxy-authorization: basic yww6cznjcmv0\r\n"),
        "{head}"
    );
}
