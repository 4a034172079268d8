//! The Symbol object (0x6B: the tag list upload, Get Instance Attribute List) and the
//! Template object (0x6C: structure attributes and definitions).

use std::borrow::Cow;

use super::tags::{Tag, SYMBOL_TYPE_PROGRAM};
use super::{
    attribute_list, decode_error, error, logix_error, success, too_much, Controller, Reply,
    REPLY_HEADER,
};
use crate::cip::device::RequestContext;
use crate::cip::logix::{
    symbol_attribute, template_attribute, GetInstanceAttributeListReply, SymbolInstance,
    SymbolType, SymbolValue, TemplateReadRequest,
};
use crate::cip::message_router::service;
use crate::cip::objects::GetAttributeListRequest;
use crate::cip::status::{GeneralStatus, LogixExtendedStatus};
use crate::wire::Encode;

/// pycomm3's "base tag" bit of Symbol attribute 6 (software control): clear means alias.
pub const SOFTWARE_CONTROL_BASE_TAG: u32 = 1 << 26;
/// Symbol attribute 10 value: read/write external access.
pub const EXTERNAL_ACCESS_READ_WRITE: u8 = 0;
/// Template attribute 3 (undocumented): pylogix requests it with attributes 4, 2 and 1,
/// and reads it as a UINT.
pub const TEMPLATE_ATTRIBUTE_3: u16 = 3;

impl Controller {
    fn symbol_value(&self, tag: &Tag, attribute: u16) -> Option<SymbolValue<'static>> {
        let size = self.db.element_size(tag.element);
        Some(match attribute {
            symbol_attribute::NAME => SymbolValue::Name(Cow::Owned(tag.name.clone())),
            symbol_attribute::TYPE => SymbolValue::Type(self.db.symbol_type(tag)),
            symbol_attribute::ADDRESS => SymbolValue::Address(tag.instance_id.wrapping_mul(0x100)),
            symbol_attribute::OBJECT_ADDRESS => {
                SymbolValue::ObjectAddress(0x0010_0000 | tag.instance_id)
            }
            symbol_attribute::SOFTWARE_CONTROL => {
                SymbolValue::SoftwareControl(SOFTWARE_CONTROL_BASE_TAG)
            }
            symbol_attribute::BYTE_COUNT => {
                SymbolValue::ByteCount(u16::try_from(size).unwrap_or(u16::MAX))
            }
            symbol_attribute::DIMENSIONS => {
                let mut d = [0u32; 3];
                for (slot, v) in d.iter_mut().zip(&tag.dimensions) {
                    *slot = *v;
                }
                SymbolValue::Dimensions(d)
            }
            symbol_attribute::EXTERNAL_ACCESS => {
                SymbolValue::ExternalAccess(EXTERNAL_ACCESS_READ_WRITE)
            }
            _ => return None,
        })
    }

    fn program_symbol_value(
        &self,
        name: &str,
        instance: u32,
        attribute: u16,
    ) -> Option<SymbolValue<'static>> {
        Some(match attribute {
            symbol_attribute::NAME => SymbolValue::Name(Cow::Owned(format!("Program:{name}"))),
            symbol_attribute::TYPE => SymbolValue::Type(SymbolType(SYMBOL_TYPE_PROGRAM)),
            symbol_attribute::ADDRESS => SymbolValue::Address(instance.wrapping_mul(0x100)),
            symbol_attribute::OBJECT_ADDRESS => SymbolValue::ObjectAddress(0x0010_0000 | instance),
            symbol_attribute::SOFTWARE_CONTROL => {
                SymbolValue::SoftwareControl(SOFTWARE_CONTROL_BASE_TAG)
            }
            symbol_attribute::BYTE_COUNT => SymbolValue::ByteCount(0),
            symbol_attribute::DIMENSIONS => SymbolValue::Dimensions([0; 3]),
            symbol_attribute::EXTERNAL_ACCESS => {
                SymbolValue::ExternalAccess(EXTERNAL_ACCESS_READ_WRITE)
            }
            _ => return None,
        })
    }

    pub(super) fn symbol_list(
        &self,
        ctx: &RequestContext,
        svc: u8,
        program: Option<&str>,
        start: u32,
        data: &[u8],
    ) -> Reply {
        let req = match GetAttributeListRequest::decode_with_trailing(data) {
            Ok((r, [])) => r,
            Ok(_) => return too_much(svc),
            Err(e) => return decode_error(svc, &e),
        };
        // Every entry of the scope, in instance order: tags, and (controller scope) the
        // `Program:X` entries pycomm3 finds the programs by.
        let mut entries: Vec<(u32, Option<&Tag>, Option<&str>)> = self
            .db
            .tags()
            .iter()
            .filter(|t| match (program, &t.program) {
                (None, None) => true,
                (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
                _ => false,
            })
            .map(|t| (t.instance_id, Some(t), None))
            .collect();
        if program.is_none() {
            entries.extend(
                self.db
                    .programs()
                    .iter()
                    .map(|p| (p.instance_id, None, Some(p.name.as_str()))),
            );
        }
        entries.sort_by_key(|e| e.0);
        let room = ctx.reply_budget.saturating_sub(REPLY_HEADER);
        let mut reply = GetInstanceAttributeListReply {
            instances: Vec::new(),
        };
        let mut used = 0usize;
        let mut partial = false;
        for (id, tag, prog) in entries.into_iter().filter(|e| e.0 >= start) {
            let mut values = Vec::with_capacity(req.attributes.len());
            for a in &req.attributes {
                let v = match (tag, prog) {
                    (Some(t), _) => self.symbol_value(t, *a),
                    (None, Some(p)) => self.program_symbol_value(p, id, *a),
                    _ => None,
                };
                match v {
                    Some(v) => values.push(v),
                    None => return error(svc, GeneralStatus::ATTRIBUTE_NOT_SUPPORTED, &[]),
                }
            }
            let inst = SymbolInstance {
                instance_id: id,
                values,
            };
            let one = GetInstanceAttributeListReply {
                instances: vec![inst],
            };
            let len = one.encoded_len();
            if used + len > room {
                partial = true;
                break;
            }
            used += len;
            reply.instances.extend(one.instances);
        }
        if partial && reply.instances.is_empty() {
            return error(svc, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]);
        }
        let mut m = success(svc, reply.to_vec());
        if partial {
            m.general_status = GeneralStatus::PARTIAL_TRANSFER;
        }
        m
    }

    // -----------------------------------------------------------------------------------
    // Template object

    pub(super) fn template_service(
        &self,
        ctx: &RequestContext,
        svc: u8,
        instance: u16,
        data: &[u8],
    ) -> Reply {
        let Some(s) = self.db.structure(instance) else {
            return error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
        };
        match svc {
            service::GET_ATTRIBUTE_LIST => attribute_list(svc, data, |a| match a {
                template_attribute::STRUCTURE_HANDLE => Some(s.handle.to_le_bytes().to_vec()),
                template_attribute::MEMBER_COUNT => Some(
                    u16::try_from(s.members.len())
                        .unwrap_or(u16::MAX)
                        .to_le_bytes()
                        .to_vec(),
                ),
                template_attribute::DEFINITION_SIZE => {
                    Some(s.definition_words().to_le_bytes().to_vec())
                }
                template_attribute::STRUCTURE_SIZE => Some(s.size.to_le_bytes().to_vec()),
                // pylogix asks for attribute 3 and parses the attributes after it at
                // offsets that only work if it is a UINT; its meaning is undocumented.
                TEMPLATE_ATTRIBUTE_3 => Some(0u16.to_le_bytes().to_vec()),
                _ => None,
            }),
            service::READ_TAG => {
                let req = match TemplateReadRequest::decode_with_trailing(data) {
                    Ok((r, [])) => r,
                    Ok(_) => return too_much(svc),
                    Err(e) => return decode_error(svc, &e),
                };
                let def = s.template_bytes();
                let offset = req.offset as usize;
                let Some(rest) = def.get(offset..) else {
                    return logix_error(svc, LogixExtendedStatus::OFFSET_OUT_OF_RANGE);
                };
                let wanted = rest
                    .get(..usize::from(req.bytes).min(rest.len()))
                    .unwrap_or_default();
                let room = ctx.reply_budget.saturating_sub(REPLY_HEADER);
                if wanted.len() <= room {
                    success(svc, wanted.to_vec())
                } else if room < 4 {
                    error(svc, GeneralStatus::REPLY_DATA_TOO_LARGE, &[])
                } else {
                    let mut m =
                        success(svc, wanted.get(..room / 4 * 4).unwrap_or_default().to_vec());
                    m.general_status = GeneralStatus::PARTIAL_TRANSFER;
                    m
                }
            }
            _ => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
        }
    }
}
