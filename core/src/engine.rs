//! The surface every server engine shares, so that each runtime drives EtherNet/IP and
//! Modbus with one loop.
//!
//! A [`Server`] is the state all connections of one simulated device share (tags or
//! register tables, fault settings, statistics); a [`Connection`] is one TCP
//! connection's protocol state. A runtime owns the sockets and the clock and does only
//! this, for every connection:
//!
//! 1. bytes arrive: [`Connection::handle_input`];
//! 2. a deadline passes: [`Connection::handle_timeout`];
//! 3. then drain [`Connection::poll_transmit`] to the socket and [`Connection::poll_event`]
//!    to the log, read [`Connection::poll_timeout`] and wait for that deadline or more
//!    bytes, whichever comes first;
//! 4. close the socket once [`Connection::is_closed`] and everything is flushed.
//!
//! Time passed in never goes backwards. The output buffer belongs to the runtime, which
//! reuses it, so the steady state allocates nothing.
//!
//! What the runtimes share lives here once: [`ServeOptions`] (what to listen on, the
//! connection limit, the idle and send timeouts; the engines' own limits are in
//! [`crate::limits`]), [`ServeStats`], the [`Driver`] that keeps one connection's output
//! buffer, idle and send deadlines and end of input, and [`Serving`], the
//! handle every runtime's `serve` returns, so a program picks its runtime at run time.
//! The client side is [`Driven`]: the surface each runtime's client loop drives on a
//! client engine (EtherNet/IP client, Modbus client and poller).

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The surface a runtime drives on a client engine (the Modbus [`Poller`] and client, the
/// EtherNet/IP [`ClientConn`]): the client side of this module, without protocol, so that
/// each runtime has one client loop.
///
/// [`Poller`]: crate::modbus::poller::Poller
/// [`ClientConn`]: crate::enip::client::ClientConn
pub trait Driven {
    /// Bytes that arrived.
    fn input(&mut self, now: Instant, data: &[u8]);
    /// Append bytes to send; false when nothing is ready.
    fn transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool;
    /// The next deadline.
    fn deadline(&self) -> Option<Instant>;
    /// A deadline may have passed.
    fn timeout(&mut self, now: Instant);
    /// The connection is gone (the peer closed it, or a read or write failed).
    fn eof(&mut self, now: Instant);
}

/// How long a runtime lets a write to a client connection take when the engine has no
/// deadline of its own.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// By when a runtime must have written a client engine's output: its next deadline (an
/// operation's timeout), so that a peer that stops reading cannot hold the loop past
/// it; [`DEFAULT_WRITE_TIMEOUT`] from `now` without one. Past it, the runtime calls
/// [`Driven::timeout`] and keeps the rest of the output for later, so no frame is cut.
pub fn write_deadline<E: Driven + ?Sized>(engine: &E, now: Instant) -> Instant {
    engine
        .deadline()
        .unwrap_or_else(|| now + DEFAULT_WRITE_TIMEOUT)
}

/// `Driven` for an engine whose methods carry the contract's names; `$eof` is the one
/// it calls when the connection is gone.
macro_rules! driven {
    ($engine:ty, $eof:ident) => {
        impl Driven for $engine {
            fn input(&mut self, now: Instant, data: &[u8]) {
                self.handle_input(now, data);
            }
            fn transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
                self.poll_transmit(now, out)
            }
            fn deadline(&self) -> Option<Instant> {
                self.poll_timeout()
            }
            fn timeout(&mut self, now: Instant) {
                self.handle_timeout(now);
            }
            fn eof(&mut self, now: Instant) {
                self.$eof(now);
            }
        }
    };
}

driven!(crate::modbus::poller::Poller, handle_disconnected);
driven!(crate::modbus::client::ClientConn, handle_eof);
driven!(crate::enip::client::ClientConn, handle_eof);
driven!(crate::enip::proxy::Proxy, handle_disconnected);
driven!(crate::enip::poller::Poller, handle_disconnected);

/// One TCP connection's protocol state, driven by a runtime.
pub trait Connection {
    /// The shared device state this connection serves.
    type Server: ?Sized;
    /// What happened on this connection, for logging and `--print`.
    type Event: Debug;

    /// Bytes as they arrived from the peer, split anywhere.
    fn handle_input(&mut self, now: Instant, data: &[u8], server: &mut Self::Server);

    /// Append the next bytes to send to `out`; `false` when nothing is ready now.
    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool;

    /// The next thing that happened, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`handle_timeout`](Connection::handle_timeout) must next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;

    /// A deadline from [`poll_timeout`](Connection::poll_timeout) has passed.
    fn handle_timeout(&mut self, now: Instant, server: &mut Self::Server);

    /// The peer closed its side: no more input will come. Pending replies may still be
    /// transmitted.
    fn handle_eof(&mut self, now: Instant, server: &mut Self::Server);

    /// The connection is finished: flush what [`poll_transmit`](Connection::poll_transmit)
    /// still yields, then close the socket.
    fn is_closed(&self) -> bool;

    /// Too much output is held (a client pipelining into a reply delay): the runtime
    /// stops reading until a deadline or a transmit clears it, so memory stays bounded.
    /// Never true by default.
    fn is_backlogged(&self) -> bool {
        false
    }
}

/// The state one simulated device shares between all its connections.
pub trait Server {
    /// The per-connection engine.
    type Connection: Connection<Server = Self>;

    /// A TCP connection from `peer` to `local` (the connection's own address, so an
    /// interface's even when listening on all) was accepted. `None` refuses it (the
    /// server is disabled or at its connection limit); the runtime closes the socket.
    fn accept(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Option<Self::Connection>;

    /// A UDP datagram arrived on `local` from `peer`. `local` is the socket's address,
    /// which is unspecified (`0.0.0.0`) when listening on all interfaces. Appends the reply datagram to `out`
    /// and returns `true` when there is one to send back to `peer`.
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool;

    /// The server has been told to stop (cpppo's `done`): the runtime closes its
    /// listeners and connections and returns.
    fn is_done(&self) -> bool;
}

/// How a runtime serves one [`Server`]: what to listen on and the limits it enforces.
/// Pure data, shared by every runtime; the protocol's default port is the caller's
/// business (an adapter knows no protocol).
///
/// ```
/// use cpppo_core::engine::ServeOptions;
/// use std::time::Duration;
///
/// let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
/// options.udp = true;
/// options.max_connections = Some(8);
/// options.idle_timeout = Some(Duration::from_secs(30));
/// let json = serde_json::to_string(&options).unwrap();
/// assert_eq!(
///     json,
///     r#"{"listen":["127.0.0.1:0"],"udp":true,"max_connections":8,"idle_timeout":30.0,"send_timeout":60.0}"#
/// );
/// assert_eq!(serde_json::from_str::<ServeOptions>(&json).unwrap(), options);
///
/// // Anything left out takes its default; a negative timeout is an error.
/// let half: ServeOptions = serde_json::from_str(r#"{"idle_timeout": 0.5}"#).unwrap();
/// assert_eq!(half.idle_timeout, Some(Duration::from_millis(500)));
/// assert!(half.listen.is_empty() && !half.udp && half.max_connections.is_none());
/// assert!(serde_json::from_str::<ServeOptions>(r#"{"idle_timeout": -1}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeOptions {
    /// TCP addresses to listen on; port 0 picks a free port (the runtime's handle tells
    /// which). At least one is required.
    pub listen: Vec<SocketAddr>,
    /// Also bind a UDP socket on each listen address (same port as the TCP listener) and
    /// answer datagrams with [`Server::handle_datagram`].
    pub udp: bool,
    /// At most this many connections at once; one more is accepted, closed at once and
    /// counted in [`ServeStats::refused`].
    pub max_connections: Option<usize>,
    /// Close a connection that sent nothing for this long (seconds in JSON: `30`,
    /// `0.5`).
    #[serde(with = "seconds")]
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose peer has taken none of the bytes waiting for it for this
    /// long (a client that sends without reading its replies), counted in
    /// [`ServeStats::send_timeouts`]. [`DEFAULT_SEND_TIMEOUT`] by default.
    #[serde(with = "seconds")]
    pub send_timeout: Option<Duration>,
}

/// How long a connection may leave its replies unread before it is closed, by default.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: Vec::new(),
            udp: false,
            max_connections: None,
            idle_timeout: None,
            send_timeout: Some(DEFAULT_SEND_TIMEOUT),
        }
    }
}

/// An optional [`Duration`] as seconds, the way people write timeouts in a config file.
pub(crate) mod seconds {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => s.serialize_some(&duration.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(D::Error::custom))
            .transpose()
    }
}

impl ServeOptions {
    /// Listen on `address` only (TCP), with no limits.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            listen: vec![address],
            ..Self::default()
        }
    }
}

/// Counters a runtime keeps while serving, for `--print` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServeStats {
    /// TCP connections handed to [`Server::accept`] and accepted by it.
    pub accepted: u64,
    /// TCP connections closed at once: over [`ServeOptions::max_connections`] or refused
    /// by [`Server::accept`].
    pub refused: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections closed by [`ServeOptions::idle_timeout`].
    pub idle_closed: u64,
    /// Connections closed by [`ServeOptions::send_timeout`]: the peer stopped reading.
    #[serde(default)]
    pub send_timeouts: u64,
    /// UDP datagrams received.
    pub datagrams: u64,
}

/// How long a graceful stop lets each connection's already-computed replies drain to a
/// peer that is slow to read, before its socket is closed regardless.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// How long to wait from `now` for `deadline`: `None` waits for input only, zero means
/// the deadline has already passed.
pub fn wait_for(now: Instant, deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|deadline| deadline.saturating_duration_since(now))
}

/// The earlier of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The part of the drive loop every runtime shares, for one connection: the output
/// buffer and how much of it the socket took, the idle deadline, end of input. Sans-IO
/// like the engines: the runtime reads and writes the socket and passes the time in.
///
/// The runtime's loop, with `server` locked only around the `handle_*` calls:
///
/// 1. [`handle_input`](Driver::handle_input) with bytes read, or
///    [`handle_eof`](Driver::handle_eof) when the read returns 0, or
///    [`handle_timeout`](Driver::handle_timeout) when [`poll_timeout`](Driver::poll_timeout)
///    has passed;
/// 2. write [`poll_transmit`](Driver::poll_transmit)'s bytes and report how many the
///    socket took with [`advance`](Driver::advance); drain
///    [`poll_event`](Driver::poll_event);
/// 3. close the socket once [`is_finished`](Driver::is_finished), else wait for input
///    (unless [`wants_input`](Driver::wants_input) is false), writability while bytes
///    remain, or [`poll_timeout`](Driver::poll_timeout).
#[derive(Debug)]
pub struct Driver<C> {
    connection: C,
    out: Vec<u8>,
    sent: usize,
    idle_timeout: Option<Duration>,
    last_input: Instant,
    idle_expired: bool,
    send_timeout: Option<Duration>,
    /// Since when bytes have waited for the socket without it taking any.
    unsent_since: Option<Instant>,
    send_expired: bool,
    eof: bool,
}

impl<C: Connection> Driver<C> {
    /// Drive `connection`, accepted at `now`, closing it after `idle_timeout` without
    /// input.
    pub fn new(connection: C, now: Instant, idle_timeout: Option<Duration>) -> Self {
        Self {
            connection,
            out: Vec::new(),
            sent: 0,
            idle_timeout,
            last_input: now,
            idle_expired: false,
            send_timeout: None,
            unsent_since: None,
            send_expired: false,
            eof: false,
        }
    }

    /// Also close the connection once bytes have waited `send_timeout` for a socket that
    /// takes none of them (a peer that does not read).
    pub fn with_send_timeout(mut self, send_timeout: Option<Duration>) -> Self {
        self.send_timeout = send_timeout;
        self
    }

    /// The engine driven.
    pub fn connection(&self) -> &C {
        &self.connection
    }

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, now: Instant, data: &[u8], server: &mut C::Server) {
        self.last_input = now;
        self.connection.handle_input(now, data, server);
    }

    /// The socket read returned end of file (or failed): no more input.
    pub fn handle_eof(&mut self, now: Instant, server: &mut C::Server) {
        if !self.eof {
            self.eof = true;
            self.connection.handle_eof(now, server);
        }
    }

    /// Time has reached `now`: passes the engine's deadline on to it, and notes an
    /// expired idle timeout. Harmless to call early.
    pub fn handle_timeout(&mut self, now: Instant, server: &mut C::Server) {
        if self.connection.poll_timeout().is_some_and(|at| at <= now) {
            self.connection.handle_timeout(now, server);
        }
        if self.idle_deadline().is_some_and(|at| at <= now) && !self.idle_expired {
            self.idle_expired = true;
        }
        if self.send_deadline().is_some_and(|at| at <= now) {
            self.send_expired = true;
        }
    }

    /// Whether the idle timeout closed this connection.
    pub fn idle_expired(&self) -> bool {
        self.idle_expired
    }

    /// Whether the send timeout closed this connection (its peer stopped reading).
    pub fn send_expired(&self) -> bool {
        self.send_expired
    }

    fn send_deadline(&self) -> Option<Instant> {
        if !self.has_unsent() {
            return None;
        }
        let since = self.unsent_since?;
        self.send_timeout
            .map(|timeout| since.checked_add(timeout).unwrap_or(since))
    }

    /// Whether end of input was seen.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if self.eof {
            return None;
        }
        self.idle_timeout
            .and_then(|timeout| self.last_input.checked_add(timeout))
    }

    /// Everything the engine has ready to send at `now`, after what the socket has not
    /// taken yet. Empty when there is nothing to write.
    pub fn poll_transmit(&mut self, now: Instant) -> &[u8] {
        if self.sent > 0 && self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        if !self.idle_expired {
            // An engine that says `true` but adds nothing would spin here: stop then.
            loop {
                let before = self.out.len();
                if !self.connection.poll_transmit(now, &mut self.out) || self.out.len() == before {
                    break;
                }
            }
        }
        if self.has_unsent() && self.unsent_since.is_none() {
            self.unsent_since = Some(now);
        }
        self.out.get(self.sent..).unwrap_or_default()
    }

    /// The socket took `n` more bytes of [`poll_transmit`](Driver::poll_transmit)'s.
    pub fn advance(&mut self, n: usize) {
        if n > 0 {
            // Progress: the send timeout starts again from the next poll_transmit.
            self.unsent_since = None;
        }
        self.sent = self.sent.saturating_add(n).min(self.out.len());
        if self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
    }

    /// Whether bytes are waiting for the socket.
    pub fn has_unsent(&self) -> bool {
        self.sent < self.out.len()
    }

    /// The engine's next event.
    pub fn poll_event(&mut self) -> Option<C::Event> {
        self.connection.poll_event()
    }

    /// When to call [`handle_timeout`](Driver::handle_timeout): the engine's deadline or
    /// the idle deadline, whichever is first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.send_expired {
            return None;
        }
        if self.idle_expired {
            return self.send_deadline();
        }
        earliest(
            earliest(self.connection.poll_timeout(), self.idle_deadline()),
            self.send_deadline(),
        )
    }

    /// Whether to read more input now: not after end of file, once closing, or while
    /// the engine [is backlogged](Connection::is_backlogged).
    pub fn wants_input(&self) -> bool {
        !self.eof && !self.is_closing() && !self.connection.is_backlogged()
    }

    /// The connection is closing: the engine said so, or it was idle too long. Flush what
    /// remains, then close.
    pub fn is_closing(&self) -> bool {
        self.idle_expired || self.send_expired || self.connection.is_closed()
    }

    /// Close the socket now: closing and flushed, the peer is gone and the engine has
    /// neither bytes nor deadlines left, or the peer stopped reading (send timeout).
    pub fn is_finished(&self) -> bool {
        self.send_expired
            || (!self.has_unsent()
                && (self.is_closing() || (self.eof && self.connection.poll_timeout().is_none())))
    }
}

/// Lock the shared server, whatever a panicking holder left behind (the engines keep
/// their state consistent between calls, so a poisoned lock is still usable).
pub fn lock<S: ?Sized>(server: &std::sync::Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    server
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server state back from the runtime once its threads or tasks have let go of it;
/// an error if something still holds it.
pub fn unshare<S>(server: std::sync::Arc<std::sync::Mutex<S>>) -> std::io::Result<S> {
    let server = std::sync::Arc::try_unwrap(server)
        .map_err(|_| std::io::Error::other("server state still shared after shutdown"))?;
    Ok(server
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Run `f` on the shared server under its lock (a runtime's `with_server`); `stop` is
/// called after the lock is released when `f` left the server [done](Server::is_done).
pub fn with_locked<S: Server + ?Sized, R>(
    server: &std::sync::Mutex<S>,
    f: impl FnOnce(&mut S) -> R,
    stop: impl FnOnce(),
) -> R {
    let (result, done) = {
        let mut server = lock(server);
        let result = f(&mut server);
        (result, server.is_done())
    };
    if done {
        stop();
    }
    result
}

/// Receives each connection's events with the peer's address, on whichever thread or
/// task produced them (for `--print`; the runtimes' default logs them with `tracing` at
/// debug level).
pub type OnEvent<E> = std::sync::Arc<dyn Fn(SocketAddr, E) + Send + Sync>;

/// Ends a running server gracefully from any thread (a signal handler, a test).
pub type StopFn = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A server running on some runtime: each runtime's `ServerHandle` implements it, so a
/// program that chooses its runtime at run time holds a `Box<dyn Serving<S>>`.
pub trait Serving<S>: Send {
    /// The TCP addresses listened on, in the order of [`ServeOptions::listen`], with the
    /// actual ports.
    fn local_addrs(&self) -> &[SocketAddr];
    /// The UDP addresses bound (empty unless [`ServeOptions::udp`]).
    fn udp_addrs(&self) -> &[SocketAddr];
    /// The counters now.
    fn stats(&self) -> ServeStats;
    /// Begins a graceful stop when called, from any thread.
    fn stopper(&self) -> StopFn;
    /// Run `f` on the server state while it runs, between engine calls (change fault
    /// settings, read statistics), and wait for it to have run. A change that makes the
    /// server [done](Server::is_done) stops it. `Err` when the server has stopped and
    /// `f` could not run.
    fn with_server(&self, f: Box<dyn FnOnce(&mut S) + Send>) -> std::io::Result<()>;
    /// Stop gracefully: listeners close, connections flush what is ready (waiting at
    /// most [`SHUTDOWN_FLUSH`] for slow readers) and close, every thread or task ends.
    /// Returns the server state.
    fn shutdown(self: Box<Self>) -> std::io::Result<S>;
    /// Wait until the server stops by itself ([`Server::is_done`]) or by a
    /// [`stopper`](Serving::stopper), then as [`shutdown`](Serving::shutdown).
    fn wait(self: Box<Self>) -> std::io::Result<S>;
}

/// The live counters behind [`ServeStats`], shared by a runtime's threads or tasks.
#[derive(Debug, Default)]
pub struct ServeCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    idle_closed: AtomicU64,
    send_timeouts: AtomicU64,
    datagrams: AtomicU64,
}

impl ServeCounters {
    /// Take a connection slot if fewer than `max` are open (any number when `None`);
    /// `false` counts the connection as refused.
    pub fn try_open(&self, max: Option<usize>) -> bool {
        let max = max.map_or(u64::MAX, |max| u64::try_from(max).unwrap_or(u64::MAX));
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .is_ok();
        if !taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// The engine accepted the connection whose slot [`try_open`](Self::try_open) took
    /// (`true`), or refused it (`false`: the slot is given back and counted as refused).
    pub fn accepted(&self, accepted: bool) {
        if accepted {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.active.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// An accepted connection closed; `idle` when the idle timeout closed it.
    pub fn closed(&self, idle: bool) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        if idle {
            self.idle_closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection is closed by the send timeout (count it besides [`closed`](Self::closed)).
    pub fn send_timeout(&self) {
        self.send_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A datagram arrived.
    pub fn datagram(&self) {
        self.datagrams.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ServeStats {
        ServeStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Acquire),
            idle_closed: self.idle_closed.load(Ordering::Relaxed),
            send_timeouts: self.send_timeouts.load(Ordering::Relaxed),
            datagrams: self.datagrams.load(Ordering::Relaxed),
        }
    }
}

/// Where to reach a local socket bound to `local` from this host: an unspecified
/// address (`0.0.0.0`, `::`) becomes the loopback of its family. Runtimes use it to wake
/// their own blocked listeners at shutdown and tests to connect.
pub fn reachable(local: SocketAddr) -> SocketAddr {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_enforce_the_limit_and_count() {
        let counters = ServeCounters::default();
        assert!(counters.try_open(Some(2)));
        counters.accepted(true);
        assert!(counters.try_open(Some(2)));
        counters.accepted(false); // the engine refused: the slot comes back
        assert!(counters.try_open(Some(2)));
        counters.accepted(true);
        assert!(!counters.try_open(Some(2)));
        counters.closed(true);
        assert!(counters.try_open(None));
        counters.accepted(true);
        counters.datagram();
        assert_eq!(
            counters.snapshot(),
            ServeStats {
                accepted: 3,
                refused: 2,
                active: 2,
                idle_closed: 1,
                send_timeouts: 0,
                datagrams: 1,
            }
        );
    }

    #[test]
    fn deadlines_and_addresses() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(earliest(Some(t1), Some(t0)), Some(t0));
        assert_eq!(earliest(None, Some(t1)), Some(t1));
        assert_eq!(earliest(Some(t1), None), Some(t1));
        assert_eq!(earliest(None, None), None);
        assert_eq!(wait_for(t0, Some(t1)), Some(Duration::from_secs(1)));
        assert_eq!(wait_for(t1, Some(t0)), Some(Duration::ZERO));
        assert_eq!(wait_for(t0, None), None);
        let any4: SocketAddr = "0.0.0.0:44818".parse().unwrap();
        let any6: SocketAddr = "[::]:502".parse().unwrap();
        let one: SocketAddr = "10.0.0.1:44818".parse().unwrap();
        assert_eq!(reachable(any4), "127.0.0.1:44818".parse().unwrap());
        assert_eq!(reachable(any6), "[::1]:502".parse().unwrap());
        assert_eq!(reachable(one), one);
    }

    /// An engine that never closes by itself and answers nothing.
    struct Mute {
        deadline: Option<Instant>,
    }

    impl Connection for Mute {
        type Server = ();
        type Event = ();
        fn handle_input(&mut self, _: Instant, _: &[u8], _: &mut ()) {}
        fn poll_transmit(&mut self, _: Instant, _: &mut Vec<u8>) -> bool {
            false
        }
        fn poll_event(&mut self) -> Option<()> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }
        fn handle_timeout(&mut self, _: Instant, _: &mut ()) {
            self.deadline = None;
        }
        fn handle_eof(&mut self, _: Instant, _: &mut ()) {}
        fn is_closed(&self) -> bool {
            false
        }
    }

    /// An engine with `left` replies of 10 bytes ready at once.
    struct Chatty {
        left: usize,
    }

    impl Connection for Chatty {
        type Server = ();
        type Event = ();
        fn handle_input(&mut self, _: Instant, _: &[u8], _: &mut ()) {}
        fn poll_transmit(&mut self, _: Instant, out: &mut Vec<u8>) -> bool {
            if self.left == 0 {
                return false;
            }
            self.left -= 1;
            out.extend_from_slice(&[7; 10]);
            true
        }
        fn poll_event(&mut self) -> Option<()> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _: Instant, _: &mut ()) {}
        fn handle_eof(&mut self, _: Instant, _: &mut ()) {}
        fn is_closed(&self) -> bool {
            false
        }
    }

    #[test]
    fn driver_closes_a_peer_that_stops_reading_after_the_send_timeout() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut driver = Driver::new(Chatty { left: 1 }, t0, None).with_send_timeout(Some(second));
        assert_eq!(driver.poll_transmit(t0).len(), 10);
        assert_eq!(driver.poll_timeout(), Some(t0 + second));
        // The socket takes some: the clock starts again.
        driver.advance(4);
        let t1 = t0 + second / 2;
        assert_eq!(driver.poll_transmit(t1).len(), 6);
        assert_eq!(driver.poll_timeout(), Some(t1 + second));
        driver.handle_timeout(t1 + second - Duration::from_millis(1), &mut ());
        assert!(!driver.is_finished() && driver.wants_input());
        driver.handle_timeout(t1 + second, &mut ());
        assert!(driver.send_expired() && driver.is_finished() && !driver.wants_input());
        assert_eq!(driver.poll_timeout(), None);
        // Without a send timeout, unsent bytes wait for ever.
        let mut driver = Driver::new(Chatty { left: 1 }, t0, None);
        assert_eq!(driver.poll_transmit(t0).len(), 10);
        assert_eq!(driver.poll_timeout(), None);
    }

    #[test]
    fn driver_finishes_after_eof_once_the_engine_has_nothing_left() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let mut driver = Driver::new(Mute { deadline: Some(t1) }, t0, None);
        assert!(driver.wants_input() && !driver.is_finished());
        driver.handle_eof(t0, &mut ());
        assert!(!driver.wants_input());
        // A deadline still pending (a delayed reply, say) keeps the connection.
        assert!(!driver.is_finished());
        assert_eq!(driver.poll_timeout(), Some(t1));
        driver.handle_timeout(t0, &mut ());
        assert!(!driver.is_finished(), "handle_timeout before the deadline");
        driver.handle_timeout(t1, &mut ());
        assert!(driver.is_finished());
        assert!(!driver.idle_expired());
    }
}
