//! One decoder per coding, each able to reach the body underneath it (the
//! body keeps the input bounds and the connection).

use std::io::{self, BufRead, BufReader, Read};

use super::Coding;
use crate::body::RawBody;

/// What a decoder reads from: the body itself, or the stage before it.
pub(crate) trait Source: BufRead + Send + Sync + 'static {
    /// The framed body at the bottom of the stack.
    fn raw(&mut self) -> &mut RawBody;
}

/// A decoder in the stack.
pub(crate) trait Stage: Read + Send + Sync {
    /// The framed body at the bottom of the stack.
    fn raw(&mut self) -> &mut RawBody;
}

impl Source for RawBody {
    fn raw(&mut self) -> &mut RawBody {
        self
    }
}

impl Source for BufReader<Box<dyn Stage>> {
    fn raw(&mut self) -> &mut RawBody {
        self.get_mut().raw()
    }
}

/// The decoder for `coding` over `source`. Only codings this build decodes
/// reach here (see `Coding::decodable`).
pub(super) fn wrap<S: Source>(source: S, coding: Coding) -> Box<dyn Stage> {
    match coding {
        #[cfg(feature = "gzip")]
        Coding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(source)),
        #[cfg(feature = "gzip")]
        Coding::Deflate => Box::new(Deflate::Unsniffed(Some(source))),
        #[cfg(feature = "brotli")]
        Coding::Brotli => Box::new(brotli_decompressor::Decompressor::new(source, 32 * 1024)),
        #[cfg(feature = "zstd")]
        Coding::Zstd => Box::new(super::zstd::Frames::new(source)),
        #[allow(unreachable_patterns)]
        _ => Box::new(Undecodable(source)),
    }
}

/// Never built: `to_undo` offers only decodable codings. Kept so that a
/// mistake there fails the read rather than passing coded bytes as decoded.
struct Undecodable<S>(S);

impl<S: Source> Read for Undecodable<S> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("no decoder for this coding in this build"))
    }
}

impl<S: Source> Stage for Undecodable<S> {
    fn raw(&mut self) -> &mut RawBody {
        self.0.raw()
    }
}

#[cfg(feature = "gzip")]
impl<S: Source> Stage for flate2::bufread::MultiGzDecoder<S> {
    fn raw(&mut self) -> &mut RawBody {
        self.get_mut().raw()
    }
}

#[cfg(feature = "brotli")]
impl<S: Source> Stage for brotli_decompressor::Decompressor<S> {
    fn raw(&mut self) -> &mut RawBody {
        self.get_mut().raw()
    }
}

/// `deflate` is meant to be zlib-wrapped (RFC 9110 §8.4.1.2), but some
/// servers send a raw deflate stream; the zlib header tells them apart. It is
/// looked at on the first read, never when the response is handed over.
#[cfg(feature = "gzip")]
enum Deflate<S> {
    /// `Some` until the first read; `None` only if sniffing failed midway.
    Unsniffed(Option<S>),
    Zlib(flate2::bufread::ZlibDecoder<S>),
    Raw(flate2::bufread::DeflateDecoder<S>),
}

#[cfg(feature = "gzip")]
impl<S: Source> Read for Deflate<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Deflate::Unsniffed(source) = self {
            let Some(mut source) = source.take() else {
                return Err(io::Error::other("the deflate stream failed earlier"));
            };
            let zlib = match source.fill_buf() {
                Ok(buf) if buf.len() >= 2 => {
                    buf[0] & 0x0f == 8 && (u16::from(buf[0]) << 8 | u16::from(buf[1])) % 31 == 0
                }
                Ok(_) => true,
                Err(e) => {
                    *self = Deflate::Unsniffed(Some(source));
                    return Err(e);
                }
            };
            *self = if zlib {
                Deflate::Zlib(flate2::bufread::ZlibDecoder::new(source))
            } else {
                Deflate::Raw(flate2::bufread::DeflateDecoder::new(source))
            };
        }
        match self {
            Deflate::Zlib(d) => d.read(out),
            Deflate::Raw(d) => d.read(out),
            Deflate::Unsniffed(_) => Ok(0),
        }
    }
}

#[cfg(feature = "gzip")]
impl<S: Source> Stage for Deflate<S> {
    fn raw(&mut self) -> &mut RawBody {
        match self {
            Deflate::Unsniffed(Some(s)) => s.raw(),
            Deflate::Zlib(d) => d.get_mut().raw(),
            Deflate::Raw(d) => d.get_mut().raw(),
            // `take` and the assignment that follows are in one call, which
            // returns with the source back in place on every path.
            Deflate::Unsniffed(None) => unreachable!("the deflate source is always put back"),
        }
    }
}
