//! A test double for the runtimes: a line echo that answers each `\n`-terminated line
//! in upper case, so the three runtimes' tests (and doctests) exercise every part of the
//! [`engine`](crate::engine) contract without any protocol. Enabled by the `testing`
//! feature.
//!
//! - Each line's reply is released [`EchoServer::delay`] after the line arrived, through
//!   [`Connection::poll_timeout`]; replies leave in the order their lines came.
//! - `QUIT` answers `BYE` and closes the connection; `SHUTDOWN` answers `OK` and makes
//!   [`Server::is_done`] true.
//! - [`EchoServer::refuse`] makes [`Server::accept`] refuse every connection.
//! - [`EchoServer::max_pending`] bounds the replies a connection holds before it is
//!   [backlogged](Connection::is_backlogged).
//! - A datagram is answered with the same bytes in upper case.
//! - Bytes after the last `\n` at end of input are dropped (a client gone mid-line).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::engine::{Connection, Server};

/// The shared state: settings and counters.
#[derive(Debug, Default, Clone)]
pub struct EchoServer {
    /// How long each reply is held after its line arrived.
    pub delay: Duration,
    /// Refuse every new connection.
    pub refuse: bool,
    /// A connection holding this many replies is backlogged
    /// ([`Connection::is_backlogged`]); `0` never is.
    pub max_pending: usize,
    /// Set by a `SHUTDOWN` line.
    pub done: bool,
    /// Connections accepted so far.
    pub accepted: usize,
    /// Complete lines received over all connections.
    pub lines: usize,
    /// Connections that ended (end of input or `QUIT`).
    pub ended: usize,
    /// The local address of each accepted connection, in order.
    pub locals: Vec<SocketAddr>,
}

impl EchoServer {
    /// An echo server holding each reply for `delay`.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }
}

/// What an [`EchoConnection`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoEvent {
    /// A complete line arrived (without its `\n`).
    Line(Vec<u8>),
    /// The peer closed with this many bytes of an unfinished line.
    Eof {
        /// Bytes dropped.
        partial: usize,
    },
}

/// One connection: the unfinished line and the replies waiting for their release time.
#[derive(Debug)]
pub struct EchoConnection {
    peer: SocketAddr,
    line: Vec<u8>,
    pending: VecDeque<(Instant, Vec<u8>)>,
    events: VecDeque<EchoEvent>,
    closing: bool,
    eof: bool,
    max_pending: usize,
}

impl EchoConnection {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl Connection for EchoConnection {
    type Server = EchoServer;
    type Event = EchoEvent;

    fn handle_input(&mut self, now: Instant, data: &[u8], server: &mut EchoServer) {
        for &byte in data {
            if self.closing {
                return;
            }
            if byte != b'\n' {
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            server.lines += 1;
            let mut reply = match line.as_slice() {
                b"QUIT" => {
                    self.closing = true;
                    b"BYE".to_vec()
                }
                b"SHUTDOWN" => {
                    server.done = true;
                    b"OK".to_vec()
                }
                other => other.to_ascii_uppercase(),
            };
            reply.push(b'\n');
            let release = now.checked_add(server.delay).unwrap_or(now);
            self.pending.push_back((release, reply));
            self.events.push_back(EchoEvent::Line(line));
        }
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        match self.pending.front() {
            Some((release, _)) if *release <= now => {
                if let Some((_, reply)) = self.pending.pop_front() {
                    out.extend_from_slice(&reply);
                }
                true
            }
            _ => false,
        }
    }

    fn poll_event(&mut self) -> Option<EchoEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pending.front().map(|(release, _)| *release)
    }

    fn handle_timeout(&mut self, _now: Instant, _server: &mut EchoServer) {
        // Releases happen in poll_transmit, which is given the time.
    }

    fn handle_eof(&mut self, _now: Instant, server: &mut EchoServer) {
        if !self.eof {
            self.eof = true;
            server.ended += 1;
            self.events.push_back(EchoEvent::Eof {
                partial: self.line.len(),
            });
            self.line.clear();
        }
    }

    fn is_closed(&self) -> bool {
        (self.closing || self.eof) && self.pending.is_empty()
    }

    fn is_backlogged(&self) -> bool {
        self.max_pending > 0 && self.pending.len() >= self.max_pending
    }
}

impl Server for EchoServer {
    type Connection = EchoConnection;

    fn accept(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Option<EchoConnection> {
        if self.refuse {
            return None;
        }
        self.accepted += 1;
        self.locals.push(local);
        Some(EchoConnection {
            peer,
            line: Vec::new(),
            pending: VecDeque::new(),
            events: VecDeque::new(),
            closing: false,
            eof: false,
            max_pending: self.max_pending,
        })
    }

    fn handle_datagram(
        &mut self,
        _now: Instant,
        _local: SocketAddr,
        _peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        out.extend(data.iter().map(u8::to_ascii_uppercase));
        true
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Driver;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn delayed_replies_in_order_split_anywhere() {
        let t0 = Instant::now();
        let mut server = EchoServer::new(Duration::from_millis(10));
        let conn = server.accept(t0, peer(), peer()).unwrap();
        let mut driver = Driver::new(conn, t0, None);
        for byte in b"ab\ncd\nx" {
            driver.handle_input(t0, &[*byte], &mut server);
        }
        assert!(driver.poll_transmit(t0).is_empty());
        let due = driver.poll_timeout().unwrap();
        assert_eq!(due, t0 + Duration::from_millis(10));
        driver.handle_timeout(due, &mut server);
        assert_eq!(driver.poll_transmit(due), b"AB\nCD\n");
        driver.advance(4);
        assert_eq!(driver.poll_transmit(due), b"D\n");
        driver.advance(2);
        assert!(!driver.has_unsent());
        assert_eq!(driver.poll_event(), Some(EchoEvent::Line(b"ab".to_vec())));
        assert_eq!(driver.poll_event(), Some(EchoEvent::Line(b"cd".to_vec())));
        driver.handle_eof(due, &mut server);
        assert_eq!(driver.poll_event(), Some(EchoEvent::Eof { partial: 1 }));
        assert!(driver.is_finished());
        assert_eq!(server.lines, 2);
    }

    #[test]
    fn idle_timeout_closes() {
        let t0 = Instant::now();
        let mut server = EchoServer::default();
        let conn = server.accept(t0, peer(), peer()).unwrap();
        let mut driver = Driver::new(conn, t0, Some(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_millis(500);
        driver.handle_input(t1, b"x\n", &mut server);
        assert_eq!(driver.poll_transmit(t1), b"X\n");
        driver.advance(2);
        assert_eq!(driver.poll_timeout(), Some(t1 + Duration::from_secs(1)));
        driver.handle_timeout(t0 + Duration::from_secs(1), &mut server);
        assert!(!driver.is_finished());
        driver.handle_timeout(t1 + Duration::from_secs(1), &mut server);
        assert!(driver.idle_expired());
        assert!(driver.is_finished());
        assert!(!driver.wants_input());
    }

    #[test]
    fn quit_closes_after_flush_and_shutdown_sets_done() {
        let t0 = Instant::now();
        let mut server = EchoServer::default();
        let conn = server.accept(t0, peer(), peer()).unwrap();
        let mut driver = Driver::new(conn, t0, None);
        driver.handle_input(t0, b"SHUTDOWN\nQUIT\nignored\n", &mut server);
        assert!(server.is_done());
        assert_eq!(driver.poll_transmit(t0), b"OK\nBYE\n");
        assert!(!driver.is_finished());
        driver.advance(7);
        assert!(driver.is_finished());
        server.refuse = true;
        assert!(server.accept(t0, peer(), peer()).is_none());
        let mut out = Vec::new();
        assert!(server.handle_datagram(t0, peer(), peer(), b"hi", &mut out));
        assert_eq!(out, b"HI");
    }
}
