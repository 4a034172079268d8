//! The EtherNet/IP server engine: sessions, the Common Packet Format, the Connection
//! Manager (Unconnected Send routing, Forward Open / Large Forward Open / Forward Close,
//! connected sequence counts and timeouts) and fault injection, carrying every request
//! addressed to an object to a [`CipDevice`].
//!
//! ```text
//!            TCP bytes                                   UDP datagrams
//!               |                                              |
//!   ServerConn::handle_input ------+            Server::handle_datagram
//!               |                  |            (ListIdentity, ListServices,
//!      EncapsulationFraming        |             ListInterfaces, legacy 0x0001)
//!               |                  |
//!   RegisterSession / UnRegisterSession / List* / Nop
//!   SendRRData --> null address + unconnected data --> Message Router request
//!   SendUnitData --> connected address (O->T id) + connected data (sequence count)
//!               |
//!   Connection Manager (class 0x06): Unconnected Send (route path checked),
//!   Forward Open, Large Forward Open, Forward Close
//!               |
//!   everything else --> CipDevice::execute(RequestContext, request)
//! ```
//!
//! One [`ServerConn`] holds the protocol state of one TCP connection (its session, its
//! CIP connections, replies waiting for their release time, events). The state all
//! connections share — the device, [`ServerOptions`], [`Faults`], the session and CIP
//! connection registries and [`ConnectionStats`] — is a [`Server`], passed by `&mut` to
//! every `handle_*` call.
//!
//! Submodules, by layer: `session` (encapsulation commands, sessions, the List commands
//! over TCP and UDP), `messaging` (SendRRData, SendUnitData, Unconnected Send and the
//! hand-over to the device), `connection` (Forward Open / Close and connection state),
//! `shared` ([`Server`], options, faults, statistics).
//!
//! ## Contract
//!
//! - [`ServerConn::handle_input`]: bytes as they arrived, split anywhere; the same
//!   replies result from any split.
//! - [`ServerConn::poll_transmit`]: appends every reply whose release time has come.
//! - [`ServerConn::poll_event`]: what happened ([`ServerEvent`]).
//! - [`ServerConn::poll_timeout`] / [`ServerConn::handle_timeout`]: the next reply
//!   release (reply delay), CIP connection timeout (RPI x timeout multiplier) or, when
//!   configured, the encapsulation inactivity timeout of an idle TCP connection and the
//!   periodic look at the fault settings ([`Faults::latency`]).
//! - [`ServerConn::is_closed`]: the adapter closes the socket (after flushing
//!   `poll_transmit`).
//! - [`ServerConn::is_backlogged`]: too many replies are held, or whole requests wait for
//!   room or for the request rate; the adapter stops reading until some are sent or
//!   [`ServerConn::poll_timeout`] passes.
//! - [`ServerConn::handle_eof`]: the peer hung up; its session and CIP connections are
//!   released, replies already queued still go out.
//!
//! [`ServerConn`] implements [`crate::engine::Connection`] and [`Server`] implements
//! [`crate::engine::Server`] (`accept` refuses while disabled or done, and announces
//! the accepted-on address in ListIdentity; `handle_datagram` answers UDP), so every
//! runtime drives this engine with the same loop as the Modbus one.
//!
//! Replies are computed when the request arrives (so state changes happen then) but a
//! [`ReplyDelay`] holds their release until `arrival + delay`, in order.
//!
//! ## What a real device does, and so do we
//!
//! - A wrong session handle in SendRRData, SendUnitData or UnRegisterSession is answered
//!   with encapsulation status 0x0064 (invalid session handle) and no data.
//! - An unknown command is answered with status 0x0001; a second RegisterSession on one
//!   TCP connection too (with the handle already registered, as OpENer does); a
//!   RegisterSession asking for a protocol version other than 1 gets 0x0069 and version
//!   1 in its data; a length beyond the specification's limit gets 0x0065; a SendRRData
//!   whose data is not a Common Packet Format with an unconnected data item gets 0x0003;
//!   RegisterSession with non-zero options gets 0x0069 too (as OpENer answers).
//! - Over UDP, the commands that need a TCP connection get 0x0001 (as OpENer answers).
//! - A header announcing a frame longer than [`ServerOptions::max_frame_len`] is answered
//!   with 0x0065 at once, before any of its body is buffered, and the connection closes
//!   (the stream cannot be trusted to stay in step). A frame begun and not finished
//!   within the frame timeout closes the connection. Both, and every other limit of
//!   [`crate::limits`], are counted in [`Server::limits_reached`] and reported as
//!   [`ServerEvent::LimitReached`].
//! - A message with non-zero options is discarded, as the specification requires.
//! - Nop and UnRegisterSession get no reply; UnRegisterSession closes the connection
//!   and every CIP connection opened on it (so does the TCP connection closing).
//! - A SendUnitData whose connected address names no connection open on this TCP
//!   connection is dropped (no reply), as is a malformed one.
//! - A repeated sequence count on a connection is a retransmission: the previous reply is
//!   sent again without executing the request twice.
//! - Connected replies echo the sequence count and are addressed with the T->O id the
//!   originator chose in its Forward Open (cpppo's simulator wrongly uses the O->T id).
//!
//! ## Connection Manager and routing
//!
//! - An Unconnected Send (0x52 to class 6) is unwrapped and its route path checked
//!   against [`ServerOptions::route_path`] ([`RoutePolicy`]: backplane port 1 link 0 by
//!   default, cpppo's `--route-path` JSON, `false`/`--simple` for none, or any); a route
//!   that does not lead here gets general status 0x01 with 0x0311 (port not available),
//!   0x0312 (link address not valid) or 0x0315 (invalid segment) and the route path size
//!   as remaining path size. The embedded request's reply is returned as is. Requests
//!   sent straight to an object (no Unconnected Send) are served under every policy.
//! - Forward Open / Large Forward Open: class 3 server transport only (else 0x0103),
//!   point-to-point both ways (0x0123/0x0124), sizes up to
//!   [`ServerOptions::max_connection_size`] (else 0x0109 and the largest size), non-zero
//!   RPIs (0x0112), a connection path of a route the policy accepts then the Message
//!   Router (0x0311/0x0312/0x0315), a triple not in use (0x0100), and room
//!   ([`ServerOptions::max_connections`], 0x0113). The target chooses the O->T id; the
//!   timeout is the O->T RPI x (4 << multiplier); the reply budget is the T->O size less
//!   the 2-byte sequence count.
//! - Forward Close of a connection this TCP connection did not open (unknown, or another
//!   client's) gets 0x01/0x0107; one whose connection path differs from the Forward
//!   Open's (electronic keys aside; an empty one is taken as the same) gets 0x01/0x0316.
//! - A Forward Open beyond [`ServerOptions::max_connections_per_session`] CIP connections
//!   on this TCP connection gets 0x01/0x0113, as beyond the server-wide limit.
//! - A device reply longer than the budget (unconnected or connection size) is replaced
//!   by general status 0x11 (reply data too large).
//!
//! ## Example
//!
//! ```
//! use std::time::Instant;
//! use cpppo_core::cip::device::{CipDevice, RequestContext};
//! use cpppo_core::cip::message_router::{MessageRouterReply, MessageRouterRequest};
//! use cpppo_core::cip::objects::{Identity, Revision};
//! use cpppo_core::cip::status::GeneralStatus;
//! use cpppo_core::enip::encapsulation::{status, Encapsulation};
//! use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};
//! use cpppo_core::wire::Encode;
//!
//! /// A device that knows no object: every request is "path destination unknown".
//! struct Nothing;
//! impl CipDevice for Nothing {
//!     fn identity(&self) -> Identity<'_> {
//!         Identity {
//!             vendor_id: 1, device_type: 0x0E, product_code: 0x36,
//!             revision: Revision { major: 20, minor: 11 }, status: 0, serial_number: 7,
//!             product_name: "Nothing".into(), state: None,
//!         }
//!     }
//!     fn execute(&mut self, _: &RequestContext, r: &MessageRouterRequest<'_>)
//!         -> MessageRouterReply<'static> {
//!         MessageRouterReply::error(r.service, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[])
//!     }
//! }
//!
//! let now = Instant::now();
//! let mut server = Server::new(Nothing, ServerOptions::default());
//! let mut conn = ServerConn::new(now, "127.0.0.1:50000".parse().unwrap(), &mut server);
//!
//! // The drive loop: feed input, then drain transmit, events and read the deadline.
//! conn.handle_input(now, &Encapsulation::register_session([0; 8]).to_vec(), &mut server);
//! let mut out = Vec::new();
//! assert!(conn.poll_transmit(now, &mut out));
//! let (reply, _) = Encapsulation::decode(&out).unwrap();
//! assert_eq!(reply.header.status, status::SUCCESS);
//! assert_ne!(reply.header.session_handle, 0);
//! while let Some(event) = conn.poll_event() {
//!     println!("{event:?}");
//! }
//! assert_eq!(conn.poll_timeout(), None);
//! ```

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cip::connection_manager::ConnectionTriple;
use crate::cip::device::CipDevice;
use crate::cip::status::GeneralStatus;
use crate::engine;
use crate::enip::cpf;
use crate::enip::encapsulation::{status, Command, Encapsulation, EncapsulationFraming, Header};
use crate::limits::{ConnectionGate, Limit};
use crate::wire::{Encode, StreamDecoder};

mod connection;
mod messaging;
mod session;
mod shared;
#[cfg(test)]
mod tests;

pub use connection::CipConnection;
pub use session::list_identity_item;
pub use shared::{
    ConnectionStats, Faults, RegisteredConnection, ReplyDelay, RoutePolicy, Server, ServerOptions,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_SESSION, DEFAULT_MAX_CONNECTION_SIZE,
    DEFAULT_MAX_FRAME_LEN, KEPT_CLOSED_STATS,
};

/// The `ListServices` capability flags this server announces: CIP encapsulation over TCP
/// (no class 0/1 UDP I/O).
pub const LIST_SERVICES_CAPABILITY: u16 = cpf::capability::CIP_ENCAPSULATION;

/// The Identity object state announced by ListIdentity when the device gives none
/// (0xFF: "not implemented", as cpppo answers).
pub const IDENTITY_STATE_UNKNOWN: u8 = 0xFF;

/// Replies held (delayed, not yet handed out) at which [`ServerConn::is_backlogged`] asks
/// the adapter to stop reading, by default (the same bound as the Modbus server's; see
/// [`crate::limits::ConnectionLimits::max_pending_replies`]).
pub const MAX_PENDING_REPLIES: usize = crate::limits::DEFAULT_MAX_PENDING_REPLIES;

/// Why a TCP connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client sent UnRegisterSession.
    UnRegisterSession,
    /// The peer hung up ([`ServerConn::handle_eof`]).
    PeerClosed,
    /// Fault injection: an EOF was requested for this connection ([`Faults::eof`]).
    InjectedEof,
    /// Nothing arrived for [`ServerOptions::inactivity_timeout`] and no CIP connection
    /// was open.
    Inactivity,
    /// Fault injection: the server is disabled ([`Faults::disabled`]).
    Disabled,
    /// The server is done ([`Faults::done`]).
    Done,
    /// The byte stream could not be framed.
    ProtocolError,
    /// A frame's header announced more than [`ServerOptions::max_frame_len`] (answered
    /// with status 0x0065 first).
    FrameTooLong,
    /// A frame was begun and not finished within the frame timeout
    /// ([`crate::limits::ConnectionLimits::frame_timeout`]).
    FrameTimeout,
}

/// Why a CIP connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionCloseReason {
    /// A Forward Close.
    ForwardClose,
    /// No request within RPI x timeout multiplier.
    TimedOut,
    /// The TCP connection (or its session) that opened it closed.
    SessionClosed,
}

/// What happened on a [`ServerConn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerEvent {
    /// A session was registered.
    SessionRegistered {
        /// Its handle.
        session_handle: u32,
    },
    /// The session was unregistered.
    SessionUnregistered {
        /// Its handle.
        session_handle: u32,
    },
    /// A Forward Open succeeded.
    ConnectionOpened {
        /// The connection's identity.
        triple: ConnectionTriple,
        /// The O->T id this server chose.
        o_t_connection_id: u32,
        /// The T->O id the originator chose.
        t_o_connection_id: u32,
        /// The negotiated T->O connection size in bytes.
        size: u16,
        /// RPI x timeout multiplier.
        timeout: Duration,
    },
    /// A CIP connection closed.
    ConnectionClosed {
        /// The connection's identity.
        triple: ConnectionTriple,
        /// Its O->T id.
        o_t_connection_id: u32,
        /// Why.
        reason: ConnectionCloseReason,
    },
    /// A CIP request was answered (for SendRRData and SendUnitData).
    RequestServed {
        /// The encapsulation command that carried it.
        command: Command,
        /// The request's service code (of the embedded request, for Unconnected Send).
        service: u8,
        /// The reply's general status.
        general_status: GeneralStatus,
        /// The O->T id of the connection it came on, `None` when unconnected.
        connection: Option<u32>,
    },
    /// A request was malformed or refused at the encapsulation level.
    ProtocolError {
        /// The command, when the header was readable.
        command: Option<Command>,
        /// What was wrong.
        error: String,
    },
    /// A limit was hit ([`crate::limits`]); it is also counted in
    /// [`Server::limits_reached`].
    LimitReached {
        /// Which.
        limit: Limit,
    },
    /// The TCP connection closed (or will, once its replies are flushed).
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

#[derive(Debug)]
struct Pending {
    release: Instant,
    /// The reply's bytes in `ServerConn::queued`, following the previous reply's.
    len: usize,
}

/// The protocol state of one EtherNet/IP TCP connection (see the module docs).
///
/// Methods by kind: getters ([`id`](Self::id), [`session_handle`](Self::session_handle),
/// [`connections`](Self::connections), [`stats`](Self::stats)); inputs
/// ([`handle_input`](Self::handle_input), [`handle_timeout`](Self::handle_timeout),
/// [`handle_eof`](Self::handle_eof)); outputs, drained in this order after every input
/// ([`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
/// [`poll_timeout`](Self::poll_timeout), [`is_closed`](Self::is_closed)).
#[derive(Debug)]
pub struct ServerConn<D> {
    id: u64,
    local: Option<SocketAddrV4>,
    decoder: StreamDecoder<EncapsulationFraming>,
    session: Option<u32>,
    connections: Vec<CipConnection>,
    queue: VecDeque<Pending>,
    /// The bytes of the `queue`d replies, back to back, from `sent` on (reused, so a
    /// warm connection queues replies without allocating).
    queued: Vec<u8>,
    /// Bytes at the front of `queued` already handed out.
    sent: usize,
    last_release: Option<Instant>,
    /// When the last bytes arrived (for the encapsulation inactivity timeout).
    last_input: Instant,
    /// The inactivity timeout in force (copied from the options at each input).
    inactivity: Option<Duration>,
    /// When to wake and look at the fault settings ([`Faults::latency`] after the last
    /// input or wake-up).
    wake: Option<Instant>,
    events: VecDeque<ServerEvent>,
    stats: ConnectionStats,
    closing: bool,
    closed: bool,
    /// Pending replies, half-received frames, request rate.
    gate: ConnectionGate,
    /// The device type served (the engine holds no device; see [`Server`]).
    device: PhantomData<fn(&mut D)>,
}

impl<D: CipDevice> ServerConn<D> {
    /// A new connection from `peer`, registered with `server` (for statistics and fault
    /// injection). When the server is disabled or done it is closed at once.
    pub fn new(now: Instant, peer: SocketAddr, server: &mut Server<D>) -> Self {
        let id = server.new_conn(peer);
        let mut conn = ServerConn {
            id,
            local: None,
            decoder: EncapsulationFraming::stream_decoder(),
            session: None,
            connections: Vec::new(),
            queue: VecDeque::new(),
            queued: Vec::new(),
            sent: 0,
            last_release: None,
            last_input: now,
            inactivity: server.options().inactivity_timeout,
            wake: None,
            events: VecDeque::new(),
            stats: ConnectionStats {
                peer,
                received: 0,
                sent: 0,
                requests: 0,
                session_handle: None,
                closed: false,
            },
            closing: false,
            closed: false,
            gate: ConnectionGate::default(),
            device: PhantomData,
        };
        if !conn.check_faults(now, server) {
            conn.schedule_wake(now, server);
        }
        conn
    }

    /// The address this connection was accepted on, announced in its ListIdentity and
    /// legacy 0x0001 replies instead of [`ServerOptions::address`].
    pub fn set_local_address(&mut self, local: SocketAddrV4) {
        self.local = Some(local);
    }

    /// This connection's id within its [`Server`] (the key of [`Server::stats`] and of
    /// [`Faults::eof`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The registered session handle, if any.
    pub fn session_handle(&self) -> Option<u32> {
        self.session
    }

    /// The CIP connections opened on this TCP connection.
    pub fn connections(&self) -> &[CipConnection] {
        &self.connections
    }

    /// This connection's statistics.
    pub fn stats(&self) -> &ConnectionStats {
        &self.stats
    }

    /// Feed bytes received from the peer, split anywhere.
    pub fn handle_input(&mut self, now: Instant, data: &[u8], server: &mut Server<D>) {
        if self.closed || self.check_faults(now, server) {
            return;
        }
        self.last_input = now;
        self.inactivity = server.options().inactivity_timeout;
        self.schedule_wake(now, server);
        self.stats.received = self.stats.received.saturating_add(data.len() as u64);
        self.sync_stats(server);
        if self.closing {
            return;
        }
        self.decoder.handle_input(data);
        self.process(now, server);
        self.sync_stats(server);
    }

    /// Serve the whole requests buffered, as far as the limits allow: a header announcing
    /// too long a frame is refused before its body is awaited; requests wait in the
    /// decoder while too many replies are held or the request rate is spent.
    fn process(&mut self, now: Instant, server: &mut Server<D>) {
        let options = server.options();
        let max_frame = options.max_frame_len;
        self.gate.begin(now, &options.limits);
        let mut framed = false;
        while !self.closing && !self.closed {
            if let Some(h) = Header::decode(self.decoder.pending())
                .ok()
                .filter(|h| h.frame_len() > max_frame)
            {
                self.frame_too_long(now, server, &h, max_frame);
                break;
            }
            if self.decoder.buffered() == 0 || self.decoder.needed() > 0 {
                break;
            }
            if self.gate.admit(now, self.queue.len()).is_err() {
                break;
            }
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    framed = true;
                    self.handle_frame(now, &frame, server);
                }
                Ok(None) => break,
                Err(e) => {
                    self.protocol_error(None, e.to_string());
                    self.close_now(server, CloseReason::ProtocolError);
                    break;
                }
            }
        }
        let partial = self.decoder.buffered() > 0 && self.decoder.needed() > 0 && !self.closing;
        if let Some(limit) = self.gate.end(now, partial, framed) {
            self.limit_reached(server, limit);
        }
    }

    pub(super) fn limit_reached(&mut self, server: &mut Server<D>, limit: Limit) {
        server.count_limit(limit);
        self.events.push_back(ServerEvent::LimitReached { limit });
    }

    /// A header announced `h.frame_len()` bytes, more than `max`: answer status 0x0065,
    /// drop what was buffered, and close once the replies are out.
    fn frame_too_long(&mut self, now: Instant, server: &mut Server<D>, h: &Header, max: usize) {
        self.protocol_error(
            Some(h.command),
            format!(
                "frame of {} bytes exceeds the limit of {max}",
                h.frame_len()
            ),
        );
        self.limit_reached(server, Limit::FrameLength);
        self.reply(now, server, h, status::INVALID_LENGTH, &[]);
        self.decoder.clear();
        self.close_after_replies(server, CloseReason::FrameTooLong);
    }

    /// Release the session and connections, read nothing more, and close once the
    /// replies already queued are out.
    fn close_after_replies(&mut self, server: &mut Server<D>, reason: CloseReason) {
        self.release_all(server);
        self.closing = true;
        self.events.push_back(ServerEvent::Closed { reason });
        self.sync_stats(server);
    }

    /// Expire CIP connections whose timeout has passed, and apply fault injection.
    /// (Delayed replies need no call here: [`poll_transmit`](Self::poll_transmit)
    /// releases them when `now` reaches their time.)
    pub fn handle_timeout(&mut self, now: Instant, server: &mut Server<D>) {
        if self.closed || self.check_faults(now, server) {
            return;
        }
        let mut i = 0;
        while let Some(c) = self.connections.get(i) {
            if c.deadline <= now {
                let c = self.connections.remove(i);
                self.release_connection(server, &c, ConnectionCloseReason::TimedOut);
            } else {
                i += 1;
            }
        }
        if self.inactivity_deadline().is_some_and(|at| at <= now) {
            self.close_now(server, CloseReason::Inactivity);
            return;
        }
        if self.gate.frame_expired(now) {
            self.protocol_error(None, "a frame begun was not finished in time");
            self.limit_reached(server, Limit::FrameTimeout);
            self.decoder.clear();
            self.gate.clear_partial();
            self.close_after_replies(server, CloseReason::FrameTimeout);
            return;
        }
        if self.gate.is_waiting() && !self.closing {
            self.process(now, server);
            self.sync_stats(server);
        }
        if self.wake.is_some_and(|at| at <= now) {
            self.schedule_wake(now, server);
        }
    }

    /// The next look at the fault settings, [`Faults::latency`] from `now`.
    fn schedule_wake(&mut self, now: Instant, server: &Server<D>) {
        self.wake = server
            .faults
            .latency
            .filter(|latency| !latency.is_zero())
            .and_then(|latency| now.checked_add(latency));
    }

    /// When an idle connection (no CIP connection, nothing queued) will be closed.
    fn inactivity_deadline(&self) -> Option<Instant> {
        if self.closing || !self.connections.is_empty() || !self.queue.is_empty() {
            return None;
        }
        self.inactivity
            .map(|t| self.last_input.checked_add(t).unwrap_or(self.last_input))
    }

    /// The peer closed its end: no more input will come. The session and every CIP
    /// connection are released; replies already queued may still be transmitted.
    pub fn handle_eof(&mut self, _now: Instant, server: &mut Server<D>) {
        if !self.closed && !self.closing {
            // Replies already computed may still go out; nothing more is read.
            self.release_all(server);
            self.closing = true;
            self.events.push_back(ServerEvent::Closed {
                reason: CloseReason::PeerClosed,
            });
            self.sync_stats(server);
        }
    }

    /// Append every reply whose release time has come to `out`; false when none is ready.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while let Some(p) = self.queue.front() {
            if p.release > now {
                break;
            }
            if let Some(p) = self.queue.pop_front() {
                let end = self.sent.saturating_add(p.len);
                if let Some(bytes) = self.queued.get(self.sent..end) {
                    out.extend_from_slice(bytes);
                }
                self.sent = end;
                if self.queue.is_empty() {
                    self.queued.clear();
                    self.sent = 0;
                }
                any = true;
            }
        }
        any
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next deadline: a delayed reply's release or a CIP connection's timeout.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let release = self.queue.front().map(|p| p.release);
        let expiry = self.connections.iter().map(|c| c.deadline).min();
        let limits = if self.closing {
            None
        } else {
            self.gate.deadline(self.queue.len())
        };
        let wake = self.wake.filter(|_| !self.closing);
        [release, expiry, self.inactivity_deadline(), limits, wake]
            .into_iter()
            .flatten()
            .min()
    }

    /// The bytes received and not yet served: a frame begun, or whole requests waiting
    /// for a limit ([`is_backlogged`](Self::is_backlogged)).
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// Replies computed and not yet handed out by [`poll_transmit`](Self::poll_transmit).
    pub fn pending_replies(&self) -> usize {
        self.queue.len()
    }

    /// True when the pending replies limit is reached (a client pipelining into a reply
    /// delay; [`MAX_PENDING_REPLIES`] by default) or whole requests wait for it or for
    /// the request rate: the adapter stops reading input until
    /// [`poll_transmit`](Self::poll_transmit) has handed replies out or
    /// [`poll_timeout`](Self::poll_timeout) passes, so memory stays bounded.
    pub fn is_backlogged(&self) -> bool {
        self.queue.len() >= self.gate.max_pending() || self.gate.is_waiting()
    }

    /// True when the adapter should close the socket (after draining
    /// [`poll_transmit`](Self::poll_transmit)).
    pub fn is_closed(&self) -> bool {
        self.closed || (self.closing && self.queue.is_empty())
    }

    // -----------------------------------------------------------------------------------

    /// Apply `disabled`, `done` and per-connection EOF; true when the connection closed.
    fn check_faults(&mut self, _now: Instant, server: &mut Server<D>) -> bool {
        if self.closed {
            return true;
        }
        let reason = if server.faults.done {
            Some(CloseReason::Done)
        } else if server.faults.disabled {
            Some(CloseReason::Disabled)
        } else if server.faults.eof.remove(&self.id) {
            Some(CloseReason::InjectedEof)
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.close_now(server, reason);
                true
            }
            None => false,
        }
    }

    fn sync_stats(&mut self, server: &mut Server<D>) {
        self.stats.session_handle = self.session;
        self.stats.closed = self.closed || self.closing;
        if let Some(s) = server.stats_mut(self.id) {
            s.clone_from(&self.stats);
        }
    }

    /// Release the session and connections; with `flush` false, drop queued replies too.
    fn release_all(&mut self, server: &mut Server<D>) {
        for c in std::mem::take(&mut self.connections) {
            self.release_connection(server, &c, ConnectionCloseReason::SessionClosed);
        }
        if let Some(handle) = self.session.take() {
            server.unregister_session(handle);
            self.events.push_back(ServerEvent::SessionUnregistered {
                session_handle: handle,
            });
        }
    }

    fn close_now(&mut self, server: &mut Server<D>, reason: CloseReason) {
        self.release_all(server);
        self.queue.clear();
        self.queued.clear();
        self.sent = 0;
        self.closed = true;
        self.events.push_back(ServerEvent::Closed { reason });
        self.sync_stats(server);
    }

    fn release_connection(
        &mut self,
        server: &mut Server<D>,
        c: &CipConnection,
        reason: ConnectionCloseReason,
    ) {
        server.unregister_connection(c.o_t_connection_id);
        self.events.push_back(ServerEvent::ConnectionClosed {
            triple: c.triple,
            o_t_connection_id: c.o_t_connection_id,
            reason,
        });
    }

    fn protocol_error(&mut self, command: Option<Command>, error: impl Into<String>) {
        self.events.push_back(ServerEvent::ProtocolError {
            command,
            error: error.into(),
        });
    }

    /// Queue a reply to `header` (its command, session handle and sender context).
    fn reply(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        header: &Header,
        status: u32,
        data: &[u8],
    ) {
        match Encapsulation::reply(header, status, data) {
            Ok(frame) => {
                let start = self.queue_start();
                frame.encode(&mut self.queued);
                self.queue_from(now, server, start);
            }
            Err(e) => self.protocol_error(Some(header.command), e.to_string()),
        }
    }

    /// Where the next reply starts in `queued`, once the bytes already handed out are
    /// dropped from its front when they are half of it (a queue that never empties
    /// stays bounded). Encode the reply into `queued`, then call `queue_from`.
    fn queue_start(&mut self) -> usize {
        if self.sent > 0 && self.sent >= self.queued.len() / 2 {
            self.queued.drain(..self.sent);
            self.sent = 0;
        }
        self.queued.len()
    }

    /// Queue the reply encoded in `queued` from `start` on, with its release time.
    fn queue_from(&mut self, now: Instant, server: &mut Server<D>, start: usize) {
        let len = self.queued.len().saturating_sub(start);
        let delay = server.sample_delay();
        let at = now.checked_add(delay).unwrap_or(now);
        // Replies leave in order: none overtakes an earlier one with a longer delay.
        let release = match self.last_release {
            Some(last) if last > at => last,
            _ => at,
        };
        self.last_release = Some(release);
        self.stats.sent = self.stats.sent.saturating_add(len as u64);
        self.queue.push_back(Pending { release, len });
    }
}

impl<D: CipDevice> engine::Connection for ServerConn<D> {
    type Server = Server<D>;
    type Event = ServerEvent;

    fn handle_input(&mut self, now: Instant, data: &[u8], server: &mut Server<D>) {
        ServerConn::handle_input(self, now, data, server)
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        ServerConn::poll_transmit(self, now, out)
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        ServerConn::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        ServerConn::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, server: &mut Server<D>) {
        ServerConn::handle_timeout(self, now, server)
    }

    fn handle_eof(&mut self, now: Instant, server: &mut Server<D>) {
        ServerConn::handle_eof(self, now, server)
    }

    fn is_closed(&self) -> bool {
        ServerConn::is_closed(self)
    }

    fn is_backlogged(&self) -> bool {
        ServerConn::is_backlogged(self)
    }
}

impl<D: CipDevice> engine::Server for Server<D> {
    type Connection = ServerConn<D>;

    /// A connection announcing `local` (when it is a specific IPv4 address) in its
    /// ListIdentity replies; `None` while the server is disabled or done.
    fn accept(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Option<ServerConn<D>> {
        if self.faults.disabled || self.faults.done {
            return None;
        }
        let mut conn = ServerConn::new(now, peer, self);
        if let SocketAddr::V4(v4) = local {
            if !v4.ip().is_unspecified() {
                conn.set_local_address(v4);
            }
        }
        Some(conn)
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        Server::handle_datagram(self, now, local, peer, data, out)
    }

    fn is_done(&self) -> bool {
        Server::is_done(self)
    }
}
