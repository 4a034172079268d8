#![no_main]
//! cargo-fuzz target `modbus_tcp_stream`: see `cpppo_fuzz::modbus_tcp_stream` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_tcp_stream(data));
