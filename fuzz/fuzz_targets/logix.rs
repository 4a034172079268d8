#![no_main]
//! cargo-fuzz target `logix`: see `cpppo_fuzz::logix` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::logix(data));
