//! The async drive loop of a client engine: one `Async<TcpStream>` and any sans-IO client
//! engine ([`Driven`]: the Modbus poller and client, and the EtherNet/IP client implement
//! it). Each wait races a read against the engine's next deadline on an `async-io`
//! [`Timer`]. It only moves bytes and time; what the engine's events mean stays with the
//! caller, which drains them in [`ClientDriver::run`]'s callback.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use cpppo_smol::client::{connect, ClientDriver};
//! use cpppo_core::cip::operation::parse_operation;
//! use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions};
//!
//! smol::block_on(async {
//!     let stream = connect(&["127.0.0.1:44818".parse()?], Duration::from_secs(5)).await?;
//!     let mut client = ClientConn::new(Instant::now(), ClientOptions::default());
//!     client.submit(Instant::now(), parse_operation("SCADA[0-9]")?);
//!     let mut reply = None;
//!     ClientDriver::new(Some(stream))
//!         .run(&mut client, Duration::from_secs(1), |client, _| {
//!             while let Some(event) = client.poll_event() {
//!                 if let ClientEvent::Reply { result, .. } = event {
//!                     reply = Some(result);
//!                 }
//!             }
//!             (false, reply.is_some())
//!         })
//!         .await?;
//!     println!("{reply:?}");
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use cpppo_core::engine::Driven;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer};

/// Connect to the first address that answers, within `timeout` each, with `TCP_NODELAY`.
pub async fn connect(target: &[SocketAddr], timeout: Duration) -> io::Result<Async<TcpStream>> {
    let mut last = io::Error::new(ErrorKind::NotFound, "no address");
    for addr in target {
        let attempt = Async::<TcpStream>::connect(*addr).or(async {
            Timer::after(timeout).await;
            Err(io::Error::new(ErrorKind::TimedOut, "connect timed out"))
        });
        match attempt.await {
            Ok(s) => {
                s.get_ref().set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The socket and buffers of one drive loop.
#[derive(Debug)]
pub struct ClientDriver {
    /// The connection, while there is one.
    pub stream: Option<Async<TcpStream>>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl ClientDriver {
    /// A loop over `stream` (or none yet).
    pub fn new(stream: Option<Async<TcpStream>>) -> Self {
        ClientDriver {
            stream,
            out: Vec::new(),
            buf: vec![0; 4096],
        }
    }

    /// Write everything the engine has ready; true if it had anything. A failed write
    /// drops the stream and tells the engine.
    pub async fn flush<E: Driven>(&mut self, engine: &mut E) -> bool {
        self.out.clear();
        while engine.transmit(Instant::now(), &mut self.out) {}
        if self.out.is_empty() {
            return false;
        }
        if let Some(s) = &mut self.stream {
            if s.write_all(&self.out).await.is_err() {
                self.stream = None;
                engine.eof(Instant::now());
            }
        }
        true
    }

    /// Wait once for input or the engine's next deadline (at most `idle` without one),
    /// whichever comes first, and hand the engine what happened.
    pub async fn wait<E: Driven>(&mut self, engine: &mut E, idle: Duration) {
        let now = Instant::now();
        let wait = engine
            .deadline()
            .map_or(idle, |at| at.saturating_duration_since(now));
        if wait.is_zero() {
            engine.timeout(now);
            return;
        }
        let Some(s) = &mut self.stream else {
            Timer::after(wait).await;
            engine.timeout(Instant::now());
            return;
        };
        let buf = &mut self.buf;
        let read = async { Some(s.read(buf).await) }.or(async {
            Timer::after(wait).await;
            None
        });
        match read.await {
            None => engine.timeout(Instant::now()),
            Some(Ok(0)) => {
                self.stream = None;
                engine.eof(Instant::now());
            }
            Some(Ok(n)) => engine.input(Instant::now(), self.buf.get(..n).unwrap_or_default()),
            Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Some(Err(_)) => {
                self.stream = None;
                engine.eof(Instant::now());
            }
        }
    }

    /// The whole loop: hand the engine to `events` (which drains its events and submits
    /// work, answering `(moved, done)`) and flush, until neither moves; then wait for
    /// input or a deadline; until `events` answers done. A lost connection is the
    /// engine's to report (its end-of-input event), not an error here.
    pub async fn run<E: Driven>(
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
                if !(self.flush(engine).await || moved) {
                    break;
                }
            }
            self.wait(engine, idle).await;
        }
    }
}
