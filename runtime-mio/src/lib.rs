//! Runs cpppo-core's server engines from one mio event loop on one thread: listeners,
//! UDP sockets and every connection in one [`Slab`], the connections' deadlines in one
//! ordered set. The loop owns the [`Server`] outright, so no lock is taken at all.
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
//! - A peer that sends without reading is held back by its own socket: the loop reads
//!   a connection only once its output is written and its engine is not backlogged.
//! - [`client`]: the other side, one client engine (Modbus poller, EtherNet/IP client)
//!   over one non-blocking `TcpStream` on its own `Poll`, until the caller is done;
//!   or several, each over its own connection, from one `Poll`.
//!
//! ```
//! use cpppo_core::engine::{reachable, ServeOptions};
//! use cpppo_core::testing::EchoServer;
//! use cpppo_mio::serve;
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

use std::collections::BTreeSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use cpppo_core::engine::{
    lock, wait_for, Connection, Driver, OnEvent, ServeCounters, ServeOptions, ServeStats, Server,
    Serving, StopFn, SHUTDOWN_FLUSH,
};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tracing::{debug, info, warn};

/// The error of a call on a server that has stopped.
fn stopped() -> io::Error {
    io::Error::other("the server has stopped")
}

/// Bytes read from a socket at once.
const READ_BUFFER: usize = 16 * 1024;
/// The largest UDP datagram.
const DATAGRAM_BUFFER: usize = 65_536;
/// Readiness events taken per poll.
const EVENTS: usize = 1024;
/// The waker's token; slab keys never reach it.
const WAKER: Token = Token(usize::MAX);

/// One registered socket.
#[derive(Debug)]
enum Entry<C> {
    Listener {
        listener: TcpListener,
        local: SocketAddr,
    },
    Udp {
        socket: UdpSocket,
        local: SocketAddr,
    },
    Connection(Box<Conn<C>>),
}

/// One connection: its socket, engine and the deadline filed for it.
#[derive(Debug)]
struct Conn<C> {
    stream: TcpStream,
    peer: SocketAddr,
    driver: Driver<C>,
    /// The socket may hold unread bytes: set by a readable event, cleared by
    /// `WouldBlock`. Reading that paused (output stuck, engine backlogged) resumes from
    /// here, as the edge-triggered event will not come again.
    unread: bool,
    writable: bool,
    deadline: Option<Instant>,
}

/// Stops a running server from anywhere (a signal handler, another thread); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Stopper {
    stopping: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Begin a graceful stop: the loop closes its listeners, flushes what each
    /// connection has ready, closes them and returns.
    pub fn stop(&self) {
        if !self.stopping.swap(true, Ordering::AcqRel) {
            debug!("stopping");
            if let Err(error) = self.waker.wake() {
                warn!(%error, "cannot wake the event loop");
            }
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// Work for the loop's thread: closures run on the server between engine calls.
/// `None` once the loop has ended.
type Jobs<S> = Arc<Mutex<Option<Vec<Box<dyn FnOnce(&mut S) + Send>>>>>;

/// The event loop and everything it owns.
struct EventLoop<S: Server> {
    server: S,
    options: ServeOptions,
    poll: Poll,
    entries: Slab<Entry<S::Connection>>,
    deadlines: BTreeSet<(Instant, usize)>,
    counters: Arc<ServeCounters>,
    stopper: Stopper,
    on_event: OnEvent<EventOf<S>>,
    jobs: Jobs<S>,
    read_buffer: Vec<u8>,
    datagram: Vec<u8>,
}

impl<S: Server> EventLoop<S> {
    fn run(mut self) -> io::Result<S> {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let now = Instant::now();
            let timeout = wait_for(now, self.deadlines.first().map(|(at, _)| *at));
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                self.ready(
                    event.token().0,
                    event.is_readable() || event.is_read_closed(),
                );
            }
            self.expire(Instant::now());
            let jobs: Vec<_> = lock(&self.jobs)
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            for job in jobs {
                job(&mut self.server);
            }
            if self.stopper.is_stopping() || self.server.is_done() {
                // Jobs queued from now on fail; those queued meanwhile are dropped, which
                // tells their callers.
                lock(&self.jobs).take();
                self.drain(&mut events)?;
                return Ok(self.server);
            }
        }
    }

    /// A socket is ready.
    fn ready(&mut self, key: usize, readable: bool) {
        match self.entries.get_mut(key) {
            Some(Entry::Listener { local, .. }) => {
                let local = *local;
                self.accept(key, local);
            }
            Some(Entry::Udp { .. }) => self.datagrams(key),
            // Readable, or writable after a stall on output: pump either way.
            Some(Entry::Connection(conn)) => {
                conn.unread |= readable;
                self.pump(key);
            }
            None => {}
        }
    }

    fn accept(&mut self, key: usize, local: SocketAddr) {
        loop {
            let Some(Entry::Listener { listener, .. }) = self.entries.get(key) else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    // Out of descriptors and the like: the next readiness retries.
                    warn!(%local, %error, "accept failed");
                    return;
                }
            };
            if !self.counters.try_open(self.options.max_connections) {
                debug!(%peer, "refused: connection limit");
                continue;
            }
            let now = Instant::now();
            // The address the peer reached (an interface's), not the listener's `0.0.0.0`.
            let reached = stream.local_addr().unwrap_or(local);
            let connection = self.server.accept(now, reached, peer);
            self.counters.accepted(connection.is_some());
            let Some(connection) = connection else {
                debug!(%peer, "refused by the server");
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            let entry = self.entries.vacant_entry();
            let token = Token(entry.key());
            let mut stream = stream;
            if let Err(error) =
                self.poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
            {
                warn!(%peer, %error, "cannot register a connection");
                self.counters.closed(false);
                continue;
            }
            entry.insert(Entry::Connection(Box::new(Conn {
                stream,
                peer,
                driver: Driver::new(connection, now, self.options.idle_timeout)
                    .with_send_timeout(self.options.send_timeout),
                unread: true,
                writable: false,
                deadline: None,
            })));
            // The engine may speak first, and the idle deadline starts now.
            self.pump(token.0);
        }
    }

    fn datagrams(&mut self, key: usize) {
        let Some(Entry::Udp { socket, local }) = self.entries.get(key) else {
            return;
        };
        let mut out = Vec::new();
        loop {
            let (n, peer) = match socket.recv_from(&mut self.datagram) {
                Ok(received) => received,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    debug!(%local, %error, "udp receive failed");
                    continue;
                }
            };
            self.counters.datagram();
            out.clear();
            let data = self.datagram.get(..n).unwrap_or_default();
            if self
                .server
                .handle_datagram(Instant::now(), *local, peer, data, &mut out)
            {
                // UDP is lossy: a reply that does not fit the socket buffer is dropped.
                if let Err(error) = socket.send_to(&out, peer) {
                    debug!(%peer, %error, "udp send failed");
                }
            }
        }
    }

    /// Move bytes both ways until the socket would block: write what the engine has
    /// ready, and read more only once all of it is written, so a peer that sends without
    /// reading is held back by its own socket instead of growing our buffers. Reading
    /// stops short of `WouldBlock` only while output is stuck or the engine is
    /// backlogged; the writable event or the deadline that clears it comes back here.
    /// Then [`service`](Self::service).
    fn pump(&mut self, key: usize) {
        let Some(Entry::Connection(conn)) = self.entries.get_mut(key) else {
            return;
        };
        loop {
            if !flush(conn, Instant::now()) {
                self.close(key);
                return;
            }
            if !conn.unread || conn.driver.has_unsent() || !conn.driver.wants_input() {
                break;
            }
            let now = Instant::now();
            match conn.stream.read(&mut self.read_buffer) {
                Ok(0) => conn.driver.handle_eof(now, &mut self.server),
                Ok(n) => {
                    let data = self.read_buffer.get(..n).unwrap_or_default();
                    conn.driver.handle_input(now, data, &mut self.server);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => conn.unread = false,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    debug!(peer = %conn.peer, %error, "read failed");
                    conn.driver.handle_eof(now, &mut self.server);
                }
            }
        }
        self.service(key);
    }

    /// Deadlines that have passed. Each is handled once per turn of the loop, so an
    /// engine that keeps asking for a past deadline cannot starve the other sockets.
    fn expire(&mut self, now: Instant) {
        let later = self.deadlines.split_off(&(now, usize::MAX));
        let due = std::mem::replace(&mut self.deadlines, later);
        for (_, key) in due {
            if let Some(Entry::Connection(conn)) = self.entries.get_mut(key) {
                conn.deadline = None;
                conn.driver.handle_timeout(now, &mut self.server);
            }
            self.pump(key);
        }
    }

    /// After [`pump`](Self::pump): log events, then close, or wait for the right
    /// readiness and deadline.
    fn service(&mut self, key: usize) {
        let Some(Entry::Connection(conn)) = self.entries.get_mut(key) else {
            return;
        };
        while let Some(event) = conn.driver.poll_event() {
            (self.on_event)(conn.peer, event);
        }
        if conn.driver.is_finished() {
            self.close(key);
            return;
        }
        let writable = conn.driver.has_unsent();
        if writable != conn.writable {
            let interest = if writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(key);
            if let Err(error) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
            {
                debug!(peer = %conn.peer, %error, "cannot reregister");
                self.close(key);
                return;
            }
            conn.writable = writable;
        }
        let deadline = conn.driver.poll_timeout();
        if deadline != conn.deadline {
            if let Some(old) = conn.deadline {
                self.deadlines.remove(&(old, key));
            }
            if let Some(new) = deadline {
                self.deadlines.insert((new, key));
            }
            conn.deadline = deadline;
        }
    }

    /// Close a connection now; the engine learns of it.
    fn close(&mut self, key: usize) {
        let Some(Entry::Connection(mut conn)) = self.entries.try_remove(key) else {
            return;
        };
        if let Some(at) = conn.deadline {
            self.deadlines.remove(&(at, key));
        }
        conn.driver.handle_eof(Instant::now(), &mut self.server);
        while let Some(event) = conn.driver.poll_event() {
            (self.on_event)(conn.peer, event);
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        let idle = conn.driver.idle_expired();
        if conn.driver.send_expired() {
            info!(peer = %conn.peer, "closed: the peer stopped reading (send timeout)");
            self.counters.send_timeout();
        }
        debug!(peer = %conn.peer, idle, "closed");
        self.counters.closed(idle);
    }

    /// The graceful end: listeners go, no more input is read, each connection sends
    /// what it has ready (for at most [`SHUTDOWN_FLUSH`]) and closes.
    fn drain(&mut self, events: &mut Events) -> io::Result<()> {
        let keys: Vec<usize> = self.entries.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.entries.get_mut(key) {
                Some(Entry::Connection(conn)) => {
                    // Stop reading: the readable interest is dropped by the next
                    // reregistration, and input events are ignored below.
                    if let Some(at) = conn.deadline.take() {
                        self.deadlines.remove(&(at, key));
                    }
                }
                Some(Entry::Listener { listener, .. }) => {
                    let _ = self.poll.registry().deregister(listener);
                    self.entries.remove(key);
                }
                Some(Entry::Udp { socket, .. }) => {
                    let _ = self.poll.registry().deregister(socket);
                    self.entries.remove(key);
                }
                None => {}
            }
        }
        let give_up = Instant::now() + SHUTDOWN_FLUSH;
        loop {
            let keys: Vec<usize> = self.entries.iter().map(|(key, _)| key).collect();
            for key in keys {
                if let Some(Entry::Connection(conn)) = self.entries.get_mut(key) {
                    if !flush(conn, Instant::now()) || !conn.driver.has_unsent() {
                        self.close(key);
                    }
                }
            }
            let now = Instant::now();
            if self.entries.is_empty() || now >= give_up {
                break;
            }
            if let Err(error) = self.poll.poll(events, wait_for(now, Some(give_up))) {
                if error.kind() != ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
        let keys: Vec<usize> = self.entries.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key);
        }
        Ok(())
    }
}

/// Write what the engine has ready until the socket would block; `false` when the
/// socket is broken.
fn flush<C: Connection>(conn: &mut Conn<C>, now: Instant) -> bool {
    loop {
        let out = conn.driver.poll_transmit(now);
        if out.is_empty() {
            return true;
        }
        match conn.stream.write(out) {
            Ok(0) => return false,
            Ok(n) => conn.driver.advance(n),
            Err(error) if error.kind() == ErrorKind::WouldBlock => return true,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => {
                debug!(peer = %conn.peer, %error, "write failed");
                return false;
            }
        }
    }
}

/// A running server on its event-loop thread.
/// Dropping it leaves the server running in the background: end it with
/// [`shutdown`](Self::shutdown), or [`wait`](Self::wait) for it to end by itself.
pub struct ServerHandle<S> {
    jobs: Jobs<S>,
    counters: Arc<ServeCounters>,
    stopper: Stopper,
    local_addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    thread: JoinHandle<io::Result<S>>,
}

impl<S> std::fmt::Debug for ServerHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addrs", &self.local_addrs)
            .field("udp_addrs", &self.udp_addrs)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
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

    /// Run `f` on the server state on the loop's thread, between engine calls, and
    /// return its result. A change that makes the server [done](Server::is_done) stops
    /// it. `Err` once the loop has ended.
    pub fn with_server<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> io::Result<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        match lock(&self.jobs).as_mut() {
            Some(jobs) => jobs.push(Box::new(move |server: &mut S| {
                let _ = tx.send(f(server));
            })),
            None => return Err(stopped()),
        }
        self.stopper.waker.wake()?;
        rx.recv().map_err(|_| stopped())
    }

    /// Whether a stop has begun by [`shutdown`](Self::shutdown) or a [`Stopper`].
    pub fn is_stopping(&self) -> bool {
        self.stopper.is_stopping()
    }

    /// Stop gracefully and join the loop. Returns the server state.
    pub fn shutdown(self) -> io::Result<S> {
        self.stopper.stop();
        self.wait()
    }

    /// Wait until the loop ends (its [`Server::is_done`], or a [`Stopper`]). Returns the
    /// server state.
    pub fn wait(self) -> io::Result<S> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("the event loop panicked"))?
    }
}

impl<S: Send + 'static> Serving<S> for ServerHandle<S> {
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
        ServerHandle::with_server(self, f)
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

/// Serve `server` on the addresses of `options` from one event loop on its own thread,
/// until it is done or shut down, logging events with [`log_event`]. Binds everything
/// before returning, so a port in use is an error here.
pub fn serve<S>(server: S, options: ServeOptions) -> io::Result<ServerHandle<S>>
where
    S: Server + Send + 'static,
{
    serve_with(server, options, Arc::new(log_event::<EventOf<S>>))
}

/// [`serve`], handing every connection's events to `on_event` (on the loop's thread).
pub fn serve_with<S>(
    server: S,
    options: ServeOptions,
    on_event: OnEvent<EventOf<S>>,
) -> io::Result<ServerHandle<S>>
where
    S: Server + Send + 'static,
{
    if options.listen.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "no address to listen on",
        ));
    }
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    // Bound here, so errors reach the caller; registered on the loop's thread, whose
    // slab holds the (maybe not `Send`) connections.
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for addr in &options.listen {
        let listener = StdTcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        listeners.push((local, TcpListener::from_std(listener)));
        if options.udp {
            let socket = StdUdpSocket::bind(local)?;
            socket.set_nonblocking(true)?;
            sockets.push((socket.local_addr()?, UdpSocket::from_std(socket)));
        }
    }
    let local_addrs: Vec<_> = listeners.iter().map(|(local, _)| *local).collect();
    let udp_addrs: Vec<_> = sockets.iter().map(|(local, _)| *local).collect();
    let counters = Arc::new(ServeCounters::default());
    let stopper = Stopper {
        stopping: Arc::new(AtomicBool::new(false)),
        waker,
    };
    let jobs: Jobs<S> = Arc::new(Mutex::new(Some(Vec::new())));
    let (loop_counters, loop_stopper, loop_jobs) =
        (counters.clone(), stopper.clone(), jobs.clone());
    let thread = thread::Builder::new()
        .name("cpppo-mio".into())
        .spawn(move || {
            let jobs = loop_jobs.clone();
            let ended = (move || {
                let mut entries = Slab::new();
                for (local, mut listener) in listeners {
                    let entry = entries.vacant_entry();
                    poll.registry().register(
                        &mut listener,
                        Token(entry.key()),
                        Interest::READABLE,
                    )?;
                    entry.insert(Entry::Listener { listener, local });
                }
                for (local, mut socket) in sockets {
                    let entry = entries.vacant_entry();
                    poll.registry().register(
                        &mut socket,
                        Token(entry.key()),
                        Interest::READABLE,
                    )?;
                    entry.insert(Entry::Udp { socket, local });
                }
                EventLoop {
                    server,
                    options,
                    poll,
                    entries,
                    deadlines: BTreeSet::new(),
                    counters: loop_counters,
                    stopper: loop_stopper,
                    on_event,
                    jobs: loop_jobs,
                    read_buffer: vec![0; READ_BUFFER],
                    datagram: vec![0; DATAGRAM_BUFFER],
                }
                .run()
            })();
            // However the loop ended, callers of `with_server` must not wait for it.
            lock(&jobs).take();
            ended
        })?;
    debug!(?local_addrs, ?udp_addrs, "serving");
    Ok(ServerHandle {
        jobs,
        counters,
        stopper,
        local_addrs,
        udp_addrs,
        thread,
    })
}
