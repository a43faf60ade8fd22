//! `windlass fetch`: many URLs, one file each, a summary at the end.

mod common;

use std::time::{Duration, Instant};

use common::{ok, run, status, stderr, stdout, tempdir, Reply, TestServer};

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
    let dir = tempdir("fetch-saves");
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
    assert!(!dir.join("a.txt.part").exists());
}

#[test]
fn fetch_reads_urls_from_a_file_and_reports_failures() {
    let server = TestServer::start(body_for);
    let dir = tempdir("fetch-input");
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
    let dir = tempdir("fetch-cancel");
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
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 1,
        "partial files left behind"
    );
}
