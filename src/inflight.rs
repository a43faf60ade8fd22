//! Every checked-out connection, visible: the goroutine dump of the Go article,
//! for connections. Also where the reaper finds bodies held too long.

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
    /// Waiting for the host's rate limit to allow another request.
    RateLimited,
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
    const ALL: [InFlightPhase; 6] = [
        InFlightPhase::WaitingForSlot,
        InFlightPhase::RateLimited,
        InFlightPhase::Connecting,
        InFlightPhase::Writing,
        InFlightPhase::AwaitingHead,
        InFlightPhase::BodyHeld,
    ];

    fn as_str(self) -> &'static str {
        match self {
            InFlightPhase::WaitingForSlot => "waiting for a slot",
            InFlightPhase::RateLimited => "waiting for the rate limit",
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

/// What `in_flight()` shows of a request, written into buffers the slot
/// keeps, so tracking a request allocates nothing once the slot is warm.
#[derive(Default)]
struct Shown {
    method: Option<Method>,
    /// The host, and the port when the URL names one.
    host: String,
    port: Option<u16>,
    /// The path, without the query (which may carry secrets).
    path: String,
    call_site: Option<&'static Location<'static>>,
}

/// One slot of the registry: a request in flight, or free (`id` 0). Slots
/// are reused, so a request costs no allocation on the hot path.
pub(crate) struct Tracked {
    id: AtomicU64,
    shown: Mutex<Shown>,
    /// Nanoseconds after the registry's epoch when the attempt started.
    started: AtomicU64,
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
        let i = usize::from(self.phase.load(Ordering::Relaxed));
        InFlightPhase::ALL[i.min(InFlightPhase::ALL.len() - 1)]
    }

    /// The request's number, unique within the agent.
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Slots are spread over shards by thread, so threads making requests at
/// once do not contend for one lock.
const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    slots: Vec<Arc<Tracked>>,
    free: Vec<usize>,
}

/// All requests in flight for one agent.
pub(crate) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    shards: [Mutex<Shard>; SHARDS],
    leak_after: Option<Duration>,
    metrics: Arc<Metrics>,
}

/// Keeps a request listed; dropping it frees its slot.
pub(crate) struct TrackGuard {
    pub tracked: Arc<Tracked>,
    shard: usize,
    slot: usize,
    registry: Arc<Registry>,
}

impl Drop for TrackGuard {
    fn drop(&mut self) {
        {
            let _shown = self.tracked.shown();
            self.tracked.id.store(0, Ordering::Relaxed);
            self.tracked.body_since.store(0, Ordering::Relaxed);
        }
        self.registry.lock(self.shard).free.push(self.slot);
    }
}

/// The shard of the calling thread: a number fixed per thread.
fn my_shard() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

fn nanos_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

impl Registry {
    pub(crate) fn new(leak_after: Option<Duration>, metrics: Arc<Metrics>) -> Registry {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            shards: Default::default(),
            leak_after,
            metrics,
        }
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every slot in use now.
    fn live(&self) -> Vec<Arc<Tracked>> {
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            let shard = self.lock(shard);
            out.extend(shard.slots.iter().filter(|t| t.id() != 0).map(Arc::clone));
        }
        out
    }

    pub(crate) fn track(
        self: &Arc<Self>,
        method: &Method,
        url: &Url,
        call_site: &'static Location<'static>,
    ) -> TrackGuard {
        let shard = my_shard();
        let (slot, tracked) = {
            let mut s = self.lock(shard);
            match s.free.pop() {
                Some(i) => (i, Arc::clone(&s.slots[i])),
                None => {
                    let t = Arc::new(Tracked {
                        id: AtomicU64::new(0),
                        shown: Mutex::default(),
                        started: AtomicU64::new(0),
                        phase: AtomicU8::new(0),
                        body_since: AtomicU64::new(0),
                        warned: AtomicBool::new(false),
                    });
                    s.slots.push(Arc::clone(&t));
                    (s.slots.len() - 1, t)
                }
            }
        };
        {
            // Everything a snapshot or the leak check reads is reset under
            // the lock they read it with, so an entry never mixes two
            // requests.
            let mut shown = tracked.shown();
            tracked
                .started
                .store(nanos_since(self.epoch, Instant::now()), Ordering::Relaxed);
            tracked.phase.store(0, Ordering::Relaxed);
            tracked.body_since.store(0, Ordering::Relaxed);
            tracked.warned.store(false, Ordering::Relaxed);
            if shown.method.as_ref() != Some(method) {
                shown.method = Some(method.clone());
            }
            shown.host.clear();
            shown.host.push_str(url.host_str().unwrap_or(""));
            shown.port = url.port();
            shown.path.clear();
            shown.path.push_str(url.path());
            shown.call_site = Some(call_site);
            tracked.id.store(
                self.next_id.fetch_add(1, Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        TrackGuard {
            tracked,
            shard,
            slot,
            registry: Arc::clone(self),
        }
    }

    /// The body went to the caller: start its leak clock. Returns when the
    /// leak warning would fire, for the reaper's schedule.
    pub(crate) fn body_held(&self, tracked: &Tracked) -> Option<Instant> {
        tracked.set_phase(InFlightPhase::BodyHeld);
        let now = Instant::now();
        tracked
            .body_since
            .store(nanos_since(self.epoch, now).max(1), Ordering::Relaxed);
        self.leak_after.and_then(|after| now.checked_add(after))
    }

    /// Warn once about each body held too long; return the next time to look.
    pub(crate) fn check_leaks(&self, now: Instant) -> Option<Instant> {
        let after = self.leak_after?;
        let mut next: Option<Instant> = None;
        for t in self.live() {
            // Read under the slot's lock: a slot freed or reused since
            // `live()` is skipped, never blamed on the next request.
            let (since, what) = {
                let shown = t.shown();
                let since = t.body_since.load(Ordering::Relaxed);
                if t.id() == 0 || since == 0 || t.warned.load(Ordering::Relaxed) {
                    continue;
                }
                let held_at = self.epoch + Duration::from_nanos(since);
                let Some(due) = held_at.checked_add(after) else {
                    continue;
                };
                if due > now {
                    next = Some(next.map_or(due, |n: Instant| n.min(due)));
                    continue;
                }
                t.warned.store(true, Ordering::Relaxed);
                let port = shown.port.map(|p| format!(":{p}")).unwrap_or_default();
                let what = format!(
                    "{} {}{port}{} (requested at {})",
                    shown.method.as_ref().map_or("", Method::as_str),
                    shown.host,
                    shown.path,
                    shown.call_site.map(ToString::to_string).unwrap_or_default(),
                );
                (held_at, what)
            };
            // Logged with no lock held: a slow logger must not hold up a body.
            self.metrics.leak();
            log::warn!(
                "response body of {what} has been held unread for {:.1} s; \
                 read it to the end or drop it so its connection can be reused",
                now.duration_since(since).as_secs_f64()
            );
        }
        next
    }

    pub(crate) fn snapshot(&self) -> InFlightList {
        let now = Instant::now();
        let mut list: Vec<InFlight> = self
            .live()
            .iter()
            .filter_map(|t| {
                let shown = t.shown();
                let id = t.id();
                let started = self.epoch + Duration::from_nanos(t.started.load(Ordering::Relaxed));
                // A slot freed while we looked is skipped.
                (id != 0).then(|| InFlight {
                    id,
                    host: match shown.port {
                        Some(port) => format!("{}:{port}", shown.host),
                        None => shown.host.clone(),
                    },
                    method: shown
                        .method
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    path: shown.path.clone(),
                    phase: t.phase(),
                    age: now.saturating_duration_since(started),
                    call_site: shown.call_site.map(ToString::to_string).unwrap_or_default(),
                })
            })
            .collect();
        list.sort_by_key(|e| e.id);
        InFlightList(list)
    }
}

/// One request in flight, from [`Agent::in_flight`](crate::Agent::in_flight).
///
/// Fields may be added; read them directly or through the accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl InFlight {
    /// A number unique within the agent.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path (no query, which may carry secrets).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the request is.
    pub fn phase(&self) -> InFlightPhase {
        self.phase
    }

    /// Time since the attempt started.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// The source location that built the request (`file:line:column`).
    pub fn call_site(&self) -> &str {
        &self.call_site
    }
}

/// Every request in flight; its `Display` is a readable table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlightList(Vec<InFlight>);

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
