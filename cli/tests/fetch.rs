//! `windlass fetch`: many URLs, one file each, a summary at the end.

mod common;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{ok, run, status, stderr, stdout, Reply, TempDir, TestServer, BOUND};

fn body_for(req: &str) -> Reply {
    let path = req.split(' ').nth(1).unwrap_or("/").to_string();
    if path == "/missing" {
        return status(404, "Not Found", &[], b"nope");
    }
    ok(format!("body of {path}").as_bytes())
}

#[test]
fn fetch_saves_each_url_to_its_own_file() {
    let server = TestServer::start(body_for);
    let tmp = TempDir::new("fetch-saves");
    let dir = tmp.path();
    let (a, b, c) = (server.url("/a.txt"), server.url("/b.txt"), server.url("/"));
    let out = run(&[
        "fetch",
        "-j",
        "2",
        "--dir",
        dir.to_str().unwrap(),
        &a,
        &b,
        &c,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("a.txt")).unwrap(),
        "body of /a.txt"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("b.txt")).unwrap(),
        "body of /b.txt"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("index.html")).unwrap(),
        "body of /"
    );
    let summary = stdout(&out);
    assert!(summary.contains("3 URLs: 3 saved"), "{summary}");
    assert_eq!(listing(dir), ["a.txt", "b.txt", "index.html"]);
}

#[test]
fn fetch_reads_urls_from_a_file_and_reports_failures() {
    let server = TestServer::start(body_for);
    let tmp = TempDir::new("fetch-input");
    let dir = tmp.path();
    let list = dir.join("urls.txt");
    std::fs::write(
        &list,
        format!(
            "# a comment\n{}\n\n{}\n",
            server.url("/one"),
            server.url("/missing")
        ),
    )
    .unwrap();
    let out_dir = dir.join("out");
    let out = run(&[
        "fetch",
        "--fail",
        "-i",
        list.to_str().unwrap(),
        "--dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("one")).unwrap(),
        "body of /one"
    );
    assert!(!out_dir.join("missing").exists());
    let summary = stdout(&out);
    assert!(summary.contains("2 URLs: 1 saved"), "{summary}");
    assert!(summary.contains("1 failed"), "{summary}");
}

#[test]
fn fetch_without_urls_is_a_usage_error() {
    let out = run(&["fetch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn ctrl_c_cancels_every_download_in_flight_and_the_summary_says_so() {
    let server = TestServer::start(|req| {
        if req.starts_with("GET /quick ") {
            ok(b"quick")
        } else {
            Reply::Hang
        }
    });
    let tmp = TempDir::new("fetch-cancel");
    let dir = tmp.path();
    let urls: Vec<String> = ["/quick", "/slow1", "/slow2", "/slow3", "/slow4"]
        .iter()
        .map(|p| server.url(p))
        .collect();
    let mut args = vec!["fetch", "-j", "3", "--dir", dir.to_str().unwrap()];
    args.extend(urls.iter().map(String::as_str));
    let child = common::spawn(&args);
    // /quick, then three hanging downloads occupy every worker.
    for _ in 0..4 {
        server.next_request();
    }
    let started = Instant::now();
    common::signal(child.id(), common::Signal::SIGINT);
    let out = common::wait_bounded(child);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(5));
    let summary = stdout(&out);
    assert!(summary.contains("5 URLs: 1 saved"), "{summary}");
    assert!(summary.contains("3 failed, 1 not started"), "{summary}");
    assert_eq!(std::fs::read_to_string(dir.join("quick")).unwrap(), "quick");
    assert_eq!(listing(dir), ["quick"], "partial files left behind");
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The summary row for `url`: its STATUS, FILE and URL columns, then the
/// note's words. FILE starts after the fixed-width STATUS, SIZE and TIME
/// columns (SIZE and TIME have spaces in them).
fn row(summary: &str, url: &str) -> Vec<String> {
    let line = summary
        .lines()
        .find(|l| l.ends_with(url) || l.contains(&format!("{url}  ")))
        .unwrap_or_else(|| panic!("no row for {url} in:\n{summary}"));
    let status = line.split_whitespace().next().unwrap().to_string();
    let rest: String = line.chars().skip(7 + 1 + 10 + 1 + 9 + 2).collect();
    std::iter::once(status)
        .chain(rest.split_whitespace().map(String::from))
        .collect()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn path_of(request: &str) -> &str {
    request.split(' ').nth(1).unwrap_or("/")
}

#[test]
fn a_temporary_name_never_collides_with_another_jobs_final_name() {
    // The interleaving that used to go wrong: /a's download is under way
    // (its temporary file was `a.part`) when /a.part's finishes and is
    // renamed to `a.part`; then /a finishes. /a answers its head and half
    // its body, waits until /a.part has been answered and its worker has
    // moved on to /c (so /a.part's file is in place), then finishes.
    let (head_tx, head_rx) = mpsc::channel::<()>();
    let (c_tx, c_rx) = mpsc::channel::<()>();
    let head_tx = Mutex::new(Some(head_tx));
    let head_rx = Mutex::new(Some(head_rx));
    let c_tx = Mutex::new(c_tx);
    let c_rx = Mutex::new(Some(c_rx));
    let server = TestServer::start_concurrent(move |req| match path_of(req) {
        "/a" => {
            let head_tx = head_tx.lock().unwrap().take().expect("one /a");
            let c_rx = c_rx.lock().unwrap().take().expect("one /a");
            Reply::Write(Box::new(move |stream| {
                let body = b"body of /a";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body[..5]).unwrap();
                stream.flush().unwrap();
                head_tx.send(()).unwrap();
                c_rx.recv_timeout(BOUND).expect("/c was never requested");
                stream.write_all(&body[5..]).unwrap();
            }))
        }
        "/a.part" => {
            let head_rx = head_rx.lock().unwrap().take().expect("one /a.part");
            head_rx.recv_timeout(BOUND).expect("/a was never answered");
            ok(b"body of /a.part")
        }
        path => {
            let _ = c_tx.lock().unwrap().send(());
            ok(format!("body of {path}").as_bytes())
        }
    });
    let tmp = TempDir::new("fetch-temp-vs-final");
    let dir = tmp.path().join("o");
    let urls = [server.url("/a"), server.url("/a.part"), server.url("/c")];
    let out = run(&[
        "fetch",
        "-j",
        "2",
        "--dir",
        dir.to_str().unwrap(),
        &urls[0],
        &urls[1],
        &urls[2],
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listing(&dir), ["a", "a.part", "c"]);
    assert_eq!(read(dir.join("a")), "body of /a");
    assert_eq!(read(dir.join("a.part")), "body of /a.part");
    assert_eq!(read(dir.join("c")), "body of /c");
    let summary = stdout(&out);
    assert_eq!(row(&summary, &urls[0])[..3], ["200", "a", urls[0].as_str()]);
    assert_eq!(
        row(&summary, &urls[1])[..3],
        ["200", "a.part", urls[1].as_str()]
    );
    assert!(summary.contains("3 URLs: 3 saved"), "{summary}");
}

#[test]
fn a_planted_symlink_at_the_temporary_or_final_name_is_not_followed() {
    // Each answer waits for a go, so the links can be planted once the
    // process id (part of the temporary names) is known.
    let (go, wait) = mpsc::channel::<()>();
    let server = TestServer::start(move |_| {
        wait.recv_timeout(BOUND).expect("no go");
        ok(b"fresh data")
    });
    let url = server.url("/data.bin");
    let tmp = TempDir::new("fetch-symlinks");
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let fetch = |dir: &Path, extra: &[&str], plant: &dyn Fn(u32)| {
        std::fs::create_dir(dir).unwrap();
        let mut args = vec!["fetch", "--dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&url);
        let child = common::spawn(&args);
        plant(child.id());
        go.send(()).unwrap();
        common::wait_bounded(child)
    };
    let is_link = |p: &Path| p.symlink_metadata().unwrap().file_type().is_symlink();

    // At the old temporary name and at the first temporary names this
    // process tries, one of them dangling.
    let o = tmp.path().join("o");
    let planted = Mutex::new(Vec::new());
    let out = fetch(&o, &[], &|pid| {
        symlink("../victim.txt", o.join("data.bin.part")).unwrap();
        let mut planted = planted.lock().unwrap();
        for n in 0..4 {
            let name = format!(".windlass-{pid}-0-{n}.tmp");
            let target = if n == 3 {
                "../created.txt"
            } else {
                "../victim.txt"
            };
            symlink(target, o.join(&name)).unwrap();
            planted.push(name);
        }
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read(&victim), "precious");
    assert!(!tmp.path().join("created.txt").exists());
    assert!(!is_link(&o.join("data.bin")));
    assert_eq!(read(o.join("data.bin")), "fresh data");
    let mut expected = planted.into_inner().unwrap();
    expected.extend(["data.bin".to_string(), "data.bin.part".to_string()]);
    expected.sort();
    assert_eq!(listing(&o), expected);
    assert!(expected
        .iter()
        .filter(|n| *n != "data.bin")
        .all(|n| is_link(&o.join(n))));

    // At the final name, with --clobber: the link is replaced, not followed.
    let o = tmp.path().join("clobber");
    let out = fetch(&o, &["--clobber"], &|_| {
        symlink("../victim.txt", o.join("data.bin")).unwrap();
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read(&victim), "precious");
    assert!(!is_link(&o.join("data.bin")));
    assert_eq!(read(o.join("data.bin")), "fresh data");
    assert_eq!(listing(&o), ["data.bin"]);

    // At the final name, by default: the link stays, the data goes next to it.
    let o = tmp.path().join("keep");
    let out = fetch(&o, &[], &|_| {
        symlink("../victim.txt", o.join("data.bin")).unwrap();
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read(&victim), "precious");
    assert!(is_link(&o.join("data.bin")));
    assert_eq!(read(o.join("data.bin.1")), "fresh data");
    assert_eq!(listing(&o), ["data.bin", "data.bin.1"]);
}

#[test]
fn an_existing_file_is_not_replaced_by_default() {
    let server = TestServer::start(body_for);
    let url = server.url("/a.txt");
    let tmp = TempDir::new("fetch-no-clobber");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "old").unwrap();
    let fetch = |extra: &[&str]| {
        let mut args = vec!["fetch", "--dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&url);
        run(&args)
    };

    let out = fetch(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read(dir.join("a.txt")), "old");
    assert_eq!(read(dir.join("a.txt.1")), "body of /a.txt");
    assert_eq!(
        row(&stdout(&out), &url)[..3],
        ["200", "a.txt.1", url.as_str()]
    );

    // --no-clobber is the default, and the last of the two flags wins.
    let out = fetch(&["--clobber", "--no-clobber"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        row(&stdout(&out), &url)[..3],
        ["200", "a.txt.2", url.as_str()]
    );
    assert_eq!(listing(dir), ["a.txt", "a.txt.1", "a.txt.2"]);
    assert_eq!(read(dir.join("a.txt")), "old");
}

#[test]
fn a_numbered_name_is_never_taken_from_another_job() {
    let server = TestServer::start(body_for);
    let tmp = TempDir::new("fetch-numbered");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "old").unwrap();
    let (a, a1) = (server.url("/a.txt"), server.url("/a.txt.1"));
    let out = run(&["fetch", "-j", "1", "--dir", dir.to_str().unwrap(), &a, &a1]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listing(dir), ["a.txt", "a.txt.1", "a.txt.2"]);
    assert_eq!(read(dir.join("a.txt")), "old");
    assert_eq!(read(dir.join("a.txt.1")), "body of /a.txt.1");
    assert_eq!(read(dir.join("a.txt.2")), "body of /a.txt");
    let summary = stdout(&out);
    assert_eq!(row(&summary, &a)[1], "a.txt.2");
    assert_eq!(row(&summary, &a1)[1], "a.txt.1");
}

#[test]
fn nothing_is_replaced_when_every_numbered_name_is_taken() {
    let server = TestServer::start(body_for);
    let url = server.url("/a.txt");
    let tmp = TempDir::new("fetch-all-taken");
    let dir = tmp.path();
    let mut taken = vec!["a.txt".to_string()];
    taken.extend((1..=100).map(|n| format!("a.txt.{n}")));
    for name in &taken {
        std::fs::write(dir.join(name), "old").unwrap();
    }
    let out = run(&["fetch", "--dir", dir.to_str().unwrap(), &url]);
    assert_eq!(out.status.code(), Some(23), "{}", stderr(&out));
    taken.sort();
    assert_eq!(listing(dir), taken);
    assert!(taken.iter().all(|n| read(dir.join(n)) == "old"));
    let summary = stdout(&out);
    assert_eq!(row(&summary, &url)[..3], ["200", "-", url.as_str()]);
    assert!(
        summary.contains("a.txt and a.txt.1 to a.txt.100 all exist"),
        "{summary}"
    );
    assert!(
        summary.contains("1 URLs: 0 saved (0 B), 1 failed"),
        "{summary}"
    );
}

#[test]
fn clobber_replaces_an_existing_file() {
    let server = TestServer::start(body_for);
    let url = server.url("/a.txt");
    let tmp = TempDir::new("fetch-clobber");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "old").unwrap();
    let out = run(&["fetch", "--clobber", "--dir", dir.to_str().unwrap(), &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listing(dir), ["a.txt"]);
    assert_eq!(read(dir.join("a.txt")), "body of /a.txt");
    assert_eq!(
        row(&stdout(&out), &url)[..3],
        ["200", "a.txt", url.as_str()]
    );
}

#[test]
fn a_failed_download_leaves_no_temporary_file() {
    let server = TestServer::start(|req| match path_of(req) {
        // Promises 100 bytes, sends 10, closes.
        "/short" => Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789"
                .to_vec(),
        ),
        _ => status(404, "Not Found", &[], b"nope"),
    });
    let tmp = TempDir::new("fetch-failed");
    let dir = tmp.path();
    let (short, missing) = (server.url("/short"), server.url("/missing"));
    let out = run(&[
        "fetch",
        "--fail",
        "-j",
        "1",
        "--dir",
        dir.to_str().unwrap(),
        &short,
        &missing,
    ]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(listing(dir), Vec::<String>::new());
    let summary = stdout(&out);
    assert_eq!(row(&summary, &short)[0], "200");
    assert_eq!(row(&summary, &missing)[0], "404");
    assert!(
        summary.contains("2 URLs: 0 saved (0 B), 2 failed"),
        "{summary}"
    );
}

#[test]
fn many_jobs_under_a_low_open_file_limit_all_succeed() {
    // -j 1000 under `ulimit -n 64`: without a bound by the limit, the
    // downloads beyond it fail with "Too many open files".
    let server = TestServer::start_concurrent(body_for);
    let tmp = TempDir::new("fetch-fd-limit");
    let dir = tmp.path().to_str().unwrap().to_string();
    let urls: Vec<String> = (0..100)
        .map(|i| server.url(&format!("/f{i}.txt")))
        .collect();
    let script = format!(
        "ulimit -n 64 && exec \"$0\" fetch -j 1000 --dir {dir} {}",
        urls.join(" ")
    );
    let child = std::process::Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_windlass")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let out = common::wait_bounded(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("100 URLs: 100 saved"),
        "{}",
        stdout(&out)
    );
    assert_eq!(listing(tmp.path()).len(), 100);
    assert_eq!(read(tmp.path().join("f7.txt")), "body of /f7.txt");
}
