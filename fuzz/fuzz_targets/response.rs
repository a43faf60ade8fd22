//! A whole response through the in-memory input: heads, framing and body,
//! with a Content-Length body exactly its length or an error.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| windlass::fuzzing::read_response(data));
