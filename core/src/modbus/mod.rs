//! Modbus: PDUs, Modbus/TCP (MBAP header), Modbus/RTU (CRC-16 and a framer that finds
//! frames in noisy serial input), the Modicon register numbering cpppo uses, and the
//! simulated device: [`device::Device`] (units, tables, faults) served per connection by
//! the sans-IO engine [`server::ServerConn`].

pub mod client;
pub mod device;
pub mod numbering;
pub mod pdu;
pub mod poller;
pub mod rtu;
pub mod server;
pub mod tcp;
