#![no_main]
//! cargo-fuzz target `operation_syntax`: see `cpppo_fuzz::operation_syntax` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::operation_syntax(data));
