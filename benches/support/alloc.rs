//! A counting global allocator and a VmRSS reader, for the memory a client
//! holds per idle pooled connection.
//!
//! Counting is switched on only around a measurement, so the timed scenarios
//! pay one relaxed load per allocation and share no written cache line. The
//! net of bytes allocated minus bytes freed while counting is the change in
//! live heap over the interval, whichever thread allocated the block first.
//! Sizes are the requested ones; malloc's own per-block overhead is not in
//! them (that shows in the VmRSS figure instead).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

/// Wraps the system allocator; install with `#[global_allocator]`.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static NET: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if ON.load(Relaxed) {
        NET.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Starts counting from zero.
pub fn start() {
    NET.store(0, Relaxed);
    ON.store(true, Relaxed);
}

/// Stops counting and returns the net bytes allocated since [`start`].
pub fn stop() -> i64 {
    ON.store(false, Relaxed);
    NET.load(Relaxed) as i64
}

/// The process's resident set size in bytes, from `/proc/self/status`.
pub fn vm_rss() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
