//! Writing a response body somewhere: to any writer with progress reports,
//! or to a file through a temporary one that is removed on failure.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
use crate::response::Response;

/// Size of each read from the body.
const CHUNK: usize = 64 * 1024;

/// Names tried for a temporary file before giving up.
const TEMP_ATTEMPTS: u32 = 100;

/// How far a body copy has come, as [`Response::copy_to`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Body bytes written so far (decoded).
    pub done: u64,
    /// The body's size when the server declared it and it is not
    /// content-encoded (then the decoded size is unknown).
    pub total: Option<u64>,
    /// Time since the copy started.
    pub elapsed: Duration,
}

impl Response {
    /// Copy the whole body into `writer`, calling `progress` after every
    /// chunk written (and once at the end). Returns the bytes written.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), windlass::Error> {
    /// let resp = windlass::get("http://127.0.0.1:8080/big.iso").call()?;
    /// let mut out = std::io::sink();
    /// resp.copy_to(&mut out, |p| eprint!("\r{} of {:?} bytes", p.done, p.total))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The body's read errors (a cut-off body is an error, never a short
    /// success), and [`ErrorKind::Io`] when `writer` fails.
    pub fn copy_to(
        self,
        writer: &mut impl Write,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, Error> {
        let total = if self.headers.contains_key(http::header::CONTENT_ENCODING) {
            None
        } else {
            self.content_length()
        };
        let url = self.url.clone();
        let started = Instant::now();
        let mut body = self.body;
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e).at_url(&url)),
            };
            writer.write_all(&buf[..n]).map_err(|e| {
                Error::with_source(ErrorKind::Io, "cannot write the response body", e).at_url(&url)
            })?;
            done += n as u64;
            progress(Progress {
                done,
                total,
                elapsed: started.elapsed(),
            });
        }
        writer.flush().map_err(|e| {
            Error::with_source(ErrorKind::Io, "cannot write the response body", e).at_url(&url)
        })?;
        progress(Progress {
            done,
            total,
            elapsed: started.elapsed(),
        });
        Ok(done)
    }

    /// Save the whole body as the file `path`: it is written to a new
    /// temporary file beside `path` and renamed over it only when complete,
    /// so `path` never holds a partial body; on any failure the temporary
    /// file is removed. Returns the bytes written. Any status is saved: call
    /// [`error_for_status`](Response::error_for_status) first to refuse
    /// error pages.
    ///
    /// # Errors
    ///
    /// As [`copy_to`](Response::copy_to), and [`ErrorKind::Io`] when the
    /// temporary file cannot be created, synced or renamed.
    pub fn download_to(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        let path = path.as_ref();
        let io_err = |what: &str, e: io::Error| {
            Error::with_source(ErrorKind::Io, format!("{what} {}", path.display()), e)
        };
        let (mut file, temp) =
            TempFile::beside(path).map_err(|e| io_err("cannot create a temporary file for", e))?;
        let written = self.copy_to(&mut file, |_| {})?;
        file.sync_all().map_err(|e| io_err("cannot write", e))?;
        drop(file);
        temp.rename_to(path)
            .map_err(|e| io_err("cannot rename the download to", e))?;
        Ok(written)
    }
}

/// A temporary file, removed on drop unless renamed.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// A new file in `target`'s directory, named after it, never one that
    /// existed (`create_new`).
    fn beside(target: &Path) -> io::Result<(File, TempFile)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut last = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name");
        for _ in 0..TEMP_ATTEMPTS {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.{}-{n}.part", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => return Ok((file, TempFile { path: Some(temp) })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn rename_to(mut self, target: &Path) -> io::Result<()> {
        let Some(temp) = self.path.as_ref() else {
            return Ok(());
        };
        fs::rename(temp, target)?;
        self.path = None;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
    }
}
