#![no_main]
//! cargo-fuzz target `modbus_address`: see `cpppo_fuzz::modbus_address` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_address(data));
