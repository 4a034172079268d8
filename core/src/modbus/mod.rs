//! Modbus: PDUs, Modbus/TCP (MBAP header), Modbus/RTU (CRC-16 and a framer that finds
//! frames in noisy serial input), the Modicon register numbering cpppo uses, and the
//! simulated device: [`device::Device`] (units, tables, faults) served per connection by
//! the sans-IO engine [`server::ServerConn`]; the client side: [`client::ClientConn`]
//! (requests pipelined by transaction id, timeouts, RTU broadcasts) and cpppo's poller
//! [`poller::Poller`] on top of it (register ranges at their rates, merged requests,
//! change events, load figures, reconnect with backoff).

pub mod client;
pub mod device;
pub mod numbering;
pub mod pdu;
pub mod poller;
pub mod rtu;
pub mod server;
pub mod tcp;
