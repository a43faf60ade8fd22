//! The reaper: one thread per agent that sleeps until the next idle connection
//! expires, closes what expired, and exits when the agent is dropped.
//!
//! It is started by the first connection that goes idle, so an agent that never
//! pools a connection never starts a thread.

use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::{Poolable, Shared};

/// More host entries than this and empty ones are forgotten by the reaper.
const KEEP_EMPTY_HOSTS: usize = 256;

#[derive(Default)]
pub(super) struct Handle {
    inner: Mutex<HandleState>,
}

#[derive(Default)]
struct HandleState {
    running: Option<Running>,
    stopped: bool,
}

struct Running {
    tx: Sender<()>,
    thread: JoinHandle<()>,
}

impl Handle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HandleState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An earlier expiry was scheduled: wake the reaper, starting it if needed.
pub(super) fn wake<C: Poolable>(shared: &Arc<Shared<C>>) {
    let mut handle = shared.reaper.lock();
    if handle.stopped {
        return;
    }
    if let Some(running) = &handle.running {
        let _ = running.tx.try_send(());
        return;
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let weak = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("windlass-reaper".into())
        .spawn(move || {
            log::debug!("reaper started");
            loop {
                let next = match Weak::upgrade(&weak) {
                    Some(shared) => reap(&shared),
                    None => break,
                };
                let woke = match next {
                    Some(at) => rx.recv_deadline(at),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                if let Err(RecvTimeoutError::Disconnected) = woke {
                    break;
                }
            }
            log::debug!("reaper stopped");
        });
    match spawned {
        Ok(thread) => handle.running = Some(Running { tx, thread }),
        Err(e) => log::warn!("could not start the idle-connection reaper: {e}"),
    }
}

/// Stop the reaper and wait for its thread to end.
pub(super) fn stop<C: Poolable>(shared: &Shared<C>) {
    let running = {
        let mut handle = shared.reaper.lock();
        handle.stopped = true;
        handle.running.take()
    };
    if let Some(Running { tx, thread }) = running {
        drop(tx);
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
    }
}

/// Close expired idle connections; return when the next one expires.
fn reap<C: Poolable>(shared: &Shared<C>) -> Option<Instant> {
    let now = Instant::now();
    // Logging happens here, so not under the pool lock: a slow logger must
    // not stall checkouts.
    let leaks = shared.in_flight.check_leaks(now);
    let mut expired = Vec::new();
    let next = {
        let mut state = shared.lock();
        let mut next: Option<Instant> = None;
        for host in state.hosts.values_mut() {
            if let Some(at) = host.expire(now, &mut expired) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        state.idle_total -= expired.len();
        state.check_idle_total();
        if state.hosts.len() > KEEP_EMPTY_HOSTS {
            state.hosts.retain(|_, h| !h.is_empty());
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
