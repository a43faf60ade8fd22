//! `Expect: 100-continue` (RFC 9110 §10.1.1): for a large request body, send
//! the head alone and wait a little for the server's verdict, so a body the
//! server refuses (401, 413, a redirect) is never sent.
//!
//! As Go's `Transport.ExpectContinueTimeout`: the body goes on `100 Continue`
//! or when the wait runs out (servers that ignore the expectation are
//! common); a final response that arrives first answers the request and the
//! body stays unsent. A `417 Expectation Failed` is retried once without the
//! expectation (as curl).

use std::time::Duration;

use http::header::EXPECT;
use http::{HeaderMap, StatusCode};

use crate::conn::Conn;
use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Phase};
use crate::exchange::Exchange;
use crate::extras::Extras;
use crate::http1::{self, Head};
use crate::observe::Event;

/// The wait when the caller set `Expect: 100-continue` by hand and the agent
/// has no [`expect_continue`](crate::AgentBuilder::expect_continue): Go's
/// and curl's default.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// Bodies from this size up carry the expectation: curl's threshold.
pub(crate) const DEFAULT_THRESHOLD: u64 = 1024 * 1024;

/// Most 1xx responses skipped while waiting.
const MAX_INFORMATIONAL: usize = 16;

/// How long to wait for `100 Continue` before sending a body of `len` bytes
/// (`None`: streamed, size unknown), or `None` for no expectation. `refused`:
/// the server already answered an expectation with 417.
pub(crate) fn wait_for(
    extras: &Extras,
    headers: &HeaderMap,
    len: Option<u64>,
    refused: bool,
) -> Option<Duration> {
    if refused || len == Some(0) {
        return None;
    }
    if caller_expects(headers) {
        return Some(extras.expect_continue.unwrap_or(DEFAULT_WAIT));
    }
    let wait = extras.expect_continue?;
    len.map_or(extras.expect_streamed, |n| n >= extras.expect_threshold)
        .then_some(wait)
}

/// The caller set `Expect: 100-continue` on the request.
pub(crate) fn caller_expects(headers: &HeaderMap) -> bool {
    headers
        .get_all(EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// What the server said while the body waited.
pub(crate) enum Answer {
    /// `100 Continue`, or nothing within the wait: send the body.
    Send,
    /// A final response: the body is not sent.
    Final(Box<Head>),
}

/// Wait up to `wait` for the server's verdict on the head just written.
pub(crate) fn await_verdict(
    conn: &mut Conn,
    ex: &mut Exchange,
    wait: Duration,
    max_head: usize,
) -> Result<Answer, Error> {
    let mut limit = ex.enter(Phase::ExpectContinue);
    let overall = limit.deadline;
    let own = Deadline::after(limit.started, Some(wait));
    limit.deadline = overall.min(own);
    // Bytes of a head cut off by the wait stay buffered for the head reader.
    let mut got_bytes = false;
    for _ in 0..MAX_INFORMATIONAL {
        let head = match http1::read_head(&mut conn.reading(&limit), max_head, &mut got_bytes) {
            Ok(head) => head,
            Err(e)
                if e.kind() == ErrorKind::Timeout(Phase::ExpectContinue)
                    && own.expired()
                    && !overall.expired() =>
            {
                done(ex, &limit, false);
                return Ok(Answer::Send);
            }
            Err(e) => return Err(e),
        };
        if head.status == StatusCode::CONTINUE {
            done(ex, &limit, true);
            return Ok(Answer::Send);
        }
        if !head.status.is_informational() || head.status == StatusCode::SWITCHING_PROTOCOLS {
            done(ex, &limit, false);
            return Ok(Answer::Final(Box::new(head)));
        }
    }
    Err(Error::protocol(format!(
        "more than {MAX_INFORMATIONAL} informational (1xx) responses"
    )))
}

fn done(ex: &Exchange, limit: &crate::exchange::Limit, continued: bool) {
    ex.emit(Event::ExpectContinueDone {
        continued,
        waited: limit.started.elapsed(),
    });
}
