//! HTTP/1.1 on the wire, without the wire: the request head out, the
//! response head in (httparse), and the body framing of RFC 9112 §6.3.
//!
//! Nothing here does I/O. Request heads are written into a `Vec<u8>`; the
//! response head and the body framing are read from an [`Input`](input::Input), a buffer
//! that can be asked for more bytes. In production that is the connection
//! ([`Conn`](crate::conn::Conn)), whose socket applies the deadlines and the
//! cancel token; in tests and under the fuzzer it is a byte slice delivered
//! in pieces of any size. The parsing itself is in pure functions over bytes
//! (`parse_head`, `split_line`, `parse_chunk_size`); the readers only loop
//! "parse what is buffered, else ask for more".
//!
//! - `write`: the request line and header lines;
//! - `head`: parsing a response head, and reading one from an input;
//! - `framing`: what a head says about its body and its connection;
//! - `decoder`: taking a body's bytes out of an input by its framing;
//! - `input`: the `Input` trait, implemented by the connection;
//! - `slice`: an `Input` over a byte slice, for tests and fuzzing.

/// Taking a body's bytes out of an input by its framing.
mod decoder;
/// What a head says about its body and its connection.
mod framing;
/// Parsing a response head, and reading one from an input.
mod head;
/// The `Input` trait, implemented by the connection.
mod input;
/// The request line and header lines.
mod write;

/// An `Input` over a byte slice, for tests and fuzzing.
#[cfg(any(test, fuzzing))]
mod slice;

/// Entry points for the fuzz targets in `fuzz/`: the parsers and decoders run
/// over arbitrary bytes with invariants checked. Compiled only for unit tests
/// and under `--cfg fuzzing` (which `cargo fuzz` sets).
#[cfg(any(test, fuzzing))]
pub mod fuzzing;

#[cfg(test)]
mod tests;

pub(crate) use decoder::Decoder;
pub(crate) use framing::{content_length, framing, keep_alive_timeout, says_close, Framing};
pub use head::RawHead;
pub(crate) use head::{read_head, Head};
pub(crate) use write::{
    put_header, put_header_number, put_host_port, put_request_line, put_request_line_as, target,
    RequestForm,
};
