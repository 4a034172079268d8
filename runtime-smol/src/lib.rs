//! Runs cpppo-core's server engines on smol / async-io: one task per listener, per UDP
//! socket and per connection, all on one executor thread. The shared [`Server`] lives
//! behind a mutex that is held only while calling into the engine, never across an
//! `.await`.
//!
//! The adapter only moves bytes and time, as [`cpppo_core::engine`] describes; it knows
//! no protocol. [`serve`] starts the executor on its own thread and returns at once;
//! [`run`] is the same server as a future, for a program that already has an executor.
//!
//! - [`serve`]`(server, options)` binds every address of
//!   [`ServeOptions`] (TCP, and UDP on the same ports
//!   when asked; a port in use is an error here) and returns a [`ServerHandle`]:
//!   bound addresses (port 0 becomes the real port), [`stats`](ServerHandle::stats),
//!   [`with_server`](ServerHandle::with_server), a [`Stopper`] for other threads,
//!   [`shutdown`](ServerHandle::shutdown) and [`wait`](ServerHandle::wait), both of
//!   which give the server state back. [`serve_with`] also takes a hook for every
//!   connection's events (by default they are logged with `tracing` at debug level).
//! - The handle implements [`Serving`], so a program can
//!   pick this runtime or another at run time behind a `Box<dyn Serving<S>>`.
//! - Every accepted socket gets `TCP_NODELAY`; beyond the connection limit a client is
//!   accepted and closed at once (and counted); a connection idle for the idle timeout
//!   is closed; a client leaving mid-frame costs the others nothing; a graceful stop
//!   flushes what each connection has ready (a slow reader gets
//!   [`SHUTDOWN_FLUSH`]) and then closes it.
//! - [`client`]: the other side, one client engine (Modbus poller, EtherNet/IP client)
//!   over one `Async<TcpStream>`, reads raced against its deadlines, until the caller is
//!   done.
//!
//! ```
//! use cpppo_core::engine::{reachable, ServeOptions};
//! use cpppo_core::testing::EchoServer;
//! use cpppo_smol::serve;
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! let options = ServeOptions::new("127.0.0.1:0".parse()?);
//! let handle = serve(EchoServer::new(Duration::ZERO), options)?;
//! let mut client = TcpStream::connect(reachable(handle.local_addrs()[0]))?;
//! client.write_all(b"hello\n")?;
//! let mut reply = String::new();
//! BufReader::new(&client).read_line(&mut reply)?;
//! assert_eq!(reply, "HELLO\n");
//! let server = handle.shutdown()?;
//! assert_eq!(server.lines, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod proxy;

use std::future::Future;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cpppo_core::engine::{
    lock, unshare, with_locked, Connection, Driver, OnEvent, ServeCounters, ServeOptions,
    ServeStats, Server, Serving, StopFn, SHUTDOWN_FLUSH,
};
use smol::channel::{Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, LocalExecutor, Timer};
use tracing::{debug, info, warn};

/// Bytes read from a socket at once.
const READ_BUFFER: usize = 16 * 1024;
/// The largest UDP datagram.
const DATAGRAM_BUFFER: usize = 65_536;
/// Pause after a failed accept (out of descriptors), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The stop signal: closing the channel wakes every task waiting on it.
#[derive(Debug, Clone)]
struct Stop {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Stop {
    fn new() -> Self {
        let (tx, rx) = smol::channel::bounded(1);
        Self { tx, rx }
    }

    fn stop(&self) {
        if self.tx.close() {
            debug!("stopping");
        }
    }

    fn is_stopping(&self) -> bool {
        self.rx.is_closed()
    }

    /// Resolves once stopped.
    async fn stopped(&self) {
        // Nothing is ever sent: this returns only when the channel is closed.
        let _ = self.rx.recv().await;
    }
}

/// Stops a running server from anywhere (a signal handler, another thread); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Stopper(Stop);

impl Default for Stopper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stopper {
    /// A stopper for [`run`].
    pub fn new() -> Self {
        Self(Stop::new())
    }

    /// Begin a graceful stop: listeners close, each connection flushes what is ready and
    /// closes, and [`run`] returns.
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// The sockets a server was bound to, ready for [`run`].
#[derive(Debug)]
pub struct Bound {
    tcp: Vec<(SocketAddr, TcpListener)>,
    udp: Vec<(SocketAddr, UdpSocket)>,
}

impl Bound {
    /// Bind every address of `options` (TCP, and UDP on the same ports when asked).
    pub fn bind(options: &ServeOptions) -> io::Result<Self> {
        if options.listen.is_empty() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        let mut bound = Self {
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        for addr in &options.listen {
            let listener = TcpListener::bind(addr)?;
            let local = listener.local_addr()?;
            if options.udp {
                let udp = UdpSocket::bind(local)?;
                bound.udp.push((udp.local_addr()?, udp));
            }
            bound.tcp.push((local, listener));
        }
        Ok(bound)
    }

    /// The TCP addresses, with actual ports.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.iter().map(|(addr, _)| *addr).collect()
    }

    /// The UDP addresses.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(addr, _)| *addr).collect()
    }
}

/// What the tasks of one server share.
struct Context<S: Server> {
    server: Arc<Mutex<S>>,
    options: ServeOptions,
    counters: Arc<ServeCounters>,
    stop: Stop,
    on_event: OnEvent<EventOf<S>>,
}

impl<S: Server> Context<S> {
    /// Call into the engine with the lock held, and begin stopping if the server is done.
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let (result, done) = {
            let mut server = lock(&self.server);
            let result = f(&mut server);
            (result, server.is_done())
        };
        if done {
            self.stop.stop();
        }
        result
    }
}

/// Serve on sockets already bound, until the server is done or `stopper` stops it. Runs
/// on a [`LocalExecutor`] of its own, polled by this future, so the engines' connections
/// need not be `Send`.
pub async fn run<S>(
    server: Arc<Mutex<S>>,
    options: ServeOptions,
    bound: Bound,
    counters: Arc<ServeCounters>,
    stopper: Stopper,
    on_event: OnEvent<EventOf<S>>,
) -> io::Result<()>
where
    S: Server + 'static,
{
    let context = Rc::new(Context {
        server,
        options,
        counters,
        stop: stopper.0,
        on_event,
    });
    let executor = Rc::new(LocalExecutor::new());
    // Every task holds a clone of `alive`; `recv` fails once all of them have ended.
    let (alive, all_ended) = smol::channel::bounded::<()>(1);
    for (local, listener) in bound.tcp {
        let listener = Async::new(listener)?;
        let task = accept_loop(
            context.clone(),
            executor.clone(),
            alive.clone(),
            local,
            listener,
        );
        executor.spawn(task).detach();
    }
    for (local, socket) in bound.udp {
        let socket = Async::new(socket)?;
        executor
            .spawn(udp_loop(context.clone(), alive.clone(), local, socket))
            .detach();
    }
    drop(alive);
    executor
        .run(async {
            let _ = all_ended.recv().await;
        })
        .await;
    Ok(())
}

/// Stop-or-else: resolves to `None` when the server stops first.
async fn unless_stopped<T>(stop: &Stop, work: impl Future<Output = T>) -> Option<T> {
    async { Some(work.await) }
        .or(async {
            stop.stopped().await;
            None
        })
        .await
}

async fn accept_loop<S: Server + 'static>(
    context: Rc<Context<S>>,
    executor: Rc<LocalExecutor<'static>>,
    alive: Sender<()>,
    local: SocketAddr,
    listener: Async<TcpListener>,
) {
    loop {
        let Some(accepted) = unless_stopped(&context.stop, listener.accept()).await else {
            return;
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%local, %error, "accept failed");
                Timer::after(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if !context.counters.try_open(context.options.max_connections) {
            debug!(%peer, "refused: connection limit");
            drop(stream);
            continue;
        }
        // The address the peer reached (an interface's), not the listener's `0.0.0.0`.
        let reached = stream.get_ref().local_addr().unwrap_or(local);
        let connection = context.with(|server| server.accept(Instant::now(), reached, peer));
        context.counters.accepted(connection.is_some());
        let Some(connection) = connection else {
            debug!(%peer, "refused by the server");
            continue;
        };
        if let Err(error) = stream.get_ref().set_nodelay(true) {
            debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let driver = Driver::new(connection, Instant::now(), context.options.idle_timeout);
        let task = connection_task(context.clone(), alive.clone(), stream, peer, driver);
        executor.spawn(task).detach();
    }
}

/// What a connection woke up for.
enum Wake {
    Input(io::Result<usize>),
    Deadline,
    Stop,
}

async fn connection_task<S: Server>(
    context: Rc<Context<S>>,
    alive: Sender<()>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
    mut driver: Driver<S::Connection>,
) {
    let idle = drive(&context, &stream, peer, &mut driver).await;
    // The engine learns that its connection ended, whoever ended it.
    context.with(|server| driver.handle_eof(Instant::now(), server));
    while let Some(event) = driver.poll_event() {
        (context.on_event)(peer, event);
    }
    debug!(%peer, idle, "closed");
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
    context.counters.closed(idle);
    drop(alive);
}

/// Run one connection to its end; `true` when the idle timeout closed it.
async fn drive<S: Server>(
    context: &Context<S>,
    stream: &Async<TcpStream>,
    peer: SocketAddr,
    driver: &mut Driver<S::Connection>,
) -> bool {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut reader = stream;
    let mut writer = stream;
    loop {
        let out = driver.poll_transmit(Instant::now());
        if !out.is_empty() {
            let sent = out.len();
            // A stop lets a slow reader have SHUTDOWN_FLUSH more to take the bytes.
            let give_up = async {
                context.stop.stopped().await;
                Timer::after(SHUTDOWN_FLUSH).await;
                Err(io::Error::from(ErrorKind::TimedOut))
            };
            // A peer that takes none of it for the send timeout is not reading.
            let stalled = async {
                match context.options.send_timeout {
                    Some(timeout) => {
                        Timer::after(timeout).await;
                        Err(io::Error::from(ErrorKind::WouldBlock))
                    }
                    None => future::pending().await,
                }
            };
            match writer.write_all(out).or(give_up).or(stalled).await {
                Ok(()) => driver.advance(sent),
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    info!(%peer, "closed: the peer stopped reading (send timeout)");
                    context.counters.send_timeout();
                    break;
                }
                Err(error) => {
                    debug!(%peer, %error, "write failed");
                    break;
                }
            }
        }
        while let Some(event) = driver.poll_event() {
            (context.on_event)(peer, event);
        }
        if driver.is_finished() || context.stop.is_stopping() {
            break;
        }
        let deadline = driver.poll_timeout();
        let wants_input = driver.wants_input();
        let wake = {
            let input = async {
                if wants_input {
                    Wake::Input(reader.read(&mut buf).await)
                } else {
                    future::pending().await
                }
            };
            let timer = async {
                match deadline {
                    Some(deadline) => {
                        Timer::at(deadline).await;
                        Wake::Deadline
                    }
                    None => future::pending().await,
                }
            };
            let stop = async {
                context.stop.stopped().await;
                Wake::Stop
            };
            pin!(input).or(timer).or(stop).await
        };
        let now = Instant::now();
        match wake {
            Wake::Input(Ok(0)) => context.with(|server| driver.handle_eof(now, server)),
            Wake::Input(Ok(n)) => {
                let data = buf.get(..n).unwrap_or_default();
                context.with(|server| driver.handle_input(now, data, server));
            }
            Wake::Input(Err(error)) if error.kind() == ErrorKind::Interrupted => {}
            Wake::Input(Err(error)) => {
                debug!(%peer, %error, "read failed");
                context.with(|server| driver.handle_eof(now, server));
            }
            Wake::Deadline => context.with(|server| driver.handle_timeout(now, server)),
            // Flush what is ready, then close.
            Wake::Stop => {}
        }
    }
    driver.idle_expired()
}

async fn udp_loop<S: Server>(
    context: Rc<Context<S>>,
    alive: Sender<()>,
    local: SocketAddr,
    socket: Async<UdpSocket>,
) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    let mut out = Vec::new();
    while let Some(received) = unless_stopped(&context.stop, socket.recv_from(&mut buf)).await {
        let (n, peer) = match received {
            Ok(received) => received,
            Err(error) => {
                debug!(%local, %error, "udp receive failed");
                continue;
            }
        };
        context.counters.datagram();
        out.clear();
        let data = buf.get(..n).unwrap_or_default();
        let reply = context
            .with(|server| server.handle_datagram(Instant::now(), local, peer, data, &mut out));
        if reply {
            if let Err(error) = socket.send_to(&out, peer).await {
                debug!(%peer, %error, "udp send failed");
            }
        }
    }
    drop(alive);
}

/// A running server on its own executor thread.
/// Dropping it leaves the server running in the background: end it with
/// [`shutdown`](Self::shutdown), or [`wait`](Self::wait) for it to end by itself.
#[derive(Debug)]
pub struct ServerHandle<S> {
    server: Arc<Mutex<S>>,
    counters: Arc<ServeCounters>,
    stopper: Stopper,
    local_addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    thread: JoinHandle<io::Result<()>>,
}

impl<S> ServerHandle<S> {
    /// The TCP addresses listened on, in the order of [`ServeOptions::listen`], with the
    /// actual ports.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The UDP addresses bound (empty unless [`ServeOptions::udp`]).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The counters now.
    pub fn stats(&self) -> ServeStats {
        self.counters.snapshot()
    }

    /// A handle that stops the server from elsewhere.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Whether a stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopper.0.is_stopping()
    }

    /// Stop gracefully: listeners close, each connection flushes what is ready and
    /// closes, the executor thread is joined. Returns the server state.
    pub fn shutdown(self) -> io::Result<S> {
        self.stopper.stop();
        self.wait()
    }

    /// Wait until the server stops (its [`Server::is_done`], or a [`Stopper`]). Returns
    /// the server state.
    pub fn wait(self) -> io::Result<S> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("the server thread panicked"))??;
        unshare(self.server)
    }
}

impl<S: Server> ServerHandle<S> {
    /// Look at (or change) the shared server state while it runs; the lock is held for
    /// the call. A change that makes the server [done](Server::is_done) stops it.
    pub fn with_server<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        with_locked(&self.server, f, || self.stopper.stop())
    }
}

impl<S: Server + Send> Serving<S> for ServerHandle<S> {
    fn local_addrs(&self) -> &[SocketAddr] {
        ServerHandle::local_addrs(self)
    }
    fn udp_addrs(&self) -> &[SocketAddr] {
        ServerHandle::udp_addrs(self)
    }
    fn stats(&self) -> ServeStats {
        ServerHandle::stats(self)
    }
    fn stopper(&self) -> StopFn {
        let stopper = ServerHandle::stopper(self);
        Arc::new(move || stopper.stop())
    }
    fn with_server(&self, f: Box<dyn FnOnce(&mut S) + Send>) -> io::Result<()> {
        ServerHandle::with_server(self, f);
        Ok(())
    }
    fn shutdown(self: Box<Self>) -> io::Result<S> {
        ServerHandle::shutdown(*self)
    }
    fn wait(self: Box<Self>) -> io::Result<S> {
        ServerHandle::wait(*self)
    }
}

/// The events of a connection on `S`.
type EventOf<S> = <<S as Server>::Connection as Connection>::Event;

/// Log an event at debug level: what [`serve`] does with them.
pub fn log_event<E: std::fmt::Debug>(peer: SocketAddr, event: E) {
    debug!(%peer, ?event);
}

/// Serve `server` on the addresses of `options` until it is done or shut down, on an
/// executor thread of its own, logging events with [`log_event`]. Binds everything
/// before returning, so a port in use is an error here.
pub fn serve<S>(server: S, options: ServeOptions) -> io::Result<ServerHandle<S>>
where
    S: Server + Send + 'static,
{
    serve_with(server, options, Arc::new(log_event::<EventOf<S>>))
}

/// [`serve`], handing every connection's events to `on_event`.
pub fn serve_with<S>(
    server: S,
    options: ServeOptions,
    on_event: OnEvent<EventOf<S>>,
) -> io::Result<ServerHandle<S>>
where
    S: Server + Send + 'static,
{
    let bound = Bound::bind(&options)?;
    let local_addrs = bound.local_addrs();
    let udp_addrs = bound.udp_addrs();
    let server = Arc::new(Mutex::new(server));
    let counters = Arc::new(ServeCounters::default());
    let stopper = Stopper::new();
    let thread = {
        let (server, counters, stopper) = (server.clone(), counters.clone(), stopper.clone());
        thread::Builder::new()
            .name("cpppo-smol".into())
            .spawn(move || {
                smol::block_on(run(server, options, bound, counters, stopper, on_event))
            })?
    };
    debug!(?local_addrs, ?udp_addrs, "serving");
    Ok(ServerHandle {
        server,
        counters,
        stopper,
        local_addrs,
        udp_addrs,
        thread,
    })
}
