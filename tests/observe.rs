//! What windlass shows about itself: per-request timings, hook events in
//! order, Prometheus text that parses and agrees with the pool stats, the
//! in-flight table, and the warning about a body held too long.

mod common;

use std::collections::HashMap;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{ok, Server, IO_TIMEOUT};
use windlass::{Event, Hook, InFlightPhase, RequestInfo};

#[test]
fn timings_follow_the_phases_that_ran() {
    let server = Server::fixed(ok("hello"));
    let agent = common::agent();

    let first = agent.get(server.url("/")).call().unwrap();
    let t = first.timings().clone();
    first.text().unwrap();
    assert!(!t.reused);
    assert!(t.connect.is_some());
    assert_eq!(t.tls, None);
    assert_eq!(t.dns, None, "an IP literal needs no lookup");
    assert_eq!(t.remote_addr, Some(server.addr()));
    let written = t.request_written.unwrap();
    let first_byte = t.first_byte.unwrap();
    assert!(t.connect.unwrap() <= written);
    assert!(written <= first_byte);
    assert!(first_byte <= t.total);
    assert_eq!(t.attempts, 1);
    assert_eq!(t.redirects, 0);

    let second = agent.get(server.url("/")).call().unwrap();
    let t = second.timings().clone();
    second.text().unwrap();
    assert!(t.reused);
    assert_eq!(t.connect, None, "a reused connection has no connect time");
    assert_eq!(t.dns, None);
    assert_eq!(t.tls, None);
    assert!(t.idle_before_reuse.is_some());
    assert!(t.request_written.unwrap() <= t.first_byte.unwrap());
}

#[test]
fn errors_carry_the_timings_of_their_attempt() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.close();
    });
    let err = common::agent().get(server.url("/")).call().unwrap_err();
    let t = err.timings().expect("timings on an error after connecting");
    assert!(t.connect.is_some());
    assert!(t.request_written.is_some());
    assert_eq!(t.first_byte, None);
}

/// Records event names, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Hook for Recorder {
    fn on_event(&self, _request: &RequestInfo<'_>, event: &Event<'_>) {
        let name = format!("{event:?}");
        let name = name
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_string();
        self.0.lock().unwrap().push(name);
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[test]
fn hooks_fire_in_order_for_new_and_reused_connections() {
    let server = Server::fixed(ok("hello"));
    let recorder = Recorder::default();
    let agent = common::builder().hook(recorder.clone()).build().unwrap();

    // No pool wait events: the host is far from its limit, nothing waits.
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(
        recorder.take(),
        [
            "DnsStart",
            "DnsDone",
            "ConnectStart",
            "ConnectDone",
            "GotConnection",
            "RequestHead",
            "WroteHeaders",
            "WroteRequest",
            "ResponseHead",
            "FirstByte",
            "ResponseDone",
            "ConnectionReturned",
        ]
    );

    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert_eq!(
        recorder.take(),
        [
            "GotConnection",
            "RequestHead",
            "WroteHeaders",
            "WroteRequest",
            "ResponseHead",
            "FirstByte",
            "ResponseDone",
            "ConnectionReturned",
        ]
    );
}

#[test]
fn a_request_hook_sees_only_its_request_and_the_close_reason() {
    let server =
        Server::fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi");
    let agent = common::agent();
    let recorder = Recorder::default();
    agent
        .get(server.url("/"))
        .hook(recorder.clone())
        .call()
        .unwrap()
        .text()
        .unwrap();
    let events = recorder.take();
    assert_eq!(events.last().map(String::as_str), Some("ConnectionClosed"));
    agent.get(server.url("/")).call().unwrap().text().unwrap();
    assert!(recorder.take().is_empty());
}

/// One sample line of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A strict reader of the text exposition format: HELP and TYPE before the
/// samples of each family, well-formed label sets with escapes, numeric values.
fn parse_prometheus(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.split_once(' ').is_some(), "HELP without text: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unknown type in {line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {name}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                (name.to_string(), parse_labels(body))
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(&name)
            .to_string();
        assert!(
            types.contains_key(&family),
            "sample before its TYPE: {line}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (types, samples)
}

fn parse_labels(body: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    for _ in 0..64 {
        if chars.peek().is_none() {
            return labels;
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value must be quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name, value));
        match chars.next() {
            None => return labels,
            Some(',') => {}
            Some(c) => panic!("unexpected {c:?} after a label"),
        }
    }
    panic!("too many labels");
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .value
}

#[test]
fn prometheus_text_parses_and_agrees_with_pool_stats() {
    let server = Server::serve(|req| {
        if req.target == "/missing" {
            common::Reply::keep(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        } else {
            common::Reply::keep(ok("fine"))
        }
    });
    let agent = common::agent();
    for _ in 0..5 {
        agent.get(server.url("/")).call().unwrap().text().unwrap();
    }
    agent.get(server.url("/missing")).call().unwrap();
    let refused = common::refused_addr();
    let err = agent.get(format!("http://{refused}/")).call().unwrap_err();
    assert_eq!(err.kind(), windlass::ErrorKind::Connect);

    let metrics = agent.metrics();
    let (types, samples) = parse_prometheus(&metrics.to_prometheus());
    assert_eq!(types["windlass_requests_total"], "counter");
    assert_eq!(types["windlass_pool_idle"], "gauge");
    assert_eq!(types["windlass_request_duration_seconds"], "histogram");

    assert_eq!(
        value(
            &samples,
            "windlass_requests_total",
            &[("method", "GET"), ("status", "2xx")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &samples,
            "windlass_requests_total",
            &[("method", "GET"), ("status", "4xx")]
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "windlass_errors_total", &[("kind", "connect")]),
        1.0
    );

    let stats = agent.pool_stats();
    let key = server.pool_key();
    let host = stats.host(&key).expect("pool entry");
    assert_eq!(
        value(
            &samples,
            "windlass_connections_opened_total",
            &[("host", &key)]
        ),
        host.opened as f64
    );
    assert_eq!(
        value(
            &samples,
            "windlass_connections_reused_total",
            &[("host", &key)]
        ),
        host.reused as f64
    );
    assert_eq!(
        value(&samples, "windlass_pool_idle", &[("host", &key)]),
        host.idle as f64
    );
    assert_eq!(host.opened, 1);
    assert_eq!(host.reused, 5);

    let count = value(&samples, "windlass_request_duration_seconds_count", &[]);
    assert_eq!(count, 6.0);
    let inf = value(
        &samples,
        "windlass_request_duration_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(inf, count);
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == "windlass_request_duration_seconds_bucket")
        .map(|s| s.value)
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "buckets are cumulative"
    );
}

#[test]
fn the_snapshots_are_read_through_methods_that_agree_with_the_text() {
    let server = Server::serve(|_| common::Reply::keep(ok("fine")));
    let agent = common::agent();
    for _ in 0..3 {
        agent.get(server.url("/")).call().unwrap().text().unwrap();
    }
    let refused = common::refused_addr();
    let err = agent.get(format!("http://{refused}/")).call().unwrap_err();
    assert_eq!(err.kind(), windlass::ErrorKind::Connect);

    let metrics = agent.metrics();
    assert_eq!(metrics.requests(), [("GET", "2xx", 3)]);
    assert_eq!(metrics.error_count(windlass::ErrorKind::Connect), 1);
    assert_eq!(metrics.error_count(windlass::ErrorKind::Dns), 0);
    let duration = metrics.request_duration();
    assert_eq!(duration.count(), 3);
    assert_eq!(duration.buckets().len(), windlass::BUCKETS.len());
    assert_eq!(duration.bounds(), windlass::BUCKETS);
    assert!(duration.buckets().windows(2).all(|w| w[0] <= w[1]));
    assert!(duration.sum() > Duration::ZERO);
    assert!(metrics.bytes_sent() > 0 && metrics.bytes_received() > 0);

    // The refused host has an entry too, with nothing open.
    assert_eq!(metrics.pool().hosts().len(), 2);
    let host = metrics.pool().host(&server.pool_key()).expect("pool entry");
    assert_eq!(host.key(), server.pool_key());
    assert_eq!((host.idle(), host.active(), host.waiting()), (1, 0, 0));
    assert_eq!((host.opened(), host.reused()), (1, 2));
    assert_eq!(host.closed().total(), 0);
    assert_eq!(
        *host.closed(),
        windlass::ClosedCounts::default().with(windlass::CloseReason::PoolFull, 0)
    );

    let (_, samples) = parse_prometheus(&metrics.to_prometheus());
    assert_eq!(
        value(&samples, "windlass_errors_total", &[("kind", "connect")]),
        1.0
    );
    let closed: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "windlass_connections_closed_total")
        .collect();
    // One series per host and reason.
    assert_eq!(closed.len(), 2 * windlass::CloseReason::ALL.len());
}

#[test]
fn in_flight_shows_a_held_body_and_forgets_it_after_drop() {
    let server = Server::fixed(ok("held body"));
    let agent = common::agent();
    assert!(agent.in_flight().is_empty());
    let held = agent.get(server.url("/held/path?secret=1")).call().unwrap();
    let list = agent.in_flight();
    assert_eq!(list.len(), 1);
    let entry = list.iter().next().expect("one entry");
    assert_eq!(entry.phase, InFlightPhase::BodyHeld);
    assert_eq!(entry.method, "GET");
    assert_eq!(entry.path, "/held/path");
    assert!(
        entry.call_site.contains("observe.rs"),
        "{}",
        entry.call_site
    );
    let table = list.to_string();
    assert!(table.contains("body held by the caller"), "{table}");
    assert!(
        !table.contains("secret"),
        "the query stays out of the table"
    );
    drop(held);
    assert!(agent.in_flight().is_empty());
    assert_eq!(
        agent.pool_stats().idle(),
        1,
        "the dropped body drained and returned"
    );
}

/// A logger that forwards warnings to whichever test listens.
struct Capture;

static LISTENER: OnceLock<Mutex<Option<Sender<String>>>> = OnceLock::new();

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            if let Some(tx) = LISTENER
                .get_or_init(Mutex::default)
                .lock()
                .unwrap()
                .as_ref()
            {
                let _ = tx.send(record.args().to_string());
            }
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_body_held_too_long_is_warned_about_once_and_counted() {
    let (tx, rx) = mpsc::channel();
    *LISTENER.get_or_init(Mutex::default).lock().unwrap() = Some(tx);
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Warn);

    let server = Server::fixed(ok("never read"));
    let agent = common::builder()
        .leak_warn_after(Duration::from_millis(50))
        .build()
        .unwrap();
    let held = agent.get(server.url("/leaky")).call().unwrap();
    let warning = rx
        .iter()
        .take(100)
        .find(|m| m.contains("/leaky"))
        .expect("a leak warning");
    let _ = IO_TIMEOUT;
    assert!(warning.contains("held unread"), "{warning}");
    assert!(
        warning.contains("observe.rs"),
        "names the call site: {warning}"
    );
    assert_eq!(agent.metrics().leaks(), 1);
    drop(held);
    assert!(agent.in_flight().is_empty());
}

#[test]
fn pool_wait_events_mark_a_real_wait_only() {
    let server = Server::fixed(ok("hello"));
    let agent = common::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();
    // The only connection is held by an unread body.
    let held = agent.get(server.url("/")).call().unwrap();
    let recorder = Recorder::default();
    let waiter = {
        let (agent, url, recorder) = (agent.clone(), server.url("/"), recorder.clone());
        std::thread::spawn(move || agent.get(&url).hook(recorder).call().unwrap().text())
    };
    common::wait_until(
        "the second request announces its wait",
        std::time::Duration::from_secs(5),
        || {
            recorder
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|e| e == "PoolWaitStart")
        },
    );
    assert_eq!(recorder.0.lock().unwrap().as_slice(), ["PoolWaitStart"]);
    assert_eq!(held.text().unwrap(), "hello");
    assert_eq!(waiter.join().unwrap().unwrap(), "hello");
    assert_eq!(
        recorder.take(),
        [
            "PoolWaitStart",
            "PoolWaitEnd",
            "GotConnection",
            "RequestHead",
            "WroteHeaders",
            "WroteRequest",
            "ResponseHead",
            "FirstByte",
            "ResponseDone",
            "ConnectionReturned",
        ]
    );
}
