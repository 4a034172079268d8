//! Logix (ControlLogix/CompactLogix) tag services and the Symbol and Template objects:
//! Read Tag, Write Tag, Read/Write Tag Fragmented, Read-Modify-Write Tag, the tag list
//! upload (Symbol object Get Instance Attribute List) and structure definitions
//! (Template object attributes and Template Read).
//!
//! Each request type is the *data* of a Message Router request whose path names the
//! tag (symbolic segments, or Symbol class/instance); each reply type is the data of
//! the Message Router reply. Where a request's data is self-delimiting, the decoder
//! can hand back bytes after it (`decode_with_trailing`) so a server may accept what
//! some clients append (pycomm3's Read-Modify-Write sends an 8-byte AND mask whatever
//! the mask size).
//!
//! In scope: layouts and the length checks the layouts allow (element count against
//! data length for fixed-size types, fragment offsets, mask sizes). Out of scope: tag
//! storage and the CIP status a device answers (the server engine).

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::cip::data::{DataType, TagType};
use crate::cip::message_router::{decode_body, decode_body_exact};
use crate::cip::objects::GetAttributeListReply;
use crate::wire::{DecodeResult, Encode, Reader};

/// The fixed size of one element of `t`, when known (elementary fixed-size types).
pub fn element_size(t: TagType) -> Option<usize> {
    t.data_type().and_then(DataType::size)
}

/// Read Tag (0x4C) request data: how many elements to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadTagRequest {
    /// Number of elements.
    pub elements: u16,
}

impl ReadTagRequest {
    /// Decode request data exactly.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "read_tag.end", Self::read)
    }

    /// Decode request data, returning any bytes after it.
    pub fn decode_with_trailing(data: &[u8]) -> DecodeResult<(Self, &[u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(ReadTagRequest {
            elements: r.u16_le("read_tag.elements")?,
        })
    }
}

impl Encode for ReadTagRequest {
    fn encoded_len(&self) -> usize {
        2
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.elements);
    }
}

/// Read Tag and Read Tag Fragmented reply data: the tag's type, then the value bytes
/// (with general status 0x06, only a fragment of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadTagReply<'a> {
    /// The tag's type.
    pub tag_type: TagType,
    /// The value bytes.
    #[serde(borrow)]
    pub data: Cow<'a, [u8]>,
}

/// Read Tag Fragmented reply data (same layout as [`ReadTagReply`]).
pub type ReadTagFragmentedReply<'a> = ReadTagReply<'a>;

impl<'a> ReadTagReply<'a> {
    /// Decode reply data.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "read_tag.end", |r| {
            let tag_type = TagType::decode(r)?;
            Ok(ReadTagReply {
                tag_type,
                data: Cow::Borrowed(r.rest()),
            })
        })
    }

    /// How many whole elements the data holds, for fixed-size elementary types.
    pub fn elements(&self) -> Option<usize> {
        element_size(self.tag_type).map(|size| self.data.len() / size)
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> ReadTagReply<'static> {
        ReadTagReply {
            tag_type: self.tag_type,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

impl Encode for ReadTagReply<'_> {
    fn encoded_len(&self) -> usize {
        self.tag_type.encoded_len() + self.data.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.tag_type.encode(out);
        out.put_slice(&self.data);
    }
}

/// Write Tag (0x4D) request data: type, element count, value bytes.
///
/// For fixed-size elementary types the value must be `elements * size` bytes: fewer is
/// an error, more are trailing bytes. For structures and strings the value is the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteTagRequest<'a> {
    /// The type of the data written.
    pub tag_type: TagType,
    /// Number of elements.
    pub elements: u16,
    /// The value bytes.
    #[serde(borrow)]
    pub data: Cow<'a, [u8]>,
}

impl<'a> WriteTagRequest<'a> {
    /// Decode request data exactly.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "write_tag.end", Self::read)
    }

    /// Decode request data, returning bytes beyond `elements` fixed-size values.
    pub fn decode_with_trailing(data: &'a [u8]) -> DecodeResult<(Self, &'a [u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let tag_type = TagType::decode(r)?;
        let elements = r.u16_le("write_tag.elements")?;
        let data = match element_size(tag_type) {
            Some(size) => r.take(usize::from(elements) * size, "write_tag.data")?,
            None => r.rest(),
        };
        Ok(WriteTagRequest {
            tag_type,
            elements,
            data: Cow::Borrowed(data),
        })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> WriteTagRequest<'static> {
        WriteTagRequest {
            data: Cow::Owned(self.data.into_owned()),
            ..self
        }
    }
}

impl Encode for WriteTagRequest<'_> {
    fn encoded_len(&self) -> usize {
        self.tag_type.encoded_len() + 2 + self.data.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.tag_type.encode(out);
        out.put_u16_le(self.elements);
        out.put_slice(&self.data);
    }
}

/// Read Tag Fragmented (0x52, not to the Connection Manager) request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadTagFragmentedRequest {
    /// Total number of elements wanted.
    pub elements: u16,
    /// Byte offset into those elements at which this fragment starts.
    pub offset: u32,
}

impl ReadTagFragmentedRequest {
    /// Decode request data exactly.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "read_tag_fragmented.end", Self::read)
    }

    /// Decode request data, returning any bytes after it.
    pub fn decode_with_trailing(data: &[u8]) -> DecodeResult<(Self, &[u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(ReadTagFragmentedRequest {
            elements: r.u16_le("read_tag_fragmented.elements")?,
            offset: r.u32_le("read_tag_fragmented.offset")?,
        })
    }
}

impl Encode for ReadTagFragmentedRequest {
    fn encoded_len(&self) -> usize {
        6
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.elements);
        out.put_u32_le(self.offset);
    }
}

/// Write Tag Fragmented (0x53) request data: type, total elements, byte offset of this
/// fragment, fragment bytes. For fixed-size types the fragment must lie within
/// `elements * size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteTagFragmentedRequest<'a> {
    /// The type of the data written.
    pub tag_type: TagType,
    /// Total number of elements being written.
    pub elements: u16,
    /// Byte offset of this fragment.
    pub offset: u32,
    /// The fragment.
    #[serde(borrow)]
    pub data: Cow<'a, [u8]>,
}

impl<'a> WriteTagFragmentedRequest<'a> {
    /// Decode request data (the fragment is every remaining byte).
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "write_tag_fragmented.end", Self::read)
    }

    /// Decode request data; the trailing part is always empty (the fragment is the
    /// rest), offered for symmetry with the other requests.
    pub fn decode_with_trailing(data: &'a [u8]) -> DecodeResult<(Self, &'a [u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let tag_type = TagType::decode(r)?;
        let elements = r.u16_le("write_tag_fragmented.elements")?;
        let offset = r.u32_le("write_tag_fragmented.offset")?;
        let at = r.offset();
        let data = r.rest();
        if let Some(size) = element_size(tag_type) {
            let total = usize::from(elements) * size;
            let end = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(data.len()));
            if end.map_or(true, |end| end > total) {
                return Err(r.invalid_at(
                    "write_tag_fragmented.data",
                    at,
                    format!(
                        "{} byte(s) at offset {offset} exceed the {total} bytes of {elements} element(s)",
                        data.len()
                    ),
                ));
            }
        }
        Ok(WriteTagFragmentedRequest {
            tag_type,
            elements,
            offset,
            data: Cow::Borrowed(data),
        })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> WriteTagFragmentedRequest<'static> {
        WriteTagFragmentedRequest {
            data: Cow::Owned(self.data.into_owned()),
            ..self
        }
    }
}

impl Encode for WriteTagFragmentedRequest<'_> {
    fn encoded_len(&self) -> usize {
        self.tag_type.encoded_len() + 6 + self.data.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.tag_type.encode(out);
        out.put_u16_le(self.elements);
        out.put_u32_le(self.offset);
        out.put_slice(&self.data);
    }
}

/// Mask sizes a Read-Modify-Write Tag request may carry (bytes).
pub const MASK_SIZES: [u16; 5] = [1, 2, 4, 8, 12];

/// Read-Modify-Write Tag (0x4E, not to the Connection Manager) request data: mask size,
/// OR mask, AND mask. The device computes `(value | or) & and` (bits set in OR are set,
/// bits clear in AND are cleared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadModifyWriteTagRequest<'a> {
    /// Bits to set (mask size bytes, little-endian).
    #[serde(borrow)]
    pub or_mask: Cow<'a, [u8]>,
    /// Bits to keep (same size as `or_mask`).
    #[serde(borrow)]
    pub and_mask: Cow<'a, [u8]>,
}

impl<'a> ReadModifyWriteTagRequest<'a> {
    /// Decode request data exactly.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "read_modify_write.end", Self::read)
    }

    /// Decode request data, returning any bytes after the AND mask.
    pub fn decode_with_trailing(data: &'a [u8]) -> DecodeResult<(Self, &'a [u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let at = r.offset();
        let size = r.u16_le("read_modify_write.mask_size")?;
        if !MASK_SIZES.contains(&size) {
            return Err(r.invalid_at(
                "read_modify_write.mask_size",
                at,
                format!("mask size {size} is not one of 1, 2, 4, 8, 12"),
            ));
        }
        let or_mask = r.take(usize::from(size), "read_modify_write.or_mask")?;
        let and_mask = r.take(usize::from(size), "read_modify_write.and_mask")?;
        Ok(ReadModifyWriteTagRequest {
            or_mask: Cow::Borrowed(or_mask),
            and_mask: Cow::Borrowed(and_mask),
        })
    }
}

impl Encode for ReadModifyWriteTagRequest<'_> {
    fn encoded_len(&self) -> usize {
        2 + 2 * self.or_mask.len()
    }

    /// Writes the mask size from `or_mask`; `and_mask` is cut or zero-padded to it.
    fn encode<B: BufMut>(&self, out: &mut B) {
        let size = self.or_mask.len();
        out.put_u16_le(size as u16);
        out.put_slice(&self.or_mask);
        let and = self
            .and_mask
            .get(..size.min(self.and_mask.len()))
            .unwrap_or_default();
        out.put_slice(and);
        out.put_bytes(0, size - and.len());
    }
}

/// Symbol object (class 0x6B) instance attribute ids used in the tag list upload.
pub mod symbol_attribute {
    /// Symbol name (UINT length, then characters).
    pub const NAME: u16 = 1;
    /// Symbol type (UINT; see [`super::SymbolType`]).
    pub const TYPE: u16 = 2;
    /// Symbol address (UDINT).
    pub const ADDRESS: u16 = 3;
    /// Symbol object address (UDINT).
    pub const OBJECT_ADDRESS: u16 = 5;
    /// Software control (UDINT, undocumented).
    pub const SOFTWARE_CONTROL: u16 = 6;
    /// Element size in bytes (UINT).
    pub const BYTE_COUNT: u16 = 7;
    /// Array dimensions (3 x UDINT).
    pub const DIMENSIONS: u16 = 8;
    /// External access (USINT; firmware 18 and later).
    pub const EXTERNAL_ACCESS: u16 = 10;
}

/// A Symbol Type word: bit 15 structure, bits 13-14 array dimensions, bit 12 system
/// tag; bits 0-11 the template instance of a structure, or (atomic) bits 0-7 the type
/// code and bits 8-10 a BOOL's bit position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SymbolType(pub u16);

impl SymbolType {
    /// True for a structure (UDT or built-in structure).
    pub fn is_structure(self) -> bool {
        self.0 & 0x8000 != 0
    }

    /// Number of array dimensions (0-3).
    pub fn dimensions(self) -> u8 {
        ((self.0 >> 13) & 3) as u8
    }

    /// True for a system tag.
    pub fn is_system(self) -> bool {
        self.0 & 0x1000 != 0
    }

    /// The Template instance id of a structure.
    pub fn template_instance(self) -> Option<u16> {
        self.is_structure().then_some(self.0 & 0x0FFF)
    }

    /// The atomic type code of a non-structure (e.g. 0xC4 DINT).
    pub fn atomic_type(self) -> Option<u8> {
        (!self.is_structure()).then_some((self.0 & 0xFF) as u8)
    }

    /// A BOOL's bit position.
    pub fn bit_position(self) -> u8 {
        ((self.0 >> 8) & 7) as u8
    }
}

/// Get Instance Attribute List (0x55 to the Symbol object) request data: the same
/// layout as Get Attribute List (a count, then the attribute ids wanted for every
/// instance, in order).
pub type GetInstanceAttributeListRequest = crate::cip::objects::GetAttributeListRequest;

/// One attribute value of a Symbol instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SymbolValue<'a> {
    /// Attribute 1: the tag name.
    Name(#[serde(borrow)] Cow<'a, str>),
    /// Attribute 2: the symbol type.
    Type(SymbolType),
    /// Attribute 3: the symbol address.
    Address(u32),
    /// Attribute 5: the symbol object address.
    ObjectAddress(u32),
    /// Attribute 6: software control.
    SoftwareControl(u32),
    /// Attribute 7: element size in bytes.
    ByteCount(u16),
    /// Attribute 8: array dimensions.
    Dimensions([u32; 3]),
    /// Attribute 10: external access.
    ExternalAccess(u8),
}

impl SymbolValue<'_> {
    /// The attribute id this value belongs to.
    pub fn attribute(&self) -> u16 {
        match self {
            SymbolValue::Name(_) => symbol_attribute::NAME,
            SymbolValue::Type(_) => symbol_attribute::TYPE,
            SymbolValue::Address(_) => symbol_attribute::ADDRESS,
            SymbolValue::ObjectAddress(_) => symbol_attribute::OBJECT_ADDRESS,
            SymbolValue::SoftwareControl(_) => symbol_attribute::SOFTWARE_CONTROL,
            SymbolValue::ByteCount(_) => symbol_attribute::BYTE_COUNT,
            SymbolValue::Dimensions(_) => symbol_attribute::DIMENSIONS,
            SymbolValue::ExternalAccess(_) => symbol_attribute::EXTERNAL_ACCESS,
        }
    }

    fn name_bytes(name: &str) -> &[u8] {
        let b = name.as_bytes();
        b.get(..b.len().min(usize::from(u16::MAX)))
            .unwrap_or_default()
    }

    fn encoded_len(&self) -> usize {
        match self {
            SymbolValue::Name(n) => 2 + Self::name_bytes(n).len(),
            SymbolValue::Type(_) | SymbolValue::ByteCount(_) => 2,
            SymbolValue::Address(_)
            | SymbolValue::ObjectAddress(_)
            | SymbolValue::SoftwareControl(_) => 4,
            SymbolValue::Dimensions(_) => 12,
            SymbolValue::ExternalAccess(_) => 1,
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            SymbolValue::Name(n) => {
                let b = Self::name_bytes(n);
                out.put_u16_le(b.len() as u16);
                out.put_slice(b);
            }
            SymbolValue::Type(t) => out.put_u16_le(t.0),
            SymbolValue::ByteCount(v) => out.put_u16_le(*v),
            SymbolValue::Address(v)
            | SymbolValue::ObjectAddress(v)
            | SymbolValue::SoftwareControl(v) => out.put_u32_le(*v),
            SymbolValue::Dimensions(d) => d.iter().for_each(|v| out.put_u32_le(*v)),
            SymbolValue::ExternalAccess(v) => out.put_u8(*v),
        }
    }
}

/// One Symbol instance in a Get Instance Attribute List reply: its instance id, then
/// the requested attributes' values in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolInstance<'a> {
    /// The Symbol instance id.
    pub instance_id: u32,
    /// The values, in the order the attributes were requested.
    #[serde(borrow)]
    pub values: Vec<SymbolValue<'a>>,
}

impl<'a> SymbolInstance<'a> {
    /// The tag name, if requested.
    pub fn name(&self) -> Option<&str> {
        self.values.iter().find_map(|v| match v {
            SymbolValue::Name(n) => Some(n.as_ref()),
            _ => None,
        })
    }

    /// The symbol type, if requested.
    pub fn symbol_type(&self) -> Option<SymbolType> {
        self.values.iter().find_map(|v| match v {
            SymbolValue::Type(t) => Some(*t),
            _ => None,
        })
    }

    /// The array dimensions, if requested.
    pub fn dimensions(&self) -> Option<[u32; 3]> {
        self.values.iter().find_map(|v| match v {
            SymbolValue::Dimensions(d) => Some(*d),
            _ => None,
        })
    }

    /// A copy that owns its name.
    pub fn into_owned(self) -> SymbolInstance<'static> {
        SymbolInstance {
            instance_id: self.instance_id,
            values: self
                .values
                .into_iter()
                .map(|v| match v {
                    SymbolValue::Name(n) => SymbolValue::Name(Cow::Owned(n.into_owned())),
                    SymbolValue::Type(t) => SymbolValue::Type(t),
                    SymbolValue::Address(x) => SymbolValue::Address(x),
                    SymbolValue::ObjectAddress(x) => SymbolValue::ObjectAddress(x),
                    SymbolValue::SoftwareControl(x) => SymbolValue::SoftwareControl(x),
                    SymbolValue::ByteCount(x) => SymbolValue::ByteCount(x),
                    SymbolValue::Dimensions(x) => SymbolValue::Dimensions(x),
                    SymbolValue::ExternalAccess(x) => SymbolValue::ExternalAccess(x),
                })
                .collect(),
        }
    }
}

/// Get Instance Attribute List reply data: Symbol instances back to back (with general
/// status 0x06 when more instances remain; ask again from the last id + 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetInstanceAttributeListReply<'a> {
    /// The instances.
    #[serde(borrow)]
    pub instances: Vec<SymbolInstance<'a>>,
}

impl<'a> GetInstanceAttributeListReply<'a> {
    /// Decode reply data laid out per `attributes` (the ids the request asked for, in
    /// order). An attribute id this crate does not know is an error: its layout, and so
    /// everything after it, is unknown.
    pub fn decode(data: &'a [u8], attributes: &[u16]) -> DecodeResult<Self> {
        decode_body_exact(data, "instance_attribute_list.end", |r| {
            let mut instances = Vec::new();
            while !r.is_empty() {
                let instance_id = r.u32_le("instance_attribute_list.instance")?;
                let mut values = Vec::new();
                for &id in attributes {
                    values.push(read_symbol_value(r, id)?);
                }
                instances.push(SymbolInstance {
                    instance_id,
                    values,
                });
            }
            Ok(GetInstanceAttributeListReply { instances })
        })
    }
}

fn read_symbol_value<'a>(r: &mut Reader<'a>, id: u16) -> DecodeResult<SymbolValue<'a>> {
    Ok(match id {
        symbol_attribute::NAME => {
            let len = r.u16_le("symbol.name.length")?;
            let name = r.take(usize::from(len), "symbol.name")?;
            SymbolValue::Name(String::from_utf8_lossy(name))
        }
        symbol_attribute::TYPE => SymbolValue::Type(SymbolType(r.u16_le("symbol.type")?)),
        symbol_attribute::ADDRESS => SymbolValue::Address(r.u32_le("symbol.address")?),
        symbol_attribute::OBJECT_ADDRESS => {
            SymbolValue::ObjectAddress(r.u32_le("symbol.object_address")?)
        }
        symbol_attribute::SOFTWARE_CONTROL => {
            SymbolValue::SoftwareControl(r.u32_le("symbol.software_control")?)
        }
        symbol_attribute::BYTE_COUNT => SymbolValue::ByteCount(r.u16_le("symbol.byte_count")?),
        symbol_attribute::DIMENSIONS => SymbolValue::Dimensions([
            r.u32_le("symbol.dimensions")?,
            r.u32_le("symbol.dimensions")?,
            r.u32_le("symbol.dimensions")?,
        ]),
        symbol_attribute::EXTERNAL_ACCESS => {
            SymbolValue::ExternalAccess(r.u8("symbol.external_access")?)
        }
        other => {
            return Err(r.invalid(
                "instance_attribute_list.attribute",
                format!("Symbol attribute {other} has no known layout"),
            ))
        }
    })
}

impl Encode for GetInstanceAttributeListReply<'_> {
    fn encoded_len(&self) -> usize {
        self.instances
            .iter()
            .map(|i| 4 + i.values.iter().map(SymbolValue::encoded_len).sum::<usize>())
            .sum()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        for i in &self.instances {
            out.put_u32_le(i.instance_id);
            for v in &i.values {
                v.encode(out);
            }
        }
    }
}

/// Template object (class 0x6C) instance attribute ids.
pub mod template_attribute {
    /// Structure handle (UINT): the CRC used as the handle in a structure's tag type.
    pub const STRUCTURE_HANDLE: u16 = 1;
    /// Member count (UINT).
    pub const MEMBER_COUNT: u16 = 2;
    /// Template object definition size (UDINT, in 32-bit words).
    pub const DEFINITION_SIZE: u16 = 4;
    /// Structure size (UDINT, bytes of a value of the structure).
    pub const STRUCTURE_SIZE: u16 = 5;
}

/// The value length of a Template attribute (for [`GetAttributeListReply::decode`]).
pub fn template_attribute_len(id: u16, _rest: &[u8]) -> Option<usize> {
    match id {
        template_attribute::STRUCTURE_HANDLE | template_attribute::MEMBER_COUNT => Some(2),
        template_attribute::DEFINITION_SIZE | template_attribute::STRUCTURE_SIZE => Some(4),
        _ => None,
    }
}

/// The Template attributes a client reads before a Template Read (from a Get Attribute
/// List reply); an attribute that was not requested or whose status was non-zero is
/// `None` (its status stays in the underlying [`GetAttributeListReply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TemplateAttributes {
    /// Attribute 1: structure handle.
    pub structure_handle: Option<u16>,
    /// Attribute 2: member count.
    pub member_count: Option<u16>,
    /// Attribute 4: definition size in 32-bit words.
    pub definition_size: Option<u32>,
    /// Attribute 5: structure size in bytes.
    pub structure_size: Option<u32>,
}

impl TemplateAttributes {
    /// Decode a Get Attribute List reply from the Template object.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        let reply = GetAttributeListReply::decode(data, &template_attribute_len)?;
        Ok(Self::from_reply(&reply))
    }

    /// Pick the Template attributes out of a decoded Get Attribute List reply.
    pub fn from_reply(reply: &GetAttributeListReply<'_>) -> Self {
        let value = |id: u16| {
            reply
                .get(id)
                .filter(|a| a.status == 0)
                .map(|a| a.value.as_ref())
        };
        let u16_of = |id| value(id).and_then(|v| Some(u16::from_le_bytes(v.try_into().ok()?)));
        let u32_of = |id| value(id).and_then(|v| Some(u32::from_le_bytes(v.try_into().ok()?)));
        TemplateAttributes {
            structure_handle: u16_of(template_attribute::STRUCTURE_HANDLE),
            member_count: u16_of(template_attribute::MEMBER_COUNT),
            definition_size: u32_of(template_attribute::DEFINITION_SIZE),
            structure_size: u32_of(template_attribute::STRUCTURE_SIZE),
        }
    }
}

/// Template Read (0x4C to a Template instance) request data: byte offset into the
/// definition and how many bytes to read. The reply data is the raw definition bytes
/// (general status 0x06 while more remain); assemble them and decode with
/// [`TemplateDefinition::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateReadRequest {
    /// Byte offset.
    pub offset: u32,
    /// Number of bytes.
    pub bytes: u16,
}

impl TemplateReadRequest {
    /// Decode request data exactly.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "template_read.end", Self::read)
    }

    /// Decode request data, returning any bytes after it.
    pub fn decode_with_trailing(data: &[u8]) -> DecodeResult<(Self, &[u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(TemplateReadRequest {
            offset: r.u32_le("template_read.offset")?,
            bytes: r.u16_le("template_read.bytes")?,
        })
    }
}

impl Encode for TemplateReadRequest {
    fn encoded_len(&self) -> usize {
        6
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.offset);
        out.put_u16_le(self.bytes);
    }
}

/// One member of a structure definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMember<'a> {
    /// Array length for an array member, bit number for a BOOL member, else 0.
    pub info: u16,
    /// The member's type word (as a [`SymbolType`]: atomic code or template instance).
    pub type_code: u16,
    /// Byte offset of the member in a value of the structure (for a BOOL member, the
    /// offset of the host integer).
    pub offset: u32,
    /// The member's name (hidden hosts are named like `ZZZZZZZZZZMyUDT0`).
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// A complete Template definition: member records (info u16, type u16, offset u32 each),
/// then NUL-terminated strings: the structure name (for a UDT, `name;suffix`) and one
/// name per member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDefinition<'a> {
    /// The structure's name (before any `;`).
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// What followed the `;` in the structure name string, if there was one.
    #[serde(borrow)]
    pub suffix: Option<Cow<'a, str>>,
    /// The members, in definition order.
    #[serde(borrow)]
    pub members: Vec<TemplateMember<'a>>,
}

impl<'a> TemplateDefinition<'a> {
    /// Decode definition bytes for a template of `member_count` members (its attribute
    /// 2). Bytes after the last member name (padding) are ignored; the last name may
    /// end at the end of the data without its NUL.
    pub fn decode(data: &'a [u8], member_count: u16) -> DecodeResult<Self> {
        let (def, _padding) = decode_body(data, |r| {
            let mut records = Vec::new();
            for _ in 0..member_count {
                records.push((
                    r.u16_le("template.member.info")?,
                    r.u16_le("template.member.type")?,
                    r.u32_le("template.member.offset")?,
                ));
            }
            let full = read_cstr(r, "template.name")?;
            let (name, suffix) = match full.iter().position(|&b| b == b';') {
                Some(i) => (
                    full.get(..i).unwrap_or_default(),
                    Some(String::from_utf8_lossy(
                        full.get(i + 1..).unwrap_or_default(),
                    )),
                ),
                None => (full, None),
            };
            let mut members = Vec::new();
            for (info, type_code, offset) in records {
                let name = read_cstr(r, "template.member.name")?;
                members.push(TemplateMember {
                    info,
                    type_code,
                    offset,
                    name: String::from_utf8_lossy(name),
                });
            }
            Ok(TemplateDefinition {
                name: String::from_utf8_lossy(name),
                suffix,
                members,
            })
        })?;
        Ok(def)
    }
}

/// A NUL-terminated string (the NUL consumed), or the rest if it has none; missing
/// entirely is an error.
fn read_cstr<'a>(r: &mut Reader<'a>, field: &'static str) -> DecodeResult<&'a [u8]> {
    if r.is_empty() {
        return Err(r.incomplete(field, 1));
    }
    let rest = r.peek_rest();
    match rest.iter().position(|&b| b == 0) {
        Some(n) => {
            let s = r.take(n, field)?;
            r.u8(field)?;
            Ok(s)
        }
        None => Ok(r.rest()),
    }
}

impl Encode for TemplateDefinition<'_> {
    fn encoded_len(&self) -> usize {
        8 * self.members.len()
            + self.name.len()
            + self.suffix.as_ref().map_or(0, |s| 1 + s.len())
            + 1
            + self.members.iter().map(|m| m.name.len() + 1).sum::<usize>()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        for m in &self.members {
            out.put_u16_le(m.info);
            out.put_u16_le(m.type_code);
            out.put_u32_le(m.offset);
        }
        out.put_slice(self.name.as_bytes());
        if let Some(s) = &self.suffix {
            out.put_u8(b';');
            out.put_slice(s.as_bytes());
        }
        out.put_u8(0);
        for m in &self.members {
            out.put_slice(m.name.as_bytes());
            out.put_u8(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cip::message_router::{MessageRouterReply, MessageRouterRequest, Request};
    use crate::cip::objects::AttributeReply;
    use crate::cip::status::GeneralStatus;
    use proptest::prelude::*;

    // cpppo server/enip_test.py unk_017_reply: Read Tag Fragmented reply of INTs from a
    // 1756-L61.
    #[test]
    fn read_tag_fragmented_reply_from_a_capture() {
        let bytes = [
            0xd2, 0x00, 0x00, 0x00, 0xc3, 0x00, 0x4c, 0x10, 0x08, 0x00, 0x03, 0x00, 0x02, 0x00,
            0x02, 0x00, 0x02, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe6, 0x42, 0x07, 0x00,
            0xc8, 0x40, 0xc8, 0x40, 0x00, 0x00, 0xe4, 0x00, 0x00, 0x00, 0x64, 0x00, 0xb2, 0x02,
            0xc8, 0x40,
        ];
        let mr = MessageRouterReply::decode(&bytes).unwrap();
        let r = ReadTagFragmentedReply::decode(&mr.data).unwrap();
        assert_eq!(r.tag_type, DataType::INT.into());
        // 20 elements asked for from byte offset 2: the last 19 INTs.
        assert_eq!(r.elements(), Some(19));
        assert_eq!(r.data.get(..2), Some(&[0x4c, 0x10][..]));
        assert_eq!(r.to_vec(), mr.data.as_ref());
    }

    // cpppo server/enip_test.py unk_020_request: Write Tag Fragmented SCADA[12], one INT.
    #[test]
    fn write_tag_fragmented_from_a_capture() {
        let bytes = [
            0x53, 0x05, 0x91, 0x05, 0x53, 0x43, 0x41, 0x44, 0x41, 0x00, 0x28, 0x0c, 0xc3, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc9, 0x40,
        ];
        let mr = MessageRouterRequest::decode(&bytes).unwrap();
        let Request::WriteTagFragmented(w) = Request::decode(&mr).unwrap().request else {
            panic!("not a Write Tag Fragmented");
        };
        assert_eq!(w.tag_type, DataType::INT.into());
        assert_eq!((w.elements, w.offset), (1, 0));
        assert_eq!(w.data.as_ref(), &[0xc9, 0x40]);
        assert_eq!(w.to_vec(), mr.data.as_ref());
        // A fragment running past elements * size is refused.
        let e = WriteTagFragmentedRequest::decode(&[0xc3, 0, 1, 0, 2, 0, 0, 0, 1, 2]).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("write_tag_fragmented.data", 8));
    }

    #[test]
    fn write_tag_counts_and_trailing_bytes() {
        // 2 DINTs need 8 bytes: 6 is not enough.
        let e = WriteTagRequest::decode(&[0xc4, 0, 2, 0, 1, 2, 3, 4, 5, 6]).unwrap_err();
        assert_eq!(e.field(), "write_tag.data");
        assert!(!e.is_incomplete());
        // A DINT with 2 extra bytes: strict decode refuses, lenient reports them.
        let bytes = [0xc4, 0, 1, 0, 1, 2, 3, 4, 0xEE, 0xFF];
        assert_eq!(
            WriteTagRequest::decode(&bytes).unwrap_err().field(),
            "write_tag.end"
        );
        let (w, trailing) = WriteTagRequest::decode_with_trailing(&bytes).unwrap();
        assert_eq!(w.data.as_ref(), &[1, 2, 3, 4]);
        assert_eq!(trailing, &[0xEE, 0xFF]);
        // A structure (Logix STRING) takes the rest as its value.
        let w = WriteTagRequest::decode(&[0xa0, 0x02, 0xce, 0x0f, 1, 0, 9, 9, 9]).unwrap();
        assert_eq!(w.tag_type, TagType::Structure(0x0FCE));
        assert_eq!(w.data.len(), 3);
    }

    // pycomm3 packets/logix.py ReadModifyWriteRequestPacket: mask size from the type,
    // OR mask cut to it, but the AND mask always 8 bytes (it slices by the mask value).
    #[test]
    fn read_modify_write_with_pycomm3_trailing_and_mask() {
        let mut data = vec![4, 0];
        data.extend_from_slice(&(1u64 << 3).to_le_bytes()[..4]);
        data.extend_from_slice(&u64::MAX.to_le_bytes());
        let mr = MessageRouterRequest::new(0x4E, Epath::from_vec(vec![0x91, 1, b'x', 0]), data);
        let c = Request::decode(&mr).unwrap();
        let Request::ReadModifyWriteTag(rmw) = c.request else {
            panic!("not a Read-Modify-Write Tag");
        };
        assert_eq!(rmw.or_mask.as_ref(), &[8, 0, 0, 0]);
        assert_eq!(rmw.and_mask.as_ref(), &[0xFF; 4]);
        assert_eq!(c.trailing.as_ref(), &[0xFF; 4]);
        let e = ReadModifyWriteTagRequest::decode(&[3, 0, 1, 2, 3, 4, 5, 6]).unwrap_err();
        assert_eq!(e.field(), "read_modify_write.mask_size");
    }

    use crate::cip::epath::Epath;

    // Layout per pycomm3 logix_driver _parse_instance_attribute_list (attributes 1, 2,
    // 3, 5, 6, 8): instance id, name, type, address, object address, software control,
    // three dimensions.
    #[test]
    fn symbol_instance_list() {
        let attrs = [1, 2, 3, 5, 6, 8];
        let req = GetInstanceAttributeListRequest {
            attributes: attrs.to_vec(),
        };
        assert_eq!(req.to_vec(), [6, 0, 1, 0, 2, 0, 3, 0, 5, 0, 6, 0, 8, 0]);
        let mut bytes = vec![0x2A, 0, 0, 0, 5, 0];
        bytes.extend_from_slice(b"SCADA");
        bytes.extend_from_slice(&[0xC3, 0x20]); // INT, 1 dimension
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&[0xE8, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let r = GetInstanceAttributeListReply::decode(&bytes, &attrs).unwrap();
        let s = &r.instances[0];
        assert_eq!(s.instance_id, 0x2A);
        assert_eq!(s.name(), Some("SCADA"));
        let t = s.symbol_type().unwrap();
        assert_eq!(
            (t.atomic_type(), t.dimensions(), t.is_structure()),
            (Some(0xC3), 1, false)
        );
        assert_eq!(s.dimensions(), Some([1000, 0, 0]));
        assert_eq!(r.to_vec(), bytes);
        let e = GetInstanceAttributeListReply::decode(&bytes, &[1, 4]).unwrap_err();
        assert_eq!(e.field(), "instance_attribute_list.attribute");
        assert_eq!(SymbolType(0x8FCE).template_instance(), Some(0x0FCE));
    }

    // pycomm3 _get_structure_makeup asks for attributes 4, 5, 2, 1 in that order.
    #[test]
    fn template_attributes_and_definition() {
        let bytes = [
            4, 0, 4, 0, 0, 0, 0x16, 0, 0, 0, 5, 0, 0, 0, 0x58, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0, 0,
            0, 0xCE, 0x0F,
        ];
        let t = TemplateAttributes::decode(&bytes).unwrap();
        assert_eq!(t.definition_size, Some(0x16));
        assert_eq!(t.structure_size, Some(0x58));
        assert_eq!(t.member_count, Some(2));
        assert_eq!(t.structure_handle, Some(0x0FCE));
        let partial = GetAttributeListReply {
            attributes: vec![AttributeReply {
                id: 1,
                status: 0x14,
                value: Cow::Borrowed(&[]),
            }],
        };
        assert_eq!(
            TemplateAttributes::from_reply(&partial),
            TemplateAttributes::default()
        );

        // The Logix STRING built-in: LEN DINT at 0, DATA SINT[82] at 4.
        let def = TemplateDefinition {
            name: Cow::Borrowed("ASCIISTRING82"),
            suffix: Some(Cow::Borrowed("n\x01\x02")),
            members: vec![
                TemplateMember {
                    info: 0,
                    type_code: 0xC4,
                    offset: 0,
                    name: Cow::Borrowed("LEN"),
                },
                TemplateMember {
                    info: 82,
                    type_code: 0x20C2,
                    offset: 4,
                    name: Cow::Borrowed("DATA"),
                },
            ],
        };
        let mut bytes = def.to_vec();
        assert_eq!(bytes.get(..8), Some(&[0, 0, 0xC4, 0, 0, 0, 0, 0][..]));
        assert_eq!(bytes.get(16..30), Some(&b"ASCIISTRING82;"[..]));
        bytes.extend_from_slice(&[0, 0, 0]); // padding to a word
        assert_eq!(TemplateDefinition::decode(&bytes, 2).unwrap(), def);
        let e = TemplateDefinition::decode(&bytes[..16], 2).unwrap_err();
        assert_eq!(e.field(), "template.name");
        let req = TemplateReadRequest::decode(&[0, 0, 0, 0, 0x43, 0]).unwrap();
        assert_eq!((req.offset, req.bytes), (0, 0x43));
    }

    fn tag_type() -> impl Strategy<Value = TagType> {
        prop_oneof![
            proptest::sample::select(DataType::ALL).prop_map(TagType::from),
            any::<u16>().prop_map(TagType::Structure),
        ]
    }

    fn write_tag() -> impl Strategy<Value = WriteTagRequest<'static>> {
        (
            tag_type(),
            0u16..8,
            proptest::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(t, n, d)| {
                let data = match element_size(t) {
                    Some(size) => vec![0xA5; usize::from(n) * size],
                    None => d,
                };
                WriteTagRequest {
                    tag_type: t,
                    elements: n,
                    data: Cow::Owned(data),
                }
            })
    }

    fn symbol_value() -> impl Strategy<Value = (u16, SymbolValue<'static>)> {
        prop_oneof![
            "[A-Za-z_:.]{0,20}".prop_map(|s| (1, SymbolValue::Name(Cow::Owned(s)))),
            any::<u16>().prop_map(|v| (2, SymbolValue::Type(SymbolType(v)))),
            any::<u32>().prop_map(|v| (3, SymbolValue::Address(v))),
            any::<u32>().prop_map(|v| (5, SymbolValue::ObjectAddress(v))),
            any::<u32>().prop_map(|v| (6, SymbolValue::SoftwareControl(v))),
            any::<u16>().prop_map(|v| (7, SymbolValue::ByteCount(v))),
            any::<[u32; 3]>().prop_map(|v| (8, SymbolValue::Dimensions(v))),
            any::<u8>().prop_map(|v| (10, SymbolValue::ExternalAccess(v))),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(
            w in write_tag(),
            rf in any::<(u16, u32)>(),
            t in tag_type(),
            frag in proptest::collection::vec(any::<u8>(), 0..8),
            mask in proptest::sample::select(MASK_SIZES.to_vec()),
            ids in proptest::collection::vec(any::<u16>(), 0..8),
        ) {
            let b = w.to_vec();
            prop_assert_eq!(WriteTagRequest::decode(&b).unwrap(), w);
            let r = ReadTagRequest { elements: rf.0 };
            prop_assert_eq!(ReadTagRequest::decode(&r.to_vec()).unwrap(), r);
            let r = ReadTagFragmentedRequest { elements: rf.0, offset: rf.1 };
            prop_assert_eq!(ReadTagFragmentedRequest::decode(&r.to_vec()).unwrap(), r);
            let r = TemplateReadRequest { offset: rf.1, bytes: rf.0 };
            prop_assert_eq!(TemplateReadRequest::decode(&r.to_vec()).unwrap(), r);
            let total = element_size(t).map_or(usize::MAX, |s| s * 8);
            let wf = WriteTagFragmentedRequest {
                tag_type: t,
                elements: 8,
                offset: 0,
                data: Cow::Owned(frag.into_iter().take(total).collect()),
            };
            let b = wf.to_vec();
            prop_assert_eq!(WriteTagFragmentedRequest::decode(&b).unwrap(), wf);
            let m = usize::from(mask);
            let rmw = ReadModifyWriteTagRequest {
                or_mask: Cow::Owned(vec![0x0F; m]),
                and_mask: Cow::Owned(vec![0xF0; m]),
            };
            let b = rmw.to_vec();
            prop_assert_eq!(ReadModifyWriteTagRequest::decode(&b).unwrap(), rmw);
            let g = GetInstanceAttributeListRequest { attributes: ids };
            prop_assert_eq!(GetInstanceAttributeListRequest::decode(&g.to_vec()).unwrap(), g);
        }

        #[test]
        fn replies_round_trip(
            t in tag_type(),
            d in proptest::collection::vec(any::<u8>(), 0..16),
            layout in proptest::collection::vec(symbol_value(), 0..6),
            ids in proptest::collection::vec(any::<u32>(), 0..4),
        ) {
            let r = ReadTagReply { tag_type: t, data: Cow::Owned(d) };
            let b = r.to_vec();
            prop_assert_eq!(ReadTagReply::decode(&b).unwrap(), r);
            let attrs: Vec<u16> = layout.iter().map(|(id, _)| *id).collect();
            let values: Vec<SymbolValue<'static>> = layout.into_iter().map(|(_, v)| v).collect();
            let reply = GetInstanceAttributeListReply {
                instances: ids.into_iter().map(|instance_id| SymbolInstance {
                    instance_id,
                    values: values.clone(),
                }).collect(),
            };
            let bytes = reply.to_vec();
            prop_assert_eq!(bytes.len(), reply.encoded_len());
            prop_assert_eq!(GetInstanceAttributeListReply::decode(&bytes, &attrs).unwrap(), reply);
        }

        #[test]
        fn template_definition_round_trips(
            name in "[A-Za-z_]{1,12}",
            suffix in proptest::option::of("[a-z0-9]{0,6}"),
            members in proptest::collection::vec((any::<(u16, u16, u32)>(), "[A-Za-z_]{0,10}"), 0..5),
        ) {
            let def = TemplateDefinition {
                name: Cow::Owned(name),
                suffix: suffix.map(Cow::Owned),
                members: members.into_iter().map(|((info, type_code, offset), n)| TemplateMember {
                    info, type_code, offset, name: Cow::Owned(n),
                }).collect(),
            };
            let bytes = def.to_vec();
            prop_assert_eq!(bytes.len(), def.encoded_len());
            let count = def.members.len() as u16;
            prop_assert_eq!(TemplateDefinition::decode(&bytes, count).unwrap(), def);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..96),
            attrs in proptest::collection::vec(0u16..12, 0..5),
            count in any::<u16>(),
        ) {
            let _ = ReadTagRequest::decode_with_trailing(&bytes);
            let _ = ReadTagReply::decode(&bytes);
            let _ = WriteTagRequest::decode_with_trailing(&bytes);
            let _ = ReadTagFragmentedRequest::decode_with_trailing(&bytes);
            let _ = WriteTagFragmentedRequest::decode_with_trailing(&bytes);
            let _ = ReadModifyWriteTagRequest::decode_with_trailing(&bytes);
            let _ = GetInstanceAttributeListRequest::decode_with_trailing(&bytes);
            let _ = GetInstanceAttributeListReply::decode(&bytes, &attrs);
            let _ = TemplateAttributes::decode(&bytes);
            let _ = TemplateReadRequest::decode_with_trailing(&bytes);
            let _ = TemplateDefinition::decode(&bytes, count);
            let _ = MessageRouterReply::decode(&bytes).map(|r| r.general_status == GeneralStatus::SUCCESS);
        }
    }
}
