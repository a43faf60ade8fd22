//! `Expect: 100-continue`: the body waits for the server's verdict, goes on
//! `100 Continue` or after the wait, stays unsent when a final response comes
//! first, and a 417 is retried once without the expectation.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use windlass::{ErrorKind, Event, Phase};

const BODY: usize = 64 * 1024;

fn body() -> Vec<u8> {
    (0..BODY).map(|i| (i % 251) as u8).collect()
}

/// An agent that expects 100-continue for bodies of 1 KiB and more.
fn agent(wait: Duration) -> windlass::Agent {
    common::builder()
        .expect_continue(wait)
        .expect_continue_threshold(1024)
        .build()
        .unwrap()
}

#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<String>>>);

impl windlass::Hook for Events {
    fn on_event(&self, _: &windlass::RequestInfo<'_>, event: &Event<'_>) {
        let name = match event {
            Event::ExpectContinueStart => "expect-start".to_string(),
            Event::ExpectContinueDone { continued, .. } => {
                format!("expect-done continued={continued}")
            }
            Event::WroteHeaders => "wrote-headers".to_string(),
            Event::WroteRequest => "wrote-request".to_string(),
            _ => return,
        };
        self.0.lock().unwrap().push(name);
    }
}

#[test]
fn body_goes_on_100_continue_without_waiting_out_the_timeout() {
    let server = Server::start(|conn| {
        let Some(head) = conn.read_request_head() else {
            return;
        };
        assert_eq!(head.header("expect"), Some("100-continue"));
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        let Some(got) = conn.read_exact_bytes(BODY) else {
            return;
        };
        conn.write(&common::ok(&got.len().to_string()));
    });
    let events = Events::default();
    let resp = agent(Duration::from_secs(30))
        .put(server.url("/upload"))
        .hook(events.clone())
        .send_bytes(body())
        .unwrap();
    let waited = resp.timings().expect_continue.unwrap();
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(resp.text().unwrap(), BODY.to_string());
    assert_eq!(
        *events.0.lock().unwrap(),
        [
            "wrote-headers",
            "expect-start",
            "expect-done continued=true",
            "wrote-request"
        ]
    );
}

#[test]
fn body_goes_after_the_wait_when_the_server_says_nothing() {
    let server = Server::serve(|req| common::Reply::keep(common::ok(&req.body.len().to_string())));
    let wait = Duration::from_millis(200);
    let resp = agent(wait)
        .put(server.url("/upload"))
        .send_bytes(body())
        .unwrap();
    assert!(resp.timings().expect_continue.unwrap() >= wait);
    assert_eq!(resp.text().unwrap(), BODY.to_string());
    assert_eq!(server.request().header("expect"), Some("100-continue"));
}

#[test]
fn a_final_response_first_leaves_a_sized_body_unsent_and_the_connection_closed() {
    let (end_tx, end) = std::sync::mpsc::channel();
    let end_tx = Mutex::new(end_tx);
    let server = Server::start(move |conn| {
        if conn.read_request_head().is_none() {
            return;
        }
        conn.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        // The client must not send the body: it closes instead.
        let got = conn.read_some();
        let _ = end_tx.lock().unwrap().send(got);
    });
    let agent = agent(Duration::from_secs(30));
    let resp = agent.put(server.url("/upload")).send_bytes(body()).unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.timings().attempts, 1);
    assert!(resp.timings().first_byte.is_some());
    drop(resp);
    assert_eq!(
        end.recv_timeout(common::IO_TIMEOUT).unwrap(),
        0,
        "body bytes were sent"
    );
}

#[test]
fn a_final_response_first_ends_a_chunked_body_empty_and_keeps_the_connection() {
    let server = Server::start(|conn| {
        if conn.read_request_head().is_none() {
            return;
        }
        conn.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        // An empty chunked body, then the next request on this connection.
        assert_eq!(conn.read_exact_bytes(5).as_deref(), Some(&b"0\r\n\r\n"[..]));
        if conn.read_request().is_some() {
            conn.write(&common::ok("second"));
        }
        let _ = conn.wait_for_close();
    });
    let agent = agent(Duration::from_secs(30));
    let reader = std::io::Cursor::new(body());
    let resp = agent
        .put(server.url("/upload"))
        .send_reader(reader)
        .unwrap();
    assert_eq!(resp.status(), 401);
    drop(resp);
    let resp = agent.get(server.url("/again")).call().unwrap();
    assert_eq!(resp.text().unwrap(), "second");
    assert_eq!(server.accepted(), 1);
}

#[test]
fn expectation_failed_is_retried_once_without_the_expectation() {
    let server = Server::start(|conn| {
        let Some(head) = conn.read_request_head() else {
            return;
        };
        if head.header("expect").is_some() {
            conn.write(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
            let _ = conn.wait_for_close();
            return;
        }
        let Some(got) = conn.read_exact_bytes(BODY) else {
            return;
        };
        conn.write(&common::ok(&got.len().to_string()));
    });
    let resp = agent(Duration::from_secs(30))
        .post(server.url("/upload"))
        .send_reader_sized(std::io::Cursor::new(body()), BODY as u64)
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), BODY.to_string());
    let first = server.request();
    let second = server.request();
    assert_eq!(first.header("expect"), Some("100-continue"));
    assert_eq!(second.header("expect"), None);
    assert_eq!(server.accepted(), 2);
}

#[test]
fn the_overall_deadline_during_the_wait_names_the_expect_continue_phase() {
    let server = Server::start(|conn| {
        if conn.read_request_head().is_some() {
            let _ = conn.wait_for_close();
        }
    });
    let agent = common::builder()
        .timeout(Duration::from_millis(300))
        .expect_continue(Duration::from_secs(30))
        .expect_continue_threshold(1024)
        .build()
        .unwrap();
    let err = agent
        .put(server.url("/upload"))
        .send_bytes(body())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout(Phase::ExpectContinue));
}

#[test]
fn small_bodies_and_agents_without_the_setting_send_no_expectation() {
    let server = Server::serve(|_| common::Reply::keep(common::ok("ok")));
    agent(Duration::from_secs(1))
        .put(server.url("/small"))
        .send_bytes(&b"tiny"[..])
        .unwrap();
    assert_eq!(server.request().header("expect"), None);
    common::agent()
        .put(server.url("/big"))
        .send_bytes(body())
        .unwrap();
    assert_eq!(server.request().header("expect"), None);
}

#[test]
fn a_caller_set_expect_header_gets_the_same_handling() {
    let server = Server::start(|conn| {
        let Some(head) = conn.read_request_head() else {
            return;
        };
        assert_eq!(head.header_all("expect"), ["100-continue"]);
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        if let Some(got) = conn.read_exact_bytes(4) {
            conn.write(&common::ok(&String::from_utf8_lossy(&got)));
        }
    });
    let resp = common::agent()
        .put(server.url("/x"))
        .header("expect", "100-continue")
        .send_bytes(&b"tiny"[..])
        .unwrap();
    assert!(resp.timings().expect_continue.is_some());
    assert_eq!(resp.text().unwrap(), "tiny");
}
