#![no_main]
//! cargo-fuzz target `modbus_rtu_framer`: see `cpppo_fuzz::modbus_rtu_framer` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_rtu_framer(data));
