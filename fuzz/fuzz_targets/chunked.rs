//! The chunked body decoder: its output is exactly the chunk data a
//! reference decoder finds, and it stops exactly where the body ends.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| windlass::fuzzing::decode_chunked(data));
