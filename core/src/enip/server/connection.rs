//! The Connection Manager's connection services as the server executes them: Forward
//! Open and Large Forward Open (validation, target-chosen O->T ids, timeouts) and Forward
//! Close, and the state of one open CIP connection.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ServerConn, ServerEvent};
use crate::cip::connection_manager::{
    connection_type, ConnectionTriple, ForwardCloseFailure, ForwardCloseReply, ForwardCloseRequest,
    ForwardOpenFailure, ForwardOpenReply, ForwardOpenRequest,
};
use crate::cip::device::CipDevice;
use crate::cip::epath::{Epath, Segment};
use crate::cip::message_router::{class, service, MessageRouterReply, MessageRouterRequest};
use crate::cip::status::{ConnectionManagerStatus, GeneralStatus};
use crate::enip::server::shared::{RegisteredConnection, Server};
use crate::limits::Limit;
use crate::wire::Encode;

/// The largest connection size of the 16-bit (non-large) Forward Open.
pub const MAX_SMALL_CONNECTION_SIZE: u16 = 511;

/// The bytes of a class 3 connection's data taken by the CIP sequence count, which the
/// connection size includes.
pub const SEQUENCE_COUNT_LEN: usize = 2;

/// The largest timeout multiplier code (4 << 7 = 512 x RPI); codes above are reserved.
pub const MAX_TIMEOUT_MULTIPLIER: u8 = 7;

/// The Message Router's instance, the target of an explicit messaging connection.
const MESSAGE_ROUTER_INSTANCE: u32 = 1;

/// One open CIP (class 3, explicit messaging) connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CipConnection {
    /// The identity the originator gave it.
    pub triple: ConnectionTriple,
    /// The O->T id this server chose: requests' connected address carries it.
    pub o_t_connection_id: u32,
    /// The T->O id the originator chose: replies are addressed with it.
    pub t_o_connection_id: u32,
    /// Negotiated O->T connection size in bytes.
    pub o_t_size: u16,
    /// Negotiated T->O connection size in bytes (sequence count included).
    pub t_o_size: u16,
    /// True when opened by a Large Forward Open.
    pub large: bool,
    /// RPI x timeout multiplier: how long the connection lives without a request.
    pub timeout: Duration,
    #[serde(skip)]
    pub(super) deadline: Instant,
    /// The last sequence count, service and reply, for retransmissions.
    #[serde(skip)]
    pub(super) last: Option<(u16, u8, MessageRouterReply<'static>)>,
    /// The Forward Open's connection path without electronic keys, which a Forward
    /// Close must repeat.
    #[serde(skip)]
    pub(super) path: Vec<u8>,
}

impl CipConnection {
    /// The most bytes a Message Router reply on this connection may take: the T->O size
    /// less the sequence count.
    pub fn reply_budget(&self) -> usize {
        usize::from(self.t_o_size).saturating_sub(SEQUENCE_COUNT_LEN)
    }

    /// When the connection times out unless a request arrives first.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// The connection timeout: `rpi_us` microseconds times `4 << multiplier`.
pub fn connection_timeout(rpi_us: u32, multiplier: u8) -> Duration {
    let factor = 4u64 << multiplier.min(MAX_TIMEOUT_MULTIPLIER);
    Duration::from_micros(u64::from(rpi_us).saturating_mul(factor))
}

fn cm_failure(
    request_service: u8,
    status: ConnectionManagerStatus,
    extra: &[u16],
    triple: ConnectionTriple,
    remaining_path_size: u8,
) -> MessageRouterReply<'static> {
    let mut words = vec![status.0];
    words.extend_from_slice(extra);
    let mut reply =
        MessageRouterReply::error(request_service, GeneralStatus::CONNECTION_FAILURE, &words);
    reply.data = Cow::Owned(
        ForwardOpenFailure {
            triple: Some(triple),
            remaining_path_size: Some(remaining_path_size),
        }
        .to_vec(),
    );
    reply
}

/// A connection path without its electronic keys (which a Forward Close may leave out),
/// as bytes to compare; `None` when it does not parse.
fn path_without_keys(path: &Epath<'_>) -> Option<Vec<u8>> {
    let segments: Vec<Segment<'_>> = path
        .to_segments()
        .ok()?
        .into_iter()
        .filter(|s| !matches!(s, Segment::ElectronicKey(_)))
        .collect();
    Epath::from_segments(&segments)
        .ok()
        .map(|p| p.as_bytes().to_vec())
}

/// Check a Forward Open connection path: leading port segments are a route (checked
/// against the policy), then an optional electronic key, then the Message Router
/// (class 2, instance 1).
fn check_connection_path<D>(
    server: &Server<D>,
    path: &Epath<'_>,
) -> Result<(), (ConnectionManagerStatus, u8)> {
    let words = u8::try_from(path.word_len()).unwrap_or(u8::MAX);
    let Ok(segments) = path.to_segments() else {
        return Err((ConnectionManagerStatus::INVALID_SEGMENT_IN_PATH, words));
    };
    let route_len = segments
        .iter()
        .take_while(|s| matches!(s, Segment::Port { .. }))
        .count();
    let (route, target) = segments.split_at(route_len);
    let route = Epath::from_segments(route)
        .map_err(|_| (ConnectionManagerStatus::INVALID_SEGMENT_IN_PATH, words))?;
    server
        .options()
        .route_path
        .check(&route)
        .map_err(|status| (status, words))?;
    let target: Vec<&Segment<'_>> = target
        .iter()
        .filter(|s| !matches!(s, Segment::ElectronicKey(_)))
        .collect();
    match target.as_slice() {
        [Segment::Class(c), Segment::Instance(MESSAGE_ROUTER_INSTANCE)]
            if *c == u32::from(class::MESSAGE_ROUTER) =>
        {
            Ok(())
        }
        _ => Err((ConnectionManagerStatus::INVALID_SEGMENT_IN_PATH, 0)),
    }
}

impl<D: CipDevice> ServerConn<D> {
    pub(super) fn forward_open(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        req: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static> {
        let large = req.service == service::LARGE_FORWARD_OPEN;
        let fo = match ForwardOpenRequest::decode_with_trailing(&req.data, large) {
            Ok((fo, _)) => fo,
            Err(_) => {
                return MessageRouterReply::error(req.service, GeneralStatus::NOT_ENOUGH_DATA, &[])
            }
        };
        let fail = |status, extra: &[u16], remaining| {
            cm_failure(req.service, status, extra, fo.triple, remaining)
        };
        let tct = fo.transport_class_trigger;
        if tct.class() != 3 || !tct.server() {
            return fail(
                ConnectionManagerStatus::TRANSPORT_CLASS_AND_TRIGGER_NOT_SUPPORTED,
                &[],
                0,
            );
        }
        let (o_t, t_o) = (fo.o_t_parameters(), fo.t_o_parameters());
        if o_t.connection_type() != connection_type::POINT_TO_POINT {
            return fail(ConnectionManagerStatus::INVALID_O_T_CONNECTION_TYPE, &[], 0);
        }
        if t_o.connection_type() != connection_type::POINT_TO_POINT {
            return fail(ConnectionManagerStatus::INVALID_T_O_CONNECTION_TYPE, &[], 0);
        }
        let max = if large {
            server.options().max_connection_size
        } else {
            server
                .options()
                .max_connection_size
                .min(MAX_SMALL_CONNECTION_SIZE)
        };
        for size in [o_t.size(), t_o.size()] {
            if usize::from(size) <= SEQUENCE_COUNT_LEN || size > max {
                // The additional status carries the largest size supported.
                return fail(ConnectionManagerStatus::INVALID_CONNECTION_SIZE, &[max], 0);
            }
        }
        if fo.o_t_rpi == 0 || fo.t_o_rpi == 0 {
            return fail(ConnectionManagerStatus::RPI_NOT_ACCEPTABLE, &[], 0);
        }
        if let Err((status, remaining)) = check_connection_path(server, &fo.connection_path) {
            return fail(status, &[], remaining);
        }
        if server.triple_in_use(&fo.triple) {
            return fail(ConnectionManagerStatus::CONNECTION_IN_USE, &[], 0);
        }
        if server.connection_count() >= server.options().max_connections {
            self.limit_reached(server, Limit::Connections);
            return fail(ConnectionManagerStatus::OUT_OF_CONNECTIONS, &[], 0);
        }
        if self.connections.len() >= server.options().max_connections_per_session {
            self.limit_reached(server, Limit::ConnectionsPerSession);
            return fail(ConnectionManagerStatus::OUT_OF_CONNECTIONS, &[], 0);
        }
        let timeout = connection_timeout(fo.o_t_rpi, fo.timeout_multiplier);
        let o_t_connection_id = server.register_connection(RegisteredConnection {
            owner: self.id,
            triple: fo.triple,
            t_o_connection_id: fo.t_o_connection_id,
        });
        let conn = CipConnection {
            triple: fo.triple,
            o_t_connection_id,
            t_o_connection_id: fo.t_o_connection_id,
            o_t_size: o_t.size(),
            t_o_size: t_o.size(),
            large,
            timeout,
            deadline: now.checked_add(timeout).unwrap_or(now),
            last: None,
            path: path_without_keys(&fo.connection_path).unwrap_or_default(),
        };
        self.events.push_back(ServerEvent::ConnectionOpened {
            triple: conn.triple,
            o_t_connection_id,
            t_o_connection_id: conn.t_o_connection_id,
            size: conn.t_o_size,
            timeout,
        });
        self.connections.push(conn);
        let reply = ForwardOpenReply {
            o_t_connection_id,
            t_o_connection_id: fo.t_o_connection_id,
            triple: fo.triple,
            o_t_api: fo.o_t_rpi,
            t_o_api: fo.t_o_rpi,
            application_reply: Cow::Borrowed(&[]),
        };
        MessageRouterReply::success(req.service, reply.to_vec())
    }

    pub(super) fn forward_close(
        &mut self,
        server: &mut Server<D>,
        req: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static> {
        let fc = match ForwardCloseRequest::decode_with_trailing(&req.data) {
            Ok((fc, _)) => fc,
            Err(_) => {
                return MessageRouterReply::error(req.service, GeneralStatus::NOT_ENOUGH_DATA, &[])
            }
        };
        let fail = |status: ConnectionManagerStatus| {
            let mut reply = MessageRouterReply::error(
                req.service,
                GeneralStatus::CONNECTION_FAILURE,
                &[status.0],
            );
            reply.data = Cow::Owned(
                ForwardCloseFailure {
                    triple: Some(fc.triple),
                    remaining_path_size: Some(0),
                }
                .to_vec(),
            );
            reply
        };
        // Only this TCP connection's own connections: another client's is "not found".
        let Some(pos) = self.connections.iter().position(|c| c.triple == fc.triple) else {
            return fail(ConnectionManagerStatus::CONNECTION_NOT_FOUND);
        };
        // The path must name what the Forward Open named (electronic keys aside); an
        // empty one is taken as "the same", as lenient targets do.
        let same_path = fc.connection_path.is_empty()
            || self
                .connections
                .get(pos)
                .is_some_and(|c| path_without_keys(&fc.connection_path).as_ref() == Some(&c.path));
        if !same_path {
            return fail(ConnectionManagerStatus::FORWARD_CLOSE_PATH_MISMATCH);
        }
        let conn = self.connections.remove(pos);
        self.release_connection(server, &conn, super::ConnectionCloseReason::ForwardClose);
        let reply = ForwardCloseReply {
            triple: fc.triple,
            application_reply: Cow::Borrowed(&[]),
        };
        MessageRouterReply::success(req.service, reply.to_vec())
    }
}
