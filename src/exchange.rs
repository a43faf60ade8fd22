//! One attempt of a request: its clock, its limits, and everything it reports.
//!
//! Every blocking step of an attempt starts with [`Exchange::enter`], which
//! closes the phase before it (its duration goes to the timings and the
//! metrics), moves the in-flight entry, tells the hooks, and returns the
//! [`Limit`] the next read, write or wait must respect. The socket stores no
//! phase and no deadline: it is handed the limit with each operation. Adding a
//! phase is four lines: a variant of [`Phase`], its words in `Phase::words`,
//! its row in [`PhaseInfo::of`], and the call that enters it (a row in
//! `phase_limit` too if it gets a `timeout_*` setting of its own).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::agent::Timeouts;
use crate::deadline::{CancelToken, Deadline};
use crate::error::{Error, ErrorKind, Phase};
use crate::inflight::InFlightPhase;
use crate::metrics::Timer;
use crate::observe::{Event, Observer};
use crate::timings::Timings;

/// A limit of time and the setting it comes from, for messages. Small and
/// `Copy`: it rides along with every limit, and its name and whether it is
/// the default are worked out only when a message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    /// A phase's own `timeout_*` (for the body: `timeout_read`).
    Phase(Phase, Duration),
    /// The request's overall `timeout`.
    Overall(Duration),
    /// `min_speed`: bytes per second over a window.
    MinSpeed(u64, Duration),
}

impl Setting {
    /// The builder method that sets it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Setting::Phase(phase, _) => match phase {
                Phase::Dns => "timeout_dns",
                Phase::Connect => "timeout_connect",
                Phase::Tls => "timeout_tls",
                Phase::PoolWait => "timeout_pool_wait",
                Phase::Write => "timeout_write",
                Phase::ResponseHead => "timeout_response_head",
                Phase::Body => "timeout_read",
                Phase::ProxyConnect | Phase::ProxyHandshake => "timeout_connect",
                Phase::ProxyTls => "timeout_tls",
                _ => "timeout",
            },
            Setting::Overall(_) => "timeout",
            Setting::MinSpeed(..) => "min_speed",
        }
    }

    /// How long it allows.
    pub(crate) fn value(&self) -> Duration {
        match *self {
            Setting::Phase(_, d) | Setting::Overall(d) | Setting::MinSpeed(_, d) => d,
        }
    }

    /// Whether the value is windlass's default rather than the caller's.
    fn is_default(&self) -> bool {
        let Setting::Phase(phase, value) = *self else {
            return false;
        };
        phase_limit(phase, &Timeouts::safe_defaults()) == Some(value)
    }
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
        let (name, value) = (self.name(), secs(self.value()));
        match self {
            Setting::MinSpeed(rate, _) => write!(f, "{name} = {rate} bytes/s over {value}"),
            _ if self.is_default() => write!(f, "{name}, default {value}"),
            _ => write!(f, "{name} = {value}"),
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
        let op = Deadline::after(now, Some(per_op.value()));
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
    /// Its end is a milestone timed from the start of the request (request
    /// written, first byte, body done) rather than a duration of its own.
    milestone: bool,
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
            Phase::ProxyConnect => (Some(F::Connecting), Some(Timer::Connect), None),
            Phase::ProxyTls => (
                Some(F::Connecting),
                Some(Timer::Tls),
                Some(Event::ProxyTlsStart),
            ),
            Phase::ProxyHandshake => (Some(F::Connecting), None, Some(Event::ProxyHandshakeStart)),
            Phase::ExpectContinue => (
                Some(F::AwaitingHead),
                None,
                Some(Event::ExpectContinueStart),
            ),
        };
        let milestone = matches!(
            phase,
            Phase::Write | Phase::ResponseHead | Phase::Body | Phase::LowSpeed
        );
        PhaseInfo {
            in_flight,
            timer,
            start,
            milestone,
        }
    }
}

/// The limit `limits` sets on `phase`, if any.
fn phase_limit(phase: Phase, limits: &Timeouts) -> Option<Duration> {
    match phase {
        Phase::Dns => limits.dns,
        Phase::Connect => limits.connect,
        Phase::Tls => limits.tls,
        Phase::PoolWait => limits.pool_wait,
        Phase::Write => limits.write,
        Phase::ResponseHead => limits.response_head,
        Phase::Body => limits.read,
        Phase::ProxyConnect | Phase::ProxyHandshake => limits.connect,
        Phase::ProxyTls => limits.tls,
        // Bounded by the overall deadline only (or, for the low speed, by
        // its own measure).
        _ => None,
    }
}

/// One attempt: its clock, its limits, and its reporting.
pub(crate) struct Exchange {
    pub observer: Observer,
    limits: Timeouts,
    overall: Deadline,
    overall_setting: Option<Setting>,
    cancel: Option<CancelToken>,
    /// The phase running now, when it began, and the setting that bounds it.
    current: Option<(Phase, Instant, Option<Setting>)>,
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

    /// End the current phase and start `phase`: record the one that ended,
    /// move the in-flight entry, announce the new one, and return its limit.
    pub(crate) fn enter(&mut self, phase: Phase) -> Limit {
        let now = Instant::now();
        self.finish_phase(now);
        self.start(phase, now)
    }

    /// Start `phase` at `now` (the previous one already closed).
    fn start(&mut self, phase: Phase, now: Instant) -> Limit {
        let limit = self.limit(phase, now);
        self.current = Some((phase, now, limit.bound_by));
        let info = PhaseInfo::of(phase);
        if let Some(f) = info.in_flight {
            self.observer.phase(f);
        }
        if let Some(event) = info.start {
            self.observer.emit(event);
        }
        limit
    }

    /// The limit of `phase` if it started at `now`.
    fn limit(&self, phase: Phase, now: Instant) -> Limit {
        let setting = phase_limit(phase, &self.limits).map(|d| Setting::Phase(phase, d));
        // The write and read-idle limits bound each operation's progress and
        // restart with every write or read (a large upload or download may
        // take as long as it keeps moving); the others run from the start of
        // their phase.
        let (phase_deadline, phase_bound, per_op) = match phase {
            Phase::Write | Phase::Body => (Deadline::Never, None, setting),
            _ => (
                Deadline::after(now, setting.map(|s| s.value())),
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
        let Some((phase, started, _)) = self.current.take() else {
            return;
        };
        let info = PhaseInfo::of(phase);
        // Milestones (written, first byte, body done) count from the start
        // of the request; the others are the phase's own duration.
        let since = if info.milestone {
            self.request_started
        } else {
            started
        };
        let d = now.saturating_duration_since(since);
        self.timings.record(phase, d);
        if let Some(timer) = info.timer {
            self.observer.time(timer, d);
        }
    }

    /// The attempt is over with a response head or an error: close the last
    /// phase, set the total, and hand the timings over.
    pub(crate) fn finish(&mut self) -> Timings {
        let now = Instant::now();
        self.finish_at(now)
    }

    fn finish_at(&mut self, now: Instant) -> Timings {
        self.finish_phase(now);
        self.timings.total = now.saturating_duration_since(self.request_started);
        std::mem::take(&mut self.timings)
    }

    /// The head is in: close the attempt's timings and start the body's
    /// phase, with one look at the clock.
    pub(crate) fn finish_into(&mut self, phase: Phase) -> (Timings, Limit) {
        let now = Instant::now();
        let timings = self.finish_at(now);
        (timings, self.start(phase, now))
    }

    /// The attempt's reporting, for the body to carry: the rest of the
    /// exchange stays behind, so the response moves a small value.
    pub(crate) fn into_observer(self) -> Observer {
        self.observer
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
            (ErrorKind::Timeout(phase), Some((current, _, bound_by))) if phase == current => {
                name_the_setting(err, bound_by)
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
    if err.source().is_some() || text.contains(setting.name()) {
        return err;
    }
    Error::new(err.kind(), format!("{text} ({setting})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_says_whether_it_is_the_default() {
        let s = Setting::Phase(Phase::ResponseHead, Duration::from_secs(30));
        assert_eq!(s.to_string(), "timeout_response_head, default 30 s");
        let s = Setting::Phase(Phase::Connect, Duration::from_millis(1500));
        assert_eq!(s.to_string(), "timeout_connect = 1.5 s");
        let s = Setting::Overall(Duration::from_secs(30));
        assert_eq!(s.to_string(), "timeout = 30 s");
        let s = Setting::MinSpeed(100, Duration::from_secs(30));
        assert_eq!(s.to_string(), "min_speed = 100 bytes/s over 30 s");
    }

    #[test]
    fn the_per_read_limit_binds_only_when_it_is_earlier() {
        let now = Instant::now();
        let per_op = Setting::Phase(Phase::Body, Duration::from_secs(30));
        let overall = Setting::Overall(Duration::from_secs(5));
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
