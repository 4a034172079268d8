//! The blocking drive loop of a client engine: one `std::net::TcpStream` and any sans-IO
//! client engine ([`Driven`]: the Modbus [`Poller`] and client, and the EtherNet/IP
//! [`ClientConn`] implement it; the trait lives in [`cpppo_core::engine`]). It only
//! moves bytes and time; what the engine's events mean stays with the caller, which
//! drains them in [`ClientDriver::run`]'s callback. A write waits at most until the
//! engine's next deadline ([`cpppo_core::engine::write_deadline`]), so a peer that stops
//! reading times the operations out instead of hanging the loop.
//!
//! [`Connector`] is cpppo's `client.connector` on this loop: `synchronous`, `pipeline`,
//! `operate`, `results` and `process` over core's pipeline runner
//! ([`cpppo_core::enip::client::pipeline`]), the same calls as on smol and mio.
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

use cpppo_core::engine::write_deadline;
pub use cpppo_core::engine::Driven;
use cpppo_core::enip::client::{ClientConn, ClientOptions};
use cpppo_core::modbus::client::ClientConfig;
pub use cpppo_core::modbus::client::ClientConn as ModbusConn;
use cpppo_core::modbus::server::Transport;
use cpppo_core::pipeline::{Harvested, Pipeline, Pipelined, Pipelining, Summary};

/// The shortest wait a write gets (a deadline already due still gets one try).
const MIN_WRITE_WAIT: Duration = Duration::from_millis(1);

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
    /// The local address of the stream `out` was left for by a write that timed out:
    /// a stream put in its place since gets none of it (a frame cut short would be
    /// garbage there).
    pending_on: Option<SocketAddr>,
    buf: Vec<u8>,
}

impl ClientDriver {
    /// A loop over `stream` (or none yet).
    pub fn new(stream: Option<TcpStream>) -> Self {
        ClientDriver {
            stream,
            out: Vec::new(),
            pending_on: None,
            buf: vec![0; 4096],
        }
    }

    /// Take everything the engine has ready and write it, with what an earlier flush
    /// left; true if the engine had anything. A failed write drops the stream and tells
    /// the engine. A write waits at most until the engine's next deadline (or
    /// [`DEFAULT_WRITE_TIMEOUT`](cpppo_core::engine::DEFAULT_WRITE_TIMEOUT) without one): a peer that stops reading does not hold us
    /// past it; the engine hears its deadline (its operations time out) and the rest is
    /// kept for the next flush, so no frame is cut.
    pub fn flush<E: Driven>(&mut self, engine: &mut E) -> bool {
        let here = self.stream.as_ref().and_then(|s| s.local_addr().ok());
        if self.pending_on.take().is_some_and(|on| Some(on) != here) {
            self.out.clear();
        }
        let before = self.out.len();
        while engine.transmit(Instant::now(), &mut self.out) {}
        let had = self.out.len() > before;
        self.write_pending(engine);
        if !self.out.is_empty() {
            self.pending_on = here;
        }
        had
    }

    /// Write what is pending, until the engine's next deadline.
    fn write_pending<E: Driven>(&mut self, engine: &mut E) {
        let Some(s) = &mut self.stream else {
            self.out.clear();
            return;
        };
        let deadline = write_deadline(engine, Instant::now());
        while !self.out.is_empty() {
            let now = Instant::now();
            // A deadline already due still gets one short try.
            let left = deadline.saturating_duration_since(now).max(MIN_WRITE_WAIT);
            let result = s
                .set_write_timeout(Some(left))
                .and_then(|()| s.write(&self.out));
            match result {
                Ok(0) => break,
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                    continue;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let now = Instant::now();
                    if now >= deadline {
                        engine.timeout(now);
                        return;
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if !self.out.is_empty() {
            self.out.clear();
            self.stream = None;
            engine.eof(Instant::now());
        }
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

/// cpppo's `client.connector`: one EtherNet/IP session to a controller over a socket,
/// with cpppo's calls. [`synchronous`](Self::synchronous), [`pipeline`](Self::pipeline)
/// and [`operate`](Self::operate) yield each operation's [`Harvested`] result in the
/// order given; [`results`](Self::results) just the values; [`process`](Self::process)
/// cpppo's `(failures, values)`. What to submit next and how results are collected is
/// core's [`Pipeline`]; this only moves its bytes and waits. The same calls, with the
/// same arguments, exist on every runtime (`cpppo_smol::client::Connector`,
/// `cpppo_mio::client::Connector`).
///
/// ```no_run
/// use cpppo_blocking::client::Connector;
/// use cpppo_core::cip::operation::parse_operation;
/// use cpppo_core::enip::client::pipeline::Pipelining;
/// use cpppo_core::enip::client::ClientOptions;
///
/// let mut conn = Connector::connect(&["127.0.0.1:44818".parse()?], ClientOptions::default())?;
/// let ops = ["SCADA[1-3]=4,5,6", "SCADA[0-9]"].map(|t| parse_operation(t).unwrap());
/// for done in conn.pipeline(ops, 2) {
///     println!("{}", done.line());
/// }
/// let (failures, values) = conn.process([parse_operation("SCADA[0]")?], Pipelining::default());
/// assert_eq!((failures, values.len()), (0, 1));
/// conn.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`ModbusConnector`] (`Connector<ModbusConn>`) is the same for Modbus/TCP
/// ([`Connector::connect_modbus`]): operations are `(unit, request)`, results their
/// responses.
#[derive(Debug)]
pub struct Connector<E = ClientConn> {
    driver: ClientDriver,
    client: E,
    /// The options' own depth, packing and fragmenting, for `synchronous`/`pipeline`.
    defaults: Pipelining,
    idle: Duration,
    error: Option<std::io::Error>,
}

impl Connector {
    /// Connect to the first address of `target` that answers (within the options'
    /// timeout) and start a session there.
    pub fn connect(target: &[SocketAddr], options: ClientOptions) -> std::io::Result<Self> {
        let stream = connect(target, options.timeout)?;
        Ok(Self::new(stream, options))
    }

    /// A session over `stream`.
    pub fn new(stream: TcpStream, options: ClientOptions) -> Self {
        Connector {
            driver: ClientDriver::new(Some(stream)),
            idle: options.timeout,
            defaults: Pipelining::of(&options),
            client: ClientConn::new(Instant::now(), options),
            error: None,
        }
    }

    /// End the session: finish what is in flight, Forward Close when connected,
    /// UnRegisterSession, within the options' timeout.
    pub fn close(mut self) {
        self.client.close(Instant::now());
        let Connector {
            driver,
            client,
            idle,
            ..
        } = &mut self;
        let _ = driver.run(client, *idle, |c, d| {
            (false, c.is_closed() || d.stream.is_none())
        });
    }
}

/// cpppo's connector calls for Modbus/TCP: a [`Connector`] over core's Modbus client
/// engine ([`ModbusConn`]), made by [`Connector::connect_modbus`].
pub type ModbusConnector = Connector<ModbusConn>;

impl Connector<ModbusConn> {
    /// Connect to the first address of `target` that answers (within the
    /// configuration's timeout): a Modbus/TCP client.
    pub fn connect_modbus(target: &[SocketAddr], config: ClientConfig) -> std::io::Result<Self> {
        let stream = connect(target, config.timeout)?;
        Ok(Self::new_modbus(stream, config))
    }

    /// A Modbus/TCP client over `stream`.
    pub fn new_modbus(stream: TcpStream, config: ClientConfig) -> Self {
        Connector {
            driver: ClientDriver::new(Some(stream)),
            idle: config.timeout,
            defaults: Pipelining::of_modbus(&config),
            client: ModbusConn::new(Transport::Tcp, config),
            error: None,
        }
    }
}

impl<E: Pipelined + Driven> Connector<E> {
    /// The client engine (its options, counters).
    pub fn client(&self) -> &E {
        &self.client
    }

    /// Whether the socket is still there.
    pub fn is_connected(&self) -> bool {
        self.driver.stream.is_some()
    }

    /// The socket error that ended the connection, if one did.
    pub fn error(&self) -> Option<&std::io::Error> {
        self.error.as_ref()
    }

    /// Run `ops` as `pipelining` says, yielding each result in order (cpppo's `operate`).
    pub fn operate<I: IntoIterator<Item = E::Op>>(
        &mut self,
        ops: I,
        pipelining: Pipelining,
    ) -> Harvest<'_, I::IntoIter, E> {
        Harvest {
            pipeline: Pipeline::new(ops.into_iter(), pipelining),
            connector: self,
        }
    }

    /// One transaction at a time (cpppo's `synchronous`), packing and fragmenting as the
    /// connector's options say (not what an earlier call asked for).
    pub fn synchronous<I: IntoIterator<Item = E::Op>>(
        &mut self,
        ops: I,
    ) -> Harvest<'_, I::IntoIter, E> {
        let pipelining = self.defaults.synchronous();
        self.operate(ops, pipelining)
    }

    /// Up to `depth` transactions in flight (cpppo's `pipeline`), packing and
    /// fragmenting as the connector's options say (not what an earlier call asked for).
    pub fn pipeline<I: IntoIterator<Item = E::Op>>(
        &mut self,
        ops: I,
        depth: usize,
    ) -> Harvest<'_, I::IntoIter, E> {
        let pipelining = self.defaults.depth(depth);
        self.operate(ops, pipelining)
    }

    /// Just each operation's value, `None` where it failed (cpppo's `results`).
    pub fn results<I: IntoIterator<Item = E::Op>>(
        &mut self,
        ops: I,
        pipelining: Pipelining,
    ) -> Results<'_, I::IntoIter, E> {
        self.operate(ops, pipelining)
            .map(|done| E::value(done.outcome))
    }

    /// Every operation's value and how many failed (cpppo's `process`).
    pub fn process<I: IntoIterator<Item = E::Op>>(
        &mut self,
        ops: I,
        pipelining: Pipelining,
    ) -> (usize, Vec<Option<E::Value>>) {
        let mut failures = 0;
        let values = self
            .operate(ops, pipelining)
            .map(|done| {
                failures += usize::from(E::failed(&done.outcome));
                E::value(done.outcome)
            })
            .collect();
        (failures, values)
    }
}

/// The values of [`Connector::results`], `None` where an operation failed.
pub type Results<'a, I, E = ClientConn> = std::iter::Map<
    Harvest<'a, I, E>,
    fn(
        Harvested<<E as Pipelined>::Op, <E as Pipelined>::Outcome>,
    ) -> Option<<E as Pipelined>::Value>,
>;

/// The results of a [`Connector`] call, in the order the operations were given (an
/// [`Iterator`] of [`Harvested`]: cpppo's `(index, description, request, reply, status,
/// value)`).
#[derive(Debug)]
pub struct Harvest<'a, I, E: Pipelined = ClientConn> {
    connector: &'a mut Connector<E>,
    pipeline: Pipeline<I, E>,
}

impl<I: Iterator<Item = E::Op>, E: Pipelined + Driven> Harvest<'_, I, E> {
    /// The run so far: operations, failures, transactions, time.
    pub fn summary(&self) -> Summary {
        self.pipeline.summary(&self.connector.client)
    }

    /// A connection event that is not a result (EtherNet/IP: registered, connected,
    /// failed; Modbus: lost, unmatched).
    pub fn poll_event(&mut self) -> Option<E::Event> {
        self.pipeline.poll_event()
    }
}

impl<I: Iterator<Item = E::Op>, E: Pipelined + Driven> Iterator for Harvest<'_, I, E> {
    type Item = Harvested<E::Op, E::Outcome>;

    fn next(&mut self) -> Option<Self::Item> {
        let Connector {
            driver,
            client,
            idle,
            error,
            ..
        } = &mut *self.connector;
        let pipeline = &mut self.pipeline;
        loop {
            pipeline.step(Instant::now(), client);
            driver.flush(client);
            if let Some(done) = pipeline.poll_result() {
                return Some(done);
            }
            if pipeline.is_finished() {
                return None;
            }
            let run = driver.run(client, *idle, |c, _| {
                let moved = pipeline.step(Instant::now(), c);
                (moved, pipeline.has_result() || pipeline.is_finished())
            });
            if let Err(e) = run {
                // The socket failed: what is left will not be answered.
                driver.stream = None;
                client.eof(Instant::now());
                *error = Some(e);
            }
        }
    }
}
