#![no_main]
//! cargo-fuzz target `enip_stream`: see `cpppo_fuzz::enip_stream` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::enip_stream(data));
