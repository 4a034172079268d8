//! The state every TCP connection of one EtherNet/IP server shares: the simulated device,
//! the options, the fault injection settings, the registries of sessions and CIP
//! connections, and per-connection statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cip::connection_manager::ConnectionTriple;
use crate::cip::device::{CipDevice, UNCONNECTED_REPLY_BUDGET};
use crate::cip::epath::{parse_route_path, Epath, PathParseError, Segment};
use crate::cip::status::ConnectionManagerStatus;
use crate::enip::ENIP_PORT;
use crate::limits::{ConnectionLimits, Limit, LimitCounts};
use crate::rng::SplitMix64;

/// The largest connection size a Large Forward Open may negotiate by default: 4002 bytes,
/// what ControlLogix 5570/5580 controllers accept (and what pylogix asks for).
pub const DEFAULT_MAX_CONNECTION_SIZE: u16 = 4002;

/// How many CIP connections the server holds at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// How many CIP connections one TCP connection (one session) may hold by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_SESSION: usize = 32;

/// The largest encapsulation frame (24-byte header included) accepted by default: room
/// for a 4002-byte Large Forward Open connection's data and its envelope four times over,
/// a quarter of what the 16-bit length field allows
/// ([`crate::enip::encapsulation::MAX_FRAME_LEN`]).
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024;

fn default_max_frame_len() -> usize {
    DEFAULT_MAX_FRAME_LEN
}

fn default_max_connections_per_session() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_SESSION
}

/// Which route paths an Unconnected Send (and a Forward Open's connection path) may carry
/// to reach this device, as cpppo's `--route-path` and `--simple` choose.
///
/// An empty route path (a "simple" request that names no route) is accepted by every
/// policy, as cpppo does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePolicy {
    /// Any route path is accepted (cpppo's behaviour when `--route-path` is not given).
    Any,
    /// Only this route path (e.g. backplane port 1, link 0 for a controller in slot 0).
    Only(Epath<'static>),
    /// No route path at all: a non-routing device (`--route-path=false`, `--simple`),
    /// such as a MicroLogix or a PowerFlex drive.
    None,
}

impl Default for RoutePolicy {
    /// Backplane port 1, link 0: a controller in slot 0.
    fn default() -> Self {
        RoutePolicy::Only(Epath::from_vec(vec![0x01, 0x00]))
    }
}

impl RoutePolicy {
    /// Parse a cpppo `--route-path` value: a JSON list (`[{"port":1,"link":0}]`), one
    /// object, or `1/0`; `0`, `false`, `null` and `[]` mean [`RoutePolicy::None`].
    pub fn from_cpppo(text: &str) -> Result<Self, PathParseError> {
        Ok(match parse_route_path(text)? {
            Some(path) => RoutePolicy::Only(path),
            None => RoutePolicy::None,
        })
    }

    /// Check a request's route path. On refusal, the Connection Manager extended status
    /// to answer with (port not available, link address not valid, or invalid segment).
    pub fn check(&self, route: &Epath<'_>) -> Result<(), ConnectionManagerStatus> {
        if route.is_empty() {
            return Ok(());
        }
        match self {
            RoutePolicy::Any => Ok(()),
            RoutePolicy::None => Err(ConnectionManagerStatus::INVALID_PORT),
            RoutePolicy::Only(want) if want.as_bytes() == route.as_bytes() => Ok(()),
            RoutePolicy::Only(want) => {
                let mut wanted = want.segments();
                for seg in route.segments() {
                    let Ok(Segment::Port { port, link }) = seg else {
                        return Err(ConnectionManagerStatus::INVALID_SEGMENT_IN_PATH);
                    };
                    match wanted.next() {
                        Some(Ok(Segment::Port {
                            port: want_port,
                            link: want_link,
                        })) => {
                            if want_port != port {
                                return Err(ConnectionManagerStatus::INVALID_PORT);
                            }
                            if want_link != link {
                                return Err(ConnectionManagerStatus::INVALID_LINK_ADDRESS);
                            }
                        }
                        _ => return Err(ConnectionManagerStatus::INVALID_PORT),
                    }
                }
                // The request's route is a proper prefix of ours.
                Err(ConnectionManagerStatus::INVALID_LINK_ADDRESS)
            }
        }
    }
}

/// A delay applied to every reply (cpppo's `--delay #.#[-#.#]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyDelay {
    /// Replies are released as soon as they are computed.
    #[default]
    None,
    /// Every reply waits this long.
    Fixed(Duration),
    /// Every reply waits a duration drawn uniformly from `min..=max` by the server's
    /// seeded generator (reproducible for a given seed; up to 584 years).
    Range {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
}

impl ReplyDelay {
    /// Draw one delay.
    pub fn sample(&self, rng: &mut SplitMix64) -> Duration {
        match *self {
            ReplyDelay::None => Duration::ZERO,
            ReplyDelay::Fixed(d) => d,
            ReplyDelay::Range { min, max } => {
                let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
                let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rng.between(nanos(lo), nanos(hi)))
            }
        }
    }
}

/// Fault injection settings, changeable while serving (the web API drives them).
///
/// A connection applies `disabled`, `done` and `eof` at its next `handle_input` or
/// `handle_timeout`; an adapter that changes them should call
/// [`crate::enip::server::ServerConn::handle_timeout`] on its connections so that idle
/// ones notice at once. A changed `delay` applies to replies computed afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Delay before each reply is released.
    pub delay: ReplyDelay,
    /// Refuse service: new TCP connections are closed at once and existing ones are
    /// closed at their next input or timeout; UDP requests go unanswered.
    pub disabled: bool,
    /// Stop serving altogether (the adapter stops accepting and exits); connections
    /// close as when `disabled`.
    pub done: bool,
    /// Connection ids (see [`crate::enip::server::ServerConn::id`]) to close as if the
    /// peer had hung up, at their next input or timeout.
    pub eof: BTreeSet<u64>,
    /// How often an idle connection wakes to notice `disabled`, `done` and `eof` (cpppo's
    /// `server.control.latency`): each connection asks for a timeout this long after its
    /// last input or wake-up. `None` (the default) never wakes an idle connection: it
    /// notices at its next input.
    #[serde(default, with = "crate::engine::seconds")]
    pub latency: Option<Duration>,
    /// How long whoever changes these settings (the web API) waits for the connections
    /// to act on them before answering (cpppo's `server.control.timeout`); `None` does
    /// not wait. The engine itself does not use it: see [`Server::faults_pending`].
    #[serde(default, with = "crate::engine::seconds")]
    pub timeout: Option<Duration>,
}

/// Server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerOptions {
    /// The address announced in ListIdentity and legacy 0x0001 replies (the address the
    /// adapter is bound to; a connection's own local address overrides it, see
    /// [`crate::enip::server::ServerConn::set_local_address`]).
    pub address: SocketAddrV4,
    /// Which route paths are accepted.
    pub route_path: RoutePolicy,
    /// The largest connection size a Forward Open may negotiate (at most 511 for the
    /// 16-bit Forward Open in any case).
    pub max_connection_size: u16,
    /// How many CIP connections may be open at once (server-wide).
    pub max_connections: usize,
    /// The reply budget of an unconnected request.
    pub unconnected_reply_budget: usize,
    /// Seed of the generator that picks session handles, connection ids and delays.
    pub seed: u64,
    /// Close a TCP connection that carries no CIP connection and has received nothing for
    /// this long (the TCP/IP object's encapsulation inactivity timeout, attribute 13, which
    /// a ControlLogix sets to 120 s). `None` (cpppo's behaviour) keeps idle connections.
    pub inactivity_timeout: Option<Duration>,
    /// The largest encapsulation frame accepted, header included (no frame is longer
    /// than [`crate::enip::encapsulation::MAX_FRAME_LEN`]). A header announcing more is answered with status
    /// 0x0065 (invalid length) and the connection closed, before any of its body is
    /// buffered.
    #[serde(default = "default_max_frame_len")]
    pub max_frame_len: usize,
    /// How many CIP connections one TCP connection may hold; a Forward Open beyond gets
    /// 0x01 / 0x0113 (out of connections), as beyond [`ServerOptions::max_connections`].
    #[serde(default = "default_max_connections_per_session")]
    pub max_connections_per_session: usize,
    /// Pending replies, half-received frames and request rate, per TCP connection.
    #[serde(default)]
    pub limits: ConnectionLimits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            address: SocketAddrV4::new(Ipv4Addr::LOCALHOST, ENIP_PORT),
            route_path: RoutePolicy::default(),
            max_connection_size: DEFAULT_MAX_CONNECTION_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            unconnected_reply_budget: UNCONNECTED_REPLY_BUDGET,
            seed: 0x6370_7070_6f2d_7273, // "cpppo-rs"
            inactivity_timeout: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_connections_per_session: DEFAULT_MAX_CONNECTIONS_PER_SESSION,
            limits: ConnectionLimits::default(),
        }
    }
}

impl ServerOptions {
    /// cpppo's `--simple`: a non-routing device, accepting no route path.
    pub fn simple(mut self) -> Self {
        self.route_path = RoutePolicy::None;
        self
    }
}

/// How many closed connections' [`ConnectionStats`] a [`Server`] keeps (the most recent;
/// older ones are dropped as new connections arrive, unless
/// [`Server::forget_connection`] dropped them first).
pub const KEPT_CLOSED_STATS: usize = 64;

/// What one TCP connection has done so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// The peer's address.
    pub peer: SocketAddr,
    /// Bytes received.
    pub received: u64,
    /// Bytes of replies queued for sending (counted when the reply is computed).
    pub sent: u64,
    /// Encapsulation requests handled.
    pub requests: u64,
    /// The session handle registered on it, if any.
    pub session_handle: Option<u32>,
    /// True once the connection has closed (kept for reporting until
    /// [`Server::forget_connection`], or until [`KEPT_CLOSED_STATS`] newer closed
    /// connections are kept).
    pub closed: bool,
}

/// A CIP connection as the server-wide registry knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredConnection {
    /// The TCP connection that opened it.
    pub owner: u64,
    /// The connection's identity.
    pub triple: ConnectionTriple,
    /// The T->O id the originator chose.
    pub t_o_connection_id: u32,
}

/// The shared state of one EtherNet/IP server: the device, options, faults, sessions,
/// the CIP connection registry and statistics.
///
/// Every [`crate::enip::server::ServerConn`] takes it by `&mut` in its `handle_*` calls:
/// a single-threaded adapter owns it, a threaded one shares it behind a lock.
#[derive(Debug)]
pub struct Server<D> {
    device: D,
    options: ServerOptions,
    /// Fault injection, changeable at any time.
    pub faults: Faults,
    rng: SplitMix64,
    next_conn_id: u64,
    sessions: BTreeSet<u32>,
    connections: BTreeMap<u32, RegisteredConnection>,
    stats: BTreeMap<u64, ConnectionStats>,
    limits_reached: LimitCounts,
}

impl<D: CipDevice> Server<D> {
    /// A server for `device` with `options`.
    pub fn new(device: D, options: ServerOptions) -> Self {
        let rng = SplitMix64::new(options.seed);
        Server {
            device,
            options,
            faults: Faults::default(),
            rng,
            next_conn_id: 1,
            sessions: BTreeSet::new(),
            connections: BTreeMap::new(),
            stats: BTreeMap::new(),
            limits_reached: LimitCounts::default(),
        }
    }
}

impl<D> Server<D> {
    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The options.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The options, mutably (changes apply to requests that arrive afterwards).
    pub fn options_mut(&mut self) -> &mut ServerOptions {
        &mut self.options
    }

    /// True when the adapter should stop serving ([`Faults::done`]).
    pub fn is_done(&self) -> bool {
        self.faults.done
    }

    /// Statistics of every TCP connection not yet forgotten, by connection id.
    pub fn stats(&self) -> &BTreeMap<u64, ConnectionStats> {
        &self.stats
    }

    /// How many times each limit was hit, on every connection so far.
    pub fn limits_reached(&self) -> &LimitCounts {
        &self.limits_reached
    }

    pub(super) fn count_limit(&mut self, limit: Limit) {
        self.limits_reached.count(limit);
    }

    /// Drop the statistics of a closed connection.
    pub fn forget_connection(&mut self, id: u64) {
        self.stats.remove(&id);
    }

    /// The registered session handles.
    pub fn sessions(&self) -> &BTreeSet<u32> {
        &self.sessions
    }

    /// The open CIP connections, by O->T connection id.
    pub fn connections(&self) -> &BTreeMap<u32, RegisteredConnection> {
        &self.connections
    }

    /// Ask connection `id` to close as if its peer had hung up (see [`Faults::eof`]).
    pub fn request_eof(&mut self, id: u64) {
        self.faults.eof.insert(id);
    }

    /// The connections still open (not closed nor closing), by connection id.
    pub fn open_connections(&self) -> impl Iterator<Item = (u64, &ConnectionStats)> + '_ {
        self.stats
            .iter()
            .filter(|(_, s)| !s.closed)
            .map(|(id, s)| (*id, s))
    }

    /// True while a connection has yet to act on the fault settings: one asked to
    /// [EOF](Faults::eof) is still open, or one is open while the server is
    /// [disabled](Faults::disabled) or [done](Faults::done). A controller that changed
    /// them waits (at most [`Faults::timeout`]) for this to become false.
    pub fn faults_pending(&self) -> bool {
        let stopping = self.faults.disabled || self.faults.done;
        self.open_connections()
            .any(|(id, _)| stopping || self.faults.eof.contains(&id))
    }

    pub(super) fn device_and_options(&mut self) -> (&mut D, &ServerOptions) {
        (&mut self.device, &self.options)
    }

    pub(super) fn sample_delay(&mut self) -> Duration {
        let delay = self.faults.delay;
        delay.sample(&mut self.rng)
    }

    pub(super) fn new_conn(&mut self, peer: SocketAddr) -> u64 {
        // Closed connections' statistics are kept for reporting, but only the latest
        // few: a server that clients connect to again and again for days must not keep
        // one entry per connection it ever had.
        let closed = self.stats.values().filter(|s| s.closed).count();
        let mut excess = closed.saturating_sub(KEPT_CLOSED_STATS - 1);
        if excess > 0 {
            self.stats.retain(|_, s| {
                let drop = s.closed && excess > 0;
                excess -= usize::from(drop);
                !drop
            });
        }
        let id = self.next_conn_id;
        self.next_conn_id = self.next_conn_id.wrapping_add(1);
        self.stats.insert(
            id,
            ConnectionStats {
                peer,
                received: 0,
                sent: 0,
                requests: 0,
                session_handle: None,
                closed: false,
            },
        );
        id
    }

    pub(super) fn stats_mut(&mut self, id: u64) -> Option<&mut ConnectionStats> {
        self.stats.get_mut(&id)
    }

    /// Allocate a fresh, non-zero session handle.
    pub(super) fn register_session(&mut self) -> u32 {
        loop {
            let handle = (self.rng.next_u64() >> 32) as u32;
            if handle != 0 && self.sessions.insert(handle) {
                return handle;
            }
        }
    }

    pub(super) fn unregister_session(&mut self, handle: u32) {
        self.sessions.remove(&handle);
    }

    pub(super) fn triple_in_use(&self, triple: &ConnectionTriple) -> bool {
        self.connections.values().any(|c| c.triple == *triple)
    }

    pub(super) fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Allocate a fresh, non-zero O->T connection id and register the connection.
    pub(super) fn register_connection(&mut self, conn: RegisteredConnection) -> u32 {
        loop {
            let id = (self.rng.next_u64() >> 32) as u32;
            if id != 0 && !self.connections.contains_key(&id) {
                self.connections.insert(id, conn);
                return id;
            }
        }
    }

    pub(super) fn unregister_connection(&mut self, o_t_connection_id: u32) {
        self.connections.remove(&o_t_connection_id);
    }
}
