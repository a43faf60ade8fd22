//! The response-head parser: the pure parser and the reading loop agree
//! however the bytes are cut into reads, and never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| windlass::fuzzing::parse_head(data));
