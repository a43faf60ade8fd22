//! Small process-wide pools of reusable worker threads, for the work that
//! must block on something windlass cannot interrupt: a `getaddrinfo` call
//! (the DNS pool) and a connection attempt that lost the calling thread to a
//! Happy Eyeballs race (the connect pool).
//!
//! A pool starts a thread only when a job finds no idle one, never more than
//! its bound; further jobs wait in a FIFO queue (bounded too). A thread that
//! has found nothing to do for [`IDLE_EXIT`] exits, so a burst leaves nothing
//! behind for long, while a program making one agent per request keeps
//! reusing the same threads. Threads are detached: nothing ever joins one,
//! and dropping an agent never waits for a job.
//!
//! The pool records since when each busy thread has been running its job, so
//! that the DNS code can tell a pool that is merely busy (queue the lookup)
//! from one whose every thread is stuck in a resolver that does not answer
//! (refuse it, and say so).

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a thread waits for a job before it exits. A few seconds: long
/// enough that a program making a request a second keeps its threads,
/// short enough that thread counts return to their baseline soon after a
/// burst.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(2);

/// Resolver threads for the whole process. Lookups beyond this queue; 16
/// lookups of 20 ms each clear a burst of 200 names in a quarter second.
pub(crate) static DNS: Workers = Workers::new("windlass-dns", 16, 4096, IDLE_EXIT);

/// Threads that finish connection attempts the calling thread handed over
/// (see `connect::race`). Each race keeps at most a few attempts running, so
/// this bounds the threads of many concurrent races, not of one.
pub(crate) static CONNECT: Workers = Workers::new("windlass-connect", 32, 65_536, IDLE_EXIT);

type Job = Box<dyn FnOnce() + Send + 'static>;

thread_local! {
    /// The pool thread's id, on a pool thread.
    static WORKER_ID: Cell<Option<u64>> = const { Cell::new(None) };
    /// The running job called [`Workers::finishing`].
    static RELEASED: Cell<bool> = const { Cell::new(false) };
}

/// Why a job was not taken.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue holds its bound of jobs already.
    QueueFull(usize),
    /// No thread runs and none could be started.
    Spawn(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::QueueFull(n) => write!(f, "{n} jobs are already waiting for a worker thread"),
            Refused::Spawn(e) => write!(f, "cannot start a worker thread: {e}"),
        }
    }
}

/// A pool of at most `max_threads` threads named `name`.
pub(crate) struct Workers {
    name: &'static str,
    max_threads: usize,
    max_queued: usize,
    idle_exit: Duration,
    state: Mutex<State>,
    /// Signalled for each queued job.
    work: Condvar,
}

struct State {
    queue: VecDeque<Job>,
    /// Threads alive, busy or idle.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Each busy thread's id and since when it runs its job.
    busy: Vec<(u64, Instant)>,
    next_id: u64,
}

/// What a pool looks like right now.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub threads: usize,
    pub idle: usize,
    pub busy: usize,
    pub queued: usize,
}

impl Workers {
    /// An empty pool; no thread starts before the first job.
    pub(crate) const fn new(
        name: &'static str,
        max_threads: usize,
        max_queued: usize,
        idle_exit: Duration,
    ) -> Workers {
        Workers {
            name,
            max_threads,
            max_queued,
            idle_exit,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                busy: Vec::new(),
                next_id: 0,
            }),
            work: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock and the state is whole between
        // statements: a poisoned lock holds nothing broken.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `job` on one of the pool's threads, at once if one is idle or may
    /// be started, else after the jobs queued before it.
    pub(crate) fn submit(
        &'static self,
        job: impl FnOnce() + Send + 'static,
    ) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.queue.len() >= self.max_queued {
            return Err(Refused::QueueFull(state.queue.len()));
        }
        state.queue.push_back(Box::new(job));
        // Idle threads already woken for earlier jobs still count as idle
        // until they run: compare with the whole queue, not with this job.
        if state.queue.len() <= state.idle || state.threads >= self.max_threads {
            self.work.notify_one();
            return Ok(());
        }
        let id = state.next_id;
        state.next_id += 1;
        let spawned = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || self.work_loop(id));
        match spawned {
            Ok(_) => {
                state.threads += 1;
                Ok(())
            }
            // Another thread will get to the job in time.
            Err(_) if state.threads > 0 => Ok(()),
            Err(e) => {
                // The job is dropped with no lock held: dropping a lookup
                // takes the resolver's lock, whose holders take this one.
                let job = state.queue.pop_back();
                drop(state);
                drop(job);
                Err(Refused::Spawn(e))
            }
        }
    }

    fn work_loop(&'static self, id: u64) {
        WORKER_ID.set(Some(id));
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.busy.push((id, Instant::now()));
                drop(state);
                // A panicking job (a resolver's bug) must not take the thread
                // and its accounting with it; the job's own guards answer
                // whoever waited for it.
                let _ = panic::catch_unwind(AssertUnwindSafe(job));
                state = self.lock();
                if RELEASED.replace(false) {
                    state.idle -= 1;
                } else {
                    state.busy.retain(|(busy, _)| *busy != id);
                }
                continue;
            }
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout_while(state, self.idle_exit, |s| s.queue.is_empty())
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }

    /// Called by a job about to hand its result over: from here on its
    /// thread counts as idle. The caller it answers may submit its next job
    /// at once; without this, that job would find no idle thread (this one
    /// has not returned yet) and start another. Does nothing off a pool
    /// thread.
    pub(crate) fn finishing(&self) {
        let Some(id) = WORKER_ID.get() else {
            return;
        };
        if RELEASED.get() {
            return;
        }
        let mut state = self.lock();
        state.busy.retain(|(busy, _)| *busy != id);
        state.idle += 1;
        RELEASED.set(true);
    }

    /// The number of busy threads when the pool is at its bound and every
    /// one of them has been running its job for `after` or longer: the jobs
    /// are stuck, and queueing more would only make them wait for nothing.
    pub(crate) fn all_stuck(&self, after: Duration) -> Option<usize> {
        let state = self.lock();
        let now = Instant::now();
        let stuck = state.busy.len() >= self.max_threads
            && state
                .busy
                .iter()
                .all(|(_, since)| now.saturating_duration_since(*since) >= after);
        stuck.then_some(state.busy.len())
    }

    /// Counts of threads and jobs.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            threads: state.threads,
            idle: state.idle,
            busy: state.busy.len(),
            queued: state.queue.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::sync::Barrier;

    const PATIENCE: Duration = Duration::from_secs(10);

    fn pool(max: usize, queued: usize, idle: Duration) -> &'static Workers {
        Box::leak(Box::new(Workers::new("windlass-test", max, queued, idle)))
    }

    /// Wait, bounded, until `ready` holds, on a channel nobody sends to.
    fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
        let (_keep, never) = mpsc::channel::<()>();
        let started = Instant::now();
        while !ready() {
            assert!(started.elapsed() < PATIENCE, "{what}");
            let _ = never.recv_timeout(Duration::from_millis(1));
        }
    }

    #[test]
    fn jobs_beyond_the_bound_queue_in_order_and_threads_are_reused() {
        let workers = pool(2, 100, Duration::from_secs(30));
        let gate = Arc::new(Barrier::new(3));
        for _ in 0..2 {
            let gate = Arc::clone(&gate);
            workers
                .submit(move || {
                    gate.wait();
                })
                .unwrap();
        }
        wait_for("both threads busy", || workers.snapshot().busy == 2);
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            workers.submit(move || tx.send(i).unwrap()).unwrap();
        }
        let queued = workers.snapshot();
        assert_eq!((queued.threads, queued.queued), (2, 10));
        gate.wait();
        let mut got: Vec<i32> = (0..10)
            .map(|_| rx.recv_timeout(PATIENCE).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(workers.snapshot().threads, 2);
    }

    #[test]
    fn one_thread_runs_queued_jobs_first_in_first_out() {
        let workers = pool(1, 100, Duration::from_secs(30));
        let (release, held) = mpsc::channel::<()>();
        workers
            .submit(move || {
                let _ = held.recv_timeout(PATIENCE);
            })
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            workers.submit(move || tx.send(i).unwrap()).unwrap();
        }
        drop(release);
        let order: Vec<i32> = (0..10)
            .map(|_| rx.recv_timeout(PATIENCE).unwrap())
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_queue_refuses() {
        let workers = pool(1, 2, Duration::from_secs(30));
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel();
        workers
            .submit(move || {
                started_tx.send(()).unwrap();
                let _ = held.recv_timeout(PATIENCE);
            })
            .unwrap();
        started.recv_timeout(PATIENCE).unwrap();
        workers.submit(|| {}).unwrap();
        workers.submit(|| {}).unwrap();
        assert!(matches!(workers.submit(|| {}), Err(Refused::QueueFull(2))));
        drop(release);
        wait_for("queue drained", || workers.snapshot().queued == 0);
    }

    #[test]
    fn idle_threads_exit() {
        let workers = pool(4, 100, Duration::from_millis(50));
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.submit(move || tx.send(()).unwrap()).unwrap();
        }
        for _ in 0..4 {
            rx.recv_timeout(PATIENCE).unwrap();
        }
        wait_for("idle threads exit", || workers.snapshot().threads == 0);
        // A later job starts a thread again.
        workers.submit(move || tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(PATIENCE).unwrap();
    }

    #[test]
    fn a_panicking_job_keeps_its_thread_and_the_accounting() {
        let workers = pool(1, 100, Duration::from_secs(30));
        workers.submit(|| panic!("job bug")).unwrap();
        let (tx, rx) = mpsc::channel();
        workers.submit(move || tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(PATIENCE).unwrap();
        wait_for("the thread is idle again", || {
            workers.snapshot()
                == Snapshot {
                    threads: 1,
                    idle: 1,
                    busy: 0,
                    queued: 0,
                }
        });
    }

    #[test]
    fn a_job_answered_before_its_thread_returns_is_followed_on_the_same_thread() {
        let workers = pool(4, 100, Duration::from_secs(30));
        let (tx, rx) = mpsc::channel();
        for _ in 0..20 {
            let tx = tx.clone();
            workers
                .submit(move || {
                    workers.finishing();
                    tx.send(()).unwrap();
                })
                .unwrap();
            rx.recv_timeout(PATIENCE).unwrap();
        }
        assert_eq!(workers.snapshot().threads, 1);
        wait_for("the thread is idle", || workers.snapshot().idle == 1);
    }

    #[test]
    fn only_a_pool_whose_every_thread_ran_past_the_limit_is_stuck() {
        let workers = pool(2, 100, Duration::from_secs(30));
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let (started_tx, started) = mpsc::channel();
        let hold = |workers: &'static Workers| {
            let (held, started_tx) = (Arc::clone(&held), started_tx.clone());
            workers
                .submit(move || {
                    started_tx.send(()).unwrap();
                    let _ = held.lock().unwrap().recv_timeout(PATIENCE);
                })
                .unwrap();
        };
        hold(workers);
        started.recv_timeout(PATIENCE).unwrap();
        // One of two threads busy: not stuck, however long it runs.
        assert_eq!(workers.all_stuck(Duration::ZERO), None);
        hold(workers);
        wait_for("both busy", || workers.snapshot().busy == 2);
        assert_eq!(workers.all_stuck(Duration::ZERO), Some(2));
        assert_eq!(workers.all_stuck(Duration::from_secs(3600)), None);
        drop(release);
        wait_for("both idle", || workers.snapshot().busy == 0);
        assert_eq!(workers.all_stuck(Duration::ZERO), None);
    }
}
