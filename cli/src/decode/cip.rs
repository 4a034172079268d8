//! CIP Message Router requests and replies as JSON, as deep as the codecs go.
//!
//! Every decode error is shifted to its offset in the whole input via [`Frame::at`],
//! which works because decoded messages borrow their bytes from the frame.

use cpppo_core::cip::connection_manager::{
    unconnected_send_remaining_path_size, ForwardCloseReply, ForwardOpenFailure, ForwardOpenReply,
};
use cpppo_core::cip::data::{Count, DataType, TagType, Values};
use cpppo_core::cip::epath::Epath;
use cpppo_core::cip::logix::{element_size, ReadTagReply};
use cpppo_core::cip::message_router::{
    service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply, Request, Service,
};
use cpppo_core::cip::objects::Identity;
use cpppo_core::cip::status::{ConnectionManagerStatus, GeneralStatus, LogixExtendedStatus};
use cpppo_core::wire::{DecodeError, DecodeResult, Reader};
use serde_json::{json, Map, Value};

use crate::hex;

/// The bytes being dissected and where they start in the input, so that an error found
/// in any slice borrowed from them can be reported at its absolute input offset.
#[derive(Clone, Copy)]
pub struct Frame<'f> {
    /// The frame's bytes.
    pub bytes: &'f [u8],
    /// Offset of `bytes` in the input.
    pub base: usize,
}

impl Frame<'_> {
    /// Absolute input offset of `inner`, a slice borrowed from this frame (the frame's
    /// own offset for anything else, e.g. an empty static slice).
    pub fn offset_of(&self, inner: &[u8]) -> usize {
        let start = self.bytes.as_ptr() as usize;
        let at = inner.as_ptr() as usize;
        match at.checked_sub(start) {
            Some(rel) if rel <= self.bytes.len() => self.base.saturating_add(rel),
            _ => self.base,
        }
    }

    /// `e`, found by a decoder that was handed `inner`, with its offset made absolute.
    pub fn at(&self, inner: &[u8], e: DecodeError) -> DecodeError {
        e.at(self.offset_of(inner))
    }

    /// A reader over `inner` whose offsets are absolute.
    pub fn reader<'a>(&self, inner: &'a [u8]) -> Reader<'a> {
        Reader::with_base(inner, self.offset_of(inner))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// An EPATH in cpppo notation; a path whose segments do not decode is an error.
fn path(f: Frame<'_>, p: &Epath<'_>) -> DecodeResult<Value> {
    p.to_segments().map_err(|e| f.at(p.as_bytes(), e))?;
    Ok(Value::String(p.to_string()))
}

/// A tag type as Logix names it: `DINT`, `0x00A0` (an unknown code), `struct 0x0FCE`.
pub fn tag_type(t: TagType) -> String {
    match t {
        TagType::Elementary(code) => match DataType::from_code(code) {
            Some(dt) => dt.name().to_string(),
            None => format!("0x{code:04X}"),
        },
        TagType::Structure(handle) => format!("struct 0x{handle:04X}"),
    }
}

/// Typed values of `data`, or `None` when the type is not one the codec can read or
/// `whole` is false and the bytes are not a whole number of fixed-size elements (a
/// fragment may split one).
fn values(f: Frame<'_>, t: TagType, data: &[u8], whole: bool) -> DecodeResult<Option<Value>> {
    let known = match t {
        TagType::Elementary(code) => DataType::from_code(code).is_some(),
        TagType::Structure(_) => true,
    };
    let fits = match element_size(t) {
        Some(size) => size > 0 && data.len() % size == 0,
        None => whole,
    };
    if !known || (!whole && !fits) {
        return Ok(None);
    }
    let v = Values::decode(t, Count::All, &mut f.reader(data)).map_err(DecodeError::truncated)?;
    Ok(Some(match v {
        Values::Structure { handle, data } => {
            json!({"type": "structure", "handle": handle, "data": hex::encode(&data)})
        }
        other => to_value(&other),
    }))
}

fn service_name(kind: Service) -> String {
    match kind {
        Service::Other(code) => format!("0x{code:02X}"),
        known => format!("{known:?}"),
    }
}

/// The name of a reply's service, which without the request's path can be ambiguous.
fn reply_service_name(code: u8) -> String {
    match code {
        service::UNCONNECTED_SEND => "ReadTagFragmented or UnconnectedSend".into(),
        service::FORWARD_CLOSE => "ReadModifyWriteTag or ForwardClose".into(),
        service::FORWARD_OPEN => "ForwardOpen".into(),
        service::LARGE_FORWARD_OPEN => "LargeForwardOpen".into(),
        other => service_name(Service::classify(other, None)),
    }
}

/// A Message Router request or reply, told apart by the reply bit of its first byte.
pub fn message(f: Frame<'_>, data: &[u8]) -> DecodeResult<Value> {
    match data.first() {
        None => Ok(Value::Null),
        Some(b) if b & service::REPLY != 0 => {
            let rpy = MessageRouterReply::decode(data).map_err(|e| f.at(data, e))?;
            reply(f, &rpy)
        }
        Some(_) => {
            let req = MessageRouterRequest::decode(data).map_err(|e| f.at(data, e))?;
            request(f, &req)
        }
    }
}

/// A Message Router request, classified by service and target class, with its data.
pub fn request(f: Frame<'_>, req: &MessageRouterRequest<'_>) -> DecodeResult<Value> {
    let kind = req.kind();
    let classified = Request::decode(req).map_err(|e| f.at(&req.data, e))?;
    let mut out = Map::new();
    out.insert("direction".into(), json!("request"));
    out.insert("service".into(), json!(req.service));
    out.insert("service_name".into(), json!(service_name(kind)));
    out.insert("path".into(), path(f, &req.path)?);
    out.insert("data".into(), json!(hex::encode(&req.data)));
    let detail = match &classified.request {
        Request::GetAttributesAll | Request::GetAttributeSingle => None,
        Request::GetAttributeList(v) => Some(to_value(v)),
        Request::SetAttributesAll(d)
        | Request::SetAttributeList(d)
        | Request::Reset(d)
        | Request::SetAttributeSingle(d) => Some(json!({ "value": hex::encode(d) })),
        Request::MultipleServicePacket(msp) => {
            let parts = msp
                .requests
                .iter()
                .map(|r| request(f, r))
                .collect::<DecodeResult<Vec<_>>>()?;
            Some(json!({ "requests": parts }))
        }
        Request::ReadTag(v) => Some(to_value(v)),
        Request::TemplateRead(v) => Some(to_value(v)),
        Request::ReadTagFragmented(v) => Some(to_value(v)),
        Request::GetInstanceAttributeList(v) => Some(to_value(v)),
        Request::WriteTag(w) => Some(json!({
            "tag_type": tag_type(w.tag_type),
            "elements": w.elements,
            "value": values(f, w.tag_type, &w.data, true)?,
        })),
        Request::WriteTagFragmented(w) => Some(json!({
            "tag_type": tag_type(w.tag_type),
            "elements": w.elements,
            "offset": w.offset,
            "value": values(f, w.tag_type, &w.data, false)?,
        })),
        Request::ReadModifyWriteTag(m) => Some(json!({
            "or_mask": hex::encode(&m.or_mask),
            "and_mask": hex::encode(&m.and_mask),
        })),
        Request::UnconnectedSend(u) => Some(json!({
            "priority_time_tick": u.priority_time_tick,
            "timeout_ticks": u.timeout_ticks,
            "route_path": path(f, &u.route_path)?,
            "request": request(f, &u.request)?,
        })),
        Request::ForwardOpen(fo) => {
            let mut v = to_value(fo);
            v["connection_path"] = path(f, &fo.connection_path)?;
            v["transport_class_trigger"] = json!(fo.transport_class_trigger.0);
            v["o_t_connection_size"] = json!(fo.o_t_parameters().size());
            v["t_o_connection_size"] = json!(fo.t_o_parameters().size());
            Some(v)
        }
        Request::ForwardClose(fc) => {
            let mut v = to_value(fc);
            v["connection_path"] = path(f, &fc.connection_path)?;
            Some(v)
        }
        Request::Other { .. } => None,
    };
    if let Some(detail) = detail {
        out.insert("request".into(), detail);
    }
    if !classified.trailing.is_empty() {
        out.insert("trailing".into(), json!(hex::encode(&classified.trailing)));
    }
    Ok(Value::Object(out))
}

/// A Message Router reply; its data is interpreted where the reply service code alone
/// says what it holds.
pub fn reply(f: Frame<'_>, rpy: &MessageRouterReply<'_>) -> DecodeResult<Value> {
    let code = rpy.request_service();
    let status = rpy.general_status;
    let mut out = Map::new();
    out.insert("direction".into(), json!("reply"));
    out.insert("service".into(), json!(rpy.service));
    out.insert("service_name".into(), json!(reply_service_name(code)));
    out.insert("general_status".into(), json!(status.0));
    out.insert("status".into(), json!(status.to_string()));
    out.insert("additional_status".into(), json!(rpy.additional_status));
    if let Some(ext) = rpy.extended_status() {
        let name = match status {
            GeneralStatus::CONNECTION_FAILURE => ConnectionManagerStatus(ext).name(),
            GeneralStatus::GENERAL_ERROR => LogixExtendedStatus(ext).name(),
            _ => None,
        };
        if let Some(name) = name {
            out.insert("extended_status".into(), json!(name));
        }
    }
    out.insert("data".into(), json!(hex::encode(&rpy.data)));
    if let Some(detail) = reply_data(f, rpy)? {
        out.insert("reply".into(), detail);
    }
    Ok(Value::Object(out))
}

fn reply_data(f: Frame<'_>, rpy: &MessageRouterReply<'_>) -> DecodeResult<Option<Value>> {
    let data: &[u8] = &rpy.data;
    if data.is_empty() {
        return Ok(None);
    }
    let ok = rpy.general_status.is_ok_or_partial();
    let success = rpy.general_status.is_success();
    let err = |e| f.at(data, e);
    Ok(match rpy.request_service() {
        service::MULTIPLE_SERVICE_PACKET => {
            let msr = MultipleServiceReply::decode(data).map_err(err)?;
            let parts = msr
                .replies
                .iter()
                .map(|r| reply(f, r))
                .collect::<DecodeResult<Vec<_>>>()?;
            Some(json!({ "replies": parts }))
        }
        service::READ_TAG if ok => {
            let r = ReadTagReply::decode(data).map_err(err)?;
            Some(json!({
                "tag_type": tag_type(r.tag_type),
                "value": values(f, r.tag_type, &r.data, true)?,
            }))
        }
        service::READ_TAG_FRAGMENTED if ok => {
            let r = ReadTagReply::decode(data).map_err(err)?;
            Some(json!({
                "tag_type": tag_type(r.tag_type),
                "value": values(f, r.tag_type, &r.data, false)?,
            }))
        }
        service::UNCONNECTED_SEND => unconnected_send_remaining_path_size(rpy)
            .map(|size| json!({ "remaining_path_size": size })),
        service::FORWARD_OPEN | service::LARGE_FORWARD_OPEN if success => {
            let r = ForwardOpenReply::decode(data).map_err(err)?;
            let mut v = to_value(&r);
            v["application_reply"] = json!(hex::encode(&r.application_reply));
            Some(v)
        }
        service::FORWARD_CLOSE if success => {
            let r = ForwardCloseReply::decode(data).map_err(err)?;
            let mut v = to_value(&r);
            v["application_reply"] = json!(hex::encode(&r.application_reply));
            Some(v)
        }
        service::FORWARD_OPEN | service::LARGE_FORWARD_OPEN | service::FORWARD_CLOSE => {
            Some(to_value(&ForwardOpenFailure::decode(data).map_err(err)?))
        }
        // Without the request's path the target is unknown: show the Identity object's
        // attributes only when the data is exactly one.
        service::GET_ATTRIBUTES_ALL if success => Identity::decode(data)
            .ok()
            .map(|id| json!({ "identity": to_value(&id) })),
        _ => None,
    })
}
