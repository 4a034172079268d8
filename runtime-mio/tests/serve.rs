//! The shared runtime suite on the mio runtime.

#![allow(clippy::unwrap_used)]

#[path = "../../runtime-blocking/tests/common/mod.rs"]
mod common;

suite_tests!(cpppo_mio);
