//! Attribute services of every CIP object (Get/Set Attribute Single, Get/Set Attribute
//! List) and the Identity object's instance attributes.
//!
//! Attribute values are opaque bytes here: their layout belongs to each object. Where a
//! list carries several values back to back, the decoder is told each value's length by
//! a caller-supplied function ([`AttributeLayout`]), since the wire does not say.
//!
//! Get/Set Attribute Single need no codec of their own: the attribute is in the path,
//! and the request (Set) or reply (Get) data is the value itself.

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::cip::message_router::{decode_body, decode_body_exact};
use crate::wire::{DecodeResult, Encode, Reader};

/// How long the value of attribute `id` is, given the bytes where it starts (so a
/// length-prefixed value can be measured); `None` when the attribute is unknown.
pub trait AttributeLayout {
    /// The value length of attribute `id` whose encoding starts at `rest`.
    fn value_len(&self, id: u16, rest: &[u8]) -> Option<usize>;
}

impl<F: Fn(u16, &[u8]) -> Option<usize>> AttributeLayout for F {
    fn value_len(&self, id: u16, rest: &[u8]) -> Option<usize> {
        self(id, rest)
    }
}

fn read_value<'a>(
    r: &mut Reader<'a>,
    id: u16,
    layout: &impl AttributeLayout,
    field: &'static str,
) -> DecodeResult<&'a [u8]> {
    let len = layout
        .value_len(id, r.peek_rest())
        .ok_or_else(|| r.invalid(field, format!("attribute {id} has no known layout")))?;
    r.take(len, field)
}

/// Get Attribute List request data: the attribute ids wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAttributeListRequest {
    /// Attribute ids, in the order their values are wanted.
    pub attributes: Vec<u16>,
}

impl GetAttributeListRequest {
    /// Decode request data exactly (trailing bytes are an error).
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "get_attribute_list.end", Self::read)
    }

    /// Decode request data, returning any bytes after the attribute list.
    pub fn decode_with_trailing(data: &[u8]) -> DecodeResult<(Self, &[u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let count = r.u16_le("get_attribute_list.count")?;
        let mut attributes = Vec::new();
        for _ in 0..count {
            attributes.push(r.u16_le("get_attribute_list.attribute")?);
        }
        Ok(GetAttributeListRequest { attributes })
    }
}

impl Encode for GetAttributeListRequest {
    fn encoded_len(&self) -> usize {
        2 + 2 * self.attributes.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.attributes.len() as u16);
        for a in &self.attributes {
            out.put_u16_le(*a);
        }
    }
}

/// One attribute in a Get Attribute List reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeReply<'a> {
    /// The attribute id.
    pub id: u16,
    /// Its status (0 = success; otherwise a general status such as 0x14, and no value).
    pub status: u16,
    /// The value (empty unless `status` is 0).
    #[serde(borrow)]
    pub value: Cow<'a, [u8]>,
}

/// Get Attribute List reply data: per attribute, its id, a status and (on success) its
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAttributeListReply<'a> {
    /// The attributes, in request order.
    #[serde(borrow)]
    pub attributes: Vec<AttributeReply<'a>>,
}

impl<'a> GetAttributeListReply<'a> {
    /// Decode reply data; `layout` gives each successful attribute's value length.
    pub fn decode(data: &'a [u8], layout: &impl AttributeLayout) -> DecodeResult<Self> {
        decode_body_exact(data, "get_attribute_list.end", |r| {
            let count = r.u16_le("get_attribute_list.count")?;
            let mut attributes = Vec::new();
            for _ in 0..count {
                let id = r.u16_le("get_attribute_list.attribute")?;
                let status = r.u16_le("get_attribute_list.status")?;
                let value = if status == 0 {
                    read_value(r, id, layout, "get_attribute_list.value")?
                } else {
                    &[]
                };
                attributes.push(AttributeReply {
                    id,
                    status,
                    value: Cow::Borrowed(value),
                });
            }
            Ok(GetAttributeListReply { attributes })
        })
    }

    /// The reply for attribute `id`, if present.
    pub fn get(&self, id: u16) -> Option<&AttributeReply<'a>> {
        self.attributes.iter().find(|a| a.id == id)
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> GetAttributeListReply<'static> {
        GetAttributeListReply {
            attributes: self
                .attributes
                .into_iter()
                .map(|a| AttributeReply {
                    id: a.id,
                    status: a.status,
                    value: Cow::Owned(a.value.into_owned()),
                })
                .collect(),
        }
    }
}

impl Encode for GetAttributeListReply<'_> {
    fn encoded_len(&self) -> usize {
        2 + self
            .attributes
            .iter()
            .map(|a| 4 + if a.status == 0 { a.value.len() } else { 0 })
            .sum::<usize>()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.attributes.len() as u16);
        for a in &self.attributes {
            out.put_u16_le(a.id);
            out.put_u16_le(a.status);
            if a.status == 0 {
                out.put_slice(&a.value);
            }
        }
    }
}

/// One attribute to set in a Set Attribute List request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeValue<'a> {
    /// The attribute id.
    pub id: u16,
    /// The new value.
    #[serde(borrow)]
    pub value: Cow<'a, [u8]>,
}

/// Set Attribute List request data: count, then each attribute id and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttributeListRequest<'a> {
    /// The attributes to set.
    #[serde(borrow)]
    pub attributes: Vec<AttributeValue<'a>>,
}

impl<'a> SetAttributeListRequest<'a> {
    /// Decode request data; `layout` gives each value's length.
    pub fn decode(data: &'a [u8], layout: &impl AttributeLayout) -> DecodeResult<Self> {
        decode_body_exact(data, "set_attribute_list.end", |r| {
            let count = r.u16_le("set_attribute_list.count")?;
            let mut attributes = Vec::new();
            for _ in 0..count {
                let id = r.u16_le("set_attribute_list.attribute")?;
                let value = read_value(r, id, layout, "set_attribute_list.value")?;
                attributes.push(AttributeValue {
                    id,
                    value: Cow::Borrowed(value),
                });
            }
            Ok(SetAttributeListRequest { attributes })
        })
    }
}

impl Encode for SetAttributeListRequest<'_> {
    fn encoded_len(&self) -> usize {
        2 + self
            .attributes
            .iter()
            .map(|a| 2 + a.value.len())
            .sum::<usize>()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.attributes.len() as u16);
        for a in &self.attributes {
            out.put_u16_le(a.id);
            out.put_slice(&a.value);
        }
    }
}

/// Set Attribute List reply data: count, then each attribute id and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttributeListReply {
    /// `(attribute id, status)` pairs, in request order.
    pub attributes: Vec<(u16, u16)>,
}

impl SetAttributeListReply {
    /// Decode reply data.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "set_attribute_list.end", |r| {
            let count = r.u16_le("set_attribute_list.count")?;
            let mut attributes = Vec::new();
            for _ in 0..count {
                let id = r.u16_le("set_attribute_list.attribute")?;
                let status = r.u16_le("set_attribute_list.status")?;
                attributes.push((id, status));
            }
            Ok(SetAttributeListReply { attributes })
        })
    }
}

impl Encode for SetAttributeListReply {
    fn encoded_len(&self) -> usize {
        2 + 4 * self.attributes.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.attributes.len() as u16);
        for (id, status) in &self.attributes {
            out.put_u16_le(*id);
            out.put_u16_le(*status);
        }
    }
}

/// Identity object (class 0x01) instance attribute ids.
pub mod identity_attribute {
    /// Vendor id (UINT).
    pub const VENDOR_ID: u16 = 1;
    /// Device type (UINT).
    pub const DEVICE_TYPE: u16 = 2;
    /// Product code (UINT).
    pub const PRODUCT_CODE: u16 = 3;
    /// Revision (USINT major, USINT minor).
    pub const REVISION: u16 = 4;
    /// Status word (WORD).
    pub const STATUS: u16 = 5;
    /// Serial number (UDINT).
    pub const SERIAL_NUMBER: u16 = 6;
    /// Product name (SHORT_STRING).
    pub const PRODUCT_NAME: u16 = 7;
    /// State (USINT).
    pub const STATE: u16 = 8;
}

/// A major.minor revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revision {
    /// Major revision.
    pub major: u8,
    /// Minor revision.
    pub minor: u8,
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.major, self.minor)
    }
}

/// The Identity object's instance attributes 1-8, as the body of a Get Attributes All
/// reply (attributes in id order; ControlLogix stops after the product name, so the
/// state is optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity<'a> {
    /// Vendor id (1 = Rockwell Automation/Allen-Bradley).
    pub vendor_id: u16,
    /// Device type (0x0E = programmable logic controller).
    pub device_type: u16,
    /// Product code.
    pub product_code: u16,
    /// Firmware revision.
    pub revision: Revision,
    /// Status word.
    pub status: u16,
    /// Serial number.
    pub serial_number: u32,
    /// Product name: a SHORT_STRING, one length byte then one byte per character
    /// (ISO 8859-1, so any bytes a device sends come back unchanged when re-encoded).
    /// On encode, characters above U+00FF are sent as `?` and only the first 255 count.
    #[serde(borrow)]
    pub product_name: Cow<'a, str>,
    /// State, when the device sends it.
    pub state: Option<u8>,
}

impl<'a> Identity<'a> {
    /// Decode a Get Attributes All reply body. Bytes after the state are an error.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "identity.end", |r| {
            let vendor_id = r.u16_le("identity.vendor_id")?;
            let device_type = r.u16_le("identity.device_type")?;
            let product_code = r.u16_le("identity.product_code")?;
            let major = r.u8("identity.revision")?;
            let minor = r.u8("identity.revision")?;
            let status = r.u16_le("identity.status")?;
            let serial_number = r.u32_le("identity.serial_number")?;
            let len = r.u8("identity.product_name.length")?;
            let name = r.take(usize::from(len), "identity.product_name")?;
            let state = if r.is_empty() {
                None
            } else {
                Some(r.u8("identity.state")?)
            };
            Ok(Identity {
                vendor_id,
                device_type,
                product_code,
                revision: Revision { major, minor },
                status,
                serial_number,
                product_name: latin1(name),
                state,
            })
        })
    }

    /// A copy that owns its name.
    pub fn into_owned(self) -> Identity<'static> {
        Identity {
            product_name: Cow::Owned(self.product_name.into_owned()),
            ..self
        }
    }

    /// The SHORT_STRING bytes of the product name: at most 255 characters, one byte each.
    fn name_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.product_name
            .chars()
            .take(usize::from(u8::MAX))
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
    }
}

/// ISO 8859-1 text: each byte is the character of that code (borrowed when ASCII).
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => Cow::Borrowed(s),
        _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

impl Encode for Identity<'_> {
    fn encoded_len(&self) -> usize {
        15 + self.name_bytes().count() + usize::from(self.state.is_some())
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.vendor_id);
        out.put_u16_le(self.device_type);
        out.put_u16_le(self.product_code);
        out.put_u8(self.revision.major);
        out.put_u8(self.revision.minor);
        out.put_u16_le(self.status);
        out.put_u32_le(self.serial_number);
        out.put_u8(self.name_bytes().count() as u8);
        for b in self.name_bytes() {
            out.put_u8(b);
        }
        if let Some(state) = self.state {
            out.put_u8(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // A 1756-L61 answering Get Attributes All to the Identity object, from cpppo
    // server/enip_test.py (gaa_011_reply, the CIP part of a Wireshark capture).
    const L61_IDENTITY: [u8; 35] = [
        0x01, 0x00, 0x0e, 0x00, 0x36, 0x00, 0x14, 0x0b, 0x60, 0x31, 0x1a, 0x06, 0x6c, 0x00, 0x14,
        0x31, 0x37, 0x35, 0x36, 0x2d, 0x4c, 0x36, 0x31, 0x2f, 0x42, 0x20, 0x4c, 0x4f, 0x47, 0x49,
        0x58, 0x35, 0x35, 0x36, 0x31,
    ];

    #[test]
    fn controllogix_identity() {
        let id = Identity::decode(&L61_IDENTITY).unwrap();
        assert_eq!(id.vendor_id, 1);
        assert_eq!(id.device_type, 0x0E);
        assert_eq!(id.product_code, 0x36);
        assert_eq!(
            id.revision,
            Revision {
                major: 20,
                minor: 11
            }
        );
        assert_eq!(id.revision.to_string(), "20.011");
        assert_eq!(id.status, 0x3160);
        assert_eq!(id.serial_number, 0x006C_061A);
        assert_eq!(id.product_name, "1756-L61/B LOGIX5561");
        assert_eq!(id.state, None);
        assert_eq!(id.to_vec(), L61_IDENTITY);

        let err = Identity::decode(&L61_IDENTITY[..20]).unwrap_err();
        assert_eq!(err.field(), "identity.product_name");
        assert!(!err.is_incomplete());
    }

    #[test]
    fn attribute_lists() {
        // pycomm3 get_plc_time: Get Attribute List of attribute 0x0B (request_data).
        let req = GetAttributeListRequest::decode(&[0x01, 0x00, 0x0B, 0x00]).unwrap();
        assert_eq!(req.attributes, vec![0x0B]);
        assert_eq!(req.to_vec(), [0x01, 0x00, 0x0B, 0x00]);
        assert_eq!(
            GetAttributeListRequest::decode(&[0x02, 0x00, 0x0B, 0x00])
                .unwrap_err()
                .field(),
            "get_attribute_list.attribute"
        );

        // Two attributes: 1 (UINT) succeeds, 9 is not supported (0x14, no value).
        let bytes = [2, 0, 1, 0, 0, 0, 0x34, 0x12, 9, 0, 0x14, 0];
        let layout = |id: u16, _: &[u8]| (id == 1).then_some(2);
        let rpy = GetAttributeListReply::decode(&bytes, &layout).unwrap();
        assert_eq!(rpy.get(1).unwrap().value.as_ref(), &[0x34, 0x12]);
        assert_eq!(rpy.get(9).unwrap().status, 0x14);
        assert_eq!(rpy.to_vec(), bytes);
        let err = GetAttributeListReply::decode(&[1, 0, 7, 0, 0, 0], &layout).unwrap_err();
        assert_eq!(err.field(), "get_attribute_list.value");

        let set = SetAttributeListRequest::decode(&[1, 0, 1, 0, 0xAA, 0xBB], &layout).unwrap();
        assert_eq!(set.attributes[0].value.as_ref(), &[0xAA, 0xBB]);
        assert_eq!(set.to_vec(), [1, 0, 1, 0, 0xAA, 0xBB]);
        let srp = SetAttributeListReply::decode(&[1, 0, 1, 0, 0x0E, 0]).unwrap();
        assert_eq!(srp.attributes, vec![(1, 0x0E)]);
        assert_eq!(srp.to_vec(), [1, 0, 1, 0, 0x0E, 0]);
    }

    #[test]
    fn product_names_are_latin1_and_survive_re_encoding() {
        // A name that is not UTF-8 (found by the message_router_reply fuzz target: 255
        // bytes of 0xD8 used to decode as 255 U+FFFD, re-encode as 765 bytes cut to 255
        // mid-character, and decode differently).
        let mut bytes = L61_IDENTITY[..14].to_vec();
        bytes.push(255);
        bytes.extend_from_slice(&[0xD8; 255]);
        bytes.push(3);
        let id = Identity::decode(&bytes).unwrap();
        assert_eq!(id.product_name.chars().count(), 255);
        assert!(id.product_name.chars().all(|c| c == '\u{D8}'));
        assert_eq!(id.state, Some(3));
        assert_eq!(id.encoded_len(), bytes.len());
        assert_eq!(id.to_vec(), bytes);
        assert_eq!(Identity::decode(&id.to_vec()).unwrap(), id);

        // ASCII names borrow; Latin-1 ones own; beyond U+00FF becomes '?'.
        assert!(matches!(
            Identity::decode(&L61_IDENTITY).unwrap().product_name,
            Cow::Borrowed(_)
        ));
        let named = |name: &str| Identity {
            product_name: Cow::Owned(name.to_string()),
            ..Identity::decode(&L61_IDENTITY).unwrap()
        };
        let b = named("Z\u{FC}rich \u{20AC}").to_vec();
        assert_eq!(&b[14..], b"\x08Z\xFCrich ?");
        assert_eq!(Identity::decode(&b).unwrap().product_name, "Z\u{FC}rich ?");
        let long = named(&"x".repeat(300));
        assert_eq!(long.encoded_len(), 15 + 255);
        assert_eq!(long.to_vec().len(), 15 + 255);
    }

    fn identity() -> impl Strategy<Value = Identity<'static>> {
        (
            any::<(u16, u16, u16, u8, u8, u16, u32)>(),
            "[ -~]{0,40}",
            any::<Option<u8>>(),
        )
            .prop_map(|((v, d, p, ma, mi, s, sn), name, state)| Identity {
                vendor_id: v,
                device_type: d,
                product_code: p,
                revision: Revision {
                    major: ma,
                    minor: mi,
                },
                status: s,
                serial_number: sn,
                product_name: Cow::Owned(name),
                state,
            })
    }

    proptest! {
        #[test]
        fn identity_round_trips(id in identity()) {
            let bytes = id.to_vec();
            prop_assert_eq!(bytes.len(), id.encoded_len());
            prop_assert_eq!(Identity::decode(&bytes).unwrap(), id);
        }

        #[test]
        fn attribute_list_round_trips(
            ids in proptest::collection::vec(any::<u16>(), 0..20),
            items in proptest::collection::vec((any::<u16>(), 0u16..3, any::<[u8; 4]>()), 0..10),
        ) {
            let req = GetAttributeListRequest { attributes: ids };
            prop_assert_eq!(GetAttributeListRequest::decode(&req.to_vec()).unwrap(), req);
            let rpy = GetAttributeListReply {
                attributes: items.iter().map(|(id, st, v)| AttributeReply {
                    id: *id,
                    status: *st,
                    value: if *st == 0 { Cow::Owned(v.to_vec()) } else { Cow::Borrowed(&[]) },
                }).collect(),
            };
            let bytes = rpy.to_vec();
            prop_assert_eq!(bytes.len(), rpy.encoded_len());
            let four = |_: u16, _: &[u8]| Some(4);
            prop_assert_eq!(GetAttributeListReply::decode(&bytes, &four).unwrap(), rpy);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Identity::decode(&bytes);
            let _ = GetAttributeListRequest::decode_with_trailing(&bytes);
            let any_len = |id: u16, _: &[u8]| Some(usize::from(id % 7));
            let _ = GetAttributeListReply::decode(&bytes, &any_len);
            let _ = SetAttributeListRequest::decode(&bytes, &any_len);
            let _ = SetAttributeListReply::decode(&bytes);
        }
    }
}
