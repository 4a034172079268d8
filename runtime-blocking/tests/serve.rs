//! The shared runtime suite on the blocking runtime.

#![allow(clippy::unwrap_used)]

mod common;

suite_tests!(|server, options| Ok(Box::new(cpppo_blocking::serve(server, options)?)));
