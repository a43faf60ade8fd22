//! Cancels fired from another thread at chosen times, each stamped with the
//! moment it fired so the worker can time how long its call took to end.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use windlass::CancelToken;

/// A cancel to fire from the canceller thread at `due`.
pub struct Cancel {
    pub due: Instant,
    pub token: CancelToken,
    /// When it was fired (nanoseconds since `epoch`), 0 until then.
    pub fired: Arc<AtomicU64>,
}

impl PartialEq for Cancel {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Cancel {}
impl PartialOrd for Cancel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cancel {
    /// Earliest due first out of the max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.due.cmp(&self.due)
    }
}

/// Fires cancels at their due times until the sender side is dropped.
pub fn canceller(rx: &Receiver<Cancel>, epoch: Instant) {
    let mut heap = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|c: &Cancel| c.due <= now) {
            let c = heap.pop().expect("peeked");
            let at = u64::try_from(Instant::now().duration_since(epoch).as_nanos()).unwrap_or(1);
            c.fired.store(at.max(1), Ordering::SeqCst);
            c.token.cancel();
        }
        let got = match heap.peek() {
            Some(next) => rx.recv_timeout(next.due.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(c) => heap.push(c),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
