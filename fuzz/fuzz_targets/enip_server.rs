#![no_main]
//! cargo-fuzz target `enip_server`: see `cpppo_fuzz::enip_server` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::enip_server(data));
