//! What a CIP target device offers to the EtherNet/IP layer that carries its requests.
//!
//! The EtherNet/IP server engine ([`crate::enip`]) owns sessions, the Common Packet
//! Format, the Connection Manager (Unconnected Send, Forward Open/Close) and connected
//! sequence counts; everything addressed *to an object* of the device (Identity, Message
//! Router, Logix tags, Symbol and Template objects...) is handed to a [`CipDevice`] as one
//! Message Router request, and its reply goes back the way the request came.

use std::time::Instant;

use crate::cip::message_router::{MessageRouterReply, MessageRouterRequest};
use crate::cip::objects::Identity;

/// The largest Message Router reply an unconnected request may be answered with
/// (a 504-byte unconnected message, as ControlLogix controllers and cpppo use).
pub const UNCONNECTED_REPLY_BUDGET: usize = 504;

/// How a request reached the device, and how large its reply may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// The time passed in with the bytes that carried the request.
    pub now: Instant,
    /// The connection serial number of the CIP connection it arrived on, or `None` for
    /// an unconnected (SendRRData / Unconnected Send) request.
    pub connection: Option<u16>,
    /// The most bytes the encoded Message Router reply may take: the negotiated
    /// connection size for a connected request, [`UNCONNECTED_REPLY_BUDGET`] otherwise.
    /// A service whose full reply would not fit answers a partial reply (general status
    /// 0x06) or "reply data too large" (0x11), as a ControlLogix does.
    pub reply_budget: usize,
}

/// A simulated CIP device: executes one Message Router request at a time.
///
/// The engine calls [`execute`](CipDevice::execute) for every request that is not a
/// Connection Manager service; Multiple Service Packets (service 0x0A to the Message
/// Router) are the device's to unpack, since they are a Message Router service.
pub trait CipDevice {
    /// The identity the device announces in ListIdentity replies and serves as the
    /// Identity object (class 0x01, instance 1).
    fn identity(&self) -> Identity<'_>;

    /// Execute one request and return its reply. Errors are replies (a CIP general
    /// status with any extended status), never Rust errors.
    fn execute(
        &mut self,
        ctx: &RequestContext,
        request: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static>;

    /// Take back a reply [`execute`](CipDevice::execute) returned, once the engine has
    /// encoded it: a device that keeps the buffers of its replies' data for the next
    /// ones (as the simulated controller does) answers requests without allocating in
    /// steady state. The default drops it.
    fn recycle(&mut self, reply: MessageRouterReply<'static>) {
        drop(reply);
    }
}
