//! Interop and conformance harness: real third-party peers, captured frames and vectors run against cpppo-rs.
