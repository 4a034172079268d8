//! EPATH: the segment path that addresses a CIP object, attribute, element, connection
//! point, symbolic tag name or route (CIP Vol 1, Appendix C-1).
//!
//! An [`Epath`] holds the encoded segments exactly as they stand on the wire (always a
//! whole number of 16-bit words), borrowed from the decoded frame where possible, so a
//! request passes through without copying. [`Epath::segments`] walks them as typed
//! [`Segment`]s without allocating; [`Epath::from_segments`] encodes them.
//!
//! In scope:
//! - logical segments: class, instance, element (CIP "member ID", which Logix uses as the
//!   array element index), connection point and attribute, in the 8-, 16- and 32-bit
//!   forms (the smallest is chosen on encode); the electronic key (`0x34`, key format 4);
//! - port segments: port numbers 1..=14 and the extended port (`0x0F` + 16-bit port),
//!   numeric link addresses and extended link addresses (bytes such as `"192.168.1.2"`);
//! - ANSI extended symbolic segments (`0x91`), ASCII only;
//! - simple data segments (`0x80`).
//!
//! Out of scope (decoding them yields a [`DecodeError`] naming `epath.segment_type` and
//! the segment's offset): service ID and reserved logical types, network segments,
//! symbolic segments (`0x6x`) and data segments other than the simple one.
//!
//! ## Padded and packed
//!
//! Every `Epath` is in the **padded** format that Message Router requests, Unconnected
//! Send route paths and Forward Open connection paths use: a pad byte follows the type
//! byte of 16- and 32-bit logical segments, and odd-length symbolic names and extended
//! link addresses are followed by a pad byte. The **packed** format (no pad bytes, used
//! e.g. in some EDS files and device-specific attributes) can be decoded with
//! [`Segments::packed`] and encoded with [`Segment::encode_packed`].
//!
//! ## Text notation
//!
//! Paths are written the way cpppo writes them, parsed by [`parse_path`] (or
//! `"...".parse::<Epath>()`) and rendered by `Display`:
//!
//! - numeric: `@0x1FF/01/0x1A` is class, instance, attribute and then element; numbers
//!   are decimal (leading zeros do not mean octal), `0x` hex, `0o` octal or `0b` binary;
//! - any segment as a flat JSON object inside an `@` path: `{"class":2}`,
//!   `{"instance":1}`, `{"attribute":3}`, `{"element":4}`, `{"connection":100}`,
//!   `{"symbolic":"SCADA"}`, `{"port":1,"link":0}`, `{"port":2,"link":"192.168.1.2"}`,
//!   `{"data":"0a0b"}` (hex words) and `{"vendor":1,"device_type":14,"product_code":55,
//!   "major_revision":20,"minor_revision":11,"compatibility":true}` (electronic key), so
//!   `@4/5/{"connection":100}` and `@{"port":1,"link":0}/2/1`. Port segments at the start
//!   of an `@` path do not take a position: `@{"port":1,"link":0}/2/1` is port 1 link 0,
//!   class 2, instance 1 (cpppo counts them, making the `2` an instance);
//! - Logix tags: `SCADA`, `SCADA[3]`, `Arr[1,2]` (one element segment per dimension),
//!   `Program:MainProgram.Tag.Member[3]` (one symbolic segment per `.`-separated name);
//! - components of either kind joined by `.`, e.g. `Tag.@{"element":2}`.
//!
//! Route paths (`--route-path`) have their own forms, parsed by [`parse_route_path`] and
//! [`parse_connection_path`]: a JSON list `[{"port":1,"link":0}]`, a single object, or the
//! shorthand `1/0/2/192.168.1.2`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::wire::{DecodeError, DecodeResult, Encode, Reader};

/// Segment type byte of an 8-bit class ID logical segment (`+1` 16-bit, `+2` 32-bit).
pub const SEGMENT_CLASS: u8 = 0x20;
/// Segment type byte of an 8-bit instance ID logical segment.
pub const SEGMENT_INSTANCE: u8 = 0x24;
/// Segment type byte of an 8-bit member ID logical segment, which Logix uses as the
/// array element index.
pub const SEGMENT_ELEMENT: u8 = 0x28;
/// Segment type byte of an 8-bit connection point logical segment.
pub const SEGMENT_CONNECTION_POINT: u8 = 0x2C;
/// Segment type byte of an 8-bit attribute ID logical segment.
pub const SEGMENT_ATTRIBUTE: u8 = 0x30;
/// Segment type byte of the electronic key logical segment (logical type "special").
pub const SEGMENT_ELECTRONIC_KEY: u8 = 0x34;
/// The electronic key format this crate knows (vendor, device type, product code,
/// revisions: 8 bytes).
pub const ELECTRONIC_KEY_FORMAT: u8 = 0x04;
/// Segment type byte of the ANSI extended symbolic data segment.
pub const SEGMENT_SYMBOLIC: u8 = 0x91;
/// Segment type byte of the simple data segment (word count, then words).
pub const SEGMENT_DATA_SIMPLE: u8 = 0x80;
/// Mask of the segment type bits (the top three bits of the first byte).
pub const SEGMENT_TYPE_MASK: u8 = 0xE0;
/// Segment type bits of a port segment.
pub const SEGMENT_TYPE_PORT: u8 = 0x00;
/// Segment type bits of a logical segment.
pub const SEGMENT_TYPE_LOGICAL: u8 = 0x20;
/// Port segment flag: a link address size byte follows (extended link address).
pub const PORT_EXTENDED_LINK: u8 = 0x10;
/// Port segment port identifier meaning "a 16-bit port number follows".
pub const PORT_EXTENDED_ID: u8 = 0x0F;
/// Logical format bits: 8-bit value.
pub const LOGICAL_FORMAT_8: u8 = 0x00;
/// Logical format bits: 16-bit value.
pub const LOGICAL_FORMAT_16: u8 = 0x01;
/// Logical format bits: 32-bit value.
pub const LOGICAL_FORMAT_32: u8 = 0x02;
/// The format bits of a logical segment's type byte.
const LOGICAL_FORMAT_MASK: u8 = 0x03;

/// Field name of a segment's type byte in decode errors.
const F_TYPE: &str = "epath.segment_type";

/// The link address of a port segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link<'a> {
    /// A one-byte link address (a backplane slot, a DeviceNet MAC ID).
    Number(u8),
    /// An extended link address: bytes of up to 255, usually the text of an IP address
    /// such as `192.168.1.2`.
    Address(Cow<'a, [u8]>),
}

impl Link<'_> {
    /// A copy that owns its bytes.
    pub fn into_owned(self) -> Link<'static> {
        match self {
            Link::Number(n) => Link::Number(n),
            Link::Address(a) => Link::Address(Cow::Owned(a.into_owned())),
        }
    }
}

/// An electronic key segment (key format 4): what device a connection expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ElectronicKey {
    /// Vendor ID (0: any).
    pub vendor: u16,
    /// Device type (0: any).
    pub device_type: u16,
    /// Product code (0: any).
    pub product_code: u16,
    /// Major revision, 7 bits (0: any).
    pub major_revision: u8,
    /// Compatibility bit: accept any device that can emulate the key.
    pub compatibility: bool,
    /// Minor revision (0: any).
    pub minor_revision: u8,
}

/// One EPATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment<'a> {
    /// Class ID.
    Class(u32),
    /// Instance ID.
    Instance(u32),
    /// Element (CIP member ID; Logix array index, one per dimension).
    Element(u32),
    /// Connection point (in the Assembly object, the same as an instance).
    ConnectionPoint(u32),
    /// Attribute ID.
    Attribute(u32),
    /// Port segment: the port to leave by and the link address to go to.
    Port {
        /// Port number, 1..=0xFFFF (0 is reserved).
        port: u16,
        /// Link address on that port.
        link: Link<'a>,
    },
    /// ANSI extended symbolic segment: a tag or member name, ASCII, up to 255 bytes.
    Symbolic(Cow<'a, str>),
    /// Simple data segment: its data words as bytes (an even number, up to 510).
    Data(Cow<'a, [u8]>),
    /// Electronic key segment.
    ElectronicKey(ElectronicKey),
}

/// Which logical type a numeric logical segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logical {
    Class,
    Instance,
    Element,
    ConnectionPoint,
    Attribute,
}

impl Logical {
    fn base(self) -> u8 {
        match self {
            Logical::Class => SEGMENT_CLASS,
            Logical::Instance => SEGMENT_INSTANCE,
            Logical::Element => SEGMENT_ELEMENT,
            Logical::ConnectionPoint => SEGMENT_CONNECTION_POINT,
            Logical::Attribute => SEGMENT_ATTRIBUTE,
        }
    }

    /// The JSON key cpppo uses for it.
    fn key(self) -> &'static str {
        match self {
            Logical::Class => "class",
            Logical::Instance => "instance",
            Logical::Element => "element",
            Logical::ConnectionPoint => "connection",
            Logical::Attribute => "attribute",
        }
    }

    fn segment(self, value: u32) -> Segment<'static> {
        match self {
            Logical::Class => Segment::Class(value),
            Logical::Instance => Segment::Instance(value),
            Logical::Element => Segment::Element(value),
            Logical::ConnectionPoint => Segment::ConnectionPoint(value),
            Logical::Attribute => Segment::Attribute(value),
        }
    }
}

impl<'a> Segment<'a> {
    fn logical(&self) -> Option<(Logical, u32)> {
        match *self {
            Segment::Class(v) => Some((Logical::Class, v)),
            Segment::Instance(v) => Some((Logical::Instance, v)),
            Segment::Element(v) => Some((Logical::Element, v)),
            Segment::ConnectionPoint(v) => Some((Logical::ConnectionPoint, v)),
            Segment::Attribute(v) => Some((Logical::Attribute, v)),
            _ => None,
        }
    }

    /// A copy that owns its text and bytes.
    pub fn into_owned(self) -> Segment<'static> {
        match self {
            Segment::Class(v) => Segment::Class(v),
            Segment::Instance(v) => Segment::Instance(v),
            Segment::Element(v) => Segment::Element(v),
            Segment::ConnectionPoint(v) => Segment::ConnectionPoint(v),
            Segment::Attribute(v) => Segment::Attribute(v),
            Segment::Port { port, link } => Segment::Port {
                port,
                link: link.into_owned(),
            },
            Segment::Symbolic(s) => Segment::Symbolic(Cow::Owned(s.into_owned())),
            Segment::Data(d) => Segment::Data(Cow::Owned(d.into_owned())),
            Segment::ElectronicKey(k) => Segment::ElectronicKey(k),
        }
    }

    /// A symbolic segment.
    pub fn symbolic(name: impl Into<Cow<'a, str>>) -> Self {
        Segment::Symbolic(name.into())
    }

    /// A port segment with a numeric link address.
    pub fn port(port: u16, link: u8) -> Segment<'static> {
        Segment::Port {
            port,
            link: Link::Number(link),
        }
    }

    /// A port segment with an extended link address given as text (an IP address).
    pub fn port_address(port: u16, address: &str) -> Segment<'static> {
        Segment::Port {
            port,
            link: Link::Address(Cow::Owned(address.as_bytes().to_vec())),
        }
    }

    /// Check that the segment can be encoded: port not 0; symbolic name ASCII and at
    /// most 255 bytes; link address at most 255 bytes; data an even number of bytes,
    /// at most 510. [`Encode`] on an invalid segment truncates what does not fit.
    pub fn validate(&self) -> Result<(), PathParseError> {
        match self {
            Segment::Port { port: 0, .. } => Err(PathParseError::PortZero),
            Segment::Port {
                link: Link::Address(a),
                ..
            } if a.len() > 255 => Err(PathParseError::TooLong {
                what: "link address",
                len: a.len(),
                max: 255,
            }),
            Segment::Symbolic(s) if !s.is_ascii() => Err(PathParseError::NotAscii {
                at: 0,
                what: "symbolic name",
            }),
            Segment::Symbolic(s) if s.len() > 255 => Err(PathParseError::TooLong {
                what: "symbolic name",
                len: s.len(),
                max: 255,
            }),
            Segment::Data(d) if d.len() % 2 != 0 || d.len() > 510 => Err(PathParseError::TooLong {
                what: "data segment (even, in bytes)",
                len: d.len(),
                max: 510,
            }),
            _ => Ok(()),
        }
    }

    fn len_in(&self, padded: bool) -> usize {
        let pad = usize::from(padded);
        match self {
            Segment::Port { port, link } => {
                let ext_port = if *port >= u16::from(PORT_EXTENDED_ID) {
                    2
                } else {
                    0
                };
                match link {
                    Link::Number(_) => 2 + ext_port,
                    Link::Address(a) => {
                        let n = a.len().min(255);
                        2 + ext_port + n + (n % 2) * pad
                    }
                }
            }
            Segment::Symbolic(s) => {
                let n = s.len().min(255);
                2 + n + (n % 2) * pad
            }
            Segment::Data(d) => 2 + (d.len().min(510) & !1),
            Segment::ElectronicKey(_) => 10,
            _ => match self.logical().map(|(_, v)| v).unwrap_or(0) {
                0..=0xFF => 2,
                0x100..=0xFFFF => 3 + pad,
                _ => 5 + pad,
            },
        }
    }

    fn encode_in<B: BufMut>(&self, out: &mut B, padded: bool) {
        match self {
            Segment::Port { port, link } => {
                let (id, ext) = if *port >= u16::from(PORT_EXTENDED_ID) {
                    (PORT_EXTENDED_ID, Some(*port))
                } else {
                    // Ports below 15 fit the 4-bit identifier (port 0 is invalid).
                    (u8::try_from(*port).unwrap_or(0), None)
                };
                match link {
                    Link::Number(n) => {
                        out.put_u8(id);
                        if let Some(p) = ext {
                            out.put_u16_le(p);
                        }
                        out.put_u8(*n);
                    }
                    Link::Address(a) => {
                        let a = a.get(..a.len().min(255)).unwrap_or_default();
                        out.put_u8(id | PORT_EXTENDED_LINK);
                        out.put_u8(u8::try_from(a.len()).unwrap_or(u8::MAX));
                        if let Some(p) = ext {
                            out.put_u16_le(p);
                        }
                        out.put_slice(a);
                        if padded && a.len() % 2 == 1 {
                            out.put_u8(0);
                        }
                    }
                }
            }
            Segment::Symbolic(s) => {
                let s = s.as_bytes();
                let s = s.get(..s.len().min(255)).unwrap_or_default();
                out.put_u8(SEGMENT_SYMBOLIC);
                out.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
                out.put_slice(s);
                if padded && s.len() % 2 == 1 {
                    out.put_u8(0);
                }
            }
            Segment::Data(d) => {
                let d = d.get(..d.len().min(510) & !1).unwrap_or_default();
                out.put_u8(SEGMENT_DATA_SIMPLE);
                out.put_u8(u8::try_from(d.len() / 2).unwrap_or(u8::MAX));
                out.put_slice(d);
            }
            Segment::ElectronicKey(k) => {
                out.put_u8(SEGMENT_ELECTRONIC_KEY);
                out.put_u8(ELECTRONIC_KEY_FORMAT);
                out.put_u16_le(k.vendor);
                out.put_u16_le(k.device_type);
                out.put_u16_le(k.product_code);
                out.put_u8((k.major_revision & 0x7F) | if k.compatibility { 0x80 } else { 0 });
                out.put_u8(k.minor_revision);
            }
            _ => {
                let Some((kind, v)) = self.logical() else {
                    return;
                };
                if let Ok(v) = u8::try_from(v) {
                    out.put_u8(kind.base() | LOGICAL_FORMAT_8);
                    out.put_u8(v);
                } else if let Ok(v) = u16::try_from(v) {
                    out.put_u8(kind.base() | LOGICAL_FORMAT_16);
                    if padded {
                        out.put_u8(0);
                    }
                    out.put_u16_le(v);
                } else {
                    out.put_u8(kind.base() | LOGICAL_FORMAT_32);
                    if padded {
                        out.put_u8(0);
                    }
                    out.put_u32_le(v);
                }
            }
        }
    }

    /// Length of the packed (unpadded) form.
    pub fn packed_len(&self) -> usize {
        self.len_in(false)
    }

    /// Append the packed (unpadded) form.
    pub fn encode_packed<B: BufMut>(&self, out: &mut B) {
        self.encode_in(out, false)
    }
}

/// The padded form, as in an [`Epath`].
impl Encode for Segment<'_> {
    fn encoded_len(&self) -> usize {
        self.len_in(true)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.encode_in(out, true)
    }
}

/// Decode one segment from `r`. Missing bytes are reported as `Invalid` (the path's
/// length was given by its container).
fn decode_segment<'a>(r: &mut Reader<'a>, padded: bool) -> DecodeResult<Segment<'a>> {
    let start = r.offset();
    let ty = r.u8(F_TYPE)?;
    let pad = |r: &mut Reader<'a>| -> DecodeResult<()> {
        if padded {
            r.skip(1, "epath.pad")?;
        }
        Ok(())
    };
    match ty & SEGMENT_TYPE_MASK {
        SEGMENT_TYPE_PORT => {
            let id = ty & 0x0F;
            if id == 0 {
                return Err(DecodeError::invalid(
                    F_TYPE,
                    start,
                    format!("port segment 0x{ty:02X} names reserved port 0"),
                ));
            }
            let size = if ty & PORT_EXTENDED_LINK != 0 {
                Some(r.u8("epath.link_size")?)
            } else {
                None
            };
            let port = if id == PORT_EXTENDED_ID {
                let at = r.offset();
                let p = r.u16_le("epath.port")?;
                if p == 0 {
                    return Err(DecodeError::invalid("epath.port", at, "port 0 is reserved"));
                }
                p
            } else {
                u16::from(id)
            };
            let link = match size {
                None => Link::Number(r.u8("epath.link")?),
                Some(n) => {
                    let a = r.take(usize::from(n), "epath.link")?;
                    if n % 2 == 1 {
                        pad(r)?;
                    }
                    Link::Address(Cow::Borrowed(a))
                }
            };
            Ok(Segment::Port { port, link })
        }
        SEGMENT_TYPE_LOGICAL => {
            let kind = match (ty >> 2) & 0x07 {
                0 => Logical::Class,
                1 => Logical::Instance,
                2 => Logical::Element,
                3 => Logical::ConnectionPoint,
                4 => Logical::Attribute,
                5 if ty == SEGMENT_ELECTRONIC_KEY => {
                    let at = r.offset();
                    let format = r.u8("epath.key_format")?;
                    if format != ELECTRONIC_KEY_FORMAT {
                        return Err(DecodeError::invalid(
                            "epath.key_format",
                            at,
                            format!("electronic key format {format}, expected 4"),
                        ));
                    }
                    let vendor = r.u16_le("epath.key")?;
                    let device_type = r.u16_le("epath.key")?;
                    let product_code = r.u16_le("epath.key")?;
                    let major = r.u8("epath.key")?;
                    let minor_revision = r.u8("epath.key")?;
                    return Ok(Segment::ElectronicKey(ElectronicKey {
                        vendor,
                        device_type,
                        product_code,
                        major_revision: major & 0x7F,
                        compatibility: major & 0x80 != 0,
                        minor_revision,
                    }));
                }
                _ => return Err(unsupported(ty, start)),
            };
            let value = match ty & 0x03 {
                LOGICAL_FORMAT_8 => u32::from(r.u8("epath.logical_value")?),
                LOGICAL_FORMAT_16 => {
                    pad(r)?;
                    u32::from(r.u16_le("epath.logical_value")?)
                }
                LOGICAL_FORMAT_32 => {
                    pad(r)?;
                    r.u32_le("epath.logical_value")?
                }
                _ => {
                    return Err(DecodeError::invalid(
                        F_TYPE,
                        start,
                        format!("logical segment 0x{ty:02X} uses the reserved format"),
                    ))
                }
            };
            Ok(kind.segment(value))
        }
        _ if ty == SEGMENT_SYMBOLIC => {
            let n = r.u8("epath.symbolic_length")?;
            let at = r.offset();
            let bytes = r.take(usize::from(n), "epath.symbolic")?;
            if n % 2 == 1 {
                pad(r)?;
            }
            if !bytes.is_ascii() {
                return Err(DecodeError::invalid(
                    "epath.symbolic",
                    at,
                    "symbolic name is not ASCII",
                ));
            }
            let s = std::str::from_utf8(bytes).map_err(|_| {
                DecodeError::invalid("epath.symbolic", at, "symbolic name is not ASCII")
            })?;
            Ok(Segment::Symbolic(Cow::Borrowed(s)))
        }
        _ if ty == SEGMENT_DATA_SIMPLE => {
            let words = r.u8("epath.data_size")?;
            let d = r.take(usize::from(words) * 2, "epath.data")?;
            Ok(Segment::Data(Cow::Borrowed(d)))
        }
        _ => Err(unsupported(ty, start)),
    }
}

fn unsupported(ty: u8, offset: usize) -> DecodeError {
    DecodeError::invalid(
        F_TYPE,
        offset,
        format!("unsupported segment type 0x{ty:02X}"),
    )
}

/// Iterator over the segments of an encoded path; see [`Epath::segments`].
///
/// Yields `Err` once on the first segment that cannot be decoded, then ends.
#[derive(Debug, Clone)]
pub struct Segments<'p> {
    r: Reader<'p>,
    padded: bool,
    failed: bool,
}

impl<'p> Segments<'p> {
    /// Segments of padded path bytes; offsets in errors start at `base`.
    pub fn padded(bytes: &'p [u8], base: usize) -> Self {
        Segments {
            r: Reader::with_base(bytes, base),
            padded: true,
            failed: false,
        }
    }

    /// Segments of packed (unpadded) path bytes; offsets in errors start at `base`.
    pub fn packed(bytes: &'p [u8], base: usize) -> Self {
        Segments {
            padded: false,
            ..Segments::padded(bytes, base)
        }
    }
}

impl<'p> Iterator for Segments<'p> {
    type Item = DecodeResult<Segment<'p>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let item = decode_segment(&mut self.r, self.padded).map_err(DecodeError::truncated);
        self.failed = item.is_err();
        Some(item)
    }
}

impl std::iter::FusedIterator for Segments<'_> {}

/// The logical address at the head of a purely logical path: class, then instance or
/// connection point, then attribute, then any elements (see [`Epath::logical_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LogicalAddress {
    /// Class ID.
    pub class: u32,
    /// Instance ID, if given.
    pub instance: Option<u32>,
    /// Connection point, if given instead of an instance.
    pub connection_point: Option<u32>,
    /// Attribute ID, if given.
    pub attribute: Option<u32>,
    /// Element (member) ID, if given.
    pub element: Option<u32>,
}

/// An encoded, padded EPATH (a whole number of 16-bit words).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Epath<'a> {
    bytes: Cow<'a, [u8]>,
}

impl<'a> Epath<'a> {
    /// The empty path.
    pub const EMPTY: Epath<'static> = Epath {
        bytes: Cow::Borrowed(&[]),
    };

    /// A path over encoded segment bytes, as taken from a path-size field (`2 * words`
    /// bytes). The segments are not checked here: a device answers a bad segment with a
    /// CIP status (path segment error), so they are checked as they are read.
    pub fn from_wire(bytes: &'a [u8]) -> Self {
        Epath {
            bytes: Cow::Borrowed(bytes),
        }
    }

    /// A path that owns already-encoded segment bytes.
    pub fn from_vec(bytes: Vec<u8>) -> Epath<'static> {
        Epath {
            bytes: Cow::Owned(bytes),
        }
    }

    /// Take a path of `words` 16-bit words from `r` (after its path-size field),
    /// borrowing the bytes. Missing bytes are `Incomplete` (field `epath`); inside a
    /// container of known length, turn that into `Invalid` with
    /// [`DecodeError::truncated`].
    pub fn decode(r: &mut Reader<'a>, words: usize) -> DecodeResult<Epath<'a>> {
        let len = words
            .checked_mul(2)
            .ok_or_else(|| r.invalid("epath", "path size overflows"))?;
        Ok(Epath::from_wire(r.take(len, "epath")?))
    }

    /// Encode segments into an owned padded path; fails if a segment cannot be encoded
    /// (see [`Segment::validate`]).
    pub fn from_segments(segments: &[Segment<'_>]) -> Result<Epath<'static>, PathParseError> {
        let mut out = Vec::with_capacity(segments.iter().map(Encode::encoded_len).sum());
        for s in segments {
            s.validate()?;
            s.encode(&mut out);
        }
        Ok(Epath::from_vec(out))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in 16-bit words, as carried in a path-size field.
    pub fn word_len(&self) -> usize {
        self.bytes.len() / 2
    }

    /// True when the path has no segments.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> Epath<'static> {
        Epath {
            bytes: Cow::Owned(self.bytes.into_owned()),
        }
    }

    /// The segments, decoded lazily and without allocating; names borrow from the path.
    /// Error offsets are relative to the start of the path (shift them with
    /// [`DecodeError::at`]).
    pub fn segments(&self) -> Segments<'_> {
        Segments::padded(&self.bytes, 0)
    }

    /// The segments decoded into a vector (stops at the first bad segment).
    pub fn to_segments(&self) -> DecodeResult<Vec<Segment<'_>>> {
        self.segments().collect()
    }

    /// The class id of the leading logical class segment (any of its three sizes), if
    /// the path starts with one; a symbolic, port or malformed first segment gives `None`.
    pub fn leading_class(&self) -> Option<u32> {
        // Only a class segment (its type byte, less the two format bits) can lead with a
        // class: anything else is answered without decoding it (a symbolic name would
        // otherwise be checked here on every request, and again where it is used).
        if self.bytes.first()? & !LOGICAL_FORMAT_MASK != SEGMENT_CLASS {
            return None;
        }
        match self.segments().next() {
            Some(Ok(Segment::Class(class))) => Some(class),
            _ => None,
        }
    }

    /// If the path is purely logical in the order a Message Router request addresses
    /// an object — class, then optionally instance or connection point, then optionally
    /// attribute, then optionally one element — its parts; `Ok(None)` for any other
    /// well-formed path (symbolic, routed, other orders), `Err` for a bad segment.
    pub fn logical_address(&self) -> DecodeResult<Option<LogicalAddress>> {
        let mut it = self.segments();
        let mut addr = match it.next().transpose()? {
            Some(Segment::Class(class)) => LogicalAddress {
                class,
                ..LogicalAddress::default()
            },
            _ => return Ok(None),
        };
        // Stage: 0 = after class, 1 = after instance, 2 = after attribute, 3 = done.
        let mut stage = 0;
        for seg in it {
            match (seg?, stage) {
                (Segment::Instance(v), 0) => {
                    addr.instance = Some(v);
                    stage = 1;
                }
                (Segment::ConnectionPoint(v), 0) => {
                    addr.connection_point = Some(v);
                    stage = 1;
                }
                (Segment::Attribute(v), 0 | 1) => {
                    addr.attribute = Some(v);
                    stage = 2;
                }
                (Segment::Element(v), 0..=2) => {
                    addr.element = Some(v);
                    stage = 3;
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(addr))
    }
}

impl Encode for Epath<'_> {
    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(&self.bytes);
    }
}

impl FromStr for Epath<'static> {
    type Err = PathParseError;

    /// Parse cpppo path notation (see the module docs).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Epath::from_segments(&parse_path(s)?)
    }
}

/// Renders cpppo path notation; a path that does not decode is shown as
/// `<invalid EPATH: hex bytes>`.
impl fmt::Display for Epath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_segments() {
            Ok(segs) => write!(f, "{}", DisplaySegments(&segs)),
            Err(_) => {
                f.write_str("<invalid EPATH:")?;
                for b in self.bytes.iter() {
                    write!(f, " {b:02X}")?;
                }
                f.write_str(">")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Text notation

/// Why a path in cpppo notation (or a segment list) was not accepted. `at` is a byte
/// offset into the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathParseError {
    /// Something other than what the grammar allows here.
    #[error("at {at}: expected {expected}, found {found:?}")]
    Expected {
        /// Byte offset in the text.
        at: usize,
        /// What would have been accepted.
        expected: &'static str,
        /// What was there (up to a few characters; empty at the end of the text).
        found: String,
    },
    /// A number that does not parse (decimal, `0x`, `0o` or `0b`).
    #[error("at {at}: invalid number {text:?}")]
    BadNumber {
        /// Byte offset in the text.
        at: usize,
        /// The text of the number.
        text: String,
    },
    /// A number too large for where it is used.
    #[error("at {at}: {value} is out of range for {what}")]
    OutOfRange {
        /// Byte offset in the text.
        at: usize,
        /// What the number is.
        what: &'static str,
        /// The number.
        value: u64,
    },
    /// A bare number in an `@` path past the 4th position (class, instance, attribute,
    /// element): write it as JSON.
    #[error("at {at}: no default segment type at position {position} of an @ path; write it as JSON, e.g. {{\"element\":4}}")]
    NoDefault {
        /// Byte offset in the text.
        at: usize,
        /// Zero-based position in the `@` path.
        position: usize,
    },
    /// A JSON segment object whose keys are not one of the known segment forms.
    #[error("at {at}: unrecognised segment object (keys {keys})")]
    UnknownSegment {
        /// Byte offset in the text.
        at: usize,
        /// The keys it had.
        keys: String,
    },
    /// A JSON value of the wrong kind for its key.
    #[error("at {at}: {key:?} needs {expected}")]
    WrongValue {
        /// Byte offset in the text.
        at: usize,
        /// The key.
        key: String,
        /// What kind of value it needs.
        expected: &'static str,
    },
    /// Text that must be ASCII (symbolic names) or Latin-1 (link addresses) is not.
    #[error("at {at}: {what} must be ASCII")]
    NotAscii {
        /// Byte offset in the text (0 when checking a segment).
        at: usize,
        /// What it was.
        what: &'static str,
    },
    /// Too long to encode.
    #[error("{what} of {len} bytes is longer than {max}")]
    TooLong {
        /// What it was.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// Port 0 is reserved.
    #[error("port 0 is reserved")]
    PortZero,
    /// An element count (`[a-b]` or `*n`) where only a path is accepted.
    #[error("at {at}: an element count is not allowed here")]
    CountNotAllowed {
        /// Byte offset in the text.
        at: usize,
    },
    /// A route path containing something other than port segments.
    #[error("route path segment {index} is not a port segment")]
    NotARoute {
        /// Zero-based index of the offending segment.
        index: usize,
    },
}

/// Characters that end a bare tag name.
fn is_delimiter(c: u8) -> bool {
    matches!(
        c,
        b'.' | b'[' | b']' | b'*' | b'/' | b'{' | b'}' | b'"' | b',' | b'=' | b'@'
    ) || c.is_ascii_whitespace()
}

/// Names rendered bare (without JSON): what Logix allows in a tag or program name.
fn is_bare_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Segments and an optional element count with its text offset.
type ParsedPath = (Vec<Segment<'static>>, Option<(u32, usize)>);

struct Parser<'s> {
    s: &'s [u8],
    pos: usize,
}

/// A value in a flat JSON segment object.
enum JsonValue {
    Num(u64),
    Str(Vec<u8>),
    Bool(bool),
}

impl<'s> Parser<'s> {
    fn new(s: &'s str) -> Self {
        Parser {
            s: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn found(&self) -> String {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        String::from_utf8_lossy(rest.get(..rest.len().min(8)).unwrap_or_default()).into_owned()
    }

    fn expected(&self, expected: &'static str) -> PathParseError {
        PathParseError::Expected {
            at: self.pos,
            expected,
            found: self.found(),
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), PathParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// A number: decimal, `0x` hex, `0o` octal or `0b` binary (letters and digits).
    fn number(&mut self) -> Result<(u64, usize), PathParseError> {
        let at = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(self.s.get(at..self.pos).unwrap_or_default()).unwrap_or("");
        if text.is_empty() {
            return Err(self.expected("a number"));
        }
        parse_number(text)
            .map(|v| (v, at))
            .ok_or_else(|| PathParseError::BadNumber {
                at,
                text: text.to_string(),
            })
    }

    fn number_u32(&mut self, what: &'static str) -> Result<u32, PathParseError> {
        let (v, at) = self.number()?;
        u32::try_from(v).map_err(|_| PathParseError::OutOfRange { at, what, value: v })
    }

    fn json_string(&mut self) -> Result<Vec<u8>, PathParseError> {
        self.expect(b'"', "'\"'")?;
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.expected("a closing '\"'"));
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.expected("an escape"))?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self.s.get(self.pos..self.pos + 4).unwrap_or_default();
                            let v = std::str::from_utf8(hex)
                                .ok()
                                .filter(|h| h.len() == 4)
                                .and_then(|h| u16::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.expected("4 hex digits"))?;
                            self.pos += 4;
                            // Strings here are bytes: only \u0000..\u00FF are bytes.
                            out.push(u8::try_from(v).map_err(|_| PathParseError::NotAscii {
                                at,
                                what: "string (Latin-1 only)",
                            })?);
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.expected("a JSON escape"));
                        }
                    }
                }
                c if c.is_ascii() => out.push(c),
                _ => {
                    return Err(PathParseError::NotAscii {
                        at,
                        what: "string (use \\u00XX escapes)",
                    })
                }
            }
        }
    }

    /// A flat JSON object of string, number and boolean values.
    fn json_object(&mut self) -> Result<Vec<(String, JsonValue, usize)>, PathParseError> {
        self.expect(b'{', "'{'")?;
        let mut fields = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(fields);
        }
        loop {
            self.ws();
            let key = String::from_utf8_lossy(&self.json_string()?).into_owned();
            self.ws();
            self.expect(b':', "':'")?;
            self.ws();
            let at = self.pos;
            let value = match self.peek() {
                Some(b'"') => JsonValue::Str(self.json_string()?),
                Some(b't') if self.s.get(self.pos..self.pos + 4) == Some(b"true") => {
                    self.pos += 4;
                    JsonValue::Bool(true)
                }
                Some(b'f') if self.s.get(self.pos..self.pos + 5) == Some(b"false") => {
                    self.pos += 5;
                    JsonValue::Bool(false)
                }
                _ => JsonValue::Num(self.number()?.0),
            };
            if fields.iter().any(|(k, _, _)| *k == key) {
                return Err(PathParseError::UnknownSegment {
                    at,
                    keys: format!("duplicate {key:?}"),
                });
            }
            fields.push((key, value, at));
            self.ws();
            if self.eat(b'}') {
                return Ok(fields);
            }
            self.expect(b',', "',' or '}'")?;
        }
    }

    /// A segment written as a flat JSON object.
    fn json_segment(&mut self) -> Result<Segment<'static>, PathParseError> {
        let at = self.pos;
        let fields = self.json_object()?;
        segment_from_fields(at, fields)
    }

    /// `[i, j]` index lists, repeated, with an optional `-last` range on the final one.
    fn indexes(
        &mut self,
        out: &mut Vec<Segment<'static>>,
        count: &mut Option<(u32, usize)>,
    ) -> Result<(), PathParseError> {
        while self.eat(b'[') {
            if count.is_some() {
                return Err(self.expected("nothing after an element range"));
            }
            loop {
                self.ws();
                let first = self.number_u32("element")?;
                out.push(Segment::Element(first));
                self.ws();
                if self.peek() == Some(b'-') {
                    let at = self.pos;
                    self.pos += 1;
                    self.ws();
                    let last = self.number_u32("element")?;
                    if last < first {
                        return Err(PathParseError::OutOfRange {
                            at,
                            what: "element range end",
                            value: u64::from(last),
                        });
                    }
                    *count = Some((last - first + 1, at));
                    self.ws();
                    self.expect(b']', "']'")?;
                    break;
                }
                if self.eat(b']') {
                    break;
                }
                self.expect(b',', "',' or ']'")?;
            }
        }
        Ok(())
    }

    /// One `.`-separated component.
    fn component(
        &mut self,
        out: &mut Vec<Segment<'static>>,
        count: &mut Option<(u32, usize)>,
    ) -> Result<(), PathParseError> {
        if count.is_some() {
            return Err(self.expected("nothing after an element range"));
        }
        if self.eat(b'@') {
            const DEFAULTS: [Logical; 4] = [
                Logical::Class,
                Logical::Instance,
                Logical::Attribute,
                Logical::Element,
            ];
            let mut position = 0;
            let mut leading_ports = true;
            loop {
                let at = self.pos;
                let seg = if self.peek() == Some(b'{') {
                    self.json_segment()?
                } else {
                    let kind = DEFAULTS
                        .get(position)
                        .copied()
                        .ok_or(PathParseError::NoDefault { at, position })?;
                    kind.segment(self.number_u32(kind.key())?)
                };
                if !(leading_ports && matches!(seg, Segment::Port { .. })) {
                    leading_ports = false;
                    position += 1;
                }
                out.push(seg);
                if !self.eat(b'/') {
                    break;
                }
            }
        } else {
            let at = self.pos;
            while self.peek().is_some_and(|c| !is_delimiter(c)) {
                self.pos += 1;
            }
            let name = self.s.get(at..self.pos).unwrap_or_default();
            if name.is_empty() {
                return Err(self.expected("a tag name or '@'"));
            }
            if !name.is_ascii() {
                return Err(PathParseError::NotAscii {
                    at,
                    what: "tag name",
                });
            }
            let name = String::from_utf8_lossy(name).into_owned();
            if name.len() > 255 {
                return Err(PathParseError::TooLong {
                    what: "symbolic name",
                    len: name.len(),
                    max: 255,
                });
            }
            out.push(Segment::Symbolic(Cow::Owned(name)));
        }
        self.indexes(out, count)
    }

    /// A whole path, with an optional element count.
    fn path(&mut self) -> Result<ParsedPath, PathParseError> {
        let mut out = Vec::new();
        let mut count = None;
        if self.s.is_empty() {
            return Ok((out, None));
        }
        loop {
            self.component(&mut out, &mut count)?;
            if !self.eat(b'.') {
                break;
            }
        }
        if self.peek() == Some(b'*') {
            let at = self.pos;
            self.pos += 1;
            let n = self.number_u32("element count")?;
            if count.is_some() || n == 0 {
                return Err(PathParseError::OutOfRange {
                    at,
                    what: "element count",
                    value: u64::from(n),
                });
            }
            count = Some((n, at));
        }
        if self.pos < self.s.len() {
            return Err(self.expected("'.', '[', '/' or the end"));
        }
        for s in &out {
            s.validate()?;
        }
        Ok((out, count))
    }
}

/// Parse `text` as a number: decimal (leading zeros are still decimal), `0x` hex, `0o`
/// octal or `0b` binary.
pub fn parse_number(text: &str) -> Option<u64> {
    let lower = text.get(..2).map(str::to_ascii_lowercase);
    let (digits, radix) = match lower.as_deref() {
        Some("0x") => (text.get(2..)?, 16),
        Some("0o") => (text.get(2..)?, 8),
        Some("0b") => (text.get(2..)?, 2),
        _ => (text, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn segment_from_fields(
    at: usize,
    fields: Vec<(String, JsonValue, usize)>,
) -> Result<Segment<'static>, PathParseError> {
    let keys: Vec<&str> = fields.iter().map(|(k, _, _)| k.as_str()).collect();
    let unknown = || PathParseError::UnknownSegment {
        at,
        keys: keys.join(","),
    };
    let num = |key: &'static str, max: u64| -> Result<u64, PathParseError> {
        match fields.iter().find(|(k, _, _)| k == key) {
            Some((_, JsonValue::Num(v), _)) if *v <= max => Ok(*v),
            Some((_, JsonValue::Num(v), vat)) => Err(PathParseError::OutOfRange {
                at: *vat,
                what: key,
                value: *v,
            }),
            Some((_, _, vat)) => Err(PathParseError::WrongValue {
                at: *vat,
                key: key.to_string(),
                expected: "a number",
            }),
            None => Err(unknown()),
        }
    };
    let has_only = |allowed: &[&str]| keys.iter().all(|k| allowed.contains(k));
    if keys.len() == 1 {
        let (key, value, vat) = fields.first().ok_or_else(unknown)?;
        let logical = [
            Logical::Class,
            Logical::Instance,
            Logical::Element,
            Logical::ConnectionPoint,
            Logical::Attribute,
        ]
        .into_iter()
        .find(|l| l.key() == key);
        if let Some(l) = logical {
            let v = num(l.key(), u64::from(u32::MAX))?;
            return Ok(l.segment(u32::try_from(v).unwrap_or(u32::MAX)));
        }
        return match (key.as_str(), value) {
            ("symbolic", JsonValue::Str(s)) => {
                if !s.is_ascii() {
                    return Err(PathParseError::NotAscii {
                        at: *vat,
                        what: "symbolic name",
                    });
                }
                Ok(Segment::Symbolic(Cow::Owned(
                    String::from_utf8_lossy(s).into_owned(),
                )))
            }
            ("data", JsonValue::Str(s)) => {
                let hex = std::str::from_utf8(s).unwrap_or("");
                let bytes = (0..hex.len() / 2)
                    .map(|i| {
                        hex.get(2 * i..2 * i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
                    .filter(|b| hex.len() % 4 == 0 && b.len() * 2 == hex.len());
                bytes
                    .map(|b| Segment::Data(Cow::Owned(b)))
                    .ok_or(PathParseError::WrongValue {
                        at: *vat,
                        key: "data".into(),
                        expected: "hex digits, 4 per word",
                    })
            }
            ("symbolic", _) | ("data", _) => Err(PathParseError::WrongValue {
                at: *vat,
                key: key.clone(),
                expected: "a string",
            }),
            _ => Err(unknown()),
        };
    }
    if keys.len() == 2 && has_only(&["port", "link"]) {
        let port = u16::try_from(num("port", 0xFFFF)?).unwrap_or(0);
        if port == 0 {
            return Err(PathParseError::PortZero);
        }
        let link = match fields.iter().find(|(k, _, _)| k == "link") {
            Some((_, JsonValue::Num(v), vat)) => {
                Link::Number(u8::try_from(*v).map_err(|_| PathParseError::OutOfRange {
                    at: *vat,
                    what: "link",
                    value: *v,
                })?)
            }
            Some((_, JsonValue::Str(s), _)) => Link::Address(Cow::Owned(s.clone())),
            Some((_, _, vat)) => {
                return Err(PathParseError::WrongValue {
                    at: *vat,
                    key: "link".into(),
                    expected: "a number or a string",
                })
            }
            None => return Err(unknown()),
        };
        return Ok(Segment::Port { port, link });
    }
    const KEY_FIELDS: [&str; 6] = [
        "vendor",
        "device_type",
        "product_code",
        "major_revision",
        "minor_revision",
        "compatibility",
    ];
    if keys.contains(&"vendor") && has_only(&KEY_FIELDS) {
        let get = |k: &'static str, max: u64| -> Result<u64, PathParseError> {
            if keys.contains(&k) {
                num(k, max)
            } else {
                Ok(0)
            }
        };
        let compatibility = match fields.iter().find(|(k, _, _)| k == "compatibility") {
            None => false,
            Some((_, JsonValue::Bool(b), _)) => *b,
            Some((_, _, vat)) => {
                return Err(PathParseError::WrongValue {
                    at: *vat,
                    key: "compatibility".into(),
                    expected: "true or false",
                })
            }
        };
        let u16_of = |v: u64| u16::try_from(v).unwrap_or(0);
        let u8_of = |v: u64| u8::try_from(v).unwrap_or(0);
        return Ok(Segment::ElectronicKey(ElectronicKey {
            vendor: u16_of(get("vendor", 0xFFFF)?),
            device_type: u16_of(get("device_type", 0xFFFF)?),
            product_code: u16_of(get("product_code", 0xFFFF)?),
            major_revision: u8_of(get("major_revision", 0x7F)?),
            compatibility,
            minor_revision: u8_of(get("minor_revision", 0xFF)?),
        }));
    }
    Err(unknown())
}

/// Parse a path in cpppo notation (see the module docs) into segments. An element
/// count (`Tag[0-9]`, `Tag*10`) is an error here; see [`parse_path_with_count`].
pub fn parse_path(text: &str) -> Result<Vec<Segment<'static>>, PathParseError> {
    match Parser::new(text).path()? {
        (segs, None) => Ok(segs),
        (_, Some((_, at))) => Err(PathParseError::CountNotAllowed { at }),
    }
}

/// Parse a path in cpppo notation that may end in an element count, as cpppo's
/// command-line tag syntax allows: `Tag[2-5]` (elements 2 to 5: element 2, count 4) or
/// `Tag[2]*4`. Returns the segments and the count, if one was given.
pub fn parse_path_with_count(
    text: &str,
) -> Result<(Vec<Segment<'static>>, Option<u32>), PathParseError> {
    let (segs, count) = Parser::new(text).path()?;
    Ok((segs, count.map(|(n, _)| n)))
}

/// Parse a route path as cpppo's `--route-path` takes it: a JSON list of segment objects
/// (`[{"port":1,"link":0}]`), one object, or the shorthand `port/link[/port/link...]`
/// (`1/0`, `2/192.168.1.2`; the link is a number or an IP address). `0`, `false`,
/// `null` and `[]` mean "no route path" and give `None`. Every segment must be a port
/// segment.
pub fn parse_route_path(text: &str) -> Result<Option<Epath<'static>>, PathParseError> {
    let segs = parse_route_segments(text, false)?;
    segs.map(|s| Epath::from_segments(&s)).transpose()
}

/// Parse a connection path (for Forward Open, or a route with a target): a route path
/// as [`parse_route_path`] takes it, optionally followed by `/` and a CIP path, e.g.
/// `1/0/@2/1` or `2/192.168.0.24/1/0/Tag[3]`. In the JSON list form, string elements are
/// parsed as cpppo paths.
pub fn parse_connection_path(text: &str) -> Result<Option<Epath<'static>>, PathParseError> {
    let segs = parse_route_segments(text, true)?;
    segs.map(|s| Epath::from_segments(&s)).transpose()
}

fn parse_route_segments(
    text: &str,
    trailer: bool,
) -> Result<Option<Vec<Segment<'static>>>, PathParseError> {
    let t = text.trim();
    let off = text.len() - text.trim_start().len();
    if matches!(t, "" | "0" | "false" | "null" | "[]") {
        return Ok(None);
    }
    let mut p = Parser {
        s: text.as_bytes(),
        pos: off,
    };
    let mut segs = Vec::new();
    match t.as_bytes().first() {
        Some(b'[') => {
            p.pos += 1;
            loop {
                p.ws();
                if p.peek() == Some(b'"') {
                    let at = p.pos;
                    let s = p.json_string()?;
                    let s = String::from_utf8_lossy(&s).into_owned();
                    segs.extend(parse_path(&s).map_err(|e| shift(e, at + 1))?);
                } else {
                    segs.push(p.json_segment()?);
                }
                p.ws();
                if p.eat(b']') {
                    break;
                }
                p.expect(b',', "',' or ']'")?;
            }
        }
        Some(b'{') => segs.push(p.json_segment()?),
        _ => {
            // Shorthand: port/link pairs while they parse, then (maybe) a CIP path.
            let parts: Vec<&str> = t.split('/').collect();
            let mut i = 0;
            let mut at = off;
            while let (Some(port), Some(link)) = (parts.get(i), parts.get(i + 1)) {
                let Some(seg) = port_link(port, link) else {
                    break;
                };
                segs.push(seg?);
                at += port.len() + link.len() + 2;
                i += 2;
            }
            if i < parts.len() {
                let rest = parts.get(i..).unwrap_or_default().join("/");
                if !trailer && segs.is_empty() {
                    return Err(PathParseError::Expected {
                        at,
                        expected: "<port>/<link> or a JSON route path",
                        found: rest.chars().take(8).collect(),
                    });
                }
                segs.extend(parse_path(&rest).map_err(|e| shift(e, at))?);
            }
        }
    }
    p.ws();
    if t.starts_with(['[', '{']) && p.pos < text.len() {
        return Err(p.expected("the end"));
    }
    if !trailer {
        if let Some(index) = segs.iter().position(|s| !matches!(s, Segment::Port { .. })) {
            return Err(PathParseError::NotARoute { index });
        }
    }
    Ok(Some(segs))
}

/// One shorthand `port/link` pair: `None` if it does not look like one (so the rest is
/// a CIP path), `Some(Err)` if it does but is out of range.
fn port_link(port: &str, link: &str) -> Option<Result<Segment<'static>, PathParseError>> {
    let port = parse_number(port.trim())?;
    let link = link.trim();
    let link = if let Some(n) = parse_number(link) {
        match u8::try_from(n) {
            Ok(n) => Link::Number(n),
            Err(_) => {
                return Some(Err(PathParseError::OutOfRange {
                    at: 0,
                    what: "link",
                    value: n,
                }))
            }
        }
    } else if let Ok(ip) = link.parse::<std::net::IpAddr>() {
        Link::Address(Cow::Owned(ip.to_string().into_bytes()))
    } else {
        return None;
    };
    Some(match u16::try_from(port) {
        Ok(0) => Err(PathParseError::PortZero),
        Ok(port) => Ok(Segment::Port { port, link }),
        Err(_) => Err(PathParseError::OutOfRange {
            at: 0,
            what: "port",
            value: port,
        }),
    })
}

/// Shift the text offset of an error from parsing a substring.
fn shift(e: PathParseError, base: usize) -> PathParseError {
    use PathParseError as E;
    match e {
        E::Expected {
            at,
            expected,
            found,
        } => E::Expected {
            at: at + base,
            expected,
            found,
        },
        E::BadNumber { at, text } => E::BadNumber {
            at: at + base,
            text,
        },
        E::OutOfRange { at, what, value } => E::OutOfRange {
            at: at + base,
            what,
            value,
        },
        E::NoDefault { at, position } => E::NoDefault {
            at: at + base,
            position,
        },
        E::UnknownSegment { at, keys } => E::UnknownSegment {
            at: at + base,
            keys,
        },
        E::WrongValue { at, key, expected } => E::WrongValue {
            at: at + base,
            key,
            expected,
        },
        E::NotAscii { at, what } => E::NotAscii {
            at: at + base,
            what,
        },
        E::CountNotAllowed { at } => E::CountNotAllowed { at: at + base },
        other => other,
    }
}

/// Write bytes as a JSON string, escaping quotes, backslashes and anything outside
/// printable ASCII as `\u00XX` (so any byte string survives a round trip).
fn write_json_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("\"")?;
    for &b in bytes {
        match b {
            b'"' => f.write_str("\\\"")?,
            b'\\' => f.write_str("\\\\")?,
            0x20..=0x7E => write!(f, "{}", char::from(b))?,
            _ => write!(f, "\\u{b:04x}")?,
        }
    }
    f.write_str("\"")
}

/// Renders one segment as its flat JSON object (`{"class":2}`).
impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((kind, v)) = self.logical() {
            return write!(f, "{{\"{}\":{v}}}", kind.key());
        }
        match self {
            Segment::Port { port, link } => {
                write!(f, "{{\"port\":{port},\"link\":")?;
                match link {
                    Link::Number(n) => write!(f, "{n}")?,
                    Link::Address(a) => write_json_bytes(f, a)?,
                }
                f.write_str("}")
            }
            Segment::Symbolic(s) => {
                f.write_str("{\"symbolic\":")?;
                write_json_bytes(f, s.as_bytes())?;
                f.write_str("}")
            }
            Segment::Data(d) => {
                f.write_str("{\"data\":\"")?;
                for b in d.iter() {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("\"}")
            }
            Segment::ElectronicKey(k) => write!(
                f,
                "{{\"vendor\":{},\"device_type\":{},\"product_code\":{},\"major_revision\":{},\"minor_revision\":{},\"compatibility\":{}}}",
                k.vendor, k.device_type, k.product_code, k.major_revision, k.minor_revision, k.compatibility
            ),
            _ => Ok(()),
        }
    }
}

/// Renders a list of segments in cpppo path notation; `parse_path` reads it back.
///
/// A bare Logix-style name is used for symbolic segments that are plain names (letters,
/// digits, `_`, `:`), with the element segments that follow as `[i,j]`; everything else
/// goes into `@` components, as bare numbers where the position gives the type (class
/// in hex, as cpppo shows it) and as JSON otherwise.
#[derive(Debug, Clone, Copy)]
pub struct DisplaySegments<'s, 'a>(pub &'s [Segment<'a>]);

impl fmt::Display for DisplaySegments<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DEFAULTS: [Logical; 4] = [
            Logical::Class,
            Logical::Instance,
            Logical::Attribute,
            Logical::Element,
        ];
        let mut i = 0;
        let segs = self.0;
        let mut first = true;
        while let Some(seg) = segs.get(i) {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            match seg {
                Segment::Symbolic(name) if is_bare_name(name) => {
                    f.write_str(name)?;
                    i += 1;
                    let mut sep = "[";
                    while let Some(Segment::Element(e)) = segs.get(i) {
                        write!(f, "{sep}{e}")?;
                        sep = ",";
                        i += 1;
                    }
                    if sep == "," {
                        f.write_str("]")?;
                    }
                }
                _ => {
                    f.write_str("@")?;
                    let mut position = 0;
                    let mut leading_ports = true;
                    let mut sep = "";
                    while let Some(seg) = segs.get(i) {
                        if matches!(seg, Segment::Symbolic(n) if is_bare_name(n)) {
                            break;
                        }
                        f.write_str(sep)?;
                        sep = "/";
                        match seg.logical() {
                            Some((kind, v)) if DEFAULTS.get(position) == Some(&kind) => {
                                if kind == Logical::Class {
                                    write!(f, "0x{v:04X}")?;
                                } else {
                                    write!(f, "{v}")?;
                                }
                            }
                            _ => write!(f, "{seg}")?,
                        }
                        if !(leading_ports && matches!(seg, Segment::Port { .. })) {
                            leading_ports = false;
                            position += 1;
                        }
                        i += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segs(bytes: &[u8]) -> Vec<Segment<'_>> {
        Segments::padded(bytes, 0)
            .collect::<DecodeResult<_>>()
            .unwrap()
    }

    fn sym(s: &str) -> Segment<'static> {
        Segment::Symbolic(Cow::Owned(s.to_string()))
    }

    fn addr(port: u16, a: &str) -> Segment<'static> {
        Segment::port_address(port, a)
    }

    #[test]
    fn logical_segments_in_all_three_forms() {
        // cpppo server/enip_test.py extpath_3 (after its size byte, before the decoy).
        let bytes = [
            0x28, 0x01, 0x29, 0x00, 0x01, 0x02, 0x2a, 0x00, 0x01, 0x02, 0x03, 0x04, 0x20, 0x11,
            0x21, 0x00, 0x11, 0x02, 0x24, 0x21, 0x25, 0x00, 0x21, 0x02, 0x30, 0x31, 0x31, 0x00,
            0x31, 0x02,
        ];
        assert_eq!(
            segs(&bytes),
            vec![
                Segment::Element(0x01),
                Segment::Element(0x0201),
                Segment::Element(0x04030201),
                Segment::Class(0x11),
                Segment::Class(0x0211),
                Segment::Instance(0x21),
                Segment::Instance(0x0221),
                Segment::Attribute(0x31),
                Segment::Attribute(0x0231),
            ]
        );
        assert_eq!(
            Epath::from_segments(&segs(&bytes)).unwrap().as_bytes(),
            bytes
        );
        // cpppo extpath_9 (LEC-GEN1_v1 EDS): assembly, instance, two connection points.
        let bytes = [0x20, 0x04, 0x24, 0x05, 0x2C, 0x03, 0x2C, 0x64];
        assert_eq!(
            segs(&bytes),
            vec![
                Segment::Class(4),
                Segment::Instance(5),
                Segment::ConnectionPoint(3),
                Segment::ConnectionPoint(100),
            ]
        );
    }

    #[test]
    fn symbolic_segments_with_and_without_pad() {
        // cpppo server/enip_test.py extpath_4.
        let bytes = [
            0x91, 0x06, b'a', b'b', b'c', b'1', b'2', b'3', 0x91, 0x05, b'x', b'y', b'z', b'1',
            b'2', 0x00,
        ];
        let s = segs(&bytes);
        assert_eq!(s, vec![sym("abc123"), sym("xyz12")]);
        assert!(matches!(&s[0], Segment::Symbolic(Cow::Borrowed(_))));
        assert_eq!(Epath::from_segments(&s).unwrap().as_bytes(), bytes);
        // cpppo server/enip_test.py: a Write Tag Fragmented (0x53) request, path size 5:
        // 91 05 "SCADA" 00 28 0C, i.e. SCADA[12].
        let bytes = [0x91, 0x05, b'S', b'C', b'A', b'D', b'A', 0x00, 0x28, 0x0C];
        assert_eq!(segs(&bytes), vec![sym("SCADA"), Segment::Element(12)]);
        assert_eq!(Epath::from_wire(&bytes).to_string(), "SCADA[12]");
        // The same capture's Unconnected Send (0x52) path 20 06 24 01: Connection Manager.
        let p = Epath::from_wire(&[0x20, 0x06, 0x24, 0x01]);
        assert_eq!(p.to_string(), "@0x0006/1");
        assert_eq!("@6/1".parse::<Epath>().unwrap(), p);
    }

    #[test]
    fn port_segments() {
        // cpppo enip_test.py extpath_5, extpath_6 (route paths, after size and pad).
        assert_eq!(segs(&[0x01, 0x00]), vec![Segment::port(1, 0)]);
        assert_eq!(
            segs(&[0x0F, 0x01, 0x02, 0x99]),
            vec![Segment::port(513, 0x99)]
        );
        assert_eq!(
            Epath::from_segments(&[Segment::port(513, 0x99)])
                .unwrap()
                .as_bytes(),
            [0x0F, 0x01, 0x02, 0x99]
        );
        // cpppo parser_test.py test_EPATH_single: port 2, link "10.0.7.1" (even, no pad)
        // and the same with extended port 22222.
        let b = b"\x12\x0810.0.7.1";
        assert_eq!(segs(b), vec![addr(2, "10.0.7.1")]);
        let b = b"\x1F\x08\xCE\x5610.0.7.1";
        assert_eq!(segs(b), vec![addr(22222, "10.0.7.1")]);
        assert_eq!(Epath::from_segments(&segs(b)).unwrap().as_bytes(), b);
        // cpppo extpath_7 / extpath_7_prod (CIP Vol 1 Table 10-6.15, with cpppo's errata):
        // port 3, link "130.151.137.105" (odd: pad), then 16-bit class/instance, attribute.
        let wire = [
            0x13, 0x0F, 0x31, 0x33, 0x30, 0x2E, 0x31, 0x35, 0x31, 0x2E, 0x31, 0x33, 0x37, 0x2E,
            0x31, 0x30, 0x35, 0x00, 0x21, 0x00, 0x04, 0x00, 0x25, 0x00, 0x02, 0x00, 0x30, 0x03,
        ];
        let expect = vec![
            addr(3, "130.151.137.105"),
            Segment::Class(4),
            Segment::Instance(2),
            Segment::Attribute(3),
        ];
        assert_eq!(segs(&wire), expect);
        let produced = [
            0x13, 0x0F, 0x31, 0x33, 0x30, 0x2E, 0x31, 0x35, 0x31, 0x2E, 0x31, 0x33, 0x37, 0x2E,
            0x31, 0x30, 0x35, 0x00, 0x20, 0x04, 0x24, 0x02, 0x30, 0x03,
        ];
        assert_eq!(Epath::from_segments(&expect).unwrap().as_bytes(), produced);
        // cpppo extpath_8_prod: the same with extended port 0x0103.
        let wire = [
            0x1F, 0x0F, 0x03, 0x01, 0x31, 0x33, 0x30, 0x2E, 0x31, 0x35, 0x31, 0x2E, 0x31, 0x33,
            0x37, 0x2E, 0x31, 0x30, 0x35, 0x00, 0x20, 0x04, 0x24, 0x02, 0x30, 0x03,
        ];
        let mut expect = expect;
        expect[0] = addr(0x0103, "130.151.137.105");
        assert_eq!(segs(&wire), expect);
        assert_eq!(Epath::from_segments(&expect).unwrap().as_bytes(), wire);
    }

    #[test]
    fn electronic_key_and_data_segments() {
        // Electronic key format 4 (CIP Vol 1 C-1.4.2): 34 04, vendor, device type, product
        // code, major revision (| 0x80 compatibility), minor; then a 1-word data segment.
        let bytes = [
            0x34, 0x04, 0x01, 0x00, 0x0E, 0x00, 0x37, 0x00, 0x94, 0x0B, 0x80, 0x01, 0x01, 0x02,
        ];
        let s = segs(&bytes);
        assert_eq!(
            s,
            vec![
                Segment::ElectronicKey(ElectronicKey {
                    vendor: 1,
                    device_type: 14,
                    product_code: 55,
                    major_revision: 20,
                    compatibility: true,
                    minor_revision: 11,
                }),
                Segment::Data(Cow::Borrowed(&[0x01, 0x02][..])),
            ]
        );
        assert_eq!(Epath::from_segments(&s).unwrap().as_bytes(), bytes);
    }

    #[test]
    fn bad_segments_are_named_with_their_offset() {
        let e = segs_err(&[0x20, 0x02, 0x38, 0x01]);
        assert_eq!((e.field(), e.offset()), ("epath.segment_type", 2));
        let e = segs_err(&[0x20, 0x02, 0x43, 0x01]);
        assert_eq!((e.field(), e.offset()), ("epath.segment_type", 2));
        // Truncated 16-bit class: Invalid, not Incomplete (the path length was given).
        let e = segs_err(&[0x21, 0x00, 0x01]);
        assert!(!e.is_incomplete());
        assert_eq!(e.field(), "epath.logical_value");
        // Symbolic overrunning the path.
        let e = segs_err(&[0x91, 0x09, b'a', b'b']);
        assert_eq!(e.field(), "epath.symbolic");
        // Non-ASCII name.
        let e = segs_err(&[0x91, 0x02, 0xC3, 0xA9]);
        assert_eq!((e.field(), e.offset()), ("epath.symbolic", 2));
        // Port 0 is reserved; reserved logical format.
        assert_eq!(segs_err(&[0x00, 0x01]).field(), "epath.segment_type");
        assert_eq!(segs_err(&[0x23, 0x01]).field(), "epath.segment_type");
        // The iterator stops after the first error.
        let p = Epath::from_wire(&[0xFF, 0x00, 0x20, 0x01]);
        assert_eq!(p.segments().count(), 1);
    }

    fn segs_err(bytes: &[u8]) -> DecodeError {
        Epath::from_wire(bytes).to_segments().unwrap_err()
    }

    #[test]
    fn packed_form_has_no_pads() {
        let s = vec![
            Segment::Class(0x1FF),
            Segment::Element(0x10000),
            sym("abc"),
            addr(2, "1.2.3.4"),
        ];
        let mut packed = Vec::new();
        for seg in &s {
            seg.encode_packed(&mut packed);
        }
        assert_eq!(
            packed[..9],
            [0x21, 0xFF, 0x01, 0x2A, 0x00, 0x00, 0x01, 0x00, 0x91]
        );
        assert_eq!(
            packed.len(),
            s.iter().map(Segment::packed_len).sum::<usize>()
        );
        let back: Vec<_> = Segments::packed(&packed, 0)
            .collect::<DecodeResult<_>>()
            .unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn decode_takes_words_and_logical_address() {
        let bytes = [0x20, 0x02, 0x24, 0x01, 0x30, 0x03, 0xFF];
        let mut r = Reader::new(&bytes);
        let p = Epath::decode(&mut r, 3).unwrap();
        assert_eq!(p.word_len(), 3);
        assert_eq!(r.remaining(), 1);
        assert_eq!(
            p.logical_address().unwrap(),
            Some(LogicalAddress {
                class: 2,
                instance: Some(1),
                attribute: Some(3),
                ..LogicalAddress::default()
            })
        );
        assert!(Epath::decode(&mut Reader::new(&bytes), 4)
            .unwrap_err()
            .is_incomplete());
        let p: Epath = "@4/{\"connection\":100}".parse().unwrap();
        assert_eq!(
            p.logical_address().unwrap().unwrap().connection_point,
            Some(100)
        );
        let p: Epath = "@4/5/{\"connection\":100}".parse().unwrap();
        assert_eq!(p.logical_address().unwrap(), None);
        let p: Epath = "SCADA".parse().unwrap();
        assert_eq!(p.logical_address().unwrap(), None);
        let p: Epath = "@1/1/7/3".parse().unwrap();
        assert_eq!(p.logical_address().unwrap().unwrap().element, Some(3));
    }

    #[test]
    fn notation_examples() {
        let p = |s: &str| parse_path(s).unwrap();
        assert_eq!(
            p("@0x1FF/01/0x1A"),
            vec![
                Segment::Class(0x1FF),
                Segment::Instance(1),
                Segment::Attribute(0x1A)
            ]
        );
        assert_eq!(
            p("@0x93/3/10/0b101"),
            vec![
                Segment::Class(0x93),
                Segment::Instance(3),
                Segment::Attribute(10),
                Segment::Element(5)
            ]
        );
        assert_eq!(p("@0o17/1")[0], Segment::Class(15));
        assert_eq!(
            p("@4/5/{\"connection\":100}"),
            vec![
                Segment::Class(4),
                Segment::Instance(5),
                Segment::ConnectionPoint(100)
            ]
        );
        assert_eq!(
            p("@{\"port\":1,\"link\":0}/2/1"),
            vec![Segment::port(1, 0), Segment::Class(2), Segment::Instance(1)]
        );
        assert_eq!(
            p("@{\"port\":2, \"link\":\"192.168.1.2\"}/{\"symbolic\":\"SCADA\"}"),
            vec![addr(2, "192.168.1.2"), sym("SCADA")]
        );
        assert_eq!(p("SCADA"), vec![sym("SCADA")]);
        assert_eq!(p("SCADA[3]"), vec![sym("SCADA"), Segment::Element(3)]);
        assert_eq!(
            p("Arr[1,2]"),
            vec![sym("Arr"), Segment::Element(1), Segment::Element(2)]
        );
        assert_eq!(p("Arr[1][2]"), p("Arr[1,2]"));
        assert_eq!(
            p("Program:MainProgram.Tag.Member[3]"),
            vec![
                sym("Program:MainProgram"),
                sym("Tag"),
                sym("Member"),
                Segment::Element(3)
            ]
        );
        assert_eq!(p(""), vec![]);

        // Rendering, as cpppo shows numeric paths (class in hex).
        let r = |s: &str| s.parse::<Epath>().unwrap().to_string();
        assert_eq!(r("@0x93/3/10"), "@0x0093/3/10");
        assert_eq!(
            r("@4/5/{\"connection\":100}"),
            "@0x0004/5/{\"connection\":100}"
        );
        assert_eq!(
            r("@{\"port\":1, \"link\":0}/2/1"),
            "@{\"port\":1,\"link\":0}/0x0002/1"
        );
        assert_eq!(r("Arr[1][2]"), "Arr[1,2]");
        assert_eq!(
            r("Program:MainProgram.Tag[3].Member"),
            "Program:MainProgram.Tag[3].Member"
        );
        assert_eq!(
            r("@{\"symbolic\":\"a b\"}/{\"element\":2}"),
            "@{\"symbolic\":\"a b\"}/{\"element\":2}"
        );
        assert_eq!(r("SCADA.@{\"element\":2}"), "SCADA[2]");
    }

    #[test]
    fn notation_counts_and_errors() {
        assert_eq!(
            parse_path_with_count("Tag[2-5]").unwrap(),
            (vec![sym("Tag"), Segment::Element(2)], Some(4))
        );
        assert_eq!(
            parse_path_with_count("Tag[2]*4").unwrap(),
            (vec![sym("Tag"), Segment::Element(2)], Some(4))
        );
        assert_eq!(parse_path_with_count("Tag").unwrap().1, None);
        assert!(matches!(
            parse_path("Tag[2-5]"),
            Err(PathParseError::CountNotAllowed { at: 5 })
        ));
        assert!(matches!(
            parse_path("@1/2/3/4/5"),
            Err(PathParseError::NoDefault { at: 9, position: 4 })
        ));
        assert!(matches!(
            parse_path("@0x1FFFFFFFF"),
            Err(PathParseError::OutOfRange { at: 1, .. })
        ));
        assert!(matches!(
            parse_path("@0xZZ"),
            Err(PathParseError::BadNumber { at: 1, .. })
        ));
        assert!(matches!(
            parse_path("@{\"clas\":1}"),
            Err(PathParseError::UnknownSegment { at: 1, .. })
        ));
        assert!(matches!(
            parse_path("@{\"port\":0,\"link\":1}"),
            Err(PathParseError::PortZero)
        ));
        assert!(matches!(
            parse_path("@{\"port\":1,\"link\":256}"),
            Err(PathParseError::OutOfRange { what: "link", .. })
        ));
        assert!(matches!(
            parse_path("@{\"symbolic\":1}"),
            Err(PathParseError::WrongValue { .. })
        ));
        assert!(matches!(
            parse_path("Tägname"),
            Err(PathParseError::NotAscii { at: 0, .. })
        ));
        assert!(matches!(
            parse_path("Tag[1"),
            Err(PathParseError::Expected { at: 5, .. })
        ));
        assert!(matches!(
            parse_path("Tag]"),
            Err(PathParseError::Expected { at: 3, .. })
        ));
        assert!(parse_path(&"a".repeat(256)).is_err());
    }

    #[test]
    fn route_and_connection_paths() {
        let rp = |s: &str| {
            parse_route_path(s).unwrap().map(|p| {
                p.to_segments()
                    .unwrap()
                    .into_iter()
                    .map(Segment::into_owned)
                    .collect::<Vec<_>>()
            })
        };
        // cpppo README: --route-path forms.
        assert_eq!(
            rp("[{\"port\": 1, \"link\": 0}]"),
            Some(vec![Segment::port(1, 0)])
        );
        assert_eq!(rp("1/0"), Some(vec![Segment::port(1, 0)]));
        assert_eq!(
            rp("[{\"port\": 2, \"link\": \"192.168.1.2\"}]"),
            Some(vec![addr(2, "192.168.1.2")])
        );
        assert_eq!(rp("2/192.168.1.2"), Some(vec![addr(2, "192.168.1.2")]));
        assert_eq!(
            rp("1/0/2/192.168.1.2"),
            Some(vec![Segment::port(1, 0), addr(2, "192.168.1.2")])
        );
        assert_eq!(
            rp("{\"port\":1,\"link\":3}"),
            Some(vec![Segment::port(1, 3)])
        );
        for none in ["false", "0", "null", "[]", ""] {
            assert_eq!(rp(none), None);
        }
        assert_eq!(
            parse_route_path("1/0/@2/1"),
            Err(PathParseError::NotARoute { index: 1 })
        );
        assert!(parse_route_path("[{\"port\":1,\"link\":0}").is_err());
        assert!(parse_route_path("SCADA").is_err());
        // cpppo parse_connection_path: route, then a CIP path.
        let cp = parse_connection_path("2/192.168.0.24/1/0/@2/1")
            .unwrap()
            .unwrap();
        assert_eq!(
            cp.to_segments().unwrap(),
            vec![
                addr(2, "192.168.0.24"),
                Segment::port(1, 0),
                Segment::Class(2),
                Segment::Instance(1)
            ]
        );
        let cp = parse_connection_path("[{\"port\":1,\"link\":0}, \"@2/1\"]")
            .unwrap()
            .unwrap();
        assert_eq!(cp.to_string(), "@{\"port\":1,\"link\":0}/0x0002/1");
        assert_eq!(parse_connection_path(&cp.to_string()).unwrap().unwrap(), cp);
    }

    fn arb_segment() -> impl Strategy<Value = Segment<'static>> {
        let name = "[A-Za-z_:][A-Za-z0-9_:]{0,20}|[ -~]{0,40}";
        prop_oneof![
            any::<u32>().prop_map(Segment::Class),
            any::<u32>().prop_map(Segment::Instance),
            any::<u32>().prop_map(Segment::Element),
            any::<u32>().prop_map(Segment::ConnectionPoint),
            any::<u32>().prop_map(Segment::Attribute),
            (0u32..300).prop_map(Segment::Element),
            (1u16.., any::<u8>()).prop_map(|(p, l)| Segment::port(p, l)),
            (1u16.., proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(port, a)| {
                Segment::Port {
                    port,
                    link: Link::Address(Cow::Owned(a)),
                }
            }),
            name.prop_map(|s| Segment::Symbolic(Cow::Owned(s))),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|mut d| {
                d.truncate(d.len() & !1);
                Segment::Data(Cow::Owned(d))
            }),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
                0u8..0x80,
                any::<bool>(),
                any::<u8>()
            )
                .prop_map(
                    |(
                        vendor,
                        device_type,
                        product_code,
                        major_revision,
                        compatibility,
                        minor_revision,
                    )| {
                        Segment::ElectronicKey(ElectronicKey {
                            vendor,
                            device_type,
                            product_code,
                            major_revision,
                            compatibility,
                            minor_revision,
                        })
                    }
                ),
        ]
    }

    /// What `leading_class` answered before it looked at the type byte first.
    fn leading_class_by_decoding(p: &Epath<'_>) -> Option<u32> {
        match p.segments().next() {
            Some(Ok(Segment::Class(class))) => Some(class),
            _ => None,
        }
    }

    #[test]
    fn leading_class_of_each_class_form_and_of_other_first_segments() {
        for (bytes, class) in [
            (&[0x20, 0x06, 0x24, 0x01][..], Some(6)),
            (&[0x21, 0x00, 0x6B, 0x00][..], Some(0x6B)),
            (&[0x22, 0x00, 0x01, 0x00, 0x02, 0x00][..], Some(0x0002_0001)),
            // cpppo capture packet 14: the tag SCADA.
            (&[0x91, 0x05, 0x53, 0x43, 0x41, 0x44, 0x41, 0x00][..], None),
            (&[0x24, 0x01][..], None),
            (&[0x01, 0x00][..], None),
            // Reserved format, truncated class: no class.
            (&[0x23, 0x00][..], None),
            (&[0x21, 0x00][..], None),
            (&[][..], None),
        ] {
            let p = Epath::from_wire(bytes);
            assert_eq!(p.leading_class(), class, "{bytes:02X?}");
            assert_eq!(leading_class_by_decoding(&p), class, "{bytes:02X?}");
        }
    }

    proptest! {
        #[test]
        fn leading_class_agrees_with_decoding_the_first_segment(
            bytes in proptest::collection::vec(any::<u8>(), 0..12)
        ) {
            let p = Epath::from_wire(&bytes);
            prop_assert_eq!(p.leading_class(), leading_class_by_decoding(&p));
        }

        #[test]
        fn segments_round_trip_through_bytes(s in proptest::collection::vec(arb_segment(), 0..8)) {
            let p = Epath::from_segments(&s).unwrap();
            prop_assert_eq!(p.as_bytes().len() % 2, 0);
            prop_assert_eq!(p.as_bytes().len(), s.iter().map(Encode::encoded_len).sum::<usize>());
            prop_assert_eq!(&p.to_segments().unwrap(), &s);
            let mut packed = Vec::new();
            for seg in &s {
                seg.encode_packed(&mut packed);
            }
            let back: Vec<_> = Segments::packed(&packed, 0).collect::<DecodeResult<_>>().unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn notation_round_trips(s in proptest::collection::vec(arb_segment(), 0..8)) {
            let p = Epath::from_segments(&s).unwrap();
            let text = p.to_string();
            let back: Epath = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(back, p, "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let p = Epath::from_wire(&bytes);
            for _ in p.segments() {}
            let _ = p.logical_address();
            let _ = p.to_string();
            for _ in Segments::packed(&bytes, 0) {}
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[ -~]{0,40}|[@{}\\[\\]0-9x/.,:\"a-z-]{0,40}") {
            let _ = parse_path_with_count(&text);
            let _ = parse_route_path(&text);
            let _ = parse_connection_path(&text);
        }
    }
}
