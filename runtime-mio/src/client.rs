//! The mio drive loop of a client engine: one non-blocking `mio::net::TcpStream` on its
//! own [`Poll`], and any sans-IO client engine ([`Driven`]: the Modbus poller and client,
//! and the EtherNet/IP client implement it). Each wait polls until the socket is ready
//! or the engine's next deadline; output the socket will not take yet is kept and
//! written when it becomes writable. It only moves bytes and time; what the engine's
//! events mean stays with the caller, which drains them in [`ClientDriver::run`]'s
//! callback.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use cpppo_mio::client::{connect, ClientDriver};
//! use cpppo_core::cip::operation::parse_operation;
//! use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions};
//!
//! let stream = connect(&["127.0.0.1:44818".parse()?], Duration::from_secs(5))?;
//! let mut client = ClientConn::new(Instant::now(), ClientOptions::default());
//! client.submit(Instant::now(), parse_operation("SCADA[0-9]")?);
//! let mut reply = None;
//! ClientDriver::new(Some(stream))?.run(&mut client, Duration::from_secs(1), |client, _| {
//!     while let Some(event) = client.poll_event() {
//!         if let ClientEvent::Reply { result, .. } = event {
//!             reply = Some(result);
//!         }
//!     }
//!     (false, reply.is_some())
//! })?;
//! println!("{reply:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use cpppo_core::engine::Driven;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// The token of the one connection on the driver's poll.
const STREAM: Token = Token(0);

/// Connect to the first address that answers, within `timeout` each, with `TCP_NODELAY`;
/// the stream comes back non-blocking, for [`ClientDriver`].
pub fn connect(target: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(ErrorKind::NotFound, "no address");
    for addr in target {
        match std::net::TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                return Ok(TcpStream::from_std(s));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The poll, socket and buffers of one drive loop.
#[derive(Debug)]
pub struct ClientDriver {
    /// The connection, while there is one ([`attach`](Self::attach) it, so that it is
    /// registered on the poll).
    stream: Option<TcpStream>,
    poll: Poll,
    events: Events,
    /// Output not yet taken by the socket.
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl ClientDriver {
    /// A loop over `stream` (or none yet), registered on a new [`Poll`].
    pub fn new(stream: Option<TcpStream>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut stream = stream;
        if let Some(s) = &mut stream {
            poll.registry()
                .register(s, STREAM, Interest::READABLE | Interest::WRITABLE)?;
        }
        Ok(ClientDriver {
            stream,
            poll,
            events: Events::with_capacity(8),
            out: Vec::new(),
            buf: vec![0; 4096],
        })
    }

    /// Whether there is a connection (it goes when the peer closes it or it fails).
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The connection, while there is one.
    pub fn stream(&self) -> Option<&TcpStream> {
        self.stream.as_ref()
    }

    /// Take `stream` (from [`connect`]) as the connection, replacing any other (a
    /// reconnect, as a poller asks for): registered on the poll, pending output dropped.
    pub fn attach(&mut self, mut stream: TcpStream) -> io::Result<()> {
        self.detach();
        self.poll.registry().register(
            &mut stream,
            STREAM,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.stream = Some(stream);
        Ok(())
    }

    /// Drop the connection (without telling the engine: the caller decided), if any,
    /// and any output not yet written.
    pub fn detach(&mut self) -> Option<TcpStream> {
        self.out.clear();
        let mut s = self.stream.take()?;
        let _ = self.poll.registry().deregister(&mut s);
        Some(s)
    }

    /// The stream is gone: deregister it and tell the engine.
    fn lost<E: Driven>(&mut self, engine: &mut E) {
        self.detach();
        engine.eof(Instant::now());
    }

    /// Write what is pending until the socket would block. A failed write drops the
    /// stream and tells the engine.
    fn write_pending<E: Driven>(&mut self, engine: &mut E) {
        while !self.out.is_empty() {
            let Some(s) = &mut self.stream else {
                self.out.clear();
                return;
            };
            match s.write(&self.out) {
                Ok(0) => return self.lost(engine),
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.lost(engine),
            }
        }
    }

    /// Take everything the engine has ready and write what the socket takes now (the
    /// rest when it becomes writable); true if the engine had anything.
    pub fn flush<E: Driven>(&mut self, engine: &mut E) -> bool {
        let before = self.out.len();
        while engine.transmit(Instant::now(), &mut self.out) {}
        let had = self.out.len() > before;
        if self.stream.is_none() {
            self.out.clear();
        }
        self.write_pending(engine);
        had
    }

    /// Read until the socket would block, handing the engine each piece.
    fn read_all<E: Driven>(&mut self, engine: &mut E) {
        loop {
            let Some(s) = &mut self.stream else { return };
            match s.read(&mut self.buf) {
                Ok(0) => return self.lost(engine),
                Ok(n) => engine.input(Instant::now(), self.buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.lost(engine),
            }
        }
    }

    /// Wait once for the socket or the engine's next deadline (at most `idle` without
    /// one), and hand the engine what happened. An error is the poll's.
    pub fn wait<E: Driven>(&mut self, engine: &mut E, idle: Duration) -> io::Result<()> {
        let now = Instant::now();
        let deadline = engine.deadline();
        let wait = deadline.map_or(idle, |at| at.saturating_duration_since(now));
        if wait.is_zero() {
            engine.timeout(now);
            return Ok(());
        }
        if self.stream.is_none() {
            std::thread::sleep(wait);
            engine.timeout(Instant::now());
            return Ok(());
        }
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let (mut readable, mut writable) = (false, false);
        for event in &self.events {
            if event.token() == STREAM {
                readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                writable |= event.is_writable();
            }
        }
        if writable {
            self.write_pending(engine);
        }
        if readable {
            self.read_all(engine);
        }
        let now = Instant::now();
        if (!readable && !writable) || deadline.is_some_and(|at| at <= now) {
            engine.timeout(now);
        }
        Ok(())
    }

    /// The whole loop: hand the engine to `events` (which drains its events and submits
    /// work, answering `(moved, done)`) and flush, until neither moves; then wait for
    /// the socket or a deadline; until `events` answers done. An error is the poll's.
    pub fn run<E: Driven>(
        &mut self,
        engine: &mut E,
        idle: Duration,
        mut events: impl FnMut(&mut E, &mut Self) -> (bool, bool),
    ) -> io::Result<()> {
        loop {
            loop {
                let (moved, done) = events(engine, self);
                if done {
                    return Ok(());
                }
                if !(self.flush(engine) || moved) {
                    break;
                }
            }
            self.wait(engine, idle)?;
        }
    }
}
