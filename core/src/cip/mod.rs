//! CIP (the Common Industrial Protocol) as carried by EtherNet/IP: EPATH addressing,
//! data types, the Message Router, the Connection Manager and the Logix services.

pub mod connection_manager;
pub mod data;
pub mod device;
pub mod epath;
pub mod logix;
pub mod message_router;
pub mod objects;
pub mod operation;
pub mod status;
