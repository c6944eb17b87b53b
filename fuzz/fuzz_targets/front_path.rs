//! `cargo fuzz run front_path`: see `airlock::fuzzing::front_path` for the input format
//! and the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::front_path(data));
