//! The blocking drive loop of a client engine: one `std::net::TcpStream` and any sans-IO
//! client engine ([`Driven`]: the Modbus [`Poller`] and client, and the EtherNet/IP
//! [`ClientConn`] implement it; the trait lives in [`cpppo_core::engine`]). It only moves bytes and time; what the engine's events mean stays with
//! the caller, which drains them in [`ClientDriver::run`]'s callback.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use cpppo_blocking::client::{connect, ClientDriver};
//! use cpppo_core::cip::operation::parse_operation;
//! use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions};
//!
//! let stream = connect(&["127.0.0.1:44818".parse()?], Duration::from_secs(5))?;
//! let mut client = ClientConn::new(Instant::now(), ClientOptions::default());
//! client.submit(Instant::now(), parse_operation("SCADA[0-9]")?);
//! let mut reply = None;
//! ClientDriver::new(Some(stream)).run(&mut client, Duration::from_secs(1), |client, _| {
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
//!
//! [`Poller`]: cpppo_core::modbus::poller::Poller
//! [`ClientConn`]: cpppo_core::enip::client::ClientConn

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use cpppo_core::engine::Driven;

/// Connect to the first address that answers, within `timeout` each, with `TCP_NODELAY`.
pub fn connect(target: &[SocketAddr], timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "no address");
    for addr in target {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The socket and buffers of one drive loop.
#[derive(Debug, Default)]
pub struct ClientDriver {
    /// The connection, while there is one.
    pub stream: Option<TcpStream>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl ClientDriver {
    /// A loop over `stream` (or none yet).
    pub fn new(stream: Option<TcpStream>) -> Self {
        ClientDriver {
            stream,
            out: Vec::new(),
            buf: vec![0; 4096],
        }
    }

    /// Write everything the engine has ready; true if it had anything. A failed write
    /// drops the stream and tells the engine.
    pub fn flush<E: Driven>(&mut self, engine: &mut E) -> bool {
        self.out.clear();
        while engine.transmit(Instant::now(), &mut self.out) {}
        if self.out.is_empty() {
            return false;
        }
        if let Some(s) = &mut self.stream {
            if s.write_all(&self.out).is_err() {
                self.stream = None;
                engine.eof(Instant::now());
            }
        }
        true
    }

    /// Wait once for input or the engine's next deadline (at most `idle` without one),
    /// and hand the engine what happened.
    pub fn wait<E: Driven>(&mut self, engine: &mut E, idle: Duration) -> std::io::Result<()> {
        let now = Instant::now();
        let wait = engine
            .deadline()
            .map_or(idle, |at| at.saturating_duration_since(now));
        if wait.is_zero() {
            engine.timeout(now);
            return Ok(());
        }
        let Some(s) = &mut self.stream else {
            std::thread::sleep(wait);
            engine.timeout(Instant::now());
            return Ok(());
        };
        s.set_read_timeout(Some(wait))?;
        match s.read(&mut self.buf) {
            Ok(0) => {
                self.stream = None;
                engine.eof(Instant::now());
            }
            Ok(n) => engine.input(Instant::now(), self.buf.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                engine.timeout(Instant::now());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                self.stream = None;
                engine.eof(Instant::now());
            }
        }
        Ok(())
    }

    /// The whole loop: hand the engine to `events` (which drains its events and submits
    /// work, answering `(moved, done)`) and flush, until neither moves; then wait for
    /// input or a deadline; until `events` answers done. An error is the socket's.
    pub fn run<E: Driven>(
        &mut self,
        engine: &mut E,
        idle: Duration,
        mut events: impl FnMut(&mut E, &mut Self) -> (bool, bool),
    ) -> std::io::Result<()> {
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
