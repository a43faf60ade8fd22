//! The catalogue: rows of (what the server replies, the command line, what
//! windlass must print, its exit code, and what the server must have seen),
//! read from `catalogue/*.txt` and run through the built binary, each row
//! against its own scripted server on 127.0.0.1.
//!
//! Row format (one field a line, `\r` `\n` `\t` `\\` `\0` escapes in values):
//!
//! ```text
//! == name of the row
//! reply: HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok   (one per request, in order)
//! args: -i {url}/path                                      (split on spaces; {url} {host} {port} {dir}, {dead} a closed port's URL)
//! arg: one argument with spaces                            (appended whole)
//! stdin: bytes for the binary's stdin
//! file: NAME=CONTENT                                       (created in {dir} first)
//! stdout: exact expected stdout                            (or stdout-glob: with * wildcards)
//! stderr-has: a substring of stderr
//! exit: 0
//! sent: a substring of the request bytes the server read   (repeatable; sent-not: must be absent)
//! outfile: NAME=CONTENT                                    (a file in {dir} afterwards)
//! connections: 1                                           (how many the server accepted)
//! ```
//!
//! After its last reply the server closes the connection; a reply written
//! `reply-close:` closes it too. Every row runs, failures are reported together.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Longest one row may take.
const ROW_BOUND: Duration = Duration::from_secs(20);
/// Rows run at once (the machine is shared).
const PARALLEL: usize = 6;

#[derive(Debug, Default, Clone)]
struct Row {
    name: String,
    line: usize,
    replies: Vec<(Vec<u8>, bool)>,
    args: Vec<String>,
    stdin: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
    stdout: Option<Vec<u8>>,
    stdout_glob: Option<String>,
    stderr_has: Vec<String>,
    exit: i32,
    sent: Vec<String>,
    sent_not: Vec<String>,
    outfiles: Vec<(String, Vec<u8>)>,
    connections: Option<usize>,
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                out.push(b'\\');
                let mut buf = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

fn text(s: &str) -> String {
    String::from_utf8(unescape(s)).unwrap()
}

fn named(value: &str) -> (String, Vec<u8>) {
    let (name, content) = value.split_once('=').expect("NAME=CONTENT");
    (name.to_string(), unescape(content))
}

fn parse(source: &str, file: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for (i, line) in source.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("== ") {
            rows.push(Row {
                name: name.trim().to_string(),
                line: i + 1,
                ..Row::default()
            });
            continue;
        }
        let row = rows
            .last_mut()
            .unwrap_or_else(|| panic!("{file}:{}: field before a row", i + 1));
        let (key, value) = line
            .split_once(": ")
            .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
            .unwrap_or_else(|| panic!("{file}:{}: not `key: value`", i + 1));
        match key {
            "reply" => row.replies.push((unescape(value), false)),
            "reply-close" => row.replies.push((unescape(value), true)),
            "args" => row.args.extend(value.split_whitespace().map(text)),
            "arg" => row.args.push(text(value)),
            "stdin" => row.stdin = unescape(value),
            "file" => row.files.push(named(value)),
            "stdout" => row.stdout = Some(unescape(value)),
            "stdout-glob" => row.stdout_glob = Some(text(value)),
            "stderr-has" => row.stderr_has.push(text(value)),
            "exit" => row.exit = value.trim().parse().expect("exit code"),
            "sent" => row.sent.push(text(value)),
            "sent-not" => row.sent_not.push(text(value)),
            "outfile" => row.outfiles.push(named(value)),
            "connections" => row.connections = Some(value.trim().parse().unwrap()),
            other => panic!("{file}:{}: unknown field {other:?}", i + 1),
        }
    }
    rows
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(parts[0]) else {
        return false;
    };
    for (i, part) in parts[1..].iter().enumerate() {
        if i + 2 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The scripted server of one row: answers requests with the replies in
/// order and records every byte of every request.
struct Scripted {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Scripted {
    fn start(listener: TcpListener, replies: Vec<(Vec<u8>, bool)>) -> Scripted {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Arc::new(Mutex::new(replies.into_iter()));
        let thread = {
            let (seen, accepted, stop) = (seen.clone(), accepted.clone(), stop.clone());
            thread::spawn(move || {
                let mut conns = Vec::new();
                // Bounded: no row opens more than a few connections.
                for _ in 0..16 {
                    let Ok((tcp, _)) = listener.accept() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (seen, replies) = (seen.clone(), replies.clone());
                    conns.push(thread::spawn(move || serve(tcp, &seen, &replies)));
                }
                for c in conns {
                    let _ = c.join();
                }
            })
        };
        Scripted {
            addr,
            seen,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen.lock().unwrap().clone()
    }
}

type Replies = Mutex<std::vec::IntoIter<(Vec<u8>, bool)>>;

/// One connection: read a request head and its Content-Length body, answer
/// with the next reply; close after the last reply or one marked to close.
fn serve(tcp: TcpStream, seen: &Mutex<Vec<u8>>, replies: &Replies) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = tcp.try_clone().unwrap();
    let mut reader = BufReader::new(tcp);
    for _ in 0..16 {
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
            if let Some(v) = text.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" || line == b"\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        {
            let mut seen = seen.lock().unwrap();
            seen.extend_from_slice(&head);
            seen.extend_from_slice(&body);
        }
        let next = replies.lock().unwrap().next();
        let Some((bytes, close)) = next else { return };
        if writer.write_all(&bytes).is_err() {
            return;
        }
        let last = replies.lock().unwrap().len() == 0;
        if close || last {
            let _ = writer.shutdown(std::net::Shutdown::Write);
            // Let the client read to the end before the socket goes away.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            return;
        }
    }
}

/// Runs one row; the reasons it failed, if it did.
fn run_row(row: &Row, scratch: &std::path::Path) -> Result<(), String> {
    let dir = scratch.join(format!("row{}", row.line));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in &row.files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let host = addr.to_string();
    let port = addr.port().to_string();
    let dead = common::closed_port();
    let sub = |s: &str| {
        s.replace("{url}", &format!("http://{host}"))
            .replace("{dead}", &format!("http://127.0.0.1:{dead}"))
            .replace("{host}", &host)
            .replace("{port}", &port)
            .replace("{dir}", &dir.display().to_string())
    };
    let replies = row
        .replies
        .iter()
        .map(|(bytes, close)| {
            let text = String::from_utf8_lossy(bytes);
            // Placeholders only in text replies; binary ones go as they are.
            let bytes = if text.contains('{') && std::str::from_utf8(bytes).is_ok() {
                sub(&text).into_bytes()
            } else {
                bytes.clone()
            };
            (bytes, *close)
        })
        .collect();
    let mut server = Scripted::start(listener, replies);
    let args: Vec<String> = row.args.iter().map(|a| sub(a)).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(&args)
        .current_dir(&dir)
        .env_remove("RUST_LOG")
        .env("NO_PROXY", "*")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = row.stdin.clone();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(ROW_BOUND) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            common::signal(pid, common::Signal::SIGKILL);
            server.finish();
            return Err(format!("did not finish within {ROW_BOUND:?}"));
        }
    };
    let _ = feeder.join();
    let seen = String::from_utf8_lossy(&server.finish()).into_owned();
    let stdout = out.stdout.clone();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut why = Vec::new();
    if out.status.code() != Some(row.exit) {
        why.push(format!(
            "exit {:?}, expected {}",
            out.status.code(),
            row.exit
        ));
    }
    if let Some(expected) = &row.stdout {
        let expected = sub(&String::from_utf8_lossy(expected)).into_bytes();
        if stdout != expected {
            why.push(format!(
                "stdout {:?}\n      expected {:?}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&expected)
            ));
        }
    }
    if let Some(pattern) = &row.stdout_glob {
        let text = String::from_utf8_lossy(&stdout);
        if !glob(&sub(pattern), &text) {
            why.push(format!("stdout {text:?}\n      does not match {pattern:?}"));
        }
    }
    for s in &row.stderr_has {
        if !stderr.contains(&sub(s)) {
            why.push(format!("stderr lacks {s:?}"));
        }
    }
    for s in &row.sent {
        if !seen.contains(&sub(s)) {
            why.push(format!("the server did not see {s:?}"));
        }
    }
    for s in &row.sent_not {
        if seen.contains(&sub(s)) {
            why.push(format!("the server saw {s:?}"));
        }
    }
    for (name, content) in &row.outfiles {
        match std::fs::read(dir.join(name)) {
            Ok(got) if got == *content => {}
            Ok(got) => why.push(format!(
                "file {name} holds {:?}",
                String::from_utf8_lossy(&got)
            )),
            Err(e) => why.push(format!("file {name}: {e}")),
        }
    }
    if let Some(n) = row.connections {
        let got = server.accepted.load(Ordering::SeqCst);
        if got != n {
            why.push(format!("{got} connections, expected {n}"));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        why.push(format!("stderr: {stderr:?}"));
        why.push(format!("request bytes: {seen:?}"));
        Err(why.join("\n    "))
    }
}

#[test]
fn every_catalogue_row_passes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalogue");
    let mut rows = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        rows.extend(parse(&source, &name).into_iter().map(|r| (name.clone(), r)));
    }
    let scratch = common::TempDir::new("catalogue");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((file, row)) = rows.get(i) else {
                    break;
                };
                if let Err(why) = run_row(row, scratch.path()) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{file}:{} {}\n    {why}", row.line, row.name));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let passed = rows.len() - failures.len();
    eprintln!("catalogue: {passed} of {} rows pass", rows.len());
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(rows.len() >= 120, "only {} rows", rows.len());
}
