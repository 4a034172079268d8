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
//! sends 8 bytes) is applied with the first mask-size bytes; Get Attributes All, Get
//! Attribute Single and Get Attribute List ignore bytes after their (empty or complete)
//! request data, since pycomm3's `generic_message` appends its route path to direct
//! requests by default and real devices answer them.
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

pub mod cpppo_cfg;
mod objects;
mod symbols;
mod tag_services;
pub mod tags;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::BufMut;

use crate::cip::data::TagType;
use crate::cip::device::{CipDevice, RequestContext};
use crate::cip::epath::Segment;
use crate::cip::message_router::{
    class, service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply,
    MultipleServiceRequest,
};
use crate::cip::objects::{
    AttributeReply, GetAttributeListReply, GetAttributeListRequest, Identity,
};
use crate::cip::status::{GeneralStatus, LogixExtendedStatus};
use crate::wire::{DecodeError, Encode};

use objects::{ethernet_attribute, identity_attribute, identity_of, tcpip_attribute};
use tag_services::is_tag_service;

pub use objects::{
    ControllerConfig, EthernetLinkConfig, IdentityConfig, TcpIpConfig, IDENTITY_STATE_OPERATIONAL,
    WALL_CLOCK_LOCAL_US, WALL_CLOCK_UTC_US,
};
pub use symbols::{EXTERNAL_ACCESS_READ_WRITE, SOFTWARE_CONTROL_BASE_TAG, TEMPLATE_ATTRIBUTE_3};
pub use tags::{
    CipAddress, ElementType, ForcedError, PathError, Tag, TagDatabase, TagError, TagSpec, Target,
};

/// Encoded size of a Message Router reply header with no additional status: service,
/// reserved, general status, additional status size.
pub const REPLY_HEADER: usize = 4;
/// The only instance of the singleton objects (Identity, Message Router...).
pub const INSTANCE_1: u32 = 1;

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
    /// After a tag service on an existing tag failed (or was forced to fail): the tag's
    /// full name, the request's service code and the reply's status.
    fn failed(
        &self,
        _now: Instant,
        _tag: &str,
        _service: u8,
        _status: GeneralStatus,
        _extended: &[u16],
    ) {
    }
}

/// The simulated controller: configuration, tag database, wall clock and hook.
pub struct Controller {
    config: ControllerConfig,
    db: TagDatabase,
    hook: Option<Arc<dyn TagHook>>,
    /// Wall clock anchor: microseconds since 1970 at an instant.
    clock: Option<(Instant, u64)>,
    /// The (empty) vector a request's path segments were decoded into last time, kept
    /// so that the next request reuses its allocation (see [`recycle`]).
    spare_segments: Vec<Segment<'static>>,
    /// Buffers of replies' data handed back ([`CipDevice::recycle`]), reused by the
    /// next replies (at most [`SPARE_REPLY_BUFFERS`]).
    spare_data: Vec<Vec<u8>>,
}

/// Most reply data buffers a controller keeps for reuse: a Multiple Service Packet's
/// embedded replies each take one.
const SPARE_REPLY_BUFFERS: usize = 64;

/// An empty vector of segments of another lifetime, on the same allocation: the
/// in-place collect of an empty vector keeps its buffer (same size and alignment).
// `filter` would keep the lifetime: the `filter_map` is what changes the element type.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut segments: Vec<Segment<'_>>) -> Vec<Segment<'b>> {
    segments.clear();
    segments.into_iter().filter_map(|_| None).collect()
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
    // Bytes after the attribute list are ignored (see "Tolerated quirks").
    let req = match GetAttributeListRequest::decode_with_trailing(data) {
        Ok((r, _)) => r,
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

/// Get Attribute Single; any request data is ignored (see "Tolerated quirks").
fn attribute_single(
    svc: u8,
    attribute: Option<u32>,
    value: impl Fn(u16) -> Option<Vec<u8>>,
) -> Reply {
    match attribute.and_then(|a| u16::try_from(a).ok()) {
        Some(a) => match value(a) {
            Some(v) => success(svc, v),
            None => error(svc, GeneralStatus::ATTRIBUTE_NOT_SUPPORTED, &[]),
        },
        None => error(svc, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
    }
}

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
            spare_segments: Vec::new(),
            spare_data: Vec::new(),
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
        // The path's segments go into the spare vector of the last request (no
        // allocation per request once it has grown); it is handed back afterwards.
        let mut segments = recycle(std::mem::take(&mut self.spare_segments));
        let mut decoded = Ok(());
        for segment in req.path.segments() {
            match segment {
                Ok(segment) => segments.push(segment),
                Err(e) => {
                    decoded = Err(e);
                    break;
                }
            }
        }
        let reply = match decoded {
            Ok(()) => self.execute_segments(ctx, req, nested, &segments),
            Err(_) => error(req.service, GeneralStatus::PATH_SEGMENT_ERROR, &[0]),
        };
        self.spare_segments = recycle(segments);
        reply
    }

    /// [`Controller::execute_one`] on the request's decoded path `segments`.
    fn execute_segments(
        &mut self,
        ctx: &RequestContext,
        req: &MessageRouterRequest<'_>,
        nested: bool,
        segments: &[Segment<'_>],
    ) -> Reply {
        let svc = req.service;
        // `Program:X` then a class: the Symbol object of that program's scope.
        if let [Segment::Symbolic(p), Segment::Class(c), rest @ ..] = segments {
            if let Some(program) = p.strip_prefix("Program:") {
                if *c != u32::from(class::SYMBOL) {
                    return error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
                }
                if svc != service::GET_INSTANCE_ATTRIBUTE_LIST {
                    return self.tag_service(ctx, req, segments);
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
        let logical = match segments {
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
                    return self.tag_service(ctx, req, segments);
                }
                l
            }
            [Segment::Symbolic(_), ..] => return self.tag_service(ctx, req, segments),
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
            // A tag served at this address: its data as an attribute.
            _ if matches!(
                svc,
                service::GET_ATTRIBUTE_SINGLE | service::SET_ATTRIBUTE_SINGLE
            ) && logical.attribute.is_some()
                && self.db.resolve(segments).is_ok() =>
            {
                self.attribute_service(ctx, req, segments)
                    .unwrap_or_else(|| error(svc, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]))
            }
            _ if is_tag_service(svc) => self.tag_service(ctx, req, segments),
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
        let mut data = self.reply_buffer();
        body.encode(&mut data);
        let mut m = success(svc, data);
        m.general_status = body.general_status();
        for reply in body.replies {
            self.recycle(reply);
        }
        m
    }

    /// An empty buffer for a reply's data: one handed back earlier, or a new one.
    fn reply_buffer(&mut self) -> Vec<u8> {
        let mut data = self.spare_data.pop().unwrap_or_default();
        data.clear();
        data
    }
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

    fn recycle(&mut self, reply: MessageRouterReply<'static>) {
        if let Cow::Owned(data) = reply.data {
            if data.capacity() > 0 && self.spare_data.len() < SPARE_REPLY_BUFFERS {
                self.spare_data.push(data);
            }
        }
    }
}

#[cfg(test)]
mod tests;
