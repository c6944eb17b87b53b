//! `cargo fuzz run config`: see `airlock::fuzzing::config` for the input format
//! and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::config(data));
