//! The EtherNet/IP encapsulation layer: the 24-byte header that starts every message on
//! TCP and UDP port 44818, its command codes and status codes, stream framing, and the
//! command-specific data of the commands a CIP client or device uses.
//!
//! ```text
//!  0      2      4              8              12             20             24
//! +------+------+--------------+--------------+--------------+--------------+----------
//! |cmd   |length|session handle|status        |sender context|options       | data ...
//! +------+------+--------------+--------------+--------------+--------------+----------
//!  u16 LE u16 LE u32 LE         u32 LE         8 octets       u32 LE         `length` octets
//! ```
//!
//! In scope:
//! - [`Header`] and [`Encapsulation`] (header plus borrowed data) decode and encode; a
//!   frame's `length` field is computed from its data when encoding;
//! - [`Command`] with every command a CIP device answers, plus [`Command::Other`] so that
//!   an unknown command round-trips (a device answers it with [`status::INVALID_COMMAND`]);
//! - the [`status`] codes, named, with [`status_name`];
//! - [`EncapsulationFraming`] for [`StreamDecoder`], to cut a TCP byte stream into frames;
//! - typed command data: [`RegisterSession`], [`SendData`] (for `SendRRData` and
//!   `SendUnitData`: interface handle, timeout, then a [`Cpf`]), and [`Body`], which
//!   interprets a frame's data by its command.
//!
//! Out of scope: the session state machine (which session handles are valid, what to
//! answer), CIP inside the Common Packet Format items (see [`crate::cip`]), the CPF
//! items themselves (see [`super::cpf`]), `StartDTLS` (0x00C8, decoded as
//! [`Command::Other`]), and UDP I/O (class 0/1) packets on port 2222.
//!
//! ## Length bound
//!
//! The `length` field is a `u16`, so no frame is longer than [`MAX_FRAME_LEN`]
//! (24 + 65535 bytes); decoding accepts every `length` value and so never waits for more
//! than that. The specification further limits a whole message to 65535 bytes, i.e.
//! [`MAX_DATA_LEN`] (65511) bytes of data; a device may answer a longer request with
//! [`status::INVALID_LENGTH`] ([`Header::length_is_valid`] says which). Encoding data
//! longer than 65535 bytes cannot be represented: build frames with
//! [`Encapsulation::new`], which refuses it.

use std::borrow::Cow;
use std::fmt;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use super::cpf::{Cpf, CpfItems};
use crate::wire::{DecodeError, DecodeResult, Encode, Framing, Reader, StreamDecoder};

/// Length of the encapsulation header in bytes.
pub const HEADER_LEN: usize = 24;

/// The most data bytes a message may carry by the specification (65535 less the header).
pub const MAX_DATA_LEN: usize = 65_535 - HEADER_LEN;

/// The longest frame the `length` field can describe: the header plus 65535 bytes.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + u16::MAX as usize;

/// The encapsulation protocol version carried by `RegisterSession` (and `ListIdentity`).
pub const PROTOCOL_VERSION: u16 = 1;

/// An encapsulation command code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// `Nop` (0x0000): no reply; either side may send it, its data is ignored.
    Nop,
    /// The undocumented legacy command 0x0001. cpppo answers it (as some Rockwell devices
    /// do) with a CPF holding one item of type 0x0001 that carries the device's IPv4
    /// socket address and its dotted-quad text (see [`super::cpf::LegacyAddress`]).
    Legacy,
    /// `ListServices` (0x0004): which encapsulation services the target supports.
    ListServices,
    /// `ListIdentity` (0x0063): the target's identity, also sent by UDP broadcast.
    ListIdentity,
    /// `ListInterfaces` (0x0064): non-CIP interfaces of the target.
    ListInterfaces,
    /// `RegisterSession` (0x0065): open a session; the reply carries the session handle.
    RegisterSession,
    /// `UnRegisterSession` (0x0066): close the session; no reply.
    UnRegisterSession,
    /// `SendRRData` (0x006F): an unconnected (request/reply) CIP message.
    SendRRData,
    /// `SendUnitData` (0x0070): a connected CIP message, with sequence counts.
    SendUnitData,
    /// Any other code, kept so it round-trips (a device answers it with
    /// [`status::INVALID_COMMAND`]). Build commands from codes with
    /// [`Command::from_code`]: an `Other` holding a known code encodes the same but
    /// compares unequal to the named variant.
    Other(u16),
}

impl Command {
    /// The wire code of this command.
    pub fn code(self) -> u16 {
        match self {
            Command::Nop => 0x0000,
            Command::Legacy => 0x0001,
            Command::ListServices => 0x0004,
            Command::ListIdentity => 0x0063,
            Command::ListInterfaces => 0x0064,
            Command::RegisterSession => 0x0065,
            Command::UnRegisterSession => 0x0066,
            Command::SendRRData => 0x006F,
            Command::SendUnitData => 0x0070,
            Command::Other(code) => code,
        }
    }

    /// The command for a wire code (never fails: unknown codes are [`Command::Other`]).
    pub fn from_code(code: u16) -> Self {
        match code {
            0x0000 => Command::Nop,
            0x0001 => Command::Legacy,
            0x0004 => Command::ListServices,
            0x0063 => Command::ListIdentity,
            0x0064 => Command::ListInterfaces,
            0x0065 => Command::RegisterSession,
            0x0066 => Command::UnRegisterSession,
            0x006F => Command::SendRRData,
            0x0070 => Command::SendUnitData,
            other => Command::Other(other),
        }
    }

    /// True for a code this crate knows (not [`Command::Other`]).
    pub fn is_known(self) -> bool {
        !matches!(Command::from_code(self.code()), Command::Other(_))
    }
}

impl From<u16> for Command {
    fn from(code: u16) -> Self {
        Command::from_code(code)
    }
}

impl From<Command> for u16 {
    fn from(command: Command) -> Self {
        command.code()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Command::from_code(self.code()) {
            Command::Other(code) => write!(f, "Command 0x{code:04X}"),
            Command::Nop => f.write_str("Nop"),
            Command::Legacy => f.write_str("Legacy 0x0001"),
            Command::ListServices => f.write_str("ListServices"),
            Command::ListIdentity => f.write_str("ListIdentity"),
            Command::ListInterfaces => f.write_str("ListInterfaces"),
            Command::RegisterSession => f.write_str("RegisterSession"),
            Command::UnRegisterSession => f.write_str("UnRegisterSession"),
            Command::SendRRData => f.write_str("SendRRData"),
            Command::SendUnitData => f.write_str("SendUnitData"),
        }
    }
}

/// Encapsulation status codes (the header's `status` field, a `u32`).
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0x0000;
    /// The sender issued an invalid or unsupported encapsulation command.
    pub const INVALID_COMMAND: u32 = 0x0001;
    /// Insufficient memory resources in the receiver to handle the command.
    pub const INSUFFICIENT_MEMORY: u32 = 0x0002;
    /// Poorly formed or incorrect data in the data portion of the message.
    pub const INCORRECT_DATA: u32 = 0x0003;
    /// An invalid session handle was used.
    pub const INVALID_SESSION_HANDLE: u32 = 0x0064;
    /// A message of invalid length was received.
    pub const INVALID_LENGTH: u32 = 0x0065;
    /// An unsupported encapsulation protocol revision.
    pub const UNSUPPORTED_PROTOCOL_REVISION: u32 = 0x0069;
}

/// A short name for an encapsulation status code, `None` for codes not in [`status`].
pub fn status_name(code: u32) -> Option<&'static str> {
    Some(match code {
        status::SUCCESS => "success",
        status::INVALID_COMMAND => "invalid or unsupported command",
        status::INSUFFICIENT_MEMORY => "insufficient memory",
        status::INCORRECT_DATA => "incorrect data",
        status::INVALID_SESSION_HANDLE => "invalid session handle",
        status::INVALID_LENGTH => "invalid length",
        status::UNSUPPORTED_PROTOCOL_REVISION => "unsupported protocol revision",
        _ => return None,
    })
}

/// The 24-byte encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The command.
    pub command: Command,
    /// Bytes of data after the header (as received; [`Encapsulation`] computes it).
    pub length: u16,
    /// The session handle (0 before `RegisterSession`).
    pub session_handle: u32,
    /// Status: 0 in requests, one of [`status`] in replies.
    pub status: u32,
    /// Opaque bytes a reply echoes from its request.
    pub sender_context: [u8; 8],
    /// Options: shall be 0.
    pub options: u32,
}

impl Header {
    /// A request header for `command` with no data yet.
    pub fn new(command: Command, session_handle: u32, sender_context: [u8; 8]) -> Self {
        Header {
            command,
            length: 0,
            session_handle,
            status: status::SUCCESS,
            sender_context,
            options: 0,
        }
    }

    /// Decode a header from the first 24 bytes of `bytes` (`Incomplete` if fewer).
    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let mut r = Reader::new(bytes);
        if r.remaining() < HEADER_LEN {
            return Err(DecodeError::Incomplete {
                field: "encapsulation.header",
                offset: r.remaining(),
                needed: HEADER_LEN - r.remaining(),
            });
        }
        Ok(Header {
            command: Command::from_code(r.u16_le("encapsulation.command")?),
            length: r.u16_le("encapsulation.length")?,
            session_handle: r.u32_le("encapsulation.session_handle")?,
            status: r.u32_le("encapsulation.status")?,
            sender_context: r.array("encapsulation.sender_context")?,
            options: r.u32_le("encapsulation.options")?,
        })
    }

    /// The total frame length this header announces (header plus data).
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + usize::from(self.length)
    }

    /// False when `length` exceeds the specification's [`MAX_DATA_LEN`].
    pub fn length_is_valid(&self) -> bool {
        usize::from(self.length) <= MAX_DATA_LEN
    }
}

impl Encode for Header {
    fn encoded_len(&self) -> usize {
        HEADER_LEN
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.command.code());
        out.put_u16_le(self.length);
        out.put_u32_le(self.session_handle);
        out.put_u32_le(self.status);
        out.put_slice(&self.sender_context);
        out.put_u32_le(self.options);
    }
}

/// Data too long for the encapsulation `length` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("encapsulation data of {0} bytes exceeds {MAX_DATA_LEN}")]
pub struct DataTooLong(pub usize);

/// One encapsulation message: its header and its (borrowed) data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encapsulation<'a> {
    /// The header; when encoding, its `length` is replaced by the data's length.
    pub header: Header,
    /// The command-specific data.
    pub data: Cow<'a, [u8]>,
}

impl<'a> Encapsulation<'a> {
    /// A frame with `header` and `data`, its `length` set from the data. Fails if the
    /// data is longer than [`MAX_DATA_LEN`].
    pub fn new(mut header: Header, data: impl Into<Cow<'a, [u8]>>) -> Result<Self, DataTooLong> {
        let data = data.into();
        if data.len() > MAX_DATA_LEN {
            return Err(DataTooLong(data.len()));
        }
        header.length = u16::try_from(data.len()).map_err(|_| DataTooLong(data.len()))?;
        Ok(Encapsulation { header, data })
    }

    /// A frame whose data is the encoding of `body` (allocates that data).
    pub fn with_body<E: Encode>(header: Header, body: &E) -> Result<Self, DataTooLong> {
        Encapsulation::new(header, body.to_vec())
    }

    /// A `RegisterSession` request (protocol version 1, options 0).
    pub fn register_session(sender_context: [u8; 8]) -> Encapsulation<'static> {
        let header = Header::new(Command::RegisterSession, 0, sender_context);
        Encapsulation {
            header: Header {
                length: RegisterSession::LEN as u16,
                ..header
            },
            data: Cow::Owned(RegisterSession::default().to_vec()),
        }
    }

    /// A reply to `request`: same command, session handle and sender context, with
    /// `status` and `data`.
    pub fn reply(
        request: &Header,
        status: u32,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<Self, DataTooLong> {
        let header = Header {
            status,
            ..Header::new(
                request.command,
                request.session_handle,
                request.sender_context,
            )
        };
        Encapsulation::new(header, data)
    }

    /// Decode one frame from the start of `bytes`, returning it and the bytes used.
    ///
    /// `Incomplete` (with how many more bytes are needed) until the header and all the
    /// data it announces are present; bytes after the frame are left alone.
    pub fn decode(bytes: &'a [u8]) -> DecodeResult<(Self, usize)> {
        let header = Header::decode(bytes)?;
        let mut r = Reader::with_base(bytes.get(HEADER_LEN..).unwrap_or_default(), HEADER_LEN);
        let data = r.take(usize::from(header.length), "encapsulation.data")?;
        Ok((
            Encapsulation {
                header,
                data: Cow::Borrowed(data),
            },
            HEADER_LEN + data.len(),
        ))
    }

    /// Interpret the data according to the command (see [`Body`]).
    pub fn body(&self) -> DecodeResult<Body<'_>> {
        Body::decode(self.header.command, &self.data)
    }

    /// Copy any borrowed data, detaching the frame from its input.
    pub fn into_owned(self) -> Encapsulation<'static> {
        Encapsulation {
            header: self.header,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

impl Encode for Encapsulation<'_> {
    fn encoded_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        // Frames built with `new` always fit; a hand-built oversize frame is written with
        // a saturated length rather than panicking.
        let length = u16::try_from(self.data.len()).unwrap_or(u16::MAX);
        Header {
            length,
            ..self.header
        }
        .encode(out);
        out.put_slice(&self.data);
    }
}

/// Frames an EtherNet/IP TCP stream: each frame is 24 bytes of header plus its `length`.
///
/// Every command code and length is accepted (unknown commands must be answered, not
/// dropped), so the framing never fails; a [`StreamDecoder`] limit can still refuse
/// long frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncapsulationFraming;

impl Framing for EncapsulationFraming {
    fn frame_len(&self, buf: &[u8]) -> DecodeResult<usize> {
        Header::decode(buf).map(|h| h.frame_len())
    }
}

impl EncapsulationFraming {
    /// A stream decoder for EtherNet/IP over TCP accepting frames up to [`MAX_FRAME_LEN`].
    pub fn stream_decoder() -> StreamDecoder<EncapsulationFraming> {
        StreamDecoder::new(EncapsulationFraming, MAX_FRAME_LEN)
    }
}

/// `RegisterSession` command data, identical in request and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterSession {
    /// Requested protocol version: [`PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// Session options: shall be 0.
    pub options: u16,
}

impl Default for RegisterSession {
    fn default() -> Self {
        RegisterSession {
            protocol_version: PROTOCOL_VERSION,
            options: 0,
        }
    }
}

impl RegisterSession {
    /// Encoded length.
    pub const LEN: usize = 4;

    /// Decode from a reader positioned at the command data (reads 4 bytes).
    pub fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(RegisterSession {
            protocol_version: r.u16_le("register_session.protocol_version")?,
            options: r.u16_le("register_session.options")?,
        })
    }

    /// Decode the whole of a `RegisterSession` frame's data (exactly 4 bytes).
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_all(data, "register_session", Self::read)
    }
}

impl Encode for RegisterSession {
    fn encoded_len(&self) -> usize {
        Self::LEN
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.protocol_version);
        out.put_u16_le(self.options);
    }
}

/// `SendRRData` / `SendUnitData` command data: interface handle, timeout, then the
/// Common Packet Format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendData<'a> {
    /// Interface handle: shall be 0 for CIP.
    pub interface_handle: u32,
    /// Timeout in seconds (`SendRRData` only; 0 in `SendUnitData`).
    pub timeout: u16,
    /// The items.
    pub cpf: Cpf<'a>,
}

impl<'a> SendData<'a> {
    /// Interface handle 0, `timeout`, and `cpf`.
    pub fn new(timeout: u16, cpf: Cpf<'a>) -> Self {
        SendData {
            interface_handle: 0,
            timeout,
            cpf,
        }
    }

    /// Decode from a reader holding exactly the command data (the CPF takes the rest).
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        Ok(SendData {
            interface_handle: r.u32_le("send_data.interface_handle")?,
            timeout: r.u16_le("send_data.timeout")?,
            cpf: Cpf::read(r)?,
        })
    }

    /// Decode the whole of a `SendRRData`/`SendUnitData` frame's data. Offsets in errors
    /// are counted from the start of the frame.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_all(data, "send_data", Self::read)
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> SendData<'static> {
        SendData {
            interface_handle: self.interface_handle,
            timeout: self.timeout,
            cpf: self.cpf.into_owned(),
        }
    }
}

impl Encode for SendData<'_> {
    fn encoded_len(&self) -> usize {
        6 + self.cpf.encoded_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.interface_handle);
        out.put_u16_le(self.timeout);
        self.cpf.encode(out);
    }
}

/// `SendRRData` / `SendUnitData` command data with its CPF items decoded lazily, as they
/// are iterated: the allocation-free counterpart of [`SendData::decode`] for a hot path
/// (a server answering requests, a client reading replies).
///
/// The items yield what `SendData::decode(data)?.cpf.items` holds, or the error that
/// decode would have returned (bytes left after the last item included).
#[derive(Debug, Clone)]
pub struct SendDataItems<'a> {
    /// Interface handle: shall be 0 for CIP.
    pub interface_handle: u32,
    /// Timeout in seconds (`SendRRData` only; 0 in `SendUnitData`).
    pub timeout: u16,
    /// The items, not yet decoded.
    pub items: CpfItems<'a>,
}

impl<'a> SendDataItems<'a> {
    /// Read the interface handle, timeout and item count of a frame's whole data.
    /// Offsets in errors are counted from the start of the frame.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        let mut r = Reader::with_base(data, HEADER_LEN);
        let interface_handle = r
            .u32_le("send_data.interface_handle")
            .map_err(DecodeError::truncated)?;
        let timeout = r
            .u16_le("send_data.timeout")
            .map_err(DecodeError::truncated)?;
        Ok(SendDataItems {
            interface_handle,
            timeout,
            items: CpfItems::read_in(r, "send_data")?,
        })
    }
}

/// Run `read` over a frame's whole data (which starts at offset [`HEADER_LEN`]): missing
/// bytes are `Invalid` (the encapsulation length already said how many there are), and so
/// are bytes left over.
fn decode_all<'a, T>(
    data: &'a [u8],
    layer: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
) -> DecodeResult<T> {
    let mut r = Reader::with_base(data, HEADER_LEN);
    let value = read(&mut r).map_err(DecodeError::truncated)?;
    r.expect_end(layer)?;
    Ok(value)
}

/// A frame's data, interpreted by its command.
///
/// Requests and replies share layouts, so this needs only the command: `RegisterSession`
/// data is [`RegisterSession`]; `SendRRData`/`SendUnitData` data is [`SendData`];
/// `ListServices`, `ListIdentity`, `ListInterfaces` and the legacy 0x0001 carry a bare
/// [`Cpf`] in replies and nothing in requests; anything else (`Nop`, `UnRegisterSession`,
/// unknown commands) is kept raw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body<'a> {
    /// No data (requests of the List commands, `UnRegisterSession`).
    Empty,
    /// `RegisterSession` request or reply.
    RegisterSession(RegisterSession),
    /// `SendRRData` or `SendUnitData` request or reply.
    SendData(SendData<'a>),
    /// A reply to `ListServices`, `ListIdentity`, `ListInterfaces` or legacy 0x0001.
    Cpf(Cpf<'a>),
    /// Data this layer does not interpret (`Nop` payload, unknown commands).
    Raw(Cow<'a, [u8]>),
}

impl<'a> Body<'a> {
    /// Interpret `data` as the data of `command`; errors count offsets from the frame start.
    pub fn decode(command: Command, data: &'a [u8]) -> DecodeResult<Self> {
        Ok(match command {
            _ if data.is_empty() => Body::Empty,
            Command::RegisterSession => Body::RegisterSession(RegisterSession::decode(data)?),
            Command::SendRRData | Command::SendUnitData => Body::SendData(SendData::decode(data)?),
            Command::ListServices
            | Command::ListIdentity
            | Command::ListInterfaces
            | Command::Legacy => Body::Cpf(decode_all(data, "cpf", Cpf::read)?),
            Command::Nop | Command::UnRegisterSession | Command::Other(_) => {
                Body::Raw(Cow::Borrowed(data))
            }
        })
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> Body<'static> {
        match self {
            Body::Empty => Body::Empty,
            Body::RegisterSession(r) => Body::RegisterSession(r),
            Body::SendData(s) => Body::SendData(s.into_owned()),
            Body::Cpf(c) => Body::Cpf(c.into_owned()),
            Body::Raw(b) => Body::Raw(Cow::Owned(b.into_owned())),
        }
    }
}

impl Encode for Body<'_> {
    fn encoded_len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::RegisterSession(r) => r.encoded_len(),
            Body::SendData(s) => s.encoded_len(),
            Body::Cpf(c) => c.encoded_len(),
            Body::Raw(b) => b.len(),
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            Body::Empty => {}
            Body::RegisterSession(r) => r.encode(out),
            Body::SendData(s) => s.encode(out),
            Body::Cpf(c) => c.encode(out),
            Body::Raw(b) => out.put_slice(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enip::cpf::{Item, SockAddr};
    use crate::enip::frames::*;
    use proptest::prelude::*;

    fn frame(bytes: &[u8]) -> Encapsulation<'_> {
        let (frame, used) = Encapsulation::decode(bytes).unwrap();
        assert_eq!(used, bytes.len());
        frame
    }

    /// `SendDataItems` agrees with `SendData::decode` on `data`.
    fn assert_lazy_send_data_agrees(data: &[u8]) {
        let eager = SendData::decode(data);
        let lazy = SendDataItems::decode(data).and_then(|s| {
            let items = s.items.collect::<DecodeResult<Vec<_>>>()?;
            Ok((s.interface_handle, s.timeout, items))
        });
        let eager = eager.map(|s| (s.interface_handle, s.timeout, s.cpf.items));
        assert_eq!(lazy, eager, "{data:02X?}");
    }

    #[test]
    fn lazy_send_data_agrees_with_decode_on_real_frames_and_their_prefixes() {
        let mut checked = 0;
        for (_, bytes) in ALL {
            let f = frame(bytes);
            if !matches!(
                f.header.command,
                Command::SendRRData | Command::SendUnitData
            ) {
                continue;
            }
            for cut in 0..=f.data.len() {
                assert_lazy_send_data_agrees(&f.data[..cut]);
            }
            assert_lazy_send_data_agrees(&[&f.data[..], &[0][..]].concat());
            checked += 1;
        }
        assert!(checked >= 5, "{checked}");
    }

    proptest! {
        #[test]
        fn lazy_send_data_agrees_with_decode_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..96)
        ) {
            assert_lazy_send_data_agrees(&data);
        }
    }

    #[test]
    fn every_real_frame_decodes_whole_and_reencodes_to_its_bytes() {
        for (name, bytes) in ALL {
            let f = frame(bytes);
            assert_eq!(f.to_vec(), *bytes, "{name}");
            assert_eq!(f.encoded_len(), bytes.len(), "{name}");
            let body = f.body().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(body.to_vec(), f.data.as_ref(), "{name}");
            assert_eq!(f.clone().into_owned(), f, "{name}");
        }
    }

    #[test]
    fn register_session_request_and_reply() {
        // cpppo server/enip_test.py rss_004_request / rss_004_reply
        let req = frame(RSS_004_REQUEST);
        assert_eq!(req.header.command, Command::RegisterSession);
        assert_eq!(req.header.length, 4);
        assert_eq!(req.header.session_handle, 0);
        assert_eq!(req.header.status, status::SUCCESS);
        assert_eq!(req.header.sender_context, [0; 8]);
        assert_eq!(req.header.options, 0);
        assert_eq!(
            req.body().unwrap(),
            Body::RegisterSession(RegisterSession {
                protocol_version: 1,
                options: 0
            })
        );
        assert_eq!(Encapsulation::register_session([0; 8]), req);
        assert_eq!(
            Encapsulation::register_session([0; 8]).to_vec(),
            RSS_004_REQUEST
        );

        let rpy = frame(RSS_004_REPLY);
        assert_eq!(rpy.header.session_handle, 0x1102_1E01);
        assert_eq!(
            RegisterSession::decode(&rpy.data).unwrap(),
            RegisterSession::default()
        );
        let built = Encapsulation::reply(
            &Header {
                session_handle: 0x1102_1E01,
                ..req.header
            },
            status::SUCCESS,
            &rpy.data[..],
        )
        .unwrap();
        assert_eq!(built.to_vec(), RSS_004_REPLY);
    }

    #[test]
    fn send_rr_data_unconnected_request_and_reply() {
        // cpppo server/enip_test.py gaa_008_request: Get Attributes All, Identity 1
        let req = frame(GAA_008_REQUEST);
        assert_eq!(req.header.command, Command::SendRRData);
        assert_eq!(req.header.session_handle, 0x1102_1E01);
        assert_eq!(req.header.sender_context, [1, 0, 0, 0, 0, 0, 0, 0]);
        let Body::SendData(send) = req.body().unwrap() else {
            panic!("not SendData")
        };
        assert_eq!(send.interface_handle, 0);
        assert_eq!(send.timeout, 5);
        assert_eq!(send.cpf.items.len(), 2);
        assert_eq!(send.cpf.items[0], Item::NullAddress);
        assert_eq!(
            send.cpf.unconnected_data(),
            Some(&[0x01, 0x02, 0x20, 0x66, 0x24, 0x01][..])
        );
        // The canonical layout rebuilds the same frame.
        let rebuilt = Encapsulation::with_body(
            req.header,
            &SendData::new(
                5,
                crate::enip::cpf::Cpf::unconnected(&[0x01, 0x02, 0x20, 0x66, 0x24, 0x01][..]),
            ),
        )
        .unwrap();
        assert_eq!(rebuilt.to_vec(), GAA_008_REQUEST);

        // gaa_011_reply: the Identity reply through Unconnected Send, product name inside.
        let rpy = frame(GAA_011_REPLY);
        let send = SendData::decode(&rpy.data).unwrap();
        let data = send.cpf.unconnected_data().unwrap();
        assert_eq!(data.len(), 0x27);
        assert_eq!(data[0], 0x81);
        assert!(data.ends_with(b"1756-L61/B LOGIX5561"));
    }

    #[test]
    fn pycomm3_frames_have_their_session_and_context() {
        // pycomm3 tests/offline/test_cip_driver.py
        let f = frame(PYCOMM3_MODULE_INFO_REPLY);
        assert_eq!(f.header.command, Command::SendRRData);
        assert_eq!(f.header.session_handle, 0x0B02_1302);
        assert_eq!(&f.header.sender_context, b"_pycomm_");
        let send = SendData::decode(&f.data).unwrap();
        assert_eq!(send.timeout, 10);
        let data = send.cpf.unconnected_data().unwrap();
        assert_eq!(data.len(), 0x33);
        assert!(data.ends_with(b"1769-L23E-QBFC1 LOGIX5323E-QBFC1"));

        let f = frame(PYCOMM3_FORWARD_CLOSE_REPLY);
        assert_eq!(f.header.session_handle, 0x0B02_1602);
        let send = SendData::decode(&f.data).unwrap();
        assert_eq!(send.cpf.unconnected_data().unwrap()[0], 0xCE);

        // cpppo: a Forward Close reply with sender context "open_ex."
        let f = frame(FWD_CLO_REPLY_JUST_STS);
        assert_eq!(f.header.session_handle, 0x1402_5C02);
        assert_eq!(&f.header.sender_context, b"open_ex.");
    }

    #[test]
    fn send_unit_data_connected_request() {
        // cpppo server/enip_test.py gal_m01_request: Multiple Service Packet, connected
        let f = frame(GAL_M01_REQUEST);
        assert_eq!(f.header.command, Command::SendUnitData);
        assert_eq!(f.header.length, 492);
        assert_eq!(f.header.session_handle, 0xA4F4_4D66);
        let Body::SendData(send) = f.body().unwrap() else {
            panic!("not SendData")
        };
        assert_eq!(send.timeout, 0);
        let c = send.cpf.connected_data().unwrap();
        assert_eq!(c.connection_id, 0x8F3B_A17E);
        assert_eq!(c.sequence, 0x2950);
        assert_eq!(c.data.len(), 0x1D8 - 2);
        assert_eq!(c.data[0], 0x0A); // Multiple Service Packet
        let rebuilt = SendData::new(
            0,
            crate::enip::cpf::Cpf::connected(c.connection_id, c.sequence, c.data),
        );
        assert_eq!(rebuilt.to_vec(), f.data.as_ref());
    }

    #[test]
    fn list_commands_requests_are_empty_and_replies_are_cpf() {
        // cpppo: a ListServices request with sender context "Funstuff"
        let f = frame(LST_SVC1_REQ);
        assert_eq!(f.header.command, Command::ListServices);
        assert_eq!(f.header.length, 0);
        assert_eq!(&f.header.sender_context, b"Funstuff");
        assert_eq!(f.body().unwrap(), Body::Empty);

        let f = frame(LISTIDENT_1_REQ);
        assert_eq!(f.header.command, Command::ListIdentity);
        assert_eq!(f.body().unwrap(), Body::Empty);

        let f = frame(LISTIFACES_1_RPY);
        assert_eq!(f.header.command, Command::ListInterfaces);
        assert_eq!(f.body().unwrap(), Body::Cpf(crate::enip::cpf::Cpf::empty()));

        let f = frame(LISTIDENT_2_RPY);
        let Body::Cpf(cpf) = f.body().unwrap() else {
            panic!("not a CPF")
        };
        let id = cpf.identities().next().unwrap();
        assert_eq!(id.product_name_lossy(), "1769-L24ER-QB1B/A LOGIX5324ER");
        assert_eq!(
            id.socket_address,
            SockAddr::new([10, 161, 1, 3].into(), 44818)
        );
    }

    #[test]
    fn legacy_0001_reply_carries_the_device_address() {
        // cpppo server/enip/parser.py: legacy 0x0001 reply
        let f = frame(LEGACY_0001_REPLY);
        assert_eq!(f.header.command, Command::Legacy);
        assert_eq!(f.header.command.code(), 0x0001);
        let Body::Cpf(cpf) = f.body().unwrap() else {
            panic!("not a CPF")
        };
        let Item::Legacy(legacy) = &cpf.items[0] else {
            panic!("not a legacy item")
        };
        assert_eq!(
            legacy.socket_address.addr,
            std::net::Ipv4Addr::new(192, 168, 5, 253)
        );
        assert_eq!(legacy.socket_address.port, 44818);
        assert_eq!(&legacy.address[..], b"192.168.5.253\0\0\0");
        let built = crate::enip::cpf::LegacyAddress::new([192, 168, 5, 253].into(), 44818);
        assert_eq!(&built, legacy);
    }

    #[test]
    fn unknown_commands_round_trip_and_are_answered_invalid_command() {
        let bytes = [
            0xC8, 0x00, 0x02, 0x00, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, b'c', b't', b'x', 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0xAA, 0xBB,
        ];
        let f = frame(&bytes);
        assert_eq!(f.header.command, Command::Other(0x00C8));
        assert!(!f.header.command.is_known());
        assert_eq!(
            f.body().unwrap(),
            Body::Raw(Cow::Borrowed(&[0xAA, 0xBB][..]))
        );
        assert_eq!(f.to_vec(), bytes);
        let rpy = Encapsulation::reply(&f.header, status::INVALID_COMMAND, &[][..]).unwrap();
        let rb = rpy.to_vec();
        assert_eq!(&rb[..2], &[0xC8, 0x00]);
        assert_eq!(&rb[8..12], &[1, 0, 0, 0]);
        assert_eq!(&rb[12..20], b"ctx\0\0\0\0\0");
        assert_eq!(
            status_name(status::INVALID_COMMAND),
            Some("invalid or unsupported command")
        );
        assert_eq!(status_name(0x0069), Some("unsupported protocol revision"));
        assert_eq!(status_name(0x1234), None);
        assert_eq!(Command::from(0x006F).to_string(), "SendRRData");
        assert_eq!(Command::Other(0x0070).to_string(), "SendUnitData");
        assert_eq!(Command::Other(0x00C8).to_string(), "Command 0x00C8");
    }

    #[test]
    fn every_prefix_of_a_real_frame_is_incomplete_with_the_exact_need() {
        for (name, bytes) in ALL {
            for cut in 0..bytes.len() {
                let err = Encapsulation::decode(&bytes[..cut]).unwrap_err();
                let DecodeError::Incomplete { needed, .. } = err else {
                    panic!("{name} cut at {cut}: {err}")
                };
                if cut < HEADER_LEN {
                    assert_eq!(needed, HEADER_LEN - cut, "{name} {cut}");
                } else {
                    assert_eq!(cut + needed, bytes.len(), "{name} {cut}");
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_and_short_bodies_are_invalid() {
        let mut long = GAA_008_REQUEST.to_vec();
        long[2] += 1; // length says one more byte than the CPF holds
        long.push(0);
        let (f, _) = Encapsulation::decode(&long).unwrap();
        let err = f.body().unwrap_err();
        assert_eq!(err.field(), "send_data");
        assert_eq!(err.offset(), long.len() - 1);

        let err = RegisterSession::decode(&[1, 0, 0]).unwrap_err();
        assert!(!err.is_incomplete());
        assert_eq!(err.field(), "register_session.options");
        assert_eq!(err.offset(), HEADER_LEN + 2);
    }

    #[test]
    fn data_longer_than_the_spec_allows_is_refused() {
        let header = Header::new(Command::SendRRData, 1, [0; 8]);
        assert!(Encapsulation::new(header, vec![0; MAX_DATA_LEN]).is_ok());
        assert_eq!(
            Encapsulation::new(header, vec![0; MAX_DATA_LEN + 1]),
            Err(DataTooLong(MAX_DATA_LEN + 1))
        );
        let h = Header {
            length: u16::MAX,
            ..header
        };
        assert!(!h.length_is_valid());
        assert_eq!(h.frame_len(), MAX_FRAME_LEN);
    }

    fn stream_of_frames() -> Vec<u8> {
        [
            RSS_004_REQUEST,
            RSS_004_REPLY,
            GAA_008_REQUEST,
            LISTIDENT_1_REQ,
            LISTIDENT_1_RPY,
            GAL_M01_REQUEST,
            LEGACY_0001_REPLY,
        ]
        .concat()
    }

    fn drain(d: &mut StreamDecoder<EncapsulationFraming>, out: &mut Vec<Vec<u8>>) {
        while let Some(f) = d.next_frame().unwrap() {
            out.push(f.to_vec());
        }
    }

    #[test]
    fn stream_decoder_yields_the_same_frames_at_every_split() {
        let stream = stream_of_frames();
        let expect: Vec<Vec<u8>> = {
            let mut d = EncapsulationFraming::stream_decoder();
            d.handle_input(&stream);
            let mut out = Vec::new();
            drain(&mut d, &mut out);
            out
        };
        assert_eq!(expect.len(), 7);
        assert_eq!(expect.concat(), stream);
        for split in 0..=stream.len() {
            let mut d = EncapsulationFraming::stream_decoder();
            let mut got = Vec::new();
            for piece in [&stream[..split], &stream[split..]] {
                d.handle_input(piece);
                drain(&mut d, &mut got);
            }
            assert_eq!(got, expect, "split at {split}");
            assert_eq!(d.buffered(), 0);
        }
        let mut d = EncapsulationFraming::stream_decoder();
        let mut got = Vec::new();
        for byte in &stream {
            d.handle_input(std::slice::from_ref(byte));
            drain(&mut d, &mut got);
        }
        assert_eq!(got, expect, "one byte at a time");
        for f in &got {
            frame(f);
        }
    }

    #[test]
    fn stream_decoder_says_what_it_needs() {
        let mut d = EncapsulationFraming::stream_decoder();
        d.handle_input(&GAA_008_REQUEST[..10]);
        assert_eq!(d.needed(), HEADER_LEN - 10);
        d.handle_input(&GAA_008_REQUEST[10..30]);
        assert_eq!(d.needed(), GAA_008_REQUEST.len() - 30);
        let mut d = StreamDecoder::new(EncapsulationFraming, 32);
        d.handle_input(GAA_008_REQUEST);
        assert_eq!(d.next_frame().unwrap_err().field(), "frame.length");
    }

    #[test]
    fn frames_and_bodies_serialize_to_json_and_back() {
        for (name, bytes) in ALL {
            let f = frame(bytes);
            let json = serde_json::to_string(&f).unwrap();
            let back: Encapsulation<'static> = serde_json::from_str(&json).unwrap();
            assert_eq!(back, f, "{name}");
            let body = f.body().unwrap();
            let json = serde_json::to_string(&body).unwrap();
            let back: Body<'static> = serde_json::from_str(&json).unwrap();
            assert_eq!(back, body, "{name}");
        }
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        any::<u16>().prop_map(Command::from_code)
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            arb_command(),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 8]>(),
            any::<u32>(),
        )
            .prop_map(
                |(command, session_handle, status, sender_context, options)| Header {
                    command,
                    length: 0,
                    session_handle,
                    status,
                    sender_context,
                    options,
                },
            )
    }

    proptest! {
        #[test]
        fn command_codes_round_trip(code in any::<u16>()) {
            prop_assert_eq!(Command::from_code(code).code(), code);
        }

        #[test]
        fn frames_round_trip(header in arb_header(), data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let f = Encapsulation::new(header, data).unwrap();
            let bytes = f.to_vec();
            prop_assert_eq!(bytes.len(), f.encoded_len());
            let (g, used) = Encapsulation::decode(&bytes).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&g, &f);
            // Every split point: incomplete before the end, the same frame at the end.
            for cut in 0..bytes.len() {
                prop_assert!(Encapsulation::decode(&bytes[..cut]).unwrap_err().is_incomplete());
            }
        }

        #[test]
        fn register_session_round_trips(protocol_version in any::<u16>(), options in any::<u16>()) {
            let r = RegisterSession { protocol_version, options };
            prop_assert_eq!(RegisterSession::decode(&r.to_vec()).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok((f, used)) = Encapsulation::decode(&bytes) {
                prop_assert!(used <= bytes.len());
                let _ = f.body();
            }
            let _ = Header::decode(&bytes);
            let _ = EncapsulationFraming.frame_len(&bytes);
            let _ = SendData::decode(&bytes);
            let _ = RegisterSession::decode(&bytes);
            for code in [0x0000u16, 0x0001, 0x0004, 0x0063, 0x0064, 0x0065, 0x0066, 0x006F, 0x0070, 0x1234] {
                if let Ok(body) = Body::decode(Command::from_code(code), &bytes) {
                    // What decodes re-encodes to the same bytes.
                    prop_assert_eq!(body.to_vec(), bytes.clone());
                }
            }
        }
    }
}
