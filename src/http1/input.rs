//! Where the framing code gets its bytes: a small buffered-input trait and
//! the connection's implementation of it (an in-memory one for tests and
//! fuzzing is in `slice`).
//!
//! The head parser and the body decoders never touch a socket. They look at
//! buffered bytes, ask for more, and mark what they used; everything about
//! sockets, TLS, deadlines and cancellation stays behind this trait, in the
//! connection (lent as a [`Reading`](crate::conn::Reading) with the limit of
//! its reads). The same code therefore runs unchanged over a byte slice cut
//! into arbitrary pieces, which is how it is unit-tested and fuzzed.

use std::io;

use crate::conn::Reading;

/// A buffered source of response bytes.
///
/// Bytes arrive into a buffer and stay there until [`consume`](Input::consume)d,
/// so a parser can look at a partial head or line, ask for more, and look
/// again. Errors are passed through untouched: a timeout or a cancellation
/// from the connection reaches the caller as the connection reported it.
pub(crate) trait Input {
    /// The bytes received and not yet consumed.
    fn buffered(&self) -> &[u8];

    /// Receive more bytes after those buffered and return how many arrived;
    /// 0 means the input has ended.
    ///
    /// `max` bounds how many bytes the caller needs buffered at once: storage
    /// grows up to `max` and no further. An input whose storage is already
    /// larger may receive past `max`, so callers hold what they parse to
    /// their limit themselves. When `max` bytes are already buffered and
    /// nothing more fits, this fails with [`io::ErrorKind::OutOfMemory`],
    /// which callers turn into their own "too large" error.
    fn fill_more(&mut self, max: usize) -> io::Result<usize>;

    /// Mark the first `n` buffered bytes as used (at most all of them).
    fn consume(&mut self, n: usize);

    /// The buffered bytes, receiving more first when none are left; empty
    /// means the input has ended.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.buffered().is_empty() {
            self.fill_more(usize::MAX)?;
        }
        Ok(self.buffered())
    }

    /// Move up to `out.len()` bytes into `out`, receiving first when nothing
    /// is buffered; 0 means the input has ended. A connection overrides this
    /// to read large requests straight from the socket, without a copy
    /// through its buffer.
    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// A connection is the input in production: its read buffer is the buffer,
/// and every read it makes runs under the limit it was lent with.
impl Input for Reading<'_> {
    #[inline]
    fn buffered(&self) -> &[u8] {
        self.conn.buffered()
    }

    #[inline]
    fn fill_more(&mut self, max: usize) -> io::Result<usize> {
        self.conn.fill_more(max, self.limit)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.conn.consume(n)
    }

    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.conn.fill_buf(self.limit)
    }

    #[inline]
    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.conn.read_into(out, self.limit)
    }
}

/// A boxed input is an input, so one can be chosen at run time
/// (`Box<dyn Input>`); only tests and fuzzing need that.
#[cfg(any(test, fuzzing))]
impl<T: Input + ?Sized> Input for Box<T> {
    #[inline]
    fn buffered(&self) -> &[u8] {
        (**self).buffered()
    }

    #[inline]
    fn fill_more(&mut self, max: usize) -> io::Result<usize> {
        (**self).fill_more(max)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        (**self).consume(n)
    }

    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        (**self).fill_buf()
    }

    #[inline]
    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        (**self).read_into(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::slice::SliceInput;
    use super::*;

    #[test]
    fn default_fill_buf_and_read_into_work_over_any_input() {
        let mut input = SliceInput::in_pieces(b"hello", vec![2]);
        assert_eq!(input.fill_buf().unwrap(), b"he");
        // Buffered bytes are returned without another receive.
        assert_eq!(input.fill_buf().unwrap(), b"he");
        let mut out = [0u8; 8];
        assert_eq!(input.read_into(&mut out).unwrap(), 2);
        assert_eq!(input.read_into(&mut out[..1]).unwrap(), 1);
        assert_eq!(&out[..1], b"l");
        assert_eq!(input.read_into(&mut out).unwrap(), 1);
        assert_eq!(input.read_into(&mut out).unwrap(), 1);
        assert_eq!(input.read_into(&mut out).unwrap(), 0);
        assert!(input.fill_buf().unwrap().is_empty());
    }

    #[test]
    fn a_boxed_input_is_an_input() {
        let mut input: Box<dyn Input> = Box::new(SliceInput::new(b"xy"));
        assert_eq!(input.fill_buf().unwrap(), b"xy");
        input.consume(1);
        assert_eq!(input.buffered(), b"y");
    }
}
