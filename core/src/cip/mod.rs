//! CIP (the Common Industrial Protocol) as carried by EtherNet/IP: EPATH addressing,
//! data types, the Message Router, the Connection Manager and the Logix services.

pub mod data;
pub mod epath;
