//! `windlass soak`: a small run passes every check and prints each figure.

mod common;

#[test]
fn a_small_soak_passes_its_checks_and_reports_every_figure() {
    let out = common::run(&[
        "soak",
        "--requests",
        "3000",
        "--threads",
        "8",
        "--hosts",
        "8",
        "--stall-ms",
        "20",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "soak: 3000 requests, 8 threads, 8 hosts",
        "bodies reported as success but not what the server sent: 0",
        "pool at rest: idle ",
        "per-host peak open connections",
        "threads ",
        "RSS: start ",
        "cancel latency (",
        "pool saturation (highest host, mean of samples): before ",
        "soak: all checks passed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}
