//! The controller's fixed objects: Identity (0x01), TCP/IP Interface (0xF5), Ethernet
//! Link (0xF6), Program Name (0x64) and Wall Clock Time (0x8B), with their configurable
//! values.

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use super::{attribute_list, attribute_single, error, success, too_much, Controller, Reply};
use crate::cip::device::RequestContext;
use crate::cip::epath::Epath;
use crate::cip::message_router::service;
use crate::cip::objects::{Identity, Revision, SetAttributeListReply};
use crate::cip::status::GeneralStatus;
use crate::wire::Encode;

/// Wall Clock Time attribute: local time in microseconds (ULINT).
pub const WALL_CLOCK_LOCAL_US: u16 = 6;
/// Wall Clock Time attribute: UTC time in microseconds (ULINT; pycomm3 get_plc_time).
pub const WALL_CLOCK_UTC_US: u16 = 11;

/// Identity attribute 8 (state): operational.
pub const IDENTITY_STATE_OPERATIONAL: u8 = 3;

/// The Identity object's values (owned, configurable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    /// Vendor id.
    pub vendor_id: u16,
    /// Device type.
    pub device_type: u16,
    /// Product code.
    pub product_code: u16,
    /// Firmware revision.
    pub revision: Revision,
    /// Status word.
    pub status: u16,
    /// Serial number.
    pub serial_number: u32,
    /// Product name.
    pub product_name: String,
    /// State (attribute 8, and the last byte of a ListIdentity reply); Get Attributes
    /// All stops before it, as a ControlLogix does. Default 3 (operational), what a
    /// 1769-L24ER announces (cpppo defaults to 0xFF).
    pub state: u8,
}

impl Default for IdentityConfig {
    /// A 1756-L61 (ControlLogix 5561) rev 20.11, as in cpppo's captures.
    fn default() -> Self {
        IdentityConfig {
            vendor_id: 1,
            device_type: 0x0E,
            product_code: 0x36,
            revision: Revision {
                major: 20,
                minor: 11,
            },
            status: 0x3160,
            serial_number: 0x006C_061A,
            product_name: "1756-L61/B LOGIX5561".into(),
            state: IDENTITY_STATE_OPERATIONAL,
        }
    }
}

/// TCP/IP Interface object (0xF5) instance attributes 1-6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpIpConfig {
    /// Attribute 1: interface status.
    pub interface_status: u32,
    /// Attribute 2: configuration capability.
    pub configuration_capability: u32,
    /// Attribute 3: configuration control.
    pub configuration_control: u32,
    /// Attribute 4: path to the physical link object (encoded padded EPATH).
    pub physical_link: Vec<u8>,
    /// Attribute 5: IP address (host order, `[192, 168, 0, 1]`).
    pub ip_address: [u8; 4],
    /// Attribute 5: network mask.
    pub network_mask: [u8; 4],
    /// Attribute 5: gateway.
    pub gateway: [u8; 4],
    /// Attribute 5: name server.
    pub name_server: [u8; 4],
    /// Attribute 5: second name server.
    pub name_server_2: [u8; 4],
    /// Attribute 5: domain name.
    pub domain_name: String,
    /// Attribute 6: host name.
    pub host_name: String,
}

impl Default for TcpIpConfig {
    fn default() -> Self {
        TcpIpConfig {
            interface_status: 2,
            configuration_capability: 0x30,
            configuration_control: 0,
            physical_link: vec![0x20, 0xF6, 0x24, 0x01],
            ip_address: [127, 0, 0, 1],
            network_mask: [255, 0, 0, 0],
            gateway: [0; 4],
            name_server: [0; 4],
            name_server_2: [0; 4],
            domain_name: String::new(),
            host_name: String::new(),
        }
    }
}

/// Ethernet Link object (0xF6) instance attributes 1-3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EthernetLinkConfig {
    /// Attribute 1: interface speed, Mbit/s.
    pub interface_speed: u32,
    /// Attribute 2: interface flags.
    pub interface_flags: u32,
    /// Attribute 3: MAC address.
    pub physical_address: [u8; 6],
}

impl Default for EthernetLinkConfig {
    fn default() -> Self {
        EthernetLinkConfig {
            interface_speed: 100,
            interface_flags: 0x0F,
            physical_address: [0x00, 0x00, 0xBC, 0x00, 0x00, 0x01],
        }
    }
}

/// Everything about the simulated controller that is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ControllerConfig {
    /// Identity object values.
    pub identity: IdentityConfig,
    /// TCP/IP Interface object values.
    pub tcpip: TcpIpConfig,
    /// Ethernet Link object values.
    pub ethernet_link: EthernetLinkConfig,
    /// The controller program name (Program Name object 0x64).
    pub program_name: String,
    /// Wall clock at the first request, in microseconds since 1970 (until set).
    pub wall_clock_start_us: u64,
    /// Accept a Write Tag of a narrower numeric type (an INT written to a DINT tag,
    /// converted), as cpppo's simulator does. Off by default: a ControlLogix answers
    /// 0xFF / 0x2107.
    pub coerce_writes: bool,
}
fn put_cip_string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let b = b
        .get(..b.len().min(usize::from(u16::MAX)))
        .unwrap_or_default();
    out.put_u16_le(b.len() as u16);
    out.put_slice(b);
    if b.len() % 2 == 1 {
        out.put_u8(0);
    }
}

impl Controller {
    /// Get Attributes All / Get Attribute List / Get Attribute Single of a read-only
    /// object.
    pub(super) fn simple_object(
        &self,
        svc: u8,
        data: &[u8],
        attribute: Option<u32>,
        value: impl Fn(u16) -> Option<Vec<u8>>,
        all: impl Fn() -> Vec<u8>,
    ) -> Reply {
        match svc {
            // Request data is ignored: see "Tolerated quirks" in the module docs.
            service::GET_ATTRIBUTES_ALL if attribute.is_none() => success(svc, all()),
            service::GET_ATTRIBUTE_LIST if attribute.is_none() => attribute_list(svc, data, value),
            service::GET_ATTRIBUTE_SINGLE => attribute_single(svc, attribute, value),
            service::SET_ATTRIBUTE_SINGLE | service::SET_ATTRIBUTE_LIST => {
                error(svc, GeneralStatus::ATTRIBUTE_NOT_SETTABLE, &[])
            }
            _ => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
        }
    }

    pub(super) fn wall_clock_service(
        &mut self,
        ctx: &RequestContext,
        svc: u8,
        attribute: Option<u32>,
        data: &[u8],
    ) -> Reply {
        let now_us = self.wall_clock(ctx.now);
        let value = |a: u16| {
            matches!(a, WALL_CLOCK_LOCAL_US | WALL_CLOCK_UTC_US)
                .then(|| now_us.to_le_bytes().to_vec())
        };
        let ulint = |id: u16, _rest: &[u8]| {
            matches!(id, WALL_CLOCK_LOCAL_US | WALL_CLOCK_UTC_US).then_some(8)
        };
        match svc {
            service::GET_ATTRIBUTE_LIST if attribute.is_none() => attribute_list(svc, data, value),
            service::GET_ATTRIBUTE_SINGLE => attribute_single(svc, attribute, value),
            service::SET_ATTRIBUTE_SINGLE => match attribute.and_then(|a| u16::try_from(a).ok()) {
                Some(a) if value(a).is_some() => match <[u8; 8]>::try_from(data) {
                    Ok(b) => {
                        self.set_wall_clock(ctx.now, u64::from_le_bytes(b));
                        success(svc, Vec::new())
                    }
                    Err(_) if data.len() < 8 => error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[]),
                    Err(_) => too_much(svc),
                },
                Some(_) => error(svc, GeneralStatus::ATTRIBUTE_NOT_SUPPORTED, &[]),
                None => error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
            },
            service::SET_ATTRIBUTE_LIST if attribute.is_none() => {
                // Values of unknown attributes have unknown lengths: the first one ends
                // the list, as its status says.
                let mut r = crate::wire::Reader::new(data);
                let Ok(count) = r.u16_le("set_attribute_list.count") else {
                    return error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[]);
                };
                let mut statuses = Vec::new();
                let mut failed = false;
                for _ in 0..count {
                    let Ok(id) = r.u16_le("set_attribute_list.attribute") else {
                        return error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[]);
                    };
                    if failed || ulint(id, &[]).is_none() {
                        failed = true;
                        statuses.push((id, u16::from(GeneralStatus::ATTRIBUTE_NOT_SUPPORTED.0)));
                        continue;
                    }
                    let Ok(v) = r.u64_le("set_attribute_list.value") else {
                        return error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[]);
                    };
                    self.set_wall_clock(ctx.now, v);
                    statuses.push((id, 0));
                }
                if !failed && !r.is_empty() {
                    return too_much(svc);
                }
                let reply = SetAttributeListReply {
                    attributes: statuses,
                }
                .to_vec();
                let mut m = success(svc, reply);
                if failed {
                    m.general_status = GeneralStatus::ATTRIBUTE_LIST_ERROR;
                }
                m
            }
            _ => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
        }
    }
}

pub(super) fn identity_of(id: &IdentityConfig) -> Identity<'_> {
    Identity {
        vendor_id: id.vendor_id,
        device_type: id.device_type,
        product_code: id.product_code,
        revision: id.revision,
        status: id.status,
        serial_number: id.serial_number,
        product_name: Cow::Borrowed(&id.product_name),
        state: Some(id.state),
    }
}

pub(super) fn identity_attribute(id: &IdentityConfig, a: u16) -> Option<Vec<u8>> {
    use crate::cip::objects::identity_attribute as ia;
    Some(match a {
        ia::VENDOR_ID => id.vendor_id.to_le_bytes().to_vec(),
        ia::DEVICE_TYPE => id.device_type.to_le_bytes().to_vec(),
        ia::PRODUCT_CODE => id.product_code.to_le_bytes().to_vec(),
        ia::REVISION => vec![id.revision.major, id.revision.minor],
        ia::STATUS => id.status.to_le_bytes().to_vec(),
        ia::SERIAL_NUMBER => id.serial_number.to_le_bytes().to_vec(),
        ia::PRODUCT_NAME => {
            let b = id.product_name.as_bytes();
            let b = b.get(..b.len().min(255)).unwrap_or_default();
            let mut v = vec![b.len() as u8];
            v.extend_from_slice(b);
            v
        }
        ia::STATE => vec![id.state],
        _ => return None,
    })
}

pub(super) fn tcpip_attribute(t: &TcpIpConfig, a: u16) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    match a {
        1 => v.put_u32_le(t.interface_status),
        2 => v.put_u32_le(t.configuration_capability),
        3 => v.put_u32_le(t.configuration_control),
        4 => {
            let path = Epath::from_vec(t.physical_link.clone());
            v.put_u16_le(u16::try_from(path.as_bytes().len().div_ceil(2)).unwrap_or(0));
            v.put_slice(path.as_bytes());
            if path.as_bytes().len() % 2 == 1 {
                v.put_u8(0);
            }
        }
        5 => {
            for ip in [
                t.ip_address,
                t.network_mask,
                t.gateway,
                t.name_server,
                t.name_server_2,
            ] {
                v.put_u32_le(u32::from_be_bytes(ip));
            }
            put_cip_string(&mut v, &t.domain_name);
        }
        6 => put_cip_string(&mut v, &t.host_name),
        _ => return None,
    }
    Some(v)
}

pub(super) fn ethernet_attribute(e: &EthernetLinkConfig, a: u16) -> Option<Vec<u8>> {
    Some(match a {
        1 => e.interface_speed.to_le_bytes().to_vec(),
        2 => e.interface_flags.to_le_bytes().to_vec(),
        3 => e.physical_address.to_vec(),
        _ => return None,
    })
}
