//! `multipart/form-data` request bodies (RFC 7578): text fields, files
//! streamed from disk, and readers, under a random boundary that is checked
//! against the content.
//!
//! Names and file names are written as browsers write them (the HTML
//! standard's form encoding): UTF-8, with `"`, CR and LF percent-encoded.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// A `multipart/form-data` body, sent with
/// [`RequestBuilder::send_multipart`](crate::RequestBuilder::send_multipart).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use windlass::{Multipart, Part};
/// let form = Multipart::new()
///     .text("title", "holiday")
///     .file("photo", "/tmp/beach.jpg")?
///     .part("notes", Part::reader(std::io::stdin()).file_name("notes.txt"));
/// let resp = windlass::post("http://127.0.0.1:8080/upload").send_multipart(form)?;
/// # drop(resp); Ok(()) }
/// ```
///
/// With only sized parts (text, bytes, files, sized readers) the body has a
/// Content-Length; a reader of unknown size makes it chunked. Files are
/// opened when added (so a missing file fails there) and streamed, never
/// read into memory. A form is sent once: it is not replayed on a retry or a
/// 307/308 redirect.
pub struct Multipart {
    boundary: String,
    parts: Vec<(String, Part)>,
}

impl std::fmt::Debug for Multipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart")
            .field("boundary", &self.boundary)
            .field("parts", &self.parts.len())
            .finish()
    }
}

/// One part of a [`Multipart`] form: its content, and optionally a file name
/// and a content type.
pub struct Part {
    content: Content,
    file_name: Option<String>,
    content_type: Option<String>,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

enum Content {
    Bytes(Vec<u8>),
    /// A reader and, when known, exactly how many bytes it gives.
    Reader(Box<dyn Read + Send>, Option<u64>),
}

impl Part {
    /// A text value.
    pub fn text(value: impl Into<String>) -> Part {
        Part::bytes(value.into().into_bytes())
    }

    /// Bytes held in memory.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Part {
        Part {
            content: Content::Bytes(bytes.into()),
            file_name: None,
            content_type: None,
        }
    }

    /// A file, streamed from disk: opened now, its size taken now (it must
    /// not change before it is sent; a file that shrank fails the request),
    /// its name the path's last component, its content type guessed from
    /// the extension (`application/octet-stream` when unknown).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or its size read.
    pub fn file(path: impl AsRef<Path>) -> io::Result<Part> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(Part {
            content: Content::Reader(Box::new(file), Some(len)),
            content_type: Some(guess_type(path).to_string()),
            file_name,
        })
    }

    /// A reader of unknown size: the form is then sent chunked.
    pub fn reader(reader: impl Read + Send + 'static) -> Part {
        Part {
            content: Content::Reader(Box::new(reader), None),
            file_name: None,
            content_type: None,
        }
    }

    /// A reader of exactly `len` bytes (one that gives fewer fails the
    /// request; bytes beyond `len` are not read).
    pub fn reader_sized(reader: impl Read + Send + 'static, len: u64) -> Part {
        Part {
            content: Content::Reader(Box::new(reader), Some(len)),
            file_name: None,
            content_type: None,
        }
    }

    /// The `filename` the part declares.
    pub fn file_name(mut self, name: impl Into<String>) -> Part {
        self.file_name = Some(name.into());
        self
    }

    /// The part's `Content-Type`. Control characters are dropped (they would
    /// break the part's head).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Part {
        let value: String = content_type
            .into()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        self.content_type = Some(value);
        self
    }

    fn len(&self) -> Option<u64> {
        match &self.content {
            Content::Bytes(b) => Some(b.len() as u64),
            Content::Reader(_, len) => *len,
        }
    }
}

impl Default for Multipart {
    fn default() -> Multipart {
        Multipart::new()
    }
}

impl Multipart {
    /// An empty form with a fresh random boundary.
    pub fn new() -> Multipart {
        Multipart {
            boundary: random_boundary(),
            parts: Vec::new(),
        }
    }

    /// The boundary: random, and changed whenever content held in memory
    /// contains it. Streamed content is checked as it is sent, and a part
    /// that contains it fails the request.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` header value: `multipart/form-data; boundary=…`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Add a text field.
    pub fn text(self, name: &str, value: impl Into<String>) -> Multipart {
        self.part(name, Part::text(value))
    }

    /// Add a file field (see [`Part::file`]).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or its size read.
    pub fn file(self, name: &str, path: impl AsRef<Path>) -> io::Result<Multipart> {
        Ok(self.part(name, Part::file(path)?))
    }

    /// Add a part.
    pub fn part(mut self, name: &str, part: Part) -> Multipart {
        self.parts.push((name.to_string(), part));
        // A bounded number of draws: a collision is already astronomically
        // unlikely, twice in a row more so.
        for _ in 0..8 {
            if !self.in_memory_contains_boundary() {
                break;
            }
            self.boundary = random_boundary();
        }
        self
    }

    fn in_memory_contains_boundary(&self) -> bool {
        let delimiter = format!("--{}", self.boundary);
        self.parts.iter().any(|(name, part)| {
            let head = part_head(name, part);
            contains(head.as_bytes(), delimiter.as_bytes())
                || matches!(&part.content, Content::Bytes(b) if contains(b, delimiter.as_bytes()))
        })
    }

    /// The body's length, when every part's is known.
    pub fn content_length(&self) -> Option<u64> {
        let mut total = 0u64;
        for (name, part) in &self.parts {
            total += framing(&self.boundary, name, part).len() as u64 + part.len()? + 2;
        }
        Some(total + closing(&self.boundary).len() as u64)
    }

    /// The body as a reader, and its length when known.
    pub(crate) fn into_reader(self) -> (FormReader, Option<u64>) {
        let len = self.content_length();
        let delimiter = format!("--{}", self.boundary).into_bytes();
        let closing = closing(&self.boundary).into_bytes();
        let mut pieces = Vec::new();
        for (name, part) in self.parts {
            pieces.push(Piece::Bytes(
                framing(&self.boundary, &name, &part).into_bytes(),
            ));
            match part.content {
                Content::Bytes(b) => pieces.push(Piece::Bytes(b)),
                Content::Reader(r, len) => {
                    pieces.push(Piece::Stream(Scanned::new(r, len, &delimiter)))
                }
            }
            pieces.push(Piece::Bytes(b"\r\n".to_vec()));
        }
        pieces.push(Piece::Bytes(closing));
        pieces.reverse();
        (FormReader { pieces, pos: 0 }, len)
    }
}

/// The head of a part: disposition and type.
fn part_head(name: &str, part: &Part) -> String {
    let mut head = format!("Content-Disposition: form-data; name=\"{}\"", escape(name));
    if let Some(file_name) = &part.file_name {
        head.push_str(&format!("; filename=\"{}\"", escape(file_name)));
    }
    head.push_str("\r\n");
    if let Some(t) = &part.content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head
}

/// What goes before a part's content.
fn framing(boundary: &str, name: &str, part: &Part) -> String {
    format!("--{boundary}\r\n{}\r\n", part_head(name, part))
}

fn closing(boundary: &str) -> String {
    format!("--{boundary}--\r\n")
}

/// The HTML standard's escaping of names in `multipart/form-data`.
fn escape(name: &str) -> String {
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// 32 random hex digits after a fixed prefix: `RandomState` seeds from the
/// OS per process and differs per instance, mixed with the clock and a
/// counter.
fn random_boundary() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::from("windlass-");
    for _ in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A content type from a file's extension, for the common ones.
fn guess_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

enum Piece {
    Bytes(Vec<u8>),
    Stream(Scanned),
}

/// The whole form as one reader.
pub(crate) struct FormReader {
    /// Still to send, last first.
    pieces: Vec<Piece>,
    /// How far into the last piece, when it is bytes.
    pos: usize,
}

impl Read for FormReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while let Some(piece) = self.pieces.last_mut() {
            let n = match piece {
                Piece::Bytes(b) => {
                    let n = (b.len() - self.pos).min(out.len());
                    out[..n].copy_from_slice(&b[self.pos..self.pos + n]);
                    self.pos += n;
                    n
                }
                Piece::Stream(s) => s.read(out)?,
            };
            if n > 0 {
                return Ok(n);
            }
            self.pieces.pop();
            self.pos = 0;
        }
        Ok(0)
    }
}

/// A streamed part: held to its declared length, and watched for the
/// boundary.
struct Scanned {
    inner: Box<dyn Read + Send>,
    /// Bytes still due, when the length was declared.
    left: Option<u64>,
    delimiter: Vec<u8>,
    /// The last bytes seen, so a boundary split across reads is found.
    tail: Vec<u8>,
}

impl Scanned {
    fn new(inner: Box<dyn Read + Send>, len: Option<u64>, delimiter: &[u8]) -> Scanned {
        Scanned {
            inner,
            left: len,
            delimiter: delimiter.to_vec(),
            tail: Vec::new(),
        }
    }
}

impl Read for Scanned {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = match self.left {
            Some(0) => return Ok(0),
            Some(left) => out.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => out.len(),
        };
        let n = loop {
            match self.inner.read(&mut out[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            if let Some(left) = self.left {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("a multipart part ended {left} bytes short of its size"),
                ));
            }
            return Ok(0);
        }
        if let Some(left) = self.left.as_mut() {
            *left -= n as u64;
        }
        self.tail.extend_from_slice(&out[..n]);
        if contains(&self.tail, &self.delimiter) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a multipart part contains the form's boundary",
            ));
        }
        let keep = self.delimiter.len().saturating_sub(1);
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(form: Multipart) -> io::Result<Vec<u8>> {
        let (mut reader, _) = form.into_reader();
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn the_body_is_exactly_the_parts_between_boundaries() {
        let form = Multipart::new().text("a", "1").part(
            "f",
            Part::bytes(&b"xy"[..])
                .file_name("f.bin")
                .content_type("application/x"),
        );
        let b = form.boundary().to_string();
        let len = form.content_length();
        let body = read_all(form).unwrap();
        let expected = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\n\
             Content-Type: application/x\r\n\r\nxy\r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(len, Some(expected.len() as u64));
    }

    #[test]
    fn names_are_escaped_as_browsers_do() {
        let form = Multipart::new().part("a\"b\r\nc", Part::text("v").file_name("x\".txt"));
        let body = String::from_utf8(read_all(form).unwrap()).unwrap();
        assert!(
            body.contains("name=\"a%22b%0D%0Ac\"; filename=\"x%22.txt\""),
            "{body}"
        );
    }

    #[test]
    fn boundaries_differ_and_change_when_held_content_has_them() {
        let one = Multipart::new();
        let two = Multipart::new();
        assert_ne!(one.boundary(), two.boundary());
        let old = one.boundary().to_string();
        let form = one.text("x", format!("before --{old} after"));
        assert_ne!(form.boundary(), old);
    }

    #[test]
    fn a_streamed_part_containing_the_boundary_fails_even_split_across_reads() {
        let form = Multipart::new();
        let content = format!("aaaa--{}bbbb", form.boundary()).into_bytes();
        // One byte per read: the boundary arrives split.
        struct Dribble(Vec<u8>, usize);
        impl Read for Dribble {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.1 >= self.0.len() || out.is_empty() {
                    return Ok(0);
                }
                out[0] = self.0[self.1];
                self.1 += 1;
                Ok(1)
            }
        }
        let form = form.part("s", Part::reader(Dribble(content, 0)));
        let err = read_all(form).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_sized_part_that_ends_short_fails_and_one_that_is_longer_is_cut() {
        let form = Multipart::new().part("s", Part::reader_sized(&b"abc"[..], 5));
        assert_eq!(
            read_all(form).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let form = Multipart::new().part("s", Part::reader_sized(&b"abcdef"[..], 2));
        let len = form.content_length().unwrap();
        let body = read_all(form).unwrap();
        assert_eq!(body.len() as u64, len);
        assert!(String::from_utf8(body).unwrap().contains("\r\n\r\nab\r\n"));
    }

    #[test]
    fn an_unsized_reader_leaves_the_length_unknown() {
        let form = Multipart::new().part("s", Part::reader(&b"abc"[..]));
        assert_eq!(form.content_length(), None);
    }

    #[test]
    fn content_types_are_guessed_from_the_extension() {
        assert_eq!(guess_type(Path::new("a/b.PNG")), "image/png");
        assert_eq!(guess_type(Path::new("notes.txt")), "text/plain");
        assert_eq!(guess_type(Path::new("blob")), "application/octet-stream");
    }
}
