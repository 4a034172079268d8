//! The Common Packet Format (CPF): the list of typed items that follows the interface
//! handle and timeout of `SendRRData`/`SendUnitData`, and that makes up the whole reply
//! to `ListIdentity`, `ListServices`, `ListInterfaces` and the legacy command 0x0001.
//!
//! ```text
//! item count (u16 LE), then per item: type id (u16 LE), length (u16 LE), `length` octets
//! ```
//!
//! In scope: every address and data item a CIP client or device exchanges over TCP and
//! UDP 44818, as typed [`Item`]s that borrow their data ([`item_type`] lists the ids):
//! null, connected and sequenced addresses; connected and unconnected data; the
//! `ListIdentity` [`Identity`] item; the `ListServices` [`Service`] item; the O->T and
//! T->O [`SockAddr`] info items; the legacy 0x0001 [`LegacyAddress`]. Unknown item types
//! are kept as [`Item::Raw`] and round-trip unchanged. [`Cpf::unconnected`] and
//! [`Cpf::connected`] build the two canonical layouts that clients such as pycomm3 and
//! pylogix read at fixed offsets.
//!
//! Out of scope: the CIP message inside the data items (see [`crate::cip`]), class 0/1
//! I/O packets on UDP port 2222 (whose connected data has no sequence count here), and
//! the security (0x0300+) items.
//!
//! A CPF always sits inside an encapsulation whose length is known, so a short item is
//! `Invalid`, never `Incomplete`. Item bodies with a fixed layout (addresses, socket
//! addresses) must have exactly their length; a typed item that fails to decode fails the
//! whole list.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::wire::{DecodeError, DecodeResult, Encode, Reader};

/// CPF item type ids.
pub mod item_type {
    /// Null address item: no data (unconnected messages).
    pub const NULL_ADDRESS: u16 = 0x0000;
    /// The undocumented item answering legacy command 0x0001: IPv4 socket address and text.
    pub const LEGACY_ADDRESS: u16 = 0x0001;
    /// CIP identity item, the reply to `ListIdentity`.
    pub const LIST_IDENTITY: u16 = 0x000C;
    /// Connected address item: a `u32` connection id.
    pub const CONNECTED_ADDRESS: u16 = 0x00A1;
    /// Connected data item: a `u16` CIP sequence count, then the message.
    pub const CONNECTED_DATA: u16 = 0x00B1;
    /// Unconnected data item: a message router request or reply.
    pub const UNCONNECTED_DATA: u16 = 0x00B2;
    /// `ListServices` reply item (the "Communications" service).
    pub const LIST_SERVICES: u16 = 0x0100;
    /// Socket address info, originator to target.
    pub const SOCKADDR_INFO_O_T: u16 = 0x8000;
    /// Socket address info, target to originator.
    pub const SOCKADDR_INFO_T_O: u16 = 0x8001;
    /// Sequenced address item: a `u32` connection id and a `u32` sequence number.
    pub const SEQUENCED_ADDRESS: u16 = 0x8002;
}

/// `ListServices` capability flags.
pub mod capability {
    /// The device supports EtherNet/IP encapsulation of CIP (bit 5).
    pub const CIP_ENCAPSULATION: u16 = 1 << 5;
    /// The device supports CIP transport class 0 or 1 UDP-based connections (bit 8).
    pub const CLASS_0_1_UDP: u16 = 1 << 8;
}

/// The length of a socket address in an item: `struct sockaddr_in`.
pub const SOCKADDR_LEN: usize = 16;

/// The length of a service name in a `ListServices` item, NUL padded.
pub const SERVICE_NAME_LEN: usize = 16;

/// The `sin_family` of an IPv4 socket address (`AF_INET`).
pub const AF_INET: u16 = 2;

/// A `struct sockaddr_in` as CPF items carry it: every field **big-endian**.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SockAddr {
    /// `sin_family`: [`AF_INET`].
    pub family: u16,
    /// `sin_port`.
    pub port: u16,
    /// `sin_addr`.
    pub addr: Ipv4Addr,
    /// `sin_zero`: shall be zero; kept so that any input round-trips.
    pub zero: [u8; 8],
}

impl SockAddr {
    /// An `AF_INET` address with zero padding.
    pub fn new(addr: Ipv4Addr, port: u16) -> Self {
        SockAddr {
            family: AF_INET,
            port,
            addr,
            zero: [0; 8],
        }
    }

    /// Read 16 bytes.
    pub fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(SockAddr {
            family: r.u16_be("cpf.sockaddr.sin_family")?,
            port: r.u16_be("cpf.sockaddr.sin_port")?,
            addr: Ipv4Addr::from(r.u32_be("cpf.sockaddr.sin_addr")?),
            zero: r.array("cpf.sockaddr.sin_zero")?,
        })
    }
}

impl Encode for SockAddr {
    fn encoded_len(&self) -> usize {
        SOCKADDR_LEN
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16(self.family);
        out.put_u16(self.port);
        out.put_u32(u32::from(self.addr));
        out.put_slice(&self.zero);
    }
}

/// The CIP identity item (type 0x000C) that answers `ListIdentity`.
///
/// After the encapsulation version and socket address come the Identity object's
/// attributes as Get Attributes All returns them. Text is kept as the octets received
/// (ASCII in practice) so that every reply round-trips; see
/// [`Identity::product_name_lossy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity<'a> {
    /// Encapsulation protocol version, little-endian (1).
    pub protocol_version: u16,
    /// The device's socket address (big-endian fields).
    pub socket_address: SockAddr,
    /// Vendor id.
    pub vendor_id: u16,
    /// Device type.
    pub device_type: u16,
    /// Product code.
    pub product_code: u16,
    /// Major revision.
    pub revision_major: u8,
    /// Minor revision.
    pub revision_minor: u8,
    /// Identity object status word.
    pub status: u16,
    /// Serial number.
    pub serial_number: u32,
    /// Product name: the SSTRING's characters (its length byte is implied).
    pub product_name: Cow<'a, [u8]>,
    /// State: `None` when the item ends after the name (some devices, e.g. a PowerFlex
    /// 753, send it so); 0xFF means "not implemented".
    pub state: Option<u8>,
    /// Bytes after the state, which some devices append; kept so they round-trip. Only
    /// written when `state` is present.
    pub extra: Cow<'a, [u8]>,
}

impl<'a> Identity<'a> {
    /// Decode an identity item's data (the whole of `r`).
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let protocol_version = r.u16_le("cpf.identity.protocol_version")?;
        let socket_address = SockAddr::read(r)?;
        let vendor_id = r.u16_le("cpf.identity.vendor_id")?;
        let device_type = r.u16_le("cpf.identity.device_type")?;
        let product_code = r.u16_le("cpf.identity.product_code")?;
        let revision_major = r.u8("cpf.identity.revision_major")?;
        let revision_minor = r.u8("cpf.identity.revision_minor")?;
        let status = r.u16_le("cpf.identity.status")?;
        let serial_number = r.u32_le("cpf.identity.serial_number")?;
        let name_len = r.u8("cpf.identity.product_name")?;
        let product_name = r.take(usize::from(name_len), "cpf.identity.product_name")?;
        let state = if r.is_empty() {
            None
        } else {
            Some(r.u8("cpf.identity.state")?)
        };
        Ok(Identity {
            protocol_version,
            socket_address,
            vendor_id,
            device_type,
            product_code,
            revision_major,
            revision_minor,
            status,
            serial_number,
            product_name: Cow::Borrowed(product_name),
            state,
            extra: Cow::Borrowed(r.rest()),
        })
    }

    /// The product name as text (invalid UTF-8 replaced).
    pub fn product_name_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.product_name)
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> Identity<'static> {
        Identity {
            product_name: Cow::Owned(self.product_name.into_owned()),
            extra: Cow::Owned(self.extra.into_owned()),
            ..self
        }
    }

    /// The product name's length, limited to what an SSTRING can carry.
    fn name_len(&self) -> usize {
        self.product_name.len().min(usize::from(u8::MAX))
    }
}

impl Encode for Identity<'_> {
    fn encoded_len(&self) -> usize {
        let tail = match self.state {
            Some(_) => 1 + self.extra.len(),
            None => 0,
        };
        2 + SOCKADDR_LEN + 14 + 1 + self.name_len() + tail
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.protocol_version);
        self.socket_address.encode(out);
        out.put_u16_le(self.vendor_id);
        out.put_u16_le(self.device_type);
        out.put_u16_le(self.product_code);
        out.put_u8(self.revision_major);
        out.put_u8(self.revision_minor);
        out.put_u16_le(self.status);
        out.put_u32_le(self.serial_number);
        let len = self.name_len();
        out.put_u8(u8::try_from(len).unwrap_or(u8::MAX));
        out.put_slice(self.product_name.get(..len).unwrap_or_default());
        if let Some(state) = self.state {
            out.put_u8(state);
            out.put_slice(&self.extra);
        }
    }
}

/// The `ListServices` reply item (type 0x0100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service<'a> {
    /// Protocol version (1).
    pub version: u16,
    /// [`capability`] flags.
    pub capability: u16,
    /// The name octets as received: 16 bytes NUL padded by the specification (cpppo sends
    /// 15, "Communications" and one NUL); see [`Service::name_lossy`].
    pub name: Cow<'a, [u8]>,
}

impl Service<'static> {
    /// The "Communications" service every CIP device lists, with `capability` flags.
    pub fn communications(capability: u16) -> Self {
        Service::named(b"Communications", capability)
    }

    /// A service called `name` (cut to 16 bytes, NUL padded).
    pub fn named(name: &[u8], capability: u16) -> Self {
        let mut padded = [0u8; SERVICE_NAME_LEN];
        for (slot, byte) in padded.iter_mut().zip(name) {
            *slot = *byte;
        }
        Service {
            version: 1,
            capability,
            name: Cow::Owned(padded.to_vec()),
        }
    }
}

impl<'a> Service<'a> {
    /// Decode a service item's data (the whole of `r`).
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        Ok(Service {
            version: r.u16_le("cpf.service.version")?,
            capability: r.u16_le("cpf.service.capability")?,
            name: Cow::Borrowed(r.rest()),
        })
    }

    /// The name up to its first NUL, as text (invalid UTF-8 replaced).
    pub fn name_lossy(&self) -> Cow<'_, str> {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(self.name.get(..end).unwrap_or_default())
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> Service<'static> {
        Service {
            name: Cow::Owned(self.name.into_owned()),
            ..self
        }
    }
}

impl Encode for Service<'_> {
    fn encoded_len(&self) -> usize {
        4 + self.name.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.version);
        out.put_u16_le(self.capability);
        out.put_slice(&self.name);
    }
}

/// The undocumented item (type 0x0001) answering the legacy command 0x0001, as cpppo
/// sends it: a version (1), a `u16` of unknown meaning (0), the device's socket address,
/// then its dotted-quad text NUL padded to 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyAddress<'a> {
    /// Version (1).
    pub version: u16,
    /// Unknown (0).
    pub unknown: u16,
    /// The device's socket address (big-endian fields).
    pub socket_address: SockAddr,
    /// The address as text, NUL padded, as received.
    pub address: Cow<'a, [u8]>,
}

impl LegacyAddress<'static> {
    /// The item for `addr:port`, as cpppo answers it.
    pub fn new(addr: Ipv4Addr, port: u16) -> Self {
        let mut text = addr.to_string().into_bytes();
        text.resize(16, 0);
        LegacyAddress {
            version: 1,
            unknown: 0,
            socket_address: SockAddr::new(addr, port),
            address: Cow::Owned(text),
        }
    }
}

impl<'a> LegacyAddress<'a> {
    /// Decode the item's data (the whole of `r`).
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        Ok(LegacyAddress {
            version: r.u16_le("cpf.legacy.version")?,
            unknown: r.u16_le("cpf.legacy.unknown")?,
            socket_address: SockAddr::read(r)?,
            address: Cow::Borrowed(r.rest()),
        })
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> LegacyAddress<'static> {
        LegacyAddress {
            address: Cow::Owned(self.address.into_owned()),
            ..self
        }
    }
}

impl Encode for LegacyAddress<'_> {
    fn encoded_len(&self) -> usize {
        4 + SOCKADDR_LEN + self.address.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.version);
        out.put_u16_le(self.unknown);
        self.socket_address.encode(out);
        out.put_slice(&self.address);
    }
}

/// One CPF item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item<'a> {
    /// Null address (0x0000), for unconnected messages.
    NullAddress,
    /// Connected address (0x00A1).
    ConnectedAddress {
        /// The connection id (the O->T id in requests, T->O id in replies).
        connection_id: u32,
    },
    /// Sequenced address (0x8002), for class 0/1 I/O.
    SequencedAddress {
        /// The connection id.
        connection_id: u32,
        /// The encapsulation sequence number.
        sequence: u32,
    },
    /// Connected data (0x00B1): CIP sequence count, then the message.
    ConnectedData {
        /// The CIP sequence count (class 3 connections).
        sequence: u16,
        /// The message router request or reply.
        data: Cow<'a, [u8]>,
    },
    /// Unconnected data (0x00B2): a message router request or reply.
    UnconnectedData(Cow<'a, [u8]>),
    /// CIP identity (0x000C).
    Identity(Identity<'a>),
    /// `ListServices` service (0x0100).
    Service(Service<'a>),
    /// Socket address info O->T (0x8000).
    SockAddrOT(SockAddr),
    /// Socket address info T->O (0x8001).
    SockAddrTO(SockAddr),
    /// Legacy address (0x0001).
    Legacy(LegacyAddress<'a>),
    /// Any other type, kept raw.
    Raw {
        /// The item type id.
        type_id: u16,
        /// The item data.
        data: Cow<'a, [u8]>,
    },
}

impl<'a> Item<'a> {
    /// The item's type id (see [`item_type`]).
    pub fn type_id(&self) -> u16 {
        match self {
            Item::NullAddress => item_type::NULL_ADDRESS,
            Item::ConnectedAddress { .. } => item_type::CONNECTED_ADDRESS,
            Item::SequencedAddress { .. } => item_type::SEQUENCED_ADDRESS,
            Item::ConnectedData { .. } => item_type::CONNECTED_DATA,
            Item::UnconnectedData(_) => item_type::UNCONNECTED_DATA,
            Item::Identity(_) => item_type::LIST_IDENTITY,
            Item::Service(_) => item_type::LIST_SERVICES,
            Item::SockAddrOT(_) => item_type::SOCKADDR_INFO_O_T,
            Item::SockAddrTO(_) => item_type::SOCKADDR_INFO_T_O,
            Item::Legacy(_) => item_type::LEGACY_ADDRESS,
            Item::Raw { type_id, .. } => *type_id,
        }
    }

    /// Read one item (type id, length, data) from `r`.
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let type_id = r.u16_le("cpf.item.type_id")?;
        let length = r.u16_le("cpf.item.length")?;
        let mut body = r.sub(usize::from(length), "cpf.item.data")?;
        let start = body.offset();
        let fixed = |body: &Reader<'a>, want: usize| {
            if usize::from(length) == want {
                Ok(())
            } else {
                Err(body.invalid_at(
                    "cpf.item.length",
                    start.saturating_sub(2),
                    format!("item type 0x{type_id:04X} needs length {want}, not {length}"),
                ))
            }
        };
        let item = match type_id {
            item_type::NULL_ADDRESS => {
                fixed(&body, 0)?;
                Item::NullAddress
            }
            item_type::CONNECTED_ADDRESS => {
                fixed(&body, 4)?;
                Item::ConnectedAddress {
                    connection_id: body.u32_le("cpf.connected_address.connection_id")?,
                }
            }
            item_type::SEQUENCED_ADDRESS => {
                fixed(&body, 8)?;
                Item::SequencedAddress {
                    connection_id: body.u32_le("cpf.sequenced_address.connection_id")?,
                    sequence: body.u32_le("cpf.sequenced_address.sequence")?,
                }
            }
            item_type::CONNECTED_DATA => Item::ConnectedData {
                sequence: body.u16_le("cpf.connected_data.sequence")?,
                data: Cow::Borrowed(body.rest()),
            },
            item_type::UNCONNECTED_DATA => Item::UnconnectedData(Cow::Borrowed(body.rest())),
            item_type::LIST_IDENTITY => Item::Identity(Identity::read(&mut body)?),
            item_type::LIST_SERVICES => Item::Service(Service::read(&mut body)?),
            item_type::SOCKADDR_INFO_O_T => {
                fixed(&body, SOCKADDR_LEN)?;
                Item::SockAddrOT(SockAddr::read(&mut body)?)
            }
            item_type::SOCKADDR_INFO_T_O => {
                fixed(&body, SOCKADDR_LEN)?;
                Item::SockAddrTO(SockAddr::read(&mut body)?)
            }
            item_type::LEGACY_ADDRESS => Item::Legacy(LegacyAddress::read(&mut body)?),
            _ => Item::Raw {
                type_id,
                data: Cow::Borrowed(body.rest()),
            },
        };
        // Every arm either reads to the end or checked the length; a short body is the
        // item's length field lying.
        body.expect_end("cpf.item.data")?;
        Ok(item)
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> Item<'static> {
        match self {
            Item::NullAddress => Item::NullAddress,
            Item::ConnectedAddress { connection_id } => Item::ConnectedAddress { connection_id },
            Item::SequencedAddress {
                connection_id,
                sequence,
            } => Item::SequencedAddress {
                connection_id,
                sequence,
            },
            Item::ConnectedData { sequence, data } => Item::ConnectedData {
                sequence,
                data: Cow::Owned(data.into_owned()),
            },
            Item::UnconnectedData(data) => Item::UnconnectedData(Cow::Owned(data.into_owned())),
            Item::Identity(i) => Item::Identity(i.into_owned()),
            Item::Service(s) => Item::Service(s.into_owned()),
            Item::SockAddrOT(a) => Item::SockAddrOT(a),
            Item::SockAddrTO(a) => Item::SockAddrTO(a),
            Item::Legacy(l) => Item::Legacy(l.into_owned()),
            Item::Raw { type_id, data } => Item::Raw {
                type_id,
                data: Cow::Owned(data.into_owned()),
            },
        }
    }

    /// The length of the item's data (what its length field says).
    pub fn data_len(&self) -> usize {
        match self {
            Item::NullAddress => 0,
            Item::ConnectedAddress { .. } => 4,
            Item::SequencedAddress { .. } => 8,
            Item::ConnectedData { data, .. } => 2 + data.len(),
            Item::UnconnectedData(data) | Item::Raw { data, .. } => data.len(),
            Item::Identity(i) => i.encoded_len(),
            Item::Service(s) => s.encoded_len(),
            Item::SockAddrOT(_) | Item::SockAddrTO(_) => SOCKADDR_LEN,
            Item::Legacy(l) => l.encoded_len(),
        }
    }
}

impl Encode for Item<'_> {
    fn encoded_len(&self) -> usize {
        4 + self.data_len()
    }

    /// Writes the item; its data must fit the `u16` length field (a longer item gets a
    /// saturated length and cannot be decoded back).
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.type_id());
        out.put_u16_le(u16::try_from(self.data_len()).unwrap_or(u16::MAX));
        match self {
            Item::NullAddress => {}
            Item::ConnectedAddress { connection_id } => out.put_u32_le(*connection_id),
            Item::SequencedAddress {
                connection_id,
                sequence,
            } => {
                out.put_u32_le(*connection_id);
                out.put_u32_le(*sequence);
            }
            Item::ConnectedData { sequence, data } => {
                out.put_u16_le(*sequence);
                out.put_slice(data);
            }
            Item::UnconnectedData(data) | Item::Raw { data, .. } => out.put_slice(data),
            Item::Identity(i) => i.encode(out),
            Item::Service(s) => s.encode(out),
            Item::SockAddrOT(a) | Item::SockAddrTO(a) => a.encode(out),
            Item::Legacy(l) => l.encode(out),
        }
    }
}

/// The connected message of a [`Cpf::connected`] layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connected<'c> {
    /// The connection id of the connected address item.
    pub connection_id: u32,
    /// The CIP sequence count of the connected data item.
    pub sequence: u16,
    /// The message.
    pub data: &'c [u8],
}

/// A Common Packet Format item list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpf<'a> {
    /// The items, in order.
    pub items: Vec<Item<'a>>,
}

impl<'a> Cpf<'a> {
    /// A list with no items (count 0), e.g. a `ListInterfaces` reply.
    pub fn empty() -> Self {
        Cpf { items: Vec::new() }
    }

    /// The unconnected layout: null address, then unconnected `data`.
    pub fn unconnected(data: impl Into<Cow<'a, [u8]>>) -> Self {
        Cpf {
            items: vec![Item::NullAddress, Item::UnconnectedData(data.into())],
        }
    }

    /// The connected layout: connected address `connection_id`, then connected data with
    /// CIP `sequence` count and `data`.
    pub fn connected(connection_id: u32, sequence: u16, data: impl Into<Cow<'a, [u8]>>) -> Self {
        Cpf {
            items: vec![
                Item::ConnectedAddress { connection_id },
                Item::ConnectedData {
                    sequence,
                    data: data.into(),
                },
            ],
        }
    }

    /// Read an item count and that many items. The count is checked against the bytes
    /// available (an item takes at least 4) before any item is read.
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let count = read_item_count(r)?;
        let mut items = Vec::new();
        for _ in 0..count {
            items.push(Item::read(r)?);
        }
        Ok(Cpf { items })
    }

    /// Decode a list that is the whole of `bytes` (offsets from 0). Short input is
    /// `Invalid`: a CPF's length always comes from its encapsulation.
    pub fn decode(bytes: &'a [u8]) -> DecodeResult<Self> {
        let mut r = Reader::new(bytes);
        let cpf = Cpf::read(&mut r).map_err(DecodeError::truncated)?;
        r.expect_end("cpf")?;
        Ok(cpf)
    }

    /// The data of the first unconnected data item (the SendRRData message).
    pub fn unconnected_data(&self) -> Option<&[u8]> {
        self.items.iter().find_map(|item| match item {
            Item::UnconnectedData(data) => Some(&**data),
            _ => None,
        })
    }

    /// The connection id, sequence count and message of the first connected address and
    /// first connected data items (the SendUnitData message).
    pub fn connected_data(&self) -> Option<Connected<'_>> {
        let connection_id = self.items.iter().find_map(|item| match item {
            Item::ConnectedAddress { connection_id } => Some(*connection_id),
            _ => None,
        })?;
        self.items.iter().find_map(|item| match item {
            Item::ConnectedData { sequence, data } => Some(Connected {
                connection_id,
                sequence: *sequence,
                data,
            }),
            _ => None,
        })
    }

    /// The identity items (a `ListIdentity` reply).
    pub fn identities(&self) -> impl Iterator<Item = &Identity<'a>> {
        self.items.iter().filter_map(|item| match item {
            Item::Identity(i) => Some(i),
            _ => None,
        })
    }

    /// The service items (a `ListServices` reply).
    pub fn services(&self) -> impl Iterator<Item = &Service<'a>> {
        self.items.iter().filter_map(|item| match item {
            Item::Service(s) => Some(s),
            _ => None,
        })
    }

    /// Copy any borrowed data.
    pub fn into_owned(self) -> Cpf<'static> {
        Cpf {
            items: self.items.into_iter().map(Item::into_owned).collect(),
        }
    }
}

/// Read an item count, checked against the bytes left (an item takes at least 4).
fn read_item_count(r: &mut Reader<'_>) -> DecodeResult<u16> {
    let at = r.offset();
    let count = r.u16_le("cpf.item_count")?;
    if usize::from(count).saturating_mul(4) > r.remaining() {
        return Err(r.invalid_at(
            "cpf.item_count",
            at,
            format!(
                "{count} item(s) cannot fit in the {} byte(s) left",
                r.remaining()
            ),
        ));
    }
    Ok(count)
}

/// The items of a whole CPF, decoded one at a time as they are iterated: the
/// allocation-free way to read a CPF on a hot path, where [`Cpf::decode`] collects them
/// into a vector.
///
/// Yields exactly what [`Cpf::decode`] of the same bytes would give: each item in turn,
/// or the first error (an item that fails to decode, or bytes left after the last
/// item) once, after which it ends. The count itself is checked by [`CpfItems::new`].
///
/// ```
/// use cpppo_core::enip::cpf::{CpfItems, Item};
///
/// // Null address, then unconnected data `01 02`.
/// let bytes = [0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xB2, 0x00, 0x02, 0x00, 0x01, 0x02];
/// let items = CpfItems::new(&bytes).unwrap();
/// assert_eq!(items.len(), 2);
/// assert_eq!(items.unconnected_data().unwrap(), Some(&[0x01, 0x02][..]));
/// ```
#[derive(Debug, Clone)]
pub struct CpfItems<'a> {
    r: Reader<'a>,
    left: u16,
    done: bool,
    /// The field named when bytes are left after the last item (the enclosing layer).
    end_field: &'static str,
}

impl<'a> CpfItems<'a> {
    /// The items of `bytes`, a whole CPF (offsets from 0).
    pub fn new(bytes: &'a [u8]) -> DecodeResult<Self> {
        Self::read(Reader::new(bytes))
    }

    /// The items of a CPF that takes every remaining byte of `r` (so offsets in
    /// errors are those of `r`).
    pub fn read(r: Reader<'a>) -> DecodeResult<Self> {
        Self::read_in(r, "cpf")
    }

    /// [`CpfItems::read`] for a CPF that ends the data of `end_field`'s layer.
    pub(crate) fn read_in(mut r: Reader<'a>, end_field: &'static str) -> DecodeResult<Self> {
        let left = read_item_count(&mut r).map_err(DecodeError::truncated)?;
        Ok(CpfItems {
            r,
            left,
            done: false,
            end_field,
        })
    }

    /// How many items the count announced (and are not yet read).
    pub fn len(&self) -> usize {
        usize::from(self.left)
    }

    /// True when no item is left to read.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// Like [`Cpf::unconnected_data`], after checking every item decodes (as
    /// [`Cpf::decode`] would).
    pub fn unconnected_data(self) -> DecodeResult<Option<&'a [u8]>> {
        let mut found = None;
        for item in self {
            if let (Item::UnconnectedData(Cow::Borrowed(data)), None) = (item?, found) {
                found = Some(data);
            }
        }
        Ok(found)
    }

    /// Like [`Cpf::connected_data`], after checking every item decodes (as
    /// [`Cpf::decode`] would).
    pub fn connected_data(self) -> DecodeResult<Option<Connected<'a>>> {
        let (mut id, mut data) = (None, None);
        for item in self {
            match item? {
                Item::ConnectedAddress { connection_id } if id.is_none() => {
                    id = Some(connection_id)
                }
                Item::ConnectedData {
                    sequence,
                    data: Cow::Borrowed(d),
                } if data.is_none() => data = Some((sequence, d)),
                _ => {}
            }
        }
        Ok(id
            .zip(data)
            .map(|(connection_id, (sequence, data))| Connected {
                connection_id,
                sequence,
                data,
            }))
    }
}

impl<'a> Iterator for CpfItems<'a> {
    type Item = DecodeResult<Item<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = if self.left > 0 {
            self.left -= 1;
            Item::read(&mut self.r).map_err(DecodeError::truncated)
        } else {
            self.done = true;
            return self.r.expect_end(self.end_field).err().map(Err);
        };
        self.done = next.is_err();
        Some(next)
    }
}

impl std::iter::FusedIterator for CpfItems<'_> {}

impl Encode for Cpf<'_> {
    fn encoded_len(&self) -> usize {
        2 + self
            .items
            .iter()
            .take(usize::from(u16::MAX))
            .map(Encode::encoded_len)
            .sum::<usize>()
    }

    /// Writes the count and items (at most 65535 items are written).
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(u16::try_from(self.items.len()).unwrap_or(u16::MAX));
        for item in self.items.iter().take(usize::from(u16::MAX)) {
            item.encode(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enip::encapsulation::HEADER_LEN;
    use crate::enip::frames::*;
    use proptest::prelude::*;

    /// The CPF of a frame whose data is a bare CPF (the List* replies).
    fn cpf_of(frame: &[u8]) -> &[u8] {
        &frame[HEADER_LEN..]
    }

    fn only_identity<'c>(cpf: &'c Cpf<'_>) -> &'c Identity<'c> {
        assert_eq!(cpf.items.len(), 1);
        cpf.identities().next().unwrap()
    }

    #[test]
    fn list_identity_reply_of_a_powerflex_753() {
        // cpppo server/enip_test.py listident_1_rpy (framing corrected by cpppo)
        let cpf = Cpf::decode(cpf_of(LISTIDENT_1_RPY)).unwrap();
        assert_eq!(cpf.items[0].type_id(), item_type::LIST_IDENTITY);
        let id = only_identity(&cpf);
        assert_eq!(id.protocol_version, 1);
        assert_eq!(id.socket_address.family, AF_INET);
        assert_eq!(id.socket_address.port, 44818);
        assert_eq!(id.socket_address.addr, Ipv4Addr::new(10, 161, 1, 5));
        assert_eq!(id.socket_address.zero, [0; 8]);
        assert_eq!(id.vendor_id, 1);
        assert_eq!(id.device_type, 0x007B);
        assert_eq!(id.product_code, 0x0490);
        assert_eq!((id.revision_major, id.revision_minor), (11, 1));
        assert_eq!(id.status, 0x0561);
        assert_eq!(id.serial_number, 0x8049_1D15);
        assert_eq!(id.product_name_lossy(), format!("{:<32}", "PowerFlex 753"));
        assert_eq!(id.state, Some(0xFF));
        assert!(id.extra.is_empty());

        // cpppo builds the same item from these fields (test_enip_listidentity).
        let built = Identity {
            protocol_version: 1,
            socket_address: SockAddr::new(Ipv4Addr::new(10, 161, 1, 5), 44818),
            vendor_id: 1,
            device_type: 0x7B,
            product_code: 0x0490,
            revision_major: 11,
            revision_minor: 1,
            status: 0x0561,
            serial_number: 0x8049_1D15,
            product_name: Cow::Owned(format!("{:<32}", "PowerFlex 753").into_bytes()),
            state: Some(0xFF),
            extra: Cow::Borrowed(&[]),
        };
        assert_eq!(built.to_vec(), &LISTIDENT_1_RPY[30..]);
        assert_eq!(
            Cpf {
                items: vec![Item::Identity(built)]
            }
            .to_vec(),
            cpf_of(LISTIDENT_1_RPY)
        );
    }

    #[test]
    fn list_identity_reply_of_a_compactlogix() {
        // cpppo server/enip_test.py listident_2_rpy, a 1769 CompactLogix
        let cpf = Cpf::decode(cpf_of(LISTIDENT_2_RPY)).unwrap();
        let id = only_identity(&cpf);
        assert_eq!(id.socket_address.addr, Ipv4Addr::new(10, 161, 1, 3));
        assert_eq!(id.vendor_id, 1);
        assert_eq!(id.device_type, 0x0E);
        assert_eq!(id.product_code, 0x95);
        assert_eq!((id.revision_major, id.revision_minor), (27, 11));
        assert_eq!(id.status, 0x0030);
        assert_eq!(id.serial_number, 0xC01E_335E);
        assert_eq!(&id.product_name[..], b"1769-L24ER-QB1B/A LOGIX5324ER");
        assert_eq!(id.state, Some(3));

        // listident_3_rpy: the same with three extra bytes, kept.
        let cpf = Cpf::decode(cpf_of(LISTIDENT_3_RPY)).unwrap();
        let id = only_identity(&cpf);
        assert_eq!(id.state, Some(3));
        assert_eq!(&id.extra[..], &[1, 2, 3]);
        assert_eq!(cpf.to_vec(), cpf_of(LISTIDENT_3_RPY));
    }

    #[test]
    fn identity_without_state_and_bad_item_framing() {
        // The item may end after the product name (state then absent).
        let mut bytes = cpf_of(LISTIDENT_1_RPY).to_vec();
        bytes.pop();
        bytes[4] -= 1;
        let cpf = Cpf::decode(&bytes).unwrap();
        assert_eq!(only_identity(&cpf).state, None);
        assert_eq!(cpf.to_vec(), bytes);

        // cpppo listident_1_rpy_bad_CPF_framing: the PowerFlex's item length (0x27) cuts the
        // product name short. That is refused, naming the field.
        let mut bytes = cpf_of(LISTIDENT_1_RPY).to_vec();
        bytes[4] = 0x27;
        let err = Cpf::decode(&bytes).unwrap_err();
        assert!(!err.is_incomplete());
        assert_eq!(err.field(), "cpf.identity.product_name");
        assert_eq!(err.offset(), 6 + 33);
    }

    #[test]
    fn list_services_reply() {
        // cpppo server/enip_test.py lst_svc2_req (a ListServices carrying the item), and its
        // commserv_1: cpppo sends "Communications" with one NUL (15 bytes).
        let cpf = Cpf::decode(cpf_of(LST_SVC2_REQ)).unwrap();
        let svc = cpf.services().next().unwrap();
        assert_eq!(svc.version, 1);
        assert_eq!(svc.capability, capability::CIP_ENCAPSULATION);
        assert_eq!(&svc.name[..], b"Communications\0");
        assert_eq!(svc.name_lossy(), "Communications");
        assert_eq!(cpf.to_vec(), cpf_of(LST_SVC2_REQ));

        // The specification's form: a 16-byte name, NUL padded.
        let svc =
            Service::communications(capability::CIP_ENCAPSULATION | capability::CLASS_0_1_UDP);
        let bytes = Item::Service(svc).to_vec();
        assert_eq!(
            bytes,
            [
                &[0x00, 0x01, 0x14, 0x00, 0x01, 0x00, 0x20, 0x01][..],
                b"Communications\0\0"
            ]
            .concat()
        );
    }

    #[test]
    fn list_interfaces_reply_is_an_empty_list() {
        // cpppo server/enip_test.py listifaces_1_rpy
        assert_eq!(Cpf::decode(cpf_of(LISTIFACES_1_RPY)).unwrap(), Cpf::empty());
        assert_eq!(Cpf::empty().to_vec(), [0, 0]);
    }

    #[test]
    fn canonical_layouts_are_where_pycomm3_and_pylogix_read_them() {
        // Unconnected: count 2, null address (type 0, length 0), unconnected data at +6.
        let bytes = Cpf::unconnected(&[0x52, 0x02][..]).to_vec();
        assert_eq!(bytes, [2, 0, 0, 0, 0, 0, 0xB2, 0, 2, 0, 0x52, 0x02]);
        // Connected: count 2, address 0xA1 length 4 id, data 0xB1 with the sequence count.
        let bytes = Cpf::connected(0x8F3B_A17E, 0x2950, &[0x0A][..]).to_vec();
        assert_eq!(
            bytes,
            [2, 0, 0xA1, 0, 4, 0, 0x7E, 0xA1, 0x3B, 0x8F, 0xB1, 0, 3, 0, 0x50, 0x29, 0x0A]
        );
        let cpf = Cpf::decode(&bytes).unwrap();
        assert_eq!(
            cpf.connected_data(),
            Some(Connected {
                connection_id: 0x8F3B_A17E,
                sequence: 0x2950,
                data: &[0x0A]
            })
        );
        assert_eq!(cpf.unconnected_data(), None);
    }

    #[test]
    fn fixed_items_must_have_their_length_and_counts_must_fit() {
        let err = Cpf::decode(&[1, 0, 0, 0, 2, 0, 0, 0]).unwrap_err();
        assert_eq!(err.field(), "cpf.item.length");
        assert_eq!(err.offset(), 4);
        let err = Cpf::decode(&[1, 0, 0xA1, 0, 3, 0, 1, 2, 3]).unwrap_err();
        assert_eq!(err.field(), "cpf.item.length");
        // 0xFFFF items announced in 4 bytes: refused before reading any.
        let err = Cpf::decode(&[0xFF, 0xFF, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err.field(), "cpf.item_count");
        assert_eq!(err.offset(), 0);
        // An item longer than the bytes left is Invalid, not Incomplete.
        let err = Cpf::decode(&[1, 0, 0xB2, 0, 9, 0, 1]).unwrap_err();
        assert!(!err.is_incomplete());
        assert_eq!(err.field(), "cpf.item.data");
        // Trailing bytes after the counted items.
        let err = Cpf::decode(&[0, 0, 0]).unwrap_err();
        assert_eq!((err.field(), err.offset()), ("cpf", 2));
    }

    #[test]
    fn sockaddr_info_items_are_big_endian_and_unknown_items_raw() {
        let bytes = [
            2, 0, 0x00, 0x80, 16, 0, 0x00, 0x02, 0x08, 0xAE, 0xEF, 0xC0, 0x01, 0x01, 0, 0, 0, 0, 0,
            0, 0, 0, 0x34, 0x12, 2, 0, 0xAA, 0xBB,
        ];
        let cpf = Cpf::decode(&bytes).unwrap();
        assert_eq!(
            cpf.items[0],
            Item::SockAddrOT(SockAddr::new(Ipv4Addr::new(239, 192, 1, 1), 2222))
        );
        assert_eq!(
            cpf.items[1],
            Item::Raw {
                type_id: 0x1234,
                data: Cow::Borrowed(&[0xAA, 0xBB])
            }
        );
        assert_eq!(cpf.to_vec(), bytes);
    }

    #[test]
    fn every_prefix_of_a_real_cpf_is_invalid() {
        for (name, frame) in ALL {
            let Some(data) = frame.get(HEADER_LEN..) else {
                continue;
            };
            // The List* replies are bare CPFs; SendRRData/SendUnitData have 6 bytes first.
            let cpf = match frame[0] {
                0x6F | 0x70 => &data[6..],
                0x01 | 0x04 | 0x63 | 0x64 if !data.is_empty() => data,
                _ => continue,
            };
            let whole = Cpf::decode(cpf).unwrap();
            assert_eq!(whole.to_vec(), cpf, "{name}");
            for cut in 0..cpf.len() {
                let err = Cpf::decode(&cpf[..cut]).unwrap_err();
                assert!(!err.is_incomplete(), "{name} {cut}");
            }
        }
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn arb_sockaddr() -> impl Strategy<Value = SockAddr> {
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<[u8; 8]>()).prop_map(
            |(family, port, addr, zero)| SockAddr {
                family,
                port,
                addr: Ipv4Addr::from(addr),
                zero,
            },
        )
    }

    fn arb_identity() -> impl Strategy<Value = Identity<'static>> {
        (
            (
                any::<u16>(),
                arb_sockaddr(),
                any::<[u16; 3]>(),
                any::<[u8; 2]>(),
            ),
            (any::<u16>(), any::<u32>(), bytes(40)),
            proptest::option::of((any::<u8>(), bytes(6))),
        )
            .prop_map(
                |(
                    (version, sa, [vendor, dtype, code], [major, minor]),
                    (status, serial, name),
                    tail,
                )| {
                    let (state, extra) = match tail {
                        Some((s, e)) => (Some(s), e),
                        None => (None, Vec::new()),
                    };
                    Identity {
                        protocol_version: version,
                        socket_address: sa,
                        vendor_id: vendor,
                        device_type: dtype,
                        product_code: code,
                        revision_major: major,
                        revision_minor: minor,
                        status,
                        serial_number: serial,
                        product_name: Cow::Owned(name),
                        state,
                        extra: Cow::Owned(extra),
                    }
                },
            )
    }

    const KNOWN: [u16; 10] = [
        item_type::NULL_ADDRESS,
        item_type::LEGACY_ADDRESS,
        item_type::LIST_IDENTITY,
        item_type::CONNECTED_ADDRESS,
        item_type::CONNECTED_DATA,
        item_type::UNCONNECTED_DATA,
        item_type::LIST_SERVICES,
        item_type::SOCKADDR_INFO_O_T,
        item_type::SOCKADDR_INFO_T_O,
        item_type::SEQUENCED_ADDRESS,
    ];

    fn arb_item() -> impl Strategy<Value = Item<'static>> {
        prop_oneof![
            Just(Item::NullAddress),
            any::<u32>().prop_map(|connection_id| Item::ConnectedAddress { connection_id }),
            (any::<u32>(), any::<u32>()).prop_map(|(connection_id, sequence)| {
                Item::SequencedAddress {
                    connection_id,
                    sequence,
                }
            }),
            (any::<u16>(), bytes(40)).prop_map(|(sequence, d)| Item::ConnectedData {
                sequence,
                data: Cow::Owned(d)
            }),
            bytes(40).prop_map(|d| Item::UnconnectedData(Cow::Owned(d))),
            arb_identity().prop_map(Item::Identity),
            (any::<u16>(), any::<u16>(), bytes(20)).prop_map(|(version, capability, name)| {
                Item::Service(Service {
                    version,
                    capability,
                    name: Cow::Owned(name),
                })
            }),
            arb_sockaddr().prop_map(Item::SockAddrOT),
            arb_sockaddr().prop_map(Item::SockAddrTO),
            (any::<u16>(), any::<u16>(), arb_sockaddr(), bytes(20)).prop_map(
                |(version, unknown, socket_address, a)| Item::Legacy(LegacyAddress {
                    version,
                    unknown,
                    socket_address,
                    address: Cow::Owned(a),
                })
            ),
            (
                any::<u16>().prop_filter("unknown type", |t| !KNOWN.contains(t)),
                bytes(40)
            )
                .prop_map(|(type_id, d)| Item::Raw {
                    type_id,
                    data: Cow::Owned(d)
                }),
        ]
    }

    /// `CpfItems` over `bytes`, collected: the items, or the first error.
    fn lazily(bytes: &[u8]) -> DecodeResult<Vec<Item<'_>>> {
        CpfItems::new(bytes)?.collect()
    }

    /// The lazy items agree with `Cpf::decode` on `bytes`: same items, or the same error.
    fn assert_lazy_agrees(bytes: &[u8]) {
        let eager = Cpf::decode(bytes).map(|c| c.items);
        assert_eq!(lazily(bytes), eager, "{bytes:02X?}");
        let eager = Cpf::decode(bytes);
        let lazy = CpfItems::new(bytes);
        match (eager, lazy) {
            (Ok(cpf), Ok(items)) => {
                assert_eq!(items.len(), cpf.items.len());
                assert_eq!(items.clone().unconnected_data(), Ok(cpf.unconnected_data()));
                assert_eq!(items.connected_data(), Ok(cpf.connected_data()));
            }
            (Ok(_), Err(e)) => panic!("lazy count refused what decode took: {e}"),
            (Err(e), Ok(items)) => {
                assert_eq!(items.clone().unconnected_data(), Err(e.clone()));
                assert_eq!(items.connected_data(), Err(e));
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
        }
    }

    #[test]
    fn lazy_items_of_every_real_cpf_and_its_prefixes_agree_with_decode() {
        let mut checked = 0;
        for (_, frame) in ALL {
            let Some(data) = frame.get(HEADER_LEN..) else {
                continue;
            };
            let cpf = match frame[0] {
                0x6F | 0x70 => &data[6..],
                0x01 | 0x04 | 0x63 | 0x64 if !data.is_empty() => data,
                _ => continue,
            };
            for cut in 0..=cpf.len() {
                assert_lazy_agrees(&cpf[..cut]);
            }
            // Trailing bytes after the last item.
            assert_lazy_agrees(&[cpf, &[0xB2][..]].concat());
            checked += 1;
        }
        assert!(checked >= 10, "{checked}");
    }

    #[test]
    fn lazy_items_find_the_connected_message() {
        // cpppo server/enip_test.py gal_m01_request: connected address, connected data.
        let cpf = &GAL_M01_REQUEST[HEADER_LEN + 6..];
        let c = CpfItems::new(cpf)
            .unwrap()
            .connected_data()
            .unwrap()
            .unwrap();
        assert_eq!(c.connection_id, 0x8F3B_A17E);
        assert_eq!(c.sequence, 0x2950);
        assert_eq!(c.data.first(), Some(&0x0A));
        assert_eq!(CpfItems::new(cpf).unwrap().unconnected_data(), Ok(None));
        // An empty list.
        let none = CpfItems::new(&[0, 0]).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.count(), 0);
    }

    proptest! {
        #[test]
        fn lazy_items_agree_with_decode_on_arbitrary_bytes(bytes in bytes(96)) {
            assert_lazy_agrees(&bytes);
        }

        #[test]
        fn lazy_items_agree_with_decode_on_every_item_type(items in proptest::collection::vec(arb_item(), 0..5)) {
            let bytes = Cpf { items }.to_vec();
            for cut in 0..=bytes.len() {
                assert_lazy_agrees(&bytes[..cut]);
            }
        }

        #[test]
        fn every_item_type_round_trips(items in proptest::collection::vec(arb_item(), 0..5)) {
            let cpf = Cpf { items };
            let bytes = cpf.to_vec();
            prop_assert_eq!(bytes.len(), cpf.encoded_len());
            let back = Cpf::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &cpf);
            prop_assert_eq!(back.into_owned(), cpf);
            for cut in 0..bytes.len() {
                prop_assert!(Cpf::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in bytes(96)) {
            if let Ok(cpf) = Cpf::decode(&bytes) {
                // What decodes re-encodes to the same bytes.
                prop_assert_eq!(cpf.to_vec(), bytes.clone());
            }
        }

        #[test]
        fn arbitrary_items_never_panic(type_id in prop::sample::select(KNOWN.to_vec()), body in bytes(64)) {
            let mut bytes = vec![1, 0];
            bytes.extend_from_slice(&type_id.to_le_bytes());
            bytes.extend_from_slice(&(body.len() as u16).to_le_bytes());
            bytes.extend_from_slice(&body);
            if let Ok(cpf) = Cpf::decode(&bytes) {
                prop_assert_eq!(cpf.items[0].type_id(), type_id);
                prop_assert_eq!(cpf.to_vec(), bytes);
            }
        }
    }
}
