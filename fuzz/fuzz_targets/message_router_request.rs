#![no_main]
//! cargo-fuzz target `message_router_request`: see `cpppo_fuzz::message_router_request` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::message_router_request(data));
