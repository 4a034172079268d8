//! EtherNet/IP: the encapsulation layer (TCP and UDP port 44818) and the Common Packet
//! Format that carries CIP inside `SendRRData` and `SendUnitData`.

pub mod client;
pub mod cpf;
pub mod encapsulation;
pub mod poller;
pub mod proxy;
pub mod server;

#[cfg(test)]
mod frames;
#[cfg(test)]
mod sim;

/// The registered EtherNet/IP port, for both TCP and UDP.
pub const ENIP_PORT: u16 = 44818;
