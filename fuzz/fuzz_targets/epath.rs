#![no_main]
//! cargo-fuzz target `epath`: see `cpppo_fuzz::epath` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::epath(data));
