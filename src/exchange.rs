//! One attempt of a request: its clock, its limits, and everything it reports.
//!
//! Every blocking step of an attempt starts with [`Exchange::enter`], which
//! closes the phase before it (its duration goes to the timings and the
//! metrics), moves the in-flight entry, tells the hooks, and returns the
//! [`Limit`] the next read, write or wait must respect. The socket stores no
//! phase and no deadline: it is handed the limit with each operation. Adding a
//! phase is a variant of [`Phase`], a row in [`PhaseInfo::of`], and the call
//! that enters it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::agent::Timeouts;
use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, ErrorKind, Phase};
use crate::inflight::InFlightPhase;
use crate::metrics::Timer;
use crate::observe::{Event, Observer};
use crate::timings::Timings;

/// A limit of time: the setting it comes from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The builder method that sets it (`timeout_connect`, `timeout`, …).
    pub name: &'static str,
    pub value: Duration,
    /// Whether the value is windlass's default rather than the caller's.
    pub default: bool,
    /// For a minimum speed: the bytes per second required over `value`.
    pub rate: Option<u64>,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |d: Duration| {
            let s = d.as_secs_f64();
            if s.fract() == 0.0 {
                format!("{s:.0} s")
            } else {
                format!("{s} s")
            }
        };
        if let Some(rate) = self.rate {
            return write!(
                f,
                "{} = {rate} bytes/s over {}",
                self.name,
                secs(self.value)
            );
        }
        if self.default {
            write!(f, "{}, default {}", self.name, secs(self.value))
        } else {
            write!(f, "{} = {}", self.name, secs(self.value))
        }
    }
}

/// What the next blocking operation is allowed: until when, and how long any
/// one read or write may wait for progress. Made by [`Exchange::enter`];
/// cheap to copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub phase: Phase,
    /// When the phase began (for "after N s" in messages).
    pub started: Instant,
    /// The earliest of the phase's own limit and the request's overall one.
    pub deadline: Deadline,
    /// Which setting `deadline` comes from.
    pub bound_by: Option<Setting>,
    /// A limit per read or write, restarted each time (the read-idle timeout).
    pub per_op: Option<Setting>,
}

impl Limit {
    /// No limit at all, for work outside a request (tests, probes).
    pub(crate) fn none(phase: Phase) -> Limit {
        Limit {
            phase,
            started: Instant::now(),
            deadline: Deadline::Never,
            bound_by: None,
            per_op: None,
        }
    }

    /// A limit that ends at `deadline`, set by `setting`.
    pub(crate) fn until(phase: Phase, deadline: Deadline, setting: Option<Setting>) -> Limit {
        Limit {
            bound_by: setting,
            deadline,
            ..Limit::none(phase)
        }
    }

    /// The deadline of one operation that starts now, and the setting that
    /// makes it.
    pub(crate) fn for_op(&self, now: Instant) -> (Deadline, Option<Setting>) {
        let Some(per_op) = self.per_op else {
            return (self.deadline, self.bound_by);
        };
        let op = Deadline::after(now, Some(per_op.value));
        if op.min(self.deadline) == self.deadline {
            (self.deadline, self.bound_by)
        } else {
            (op, Some(per_op))
        }
    }

    /// The error for this limit running out, naming the setting that did.
    pub(crate) fn timeout(&self, host: &str, setting: Option<Setting>) -> Error {
        timeout_error(self.phase, host, self.started.elapsed(), setting)
    }
}

/// `timed out after 30.0 s waiting for the response head from host:port
/// (timeout_response_head, default 30 s)`.
pub(crate) fn timeout_error(
    phase: Phase,
    host: &str,
    elapsed: Duration,
    setting: Option<Setting>,
) -> Error {
    let plain = Error::timeout(phase, host, elapsed);
    match setting {
        None => plain,
        Some(setting) => Error::new(ErrorKind::Timeout(phase), format!("{plain} ({setting})")),
    }
}

/// What each phase is called, which setting limits it, and where its time goes.
struct PhaseInfo {
    /// Where `in_flight()` shows a request in this phase.
    in_flight: Option<InFlightPhase>,
    /// The histogram its duration feeds.
    timer: Option<Timer>,
    /// The event that announces it.
    start: Option<Event<'static>>,
}

impl PhaseInfo {
    /// One row per phase.
    fn of(phase: Phase) -> PhaseInfo {
        use InFlightPhase as F;
        let (in_flight, timer, start) = match phase {
            Phase::RateLimit => (Some(F::RateLimited), None, None),
            // PoolWaitStart is told by the pool, only when the call waits.
            Phase::PoolWait => (Some(F::WaitingForSlot), Some(Timer::PoolWait), None),
            Phase::Dns => (Some(F::Connecting), None, None),
            Phase::Connect => (Some(F::Connecting), Some(Timer::Connect), None),
            Phase::Tls => (Some(F::Connecting), Some(Timer::Tls), Some(Event::TlsStart)),
            Phase::Write => (Some(F::Writing), None, None),
            Phase::ResponseHead => (Some(F::AwaitingHead), Some(Timer::FirstByte), None),
            Phase::Body | Phase::LowSpeed => (Some(F::BodyHeld), None, None),
            Phase::RetryWait => (None, None, None),
        };
        PhaseInfo {
            in_flight,
            timer,
            start,
        }
    }
}

/// The setting that limits `phase` in `limits`, if any.
fn phase_setting(phase: Phase, limits: &Timeouts) -> Option<Setting> {
    let defaults = Timeouts::safe_defaults();
    let (name, value, default) = match phase {
        Phase::Dns => ("timeout_dns", limits.dns, defaults.dns),
        Phase::Connect => ("timeout_connect", limits.connect, defaults.connect),
        Phase::Tls => ("timeout_tls", limits.tls, defaults.tls),
        Phase::PoolWait => ("timeout_pool_wait", limits.pool_wait, defaults.pool_wait),
        Phase::Write => ("timeout_write", limits.write, defaults.write),
        Phase::ResponseHead => (
            "timeout_response_head",
            limits.response_head,
            defaults.response_head,
        ),
        Phase::Body => ("timeout_read", limits.read, defaults.read),
        Phase::RetryWait | Phase::RateLimit | Phase::LowSpeed => return None,
    };
    value.map(|value| Setting {
        name,
        value,
        default: Some(value) == default,
        rate: None,
    })
}

/// One attempt: its clock, its limits, and its reporting.
pub(crate) struct Exchange {
    pub observer: Observer,
    limits: Timeouts,
    overall: Deadline,
    overall_setting: Option<Setting>,
    cancel: Option<CancelToken>,
    /// The phase running now and its limit.
    current: Option<Limit>,
    /// When the request (all attempts and redirects) began.
    request_started: Instant,
    pub timings: Timings,
}

impl Exchange {
    pub(crate) fn new(
        observer: Observer,
        limits: Timeouts,
        overall: Deadline,
        overall_setting: Option<Setting>,
        cancel: Option<CancelToken>,
        request_started: Instant,
        timings: Timings,
    ) -> Exchange {
        Exchange {
            observer,
            limits,
            overall,
            overall_setting,
            cancel,
            current: None,
            request_started,
            timings,
        }
    }

    pub(crate) fn cancel(&self) -> Option<&CancelToken> {
        self.cancel.as_ref()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }

    /// The request's overall deadline.
    pub(crate) fn overall(&self) -> Deadline {
        self.overall
    }

    /// End the current phase and start `phase`: record the one that ended,
    /// move the in-flight entry, announce the new one, and return its limit.
    pub(crate) fn enter(&mut self, phase: Phase) -> Limit {
        let now = Instant::now();
        self.finish_phase(now);
        let limit = self.limit(phase, now);
        self.current = Some(limit);
        let info = PhaseInfo::of(phase);
        if let Some(f) = info.in_flight {
            self.observer.phase(f);
        }
        if let Some(event) = info.start {
            self.observer.emit(event);
        }
        limit
    }

    /// The limit of `phase` if it started at `now`, without entering it.
    pub(crate) fn limit(&self, phase: Phase, now: Instant) -> Limit {
        let setting = phase_setting(phase, &self.limits);
        // The read-idle limit restarts with every read; the others run from
        // the start of their phase.
        let (phase_deadline, phase_bound, per_op) = match phase {
            Phase::Body => (Deadline::Never, None, setting),
            _ => (
                Deadline::after(now, setting.map(|s| s.value)),
                setting,
                None,
            ),
        };
        let (deadline, bound_by) = if phase_deadline.min(self.overall) == self.overall
            && self.overall != Deadline::Never
        {
            (self.overall, self.overall_setting)
        } else {
            (phase_deadline, phase_bound)
        };
        Limit {
            phase,
            started: now,
            deadline,
            bound_by,
            per_op,
        }
    }

    /// Close the current phase: its time goes to the timings and metrics.
    fn finish_phase(&mut self, now: Instant) {
        let Some(Limit { phase, started, .. }) = self.current.take() else {
            return;
        };
        let elapsed = now.saturating_duration_since(started);
        let since_request = now.saturating_duration_since(self.request_started);
        self.timings.record(phase, elapsed, since_request);
        if let Some(timer) = PhaseInfo::of(phase).timer {
            // First byte is measured from the start of the request.
            let d = match timer {
                Timer::FirstByte => since_request,
                _ => elapsed,
            };
            self.observer.time(timer, d);
        }
    }

    /// The attempt is over with a response head or an error: close the last
    /// phase and set the total.
    pub(crate) fn finish(&mut self) -> Timings {
        let now = Instant::now();
        self.finish_phase(now);
        self.timings.total = now.saturating_duration_since(self.request_started);
        self.timings.clone()
    }

    /// Tell the hooks.
    pub(crate) fn emit(&self, event: Event<'_>) {
        self.observer.emit(event);
    }

    /// A connection is ready: reused from the pool or new.
    pub(crate) fn got_connection(
        &mut self,
        reused: bool,
        idle: Option<Duration>,
        remote: SocketAddr,
    ) {
        self.timings.reused = reused;
        self.timings.idle_before_reuse = idle;
        self.timings.remote_addr = Some(remote);
        self.observer.emit(Event::GotConnection {
            reused,
            idle,
            remote,
        });
    }

    /// `err` with this attempt's timings, the last phase closed. A timeout
    /// of the current phase that does not yet say which setting ran out (one
    /// from the resolver, the connect race or the pool) is told.
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        let err = match (err.kind(), self.current) {
            (ErrorKind::Timeout(phase), Some(limit)) if phase == limit.phase => {
                name_the_setting(err, limit.bound_by)
            }
            _ => err,
        };
        // The phase that failed did not finish: it leaves no duration.
        self.current = None;
        let timings = self.finish();
        err.with_timings(timings)
    }
}

/// A timeout message with the setting that ran out, unless it has it already.
fn name_the_setting(err: Error, setting: Option<Setting>) -> Error {
    use std::error::Error as _;
    let Some(setting) = setting else {
        return err;
    };
    let text = err.to_string();
    if err.source().is_some() || text.contains(setting.name) {
        return err;
    }
    Error::new(err.kind(), format!("{text} ({setting})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_says_whether_it_is_the_default() {
        let s = Setting {
            name: "timeout_response_head",
            value: Duration::from_secs(30),
            default: true,
            rate: None,
        };
        assert_eq!(s.to_string(), "timeout_response_head, default 30 s");
        let s = Setting {
            name: "timeout_connect",
            value: Duration::from_millis(1500),
            default: false,
            rate: None,
        };
        assert_eq!(s.to_string(), "timeout_connect = 1.5 s");
    }

    #[test]
    fn the_per_read_limit_binds_only_when_it_is_earlier() {
        let now = Instant::now();
        let per_op = Setting {
            name: "timeout_read",
            value: Duration::from_secs(30),
            default: true,
            rate: None,
        };
        let overall = Setting {
            name: "timeout",
            value: Duration::from_secs(5),
            default: false,
            rate: None,
        };
        let limit = Limit {
            phase: Phase::Body,
            started: now,
            deadline: Deadline::At(now + Duration::from_secs(5)),
            bound_by: Some(overall),
            per_op: Some(per_op),
        };
        assert_eq!(limit.for_op(now).1, Some(overall));
        let limit = Limit {
            deadline: Deadline::At(now + Duration::from_secs(60)),
            ..limit
        };
        assert_eq!(limit.for_op(now).1, Some(per_op));
    }
}
