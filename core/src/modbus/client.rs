//! [`ClientConn`]: a Modbus client's protocol engine for one connection, over
//! Modbus/TCP (MBAP), RTU over TCP, or a serial line. Sans-IO: it never touches a socket
//! or reads a clock; the adapter passes bytes and time in.
//!
//! ## Contract
//!
//! Commands:
//! - [`ClientConn::submit`]`(now, request, unit)` queues a request and returns its
//!   [`OpId`]. Requests are sent in submission order, at most
//!   [`ClientConfig::depth`] in flight at once over Modbus/TCP (matched by transaction
//!   id, so replies may come back in any order), always one at a time over RTU (a
//!   serial line has no transaction id: the next frame is the answer).
//!
//! Inputs:
//! - [`ClientConn::handle_input`]`(now, bytes)`: reply bytes as they arrived, split
//!   anywhere; output is identical however they are split.
//! - [`ClientConn::handle_timeout`]`(now)`: a request's deadline (sent at + timeout)
//!   has passed, or a serial line's end-of-frame silence.
//! - [`ClientConn::handle_eof`]: the server closed the connection.
//!
//! Outputs, drained after every command or input in this order:
//! - [`ClientConn::poll_transmit`]`(now, out)`: appends the requests that may be sent
//!   now; each one's timeout starts here (time spent queued behind a full pipeline is
//!   not counted against it).
//! - [`ClientConn::poll_event`]: [`ClientEvent::Reply`] (a response, or the exception
//!   the server answered: exceptions are data), [`ClientEvent::Timeout`],
//!   [`ClientEvent::Broadcast`] (an RTU unit-0 request, finished when sent since no
//!   server answers it), [`ClientEvent::Invalid`] (the reply for an op did not answer
//!   its request), [`ClientEvent::Unmatched`] (a reply for nothing in flight: a late
//!   reply after its timeout, or a corrupted transaction id; dropped, never fatal),
//!   [`ClientEvent::Discarded`] (RTU noise), and finally [`ClientEvent::Lost`] with an
//!   [`ClientEvent::Aborted`] for every op not finished, when the stream can no longer
//!   be followed.
//! - [`ClientConn::poll_timeout`]: the earliest request deadline (or serial silence).
//! - [`ClientConn::is_closed`]: the adapter closes the socket.
//!
//! Every op submitted ends in exactly one of `Reply`, `Timeout`, `Broadcast`,
//! `Invalid` or `Aborted`.
//!
//! ## Example
//!
//! Against the simulated device's server engine, in memory:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cpppo_core::modbus::client::{ClientConfig, ClientConn, ClientEvent};
//! use cpppo_core::modbus::device::Device;
//! use cpppo_core::modbus::pdu::{Request, Response};
//! use cpppo_core::modbus::server::ServerConn;
//!
//! let mut device = Device::from_specs(["40001-40010=99"]).unwrap();
//! let mut server = ServerConn::tcp();
//! let mut client = ClientConn::tcp(ClientConfig { depth: 2, ..ClientConfig::default() });
//! let t0 = Instant::now();
//!
//! let write = client.submit(t0, Request::WriteSingleRegister { address: 8, value: 999 }, 1);
//! let read = client.submit(t0, Request::ReadHoldingRegisters { address: 7, quantity: 3 }, 1);
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! while client.poll_transmit(t0, &mut to_server) {}
//! assert_eq!(to_server.len(), 2 * 12); // both requests pipelined
//! server.handle_input(t0, &to_server, &mut device);
//! while server.poll_transmit(t0, &mut to_client) {}
//! client.handle_input(t0, &to_client);
//!
//! let mut replies = Vec::new();
//! while let Some(event) = client.poll_event() {
//!     if let ClientEvent::Reply { op, response: Ok(response), .. } = event {
//!         replies.push((op, response));
//!     }
//! }
//! assert_eq!(replies[0], (write, Response::WriteSingleRegister { address: 8, value: 999 }));
//! let Response::ReadHoldingRegisters(values) = &replies[1].1 else { panic!() };
//! assert_eq!((replies[1].0, values.to_vec()), (read, vec![99, 999, 99]));
//!
//! // Nothing in flight: no deadline.
//! assert_eq!(client.poll_timeout(), None);
//! # let _ = Duration::ZERO;
//! ```
//!
//! ## Matching replies
//!
//! Over Modbus/TCP a reply is matched by transaction id (and must carry the request's
//! unit id); one for no request in flight is [`ClientEvent::Unmatched`]. Over RTU there
//! is no id: the next valid frame from the request's unit answers it, so a reply that
//! arrives after its request timed out may be taken for the next request's if that one
//! asks the same unit the same question. Every reply is checked against its request
//! ([`answers`]): function code, quantity, echo. A bit read's reply is cut to the
//! quantity asked.
//!
//! ## Out of scope
//!
//! Connecting and reconnecting (the adapter's, or the [`super::poller::Poller`]'s), the
//! RTU turnaround delay after a broadcast and the 3.5-character silence before the
//! next request on a serial line (the adapter's write pacing), and retries.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use super::pdu::{Bits, Exception, Request, Response};
use super::rtu::{crc16, Direction, RtuFrame, RtuFramer, BROADCAST_ADDRESS};
use super::server::{ErrorInfo, Transport};
use super::tcp::{self, TcpDecoder, PROTOCOL_ID_MODBUS};
use crate::wire::{DecodeError, Encode};

/// The identity of one submitted request, unique on its [`ClientConn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpId(pub u64);

/// Most requests a Modbus/TCP client may keep in flight: one per transaction id.
pub const MAX_DEPTH: usize = 1 << 16;

/// The per-request timeout when none is configured (pymodbus' default, 3 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// How a [`ClientConn`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// Requests in flight at once over Modbus/TCP (1 to [`MAX_DEPTH`]; 1 by default,
    /// since many devices answer only one at a time). Always 1 over RTU.
    pub depth: usize,
    /// How long after a request is sent its reply may take.
    pub timeout: Duration,
    /// Over Modbus/TCP, treat unit 0 as a broadcast too (finished when sent, as over
    /// RTU). Off by default: Modbus/TCP servers answer unit 0 like any unit.
    pub tcp_broadcast: bool,
    /// The first transaction id used (then counted up, skipping ids in flight).
    pub first_transaction_id: u16,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            depth: 1,
            timeout: DEFAULT_TIMEOUT,
            tcp_broadcast: false,
            first_transaction_id: 1,
        }
    }
}

/// Why a connection can no longer be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LostReason {
    /// The reply stream is out of step (an MBAP header that can never frame).
    ProtocolError(ErrorInfo),
    /// The server closed the connection.
    Closed,
}

/// What happened on a [`ClientConn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientEvent {
    /// The reply to `op`: the response, or the exception the server answered.
    Reply {
        /// The op answered.
        op: OpId,
        /// The unit that answered.
        unit: u8,
        /// The response (never [`Response::Exception`]), or the exception.
        response: Result<Response<'static>, Exception>,
    },
    /// `op` was a broadcast (unit 0 over RTU): sent, and no reply is expected.
    Broadcast {
        /// The op sent.
        op: OpId,
    },
    /// No reply to `op` within its timeout; a reply arriving later is
    /// [`ClientEvent::Unmatched`] (over TCP).
    Timeout {
        /// The op that timed out.
        op: OpId,
    },
    /// The frame answering `op` did not answer its request (undecodable PDU, another
    /// function code, unit or quantity). `op` is finished.
    Invalid {
        /// The op whose reply was wrong.
        op: OpId,
        /// What was wrong.
        error: ErrorInfo,
    },
    /// A reply that matches no request in flight (late, or a corrupted transaction id
    /// or unit); dropped.
    Unmatched {
        /// Its MBAP transaction id (Modbus/TCP only).
        transaction_id: Option<u16>,
        /// Its unit id.
        unit: u8,
    },
    /// RTU only: bytes that formed no valid frame, dropped as noise.
    Discarded {
        /// How many bytes.
        bytes: u64,
    },
    /// `op` will never be answered: the connection was lost before it was.
    Aborted {
        /// The op abandoned.
        op: OpId,
    },
    /// The connection is unusable: close it. Every unfinished op gets an
    /// [`ClientEvent::Aborted`] after this.
    Lost(LostReason),
}

/// Per-connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStatistics {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed out by [`ClientConn::poll_transmit`].
    pub bytes_out: u64,
    /// Requests sent.
    pub requests: u64,
    /// Replies matched to their request (exceptions included).
    pub replies: u64,
    /// Exception replies.
    pub exceptions: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Replies that matched nothing in flight.
    pub unmatched: u64,
    /// Replies that did not answer their request.
    pub invalid: u64,
}

#[derive(Debug)]
struct Queued {
    op: OpId,
    unit: u8,
    request: Request<'static>,
    timeout: Duration,
}

#[derive(Debug)]
struct InFlight {
    op: OpId,
    transaction_id: u16,
    unit: u8,
    request: Request<'static>,
    deadline: Instant,
}

#[derive(Debug)]
enum Framer {
    Tcp(TcpDecoder),
    Rtu(RtuFramer),
}

/// A Modbus client's engine for one connection. See the [module documentation](self).
#[derive(Debug)]
pub struct ClientConn {
    transport: Transport,
    config: ClientConfig,
    framer: Framer,
    queue: VecDeque<Queued>,
    in_flight: Vec<InFlight>,
    events: VecDeque<ClientEvent>,
    next_op: u64,
    next_tid: u16,
    stats: ClientStatistics,
    discarded_seen: u64,
    closed: bool,
}

impl ClientConn {
    /// An engine for `transport`.
    pub fn new(transport: Transport, config: ClientConfig) -> Self {
        let framer = match transport {
            Transport::Tcp => Framer::Tcp(tcp::decoder()),
            Transport::RtuOverTcp => Framer::Rtu(RtuFramer::over_tcp(Direction::Responses)),
            Transport::RtuSerial { baud } => {
                Framer::Rtu(RtuFramer::new(Direction::Responses, baud))
            }
        };
        ClientConn {
            transport,
            config,
            framer,
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            events: VecDeque::new(),
            next_op: 0,
            next_tid: config.first_transaction_id,
            stats: ClientStatistics::default(),
            discarded_seen: 0,
            closed: false,
        }
    }

    /// A Modbus/TCP engine.
    pub fn tcp(config: ClientConfig) -> Self {
        Self::new(Transport::Tcp, config)
    }

    /// An RTU-over-TCP engine (one request at a time).
    pub fn rtu_over_tcp(config: ClientConfig) -> Self {
        Self::new(Transport::RtuOverTcp, config)
    }

    /// The framing in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// This connection's counters.
    pub fn statistics(&self) -> &ClientStatistics {
        &self.stats
    }

    /// Requests in flight at most: [`ClientConfig::depth`] (at least 1, at most
    /// [`MAX_DEPTH`]) over Modbus/TCP, 1 over RTU.
    pub fn depth(&self) -> usize {
        match self.transport {
            Transport::Tcp => self.config.depth.clamp(1, MAX_DEPTH),
            _ => 1,
        }
    }

    /// Requests sent and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests submitted and not yet sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether every op submitted has finished.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// Queue `request` for `unit`, with the configured timeout. Returns at once; the
    /// request goes out through [`ClientConn::poll_transmit`]. On a closed connection
    /// the op is [aborted](ClientEvent::Aborted) at once.
    pub fn submit(&mut self, now: Instant, request: Request<'_>, unit: u8) -> OpId {
        let timeout = self.config.timeout;
        self.submit_with_timeout(now, request, unit, timeout)
    }

    /// [`ClientConn::submit`] with this request's own timeout.
    pub fn submit_with_timeout(
        &mut self,
        _now: Instant,
        request: Request<'_>,
        unit: u8,
        timeout: Duration,
    ) -> OpId {
        let op = OpId(self.next_op);
        self.next_op = self.next_op.wrapping_add(1);
        if self.closed {
            self.events.push_back(ClientEvent::Aborted { op });
        } else {
            self.queue.push_back(Queued {
                op,
                unit,
                request: request.into_owned(),
                timeout,
            });
        }
        op
    }

    fn is_broadcast(&self, unit: u8) -> bool {
        unit == BROADCAST_ADDRESS && (self.transport != Transport::Tcp || self.config.tcp_broadcast)
    }

    fn allocate_tid(&mut self) -> u16 {
        // At most MAX_DEPTH in flight, so a free id is always found.
        let mut tid = self.next_tid;
        for _ in 0..MAX_DEPTH {
            if !self.in_flight.iter().any(|f| f.transaction_id == tid) {
                break;
            }
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        tid
    }

    /// Append every request that may be sent now to `out`; false when none may.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while !self.closed && self.in_flight.len() < self.depth() {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            let start = out.len();
            let tid = match self.transport {
                Transport::Tcp => {
                    let tid = self.allocate_tid();
                    out.put_u16(tid);
                    out.put_u16(PROTOCOL_ID_MODBUS);
                    let len = q.request.encoded_len().saturating_add(1);
                    out.put_u16(u16::try_from(len).unwrap_or(u16::MAX));
                    out.put_u8(q.unit);
                    q.request.encode(out);
                    tid
                }
                _ => {
                    out.put_u8(q.unit);
                    q.request.encode(out);
                    let crc = crc16(out.get(start..).unwrap_or_default());
                    out.put_u16_le(crc);
                    0
                }
            };
            any = true;
            let sent = out.len().saturating_sub(start) as u64;
            self.stats.bytes_out = self.stats.bytes_out.saturating_add(sent);
            self.stats.requests = self.stats.requests.saturating_add(1);
            if self.is_broadcast(q.unit) {
                self.events.push_back(ClientEvent::Broadcast { op: q.op });
                continue;
            }
            self.in_flight.push(InFlight {
                op: q.op,
                transaction_id: tid,
                unit: q.unit,
                request: q.request,
                deadline: now.checked_add(q.timeout).unwrap_or(now),
            });
        }
        any
    }

    /// Feed reply bytes received at `now`. Ignored once the connection is lost.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(data.len() as u64);
        if self.closed {
            return;
        }
        match &mut self.framer {
            Framer::Tcp(d) => d.handle_input(data),
            Framer::Rtu(f) => f.handle_input(now, data),
        }
        self.drain_frames();
    }

    /// Let time pass: requests past their deadline time out; on a serial line, the
    /// end-of-frame silence may complete or drop what is buffered.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Framer::Rtu(f) = &mut self.framer {
            f.handle_timeout(now);
        }
        self.drain_frames();
        let mut i = 0;
        while let Some(f) = self.in_flight.get(i) {
            if f.deadline <= now {
                let f = self.in_flight.remove(i);
                self.stats.timeouts = self.stats.timeouts.saturating_add(1);
                self.events.push_back(ClientEvent::Timeout { op: f.op });
            } else {
                i += 1;
            }
        }
    }

    /// The server closed its side: every unfinished op is aborted.
    pub fn handle_eof(&mut self, _now: Instant) {
        self.lose(LostReason::Closed);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ClientConn::handle_timeout`] must next be called: the earliest request
    /// deadline, or the end of a serial line's silence.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let framer = match &self.framer {
            Framer::Rtu(f) => f.poll_timeout(),
            Framer::Tcp(_) => None,
        };
        let deadline = self.in_flight.iter().map(|f| f.deadline).min();
        crate::engine::earliest(framer, deadline)
    }

    /// The connection is lost: the adapter closes the socket.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn lose(&mut self, reason: LostReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.events.push_back(ClientEvent::Lost(reason));
        let mut ops: Vec<OpId> = self.in_flight.drain(..).map(|f| f.op).collect();
        ops.extend(self.queue.drain(..).map(|q| q.op));
        self.events
            .extend(ops.into_iter().map(|op| ClientEvent::Aborted { op }));
    }

    fn drain_frames(&mut self) {
        loop {
            if self.closed {
                break;
            }
            match &mut self.framer {
                Framer::Tcp(d) => match d.next_frame() {
                    Ok(Some(frame)) => self.handle_tcp(&frame),
                    Ok(None) => break,
                    Err(e) => self.lose(LostReason::ProtocolError((&e).into())),
                },
                Framer::Rtu(f) => match f.poll_frame() {
                    Some(frame) => self.handle_rtu(&frame),
                    None => break,
                },
            }
        }
        if let Framer::Rtu(f) = &self.framer {
            let dropped = f.discarded().saturating_sub(self.discarded_seen);
            if dropped > 0 {
                self.discarded_seen = f.discarded();
                self.events
                    .push_back(ClientEvent::Discarded { bytes: dropped });
            }
        }
    }

    fn unmatched(&mut self, transaction_id: Option<u16>, unit: u8) {
        self.stats.unmatched = self.stats.unmatched.saturating_add(1);
        self.events.push_back(ClientEvent::Unmatched {
            transaction_id,
            unit,
        });
    }

    fn handle_tcp(&mut self, frame: &[u8]) {
        let adu = match tcp::Adu::decode(frame) {
            Ok(adu) => adu,
            Err(e) => return self.lose(LostReason::ProtocolError((&e).into())),
        };
        let Some(i) = self
            .in_flight
            .iter()
            .position(|f| f.transaction_id == adu.transaction_id)
        else {
            return self.unmatched(Some(adu.transaction_id), adu.unit_id);
        };
        if self.in_flight.get(i).is_some_and(|f| f.unit != adu.unit_id) {
            return self.unmatched(Some(adu.transaction_id), adu.unit_id);
        }
        let f = self.in_flight.remove(i);
        let response = adu.response();
        self.finish(f, adu.unit_id, response);
    }

    fn handle_rtu(&mut self, frame: &RtuFrame<'_>) {
        // One request at a time: the frame answers it if its unit does.
        let Some(i) = self.in_flight.iter().position(|f| f.unit == frame.unit) else {
            return self.unmatched(None, frame.unit);
        };
        let f = self.in_flight.remove(i);
        let response = frame.response();
        self.finish(f, frame.unit, response);
    }

    fn finish(&mut self, f: InFlight, unit: u8, response: Result<Response<'_>, DecodeError>) {
        let checked = response.map_err(|e| ErrorInfo::from(&e)).and_then(|r| {
            answers(&f.request, &r)
                .map(|()| r)
                .map_err(|message| ErrorInfo {
                    field: "modbus.pdu".to_string(),
                    offset: 0,
                    message,
                })
        });
        match checked {
            Ok(Response::Exception(e)) => {
                self.stats.replies = self.stats.replies.saturating_add(1);
                self.stats.exceptions = self.stats.exceptions.saturating_add(1);
                self.events.push_back(ClientEvent::Reply {
                    op: f.op,
                    unit,
                    response: Err(e),
                });
            }
            Ok(r) => {
                self.stats.replies = self.stats.replies.saturating_add(1);
                self.events.push_back(ClientEvent::Reply {
                    op: f.op,
                    unit,
                    response: Ok(truncate_bits(&f.request, r)),
                });
            }
            Err(error) => {
                self.stats.invalid = self.stats.invalid.saturating_add(1);
                self.events
                    .push_back(ClientEvent::Invalid { op: f.op, error });
            }
        }
    }
}

/// A bit read's reply carries whole bytes: keep the bits asked for.
fn truncate_bits(request: &Request<'_>, response: Response<'_>) -> Response<'static> {
    let keep = |bits: &Bits<'_>, quantity: u16| {
        let values: Vec<bool> = bits.iter().take(usize::from(quantity)).collect();
        Bits::from_bools(&values)
    };
    match (request, &response) {
        (Request::ReadCoils { quantity, .. }, Response::ReadCoils(bits)) => {
            Response::ReadCoils(keep(bits, *quantity))
        }
        (Request::ReadDiscreteInputs { quantity, .. }, Response::ReadDiscreteInputs(bits)) => {
            Response::ReadDiscreteInputs(keep(bits, *quantity))
        }
        _ => response.into_owned(),
    }
}

/// Whether `response` answers `request`: the same function code (or its exception),
/// the quantity asked, the echo expected.
pub fn answers(request: &Request<'_>, response: &Response<'_>) -> Result<(), String> {
    use Request as Q;
    use Response as R;
    let want = request.function();
    if let R::Exception(e) = response {
        return if e.function == want {
            Ok(())
        } else {
            Err(format!(
                "exception for function {:#04x}, asked {want:#04x}",
                e.function
            ))
        };
    }
    if response.function() != want {
        return Err(format!(
            "function {:#04x} answers {want:#04x}",
            response.function()
        ));
    }
    let ok = match (request, response) {
        (Q::ReadCoils { quantity, .. }, R::ReadCoils(bits))
        | (Q::ReadDiscreteInputs { quantity, .. }, R::ReadDiscreteInputs(bits)) => {
            bits.as_bytes().len() == usize::from(*quantity).div_ceil(8)
        }
        (Q::ReadHoldingRegisters { quantity, .. }, R::ReadHoldingRegisters(regs))
        | (Q::ReadInputRegisters { quantity, .. }, R::ReadInputRegisters(regs)) => {
            regs.len() == usize::from(*quantity)
        }
        (
            Q::ReadWriteMultipleRegisters { read_quantity, .. },
            R::ReadWriteMultipleRegisters(regs),
        ) => regs.len() == usize::from(*read_quantity),
        (
            Q::WriteSingleCoil { address, value },
            R::WriteSingleCoil {
                address: a,
                value: v,
            },
        ) => address == a && value == v,
        (
            Q::WriteSingleRegister { address, value },
            R::WriteSingleRegister {
                address: a,
                value: v,
            },
        ) => address == a && value == v,
        (
            Q::WriteMultipleCoils { address, values },
            R::WriteMultipleCoils {
                address: a,
                quantity,
            },
        ) => address == a && values.quantity() == *quantity,
        (
            Q::WriteMultipleRegisters { address, values },
            R::WriteMultipleRegisters {
                address: a,
                quantity,
            },
        ) => address == a && values.len() == usize::from(*quantity),
        (q @ Q::MaskWriteRegister { .. }, r @ R::MaskWriteRegister { .. }) => {
            q.to_vec() == r.to_vec()
        }
        (
            Q::Diagnostics { sub_function, .. },
            R::Diagnostics {
                sub_function: s, ..
            },
        ) => sub_function == s,
        (
            Q::ReadDeviceIdentification {
                read_device_id_code,
                ..
            },
            R::ReadDeviceIdentification {
                read_device_id_code: c,
                ..
            },
        ) => read_device_id_code == c,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err("the reply's address, value or quantity does not answer the request".to_string())
    }
}

/// How one Modbus request ended, for the pipeline runner ([`crate::pipeline`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server answered: the response, or its exception.
    Answered(Result<Response<'static>, Exception>),
    /// A broadcast: sent, no reply expected (not a failure, no value).
    Broadcast,
    /// No reply within its timeout.
    Timeout,
    /// The reply did not answer the request.
    Invalid(ErrorInfo),
    /// The connection was lost first.
    Aborted,
}

/// One Modbus operation for the pipeline runner: the unit and its request.
pub type ModbusOp = (u8, Request<'static>);

impl crate::pipeline::Pipelined for ClientConn {
    type Op = ModbusOp;
    type Outcome = Outcome;
    type Value = Response<'static>;
    type Event = ClientEvent;

    fn begin(&mut self, pipelining: &crate::pipeline::Pipelining) {
        self.config.depth = pipelining.depth.clamp(1, MAX_DEPTH);
    }

    fn default_timeout(&self) -> Duration {
        self.config.timeout
    }

    fn submit_op(&mut self, now: Instant, (unit, request): ModbusOp, timeout: Duration) -> u64 {
        self.submit_with_timeout(now, request, unit, timeout).0
    }

    fn poll_done(&mut self) -> Option<crate::pipeline::Done<Outcome, ClientEvent>> {
        use crate::pipeline::Done;
        let finished = |OpId(id), outcome| Done::Finished { id, outcome };
        Some(match self.poll_event()? {
            ClientEvent::Reply { op, response, .. } => finished(op, Outcome::Answered(response)),
            ClientEvent::Broadcast { op } => finished(op, Outcome::Broadcast),
            ClientEvent::Timeout { op } => finished(op, Outcome::Timeout),
            ClientEvent::Invalid { op, error } => finished(op, Outcome::Invalid(error)),
            ClientEvent::Aborted { op } => finished(op, Outcome::Aborted),
            other => Done::Other(other),
        })
    }

    fn value(outcome: Outcome) -> Option<Response<'static>> {
        match outcome {
            Outcome::Answered(Ok(response)) => Some(response),
            _ => None,
        }
    }

    fn failed(outcome: &Outcome) -> bool {
        !matches!(outcome, Outcome::Answered(Ok(_)) | Outcome::Broadcast)
    }

    fn counters(&self) -> (u64, u64) {
        (self.statistics().requests, self.statistics().requests)
    }
}

impl crate::pipeline::Pipelining {
    /// What a Modbus client's own configuration says (its depth and timeout).
    pub fn of_modbus(config: &ClientConfig) -> Self {
        crate::pipeline::Pipelining {
            depth: config.depth,
            timeout: Some(config.timeout),
            ..crate::pipeline::Pipelining::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::device::{Corruption, Delay, Device};
    use crate::modbus::pdu::{ExceptionCode, Registers, READ_DEVICE_ID_BASIC};
    use crate::modbus::server::ServerConn;
    use proptest::prelude::*;

    fn device() -> Device {
        Device::from_specs([
            "1-100=1,0,1",
            "10001-10100=0,1",
            "30001-30100=7",
            "40001-40200=99",
        ])
        .unwrap()
    }

    /// Every function code the client speaks, with the device's own answer as oracle.
    fn every_request() -> Vec<Request<'static>> {
        vec![
            Request::ReadCoils {
                address: 0,
                quantity: 11,
            },
            Request::ReadDiscreteInputs {
                address: 3,
                quantity: 9,
            },
            Request::ReadHoldingRegisters {
                address: 0,
                quantity: 125,
            },
            Request::ReadInputRegisters {
                address: 90,
                quantity: 10,
            },
            Request::WriteSingleCoil {
                address: 1,
                value: true,
            },
            Request::WriteSingleRegister {
                address: 8,
                value: 999,
            },
            Request::ReadExceptionStatus,
            Request::Diagnostics {
                sub_function: 0,
                data: vec![0xA5, 0x37].into(),
            },
            Request::WriteMultipleCoils {
                address: 20,
                values: Bits::from_bools(&[
                    true, false, true, true, false, false, true, true, true,
                ]),
            },
            Request::WriteMultipleRegisters {
                address: 10,
                values: Registers::from_values(&[1, 2, 3]),
            },
            Request::ReportServerId,
            Request::MaskWriteRegister {
                address: 4,
                and_mask: 0x00F2,
                or_mask: 0x0025,
            },
            Request::ReadWriteMultipleRegisters {
                read_address: 8,
                read_quantity: 4,
                write_address: 9,
                values: Registers::from_values(&[7, 8]),
            },
            Request::ReadDeviceIdentification {
                read_device_id_code: READ_DEVICE_ID_BASIC,
                object_id: 0,
            },
            // An exception: past the end of the table.
            Request::ReadHoldingRegisters {
                address: 199,
                quantity: 2,
            },
        ]
    }

    fn expected(
        requests: &[Request<'static>],
        unit: u8,
    ) -> Vec<Result<Response<'static>, Exception>> {
        let mut dev = device();
        let mut writes = Vec::new();
        requests
            .iter()
            .map(|r| match dev.serve(unit, r, &mut writes).unwrap() {
                Response::Exception(e) => Err(e),
                r => Ok(r),
            })
            .collect()
    }

    /// Drive client and server until no byte moves, delivering in `chunk`-byte pieces.
    /// Longer than the 3.5-character silence at 19200 baud (2.005 ms).
    const SILENCE: Duration = Duration::from_millis(5);

    fn pump(
        now: Instant,
        client: &mut ClientConn,
        server: &mut ServerConn,
        dev: &mut Device,
        chunk: usize,
    ) -> Vec<ClientEvent> {
        exchange(now, client, server, dev, chunk);
        std::iter::from_fn(|| client.poll_event()).collect()
    }

    /// As [`pump`], leaving the client's events to whoever polls them.
    fn exchange(
        mut now: Instant,
        client: &mut ClientConn,
        server: &mut ServerConn,
        dev: &mut Device,
        chunk: usize,
    ) {
        loop {
            let (mut up, mut down) = (Vec::new(), Vec::new());
            while client.poll_transmit(now, &mut up) {}
            for piece in up.chunks(chunk) {
                server.handle_input(now, piece, dev);
            }
            while server.poll_transmit(now, &mut down) {}
            for piece in down.chunks(chunk) {
                client.handle_input(now, piece);
            }
            if up.is_empty() && down.is_empty() {
                // A serial line's frames without a length end at the silence.
                match crate::engine::earliest(client.poll_timeout(), server.poll_timeout()) {
                    Some(at) if at <= now + SILENCE && !client.is_idle() => {
                        now += SILENCE;
                        server.handle_timeout(now, dev);
                        client.handle_timeout(now);
                    }
                    _ => return,
                }
            }
        }
    }

    fn replies(events: &[ClientEvent]) -> Vec<(OpId, Result<Response<'static>, Exception>)> {
        events
            .iter()
            .map(|e| match e {
                ClientEvent::Reply { op, response, .. } => (*op, response.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn run_all(transport: Transport, depth: usize, chunk: usize) {
        let t0 = Instant::now();
        let mut dev = device();
        let mut server = ServerConn::new(transport);
        let mut client = ClientConn::new(
            transport,
            ClientConfig {
                depth,
                ..ClientConfig::default()
            },
        );
        let requests = every_request();
        let ops: Vec<OpId> = requests
            .iter()
            .map(|r| client.submit(t0, r.clone(), 1))
            .collect();
        let events = pump(t0, &mut client, &mut server, &mut dev, chunk);
        let got = replies(&events);
        let want: Vec<_> = ops.into_iter().zip(expected(&requests, 1)).collect();
        assert_eq!(got, want, "{transport:?} depth {depth} chunk {chunk}");
        assert!(client.is_idle());
        assert_eq!(client.statistics().replies, requests.len() as u64);
        assert_eq!(client.statistics().exceptions, 1);
        // Spot checks of the oracle itself.
        assert!(matches!(
            &got[5].1,
            Ok(Response::WriteSingleRegister {
                address: 8,
                value: 999
            })
        ));
        assert_eq!(
            got[14].1,
            Err(Exception {
                function: 3,
                code: ExceptionCode::ILLEGAL_DATA_ADDRESS
            })
        );
        assert_eq!(
            dev.unit(1).unwrap().holding_registers.range(8, 4).unwrap(),
            [999, 7, 8, 2]
        );
    }

    #[test]
    fn every_function_code_over_tcp_at_depth_1_and_16() {
        for depth in [1, 16] {
            for chunk in [1, 7, 300] {
                run_all(Transport::Tcp, depth, chunk);
            }
        }
    }

    #[test]
    fn the_pipeline_runner_gives_every_reply_in_order() {
        use crate::pipeline::{Pipeline, Pipelining};
        for (transport, depth) in [
            (Transport::Tcp, 1),
            (Transport::Tcp, 2),
            (Transport::Tcp, 20),
            (Transport::RtuOverTcp, 4),
        ] {
            let what = format!("{transport:?} depth {depth}");
            let t0 = Instant::now();
            let mut dev = device();
            let mut server = ServerConn::new(transport);
            let mut client = ClientConn::new(transport, ClientConfig::default());
            let requests = every_request();
            let mut pipeline = Pipeline::new(
                requests.iter().cloned().map(|r| (1, r)),
                Pipelining::of_modbus(client.config()).depth(depth),
            );
            let mut got = Vec::new();
            let mut most = 0;
            while !pipeline.is_finished() {
                pipeline.step(t0, &mut client);
                most = most.max(client.in_flight() + client.queued());
                exchange(t0, &mut client, &mut server, &mut dev, 300);
                pipeline.step(t0, &mut client);
                got.extend(std::iter::from_fn(|| pipeline.poll_result()));
                assert!(got.len() <= requests.len(), "{what}");
            }
            let want = expected(&requests, 1);
            assert_eq!(got.len(), want.len(), "{what}");
            for (i, (h, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(h.index, i as u64, "{what}");
                assert_eq!(h.operation, (1, requests[i].clone()), "{what}");
                assert_eq!(h.outcome, Outcome::Answered(w), "{what}");
            }
            // The window is the depth: never more submitted and unanswered.
            assert_eq!(most, depth.min(requests.len()), "{what}");
            let summary = pipeline.summary(&client);
            assert_eq!(
                (summary.operations, summary.failures, summary.transactions),
                (requests.len() as u64, 1, requests.len() as u64),
                "{what}"
            );
        }
    }

    #[test]
    fn the_pipeline_runner_reports_timeouts_and_a_lost_connection() {
        use crate::pipeline::{Pipeline, Pipelining};
        let t0 = Instant::now();
        let mut client = ClientConn::new(Transport::Tcp, ClientConfig::default());
        let read = |address| {
            (
                1,
                Request::ReadHoldingRegisters {
                    address,
                    quantity: 1,
                },
            )
        };
        let mut pipeline = Pipeline::new(
            [read(0), read(1), read(2)].into_iter(),
            Pipelining {
                depth: 1,
                timeout: Some(Duration::from_secs(1)),
                ..Pipelining::default()
            },
        );
        pipeline.step(t0, &mut client);
        let mut sent = Vec::new();
        while client.poll_transmit(t0, &mut sent) {}
        // No answer: the first times out; then the server hangs up on the second.
        let t1 = t0 + Duration::from_secs(1);
        client.handle_timeout(t1);
        pipeline.step(t1, &mut client);
        while client.poll_transmit(t1, &mut sent) {}
        client.handle_eof(t1);
        let mut got = Vec::new();
        while !pipeline.is_finished() {
            pipeline.step(t1, &mut client);
            got.extend(std::iter::from_fn(|| pipeline.poll_result()));
        }
        let outcomes: Vec<Outcome> = got.into_iter().map(|h| h.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Timeout, Outcome::Aborted, Outcome::Aborted]
        );
        assert_eq!(
            pipeline.poll_event(),
            Some(ClientEvent::Lost(LostReason::Closed))
        );
        assert_eq!(pipeline.summary(&client).failures, 3);
    }

    #[test]
    fn every_function_code_over_rtu() {
        for chunk in [1, 5, 300] {
            run_all(Transport::RtuOverTcp, 16, chunk);
            run_all(Transport::RtuSerial { baud: 19_200 }, 1, chunk);
        }
    }

    #[test]
    fn depth_limits_requests_in_flight() {
        let t0 = Instant::now();
        for (transport, depth, want) in [
            (Transport::Tcp, 1, 1),
            (Transport::Tcp, 16, 16),
            (Transport::RtuOverTcp, 16, 1),
        ] {
            let mut client = ClientConn::new(
                transport,
                ClientConfig {
                    depth,
                    ..ClientConfig::default()
                },
            );
            for i in 0..40 {
                client.submit(
                    t0,
                    Request::ReadHoldingRegisters {
                        address: i,
                        quantity: 1,
                    },
                    1,
                );
            }
            let mut out = Vec::new();
            while client.poll_transmit(t0, &mut out) {}
            assert_eq!(client.in_flight(), want);
            assert_eq!(client.queued(), 40 - want);
            let frame = if transport == Transport::Tcp { 12 } else { 8 };
            assert_eq!(out.len(), want * frame);
            // Pipelined over a server: all 40 answered, in op order.
            let mut dev = device();
            let mut server = ServerConn::new(transport);
            server.handle_input(t0, &out, &mut dev);
            let mut events = Vec::new();
            let mut down = Vec::new();
            while server.poll_transmit(t0, &mut down) {}
            client.handle_input(t0, &down);
            events.extend(std::iter::from_fn(|| client.poll_event()));
            events.extend(pump(t0, &mut client, &mut server, &mut dev, 64));
            let got = replies(&events);
            assert_eq!(got.len(), 40);
            for (i, (op, _)) in got.iter().enumerate() {
                assert_eq!(op.0, i as u64);
            }
        }
    }

    fn reply_adu(tid: u16, unit: u8, r: &Response<'_>) -> Vec<u8> {
        tcp::Adu::new(tid, unit, r).to_vec()
    }

    #[test]
    fn out_of_order_replies_are_matched_by_transaction_id() {
        let t0 = Instant::now();
        let mut client = ClientConn::tcp(ClientConfig {
            depth: 4,
            first_transaction_id: 0xFFFE,
            ..ClientConfig::default()
        });
        let ops: Vec<OpId> = (0..3)
            .map(|i| {
                client.submit(
                    t0,
                    Request::ReadHoldingRegisters {
                        address: i,
                        quantity: 1,
                    },
                    1,
                )
            })
            .collect();
        let mut out = Vec::new();
        while client.poll_transmit(t0, &mut out) {}
        // Transaction ids wrap: 0xFFFE, 0xFFFF, 0x0000.
        assert_eq!(out[..2], [0xFF, 0xFE]);
        assert_eq!(out[12..14], [0xFF, 0xFF]);
        assert_eq!(out[24..26], [0x00, 0x00]);
        let mut stream = Vec::new();
        for (tid, v) in [(0x0000u16, 30u16), (0xFFFE, 10), (0xFFFF, 20)] {
            stream.extend(reply_adu(
                tid,
                1,
                &Response::ReadHoldingRegisters(Registers::from_values(&[v])),
            ));
        }
        client.handle_input(t0, &stream);
        let got = replies(&std::iter::from_fn(|| client.poll_event()).collect::<Vec<_>>());
        let regs = |v| Ok(Response::ReadHoldingRegisters(Registers::from_values(&[v])));
        assert_eq!(
            got,
            vec![(ops[2], regs(30)), (ops[0], regs(10)), (ops[1], regs(20))]
        );
    }

    #[test]
    fn timeouts_and_late_replies() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut dev = device();
        dev.faults.delay = Some(Delay::Fixed(5 * second));
        let mut server = ServerConn::tcp();
        let mut client = ClientConn::tcp(ClientConfig {
            timeout: second,
            ..ClientConfig::default()
        });
        let op = client.submit(
            t0,
            Request::ReadHoldingRegisters {
                address: 0,
                quantity: 2,
            },
            1,
        );
        let mut up = Vec::new();
        assert!(client.poll_transmit(t0, &mut up));
        assert_eq!(client.poll_timeout(), Some(t0 + second));
        server.handle_input(t0, &up, &mut dev);
        client.handle_timeout(t0 + second / 2);
        assert_eq!(client.poll_event(), None, "not yet");
        client.handle_timeout(t0 + second);
        assert_eq!(client.poll_event(), Some(ClientEvent::Timeout { op }));
        assert_eq!(client.poll_timeout(), None);
        // The next request goes out (depth 1 freed), sent at t0+1s.
        dev.faults.delay = None;
        let next = client.submit(
            t0 + second,
            Request::ReadHoldingRegisters {
                address: 0,
                quantity: 1,
            },
            1,
        );
        up.clear();
        assert!(client.poll_transmit(t0 + second, &mut up));
        assert_eq!(client.poll_timeout(), Some(t0 + 2 * second));
        server.handle_input(t0 + second, &up, &mut dev);
        // The late reply (released at 5 s) comes behind... no: replies leave in order,
        // so the second waits for the first. Both arrive at 5 s.
        let mut down = Vec::new();
        assert!(!server.poll_transmit(t0 + second, &mut down));
        client.handle_timeout(t0 + 2 * second);
        assert_eq!(client.poll_event(), Some(ClientEvent::Timeout { op: next }));
        assert!(server.poll_transmit(t0 + 5 * second, &mut down));
        client.handle_input(t0 + 5 * second, &down);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Unmatched {
                transaction_id: Some(1),
                unit: 1
            })
        );
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Unmatched {
                transaction_id: Some(2),
                unit: 1
            })
        );
        assert_eq!(client.statistics().timeouts, 2);
        assert_eq!(client.statistics().unmatched, 2);
        // Still usable.
        let last = client.submit(t0 + 5 * second, Request::ReadExceptionStatus, 1);
        let events = pump(t0 + 5 * second, &mut client, &mut server, &mut dev, 3);
        assert!(
            matches!(events[..], [ClientEvent::Reply { op, response: Ok(Response::ReadExceptionStatus(_)), .. }] if op == last)
        );
    }

    #[test]
    fn per_request_timeout_counts_from_sending() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut client = ClientConn::tcp(ClientConfig::default());
        let a = client.submit_with_timeout(t0, Request::ReadExceptionStatus, 1, 10 * ms);
        let b = client.submit_with_timeout(t0, Request::ReadExceptionStatus, 1, 10 * ms);
        let mut out = Vec::new();
        client.poll_transmit(t0, &mut out);
        assert_eq!(client.queued(), 1);
        client.handle_timeout(t0 + 10 * ms);
        assert_eq!(client.poll_event(), Some(ClientEvent::Timeout { op: a }));
        // b is sent only now, so its deadline is 10 ms from now.
        client.poll_transmit(t0 + 15 * ms, &mut out);
        assert_eq!(client.poll_timeout(), Some(t0 + 25 * ms));
        client.handle_timeout(t0 + 25 * ms);
        assert_eq!(client.poll_event(), Some(ClientEvent::Timeout { op: b }));
    }

    #[test]
    fn corrupted_replies_are_reported_not_fatal() {
        let t0 = Instant::now();
        let read = Request::ReadHoldingRegisters {
            address: 0,
            quantity: 3,
        };
        // Transaction id flipped: unmatched, then the op times out.
        let mut dev = device();
        dev.faults.corrupt = Some(Corruption::TransactionId);
        let mut server = ServerConn::tcp();
        let mut client = ClientConn::tcp(ClientConfig::default());
        let op = client.submit(t0, read.clone(), 1);
        let events = pump(t0, &mut client, &mut server, &mut dev, 5);
        assert_eq!(
            events,
            [ClientEvent::Unmatched {
                transaction_id: Some(!1),
                unit: 1
            }]
        );
        client.handle_timeout(t0 + DEFAULT_TIMEOUT);
        assert_eq!(client.poll_event(), Some(ClientEvent::Timeout { op }));
        // A register too many: the op's reply, but invalid.
        for (transport, corruption) in [
            (Transport::Tcp, Corruption::Registers),
            (Transport::Tcp, Corruption::Function),
            (Transport::RtuOverTcp, Corruption::Registers),
        ] {
            let mut dev = device();
            dev.faults.corrupt = Some(corruption);
            let mut server = ServerConn::new(transport);
            let mut client = ClientConn::new(transport, ClientConfig::default());
            let op = client.submit(t0, read.clone(), 1);
            let events = pump(t0, &mut client, &mut server, &mut dev, 5);
            assert!(
                matches!(&events[..], [ClientEvent::Invalid { op: o, .. }] if *o == op),
                "{transport:?} {corruption:?}: {events:?}"
            );
            assert!(client.is_idle() && !client.is_closed());
        }
        // Another unit's reply on RTU: not ours.
        let mut dev = device();
        dev.faults.corrupt = Some(Corruption::UnitId);
        let mut server = ServerConn::rtu_over_tcp();
        let mut client = ClientConn::rtu_over_tcp(ClientConfig::default());
        client.submit(t0, read.clone(), 1);
        let events = pump(t0, &mut client, &mut server, &mut dev, 5);
        assert_eq!(
            events,
            [ClientEvent::Unmatched {
                transaction_id: None,
                unit: 0xFE
            }]
        );
    }

    #[test]
    fn a_stream_out_of_step_is_lost_and_aborts_every_op() {
        let t0 = Instant::now();
        let mut dev = device();
        dev.faults.corrupt = Some(Corruption::ProtocolId);
        let mut server = ServerConn::tcp();
        let mut client = ClientConn::tcp(ClientConfig::default());
        let a = client.submit(t0, Request::ReadExceptionStatus, 1);
        let b = client.submit(t0, Request::ReadExceptionStatus, 1);
        let events = pump(t0, &mut client, &mut server, &mut dev, 4);
        assert!(matches!(
            &events[..],
            [ClientEvent::Lost(LostReason::ProtocolError(e)), ClientEvent::Aborted { op: x }, ClientEvent::Aborted { op: y }]
                if e.field == "mbap.protocol_id" && *x == a && *y == b
        ));
        assert!(client.is_closed());
        assert_eq!(client.poll_timeout(), None);
        let c = client.submit(t0, Request::ReadExceptionStatus, 1);
        assert_eq!(client.poll_event(), Some(ClientEvent::Aborted { op: c }));
        let mut out = Vec::new();
        assert!(!client.poll_transmit(t0, &mut out));
        // End of input does the same.
        let mut client = ClientConn::tcp(ClientConfig::default());
        let d = client.submit(t0, Request::ReadExceptionStatus, 1);
        client.handle_eof(t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Lost(LostReason::Closed))
        );
        assert_eq!(client.poll_event(), Some(ClientEvent::Aborted { op: d }));
    }

    #[test]
    fn rtu_broadcasts_finish_when_sent() {
        let t0 = Instant::now();
        let mut dev = device();
        let mut server = ServerConn::rtu_over_tcp();
        let mut client = ClientConn::rtu_over_tcp(ClientConfig::default());
        let b = client.submit(
            t0,
            Request::WriteSingleRegister {
                address: 0,
                value: 4321,
            },
            0,
        );
        let r = client.submit(
            t0,
            Request::ReadHoldingRegisters {
                address: 0,
                quantity: 1,
            },
            1,
        );
        let events = pump(t0, &mut client, &mut server, &mut dev, 2);
        assert_eq!(events[0], ClientEvent::Broadcast { op: b });
        assert_eq!(
            events[1],
            ClientEvent::Reply {
                op: r,
                unit: 1,
                response: Ok(Response::ReadHoldingRegisters(Registers::from_values(&[
                    4321
                ])))
            }
        );
        // Over TCP unit 0 is an ordinary unit unless asked.
        let mut tcp = ClientConn::tcp(ClientConfig::default());
        tcp.submit(t0, Request::ReadExceptionStatus, 0);
        let mut out = Vec::new();
        tcp.poll_transmit(t0, &mut out);
        assert_eq!((tcp.in_flight(), tcp.poll_event()), (1, None));
        let mut tcp = ClientConn::tcp(ClientConfig {
            tcp_broadcast: true,
            ..ClientConfig::default()
        });
        let op = tcp.submit(t0, Request::ReadExceptionStatus, 0);
        tcp.poll_transmit(t0, &mut out);
        assert_eq!(
            (tcp.in_flight(), tcp.poll_event()),
            (0, Some(ClientEvent::Broadcast { op }))
        );
    }

    /// The reply stream for `every_request`, and the events it gives in one piece.
    fn replies_stream(transport: Transport) -> (ClientConn, Vec<u8>) {
        let t0 = Instant::now();
        let mut dev = device();
        let mut server = ServerConn::new(transport);
        let mut client = ClientConn::new(
            transport,
            ClientConfig {
                depth: 16,
                ..ClientConfig::default()
            },
        );
        for r in every_request() {
            client.submit(t0, r, 1);
        }
        let mut up = Vec::new();
        while client.poll_transmit(t0, &mut up) {}
        server.handle_input(t0, &up, &mut dev);
        let mut down = Vec::new();
        while server.poll_transmit(t0, &mut down) {}
        (client, down)
    }

    #[test]
    fn split_at_every_byte_gives_the_same_events() {
        let t0 = Instant::now();
        // Depth 16 over TCP, so every reply is in one stream.
        let (whole_client, stream) = replies_stream(Transport::Tcp);
        let mut whole = whole_client;
        whole.handle_input(t0, &stream);
        let want: Vec<_> = std::iter::from_fn(|| whole.poll_event()).collect();
        assert_eq!(want.len(), 15);
        for split in 0..=stream.len() {
            let (mut client, _) = replies_stream(Transport::Tcp);
            client.handle_input(t0, &stream[..split]);
            client.handle_input(t0, &stream[split..]);
            let got: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
            assert_eq!(got, want, "split at {split}");
        }
        let (mut client, _) = replies_stream(Transport::Tcp);
        for b in &stream {
            client.handle_input(t0, std::slice::from_ref(b));
        }
        let got: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
        assert_eq!(got, want, "byte at a time");
    }

    #[test]
    fn rtu_split_at_every_byte_of_each_reply() {
        let t0 = Instant::now();
        for request in every_request() {
            let mut dev = device();
            let mut server = ServerConn::rtu_over_tcp();
            let mut oracle = ClientConn::rtu_over_tcp(ClientConfig::default());
            oracle.submit(t0, request.clone(), 1);
            let mut up = Vec::new();
            oracle.poll_transmit(t0, &mut up);
            server.handle_input(t0, &up, &mut dev);
            let mut down = Vec::new();
            while server.poll_transmit(t0, &mut down) {}
            oracle.handle_input(t0, &down);
            let want = oracle.poll_event();
            assert!(
                matches!(want, Some(ClientEvent::Reply { .. })),
                "{request:?}"
            );
            for split in 0..=down.len() {
                let mut client = ClientConn::rtu_over_tcp(ClientConfig::default());
                client.submit(t0, request.clone(), 1);
                client.poll_transmit(t0, &mut Vec::new());
                client.handle_input(t0, &down[..split]);
                client.handle_input(t0, &down[split..]);
                assert_eq!(client.poll_event(), want, "{request:?} split at {split}");
                assert_eq!(client.poll_event(), None);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_reply_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            chunk in 1usize..64,
            rtu in any::<bool>(),
            depth in 1usize..8,
        ) {
            let t0 = Instant::now();
            let transport = if rtu { Transport::RtuSerial { baud: 9600 } } else { Transport::Tcp };
            let mut client = ClientConn::new(transport, ClientConfig { depth, ..ClientConfig::default() });
            let mut ops = Vec::new();
            for r in every_request() {
                ops.push(client.submit(t0, r, 1));
            }
            let mut out = Vec::new();
            let mut now = t0;
            let mut finished = 0usize;
            for piece in bytes.chunks(chunk) {
                while client.poll_transmit(now, &mut out) {}
                client.handle_input(now, piece);
                now += Duration::from_millis(1);
                if let Some(at) = client.poll_timeout() {
                    if at <= now { client.handle_timeout(now); }
                }
                while let Some(e) = client.poll_event() {
                    if matches!(e, ClientEvent::Reply { .. } | ClientEvent::Timeout { .. } | ClientEvent::Invalid { .. } | ClientEvent::Aborted { .. }) {
                        finished += 1;
                    }
                }
            }
            // Every op still ends, exactly once.
            let mut end = now;
            for _ in 0..2 * ops.len() + 2 {
                while client.poll_transmit(end, &mut out) {}
                end += Duration::from_secs(3600);
                client.handle_timeout(end);
                while let Some(e) = client.poll_event() {
                    if matches!(e, ClientEvent::Reply { .. } | ClientEvent::Timeout { .. } | ClientEvent::Invalid { .. } | ClientEvent::Aborted { .. }) {
                        finished += 1;
                    }
                }
            }
            prop_assert_eq!(finished, ops.len());
            prop_assert!(client.is_idle());
        }
    }
}
