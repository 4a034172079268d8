#![no_main]
//! cargo-fuzz target `modbus_server`: see `cpppo_fuzz::modbus_server` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_server(data));
