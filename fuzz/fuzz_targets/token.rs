//! `cargo fuzz run token`: see `airlock::fuzzing::token` for the input format
//! and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::token(data));
