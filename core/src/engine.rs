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

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Instant;

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
}

/// The state one simulated device shares between all its connections.
pub trait Server {
    /// The per-connection engine.
    type Connection: Connection<Server = Self>;

    /// A TCP connection from `peer` to `local` was accepted. `None` refuses it (the
    /// server is disabled or at its connection limit); the runtime closes the socket.
    fn accept(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Option<Self::Connection>;

    /// A UDP datagram arrived on `local` from `peer`. Appends the reply datagram to `out`
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
