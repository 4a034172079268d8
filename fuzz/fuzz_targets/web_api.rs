#![no_main]
//! cargo-fuzz target `web_api`: see `cpppo_fuzz::web_api` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::web_api(data));
