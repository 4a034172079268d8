//! The Logix tag services: Read Tag, Write Tag, Read-Modify-Write Tag, Read Tag
//! Fragmented and Write Tag Fragmented, on the target a request path resolves to.

use std::borrow::Cow;

use super::tags::{ElementType, Tag, Target};
use super::{
    decode_error, error, logix_error, path_error, success, too_much, Controller, Reply, TagAccess,
    REPLY_HEADER,
};
use crate::cip::data::{Count, DataType, TagType, Values};
use crate::cip::device::RequestContext;
use crate::cip::epath::Segment;
use crate::cip::logix::{
    ReadModifyWriteTagRequest, ReadTagFragmentedRequest, ReadTagReply, ReadTagRequest,
    WriteTagFragmentedRequest, WriteTagRequest,
};
use crate::cip::message_router::{service, MessageRouterRequest};
use crate::cip::status::{GeneralStatus, LogixExtendedStatus};
use crate::wire::Encode;

impl Controller {
    pub(super) fn tag_service(
        &mut self,
        ctx: &RequestContext,
        req: &MessageRouterRequest<'_>,
        segments: &[Segment<'_>],
    ) -> Reply {
        let svc = req.service;
        if !is_tag_service(svc) {
            return error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]);
        }
        let target = match self.db.resolve(segments) {
            Ok(t) => t,
            Err(e) => return path_error(svc, e),
        };
        let reply = match svc {
            service::READ_TAG => match ReadTagRequest::decode_with_trailing(&req.data) {
                Ok((r, [])) => self.read(ctx, svc, &target, r.elements, 0),
                Ok(_) => too_much(svc),
                Err(e) => decode_error(svc, &e),
            },
            service::READ_TAG_FRAGMENTED => {
                match ReadTagFragmentedRequest::decode_with_trailing(&req.data) {
                    Ok((r, [])) => self.read(ctx, svc, &target, r.elements, r.offset),
                    Ok(_) => too_much(svc),
                    Err(e) => decode_error(svc, &e),
                }
            }
            service::WRITE_TAG => match WriteTagRequest::decode_with_trailing(&req.data) {
                // Trailing bytes (pycomm3) are ignored, as a ControlLogix does.
                Ok((w, _trailing)) => {
                    self.write(ctx, svc, &target, w.tag_type, w.elements, 0, &w.data)
                }
                Err(e) => decode_error(svc, &e),
            },
            service::WRITE_TAG_FRAGMENTED => match WriteTagFragmentedRequest::decode(&req.data) {
                Ok(w) => self.write(ctx, svc, &target, w.tag_type, w.elements, w.offset, &w.data),
                Err(e) => decode_error(svc, &e),
            },
            service::READ_MODIFY_WRITE_TAG => {
                match ReadModifyWriteTagRequest::decode_with_trailing(&req.data) {
                    Ok((m, _trailing)) => {
                        self.read_modify_write(ctx, svc, &target, &m.or_mask, &m.and_mask)
                    }
                    Err(e) => decode_error(svc, &e),
                }
            }
            _ => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
        };
        let reply = match self.db.tag(target.tag).and_then(|t| t.error.clone()) {
            Some(f) => error(svc, GeneralStatus(f.status), &f.extended),
            None => reply,
        };
        if let Some(hook) = &self.hook {
            if !reply.general_status.is_ok_or_partial() {
                let name = self.full_name(&target);
                hook.failed(
                    ctx.now,
                    &name,
                    svc,
                    reply.general_status,
                    &reply.additional_status,
                );
            }
        }
        reply
    }

    fn target_type(&self, target: &Target) -> TagType {
        if target.bit.is_some() {
            return DataType::BOOL.into();
        }
        self.db.tag_type(target.element)
    }

    fn full_name(&self, target: &Target) -> String {
        self.db
            .tag(target.tag)
            .map(Tag::full_name)
            .unwrap_or_default()
    }

    fn read(
        &mut self,
        ctx: &RequestContext,
        svc: u8,
        target: &Target,
        elements: u16,
        offset: u32,
    ) -> Reply {
        let n = usize::from(elements);
        if n == 0 || n > target.available() || (target.bit.is_some() && n != 1) {
            return logix_error(svc, LogixExtendedStatus::OUT_OF_RANGE);
        }
        if let Some(hook) = &self.hook {
            let name = self.full_name(target);
            if let Some(tag) = self.db.tag_mut(target.tag) {
                hook.before_read(&name, &mut tag.data);
            }
        }
        let tag_type = self.target_type(target);
        let offset = offset as usize;
        let room = ctx
            .reply_budget
            .saturating_sub(REPLY_HEADER + tag_type.encoded_len());
        // Only the bytes this reply can carry are copied out of the tag.
        let Some((window, rest_len)) = self.db.read_window(target, n, offset, room) else {
            return logix_error(svc, LogixExtendedStatus::OUT_OF_RANGE);
        };
        let rest: &[u8] = &window;
        let (chunk, status) = if rest_len <= room {
            (rest, GeneralStatus::SUCCESS)
        } else {
            // Atomic elements are never split; structures and strings are cut anywhere.
            let whole = match (target.element, target.bit) {
                (ElementType::Atomic(dt), None) => dt.size().unwrap_or(1).max(1),
                _ => 1,
            };
            (
                rest.get(..room / whole * whole).unwrap_or_default(),
                GeneralStatus::PARTIAL_TRANSFER,
            )
        };
        if chunk.is_empty() && rest_len > 0 {
            // Not even one element fits: no progress is possible at this size.
            return error(svc, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]);
        }
        if let Some(hook) = &self.hook {
            let name = self.full_name(target);
            hook.read(&TagAccess {
                now: ctx.now,
                tag: &name,
                index: target.tag,
                target,
                elements: n,
                tag_type,
                data: chunk,
                offset,
            });
        }
        let body = ReadTagReply {
            tag_type,
            data: Cow::Borrowed(chunk),
        };
        // A field, not `reply_buffer()`: the window still borrows the tag database.
        let mut data = self.spare_data.pop().unwrap_or_default();
        data.clear();
        body.encode(&mut data);
        let mut m = success(svc, data);
        m.general_status = status;
        m
    }

    /// Get/Set Attribute Single on a tag served at a CIP address
    /// (`NAME@class/instance/attribute=TYPE`), as cpppo's simulator answers them: the
    /// whole tag's data, without the type, that Read Tag would give; Set writes exactly
    /// that many bytes. `None` when no tag lives at the path.
    pub(super) fn attribute_service(
        &mut self,
        ctx: &RequestContext,
        req: &MessageRouterRequest<'_>,
        segments: &[Segment<'_>],
    ) -> Option<Reply> {
        let svc = req.service;
        let target = self.db.resolve(segments).ok()?;
        let n = u16::try_from(target.available()).unwrap_or(u16::MAX);
        let tag_type = self.target_type(&target);
        if svc == service::SET_ATTRIBUTE_SINGLE {
            let fixed = target.element != ElementType::Atomic(DataType::SSTRING);
            let total = usize::from(n) * self.db.element_size(target.element);
            if fixed && req.data.len() > total {
                return Some(error(svc, GeneralStatus::TOO_MUCH_DATA, &[]));
            }
            return Some(self.write(ctx, svc, &target, tag_type, n, 0, &req.data));
        }
        let mut reply = self.read(ctx, svc, &target, n, 0);
        if reply.general_status == GeneralStatus::PARTIAL_TRANSFER {
            return Some(error(svc, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]));
        }
        if reply.general_status.is_success() {
            let data = ReadTagReply::decode(&reply.data)
                .map(|r| r.data.into_owned())
                .unwrap_or_default();
            reply.data = Cow::Owned(data);
        }
        Some(reply)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        ctx: &RequestContext,
        svc: u8,
        target: &Target,
        tag_type: TagType,
        elements: u16,
        offset: u32,
        data: &[u8],
    ) -> Reply {
        let coerced;
        let data = if tag_type == self.target_type(target) {
            data
        } else {
            // cpppo's simulator accepts a narrower numeric type (an INT written to a
            // DINT); a ControlLogix does not. Only for whole (not fragmented) writes.
            let wanted = self.target_type(target).data_type();
            match (self.config.coerce_writes, svc, tag_type.data_type(), wanted) {
                (true, service::WRITE_TAG, Some(from), Some(to)) if coerces(from, to) => {
                    match coerce(from, to, usize::from(elements), data) {
                        Some(bytes) => {
                            coerced = bytes;
                            &coerced[..]
                        }
                        None => return logix_error(svc, LogixExtendedStatus::TYPE_MISMATCH),
                    }
                }
                _ => return logix_error(svc, LogixExtendedStatus::TYPE_MISMATCH),
            }
        };
        let n = usize::from(elements);
        if n == 0 || n > target.available() || (target.bit.is_some() && n != 1) {
            return logix_error(svc, LogixExtendedStatus::OUT_OF_RANGE);
        }
        let offset = offset as usize;
        let sstring =
            target.element == ElementType::Atomic(DataType::SSTRING) && target.bit.is_none();
        let total = if target.bit.is_some() {
            1
        } else {
            n * self.db.element_size(target.element)
        };
        let fragmented = svc == service::WRITE_TAG_FRAGMENTED;
        let data = if sstring {
            if offset != 0 {
                return logix_error(svc, LogixExtendedStatus::OFFSET_OUT_OF_RANGE);
            }
            data
        } else if fragmented {
            if !matches!(offset.checked_add(data.len()), Some(end) if end <= total) {
                return logix_error(svc, LogixExtendedStatus::OFFSET_OUT_OF_RANGE);
            }
            data
        } else {
            match data.get(..total) {
                Some(d) => d,
                None => return error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[]),
            }
        };
        if !self.db.write_bytes(target, n, offset, data) {
            return error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[]);
        }
        if let Some(hook) = &self.hook {
            let name = self.full_name(target);
            hook.write(&TagAccess {
                now: ctx.now,
                tag: &name,
                index: target.tag,
                target,
                elements: n,
                tag_type,
                data,
                offset,
            });
        }
        success(svc, Vec::new())
    }

    fn read_modify_write(
        &mut self,
        ctx: &RequestContext,
        svc: u8,
        target: &Target,
        or: &[u8],
        and: &[u8],
    ) -> Reply {
        let size = match (target.element, target.bit) {
            (
                ElementType::Atomic(
                    dt @ (DataType::SINT
                    | DataType::INT
                    | DataType::DINT
                    | DataType::LINT
                    | DataType::USINT
                    | DataType::UINT
                    | DataType::UDINT
                    | DataType::ULINT
                    | DataType::DWORD),
                ),
                None,
            ) => dt.size().unwrap_or(0),
            _ => return logix_error(svc, LogixExtendedStatus::TYPE_MISMATCH),
        };
        if or.len() != size {
            return logix_error(svc, LogixExtendedStatus::TYPE_MISMATCH);
        }
        if target.available() == 0 {
            return logix_error(svc, LogixExtendedStatus::OUT_OF_RANGE);
        }
        let old = self.db.read_bytes(target, 1);
        let new: Vec<u8> = old
            .iter()
            .zip(or)
            .zip(and.iter().chain(std::iter::repeat(&0xFF)))
            .map(|((v, o), a)| (v | o) & a)
            .collect();
        if !self.db.write_bytes(target, 1, 0, &new) {
            return logix_error(svc, LogixExtendedStatus::OUT_OF_RANGE);
        }
        if let Some(hook) = &self.hook {
            let name = self.full_name(target);
            hook.write(&TagAccess {
                now: ctx.now,
                tag: &name,
                index: target.tag,
                target,
                elements: 1,
                tag_type: self.db.tag_type(target.element),
                data: &new,
                offset: 0,
            });
        }
        success(svc, Vec::new())
    }
}

/// True for the five Logix tag services.
pub(super) fn is_tag_service(svc: u8) -> bool {
    matches!(
        svc,
        service::READ_TAG
            | service::WRITE_TAG
            | service::READ_MODIFY_WRITE_TAG
            | service::READ_TAG_FRAGMENTED
            | service::WRITE_TAG_FRAGMENTED
    )
}

/// Whether cpppo's simulator accepts values of type `from` written to a tag of type `to`
/// (its logix.py table: the same type, BOOL anywhere numeric, and types whose every
/// value the target holds, signed into signed, unsigned into either).
pub(super) fn coerces(from: DataType, to: DataType) -> bool {
    use DataType::*;
    let allowed: &[DataType] = match to {
        BOOL => &[BOOL],
        LREAL => &[BOOL, SINT, USINT, INT, UINT, DINT, UDINT, REAL, LREAL],
        REAL => &[BOOL, SINT, USINT, INT, UINT, DINT, UDINT, REAL],
        LINT => &[BOOL, SINT, USINT, INT, UINT, DINT, UDINT, LINT, ULINT],
        ULINT => &[BOOL, USINT, UINT, UDINT, ULINT],
        DINT => &[BOOL, SINT, USINT, INT, UINT, DINT, UDINT],
        UDINT => &[BOOL, USINT, UINT, UDINT],
        INT => &[BOOL, SINT, USINT, INT, UINT],
        UINT => &[BOOL, USINT, UINT],
        SINT => &[BOOL, SINT, USINT],
        USINT => &[BOOL, USINT],
        _ => &[],
    };
    allowed.contains(&from)
}

/// `elements` values of type `from` in `data` re-encoded as `to`; `None` if the data is
/// short or a value does not fit (a UINT above 32767 written to an INT).
fn coerce(from: DataType, to: DataType, elements: usize, data: &[u8]) -> Option<Vec<u8>> {
    let size = from.size()?;
    let mut r = crate::wire::Reader::new(data.get(..elements.checked_mul(size)?)?);
    let values = Values::decode(from.into(), Count::Elements(elements), &mut r).ok()?;
    let ints = |v: &Values| -> Option<Vec<i64>> {
        Some(match v {
            Values::Bool(x) => x.iter().map(|b| i64::from(*b)).collect(),
            Values::Sint(x) => x.iter().map(|v| i64::from(*v)).collect(),
            Values::Usint(x) => x.iter().map(|v| i64::from(*v)).collect(),
            Values::Int(x) => x.iter().map(|v| i64::from(*v)).collect(),
            Values::Uint(x) => x.iter().map(|v| i64::from(*v)).collect(),
            Values::Dint(x) => x.iter().map(|v| i64::from(*v)).collect(),
            Values::Udint(x) => x.iter().map(|v| i64::from(*v)).collect(),
            Values::Lint(x) => x.clone(),
            Values::Ulint(x) => x
                .iter()
                .map(|v| i64::try_from(*v).ok())
                .collect::<Option<_>>()?,
            _ => return None,
        })
    };
    let out = match (&values, to) {
        (Values::Real(x), DataType::LREAL) => {
            Values::Lreal(x.iter().map(|v| f64::from(*v)).collect())
        }
        (v, DataType::REAL | DataType::LREAL) => {
            #[allow(clippy::cast_precision_loss)]
            let f: Vec<f64> = ints(v)?.into_iter().map(|i| i as f64).collect();
            Values::from_f64s(to, &f).ok()?
        }
        (v, _) => Values::from_i64s(to, &ints(v)?).ok()?,
    };
    Some(out.to_vec())
}
