#![no_main]
//! cargo-fuzz target `modbus_pdu`: see `cpppo_fuzz::modbus_pdu` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_pdu(data));
