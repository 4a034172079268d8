//! The mio drive loop of a client engine: one non-blocking `mio::net::TcpStream` on its
//! own [`Poll`], and any sans-IO client engine ([`Driven`]: the Modbus poller and client,
//! and the EtherNet/IP client implement it). Each wait polls until the socket is ready
//! or the engine's next deadline; output the socket will not take yet is kept and
//! written when it becomes writable. It only moves bytes and time; what the engine's
//! events mean stays with the caller, which drains them in [`ClientDriver::run`]'s
//! callback. [`ClientLoop`] drives several engines, each over its own connection, from
//! one poll.
//!
//! [`Connector`] is cpppo's `client.connector` on this loop: `synchronous`, `pipeline`,
//! `operate`, `results` and `process` over core's pipeline runner
//! ([`cpppo_core::enip::client::pipeline`]), the same calls as on blocking and smol.
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
use cpppo_core::enip::client::{ClientConn, ClientOptions};
use cpppo_core::modbus::client::ClientConfig;
pub use cpppo_core::modbus::client::ClientConn as ModbusConn;
use cpppo_core::modbus::server::Transport;
use cpppo_core::pipeline::{Harvested, Pipeline, Pipelined, Pipelining, Summary};
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

/// cpppo's `client.connector` on mio: one EtherNet/IP session to a controller, with
/// cpppo's calls, the same as `cpppo_blocking::client::Connector`'s:
/// [`synchronous`](Self::synchronous), [`pipeline`](Self::pipeline) and
/// [`operate`](Self::operate) yield each operation's [`Harvested`] result in the order
/// given; [`results`](Self::results) just the values; [`process`](Self::process)
/// cpppo's `(failures, values)`. What to submit next and how results are collected is
/// core's [`Pipeline`]; this only moves its bytes and waits on the poll.
///
/// ```no_run
/// use cpppo_mio::client::Connector;
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
    error: Option<io::Error>,
}

impl Connector {
    /// Connect to the first address of `target` that answers (within the options'
    /// timeout) and start a session there.
    pub fn connect(target: &[SocketAddr], options: ClientOptions) -> io::Result<Self> {
        let stream = connect(target, options.timeout)?;
        Self::new(stream, options)
    }

    /// A session over `stream` (from [`connect`]), on a new poll.
    pub fn new(stream: TcpStream, options: ClientOptions) -> io::Result<Self> {
        Ok(Connector {
            driver: ClientDriver::new(Some(stream))?,
            idle: options.timeout,
            defaults: Pipelining::of(&options),
            client: ClientConn::new(Instant::now(), options),
            error: None,
        })
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
            (false, c.is_closed() || !d.is_connected())
        });
    }
}

/// cpppo's connector calls for Modbus/TCP: a [`Connector`] over core's Modbus client
/// engine ([`ModbusConn`]), made by [`Connector::connect_modbus`].
pub type ModbusConnector = Connector<ModbusConn>;

impl Connector<ModbusConn> {
    /// Connect to the first address of `target` that answers (within the
    /// configuration's timeout): a Modbus/TCP client.
    pub fn connect_modbus(target: &[SocketAddr], config: ClientConfig) -> io::Result<Self> {
        let stream = connect(target, config.timeout)?;
        Self::new_modbus(stream, config)
    }

    /// A Modbus/TCP client over `stream`.
    pub fn new_modbus(stream: TcpStream, config: ClientConfig) -> io::Result<Self> {
        Ok(Connector {
            driver: ClientDriver::new(Some(stream))?,
            idle: config.timeout,
            defaults: Pipelining::of_modbus(&config),
            client: ModbusConn::new(Transport::Tcp, config),
            error: None,
        })
    }
}

impl<E: Pipelined + Driven> Connector<E> {
    /// The client engine (its options, counters).
    pub fn client(&self) -> &E {
        &self.client
    }

    /// Whether the socket is still there.
    pub fn is_connected(&self) -> bool {
        self.driver.is_connected()
    }

    /// The poll error that ended the connection, if one did.
    pub fn error(&self) -> Option<&io::Error> {
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
                // The poll failed: what is left will not be answered.
                driver.lost(client);
                *error = Some(e);
            }
        }
    }
}

/// One connection of a [`ClientLoop`]: its engine, socket and unwritten output.
#[derive(Debug)]
struct Link<E> {
    engine: E,
    stream: Option<TcpStream>,
    out: Vec<u8>,
}

/// Several client engines, each over its own connection, driven by one [`Poll`] on one
/// thread: each wait polls until any socket is ready or the earliest deadline of all
/// engines. Connections are numbered in the order [`add`](Self::add)ed.
#[derive(Debug)]
pub struct ClientLoop<E> {
    poll: Poll,
    events: Events,
    links: Vec<Link<E>>,
    buf: Vec<u8>,
}

impl<E: Driven> ClientLoop<E> {
    /// An empty loop on a new [`Poll`].
    pub fn new() -> io::Result<Self> {
        Ok(ClientLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(64),
            links: Vec::new(),
            buf: vec![0; 4096],
        })
    }

    /// Drive `engine` over `stream` (from [`connect`]); its number.
    pub fn add(&mut self, engine: E, mut stream: TcpStream) -> io::Result<usize> {
        let index = self.links.len();
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.links.push(Link {
            engine,
            stream: Some(stream),
            out: Vec::new(),
        });
        Ok(index)
    }

    /// How many connections were added.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The engine of connection `index`.
    pub fn engine_mut(&mut self, index: usize) -> Option<&mut E> {
        self.links.get_mut(index).map(|l| &mut l.engine)
    }

    /// Whether connection `index` still has its socket.
    pub fn is_connected(&self, index: usize) -> bool {
        self.links.get(index).is_some_and(|l| l.stream.is_some())
    }

    /// The engines, in the order added.
    pub fn into_engines(self) -> Vec<E> {
        self.links.into_iter().map(|l| l.engine).collect()
    }

    /// Take what each engine has ready and write what its socket takes now; true if
    /// any engine had anything.
    pub fn flush(&mut self) -> bool {
        let mut had = false;
        for link in &mut self.links {
            let before = link.out.len();
            while link.engine.transmit(Instant::now(), &mut link.out) {}
            had |= link.out.len() > before;
            write_link(&self.poll, link);
        }
        had
    }

    /// Wait once for any socket or the earliest deadline (at most `idle` without one),
    /// and hand each engine what happened to it. An error is the poll's.
    pub fn wait(&mut self, idle: Duration) -> io::Result<()> {
        let now = Instant::now();
        let earliest = self.links.iter().filter_map(|l| l.engine.deadline()).min();
        let wait = earliest.map_or(idle, |at| at.saturating_duration_since(now));
        if !wait.is_zero() {
            match self.poll.poll(&mut self.events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            for event in &self.events {
                let Some(link) = self.links.get_mut(event.token().0) else {
                    continue;
                };
                if event.is_writable() {
                    write_link(&self.poll, link);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    read_link(&self.poll, link, &mut self.buf);
                }
            }
        }
        let now = Instant::now();
        for link in &mut self.links {
            if link.engine.deadline().is_some_and(|at| at <= now) {
                link.engine.timeout(now);
            }
        }
        Ok(())
    }

    /// The whole loop: hand the loop to `events` (which drains each engine's events and
    /// submits work, answering `(moved, done)`) and flush, until neither moves; then
    /// wait for the sockets or a deadline; until `events` answers done.
    pub fn run(
        &mut self,
        idle: Duration,
        mut events: impl FnMut(&mut Self) -> (bool, bool),
    ) -> io::Result<()> {
        loop {
            loop {
                let (moved, done) = events(self);
                if done {
                    return Ok(());
                }
                if !(self.flush() || moved) {
                    break;
                }
            }
            self.wait(idle)?;
        }
    }
}

/// The socket of `link` is gone: deregister it and tell its engine.
fn lose_link<E: Driven>(poll: &Poll, link: &mut Link<E>) {
    if let Some(mut s) = link.stream.take() {
        let _ = poll.registry().deregister(&mut s);
    }
    link.out.clear();
    link.engine.eof(Instant::now());
}

/// Write what `link` has pending until its socket would block.
fn write_link<E: Driven>(poll: &Poll, link: &mut Link<E>) {
    while !link.out.is_empty() {
        let Some(s) = &mut link.stream else {
            link.out.clear();
            return;
        };
        match s.write(&link.out) {
            Ok(0) => return lose_link(poll, link),
            Ok(n) => {
                link.out.drain(..n.min(link.out.len()));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return lose_link(poll, link),
        }
    }
}

/// Read `link`'s socket until it would block, handing its engine each piece.
fn read_link<E: Driven>(poll: &Poll, link: &mut Link<E>, buf: &mut [u8]) {
    loop {
        let Some(s) = &mut link.stream else { return };
        match s.read(buf) {
            Ok(0) => return lose_link(poll, link),
            Ok(n) => link
                .engine
                .input(Instant::now(), buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return lose_link(poll, link),
        }
    }
}
