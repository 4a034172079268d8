//! [`ServerConn`]: one connection's protocol engine for a simulated Modbus [`Device`],
//! over Modbus/TCP (MBAP), RTU over TCP, or a serial line.
//!
//! The engine keeps only per-connection state (the framer, replies waiting for their
//! release time, events, statistics); the [`Device`] (tables, identity, faults) is
//! shared and passed by `&mut` to each call that may touch it.
//!
//! ## Contract
//!
//! [`ServerConn`] implements [`crate::engine::Connection`] and [`Device`] implements
//! [`crate::engine::Server`] (connections framed as [`Device::transport`] says,
//! Modbus/UDP datagrams), so every runtime drives it with its one loop.
//!
//! Inputs:
//! - [`ServerConn::handle_input`]`(now, bytes, device)`: bytes as they arrived, split
//!   anywhere. Every whole request is executed at once (writes change the device now),
//!   several in one segment in order; its reply is queued, held until `now + delay`
//!   when [`Faults::delay`](super::device::Faults) is set. Output is identical however
//!   the input is split.
//! - [`ServerConn::handle_timeout`]`(now, device)`: time passes (a serial line's
//!   end-of-frame silence; reply delays need nothing but [`ServerConn::poll_transmit`]).
//! - [`ServerConn::handle_eof`]: the peer will send no more; pending replies are still
//!   sent, then the connection closes.
//!
//! Outputs, drained after every input in this order:
//! - [`ServerConn::poll_transmit`]`(now, out)`: appends every reply due by `now`.
//! - [`ServerConn::poll_event`]: writes made ([`Event::Written`]), malformed requests
//!   answered with an exception, noise dropped, and a fatal [`Event::ProtocolError`].
//! - [`ServerConn::poll_timeout`]: when to call again (the next held reply's release,
//!   or a serial line's silence); sleep until then or new input.
//! - [`ServerConn::is_closed`]: the adapter closes the socket once this is true (it is
//!   only true after every reply has been handed out).
//! - [`ServerConn::is_backlogged`]: too many replies are held (a client pipelining
//!   into a reply delay); the adapter stops reading until some are sent, so memory
//!   stays bounded.
//!
//! ## Framing and errors
//!
//! - Modbus/TCP: each ADU is answered with the request's transaction and unit id. A
//!   PDU the device cannot accept gets the exception [`Request::decode`] names (0x01
//!   unknown function, 0x03 bad quantity or byte count); a unit not served gets
//!   [`Device::unknown_unit`]'s answer. A header that can never frame (protocol id
//!   other than 0, length 0 or over 254) or an ADU without a function code puts the
//!   stream out of step for good: an [`Event::ProtocolError`], then close, as pymodbus
//!   and real devices do. No reply is possible then.
//! - RTU (over TCP or a serial line): frames are found by [`RtuFramer`]; bytes that
//!   are not a frame with a valid CRC are noise, dropped and reported
//!   ([`Event::Discarded`]), never answered, never fatal. Unit 0 is a broadcast:
//!   executed on every unit, never answered. A request for a unit not served is
//!   another device's on the line: no reply. A function code the framer has no
//!   length rule for (0x09, 0x42, MEI types other than 0x0E) cannot be framed, so it
//!   is dropped as noise rather than answered with Illegal Function.
//!
//! ## Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cpppo_core::modbus::device::{Delay, Device};
//! use cpppo_core::modbus::server::{Event, ServerConn};
//!
//! let mut device = Device::from_specs(["40001-40010=99"]).unwrap();
//! let mut conn = ServerConn::tcp();
//! let t0 = Instant::now();
//! let mut out = Vec::new();
//!
//! // Write Single Register 40002 := 0x1234 (transaction 1, unit 1), in two pieces.
//! conn.handle_input(t0, &[0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x06], &mut device);
//! conn.handle_input(t0, &[0x00, 0x01, 0x12, 0x34], &mut device);
//! assert!(conn.poll_transmit(t0, &mut out));
//! assert_eq!(out, [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x06, 0x00, 0x01, 0x12, 0x34]);
//! assert!(matches!(conn.poll_event(), Some(Event::Written(w)) if w.values == [0x1234]));
//!
//! // With a reply delay, the reply waits for its deadline.
//! device.faults.delay = Some(Delay::Fixed(Duration::from_millis(250)));
//! out.clear();
//! conn.handle_input(t0, &[0x00, 0x02, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x01, 0x00, 0x01], &mut device);
//! assert!(!conn.poll_transmit(t0, &mut out));
//! let due = conn.poll_timeout().unwrap();
//! assert_eq!(due, t0 + Duration::from_millis(250));
//! assert!(conn.poll_transmit(due, &mut out));
//! assert_eq!(out, [0x00, 0x02, 0x00, 0x00, 0x00, 0x05, 0x01, 0x03, 0x02, 0x12, 0x34]);
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use super::device::{Corruption, Device, UnknownUnit, Write, CORRUPT_EXTRA_REGISTER};
use super::pdu::{Exception, Registers, Request, RequestError, Response};
use super::rtu::{crc16, Direction, RtuFrame, RtuFramer, BROADCAST_ADDRESS};
use super::tcp::{self, TcpDecoder, MBAP_HEADER_LEN, PROTOCOL_ID_MODBUS};
use crate::engine;
use crate::limits::{ConnectionGate, Limit};
use crate::wire::{DecodeError, Encode};

/// How requests are framed on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// Modbus/TCP: MBAP header, no CRC.
    Tcp,
    /// RTU frames (unit, PDU, CRC) over a TCP stream: no silence, the CRC decides.
    RtuOverTcp,
    /// RTU frames on a serial line at this baud rate (3.5-character silences).
    RtuSerial {
        /// Line speed in bits per second.
        baud: u32,
    },
}

/// A decode error in a serializable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The field that was wrong, as `layer.field`.
    pub field: String,
    /// Offset of the field within the frame (or the stream's current frame).
    pub offset: usize,
    /// The error, in words.
    pub message: String,
}

impl From<&DecodeError> for ErrorInfo {
    fn from(e: &DecodeError) -> Self {
        ErrorInfo {
            field: e.field().to_string(),
            offset: e.offset(),
            message: e.to_string(),
        }
    }
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A request wrote to the device (already applied).
    Written(Write),
    /// A request the device could not accept; it was answered with `exception`
    /// (unless it was a broadcast).
    Refused {
        /// The unit addressed.
        unit: u8,
        /// The exception answered.
        exception: Exception,
        /// What was wrong with the request.
        error: ErrorInfo,
    },
    /// RTU only: bytes that were not part of any valid frame, dropped as noise.
    Discarded {
        /// How many bytes.
        bytes: u64,
    },
    /// The stream is out of step for good: no more requests are read, and the
    /// connection closes once pending replies are sent.
    ProtocolError(ErrorInfo),
    /// A limit of [`Device::limits`] was hit (also counted in
    /// [`Device::limits_reached`]); a frame timeout closes the connection once pending
    /// replies are sent.
    LimitReached(Limit),
}

/// Per-connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistics {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed out by [`ServerConn::poll_transmit`].
    pub bytes_out: u64,
    /// Whole request frames received.
    pub requests: u64,
    /// Replies queued (exceptions included).
    pub replies: u64,
    /// Exception replies queued.
    pub exceptions: u64,
    /// Requests not answered: broadcasts, and units not served when they are ignored.
    pub unanswered: u64,
    /// Bytes dropped as noise (RTU).
    pub discarded: u64,
}

/// Replies held (delayed, not yet handed out) at which [`ServerConn::is_backlogged`]
/// asks the adapter to stop reading, by default ([`ConnectionLimits::max_pending_replies`](crate::limits::ConnectionLimits::max_pending_replies)).
pub const MAX_PENDING_REPLIES: usize = crate::limits::DEFAULT_MAX_PENDING_REPLIES;

#[derive(Debug)]
struct Pending {
    due: Instant,
    /// The reply's bytes in `ServerConn::queued`, following the previous reply's.
    len: usize,
}

#[derive(Debug)]
enum Framer {
    Tcp(TcpDecoder),
    Rtu(RtuFramer),
}

/// One connection's Modbus server engine. See the [module documentation](self).
#[derive(Debug)]
pub struct ServerConn {
    transport: Transport,
    framer: Framer,
    pending: VecDeque<Pending>,
    /// The bytes of the `pending` replies, back to back, from `sent` on (reused, so a
    /// warm engine queues replies without allocating).
    queued: Vec<u8>,
    /// Bytes at the front of `queued` already handed out.
    sent: usize,
    /// The register values a read answers, borrowed by the reply until it is encoded.
    scratch: Vec<u8>,
    /// A copy of the RTU frame being executed (lent by the framer; reused).
    rx: Vec<u8>,
    events: VecDeque<Event>,
    stats: Statistics,
    writes: Vec<Write>,
    /// No more input is read (protocol error or end of input).
    closing: bool,
    discarded_seen: u64,
    /// Pending replies, half-received frames, request rate ([`Device::limits`]).
    gate: ConnectionGate,
}

/// Where a reply goes: the MBAP header fields, or the RTU unit.
#[derive(Debug, Clone, Copy)]
enum Envelope {
    Tcp { transaction_id: u16, unit: u8 },
    Rtu { unit: u8 },
}

impl ServerConn {
    /// An engine for `transport`.
    pub fn new(transport: Transport) -> Self {
        let framer = match transport {
            Transport::Tcp => Framer::Tcp(tcp::decoder()),
            Transport::RtuOverTcp => Framer::Rtu(RtuFramer::over_tcp(Direction::Requests)),
            Transport::RtuSerial { baud } => Framer::Rtu(RtuFramer::new(Direction::Requests, baud)),
        };
        ServerConn {
            transport,
            framer,
            pending: VecDeque::new(),
            queued: Vec::new(),
            sent: 0,
            scratch: Vec::new(),
            rx: Vec::new(),
            events: VecDeque::new(),
            stats: Statistics::default(),
            writes: Vec::new(),
            closing: false,
            discarded_seen: 0,
            gate: ConnectionGate::default(),
        }
    }

    /// A Modbus/TCP engine.
    pub fn tcp() -> Self {
        Self::new(Transport::Tcp)
    }

    /// An RTU-over-TCP engine.
    pub fn rtu_over_tcp() -> Self {
        Self::new(Transport::RtuOverTcp)
    }

    /// The framing in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// This connection's counters.
    pub fn statistics(&self) -> &Statistics {
        &self.stats
    }

    /// Feed bytes received at `now`; every whole request in them is executed on
    /// `device` now. Bytes after a fatal protocol error or end of input are ignored.
    pub fn handle_input(&mut self, now: Instant, data: &[u8], device: &mut Device) {
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(data.len() as u64);
        if self.closing {
            return;
        }
        match &mut self.framer {
            Framer::Tcp(d) => d.handle_input(data),
            Framer::Rtu(f) => f.handle_input(now, data),
        }
        self.drain_frames(now, device);
    }

    /// Let time pass: on a serial line, the end-of-frame silence may complete or drop
    /// what is buffered. Reply delays are released by [`ServerConn::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant, device: &mut Device) {
        if let Framer::Rtu(f) = &mut self.framer {
            f.handle_timeout(now);
        }
        if self.gate.frame_expired(now) && !self.closing {
            self.limit_reached(device, Limit::FrameTimeout);
            self.gate.clear_partial();
            self.closing = true;
            return;
        }
        if !self.closing {
            self.drain_frames(now, device);
        }
    }

    fn limit_reached(&mut self, device: &mut Device, limit: Limit) {
        device.limits_reached.count(limit);
        self.events.push_back(Event::LimitReached(limit));
    }

    /// The peer has closed its side: nothing more will be read; pending replies are
    /// still sent, then [`ServerConn::is_closed`] becomes true.
    pub fn handle_eof(&mut self, _now: Instant, _device: &mut Device) {
        self.closing = true;
    }

    /// Hand out every reply held, due or not (a datagram gets its answer at once).
    fn release_all(&mut self, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while self.release_next(out) {
            any = true;
        }
        any
    }

    /// Append the oldest reply held to `out`; false when none is.
    fn release_next(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(p) = self.pending.pop_front() else {
            return false;
        };
        let end = self.sent.saturating_add(p.len);
        if let Some(bytes) = self.queued.get(self.sent..end) {
            out.extend_from_slice(bytes);
        }
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(p.len as u64);
        self.sent = end;
        if self.pending.is_empty() {
            self.queued.clear();
            self.sent = 0;
        }
        true
    }

    /// Append every reply due by `now` to `out`, in request order; false when none is.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while let Some(p) = self.pending.front() {
            if p.due > now {
                break;
            }
            any |= self.release_next(out);
        }
        any
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest time [`ServerConn::poll_transmit`] or
    /// [`ServerConn::handle_timeout`] has something to do; `None` when only new input
    /// can change anything. Changes after every input and output.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reply = self.pending.front().map(|p| p.due);
        let silence = match &self.framer {
            Framer::Rtu(f) if !self.closing => f.poll_timeout(),
            _ => None,
        };
        if self.closing {
            return reply;
        }
        [reply, silence, self.gate.deadline(self.pending.len())]
            .into_iter()
            .flatten()
            .min()
    }

    /// Bytes received and not yet served (a frame begun, or whole requests waiting for
    /// a limit).
    pub fn buffered(&self) -> usize {
        match &self.framer {
            Framer::Tcp(d) => d.buffered(),
            Framer::Rtu(f) => f.buffered(),
        }
    }

    /// Replies computed and not yet handed out.
    pub fn pending_replies(&self) -> usize {
        self.pending.len()
    }

    /// True when the adapter should close the connection: the stream failed or ended,
    /// and every reply has been handed out.
    pub fn is_closed(&self) -> bool {
        self.closing && self.pending.is_empty()
    }

    /// True when [`ConnectionLimits::max_pending_replies`](crate::limits::ConnectionLimits::max_pending_replies) (by default
    /// [`MAX_PENDING_REPLIES`]) or more replies wait for release, or whole requests wait
    /// for room or for the request rate: stop reading input until
    /// [`ServerConn::poll_transmit`] has handed some out or
    /// [`ServerConn::poll_timeout`] passes.
    pub fn is_backlogged(&self) -> bool {
        self.pending.len() >= self.gate.max_pending() || self.gate.is_waiting()
    }

    fn drain_frames(&mut self, now: Instant, device: &mut Device) {
        self.gate.begin(now, &device.limits);
        let mut framed = false;
        loop {
            // Over TCP, a whole request waits while too many replies are held or the
            // request rate is spent (the framer tells a whole one from a partial one).
            if let Framer::Tcp(d) = &self.framer {
                if d.buffered() == 0 || d.needed() > 0 {
                    break;
                }
                if self.gate.admit(now, self.pending.len()).is_err() {
                    break;
                }
                framed = true;
            }
            let frame = match &mut self.framer {
                Framer::Tcp(d) => match d.next_frame() {
                    Ok(Some(f)) => Ok(f),
                    Ok(None) => break,
                    Err(e) => Err(e),
                },
                Framer::Rtu(f) => {
                    // The framer lends the frame; a copy into the reused `rx` frees
                    // `self` to execute it.
                    let mut rx = std::mem::take(&mut self.rx);
                    let unit = f.poll_frame_with(|frame| {
                        rx.clear();
                        rx.extend_from_slice(&frame.pdu);
                        frame.unit
                    });
                    if let Some(unit) = unit {
                        let frame = RtuFrame {
                            unit,
                            pdu: rx.as_slice().into(),
                        };
                        self.handle_rtu(now, &frame, device);
                    }
                    self.rx = rx;
                    if unit.is_none() {
                        break;
                    }
                    continue;
                }
            };
            match frame {
                Ok(bytes) => self.handle_tcp(now, &bytes, device),
                Err(e) => self.fail(&e),
            }
            if self.closing {
                break;
            }
        }
        // A frame begun over a TCP stream (a serial line's silence ends frames by itself).
        let partial = !self.closing
            && match &self.framer {
                Framer::Tcp(d) => d.buffered() > 0 && d.needed() > 0,
                Framer::Rtu(f) => {
                    f.buffered() > 0 && !matches!(self.transport, Transport::RtuSerial { .. })
                }
            };
        if let Some(limit) = self.gate.end(now, partial, framed) {
            self.limit_reached(device, limit);
        }
        if let Framer::Rtu(f) = &self.framer {
            let dropped = f.discarded().saturating_sub(self.discarded_seen);
            if dropped > 0 {
                self.discarded_seen = f.discarded();
                self.stats.discarded = self.stats.discarded.saturating_add(dropped);
                self.events.push_back(Event::Discarded { bytes: dropped });
            }
        }
    }

    fn fail(&mut self, e: &DecodeError) {
        self.events.push_back(Event::ProtocolError(e.into()));
        self.closing = true;
    }

    fn handle_tcp(&mut self, now: Instant, frame: &[u8], device: &mut Device) {
        self.stats.requests = self.stats.requests.saturating_add(1);
        let adu = match tcp::Adu::decode(frame) {
            Ok(adu) => adu,
            Err(e) => return self.fail(&e),
        };
        if adu.pdu.is_empty() {
            // No function code: no exception PDU can name the request.
            return self.fail(&DecodeError::invalid(
                "mbap.pdu",
                MBAP_HEADER_LEN,
                "empty PDU: no function code",
            ));
        }
        let envelope = Envelope::Tcp {
            transaction_id: adu.transaction_id,
            unit: adu.unit_id,
        };
        if !device.serves(adu.unit_id) {
            return match device.unknown_unit {
                UnknownUnit::Ignore => self.unanswered(),
                UnknownUnit::Exception(code) => {
                    let function = adu.pdu.first().copied().unwrap_or(0) & 0x7F;
                    let reply = Response::Exception(Exception { function, code });
                    self.reply(now, envelope, reply, device)
                }
            };
        }
        self.execute(now, envelope, adu.request(), device);
    }

    fn handle_rtu(&mut self, now: Instant, frame: &RtuFrame<'_>, device: &mut Device) {
        self.stats.requests = self.stats.requests.saturating_add(1);
        let envelope = Envelope::Rtu { unit: frame.unit };
        if frame.unit == BROADCAST_ADDRESS {
            match frame.request() {
                Ok(req) => {
                    device.broadcast(&req, &mut self.writes);
                    self.flush_writes();
                }
                Err(e) => self.refused(frame.unit, &e),
            }
            return self.unanswered();
        }
        if !device.serves(frame.unit) {
            return self.unanswered();
        }
        self.execute(now, envelope, frame.request(), device);
    }

    fn execute(
        &mut self,
        now: Instant,
        envelope: Envelope,
        request: Result<Request<'_>, RequestError>,
        device: &mut Device,
    ) {
        let unit = match envelope {
            Envelope::Tcp { unit, .. } | Envelope::Rtu { unit } => unit,
        };
        // The reply borrows the register values from `scratch`, taken for the turn.
        let mut scratch = std::mem::take(&mut self.scratch);
        let reply = match request {
            Ok(req) => {
                let reply = device.serve_in(unit, &req, &mut self.writes, &mut scratch);
                self.flush_writes();
                reply
            }
            Err(e) => {
                self.refused(unit, &e);
                Some(Response::Exception(e.exception))
            }
        };
        match reply {
            Some(reply) => self.reply(now, envelope, reply, device),
            None => self.unanswered(),
        }
        self.scratch = scratch;
    }

    fn flush_writes(&mut self) {
        self.events
            .extend(self.writes.drain(..).map(Event::Written));
    }

    fn refused(&mut self, unit: u8, e: &RequestError) {
        self.events.push_back(Event::Refused {
            unit,
            exception: e.exception,
            error: (&e.error).into(),
        });
    }

    fn unanswered(&mut self) {
        self.stats.unanswered = self.stats.unanswered.saturating_add(1);
    }

    /// Corrupt, encode, truncate and queue a reply with its release time.
    fn reply(
        &mut self,
        now: Instant,
        envelope: Envelope,
        reply: Response<'_>,
        device: &mut Device,
    ) {
        self.stats.replies = self.stats.replies.saturating_add(1);
        if matches!(reply, Response::Exception(_)) {
            self.stats.exceptions = self.stats.exceptions.saturating_add(1);
        }
        let faults = device.faults;
        let rng = device.rng();
        let reply = match faults.corrupt {
            Some(Corruption::Registers) => corrupt_registers(reply, rng.coin()),
            _ => reply,
        };
        let flip_unit = |unit: u8| {
            if faults.corrupt == Some(Corruption::UnitId) {
                unit ^ 0xFF
            } else {
                unit
            }
        };
        // Encoded straight into the queue, after the replies still held.
        self.compact_queue();
        let start = self.queued.len();
        let bytes = &mut self.queued;
        match envelope {
            Envelope::Tcp {
                transaction_id,
                unit,
            } => {
                let mut tid = transaction_id;
                let mut pid = PROTOCOL_ID_MODBUS;
                match faults.corrupt {
                    Some(Corruption::TransactionId) => tid ^= 0xFFFF,
                    Some(Corruption::ProtocolId) => pid ^= 0xFFFF,
                    _ => {}
                }
                bytes.put_u16(tid);
                bytes.put_u16(pid);
                let length_at = bytes.len();
                bytes.put_u16(0);
                bytes.put_u8(flip_unit(unit));
                let pdu_at = bytes.len();
                reply.encode(bytes);
                corrupt_function(bytes, pdu_at, faults.corrupt);
                let length = u16::try_from(bytes.len() - pdu_at + 1).unwrap_or(u16::MAX);
                if let Some(field) = bytes.get_mut(length_at..length_at + 2) {
                    field.copy_from_slice(&length.to_be_bytes());
                }
            }
            Envelope::Rtu { unit } => {
                bytes.put_u8(flip_unit(unit));
                let pdu_at = bytes.len();
                reply.encode(bytes);
                corrupt_function(bytes, pdu_at, faults.corrupt);
                let crc = crc16(bytes.get(start..).unwrap_or_default());
                bytes.put_u16_le(crc);
            }
        }
        let mut len = bytes.len() - start;
        if faults.truncate {
            // cpppo: keep len - randint(1, len) bytes, from none to all but one.
            let all = len as u64;
            let keep = all - rng.between(1, all.max(1));
            len = usize::try_from(keep).unwrap_or(0);
            bytes.truncate(start + len);
        }
        let mut due = match faults.delay {
            Some(d) => now.checked_add(d.sample(rng)).unwrap_or(now),
            None => now,
        };
        // Replies leave in request order: none overtakes one held longer.
        if let Some(last) = self.pending.back() {
            due = due.max(last.due);
        }
        self.pending.push_back(Pending { due, len });
    }

    /// Drop the bytes already handed out from the front of the queue once they are
    /// at least half of it, so a queue that never empties does not grow forever.
    fn compact_queue(&mut self) {
        if self.sent > 0 && self.sent >= self.queued.len() / 2 {
            self.queued.drain(..self.sent);
            self.sent = 0;
        }
    }
}

impl engine::Connection for ServerConn {
    type Server = Device;
    type Event = Event;

    fn handle_input(&mut self, now: Instant, data: &[u8], server: &mut Device) {
        ServerConn::handle_input(self, now, data, server)
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        ServerConn::poll_transmit(self, now, out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        ServerConn::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        ServerConn::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, server: &mut Device) {
        ServerConn::handle_timeout(self, now, server)
    }

    fn handle_eof(&mut self, now: Instant, server: &mut Device) {
        ServerConn::handle_eof(self, now, server)
    }

    fn is_closed(&self) -> bool {
        ServerConn::is_closed(self)
    }

    fn is_backlogged(&self) -> bool {
        ServerConn::is_backlogged(self)
    }
}

impl engine::Server for Device {
    type Connection = ServerConn;

    /// A connection framed as [`Device::transport`] says; `None` while the device is
    /// [`Device::disabled`] or [`Device::done`].
    fn accept(
        &mut self,
        _now: Instant,
        _local: SocketAddr,
        _peer: SocketAddr,
    ) -> Option<ServerConn> {
        (!self.disabled && !self.done).then(|| ServerConn::new(self.transport))
    }

    /// Modbus/UDP (pymodbus's UDP server; RTU frames in datagrams when
    /// [`Device::transport`] is RTU): every request in the datagram is executed and
    /// the replies appended to `out` at once. A reply delay cannot hold a datagram
    /// answer here, so it does not apply; truncation and corruption do. Writes are
    /// applied but not reported as events. `true` only when bytes were appended: a
    /// reply truncated to nothing sends no (empty) datagram.
    fn handle_datagram(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        _peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if self.disabled || self.done {
            return false;
        }
        let mut conn = ServerConn::new(match self.transport {
            Transport::Tcp => Transport::Tcp,
            Transport::RtuOverTcp | Transport::RtuSerial { .. } => Transport::RtuOverTcp,
        });
        conn.handle_input(now, data, self);
        let before = out.len();
        conn.release_all(out);
        out.len() > before
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// cpppo's `corrupt:function`: the function code (the PDU's first byte, at `at`) is
/// inverted.
fn corrupt_function(bytes: &mut [u8], at: usize, corrupt: Option<Corruption>) {
    if corrupt == Some(Corruption::Function) {
        if let Some(fc) = bytes.get_mut(at) {
            *fc ^= 0xFF;
        }
    }
}

/// cpppo's `corrupt:registers`: a register read gains a register or loses its last
/// one (`grow`, or always grows when empty); a register write's echo has its address
/// flipped. Other replies are unchanged.
fn corrupt_registers(reply: Response<'_>, grow: bool) -> Response<'static> {
    let resize = |r: &Registers<'_>| {
        let mut v = r.to_vec();
        if v.is_empty() || grow {
            v.push(CORRUPT_EXTRA_REGISTER);
        } else {
            v.pop();
        }
        Registers::from_values(&v)
    };
    match reply {
        Response::ReadHoldingRegisters(r) => Response::ReadHoldingRegisters(resize(&r)),
        Response::ReadInputRegisters(r) => Response::ReadInputRegisters(resize(&r)),
        Response::ReadWriteMultipleRegisters(r) => Response::ReadWriteMultipleRegisters(resize(&r)),
        Response::WriteSingleRegister { address, value } => Response::WriteSingleRegister {
            address: address ^ 0xFFFF,
            value,
        },
        Response::WriteMultipleRegisters { address, quantity } => {
            Response::WriteMultipleRegisters {
                address: address ^ 0xFFFF,
                quantity,
            }
        }
        other => other.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::device::{Delay, Faults, UnitData};
    use crate::modbus::numbering::Table;
    use crate::modbus::pdu::tests::arb_request;
    use crate::modbus::pdu::ExceptionCode;
    use crate::modbus::rtu::{crc_ok, response_len, FrameLen};
    use crate::modbus::tcp::Adu;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Bytes of a frame file in core/tests/frames/modbus (`#` lines are comments).
    fn hex(text: &str) -> Vec<u8> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    macro_rules! frame {
        ($name:literal) => {
            hex(include_str!(concat!(
                "../../tests/frames/modbus/",
                $name,
                ".hex"
            )))
        };
    }

    fn t0() -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    fn ms(n: u64) -> Instant {
        t0() + Duration::from_millis(n)
    }

    /// Feed `input` at t0 and return everything due at t0, and the events.
    fn exchange(conn: &mut ServerConn, dev: &mut Device, input: &[u8]) -> (Vec<u8>, Vec<Event>) {
        conn.handle_input(t0(), input, dev);
        drain(conn, t0())
    }

    fn drain(conn: &mut ServerConn, now: Instant) -> (Vec<u8>, Vec<Event>) {
        let mut out = Vec::new();
        conn.poll_transmit(now, &mut out);
        (out, std::iter::from_fn(|| conn.poll_event()).collect())
    }

    fn adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut v = vec![
            (tid >> 8) as u8,
            tid as u8,
            0,
            0,
            0,
            (pdu.len() + 1) as u8,
            unit,
        ];
        v.extend_from_slice(pdu);
        v
    }

    fn rtu(unit: u8, pdu: &[u8]) -> Vec<u8> {
        RtuFrame {
            unit,
            pdu: pdu.to_vec().into(),
        }
        .to_vec()
    }

    /// Registers 40125-40126 = 141, 142 and discrete inputs 10259-10266 (addresses
    /// 258-265), as pymodbus's test frames read them.
    fn pymodbus_device() -> Device {
        let mut dev =
            Device::from_specs(["40125=141,142", "10259-10266", "30004=3", "1-32"]).unwrap();
        dev.unit_mut(1)
            .unwrap()
            .discrete_inputs
            .define(258, &[true, false, true, false, false, false, false, true]);
        dev
    }

    #[test]
    fn pymodbus_tcp_frames_answered_byte_for_byte() {
        let mut dev = pymodbus_device();
        let mut conn = ServerConn::tcp();
        let (out, ev) = exchange(
            &mut conn,
            &mut dev,
            &frame!("pymodbus-test_framer__tcp_read_holding_registers_request"),
        );
        assert_eq!(
            out,
            frame!("pymodbus-test_framer__tcp_read_holding_registers_response")
        );
        assert!(ev.is_empty());
        let (out, _) = exchange(
            &mut conn,
            &mut dev,
            &frame!("pymodbus-test_extras__tcp_read_discrete_inputs_request"),
        );
        assert_eq!(out, [0, 1, 0, 0, 0, 4, 0xFF, 0x02, 1, 0x85]);
        // The same read with no registers there: pymodbus's exception frame.
        let mut empty = Device::from_specs(["40001"]).unwrap();
        let (out, _) = exchange(
            &mut ServerConn::tcp(),
            &mut empty,
            &frame!("pymodbus-test_framer__tcp_read_holding_registers_request"),
        );
        assert_eq!(out, frame!("pymodbus-test_framer__tcp_exception_response"));
        // Read Input Registers of 30004 by unit 1: pymodbus's client test response.
        let (out, _) = exchange(&mut conn, &mut dev, &adu(1, 1, &[0x04, 0, 3, 0, 1]));
        assert_eq!(
            out,
            frame!("pymodbus-test_client_sync__tcp_read_input_registers_response")
        );
        assert_eq!(
            *conn.statistics(),
            Statistics {
                bytes_in: 36,
                bytes_out: 34,
                requests: 3,
                replies: 3,
                exceptions: 0,
                unanswered: 0,
                discarded: 0,
            }
        );
    }

    #[test]
    fn pymodbus_rtu_frames_answered_byte_for_byte() {
        let mut dev = pymodbus_device();
        let mut conn = ServerConn::rtu_over_tcp();
        let (out, _) = exchange(
            &mut conn,
            &mut dev,
            &frame!("pymodbus-test_framer__rtu_read_holding_registers_request"),
        );
        assert_eq!(
            out,
            frame!("pymodbus-test_framer__rtu_read_holding_registers_response")
        );
        let mut empty = Device::from_specs(["40001"]).unwrap();
        let (out, _) = exchange(
            &mut ServerConn::rtu_over_tcp(),
            &mut empty,
            &frame!("pymodbus-test_framer__rtu_read_holding_registers_request"),
        );
        assert_eq!(out, frame!("pymodbus-test_framer__rtu_exception_response"));
        // Unit 254 reads input register 4: 3.
        let (out, _) = exchange(
            &mut conn,
            &mut dev,
            &frame!("pymodbus-test_framer__rtu_read_input_registers_request"),
        );
        assert_eq!(out, rtu(0xFE, &[0x04, 2, 0, 3]));
        // Unit 0 is a broadcast: a read is not answered.
        let (out, _) = exchange(
            &mut conn,
            &mut dev,
            &frame!("pymodbus-test_framer__rtu_read_coils_request"),
        );
        assert!(out.is_empty());
        assert_eq!(conn.statistics().unanswered, 1);
    }

    /// One request of every function code, and the reply each gets, from a device
    /// holding `1-16=1 10001-10008 30001-30004=7 40001-40010=99`.
    fn every_function() -> Vec<(Vec<u8>, Vec<u8>)> {
        let p = |a: &[u8], b: &[u8]| (a.to_vec(), b.to_vec());
        let mut identity = vec![0x2B, 0x0E, 0x01, 0x81, 0x00, 0x00, 0x03];
        for (id, v) in [
            (0u8, &b"cpppo-rs"[..]),
            (1, b"modbus_sim"),
            (2, env!("CARGO_PKG_VERSION").as_bytes()),
        ] {
            identity.extend([id, v.len() as u8]);
            identity.extend_from_slice(v);
        }
        let additional = concat!("cpppo-rs ", env!("CARGO_PKG_VERSION"));
        let mut server_id = vec![0x11, 2 + additional.len() as u8, 0x01, 0xFF];
        server_id.extend_from_slice(additional.as_bytes());
        vec![
            p(&[0x01, 0, 0, 0, 16], &[0x01, 2, 0xFF, 0xFF]),
            p(&[0x02, 0, 0, 0, 8], &[0x02, 1, 0x00]),
            p(&[0x03, 0, 8, 0, 2], &[0x03, 4, 0, 99, 0, 99]),
            p(&[0x04, 0, 0, 0, 4], &[0x04, 8, 0, 7, 0, 7, 0, 7, 0, 7]),
            p(&[0x05, 0, 3, 0, 0], &[0x05, 0, 3, 0, 0]),
            p(&[0x06, 0, 9, 0x12, 0x34], &[0x06, 0, 9, 0x12, 0x34]),
            p(&[0x07], &[0x07, 0]),
            p(&[0x08, 0, 0, 0xA5, 0x37], &[0x08, 0, 0, 0xA5, 0x37]),
            p(&[0x0F, 0, 8, 0, 8, 1, 0x0F], &[0x0F, 0, 8, 0, 8]),
            p(&[0x10, 0, 0, 0, 2, 4, 0, 1, 0, 2], &[0x10, 0, 0, 0, 2]),
            p(&[0x11], &server_id),
            p(
                &[0x16, 0, 1, 0x00, 0xF0, 0x00, 0x05],
                &[0x16, 0, 1, 0x00, 0xF0, 0x00, 0x05],
            ),
            p(
                &[0x17, 0, 0, 0, 3, 0, 2, 0, 1, 2, 0xAB, 0xCD],
                &[0x17, 6, 0, 1, 0, 5, 0xAB, 0xCD],
            ),
            p(&[0x2B, 0x0E, 0x01, 0x00], &identity),
            // Read back what the writes did.
            p(&[0x01, 0, 0, 0, 16], &[0x01, 2, 0xF7, 0x0F]),
            p(&[0x03, 0, 0, 0, 10], &{
                let mut v = vec![0x03, 20, 0, 1, 0, 5, 0xAB, 0xCD];
                v.extend([0, 99].repeat(6));
                v.extend([0x12, 0x34]);
                v
            }),
            // Exceptions: unknown function, bad quantity, bad byte count, address.
            p(&[0x09], &[0x89, 0x01]),
            p(&[0x41, 1, 2], &[0xC1, 0x01]),
            p(&[0x83, 0, 0, 0, 1], &[0x83, 0x01]),
            p(&[0x2B, 0x0D, 0x01, 0x00], &[0xAB, 0x01]),
            p(&[0x03, 0, 0, 0, 0], &[0x83, 0x03]),
            p(&[0x03, 0, 0, 0, 126], &[0x83, 0x03]),
            p(&[0x01, 0, 0, 0x07, 0xD1], &[0x81, 0x03]),
            p(&[0x10, 0, 0, 0, 1, 4, 0, 1, 0, 2], &[0x90, 0x03]),
            p(&[0x05, 0, 0, 0x12, 0x34], &[0x85, 0x03]),
            p(&[0x2B, 0x0E, 0x05, 0x00], &[0xAB, 0x03]),
            p(&[0x03, 0, 9, 0, 2], &[0x83, 0x02]),
            p(&[0x01, 0, 15, 0, 2], &[0x81, 0x02]),
            p(&[0x2B, 0x0E, 0x04, 0x09], &[0xAB, 0x02]),
        ]
    }

    fn every_function_device() -> Device {
        Device::from_specs(["1-16=1", "10001-10008", "30001-30004=7", "40001-40010=99"]).unwrap()
    }

    #[test]
    fn every_function_code_over_tcp() {
        let mut dev = every_function_device();
        let mut conn = ServerConn::tcp();
        for (i, (req, want)) in every_function().into_iter().enumerate() {
            let tid = 0x100 + i as u16;
            let (out, _) = exchange(&mut conn, &mut dev, &adu(tid, 7, &req));
            assert_eq!(out, adu(tid, 7, &want), "request {req:02x?}");
        }
        assert_eq!(conn.statistics().exceptions, 13);
        assert_eq!(dev.unit(7).unwrap().holding_registers.get(9), Some(0x1234));
    }

    #[test]
    fn every_function_code_over_rtu() {
        let mut dev = every_function_device();
        let mut conn = ServerConn::rtu_over_tcp();
        for (req, want) in every_function() {
            let (out, _) = exchange(&mut conn, &mut dev, &rtu(0x11, &req));
            // The RTU framer drops an unknown function code as noise: no reply.
            if matches!(req[0], 0x09 | 0x41 | 0x83) || req.starts_with(&[0x2B, 0x0D]) {
                assert!(out.is_empty(), "{req:02x?}");
                continue;
            }
            assert_eq!(out, rtu(0x11, &want), "request {req:02x?}");
        }
    }

    /// All the requests as one Modbus/TCP stream, and as one RTU stream.
    fn tcp_stream() -> Vec<u8> {
        every_function()
            .iter()
            .enumerate()
            .flat_map(|(i, (req, _))| adu(i as u16, 1, req))
            .collect()
    }

    fn rtu_stream() -> Vec<u8> {
        every_function()
            .iter()
            .filter(|(req, _)| req[0] < 0x80 && req[0] != 0x09 && req[0] != 0x41)
            .flat_map(|(req, _)| rtu(1, req))
            .collect()
    }

    fn run_split(
        transport: Transport,
        stream: &[u8],
        pieces: &[&[u8]],
    ) -> (Vec<u8>, Vec<Event>, Device) {
        let mut dev = every_function_device();
        let mut conn = ServerConn::new(transport);
        let mut out = Vec::new();
        let mut events = Vec::new();
        for p in pieces {
            conn.handle_input(t0(), p, &mut dev);
            conn.poll_transmit(t0(), &mut out);
            // Noise is reported as it is found, which depends on how the bytes came;
            // the total is the same (below), everything else identical.
            events.extend(
                std::iter::from_fn(|| conn.poll_event())
                    .filter(|e| !matches!(e, Event::Discarded { .. })),
            );
        }
        assert_eq!(conn.statistics().bytes_in, stream.len() as u64);
        let noise = Event::Discarded {
            bytes: conn.statistics().discarded,
        };
        events.push(noise);
        (out, events, dev)
    }

    #[test]
    fn several_requests_in_one_segment_and_any_split_give_identical_output() {
        for (transport, stream) in [
            (Transport::Tcp, tcp_stream()),
            (Transport::RtuOverTcp, rtu_stream()),
        ] {
            let whole = run_split(transport, &stream, &[&stream]);
            // Every reply, in order, from one segment.
            let want: Vec<u8> = match transport {
                Transport::Tcp => every_function()
                    .iter()
                    .enumerate()
                    .flat_map(|(i, (_, want))| adu(i as u16, 1, want))
                    .collect(),
                _ => every_function()
                    .iter()
                    .filter(|(req, _)| req[0] < 0x80 && req[0] != 0x09 && req[0] != 0x41)
                    .filter(|(req, _)| !req.starts_with(&[0x2B, 0x0D]))
                    .flat_map(|(_, want)| rtu(1, want))
                    .collect(),
            };
            assert_eq!(whole.0, want, "{transport:?}");
            for at in 0..=stream.len() {
                let split = run_split(transport, &stream, &[&stream[..at], &stream[at..]]);
                assert_eq!(split, whole, "{transport:?} split at {at}");
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(
                run_split(transport, &stream, &bytes),
                whole,
                "{transport:?} bytewise"
            );
        }
    }

    #[test]
    fn two_connections_interleaved_stay_independent() {
        let mut dev = every_function_device();
        let mut a = ServerConn::tcp();
        let mut b = ServerConn::rtu_over_tcp();
        let write = adu(7, 1, &[0x06, 0, 2, 0xBE, 0xEF]);
        let read = rtu(1, &[0x03, 0, 2, 0, 1]);
        // Half of each, then the rest: each connection keeps its own partial frame.
        a.handle_input(t0(), &write[..5], &mut dev);
        b.handle_input(t0(), &read[..3], &mut dev);
        a.handle_input(t0(), &write[5..], &mut dev);
        b.handle_input(t0(), &read[3..], &mut dev);
        let (out_a, ev_a) = drain(&mut a, t0());
        let (out_b, ev_b) = drain(&mut b, t0());
        assert_eq!(out_a, write);
        assert_eq!(ev_a.len(), 1);
        // The device is shared: b reads what a wrote.
        assert_eq!(out_b, rtu(1, &[0x03, 2, 0xBE, 0xEF]));
        assert!(ev_b.is_empty());
        assert_eq!((a.statistics().requests, b.statistics().requests), (1, 1));
        // One connection's fatal error leaves the other serving.
        a.handle_input(t0(), &[0, 0, 0, 9, 0, 2, 1, 1], &mut dev);
        assert!(a.is_closed());
        b.handle_input(t0(), &read, &mut dev);
        assert_eq!(drain(&mut b, t0()).0, rtu(1, &[0x03, 2, 0xBE, 0xEF]));
    }

    #[test]
    fn writes_are_events() {
        let mut dev = every_function_device();
        let mut conn = ServerConn::tcp();
        let (_, ev) = exchange(
            &mut conn,
            &mut dev,
            &adu(1, 3, &[0x10, 0, 2, 0, 2, 4, 0, 1, 0, 2]),
        );
        assert_eq!(
            ev,
            [Event::Written(Write {
                unit: 3,
                table: Table::HoldingRegisters,
                address: 2,
                values: vec![1, 2]
            })]
        );
        let (_, ev) = exchange(&mut conn, &mut dev, &adu(2, 3, &[0x03, 0, 0, 0, 0]));
        let [Event::Refused {
            unit: 3,
            exception,
            error,
        }] = &ev[..]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(exception.code, ExceptionCode::ILLEGAL_DATA_VALUE);
        assert_eq!(
            (error.field.as_str(), error.offset),
            ("modbus.quantity", 10)
        );
    }

    #[test]
    fn unknown_units() {
        let data = UnitData::parse(["40001=5"]).unwrap();
        let mut dev = Device::with_units([1], data);
        let mut conn = ServerConn::tcp();
        let (out, _) = exchange(&mut conn, &mut dev, &adu(9, 2, &[0x03, 0, 0, 0, 1]));
        assert_eq!(out, adu(9, 2, &[0x83, 0x0B]));
        let (out, _) = exchange(&mut conn, &mut dev, &adu(9, 2, &[0x42]));
        assert_eq!(out, adu(9, 2, &[0xC2, 0x0B]));
        dev.unknown_unit = UnknownUnit::Ignore;
        let (out, _) = exchange(&mut conn, &mut dev, &adu(9, 2, &[0x03, 0, 0, 0, 1]));
        assert!(out.is_empty());
        let (out, _) = exchange(&mut conn, &mut dev, &adu(10, 1, &[0x03, 0, 0, 0, 1]));
        assert_eq!(out, adu(10, 1, &[0x03, 2, 0, 5]));
        // RTU: another unit's request is not ours to answer, whatever the policy.
        dev.unknown_unit = UnknownUnit::default();
        let mut conn = ServerConn::rtu_over_tcp();
        let (out, _) = exchange(&mut conn, &mut dev, &rtu(2, &[0x03, 0, 0, 0, 1]));
        assert!(out.is_empty());
        assert_eq!(conn.statistics().unanswered, 1);
    }

    #[test]
    fn rtu_broadcast_writes_without_reply_and_noise_is_dropped() {
        let mut dev = Device::with_units([1], UnitData::parse(["40001-40002"]).unwrap());
        dev.add_unit(2, UnitData::parse(["40001-40002"]).unwrap());
        let mut conn = ServerConn::rtu_over_tcp();
        let mut input = vec![0x55, 0xAA, 0x01];
        input.extend(rtu(0, &[0x10, 0, 0, 0, 2, 4, 0, 7, 0, 8]));
        input.extend(rtu(2, &[0x03, 0, 0, 0, 2]));
        let (out, ev) = exchange(&mut conn, &mut dev, &input);
        assert_eq!(out, rtu(2, &[0x03, 4, 0, 7, 0, 8]));
        assert_eq!(
            ev,
            [
                Event::Written(Write {
                    unit: 0,
                    table: Table::HoldingRegisters,
                    address: 0,
                    values: vec![7, 8]
                }),
                Event::Discarded { bytes: 3 }
            ]
        );
        assert_eq!(
            dev.unit(1).unwrap().holding_registers.range(0, 2),
            Some(&[7, 8][..])
        );
        let s = conn.statistics();
        assert_eq!(
            (s.requests, s.replies, s.unanswered, s.discarded),
            (2, 1, 1, 3)
        );
        // A frame with a bad CRC is never answered, nor fatal.
        let mut bad = rtu(1, &[0x03, 0, 0, 0, 1]);
        bad[3] ^= 1;
        let (out, _) = exchange(&mut conn, &mut dev, &bad);
        assert!(out.is_empty());
        assert!(!conn.is_closed());
    }

    #[test]
    fn rtu_on_a_serial_line_uses_the_silence() {
        let mut dev = every_function_device();
        let mut conn = ServerConn::new(Transport::RtuSerial { baud: 9600 });
        let req = rtu(1, &[0x03, 0, 0, 0, 1]);
        conn.handle_input(ms(0), &req[..3], &mut dev);
        // Half a frame waits for the end-of-frame silence, after the time the other
        // 5 bytes would take (8.5 characters of 1.15 ms).
        let silence = conn.poll_timeout().unwrap();
        assert!(silence > ms(9) && silence < ms(10), "{:?}", silence - ms(0));
        conn.handle_timeout(silence, &mut dev);
        assert_eq!(drain(&mut conn, silence).1, [Event::Discarded { bytes: 3 }]);
        conn.handle_input(ms(10), &req, &mut dev);
        assert_eq!(drain(&mut conn, ms(10)).0, rtu(1, &[0x03, 2, 0, 99]));
        assert_eq!(conn.poll_timeout(), None);
    }

    #[test]
    fn malformed_streams_are_fatal_after_the_replies_before_them() {
        for (bad, field) in [
            (
                &[0u8, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1][..],
                "mbap.protocol_id",
            ),
            (&[0, 1, 0, 0, 0, 0, 1][..], "mbap.length"),
            (&[0, 1, 0, 0, 0, 0xFF, 1][..], "mbap.length"),
            (&[0, 1, 0, 0, 0, 1, 1][..], "mbap.pdu"),
        ] {
            let mut dev = every_function_device();
            let mut conn = ServerConn::tcp();
            dev.faults.delay = Some(Delay::Fixed(Duration::from_millis(5)));
            let mut input = adu(1, 1, &[0x03, 0, 0, 0, 1]);
            input.extend_from_slice(bad);
            input.extend(adu(2, 1, &[0x06, 0, 0, 0, 1]));
            conn.handle_input(ms(0), &input, &mut dev);
            let (out, ev) = drain(&mut conn, ms(0));
            assert!(out.is_empty());
            let [Event::ProtocolError(e)] = &ev[..] else {
                panic!("{ev:?}")
            };
            assert_eq!(e.field, field);
            // The reply before the bad frame is still sent, then the connection closes.
            assert!(!conn.is_closed());
            let (out, _) = drain(&mut conn, ms(5));
            assert_eq!(out, adu(1, 1, &[0x03, 2, 0, 99]));
            assert!(conn.is_closed());
            // Nothing after the error was executed.
            assert_eq!(dev.unit(1).unwrap().holding_registers.get(0), Some(99));
            conn.handle_input(ms(6), &adu(3, 1, &[0x06, 0, 0, 0, 1]), &mut dev);
            assert_eq!(drain(&mut conn, ms(6)), (vec![], vec![]));
            assert_eq!(conn.poll_timeout(), None);
        }
    }

    #[test]
    fn a_backlog_of_delayed_replies_is_reported() {
        let mut dev = every_function_device();
        dev.faults.delay = Some(Delay::Fixed(Duration::from_secs(5)));
        let mut conn = ServerConn::tcp();
        let read = adu(1, 1, &[0x03, 0, 0, 0, 1]);
        for _ in 0..MAX_PENDING_REPLIES - 1 {
            conn.handle_input(ms(0), &read, &mut dev);
        }
        assert!(!conn.is_backlogged());
        conn.handle_input(ms(0), &read, &mut dev);
        assert!(conn.is_backlogged());
        let mut out = Vec::new();
        assert!(conn.poll_transmit(ms(5000), &mut out));
        assert_eq!(out.len(), MAX_PENDING_REPLIES * 11);
        assert!(!conn.is_backlogged());
    }

    #[test]
    fn driven_through_the_engine_traits() {
        use crate::engine::{Connection, Server};
        let local: SocketAddr = ([127, 0, 0, 1], 502).into();
        let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
        let mut dev = every_function_device();
        let mut conn = Server::accept(&mut dev, ms(0), local, peer).unwrap();
        Connection::handle_input(&mut conn, ms(0), &adu(1, 1, &[0x06, 0, 0, 0, 7]), &mut dev);
        let mut out = Vec::new();
        assert!(Connection::poll_transmit(&mut conn, ms(0), &mut out));
        assert_eq!(out, adu(1, 1, &[0x06, 0, 0, 0, 7]));
        assert!(matches!(
            Connection::poll_event(&mut conn),
            Some(Event::Written(_))
        ));
        Connection::handle_eof(&mut conn, ms(1), &mut dev);
        assert!(Connection::is_closed(&conn));
        // Modbus/UDP: the answer comes back at once, even with a delay set.
        dev.faults.delay = Some(Delay::Fixed(Duration::from_secs(1)));
        out.clear();
        let mut two = adu(2, 1, &[0x03, 0, 0, 0, 1]);
        two.extend(adu(3, 1, &[0x09]));
        assert!(dev.handle_datagram(ms(2), local, peer, &two, &mut out));
        let mut want = adu(2, 1, &[0x03, 2, 0, 7]);
        want.extend(adu(3, 1, &[0x89, 0x01]));
        assert_eq!(out, want);
        // RTU in datagrams.
        dev.transport = Transport::RtuSerial { baud: 9600 };
        out.clear();
        assert!(dev.handle_datagram(ms(3), local, peer, &rtu(1, &[0x03, 0, 0, 0, 1]), &mut out));
        assert_eq!(out, rtu(1, &[0x03, 2, 0, 7]));
        assert!(
            Server::accept(&mut dev, ms(3), local, peer)
                .unwrap()
                .transport()
                == dev.transport
        );
        // Disabled refuses; done stops.
        dev.disabled = true;
        assert!(Server::accept(&mut dev, ms(4), local, peer).is_none());
        assert!(!dev.handle_datagram(ms(4), local, peer, &rtu(1, &[0x07]), &mut out));
        dev.disabled = false;
        dev.done = true;
        assert!(dev.is_done());
        assert!(Server::accept(&mut dev, ms(5), local, peer).is_none());
    }

    #[test]
    fn end_of_input_flushes_then_closes() {
        let mut dev = every_function_device();
        dev.faults.delay = Some(Delay::Fixed(Duration::from_millis(100)));
        let mut conn = ServerConn::tcp();
        conn.handle_input(ms(0), &adu(1, 1, &[0x03, 0, 0, 0, 1]), &mut dev);
        conn.handle_eof(ms(0), &mut dev);
        assert!(!conn.is_closed());
        assert_eq!(conn.poll_timeout(), Some(ms(100)));
        assert_eq!(drain(&mut conn, ms(100)).0, adu(1, 1, &[0x03, 2, 0, 99]));
        assert!(conn.is_closed());
    }

    #[test]
    fn delays_are_deadlines_and_keep_replies_in_order() {
        let mut dev = every_function_device();
        dev.faults.delay = Some(Delay::Fixed(Duration::from_millis(250)));
        let mut conn = ServerConn::tcp();
        let read = |tid| adu(tid, 1, &[0x03, 0, 0, 0, 1]);
        conn.handle_input(ms(0), &adu(1, 1, &[0x06, 0, 0, 0, 5]), &mut dev);
        // The write is done when the request arrives, whatever the delay.
        assert_eq!(dev.unit(1).unwrap().holding_registers.get(0), Some(5));
        assert!(matches!(conn.poll_event(), Some(Event::Written(_))));
        conn.handle_input(ms(100), &read(2), &mut dev);
        assert_eq!(conn.poll_timeout(), Some(ms(250)));
        let mut out = Vec::new();
        assert!(!conn.poll_transmit(ms(249), &mut out));
        conn.handle_timeout(ms(249), &mut dev);
        assert!(conn.poll_transmit(ms(250), &mut out));
        assert_eq!(out, adu(1, 1, &[0x06, 0, 0, 0, 5]));
        assert_eq!(conn.poll_timeout(), Some(ms(350)));
        out.clear();
        assert!(conn.poll_transmit(ms(400), &mut out));
        assert_eq!(out, adu(2, 1, &[0x03, 2, 0, 5]));
        assert_eq!(conn.poll_timeout(), None);

        // A range: every delay within it, seeded, and no reply overtakes another.
        dev.faults.delay = Some(Delay::Range(
            Duration::from_millis(10),
            Duration::from_millis(1000),
        ));
        dev.seed(42);
        let mut conn = ServerConn::tcp();
        for tid in 0..50u16 {
            conn.handle_input(ms(u64::from(tid)), &read(tid), &mut dev);
        }
        let mut dues = Vec::new();
        let mut got = Vec::new();
        while let Some(due) = conn.poll_timeout() {
            assert!(due >= ms(10) && due <= ms(49 + 1000));
            dues.push(due);
            conn.poll_transmit(due, &mut got);
        }
        assert!(dues.windows(2).all(|w| w[0] <= w[1]));
        let want: Vec<u8> = (0..50)
            .flat_map(|tid| adu(tid, 1, &[0x03, 2, 0, 5]))
            .collect();
        assert_eq!(got, want);
        // Same seed, same delays.
        dev.seed(42);
        let mut again = ServerConn::tcp();
        let mut dues2 = Vec::new();
        for tid in 0..50u16 {
            again.handle_input(ms(u64::from(tid)), &read(tid), &mut dev);
        }
        while let Some(due) = again.poll_timeout() {
            dues2.push(due);
            again.poll_transmit(due, &mut Vec::new());
        }
        assert_eq!(dues, dues2);
    }

    #[test]
    fn a_queue_that_never_empties_keeps_every_reply_whole_and_in_order() {
        // Requests arrive every millisecond and replies are released as they fall due,
        // so replies are queued behind ones partly handed out (the queue is compacted
        // while it holds replies): every byte still leaves once, in request order.
        for transport in [Transport::Tcp, Transport::RtuOverTcp] {
            let mut dev = every_function_device();
            dev.faults.delay = Some(Delay::Range(
                Duration::from_millis(1),
                Duration::from_millis(20),
            ));
            dev.seed(7);
            let mut conn = ServerConn::new(transport);
            let (mut got, mut want) = (Vec::new(), Vec::new());
            let mut most_held = 0;
            for i in 0..400u16 {
                // 1 to 10 registers of 40001-40010 (all 99): replies of varying length.
                let quantity = i % 10 + 1;
                let pdu = [0x03, 0, 0, 0, quantity as u8];
                let mut reply = vec![0x03, (quantity * 2) as u8];
                for _ in 0..quantity {
                    reply.extend_from_slice(&[0, 99]);
                }
                let (request, answer) = match transport {
                    Transport::Tcp => (adu(i, 1, &pdu), adu(i, 1, &reply)),
                    _ => (rtu(1, &pdu), rtu(1, &reply)),
                };
                want.extend_from_slice(&answer);
                let now = ms(u64::from(i));
                conn.handle_input(now, &request, &mut dev);
                most_held = most_held.max(conn.pending.len());
                conn.poll_transmit(now, &mut got);
                assert_eq!(got.as_slice(), want.get(..got.len()).unwrap());
            }
            assert!(most_held > 5, "{transport:?}: {most_held}");
            while let Some(due) = conn.poll_timeout() {
                conn.poll_transmit(due, &mut got);
            }
            assert_eq!(got, want, "{transport:?}");
            assert_eq!(conn.statistics().bytes_out, want.len() as u64);
            assert!(conn.queued.is_empty() && conn.sent == 0);
        }
    }

    fn faulty(faults: Faults, transport: Transport, request: &[u8]) -> Vec<u8> {
        let mut dev = every_function_device();
        dev.faults = faults;
        let mut conn = ServerConn::new(transport);
        exchange(&mut conn, &mut dev, request).0
    }

    fn corrupt(c: Corruption) -> Faults {
        Faults {
            corrupt: Some(c),
            ..Faults::default()
        }
    }

    #[test]
    fn corruptions_as_cpppo_means_them() {
        let read = adu(0x1234, 5, &[0x03, 0, 0, 0, 2]);
        let good = adu(0x1234, 5, &[0x03, 4, 0, 99, 0, 99]);
        let tcp = |c| faulty(corrupt(c), Transport::Tcp, &read);
        let mut want = good.clone();
        want[..2].copy_from_slice(&[0xED, 0xCB]);
        assert_eq!(tcp(Corruption::TransactionId), want);
        let mut want = good.clone();
        want[2..4].copy_from_slice(&[0xFF, 0xFF]);
        assert_eq!(tcp(Corruption::ProtocolId), want);
        let mut want = good.clone();
        want[6] = 0xFA;
        assert_eq!(tcp(Corruption::UnitId), want);
        let mut want = good.clone();
        want[7] = 0xFC;
        assert_eq!(tcp(Corruption::Function), want);
        // Registers: one more (999) or one fewer, at random.
        let mut seen = [false; 2];
        for seed in 0..20 {
            let mut dev = every_function_device();
            dev.faults = corrupt(Corruption::Registers);
            dev.seed(seed);
            let (out, _) = exchange(&mut ServerConn::tcp(), &mut dev, &read);
            if out == adu(0x1234, 5, &[0x03, 6, 0, 99, 0, 99, 0x03, 0xE7]) {
                seen[0] = true;
            } else {
                assert_eq!(out, adu(0x1234, 5, &[0x03, 2, 0, 99]));
                seen[1] = true;
            }
        }
        assert_eq!(seen, [true, true]);
        // A register write's echo has its address flipped; other replies are as they were.
        assert_eq!(
            faulty(
                corrupt(Corruption::Registers),
                Transport::Tcp,
                &adu(1, 1, &[0x06, 0, 1, 0, 7])
            ),
            adu(1, 1, &[0x06, 0xFF, 0xFE, 0, 7])
        );
        assert_eq!(
            faulty(
                corrupt(Corruption::Registers),
                Transport::Tcp,
                &adu(1, 1, &[0x10, 0, 1, 0, 1, 2, 0, 7])
            ),
            adu(1, 1, &[0x10, 0xFF, 0xFE, 0, 1])
        );
        assert_eq!(
            faulty(
                corrupt(Corruption::Registers),
                Transport::Tcp,
                &adu(1, 1, &[0x01, 0, 0, 0, 1])
            ),
            adu(1, 1, &[0x01, 1, 1])
        );
        // RTU: the CRC is computed over the corrupted frame; MBAP fields do not exist.
        let read = rtu(5, &[0x03, 0, 0, 0, 2]);
        let good = rtu(5, &[0x03, 4, 0, 99, 0, 99]);
        let rtu_fault = |c| faulty(corrupt(c), Transport::RtuOverTcp, &read);
        assert_eq!(
            rtu_fault(Corruption::UnitId),
            rtu(0xFA, &[0x03, 4, 0, 99, 0, 99])
        );
        assert_eq!(
            rtu_fault(Corruption::Function),
            rtu(5, &[0xFC, 4, 0, 99, 0, 99])
        );
        assert_eq!(rtu_fault(Corruption::TransactionId), good);
        assert_eq!(rtu_fault(Corruption::ProtocolId), good);
    }

    #[test]
    fn truncated_replies_are_strict_prefixes() {
        let read = adu(1, 1, &[0x03, 0, 0, 0, 10]);
        let good = faulty(Faults::default(), Transport::Tcp, &read);
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut dev = every_function_device();
            dev.faults.truncate = true;
            dev.seed(seed);
            let (out, _) = exchange(&mut ServerConn::tcp(), &mut dev, &read);
            assert!(out.len() < good.len());
            assert_eq!(out[..], good[..out.len()]);
            lengths.insert(out.len());
        }
        // From nothing at all to all but the last byte.
        assert!(lengths.contains(&0) && lengths.contains(&(good.len() - 1)));
        assert!(lengths.len() > good.len() / 2);
        // The statistics count what was sent.
        let mut dev = every_function_device();
        dev.faults.truncate = true;
        let mut conn = ServerConn::rtu_over_tcp();
        let (out, _) = exchange(&mut conn, &mut dev, &rtu(1, &[0x03, 0, 0, 0, 1]));
        assert_eq!(conn.statistics().bytes_out, out.len() as u64);
        assert!(out.len() < 7);
    }

    #[test]
    fn a_datagram_reply_truncated_to_nothing_is_not_sent() {
        // Found by the modbus_server fuzz target: handle_datagram said a reply was
        // there to send when truncation had kept none of its bytes (an empty datagram).
        use crate::engine::Server as _;
        let local: SocketAddr = "0.0.0.0:502".parse().unwrap();
        let peer: SocketAddr = "10.0.0.3:2222".parse().unwrap();
        let read = adu(1, 1, &[0x03, 0, 0, 0, 10]);
        let (mut empty, mut partial) = (0, 0);
        for seed in 0..200 {
            let mut dev = every_function_device();
            dev.faults.truncate = true;
            dev.seed(seed);
            let mut out = vec![0xAA];
            let sent = dev.handle_datagram(ms(1), local, peer, &read, &mut out);
            assert_eq!(sent, out.len() > 1, "seed {seed}: {out:02x?}");
            if sent {
                partial += 1;
            } else {
                empty += 1;
                assert_eq!(out, [0xAA], "nothing appended");
            }
        }
        assert!(empty > 0 && partial > 0, "{empty} empty, {partial} partial");
    }

    #[test]
    fn faults_change_while_serving() {
        let mut dev = every_function_device();
        let mut conn = ServerConn::tcp();
        let read = |tid| adu(tid, 1, &[0x03, 0, 0, 0, 1]);
        let (out, _) = exchange(&mut conn, &mut dev, &read(1));
        assert_eq!(out, adu(1, 1, &[0x03, 2, 0, 99]));
        dev.faults.corrupt = Some(Corruption::TransactionId);
        let (out, _) = exchange(&mut conn, &mut dev, &read(2));
        assert_eq!(out, adu(0xFFFD, 1, &[0x03, 2, 0, 99]));
        dev.faults = Faults::default();
        let (out, _) = exchange(&mut conn, &mut dev, &read(3));
        assert_eq!(out, adu(3, 1, &[0x03, 2, 0, 99]));
    }

    #[test]
    fn statistics_and_events_serialize() {
        let s = Statistics {
            bytes_in: 12,
            bytes_out: 11,
            requests: 1,
            replies: 1,
            ..Statistics::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"bytes_in":12,"bytes_out":11,"requests":1,"replies":1,"exceptions":0,"unanswered":0,"discarded":0}"#
        );
        assert_eq!(serde_json::from_str::<Statistics>(&json).unwrap(), s);
        let e = Event::Discarded { bytes: 3 };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    /// Walk RTU replies: each a whole frame with a good CRC that decodes as a response.
    fn rtu_replies(mut out: &[u8]) -> Result<usize, String> {
        let mut n = 0;
        while !out.is_empty() {
            let len = match response_len(out) {
                FrameLen::Known(len) => len,
                // A Return Query Data echo: found by its CRC, and zeros after it
                // belong to it (the framer's rule: the CRC matches through them).
                FrameLen::Unknown => {
                    let mut n = (4..=out.len())
                        .find(|n| crc_ok(&out[..*n]))
                        .ok_or("no CRC for an echo")?;
                    while out.get(n) == Some(&0) {
                        n += 1;
                    }
                    n
                }
                other => return Err(format!("{other:?} at {out:02x?}")),
            };
            let frame = out.get(..len).ok_or("short frame")?;
            let f = RtuFrame::decode(frame).map_err(|e| e.to_string())?;
            f.response().map_err(|e| e.to_string())?;
            out = &out[len..];
            n += 1;
        }
        Ok(n)
    }

    /// A piece of a request stream: a valid request, a header with any PDU, or noise.
    fn arb_piece() -> impl Strategy<Value = (u8, Vec<u8>)> {
        prop_oneof![
            4 => (any::<u8>(), arb_request()).prop_map(|(u, r)| (u % 4, r.to_vec())),
            2 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 1..40)).prop_map(|(u, p)| (u % 4, p)),
            1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(|n| (0xFF, n)),
        ]
    }

    fn any_device() -> Device {
        let mut dev =
            Device::from_specs(["1-2000", "10001-12000", "30001-30200", "40001-40200"]).unwrap();
        dev.add_unit(2, UnitData::parse(["40001-40010"]).unwrap());
        dev
    }

    proptest! {
        #[test]
        fn tcp_streams_never_panic_and_replies_are_well_formed(
            pieces in proptest::collection::vec(arb_piece(), 0..12),
            chunk in 1usize..80,
        ) {
            let mut stream = Vec::new();
            for (i, (unit, bytes)) in pieces.iter().enumerate() {
                if *unit == 0xFF {
                    stream.extend_from_slice(bytes);
                } else {
                    stream.extend(adu(i as u16, *unit, bytes));
                }
            }
            let mut dev = any_device();
            let mut conn = ServerConn::tcp();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                conn.handle_input(t0(), c, &mut dev);
                conn.poll_transmit(t0(), &mut out);
                while conn.poll_event().is_some() {}
            }
            let mut d = tcp::decoder();
            d.handle_input(&out);
            let mut n = 0;
            while let Some(f) = d.next_frame().unwrap() {
                let a = Adu::decode(&f).unwrap();
                prop_assert!(a.response().is_ok(), "{:02x?}", a);
                n += 1;
            }
            prop_assert_eq!(d.buffered(), 0);
            prop_assert_eq!(n, conn.statistics().replies);
            prop_assert_eq!(out.len() as u64, conn.statistics().bytes_out);
        }

        #[test]
        fn rtu_streams_never_panic_and_replies_are_well_formed(
            pieces in proptest::collection::vec(arb_piece(), 0..12),
            chunk in 1usize..80,
        ) {
            let mut stream = Vec::new();
            for (unit, bytes) in &pieces {
                if *unit == 0xFF {
                    stream.extend_from_slice(bytes);
                } else {
                    stream.extend(rtu(*unit, bytes));
                }
            }
            let mut dev = any_device();
            let mut conn = ServerConn::rtu_over_tcp();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                conn.handle_input(t0(), c, &mut dev);
                conn.poll_transmit(t0(), &mut out);
                while conn.poll_event().is_some() {}
            }
            let n = rtu_replies(&out);
            prop_assert_eq!(n, Ok(conn.statistics().replies as usize));
            prop_assert!(!conn.is_closed());
        }

        #[test]
        fn raw_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..300) {
            for transport in [Transport::Tcp, Transport::RtuOverTcp, Transport::RtuSerial { baud: 19_200 }] {
                let mut dev = any_device();
                dev.faults = Faults { delay: Some(Delay::Range(Duration::ZERO, Duration::from_millis(3))), truncate: true, corrupt: Some(Corruption::Registers) };
                let mut conn = ServerConn::new(transport);
                let mut out = Vec::new();
                for (i, c) in bytes.chunks(chunk).enumerate() {
                    conn.handle_input(ms(i as u64), c, &mut dev);
                    conn.handle_timeout(ms(i as u64), &mut dev);
                    conn.poll_transmit(ms(i as u64), &mut out);
                    while conn.poll_event().is_some() {}
                }
                while let Some(t) = conn.poll_timeout() {
                    conn.handle_timeout(t, &mut dev);
                    conn.poll_transmit(t, &mut out);
                }
                prop_assert!(out.len() as u64 == conn.statistics().bytes_out);
            }
        }
    }
}

/// Limits and hostile input over Modbus/TCP, at the engine.
#[cfg(test)]
mod limits_tests {
    use std::time::Duration;

    use super::*;
    use crate::modbus::device::Delay;

    /// Read Holding Registers 40001, one register, transaction `t`.
    fn read(t: u16) -> Vec<u8> {
        let [hi, lo] = t.to_be_bytes();
        vec![hi, lo, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]
    }

    fn device() -> Device {
        Device::from_specs(["40001-40010=7"]).unwrap()
    }

    /// The transaction ids of the whole responses in `bytes`.
    fn transactions(mut bytes: &[u8]) -> Vec<u16> {
        let mut ids = Vec::new();
        while let Ok(header) = tcp::MbapHeader::decode(bytes) {
            let len = header.adu_len();
            let Ok(adu) = tcp::Adu::decode(&bytes[..len]) else {
                break;
            };
            ids.push(adu.transaction_id);
            bytes = &bytes[len..];
        }
        assert!(bytes.is_empty(), "a partial response");
        ids
    }

    #[test]
    fn a_frame_never_finished_is_closed_after_the_frame_timeout() {
        let mut dev = device();
        let mut conn = ServerConn::tcp();
        let t0 = Instant::now();
        let timeout = dev.limits.frame_timeout.unwrap();
        conn.handle_input(t0, &read(1)[..7], &mut dev);
        assert_eq!(conn.buffered(), 7);
        assert_eq!(conn.poll_timeout(), Some(t0 + timeout));
        conn.handle_timeout(t0 + timeout - Duration::from_millis(1), &mut dev);
        assert!(!conn.is_closed());
        conn.handle_timeout(t0 + timeout, &mut dev);
        assert!(conn.is_closed());
        assert_eq!(dev.limits_reached.frame_timeout, 1);
        assert!(std::iter::from_fn(|| conn.poll_event())
            .any(|e| e == Event::LimitReached(Limit::FrameTimeout)));
        // Whole frames leave no deadline.
        let mut conn = ServerConn::tcp();
        conn.handle_input(t0, &read(2), &mut dev);
        assert!(conn.poll_transmit(t0, &mut Vec::new()));
        assert_eq!(conn.poll_timeout(), None);
    }

    #[test]
    fn a_flood_that_never_reads_stays_bounded_and_every_request_is_answered_once() {
        let mut dev = device();
        dev.limits.max_pending_replies = 8;
        dev.faults.delay = Some(Delay::Fixed(Duration::from_millis(50)));
        let mut conn = ServerConn::tcp();
        let stream: Vec<u8> = (0..2000).flat_map(read).collect();
        let (mut fed, mut now, mut out) = (0, Instant::now(), Vec::new());
        let mut most_pending = 0;
        while fed < stream.len() || conn.pending_replies() > 0 || conn.buffered() > 0 {
            if !conn.is_backlogged() && fed < stream.len() {
                let end = (fed + 16 * 1024).min(stream.len());
                conn.handle_input(now, &stream[fed..end], &mut dev);
                fed = end;
            }
            assert!(conn.pending_replies() <= 8);
            assert!(conn.buffered() <= 16 * 1024);
            most_pending = most_pending.max(conn.pending_replies());
            if let Some(at) = conn.poll_timeout() {
                if conn.is_backlogged() || fed == stream.len() {
                    now = now.max(at);
                    conn.handle_timeout(now, &mut dev);
                }
            }
            conn.poll_transmit(now, &mut out);
        }
        assert_eq!(most_pending, 8);
        assert_eq!(transactions(&out), (0..2000).collect::<Vec<u16>>());
        assert!(dev.limits_reached.pending_replies >= 1);
    }

    #[test]
    fn the_request_rate_is_held_to_its_limit_without_losing_requests() {
        let mut dev = device();
        dev.limits.max_request_rate = Some(4);
        let mut conn = ServerConn::tcp();
        let t0 = Instant::now();
        let stream: Vec<u8> = (0..10).flat_map(read).collect();
        conn.handle_input(t0, &stream, &mut dev);
        let mut out = Vec::new();
        conn.poll_transmit(t0, &mut out);
        assert_eq!(transactions(&out), vec![0, 1, 2, 3, 4]);
        assert!(conn.is_backlogged());
        let mut now = t0;
        while let Some(at) = conn.poll_timeout() {
            now = at;
            conn.handle_timeout(now, &mut dev);
            conn.poll_transmit(now, &mut out);
        }
        assert_eq!(transactions(&out), (0..10).collect::<Vec<u16>>());
        assert_eq!(now, t0 + Duration::from_millis(1250));
        assert_eq!(dev.limits_reached.request_rate, 1);
    }
}
