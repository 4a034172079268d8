//! [`ServerConn`]: one connection's protocol engine for a simulated Modbus [`Device`],
//! over Modbus/TCP (MBAP), RTU over TCP, or a serial line.
//!
//! The engine keeps only per-connection state (the framer, replies waiting for their
//! release time, events, statistics); the [`Device`] (tables, identity, faults) is
//! shared and passed by `&mut` to each call that may touch it.
//!
//! ## Contract
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
//!   another device's on the line: no reply.
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
use std::time::Instant;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use super::device::{Corruption, Device, UnknownUnit, Write, CORRUPT_EXTRA_REGISTER};
use super::pdu::{Exception, Registers, Request, RequestError, Response};
use super::rtu::{Direction, RtuFrame, RtuFramer, BROADCAST_ADDRESS};
use super::tcp::{self, TcpDecoder, MBAP_HEADER_LEN, PROTOCOL_ID_MODBUS};
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

#[derive(Debug)]
struct Pending {
    due: Instant,
    bytes: Vec<u8>,
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
    events: VecDeque<Event>,
    stats: Statistics,
    writes: Vec<Write>,
    /// No more input is read (protocol error or end of input).
    closing: bool,
    discarded_seen: u64,
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
            events: VecDeque::new(),
            stats: Statistics::default(),
            writes: Vec::new(),
            closing: false,
            discarded_seen: 0,
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
        if !self.closing {
            self.drain_frames(now, device);
        }
    }

    /// The peer has closed its side: nothing more will be read; pending replies are
    /// still sent, then [`ServerConn::is_closed`] becomes true.
    pub fn handle_eof(&mut self) {
        self.closing = true;
    }

    /// Append every reply due by `now` to `out`, in request order; false when none is.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while let Some(p) = self.pending.front() {
            if p.due > now {
                break;
            }
            if let Some(p) = self.pending.pop_front() {
                self.stats.bytes_out = self.stats.bytes_out.saturating_add(p.bytes.len() as u64);
                out.extend_from_slice(&p.bytes);
                any = true;
            }
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
        match (reply, silence) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the adapter should close the connection: the stream failed or ended,
    /// and every reply has been handed out.
    pub fn is_closed(&self) -> bool {
        self.closing && self.pending.is_empty()
    }

    fn drain_frames(&mut self, now: Instant, device: &mut Device) {
        loop {
            let frame = match &mut self.framer {
                Framer::Tcp(d) => match d.next_frame() {
                    Ok(Some(f)) => Ok(f),
                    Ok(None) => break,
                    Err(e) => Err(e),
                },
                Framer::Rtu(f) => match f.poll_frame() {
                    Some(f) => {
                        self.handle_rtu(now, &f, device);
                        continue;
                    }
                    None => break,
                },
            };
            match frame {
                Ok(bytes) => self.handle_tcp(now, &bytes, device),
                Err(e) => self.fail(&e),
            }
            if self.closing {
                break;
            }
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
        let reply = match request {
            Ok(req) => {
                let reply = device.serve(unit, &req, &mut self.writes);
                self.flush_writes();
                match reply {
                    Some(r) => r,
                    None => return self.unanswered(),
                }
            }
            Err(e) => {
                self.refused(unit, &e);
                Response::Exception(e.exception)
            }
        };
        self.reply(now, envelope, reply, device);
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
        let faults = device.faults.clone();
        let rng = device.rng();
        let reply = match faults.corrupt {
            Some(Corruption::Registers) => corrupt_registers(reply, rng.coin()),
            _ => reply,
        };
        let mut pdu = reply.to_vec();
        if faults.corrupt == Some(Corruption::Function) {
            if let Some(fc) = pdu.first_mut() {
                *fc ^= 0xFF;
            }
        }
        let flip_unit = |unit: u8| {
            if faults.corrupt == Some(Corruption::UnitId) {
                unit ^ 0xFF
            } else {
                unit
            }
        };
        let mut bytes = Vec::with_capacity(MBAP_HEADER_LEN + pdu.len() + 2);
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
                bytes.put_u16(u16::try_from(pdu.len() + 1).unwrap_or(u16::MAX));
                bytes.put_u8(flip_unit(unit));
                bytes.put_slice(&pdu);
            }
            Envelope::Rtu { unit } => {
                RtuFrame {
                    unit: flip_unit(unit),
                    pdu: pdu.into(),
                }
                .encode(&mut bytes);
            }
        }
        if faults.truncate {
            // cpppo: keep len - randint(1, len) bytes, from none to all but one.
            let len = bytes.len() as u64;
            let keep = len - rng.between(1, len.max(1));
            bytes.truncate(usize::try_from(keep).unwrap_or(0));
        }
        let mut due = match faults.delay {
            Some(d) => now.checked_add(d.sample(rng)).unwrap_or(now),
            None => now,
        };
        // Replies leave in request order: none overtakes one held longer.
        if let Some(last) = self.pending.back() {
            due = due.max(last.due);
        }
        self.pending.push_back(Pending { due, bytes });
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
