//! Modbus PDUs: the function code and its data, the part shared by Modbus/TCP and
//! Modbus/RTU (MODBUS Application Protocol Specification V1.1b3, sections 4-7).
//!
//! In scope: the typed requests and responses of function codes 1, 2, 3, 4, 5, 6, 7, 8
//! (any sub-function, carried as raw data; sub-function 0 is *Return Query Data*), 15,
//! 16, 17, 22, 23 and 43/14 (*Read Device Identification*), and exception responses.
//! Out of scope: the ADU around the PDU (see [`super::tcp`] and [`super::rtu`]), and
//! anything that depends on a server's data (address range checks: exception 0x02).
//!
//! A request that a server cannot accept decodes to a [`RequestError`] carrying the
//! [`Exception`] that server should answer: 0x01 for an unknown function code, 0x03
//! for a quantity outside the specification's limits, a byte count that disagrees with
//! the quantity, or a malformed body. A response's exception is data
//! ([`Response::Exception`]), not an error.
//!
//! Everything is big-endian; coils and discrete inputs are packed 8 to a byte, first
//! bit in the least significant bit.

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::wire::{DecodeError, DecodeResult, Encode, Reader};

/// Function codes (specification section 6).
pub mod function {
    /// Read Coils (0x01).
    pub const READ_COILS: u8 = 0x01;
    /// Read Discrete Inputs (0x02).
    pub const READ_DISCRETE_INPUTS: u8 = 0x02;
    /// Read Holding Registers (0x03).
    pub const READ_HOLDING_REGISTERS: u8 = 0x03;
    /// Read Input Registers (0x04).
    pub const READ_INPUT_REGISTERS: u8 = 0x04;
    /// Write Single Coil (0x05).
    pub const WRITE_SINGLE_COIL: u8 = 0x05;
    /// Write Single Register (0x06).
    pub const WRITE_SINGLE_REGISTER: u8 = 0x06;
    /// Read Exception Status (0x07, serial line only).
    pub const READ_EXCEPTION_STATUS: u8 = 0x07;
    /// Diagnostics (0x08, serial line only).
    pub const DIAGNOSTICS: u8 = 0x08;
    /// Get Comm Event Counter (0x0B, serial line only; framing only).
    pub const GET_COMM_EVENT_COUNTER: u8 = 0x0B;
    /// Get Comm Event Log (0x0C, serial line only; framing only).
    pub const GET_COMM_EVENT_LOG: u8 = 0x0C;
    /// Write Multiple Coils (0x0F).
    pub const WRITE_MULTIPLE_COILS: u8 = 0x0F;
    /// Write Multiple Registers (0x10).
    pub const WRITE_MULTIPLE_REGISTERS: u8 = 0x10;
    /// Report Server ID (0x11, serial line only).
    pub const REPORT_SERVER_ID: u8 = 0x11;
    /// Read File Record (0x14; framing only).
    pub const READ_FILE_RECORD: u8 = 0x14;
    /// Write File Record (0x15; framing only).
    pub const WRITE_FILE_RECORD: u8 = 0x15;
    /// Mask Write Register (0x16).
    pub const MASK_WRITE_REGISTER: u8 = 0x16;
    /// Read/Write Multiple Registers (0x17).
    pub const READ_WRITE_MULTIPLE_REGISTERS: u8 = 0x17;
    /// Read FIFO Queue (0x18; framing only).
    pub const READ_FIFO_QUEUE: u8 = 0x18;
    /// Encapsulated Interface Transport (0x2B), carrying an MEI type.
    pub const ENCAPSULATED_INTERFACE_TRANSPORT: u8 = 0x2B;
    /// Set on the function code of an exception response.
    pub const EXCEPTION_FLAG: u8 = 0x80;
}

/// MEI type of *Read Device Identification* inside function 0x2B (section 6.21).
pub const MEI_READ_DEVICE_IDENTIFICATION: u8 = 0x0E;

/// Diagnostics sub-function *Return Query Data*: the server echoes the request.
pub const DIAGNOSTICS_RETURN_QUERY_DATA: u16 = 0x0000;

/// Wire value of an ON coil in *Write Single Coil*.
pub const COIL_ON: u16 = 0xFF00;
/// Wire value of an OFF coil in *Write Single Coil*.
pub const COIL_OFF: u16 = 0x0000;

/// Largest PDU: 256-byte serial ADU less address and CRC (section 4.1).
pub const MAX_PDU_LEN: usize = 253;
/// Most coils or discrete inputs one read may ask for (0x07D0).
pub const MAX_READ_BITS: u16 = 2000;
/// Most coils one *Write Multiple Coils* may carry (0x07B0).
pub const MAX_WRITE_BITS: u16 = 1968;
/// Most registers one read may ask for (0x007D).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most registers one *Write Multiple Registers* may carry (0x007B).
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Most registers *Read/Write Multiple Registers* may write (0x0079); it reads up to
/// [`MAX_READ_REGISTERS`].
pub const MAX_READ_WRITE_REGISTERS: u16 = 121;

/// *Read Device Identification* code: basic objects (0-2), streamed.
pub const READ_DEVICE_ID_BASIC: u8 = 0x01;
/// *Read Device Identification* code: regular objects (0-0x7F), streamed.
pub const READ_DEVICE_ID_REGULAR: u8 = 0x02;
/// *Read Device Identification* code: extended objects (0x80-0xFF), streamed.
pub const READ_DEVICE_ID_EXTENDED: u8 = 0x03;
/// *Read Device Identification* code: one specific object.
pub const READ_DEVICE_ID_SPECIFIC: u8 = 0x04;

/// A Modbus exception code (section 7). Unknown codes are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExceptionCode(pub u8);

impl ExceptionCode {
    /// 0x01: the function code is not supported.
    pub const ILLEGAL_FUNCTION: Self = Self(0x01);
    /// 0x02: the address (or address plus quantity) is outside the server's data.
    pub const ILLEGAL_DATA_ADDRESS: Self = Self(0x02);
    /// 0x03: a value in the request is not allowed (quantity, byte count, coil value).
    pub const ILLEGAL_DATA_VALUE: Self = Self(0x03);
    /// 0x04: the server failed while performing the action.
    pub const SERVER_DEVICE_FAILURE: Self = Self(0x04);
    /// 0x05: accepted, the action takes long; poll for completion.
    pub const ACKNOWLEDGE: Self = Self(0x05);
    /// 0x06: the server is busy with a long action; retry later.
    pub const SERVER_DEVICE_BUSY: Self = Self(0x06);
    /// 0x08: parity error in a file record.
    pub const MEMORY_PARITY_ERROR: Self = Self(0x08);
    /// 0x0A: the gateway has no path to the target.
    pub const GATEWAY_PATH_UNAVAILABLE: Self = Self(0x0A);
    /// 0x0B: the gateway's target did not respond.
    pub const GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND: Self = Self(0x0B);
}

/// An exception response: the request's function code and why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// The request's function code (without [`function::EXCEPTION_FLAG`]).
    pub function: u8,
    /// Why the request failed.
    pub code: ExceptionCode,
}

impl Encode for Exception {
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.function | function::EXCEPTION_FLAG);
        out.put_u8(self.code.0);
    }
}

/// A request a server cannot accept, with the exception it should answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("modbus request refused with exception {:#04x}: {error}", exception.code.0)]
pub struct RequestError {
    /// The exception response a server sends back (function 0 if the PDU was empty).
    pub exception: Exception,
    /// What was wrong, by field and offset within the PDU.
    #[source]
    pub error: DecodeError,
}

/// Packed coil or discrete-input values: `quantity` bits, first in the LSB of byte 0.
///
/// In a request (*Write Multiple Coils*) the quantity is on the wire; in a read
/// response only the byte count is, so there `quantity` is 8 times the byte count and
/// the caller truncates to the quantity it asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bits<'a> {
    quantity: u16,
    bytes: Cow<'a, [u8]>,
}

impl<'a> Bits<'a> {
    /// Pack `values`. More than 65535 values are truncated.
    pub fn from_bools(values: &[bool]) -> Bits<'static> {
        let values = values.get(..usize::from(u16::MAX)).unwrap_or(values);
        let mut bytes = vec![0u8; values.len().div_ceil(8)];
        for (i, on) in values.iter().enumerate() {
            if let (true, Some(b)) = (*on, bytes.get_mut(i / 8)) {
                *b |= 1 << (i % 8);
            }
        }
        Bits {
            quantity: values.len() as u16,
            bytes: Cow::Owned(bytes),
        }
    }

    /// Packed bytes with every bit counted (a read response).
    pub fn from_packed(bytes: impl Into<Cow<'a, [u8]>>) -> Self {
        let bytes = bytes.into();
        let quantity = u16::try_from(bytes.len().saturating_mul(8)).unwrap_or(u16::MAX);
        Bits { quantity, bytes }
    }

    /// The number of bits.
    pub fn quantity(&self) -> u16 {
        self.quantity
    }

    /// The packed bytes as on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bit `i`, `None` past the quantity.
    pub fn get(&self, i: usize) -> Option<bool> {
        if i >= usize::from(self.quantity) {
            return None;
        }
        self.bytes.get(i / 8).map(|b| b & (1 << (i % 8)) != 0)
    }

    /// Every bit, in order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..usize::from(self.quantity)).map_while(|i| self.get(i))
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> Bits<'static> {
        Bits {
            quantity: self.quantity,
            bytes: Cow::Owned(self.bytes.into_owned()),
        }
    }
}

/// Register values, kept as their big-endian wire bytes (so decoding borrows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registers<'a>(Cow<'a, [u8]>);

impl<'a> Registers<'a> {
    /// From values.
    pub fn from_values(values: &[u16]) -> Registers<'static> {
        let mut bytes = Vec::with_capacity(values.len().saturating_mul(2));
        for v in values {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        Registers(Cow::Owned(bytes))
    }

    /// From values, written as big-endian wire bytes into `buf` (cleared first), which
    /// the result borrows: a server reusing `buf` answers a register read without
    /// allocating once `buf` has grown to the largest reply.
    pub fn from_values_in(values: &[u16], buf: &'a mut Vec<u8>) -> Registers<'a> {
        buf.clear();
        for v in values {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        Registers(Cow::Borrowed(buf.as_slice()))
    }

    /// From big-endian wire bytes, two per register, without copying them (a server
    /// answering from a register table kept in wire order); `None` for an odd length.
    pub fn from_be_bytes(bytes: impl Into<Cow<'a, [u8]>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.len() % 2 == 0).then_some(Registers(bytes))
    }

    /// The number of registers.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The big-endian wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Register `i`.
    pub fn get(&self, i: usize) -> Option<u16> {
        let at = i.checked_mul(2)?;
        let pair = self.0.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
    }

    /// Every value, in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.chunks_exact(2).map(|p| {
            u16::from_be_bytes([
                p.first().copied().unwrap_or(0),
                p.get(1).copied().unwrap_or(0),
            ])
        })
    }

    /// The values as a vector.
    pub fn to_vec(&self) -> Vec<u16> {
        self.iter().collect()
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> Registers<'static> {
        Registers(Cow::Owned(self.0.into_owned()))
    }
}

/// One object of a *Read Device Identification* response (e.g. 0 = VendorName).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceObject<'a> {
    /// Object id (0 VendorName, 1 ProductCode, 2 MajorMinorRevision, ...).
    pub id: u8,
    /// The value, usually ASCII.
    pub value: Cow<'a, [u8]>,
}

/// A Modbus request PDU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// 0x01: read `quantity` coils from `address`.
    ReadCoils {
        /// Zero-based first coil.
        address: u16,
        /// 1 to [`MAX_READ_BITS`].
        quantity: u16,
    },
    /// 0x02: read `quantity` discrete inputs from `address`.
    ReadDiscreteInputs {
        /// Zero-based first input.
        address: u16,
        /// 1 to [`MAX_READ_BITS`].
        quantity: u16,
    },
    /// 0x03: read `quantity` holding registers from `address`.
    ReadHoldingRegisters {
        /// Zero-based first register.
        address: u16,
        /// 1 to [`MAX_READ_REGISTERS`].
        quantity: u16,
    },
    /// 0x04: read `quantity` input registers from `address`.
    ReadInputRegisters {
        /// Zero-based first register.
        address: u16,
        /// 1 to [`MAX_READ_REGISTERS`].
        quantity: u16,
    },
    /// 0x05: set one coil.
    WriteSingleCoil {
        /// Zero-based coil.
        address: u16,
        /// On (0xFF00) or off (0x0000).
        value: bool,
    },
    /// 0x06: write one holding register.
    WriteSingleRegister {
        /// Zero-based register.
        address: u16,
        /// The value.
        value: u16,
    },
    /// 0x07: read the eight exception status outputs.
    ReadExceptionStatus,
    /// 0x08: diagnostics; sub-function 0 echoes `data`.
    Diagnostics {
        /// Sub-function, e.g. [`DIAGNOSTICS_RETURN_QUERY_DATA`].
        sub_function: u16,
        /// The rest of the PDU.
        data: Cow<'a, [u8]>,
    },
    /// 0x0F: write coils from `address`.
    WriteMultipleCoils {
        /// Zero-based first coil.
        address: u16,
        /// 1 to [`MAX_WRITE_BITS`] values.
        values: Bits<'a>,
    },
    /// 0x10: write holding registers from `address`.
    WriteMultipleRegisters {
        /// Zero-based first register.
        address: u16,
        /// 1 to [`MAX_WRITE_REGISTERS`] values.
        values: Registers<'a>,
    },
    /// 0x11: report the server's id and run indicator.
    ReportServerId,
    /// 0x16: `register = (register & and_mask) | (or_mask & !and_mask)`.
    MaskWriteRegister {
        /// Zero-based register.
        address: u16,
        /// AND mask.
        and_mask: u16,
        /// OR mask.
        or_mask: u16,
    },
    /// 0x17: write, then read, holding registers in one transaction.
    ReadWriteMultipleRegisters {
        /// Zero-based first register read.
        read_address: u16,
        /// 1 to [`MAX_READ_REGISTERS`].
        read_quantity: u16,
        /// Zero-based first register written.
        write_address: u16,
        /// 1 to [`MAX_READ_WRITE_REGISTERS`] values.
        values: Registers<'a>,
    },
    /// 0x2B/0x0E: read device identification objects.
    ReadDeviceIdentification {
        /// [`READ_DEVICE_ID_BASIC`] .. [`READ_DEVICE_ID_SPECIFIC`].
        read_device_id_code: u8,
        /// First object wanted.
        object_id: u8,
    },
}

/// A Modbus response PDU (an exception is a response too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// 0x01: coil values (8 per byte; truncate to the quantity asked).
    ReadCoils(Bits<'a>),
    /// 0x02: discrete input values (8 per byte; truncate to the quantity asked).
    ReadDiscreteInputs(Bits<'a>),
    /// 0x03: holding register values.
    ReadHoldingRegisters(Registers<'a>),
    /// 0x04: input register values.
    ReadInputRegisters(Registers<'a>),
    /// 0x05: echo of the request.
    WriteSingleCoil {
        /// Zero-based coil.
        address: u16,
        /// The value written.
        value: bool,
    },
    /// 0x06: echo of the request.
    WriteSingleRegister {
        /// Zero-based register.
        address: u16,
        /// The value written.
        value: u16,
    },
    /// 0x07: the eight exception status outputs.
    ReadExceptionStatus(u8),
    /// 0x08: diagnostics; sub-function 0 echoes the request's data.
    Diagnostics {
        /// Sub-function.
        sub_function: u16,
        /// The rest of the PDU.
        data: Cow<'a, [u8]>,
    },
    /// 0x0F: how many coils were written where.
    WriteMultipleCoils {
        /// Zero-based first coil.
        address: u16,
        /// Number of coils.
        quantity: u16,
    },
    /// 0x10: how many registers were written where.
    WriteMultipleRegisters {
        /// Zero-based first register.
        address: u16,
        /// Number of registers.
        quantity: u16,
    },
    /// 0x11: server id, run indicator and device-specific data, after the byte count.
    ReportServerId(Cow<'a, [u8]>),
    /// 0x16: echo of the request.
    MaskWriteRegister {
        /// Zero-based register.
        address: u16,
        /// AND mask.
        and_mask: u16,
        /// OR mask.
        or_mask: u16,
    },
    /// 0x17: the registers read.
    ReadWriteMultipleRegisters(Registers<'a>),
    /// 0x2B/0x0E: device identification objects.
    ReadDeviceIdentification {
        /// The request's code.
        read_device_id_code: u8,
        /// Conformity level of the device (0x01-0x03, 0x81-0x83).
        conformity_level: u8,
        /// True (0xFF) when more objects follow in another transaction.
        more_follows: bool,
        /// The object id to ask for next when `more_follows`.
        next_object_id: u8,
        /// The objects.
        objects: Vec<DeviceObject<'a>>,
    },
    /// An exception response (function code with 0x80 set).
    Exception(Exception),
}

const F_FUNCTION: &str = "modbus.function";
const F_ADDRESS: &str = "modbus.address";
const F_QUANTITY: &str = "modbus.quantity";
const F_BYTE_COUNT: &str = "modbus.byte_count";
const F_VALUE: &str = "modbus.value";
const F_VALUES: &str = "modbus.values";
const F_SUB_FUNCTION: &str = "modbus.sub_function";
const F_MEI_TYPE: &str = "modbus.mei_type";
const F_DEVICE_ID_CODE: &str = "modbus.read_device_id_code";
const F_OBJECT: &str = "modbus.object";
const F_END: &str = "modbus.pdu";

fn check_quantity(r: &Reader<'_>, at: usize, q: u16, max: u16) -> DecodeResult<()> {
    if q == 0 || q > max {
        Err(r.invalid_at(F_QUANTITY, at, format!("quantity {q} outside 1..={max}")))
    } else {
        Ok(())
    }
}

fn coil_value(r: &Reader<'_>, at: usize, v: u16) -> DecodeResult<bool> {
    match v {
        COIL_ON => Ok(true),
        COIL_OFF => Ok(false),
        _ => Err(r.invalid_at(
            F_VALUE,
            at,
            format!("coil value {v:#06x} is neither 0xFF00 nor 0x0000"),
        )),
    }
}

/// Read an address and quantity with the quantity limited to `1..=max`.
fn address_quantity(r: &mut Reader<'_>, max: u16) -> DecodeResult<(u16, u16)> {
    let address = r.u16_be(F_ADDRESS)?;
    let at = r.offset();
    let quantity = r.u16_be(F_QUANTITY)?;
    check_quantity(r, at, quantity, max)?;
    Ok((address, quantity))
}

/// A byte count followed by that many register bytes, `quantity` of them.
fn registers<'a>(r: &mut Reader<'a>, quantity: u16) -> DecodeResult<Registers<'a>> {
    let at = r.offset();
    let count = r.u8(F_BYTE_COUNT)?;
    if usize::from(count) != usize::from(quantity) * 2 {
        return Err(r.invalid_at(
            F_BYTE_COUNT,
            at,
            format!("byte count {count} is not twice the quantity {quantity}"),
        ));
    }
    Ok(Registers(Cow::Borrowed(
        r.take(usize::from(count), F_VALUES)?,
    )))
}

fn put_cow(out: &mut impl BufMut, bytes: &[u8]) {
    out.put_slice(bytes);
}

impl<'a> Request<'a> {
    /// The function code.
    pub fn function(&self) -> u8 {
        use function::*;
        match self {
            Request::ReadCoils { .. } => READ_COILS,
            Request::ReadDiscreteInputs { .. } => READ_DISCRETE_INPUTS,
            Request::ReadHoldingRegisters { .. } => READ_HOLDING_REGISTERS,
            Request::ReadInputRegisters { .. } => READ_INPUT_REGISTERS,
            Request::WriteSingleCoil { .. } => WRITE_SINGLE_COIL,
            Request::WriteSingleRegister { .. } => WRITE_SINGLE_REGISTER,
            Request::ReadExceptionStatus => READ_EXCEPTION_STATUS,
            Request::Diagnostics { .. } => DIAGNOSTICS,
            Request::WriteMultipleCoils { .. } => WRITE_MULTIPLE_COILS,
            Request::WriteMultipleRegisters { .. } => WRITE_MULTIPLE_REGISTERS,
            Request::ReportServerId => REPORT_SERVER_ID,
            Request::MaskWriteRegister { .. } => MASK_WRITE_REGISTER,
            Request::ReadWriteMultipleRegisters { .. } => READ_WRITE_MULTIPLE_REGISTERS,
            Request::ReadDeviceIdentification { .. } => ENCAPSULATED_INTERFACE_TRANSPORT,
        }
    }

    /// Decode a whole request PDU (function code first), borrowing data from `pdu`.
    ///
    /// The PDU's length is known (from the ADU), so a short body is `Invalid`, never
    /// `Incomplete`; offsets are relative to the PDU's first byte.
    pub fn decode(pdu: &'a [u8]) -> Result<Request<'a>, RequestError> {
        let function = pdu.first().copied().unwrap_or(0);
        let refuse = |code: ExceptionCode, error: DecodeError| RequestError {
            exception: Exception {
                function: function & !function::EXCEPTION_FLAG,
                code,
            },
            error,
        };
        let mut r = Reader::new(pdu);
        let fc = r
            .u8(F_FUNCTION)
            .map_err(|e| refuse(ExceptionCode::ILLEGAL_FUNCTION, e.truncated()))?;
        if !matches!(
            fc,
            1..=8 | 0x0F | 0x10 | 0x11 | 0x16 | 0x17 | function::ENCAPSULATED_INTERFACE_TRANSPORT
        ) {
            return Err(refuse(
                ExceptionCode::ILLEGAL_FUNCTION,
                DecodeError::invalid(
                    F_FUNCTION,
                    0,
                    format!("function code {fc:#04x} not supported"),
                ),
            ));
        }
        if fc == function::ENCAPSULATED_INTERFACE_TRANSPORT {
            let mei = r
                .peek_u8(F_MEI_TYPE)
                .map_err(|e| refuse(ExceptionCode::ILLEGAL_DATA_VALUE, e.truncated()))?;
            if mei != MEI_READ_DEVICE_IDENTIFICATION {
                return Err(refuse(
                    ExceptionCode::ILLEGAL_FUNCTION,
                    r.invalid(F_MEI_TYPE, format!("MEI type {mei:#04x} not supported")),
                ));
            }
        }
        Self::decode_body(fc, &mut r)
            .and_then(|req| r.expect_end(F_END).map(|()| req))
            .map_err(|e| refuse(ExceptionCode::ILLEGAL_DATA_VALUE, e.truncated()))
    }

    fn decode_body(fc: u8, r: &mut Reader<'a>) -> DecodeResult<Request<'a>> {
        use function::*;
        Ok(match fc {
            READ_COILS => {
                let (address, quantity) = address_quantity(r, MAX_READ_BITS)?;
                Request::ReadCoils { address, quantity }
            }
            READ_DISCRETE_INPUTS => {
                let (address, quantity) = address_quantity(r, MAX_READ_BITS)?;
                Request::ReadDiscreteInputs { address, quantity }
            }
            READ_HOLDING_REGISTERS => {
                let (address, quantity) = address_quantity(r, MAX_READ_REGISTERS)?;
                Request::ReadHoldingRegisters { address, quantity }
            }
            READ_INPUT_REGISTERS => {
                let (address, quantity) = address_quantity(r, MAX_READ_REGISTERS)?;
                Request::ReadInputRegisters { address, quantity }
            }
            WRITE_SINGLE_COIL => {
                let address = r.u16_be(F_ADDRESS)?;
                let at = r.offset();
                let v = r.u16_be(F_VALUE)?;
                Request::WriteSingleCoil {
                    address,
                    value: coil_value(r, at, v)?,
                }
            }
            WRITE_SINGLE_REGISTER => Request::WriteSingleRegister {
                address: r.u16_be(F_ADDRESS)?,
                value: r.u16_be(F_VALUE)?,
            },
            READ_EXCEPTION_STATUS => Request::ReadExceptionStatus,
            DIAGNOSTICS => Request::Diagnostics {
                sub_function: r.u16_be(F_SUB_FUNCTION)?,
                data: Cow::Borrowed(r.rest()),
            },
            WRITE_MULTIPLE_COILS => {
                let (address, quantity) = address_quantity(r, MAX_WRITE_BITS)?;
                let at = r.offset();
                let count = r.u8(F_BYTE_COUNT)?;
                let want = usize::from(quantity).div_ceil(8);
                if usize::from(count) != want {
                    return Err(r.invalid_at(
                        F_BYTE_COUNT,
                        at,
                        format!("byte count {count} does not hold {quantity} coils ({want} bytes)"),
                    ));
                }
                let bytes = r.take(want, F_VALUES)?;
                Request::WriteMultipleCoils {
                    address,
                    values: Bits {
                        quantity,
                        bytes: Cow::Borrowed(bytes),
                    },
                }
            }
            WRITE_MULTIPLE_REGISTERS => {
                let (address, quantity) = address_quantity(r, MAX_WRITE_REGISTERS)?;
                Request::WriteMultipleRegisters {
                    address,
                    values: registers(r, quantity)?,
                }
            }
            REPORT_SERVER_ID => Request::ReportServerId,
            MASK_WRITE_REGISTER => Request::MaskWriteRegister {
                address: r.u16_be(F_ADDRESS)?,
                and_mask: r.u16_be("modbus.and_mask")?,
                or_mask: r.u16_be("modbus.or_mask")?,
            },
            READ_WRITE_MULTIPLE_REGISTERS => {
                let (read_address, read_quantity) = address_quantity(r, MAX_READ_REGISTERS)?;
                let (write_address, write_quantity) =
                    address_quantity(r, MAX_READ_WRITE_REGISTERS)?;
                Request::ReadWriteMultipleRegisters {
                    read_address,
                    read_quantity,
                    write_address,
                    values: registers(r, write_quantity)?,
                }
            }
            ENCAPSULATED_INTERFACE_TRANSPORT => {
                r.u8(F_MEI_TYPE)?;
                let at = r.offset();
                let code = r.u8(F_DEVICE_ID_CODE)?;
                if !(READ_DEVICE_ID_BASIC..=READ_DEVICE_ID_SPECIFIC).contains(&code) {
                    return Err(r.invalid_at(
                        F_DEVICE_ID_CODE,
                        at,
                        format!("read device id code {code} outside 1..=4"),
                    ));
                }
                Request::ReadDeviceIdentification {
                    read_device_id_code: code,
                    object_id: r.u8("modbus.object_id")?,
                }
            }
            _ => return Err(r.invalid_at(F_FUNCTION, 0, "function code not supported")),
        })
    }

    /// A copy that owns its data.
    pub fn into_owned(self) -> Request<'static> {
        match self {
            Request::ReadCoils { address, quantity } => Request::ReadCoils { address, quantity },
            Request::ReadDiscreteInputs { address, quantity } => {
                Request::ReadDiscreteInputs { address, quantity }
            }
            Request::ReadHoldingRegisters { address, quantity } => {
                Request::ReadHoldingRegisters { address, quantity }
            }
            Request::ReadInputRegisters { address, quantity } => {
                Request::ReadInputRegisters { address, quantity }
            }
            Request::WriteSingleCoil { address, value } => {
                Request::WriteSingleCoil { address, value }
            }
            Request::WriteSingleRegister { address, value } => {
                Request::WriteSingleRegister { address, value }
            }
            Request::ReadExceptionStatus => Request::ReadExceptionStatus,
            Request::Diagnostics { sub_function, data } => Request::Diagnostics {
                sub_function,
                data: Cow::Owned(data.into_owned()),
            },
            Request::WriteMultipleCoils { address, values } => Request::WriteMultipleCoils {
                address,
                values: values.into_owned(),
            },
            Request::WriteMultipleRegisters { address, values } => {
                Request::WriteMultipleRegisters {
                    address,
                    values: values.into_owned(),
                }
            }
            Request::ReportServerId => Request::ReportServerId,
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            },
            Request::ReadWriteMultipleRegisters {
                read_address,
                read_quantity,
                write_address,
                values,
            } => Request::ReadWriteMultipleRegisters {
                read_address,
                read_quantity,
                write_address,
                values: values.into_owned(),
            },
            Request::ReadDeviceIdentification {
                read_device_id_code,
                object_id,
            } => Request::ReadDeviceIdentification {
                read_device_id_code,
                object_id,
            },
        }
    }
}

impl Encode for Request<'_> {
    fn encoded_len(&self) -> usize {
        1 + match self {
            Request::ReadCoils { .. }
            | Request::ReadDiscreteInputs { .. }
            | Request::ReadHoldingRegisters { .. }
            | Request::ReadInputRegisters { .. }
            | Request::WriteSingleCoil { .. }
            | Request::WriteSingleRegister { .. } => 4,
            Request::ReadExceptionStatus | Request::ReportServerId => 0,
            Request::Diagnostics { data, .. } => 2 + data.len(),
            Request::WriteMultipleCoils { values, .. } => 5 + values.bytes.len(),
            Request::WriteMultipleRegisters { values, .. } => 5 + values.0.len(),
            Request::MaskWriteRegister { .. } => 6,
            Request::ReadWriteMultipleRegisters { values, .. } => 9 + values.0.len(),
            Request::ReadDeviceIdentification { .. } => 3,
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.function());
        match self {
            Request::ReadCoils { address, quantity }
            | Request::ReadDiscreteInputs { address, quantity }
            | Request::ReadHoldingRegisters { address, quantity }
            | Request::ReadInputRegisters { address, quantity } => {
                out.put_u16(*address);
                out.put_u16(*quantity);
            }
            Request::WriteSingleCoil { address, value } => {
                out.put_u16(*address);
                out.put_u16(if *value { COIL_ON } else { COIL_OFF });
            }
            Request::WriteSingleRegister { address, value } => {
                out.put_u16(*address);
                out.put_u16(*value);
            }
            Request::ReadExceptionStatus | Request::ReportServerId => {}
            Request::Diagnostics { sub_function, data } => {
                out.put_u16(*sub_function);
                put_cow(out, data);
            }
            Request::WriteMultipleCoils { address, values } => {
                out.put_u16(*address);
                out.put_u16(values.quantity);
                out.put_u8(values.bytes.len() as u8);
                put_cow(out, &values.bytes);
            }
            Request::WriteMultipleRegisters { address, values } => {
                out.put_u16(*address);
                out.put_u16(values.len() as u16);
                out.put_u8(values.0.len() as u8);
                put_cow(out, &values.0);
            }
            Request::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                out.put_u16(*address);
                out.put_u16(*and_mask);
                out.put_u16(*or_mask);
            }
            Request::ReadWriteMultipleRegisters {
                read_address,
                read_quantity,
                write_address,
                values,
            } => {
                out.put_u16(*read_address);
                out.put_u16(*read_quantity);
                out.put_u16(*write_address);
                out.put_u16(values.len() as u16);
                out.put_u8(values.0.len() as u8);
                put_cow(out, &values.0);
            }
            Request::ReadDeviceIdentification {
                read_device_id_code,
                object_id,
            } => {
                out.put_u8(MEI_READ_DEVICE_IDENTIFICATION);
                out.put_u8(*read_device_id_code);
                out.put_u8(*object_id);
            }
        }
    }
}

impl<'a> Response<'a> {
    /// The function code on the wire (with 0x80 set for an exception).
    pub fn function(&self) -> u8 {
        use function::*;
        match self {
            Response::ReadCoils(_) => READ_COILS,
            Response::ReadDiscreteInputs(_) => READ_DISCRETE_INPUTS,
            Response::ReadHoldingRegisters(_) => READ_HOLDING_REGISTERS,
            Response::ReadInputRegisters(_) => READ_INPUT_REGISTERS,
            Response::WriteSingleCoil { .. } => WRITE_SINGLE_COIL,
            Response::WriteSingleRegister { .. } => WRITE_SINGLE_REGISTER,
            Response::ReadExceptionStatus(_) => READ_EXCEPTION_STATUS,
            Response::Diagnostics { .. } => DIAGNOSTICS,
            Response::WriteMultipleCoils { .. } => WRITE_MULTIPLE_COILS,
            Response::WriteMultipleRegisters { .. } => WRITE_MULTIPLE_REGISTERS,
            Response::ReportServerId(_) => REPORT_SERVER_ID,
            Response::MaskWriteRegister { .. } => MASK_WRITE_REGISTER,
            Response::ReadWriteMultipleRegisters(_) => READ_WRITE_MULTIPLE_REGISTERS,
            Response::ReadDeviceIdentification { .. } => ENCAPSULATED_INTERFACE_TRANSPORT,
            Response::Exception(e) => e.function | EXCEPTION_FLAG,
        }
    }

    /// Decode a whole response PDU (function code first), borrowing data from `pdu`.
    ///
    /// A short body is `Invalid` (the PDU's length is known); offsets are relative to
    /// the PDU's first byte.
    pub fn decode(pdu: &'a [u8]) -> DecodeResult<Response<'a>> {
        let mut r = Reader::new(pdu);
        Self::decode_body(&mut r)
            .and_then(|resp| r.expect_end(F_END).map(|()| resp))
            .map_err(DecodeError::truncated)
    }

    fn decode_body(r: &mut Reader<'a>) -> DecodeResult<Response<'a>> {
        use function::*;
        let fc = r.u8(F_FUNCTION)?;
        if fc & EXCEPTION_FLAG != 0 {
            return Ok(Response::Exception(Exception {
                function: fc & !EXCEPTION_FLAG,
                code: ExceptionCode(r.u8("modbus.exception_code")?),
            }));
        }
        Ok(match fc {
            READ_COILS | READ_DISCRETE_INPUTS => {
                let count = r.u8(F_BYTE_COUNT)?;
                let bits = Bits::from_packed(r.take(usize::from(count), F_VALUES)?);
                if fc == READ_COILS {
                    Response::ReadCoils(bits)
                } else {
                    Response::ReadDiscreteInputs(bits)
                }
            }
            READ_HOLDING_REGISTERS | READ_INPUT_REGISTERS | READ_WRITE_MULTIPLE_REGISTERS => {
                let at = r.offset();
                let count = r.u8(F_BYTE_COUNT)?;
                if count % 2 != 0 {
                    return Err(r.invalid_at(
                        F_BYTE_COUNT,
                        at,
                        format!("odd register byte count {count}"),
                    ));
                }
                let regs = Registers(Cow::Borrowed(r.take(usize::from(count), F_VALUES)?));
                match fc {
                    READ_HOLDING_REGISTERS => Response::ReadHoldingRegisters(regs),
                    READ_INPUT_REGISTERS => Response::ReadInputRegisters(regs),
                    _ => Response::ReadWriteMultipleRegisters(regs),
                }
            }
            WRITE_SINGLE_COIL => {
                let address = r.u16_be(F_ADDRESS)?;
                let at = r.offset();
                let v = r.u16_be(F_VALUE)?;
                Response::WriteSingleCoil {
                    address,
                    value: coil_value(r, at, v)?,
                }
            }
            WRITE_SINGLE_REGISTER => Response::WriteSingleRegister {
                address: r.u16_be(F_ADDRESS)?,
                value: r.u16_be(F_VALUE)?,
            },
            READ_EXCEPTION_STATUS => Response::ReadExceptionStatus(r.u8("modbus.status")?),
            DIAGNOSTICS => Response::Diagnostics {
                sub_function: r.u16_be(F_SUB_FUNCTION)?,
                data: Cow::Borrowed(r.rest()),
            },
            WRITE_MULTIPLE_COILS => Response::WriteMultipleCoils {
                address: r.u16_be(F_ADDRESS)?,
                quantity: r.u16_be(F_QUANTITY)?,
            },
            WRITE_MULTIPLE_REGISTERS => Response::WriteMultipleRegisters {
                address: r.u16_be(F_ADDRESS)?,
                quantity: r.u16_be(F_QUANTITY)?,
            },
            REPORT_SERVER_ID => {
                let count = r.u8(F_BYTE_COUNT)?;
                Response::ReportServerId(Cow::Borrowed(r.take(usize::from(count), F_VALUES)?))
            }
            MASK_WRITE_REGISTER => Response::MaskWriteRegister {
                address: r.u16_be(F_ADDRESS)?,
                and_mask: r.u16_be("modbus.and_mask")?,
                or_mask: r.u16_be("modbus.or_mask")?,
            },
            ENCAPSULATED_INTERFACE_TRANSPORT => {
                let at = r.offset();
                let mei = r.u8(F_MEI_TYPE)?;
                if mei != MEI_READ_DEVICE_IDENTIFICATION {
                    return Err(r.invalid_at(
                        F_MEI_TYPE,
                        at,
                        format!("MEI type {mei:#04x} not supported"),
                    ));
                }
                let read_device_id_code = r.u8(F_DEVICE_ID_CODE)?;
                let conformity_level = r.u8("modbus.conformity_level")?;
                let at = r.offset();
                let more_follows = match r.u8("modbus.more_follows")? {
                    0x00 => false,
                    0xFF => true,
                    v => {
                        return Err(r.invalid_at(
                            "modbus.more_follows",
                            at,
                            format!("{v:#04x} is neither 0x00 nor 0xFF"),
                        ))
                    }
                };
                let next_object_id = r.u8("modbus.next_object_id")?;
                let count = r.u8("modbus.number_of_objects")?;
                let mut objects = Vec::new();
                for _ in 0..count {
                    let id = r.u8(F_OBJECT)?;
                    let len = r.u8(F_OBJECT)?;
                    let value = Cow::Borrowed(r.take(usize::from(len), F_OBJECT)?);
                    objects.push(DeviceObject { id, value });
                }
                Response::ReadDeviceIdentification {
                    read_device_id_code,
                    conformity_level,
                    more_follows,
                    next_object_id,
                    objects,
                }
            }
            _ => {
                return Err(r.invalid_at(
                    F_FUNCTION,
                    0,
                    format!("function code {fc:#04x} not supported"),
                ))
            }
        })
    }

    /// A copy that owns its data.
    pub fn into_owned(self) -> Response<'static> {
        match self {
            Response::ReadCoils(b) => Response::ReadCoils(b.into_owned()),
            Response::ReadDiscreteInputs(b) => Response::ReadDiscreteInputs(b.into_owned()),
            Response::ReadHoldingRegisters(v) => Response::ReadHoldingRegisters(v.into_owned()),
            Response::ReadInputRegisters(v) => Response::ReadInputRegisters(v.into_owned()),
            Response::WriteSingleCoil { address, value } => {
                Response::WriteSingleCoil { address, value }
            }
            Response::WriteSingleRegister { address, value } => {
                Response::WriteSingleRegister { address, value }
            }
            Response::ReadExceptionStatus(s) => Response::ReadExceptionStatus(s),
            Response::Diagnostics { sub_function, data } => Response::Diagnostics {
                sub_function,
                data: Cow::Owned(data.into_owned()),
            },
            Response::WriteMultipleCoils { address, quantity } => {
                Response::WriteMultipleCoils { address, quantity }
            }
            Response::WriteMultipleRegisters { address, quantity } => {
                Response::WriteMultipleRegisters { address, quantity }
            }
            Response::ReportServerId(d) => Response::ReportServerId(Cow::Owned(d.into_owned())),
            Response::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => Response::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            },
            Response::ReadWriteMultipleRegisters(v) => {
                Response::ReadWriteMultipleRegisters(v.into_owned())
            }
            Response::ReadDeviceIdentification {
                read_device_id_code,
                conformity_level,
                more_follows,
                next_object_id,
                objects,
            } => Response::ReadDeviceIdentification {
                read_device_id_code,
                conformity_level,
                more_follows,
                next_object_id,
                objects: objects
                    .into_iter()
                    .map(|o| DeviceObject {
                        id: o.id,
                        value: Cow::Owned(o.value.into_owned()),
                    })
                    .collect(),
            },
            Response::Exception(e) => Response::Exception(e),
        }
    }
}

impl Encode for Response<'_> {
    fn encoded_len(&self) -> usize {
        1 + match self {
            Response::ReadCoils(b) | Response::ReadDiscreteInputs(b) => 1 + b.bytes.len(),
            Response::ReadHoldingRegisters(v)
            | Response::ReadInputRegisters(v)
            | Response::ReadWriteMultipleRegisters(v) => 1 + v.0.len(),
            Response::WriteSingleCoil { .. }
            | Response::WriteSingleRegister { .. }
            | Response::WriteMultipleCoils { .. }
            | Response::WriteMultipleRegisters { .. } => 4,
            Response::ReadExceptionStatus(_) | Response::Exception(_) => 1,
            Response::Diagnostics { data, .. } => 2 + data.len(),
            Response::ReportServerId(d) => 1 + d.len(),
            Response::MaskWriteRegister { .. } => 6,
            Response::ReadDeviceIdentification { objects, .. } => {
                6 + objects.iter().map(|o| 2 + o.value.len()).sum::<usize>()
            }
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.function());
        match self {
            Response::ReadCoils(b) | Response::ReadDiscreteInputs(b) => {
                out.put_u8(b.bytes.len() as u8);
                put_cow(out, &b.bytes);
            }
            Response::ReadHoldingRegisters(v)
            | Response::ReadInputRegisters(v)
            | Response::ReadWriteMultipleRegisters(v) => {
                out.put_u8(v.0.len() as u8);
                put_cow(out, &v.0);
            }
            Response::WriteSingleCoil { address, value } => {
                out.put_u16(*address);
                out.put_u16(if *value { COIL_ON } else { COIL_OFF });
            }
            Response::WriteSingleRegister { address, value } => {
                out.put_u16(*address);
                out.put_u16(*value);
            }
            Response::WriteMultipleCoils { address, quantity }
            | Response::WriteMultipleRegisters { address, quantity } => {
                out.put_u16(*address);
                out.put_u16(*quantity);
            }
            Response::ReadExceptionStatus(s) => out.put_u8(*s),
            Response::Exception(e) => out.put_u8(e.code.0),
            Response::Diagnostics { sub_function, data } => {
                out.put_u16(*sub_function);
                put_cow(out, data);
            }
            Response::ReportServerId(d) => {
                out.put_u8(d.len() as u8);
                put_cow(out, d);
            }
            Response::MaskWriteRegister {
                address,
                and_mask,
                or_mask,
            } => {
                out.put_u16(*address);
                out.put_u16(*and_mask);
                out.put_u16(*or_mask);
            }
            Response::ReadDeviceIdentification {
                read_device_id_code,
                conformity_level,
                more_follows,
                next_object_id,
                objects,
            } => {
                out.put_u8(MEI_READ_DEVICE_IDENTIFICATION);
                out.put_u8(*read_device_id_code);
                out.put_u8(*conformity_level);
                out.put_u8(if *more_follows { 0xFF } else { 0x00 });
                out.put_u8(*next_object_id);
                out.put_u8(objects.len() as u8);
                for o in objects {
                    out.put_u8(o.id);
                    out.put_u8(o.value.len() as u8);
                    put_cow(out, &o.value);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(bytes: &[u8]) -> Request<'_> {
        let r = Request::decode(bytes).unwrap();
        assert_eq!(r.to_vec(), bytes, "re-encode of {r:?}");
        r
    }

    fn resp(bytes: &[u8]) -> Response<'_> {
        let r = Response::decode(bytes).unwrap();
        assert_eq!(r.to_vec(), bytes, "re-encode of {r:?}");
        r
    }

    #[test]
    fn registers_from_wire_bytes_borrow_and_match_from_values() {
        // The spec's FC 3 response example: registers 0x022B, 0x0000, 0x0064.
        let wire = [0x02, 0x2B, 0x00, 0x00, 0x00, 0x64];
        let r = Registers::from_be_bytes(&wire[..]).unwrap();
        assert!(matches!(r.0, Cow::Borrowed(_)));
        assert_eq!(r, Registers::from_values(&[0x022B, 0, 0x64]));
        assert_eq!(r.to_vec(), [0x022B, 0, 0x64]);
        assert_eq!(
            Response::ReadHoldingRegisters(r).to_vec(),
            [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]
        );
        assert_eq!(Registers::from_be_bytes(&wire[..5]), None);
        assert_eq!(
            Registers::from_be_bytes(Vec::new()).map(|r| r.len()),
            Some(0)
        );
    }

    // MODBUS Application Protocol Specification V1.1b3, section 6: the request and
    // response example of each function code.
    #[test]
    fn specification_examples() {
        assert_eq!(
            req(&[0x01, 0x00, 0x13, 0x00, 0x13]),
            Request::ReadCoils {
                address: 19,
                quantity: 19
            }
        );
        let Response::ReadCoils(bits) = resp(&[0x01, 0x03, 0xCD, 0x6B, 0x05]) else {
            panic!()
        };
        // Coils 20-27 are CD: 1011_0011 read LSB first.
        let first8: Vec<bool> = bits.iter().take(8).collect();
        assert_eq!(first8, [true, false, true, true, false, false, true, true]);
        assert_eq!(bits.quantity(), 24);

        assert_eq!(
            req(&[0x02, 0x00, 0xC4, 0x00, 0x16]),
            Request::ReadDiscreteInputs {
                address: 196,
                quantity: 22
            }
        );
        assert!(
            matches!(resp(&[0x02, 0x03, 0xAC, 0xDB, 0x35]), Response::ReadDiscreteInputs(b) if b.as_bytes() == [0xAC, 0xDB, 0x35])
        );

        assert_eq!(
            req(&[0x03, 0x00, 0x6B, 0x00, 0x03]),
            Request::ReadHoldingRegisters {
                address: 107,
                quantity: 3
            }
        );
        let Response::ReadHoldingRegisters(v) =
            resp(&[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64])
        else {
            panic!()
        };
        assert_eq!(v.to_vec(), [555, 0, 100]);

        assert_eq!(
            req(&[0x04, 0x00, 0x08, 0x00, 0x01]),
            Request::ReadInputRegisters {
                address: 8,
                quantity: 1
            }
        );
        assert_eq!(
            resp(&[0x04, 0x02, 0x00, 0x0A]),
            Response::ReadInputRegisters(Registers::from_values(&[10]))
        );

        assert_eq!(
            req(&[0x05, 0x00, 0xAC, 0xFF, 0x00]),
            Request::WriteSingleCoil {
                address: 172,
                value: true
            }
        );
        assert_eq!(
            resp(&[0x05, 0x00, 0xAC, 0xFF, 0x00]),
            Response::WriteSingleCoil {
                address: 172,
                value: true
            }
        );

        assert_eq!(
            req(&[0x06, 0x00, 0x01, 0x00, 0x03]),
            Request::WriteSingleRegister {
                address: 1,
                value: 3
            }
        );
        assert_eq!(
            resp(&[0x06, 0x00, 0x01, 0x00, 0x03]),
            Response::WriteSingleRegister {
                address: 1,
                value: 3
            }
        );

        assert_eq!(req(&[0x07]), Request::ReadExceptionStatus);
        assert_eq!(resp(&[0x07, 0x6D]), Response::ReadExceptionStatus(0x6D));

        // Diagnostics, sub-function 0 (Return Query Data) echoes A5 37.
        let d = [0x08, 0x00, 0x00, 0xA5, 0x37];
        assert_eq!(
            req(&d),
            Request::Diagnostics {
                sub_function: DIAGNOSTICS_RETURN_QUERY_DATA,
                data: Cow::Borrowed(&[0xA5, 0x37][..])
            }
        );
        assert!(matches!(
            resp(&d),
            Response::Diagnostics {
                sub_function: 0,
                ..
            }
        ));

        let Request::WriteMultipleCoils { address, values } =
            req(&[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01])
        else {
            panic!()
        };
        assert_eq!(address, 19);
        assert_eq!(
            values.iter().collect::<Vec<_>>(),
            [true, false, true, true, false, false, true, true, true, false]
        );
        assert_eq!(
            resp(&[0x0F, 0x00, 0x13, 0x00, 0x0A]),
            Response::WriteMultipleCoils {
                address: 19,
                quantity: 10
            }
        );

        assert_eq!(
            req(&[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02]),
            Request::WriteMultipleRegisters {
                address: 1,
                values: Registers::from_values(&[0x000A, 0x0102])
            }
        );
        assert_eq!(
            resp(&[0x10, 0x00, 0x01, 0x00, 0x02]),
            Response::WriteMultipleRegisters {
                address: 1,
                quantity: 2
            }
        );

        let m = [0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25];
        assert_eq!(
            req(&m),
            Request::MaskWriteRegister {
                address: 4,
                and_mask: 0xF2,
                or_mask: 0x25
            }
        );
        assert!(matches!(
            resp(&m),
            Response::MaskWriteRegister { address: 4, .. }
        ));

        assert_eq!(
            req(&[
                0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0x00, 0xFF, 0x00, 0xFF,
                0x00, 0xFF
            ]),
            Request::ReadWriteMultipleRegisters {
                read_address: 3,
                read_quantity: 6,
                write_address: 14,
                values: Registers::from_values(&[0xFF; 3])
            }
        );
        let Response::ReadWriteMultipleRegisters(v) = resp(&[
            0x17, 0x0C, 0x00, 0xFE, 0x0A, 0xCD, 0x00, 0x01, 0x00, 0x03, 0x00, 0x0D, 0x00, 0xFF,
        ]) else {
            panic!()
        };
        assert_eq!(v.to_vec(), [0xFE, 0x0ACD, 1, 3, 0x0D, 0xFF]);

        // Exception example (section 7): Read Coils refused with Illegal Data Address.
        assert_eq!(
            resp(&[0x81, 0x02]),
            Response::Exception(Exception {
                function: 1,
                code: ExceptionCode::ILLEGAL_DATA_ADDRESS
            })
        );

        assert_eq!(
            req(&[0x2B, 0x0E, 0x01, 0x00]),
            Request::ReadDeviceIdentification {
                read_device_id_code: 1,
                object_id: 0
            }
        );
        assert_eq!(req(&[0x11]), Request::ReportServerId);
    }

    // Read Device Identification response, basic objects, as in the specification's
    // section 6.21 example layout (objects 0-2, no more follow).
    #[test]
    fn read_device_identification_response() {
        let mut pdu = vec![0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x03];
        for (id, s) in [
            (0u8, &b"Company identification"[..]),
            (1, b"Product code XX"),
            (2, b"V2.11"),
        ] {
            pdu.push(id);
            pdu.push(s.len() as u8);
            pdu.extend_from_slice(s);
        }
        let Response::ReadDeviceIdentification {
            objects,
            more_follows,
            conformity_level,
            ..
        } = resp(&pdu)
        else {
            panic!()
        };
        assert!(!more_follows);
        assert_eq!(conformity_level, 1);
        assert_eq!(objects.len(), 3);
        assert_eq!(&*objects[2].value, b"V2.11");
    }

    #[test]
    fn refused_requests_carry_the_exception_a_server_answers() {
        let cases: &[(&[u8], u8, &str)] = &[
            (&[0x03, 0x00, 0x00, 0x00, 0x7E], 0x03, "modbus.quantity"), // 126 registers
            (&[0x03, 0x00, 0x00, 0x00, 0x00], 0x03, "modbus.quantity"),
            (&[0x01, 0x00, 0x00, 0x07, 0xD1], 0x03, "modbus.quantity"), // 2001 coils
            (
                &[0x10, 0x00, 0x00, 0x00, 0x7C, 0xF8],
                0x03,
                "modbus.quantity",
            ), // 124
            (
                &[0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0, 0, 0, 0],
                0x03,
                "modbus.byte_count",
            ),
            (
                &[0x0F, 0x00, 0x00, 0x07, 0xB1, 0xF7],
                0x03,
                "modbus.quantity",
            ), // 1969 coils
            (
                &[0x17, 0, 0, 0, 1, 0, 0, 0, 0x7A, 0xF4],
                0x03,
                "modbus.quantity",
            ), // write 122
            (&[0x05, 0x00, 0x01, 0x12, 0x34], 0x03, "modbus.value"),
            (&[0x03, 0x00, 0x01], 0x03, "modbus.quantity"),
            (&[0x03, 0x00, 0x01, 0x00, 0x01, 0x00], 0x03, "modbus.pdu"),
            (&[0x09], 0x01, "modbus.function"),
            (&[0x83, 0x02], 0x01, "modbus.function"),
            (&[0x2B, 0x0D, 0x01, 0x00], 0x01, "modbus.mei_type"),
            (
                &[0x2B, 0x0E, 0x05, 0x00],
                0x03,
                "modbus.read_device_id_code",
            ),
            (&[], 0x01, "modbus.function"),
        ];
        for (pdu, code, field) in cases {
            let e = Request::decode(pdu).unwrap_err();
            assert_eq!(e.exception.code, ExceptionCode(*code), "{pdu:02x?}");
            assert_eq!(e.error.field(), *field, "{pdu:02x?}");
            assert!(!e.error.is_incomplete());
        }
        let e = Request::decode(&[0x03, 0x00, 0x00, 0x00, 0x7E]).unwrap_err();
        assert_eq!(e.exception.to_vec(), [0x83, 0x03]);
        assert_eq!(e.error.offset(), 3);
    }

    fn registers(max: usize) -> impl Strategy<Value = Registers<'static>> {
        proptest::collection::vec(any::<u16>(), 1..=max).prop_map(|v| Registers::from_values(&v))
    }

    /// Return Query Data with any data, or another sub-function with its 2 bytes.
    fn diagnostics() -> impl Strategy<Value = (u16, Cow<'static, [u8]>)> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|d| (0, Cow::Owned(d))),
            (1..=u16::MAX, any::<[u8; 2]>()).prop_map(|(s, d)| (s, Cow::Owned(d.to_vec()))),
        ]
    }

    pub(crate) fn arb_request() -> impl Strategy<Value = Request<'static>> {
        let q = |max: u16| 1..=max;
        prop_oneof![
            (any::<u16>(), q(MAX_READ_BITS))
                .prop_map(|(address, quantity)| Request::ReadCoils { address, quantity }),
            (any::<u16>(), q(MAX_READ_BITS))
                .prop_map(|(address, quantity)| Request::ReadDiscreteInputs { address, quantity }),
            (any::<u16>(), q(MAX_READ_REGISTERS)).prop_map(|(address, quantity)| {
                Request::ReadHoldingRegisters { address, quantity }
            }),
            (any::<u16>(), q(MAX_READ_REGISTERS))
                .prop_map(|(address, quantity)| Request::ReadInputRegisters { address, quantity }),
            (any::<u16>(), any::<bool>())
                .prop_map(|(address, value)| Request::WriteSingleCoil { address, value }),
            (any::<u16>(), any::<u16>())
                .prop_map(|(address, value)| Request::WriteSingleRegister { address, value }),
            Just(Request::ReadExceptionStatus),
            diagnostics()
                .prop_map(|(sub_function, data)| Request::Diagnostics { sub_function, data }),
            (
                any::<u16>(),
                proptest::collection::vec(any::<bool>(), 1..=usize::from(MAX_WRITE_BITS))
            )
                .prop_map(|(address, v)| Request::WriteMultipleCoils {
                    address,
                    values: Bits::from_bools(&v)
                }),
            (any::<u16>(), registers(usize::from(MAX_WRITE_REGISTERS)))
                .prop_map(|(address, values)| Request::WriteMultipleRegisters { address, values }),
            Just(Request::ReportServerId),
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(address, and_mask, or_mask)| {
                Request::MaskWriteRegister {
                    address,
                    and_mask,
                    or_mask,
                }
            }),
            (
                any::<u16>(),
                q(MAX_READ_REGISTERS),
                any::<u16>(),
                registers(usize::from(MAX_READ_WRITE_REGISTERS))
            )
                .prop_map(|(read_address, read_quantity, write_address, values)| {
                    Request::ReadWriteMultipleRegisters {
                        read_address,
                        read_quantity,
                        write_address,
                        values,
                    }
                }),
            (1u8..=4, any::<u8>()).prop_map(|(read_device_id_code, object_id)| {
                Request::ReadDeviceIdentification {
                    read_device_id_code,
                    object_id,
                }
            }),
        ]
    }

    pub(crate) fn arb_response() -> impl Strategy<Value = Response<'static>> {
        let bytes = |max: usize| proptest::collection::vec(any::<u8>(), 0..=max);
        prop_oneof![
            bytes(250).prop_map(|b| Response::ReadCoils(Bits::from_packed(b))),
            bytes(250).prop_map(|b| Response::ReadDiscreteInputs(Bits::from_packed(b))),
            registers(125).prop_map(Response::ReadHoldingRegisters),
            registers(125).prop_map(Response::ReadInputRegisters),
            registers(125).prop_map(Response::ReadWriteMultipleRegisters),
            (any::<u16>(), any::<bool>())
                .prop_map(|(address, value)| Response::WriteSingleCoil { address, value }),
            (any::<u16>(), any::<u16>())
                .prop_map(|(address, value)| Response::WriteSingleRegister { address, value }),
            any::<u8>().prop_map(Response::ReadExceptionStatus),
            diagnostics()
                .prop_map(|(sub_function, data)| Response::Diagnostics { sub_function, data }),
            (any::<u16>(), any::<u16>())
                .prop_map(|(address, quantity)| Response::WriteMultipleCoils { address, quantity }),
            (any::<u16>(), any::<u16>()).prop_map(|(address, quantity)| {
                Response::WriteMultipleRegisters { address, quantity }
            }),
            bytes(250).prop_map(|d| Response::ReportServerId(Cow::Owned(d))),
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(address, and_mask, or_mask)| {
                Response::MaskWriteRegister {
                    address,
                    and_mask,
                    or_mask,
                }
            }),
            (
                1u8..=4,
                any::<u8>(),
                any::<bool>(),
                any::<u8>(),
                proptest::collection::vec((any::<u8>(), bytes(30)), 0..6)
            )
                .prop_map(
                    |(
                        read_device_id_code,
                        conformity_level,
                        more_follows,
                        next_object_id,
                        objs,
                    )| Response::ReadDeviceIdentification {
                        read_device_id_code,
                        conformity_level,
                        more_follows,
                        next_object_id,
                        objects: objs
                            .into_iter()
                            .map(|(id, v)| DeviceObject {
                                id,
                                value: Cow::Owned(v)
                            })
                            .collect(),
                    }
                ),
            (
                prop::sample::select(
                    &[1u8, 2, 3, 4, 5, 6, 7, 8, 0x0F, 0x10, 0x11, 0x16, 0x17, 0x2B][..]
                ),
                prop::sample::select(&[1u8, 2, 3, 4, 5, 6, 8, 0x0A, 0x0B][..]),
            )
                .prop_map(|(function, c)| Response::Exception(Exception {
                    function,
                    code: ExceptionCode(c)
                })),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trip(r in arb_request()) {
            let bytes = r.to_vec();
            prop_assert_eq!(bytes.len(), r.encoded_len());
            prop_assert!(bytes.len() <= MAX_PDU_LEN);
            prop_assert_eq!(Request::decode(&bytes).unwrap(), r);
        }

        #[test]
        fn response_round_trip(r in arb_response()) {
            let bytes = r.to_vec();
            prop_assert_eq!(bytes.len(), r.encoded_len());
            prop_assert_eq!(Response::decode(&bytes).unwrap(), r);
        }

        #[test]
        fn arbitrary_pdus_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(r) = Request::decode(&bytes) {
                prop_assert_eq!(r.to_vec(), bytes.clone());
            }
            if let Ok(r) = Response::decode(&bytes) {
                prop_assert_eq!(r.to_vec(), bytes);
            }
        }
    }
}
