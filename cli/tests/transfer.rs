//! `windlass [OPTIONS] URL`: what it prints, what it sends, how it exits.

mod common;

use std::time::{Duration, Instant};

use common::{closed_port, ok, run, status, stderr, stdout, tempdir, Reply, TestServer};

#[test]
fn body_goes_to_stdout_byte_for_byte() {
    let server = TestServer::start(|_| ok(b"hello\r\nworld\x00\xff"));
    let out = run(&[&server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello\r\nworld\x00\xff");
    assert!(server.next_request().starts_with("GET / HTTP/1.1\r\n"));
}

#[test]
fn include_prints_status_line_and_headers_before_the_body() {
    let server = TestServer::start(|_| status(201, "Created", &["X-Thing: yes"], b"made"));
    let out = run(&["-i", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
    // As the server spelled it.
    assert!(text.contains("\r\nX-Thing: yes\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nmade"), "{text}");
}

#[test]
fn head_sends_head_and_prints_only_the_head() {
    let server = TestServer::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".to_vec(),
        )
    });
    let out = run(&["-I", &server.url("/x")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(server.next_request().starts_with("HEAD /x HTTP/1.1\r\n"));
    let text = stdout(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

#[test]
fn output_file_gets_the_exact_bytes_and_stdout_stays_empty() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let reply_body = body.clone();
    let server = TestServer::start(move |_| ok(&reply_body));
    let dir = tempdir("output");
    let file = dir.join("out.bin");
    let out = run(&["-o", file.to_str().unwrap(), &server.url("/file")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), body);
    // stderr is not a terminal here: no progress bar.
    assert!(!stderr(&out).contains('%'), "{}", stderr(&out));
}

#[test]
fn location_follows_redirects_to_the_final_body() {
    let server = TestServer::start(|req| {
        if req.starts_with("GET /final ") {
            ok(b"arrived")
        } else {
            status(302, "Found", &["Location: /final"], b"moved")
        }
    });
    let out = run(&["-L", &server.url("/start")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "arrived");
    assert!(server.next_request().starts_with("GET /start "));
    assert!(server.next_request().starts_with("GET /final "));
}

#[test]
fn without_location_the_redirect_response_itself_is_printed() {
    let server = TestServer::start(|_| status(302, "Found", &["Location: /final"], b"moved"));
    let out = run(&[&server.url("/start")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "moved");
}

#[test]
fn too_many_redirects_exits_47() {
    let server = TestServer::start(|_| status(302, "Found", &["Location: /again"], b""));
    let out = run(&["-L", "--max-redirs", "2", &server.url("/")]);
    assert_eq!(out.status.code(), Some(47), "{}", stderr(&out));
}

#[test]
fn fail_exits_22_on_404_and_writes_no_body() {
    let server = TestServer::start(|_| status(404, "Not Found", &[], b"no such page"));
    let out = run(&["--fail", &server.url("/missing")]);
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

#[test]
fn without_fail_a_404_is_a_normal_response() {
    let server = TestServer::start(|_| status(404, "Not Found", &[], b"no such page"));
    let out = run(&[&server.url("/missing")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no such page");
}

#[test]
fn max_time_exits_28_when_the_server_never_answers() {
    let server = TestServer::start(|_| Reply::Hang);
    let started = Instant::now();
    let out = run(&["-m", "0.5", &server.url("/slow")]);
    assert_eq!(out.status.code(), Some(28), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stderr(&out).contains("timeout") || stderr(&out).contains("timed out"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refused_connection_exits_7() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let out = run(&["--retry", "0", &url]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn invalid_url_exits_3() {
    let out = run(&["http://[not-a-host/"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn data_is_posted_as_a_form() {
    let server = TestServer::start(|_| ok(b"ok"));
    let out = run(&["-d", "a=1", "-d", "b=2", &server.url("/form")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let req = server.next_request().to_ascii_lowercase();
    assert!(req.starts_with("post /form http/1.1\r\n"), "{req}");
    assert!(
        req.contains("content-type: application/x-www-form-urlencoded\r\n"),
        "{req}"
    );
    assert!(req.ends_with("\r\n\r\na=1&b=2"), "{req}");
}

#[test]
fn data_binary_from_a_file_is_sent_byte_for_byte() {
    let dir = tempdir("data-binary");
    let file = dir.join("payload");
    std::fs::write(&file, b"line one\nline two\n").unwrap();
    let server = TestServer::start(|_| ok(b"ok"));
    let arg = format!("@{}", file.display());
    let out = run(&["-X", "PUT", "--data-binary", &arg, &server.url("/up")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let req = server.next_request();
    assert!(req.starts_with("PUT /up HTTP/1.1\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\nline one\nline two\n"), "{req}");
}

#[test]
fn json_sets_content_type_and_accept() {
    let server = TestServer::start(|_| ok(b"{}"));
    let out = run(&["--json", r#"{"a":1}"#, &server.url("/api")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let req = server.next_request().to_ascii_lowercase();
    assert!(req.starts_with("post /api "), "{req}");
    assert!(req.contains("content-type: application/json\r\n"), "{req}");
    assert!(req.contains("accept: application/json\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\n{\"a\":1}"), "{req}");
}

#[test]
fn headers_user_agent_and_credentials_are_sent() {
    let server = TestServer::start(|_| ok(b"ok"));
    let out = run(&[
        "-H",
        "X-Request-Id: 42",
        "-A",
        "tester/1.0",
        "-u",
        "user:pass",
        &server.url("/"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let req = server.next_request().to_ascii_lowercase();
    assert!(req.contains("x-request-id: 42\r\n"), "{req}");
    assert!(req.contains("user-agent: tester/1.0\r\n"), "{req}");
    // base64("user:pass")
    assert!(
        req.contains("authorization: basic dxnlcjpwyxnz\r\n"),
        "{req}"
    );
}

#[test]
fn bad_header_argument_is_a_usage_error() {
    let out = run(&["-H", "no colon here", "http://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn trace_prints_a_timing_breakdown_on_stderr() {
    let server = TestServer::start(|_| ok(b"body"));
    let out = run(&["--trace", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "body");
    let err = stderr(&out);
    for label in [
        "TCP connect",
        "Server processing",
        "Content transfer",
        "connection   new",
        "total",
    ] {
        assert!(err.contains(label), "missing {label}: {err}");
    }
}

#[test]
fn ctrl_c_cancels_a_blocked_transfer_with_exit_130() {
    let server = TestServer::start(|_| Reply::Hang);
    let child = common::spawn(&[&server.url("/never")]);
    // The request has arrived, so the binary is blocked waiting for the head.
    server.next_request();
    let started = Instant::now();
    common::signal(child.id(), common::Signal::SIGINT);
    let out = common::wait_bounded(child);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn help_documents_the_exit_codes_and_version_prints() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for needle in [
        "Exit codes",
        "28  timeout",
        "130  cancelled",
        "bench",
        "fetch",
        "--max-time",
    ] {
        assert!(help.contains(needle), "missing {needle}");
    }
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("windlass "));
}

#[test]
fn speed_limit_fails_a_body_that_dribbles_with_exit_28() {
    // Ten bytes a second against a minimum of 1000 over half a second.
    let server = TestServer::start(|_| {
        Reply::Write(Box::new(|stream| {
            use std::io::Write;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
            for _ in 0..100 {
                if stream.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }))
    });
    let started = Instant::now();
    let out = run(&[
        "--speed-limit",
        "1000",
        "--speed-time",
        "0.5",
        &server.url("/"),
    ]);
    assert_eq!(out.status.code(), Some(28), "{}", stderr(&out));
    assert!(stderr(&out).contains("min_speed"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn location_to_another_origin_drops_caller_set_secrets() {
    let other = TestServer::start(|_| ok(b"arrived"));
    let target = other.url("/final");
    let server = TestServer::start(move |_| {
        status(302, "Found", &[&format!("Location: {target}")], b"moved")
    });
    let out = run(&[
        "-L",
        "-H",
        "X-Api-Key: key-123",
        "-H",
        "Accept: text/plain",
        &server.url("/start"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "arrived");
    let first = server.next_request().to_ascii_lowercase();
    assert!(first.contains("\r\nx-api-key: key-123\r\n"), "{first}");
    let second = other.next_request().to_ascii_lowercase();
    assert!(!second.contains("x-api-key"), "{second}");
    assert!(second.contains("\r\naccept: text/plain\r\n"), "{second}");
}

#[test]
fn retry_waits_at_least_a_second_before_the_first_retry_as_curl_does() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            status(503, "Service Unavailable", &[], b"")
        } else {
            ok(b"second")
        }
    });
    let started = Instant::now();
    let out = run(&["--retry", "1", &server.url("/")]);
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "second");
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[test]
fn retry_delay_sets_the_wait_between_retries() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            status(503, "Service Unavailable", &[], b"")
        } else {
            ok(b"third")
        }
    });
    let started = Instant::now();
    let out = run(&["--retry", "2", "--retry-delay", "0.2", &server.url("/")]);
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "third");
    assert!(
        waited >= Duration::from_millis(400),
        "two retries after {waited:?}"
    );
}

#[test]
fn insecure_warns_exactly_once() {
    let server = TestServer::start(|_| ok(b"ok"));
    let out = run(&["-k", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("verification is OFF").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
