#![no_main]
//! cargo-fuzz target `modbus_client`: see `cpppo_fuzz::modbus_client` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_client(data));
