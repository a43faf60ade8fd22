//! The reaper: one thread for the whole process, shared by every agent's pool.
//! It sleeps until the earliest time any pool asked to be looked at (an idle
//! connection expires, a body may be leaking), closes what expired, and exits
//! on its own shortly after no pool has anything left for it.
//!
//! Pools are registered through weak references, on first need: the first
//! connection that goes idle or the first body watched for a leak. An agent
//! that never pools a connection never starts the thread, and dropping an
//! agent never waits for it: the pool's entry is removed, and the thread is
//! nudged if it would sleep past [`LINGER`]. Once the registry is empty the
//! thread waits [`LINGER`] for a new registration (a program making an agent
//! per request keeps one thread, and does not wake it per agent), then exits;
//! a later agent starts it again.
//!
//! Locking: the registry's mutex is never held while a pool is reaped (reaping
//! closes connections) nor while a pool's `Arc` might be dropped, and nothing
//! that holds a pool's lock takes the registry's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{PoolKey, Poolable, Shared};

/// How long the thread outlives the last registered pool, so that a program
/// making a new agent per request reuses one thread instead of starting one
/// per request.
const LINGER: Duration = Duration::from_secs(1);

/// A pool the reaper looks after.
pub(super) trait Reap: Send + Sync {
    /// Close what expired; return when the pool next needs a look.
    fn reap(&self) -> Option<Instant>;
}

/// A pool's link to the registry: its entry's key, and whether the pool was
/// shut down (then it is never registered again).
pub(super) struct Handle {
    id: u64,
    /// Read and written only under the registry's lock.
    stopped: AtomicBool,
}

impl Default for Handle {
    fn default() -> Handle {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Handle {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            stopped: AtomicBool::new(false),
        }
    }
}

impl Drop for Handle {
    /// A pool dropped without a shut-down (one that never belonged to an
    /// agent) must not keep the thread sleeping on its behalf.
    fn drop(&mut self) {
        deregister(self.id);
    }
}

struct Entry {
    pool: Weak<dyn Reap>,
    /// When the pool needs a look; `None` while the thread is reaping it
    /// (and nobody asked for a look since).
    due: Option<Instant>,
}

struct Registry {
    entries: HashMap<u64, Entry, crate::fnv::BuildFnv>,
    /// A reaper thread is running, or being started, for these entries.
    running: bool,
    /// Until when the thread sleeps, if it does: an earlier due time must
    /// nudge it. `None` while it is awake (it looks at the registry again
    /// before sleeping).
    sleeping_until: Option<Instant>,
    /// Wakes the running thread; each thread gets a channel of its own
    /// (a std receiver has one owner), so a nudge never reaches the wrong one.
    nudge: SyncSender<()>,
}

/// The last thread started, joined before the next one starts so that there
/// is never more than one, even for the moment an exiting one takes to end.
/// Held only to start a thread, never with the registry's lock.
static THREAD: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            // Replaced by each thread's own channel when it starts.
            let (nudge, _) = mpsc::sync_channel(1);
            Mutex::new(Registry {
                entries: HashMap::default(),
                running: false,
                sleeping_until: None,
                nudge,
            })
        })
        .lock()
        // The registry is whole between statements; a panic elsewhere must
        // not stop every pool's reaping.
        .unwrap_or_else(|p| p.into_inner())
}

/// The pool needs a look by `at` (earlier than it asked for before): register
/// it, wake the thread if it sleeps past `at`, start it if none runs.
pub(super) fn wake<C: Poolable>(shared: &std::sync::Arc<Shared<C>>, at: Instant) {
    let handle = &shared.reaper;
    let rx = {
        let mut reg = registry();
        if handle.stopped.load(Ordering::Relaxed) {
            return;
        }
        let entry = reg.entries.entry(handle.id).or_insert_with(|| {
            let weak: Weak<Shared<C>> = std::sync::Arc::downgrade(shared);
            Entry {
                pool: weak,
                due: None,
            }
        });
        entry.due = Some(entry.due.map_or(at, |due| due.min(at)));
        if reg.running {
            if reg.sleeping_until.is_some_and(|until| at < until) {
                let _ = reg.nudge.try_send(());
            }
            return;
        }
        reg.running = true;
        // One pending nudge is enough: the thread recomputes everything.
        let (nudge, nudged) = mpsc::sync_channel(1);
        reg.nudge = nudge;
        nudged
    };
    start(rx);
}

/// The pool was shut down: forget it for good, and let the thread exit if it
/// was the last.
pub(super) fn stop<C: Poolable>(shared: &Shared<C>) {
    let mut reg = registry();
    shared.reaper.stopped.store(true, Ordering::Relaxed);
    remove(&mut reg, shared.reaper.id);
}

fn deregister(id: u64) {
    let mut reg = registry();
    remove(&mut reg, id);
}

fn remove(reg: &mut Registry, id: u64) {
    // Dropping the entry drops only a `Weak`: no pool code runs under the lock.
    if reg.entries.remove(&id).is_some() && reg.entries.is_empty() && reg.running {
        // Wake the thread only if it would sleep past the linger it now owes.
        // One that wakes within LINGER anyway starts lingering then (and
        // exits at most 2 × LINGER after the last pool went), so a program
        // making an agent per request does not pay a thread wake-up, two
        // context switches, per agent. An awake thread looks again anyway.
        let by = Instant::now() + LINGER;
        if reg.sleeping_until.is_some_and(|until| until > by) {
            let _ = reg.nudge.try_send(());
        }
    }
}

/// Start the thread (`running` is already set). Waits for the previous thread
/// to end first: it has left the registry and only has to return.
fn start(nudged: Receiver<()>) {
    let mut thread = THREAD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(previous) = thread.take() {
        let _ = previous.join();
    }
    let spawned = std::thread::Builder::new()
        .name("windlass-reaper".into())
        .spawn(move || run(&nudged));
    match spawned {
        Ok(handle) => *thread = Some(handle),
        Err(e) => {
            drop(thread);
            log::warn!("could not start the idle-connection reaper: {e}");
            // The next registration tries again.
            registry().running = false;
        }
    }
}

fn run(nudged: &Receiver<()>) {
    log::debug!("reaper started");
    // Since when the registry has been empty.
    let mut empty_since: Option<Instant> = None;
    loop {
        let due: Vec<(u64, Weak<dyn Reap>)> = {
            let mut reg = registry();
            reg.sleeping_until = None;
            let now = Instant::now();
            if reg.entries.is_empty() {
                let until = *empty_since.get_or_insert(now) + LINGER;
                if now >= until {
                    // Under the lock a registration checks `running`: it
                    // either came before (and the registry is not empty) or
                    // it will start a new thread.
                    reg.running = false;
                    break;
                }
                // A registration due before `until` nudges; a later one is
                // picked up when the wait ends.
                reg.sleeping_until = Some(until);
                drop(reg);
                let _ = nudged.recv_timeout(until.saturating_duration_since(Instant::now()));
                continue;
            }
            empty_since = None;
            let next = reg.entries.values().filter_map(|e| e.due).min();
            match next {
                Some(at) if at > now => {
                    reg.sleeping_until = Some(at);
                    drop(reg);
                    // A nudge sent since the lock was released is buffered.
                    let _ = nudged.recv_timeout(at.saturating_duration_since(Instant::now()));
                    continue;
                }
                Some(_) => {}
                None => {
                    // Only entries being reaped have no due time, and none is
                    // now; should one linger, it must not keep the loop busy.
                    reg.entries.retain(|_, e| e.due.is_some());
                    continue;
                }
            }
            reg.entries
                .iter_mut()
                .filter(|(_, e)| e.due.is_some_and(|due| due <= now))
                .map(|(id, e)| {
                    e.due = None;
                    (*id, e.pool.clone())
                })
                .collect()
        };
        let mut looked = Vec::with_capacity(due.len());
        for (id, weak) in due {
            // The `Arc` is dropped here, outside the registry's lock: it may
            // be the last one, and dropping a pool closes its connections.
            let next = weak.upgrade().and_then(|pool| pool.reap());
            looked.push((id, next));
        }
        let mut reg = registry();
        for (id, next) in looked {
            let Some(entry) = reg.entries.get_mut(&id) else {
                continue; // shut down or dropped meanwhile
            };
            // A look asked for while reaping is kept if it is earlier.
            entry.due = match (entry.due, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if entry.due.is_none() {
                // Nothing to look at: the pool registers again when it has.
                reg.entries.remove(&id);
            }
        }
    }
    log::debug!("reaper stopped");
}

impl<C: Poolable> Reap for Shared<C> {
    /// Close expired idle connections; return when the next one expires or
    /// the next leak warning is due.
    fn reap(&self) -> Option<Instant> {
        let now = Instant::now();
        // Logging happens here, so not under the pool lock: a slow logger must
        // not stall checkouts.
        let leaks = self.in_flight.check_leaks(now);
        let mut expired = Vec::new();
        let next = {
            let mut state = self.lock();
            let mut next: Option<Instant> = None;
            // Only hosts with idle connections have anything to expire: the
            // walk costs the idle connections (at most `max_idle`), not the
            // hosts the pool knows.
            let keys: std::collections::HashSet<PoolKey, crate::fnv::BuildFnv> =
                state.idle_order.values().cloned().collect();
            for key in keys {
                let at = self.with_host(&mut state, &key, |host| host.expire(now, &mut expired));
                if let Some(at) = at {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            let next = match (next, leaks) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state.reaper_next = next;
            next
        };
        for (conn, reason) in expired {
            log::debug!("reaper closed idle connection {}: {reason}", conn.id());
            conn.close();
        }
        next
    }
}
