//! What the library tells a transfer's hook, kept for the output options:
//! every response head of every hop (for `-i -L` and `-D`), the request
//! heads and connections (for `-v`, printed as they happen, curl style),
//! and the counts and times `-w` and `--trace` report.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use windlass::http::{HeaderMap, StatusCode, Version};
use windlass::{Event, Hook, RawHead, RequestInfo};

/// What one transfer's hook saw.
#[derive(Debug, Default)]
pub struct Record {
    /// Every response head, 1xx and redirects included, as the server sent it.
    pub heads: Vec<String>,
    /// New connections opened (not counting reused ones).
    pub connects: u32,
    /// When the last attempt (the final redirect hop or retry) began.
    pub last_attempt_start: Option<Instant>,
    /// Attempts seen (redirect hops and retries).
    attempts: u32,
    last_id: Option<u64>,
}

impl Record {
    /// Time spent on hops and attempts before the final one, measured from
    /// `started` (curl's `time_redirect`).
    pub fn time_before_last_attempt(&self, started: Instant) -> Duration {
        if self.attempts < 2 {
            return Duration::ZERO;
        }
        self.last_attempt_start
            .map(|t| t.saturating_duration_since(started))
            .unwrap_or_default()
    }

    /// Bytes of all response heads.
    pub fn heads_size(&self) -> usize {
        self.heads.iter().map(String::len).sum()
    }
}

/// The hook given to each request of a transfer.
#[derive(Clone)]
pub struct Recorder {
    record: Arc<Mutex<Record>>,
    verbose: bool,
    first: Arc<Mutex<bool>>,
}

impl Recorder {
    pub fn new(verbose: bool) -> Recorder {
        Recorder {
            record: Arc::default(),
            verbose,
            first: Arc::new(Mutex::new(true)),
        }
    }

    /// What was seen so far.
    pub fn take(&self) -> Record {
        std::mem::take(&mut *self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// `HTTP/1.1 200 OK` and the headers, as sent, CRLF-terminated, with the
/// blank line.
pub fn render(
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
    raw_head: &RawHead,
) -> String {
    // The status line as the server wrote it, reason phrase included.
    let mut s = match raw_head.reason() {
        "" => format!("{:?} {}\r\n", version, status.as_u16()),
        reason => format!("{:?} {} {reason}\r\n", version, status.as_u16()),
    };
    for (name, value) in raw_head.pair_with(headers) {
        s.push_str(name);
        s.push_str(": ");
        s.push_str(&String::from_utf8_lossy(value.as_bytes()));
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// `200 OK`, or just the code when it has no standard reason phrase.
pub fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Each line of `text` with `prefix` in front, on stderr (curl's `-v`).
fn print_prefixed(prefix: &str, text: &str) {
    let mut out = String::new();
    for line in text.split("\r\n") {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    // The head ends with CRLF CRLF: the split leaves one empty piece too many.
    out.truncate(out.len() - prefix.len() - 1);
    eprint!("{out}");
}

impl Hook for Recorder {
    fn on_event(&self, request: &RequestInfo<'_>, event: &Event<'_>) {
        let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        // An attempt starts with one of these; the events of a body being
        // read (which may carry another id) start nothing.
        let starts = matches!(
            event,
            Event::PoolWaitStart | Event::DnsStart { .. } | Event::GotConnection { .. }
        );
        if starts && record.last_id != Some(request.id()) {
            record.last_id = Some(request.id());
            record.last_attempt_start = Some(Instant::now());
            record.attempts += 1;
            if self.verbose {
                let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
                if !*first {
                    eprintln!("* Issue another request to this URL: '{}'", request.url());
                }
                *first = false;
            }
        }
        match event {
            Event::GotConnection { reused, remote, .. } => {
                if !reused {
                    record.connects += 1;
                }
                if self.verbose {
                    let host = request.url().host_str().unwrap_or("");
                    if *reused {
                        eprintln!("* Re-using existing connection with host {host}");
                    } else {
                        eprintln!(
                            "* Connected to {host} ({}) port {}",
                            remote.ip(),
                            remote.port()
                        );
                    }
                }
            }
            Event::RequestHead { head } if self.verbose => {
                print_prefixed("> ", &String::from_utf8_lossy(head));
            }
            Event::ResponseHead {
                status,
                version,
                headers,
                raw_head,
            } => {
                let text = render(*status, *version, headers, raw_head);
                if self.verbose {
                    print_prefixed("< ", &text);
                }
                record.heads.push(text);
            }
            _ => {}
        }
    }
}
