//! A simulated Logix controller: the objects a ControlLogix serves to explicit
//! messages, as a [`CipDevice`] the EtherNet/IP server engine hands requests to.
//!
//! Served (class: services):
//! - tags, addressed symbolically (`Tag`, `Tag[3]`, `Tag.Member[2]`, `Program:X.Tag`),
//!   by Symbol instance (class 0x6B, instance N, then elements/members) or at a cpppo
//!   `@class/instance/attribute` address: Read Tag 0x4C, Write Tag 0x4D, Read-Modify-Write
//!   Tag 0x4E, Read Tag Fragmented 0x52, Write Tag Fragmented 0x53;
//! - Message Router 0x02 instance 1: Multiple Service Packet 0x0A;
//! - Identity 0x01, TCP/IP Interface 0xF5, Ethernet Link 0xF6: Get Attributes All 0x01,
//!   Get Attribute List 0x03, Get Attribute Single 0x0E;
//! - Program Name 0x64: Get Attributes All (the name as a UINT-counted string);
//! - Wall Clock Time 0x8B: Get/Set Attribute List and Single of attributes 6 and 11
//!   (microseconds since 1970, kept as an offset to the `now` passed in);
//! - Symbol 0x6B: Get Instance Attribute List 0x55 (controller or `Program:X` scope);
//! - Template 0x6C: Get Attribute List (attributes 1, 2, 4, 5), Template Read 0x4C.
//!
//! Statuses follow what a ControlLogix answers (cpppo's captures of a 1756-L61, and the
//! table in cpppo's logix.py): an unparsable path or an unknown tag, program or member
//! name 0x04 with extended status 0x0000; an element index beyond the array, or an
//! unknown Symbol instance, numeric address or object 0x05 (no extended status); a reply
//! larger than the budget 0x06 with what fits; a short request 0x13; a request with
//! extra data 0x15; a type mismatch 0xFF/0x2107; an element count or offset beyond the
//! tag 0xFF/0x2105 (0x2104 for a write fragment beyond the end); an unknown service
//! 0x08. A Multiple Service Packet answers 0x1E when any embedded service failed (a
//! ControlLogix does; cpppo answers 0x00).
//!
//! Not even one element fitting the budget is 0x11 (reply data too large), so a client
//! never loops on empty partial replies.
//!
//! Tolerated quirks: a Write Tag with bytes after its `elements` values (pycomm3 sends
//! the sequence count and the whole request a second time) is written and answered with
//! success; a Read-Modify-Write whose AND mask is longer than the mask size (pycomm3
//! sends 8 bytes) is applied with the first mask-size bytes.
//!
//! Decisions: writes must carry the tag's exact type (a ControlLogix refuses an INT
//! written to a DINT with 0x2107; cpppo accepts narrower types); `BOOL[n]` stores one
//! byte per element, as cpppo does (a Logix BOOL array is DWORD-packed: declare it
//! `DWORD[n/32]` to serve it as Logix does); a forced error (fault injection) answers
//! after the access is performed, as cpppo's `Attribute.error` does.
//!
//! ```
//! use std::time::Instant;
//! use cpppo_core::cip::device::{CipDevice, RequestContext, UNCONNECTED_REPLY_BUDGET};
//! use cpppo_core::cip::message_router::{MessageRouterRequest, service};
//! use cpppo_core::controller::{Controller, ControllerConfig};
//!
//! let mut plc = Controller::new(ControllerConfig::default());
//! plc.tags_mut().add_str("SCADA=INT[1000]").unwrap();
//! let ctx = RequestContext {
//!     now: Instant::now(),
//!     connection: None,
//!     reply_budget: UNCONNECTED_REPLY_BUDGET,
//! };
//! // Write Tag SCADA[12] = 99, then Read Tag SCADA[12].
//! let write = MessageRouterRequest::new(
//!     service::WRITE_TAG,
//!     "SCADA[12]".parse().unwrap(),
//!     vec![0xC3, 0x00, 0x01, 0x00, 99, 0],
//! );
//! assert_eq!(plc.execute(&ctx, &write).general_status.0, 0x00);
//! let read = MessageRouterRequest::new(service::READ_TAG, "SCADA[12]".parse().unwrap(), vec![1, 0]);
//! let reply = plc.execute(&ctx, &read);
//! assert_eq!(reply.data.as_ref(), &[0xC3, 0x00, 99, 0]);
//! ```

pub mod tags;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::cip::data::{DataType, TagType};
use crate::cip::device::{CipDevice, RequestContext};
use crate::cip::epath::{Epath, Segment};
use crate::cip::logix::{
    symbol_attribute, template_attribute, GetInstanceAttributeListReply, ReadModifyWriteTagRequest,
    ReadTagFragmentedRequest, ReadTagReply, ReadTagRequest, SymbolInstance, SymbolValue,
    TemplateReadRequest, WriteTagFragmentedRequest, WriteTagRequest,
};
use crate::cip::message_router::{
    class, service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply,
    MultipleServiceRequest,
};
use crate::cip::objects::{
    AttributeReply, GetAttributeListReply, GetAttributeListRequest, Identity, Revision,
    SetAttributeListReply,
};
use crate::cip::status::{GeneralStatus, LogixExtendedStatus};
use crate::wire::{DecodeError, Encode};

pub use tags::{
    CipAddress, ElementType, ForcedError, PathError, Tag, TagDatabase, TagError, TagSpec, Target,
};

/// Encoded size of a Message Router reply header with no additional status: service,
/// reserved, general status, additional status size.
pub const REPLY_HEADER: usize = 4;
/// Wall Clock Time attribute: local time in microseconds (ULINT).
pub const WALL_CLOCK_LOCAL_US: u16 = 6;
/// Wall Clock Time attribute: UTC time in microseconds (ULINT; pycomm3 get_plc_time).
pub const WALL_CLOCK_UTC_US: u16 = 11;
/// pycomm3's "base tag" bit of Symbol attribute 6 (software control): clear means alias.
pub const SOFTWARE_CONTROL_BASE_TAG: u32 = 1 << 26;
/// Symbol attribute 10 value: read/write external access.
pub const EXTERNAL_ACCESS_READ_WRITE: u8 = 0;
/// Template attribute 3 (undocumented): pylogix requests it with attributes 4, 2 and 1,
/// and reads it as a UINT.
pub const TEMPLATE_ATTRIBUTE_3: u16 = 3;
/// The only instance of the singleton objects (Identity, Message Router...).
pub const INSTANCE_1: u32 = 1;

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
    /// State (attribute 8); Get Attributes All stops before it, as a ControlLogix does.
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
            state: 0xFF,
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
}

/// What a hook is told about one tag access.
#[derive(Debug, Clone, Copy)]
pub struct TagAccess<'a> {
    /// The time passed in with the request.
    pub now: Instant,
    /// The tag's full name (`NAME` or `Program:X.NAME`).
    pub tag: &'a str,
    /// The tag's index in the database.
    pub index: usize,
    /// The addressed target (member, element) inside the tag.
    pub target: &'a Target,
    /// Number of elements read or written.
    pub elements: usize,
    /// The type of the data.
    pub tag_type: TagType,
    /// The data read (as sent) or written (as received; a fragment for fragmented
    /// writes, at `offset`).
    pub data: &'a [u8],
    /// Byte offset of `data` in the full transfer (fragmented services).
    pub offset: usize,
}

/// A user hook that sees every tag read and write (cpppo's historize example): the
/// device calls it while it executes the request. It is shared by every connection, so
/// it must be thread-safe.
pub trait TagHook: Send + Sync {
    /// Before a read: a chance to refresh the tag's stored bytes (cpppo's weather
    /// example supplies live values this way). `data` is the whole tag's storage.
    fn before_read(&self, _tag: &str, _data: &mut [u8]) {}
    /// After a successful read.
    fn read(&self, _access: &TagAccess<'_>) {}
    /// After a successful write (also each Read-Modify-Write, with the new element).
    fn write(&self, _access: &TagAccess<'_>) {}
}

/// The simulated controller: configuration, tag database, wall clock and hook.
pub struct Controller {
    config: ControllerConfig,
    db: TagDatabase,
    hook: Option<Arc<dyn TagHook>>,
    /// Wall clock anchor: microseconds since 1970 at an instant.
    clock: Option<(Instant, u64)>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .field("tags", &self.db.tags().len())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

type Reply = MessageRouterReply<'static>;

fn error(svc: u8, status: GeneralStatus, ext: &[u16]) -> Reply {
    MessageRouterReply::error(svc, status, ext)
}

fn logix_error(svc: u8, ext: LogixExtendedStatus) -> Reply {
    error(svc, GeneralStatus::GENERAL_ERROR, &[ext.0])
}

fn path_error(svc: u8, e: PathError) -> Reply {
    match e {
        PathError::Segment | PathError::UnknownSymbol => {
            error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0])
        }
        PathError::Unknown | PathError::IndexOutOfRange => {
            error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[])
        }
    }
}

/// True for a decode error that means "the request ended early" (the codecs report
/// truncation inside a known length as `Invalid` with a "truncated" reason).
fn is_short(e: &DecodeError) -> bool {
    if e.field() == "multiple_service.offsets" {
        return true;
    }
    match e {
        DecodeError::Incomplete { .. } => true,
        DecodeError::Invalid { reason, .. } => reason.starts_with("truncated"),
    }
}

fn decode_error(svc: u8, e: &DecodeError) -> Reply {
    if is_short(e) {
        error(svc, GeneralStatus::NOT_ENOUGH_DATA, &[])
    } else if e.field() == "write_tag_fragmented.data" {
        logix_error(svc, LogixExtendedStatus::OFFSET_OUT_OF_RANGE)
    } else {
        error(svc, GeneralStatus::INVALID_PARAMETER_VALUE, &[])
    }
}

fn too_much(svc: u8) -> Reply {
    error(svc, GeneralStatus::TOO_MUCH_DATA, &[])
}

fn success(svc: u8, data: Vec<u8>) -> Reply {
    MessageRouterReply::success(svc, data)
}

/// An attribute value encoder: attribute id to its bytes, `None` if not supported.
fn attribute_list(svc: u8, data: &[u8], value: impl Fn(u16) -> Option<Vec<u8>>) -> Reply {
    let req = match GetAttributeListRequest::decode_with_trailing(data) {
        Ok((r, [])) => r,
        Ok(_) => return too_much(svc),
        Err(e) => return decode_error(svc, &e),
    };
    let reply = GetAttributeListReply {
        attributes: req
            .attributes
            .iter()
            .map(|id| match value(*id) {
                Some(v) => AttributeReply {
                    id: *id,
                    status: 0,
                    value: Cow::Owned(v),
                },
                None => AttributeReply {
                    id: *id,
                    status: u16::from(GeneralStatus::ATTRIBUTE_NOT_SUPPORTED.0),
                    value: Cow::Borrowed(&[]),
                },
            })
            .collect(),
    };
    success(svc, reply.to_vec())
}

fn attribute_single(
    svc: u8,
    data: &[u8],
    attribute: Option<u32>,
    value: impl Fn(u16) -> Option<Vec<u8>>,
) -> Reply {
    if !data.is_empty() {
        return too_much(svc);
    }
    match attribute.and_then(|a| u16::try_from(a).ok()) {
        Some(a) => match value(a) {
            Some(v) => success(svc, v),
            None => error(svc, GeneralStatus::ATTRIBUTE_NOT_SUPPORTED, &[]),
        },
        None => error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
    }
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

/// The object a logical path addresses: class, instance, attribute.
struct Logical {
    class: u32,
    instance: Option<u32>,
    attribute: Option<u32>,
}

impl Controller {
    /// A controller with `config` and an empty tag database.
    pub fn new(config: ControllerConfig) -> Self {
        Controller {
            config,
            db: TagDatabase::new(),
            hook: None,
            clock: None,
        }
    }

    /// A controller with `config` serving `db`.
    pub fn with_tags(config: ControllerConfig, db: TagDatabase) -> Self {
        Controller {
            db,
            ..Controller::new(config)
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The configuration, to change attribute values while serving.
    pub fn config_mut(&mut self) -> &mut ControllerConfig {
        &mut self.config
    }

    /// The tag database.
    pub fn tags(&self) -> &TagDatabase {
        &self.db
    }

    /// The tag database, to add tags or change values while serving.
    pub fn tags_mut(&mut self) -> &mut TagDatabase {
        &mut self.db
    }

    /// Install (or remove) the hook that sees every tag access.
    pub fn set_hook(&mut self, hook: Option<Arc<dyn TagHook>>) {
        self.hook = hook;
    }

    /// Force every reply for the tag named `full_name` to `error` (or clear it with
    /// `None`); false if there is no such tag.
    pub fn force_error(&mut self, full_name: &str, error: Option<ForcedError>) -> bool {
        match self
            .db
            .find_full(full_name)
            .and_then(|i| self.db.tag_mut(i))
        {
            Some(t) => {
                t.error = error;
                true
            }
            None => false,
        }
    }

    /// Set the wall clock to `us` microseconds since 1970 at `now`.
    pub fn set_wall_clock(&mut self, now: Instant, us: u64) {
        self.clock = Some((now, us));
    }

    /// The wall clock at `now`, in microseconds since 1970.
    pub fn wall_clock(&mut self, now: Instant) -> u64 {
        let (at, us) = *self
            .clock
            .get_or_insert((now, self.config.wall_clock_start_us));
        let elapsed = now.saturating_duration_since(at).as_micros();
        us.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    fn execute_one(
        &mut self,
        ctx: &RequestContext,
        req: &MessageRouterRequest<'_>,
        nested: bool,
    ) -> Reply {
        let svc = req.service;
        let segments: Vec<Segment<'_>> = match req.path.to_segments() {
            Ok(s) => s,
            Err(_) => return error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
        };
        // `Program:X` then a class: the Symbol object of that program's scope.
        if let [Segment::Symbolic(p), Segment::Class(c), rest @ ..] = segments.as_slice() {
            if let Some(program) = p.strip_prefix("Program:") {
                if *c != u32::from(class::SYMBOL) {
                    return error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
                }
                if svc != service::GET_INSTANCE_ATTRIBUTE_LIST {
                    return self.tag_service(ctx, req, &segments);
                }
                let Some(program) = self
                    .db
                    .programs()
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(program))
                    .map(|x| x.name.clone())
                else {
                    return path_error(svc, PathError::UnknownSymbol);
                };
                let start = match rest {
                    [Segment::Instance(i)] => *i,
                    [] => 0,
                    _ => return error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
                };
                return self.symbol_list(ctx, svc, Some(&program), start, &req.data);
            }
        }
        let logical = match segments.as_slice() {
            [Segment::Class(c), rest @ ..] => {
                let mut l = Logical {
                    class: *c,
                    instance: None,
                    attribute: None,
                };
                let mut it = rest.iter();
                let mut tail = false;
                for s in it.by_ref() {
                    match s {
                        Segment::Instance(i) if l.instance.is_none() && l.attribute.is_none() => {
                            l.instance = Some(*i)
                        }
                        Segment::Attribute(a) if l.attribute.is_none() => l.attribute = Some(*a),
                        _ => {
                            tail = true;
                            break;
                        }
                    }
                }
                if tail {
                    // Elements or members after class/instance: only tags have those.
                    return self.tag_service(ctx, req, &segments);
                }
                l
            }
            [Segment::Symbolic(_), ..] => return self.tag_service(ctx, req, &segments),
            _ => return error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
        };
        let Ok(cls) = u16::try_from(logical.class) else {
            return error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
        };
        let instance_1 = logical.instance == Some(INSTANCE_1);
        match cls {
            class::MESSAGE_ROUTER if svc == service::MULTIPLE_SERVICE_PACKET => {
                if !instance_1 || nested {
                    return error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
                }
                self.multiple(ctx, req)
            }
            class::IDENTITY if instance_1 => {
                let id = &self.config.identity;
                self.simple_object(
                    svc,
                    &req.data,
                    logical.attribute,
                    |a| identity_attribute(id, a),
                    // Attributes 1-7: a ControlLogix stops before the state.
                    || {
                        Identity {
                            state: None,
                            ..identity_of(id)
                        }
                        .to_vec()
                    },
                )
            }
            class::TCP_IP_INTERFACE if instance_1 => {
                let t = &self.config.tcpip;
                self.simple_object(
                    svc,
                    &req.data,
                    logical.attribute,
                    |a| tcpip_attribute(t, a),
                    || {
                        (1..=6)
                            .filter_map(|a| tcpip_attribute(t, a))
                            .flatten()
                            .collect()
                    },
                )
            }
            class::ETHERNET_LINK if instance_1 => {
                let e = &self.config.ethernet_link;
                self.simple_object(
                    svc,
                    &req.data,
                    logical.attribute,
                    |a| ethernet_attribute(e, a),
                    || {
                        (1..=3)
                            .filter_map(|a| ethernet_attribute(e, a))
                            .flatten()
                            .collect()
                    },
                )
            }
            class::PROGRAM_NAME if instance_1 => {
                if svc != service::GET_ATTRIBUTES_ALL {
                    return error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]);
                }
                if !req.data.is_empty() {
                    return too_much(svc);
                }
                let mut v = Vec::new();
                let name = self.config.program_name.as_bytes();
                let name = name
                    .get(..name.len().min(usize::from(u16::MAX)))
                    .unwrap_or_default();
                v.put_u16_le(name.len() as u16);
                v.put_slice(name);
                success(svc, v)
            }
            class::WALL_CLOCK_TIME if instance_1 => {
                self.wall_clock_service(ctx, svc, logical.attribute, &req.data)
            }
            class::SYMBOL
                if svc == service::GET_INSTANCE_ATTRIBUTE_LIST && logical.attribute.is_none() =>
            {
                self.symbol_list(ctx, svc, None, logical.instance.unwrap_or(0), &req.data)
            }
            class::TEMPLATE => match logical.instance.and_then(|i| u16::try_from(i).ok()) {
                Some(i) if self.db.structure(i).is_some() && logical.attribute.is_none() => {
                    self.template_service(ctx, svc, i, &req.data)
                }
                _ => error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]),
            },
            _ if is_tag_service(svc) => self.tag_service(ctx, req, &segments),
            class::IDENTITY
            | class::TCP_IP_INTERFACE
            | class::ETHERNET_LINK
            | class::PROGRAM_NAME
            | class::WALL_CLOCK_TIME
            | class::MESSAGE_ROUTER => match logical.instance {
                Some(INSTANCE_1) => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
                _ => error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]),
            },
            class::SYMBOL => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
            _ => error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]),
        }
    }

    /// Get Attributes All / Get Attribute List / Get Attribute Single of a read-only
    /// object.
    fn simple_object(
        &self,
        svc: u8,
        data: &[u8],
        attribute: Option<u32>,
        value: impl Fn(u16) -> Option<Vec<u8>>,
        all: impl Fn() -> Vec<u8>,
    ) -> Reply {
        match svc {
            service::GET_ATTRIBUTES_ALL if attribute.is_none() => {
                if !data.is_empty() {
                    return too_much(svc);
                }
                success(svc, all())
            }
            service::GET_ATTRIBUTE_LIST if attribute.is_none() => attribute_list(svc, data, value),
            service::GET_ATTRIBUTE_SINGLE => attribute_single(svc, data, attribute, value),
            service::SET_ATTRIBUTE_SINGLE | service::SET_ATTRIBUTE_LIST => {
                error(svc, GeneralStatus::ATTRIBUTE_NOT_SETTABLE, &[])
            }
            _ => error(svc, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]),
        }
    }

    fn wall_clock_service(
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
            service::GET_ATTRIBUTE_SINGLE => attribute_single(svc, data, attribute, value),
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

    // -----------------------------------------------------------------------------------
    // Multiple Service Packet

    fn multiple(&mut self, ctx: &RequestContext, req: &MessageRouterRequest<'_>) -> Reply {
        let svc = req.service;
        let msp = match MultipleServiceRequest::decode(&req.data) {
            Ok(m) => m,
            Err(e) => return decode_error(svc, &e),
        };
        let n = msp.requests.len();
        // Reply header, count and offsets come first; each embedded reply gets what is left.
        let mut used = REPLY_HEADER + 2 + 2 * n;
        let mut replies = Vec::with_capacity(n);
        for r in &msp.requests {
            let sub = RequestContext {
                reply_budget: ctx.reply_budget.saturating_sub(used),
                ..*ctx
            };
            let reply = self.execute_one(&sub, r, true);
            used += reply.encoded_len();
            replies.push(reply);
        }
        if used > ctx.reply_budget {
            return error(svc, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]);
        }
        let body = MultipleServiceReply { replies };
        let mut m = success(svc, body.to_vec());
        m.general_status = body.general_status();
        m
    }

    // -----------------------------------------------------------------------------------
    // Tags

    fn tag_service(
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
        match self.db.tag(target.tag).and_then(|t| t.error.clone()) {
            Some(f) => error(svc, GeneralStatus(f.status), &f.extended),
            None => reply,
        }
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
        let all = self.db.read_bytes(target, n);
        let offset = offset as usize;
        let Some(rest) = all.get(offset..) else {
            return logix_error(svc, LogixExtendedStatus::OUT_OF_RANGE);
        };
        let room = ctx
            .reply_budget
            .saturating_sub(REPLY_HEADER + tag_type.encoded_len());
        let (chunk, status) = if rest.len() <= room {
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
        if chunk.is_empty() && !rest.is_empty() {
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
        let mut m = success(svc, body.to_vec());
        m.general_status = status;
        m
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
        if tag_type != self.target_type(target) {
            return logix_error(svc, LogixExtendedStatus::TYPE_MISMATCH);
        }
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

    // -----------------------------------------------------------------------------------
    // Symbol object: the tag list upload

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
            symbol_attribute::TYPE => {
                SymbolValue::Type(crate::cip::logix::SymbolType(tags::SYMBOL_TYPE_PROGRAM))
            }
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

    fn symbol_list(
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

    fn template_service(&self, ctx: &RequestContext, svc: u8, instance: u16, data: &[u8]) -> Reply {
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

fn is_tag_service(svc: u8) -> bool {
    matches!(
        svc,
        service::READ_TAG
            | service::WRITE_TAG
            | service::READ_MODIFY_WRITE_TAG
            | service::READ_TAG_FRAGMENTED
            | service::WRITE_TAG_FRAGMENTED
    )
}

fn identity_of(id: &IdentityConfig) -> Identity<'_> {
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

fn identity_attribute(id: &IdentityConfig, a: u16) -> Option<Vec<u8>> {
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

fn tcpip_attribute(t: &TcpIpConfig, a: u16) -> Option<Vec<u8>> {
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

fn ethernet_attribute(e: &EthernetLinkConfig, a: u16) -> Option<Vec<u8>> {
    Some(match a {
        1 => e.interface_speed.to_le_bytes().to_vec(),
        2 => e.interface_flags.to_le_bytes().to_vec(),
        3 => e.physical_address.to_vec(),
        _ => return None,
    })
}

impl CipDevice for Controller {
    fn identity(&self) -> Identity<'_> {
        identity_of(&self.config.identity)
    }

    fn execute(
        &mut self,
        ctx: &RequestContext,
        request: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static> {
        self.execute_one(ctx, request, false)
    }
}

#[cfg(test)]
mod tests;
