//! `windlass fetch`: many URLs through one agent's batch (worker threads,
//! bounded by `-j` and by the open-file limit), each saved to its own file,
//! with a summary of what finished.
//!
//! How a download reaches the disk: the body goes into a fresh temporary
//! file, created with `create_new` under a hidden name no final name can
//! take (see [`TEMP_PREFIX`]); when it is complete, one `rename` (with
//! `--clobber`) or one `hard_link` (without) gives it its final name. That
//! last step is the only one that touches the final name, and neither it nor
//! the creation follows a symlink, so nothing is ever written through one.
//! The temporary file is removed on every other path.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use windlass::CancelToken;

use crate::args::FetchArgs;
use crate::client::{self, Client};
use crate::exit::{self, Failure};
use crate::progress::{self, duration};

struct Job {
    url: String,
    /// File name inside the output directory, unique within this run.
    name: String,
}

/// Every temporary file's name starts with this, followed by
/// `<pid>-<job index>-<attempt>.tmp`. No final name can start with a dot
/// (see [`file_name`]), so a temporary file can never have, or later be
/// renamed over by, another job's final name.
const TEMP_PREFIX: &str = ".windlass-";

/// Names tried for a job's temporary file before giving up. Only a leftover
/// from an earlier run with the same pid, or something planted, is in the way.
const TEMP_ATTEMPTS: u32 = 100;

/// Without `--clobber`, the highest N tried for `NAME.N` when NAME exists
/// (curl's `--no-clobber` limit).
const MAX_NUMBERED: u32 = 100;

enum Outcome {
    NotStarted,
    Saved {
        status: u16,
        /// The name actually used, which is not the job's name when that
        /// existed already and `--clobber` was not given.
        file: String,
        bytes: u64,
        elapsed: Duration,
    },
    Failed {
        status: Option<u16>,
        code: u8,
        message: String,
        elapsed: Duration,
    },
}

pub fn run(args: &FetchArgs, token: &CancelToken) -> Result<(), Failure> {
    let urls = read_urls(args)?;
    if urls.is_empty() {
        return Err(Failure::usage(
            "no URLs given (as arguments or with -i FILE)",
        ));
    }
    fs::create_dir_all(&args.dir).map_err(|e| {
        Failure::new(
            exit::WRITE,
            format!("cannot create {}: {e}", args.dir.display()),
        )
    })?;
    let jobs = name_jobs(urls);
    let agent = client::builder(&args.client)?.build()?;
    let client = Client::new(agent, &args.client, token)?;

    let started = Instant::now();
    let show = !args.silent && progress::stderr_is_terminal();
    let outcomes = run_jobs(client, &jobs, args, token, show);
    let elapsed = started.elapsed();
    print_summary(&jobs, &outcomes, elapsed);

    if token.is_cancelled() {
        return Err(Failure::new(
            exit::CANCELLED,
            "cancelled; the summary above says what finished",
        ));
    }
    match outcomes.iter().find_map(|o| match o {
        Outcome::Failed { code, .. } => Some(*code),
        _ => None,
    }) {
        Some(code) => Err(Failure::silent(code)),
        None => Ok(()),
    }
}

fn read_urls(args: &FetchArgs) -> Result<Vec<String>, Failure> {
    let mut urls = args.urls.clone();
    if let Some(path) = &args.input {
        let what = path.display().to_string();
        let reader: Box<dyn BufRead> = if what == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(io::BufReader::new(
                File::open(path).map_err(|e| Failure::read(&what, e))?,
            ))
        };
        for line in reader.lines() {
            let line = line.map_err(|e| Failure::read(&what, e))?;
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                urls.push(line.to_string());
            }
        }
    }
    Ok(urls)
}

/// Gives every URL a distinct file name, decided before anything starts so
/// that the names do not depend on which download finishes first.
///
/// No name starts with a dot: [`file_name`] strips leading dots and the
/// counter goes after the first character, so a final name can never be a
/// temporary name ([`TEMP_PREFIX`]). The same holds for the `NAME.N` names
/// [`Saver`] falls back to.
fn name_jobs(urls: Vec<String>) -> Vec<Job> {
    let mut taken = HashSet::new();
    urls.into_iter()
        .map(|url| {
            let base = file_name(&url);
            let (stem, ext) = match base.rfind('.') {
                Some(i) if i > 0 => (base[..i].to_string(), base[i..].to_string()),
                _ => (base.clone(), String::new()),
            };
            let mut name = base;
            let mut n = 1;
            while !taken.insert(name.clone()) {
                name = format!("{stem}.{n}{ext}");
                n += 1;
            }
            debug_assert!(!name.starts_with('.'), "{name} could be a temporary name");
            Job { url, name }
        })
        .collect()
}

/// The last path segment of the URL, made safe as a file name;
/// `index.html` when there is none. Never starts with a dot: that keeps
/// hidden files (and `..`) out of reach, and every temporary name, which
/// starts with [`TEMP_PREFIX`], apart from every final name.
fn file_name(url: &str) -> String {
    let last = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(String::from))
        })
        .unwrap_or_default();
    let safe: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "index.html".to_string()
    } else {
        safe.to_string()
    }
}

/// File descriptors one running download holds: its connection and its
/// temporary file.
const FDS_PER_JOB: usize = 2;
/// Descriptors left for everything else: stdio, the resolver, a connection
/// being replaced, the output directory.
const FD_RESERVE: usize = 16;

/// How many downloads may run at once: what `-j` asks, no more than there
/// are jobs, and no more than the open-file limit leaves room for (each
/// running download holds [`FDS_PER_JOB`] descriptors; past the limit every
/// further connection fails with "Too many open files").
fn concurrency(asked: usize, jobs: usize) -> usize {
    let wanted = asked.min(jobs).max(1);
    let Some(limit) = open_files_limit() else {
        return wanted;
    };
    let open = open_fds().unwrap_or(FD_RESERVE);
    let room = (limit.saturating_sub(open + FD_RESERVE) / FDS_PER_JOB).max(1);
    if room < wanted {
        log::warn!(
            "fetch: running {room} downloads at once, not {wanted}: \
             the open-file limit is {limit} (ulimit -n)"
        );
        return room;
    }
    wanted
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None`
/// when unlimited or unknown.
fn open_files_limit() -> Option<usize> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Descriptors open now, from `/proc/self/fd` (Linux).
fn open_fds() -> Option<usize> {
    Some(fs::read_dir("/proc/self/fd").ok()?.count())
}

fn run_jobs(
    client: Client,
    jobs: &[Job],
    args: &FetchArgs,
    token: &CancelToken,
    show: bool,
) -> Vec<Outcome> {
    let bytes = Arc::new(AtomicU64::new(0));
    let mut outcomes: Vec<Outcome> = jobs.iter().map(|_| Outcome::NotStarted).collect();
    let saver = Arc::new(Saver {
        dir: args.dir.clone(),
        clobber: args.clobber,
        planned: jobs.iter().map(|j| j.name.clone()).collect(),
    });
    let workers = concurrency(args.jobs as usize, jobs.len());
    let items: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.url.clone(), j.name.clone()))
        .collect();
    let fail = args.fail;
    let client = Arc::new(client);
    let counted = Arc::clone(&bytes);
    let mut results = client
        .agent
        .batch()
        .concurrency(workers)
        .cancel_token(token)
        .run(items.into_iter().enumerate(), {
            let client = Arc::clone(&client);
            move |_, (index, (url, name))| {
                let job = Job { url, name };
                Ok(fetch_one(&client, &job, index, &saver, fail, &counted))
            }
        });
    let started = Instant::now();
    let (mut saved, mut failed) = (0, 0);
    loop {
        match results.next_timeout(Duration::from_millis(100)) {
            Ok(Some(done)) => {
                // A job the batch stopped before it ran stays "not started".
                let Ok(outcome) = done.result else { continue };
                match outcome {
                    Outcome::Saved { .. } => saved += 1,
                    Outcome::Failed { .. } => failed += 1,
                    Outcome::NotStarted => {}
                }
                if let Some(slot) = outcomes.get_mut(done.index) {
                    *slot = outcome;
                }
            }
            Ok(None) => {}
            Err(()) => break,
        }
        if show {
            let got = bytes.load(Ordering::Relaxed);
            let line = format!(
                "fetch: {}/{} done, {failed} failed  {}  {}{}",
                saved + failed,
                jobs.len(),
                progress::bytes(got),
                progress::rate(got, started.elapsed()),
                if token.is_cancelled() {
                    "  cancelling…"
                } else {
                    ""
                }
            );
            eprint!("\r{:<w$}", line, w = progress::term_width() - 1);
        }
    }
    if show {
        eprintln!();
    }
    outcomes
}

/// Downloads one URL into a temporary file, then has `saver` give it its
/// final name. `index` is the job's place in the list, which keeps its
/// temporary names apart from every other job's.
fn fetch_one(
    client: &Client,
    job: &Job,
    index: usize,
    saver: &Saver,
    fail: bool,
    bytes: &AtomicU64,
) -> Outcome {
    let started = Instant::now();
    let failed = |status, code, message: String| Outcome::Failed {
        status,
        code,
        message,
        elapsed: started.elapsed(),
    };
    let from_error = |status, err: windlass::Error| {
        let f = Failure::from(err);
        failed(status, f.code, f.message.unwrap_or_default())
    };
    let resp = match client.request("GET", &job.url).call() {
        Ok(r) => r,
        Err(e) => return from_error(None, e),
    };
    let status = resp.status().as_u16();
    if fail && status >= 400 {
        return failed(Some(status), exit::HTTP_ERROR, format!("HTTP {status}"));
    }
    // From here on, returning early drops `temp`, which removes the file.
    let (mut file, temp) = match TempFile::create(&saver.dir, index) {
        Ok(t) => t,
        Err(e) => {
            return failed(
                Some(status),
                exit::WRITE,
                format!(
                    "cannot create a temporary file in {}: {e}",
                    saver.dir.display()
                ),
            )
        }
    };
    let mut body = resp.into_body();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = file.write_all(&buf[..n]) {
                    return failed(
                        Some(status),
                        exit::WRITE,
                        format!("cannot write {}: {e}", temp.path.display()),
                    );
                }
                total += n as u64;
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return from_error(Some(status), windlass::Error::from_io(e)),
        }
    }
    drop(file);
    match saver.save(temp, &job.name) {
        Ok(file) => Outcome::Saved {
            status,
            file,
            bytes: total,
            elapsed: started.elapsed(),
        },
        Err(message) => failed(Some(status), exit::WRITE, message),
    }
}

/// The name of a download in progress: a file of its own in the output
/// directory, removed when this is dropped, whether the download failed or
/// [`Saver::save`] has given the file its final name.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Creates `DIR/.windlass-<pid>-<index>-<attempt>.tmp` with `create_new`
    /// (O_CREAT|O_EXCL): it fails when anything is at that name, a symlink
    /// (even a dangling one) included, so the file is always new and ours.
    /// The pid and index keep concurrent runs and jobs apart; on a collision
    /// the next attempt number is tried.
    fn create(dir: &Path, index: usize) -> io::Result<(File, TempFile)> {
        let pid = std::process::id();
        for attempt in 0..TEMP_ATTEMPTS {
            let path = dir.join(format!("{TEMP_PREFIX}{pid}-{index}-{attempt}.tmp"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((file, TempFile { path })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{TEMP_ATTEMPTS} temporary names in a row are taken"),
        ))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // After a rename nothing is left at `path`; after a hard link only
        // our own name is. Removing a name never follows a symlink.
        let _ = fs::remove_file(&self.path);
    }
}

/// Gives complete downloads their final names in the output directory.
struct Saver {
    dir: PathBuf,
    /// Replace an existing file (`--clobber`) rather than pick `NAME.N`.
    clobber: bool,
    /// Every job's name, which `NAME.N` must not take from another job.
    planned: HashSet<String>,
}

impl Saver {
    /// Moves `temp` to `name`, returning the name used.
    ///
    /// With `--clobber`, a `rename`: it atomically replaces whatever is at
    /// the final name, a symlink included (the link itself is replaced, its
    /// target is untouched). Without it, a `hard_link`, which fails when
    /// anything exists at the final name, so an existing file is never
    /// replaced even by one that appears at the last moment; then `NAME.1`
    /// … `NAME.100` are tried the same way, skipping other jobs' names.
    fn save(&self, temp: TempFile, name: &str) -> Result<String, String> {
        let path = &temp.path;
        if self.clobber {
            let target = self.dir.join(name);
            return match fs::rename(path, &target) {
                Ok(()) => Ok(name.to_string()),
                Err(e) => Err(format!("cannot rename to {}: {e}", target.display())),
            };
        }
        for n in 0..=MAX_NUMBERED {
            let candidate = if n == 0 {
                name.to_string()
            } else {
                format!("{name}.{n}")
            };
            if n > 0 && self.planned.contains(candidate.as_str()) {
                continue;
            }
            let target = self.dir.join(&candidate);
            match fs::hard_link(path, &target) {
                // Dropping `temp` removes the temporary name.
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(format!(
                        "cannot link to {}: {e} (--clobber saves with a rename instead)",
                        target.display()
                    ))
                }
            }
        }
        Err(format!(
            "{name} and {name}.1 to {name}.{MAX_NUMBERED} all exist in {} \
             (--clobber replaces {name})",
            self.dir.display()
        ))
    }
}

fn print_summary(jobs: &[Job], outcomes: &[Outcome], elapsed: Duration) {
    let name_w = jobs
        .iter()
        .zip(outcomes)
        .map(|(j, o)| match o {
            Outcome::Saved { file, .. } => file.len().max(j.name.len()),
            _ => j.name.len(),
        })
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    println!(
        "{:<7} {:>10} {:>9}  {:<name_w$}  URL",
        "STATUS", "SIZE", "TIME", "FILE"
    );
    let (mut saved, mut failed, mut not_started, mut total) = (0, 0, 0, 0u64);
    for (job, outcome) in jobs.iter().zip(outcomes) {
        let (status, size, time, file, note) = match outcome {
            Outcome::Saved {
                status,
                file,
                bytes,
                elapsed,
            } => {
                saved += 1;
                total += bytes;
                (
                    status.to_string(),
                    progress::bytes(*bytes),
                    duration(*elapsed),
                    file.as_str(),
                    String::new(),
                )
            }
            Outcome::Failed {
                status,
                code,
                message,
                elapsed,
            } => {
                failed += 1;
                let label = if *code == exit::CANCELLED {
                    "CANCEL"
                } else {
                    "FAILED"
                };
                let status = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| label.to_string());
                (
                    status,
                    "-".into(),
                    duration(*elapsed),
                    "-",
                    format!("  {message}"),
                )
            }
            Outcome::NotStarted => {
                not_started += 1;
                (
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-",
                    "  not started".to_string(),
                )
            }
        };
        println!(
            "{status:<7} {size:>10} {time:>9}  {file:<name_w$}  {}{note}",
            job.url
        );
    }
    let mut line = format!(
        "{} URLs: {saved} saved ({}), {failed} failed",
        jobs.len(),
        progress::bytes(total)
    );
    if not_started > 0 {
        line.push_str(&format!(", {not_started} not started"));
    }
    println!("{line}, in {}", duration(elapsed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_path_and_are_safe() {
        assert_eq!(file_name("http://h/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(file_name("http://h/"), "index.html");
        assert_eq!(file_name("http://h"), "index.html");
        assert_eq!(file_name("http://h/..%2Fetc"), "_2Fetc");
        assert_eq!(file_name("http://h/a%20b"), "a_20b");
        assert_eq!(file_name("not a url"), "index.html");
    }

    #[test]
    fn final_names_never_look_like_temporary_names() {
        let jobs = name_jobs(vec![
            "http://h/.windlass-1-0-0.tmp".into(),
            "http://h/.windlass-1-0-0.tmp".into(),
            "http://h/.hidden".into(),
            "http://h/...".into(),
            "http://h/%2e%2e".into(),
        ]);
        let names: Vec<_> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "windlass-1-0-0.tmp",
                "windlass-1-0-0.1.tmp",
                "hidden",
                "index.html",
                "index.1.html",
            ]
        );
        assert!(names.iter().all(|n| !n.starts_with(TEMP_PREFIX)));
        assert!(TEMP_PREFIX.starts_with('.'));
    }

    #[test]
    fn duplicate_names_get_a_counter_before_the_extension() {
        let jobs = name_jobs(vec![
            "http://h/a.txt".into(),
            "http://g/a.txt".into(),
            "http://h/".into(),
            "http://g/".into(),
            "http://h/a.txt".into(),
        ]);
        let names: Vec<_> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            ["a.txt", "a.1.txt", "index.html", "index.1.html", "a.2.txt"]
        );
    }
}
