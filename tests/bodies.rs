//! Request bodies: a sized reader, owned buffers; and a `Retry-After` given
//! as an HTTP date.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Reply, Server};
use windlass::ErrorKind;

#[test]
fn a_sized_reader_is_sent_with_its_content_length_and_no_chunking() {
    let server = Server::serve(|req| Reply::keep(common::ok(&req.body.len().to_string())));
    let data = vec![7u8; 100_000];
    let resp = common::agent()
        .put(server.url("/up"))
        .send_reader_sized(std::io::Cursor::new(data), 100_000)
        .unwrap();
    assert_eq!(resp.text().unwrap(), "100000");
    let req = server.request();
    assert_eq!(req.header("content-length"), Some("100000"));
    assert_eq!(req.header("transfer-encoding"), None);
    assert!(!req.chunked);
}

#[test]
fn a_sized_reader_that_ends_early_fails_the_request() {
    let server = Server::serve(|_| Reply::keep(common::ok("x")));
    let err = common::agent()
        .put(server.url("/up"))
        .send_reader_sized(std::io::Cursor::new(vec![1u8; 10]), 20)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("10 bytes short"), "{err}");
}

#[test]
fn a_sized_reader_sends_no_more_than_its_length() {
    let server = Server::serve(|req| Reply::keep(common::ok(&String::from_utf8_lossy(&req.body))));
    let resp = common::agent()
        .put(server.url("/up"))
        .send_reader_sized(std::io::Cursor::new(b"hello world".to_vec()), 5)
        .unwrap();
    assert_eq!(resp.text().unwrap(), "hello");
}

#[test]
fn send_bytes_takes_owned_and_borrowed_buffers() {
    let server = Server::serve(|req| Reply::keep(common::ok(&String::from_utf8_lossy(&req.body))));
    let agent = common::agent();
    let owned = b"owned".to_vec();
    let resp = agent.post(server.url("/")).send_bytes(owned).unwrap();
    assert_eq!(resp.text().unwrap(), "owned");
    let resp = agent.post(server.url("/")).send_bytes(b"array").unwrap();
    assert_eq!(resp.text().unwrap(), "array");
    let text = String::from("string");
    let resp = agent
        .post(server.url("/"))
        .send_bytes(text.into_bytes())
        .unwrap();
    assert_eq!(resp.text().unwrap(), "string");
    let slice: &[u8] = b"slice";
    let resp = agent.post(server.url("/")).send_bytes(slice).unwrap();
    assert_eq!(resp.text().unwrap(), "slice");
}

/// The IMF-fixdate `secs` after the epoch (weekday not checked by readers).
fn imf_fixdate(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (mut y, mut m, mut d) = (1970u64, 1usize, 1u64);
    for _ in 0..secs / 86_400 {
        d += 1;
        let len = match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if d > len {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
    let t = secs % 86_400;
    format!(
        "Thu, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        MONTHS[m - 1],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    // Two seconds from now, rounded up to a whole second.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = now.as_secs() + 2;
    let date = imf_fixdate(at);
    let server = Server::start(move |conn| {
        if conn.read_request().is_none() {
            return;
        }
        if conn.index == 0 {
            conn.write(
                format!("HTTP/1.1 503 Busy\r\nRetry-After: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        } else {
            conn.write(&common::ok("done"));
        }
    });
    let agent = common::builder()
        .timeout(Duration::from_secs(10))
        .retry(windlass::Retry::new(1).backoff(Duration::from_millis(1), Duration::from_secs(5)))
        .build()
        .unwrap();
    let resp = agent.get(server.url("/")).call().unwrap();
    let waited = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(resp.text().unwrap(), "done");
    // The retry waited for the date (1 ms of back-off would not reach it).
    assert!(
        waited.as_secs() >= at - 1,
        "retried at {waited:?}, before {at}"
    );
    assert!(waited >= now + Duration::from_millis(900));
}
