//! The Message Router: the request/reply envelope every explicit CIP message travels in,
//! the service and class numbers, the Multiple Service Packet, and the server-side
//! classification of a request into a typed [`Request`].
//!
//! A Message Router request is `service, path size (words), path, data`; a reply is
//! `service | 0x80, reserved 0, general status, additional status size (words),
//! additional status words, data`. Both are carried whole inside a CPF data item (or a
//! Multiple Service Packet, or an Unconnected Send), so their length is always known:
//! a short field is [`DecodeError::Invalid`] (truncated), never `Incomplete`.
//!
//! In scope: the envelope, Multiple Service Packet (offset table validated), mapping a
//! `(service, target class)` to the service it means ([`Service::classify`]) and decoding
//! its data ([`Request::decode`]). Out of scope: executing services (the server engine),
//! the EPATH segments themselves ([`crate::cip::epath`]).

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::cip::connection_manager::{ForwardCloseRequest, ForwardOpenRequest, UnconnectedSend};
use crate::cip::epath::Epath;
use crate::cip::logix::{
    GetInstanceAttributeListRequest, ReadModifyWriteTagRequest, ReadTagFragmentedRequest,
    ReadTagRequest, TemplateReadRequest, WriteTagFragmentedRequest, WriteTagRequest,
};
use crate::cip::objects::GetAttributeListRequest;
use crate::cip::status::GeneralStatus;
use crate::wire::{DecodeError, DecodeResult, Encode, Reader};

/// CIP service codes (CIP Vol 1 Appendix A, and the Logix and Connection Manager
/// object-specific services). Some object-specific codes are reused by different
/// classes: see [`Service::classify`].
pub mod service {
    /// Bit set in a reply's service code.
    pub const REPLY: u8 = 0x80;
    /// Get Attributes All.
    pub const GET_ATTRIBUTES_ALL: u8 = 0x01;
    /// Set Attributes All.
    pub const SET_ATTRIBUTES_ALL: u8 = 0x02;
    /// Get Attribute List.
    pub const GET_ATTRIBUTE_LIST: u8 = 0x03;
    /// Set Attribute List.
    pub const SET_ATTRIBUTE_LIST: u8 = 0x04;
    /// Reset.
    pub const RESET: u8 = 0x05;
    /// Start.
    pub const START: u8 = 0x06;
    /// Stop.
    pub const STOP: u8 = 0x07;
    /// Create.
    pub const CREATE: u8 = 0x08;
    /// Delete.
    pub const DELETE: u8 = 0x09;
    /// Multiple Service Packet.
    pub const MULTIPLE_SERVICE_PACKET: u8 = 0x0A;
    /// Apply Attributes.
    pub const APPLY_ATTRIBUTES: u8 = 0x0D;
    /// Get Attribute Single.
    pub const GET_ATTRIBUTE_SINGLE: u8 = 0x0E;
    /// Set Attribute Single.
    pub const SET_ATTRIBUTE_SINGLE: u8 = 0x10;
    /// Find Next Object Instance.
    pub const FIND_NEXT_OBJECT_INSTANCE: u8 = 0x11;
    /// No Operation.
    pub const NOP: u8 = 0x17;
    /// Get Member.
    pub const GET_MEMBER: u8 = 0x18;
    /// Set Member.
    pub const SET_MEMBER: u8 = 0x19;
    /// Logix Read Tag; Template Read when addressed to the Template object.
    pub const READ_TAG: u8 = 0x4C;
    /// Logix Write Tag.
    pub const WRITE_TAG: u8 = 0x4D;
    /// Logix Read-Modify-Write Tag (any class but the Connection Manager).
    pub const READ_MODIFY_WRITE_TAG: u8 = 0x4E;
    /// Connection Manager Forward Close (same code as Read-Modify-Write Tag).
    pub const FORWARD_CLOSE: u8 = 0x4E;
    /// Logix Read Tag Fragmented (any class but the Connection Manager).
    pub const READ_TAG_FRAGMENTED: u8 = 0x52;
    /// Connection Manager Unconnected Send (same code as Read Tag Fragmented).
    pub const UNCONNECTED_SEND: u8 = 0x52;
    /// Logix Write Tag Fragmented.
    pub const WRITE_TAG_FRAGMENTED: u8 = 0x53;
    /// Connection Manager Forward Open.
    pub const FORWARD_OPEN: u8 = 0x54;
    /// Logix Symbol object Get Instance Attribute List (tag list upload).
    pub const GET_INSTANCE_ATTRIBUTE_LIST: u8 = 0x55;
    /// Connection Manager Get Connection Owner.
    pub const GET_CONNECTION_OWNER: u8 = 0x5A;
    /// Connection Manager Large Forward Open.
    pub const LARGE_FORWARD_OPEN: u8 = 0x5B;
}

/// CIP object class ids.
pub mod class {
    /// Identity object.
    pub const IDENTITY: u16 = 0x01;
    /// Message Router object.
    pub const MESSAGE_ROUTER: u16 = 0x02;
    /// Assembly object.
    pub const ASSEMBLY: u16 = 0x04;
    /// Connection object.
    pub const CONNECTION: u16 = 0x05;
    /// Connection Manager object.
    pub const CONNECTION_MANAGER: u16 = 0x06;
    /// Logix Program Name object.
    pub const PROGRAM_NAME: u16 = 0x64;
    /// Logix PCCC object.
    pub const PCCC: u16 = 0x67;
    /// Logix Symbol object (tags).
    pub const SYMBOL: u16 = 0x6B;
    /// Logix Template object (structure definitions).
    pub const TEMPLATE: u16 = 0x6C;
    /// Logix Wall Clock Time object.
    pub const WALL_CLOCK_TIME: u16 = 0x8B;
    /// Port object.
    pub const PORT: u16 = 0xF4;
    /// TCP/IP Interface object.
    pub const TCP_IP_INTERFACE: u16 = 0xF5;
    /// Ethernet Link object.
    pub const ETHERNET_LINK: u16 = 0xF6;
}

/// Decode a service body: run `f` over `data`, report truncation as `Invalid`, and
/// return what `f` left unread (the trailing bytes).
pub(crate) fn decode_body<'a, T>(
    data: &'a [u8],
    f: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
) -> DecodeResult<(T, &'a [u8])> {
    let mut r = Reader::new(data);
    let value = f(&mut r).map_err(DecodeError::truncated)?;
    Ok((value, r.rest()))
}

/// Like [`decode_body`], but trailing bytes are an error naming `field`.
pub(crate) fn decode_body_exact<'a, T>(
    data: &'a [u8],
    field: &'static str,
    f: impl FnOnce(&mut Reader<'a>) -> DecodeResult<T>,
) -> DecodeResult<T> {
    let mut r = Reader::new(data);
    let value = f(&mut r).map_err(DecodeError::truncated)?;
    r.expect_end(field)?;
    Ok(value)
}

/// Write an EPATH preceded by its size in words as one byte (and, if `reserved`, a
/// reserved zero byte after the size), padding an odd-length path with a zero byte.
/// (A path longer than 255 words cannot be encoded in a one-byte size; its size
/// saturates and the result is malformed.)
pub(crate) fn put_path_u8<B: BufMut>(out: &mut B, path: &Epath<'_>, reserved: bool) {
    let bytes = path.as_bytes();
    let words = bytes.len().div_ceil(2);
    out.put_u8(u8::try_from(words).unwrap_or(u8::MAX));
    if reserved {
        out.put_u8(0);
    }
    out.put_slice(bytes);
    if bytes.len() % 2 == 1 {
        out.put_u8(0);
    }
}

/// The encoded length of an EPATH padded to whole words.
pub(crate) fn padded_len(path: &Epath<'_>) -> usize {
    path.as_bytes().len().div_ceil(2) * 2
}

/// Read `words` 16-bit words of EPATH.
pub(crate) fn read_path<'a>(
    r: &mut Reader<'a>,
    words: u8,
    field: &'static str,
) -> DecodeResult<Epath<'a>> {
    let bytes = r.take(usize::from(words) * 2, field)?;
    Ok(Epath::from_wire(bytes))
}

/// A Message Router request: a service, the path of the object it is for, and the
/// service's data (left undecoded; see [`Request::decode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRouterRequest<'a> {
    /// The service code (without the reply bit).
    pub service: u8,
    /// The request path (class/instance/attribute, or a symbolic tag).
    #[serde(borrow)]
    pub path: Epath<'a>,
    /// The service-specific data.
    #[serde(borrow)]
    pub data: Cow<'a, [u8]>,
}

impl<'a> MessageRouterRequest<'a> {
    /// A request for `service` on `path` with `data`.
    pub fn new(service: u8, path: Epath<'a>, data: impl Into<Cow<'a, [u8]>>) -> Self {
        MessageRouterRequest {
            service,
            path,
            data: data.into(),
        }
    }

    /// Decode a whole request (the data is everything after the path).
    pub fn decode(bytes: &'a [u8]) -> DecodeResult<Self> {
        Self::read(&mut Reader::new(bytes))
    }

    /// Decode a request occupying every remaining byte of `r`.
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let service = r.u8("message_router.service")?;
        let words = r
            .u8("message_router.path_size")
            .map_err(DecodeError::truncated)?;
        let path = read_path(r, words, "message_router.path").map_err(DecodeError::truncated)?;
        let data = r.rest();
        Ok(MessageRouterRequest {
            service,
            path,
            data: Cow::Borrowed(data),
        })
    }

    /// The class id of the path's leading logical class segment, if any (a class id
    /// beyond 16 bits names no object a Logix device has, and gives `None`).
    pub fn target_class(&self) -> Option<u16> {
        self.path
            .leading_class()
            .and_then(|class| u16::try_from(class).ok())
    }

    /// What this request means, by service and target class.
    pub fn kind(&self) -> Service {
        Service::classify(self.service, self.target_class())
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> MessageRouterRequest<'static> {
        MessageRouterRequest {
            service: self.service,
            path: self.path.into_owned(),
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

impl Encode for MessageRouterRequest<'_> {
    fn encoded_len(&self) -> usize {
        2 + padded_len(&self.path) + self.data.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.service);
        put_path_u8(out, &self.path, false);
        out.put_slice(&self.data);
    }
}

/// A Message Router reply: the service echoed with the reply bit, a general status,
/// optional additional status words, and the reply data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRouterReply<'a> {
    /// The request's service code with [`service::REPLY`] set.
    pub service: u8,
    /// The general status.
    pub general_status: GeneralStatus,
    /// Additional (extended) status words, usually none or one.
    pub additional_status: Vec<u16>,
    /// The reply data (may be present with an error status, e.g. a partial transfer).
    #[serde(borrow)]
    pub data: Cow<'a, [u8]>,
}

impl<'a> MessageRouterReply<'a> {
    /// A successful reply to `request_service` carrying `data`.
    pub fn success(request_service: u8, data: impl Into<Cow<'a, [u8]>>) -> Self {
        MessageRouterReply {
            service: request_service | service::REPLY,
            general_status: GeneralStatus::SUCCESS,
            additional_status: Vec::new(),
            data: data.into(),
        }
    }

    /// A reply to `request_service` with `status` and optional extended status words,
    /// and no data.
    pub fn error(request_service: u8, status: GeneralStatus, additional: &[u16]) -> Self {
        MessageRouterReply {
            service: request_service | service::REPLY,
            general_status: status,
            additional_status: additional.to_vec(),
            data: Cow::Borrowed(&[]),
        }
    }

    /// Decode a whole reply (the data is everything after the status).
    pub fn decode(bytes: &'a [u8]) -> DecodeResult<Self> {
        Self::read(&mut Reader::new(bytes))
    }

    /// Decode a reply occupying every remaining byte of `r`.
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let at = r.offset();
        let service = r.u8("message_router.service")?;
        if service & service::REPLY == 0 {
            return Err(r.invalid_at(
                "message_router.service",
                at,
                format!("service 0x{service:02X} lacks the reply bit 0x80"),
            ));
        }
        let body = (|| {
            r.u8("message_router.reserved")?;
            let general_status = GeneralStatus(r.u8("message_router.general_status")?);
            let words = r.u8("message_router.additional_status_size")?;
            let mut additional_status = Vec::new();
            for _ in 0..words {
                additional_status.push(r.u16_le("message_router.additional_status")?);
            }
            Ok((general_status, additional_status))
        })();
        let (general_status, additional_status) = body.map_err(DecodeError::truncated)?;
        Ok(MessageRouterReply {
            service,
            general_status,
            additional_status,
            data: Cow::Borrowed(r.rest()),
        })
    }

    /// The request's service code (without the reply bit).
    pub fn request_service(&self) -> u8 {
        self.service & !service::REPLY
    }

    /// The first additional status word, if any (the extended status).
    pub fn extended_status(&self) -> Option<u16> {
        self.additional_status.first().copied()
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> MessageRouterReply<'static> {
        MessageRouterReply {
            service: self.service,
            general_status: self.general_status,
            additional_status: self.additional_status,
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

impl Encode for MessageRouterReply<'_> {
    fn encoded_len(&self) -> usize {
        4 + 2 * self.additional_status.len().min(255) + self.data.len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        let words = self.additional_status.len().min(255);
        out.put_u8(self.service);
        out.put_u8(0);
        out.put_u8(self.general_status.0);
        out.put_u8(u8::try_from(words).unwrap_or(u8::MAX));
        for w in self.additional_status.iter().take(words) {
            out.put_u16_le(*w);
        }
        out.put_slice(&self.data);
    }
}

/// Split the data of a Multiple Service Packet into `(absolute offset, bytes)` items,
/// validating the offset table: every offset lies after the table and inside the data,
/// and each is greater than the one before (so items neither overlap nor are empty).
fn split_multiple<'a>(r: &mut Reader<'a>) -> DecodeResult<Vec<(usize, &'a [u8])>> {
    let start = r.offset();
    let all = r.peek_rest();
    let count = r
        .u16_le("multiple_service.count")
        .map_err(DecodeError::truncated)?;
    let table_end = 2 + 2 * usize::from(count);
    if all.len() < table_end {
        return Err(r.invalid(
            "multiple_service.offsets",
            format!(
                "{count} offsets need {} bytes, only {} present",
                2 * usize::from(count),
                all.len().saturating_sub(2)
            ),
        ));
    }
    // `count` is bounded by the bytes present (checked above).
    let mut offsets: Vec<usize> = Vec::with_capacity(usize::from(count));
    for i in 0..usize::from(count) {
        let at = r.offset();
        let off = usize::from(r.u16_le("multiple_service.offset")?);
        let reason = if off < table_end {
            Some(format!(
                "offset[{i}] = {off} points into the offset table (ends at {table_end})"
            ))
        } else if off >= all.len() {
            Some(format!(
                "offset[{i}] = {off} is beyond the {} data bytes",
                all.len()
            ))
        } else if let Some(&prev) = offsets.last().filter(|&&p| off <= p) {
            Some(format!(
                "offset[{i}] = {off} is not after offset[{}] = {prev}",
                i - 1
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(r.invalid_at("multiple_service.offset", at, reason));
        }
        offsets.push(off);
    }
    let mut items = Vec::with_capacity(offsets.len());
    for (i, &off) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(all.len());
        let bytes = all.get(off..end).unwrap_or_default();
        items.push((start + off, bytes));
    }
    r.rest();
    Ok(items)
}

fn encode_offsets<B: BufMut>(out: &mut B, lens: impl Iterator<Item = usize> + Clone) {
    let count = lens.clone().count();
    out.put_u16_le(u16::try_from(count).unwrap_or(u16::MAX));
    let mut off = 2 + 2 * count;
    for len in lens {
        out.put_u16_le(u16::try_from(off).unwrap_or(u16::MAX));
        off += len;
    }
}

/// The data of a Multiple Service Packet request: embedded Message Router requests.
///
/// On the wire: count (u16), then count offsets (u16, from the count field) to the
/// embedded requests, then the requests. The encoder computes the offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipleServiceRequest<'a> {
    /// The embedded requests, in order.
    #[serde(borrow)]
    pub requests: Vec<MessageRouterRequest<'a>>,
}

impl<'a> MultipleServiceRequest<'a> {
    /// Decode the data of a Multiple Service Packet request.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        Self::read(&mut Reader::new(data))
    }

    /// Decode from every remaining byte of `r` (offsets in errors stay absolute).
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let items = split_multiple(r)?;
        let mut requests = Vec::with_capacity(items.len());
        for (at, bytes) in items {
            requests.push(MessageRouterRequest::read(&mut Reader::with_base(
                bytes, at,
            ))?);
        }
        Ok(MultipleServiceRequest { requests })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> MultipleServiceRequest<'static> {
        MultipleServiceRequest {
            requests: self.requests.into_iter().map(|r| r.into_owned()).collect(),
        }
    }
}

impl Encode for MultipleServiceRequest<'_> {
    fn encoded_len(&self) -> usize {
        2 + self
            .requests
            .iter()
            .map(|r| 2 + r.encoded_len())
            .sum::<usize>()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        encode_offsets(out, self.requests.iter().map(|r| r.encoded_len()));
        for r in &self.requests {
            r.encode(out);
        }
    }
}

/// The data of a Multiple Service Packet reply: embedded Message Router replies, laid
/// out like [`MultipleServiceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipleServiceReply<'a> {
    /// The embedded replies, in request order.
    #[serde(borrow)]
    pub replies: Vec<MessageRouterReply<'a>>,
}

impl<'a> MultipleServiceReply<'a> {
    /// Decode the data of a Multiple Service Packet reply.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        Self::read(&mut Reader::new(data))
    }

    /// Decode from every remaining byte of `r` (offsets in errors stay absolute).
    pub fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let items = split_multiple(r)?;
        let mut replies = Vec::with_capacity(items.len());
        for (at, bytes) in items {
            replies.push(MessageRouterReply::read(&mut Reader::with_base(bytes, at))?);
        }
        Ok(MultipleServiceReply { replies })
    }

    /// The general status a Multiple Service Packet reply carries for these replies:
    /// success, or [`GeneralStatus::EMBEDDED_SERVICE_ERROR`] if any failed (a partial
    /// transfer counts as success).
    pub fn general_status(&self) -> GeneralStatus {
        if self
            .replies
            .iter()
            .all(|r| r.general_status.is_ok_or_partial())
        {
            GeneralStatus::SUCCESS
        } else {
            GeneralStatus::EMBEDDED_SERVICE_ERROR
        }
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> MultipleServiceReply<'static> {
        MultipleServiceReply {
            replies: self.replies.into_iter().map(|r| r.into_owned()).collect(),
        }
    }
}

impl Encode for MultipleServiceReply<'_> {
    fn encoded_len(&self) -> usize {
        2 + self
            .replies
            .iter()
            .map(|r| 2 + r.encoded_len())
            .sum::<usize>()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        encode_offsets(out, self.replies.iter().map(|r| r.encoded_len()));
        for r in &self.replies {
            r.encode(out);
        }
    }
}

/// What a request's service code means, given the class it is addressed to.
///
/// Logix reuses codes: 0x52 is Unconnected Send for the Connection Manager (class 0x06)
/// and Read Tag Fragmented elsewhere; 0x4E is Forward Close for the Connection Manager
/// and Read-Modify-Write Tag elsewhere; 0x4C to the Template object is Template Read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Service {
    /// 0x01 Get Attributes All.
    GetAttributesAll,
    /// 0x02 Set Attributes All.
    SetAttributesAll,
    /// 0x03 Get Attribute List.
    GetAttributeList,
    /// 0x04 Set Attribute List.
    SetAttributeList,
    /// 0x05 Reset.
    Reset,
    /// 0x0A Multiple Service Packet.
    MultipleServicePacket,
    /// 0x0E Get Attribute Single.
    GetAttributeSingle,
    /// 0x10 Set Attribute Single.
    SetAttributeSingle,
    /// 0x4C Read Tag.
    ReadTag,
    /// 0x4C to the Template object: read the template definition.
    TemplateRead,
    /// 0x4D Write Tag.
    WriteTag,
    /// 0x4E (not to the Connection Manager) Read-Modify-Write Tag.
    ReadModifyWriteTag,
    /// 0x52 (not to the Connection Manager) Read Tag Fragmented.
    ReadTagFragmented,
    /// 0x53 Write Tag Fragmented.
    WriteTagFragmented,
    /// 0x55 to the Symbol object: Get Instance Attribute List.
    GetInstanceAttributeList,
    /// 0x52 to the Connection Manager: Unconnected Send.
    UnconnectedSend,
    /// 0x54 to the Connection Manager: Forward Open.
    ForwardOpen,
    /// 0x5B to the Connection Manager: Large Forward Open.
    LargeForwardOpen,
    /// 0x4E to the Connection Manager: Forward Close.
    ForwardClose,
    /// Any other service code (answered "service not supported" or handled elsewhere).
    Other(u8),
}

impl Service {
    /// Classify a service code by the class it is addressed to (`None` when the path
    /// does not begin with a class segment, e.g. a symbolic tag path).
    pub fn classify(code: u8, class: Option<u16>) -> Service {
        let cm = class == Some(class::CONNECTION_MANAGER);
        match code {
            service::GET_ATTRIBUTES_ALL => Service::GetAttributesAll,
            service::SET_ATTRIBUTES_ALL => Service::SetAttributesAll,
            service::GET_ATTRIBUTE_LIST => Service::GetAttributeList,
            service::SET_ATTRIBUTE_LIST => Service::SetAttributeList,
            service::RESET => Service::Reset,
            service::MULTIPLE_SERVICE_PACKET => Service::MultipleServicePacket,
            service::GET_ATTRIBUTE_SINGLE => Service::GetAttributeSingle,
            service::SET_ATTRIBUTE_SINGLE => Service::SetAttributeSingle,
            service::READ_TAG if class == Some(class::TEMPLATE) => Service::TemplateRead,
            service::READ_TAG if !cm => Service::ReadTag,
            service::WRITE_TAG if !cm => Service::WriteTag,
            service::FORWARD_CLOSE if cm => Service::ForwardClose,
            service::READ_MODIFY_WRITE_TAG => Service::ReadModifyWriteTag,
            service::UNCONNECTED_SEND if cm => Service::UnconnectedSend,
            service::READ_TAG_FRAGMENTED => Service::ReadTagFragmented,
            service::WRITE_TAG_FRAGMENTED if !cm => Service::WriteTagFragmented,
            service::FORWARD_OPEN if cm => Service::ForwardOpen,
            service::LARGE_FORWARD_OPEN if cm => Service::LargeForwardOpen,
            service::GET_INSTANCE_ATTRIBUTE_LIST if class == Some(class::SYMBOL) => {
                Service::GetInstanceAttributeList
            }
            other => Service::Other(other),
        }
    }

    /// The service code.
    pub fn code(self) -> u8 {
        match self {
            Service::GetAttributesAll => service::GET_ATTRIBUTES_ALL,
            Service::SetAttributesAll => service::SET_ATTRIBUTES_ALL,
            Service::GetAttributeList => service::GET_ATTRIBUTE_LIST,
            Service::SetAttributeList => service::SET_ATTRIBUTE_LIST,
            Service::Reset => service::RESET,
            Service::MultipleServicePacket => service::MULTIPLE_SERVICE_PACKET,
            Service::GetAttributeSingle => service::GET_ATTRIBUTE_SINGLE,
            Service::SetAttributeSingle => service::SET_ATTRIBUTE_SINGLE,
            Service::ReadTag | Service::TemplateRead => service::READ_TAG,
            Service::WriteTag => service::WRITE_TAG,
            Service::ReadModifyWriteTag => service::READ_MODIFY_WRITE_TAG,
            Service::ReadTagFragmented => service::READ_TAG_FRAGMENTED,
            Service::WriteTagFragmented => service::WRITE_TAG_FRAGMENTED,
            Service::GetInstanceAttributeList => service::GET_INSTANCE_ATTRIBUTE_LIST,
            Service::UnconnectedSend => service::UNCONNECTED_SEND,
            Service::ForwardOpen => service::FORWARD_OPEN,
            Service::LargeForwardOpen => service::LARGE_FORWARD_OPEN,
            Service::ForwardClose => service::FORWARD_CLOSE,
            Service::Other(code) => code,
        }
    }
}

/// A request's data, decoded according to what its service means (see
/// [`Service::classify`]). Payloads borrow from the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Get Attributes All (no data).
    GetAttributesAll,
    /// Set Attributes All: the object's attribute values, opaque.
    SetAttributesAll(#[serde(borrow)] Cow<'a, [u8]>),
    /// Get Attribute List.
    GetAttributeList(GetAttributeListRequest),
    /// Set Attribute List: the values stay opaque (their layout is per attribute), so
    /// the data is kept whole; decode it with
    /// [`crate::cip::objects::SetAttributeListRequest::decode`].
    SetAttributeList(#[serde(borrow)] Cow<'a, [u8]>),
    /// Reset (optional reset type byte kept opaque).
    Reset(#[serde(borrow)] Cow<'a, [u8]>),
    /// Multiple Service Packet.
    MultipleServicePacket(#[serde(borrow)] MultipleServiceRequest<'a>),
    /// Get Attribute Single (no data).
    GetAttributeSingle,
    /// Set Attribute Single: the attribute value, opaque.
    SetAttributeSingle(#[serde(borrow)] Cow<'a, [u8]>),
    /// Read Tag.
    ReadTag(ReadTagRequest),
    /// Template Read.
    TemplateRead(TemplateReadRequest),
    /// Write Tag.
    WriteTag(#[serde(borrow)] WriteTagRequest<'a>),
    /// Read-Modify-Write Tag.
    ReadModifyWriteTag(#[serde(borrow)] ReadModifyWriteTagRequest<'a>),
    /// Read Tag Fragmented.
    ReadTagFragmented(ReadTagFragmentedRequest),
    /// Write Tag Fragmented.
    WriteTagFragmented(#[serde(borrow)] WriteTagFragmentedRequest<'a>),
    /// Symbol object Get Instance Attribute List.
    GetInstanceAttributeList(GetInstanceAttributeListRequest),
    /// Unconnected Send.
    UnconnectedSend(#[serde(borrow)] UnconnectedSend<'a>),
    /// Forward Open or Large Forward Open (see [`ForwardOpenRequest::large`]).
    ForwardOpen(#[serde(borrow)] ForwardOpenRequest<'a>),
    /// Forward Close.
    ForwardClose(#[serde(borrow)] ForwardCloseRequest<'a>),
    /// Any other service, data opaque.
    Other {
        /// The service code.
        service: u8,
        /// The data.
        #[serde(borrow)]
        data: Cow<'a, [u8]>,
    },
}

/// A classified request and any bytes after its self-delimited data.
///
/// Trailing bytes are reported rather than refused so a server can choose to accept
/// them (pycomm3 sends some: e.g. a Read-Modify-Write Tag whose AND mask is 8 bytes
/// long whatever the mask size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifiedRequest<'a> {
    /// The decoded request.
    #[serde(borrow)]
    pub request: Request<'a>,
    /// Bytes after the request's data, for services whose data is self-delimiting.
    #[serde(borrow)]
    pub trailing: Cow<'a, [u8]>,
}

impl<'a> Request<'a> {
    /// Classify `req` by service and target class and decode its data. Error offsets
    /// are relative to the start of `req.data`.
    pub fn decode(req: &'a MessageRouterRequest<'_>) -> DecodeResult<ClassifiedRequest<'a>> {
        let data: &'a [u8] = &req.data;
        let whole = |request| -> DecodeResult<ClassifiedRequest<'a>> {
            Ok(ClassifiedRequest {
                request,
                trailing: Cow::Borrowed(&[]),
            })
        };
        let with = |(request, trailing): (Request<'a>, &'a [u8])| {
            Ok(ClassifiedRequest {
                request,
                trailing: Cow::Borrowed(trailing),
            })
        };
        let borrowed = Cow::Borrowed(data);
        match req.kind() {
            Service::GetAttributesAll => with((Request::GetAttributesAll, data)),
            Service::SetAttributesAll => whole(Request::SetAttributesAll(borrowed)),
            Service::GetAttributeList => {
                let (v, t) = GetAttributeListRequest::decode_with_trailing(data)?;
                with((Request::GetAttributeList(v), t))
            }
            Service::SetAttributeList => whole(Request::SetAttributeList(borrowed)),
            Service::Reset => whole(Request::Reset(borrowed)),
            Service::MultipleServicePacket => whole(Request::MultipleServicePacket(
                MultipleServiceRequest::decode(data)?,
            )),
            Service::GetAttributeSingle => with((Request::GetAttributeSingle, data)),
            Service::SetAttributeSingle => whole(Request::SetAttributeSingle(borrowed)),
            Service::ReadTag => {
                let (v, t) = ReadTagRequest::decode_with_trailing(data)?;
                with((Request::ReadTag(v), t))
            }
            Service::TemplateRead => {
                let (v, t) = TemplateReadRequest::decode_with_trailing(data)?;
                with((Request::TemplateRead(v), t))
            }
            Service::WriteTag => {
                let (v, t) = WriteTagRequest::decode_with_trailing(data)?;
                with((Request::WriteTag(v), t))
            }
            Service::ReadModifyWriteTag => {
                let (v, t) = ReadModifyWriteTagRequest::decode_with_trailing(data)?;
                with((Request::ReadModifyWriteTag(v), t))
            }
            Service::ReadTagFragmented => {
                let (v, t) = ReadTagFragmentedRequest::decode_with_trailing(data)?;
                with((Request::ReadTagFragmented(v), t))
            }
            Service::WriteTagFragmented => {
                let (v, t) = WriteTagFragmentedRequest::decode_with_trailing(data)?;
                with((Request::WriteTagFragmented(v), t))
            }
            Service::GetInstanceAttributeList => {
                let (v, t) = GetInstanceAttributeListRequest::decode_with_trailing(data)?;
                with((Request::GetInstanceAttributeList(v), t))
            }
            Service::UnconnectedSend => {
                let (v, t) = UnconnectedSend::decode_with_trailing(data)?;
                with((Request::UnconnectedSend(v), t))
            }
            Service::ForwardOpen | Service::LargeForwardOpen => {
                let large = req.service == service::LARGE_FORWARD_OPEN;
                let (v, t) = ForwardOpenRequest::decode_with_trailing(data, large)?;
                with((Request::ForwardOpen(v), t))
            }
            Service::ForwardClose => {
                let (v, t) = ForwardCloseRequest::decode_with_trailing(data)?;
                with((Request::ForwardClose(v), t))
            }
            Service::Other(service) => whole(Request::Other {
                service,
                data: borrowed,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cip::data::DataType;
    use crate::cip::logix::{ReadTagReply, ReadTagRequest, WriteTagRequest};
    use proptest::prelude::*;

    // cpppo server/logix_test.py GA_tests: Get Attribute Single 0x02/1/4 and its reply.
    #[test]
    fn get_and_set_attribute_single() {
        let req = MessageRouterRequest::decode(b"\x0e\x03\x20\x02\x24\x01\x30\x04").unwrap();
        assert_eq!(req.service, service::GET_ATTRIBUTE_SINGLE);
        assert_eq!(req.path.as_bytes(), b"\x20\x02\x24\x01\x30\x04");
        assert_eq!(req.target_class(), Some(class::MESSAGE_ROUTER));
        assert!(req.data.is_empty());
        assert_eq!(req.kind(), Service::GetAttributeSingle);
        let rpy = MessageRouterReply::decode(b"\x8e\x00\x00\x00\x00\x00\x80\x3f").unwrap();
        assert_eq!(rpy.request_service(), service::GET_ATTRIBUTE_SINGLE);
        assert_eq!(rpy.general_status, GeneralStatus::SUCCESS);
        assert_eq!(rpy.data.as_ref(), &[0, 0, 0x80, 0x3f]);
        assert_eq!(
            MessageRouterReply::success(0x0E, &[0, 0, 0x80, 0x3f][..]),
            rpy
        );

        let bytes = b"\x10\x03\x20\x02\x24\x01\x30\x04\x00\x00\x80\x3f";
        let req = MessageRouterRequest::decode(bytes).unwrap();
        let c = Request::decode(&req).unwrap();
        assert_eq!(
            c.request,
            Request::SetAttributeSingle(Cow::Borrowed(&[0, 0, 0x80, 0x3f]))
        );
        assert_eq!(req.to_vec(), bytes);
        assert_eq!(
            MessageRouterReply::decode(b"\x90\x00\x00\x00")
                .unwrap()
                .data
                .len(),
            0
        );
    }

    // cpppo server/logix_test.py test_logix_multiple: req_1 and rpy_1.
    pub(crate) const MULTIPLE_REQ: &[u8] = &[
        0x0A, 0x02, 0x20, 0x02, 0x24, 0x01, 0x05, 0x00, 0x0c, 0x00, 0x18, 0x00, 0x2a, 0x00, 0x36,
        0x00, 0x48, 0x00, 0x4C, 0x04, 0x91, 0x05, b'p', b'a', b'r', b't', b's', 0x00, 0x01, 0x00,
        0x4C, 0x07, 0x91, 0x0B, b'C', b'o', b'n', b't', b'r', b'o', b'l', b'W', b'o', b'r', b'd',
        0x00, 0x01, 0x00, b'L', 0x04, 0x91, 0x06, b'n', b'u', b'm', b'b', b'e', b'r', 0x01, 0x00,
        b'M', 0x04, 0x91, 0x06, b'n', b'u', b'm', b'b', b'e', b'r', 0xca, 0x00, 0x01, 0x00, 0x00,
        0x00, 0xa0, 0x3f, b'L', 0x04, 0x91, 0x06, b'n', b'u', b'm', b'b', b'e', b'r', 0x01, 0x00,
    ];
    const MULTIPLE_RPY: &[u8] = &[
        0x8A, 0x00, 0x00, 0x00, 0x05, 0x00, 0x0c, 0x00, 0x16, 0x00, 0x20, 0x00, 0x2a, 0x00, 0x2e,
        0x00, 0xCC, 0x00, 0x00, 0x00, 0xC4, 0x00, 0x2A, 0x00, 0x00, 0x00, 0xCC, 0x00, 0x00, 0x00,
        0xC4, 0x00, 0xDC, 0x01, 0x00, 0x00, 0xCC, 0x00, 0x00, 0x00, 0xCA, 0x00, 0x00, 0x00, 0x80,
        0x3F, 0xcd, 0x00, 0x00, 0x00, 0xcc, 0x00, 0x00, 0x00, 0xca, 0x00, 0x00, 0x00, 0xa0, 0x3f,
    ];

    #[test]
    fn multiple_service_packet_from_cpppo() {
        let req = MessageRouterRequest::decode(MULTIPLE_REQ).unwrap();
        assert_eq!(req.kind(), Service::MultipleServicePacket);
        let Request::MultipleServicePacket(msp) = Request::decode(&req).unwrap().request else {
            panic!("not a Multiple Service Packet");
        };
        assert_eq!(msp.requests.len(), 5);
        assert_eq!(msp.requests[1].path.as_bytes(), b"\x91\x0bControlWord\x00");
        let first = Request::decode(&msp.requests[0]).unwrap();
        assert_eq!(
            first.request,
            Request::ReadTag(ReadTagRequest { elements: 1 })
        );
        let Request::WriteTag(w) = Request::decode(&msp.requests[3]).unwrap().request else {
            panic!("not a Write Tag");
        };
        assert_eq!(w.tag_type, DataType::REAL.into());
        assert_eq!(w.elements, 1);
        assert_eq!(w.data.as_ref(), 1.25f32.to_le_bytes());
        assert_eq!(msp.to_vec(), req.data.as_ref());
        assert_eq!(
            WriteTagRequest::decode(&req.data[0x36..0x48][10..]).unwrap(),
            w
        );

        let rpy = MessageRouterReply::decode(MULTIPLE_RPY).unwrap();
        let msr = MultipleServiceReply::decode(&rpy.data).unwrap();
        assert_eq!(msr.replies.len(), 5);
        assert_eq!(msr.general_status(), GeneralStatus::SUCCESS);
        let r1 = ReadTagReply::decode(&msr.replies[1].data).unwrap();
        assert_eq!(r1.tag_type, DataType::DINT.into());
        assert_eq!(r1.data.as_ref(), 476u32.to_le_bytes());
        assert_eq!(msr.replies[3].service, 0xCD);
        assert_eq!(msr.to_vec(), rpy.data.as_ref());
    }

    // cpppo server/logix_test.py rpy_bad: the second embedded reply failed with 0x05
    // and one extended status word.
    #[test]
    fn multiple_service_reply_with_a_failure() {
        let data = [
            0x02, 0x00, 0x06, 0x00, 0x0e, 0x00, 0xCC, 0x00, 0x00, 0x00, 0xC3, 0x00, 0x00, 0x00,
            0xCC, 0x00, 0x05, 0x01, 0x00, 0x00,
        ];
        let msr = MultipleServiceReply::decode(&data).unwrap();
        let bad = &msr.replies[1];
        assert_eq!(bad.general_status, GeneralStatus::PATH_DESTINATION_UNKNOWN);
        assert_eq!(bad.additional_status, vec![0]);
        assert_eq!(bad.extended_status(), Some(0));
        assert_eq!(msr.general_status(), GeneralStatus::EMBEDDED_SERVICE_ERROR);
        assert_eq!(msr.to_vec(), data);
    }

    #[test]
    fn multiple_service_offsets_are_validated() {
        let check = |data: &[u8], offset: usize, says: &str| {
            let e = MultipleServiceRequest::decode(data).unwrap_err();
            assert_eq!(e.field(), "multiple_service.offset", "{e}");
            assert_eq!(e.offset(), offset, "{e}");
            assert!(e.to_string().contains(says), "{e}");
        };
        // Into the offset table.
        check(
            &[2, 0, 4, 0, 6, 0, 0x0E, 0, 0x0E, 0],
            2,
            "offset[0] = 4 points into",
        );
        // Not increasing (overlap / same item twice).
        check(
            &[2, 0, 6, 0, 6, 0, 0x0E, 0, 0x0E, 0],
            4,
            "offset[1] = 6 is not after offset[0]",
        );
        // Beyond the data.
        check(&[1, 0, 9, 0, 0x0E, 0], 2, "offset[0] = 9 is beyond");
        // Count claims more offsets than there are bytes.
        let e = MultipleServiceRequest::decode(&[9, 0, 4, 0]).unwrap_err();
        assert_eq!(e.field(), "multiple_service.offsets");
        // An embedded request too short for its path reports an absolute offset.
        let e = MultipleServiceRequest::decode(&[1, 0, 4, 0, 0x0E, 2, 0x20]).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("message_router.path", 6));
        assert!(!e.is_incomplete());
        // Zero requests is well formed.
        assert!(MultipleServiceRequest::decode(&[0, 0])
            .unwrap()
            .requests
            .is_empty());
    }

    #[test]
    fn replies_need_the_reply_bit_and_their_status_words() {
        let e = MessageRouterReply::decode(&[0x0E, 0, 0, 0]).unwrap_err();
        assert_eq!(e.field(), "message_router.service");
        let e = MessageRouterReply::decode(&[0x8E, 0, 0xFF, 2, 0x05, 0x21]).unwrap_err();
        assert_eq!(
            (e.field(), e.offset()),
            ("message_router.additional_status", 6)
        );
        let r = MessageRouterReply::decode(&[0xCC, 0, 0xFF, 1, 0x07, 0x21]).unwrap();
        assert_eq!(r.extended_status(), Some(0x2107));
        assert_eq!(
            MessageRouterReply::error(0x4C, GeneralStatus::GENERAL_ERROR, &[0x2107]),
            r
        );
    }

    #[test]
    fn classification_by_service_and_class() {
        let target = |path: &[u8]| {
            MessageRouterRequest::new(0x0E, Epath::from_wire(path), &[]).target_class()
        };
        assert_eq!(target(&[0x20, 0x6B, 0x25, 0, 1, 0]), Some(0x6B));
        assert_eq!(target(&[0x21, 0x00, 0x34, 0x12]), Some(0x1234));
        // A 32-bit class segment is read too; one beyond 16 bits names no object.
        assert_eq!(target(&[0x22, 0x00, 0x06, 0, 0, 0]), Some(0x06));
        assert_eq!(target(&[0x22, 0x00, 0, 0, 1, 0]), None);
        assert_eq!(target(&[0x91, 0x01, b'a', 0]), None);
        assert_eq!(target(&[0x20]), None);
        let cm = Some(class::CONNECTION_MANAGER);
        assert_eq!(Service::classify(0x52, cm), Service::UnconnectedSend);
        assert_eq!(Service::classify(0x52, None), Service::ReadTagFragmented);
        assert_eq!(Service::classify(0x4E, cm), Service::ForwardClose);
        assert_eq!(Service::classify(0x4E, None), Service::ReadModifyWriteTag);
        assert_eq!(Service::classify(0x54, cm), Service::ForwardOpen);
        assert_eq!(Service::classify(0x54, None), Service::Other(0x54));
        assert_eq!(Service::classify(0x5B, cm), Service::LargeForwardOpen);
        assert_eq!(
            Service::classify(0x4C, Some(class::TEMPLATE)),
            Service::TemplateRead
        );
        assert_eq!(
            Service::classify(0x55, Some(class::SYMBOL)),
            Service::GetInstanceAttributeList
        );
        assert_eq!(Service::classify(0x55, None), Service::Other(0x55));
        for code in 0..=0x7F {
            for class in [None, cm, Some(class::SYMBOL), Some(class::TEMPLATE)] {
                assert_eq!(Service::classify(code, class).code(), code);
            }
        }
    }

    pub(crate) fn path() -> impl Strategy<Value = Epath<'static>> {
        proptest::collection::vec(any::<[u8; 2]>(), 0..8).prop_map(|w| Epath::from_vec(w.concat()))
    }

    pub(crate) fn mr_request() -> impl Strategy<Value = MessageRouterRequest<'static>> {
        (
            0u8..0x80,
            path(),
            proptest::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(|(s, p, d)| MessageRouterRequest::new(s, p, d))
    }

    fn mr_reply() -> impl Strategy<Value = MessageRouterReply<'static>> {
        (
            0x80u8..=0xFF,
            any::<u8>(),
            proptest::collection::vec(any::<u16>(), 0..3),
            proptest::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(|(s, st, a, d)| MessageRouterReply {
                service: s,
                general_status: GeneralStatus(st),
                additional_status: a,
                data: Cow::Owned(d),
            })
    }

    proptest! {
        #[test]
        fn request_round_trips(req in mr_request()) {
            let bytes = req.to_vec();
            prop_assert_eq!(bytes.len(), req.encoded_len());
            prop_assert_eq!(MessageRouterRequest::decode(&bytes).unwrap(), req);
        }

        #[test]
        fn reply_round_trips(rpy in mr_reply()) {
            let bytes = rpy.to_vec();
            prop_assert_eq!(bytes.len(), rpy.encoded_len());
            prop_assert_eq!(MessageRouterReply::decode(&bytes).unwrap(), rpy);
        }

        #[test]
        fn multiple_round_trips(
            reqs in proptest::collection::vec(mr_request(), 0..6),
            rpys in proptest::collection::vec(mr_reply(), 0..6),
        ) {
            let m = MultipleServiceRequest { requests: reqs };
            let bytes = m.to_vec();
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(MultipleServiceRequest::decode(&bytes).unwrap(), m);
            let m = MultipleServiceReply { replies: rpys };
            let bytes = m.to_vec();
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(MultipleServiceReply::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = MessageRouterReply::decode(&bytes);
            let _ = MultipleServiceRequest::decode(&bytes);
            let _ = MultipleServiceReply::decode(&bytes);
            if let Ok(req) = MessageRouterRequest::decode(&bytes) {
                let _ = Request::decode(&req);
            }
        }

        #[test]
        fn every_service_data_never_panics(
            service in any::<u8>(),
            class in prop_oneof![Just(0x06u8), Just(0x6B), Just(0x6C), Just(0x02)],
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            for path in [vec![0x20, class, 0x24, 0x01], vec![0x91, 0x01, b'x', 0]] {
                let req = MessageRouterRequest::new(service, Epath::from_vec(path), data.clone());
                let _ = Request::decode(&req);
            }
        }
    }
}
