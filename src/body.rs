//! The response body: framing on the connection, optional decompression, and
//! the connection's way home.
//!
//! A body returns its connection to the pool the moment its framing ends (not
//! when it is dropped). Dropped early, it drains a bounded remainder within a
//! short time budget and otherwise closes the connection: an unread body can
//! never pin a pooled connection.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

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
// The identity body is the hot path and stays inline; decoders are boxed.
#[allow(clippy::large_enum_variant)]
enum Decoding {
    Identity(RawBody),
    #[cfg(feature = "gzip")]
    Gzip(Box<flate2::bufread::MultiGzDecoder<RawBody>>),
    #[cfg(feature = "gzip")]
    Zlib(Box<flate2::bufread::ZlibDecoder<RawBody>>),
    #[cfg(feature = "gzip")]
    Deflate(Box<flate2::bufread::DeflateDecoder<RawBody>>),
}

/// The body of a response: an [`io::Read`] that hands the connection back to
/// the pool when it reaches the end.
///
/// gzip and deflate bodies are decoded transparently (unless the request set
/// its own `Accept-Encoding`). A body that ends early, is cut off, or breaks
/// its framing returns an error, never a short successful read; after an
/// error, every later read fails too. Convert the `io::Error` back into a
/// [`windlass::Error`](crate::Error) with [`Error::from_io`](crate::Error::from_io).
pub struct Body {
    decoding: Decoding,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

/// The `Content-Encoding`s windlass decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    pub(crate) fn from_header(value: Option<&http::HeaderValue>) -> Encoding {
        match value.and_then(|v| v.to_str().ok()).map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => {
                Encoding::Gzip
            }
            Some(v) if v.eq_ignore_ascii_case("deflate") => Encoding::Deflate,
            _ => Encoding::Identity,
        }
    }
}

impl Body {
    pub(crate) fn new(mut raw: RawBody, encoding: Encoding) -> Body {
        if encoding != Encoding::Identity {
            raw.input_without_output = MAX_INPUT_WITHOUT_OUTPUT;
        }
        let decoding = match encoding {
            #[cfg(feature = "gzip")]
            Encoding::Gzip => Decoding::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(raw))),
            #[cfg(feature = "gzip")]
            Encoding::Deflate => {
                // "deflate" is meant to be zlib-wrapped, but some servers send a
                // raw deflate stream; the zlib header tells them apart.
                let zlib = match raw.fill_buf() {
                    Ok(buf) if buf.len() >= 2 => {
                        buf[0] & 0x0f == 8 && (u16::from(buf[0]) << 8 | u16::from(buf[1])) % 31 == 0
                    }
                    _ => true,
                };
                if zlib {
                    Decoding::Zlib(Box::new(flate2::bufread::ZlibDecoder::new(raw)))
                } else {
                    Decoding::Deflate(Box::new(flate2::bufread::DeflateDecoder::new(raw)))
                }
            }
            _ => Decoding::Identity(raw),
        };
        Body { decoding }
    }

    fn raw_mut(&mut self) -> &mut RawBody {
        match &mut self.decoding {
            Decoding::Identity(raw) => raw,
            #[cfg(feature = "gzip")]
            Decoding::Gzip(d) => d.get_mut(),
            #[cfg(feature = "gzip")]
            Decoding::Zlib(d) => d.get_mut(),
            #[cfg(feature = "gzip")]
            Decoding::Deflate(d) => d.get_mut(),
        }
    }

    /// Read the whole body, failing with [`ErrorKind::BodyTooLarge`] rather
    /// than holding more than `limit` decoded bytes.
    pub(crate) fn read_limited(&mut self, limit: u64) -> Result<Vec<u8>, Error> {
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
            if out.len() as u64 + n as u64 > limit {
                return Err(Error::new(
                    ErrorKind::BodyTooLarge,
                    format!("response body is larger than the {limit} byte limit"),
                ));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match &mut self.decoding {
            Decoding::Identity(raw) => raw.read(out),
            #[cfg(feature = "gzip")]
            _ => self.read_decoded(out),
        }
    }
}

#[cfg(feature = "gzip")]
impl Body {
    fn read_decoded(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let result = match &mut self.decoding {
            Decoding::Identity(raw) => return raw.read(out),
            Decoding::Gzip(d) => d.read(out),
            Decoding::Zlib(d) => d.read(out),
            Decoding::Deflate(d) => d.read(out),
        };
        match result {
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
                // A decoding error is the server's fault; an error from the
                // framing layer already carries its own kind.
                let is_ours = e.get_ref().is_some_and(|i| i.is::<Error>());
                if is_ours {
                    return Err(e);
                }
                self.raw_mut().fail_as(ErrorKind::Protocol);
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
