//! The `tracing` feature: one span per call with OpenTelemetry's HTTP client
//! field names, and the call's phases as events inside it.

#![cfg(feature = "tracing")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Server;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

type Fields = HashMap<String, String>;

/// Spans with their fields, and events with their span, as they happen.
#[derive(Default)]
struct Collected {
    spans: Vec<(String, Fields)>,
    events: Vec<(Option<u64>, Fields)>,
    current: Vec<u64>,
}

#[derive(Clone, Default)]
struct Collector {
    data: Arc<Mutex<Collected>>,
    next: Arc<AtomicU64>,
}

struct Fill<'a>(&'a mut Fields);

impl Visit for Fill<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut fields = Fields::new();
        span.record(&mut Fill(&mut fields));
        let mut data = self.data.lock().unwrap();
        data.spans
            .push((span.metadata().name().to_string(), fields));
        assert_eq!(data.spans.len() as u64, id);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut data = self.data.lock().unwrap();
        let fields = &mut data.spans[span.into_u64() as usize - 1].1;
        values.record(&mut Fill(fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Fill(&mut fields));
        let mut data = self.data.lock().unwrap();
        let parent = match event.parent() {
            Some(id) => Some(id.into_u64()),
            None if event.is_contextual() => data.current.last().copied(),
            None => None,
        };
        data.events.push((parent, fields));
    }
    fn enter(&self, span: &Id) {
        self.data.lock().unwrap().current.push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.data.lock().unwrap().current.pop();
    }
}

fn collect(f: impl FnOnce()) -> Collected {
    let collector = Collector::default();
    tracing::subscriber::with_default(collector.clone(), f);
    let data = std::mem::take(&mut *collector.data.lock().unwrap());
    data
}

#[test]
fn a_call_is_one_client_span_with_open_telemetry_field_names() {
    let server = Server::fixed(common::ok("hello"));
    let url = server
        .url("/items?page=2")
        .replace("http://", "http://user:secret@");
    let agent = common::agent();
    let data = collect(|| {
        let resp = agent.get(&url).call().unwrap();
        assert_eq!(resp.text().unwrap(), "hello");
    });
    let calls: Vec<&(String, Fields)> = data
        .spans
        .iter()
        .filter(|(name, _)| name == "http.client.request")
        .collect();
    assert_eq!(calls.len(), 1);
    let fields = &calls[0].1;
    let get = |k: &str| fields.get(k).map(String::as_str);
    assert_eq!(get("otel.name"), Some("GET"));
    assert_eq!(get("otel.kind"), Some("client"));
    assert_eq!(get("http.request.method"), Some("GET"));
    assert_eq!(get("server.address"), Some("127.0.0.1"));
    assert_eq!(get("server.port"), Some(server.port().to_string().as_str()));
    assert_eq!(get("http.response.status_code"), Some("200"));
    assert_eq!(get("error.type"), None);
    // The URL is the one sent: credentials moved to a header, none in the span.
    let full = get("url.full").unwrap();
    assert_eq!(full, server.url("/items?page=2"));
    assert!(!full.contains("secret"));

    let names: Vec<&str> = data
        .events
        .iter()
        .filter(|(parent, _)| *parent == Some(1))
        .filter_map(|(_, f)| f.get("event").map(String::as_str))
        .collect();
    for phase in [
        "dns_start",
        "connect_start",
        "got_connection",
        "wrote_request",
        "first_byte",
        "response_done",
        "connection_returned",
    ] {
        assert!(names.contains(&phase), "{phase} missing from {names:?}");
    }
}

#[test]
fn a_failed_call_records_its_error_type() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
            conn.close();
        }
    });
    let refused = Server::fixed("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = common::agent();
    let data = collect(|| {
        let resp = agent.get(refused.url("/")).call().unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        let resp = agent.get(server.url("/")).call().unwrap();
        assert!(resp.text().is_err());
        let err = agent
            .get(format!("http://127.0.0.1:{closed}/"))
            .call()
            .unwrap_err();
        assert_eq!(err.kind(), windlass::ErrorKind::Connect);
        // Refused before a call starts: no span.
        assert!(agent.get("http://exa mple/").call().is_err());
    });
    let spans: Vec<&Fields> = data.spans.iter().map(|(_, f)| f).collect();
    assert_eq!(spans.len(), 3);
    assert_eq!(
        spans[2].get("error.type").map(String::as_str),
        Some("connect")
    );
    assert_eq!(
        spans[2].get("otel.status_code").map(String::as_str),
        Some("ERROR")
    );
    assert_eq!(spans[2].get("http.response.status_code"), None);
    assert_eq!(spans[0].get("error.type").map(String::as_str), Some("503"));
    assert_eq!(
        spans[0].get("otel.status_code").map(String::as_str),
        Some("ERROR")
    );
    // The head arrived: the span says 200; the body's failure is an event.
    assert_eq!(
        spans[1]
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    let closed = data.events.iter().any(|(p, f)| {
        *p == Some(2) && f.get("event").map(String::as_str) == Some("connection_closed")
    });
    assert!(closed);
}
