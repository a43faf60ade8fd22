//! `windlass bench`: a load test that needs no network.

mod common;

use common::{run, stderr, stdout, TestServer};

#[test]
fn bench_against_the_embedded_server_reports_throughput_latency_and_reuse() {
    let out = run(&["bench", "-c", "2", "-n", "200"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "200 ok, 0 errors",
        "req/s",
        "p50",
        "p99",
        "opened",
        "reused",
        "pool wait",
        "errors        none",
        "200 requests answered",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
}

#[test]
fn bench_over_tls_trusts_the_embedded_servers_certificate() {
    let out = run(&["bench", "--tls", "-c", "2", "-n", "50", "--body-size", "2k"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("50 ok, 0 errors"), "{text}");
    assert!(text.contains("2.0 KiB body, TLS"), "{text}");
}

#[test]
fn bench_for_a_duration_stops_by_itself() {
    let out = run(&["bench", "-c", "2", "-d", "0.3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(" ok, 0 errors"), "{}", stdout(&out));
}

#[test]
fn bench_against_a_url_counts_statuses_and_prints_prometheus_metrics() {
    let server = TestServer::start(|_| common::status(503, "Service Unavailable", &[], b"busy"));
    let out = run(&[
        "bench",
        "-c",
        "1",
        "-n",
        "3",
        "--retry",
        "0",
        "--metrics",
        &server.url("/"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("statuses      503: 3"), "{text}");
    assert!(text.contains(&server.url("")), "{text}");
    assert!(text.contains("# TYPE "), "no Prometheus text: {text}");
}

#[test]
fn bench_where_every_request_fails_exits_with_that_class() {
    let url = format!("http://127.0.0.1:{}/", common::closed_port());
    let out = run(&["bench", "-c", "1", "-n", "2", "--retry", "0", &url]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stdout(&out).contains("connect: 2"), "{}", stdout(&out));
}

#[test]
fn bench_against_a_dead_server_reports_no_throughput() {
    let url = format!("http://127.0.0.1:{}/", common::closed_port());
    let out = run(&["bench", "-c", "2", "-n", "20", &url]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("0 ok, 20 errors"), "{text}");
    assert!(
        text.contains("throughput    0 req/s") && text.contains("(failed requests not counted)"),
        "{text}"
    );
}
