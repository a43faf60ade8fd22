//! Memory per request path: a hostile server pushes past each limit (body,
//! response head, trailers, 1xx responses, redirects, decoded size) and gets
//! a typed error, while the heap the request takes stays bounded.
//!
//! The heap is measured with a counting allocator (live bytes and their peak)
//! in this test binary; the tests run one at a time so the counts are theirs.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use common::{Conn, Server};
use windlass::ErrorKind;

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(by: isize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counters are only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const MIB: usize = 1024 * 1024;

/// Run `f` and return how far the heap rose above where it started
/// (printed with `what`, for `--nocapture`).
fn peak_during<T>(what: &str, f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = (PEAK.load(Ordering::Relaxed) - base).max(0) as usize;
    eprintln!("{what}: peak heap {peak} B");
    (out, peak)
}

/// Read the request, send `head`, then `piece` again and again (at most
/// `max` bytes in all) until the client goes away.
fn flood(conn: &mut Conn, head: &[u8], piece: &[u8], max: usize) {
    if conn.read_request().is_none() {
        return;
    }
    if !conn.try_write(head) {
        return;
    }
    let mut sent = 0;
    while sent < max && conn.try_write(piece) {
        sent += piece.len();
    }
}

#[test]
fn a_body_past_the_body_limit_is_body_too_large_in_bounded_memory() {
    let _one = serial();
    let server = Server::start(|conn| {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
        flood(conn, head, &[b'b'; 64 * 1024], 1 << 30);
    });
    let agent = common::builder().body_limit(MIB as u64).build().unwrap();
    let (result, peak) = peak_during("body limit 1 MiB", || {
        agent.get(server.url("/")).call().unwrap().bytes()
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::BodyTooLarge);
    assert!(peak < 4 * MIB, "peak heap {peak} B for a 1 MiB limit");
}

#[test]
fn an_endless_response_head_is_refused_at_the_head_limit_in_bounded_memory() {
    let _one = serial();
    let server = Server::start(|conn| {
        let head = b"HTTP/1.1 200 OK\r\nX-Pad: ";
        flood(conn, head, &[b'h'; 16 * 1024], 1 << 30);
    });
    let agent = common::builder().max_head_size(64 * 1024).build().unwrap();
    let (result, peak) = peak_during("head limit 64 KiB", || agent.get(server.url("/")).call());
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(peak < MIB, "peak heap {peak} B for a 64 KiB head limit");
}

#[test]
fn endless_trailers_are_refused_at_the_trailer_limit_in_bounded_memory() {
    let _one = serial();
    let server = Server::start(|conn| {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n";
        flood(
            conn,
            head,
            b"X-Trailer: tttttttttttttttttttttttttttttttttttttttt\r\n",
            1 << 30,
        );
    });
    let agent = common::agent();
    let (result, peak) = peak_during("trailers", || {
        agent.get(server.url("/")).call().unwrap().bytes()
    });
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(peak < MIB, "peak heap {peak} B for 64 KiB of trailers");
}

#[test]
fn endless_informational_responses_are_refused_in_bounded_memory() {
    let _one = serial();
    let server = Server::start(|conn| {
        flood(
            conn,
            b"",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            1 << 30,
        );
    });
    let agent = common::agent();
    let (result, peak) = peak_during("1xx", || agent.get(server.url("/")).call());
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("informational"), "{err}");
    assert!(peak < MIB, "peak heap {peak} B");
}

#[test]
fn a_redirect_loop_stops_at_the_redirect_limit_in_bounded_memory() {
    let _one = serial();
    let server = Server::serve(|req| {
        let next = format!("{}x", req.request_line().split(' ').nth(1).unwrap_or("/"));
        common::Reply::keep(format!(
            "HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\n\r\n"
        ))
    });
    let agent = common::builder().max_redirects(10).build().unwrap();
    let (result, peak) = peak_during("redirects", || agent.get(server.url("/")).call());
    assert_eq!(result.unwrap_err().kind(), ErrorKind::TooManyRedirects);
    assert!(peak < MIB, "peak heap {peak} B");
}

/// The decoded-size limit this tree has is the limit of `bytes()` / `text()`
/// on the decoded body: a gzip bomb (64 MiB of zeros in about 64 KiB) stops
/// there.
#[cfg(feature = "gzip")]
#[test]
fn a_gzip_bomb_stops_at_the_decoded_body_limit_in_bounded_memory() {
    use std::io::Write;
    let _one = serial();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; MIB];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    drop(zeros);
    assert!(bomb.len() < 200 * 1024);
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    response.extend_from_slice(&bomb);
    let server = Server::fixed(response);
    let agent = common::agent();
    let (result, peak) = peak_during("gzip bomb, 1 MiB decoded limit", || {
        agent
            .get(server.url("/"))
            .call()
            .unwrap()
            .bytes_with_limit(MIB as u64)
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::BodyTooLarge);
    assert!(
        peak < 4 * MIB,
        "peak heap {peak} B for a 1 MiB decoded limit"
    );
}
