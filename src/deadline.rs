//! Time limits as values, and the token that stops a request from another thread.
//!
//! Every blocking operation in windlass runs under one [`Deadline`] (the earliest
//! of the request's overall limit and the current phase's limit) and an optional
//! [`CancelToken`]. Sockets translate the deadline into `SO_RCVTIMEO` /
//! `SO_SNDTIMEO`; everything that waits on a channel uses `recv_timeout` and
//! registers a wake-up hook with the token, so nothing waits on a bare sleep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A point in time by which an operation must finish, or no limit at all.
///
/// "No deadline" is a value rather than an `Option` checked everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// No limit.
    Never,
    /// Must finish by this instant.
    At(Instant),
}

impl Deadline {
    /// A deadline `timeout` after `start`, or none.
    pub(crate) fn after(start: Instant, timeout: Option<Duration>) -> Deadline {
        match timeout.and_then(|t| start.checked_add(t)) {
            Some(at) => Deadline::At(at),
            None => Deadline::Never,
        }
    }

    /// The earlier of the two.
    pub(crate) fn min(self, other: Deadline) -> Deadline {
        match (self, other) {
            (Deadline::Never, d) | (d, Deadline::Never) => d,
            (Deadline::At(a), Deadline::At(b)) => Deadline::At(a.min(b)),
        }
    }

    /// Time left: `None` for no limit, `Some(ZERO)` once passed.
    pub(crate) fn remaining(self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        }
    }

    /// Time left, measured from `now` (saves a clock read on hot paths).
    pub(crate) fn remaining_from(self, now: Instant) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::At(at) => Some(at.saturating_duration_since(now)),
        }
    }

    /// True once the instant has passed.
    pub(crate) fn expired(self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

/// Stops requests from any thread.
///
/// Attach a token with [`RequestBuilder::cancel_token`](crate::RequestBuilder::cancel_token);
/// one token may cover many requests. [`cancel()`](CancelToken::cancel) sets a flag
/// and shuts down every socket the token's requests are using, so a call blocked in a
/// `read` returns at once with [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled).
/// A call waiting for DNS, a pool slot, a connect or a retry back-off wakes up too.
/// A cancelled connection never goes back to the pool. A token that is never
/// cancelled costs nothing but its allocation.
///
/// ```
/// let token = windlass::CancelToken::new();
/// let for_other_thread = token.clone();
/// std::thread::spawn(move || for_other_thread.cancel()).join().unwrap();
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<TokenInner>,
}

#[derive(Default)]
struct TokenInner {
    cancelled: AtomicBool,
    hooks: Mutex<Hooks>,
    /// For a token made by [`CancelToken::linked`]: its hooks on the parent
    /// tokens, unregistered when the last clone of this token drops.
    links: Mutex<Vec<CancelHook>>,
}

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Hooks {
    next_id: u64,
    list: Vec<(u64, Hook)>,
}

impl CancelToken {
    /// A new token, not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancel every request that uses this token, now and in the future.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        // Run the hooks outside the lock: a hook may take other locks (the pool's).
        let hooks = std::mem::take(&mut self.lock().list);
        for (_, hook) in hooks {
            hook();
        }
    }

    /// A new token cancelled when this one or `other` is, for as long as it
    /// lives: the parents hold only a weak reference to it, and its hooks on
    /// them go away with its last clone.
    pub(crate) fn linked(&self, other: &CancelToken) -> CancelToken {
        let child = CancelToken::new();
        for parent in [self, other] {
            let weak = Arc::downgrade(&child.inner);
            let hook = parent.on_cancel(move || {
                if let Some(inner) = weak.upgrade() {
                    CancelToken { inner }.cancel();
                }
            });
            match hook {
                Some(hook) => child
                    .inner
                    .links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(hook),
                None => child.cancel(),
            }
        }
        child
    }

    /// Whether `other` is a clone of this token.
    pub(crate) fn same_as(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// True once [`cancel`](CancelToken::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hooks> {
        // A hook never panics while the lock is held, but do not let a poisoned
        // lock turn cancellation into a panic either.
        self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `hook` when the token is cancelled, until the returned guard drops.
    ///
    /// Returns `None` when the token is already cancelled (the hook is not kept,
    /// the caller must act as cancelled).
    pub(crate) fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> Option<CancelHook> {
        let id = {
            let mut hooks = self.lock();
            let id = hooks.next_id;
            hooks.next_id += 1;
            hooks.list.push((id, Box::new(hook)));
            id
        };
        // cancel() sets the flag before it takes the list, so either it saw our
        // hook or we see its flag.
        let guard = CancelHook {
            token: self.clone(),
            id,
        };
        if self.is_cancelled() {
            drop(guard);
            return None;
        }
        Some(guard)
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Keeps a cancel hook registered; dropping it unregisters the hook.
pub(crate) struct CancelHook {
    token: CancelToken,
    id: u64,
}

impl Drop for CancelHook {
    fn drop(&mut self) {
        let removed = {
            let mut hooks = self.token.lock();
            let found = hooks.list.iter().position(|(id, _)| *id == self.id);
            found.map(|i| hooks.list.swap_remove(i))
        };
        // Dropped outside the lock: a hook may own a socket, and closing it is a syscall.
        drop(removed);
    }
}

/// Wait for `dur` or until the token is cancelled; `Err(())` when cancelled.
pub(crate) fn sleep(dur: Duration, token: Option<&CancelToken>) -> Result<(), ()> {
    let Some(token) = token else {
        std::thread::sleep(dur);
        return Ok(());
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let Some(_hook) = token.on_cancel(move || {
        let _ = tx.try_send(());
    }) else {
        return Err(());
    };
    match rx.recv_timeout(dur) {
        Ok(()) => Err(()),
        Err(_) if token.is_cancelled() => Err(()),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_the_identity_of_min() {
        let at = Deadline::At(Instant::now());
        assert_eq!(Deadline::Never.min(at), at);
        assert_eq!(at.min(Deadline::Never), at);
        assert_eq!(Deadline::Never.remaining(), None);
    }

    #[test]
    fn min_takes_the_earlier_instant() {
        let now = Instant::now();
        let a = Deadline::At(now + Duration::from_secs(1));
        let b = Deadline::At(now + Duration::from_secs(2));
        assert_eq!(a.min(b), a);
        assert_eq!(b.min(a), a);
    }

    #[test]
    fn a_past_deadline_is_expired() {
        let d = Deadline::after(Instant::now(), Some(Duration::ZERO));
        assert!(d.expired());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn cancel_runs_hooks_once_and_late_registration_is_refused() {
        let token = CancelToken::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        let hook = token.on_cancel(move || tx.send(()).unwrap());
        assert!(hook.is_some());
        token.cancel();
        token.cancel();
        assert_eq!(rx.try_iter().count(), 1);
        assert!(token.on_cancel(|| {}).is_none());
    }

    #[test]
    fn dropped_hook_is_not_run() {
        let token = CancelToken::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        drop(token.on_cancel(move || tx.send(()).unwrap()));
        token.cancel();
        assert_eq!(rx.try_iter().count(), 0);
    }

    #[test]
    fn a_linked_token_follows_either_parent_and_unhooks_when_dropped() {
        let (a, b) = (CancelToken::new(), CancelToken::new());
        let child = a.linked(&b);
        assert!(!child.is_cancelled());
        b.cancel();
        assert!(child.is_cancelled());
        assert!(!a.is_cancelled());
        drop(child);
        let child = a.linked(&CancelToken::new());
        assert_eq!(a.lock().list.len(), 1);
        drop(child);
        assert_eq!(a.lock().list.len(), 0);
        assert!(a.linked(&b).is_cancelled());
    }

    #[test]
    fn sleep_wakes_on_cancel() {
        let token = CancelToken::new();
        let other = token.clone();
        let t = std::thread::spawn(move || sleep(Duration::from_secs(30), Some(&other)));
        // The sleeper may or may not have registered yet; either way it must return Err.
        token.cancel();
        assert_eq!(t.join().unwrap(), Err(()));
    }
}
