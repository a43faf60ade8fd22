//! Many requests on worker threads through one agent ([`Agent::batch`]):
//! bounded concurrency, results as they complete or in order, one token to
//! stop them all; and the agent-wide cancel ([`Agent::cancel_all`]).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use crate::agent::Agent;
use crate::deadline::CancelToken;
use crate::error::{Error, ErrorKind, Phase};
use crate::request::{IntoUrl, RequestBuilder};

/// Worker threads a batch starts unless told otherwise.
const DEFAULT_CONCURRENCY: usize = 8;

/// Runs many jobs through one agent on worker threads. Made by
/// [`Agent::batch`].
///
/// Each job gets a [`Worker`], whose requests carry the batch's
/// [`CancelToken`], and an item; it returns its own `Result`, so one
/// failure is one failed entry, never the end of the batch. At most
/// [`concurrency`](Batch::concurrency) jobs run at once.
///
/// ```no_run
/// # fn main() -> Result<(), windlass::Error> {
/// let agent = windlass::Agent::new();
/// let urls = vec!["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"];
/// let results = agent
///     .batch()
///     .concurrency(4)
///     .run(urls, |worker, url| worker.get(url).call()?.text());
/// for done in results {
///     match done.result {
///         Ok(text) => println!("#{}: {} bytes", done.index, text.len()),
///         Err(err) => eprintln!("#{}: {err}", done.index),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a batch does nothing until run() starts it"]
pub struct Batch {
    agent: Agent,
    concurrency: usize,
    cancel: CancelToken,
    /// The token is the batch's own (not the caller's): dropping the results
    /// early may cancel it.
    own_token: bool,
}

/// What a job uses to make its requests: the agent, with the batch's token
/// attached to every request it builds.
#[derive(Debug)]
pub struct Worker<'a> {
    agent: &'a Agent,
    cancel: &'a CancelToken,
}

impl Worker<'_> {
    /// A request with any method, stopped with the batch.
    #[track_caller]
    pub fn request(&self, method: impl AsRef<str>, url: impl IntoUrl) -> RequestBuilder {
        self.agent.request(method, url).cancel_token(self.cancel)
    }

    /// A GET request, stopped with the batch.
    #[track_caller]
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.agent.get(url).cancel_token(self.cancel)
    }

    /// A POST request, stopped with the batch.
    #[track_caller]
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.agent.post(url).cancel_token(self.cancel)
    }

    /// The agent (its requests are not stopped with the batch unless given
    /// [`cancel_token`](Worker::cancel_token)).
    pub fn agent(&self) -> &Agent {
        self.agent
    }

    /// The batch's token.
    pub fn cancel_token(&self) -> &CancelToken {
        self.cancel
    }
}

/// One finished job.
#[derive(Debug)]
pub struct Done<T> {
    /// The item's place in the input, from 0.
    pub index: usize,
    /// What the job returned; [`ErrorKind::Cancelled`] for a job the
    /// batch's token stopped before it started.
    pub result: Result<T, Error>,
}

/// A job's end as a worker reports it: its result, or its panic.
type Report<T> = (usize, std::thread::Result<Result<T, Error>>);

/// The results of a running [`Batch`], as jobs complete.
///
/// Iterate it (each job once, in completion order), wait with a timeout
/// ([`next_timeout`](Results::next_timeout)), or collect
/// [`in_order`](Results::in_order). A job that panicked re-raises its panic
/// on the thread that receives its result. Dropping it before the end stops
/// jobs that have not started, cancels those running (unless the batch was
/// given the caller's token with [`Batch::cancel_token`]) and waits for
/// their threads.
pub struct Results<T> {
    rx: Receiver<Report<T>>,
    len: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    /// The batch's own token, cancelled when the results are dropped early.
    own_token: Option<CancelToken>,
    /// Results handed out so far.
    received: usize,
}

impl<T> std::fmt::Debug for Results<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Run many jobs on worker threads through this agent; see [`Batch`].
    pub fn batch(&self) -> Batch {
        Batch {
            agent: self.clone(),
            concurrency: DEFAULT_CONCURRENCY,
            cancel: CancelToken::new(),
            own_token: true,
        }
    }

    /// Cancel every request this agent (and its clones) is running, in any
    /// phase, bodies being read included: they fail with
    /// [`ErrorKind::Cancelled`]. Requests started afterwards run normally.
    /// Meant for a Ctrl-C handler, which need not pass a token to every call.
    ///
    /// ```
    /// let agent = windlass::Agent::new();
    /// let for_handler = agent.clone();
    /// // ctrlc::set_handler(move || for_handler.cancel_all());
    /// for_handler.cancel_all();
    /// ```
    pub fn cancel_all(&self) {
        self.inner.config.defaults.cancel_all();
    }
}

impl Batch {
    /// Most jobs running at once (worker threads). Default 8; at least 1.
    pub fn concurrency(mut self, n: usize) -> Batch {
        self.concurrency = n.max(1);
        self
    }

    /// Stop the batch with this token: requests running fail with
    /// [`ErrorKind::Cancelled`], and jobs not started report it.
    pub fn cancel_token(mut self, token: &CancelToken) -> Batch {
        self.cancel = token.clone();
        self.own_token = false;
        self
    }

    /// Start one job per item. Returns at once; the results arrive through
    /// the returned [`Results`].
    pub fn run<I, T, F>(self, items: impl IntoIterator<Item = I>, work: F) -> Results<T>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(&Worker<'_>, I) -> Result<T, Error> + Send + Sync + 'static,
    {
        // Every job is known up front: the workers take the next from one
        // shared queue.
        let queue: Vec<(usize, I)> = items.into_iter().enumerate().collect();
        let len = queue.len();
        let jobs_rx: Jobs<I> = Arc::new(Mutex::new(queue.into_iter()));
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let work = Arc::new(work);
        let mut workers = Vec::new();
        for n in 0..self.concurrency.min(len) {
            let (jobs, report, halt) = (jobs_rx.clone(), tx.clone(), stop.clone());
            let (agent, cancel, job) = (self.agent.clone(), self.cancel.clone(), work.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("windlass-batch-{n}"))
                .spawn(move || work_loop(&agent, &cancel, &jobs, &report, &halt, &*job));
            match spawned {
                Ok(handle) => workers.push(handle),
                // Fewer workers than asked for still finish every job.
                Err(e) if !workers.is_empty() => {
                    log::debug!("batch: started {n} workers, not more: {e}");
                    break;
                }
                Err(e) => {
                    // No thread at all: every job fails alike.
                    drop(tx);
                    let err = || {
                        let source = std::io::Error::new(e.kind(), e.to_string());
                        Error::with_source(
                            ErrorKind::Io,
                            "cannot start a batch worker thread",
                            source,
                        )
                    };
                    let (report, rx2) = mpsc::channel();
                    while let Some((index, _)) = next_job(&jobs_rx) {
                        let _ = report.send((index, Ok(Err(err()))));
                    }
                    return Results {
                        rx: rx2,
                        len,
                        stop,
                        workers,
                        own_token: None,
                        received: 0,
                    };
                }
            }
        }
        // The workers hold the only senders: the results end when they do.
        drop(tx);
        Results {
            rx,
            len,
            stop,
            workers,
            own_token: self.own_token.then(|| self.cancel.clone()),
            received: 0,
        }
    }
}

/// The jobs not yet taken, shared by the workers.
type Jobs<I> = Arc<Mutex<std::vec::IntoIter<(usize, I)>>>;

/// The next job, if any. A worker that panicked holding the lock did so
/// outside the job (jobs run unlocked), so the queue is still whole.
fn next_job<I>(jobs: &Jobs<I>) -> Option<(usize, I)> {
    jobs.lock().unwrap_or_else(|p| p.into_inner()).next()
}

fn work_loop<I, T, F>(
    agent: &Agent,
    cancel: &CancelToken,
    jobs: &Jobs<I>,
    tx: &Sender<Report<T>>,
    stop: &AtomicBool,
    work: &F,
) where
    F: Fn(&Worker<'_>, I) -> Result<T, Error>,
{
    let worker = Worker { agent, cancel };
    while !stop.load(Ordering::SeqCst) {
        let Some((index, item)) = next_job(jobs) else {
            return;
        };
        let outcome = if cancel.is_cancelled() {
            Ok(Err(Error::cancelled(Phase::PoolWait)))
        } else {
            catch_unwind(AssertUnwindSafe(|| work(&worker, item)))
        };
        let panicked = outcome.is_err();
        if tx.send((index, outcome)).is_err() || panicked {
            return;
        }
    }
}

impl<T> Results<T> {
    /// How many jobs the batch has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no jobs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Wait up to `timeout` for the next finished job: `Ok(None)` when the
    /// time ran out, `Err(())` when every job has been reported.
    #[allow(clippy::result_unit_err)]
    pub fn next_timeout(&mut self, timeout: std::time::Duration) -> Result<Option<Done<T>>, ()> {
        match self.rx.recv_timeout(timeout) {
            Ok(report) => {
                self.received += 1;
                Ok(Some(unpack(report)))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    /// Wait for every job and return the results in input order.
    pub fn in_order(mut self) -> Vec<Result<T, Error>> {
        let mut slots: Vec<Option<Result<T, Error>>> = (0..self.len).map(|_| None).collect();
        for done in self.by_ref() {
            if let Some(slot) = slots.get_mut(done.index) {
                *slot = Some(done.result);
            }
        }
        slots
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Cancelled,
                        "the batch stopped before this job ran",
                    ))
                })
            })
            .collect()
    }
}

fn unpack<T>((index, outcome): Report<T>) -> Done<T> {
    match outcome {
        Ok(result) => Done { index, result },
        Err(panic) => resume_unwind(panic),
    }
}

impl<T> Iterator for Results<T> {
    type Item = Done<T>;

    fn next(&mut self) -> Option<Done<T>> {
        let report = self.rx.recv().ok()?;
        self.received += 1;
        Some(unpack(report))
    }
}

impl<T> Drop for Results<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Nobody will read what the running jobs return: stop them, unless
        // the token is the caller's (it may cover more than this batch). Once
        // every result is out, the token stays: a result may be a response
        // whose body is still to be read.
        if let Some(token) = self.own_token.as_ref().filter(|_| self.received < self.len) {
            token.cancel();
        }
        for worker in self.workers.drain(..) {
            // A worker that panicked already reported it (or nobody asked).
            let _ = worker.join();
        }
    }
}
