//! Content and transfer codings: which ones a response uses, which ones this
//! build decodes, and the decoder stack over a body's framed bytes.
//!
//! Decoders are built without reading a byte (`call()` returns on the head;
//! a coding that must look at its first bytes does so on the first read).
//! Their input and output are bounded by the body they wrap: see
//! [`RawBody`](crate::body::RawBody) for the input and [`Body`](crate::Body)
//! for the output.

mod stage;
#[cfg(feature = "zstd")]
mod zstd;

use http::header::{CONTENT_ENCODING, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::body::RawBody;
use crate::error::Error;
pub(crate) use stage::Stage;

/// A coding windlass knows by name (RFC 9110 §8.4.1, RFC 8878, RFC 7932).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// The coding a header token names, whether or not this build decodes it.
    fn from_token(token: &str) -> Option<Coding> {
        let is = |name: &str| token.eq_ignore_ascii_case(name);
        if is("gzip") || is("x-gzip") {
            Some(Coding::Gzip)
        } else if is("deflate") {
            Some(Coding::Deflate)
        } else if is("br") {
            Some(Coding::Brotli)
        } else if is("zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }

    /// Whether this build has a decoder for it.
    fn decodable(self) -> bool {
        match self {
            Coding::Gzip | Coding::Deflate => cfg!(feature = "gzip"),
            Coding::Brotli => cfg!(feature = "brotli"),
            Coding::Zstd => cfg!(feature = "zstd"),
        }
    }
}

/// The `Accept-Encoding` value: exactly the codings this build decodes, or
/// `None` when it decodes none.
pub(crate) fn accept_encoding() -> Option<&'static str> {
    // Most preferred first is only a convention; no q-values, as curl sends.
    const ALL: [(&str, bool); 4] = [
        ("gzip", cfg!(feature = "gzip")),
        ("deflate", cfg!(feature = "gzip")),
        ("br", cfg!(feature = "brotli")),
        ("zstd", cfg!(feature = "zstd")),
    ];
    static VALUE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    VALUE
        .get_or_init(|| {
            let names: Vec<&str> = ALL.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
            (!names.is_empty()).then(|| names.join(", "))
        })
        .as_deref()
}

/// Whether any coding can be decoded by this build.
pub(crate) const ANY: bool = cfg!(any(feature = "gzip", feature = "brotli", feature = "zstd"));

/// Whether `token`, found in a `Transfer-Encoding` before `chunked`, is a
/// coding this build decodes.
pub(crate) fn decodable_transfer_coding(token: &str) -> bool {
    Coding::from_token(token).is_some_and(Coding::decodable)
}

/// The codings to undo, in the order to undo them: the transfer codings
/// (always: they are hop-by-hop, and a body left transfer-coded could not be
/// framed or read), then the content codings when `content` is true.
///
/// Content codings are all undone or none: a list with a coding this build
/// cannot decode (or does not know) is left as it is, header included, so
/// the caller can tell. The second value says whether they were undone.
pub(crate) fn to_undo(headers: &HeaderMap, content: bool) -> Result<(Vec<Coding>, bool), Error> {
    let (undo, decoded) = codings_in(headers, content)?;
    // Each stage holds its own buffers and one more frame on every read: a
    // head listing thousands (`br, br, br, …`) would allocate hundreds of
    // megabytes before the first body byte. Real servers stack two at most;
    // curl refuses more than five too. (The caller then gets the body as
    // sent, its headers saying how it is coded.)
    if undo.len() > MAX_STACKED {
        return Err(Error::protocol(format!(
            "{} stacked codings; at most {MAX_STACKED} are undone",
            undo.len()
        )));
    }
    Ok((undo, decoded))
}

/// Most codings undone on one body.
const MAX_STACKED: usize = 5;

fn codings_in(headers: &HeaderMap, content: bool) -> Result<(Vec<Coding>, bool), Error> {
    let mut undo = Vec::new();
    for token in tokens(headers, TRANSFER_ENCODING)?.iter().rev() {
        if token.eq_ignore_ascii_case("chunked") || token.eq_ignore_ascii_case("identity") {
            continue;
        }
        match Coding::from_token(token).filter(|c| c.decodable()) {
            Some(coding) => undo.push(coding),
            None => {
                return Err(Error::protocol(format!(
                    "unsupported transfer coding {token:?}"
                )))
            }
        }
    }
    if !content {
        return Ok((undo, false));
    }
    // A Content-Encoding that is not text cannot be decoded either.
    let Ok(content_tokens) = tokens(headers, CONTENT_ENCODING) else {
        return Ok((undo, false));
    };
    let mut content_undo = Vec::new();
    for token in content_tokens.iter().rev() {
        if token.eq_ignore_ascii_case("identity") {
            continue;
        }
        match Coding::from_token(token).filter(|c| c.decodable()) {
            Some(coding) => content_undo.push(coding),
            None => return Ok((undo, false)),
        }
    }
    let decoded = !content_undo.is_empty();
    undo.extend(content_undo);
    Ok((undo, decoded))
}

/// The comma-separated tokens of every value of `name`, in order.
fn tokens(headers: &HeaderMap, name: http::HeaderName) -> Result<Vec<&str>, Error> {
    let mut out = Vec::new();
    for value in headers.get_all(&name) {
        let text = value
            .to_str()
            .map_err(|_| Error::protocol(format!("invalid {name}")))?;
        out.extend(text.split(',').map(str::trim).filter(|t| !t.is_empty()));
    }
    Ok(out)
}

/// The decoder stack that undoes `codings` (in that order) over `raw`.
/// Reads nothing.
pub(crate) fn decoder(raw: RawBody, codings: &[Coding]) -> Box<dyn Stage> {
    let (first, rest) = codings
        .split_first()
        .expect("a decoder stack has at least one coding");
    let mut stage = stage::wrap(raw, *first);
    for coding in rest {
        // Each later stage reads the one before through a buffer, as the
        // decoders take their input as a `BufRead`.
        stage = stage::wrap(std::io::BufReader::new(stage), *coding);
    }
    stage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn stacked_content_codings_are_undone_last_applied_first() {
        let h = headers(&[("content-encoding", "deflate, gzip")]);
        assert_eq!(
            to_undo(&h, true).unwrap(),
            (vec![Coding::Gzip, Coding::Deflate], true)
        );
        let h = headers(&[
            ("content-encoding", "deflate"),
            ("content-encoding", "x-gzip"),
        ]);
        assert_eq!(
            to_undo(&h, true).unwrap(),
            (vec![Coding::Gzip, Coding::Deflate], true)
        );
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn transfer_codings_are_undone_before_content_codings() {
        let h = headers(&[
            ("content-encoding", "deflate"),
            ("transfer-encoding", "gzip, chunked"),
        ]);
        assert_eq!(
            to_undo(&h, true).unwrap(),
            (vec![Coding::Gzip, Coding::Deflate], true)
        );
        // Without content decoding, the transfer coding still goes.
        assert_eq!(to_undo(&h, false).unwrap(), (vec![Coding::Gzip], false));
    }

    #[test]
    fn an_unknown_content_coding_leaves_the_whole_list_alone() {
        let h = headers(&[("content-encoding", "gzip, compress")]);
        assert_eq!(to_undo(&h, true).unwrap(), (vec![], false));
        let h = headers(&[("content-encoding", "identity")]);
        assert_eq!(to_undo(&h, true).unwrap(), (vec![], false));
    }

    #[test]
    fn an_unknown_transfer_coding_is_a_protocol_error() {
        let h = headers(&[("transfer-encoding", "compress, chunked")]);
        assert!(to_undo(&h, true).is_err());
    }

    #[test]
    fn accept_encoding_names_exactly_the_built_decoders() {
        let value = accept_encoding().unwrap_or("");
        assert_eq!(value.contains("gzip"), cfg!(feature = "gzip"));
        assert_eq!(value.contains("deflate"), cfg!(feature = "gzip"));
        assert_eq!(value.contains("br"), cfg!(feature = "brotli"));
        assert_eq!(value.contains("zstd"), cfg!(feature = "zstd"));
    }
}
