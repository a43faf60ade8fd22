//! What the pool needs from a connection, and nothing more.
//!
//! The pool is generic over this trait (as hyper-util's `Pooled<T: Poolable>`
//! is), so its accounting is tested with a fake connection and no socket;
//! [`Conn`] is the only implementation outside the tests.

use std::time::{Duration, Instant};

use crate::conn::Conn;

/// A connection the pool can hold, hand out, look at and close.
///
/// `Send + 'static` because idle connections are closed by the reaper thread
/// and handed between request threads.
pub(crate) trait Poolable: Send + 'static {
    /// A number that names the connection in logs.
    fn id(&self) -> u64;

    /// When it was opened, for `max_lifetime`.
    fn created(&self) -> Instant;

    /// The server's `Keep-Alive: timeout`, if it sent one: the pool closes an
    /// idle connection a little before it.
    fn server_keep_alive(&self) -> Option<Duration>;

    /// The request on it is over: forget the request's cancel token. True if
    /// it was cancelled, in which case the connection must not be reused.
    fn detach_cancel(&mut self) -> bool;

    /// Get ready to rest in the idle list. False if it cannot be reused
    /// (unread bytes are left on it).
    fn make_idle(&mut self, now: Instant) -> bool;

    /// Look, without blocking, whether an idle connection can still be used:
    /// not closed by the server, nothing unsolicited received.
    fn is_alive(&mut self) -> bool;

    /// Close it now without blocking for long. May write (a TLS
    /// close_notify), so the pool never calls it under its lock.
    fn close(self: Box<Self>);
}

impl Poolable for Conn {
    fn id(&self) -> u64 {
        self.info.id
    }

    fn created(&self) -> Instant {
        self.info.created
    }

    fn server_keep_alive(&self) -> Option<Duration> {
        self.info.server_keep_alive
    }

    fn detach_cancel(&mut self) -> bool {
        Conn::detach_cancel(self)
    }

    fn make_idle(&mut self, now: Instant) -> bool {
        Conn::make_idle(self, now)
    }

    fn is_alive(&mut self) -> bool {
        Conn::is_alive(self)
    }

    fn close(self: Box<Self>) {
        Conn::close(self)
    }
}
