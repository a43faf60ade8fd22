//! zstd (RFC 8878) through the pure-Rust `ruzstd` decoder.
//!
//! `ruzstd`'s streaming reader decodes one frame, and reads the frame header
//! when it is built; a zstd body may hold several frames and skippable ones
//! (RFC 8878 §3.1), and a decoder must not read before the first `read`
//! (`call()` returns on the head). So this drives its frame decoder itself.

use std::io::{self, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::stage::{Source, Stage};
use crate::body::RawBody;

/// Every frame of a zstd body, one after the other.
pub(super) struct Frames<S> {
    source: S,
    // Boxed: its scratch space is large, and a body moves.
    decoder: Box<FrameDecoder>,
    in_frame: bool,
}

impl<S: Source> Frames<S> {
    pub(super) fn new(source: S) -> Frames<S> {
        Frames {
            source,
            decoder: Box::new(FrameDecoder::new()),
            in_frame: false,
        }
    }

    /// At a frame boundary: start the next frame, skip a skippable one, or
    /// report the end of the body (`false`).
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped < u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd body cut off inside a skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}

impl<S: Source> Read for Frames<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            // Each round decodes at least one block, taking input: the body's
            // input bound ends a stream of blocks that produce nothing.
            while self.decoder.can_collect() < out.len() && !self.decoder.is_finished() {
                let want = out.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(want))
                    .map_err(io::Error::other)?;
            }
            let n = self.decoder.read(out)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() {
                self.in_frame = false;
            }
        }
    }
}

impl<S: Source> Stage for Frames<S> {
    fn raw(&mut self) -> &mut RawBody {
        self.source.raw()
    }
}
