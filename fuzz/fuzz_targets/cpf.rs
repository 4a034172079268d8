#![no_main]
//! cargo-fuzz target `cpf`: see `cpppo_fuzz::cpf` for the invariants it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpppo_fuzz::cpf(data));
