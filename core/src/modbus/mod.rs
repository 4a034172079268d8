//! Modbus: PDUs, Modbus/TCP (MBAP header), Modbus/RTU (CRC-16 and a framer that finds
//! frames in noisy serial input), and the Modicon register numbering cpppo uses.

pub mod numbering;
pub mod pdu;
pub mod rtu;
pub mod tcp;
