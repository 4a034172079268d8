#![no_main]
//! cargo-fuzz target `modbus_poller`: see `cpppo_fuzz::modbus_poller` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::modbus_poller(data));
