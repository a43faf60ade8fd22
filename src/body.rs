//! The response body: framing on the connection, optional decompression, and
//! the connection's way home.
//!
//! A body returns its connection to the pool the moment its framing ends (not
//! when it is dropped). Dropped early, it drains a bounded remainder within a
//! short time budget and otherwise closes the connection: an unread body can
//! never pin a pooled connection.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use crate::codings::{Coding, Stage};
use crate::conn::Conn;
use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Phase};
use crate::exchange::Limit;
use crate::http1::Decoder;
use crate::observe::Observer;
use crate::pool::{CloseReason, Lease, Pool};
use crate::speed::SpeedCheck;

/// Most bytes read to save a connection whose body was dropped early.
const DRAIN_MAX: u64 = 64 * 1024;
/// Longest wait for those bytes.
const DRAIN_BUDGET: Duration = Duration::from_millis(100);
/// Most compressed bytes a decoder may take without producing any output.
/// Real streams yield output within a few hundred bytes (a gzip header, an
/// empty block; the largest legal gzip extra field is 64 KiB); a server sending endless empty gzip members or empty stored
/// deflate blocks would otherwise keep a single `read` spinning for as long
/// as it sends, since bytes keep arriving and no read timeout fires.
const MAX_INPUT_WITHOUT_OUTPUT: u64 = 256 * 1024;

/// A connection on loan to a body.
pub(crate) struct Held {
    pub conn: Box<Conn>,
    pub lease: Lease,
    pub pool: Pool,
    pub reusable: bool,
    /// The limit of each body read: the overall deadline and the read-idle timeout.
    pub limit: Limit,
    /// The attempt's reporting, until the body ends.
    pub observer: Observer,
}

impl Held {
    /// The body ended: the connection goes back to the pool if it may.
    fn finish(self) {
        if self.reusable {
            self.observer.connection_returned();
            self.pool.release(self.lease, self.conn);
        } else {
            self.close(CloseReason::NotReusable);
        }
    }

    /// Reading the body failed.
    fn fail(self) {
        let reason = if self.conn.was_cancelled() {
            CloseReason::Cancelled
        } else {
            CloseReason::Error
        };
        self.close(reason);
    }

    fn close(self, reason: CloseReason) {
        self.observer.connection_closed(reason);
        self.pool.discard(self.lease, self.conn, reason);
    }
}

/// The framed body bytes, straight off the connection.
pub(crate) struct RawBody {
    /// Boxed: a response is moved up through every layer of the call, and a
    /// pointer moves cheaper than the connection's whole loan.
    held: Option<Box<Held>>,
    decoder: Decoder,
    /// Once a read failed, every later read fails too: a truncated body must
    /// never look complete.
    failed: Option<ErrorKind>,
    started: Instant,
    /// Body bytes taken off the wire so far (after framing, before decoding).
    consumed: u64,
    /// Most body bytes that may be taken off the wire; more is BodyTooLarge.
    wire_limit: u64,
    /// Bytes a decoder may still take before it must produce output; reset
    /// by [`Body`] whenever it does. Unlimited for an identity body.
    input_without_output: u64,
    /// The minimum speed, when one applies.
    speed: Option<SpeedCheck>,
}

impl RawBody {
    pub(crate) fn new(held: Option<Box<Held>>, decoder: Decoder) -> RawBody {
        let mut body = RawBody {
            held,
            decoder,
            failed: None,
            started: Instant::now(),
            consumed: 0,
            wire_limit: u64::MAX,
            input_without_output: u64::MAX,
            speed: None,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The connection this body still holds, if its framing has not ended.
    pub(crate) fn holder(&self) -> Option<&Held> {
        self.held.as_deref()
    }

    fn finish(&mut self) {
        if let Some(held) = self.held.take() {
            held.observer.body_done(self.started);
            held.finish();
        }
    }

    fn fail(&mut self, err: io::Error) -> io::Error {
        let err = Error::from_io(err);
        let err = match err.kind() {
            ErrorKind::Timeout(_) | ErrorKind::Cancelled | ErrorKind::Protocol | ErrorKind::Tls => {
                err
            }
            _ => Error::with_source(ErrorKind::Io, "error reading the response body", err),
        };
        self.fail_as(err.kind());
        err.into()
    }

    /// From now on every read fails with `kind`; the connection is closed.
    fn fail_as(&mut self, kind: ErrorKind) {
        self.failed = Some(kind);
        if let Some(held) = self.held.take() {
            held.fail();
        }
    }

    fn ended(&self) -> io::Result<()> {
        match self.failed {
            None => Ok(()),
            Some(kind) => Err(Error::new(
                kind,
                "the response body failed earlier and cannot be read further",
            )
            .into()),
        }
    }

    /// Read whatever is left, up to [`DRAIN_MAX`] bytes, so the connection can
    /// be reused; close it if that is not enough.
    fn drain(&mut self) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        let worth_it = !held.conn.was_cancelled()
            && held.reusable
            && self
                .decoder
                .known_remaining()
                .is_none_or(|n| n <= DRAIN_MAX);
        if worth_it {
            let deadline = held
                .limit
                .deadline
                .min(Deadline::after(Instant::now(), Some(DRAIN_BUDGET)));
            let limit = &Limit::until(Phase::Body, deadline, None);
            let mut drained = 0u64;
            loop {
                let Some(held) = self.held.as_mut() else {
                    return;
                };
                match self.decoder.fill_buf(&mut held.conn.reading(limit)) {
                    Ok([]) => {
                        self.finish();
                        return;
                    }
                    Ok(buf) => {
                        let n = buf.len();
                        drained += n as u64;
                        if drained > DRAIN_MAX {
                            break;
                        }
                        self.decoder.consume(&mut held.conn.reading(limit), n);
                    }
                    Err(_) => break,
                }
            }
        }
        if let Some(held) = self.held.take() {
            held.close(CloseReason::NotReusable);
        }
    }
}

impl Read for RawBody {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.input_without_output != u64::MAX {
            // Under a decoder that reads rather than borrows the buffer:
            // through the same path, so its input is bounded the same way.
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            self.consume(n);
            return Ok(n);
        }
        let Some(held) = self.held.as_mut() else {
            self.ended()?;
            return Ok(0);
        };
        let tightened = self.speed.as_ref().map(|s| s.limit(held.limit));
        // The body's own limit, or a tighter one while the minimum speed
        // still waits for bytes.
        let limit = tightened.as_ref().unwrap_or(&held.limit);
        match self.decoder.read(&mut held.conn.reading(limit), out) {
            Ok(n) => {
                self.consumed += n as u64;
                held.observer.metrics.received(n as u64);
                self.check_speed(n)?;
                if self.decoder.is_done() {
                    self.finish();
                }
                Ok(n)
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl RawBody {
    /// Measure the body against its minimum speed, if it has one.
    pub(crate) fn set_min_speed(&mut self, min: crate::MinSpeed) {
        self.speed = Some(SpeedCheck::new(min, Instant::now()));
    }

    fn check_speed(&mut self, n: usize) -> io::Result<()> {
        let (Some(speed), Some(held)) = (self.speed.as_mut(), self.held.as_deref()) else {
            return Ok(());
        };
        match speed.record(n, Instant::now(), &held.conn.sock.host) {
            Ok(()) => Ok(()),
            Err(err) => {
                self.fail_as(err.kind());
                Err(err.into())
            }
        }
    }
}

impl RawBody {
    /// Refuse more input when the wire limit is reached or a decoder has
    /// taken too much without producing output. Checked before each fill,
    /// so a decoder can never loop on input for longer than the bound.
    fn check_input_bounds(&mut self) -> io::Result<()> {
        let err = if self.input_without_output == 0 {
            Error::protocol(format!(
                "the compressed response body produced no output from {MAX_INPUT_WITHOUT_OUTPUT} bytes of input"
            ))
        } else if self.consumed >= self.wire_limit {
            Error::new(
                ErrorKind::BodyTooLarge,
                format!(
                    "compressed response body is larger than the {} byte limit",
                    self.wire_limit
                ),
            )
        } else {
            return Ok(());
        };
        self.fail_as(err.kind());
        Err(err.into())
    }

    fn count_input(&mut self, n: usize) {
        self.consumed += n as u64;
        self.input_without_output = self.input_without_output.saturating_sub(n as u64);
    }
}

impl BufRead for RawBody {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.held.is_some() {
            self.check_input_bounds()?;
        }
        let Some(held) = self.held.as_mut() else {
            self.ended()?;
            return Ok(&[]);
        };
        let tightened = self.speed.as_ref().map(|s| s.limit(held.limit));
        // The body's own limit, or a tighter one while the minimum speed
        // still waits for bytes.
        let limit = tightened.as_ref().unwrap_or(&held.limit);
        let len = match self.decoder.fill_buf(&mut held.conn.reading(limit)) {
            Ok(buf) => buf.len(),
            Err(e) => return Err(self.fail(e)),
        };
        if len == 0 {
            self.finish();
            return Ok(&[]);
        }
        // The decoder hands out a prefix of the connection's buffer; the
        // reading it was lent has ended, so take the same bytes from there.
        let held = self.held.as_mut().expect("still held");
        Ok(&held.conn.buffered()[..len])
    }

    fn consume(&mut self, n: usize) {
        self.count_input(n);
        // A decoder consumes what it read: that is when the bytes count.
        if self.check_speed(n).is_err() {
            return;
        }
        if let Some(held) = self.held.as_mut() {
            held.observer.metrics.received(n as u64);
            self.decoder.consume(&mut held.conn.reading(&held.limit), n);
            if self.decoder.is_done() {
                self.finish();
            }
        }
    }
}

impl Drop for RawBody {
    fn drop(&mut self) {
        self.drain();
    }
}

/// How the body is decoded on top of its framing.
enum Decoding {
    // The identity body is the hot path and stays inline.
    Identity(RawBody),
    /// A stack of decoders (see [`crate::codings`]), built without reading.
    Coded(Box<dyn Stage>),
    /// A body made in memory or by the caller ([`Body::from_reader`]), with a
    /// finished connection-less `RawBody` for the limits to be set on.
    /// (In a `Mutex` only so that `Body` stays `Sync`; it is never locked,
    /// `get_mut` reaches it.)
    Reader(std::sync::Mutex<Box<dyn Read + Send>>, RawBody),
}

/// The body of a response: an [`io::Read`] that hands the connection back to
/// the pool when it reaches the end.
///
/// Content codings this build decodes (gzip and deflate with the `gzip`
/// feature, `br` with `brotli`, `zstd` with `zstd`, stacked ones too) are
/// decoded transparently unless the request set its own `Accept-Encoding`;
/// transfer codings (`Transfer-Encoding: gzip, chunked`) always are. A
/// decoded body is bounded: past the agent's
/// [`decoded_limit`](crate::AgentBuilder::decoded_limit) (or
/// [`with_limit`](Body::with_limit)) a read fails with
/// [`ErrorKind::BodyTooLarge`], so a decompression bomb cannot fill memory
/// or disk.
///
/// A body that ends early, is cut off, or breaks its framing returns an
/// error, never a short successful read; after an error, every later read
/// fails too. Convert the `io::Error` back into a
/// [`windlass::Error`](crate::Error) with [`Error::from_io`](crate::Error::from_io).
pub struct Body {
    decoding: Decoding,
    /// Bytes handed to the caller so far.
    delivered: u64,
    /// Most bytes the caller may be handed; more is BodyTooLarge.
    limit: u64,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl Body {
    /// A body undoing `codings` in order (none: the bytes as framed), handing
    /// out at most `limit` bytes.
    pub(crate) fn new(mut raw: RawBody, codings: &[Coding], limit: u64) -> Body {
        let decoding = if codings.is_empty() {
            Decoding::Identity(raw)
        } else {
            raw.input_without_output = MAX_INPUT_WITHOUT_OUTPUT;
            Decoding::Coded(crate::codings::decoder(raw, codings))
        };
        Body {
            decoding,
            delivered: 0,
            limit,
        }
    }

    /// Fail with [`ErrorKind::BodyTooLarge`] once more than `limit` bytes
    /// (after decoding) have been read, in place of the agent's
    /// [`decoded_limit`](crate::AgentBuilder::decoded_limit) for a decoded
    /// body (an undecoded one has no limit of its own).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), windlass::Error> {
    /// let mut body = windlass::get("http://127.0.0.1:8080/dump")
    ///     .call()?
    ///     .into_body()
    ///     .with_limit(100 * 1024 * 1024);
    /// std::io::copy(&mut body, &mut std::io::sink()).map_err(windlass::Error::from_io)?;
    /// # Ok(()) }
    /// ```
    pub fn with_limit(mut self, limit: u64) -> Body {
        self.limit = limit;
        self
    }

    /// A body that reads from `reader`, not from a connection: for a
    /// response a [`Middleware`](crate::Middleware) makes itself, or one
    /// converted from an `http::Response`.
    pub fn from_reader(reader: impl Read + Send + 'static) -> Body {
        let raw = RawBody::new(
            None,
            crate::http1::Decoder::new(crate::http1::Framing::Empty),
        );
        Body {
            decoding: Decoding::Reader(std::sync::Mutex::new(Box::new(reader)), raw),
            delivered: 0,
            limit: u64::MAX,
        }
    }

    /// A body of these bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Body {
        Body::from_reader(io::Cursor::new(bytes.into()))
    }

    fn raw_mut(&mut self) -> &mut RawBody {
        match &mut self.decoding {
            Decoding::Identity(raw) | Decoding::Reader(_, raw) => raw,
            Decoding::Coded(stage) => stage.raw(),
        }
    }

    /// Read the whole body, failing with [`ErrorKind::BodyTooLarge`] rather
    /// than holding more than `limit` decoded bytes.
    pub(crate) fn read_limited(&mut self, limit: u64) -> Result<Vec<u8>, Error> {
        self.limit = self.limit.min(limit);
        // The compressed stream is held to the same limit as its output.
        let raw = self.raw_mut();
        raw.wire_limit = limit;
        // Nobody reads a buffered body as it arrives, so nobody would give up
        // on one that dribbles: a default minimum speed does.
        if raw.speed.is_none() {
            raw.set_min_speed(crate::MinSpeed::BUFFERED_DEFAULT);
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = self.read(&mut chunk).map_err(Error::from_io)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Count what goes to the caller against the limit.
    fn deliver(&mut self, n: usize) -> io::Result<usize> {
        self.delivered += n as u64;
        if self.delivered > self.limit {
            let limit = self.limit;
            self.raw_mut().fail_as(ErrorKind::BodyTooLarge);
            return Err(Error::new(
                ErrorKind::BodyTooLarge,
                format!("response body is larger than the {limit} byte limit"),
            )
            .into());
        }
        Ok(n)
    }
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.decoding {
            Decoding::Identity(raw) => raw.read(out)?,
            Decoding::Reader(reader, _) => match reader.get_mut() {
                Ok(reader) => reader.read(out)?,
                Err(poisoned) => poisoned.into_inner().read(out)?,
            },
            Decoding::Coded(_) => self.read_decoded(out)?,
        };
        self.deliver(n)
    }
}

impl Body {
    fn read_decoded(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Decoding::Coded(stage) = &mut self.decoding else {
            return Ok(0);
        };
        match stage.read(out) {
            // The compressed stream ended: the framing must end too, so the
            // connection goes home now rather than at drop.
            Ok(0) if !out.is_empty() => {
                let raw = self.raw_mut();
                raw.ended()?;
                raw.drain();
                Ok(0)
            }
            Ok(n) => {
                if n > 0 {
                    self.raw_mut().input_without_output = MAX_INPUT_WITHOUT_OUTPUT;
                }
                Ok(n)
            }
            Err(e) => {
                // An error from the framing layer already carries its own
                // kind; a decoder may have wrapped it in one of its own.
                let is_ours = e.get_ref().is_some_and(|i| i.is::<Error>());
                if is_ours {
                    return Err(e);
                }
                let raw = self.raw_mut();
                if let Some(kind) = raw.failed {
                    return Err(
                        Error::with_source(kind, "reading the response body failed", e).into(),
                    );
                }
                // Otherwise the decoder refused the stream: the server's fault.
                raw.fail_as(ErrorKind::Protocol);
                Err(Error::with_source(
                    ErrorKind::Protocol,
                    "cannot decode the compressed response body",
                    e,
                )
                .into())
            }
        }
    }
}
