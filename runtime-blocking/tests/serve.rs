//! The shared runtime suite on the blocking runtime.

#![allow(clippy::unwrap_used)]

mod common;

suite_tests!(cpppo_blocking);
