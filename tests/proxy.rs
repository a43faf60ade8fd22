//! Proxies: what goes to the proxy and what goes to the origin. Every proxy
//! here is scripted on 127.0.0.1 and reports the heads it read.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use common::{Reply, Server, IO_TIMEOUT};
use windlass::Proxy;

/// A CONNECT proxy that reports each CONNECT head it reads and then relays
/// the tunnel to 127.0.0.1 at the requested port (never anywhere else).
struct ConnectProxy {
    addr: SocketAddr,
    heads: Receiver<String>,
}

impl ConnectProxy {
    fn start(tunnels: usize) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, heads) = mpsc::channel();
        thread::spawn(move || {
            for _ in 0..tunnels {
                let Ok((client, _)) = listener.accept() else {
                    return;
                };
                client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = String::new();
                for _ in 0..100 {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let port: u16 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|target| target.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .expect("CONNECT target with a port");
                let _ = tx.send(head);
                let origin = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut client_w = client;
                client_w
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                relay(reader, client_w, origin);
            }
        });
        ConnectProxy { addr, heads }
    }

    fn head(&self) -> String {
        self.heads
            .recv_timeout(IO_TIMEOUT)
            .expect("no CONNECT arrived")
    }
}

/// Copies both ways until either side closes or goes quiet for [`IO_TIMEOUT`].
fn relay(mut from_client: BufReader<TcpStream>, mut to_client: TcpStream, origin: TcpStream) {
    origin.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut to_origin = origin.try_clone().unwrap();
    let mut from_origin = origin;
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_origin);
        let _ = to_origin.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut from_origin, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = up.join();
}

#[cfg(feature = "tls")]
#[test]
fn a_caller_set_proxy_authorization_never_enters_the_tunnel() {
    let origin = Server::serve_tls(common::pki().valid.clone(), |_| {
        Reply::keep(common::ok("in"))
    });
    let proxy = ConnectProxy::start(1);
    let agent = common::builder()
        .proxy(Proxy::new(&format!("http://user:pass@{}", proxy.addr)).unwrap())
        .add_root_certificate(common::pki().ca_pem.as_bytes())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/secret", origin.port());
    let resp = agent
        .get(&url)
        .header("Proxy-Authorization", "Basic Y2FsbGVyOnNlY3JldA==")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "in");

    // The proxy URL's credentials go in the CONNECT, once.
    let connect = proxy.head();
    assert!(
        connect.starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", origin.port())),
        "{connect}"
    );
    assert_eq!(
        connect
            .matches("Proxy-Authorization: Basic dXNlcjpwYXNz\r\n")
            .count(),
        1,
        "{connect}"
    );
    assert!(!connect.contains("Y2FsbGVyOnNlY3JldA=="), "{connect}");
    // Nothing of the kind reaches the origin.
    let req = origin.request();
    assert_eq!(req.target, "/secret");
    assert_eq!(
        req.header("proxy-authorization"),
        None,
        "{}",
        req.head_str()
    );
}

#[test]
fn a_plain_request_through_a_proxy_carries_proxy_authorization_to_the_proxy() {
    // The "proxy" answers itself: what matters is the head it receives.
    let proxy = Server::fixed(common::ok("via proxy"));
    let agent = common::builder()
        .proxy(Proxy::new(&format!("http://{}", proxy.addr())).unwrap())
        .build()
        .unwrap();
    let resp = agent
        .get("http://origin.invalid:8080/page")
        .header("Proxy-Authorization", "Basic Y2FsbGVyOnNlY3JldA==")
        .call()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "via proxy");
    let req = proxy.request();
    assert_eq!(req.target, "http://origin.invalid:8080/page");
    assert_eq!(
        req.header_all("proxy-authorization"),
        ["Basic Y2FsbGVyOnNlY3JldA=="]
    );
}

#[test]
fn a_caller_set_proxy_authorization_is_not_sent_without_a_proxy() {
    let origin = Server::fixed(common::ok("direct"));
    common::agent()
        .get(origin.url("/"))
        .header("Proxy-Authorization", "Basic Y2FsbGVyOnNlY3JldA==")
        .call()
        .unwrap()
        .text()
        .unwrap();
    let req = origin.request();
    assert_eq!(
        req.header("proxy-authorization"),
        None,
        "{}",
        req.head_str()
    );
}
