//! `cpppo decode`: frame dissection on the core codecs.
//!
//! The interpretation here ("an encapsulation frame down to its CIP service", "a reply's
//! data by its service code") is generic and may move into `cpppo-core` later; the CLI
//! only adds JSON rendering.

pub mod cip;
pub mod enip;
pub mod modbus;
