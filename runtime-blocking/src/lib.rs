//! Runs cpppo-core's server engines over `std::net` sockets and threads: one thread per
//! listener, per UDP socket and per connection. The shared [`Server`] lives behind a
//! mutex that is held only while calling into the engine, never across I/O.
//!
//! The adapter only moves bytes and time, as [`cpppo_core::engine`] describes; it knows
//! no protocol.
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
//! - [`serve_stream`] drives one connection over a serial line ([`open_serial`]) or any
//!   [`TimedStream`]: a Modbus RTU slave on `/dev/ttyUSB0`.
//! - [`web`]: cpppo's web API and a live tag page over HTTP, for a simulated controller
//!   served by any runtime (`cpppo enip server --web`).
//! - [`client`]: the other side, one client engine (Modbus poller, EtherNet/IP client)
//!   over one `TcpStream` until the caller is done.
//!
//! ```
//! use cpppo_blocking::serve;
//! use cpppo_core::engine::{reachable, ServeOptions};
//! use cpppo_core::testing::EchoServer;
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

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cpppo_core::engine::{
    lock, reachable, unshare, wait_for, with_locked, Connection, Driver, OnEvent, ServeCounters,
    ServeOptions, ServeStats, Server, Serving, StopFn, SHUTDOWN_FLUSH,
};
use tracing::{debug, info, warn};

pub mod client;
pub mod proxy;
mod stream;
pub mod web;
#[cfg(unix)]
pub use stream::open_serial;
pub use stream::{serve_stream, TimedStream};

/// Bytes read from a socket at once.
const READ_BUFFER: usize = 16 * 1024;
/// The largest UDP datagram.
const DATAGRAM_BUFFER: usize = 65_536;
/// How long a shutdown waits for its wake-up connection to a listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest sleep while waiting for a deadline with no input to wait for, so that a
/// shutdown is noticed.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// How often a shutdown looks whether the connection threads have finished.
const JOIN_POLL: Duration = Duration::from_millis(5);

/// What the threads share besides the server.
#[derive(Debug, Default)]
struct Shared {
    stopping: AtomicBool,
    counters: ServeCounters,
    tcp_addrs: Mutex<Vec<SocketAddr>>,
    udp_addrs: Mutex<Vec<SocketAddr>>,
    /// A clone of each open connection's socket, to wake its reader at shutdown.
    streams: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stopped: Mutex<bool>,
    stopped_cv: Condvar,
}

impl Shared {
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Begin a graceful stop: wake every listener, UDP socket and connection reader.
    fn stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        debug!("stopping");
        for addr in lock(&self.tcp_addrs).iter() {
            // Wakes the blocked accept; it sees the flag and returns.
            let _ = TcpStream::connect_timeout(&reachable(*addr), WAKE_TIMEOUT);
        }
        for addr in lock(&self.udp_addrs).iter() {
            let target = reachable(*addr);
            let any: SocketAddr = match target {
                SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            if let Ok(socket) = UdpSocket::bind(any) {
                let _ = socket.send_to(&[], target);
            }
        }
        for stream in lock(&self.streams).values() {
            // A blocked read returns 0; the connection flushes what is ready and closes.
            let _ = stream.shutdown(Shutdown::Read);
        }
        *lock(&self.stopped) = true;
        self.stopped_cv.notify_all();
    }
}

/// Stops a running server from anywhere (a signal handler, another thread); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<Shared>);

impl Stopper {
    /// Begin a graceful stop; [`ServerHandle::wait`] then returns.
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// A running server: its bound addresses, counters, and the way to stop it.
/// Dropping it leaves the server running in the background: end it with
/// [`shutdown`](Self::shutdown), or [`wait`](Self::wait) for it to end by itself.
#[derive(Debug)]
pub struct ServerHandle<S> {
    server: Arc<Mutex<S>>,
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
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
        self.shared.counters.snapshot()
    }

    /// A handle that stops the server from elsewhere.
    pub fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.shared))
    }

    /// Whether a stop has begun (by [`shutdown`](Self::shutdown), a [`Stopper`] or the
    /// server's [`Server::is_done`]).
    pub fn is_stopping(&self) -> bool {
        self.shared.is_stopping()
    }

    /// Stop gracefully: listeners close, each connection flushes what is ready and
    /// closes, every thread is joined. Returns the server state.
    pub fn shutdown(self) -> io::Result<S> {
        self.shared.stop();
        self.join()
    }

    /// Wait until the server stops (its [`Server::is_done`], or a [`Stopper`]), then
    /// join every thread. Returns the server state.
    pub fn wait(self) -> io::Result<S> {
        {
            let mut stopped = lock(&self.shared.stopped);
            while !*stopped {
                stopped = self
                    .shared
                    .stopped_cv
                    .wait(stopped)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        self.join()
    }

    fn join(self) -> io::Result<S> {
        let mut panicked = false;
        for thread in self.threads {
            panicked |= thread.join().is_err();
        }
        // Connections flush what is ready; a peer too slow to take it gets SHUTDOWN_FLUSH,
        // then its socket is closed under the writer.
        let give_up = Instant::now() + SHUTDOWN_FLUSH;
        while lock(&self.shared.workers)
            .iter()
            .any(|worker| !worker.is_finished())
            && Instant::now() < give_up
        {
            thread::sleep(JOIN_POLL);
        }
        for stream in lock(&self.shared.streams).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        loop {
            let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
            if workers.is_empty() {
                break;
            }
            for worker in workers {
                panicked |= worker.join().is_err();
            }
        }
        if panicked {
            return Err(io::Error::other("a server thread panicked"));
        }
        unshare(self.server)
    }
}

impl<S: Server> ServerHandle<S> {
    /// Look at (or change) the shared server state while it runs; the lock is held for
    /// the call. A change that makes the server [done](Server::is_done) stops it.
    pub fn with_server<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        with_locked(&self.server, f, || self.shared.stop())
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

/// Serve `server` on the addresses of `options` until it is done or shut down, logging
/// events with [`log_event`]. Binds everything before returning, so a port in use is an
/// error here.
pub fn serve<S>(server: S, options: ServeOptions) -> io::Result<ServerHandle<S>>
where
    S: Server + Send + 'static,
    S::Connection: Send + 'static,
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
    S::Connection: Send + 'static,
{
    if options.listen.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "no address to listen on",
        ));
    }
    let mut listeners = Vec::new();
    let mut udps = Vec::new();
    for addr in &options.listen {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        if options.udp {
            let udp = UdpSocket::bind(local)?;
            udps.push((udp.local_addr()?, udp));
        }
        listeners.push((local, listener));
    }
    let shared = Arc::new(Shared::default());
    let local_addrs: Vec<_> = listeners.iter().map(|(addr, _)| *addr).collect();
    let udp_addrs: Vec<_> = udps.iter().map(|(addr, _)| *addr).collect();
    lock(&shared.tcp_addrs).clone_from(&local_addrs);
    lock(&shared.udp_addrs).clone_from(&udp_addrs);
    let server = Arc::new(Mutex::new(server));
    let options = Arc::new(options);
    let mut threads = Vec::new();
    for (local, listener) in listeners {
        let (server, shared, options) = (server.clone(), shared.clone(), options.clone());
        let on_event = on_event.clone();
        threads.push(
            thread::Builder::new()
                .name(format!("accept {local}"))
                .spawn(move || {
                    accept_loop(&server, &shared, &options, &on_event, local, &listener);
                })?,
        );
    }
    for (local, udp) in udps {
        let (server, shared) = (server.clone(), shared.clone());
        threads.push(
            thread::Builder::new()
                .name(format!("udp {local}"))
                .spawn(move || udp_loop(&server, &shared, local, &udp))?,
        );
    }
    debug!(?local_addrs, ?udp_addrs, "serving");
    Ok(ServerHandle {
        server,
        shared,
        local_addrs,
        udp_addrs,
        threads,
    })
}

fn accept_loop<S>(
    server: &Arc<Mutex<S>>,
    shared: &Arc<Shared>,
    options: &Arc<ServeOptions>,
    on_event: &OnEvent<EventOf<S>>,
    local: SocketAddr,
    listener: &TcpListener,
) where
    S: Server + Send + 'static,
    S::Connection: Send + 'static,
{
    loop {
        let accepted = listener.accept();
        if shared.is_stopping() {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!(%local, %error, "accept failed");
                thread::sleep(STOP_CHECK);
                continue;
            }
        };
        if !shared.counters.try_open(options.max_connections) {
            debug!(%peer, "refused: connection limit");
            drop(stream);
            continue;
        }
        let now = Instant::now();
        let (connection, done) = {
            let mut server = lock(server);
            // The address the peer reached (an interface's), not the listener's `0.0.0.0`.
            let reached = stream.local_addr().unwrap_or(local);
            let connection = server.accept(now, reached, peer);
            (connection, server.is_done())
        };
        if done {
            shared.stop();
        }
        shared.counters.accepted(connection.is_some());
        let Some(connection) = connection else {
            debug!(%peer, "refused by the server");
            continue;
        };
        if let Err(error) =
            spawn_connection(server, shared, options, on_event, stream, peer, connection)
        {
            warn!(%peer, %error, "cannot start a connection thread");
            shared.counters.closed(false);
        }
        // Reap finished connection threads so the list stays short.
        lock(&shared.workers).retain(|worker| !worker.is_finished());
    }
}

fn spawn_connection<S>(
    server: &Arc<Mutex<S>>,
    shared: &Arc<Shared>,
    options: &Arc<ServeOptions>,
    on_event: &OnEvent<EventOf<S>>,
    stream: TcpStream,
    peer: SocketAddr,
    connection: S::Connection,
) -> io::Result<()>
where
    S: Server + Send + 'static,
    S::Connection: Send + 'static,
{
    stream.set_nodelay(true)?;
    // A peer that stops reading must not hold its thread (and shutdown) forever.
    stream.set_write_timeout(options.send_timeout.or(options.idle_timeout))?;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    lock(&shared.streams).insert(id, stream.try_clone()?);
    let driver = Driver::new(connection, Instant::now(), options.idle_timeout);
    let (server, shared2, on_event) = (server.clone(), shared.clone(), on_event.clone());
    let worker = thread::Builder::new()
        .name(format!("conn {peer}"))
        .spawn(move || {
            let idle = drive(&server, &shared2, &*on_event, stream, peer, driver);
            lock(&shared2.streams).remove(&id);
            shared2.counters.closed(idle);
        });
    match worker {
        Ok(worker) => {
            lock(&shared.workers).push(worker);
            Ok(())
        }
        Err(error) => {
            lock(&shared.streams).remove(&id);
            Err(error)
        }
    }
}

/// Run one connection to its end; `true` when the idle timeout closed it.
fn drive<S: Server>(
    server: &Mutex<S>,
    shared: &Shared,
    on_event: &(dyn Fn(SocketAddr, EventOf<S>) + Send + Sync),
    mut stream: TcpStream,
    peer: SocketAddr,
    mut driver: Driver<S::Connection>,
) -> bool {
    let mut buf = vec![0u8; READ_BUFFER];
    // The read timeout last set: a system call only when it changes.
    let mut read_timeout = None;
    loop {
        let now = Instant::now();
        let out = driver.poll_transmit(now);
        if !out.is_empty() {
            if let Err(error) = stream.write_all(out) {
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                    info!(%peer, "closed: the peer stopped reading (send timeout)");
                    shared.counters.send_timeout();
                } else {
                    debug!(%peer, %error, "write failed");
                }
                break;
            }
            let sent = out.len();
            driver.advance(sent);
        }
        while let Some(event) = driver.poll_event() {
            on_event(peer, event);
        }
        if driver.is_finished() || shared.is_stopping() {
            break;
        }
        let deadline = driver.poll_timeout();
        let wait = wait_for(now, deadline);
        let input = if wait == Some(Duration::ZERO) {
            None
        } else if driver.wants_input() {
            if wait != read_timeout {
                if let Err(error) = stream.set_read_timeout(wait) {
                    debug!(%peer, %error, "cannot set the read timeout");
                    break;
                }
                read_timeout = wait;
            }
            Some(stream.read(&mut buf))
        } else {
            thread::sleep(wait.unwrap_or(STOP_CHECK).min(STOP_CHECK));
            None
        };
        let now = Instant::now();
        let mut server = lock(server);
        match input {
            Some(Ok(0)) => driver.handle_eof(now, &mut server),
            Some(Ok(n)) => driver.handle_input(now, buf.get(..n).unwrap_or_default(), &mut server),
            Some(Err(error))
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                driver.handle_timeout(now, &mut server);
            }
            Some(Err(error)) => {
                debug!(%peer, %error, "read failed");
                driver.handle_eof(now, &mut server);
            }
            None => driver.handle_timeout(now, &mut server),
        }
        let done = server.is_done();
        drop(server);
        if done {
            shared.stop();
        }
    }
    // The engine learns that its connection ended, whoever ended it.
    driver.handle_eof(Instant::now(), &mut lock(server));
    while let Some(event) = driver.poll_event() {
        on_event(peer, event);
    }
    let idle = driver.idle_expired();
    debug!(%peer, idle, "closed");
    let _ = stream.shutdown(Shutdown::Both);
    idle
}

fn udp_loop<S: Server>(server: &Mutex<S>, shared: &Shared, local: SocketAddr, socket: &UdpSocket) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    let mut out = Vec::new();
    loop {
        let received = socket.recv_from(&mut buf);
        if shared.is_stopping() {
            return;
        }
        let (n, peer) = match received {
            Ok(received) => received,
            Err(error) => {
                // ICMP port unreachable from an earlier reply, and the like.
                debug!(%local, %error, "udp receive failed");
                continue;
            }
        };
        shared.counters.datagram();
        out.clear();
        let (reply, done) = {
            let mut server = lock(server);
            let data = buf.get(..n).unwrap_or_default();
            let reply = server.handle_datagram(Instant::now(), local, peer, data, &mut out);
            (reply, server.is_done())
        };
        if reply {
            if let Err(error) = socket.send_to(&out, peer) {
                debug!(%peer, %error, "udp send failed");
            }
        }
        if done {
            shared.stop();
        }
    }
}
