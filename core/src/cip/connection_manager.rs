//! The Connection Manager object (class 0x06): Unconnected Send (routing a request
//! through a path of ports), Forward Open / Large Forward Open (establishing a
//! connection for connected explicit messaging or I/O), and Forward Close.
//!
//! Each request type here is the *data* of a Message Router request addressed to
//! class 0x06 instance 1; each reply type is the data of the matching Message Router
//! reply (success or failure is told by the reply's general status).
//!
//! In scope: the wire layouts and the bit fields of the network connection parameters
//! and transport class/trigger. Out of scope: connection state, timeouts and ids (the
//! server and client engines).

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::cip::epath::Epath;
use crate::cip::message_router::{
    decode_body, decode_body_exact, padded_len, put_path_u8, read_path, service,
    MessageRouterReply, MessageRouterRequest,
};
use crate::cip::status::GeneralStatus;
use crate::wire::{DecodeResult, Encode, Reader};

/// The identity of a connection as its originator names it: connection serial number,
/// originator vendor id and originator serial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectionTriple {
    /// Connection serial number.
    pub connection_serial: u16,
    /// Originator vendor id.
    pub originator_vendor_id: u16,
    /// Originator serial number.
    pub originator_serial: u32,
}

impl ConnectionTriple {
    fn read(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(ConnectionTriple {
            connection_serial: r.u16_le("connection_manager.connection_serial")?,
            originator_vendor_id: r.u16_le("connection_manager.originator_vendor_id")?,
            originator_serial: r.u32_le("connection_manager.originator_serial")?,
        })
    }
}

impl Encode for ConnectionTriple {
    fn encoded_len(&self) -> usize {
        8
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16_le(self.connection_serial);
        out.put_u16_le(self.originator_vendor_id);
        out.put_u32_le(self.originator_serial);
    }
}

/// Unconnected Send (0x52 to the Connection Manager) request data: an embedded request
/// and the route path to the device that should execute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnconnectedSend<'a> {
    /// Priority (bit 4) and time tick (bits 0-3): a tick is `2^tick` milliseconds.
    pub priority_time_tick: u8,
    /// Timeout in ticks.
    pub timeout_ticks: u8,
    /// The embedded Message Router request.
    #[serde(borrow)]
    pub request: MessageRouterRequest<'a>,
    /// The route path (port segments), e.g. `01 00` for backplane slot 0.
    #[serde(borrow)]
    pub route_path: Epath<'a>,
}

impl<'a> UnconnectedSend<'a> {
    /// Decode request data exactly (trailing bytes are an error).
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "unconnected_send.end", Self::read)
    }

    /// Decode request data, returning any bytes after the route path.
    pub fn decode_with_trailing(data: &'a [u8]) -> DecodeResult<(Self, &'a [u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let priority_time_tick = r.u8("unconnected_send.priority_time_tick")?;
        let timeout_ticks = r.u8("unconnected_send.timeout_ticks")?;
        let size = usize::from(r.u16_le("unconnected_send.request_size")?);
        let mut embedded = r.sub(size, "unconnected_send.request")?;
        let request = MessageRouterRequest::read(&mut embedded)?;
        if size % 2 == 1 {
            r.u8("unconnected_send.pad")?;
        }
        let words = r.u8("unconnected_send.route_path_size")?;
        r.u8("unconnected_send.reserved")?;
        let route_path = read_path(r, words, "unconnected_send.route_path")?;
        Ok(UnconnectedSend {
            priority_time_tick,
            timeout_ticks,
            request,
            route_path,
        })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> UnconnectedSend<'static> {
        UnconnectedSend {
            priority_time_tick: self.priority_time_tick,
            timeout_ticks: self.timeout_ticks,
            request: self.request.into_owned(),
            route_path: self.route_path.into_owned(),
        }
    }
}

impl Encode for UnconnectedSend<'_> {
    fn encoded_len(&self) -> usize {
        let size = self.request.encoded_len();
        4 + size + size % 2 + 2 + padded_len(&self.route_path)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        let size = self.request.encoded_len();
        out.put_u8(self.priority_time_tick);
        out.put_u8(self.timeout_ticks);
        out.put_u16_le(u16::try_from(size).unwrap_or(u16::MAX));
        self.request.encode(out);
        if size % 2 == 1 {
            out.put_u8(0);
        }
        put_path_u8(out, &self.route_path, true);
    }
}

/// The remaining path size a failed Unconnected Send reply carries (routing errors
/// only), or `None` for a success or a failure without it.
///
/// A *successful* Unconnected Send reply is just the embedded request's reply (its
/// service is the embedded service with the reply bit, not 0xD2).
pub fn unconnected_send_remaining_path_size(reply: &MessageRouterReply<'_>) -> Option<u8> {
    if reply.service == service::UNCONNECTED_SEND | service::REPLY
        && !reply.general_status.is_success()
    {
        reply.data.first().copied()
    } else {
        None
    }
}

/// A failed Unconnected Send reply: `status`, extended status words, and the number of
/// route path words not yet consumed.
pub fn unconnected_send_failure(
    status: GeneralStatus,
    additional: &[u16],
    remaining_path_size: u8,
) -> MessageRouterReply<'static> {
    let mut reply = MessageRouterReply::error(service::UNCONNECTED_SEND, status, additional);
    reply.data = Cow::Owned(vec![remaining_path_size]);
    reply
}

/// Connection type values of the network connection parameters.
pub mod connection_type {
    /// Null (used to configure without a connection).
    pub const NULL: u8 = 0;
    /// Multicast.
    pub const MULTICAST: u8 = 1;
    /// Point to point.
    pub const POINT_TO_POINT: u8 = 2;
}

/// Priority values of the network connection parameters.
pub mod connection_priority {
    /// Low priority.
    pub const LOW: u8 = 0;
    /// High priority.
    pub const HIGH: u8 = 1;
    /// Scheduled.
    pub const SCHEDULED: u8 = 2;
    /// Urgent.
    pub const URGENT: u8 = 3;
}

/// Network connection parameters of one direction of a Forward Open: 16 bits for
/// Forward Open, 32 bits for Large Forward Open (same fields, wider size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkConnectionParameters {
    /// The raw bits (only the low 16 are used when not `large`).
    pub raw: u32,
    /// True for the 32-bit Large Forward Open form.
    pub large: bool,
}

impl NetworkConnectionParameters {
    /// Build parameters from their fields. `size` is the connection size in bytes
    /// (at most 511 in the 16-bit form, 65535 in the 32-bit form; excess bits are cut).
    pub fn new(
        large: bool,
        redundant_owner: bool,
        connection_type: u8,
        priority: u8,
        variable: bool,
        size: u16,
    ) -> Self {
        let shift = if large { 16 } else { 0 };
        let size_mask: u32 = if large { 0xFFFF } else { 0x01FF };
        let raw = (u32::from(redundant_owner) << (15 + shift))
            | (u32::from(connection_type & 3) << (13 + shift))
            | (u32::from(priority & 3) << (10 + shift))
            | (u32::from(variable) << (9 + shift))
            | (u32::from(size) & size_mask);
        NetworkConnectionParameters { raw, large }
    }

    fn shift(self) -> u32 {
        if self.large {
            16
        } else {
            0
        }
    }

    /// Redundant owner bit.
    pub fn redundant_owner(self) -> bool {
        (self.raw >> (15 + self.shift())) & 1 == 1
    }

    /// Connection type (see [`connection_type`]).
    pub fn connection_type(self) -> u8 {
        ((self.raw >> (13 + self.shift())) & 3) as u8
    }

    /// Priority (see [`connection_priority`]).
    pub fn priority(self) -> u8 {
        ((self.raw >> (10 + self.shift())) & 3) as u8
    }

    /// True for a variable-size connection, false for fixed.
    pub fn variable(self) -> bool {
        (self.raw >> (9 + self.shift())) & 1 == 1
    }

    /// Connection size in bytes.
    pub fn size(self) -> u16 {
        let mask = if self.large { 0xFFFF } else { 0x01FF };
        (self.raw & mask) as u16
    }
}

/// Transport class and trigger byte of a Forward Open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransportClassTrigger(pub u8);

impl TransportClassTrigger {
    /// Class 3 explicit messaging, application-object triggered, server direction
    /// (0xA3), as every Logix client uses for connected messaging.
    pub const CLASS_3_SERVER: TransportClassTrigger = TransportClassTrigger(0xA3);

    /// True when the direction bit says this end is the server.
    pub fn server(self) -> bool {
        self.0 & 0x80 != 0
    }

    /// Production trigger: 0 cyclic, 1 change of state, 2 application object.
    pub fn trigger(self) -> u8 {
        (self.0 >> 4) & 7
    }

    /// Transport class (0-3).
    pub fn class(self) -> u8 {
        self.0 & 0x0F
    }
}

/// Forward Open (0x54) or Large Forward Open (0x5B) request data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardOpenRequest<'a> {
    /// True for Large Forward Open (32-bit network connection parameters).
    pub large: bool,
    /// Priority (bit 4) and time tick (bits 0-3).
    pub priority_time_tick: u8,
    /// Timeout in ticks.
    pub timeout_ticks: u8,
    /// O->T network connection id (chosen by the target; 0 in a request usually).
    pub o_t_connection_id: u32,
    /// T->O network connection id (chosen by the originator).
    pub t_o_connection_id: u32,
    /// The connection's identity.
    pub triple: ConnectionTriple,
    /// Connection timeout multiplier (timeout = RPI * 4 << multiplier).
    pub timeout_multiplier: u8,
    /// O->T requested packet interval, microseconds.
    pub o_t_rpi: u32,
    /// O->T network connection parameters (raw; see [`Self::o_t_parameters`]).
    pub o_t_parameters: u32,
    /// T->O requested packet interval, microseconds.
    pub t_o_rpi: u32,
    /// T->O network connection parameters (raw; see [`Self::t_o_parameters`]).
    pub t_o_parameters: u32,
    /// Transport class and trigger.
    pub transport_class_trigger: TransportClassTrigger,
    /// Connection path (e.g. port/slot, then Message Router class 2 instance 1).
    #[serde(borrow)]
    pub connection_path: Epath<'a>,
}

impl<'a> ForwardOpenRequest<'a> {
    /// The service code: Forward Open or Large Forward Open.
    pub fn service(&self) -> u8 {
        if self.large {
            service::LARGE_FORWARD_OPEN
        } else {
            service::FORWARD_OPEN
        }
    }

    /// O->T network connection parameters, decoded.
    pub fn o_t_parameters(&self) -> NetworkConnectionParameters {
        NetworkConnectionParameters {
            raw: self.o_t_parameters,
            large: self.large,
        }
    }

    /// T->O network connection parameters, decoded.
    pub fn t_o_parameters(&self) -> NetworkConnectionParameters {
        NetworkConnectionParameters {
            raw: self.t_o_parameters,
            large: self.large,
        }
    }

    /// Decode request data exactly; `large` for Large Forward Open.
    pub fn decode(data: &'a [u8], large: bool) -> DecodeResult<Self> {
        decode_body_exact(data, "forward_open.end", |r| Self::read(r, large))
    }

    /// Decode request data, returning any bytes after the connection path.
    pub fn decode_with_trailing(data: &'a [u8], large: bool) -> DecodeResult<(Self, &'a [u8])> {
        decode_body(data, |r| Self::read(r, large))
    }

    fn read(r: &mut Reader<'a>, large: bool) -> DecodeResult<Self> {
        let params = |r: &mut Reader<'a>| -> DecodeResult<u32> {
            if large {
                r.u32_le("forward_open.network_connection_parameters")
            } else {
                r.u16_le("forward_open.network_connection_parameters")
                    .map(u32::from)
            }
        };
        let priority_time_tick = r.u8("forward_open.priority_time_tick")?;
        let timeout_ticks = r.u8("forward_open.timeout_ticks")?;
        let o_t_connection_id = r.u32_le("forward_open.o_t_connection_id")?;
        let t_o_connection_id = r.u32_le("forward_open.t_o_connection_id")?;
        let triple = ConnectionTriple::read(r)?;
        let timeout_multiplier = r.u8("forward_open.timeout_multiplier")?;
        r.skip(3, "forward_open.reserved")?;
        let o_t_rpi = r.u32_le("forward_open.o_t_rpi")?;
        let o_t_parameters = params(r)?;
        let t_o_rpi = r.u32_le("forward_open.t_o_rpi")?;
        let t_o_parameters = params(r)?;
        let transport_class_trigger = TransportClassTrigger(r.u8("forward_open.transport")?);
        let words = r.u8("forward_open.connection_path_size")?;
        let connection_path = read_path(r, words, "forward_open.connection_path")?;
        Ok(ForwardOpenRequest {
            large,
            priority_time_tick,
            timeout_ticks,
            o_t_connection_id,
            t_o_connection_id,
            triple,
            timeout_multiplier,
            o_t_rpi,
            o_t_parameters,
            t_o_rpi,
            t_o_parameters,
            transport_class_trigger,
            connection_path,
        })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> ForwardOpenRequest<'static> {
        ForwardOpenRequest {
            connection_path: self.connection_path.into_owned(),
            ..self
        }
    }
}

impl Encode for ForwardOpenRequest<'_> {
    fn encoded_len(&self) -> usize {
        let params = if self.large { 4 } else { 2 };
        32 + 2 * params + padded_len(&self.connection_path)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        let params = |out: &mut B, raw: u32| {
            if self.large {
                out.put_u32_le(raw);
            } else {
                out.put_u16_le(raw as u16);
            }
        };
        out.put_u8(self.priority_time_tick);
        out.put_u8(self.timeout_ticks);
        out.put_u32_le(self.o_t_connection_id);
        out.put_u32_le(self.t_o_connection_id);
        self.triple.encode(out);
        out.put_u8(self.timeout_multiplier);
        out.put_slice(&[0, 0, 0]);
        out.put_u32_le(self.o_t_rpi);
        params(out, self.o_t_parameters);
        out.put_u32_le(self.t_o_rpi);
        params(out, self.t_o_parameters);
        out.put_u8(self.transport_class_trigger.0);
        put_path_u8(out, &self.connection_path, false);
    }
}

fn read_application_reply<'a>(r: &mut Reader<'a>, layer: Layer) -> DecodeResult<&'a [u8]> {
    let words = r.u8(layer.field("application_reply_size"))?;
    r.u8(layer.field("reserved"))?;
    r.take(usize::from(words) * 2, layer.field("application_reply"))
}

fn put_application_reply<B: BufMut>(out: &mut B, data: &[u8]) {
    let words = data.len().div_ceil(2).min(255);
    out.put_u8(words as u8);
    out.put_u8(0);
    let bytes = data.get(..data.len().min(510)).unwrap_or_default();
    out.put_slice(bytes);
    if bytes.len() % 2 == 1 {
        out.put_u8(0);
    }
}

fn application_reply_len(data: &[u8]) -> usize {
    2 + data.len().min(510).div_ceil(2) * 2
}

#[derive(Clone, Copy)]
enum Layer {
    Open,
    Close,
}

impl Layer {
    fn field(self, name: &'static str) -> &'static str {
        match (self, name) {
            (Layer::Open, "application_reply_size") => "forward_open.application_reply_size",
            (Layer::Open, "reserved") => "forward_open.reserved",
            (Layer::Open, _) => "forward_open.application_reply",
            (Layer::Close, "application_reply_size") => "forward_close.application_reply_size",
            (Layer::Close, "reserved") => "forward_close.reserved",
            (Layer::Close, _) => "forward_close.application_reply",
        }
    }
}

/// Successful Forward Open / Large Forward Open reply data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardOpenReply<'a> {
    /// O->T network connection id (chosen by the target).
    pub o_t_connection_id: u32,
    /// T->O network connection id.
    pub t_o_connection_id: u32,
    /// The connection's identity, echoed.
    pub triple: ConnectionTriple,
    /// O->T actual packet interval, microseconds.
    pub o_t_api: u32,
    /// T->O actual packet interval, microseconds.
    pub t_o_api: u32,
    /// Application reply (a whole number of words; usually empty).
    #[serde(borrow)]
    pub application_reply: Cow<'a, [u8]>,
}

impl<'a> ForwardOpenReply<'a> {
    /// Decode successful reply data.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "forward_open.end", |r| {
            Ok(ForwardOpenReply {
                o_t_connection_id: r.u32_le("forward_open.o_t_connection_id")?,
                t_o_connection_id: r.u32_le("forward_open.t_o_connection_id")?,
                triple: ConnectionTriple::read(r)?,
                o_t_api: r.u32_le("forward_open.o_t_api")?,
                t_o_api: r.u32_le("forward_open.t_o_api")?,
                application_reply: Cow::Borrowed(read_application_reply(r, Layer::Open)?),
            })
        })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> ForwardOpenReply<'static> {
        ForwardOpenReply {
            application_reply: Cow::Owned(self.application_reply.into_owned()),
            ..self
        }
    }
}

impl Encode for ForwardOpenReply<'_> {
    fn encoded_len(&self) -> usize {
        24 + application_reply_len(&self.application_reply)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.o_t_connection_id);
        out.put_u32_le(self.t_o_connection_id);
        self.triple.encode(out);
        out.put_u32_le(self.o_t_api);
        out.put_u32_le(self.t_o_api);
        put_application_reply(out, &self.application_reply);
    }
}

/// Unsuccessful Forward Open / Large Forward Open / Forward Close reply data: the
/// connection triple and the remaining path size. Devices abbreviate it: cpppo's tests
/// hold replies without the remaining path size, and a ControlLogix Forward Close
/// failure with no data at all, so both parts are optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardOpenFailure {
    /// The connection's identity, echoed.
    pub triple: Option<ConnectionTriple>,
    /// Path words not consumed when the failure was found (only with a triple).
    pub remaining_path_size: Option<u8>,
}

/// Unsuccessful Forward Close reply data (same layout as a failed Forward Open).
pub type ForwardCloseFailure = ForwardOpenFailure;

impl ForwardOpenFailure {
    /// Decode unsuccessful reply data.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "forward_open.end", |r| {
            if r.is_empty() {
                return Ok(ForwardOpenFailure {
                    triple: None,
                    remaining_path_size: None,
                });
            }
            let triple = Some(ConnectionTriple::read(r)?);
            let remaining_path_size = if r.is_empty() {
                None
            } else {
                let size = r.u8("forward_open.remaining_path_size")?;
                r.u8("forward_open.reserved")?;
                Some(size)
            };
            Ok(ForwardOpenFailure {
                triple,
                remaining_path_size,
            })
        })
    }
}

impl Encode for ForwardOpenFailure {
    fn encoded_len(&self) -> usize {
        match self.triple {
            None => 0,
            Some(_) => {
                8 + if self.remaining_path_size.is_some() {
                    2
                } else {
                    0
                }
            }
        }
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        if let Some(triple) = self.triple {
            triple.encode(out);
            if let Some(size) = self.remaining_path_size {
                out.put_u8(size);
                out.put_u8(0);
            }
        }
    }
}

/// Forward Close (0x4E to the Connection Manager) request data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardCloseRequest<'a> {
    /// Priority (bit 4) and time tick (bits 0-3).
    pub priority_time_tick: u8,
    /// Timeout in ticks.
    pub timeout_ticks: u8,
    /// The identity of the connection to close.
    pub triple: ConnectionTriple,
    /// The connection path, as in the Forward Open.
    #[serde(borrow)]
    pub connection_path: Epath<'a>,
}

impl<'a> ForwardCloseRequest<'a> {
    /// Decode request data exactly.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "forward_close.end", Self::read)
    }

    /// Decode request data, returning any bytes after the connection path.
    pub fn decode_with_trailing(data: &'a [u8]) -> DecodeResult<(Self, &'a [u8])> {
        decode_body(data, Self::read)
    }

    fn read(r: &mut Reader<'a>) -> DecodeResult<Self> {
        let priority_time_tick = r.u8("forward_close.priority_time_tick")?;
        let timeout_ticks = r.u8("forward_close.timeout_ticks")?;
        let triple = ConnectionTriple::read(r)?;
        let words = r.u8("forward_close.connection_path_size")?;
        r.u8("forward_close.reserved")?;
        let connection_path = read_path(r, words, "forward_close.connection_path")?;
        Ok(ForwardCloseRequest {
            priority_time_tick,
            timeout_ticks,
            triple,
            connection_path,
        })
    }

    /// A copy that owns its bytes.
    pub fn into_owned(self) -> ForwardCloseRequest<'static> {
        ForwardCloseRequest {
            connection_path: self.connection_path.into_owned(),
            ..self
        }
    }
}

impl Encode for ForwardCloseRequest<'_> {
    fn encoded_len(&self) -> usize {
        12 + padded_len(&self.connection_path)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.priority_time_tick);
        out.put_u8(self.timeout_ticks);
        self.triple.encode(out);
        put_path_u8(out, &self.connection_path, true);
    }
}

/// Successful Forward Close reply data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardCloseReply<'a> {
    /// The identity of the closed connection, echoed.
    pub triple: ConnectionTriple,
    /// Application reply (a whole number of words; usually empty).
    #[serde(borrow)]
    pub application_reply: Cow<'a, [u8]>,
}

impl<'a> ForwardCloseReply<'a> {
    /// Decode successful reply data.
    pub fn decode(data: &'a [u8]) -> DecodeResult<Self> {
        decode_body_exact(data, "forward_close.end", |r| {
            Ok(ForwardCloseReply {
                triple: ConnectionTriple::read(r)?,
                application_reply: Cow::Borrowed(read_application_reply(r, Layer::Close)?),
            })
        })
    }
}

impl Encode for ForwardCloseReply<'_> {
    fn encoded_len(&self) -> usize {
        8 + application_reply_len(&self.application_reply)
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        self.triple.encode(out);
        put_application_reply(out, &self.application_reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cip::logix::ReadTagFragmentedRequest;
    use crate::cip::message_router::tests::{mr_request, path};
    use crate::cip::message_router::{Request, Service};
    use proptest::prelude::*;

    // cpppo server/enip_test.py cpf_1 (Wireshark capture against a 1756-L61):
    // Unconnected Send of Read Tag Fragmented "SCADA", 20 elements from byte 2, route
    // path port 1 link 0.
    const US_READ_FRAG: &[u8] = &[
        0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x05, 0x9d, 0x10, 0x00, 0x52, 0x04, 0x91, 0x05, 0x53,
        0x43, 0x41, 0x44, 0x41, 0x00, 0x14, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    ];

    #[test]
    fn unconnected_send_from_a_capture() {
        let mr = MessageRouterRequest::decode(US_READ_FRAG).unwrap();
        assert_eq!(mr.kind(), Service::UnconnectedSend);
        let c = Request::decode(&mr).unwrap();
        assert!(c.trailing.is_empty());
        let Request::UnconnectedSend(us) = c.request else {
            panic!("not an Unconnected Send");
        };
        assert_eq!(us.priority_time_tick, 0x05);
        assert_eq!(us.timeout_ticks, 0x9d);
        assert_eq!(us.route_path.as_bytes(), &[0x01, 0x00]);
        assert_eq!(us.request.service, 0x52);
        assert_eq!(us.request.kind(), Service::ReadTagFragmented);
        let Request::ReadTagFragmented(rf) = Request::decode(&us.request).unwrap().request else {
            panic!("not a Read Tag Fragmented");
        };
        assert_eq!(
            rf,
            ReadTagFragmentedRequest {
                elements: 20,
                offset: 2
            }
        );
        assert_eq!(us.to_vec(), mr.data.as_ref());

        // An odd-sized embedded request is followed by a pad byte.
        let odd = UnconnectedSend {
            priority_time_tick: 0x0A,
            timeout_ticks: 0x0E,
            request: MessageRouterRequest::new(
                0x0E,
                Epath::from_vec(vec![0x20, 1, 0x24, 1]),
                vec![7],
            ),
            route_path: Epath::from_vec(vec![1, 0]),
        };
        let bytes = odd.to_vec();
        assert_eq!(
            bytes,
            [0x0A, 0x0E, 7, 0, 0x0E, 2, 0x20, 1, 0x24, 1, 7, 0, 1, 0, 1, 0]
        );
        assert_eq!(UnconnectedSend::decode(&bytes).unwrap(), odd);
    }

    #[test]
    fn unconnected_send_failure_carries_remaining_path() {
        let r = unconnected_send_failure(
            GeneralStatus::CONNECTION_FAILURE,
            &[ConnectionManagerStatus_INVALID_PORT],
            2,
        );
        let bytes = r.to_vec();
        assert_eq!(bytes, [0xD2, 0, 0x01, 1, 0x11, 0x03, 2]);
        let back = MessageRouterReply::decode(&bytes).unwrap();
        assert_eq!(unconnected_send_remaining_path_size(&back), Some(2));
        // cpppo enip_test.py unk_014_reply: a success is just the embedded reply.
        let ok = MessageRouterReply::decode(&[0xd2, 0, 0, 0, 0xc3, 0, 0x27, 0x80]).unwrap();
        assert_eq!(unconnected_send_remaining_path_size(&ok), None);
    }
    #[allow(non_upper_case_globals)]
    const ConnectionManagerStatus_INVALID_PORT: u16 =
        crate::cip::status::ConnectionManagerStatus::INVALID_PORT.0;

    // cpppo server/enip_test.py fwd_o01_request / fwd_o01_reply.
    const FWD_OPEN: &[u8] = &[
        0x54, 0x02, 0x20, 0x06, 0x24, 0x01, 0x07, 0xf9, 0x11, 0x00, 0x00, 0x80, 0x10, 0x00, 0xfe,
        0x80, 0x11, 0x00, 0x4d, 0x00, 0x0f, 0x7f, 0x3d, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12,
        0x7a, 0x00, 0xf4, 0x43, 0x00, 0x12, 0x7a, 0x00, 0xf4, 0x43, 0xa3, 0x03, 0x01, 0x00, 0x20,
        0x02, 0x24, 0x01,
    ];
    const FWD_OPEN_REPLY: &[u8] = &[
        0xd4, 0x00, 0x00, 0x00, 0x26, 0x40, 0xa3, 0xff, 0x10, 0x00, 0xfe, 0x80, 0x11, 0x00, 0x4d,
        0x00, 0x0f, 0x7f, 0x3d, 0x1e, 0x00, 0x12, 0x7a, 0x00, 0x00, 0x12, 0x7a, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn forward_open_from_cpppo() {
        let mr = MessageRouterRequest::decode(FWD_OPEN).unwrap();
        let Request::ForwardOpen(fo) = Request::decode(&mr).unwrap().request else {
            panic!("not a Forward Open");
        };
        assert!(!fo.large);
        assert_eq!(fo.service(), service::FORWARD_OPEN);
        assert_eq!((fo.priority_time_tick, fo.timeout_ticks), (0x07, 0xf9));
        assert_eq!(fo.o_t_connection_id, 0x8000_0011);
        assert_eq!(fo.t_o_connection_id, 0x80fe_0010);
        assert_eq!(
            fo.triple,
            ConnectionTriple {
                connection_serial: 0x0011,
                originator_vendor_id: 0x004d,
                originator_serial: 0x1e3d_7f0f
            }
        );
        assert_eq!(fo.timeout_multiplier, 0);
        assert_eq!((fo.o_t_rpi, fo.t_o_rpi), (8_000_000, 8_000_000));
        let p = fo.o_t_parameters();
        assert_eq!(p.raw, 0x43f4);
        assert!(!p.redundant_owner());
        assert_eq!(p.connection_type(), connection_type::POINT_TO_POINT);
        assert_eq!(p.priority(), connection_priority::LOW);
        assert!(p.variable());
        assert_eq!(p.size(), 500);
        assert_eq!(
            NetworkConnectionParameters::new(false, false, 2, 0, true, 500),
            p
        );
        assert_eq!(
            fo.transport_class_trigger,
            TransportClassTrigger::CLASS_3_SERVER
        );
        assert!(fo.transport_class_trigger.server());
        assert_eq!(fo.transport_class_trigger.trigger(), 2);
        assert_eq!(fo.transport_class_trigger.class(), 3);
        assert_eq!(fo.connection_path.as_bytes(), &[1, 0, 0x20, 2, 0x24, 1]);
        assert_eq!(fo.to_vec(), mr.data.as_ref());

        let rpy = MessageRouterReply::decode(FWD_OPEN_REPLY).unwrap();
        let ok = ForwardOpenReply::decode(&rpy.data).unwrap();
        assert_eq!(ok.o_t_connection_id, 0xffa3_4026);
        assert_eq!(ok.t_o_connection_id, 0x80fe_0010);
        assert_eq!(ok.triple, fo.triple);
        assert_eq!((ok.o_t_api, ok.t_o_api), (8_000_000, 8_000_000));
        assert!(ok.application_reply.is_empty());
        assert_eq!(ok.to_vec(), rpy.data.as_ref());
    }

    // cpppo server/enip_test.py: a MicroLogix Forward Open (mlx_0_request).
    #[test]
    fn forward_open_from_a_micrologix_client() {
        let data = [
            0x0a, 0x0e, 0x4f, 0xaf, 0x87, 0xf4, 0x06, 0xaf, 0x87, 0xf4, 0xb2, 0x55, 0x01, 0x00,
            0xc4, 0x8b, 0x4f, 0x40, 0x02, 0x00, 0x00, 0x00, 0xc0, 0xc6, 0x2d, 0x00, 0x02, 0x43,
            0xc0, 0xc6, 0x2d, 0x00, 0x02, 0x43, 0xa3, 0x02, 0x20, 0x02, 0x24, 0x01,
        ];
        let fo = ForwardOpenRequest::decode(&data, false).unwrap();
        assert_eq!(fo.triple.connection_serial, 0x55b2);
        assert_eq!(fo.triple.originator_serial, 0x404f_8bc4);
        assert_eq!(fo.timeout_multiplier, 2);
        assert_eq!(fo.o_t_rpi, 3_000_000);
        assert_eq!(fo.t_o_parameters().size(), 0x102);
        assert_eq!(fo.to_vec(), data);
    }

    // cpppo server/enip_test.py fwd_f01_reply, fwd_f01_reply_no_remain and
    // fwd_clo_reply_just_sts (a C*Logix Forward Close failure with no data).
    #[test]
    fn forward_open_and_close_failures() {
        let rpy = MessageRouterReply::decode(&[
            0xd4, 0x00, 0x01, 0x01, 0x11, 0x03, 0x00, 0x00, 0xff, 0xff, 0x78, 0x56, 0x34, 0x12,
            0x01, 0x00,
        ])
        .unwrap();
        assert_eq!(rpy.general_status, GeneralStatus::CONNECTION_FAILURE);
        assert_eq!(rpy.extended_status(), Some(0x0311));
        let f = ForwardOpenFailure::decode(&rpy.data).unwrap();
        assert_eq!(f.remaining_path_size, Some(1));
        let t = f.triple.unwrap();
        assert_eq!((t.connection_serial, t.originator_vendor_id), (0, 0xffff));
        assert_eq!(t.originator_serial, 0x1234_5678);
        assert_eq!(f.to_vec(), rpy.data.as_ref());

        let f = ForwardOpenFailure::decode(&rpy.data[..8]).unwrap();
        assert_eq!(f.remaining_path_size, None);
        assert!(f.triple.is_some());

        let rpy = MessageRouterReply::decode(&[0xce, 0x00, 0x01, 0x01, 0x00, 0x01]).unwrap();
        assert_eq!(rpy.extended_status(), Some(0x0100));
        let f: ForwardCloseFailure = ForwardOpenFailure::decode(&rpy.data).unwrap();
        assert_eq!(f.triple, None);
        assert_eq!(
            ForwardOpenFailure::decode(&[0; 9]).unwrap_err().field(),
            "forward_open.reserved"
        );
    }

    // cpppo server/enip_test.py fwd_c01_request.
    #[test]
    fn forward_close_from_cpppo() {
        let bytes = b"N\x02 \x06$\x01\x07\xf9\x01\x00M\x00\x0f\x7f=\x1e\x03\x00\x01\x00 \x02$\x01";
        let mr = MessageRouterRequest::decode(bytes).unwrap();
        assert_eq!(mr.kind(), Service::ForwardClose);
        let Request::ForwardClose(fc) = Request::decode(&mr).unwrap().request else {
            panic!("not a Forward Close");
        };
        assert_eq!(fc.triple.connection_serial, 1);
        assert_eq!(fc.triple.originator_vendor_id, 0x4d);
        assert_eq!(fc.triple.originator_serial, 0x1e3d_7f0f);
        assert_eq!(fc.connection_path.as_bytes(), &[1, 0, 0x20, 2, 0x24, 1]);
        assert_eq!(fc.to_vec(), mr.data.as_ref());
        let ok = ForwardCloseReply {
            triple: fc.triple,
            application_reply: Cow::Borrowed(&[]),
        };
        let bytes = ok.to_vec();
        assert_eq!(bytes, [1, 0, 0x4d, 0, 0x0f, 0x7f, 0x3d, 0x1e, 0, 0]);
        assert_eq!(ForwardCloseReply::decode(&bytes).unwrap(), ok);
    }

    fn triple() -> impl Strategy<Value = ConnectionTriple> {
        any::<(u16, u16, u32)>().prop_map(|(a, b, c)| ConnectionTriple {
            connection_serial: a,
            originator_vendor_id: b,
            originator_serial: c,
        })
    }

    fn words() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<[u8; 2]>(), 0..4).prop_map(|w| w.concat())
    }

    fn forward_open() -> impl Strategy<Value = ForwardOpenRequest<'static>> {
        (
            any::<bool>(),
            any::<(u8, u8, u32, u32, u8, u32, u32, u32, u32, u8)>(),
            triple(),
            path(),
        )
            .prop_map(|(large, f, triple, connection_path)| ForwardOpenRequest {
                large,
                priority_time_tick: f.0,
                timeout_ticks: f.1,
                o_t_connection_id: f.2,
                t_o_connection_id: f.3,
                triple,
                timeout_multiplier: f.4,
                o_t_rpi: f.5,
                o_t_parameters: if large { f.6 } else { f.6 & 0xFFFF },
                t_o_rpi: f.7,
                t_o_parameters: if large { f.8 } else { f.8 & 0xFFFF },
                transport_class_trigger: TransportClassTrigger(f.9),
                connection_path,
            })
    }

    proptest! {
        #[test]
        fn requests_round_trip(
            fo in forward_open(),
            us in (any::<(u8, u8)>(), mr_request(), path()),
            fc in (any::<(u8, u8)>(), triple(), path()),
        ) {
            let bytes = fo.to_vec();
            prop_assert_eq!(bytes.len(), fo.encoded_len());
            prop_assert_eq!(ForwardOpenRequest::decode(&bytes, fo.large).unwrap(), fo);

            let us = UnconnectedSend {
                priority_time_tick: us.0 .0,
                timeout_ticks: us.0 .1,
                request: us.1,
                route_path: us.2,
            };
            let bytes = us.to_vec();
            prop_assert_eq!(bytes.len(), us.encoded_len());
            prop_assert_eq!(UnconnectedSend::decode(&bytes).unwrap(), us);

            let fc = ForwardCloseRequest {
                priority_time_tick: fc.0 .0,
                timeout_ticks: fc.0 .1,
                triple: fc.1,
                connection_path: fc.2,
            };
            let bytes = fc.to_vec();
            prop_assert_eq!(bytes.len(), fc.encoded_len());
            prop_assert_eq!(ForwardCloseRequest::decode(&bytes).unwrap(), fc);
        }

        #[test]
        fn replies_round_trip(
            ids in any::<(u32, u32, u32, u32)>(),
            t in triple(),
            app in words(),
            remaining in any::<Option<u8>>(),
        ) {
            let ok = ForwardOpenReply {
                o_t_connection_id: ids.0,
                t_o_connection_id: ids.1,
                triple: t,
                o_t_api: ids.2,
                t_o_api: ids.3,
                application_reply: Cow::Owned(app.clone()),
            };
            let bytes = ok.to_vec();
            prop_assert_eq!(bytes.len(), ok.encoded_len());
            prop_assert_eq!(ForwardOpenReply::decode(&bytes).unwrap(), ok);
            let fail = ForwardOpenFailure { triple: Some(t), remaining_path_size: remaining };
            prop_assert_eq!(ForwardOpenFailure::decode(&fail.to_vec()).unwrap(), fail);
            let close = ForwardCloseReply { triple: t, application_reply: Cow::Owned(app) };
            let bytes = close.to_vec();
            prop_assert_eq!(bytes.len(), close.encoded_len());
            prop_assert_eq!(ForwardCloseReply::decode(&bytes).unwrap(), close);
        }

        #[test]
        fn network_parameters_fields_round_trip(
            large in any::<bool>(), owner in any::<bool>(), ty in 0u8..4, prio in 0u8..4,
            variable in any::<bool>(), size in any::<u16>(),
        ) {
            let p = NetworkConnectionParameters::new(large, owner, ty, prio, variable, size);
            prop_assert_eq!(p.redundant_owner(), owner);
            prop_assert_eq!(p.connection_type(), ty);
            prop_assert_eq!(p.priority(), prio);
            prop_assert_eq!(p.variable(), variable);
            prop_assert_eq!(p.size(), if large { size } else { size & 0x1FF });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = UnconnectedSend::decode_with_trailing(&bytes);
            let _ = ForwardOpenRequest::decode_with_trailing(&bytes, false);
            let _ = ForwardOpenRequest::decode_with_trailing(&bytes, true);
            let _ = ForwardOpenReply::decode(&bytes);
            let _ = ForwardOpenFailure::decode(&bytes);
            let _ = ForwardCloseRequest::decode_with_trailing(&bytes);
            let _ = ForwardCloseReply::decode(&bytes);
        }
    }
}
