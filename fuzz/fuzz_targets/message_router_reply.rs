#![no_main]
//! cargo-fuzz target `message_router_reply`: see `cpppo_fuzz::message_router_reply` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::message_router_reply(data));
