//! The async drive loop of a client engine: one `Async<TcpStream>` and any sans-IO client
//! engine ([`Driven`]: the Modbus poller and client, and the EtherNet/IP client implement
//! it). Each wait races a read against the engine's next deadline on an `async-io`
//! [`Timer`]. It only moves bytes and time; what the engine's events mean stays with the
//! caller, which drains them in [`ClientDriver::run`]'s callback. A write races the
//! engine's next deadline too ([`cpppo_core::engine::write_deadline`]), so a peer that
//! stops reading times the operations out instead of hanging the loop.
//!
//! [`Connector`] is cpppo's `client.connector` on this loop: `synchronous`, `pipeline`,
//! `operate`, `results` and `process` over core's pipeline runner
//! ([`cpppo_core::enip::client::pipeline`]), the same calls as on blocking and mio
//! (awaited).
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

use cpppo_core::engine::write_deadline;
pub use cpppo_core::engine::Driven;
use cpppo_core::enip::client::{ClientConn, ClientOptions};
use cpppo_core::modbus::client::ClientConfig;
pub use cpppo_core::modbus::client::ClientConn as ModbusConn;
use cpppo_core::modbus::server::Transport;
use cpppo_core::pipeline::{Harvested, Pipeline, Pipelined, Pipelining, Summary};
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
    /// The local address of the stream `out` was left for by a write that timed out:
    /// a stream put in its place since gets none of it (a frame cut short would be
    /// garbage there).
    pending_on: Option<SocketAddr>,
    buf: Vec<u8>,
}

impl ClientDriver {
    /// A loop over `stream` (or none yet).
    pub fn new(stream: Option<Async<TcpStream>>) -> Self {
        ClientDriver {
            stream,
            out: Vec::new(),
            pending_on: None,
            buf: vec![0; 4096],
        }
    }

    /// Take everything the engine has ready and write it, with what an earlier flush
    /// left; true if the engine had anything. A failed write drops the stream and tells
    /// the engine. A write waits at most until [`write_deadline`] (the engine's next
    /// deadline): a peer that stops reading does not hold us past it; the engine hears
    /// its deadline (its operations time out) and the rest is kept for the next flush,
    /// so no frame is cut.
    pub async fn flush<E: Driven>(&mut self, engine: &mut E) -> bool {
        let here = self
            .stream
            .as_ref()
            .and_then(|s| s.get_ref().local_addr().ok());
        if self.pending_on.take().is_some_and(|on| Some(on) != here) {
            self.out.clear();
        }
        let before = self.out.len();
        while engine.transmit(Instant::now(), &mut self.out) {}
        let had = self.out.len() > before;
        self.write_pending(engine).await;
        if !self.out.is_empty() {
            self.pending_on = here;
        }
        had
    }

    /// Write what is pending, until the engine's next deadline.
    async fn write_pending<E: Driven>(&mut self, engine: &mut E) {
        let ClientDriver { stream, out, .. } = self;
        let Some(s) = stream else {
            out.clear();
            return;
        };
        let deadline = write_deadline(engine, Instant::now());
        while !out.is_empty() {
            // The write is polled first: a deadline already due still gets one try.
            let write = async { Some(s.write(out).await) }.or(async {
                Timer::at(deadline).await;
                None
            });
            match write.await {
                None => {
                    engine.timeout(Instant::now());
                    return;
                }
                Some(Ok(n)) if n > 0 => {
                    out.drain(..n.min(out.len()));
                }
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Some(_) => break,
            }
        }
        if !out.is_empty() {
            out.clear();
            *stream = None;
            engine.eof(Instant::now());
        }
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

/// cpppo's `client.connector` on smol: one EtherNet/IP session to a controller, with
/// cpppo's calls, the same as `cpppo_blocking::client::Connector`'s (awaited):
/// [`synchronous`](Self::synchronous), [`pipeline`](Self::pipeline) and
/// [`operate`](Self::operate) give each operation's [`Harvested`] result in the order
/// given ([`Harvest::next`]); [`results`](Self::results) just the values;
/// [`process`](Self::process) cpppo's `(failures, values)`. What to submit next and how
/// results are collected is core's [`Pipeline`]; this only moves its bytes and waits.
///
/// ```no_run
/// use cpppo_smol::client::Connector;
/// use cpppo_core::cip::operation::parse_operation;
/// use cpppo_core::enip::client::pipeline::Pipelining;
/// use cpppo_core::enip::client::ClientOptions;
///
/// smol::block_on(async {
///     let target = ["127.0.0.1:44818".parse()?];
///     let mut conn = Connector::connect(&target, ClientOptions::default()).await?;
///     let ops = ["SCADA[1-3]=4,5,6", "SCADA[0-9]"].map(|t| parse_operation(t).unwrap());
///     let mut harvest = conn.pipeline(ops, 2);
///     while let Some(done) = harvest.next().await {
///         println!("{}", done.line());
///     }
///     let ops = [parse_operation("SCADA[0]")?];
///     let (failures, values) = conn.process(ops, Pipelining::default()).await;
///     assert_eq!((failures, values.len()), (0, 1));
///     conn.close().await;
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
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
}

impl Connector {
    /// Connect to the first address of `target` that answers (within the options'
    /// timeout) and start a session there.
    pub async fn connect(target: &[SocketAddr], options: ClientOptions) -> io::Result<Self> {
        let stream = connect(target, options.timeout).await?;
        Ok(Self::new(stream, options))
    }

    /// A session over `stream`.
    pub fn new(stream: Async<TcpStream>, options: ClientOptions) -> Self {
        Connector {
            driver: ClientDriver::new(Some(stream)),
            idle: options.timeout,
            defaults: Pipelining::of(&options),
            client: ClientConn::new(Instant::now(), options),
        }
    }

    /// End the session: finish what is in flight, Forward Close when connected,
    /// UnRegisterSession, within the options' timeout.
    pub async fn close(mut self) {
        self.client.close(Instant::now());
        let Connector {
            driver,
            client,
            idle,
            ..
        } = &mut self;
        let _ = driver
            .run(client, *idle, |c, d| {
                (false, c.is_closed() || d.stream.is_none())
            })
            .await;
    }
}

/// cpppo's connector calls for Modbus/TCP: a [`Connector`] over core's Modbus client
/// engine ([`ModbusConn`]), made by [`Connector::connect_modbus`].
pub type ModbusConnector = Connector<ModbusConn>;

impl Connector<ModbusConn> {
    /// Connect to the first address of `target` that answers (within the
    /// configuration's timeout): a Modbus/TCP client.
    pub async fn connect_modbus(target: &[SocketAddr], config: ClientConfig) -> io::Result<Self> {
        let stream = connect(target, config.timeout).await?;
        Ok(Self::new_modbus(stream, config))
    }

    /// A Modbus/TCP client over `stream`.
    pub fn new_modbus(stream: Async<TcpStream>, config: ClientConfig) -> Self {
        Connector {
            driver: ClientDriver::new(Some(stream)),
            idle: config.timeout,
            defaults: Pipelining::of_modbus(&config),
            client: ModbusConn::new(Transport::Tcp, config),
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

    /// Run `ops` as `pipelining` says, giving each result in order (cpppo's `operate`).
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
        Results(self.operate(ops, pipelining))
    }

    /// Every operation's value and how many failed (cpppo's `process`).
    pub async fn process<I: IntoIterator<Item = E::Op>>(
        &mut self,
        ops: I,
        pipelining: Pipelining,
    ) -> (usize, Vec<Option<E::Value>>) {
        let mut harvest = self.operate(ops, pipelining);
        let (mut failures, mut values) = (0, Vec::new());
        while let Some(done) = harvest.next().await {
            failures += usize::from(E::failed(&done.outcome));
            values.push(E::value(done.outcome));
        }
        (failures, values)
    }
}

/// The results of a [`Connector`] call, in the order the operations were given:
/// [`next`](Self::next) gives each [`Harvested`] (cpppo's `(index, description,
/// request, reply, status, value)`).
#[derive(Debug)]
pub struct Harvest<'a, I, E: Pipelined = ClientConn> {
    connector: &'a mut Connector<E>,
    pipeline: Pipeline<I, E>,
}

impl<I: Iterator<Item = E::Op>, E: Pipelined + Driven> Harvest<'_, I, E> {
    /// The next result; `None` once every operation's has been given.
    pub async fn next(&mut self) -> Option<Harvested<E::Op, E::Outcome>> {
        let Connector {
            driver,
            client,
            idle,
            ..
        } = &mut *self.connector;
        let pipeline = &mut self.pipeline;
        loop {
            pipeline.step(Instant::now(), client);
            driver.flush(client).await;
            if let Some(done) = pipeline.poll_result() {
                return Some(done);
            }
            if pipeline.is_finished() {
                return None;
            }
            // A lost connection is the engine's to report (its operations are lost).
            let _ = driver
                .run(client, *idle, |c, _| {
                    let moved = pipeline.step(Instant::now(), c);
                    (moved, pipeline.has_result() || pipeline.is_finished())
                })
                .await;
        }
    }

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

/// The values of [`Connector::results`], `None` where an operation failed.
#[derive(Debug)]
pub struct Results<'a, I, E: Pipelined = ClientConn>(Harvest<'a, I, E>);

impl<I: Iterator<Item = E::Op>, E: Pipelined + Driven> Results<'_, I, E> {
    /// The next value; `None` once every operation's has been given.
    pub async fn next(&mut self) -> Option<Option<E::Value>> {
        self.0.next().await.map(|done| E::value(done.outcome))
    }
}
