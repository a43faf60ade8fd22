//! An in-memory [`Input`] for tests and fuzzing: a byte slice delivered in
//! pieces of chosen sizes.

use std::io;

use super::input::Input;

/// An in-memory input over a byte slice, for tests and fuzzing.
///
/// Each receive delivers the next piece of the slice, with piece sizes taken
/// in turn from a list, so a test can cut a response into 1-byte reads, or
/// at any boundary it likes, and check that the result does not depend on
/// where the cuts fall. At the end of the slice it reports end of input, as
/// a connection closed by the server does.
#[derive(Debug)]
pub(crate) struct SliceInput<'a> {
    data: &'a [u8],
    /// End of the consumed bytes.
    start: usize,
    /// End of the received bytes.
    end: usize,
    /// Sizes of successive receives, used in turn and then again.
    pieces: Vec<usize>,
    /// Index of the next piece size.
    next: usize,
    /// Receives made so far, end of input included.
    receives: usize,
}

impl<'a> SliceInput<'a> {
    /// Everything arrives in the first receive.
    #[cfg(test)]
    pub(crate) fn new(data: &'a [u8]) -> SliceInput<'a> {
        SliceInput::in_pieces(data, vec![usize::MAX])
    }

    /// Receives of the given sizes, in turn; a size of 0 counts as 1 (a
    /// receive that delivers nothing would be end of input) and an empty
    /// list as one size that takes everything.
    pub(crate) fn in_pieces(data: &'a [u8], pieces: Vec<usize>) -> SliceInput<'a> {
        let pieces = if pieces.is_empty() {
            vec![usize::MAX]
        } else {
            pieces.into_iter().map(|p| p.max(1)).collect()
        };
        SliceInput {
            data,
            start: 0,
            end: 0,
            pieces,
            next: 0,
            receives: 0,
        }
    }

    /// Every byte not yet consumed: those buffered and those still to arrive.
    /// After a message, this is where the next one would start.
    pub(crate) fn unread(&self) -> &'a [u8] {
        &self.data[self.start..]
    }

    /// How many receives were made, end of input included.
    #[cfg(test)]
    pub(crate) fn receives(&self) -> usize {
        self.receives
    }
}

impl Input for SliceInput<'_> {
    fn buffered(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn fill_more(&mut self, max: usize) -> io::Result<usize> {
        if self.end - self.start >= max {
            // What a connection's buffer reports when it may not grow.
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer limit"));
        }
        self.receives += 1;
        let piece = self.pieces[self.next];
        self.next = (self.next + 1) % self.pieces.len();
        let n = piece.min(self.data.len() - self.end);
        self.end += n;
        Ok(n)
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_input_delivers_pieces_in_turn_then_ends() {
        let mut input = SliceInput::in_pieces(b"abcdefg", vec![1, 3]);
        assert_eq!(input.fill_more(100).unwrap(), 1);
        assert_eq!(input.buffered(), b"a");
        assert_eq!(input.fill_more(100).unwrap(), 3);
        assert_eq!(input.buffered(), b"abcd");
        input.consume(2);
        assert_eq!(input.buffered(), b"cd");
        assert_eq!(input.unread(), b"cdefg");
        assert_eq!(input.fill_more(100).unwrap(), 1);
        assert_eq!(input.fill_more(100).unwrap(), 2);
        assert_eq!(input.fill_more(100).unwrap(), 0);
        assert_eq!(input.buffered(), b"cdefg");
        assert_eq!(input.receives(), 5);
    }

    #[test]
    fn slice_input_refuses_to_grow_past_max() {
        let mut input = SliceInput::in_pieces(b"abcdef", vec![2]);
        assert_eq!(input.fill_more(2).unwrap(), 2);
        let err = input.fill_more(2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        // Consuming makes room again.
        input.consume(1);
        assert_eq!(input.fill_more(2).unwrap(), 2);
    }
}
