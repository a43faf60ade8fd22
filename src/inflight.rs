//! Every checked-out connection, visible: the goroutine dump of the Go article,
//! for connections. Also where the reaper finds bodies held too long.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use url::Url;

use crate::metrics::Metrics;

/// Where a request in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[repr(u8)]
pub enum InFlightPhase {
    /// Waiting for a connection slot.
    WaitingForSlot,
    /// Opening a connection (DNS, TCP, TLS).
    Connecting,
    /// Writing the request.
    Writing,
    /// Waiting for the response head.
    AwaitingHead,
    /// The response body is in the caller's hands, not yet read to the end.
    BodyHeld,
}

impl InFlightPhase {
    /// Indexed by the `repr(u8)` value.
    const ALL: [InFlightPhase; 5] = [
        InFlightPhase::WaitingForSlot,
        InFlightPhase::Connecting,
        InFlightPhase::Writing,
        InFlightPhase::AwaitingHead,
        InFlightPhase::BodyHeld,
    ];

    fn as_str(self) -> &'static str {
        match self {
            InFlightPhase::WaitingForSlot => "waiting for a slot",
            InFlightPhase::Connecting => "connecting",
            InFlightPhase::Writing => "writing",
            InFlightPhase::AwaitingHead => "awaiting the head",
            InFlightPhase::BodyHeld => "body held by the caller",
        }
    }
}

impl fmt::Display for InFlightPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request in flight.
pub(crate) struct Tracked {
    pub id: u64,
    pub method: Method,
    pub url: Url,
    pub call_site: &'static Location<'static>,
    started: Instant,
    phase: AtomicU8,
    /// Nanoseconds after the registry's epoch when the body was handed over.
    body_since: AtomicU64,
    warned: AtomicBool,
}

impl Tracked {
    pub(crate) fn set_phase(&self, phase: InFlightPhase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    fn phase(&self) -> InFlightPhase {
        InFlightPhase::ALL[usize::from(self.phase.load(Ordering::Relaxed)).min(4)]
    }
}

/// All requests in flight for one agent.
pub(crate) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Arc<Tracked>, crate::fnv::BuildFnv>>,
    leak_after: Option<Duration>,
    metrics: Arc<Metrics>,
}

/// Keeps a request listed; dropping it takes the request off the list.
pub(crate) struct TrackGuard {
    pub tracked: Arc<Tracked>,
    registry: Arc<Registry>,
}

impl Drop for TrackGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.tracked.id);
    }
}

impl Registry {
    pub(crate) fn new(leak_after: Option<Duration>, metrics: Arc<Metrics>) -> Registry {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            entries: Mutex::default(),
            leak_after,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Tracked>, crate::fnv::BuildFnv>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn track(
        self: &Arc<Self>,
        method: &Method,
        url: &Url,
        call_site: &'static Location<'static>,
    ) -> TrackGuard {
        let tracked = Arc::new(Tracked {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            method: method.clone(),
            url: url.clone(),
            call_site,
            started: Instant::now(),
            phase: AtomicU8::new(0),
            body_since: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        });
        self.lock().insert(tracked.id, Arc::clone(&tracked));
        TrackGuard {
            tracked,
            registry: Arc::clone(self),
        }
    }

    /// The body went to the caller: start its leak clock. Returns when the
    /// leak warning would fire, for the reaper's schedule.
    pub(crate) fn body_held(&self, tracked: &Tracked) -> Option<Instant> {
        tracked.set_phase(InFlightPhase::BodyHeld);
        let now = Instant::now();
        let since = u64::try_from(now.duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        tracked.body_since.store(since.max(1), Ordering::Relaxed);
        self.leak_after.and_then(|after| now.checked_add(after))
    }

    /// Warn once about each body held too long; return the next time to look.
    pub(crate) fn check_leaks(&self, now: Instant) -> Option<Instant> {
        let after = self.leak_after?;
        let entries: Vec<Arc<Tracked>> = self.lock().values().cloned().collect();
        let mut next: Option<Instant> = None;
        for t in entries {
            let since = t.body_since.load(Ordering::Relaxed);
            if since == 0 || t.warned.load(Ordering::Relaxed) {
                continue;
            }
            let held_at = self.epoch + Duration::from_nanos(since);
            let Some(due) = held_at.checked_add(after) else {
                continue;
            };
            if due <= now {
                t.warned.store(true, Ordering::Relaxed);
                self.metrics.leak();
                log::warn!(
                    "response body of {} {}{} (requested at {}) has been held unread for {:.1} s; \
                     read it to the end or drop it so its connection can be reused",
                    t.method,
                    t.url.host_str().unwrap_or(""),
                    t.url.path(),
                    t.call_site,
                    now.duration_since(held_at).as_secs_f64()
                );
            } else {
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
            }
        }
        next
    }

    pub(crate) fn snapshot(&self) -> InFlightList {
        let now = Instant::now();
        let mut list: Vec<InFlight> = self
            .lock()
            .values()
            .map(|t| InFlight {
                id: t.id,
                host: t.url.host_str().unwrap_or("").to_string()
                    + &t.url.port().map(|p| format!(":{p}")).unwrap_or_default(),
                method: t.method.to_string(),
                path: t.url.path().to_string(),
                phase: t.phase(),
                age: now.duration_since(t.started),
                call_site: t.call_site.to_string(),
            })
            .collect();
        list.sort_by_key(|e| e.id);
        InFlightList(list)
    }
}

/// One request in flight, from [`Agent::in_flight`](crate::Agent::in_flight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// A number unique within the agent.
    pub id: u64,
    /// `host[:port]`.
    pub host: String,
    /// The method.
    pub method: String,
    /// The path (no query, which may carry secrets).
    pub path: String,
    /// Where the request is.
    pub phase: InFlightPhase,
    /// Time since the attempt started.
    pub age: Duration,
    /// The source location that built the request (`file:line:column`).
    pub call_site: String,
}

/// Every request in flight; its `Display` is a readable table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlightList(pub Vec<InFlight>);

impl InFlightList {
    /// Number of requests in flight.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterate over the entries.
    pub fn iter(&self) -> std::slice::Iter<'_, InFlight> {
        self.0.iter()
    }
}

impl fmt::Display for InFlightList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5}  {:<24} {:<7} {:<30} {:<24} {:>9}  called at",
            "id", "host", "method", "path", "phase", "age"
        )?;
        for e in &self.0 {
            writeln!(
                f,
                "{:>5}  {:<24} {:<7} {:<30} {:<24} {:>8.3}s  {}",
                e.id,
                e.host,
                e.method,
                e.path,
                e.phase.as_str(),
                e.age.as_secs_f64(),
                e.call_site
            )?;
        }
        Ok(())
    }
}
