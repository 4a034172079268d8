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
//! ## Contract
//!
//! - [`ServerConn::handle_input`]: bytes as they arrived, split anywhere; the same
//!   replies result from any split.
//! - [`ServerConn::poll_transmit`]: appends every reply whose release time has come.
//! - [`ServerConn::poll_event`]: what happened ([`ServerEvent`]).
//! - [`ServerConn::poll_timeout`] / [`ServerConn::handle_timeout`]: the next reply
//!   release (reply delay) or CIP connection timeout (RPI x timeout multiplier).
//! - [`ServerConn::is_closed`]: the adapter closes the socket (after flushing
//!   `poll_transmit`).
//! - [`ServerConn::handle_eof`]: the peer hung up; releases its session and connections.
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
//!   whose data is not a Common Packet Format with an unconnected data item gets 0x0003.
//! - A message with non-zero options is discarded, as the specification requires.
//! - Nop and UnRegisterSession get no reply; UnRegisterSession closes the connection.
//! - A SendUnitData whose connected address names no connection open on this TCP
//!   connection is dropped (no reply), as is a malformed one.
//! - A repeated sequence count on a connection is a retransmission: the previous reply is
//!   sent again without executing the request twice.
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
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cip::connection_manager::{unconnected_send_failure, ConnectionTriple, UnconnectedSend};
use crate::cip::device::{CipDevice, RequestContext};
use crate::cip::message_router::{MessageRouterReply, MessageRouterRequest, Service};
use crate::cip::objects;
use crate::cip::status::GeneralStatus;
use crate::enip::cpf::{self, Cpf, Item, LegacyAddress, SockAddr};
use crate::enip::encapsulation::{
    status, Command, Encapsulation, EncapsulationFraming, Header, RegisterSession, SendData,
    PROTOCOL_VERSION,
};
use crate::wire::{Encode, StreamDecoder};

mod connection;
mod shared;
#[cfg(test)]
mod tests;

pub use connection::CipConnection;
pub use shared::{
    ConnectionStats, Faults, RegisteredConnection, ReplyDelay, RoutePolicy, Server, ServerOptions,
    SplitMix64, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTION_SIZE,
};

/// The `ListServices` capability flags this server announces: CIP encapsulation over TCP
/// (no class 0/1 UDP I/O).
pub const LIST_SERVICES_CAPABILITY: u16 = cpf::capability::CIP_ENCAPSULATION;

/// The Identity object state announced by ListIdentity when the device gives none
/// (0xFF: "not implemented", as cpppo answers).
pub const IDENTITY_STATE_UNKNOWN: u8 = 0xFF;

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
    /// Fault injection: the server is disabled ([`Faults::disabled`]).
    Disabled,
    /// The server is done ([`Faults::done`]).
    Done,
    /// The byte stream could not be framed.
    ProtocolError,
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
    /// The TCP connection closed (or will, once its replies are flushed).
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

#[derive(Debug)]
struct Pending {
    release: Instant,
    bytes: Vec<u8>,
}

/// How a CIP request arrived: unconnected or on a connection, and its reply budget.
#[derive(Debug, Clone, Copy)]
struct Via {
    connection_serial: Option<u16>,
    budget: usize,
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
pub struct ServerConn {
    id: u64,
    local: Option<SocketAddrV4>,
    decoder: StreamDecoder<EncapsulationFraming>,
    session: Option<u32>,
    connections: Vec<CipConnection>,
    queue: VecDeque<Pending>,
    last_release: Option<Instant>,
    events: VecDeque<ServerEvent>,
    stats: ConnectionStats,
    closing: bool,
    closed: bool,
}

impl ServerConn {
    /// A new connection from `peer`, registered with `server` (for statistics and fault
    /// injection). When the server is disabled or done it is closed at once.
    pub fn new<D: CipDevice>(now: Instant, peer: SocketAddr, server: &mut Server<D>) -> Self {
        let id = server.new_conn(peer);
        let mut conn = ServerConn {
            id,
            local: None,
            decoder: EncapsulationFraming::stream_decoder(),
            session: None,
            connections: Vec::new(),
            queue: VecDeque::new(),
            last_release: None,
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
        };
        conn.check_faults(now, server);
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
    pub fn handle_input<D: CipDevice>(
        &mut self,
        now: Instant,
        data: &[u8],
        server: &mut Server<D>,
    ) {
        if self.closed || self.check_faults(now, server) {
            return;
        }
        self.stats.received = self.stats.received.saturating_add(data.len() as u64);
        self.sync_stats(server);
        if self.closing {
            return;
        }
        self.decoder.handle_input(data);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    self.handle_frame(now, &frame, server);
                    if self.closing || self.closed {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.protocol_error(None, e.to_string());
                    self.close_now(server, CloseReason::ProtocolError);
                    break;
                }
            }
        }
        self.sync_stats(server);
    }

    /// Expire CIP connections whose timeout has passed, and apply fault injection.
    /// (Delayed replies need no call here: [`poll_transmit`](Self::poll_transmit)
    /// releases them when `now` reaches their time.)
    pub fn handle_timeout<D: CipDevice>(&mut self, now: Instant, server: &mut Server<D>) {
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
    }

    /// The peer closed its end: release the session and every CIP connection.
    pub fn handle_eof<D: CipDevice>(&mut self, _now: Instant, server: &mut Server<D>) {
        if !self.closed {
            self.close_now(server, CloseReason::PeerClosed);
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
                out.extend_from_slice(&p.bytes);
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
        match (release, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the adapter should close the socket (after draining
    /// [`poll_transmit`](Self::poll_transmit)).
    pub fn is_closed(&self) -> bool {
        self.closed || (self.closing && self.queue.is_empty())
    }

    // -----------------------------------------------------------------------------------

    /// Apply `disabled`, `done` and per-connection EOF; true when the connection closed.
    fn check_faults<D>(&mut self, _now: Instant, server: &mut Server<D>) -> bool {
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

    fn sync_stats<D>(&mut self, server: &mut Server<D>) {
        self.stats.session_handle = self.session;
        self.stats.closed = self.closed;
        if let Some(s) = server.stats_mut(self.id) {
            s.clone_from(&self.stats);
        }
    }

    /// Release the session and connections; with `flush` false, drop queued replies too.
    fn release_all<D>(&mut self, server: &mut Server<D>) {
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

    fn close_now<D>(&mut self, server: &mut Server<D>, reason: CloseReason) {
        self.release_all(server);
        self.queue.clear();
        self.closed = true;
        self.events.push_back(ServerEvent::Closed { reason });
        self.sync_stats(server);
    }

    fn release_connection<D>(
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
    fn reply<D>(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        header: &Header,
        status: u32,
        data: &[u8],
    ) {
        match Encapsulation::reply(header, status, data) {
            Ok(frame) => {
                let mut bytes = Vec::with_capacity(frame.encoded_len());
                frame.encode(&mut bytes);
                self.queue_bytes(now, server, bytes);
            }
            Err(e) => self.protocol_error(Some(header.command), e.to_string()),
        }
    }

    fn queue_bytes<D>(&mut self, now: Instant, server: &mut Server<D>, bytes: Vec<u8>) {
        let delay = server.sample_delay();
        let at = now.checked_add(delay).unwrap_or(now);
        // Replies leave in order: none overtakes an earlier one with a longer delay.
        let release = match self.last_release {
            Some(last) if last > at => last,
            _ => at,
        };
        self.last_release = Some(release);
        self.stats.sent = self.stats.sent.saturating_add(bytes.len() as u64);
        self.queue.push_back(Pending { release, bytes });
    }

    fn handle_frame<D: CipDevice>(&mut self, now: Instant, frame: &[u8], server: &mut Server<D>) {
        let enc = match Encapsulation::decode(frame) {
            Ok((enc, _)) => enc,
            Err(e) => {
                self.protocol_error(None, e.to_string());
                return;
            }
        };
        self.stats.requests = self.stats.requests.saturating_add(1);
        let h = enc.header;
        if h.options != 0 {
            self.protocol_error(
                Some(h.command),
                format!("options 0x{:08X} not zero: message discarded", h.options),
            );
            return;
        }
        if !h.length_is_valid() {
            self.protocol_error(Some(h.command), "length exceeds the specification's limit");
            self.reply(now, server, &h, status::INVALID_LENGTH, &[]);
            return;
        }
        match h.command {
            Command::Nop => {}
            Command::ListIdentity
            | Command::ListServices
            | Command::ListInterfaces
            | Command::Legacy => {
                let addr = self.local.unwrap_or(server.options().address);
                let cpf = list_reply(h.command, server.device(), addr);
                self.reply(now, server, &h, status::SUCCESS, &cpf.to_vec());
            }
            Command::RegisterSession => self.register_session(now, server, &h, &enc.data),
            Command::UnRegisterSession => {
                if self.session.is_some() && self.session == Some(h.session_handle) {
                    self.release_all(server);
                    self.closing = true;
                    self.events.push_back(ServerEvent::Closed {
                        reason: CloseReason::UnRegisterSession,
                    });
                } else {
                    self.wrong_session(now, server, &h);
                }
            }
            Command::SendRRData => self.send_rr_data(now, server, &h, &enc.data),
            Command::SendUnitData => self.send_unit_data(now, server, &h, &enc.data),
            Command::Other(code) => {
                self.protocol_error(Some(h.command), format!("unsupported command 0x{code:04X}"));
                self.reply(now, server, &h, status::INVALID_COMMAND, &[]);
            }
        }
    }

    fn wrong_session<D>(&mut self, now: Instant, server: &mut Server<D>, h: &Header) {
        self.protocol_error(
            Some(h.command),
            format!("invalid session handle 0x{:08X}", h.session_handle),
        );
        self.reply(now, server, h, status::INVALID_SESSION_HANDLE, &[]);
    }

    fn register_session<D>(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        data: &[u8],
    ) {
        let request = match RegisterSession::decode(data) {
            Ok(r) => r,
            Err(e) => {
                self.protocol_error(Some(h.command), e.to_string());
                self.reply(now, server, h, status::INVALID_LENGTH, &[]);
                return;
            }
        };
        if let Some(existing) = self.session {
            self.protocol_error(Some(h.command), "a session is already registered");
            let header = Header {
                session_handle: existing,
                ..*h
            };
            self.reply(now, server, &header, status::INVALID_COMMAND, data);
            return;
        }
        if request.protocol_version != PROTOCOL_VERSION {
            self.protocol_error(
                Some(h.command),
                format!("unsupported protocol version {}", request.protocol_version),
            );
            let header = Header {
                session_handle: 0,
                ..*h
            };
            let supported = RegisterSession::default().to_vec();
            self.reply(
                now,
                server,
                &header,
                status::UNSUPPORTED_PROTOCOL_REVISION,
                &supported,
            );
            return;
        }
        let handle = server.register_session();
        self.session = Some(handle);
        self.events.push_back(ServerEvent::SessionRegistered {
            session_handle: handle,
        });
        let header = Header {
            session_handle: handle,
            ..*h
        };
        self.reply(now, server, &header, status::SUCCESS, &request.to_vec());
    }

    fn send_rr_data<D: CipDevice>(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        data: &[u8],
    ) {
        if self.session.is_none() || self.session != Some(h.session_handle) {
            self.wrong_session(now, server, h);
            return;
        }
        let send = match SendData::decode(data) {
            Ok(s) => s,
            Err(e) => {
                self.protocol_error(Some(h.command), e.to_string());
                self.reply(now, server, h, status::INCORRECT_DATA, &[]);
                return;
            }
        };
        let Some(message) = send.cpf.unconnected_data() else {
            self.protocol_error(Some(h.command), "no unconnected data item");
            self.reply(now, server, h, status::INCORRECT_DATA, &[]);
            return;
        };
        let via = Via {
            connection_serial: None,
            budget: server.options().unconnected_reply_budget,
        };
        let Some((service, reply)) = self.dispatch(now, server, message, via) else {
            self.protocol_error(Some(h.command), "empty Message Router request");
            self.reply(now, server, h, status::INCORRECT_DATA, &[]);
            return;
        };
        self.events.push_back(ServerEvent::RequestServed {
            command: h.command,
            service,
            general_status: reply.general_status,
            connection: None,
        });
        let body = SendData::new(send.timeout, Cpf::unconnected(reply.to_vec())).to_vec();
        self.reply(now, server, h, status::SUCCESS, &body);
    }

    fn send_unit_data<D: CipDevice>(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        data: &[u8],
    ) {
        if self.session.is_none() || self.session != Some(h.session_handle) {
            self.wrong_session(now, server, h);
            return;
        }
        let send = match SendData::decode(data) {
            Ok(s) => s,
            Err(e) => {
                self.protocol_error(Some(h.command), format!("{e}: dropped"));
                return;
            }
        };
        let Some(c) = send.cpf.connected_data() else {
            self.protocol_error(Some(h.command), "no connected address and data: dropped");
            return;
        };
        let Some(conn) = self
            .connections
            .iter_mut()
            .find(|x| x.o_t_connection_id == c.connection_id)
        else {
            self.protocol_error(
                Some(h.command),
                format!(
                    "connection id 0x{:08X} is not open on this session: dropped",
                    c.connection_id
                ),
            );
            return;
        };
        conn.deadline = now.checked_add(conn.timeout).unwrap_or(now);
        let o_t = conn.o_t_connection_id;
        let t_o = conn.t_o_connection_id;
        let via = Via {
            connection_serial: Some(conn.triple.connection_serial),
            budget: conn.reply_budget(),
        };
        let (service, reply) = match &conn.last {
            // A retransmission: answer again without executing twice.
            Some((seq, service, reply)) if *seq == c.sequence => (*service, reply.clone()),
            _ => {
                let Some((service, reply)) = self.dispatch(now, server, c.data, via) else {
                    self.protocol_error(Some(h.command), "empty Message Router request: dropped");
                    return;
                };
                if let Some(conn) = self
                    .connections
                    .iter_mut()
                    .find(|x| x.o_t_connection_id == o_t)
                {
                    conn.last = Some((c.sequence, service, reply.clone()));
                }
                (service, reply)
            }
        };
        self.events.push_back(ServerEvent::RequestServed {
            command: h.command,
            service,
            general_status: reply.general_status,
            connection: Some(o_t),
        });
        let body = SendData::new(0, Cpf::connected(t_o, c.sequence, reply.to_vec())).to_vec();
        self.reply(now, server, h, status::SUCCESS, &body);
    }

    /// Route one Message Router request: Connection Manager services here, the rest to
    /// the device. `None` when there is not even a service code. Returns the service
    /// code served (the embedded one for an Unconnected Send) and the reply.
    fn dispatch<D: CipDevice>(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        message: &[u8],
        via: Via,
    ) -> Option<(u8, MessageRouterReply<'static>)> {
        let service = *message.first()?;
        let req = match MessageRouterRequest::decode(message) {
            Ok(r) => r,
            Err(_) => {
                return Some((
                    service,
                    MessageRouterReply::error(service, GeneralStatus::PATH_SEGMENT_ERROR, &[]),
                ))
            }
        };
        Some(match req.kind() {
            Service::UnconnectedSend => self.unconnected_send(now, server, &req, via),
            Service::ForwardOpen | Service::LargeForwardOpen => {
                (service, self.forward_open(now, server, &req))
            }
            Service::ForwardClose => (service, self.forward_close(server, &req)),
            _ => (service, execute(now, server, &req, via)),
        })
    }

    fn unconnected_send<D: CipDevice>(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        req: &MessageRouterRequest<'_>,
        via: Via,
    ) -> (u8, MessageRouterReply<'static>) {
        let us = match UnconnectedSend::decode_with_trailing(&req.data) {
            Ok((us, _)) => us,
            Err(_) => {
                return (
                    req.service,
                    MessageRouterReply::error(req.service, GeneralStatus::NOT_ENOUGH_DATA, &[]),
                )
            }
        };
        if let Err(why) = server.options().route_path.check(&us.route_path) {
            let words = u8::try_from(us.route_path.word_len()).unwrap_or(u8::MAX);
            return (
                req.service,
                unconnected_send_failure(GeneralStatus::CONNECTION_FAILURE, &[why.0], words),
            );
        }
        let inner = &us.request;
        let service = inner.service;
        let reply = match inner.kind() {
            Service::ForwardOpen | Service::LargeForwardOpen => {
                self.forward_open(now, server, inner)
            }
            Service::ForwardClose => self.forward_close(server, inner),
            // No further hop: this device routes nowhere.
            Service::UnconnectedSend => {
                MessageRouterReply::error(service, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[])
            }
            _ => execute(
                now,
                server,
                inner,
                Via {
                    connection_serial: via.connection_serial,
                    budget: server.options().unconnected_reply_budget,
                },
            ),
        };
        (service, reply)
    }
}

/// Hand a request to the device, and refuse a reply larger than the budget.
fn execute<D: CipDevice>(
    now: Instant,
    server: &mut Server<D>,
    req: &MessageRouterRequest<'_>,
    via: Via,
) -> MessageRouterReply<'static> {
    let ctx = RequestContext {
        now,
        connection: via.connection_serial,
        reply_budget: via.budget,
    };
    let (device, _) = server.device_and_options();
    let reply = device.execute(&ctx, req);
    if reply.encoded_len() > via.budget {
        MessageRouterReply::error(req.service, GeneralStatus::REPLY_DATA_TOO_LARGE, &[])
    } else {
        reply
    }
}

/// The ListIdentity item for `identity` at `addr`.
pub fn list_identity_item(
    identity: &objects::Identity<'_>,
    addr: SocketAddrV4,
) -> cpf::Identity<'static> {
    cpf::Identity {
        protocol_version: PROTOCOL_VERSION,
        socket_address: SockAddr::new(*addr.ip(), addr.port()),
        vendor_id: identity.vendor_id,
        device_type: identity.device_type,
        product_code: identity.product_code,
        revision_major: identity.revision.major,
        revision_minor: identity.revision.minor,
        status: identity.status,
        serial_number: identity.serial_number,
        product_name: identity.product_name.as_bytes().to_vec().into(),
        state: Some(identity.state.unwrap_or(IDENTITY_STATE_UNKNOWN)),
        extra: Vec::new().into(),
    }
}

/// The CPF answering ListIdentity, ListServices, ListInterfaces or legacy 0x0001 (an
/// empty list for any other command).
fn list_reply<D: CipDevice>(command: Command, device: &D, addr: SocketAddrV4) -> Cpf<'static> {
    let items = match command {
        Command::ListIdentity => vec![Item::Identity(list_identity_item(&device.identity(), addr))],
        Command::ListServices => vec![Item::Service(cpf::Service::communications(
            LIST_SERVICES_CAPABILITY,
        ))],
        Command::Legacy => vec![Item::Legacy(LegacyAddress::new(*addr.ip(), addr.port()))],
        _ => Vec::new(),
    };
    Cpf { items }
}

impl<D: CipDevice> Server<D> {
    /// Answer one UDP datagram (ListIdentity, ListServices, ListInterfaces, legacy
    /// 0x0001), appending the reply datagram to `out`. Returns false when the datagram
    /// gets no reply: Nop, commands that need a TCP session, anything malformed, and
    /// everything while the server is disabled or done. `peer` is the sender (kept for
    /// the signature adapters use; replies do not depend on it).
    pub fn handle_datagram(
        &mut self,
        _now: Instant,
        _peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if self.faults.disabled || self.faults.done {
            return false;
        }
        let Ok((enc, used)) = Encapsulation::decode(data) else {
            return false;
        };
        let h = enc.header;
        if used != data.len() || h.options != 0 {
            return false;
        }
        match h.command {
            Command::ListIdentity
            | Command::ListServices
            | Command::ListInterfaces
            | Command::Legacy => {
                let cpf = list_reply(h.command, self.device(), self.options().address);
                match Encapsulation::reply(&h, status::SUCCESS, cpf.to_vec()) {
                    Ok(frame) => {
                        frame.encode(out);
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }
}
