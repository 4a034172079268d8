//! The EtherNet/IP client engine: one TCP connection to a controller, carrying
//! [`Operation`]s as pipelined Message Router requests.
//!
//! ```text
//!   submit(now, Operation) -> OpId          handle_input(now, bytes)
//!            |                                        |
//!      ready queue                            EncapsulationFraming
//!            |                                        |
//!   RegisterSession -> [ListIdentity] -> [Forward Open (Large when size > 511)]
//!            |                                        |
//!   up to `depth` transactions in flight:     replies matched by sender context
//!   SendRRData (Unconnected Send + route)     (SendRRData) or by sequence count
//!   or SendUnitData (connected), each one     (SendUnitData), in any order
//!   request or a Multiple Service Packet               |
//!   packed within `multiple` bytes            0x06 partial read -> next fragment
//!                                             done -> ClientEvent::Reply
//! ```
//!
//! ## Contract
//!
//! - [`ClientConn::submit`]: queue an operation; its deadline is `now + timeout`
//!   ([`ClientConn::submit_until`] gives one its own). Operations in flight together are
//!   independent: a read pipelined beside a write to the same tag may see it or not.
//! - [`ClientConn::handle_input`]: reply bytes as they arrived, split anywhere.
//! - [`ClientConn::poll_transmit`]: appends the requests that may go now (the session
//!   set-up first, then as many transactions as `depth` allows).
//! - [`ClientConn::poll_event`]: [`ClientEvent::Reply`] for each finished operation
//!   (typed values, or the CIP status the device answered: a protocol exception is data,
//!   not an error), [`ClientEvent::Lost`] for one that will never be answered.
//! - [`ClientConn::poll_timeout`] / [`ClientConn::handle_timeout`]: the earliest
//!   operation (or set-up) deadline; operations past it are lost with
//!   [`LostReason::Timeout`].
//! - [`ClientConn::handle_eof`]: the server closed the connection; operations not yet
//!   answered are lost.
//! - [`ClientConn::close`]: finish what is in flight, Forward Close a connected session,
//!   UnRegisterSession; then [`ClientConn::is_closed`].
//!
//! The drive loop: after any `handle_*` call or `submit`, drain `poll_transmit` to the
//! socket and `poll_event`, then wait for input or `poll_timeout`.
//!
//! Besides Read/Write Tag and the attribute services, [`Method::ListTags`] uploads the
//! tag list (Symbol object, page by page) and [`Method::ReadTemplate`] a structure's
//! definition (Template object), with which [`Template::decode_value`] turns a UDT read
//! ([`Values::Structure`], raw bytes) into its members. Sessionless `ListIdentity` /
//! `ListServices` (UDP, broadcast) are plain functions: [`list_request`] and
//! [`decode_list_reply`].
//!
//! cpppo's `synchronous`/`pipeline`/`results`/`process` calls, its printed result lines
//! and TPS summary are [`pipeline`]: a runner over this engine that every runtime's
//! client drives. Out of scope here: the getattr proxy and the pollers.
//!
//! ## Fragmentation
//!
//! A read is sent as Read Tag; a reply with status 0x06 (partial data) continues with
//! Read Tag Fragmented at the next byte offset until the device answers 0x00, and the
//! operation completes once with all the data. A write whose request would exceed the
//! request budget (the connection size when connected) is sent as Write Tag Fragmented
//! in element-aligned pieces, one at a time. An operation with an explicit offset (or
//! [`ClientOptions::fragment`]) uses the Fragmented services from the start.
//!
//! ## Example
//!
//! The client engine against the server engine and a simulated controller, in memory:
//!
//! ```
//! use std::time::Instant;
//! use cpppo_core::cip::data::Values;
//! use cpppo_core::cip::operation::parse_operation;
//! use cpppo_core::controller::{Controller, ControllerConfig};
//! use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, Value};
//! use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};
//!
//! let now = Instant::now();
//! let mut plc = Controller::new(ControllerConfig::default());
//! plc.tags_mut().add_str("SCADA=INT[100]").unwrap();
//! let mut server = Server::new(plc, ServerOptions::default());
//! let mut conn = ServerConn::new(now, "127.0.0.1:50000".parse().unwrap(), &mut server);
//!
//! let mut client = ClientConn::new(now, ClientOptions { depth: 2, ..ClientOptions::default() });
//! client.submit(now, parse_operation("SCADA[1-3]=4,5,6").unwrap());
//! let read = client.submit(now, parse_operation("SCADA[0-3]").unwrap());
//!
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! let mut replies = Vec::new();
//! while replies.len() < 2 {
//!     to_server.clear();
//!     client.poll_transmit(now, &mut to_server);
//!     conn.handle_input(now, &to_server, &mut server);
//!     to_client.clear();
//!     while conn.poll_transmit(now, &mut to_client) {}
//!     client.handle_input(now, &to_client);
//!     while let Some(event) = client.poll_event() {
//!         if let ClientEvent::Reply { op, result } = event {
//!             replies.push((op, result));
//!         }
//!     }
//! }
//! assert_eq!(replies[1], (read, Ok(Value::Values(Values::Int(vec![0, 4, 5, 6])))));
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cip::connection_manager::{
    connection_priority, connection_type, ConnectionTriple, ForwardCloseRequest, ForwardOpenReply,
    ForwardOpenRequest, NetworkConnectionParameters, TransportClassTrigger, UnconnectedSend,
};
use crate::cip::data::{Count, TagType, Values};
use crate::cip::device::UNCONNECTED_REPLY_BUDGET;
use crate::cip::epath::{parse_route_path, Epath, PathParseError, Segment};
use crate::cip::logix::{
    element_size, symbol_attribute, template_attribute, GetInstanceAttributeListReply,
    ReadTagFragmentedRequest, ReadTagReply, ReadTagRequest, SymbolType, TemplateAttributes,
    TemplateDefinition, TemplateReadRequest, WriteTagFragmentedRequest, WriteTagRequest,
};
use crate::cip::message_router::{
    class, service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply,
    MultipleServiceRequest,
};
use crate::cip::objects::GetAttributeListRequest;
use crate::cip::operation::{Method, Operation};
use crate::cip::status::{ConnectionManagerStatus, GeneralStatus};
use crate::enip::cpf::{Cpf, Identity};
use crate::enip::encapsulation::{
    Command, Encapsulation, EncapsulationFraming, Header, SendData, MAX_FRAME_LEN,
};
use crate::wire::{Encode, Reader, StreamDecoder};

pub mod pipeline;
#[cfg(test)]
mod tests;

/// The largest connection size the 16-bit Forward Open can ask for; a larger one needs
/// Large Forward Open.
pub const MAX_SMALL_CONNECTION_SIZE: u16 = 511;

/// The connection size asked for by default (a ControlLogix's classic limit is 500).
pub const DEFAULT_CONNECTION_SIZE: u16 = 500;

/// Unconnected Send priority/time tick as cpppo sends it (tick 2^5 ms).
pub const UNCONNECTED_PRIORITY_TIME_TICK: u8 = 0x05;
/// Unconnected Send timeout ticks as cpppo sends them (157 x 32 ms = ~5 s).
pub const UNCONNECTED_TIMEOUT_TICKS: u8 = 157;

/// How many times a Forward Open refused as a duplicate (extended status 0x0100: our
/// connection triple is still in use, by a connection that dropped without the target
/// noticing) is sent again with the next connection serial number.
pub const MAX_DUPLICATE_FORWARD_OPEN_RETRIES: u32 = 8;

/// The requested packet interval of our Forward Open, microseconds.
pub const FORWARD_OPEN_RPI_US: u32 = 2_000_000;
/// The connection timeout multiplier of our Forward Open (RPI x 4 << 2 = 32 s).
pub const FORWARD_OPEN_TIMEOUT_MULTIPLIER: u8 = 2;

/// The Message Router header of a request (service, path size) and of a reply (service,
/// reserved, general status, additional status size).
const REQUEST_HEADER: usize = 2;
/// Unconnected Send's priority/time tick, timeout ticks and embedded request size.
const UNCONNECTED_SEND_FIELDS: usize = 4;
/// Read/Write Tag Fragmented's element count and byte offset.
const FRAGMENT_FIELDS: usize = 6;
/// The Message Router header of a reply with no additional status (service, reserved,
/// general status, additional status size).
const REPLY_HEADER: usize = 4;
/// Bytes per element a read's reply is reckoned to take when packing a Multiple Service
/// Packet, before the tag's type is known (DINT and REAL, the most common, take 4).
const ESTIMATED_ELEMENT_LEN: usize = 4;
/// A Read Tag reply's tag type field.
const TAG_TYPE_LEN: usize = 2;

/// The reply a request is reckoned to get, for packing Multiple Service Packets within
/// the reply budget: a read's elements at [`ESTIMATED_ELEMENT_LEN`] (less the offset
/// already read), a write's bare status, anything else about its own size.
fn estimated_reply_len(request: &MessageRouterRequest<'_>) -> usize {
    let read =
        request.service == service::READ_TAG || request.service == service::READ_TAG_FRAGMENTED;
    if read {
        let elements = match request.data.get(..2) {
            Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
            _ => 1,
        };
        let offset = match request.data.get(2..6) {
            Some(&[a, b, c, d]) if request.service == service::READ_TAG_FRAGMENTED => {
                usize::try_from(u32::from_le_bytes([a, b, c, d])).unwrap_or(usize::MAX)
            }
            _ => 0,
        };
        let data = (elements * ESTIMATED_ELEMENT_LEN).saturating_sub(offset);
        return REPLY_HEADER + TAG_TYPE_LEN + data.max(ESTIMATED_ELEMENT_LEN);
    }
    if request.service == service::WRITE_TAG || request.service == service::WRITE_TAG_FRAGMENTED {
        return REPLY_HEADER;
    }
    REPLY_HEADER + request.data.len()
}

/// How a [`ClientConn`] talks to its target. Pure data (serde), cpppo's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientOptions {
    /// Transactions in flight at once (cpppo's `--depth`; at least 1).
    pub depth: usize,
    /// Pack operations into Multiple Service Packets of up to this many bytes (cpppo's
    /// `--multiple`); 0 sends each operation in its own transaction.
    pub multiple: usize,
    /// Use the Fragmented services for every read and write (cpppo's `fragment`).
    pub fragment: bool,
    /// Each operation's deadline after `submit` (cpppo's `--timeout`; seconds in JSON).
    #[serde(with = "crate::pipeline::seconds")]
    pub timeout: Duration,
    /// The route path of Unconnected Send and of the Forward Open connection path
    /// (`--route-path`; default backplane port 1, link 0). `None` for no route.
    pub route_path: Option<Epath<'static>>,
    /// Where Unconnected Send is sent (`--send-path`; default the Connection Manager
    /// `@6/1`). `None` (or empty) sends requests straight to their object, as simple
    /// devices need (`-S`).
    pub send_path: Option<Epath<'static>>,
    /// Open a CIP connection (Forward Open) and send requests connected.
    pub connected: bool,
    /// The connection size to ask for when connected (Large Forward Open above 511).
    pub connection_size: u16,
    /// The largest unconnected request or reply message, bytes.
    pub unconnected_size: usize,
    /// Send ListIdentity after RegisterSession and report the identity.
    pub list_identity: bool,
    /// Our vendor id and serial number (the Forward Open's originator).
    pub originator_vendor_id: u16,
    /// Our serial number.
    pub originator_serial: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            depth: 1,
            multiple: 0,
            fragment: false,
            timeout: Duration::from_secs(5),
            route_path: Some(Epath::from_vec(vec![0x01, 0x00])),
            send_path: Some(Epath::from_vec(vec![
                crate::cip::epath::SEGMENT_CLASS,
                0x06,
                crate::cip::epath::SEGMENT_INSTANCE,
                0x01,
            ])),
            connected: false,
            connection_size: DEFAULT_CONNECTION_SIZE,
            unconnected_size: UNCONNECTED_REPLY_BUDGET,
            list_identity: false,
            originator_vendor_id: 0x1234,
            originator_serial: 0x6370_7070,
        }
    }
}

impl ClientOptions {
    /// Set the route path from cpppo's `--route-path` text: a JSON list of port
    /// segments, one object, the shorthand `1/0`, or `false`/`0`/`null`/`[]` for none.
    pub fn with_route_path(mut self, text: &str) -> Result<Self, PathParseError> {
        self.route_path = parse_route_path(text)?;
        Ok(self)
    }

    /// Set the send path from cpppo's `--send-path` text (`@6/1`; empty for none).
    pub fn with_send_path(mut self, text: &str) -> Result<Self, PathParseError> {
        let path: Epath<'static> = text.trim().parse()?;
        self.send_path = (!path.is_empty()).then_some(path);
        Ok(self)
    }

    /// cpppo's `-S/--simple`: no route path and no Unconnected Send.
    pub fn simple() -> Self {
        ClientOptions {
            route_path: None,
            send_path: None,
            ..ClientOptions::default()
        }
    }
}

/// An operation's handle, in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub u64);

/// What a successful operation gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// A read's values, typed as the device sent them.
    Values(Values),
    /// A write or Set Attribute Single succeeded.
    Written,
    /// Get Attribute Single / Get Attributes All data, raw.
    Data(Vec<u8>),
    /// The tag list ([`Method::ListTags`]): each Symbol instance's name, type and
    /// dimensions ([`LIST_TAGS_ATTRIBUTES`]).
    Symbols(Vec<SymbolEntry>),
    /// A structure's definition ([`Method::ReadTemplate`]).
    Template(Template),
}

/// The Template attributes a template read asks for first: definition size, structure
/// size, member count, structure handle.
pub const TEMPLATE_ATTRIBUTES: [u16; 4] = [
    template_attribute::DEFINITION_SIZE,
    template_attribute::STRUCTURE_SIZE,
    template_attribute::MEMBER_COUNT,
    template_attribute::STRUCTURE_HANDLE,
];

/// What a Template Read asks for beyond the definition proper: the definition size in
/// words counts 20 bytes of overhead and the reply's own header (pycomm3 reads
/// `words * 4 - 21` bytes; a Logix finds the end there).
pub const TEMPLATE_READ_OVERHEAD: u32 = 21;

/// Prefix of the hidden SINT members that host a structure's BOOL members.
pub const HIDDEN_MEMBER_PREFIX: &str = "ZZZZZZZZZZ";

/// A structure's definition, as read from its Template object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The structure handle (the CRC in a Read Tag reply's type).
    pub handle: u16,
    /// Bytes of one value of the structure.
    pub structure_size: u32,
    /// The structure's name (before any `;`).
    pub name: String,
    /// The members, in definition order (hidden BOOL hosts included).
    pub members: Vec<TemplateMemberInfo>,
}

/// One member of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMemberInfo {
    /// The member's name.
    pub name: String,
    /// Array length for an array member, bit number for a BOOL member, else 0.
    pub info: u16,
    /// The type word: an atomic code, or a structure and its Template instance.
    pub symbol_type: SymbolType,
    /// Byte offset in a value of the structure (for a BOOL, of its host).
    pub offset: u32,
}

impl Template {
    /// Decode one value of the structure (the data of a Read Tag reply of this
    /// structure's type) into its visible atomic members, by name. Nested structures are
    /// given as [`Values::Structure`] with their raw bytes (read their own template to
    /// decode them); hidden BOOL hosts are left out.
    pub fn decode_value(
        &self,
        data: &[u8],
    ) -> Result<Vec<(String, Values)>, crate::wire::DecodeError> {
        let mut out = Vec::new();
        for m in &self.members {
            if m.name.starts_with(HIDDEN_MEMBER_PREFIX) {
                continue;
            }
            let at = usize::try_from(m.offset).unwrap_or(usize::MAX);
            let rest = data.get(at..).ok_or(crate::wire::DecodeError::Incomplete {
                field: "template.member",
                offset: data.len(),
                needed: at.saturating_sub(data.len()),
            })?;
            let mut r = Reader::with_base(rest, at);
            let count = usize::from(m.info.max(1));
            let value = match m.symbol_type.atomic_type() {
                Some(code) if u16::from(code) == crate::cip::data::DataType::BOOL.code() => {
                    let host = r.u8("template.bool_host")?;
                    Values::Bool(vec![host >> (m.info & 7) & 1 != 0])
                }
                Some(code) => Values::decode(
                    TagType::Elementary(u16::from(code)),
                    Count::Elements(count),
                    &mut r,
                )?,
                None => {
                    let next = self
                        .members
                        .iter()
                        .map(|n| usize::try_from(n.offset).unwrap_or(usize::MAX))
                        .filter(|o| *o > at)
                        .min()
                        .unwrap_or(usize::try_from(self.structure_size).unwrap_or(usize::MAX));
                    let raw = rest
                        .get(..next.saturating_sub(at).min(rest.len()))
                        .unwrap_or_default();
                    Values::Structure {
                        handle: 0,
                        data: raw.to_vec(),
                    }
                }
            };
            out.push((m.name.clone(), value));
        }
        Ok(out)
    }
}

/// One tag of a tag list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolEntry {
    /// The Symbol instance id (a read can address the tag as `@0x6B/id`).
    pub instance: u32,
    /// The tag name.
    pub name: String,
    /// The symbol type word: atomic type or template instance, dimensions, system bit.
    pub symbol_type: SymbolType,
    /// The array dimensions (0 where unused).
    pub dimensions: [u32; 3],
}

/// The Symbol attributes a tag list asks for: name, type, dimensions.
pub const LIST_TAGS_ATTRIBUTES: [u16; 3] = [
    symbol_attribute::NAME,
    symbol_attribute::TYPE,
    symbol_attribute::DIMENSIONS,
];

/// The status a device answered instead of success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CipStatus {
    /// General status.
    pub general: GeneralStatus,
    /// Additional (extended) status words.
    pub additional: Vec<u16>,
}

/// Why an operation will never be answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum LostReason {
    /// Its deadline passed.
    #[error("timed out")]
    Timeout,
    /// The connection closed (the server hung up, or [`ClientConn::close`]).
    #[error("connection closed")]
    Closed,
    /// RegisterSession was refused with this encapsulation status.
    #[error("session refused: encapsulation status 0x{0:04X}")]
    SessionRefused(u32),
    /// The Forward Open was refused.
    #[error("forward open refused: {0:?}")]
    ForwardOpenRefused(CipStatus),
    /// The reply's encapsulation status was not success.
    #[error("encapsulation status 0x{0:04X}")]
    Encapsulation(u32),
    /// The server's bytes did not parse; the text says where.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The operation cannot be sent (its request does not fit, or it lacks values).
    #[error("invalid operation: {0}")]
    Invalid(String),
}

/// What happened on a [`ClientConn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientEvent {
    /// RegisterSession succeeded.
    Registered {
        /// The session handle.
        session: u32,
    },
    /// ListIdentity answered (with [`ClientOptions::list_identity`]).
    Identity(Identity<'static>),
    /// The Forward Open succeeded.
    Connected {
        /// The O->T connection id the target chose.
        o_t_connection_id: u32,
        /// The connection size granted.
        size: u16,
        /// Whether Large Forward Open was used.
        large: bool,
    },
    /// An operation finished: its value, or the CIP status the device answered.
    Reply {
        /// The operation.
        op: OpId,
        /// Its value or status.
        result: Result<Value, CipStatus>,
    },
    /// An operation will never be answered.
    Lost {
        /// The operation.
        op: OpId,
        /// Why.
        why: LostReason,
    },
    /// A problem with the connection itself (not one operation): session refused,
    /// Forward Open refused, unparsable bytes. The connection is closed after it.
    Failed(LostReason),
}

/// Counters for `--print` summaries and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Transactions (encapsulated requests) sent for operations.
    pub transactions: u64,
    /// Message Router requests sent for operations (more than transactions with MSP).
    pub requests: u64,
    /// Operations answered (success or CIP status).
    pub replies: u64,
    /// Operations lost.
    pub lost: u64,
    /// Replies that matched nothing in flight (late, after a timeout).
    pub unmatched: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Registering,
    ListingIdentity,
    Opening,
    Ready,
    Closing,
    Closed,
}

/// How a reply finds its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Context(u64),
    Sequence(u16),
}

#[derive(Debug)]
enum TxKind {
    /// One request per part; `msp` when they went in a Multiple Service Packet.
    Ops {
        parts: Vec<OpId>,
        msp: bool,
    },
    ForwardOpen {
        large: bool,
        size: u16,
    },
    ForwardClose,
}

#[derive(Debug)]
struct Transaction {
    key: Key,
    kind: TxKind,
}

#[derive(Debug)]
struct OpState {
    op: Operation,
    deadline: Instant,
    /// Read: the bytes so far; write: the encoded values.
    data: Vec<u8>,
    tag_type: Option<TagType>,
    /// The next byte offset.
    offset: u32,
    /// Bytes the write fragment in flight carries.
    sent: usize,
    fragmented: bool,
    /// Send alone: its reply did not fit beside others in a Multiple Service Packet.
    solo: bool,
    /// A tag list's instances so far.
    symbols: Vec<SymbolEntry>,
    /// A template read's attributes, once known.
    template: Option<TemplateAttributes>,
}

/// One EtherNet/IP client connection's protocol state (see the module documentation).
#[derive(Debug)]
pub struct ClientConn {
    options: ClientOptions,
    phase: Phase,
    session: u32,
    decoder: StreamDecoder<EncapsulationFraming>,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    ops: BTreeMap<OpId, OpState>,
    ready: VecDeque<OpId>,
    in_flight: Vec<Transaction>,
    next_op: u64,
    next_context: u64,
    sequence: u16,
    setup_deadline: Option<Instant>,
    o_t_connection_id: Option<u32>,
    t_o_connection_id: u32,
    connection_size: u16,
    triple: ConnectionTriple,
    /// Forward Opens sent again after a duplicate refusal.
    duplicate_retries: u32,
    stats: ClientStats,
}

impl ClientConn {
    /// A new connection; RegisterSession is the first thing [`poll_transmit`](Self::poll_transmit) yields.
    pub fn new(now: Instant, options: ClientOptions) -> Self {
        let mut client = ClientConn {
            phase: Phase::Registering,
            session: 0,
            decoder: EncapsulationFraming::stream_decoder(),
            out: Vec::new(),
            events: VecDeque::new(),
            ops: BTreeMap::new(),
            ready: VecDeque::new(),
            in_flight: Vec::new(),
            next_op: 0,
            next_context: 1,
            sequence: 0,
            setup_deadline: Some(now + options.timeout),
            o_t_connection_id: None,
            t_o_connection_id: 0x7063_0001,
            connection_size: options.connection_size,
            triple: ConnectionTriple {
                connection_serial: 1,
                originator_vendor_id: options.originator_vendor_id,
                originator_serial: options.originator_serial,
            },
            duplicate_retries: 0,
            stats: ClientStats::default(),
            options,
        };
        let context = client.context();
        client.push_frame(Encapsulation::register_session(context.to_le_bytes()));
        client
    }

    // ----- getters

    /// The options this connection runs with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The session handle, once registered.
    pub fn session_handle(&self) -> Option<u32> {
        (self.session != 0).then_some(self.session)
    }

    /// The O->T connection id, while connected.
    pub fn connection_id(&self) -> Option<u32> {
        self.o_t_connection_id
    }

    /// Counters.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Operations submitted and not yet answered or lost.
    pub fn outstanding(&self) -> usize {
        self.ops.len()
    }

    /// The connection is finished: flush [`poll_transmit`](Self::poll_transmit), then
    /// close the socket.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    // ----- commands

    /// Queue `op`; it is sent as soon as the session is ready and `depth` allows, and
    /// answered by a [`ClientEvent::Reply`] or [`ClientEvent::Lost`] carrying the
    /// returned id.
    pub fn submit(&mut self, now: Instant, op: Operation) -> OpId {
        self.submit_until(now + self.options.timeout, op)
    }

    /// Queue `op` with its own deadline (instead of `now` + [`ClientOptions::timeout`]).
    pub fn submit_until(&mut self, deadline: Instant, op: Operation) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            self.lose(id, LostReason::Closed);
            return id;
        }
        let mut state = OpState {
            deadline,
            data: Vec::new(),
            tag_type: None,
            offset: op.offset.unwrap_or(0),
            sent: 0,
            solo: false,
            symbols: Vec::new(),
            template: None,
            fragmented: self.options.fragment || op.offset.is_some(),
            op,
        };
        if matches!(state.op.method, Method::Write | Method::SetAttributeSingle) {
            match &state.op.values {
                Some(values) => {
                    state.tag_type = Some(values.tag_type());
                    state.data = values.to_vec();
                }
                None => {
                    self.lose(id, LostReason::Invalid("no values to write".into()));
                    return id;
                }
            }
        }
        self.ops.insert(id, state);
        self.ready.push_back(id);
        id
    }

    /// Finish the operations in flight, then Forward Close (when connected) and
    /// UnRegisterSession; operations not yet sent are lost with [`LostReason::Closed`].
    pub fn close(&mut self, _now: Instant) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        for id in std::mem::take(&mut self.ready) {
            if self.ops.remove(&id).is_some() {
                self.lose(id, LostReason::Closed);
            }
        }
        if self.session == 0 {
            self.finish(LostReason::Closed);
            return;
        }
        self.phase = Phase::Closing;
    }

    // ----- inputs

    /// Bytes from the server, as they arrived (split anywhere).
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        self.decoder.handle_input(data);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    self.handle_frame(now, &frame);
                    if self.phase == Phase::Closed {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(LostReason::Protocol(e.to_string()));
                    break;
                }
            }
        }
    }

    /// Deadlines passed: operations past theirs are lost; a set-up (RegisterSession,
    /// Forward Open) past its deadline fails the connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.setup_deadline.is_some_and(|d| d <= now) {
            if self.phase == Phase::Closing {
                // An unanswered Forward Close: UnRegisterSession regardless.
                self.setup_deadline = None;
                self.in_flight.clear();
            } else {
                self.fail(LostReason::Timeout);
                return;
            }
        }
        let expired: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.ops.remove(&id);
            self.ready.retain(|r| *r != id);
            self.lose(id, LostReason::Timeout);
        }
        // A transaction none of whose operations is still waiting frees its slot.
        let ops = &self.ops;
        self.in_flight.retain(|tx| match &tx.kind {
            TxKind::Ops { parts, .. } => parts.iter().any(|p| ops.contains_key(p)),
            _ => true,
        });
    }

    /// The server closed the connection: every operation not yet answered is lost.
    pub fn handle_eof(&mut self, _now: Instant) {
        self.finish(LostReason::Closed);
    }

    // ----- outputs

    /// Append the requests that may be sent now; `false` when there are none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.pump(now);
        if self.out.is_empty() {
            return false;
        }
        out.append(&mut self.out);
        true
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let ops = self.ops.values().map(|s| s.deadline).min();
        crate::engine::earliest(self.setup_deadline, ops)
    }

    // ----- internals

    fn context(&mut self) -> u64 {
        let c = self.next_context;
        self.next_context = self.next_context.wrapping_add(1);
        c
    }

    fn push_frame(&mut self, frame: Encapsulation<'_>) {
        frame.encode(&mut self.out);
    }

    fn lose(&mut self, op: OpId, why: LostReason) {
        self.stats.lost += 1;
        self.events.push_back(ClientEvent::Lost { op, why });
    }

    fn reply(&mut self, op: OpId, result: Result<Value, CipStatus>) {
        self.stats.replies += 1;
        self.events.push_back(ClientEvent::Reply { op, result });
    }

    /// Every outstanding operation is lost; the connection is closed.
    fn finish(&mut self, why: LostReason) {
        self.ready.clear();
        self.in_flight.clear();
        for id in std::mem::take(&mut self.ops).into_keys() {
            self.lose(id, why.clone());
        }
        self.phase = Phase::Closed;
        self.setup_deadline = None;
        self.o_t_connection_id = None;
    }

    fn fail(&mut self, why: LostReason) {
        self.events.push_back(ClientEvent::Failed(why.clone()));
        self.finish(why);
    }

    /// The request budget of one message: the connection size (less the sequence
    /// count) when connected, else the unconnected size.
    fn budget(&self) -> usize {
        if self.o_t_connection_id.is_some() {
            return usize::from(self.connection_size).saturating_sub(2);
        }
        // Unconnected Send wraps the request: its own header and send path, priority,
        // ticks and size, a possible pad byte, and the route path with its size.
        let wrapper = self.send_path().map_or(0, |send| {
            REQUEST_HEADER
                + send.as_bytes().len()
                + UNCONNECTED_SEND_FIELDS
                + 1
                + 2
                + self
                    .options
                    .route_path
                    .as_ref()
                    .map_or(0, |r| r.as_bytes().len())
        });
        self.options.unconnected_size.saturating_sub(wrapper)
    }

    fn send_path(&self) -> Option<&Epath<'static>> {
        self.options.send_path.as_ref().filter(|p| !p.is_empty())
    }

    /// Send what may go now: set-up steps, then transactions up to `depth`.
    fn pump(&mut self, now: Instant) {
        match self.phase {
            Phase::Ready => {}
            Phase::Closing => {
                if !self.in_flight.is_empty() {
                    return;
                }
                if self.o_t_connection_id.is_some() {
                    self.send_forward_close(now);
                    return;
                }
                let header = Header::new(Command::UnRegisterSession, self.session, [0; 8]);
                if let Ok(frame) = Encapsulation::new(header, Vec::new()) {
                    self.push_frame(frame);
                }
                self.finish(LostReason::Closed);
                return;
            }
            _ => return,
        }
        let depth = self.options.depth.max(1);
        while self.in_flight.len() < depth && !self.ready.is_empty() {
            self.send_next(now);
        }
    }

    /// The Message Router request for an operation's next step.
    fn request(&self, state: &OpState) -> Result<MessageRouterRequest<'static>, String> {
        let path = state.op.path.clone();
        let path_len = path.as_bytes().len();
        let (service, data) = match state.op.method {
            Method::Read if !state.fragmented && state.offset == 0 => (
                service::READ_TAG,
                ReadTagRequest {
                    elements: state.op.elements,
                }
                .to_vec(),
            ),
            Method::Read => (
                service::READ_TAG_FRAGMENTED,
                ReadTagFragmentedRequest {
                    elements: state.op.elements,
                    offset: state.offset,
                }
                .to_vec(),
            ),
            Method::Write => {
                let tag_type = state.tag_type.ok_or("no values to write")?;
                let whole =
                    REQUEST_HEADER + path_len + tag_type.encoded_len() + 2 + state.data.len();
                if !state.fragmented && whole <= self.budget() {
                    (
                        service::WRITE_TAG,
                        WriteTagRequest {
                            tag_type,
                            elements: state.op.elements,
                            data: Cow::Borrowed(state.data.as_slice()),
                        }
                        .to_vec(),
                    )
                } else {
                    let room = self.budget().saturating_sub(
                        REQUEST_HEADER + path_len + tag_type.encoded_len() + FRAGMENT_FIELDS,
                    );
                    let unit = element_size(tag_type).unwrap_or(1).max(1);
                    let room = room - room % unit;
                    let start = usize::try_from(state.offset).unwrap_or(usize::MAX);
                    let rest = state.data.get(start..).unwrap_or_default();
                    if room == 0 && !rest.is_empty() {
                        return Err("the request budget has no room for one element".into());
                    }
                    let piece = rest.get(..room.min(rest.len())).unwrap_or_default();
                    (
                        service::WRITE_TAG_FRAGMENTED,
                        WriteTagFragmentedRequest {
                            tag_type,
                            elements: state.op.elements,
                            offset: state.offset,
                            data: Cow::Borrowed(piece),
                        }
                        .to_vec(),
                    )
                }
            }
            Method::GetAttributeSingle => (service::GET_ATTRIBUTE_SINGLE, Vec::new()),
            Method::GetAttributesAll => (service::GET_ATTRIBUTES_ALL, Vec::new()),
            Method::SetAttributeSingle => (service::SET_ATTRIBUTE_SINGLE, state.data.clone()),
            Method::ReadTemplate => match state.template {
                None => (
                    service::GET_ATTRIBUTE_LIST,
                    GetAttributeListRequest {
                        attributes: TEMPLATE_ATTRIBUTES.to_vec(),
                    }
                    .to_vec(),
                ),
                Some(attributes) => {
                    let total = attributes
                        .definition_size
                        .unwrap_or(0)
                        .saturating_mul(4)
                        .saturating_sub(TEMPLATE_READ_OVERHEAD);
                    let left = total.saturating_sub(state.offset);
                    (
                        service::READ_TAG,
                        TemplateReadRequest {
                            offset: state.offset,
                            bytes: u16::try_from(left).unwrap_or(u16::MAX),
                        }
                        .to_vec(),
                    )
                }
            },
            Method::ListTags => {
                let mut bytes = path.as_bytes().to_vec();
                let page = Epath::from_segments(&[
                    Segment::Class(u32::from(class::SYMBOL)),
                    Segment::Instance(state.offset),
                ])
                .map_err(|e| e.to_string())?;
                bytes.extend_from_slice(page.as_bytes());
                let request = GetAttributeListRequest {
                    attributes: LIST_TAGS_ATTRIBUTES.to_vec(),
                };
                return Ok(MessageRouterRequest::new(
                    service::GET_INSTANCE_ATTRIBUTE_LIST,
                    Epath::from_vec(bytes),
                    request.to_vec(),
                ));
            }
        };
        Ok(MessageRouterRequest::new(service, path, data))
    }

    /// Bytes of the write fragment a request carries (0 for other requests).
    fn fragment_len(request: &MessageRouterRequest<'_>) -> usize {
        if request.service == service::WRITE_TAG_FRAGMENTED {
            WriteTagFragmentedRequest::decode(&request.data).map_or(0, |w| w.data.len())
        } else if request.service == service::WRITE_TAG {
            WriteTagRequest::decode(&request.data).map_or(0, |w| w.data.len())
        } else {
            0
        }
    }

    /// Build one transaction from the ready queue: one request, or as many as fit a
    /// Multiple Service Packet.
    fn send_next(&mut self, _now: Instant) {
        let mut parts: Vec<(OpId, MessageRouterRequest<'static>)> = Vec::new();
        let msp_budget = self.options.multiple.min(self.budget());
        let mut msp_len = REQUEST_HEADER + 4 + 2; // MSP header, path @2/1, count
                                                  // The reply must fit too: a read's is larger than its request, and a reply over
                                                  // the device's budget comes back partial, then costs a transaction per fragment.
        let mut reply_len = REPLY_HEADER + 2; // MSP reply header, count
        while let Some(&id) = self.ready.front() {
            let Some(state) = self.ops.get(&id) else {
                self.ready.pop_front();
                continue;
            };
            let request = match self.request(state) {
                Ok(r) => r,
                Err(why) => {
                    self.ready.pop_front();
                    self.ops.remove(&id);
                    self.lose(id, LostReason::Invalid(why));
                    continue;
                }
            };
            let len = request.encoded_len();
            let answer = estimated_reply_len(&request);
            let solo = state.solo;
            if !parts.is_empty()
                && (solo
                    || self.options.multiple == 0
                    || msp_len + 2 + len > msp_budget
                    || reply_len + 2 + answer > msp_budget)
            {
                break;
            }
            self.ready.pop_front();
            msp_len += 2 + len;
            reply_len += 2 + answer;
            let sent = Self::fragment_len(&request);
            if let Some(state) = self.ops.get_mut(&id) {
                state.sent = sent;
            }
            parts.push((id, request));
            if self.options.multiple == 0 || solo {
                break;
            }
        }
        if parts.is_empty() {
            return;
        }
        let msp = parts.len() > 1;
        let ids: Vec<OpId> = parts.iter().map(|(id, _)| *id).collect();
        self.stats.requests += ids.len() as u64;
        self.stats.transactions += 1;
        let message = if msp {
            let body = MultipleServiceRequest {
                requests: parts.into_iter().map(|(_, r)| r).collect(),
            };
            MessageRouterRequest::new(
                service::MULTIPLE_SERVICE_PACKET,
                message_router_path(),
                body.to_vec(),
            )
        } else {
            match parts.into_iter().next() {
                Some((_, r)) => r,
                None => return,
            }
        };
        let key = self.send_message(message);
        self.in_flight.push(Transaction {
            key,
            kind: TxKind::Ops { parts: ids, msp },
        });
    }

    /// Send a Message Router request connected or unconnected (wrapped in Unconnected
    /// Send unless there is no send path); returns the key its reply will carry.
    fn send_message(&mut self, message: MessageRouterRequest<'_>) -> Key {
        if let Some(o_t) = self.o_t_connection_id {
            self.sequence = self.sequence.wrapping_add(1);
            let seq = self.sequence;
            let cpf = Cpf::connected(o_t, seq, message.to_vec());
            self.send_data(Command::SendUnitData, 0, cpf);
            return Key::Sequence(seq);
        }
        let bytes = match self.send_path().cloned() {
            Some(send_path) => MessageRouterRequest::new(
                service::UNCONNECTED_SEND,
                send_path,
                UnconnectedSend {
                    priority_time_tick: UNCONNECTED_PRIORITY_TIME_TICK,
                    timeout_ticks: UNCONNECTED_TIMEOUT_TICKS,
                    request: message,
                    route_path: self.options.route_path.clone().unwrap_or(Epath::EMPTY),
                }
                .to_vec(),
            )
            .to_vec(),
            None => message.to_vec(),
        };
        self.send_direct(bytes)
    }

    /// SendRRData with `bytes` as the unconnected data item, no Unconnected Send.
    fn send_direct(&mut self, bytes: Vec<u8>) -> Key {
        let context = self.context();
        self.send_data(Command::SendRRData, context, Cpf::unconnected(bytes));
        Key::Context(context)
    }

    fn send_data(&mut self, command: Command, context: u64, cpf: Cpf<'_>) {
        let header = Header::new(command, self.session, context.to_le_bytes());
        match Encapsulation::with_body(header, &SendData::new(0, cpf)) {
            Ok(frame) => self.push_frame(frame),
            Err(e) => self
                .events
                .push_back(ClientEvent::Failed(LostReason::Invalid(format!(
                    "{} bytes do not fit an encapsulation",
                    e.0
                )))),
        }
    }

    fn connection_path(&self) -> Epath<'static> {
        let mut bytes = self
            .options
            .route_path
            .as_ref()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default();
        bytes.extend_from_slice(message_router_path().as_bytes());
        Epath::from_vec(bytes)
    }

    fn send_forward_open(&mut self, now: Instant, size: u16) {
        let large = size > MAX_SMALL_CONNECTION_SIZE;
        let params = NetworkConnectionParameters::new(
            large,
            false,
            connection_type::POINT_TO_POINT,
            connection_priority::LOW,
            true,
            size,
        );
        let request = ForwardOpenRequest {
            large,
            priority_time_tick: UNCONNECTED_PRIORITY_TIME_TICK,
            timeout_ticks: UNCONNECTED_TIMEOUT_TICKS,
            o_t_connection_id: 0,
            t_o_connection_id: self.t_o_connection_id,
            triple: self.triple,
            timeout_multiplier: FORWARD_OPEN_TIMEOUT_MULTIPLIER,
            o_t_rpi: FORWARD_OPEN_RPI_US,
            o_t_parameters: params.raw,
            t_o_rpi: FORWARD_OPEN_RPI_US,
            t_o_parameters: params.raw,
            transport_class_trigger: TransportClassTrigger::CLASS_3_SERVER,
            connection_path: self.connection_path(),
        };
        let message = MessageRouterRequest::new(
            request.service(),
            connection_manager_path(),
            request.to_vec(),
        );
        let key = self.send_direct(message.to_vec());
        self.setup_deadline = Some(now + self.options.timeout);
        self.in_flight.push(Transaction {
            key,
            kind: TxKind::ForwardOpen { large, size },
        });
    }

    fn send_forward_close(&mut self, now: Instant) {
        let request = ForwardCloseRequest {
            priority_time_tick: UNCONNECTED_PRIORITY_TIME_TICK,
            timeout_ticks: UNCONNECTED_TIMEOUT_TICKS,
            triple: self.triple,
            connection_path: self.connection_path(),
        };
        let message = MessageRouterRequest::new(
            service::FORWARD_CLOSE,
            connection_manager_path(),
            request.to_vec(),
        );
        self.o_t_connection_id = None;
        let key = self.send_direct(message.to_vec());
        self.setup_deadline = Some(now + self.options.timeout);
        self.in_flight.push(Transaction {
            key,
            kind: TxKind::ForwardClose,
        });
    }

    /// The session is registered (and identified): open a connection or start.
    fn after_setup(&mut self, now: Instant) {
        if self.options.connected {
            self.phase = Phase::Opening;
            self.send_forward_open(now, self.options.connection_size);
        } else {
            self.phase = Phase::Ready;
            self.setup_deadline = None;
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        let (encap, _) = match Encapsulation::decode(frame) {
            Ok(x) => x,
            Err(e) => return self.fail(LostReason::Protocol(e.to_string())),
        };
        let header = encap.header;
        match header.command {
            Command::RegisterSession if self.phase == Phase::Registering => {
                if header.status != 0 || header.session_handle == 0 {
                    return self.fail(LostReason::SessionRefused(header.status));
                }
                self.session = header.session_handle;
                self.events.push_back(ClientEvent::Registered {
                    session: self.session,
                });
                if self.options.list_identity {
                    self.phase = Phase::ListingIdentity;
                    let h = Header::new(Command::ListIdentity, 0, [0; 8]);
                    if let Ok(f) = Encapsulation::new(h, Vec::new()) {
                        self.push_frame(f);
                    }
                } else {
                    self.after_setup(now);
                }
            }
            Command::ListIdentity if self.phase == Phase::ListingIdentity => {
                if let Ok(cpf) = Cpf::decode(&encap.data) {
                    for identity in cpf.identities() {
                        self.events
                            .push_back(ClientEvent::Identity(identity.clone().into_owned()));
                    }
                }
                self.after_setup(now);
            }
            Command::SendRRData | Command::SendUnitData => self.handle_send_data(now, &encap),
            // Anything else (a stray reply, Nop) is not ours to act on.
            _ => {}
        }
    }

    fn handle_send_data(&mut self, now: Instant, encap: &Encapsulation<'_>) {
        let header = encap.header;
        let (key, message) = match SendData::decode(&encap.data) {
            Ok(send) if header.command == Command::SendUnitData => {
                match send.cpf.connected_data() {
                    Some(c) => (Key::Sequence(c.sequence), Ok(c.data.to_vec())),
                    None => return,
                }
            }
            Ok(send) => (
                Key::Context(u64::from_le_bytes(header.sender_context)),
                send.cpf
                    .unconnected_data()
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| "SendRRData reply without unconnected data".to_string()),
            ),
            Err(e) if header.command == Command::SendRRData => (
                Key::Context(u64::from_le_bytes(header.sender_context)),
                Err(e.to_string()),
            ),
            Err(_) => return,
        };
        let Some(index) = self.in_flight.iter().position(|t| t.key == key) else {
            self.stats.unmatched += 1;
            return;
        };
        let tx = self.in_flight.swap_remove(index);
        let message = if header.status != 0 {
            Err(LostReason::Encapsulation(header.status))
        } else {
            message.map_err(LostReason::Protocol)
        };
        match tx.kind {
            TxKind::Ops { parts, msp } => self.handle_ops_reply(parts, msp, message),
            TxKind::ForwardOpen { large, size } => {
                self.handle_forward_open(now, large, size, message)
            }
            TxKind::ForwardClose => self.setup_deadline = None,
        }
    }

    fn handle_forward_open(
        &mut self,
        now: Instant,
        large: bool,
        size: u16,
        message: Result<Vec<u8>, LostReason>,
    ) {
        let reply = match message {
            Ok(bytes) => match MessageRouterReply::decode(&bytes) {
                Ok(r) => r.into_owned(),
                Err(e) => return self.fail(LostReason::Protocol(e.to_string())),
            },
            Err(why) => return self.fail(why),
        };
        if !reply.general_status.is_success() {
            // A device that does not know Large Forward Open: fall back to the largest
            // small connection.
            if large && reply.general_status == GeneralStatus::SERVICE_NOT_SUPPORTED {
                return self.send_forward_open(now, MAX_SMALL_CONNECTION_SIZE);
            }
            // Our connection triple is still in use: the previous connection dropped
            // without the target noticing (it keeps the CIP connection until its own
            // timeout). Ask again as a new connection, with the next serial.
            let in_use = reply.general_status == GeneralStatus::CONNECTION_FAILURE
                && reply.additional_status.first()
                    == Some(&ConnectionManagerStatus::CONNECTION_IN_USE.0);
            if in_use && self.duplicate_retries < MAX_DUPLICATE_FORWARD_OPEN_RETRIES {
                self.duplicate_retries += 1;
                self.triple.connection_serial = self.triple.connection_serial.wrapping_add(1);
                self.t_o_connection_id = self.t_o_connection_id.wrapping_add(1);
                return self.send_forward_open(now, size);
            }
            return self.fail(LostReason::ForwardOpenRefused(CipStatus {
                general: reply.general_status,
                additional: reply.additional_status,
            }));
        }
        match ForwardOpenReply::decode(&reply.data) {
            Ok(fo) => {
                self.o_t_connection_id = Some(fo.o_t_connection_id);
                self.connection_size = size;
                if self.phase == Phase::Opening {
                    self.phase = Phase::Ready;
                }
                // (Closing already: the next pump Forward Closes it.)
                self.setup_deadline = None;
                self.events.push_back(ClientEvent::Connected {
                    o_t_connection_id: fo.o_t_connection_id,
                    size,
                    large,
                });
            }
            Err(e) => self.fail(LostReason::Protocol(e.to_string())),
        }
    }

    fn handle_ops_reply(
        &mut self,
        parts: Vec<OpId>,
        msp: bool,
        message: Result<Vec<u8>, LostReason>,
    ) {
        let bytes = match message {
            Ok(b) => b,
            Err(why) => {
                for id in parts {
                    if self.ops.remove(&id).is_some() {
                        self.lose(id, why.clone());
                    }
                }
                return;
            }
        };
        let reply = match MessageRouterReply::decode(&bytes) {
            Ok(r) => r,
            Err(e) => {
                for id in parts {
                    if self.ops.remove(&id).is_some() {
                        self.lose(id, LostReason::Protocol(e.to_string()));
                    }
                }
                return;
            }
        };
        if !msp {
            if let Some(&id) = parts.first() {
                self.handle_op_reply(id, &reply, false);
            }
            return;
        }
        let embedded = (reply.service == service::MULTIPLE_SERVICE_PACKET | service::REPLY)
            .then(|| MultipleServiceReply::decode(&reply.data).ok())
            .flatten()
            .filter(|m| m.replies.len() == parts.len());
        match embedded {
            Some(m) => {
                for (id, r) in parts.into_iter().zip(m.replies.iter()) {
                    self.handle_op_reply(id, r, true);
                }
            }
            // The packet as a whole failed (routing, or an unsupported service): every
            // operation gets its status.
            None if !reply.general_status.is_ok_or_partial() => {
                // Too large as a whole: each is retried on its own.
                let retry = reply.general_status == GeneralStatus::REPLY_DATA_TOO_LARGE;
                for id in parts {
                    self.handle_op_reply(id, &reply, retry);
                }
            }
            None => {
                for id in parts {
                    if self.ops.remove(&id).is_some() {
                        self.lose(
                            id,
                            LostReason::Protocol("malformed Multiple Service Packet reply".into()),
                        );
                    }
                }
            }
        }
    }

    /// One operation's reply: finished, or the next fragment queued.
    fn handle_op_reply(&mut self, id: OpId, reply: &MessageRouterReply<'_>, in_msp: bool) {
        let Some(mut state) = self.ops.remove(&id) else {
            return; // timed out meanwhile
        };
        let status = reply.general_status;
        // The replies before it in the packet took the room: try again on its own.
        if in_msp && status == GeneralStatus::REPLY_DATA_TOO_LARGE && !state.solo {
            state.solo = true;
            self.ops.insert(id, state);
            self.ready.push_front(id);
            return;
        }
        let failure = |reply: &MessageRouterReply<'_>| CipStatus {
            general: reply.general_status,
            additional: reply.additional_status.clone(),
        };
        match state.op.method {
            Method::Read if status.is_success() || status == GeneralStatus::PARTIAL_TRANSFER => {
                let data = match ReadTagReply::decode(&reply.data) {
                    Ok(d) => d,
                    Err(e) => return self.lose(id, LostReason::Protocol(e.to_string())),
                };
                if state.tag_type.is_some_and(|t| t != data.tag_type) {
                    return self.lose(
                        id,
                        LostReason::Protocol("the type changed between fragments".into()),
                    );
                }
                state.tag_type = Some(data.tag_type);
                state.data.extend_from_slice(&data.data);
                if status == GeneralStatus::PARTIAL_TRANSFER {
                    let Some(next) = u32::try_from(data.data.len())
                        .ok()
                        .filter(|n| *n > 0)
                        .and_then(|n| state.offset.checked_add(n))
                    else {
                        return self.lose(
                            id,
                            LostReason::Protocol("partial read reply without data".into()),
                        );
                    };
                    state.offset = next;
                    state.fragmented = true;
                    self.ops.insert(id, state);
                    self.ready.push_front(id);
                    return;
                }
                let mut r = Reader::new(&state.data);
                match Values::decode(data.tag_type, Count::All, &mut r) {
                    Ok(v) => self.reply(id, Ok(Value::Values(v))),
                    Err(e) => self.lose(id, LostReason::Protocol(e.to_string())),
                }
            }
            Method::Write if status.is_success() => {
                let next = usize::try_from(state.offset)
                    .unwrap_or(usize::MAX)
                    .saturating_add(state.sent);
                if state.sent > 0 && next < state.data.len() {
                    state.offset = u32::try_from(next).unwrap_or(u32::MAX);
                    state.fragmented = true;
                    self.ops.insert(id, state);
                    self.ready.push_front(id);
                    return;
                }
                self.reply(id, Ok(Value::Written));
            }
            Method::ListTags
                if status.is_success() || status == GeneralStatus::PARTIAL_TRANSFER =>
            {
                let page =
                    match GetInstanceAttributeListReply::decode(&reply.data, &LIST_TAGS_ATTRIBUTES)
                    {
                        Ok(p) => p,
                        Err(e) => return self.lose(id, LostReason::Protocol(e.to_string())),
                    };
                let last = page.instances.last().map(|i| i.instance_id);
                state
                    .symbols
                    .extend(page.instances.iter().map(|i| SymbolEntry {
                        instance: i.instance_id,
                        name: i.name().unwrap_or_default().to_string(),
                        symbol_type: i.symbol_type().unwrap_or(SymbolType(0)),
                        dimensions: i.dimensions().unwrap_or_default(),
                    }));
                if status == GeneralStatus::PARTIAL_TRANSFER {
                    // Continue after the last instance; a page without one would loop.
                    let Some(next) = last
                        .and_then(|l| l.checked_add(1))
                        .filter(|n| *n > state.offset)
                    else {
                        return self.lose(
                            id,
                            LostReason::Protocol("partial tag list without progress".into()),
                        );
                    };
                    state.offset = next;
                    self.ops.insert(id, state);
                    self.ready.push_front(id);
                    return;
                }
                self.reply(id, Ok(Value::Symbols(state.symbols)));
            }
            Method::ReadTemplate if state.template.is_none() && status.is_success() => {
                match TemplateAttributes::decode(&reply.data) {
                    Ok(a) if a.definition_size.is_some() && a.member_count.is_some() => {
                        state.template = Some(a);
                        state.offset = 0;
                        self.ops.insert(id, state);
                        self.ready.push_front(id);
                    }
                    Ok(_) => self.lose(
                        id,
                        LostReason::Protocol("template attributes missing".into()),
                    ),
                    Err(e) => self.lose(id, LostReason::Protocol(e.to_string())),
                }
            }
            Method::ReadTemplate
                if status.is_success() || status == GeneralStatus::PARTIAL_TRANSFER =>
            {
                state.data.extend_from_slice(&reply.data);
                if status == GeneralStatus::PARTIAL_TRANSFER {
                    let Some(next) = u32::try_from(reply.data.len())
                        .ok()
                        .filter(|n| *n > 0)
                        .and_then(|n| state.offset.checked_add(n))
                    else {
                        return self.lose(
                            id,
                            LostReason::Protocol("partial template read without data".into()),
                        );
                    };
                    state.offset = next;
                    self.ops.insert(id, state);
                    self.ready.push_front(id);
                    return;
                }
                let attributes = state.template.unwrap_or_default();
                match TemplateDefinition::decode(&state.data, attributes.member_count.unwrap_or(0))
                {
                    Ok(def) => self.reply(
                        id,
                        Ok(Value::Template(Template {
                            handle: attributes.structure_handle.unwrap_or(0),
                            structure_size: attributes.structure_size.unwrap_or(0),
                            name: def.name.to_string(),
                            members: def
                                .members
                                .iter()
                                .map(|m| TemplateMemberInfo {
                                    name: m.name.to_string(),
                                    info: m.info,
                                    symbol_type: SymbolType(m.type_code),
                                    offset: m.offset,
                                })
                                .collect(),
                        })),
                    ),
                    Err(e) => self.lose(id, LostReason::Protocol(e.to_string())),
                }
            }
            Method::SetAttributeSingle if status.is_success() => self.reply(id, Ok(Value::Written)),
            Method::GetAttributeSingle | Method::GetAttributesAll if status.is_success() => {
                self.reply(id, Ok(Value::Data(reply.data.to_vec())))
            }
            _ => self.reply(id, Err(failure(reply))),
        }
    }
}

/// A `ListIdentity` or `ListServices` request, as sent by UDP (often broadcast, cpppo's
/// `-i`/`-b`) or TCP without a session: appends the 24-byte frame to `out`, with
/// `context` as its sender context.
pub fn list_request(command: Command, context: u64, out: &mut Vec<u8>) {
    Header::new(command, 0, context.to_le_bytes()).encode(out);
}

/// What a `ListIdentity` or `ListServices` reply datagram says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListReply {
    /// The sender context the reply echoes.
    pub context: u64,
    /// The identities (ListIdentity).
    pub identities: Vec<Identity<'static>>,
    /// The services (ListServices).
    pub services: Vec<crate::enip::cpf::Service<'static>>,
}

/// Decode one reply datagram to [`list_request`]: a whole encapsulation frame whose
/// status is success and whose data is a Common Packet Format.
pub fn decode_list_reply(datagram: &[u8]) -> Result<ListReply, crate::wire::DecodeError> {
    let (frame, _) = Encapsulation::decode(datagram)?;
    if frame.header.status != 0 {
        return Err(crate::wire::DecodeError::Invalid {
            field: "encapsulation.status",
            offset: 8,
            reason: format!("status 0x{:04X}", frame.header.status).into(),
        });
    }
    let cpf = Cpf::decode(&frame.data)?;
    Ok(ListReply {
        context: u64::from_le_bytes(frame.header.sender_context),
        identities: cpf.identities().map(|i| i.clone().into_owned()).collect(),
        services: cpf.services().map(|s| s.clone().into_owned()).collect(),
    })
}

/// The Message Router, `@2/1`.
fn message_router_path() -> Epath<'static> {
    Epath::from_segments(&[
        Segment::Class(u32::from(class::MESSAGE_ROUTER)),
        Segment::Instance(1),
    ])
    .unwrap_or(Epath::EMPTY)
}

/// The Connection Manager, `@6/1`.
fn connection_manager_path() -> Epath<'static> {
    Epath::from_segments(&[
        Segment::Class(u32::from(class::CONNECTION_MANAGER)),
        Segment::Instance(1),
    ])
    .unwrap_or(Epath::EMPTY)
}

/// So the engine's size limits stay within one encapsulation frame.
const _: () = assert!(MAX_FRAME_LEN > UNCONNECTED_REPLY_BUDGET);
