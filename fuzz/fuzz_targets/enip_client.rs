#![no_main]
//! cargo-fuzz target `enip_client`: see `cpppo_fuzz::enip_client` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::enip_client(data));
