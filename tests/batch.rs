//! Batches (bounded concurrency, results as they complete or in order, one
//! token for all, errors kept per job), the agent-wide cancel, body progress
//! and downloads through a temporary file.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, IO_TIMEOUT};
use windlass::{CancelToken, ErrorKind};

/// A server that reads each request and never answers it.
fn silent() -> Server {
    Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.wait_for_close();
        }
    })
}

#[test]
fn batch_runs_every_job_and_keeps_each_error_apart() {
    let server = Server::serve(|req| common::Reply::keep(common::echo_target(req, "")));
    let agent = common::agent();
    let urls = vec![
        server.url("/a"),
        "http://exa mple/".to_string(),
        server.url("/c"),
    ];
    let results = agent
        .batch()
        .concurrency(2)
        .run(urls, |worker, url| worker.get(url).call()?.text())
        .in_order();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap(), "/a");
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        ErrorKind::InvalidUrl
    );
    assert_eq!(results[2].as_ref().unwrap(), "/c");
}

#[test]
fn batch_never_runs_more_jobs_at_once_than_its_concurrency() {
    let server = Server::fixed(common::ok("x"));
    let agent = common::agent();
    let active = Arc::new((Mutex::new((0usize, 0usize)), Condvar::new()));
    let state = Arc::clone(&active);
    let url = server.url("/");
    let results = agent.batch().concurrency(3).run(0..12, move |worker, _| {
        let (lock, cv) = &*state;
        {
            let mut g = lock.lock().unwrap();
            g.0 += 1;
            g.1 = g.1.max(g.0);
            cv.notify_all();
            // Let the workers meet, so the bound is really reached; bounded in time.
            let _ = cv.wait_timeout_while(g, IO_TIMEOUT, |g| g.1 < 3).unwrap();
        }
        let text = worker.get(&url).call()?.text();
        lock.lock().unwrap().0 -= 1;
        text
    });
    assert_eq!(results.len(), 12);
    let ok = results.filter(|d| d.result.is_ok()).count();
    assert_eq!(ok, 12);
    assert_eq!(active.0.lock().unwrap().1, 3);
}

#[test]
fn batch_results_arrive_in_completion_order() {
    let server = Server::serve(|req| common::Reply::keep(common::echo_target(req, "")));
    let agent = common::agent();
    let (first_done_tx, first_done_rx) = crossbeam_channel::bounded::<()>(1);
    let first_done_rx = Arc::new(Mutex::new(first_done_rx));
    let urls = vec![server.url("/slow"), server.url("/fast")];
    let mut results = agent.batch().concurrency(2).run(urls, move |worker, url| {
        if url.ends_with("/slow") {
            // Finish only after /fast did (bounded in time).
            let _ = first_done_rx.lock().unwrap().recv_timeout(IO_TIMEOUT);
        }
        let text = worker.get(&url).call()?.text();
        if url.ends_with("/fast") {
            let _ = first_done_tx.send(());
        }
        text
    });
    let first = results.next().unwrap();
    assert_eq!(first.index, 1);
    assert_eq!(first.result.unwrap(), "/fast");
    let second = results.next().unwrap();
    assert_eq!(second.index, 0);
    assert!(results.next().is_none());
}

#[test]
fn one_token_stops_running_and_waiting_batch_jobs() {
    let server = silent();
    let agent = common::builder().timeout(None).build().unwrap();
    let token = CancelToken::new();
    let url = server.url("/");
    let results = agent
        .batch()
        .concurrency(2)
        .cancel_token(&token)
        .run(0..5, move |worker, _| worker.get(&url).call().map(drop));
    // Both workers are blocked waiting for an answer.
    server.request();
    server.request();
    let started = Instant::now();
    token.cancel();
    let results = results.in_order();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(results.len(), 5);
    for r in &results {
        assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Cancelled);
    }
    assert!(
        server.try_request().is_none(),
        "no job started after the cancel"
    );
}

#[test]
fn cancel_all_stops_a_call_blocked_in_another_thread() {
    let server = silent();
    let agent = common::builder().timeout(None).build().unwrap();
    let url = server.url("/");
    let caller = agent.clone();
    let call = thread::spawn(move || caller.get(&url).call().map(drop));
    server.request();
    let own = CancelToken::new();
    let url = server.url("/own");
    let caller = agent.clone();
    let own_token = own.clone();
    let with_own =
        thread::spawn(move || caller.get(&url).cancel_token(&own_token).call().map(drop));
    server.request();
    let started = Instant::now();
    agent.cancel_all();
    assert_eq!(
        call.join().unwrap().unwrap_err().kind(),
        ErrorKind::Cancelled
    );
    assert_eq!(
        with_own.join().unwrap().unwrap_err().kind(),
        ErrorKind::Cancelled
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!own.is_cancelled(), "the caller's own token is left alone");
    // Later calls run normally.
    let fine = Server::fixed(common::ok("after"));
    assert_eq!(
        agent.get(fine.url("/")).call().unwrap().text().unwrap(),
        "after"
    );
}

#[test]
fn cancel_all_stops_a_body_being_read() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst");
            conn.wait_for_close();
        }
    });
    let agent = common::builder().timeout(None).build().unwrap();
    let resp = agent.get(server.url("/")).call().unwrap();
    let reader = thread::spawn(move || resp.text());
    server.request();
    agent.cancel_all();
    let err = reader.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[test]
fn copy_to_reports_progress_up_to_the_declared_total() {
    let body = "x".repeat(200_000);
    let server = Server::fixed(common::ok(&body));
    let agent = common::agent();
    let resp = agent.get(server.url("/")).call().unwrap();
    let mut out = Vec::new();
    let mut reports = Vec::new();
    let n = resp.copy_to(&mut out, |p| reports.push(p)).unwrap();
    assert_eq!(n, 200_000);
    assert_eq!(out.len(), 200_000);
    assert!(reports.len() >= 2);
    assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));
    let last = reports.last().unwrap();
    assert_eq!((last.done, last.total), (200_000, Some(200_000)));
}

/// A fresh directory under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "windlass-test-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &PathBuf) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn download_to_writes_the_file_and_leaves_no_temporary_file() {
    let server = Server::fixed(common::ok("the file"));
    let dir = scratch("ok");
    let path = dir.join("out.bin");
    std::fs::write(&path, "old").unwrap();
    let n = common::agent()
        .get(server.url("/"))
        .call()
        .unwrap()
        .download_to(&path)
        .unwrap();
    assert_eq!(n, 8);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "the file");
    assert_eq!(entries(&dir), ["out.bin"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn download_to_removes_the_temporary_file_when_the_body_is_cut_off() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
            conn.close();
        }
    });
    let dir = scratch("cut");
    let path = dir.join("out.bin");
    std::fs::write(&path, "old").unwrap();
    let err = common::agent()
        .get(server.url("/"))
        .call()
        .unwrap()
        .download_to(&path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(entries(&dir), ["out.bin"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dropping_the_results_early_cancels_the_running_jobs() {
    let server = silent();
    let agent = common::builder().timeout(None).build().unwrap();
    let url = server.url("/");
    let results = agent
        .batch()
        .concurrency(1)
        .run(0..3, move |worker, _| worker.get(&url).call().map(drop));
    server.request();
    let started = Instant::now();
    drop(results);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        server.try_request().is_none(),
        "no job started after the drop"
    );
}

#[test]
fn a_response_returned_by_a_batch_job_stays_readable_after_the_results_are_dropped() {
    // The rest of the body comes only once the results are dropped.
    let (go, wait) = crossbeam_channel::bounded::<()>(1);
    let server = Server::start(move |conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nke");
            let _ = wait.recv_timeout(IO_TIMEOUT);
            conn.write(b"pt");
            conn.wait_for_close();
        }
    });
    let agent = common::agent();
    let url = server.url("/");
    let mut results = agent
        .batch()
        .run(vec![url], |worker, url| worker.get(url).call());
    let response = results.next().unwrap().result.unwrap();
    drop(results);
    go.send(()).unwrap();
    assert_eq!(response.text().unwrap(), "kept");
}
