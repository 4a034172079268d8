//! The runtime test suite, written once against the `cpppo_core::testing` echo double
//! and shared by the three runtimes' tests (runtime-smol and runtime-mio include this
//! file by path). Each runtime calls [`suite_tests!`] with its `serve`.
//! Assertions are on content and order, never on wall-clock time.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use cpppo_core::cip::device::{CipDevice, RequestContext};
use cpppo_core::cip::message_router::{MessageRouterReply, MessageRouterRequest};
use cpppo_core::cip::objects::{Identity, Revision};
use cpppo_core::engine::{reachable, OnEvent, ServeOptions, ServeStats, Serving};
use cpppo_core::enip::encapsulation::{Command, Encapsulation};
use cpppo_core::enip::server as enip;
use cpppo_core::modbus::device::{Delay, Device};
use cpppo_core::modbus::rtu::crc16;
use cpppo_core::modbus::server::Transport;
use cpppo_core::testing::{EchoEvent, EchoServer};

/// How long a client waits for anything before the test fails (never reached when the
/// runtime works).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A server running on the runtime under test.
pub type Running = Box<dyn Serving<EchoServer>>;

/// How the runtime under test starts a server.
pub type Start = fn(EchoServer, ServeOptions) -> std::io::Result<Running>;

/// How the runtime under test starts a simulated Modbus device.
pub type StartModbus = fn(Device, ServeOptions) -> std::io::Result<Box<dyn Serving<Device>>>;

/// How the runtime under test starts an EtherNet/IP server.
pub type StartEnip =
    fn(enip::Server<Plc>, ServeOptions) -> std::io::Result<Box<dyn Serving<enip::Server<Plc>>>>;

/// How the runtime under test starts a server with an event hook.
pub type StartWith = fn(EchoServer, ServeOptions, OnEvent<EchoEvent>) -> std::io::Result<Running>;

/// The first TCP address.
fn tcp(running: &Running) -> SocketAddr {
    running.local_addrs()[0]
}

/// Options listening on a free loopback port.
pub fn loopback() -> ServeOptions {
    ServeOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A connected client with a read timeout.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connect to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(reachable(addr)).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Send raw bytes.
    pub fn send(&mut self, data: &[u8]) {
        self.reader.get_mut().write_all(data).unwrap();
    }

    /// The next reply line (without `\n`).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "connection ended early: {line:?}");
        line.pop();
        line
    }

    /// Send `text` as one line and read its reply.
    pub fn ask(&mut self, text: &str) -> String {
        self.send(format!("{text}\n").as_bytes());
        self.line()
    }

    /// Whether the server closed the connection (end of file or reset) before
    /// [`PATIENCE`]; panics on a timeout or on unexpected data.
    pub fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => panic!("unexpected data {byte:?}"),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => true,
            Err(error) => panic!("no close: {error}"),
        }
    }
}

/// Poll `stats` until `check` holds (the counters change just after a socket closes).
#[allow(clippy::borrowed_box)] // whichever server the box holds
pub fn eventually<S>(
    running: &Box<dyn Serving<S>>,
    check: impl Fn(&ServeStats) -> bool,
) -> ServeStats {
    let start = Instant::now();
    loop {
        let stats = running.stats();
        if check(&stats) {
            return stats;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "stats never got there: {stats:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Many concurrent clients, each sending lines split at odd places, get their own
/// replies in order.
pub fn many_concurrent_clients(start: Start) {
    const CLIENTS: usize = 16;
    const LINES: usize = 20;
    let running = start(EchoServer::default(), loopback()).unwrap();
    let addr = tcp(&running);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let text: String = (0..LINES)
                    .map(|l| format!("client {c} line {l}\n"))
                    .collect();
                // Split into chunks of 1..7 bytes, so frames straddle reads.
                let bytes = text.as_bytes();
                let mut at = 0;
                let mut step = 1 + c % 7;
                while at < bytes.len() {
                    let end = (at + step).min(bytes.len());
                    client.send(&bytes[at..end]);
                    at = end;
                    step = step % 7 + 1;
                }
                for l in 0..LINES {
                    assert_eq!(client.line(), format!("CLIENT {c} LINE {l}"));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let stats = running.stats();
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.refused, 0);
    let server = running.shutdown().unwrap();
    assert_eq!(server.lines, CLIENTS * LINES);
    assert_eq!(server.accepted, CLIENTS);
}

/// Replies held by the engine's deadline arrive, in order, while another client is
/// served meanwhile.
pub fn delayed_replies_arrive_in_order(start: Start) {
    let running = start(EchoServer::new(Duration::from_millis(30)), loopback()).unwrap();
    let mut first = Client::connect(tcp(&running));
    let mut second = Client::connect(tcp(&running));
    first.send(b"one\ntwo\n");
    second.send(b"alpha\n");
    first.send(b"three\n");
    assert_eq!(second.line(), "ALPHA");
    assert_eq!(first.line(), "ONE");
    assert_eq!(first.line(), "TWO");
    assert_eq!(first.line(), "THREE");
    assert_eq!(second.ask("beta"), "BETA");
    assert_eq!(running.shutdown().unwrap().lines, 5);
}

/// Beyond the connection limit a client is accepted and closed at once and counted;
/// the others carry on; a freed slot is usable again.
pub fn connection_limit_refuses_extra_client(start: Start) {
    let mut options = loopback();
    options.max_connections = Some(2);
    let running = start(EchoServer::default(), options).unwrap();
    let mut first = Client::connect(tcp(&running));
    let mut second = Client::connect(tcp(&running));
    assert_eq!(first.ask("a"), "A");
    assert_eq!(second.ask("b"), "B");
    let mut third = Client::connect(tcp(&running));
    assert!(third.closed_by_server());
    assert_eq!(eventually(&running, |s| s.refused == 1).accepted, 2);
    assert_eq!(first.ask("c"), "C");
    drop(second);
    eventually(&running, |s| s.active == 1);
    let mut fourth = Client::connect(tcp(&running));
    assert_eq!(fourth.ask("d"), "D");
    let server = running.shutdown().unwrap();
    assert_eq!(server.accepted, 3);
}

/// A server whose `accept` refuses: the client is closed and counted as refused.
pub fn server_refusal_closes(start: Start) {
    let server = EchoServer {
        refuse: true,
        ..EchoServer::default()
    };
    let running = start(server, loopback()).unwrap();
    let mut client = Client::connect(tcp(&running));
    assert!(client.closed_by_server());
    let stats = eventually(&running, |s| s.refused == 1);
    assert_eq!(stats.accepted, 0);
    assert_eq!(running.shutdown().unwrap().accepted, 0);
}

/// A client pipelining into a reply delay past the engine's backlog limit: reading
/// pauses while the engine is backlogged and resumes as replies leave; every reply
/// comes, in order.
pub fn backlogged_engine_pauses_reading(start: Start) {
    const LINES: usize = 24;
    let server = EchoServer {
        delay: Duration::from_millis(60),
        max_pending: 2,
        ..EchoServer::default()
    };
    let running = start(server, loopback()).unwrap();
    let mut client = Client::connect(tcp(&running));
    // Two lines backlog the engine (their replies are held); the rest arrive while it
    // is, in one segment and with no later input to announce them, so only resuming
    // reads when the held replies leave gets them answered.
    client.send(b"burst 0\nburst 1\n");
    thread::sleep(Duration::from_millis(20));
    let rest: String = (2..LINES).map(|i| format!("burst {i}\n")).collect();
    client.send(rest.as_bytes());
    for i in 0..LINES {
        assert_eq!(client.line(), format!("BURST {i}"));
    }
    assert_eq!(client.ask("after"), "AFTER");
    assert_eq!(running.shutdown().unwrap().lines, LINES + 1);
}

/// A client that sends nothing for the idle timeout is closed; an active one is not.
pub fn idle_timeout_closes_idle_client(start: Start) {
    let mut options = loopback();
    options.idle_timeout = Some(Duration::from_millis(150));
    let running = start(EchoServer::default(), options).unwrap();
    let mut idle = Client::connect(tcp(&running));
    assert_eq!(idle.ask("once"), "ONCE");
    let mut busy = Client::connect(tcp(&running));
    let start = Instant::now();
    // Keep one client talking (well inside the timeout) until the idle one is closed.
    while running.stats().idle_closed == 0 {
        assert!(start.elapsed() < PATIENCE, "idle client never closed");
        assert_eq!(busy.ask("ping"), "PING");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(idle.closed_by_server());
    assert_eq!(busy.ask("still"), "STILL");
    let stats = running.stats();
    assert_eq!(stats.idle_closed, 1);
    assert_eq!(stats.active, 1);
    running.shutdown().unwrap();
}

/// A client that leaves in the middle of a line costs the others nothing.
pub fn disconnect_mid_line_harms_no_one(start: Start) {
    let running = start(EchoServer::default(), loopback()).unwrap();
    let mut steady = Client::connect(tcp(&running));
    assert_eq!(steady.ask("before"), "BEFORE");
    for _ in 0..5 {
        let mut leaver = Client::connect(tcp(&running));
        leaver.send(b"half a li");
        drop(leaver);
    }
    // One more that leaves with a reply still pending.
    let mut leaver = Client::connect(tcp(&running));
    leaver.send(b"pending\nand half");
    drop(leaver);
    assert_eq!(steady.ask("after"), "AFTER");
    eventually(&running, |s| s.active == 1 && s.accepted == 7);
    let server = running.shutdown().unwrap();
    assert_eq!(server.lines, 3);
    assert_eq!(server.ended, 7);
}

/// Every listen address serves; a port in use or no address at all is an error from
/// the start, not a panic in a thread.
pub fn listeners_and_bind_errors(start: Start) {
    let mut options = loopback();
    options.listen.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    options.udp = true;
    let running = start(EchoServer::default(), options).unwrap();
    let addrs = running.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0].port(), addrs[1].port());
    assert_eq!(running.udp_addrs().len(), 2);
    for (i, addr) in addrs.iter().enumerate() {
        assert_eq!(
            Client::connect(*addr).ask(&format!("port {i}")),
            format!("PORT {i}")
        );
    }
    let taken = start(EchoServer::default(), ServeOptions::new(addrs[1]));
    assert_eq!(taken.err().map(|e| e.kind()), Some(ErrorKind::AddrInUse));
    let nothing = start(EchoServer::default(), ServeOptions::default());
    assert_eq!(
        nothing.err().map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
    assert_eq!(running.shutdown().unwrap().lines, 2);
}

/// Listening on all interfaces, a connection's local address is the one the peer
/// reached.
pub fn accept_sees_the_reached_address(start: Start) {
    let options = ServeOptions::new(SocketAddr::from(([0, 0, 0, 0], 0)));
    let running = start(EchoServer::default(), options).unwrap();
    let port = tcp(&running).port();
    assert_eq!(Client::connect(tcp(&running)).ask("x"), "X");
    let server = running.shutdown().unwrap();
    assert_eq!(server.locals, [SocketAddr::from(([127, 0, 0, 1], port))]);
}

/// Shutdown closes every connection and returns the server state.
pub fn graceful_shutdown_ends_all(start: Start) {
    let running = start(EchoServer::default(), loopback()).unwrap();
    let addr = tcp(&running);
    let mut clients: Vec<_> = (0..4).map(|_| Client::connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.ask(&format!("c{i}")), format!("C{i}"));
    }
    let server = running.shutdown().unwrap();
    assert_eq!(server.accepted, 4);
    assert_eq!(server.ended, 4);
    for client in &mut clients {
        assert!(client.closed_by_server());
    }
    // The listener is gone too.
    assert!(TcpStream::connect(reachable(addr)).is_err());
}

/// Shutdown ends even with a peer that sends without ever reading, once the server's
/// replies to it have filled the socket buffers.
pub fn shutdown_with_stuck_reader(start: Start) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    const LIMIT: usize = 64 << 20;
    let running = start(EchoServer::default(), loopback()).unwrap();
    let mut steady = Client::connect(tcp(&running));
    let stream = TcpStream::connect(reachable(tcp(&running))).unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = written.clone();
        let mut stream = stream.try_clone().unwrap();
        thread::spawn(move || {
            let line = [b"x".repeat(1023), b"\n".to_vec()].concat();
            while written.load(Ordering::Relaxed) < LIMIT {
                if stream.write_all(&line).is_err() {
                    return;
                }
                written.fetch_add(line.len(), Ordering::Relaxed);
            }
        })
    };
    // Wait until the flood stalls: the server no longer reads because it cannot write.
    let start = Instant::now();
    let mut last = 0;
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = written.load(Ordering::Relaxed);
        if now == last || now >= LIMIT {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the flood never stalled");
        last = now;
    }
    assert_eq!(steady.ask("unaffected"), "UNAFFECTED");
    let (done, finished) = mpsc::channel();
    thread::spawn(move || done.send(running.shutdown().unwrap()).unwrap());
    let server = finished.recv_timeout(PATIENCE).expect("shutdown hung");
    assert_eq!(server.accepted, 2);
    assert!(steady.closed_by_server());
    drop(stream);
    writer.join().unwrap();
}

/// `serve_with` hands every connection's events, with the peer, to the hook.
pub fn events_reach_the_hook(start_with: StartWith) {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let seen = seen.clone();
        Arc::new(move |peer: SocketAddr, event: EchoEvent| seen.lock().unwrap().push((peer, event)))
    };
    let running = start_with(EchoServer::default(), loopback(), hook).unwrap();
    let mut client = Client::connect(tcp(&running));
    let me = client.reader.get_ref().local_addr().unwrap();
    assert_eq!(client.ask("one"), "ONE");
    client.send(b"two\nthr");
    assert_eq!(client.line(), "TWO");
    drop(client);
    eventually(&running, |s| s.active == 0);
    running.shutdown().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        [
            (me, EchoEvent::Line(b"one".to_vec())),
            (me, EchoEvent::Line(b"two".to_vec())),
            (me, EchoEvent::Eof { partial: 3 }),
        ]
    );
}

/// `with_server` reads and changes the state while serving; making it done stops it.
pub fn with_server_while_serving(start: Start) {
    use std::sync::mpsc;
    let running = start(EchoServer::default(), loopback()).unwrap();
    let mut client = Client::connect(tcp(&running));
    assert_eq!(client.ask("one"), "ONE");
    let (tx, rx) = mpsc::channel();
    running
        .with_server(Box::new(move |s| tx.send((s.lines, s.accepted)).unwrap()))
        .unwrap();
    assert_eq!(rx.recv().unwrap(), (1, 1));
    running.with_server(Box::new(|s| s.refuse = true)).unwrap();
    assert!(Client::connect(tcp(&running)).closed_by_server());
    assert_eq!(client.ask("still served"), "STILL SERVED");
    running.with_server(Box::new(|s| s.done = true)).unwrap();
    let server = running.wait().unwrap();
    assert!(client.closed_by_server());
    assert_eq!((server.lines, server.accepted), (2, 1));
}

/// A request that makes the server done ends the runtime by itself, after the reply.
pub fn server_done_ends_runtime(start: Start) {
    let running = start(EchoServer::default(), loopback()).unwrap();
    let mut other = Client::connect(tcp(&running));
    assert_eq!(other.ask("hello"), "HELLO");
    let mut client = Client::connect(tcp(&running));
    assert_eq!(client.ask("SHUTDOWN"), "OK");
    let server = running.wait().unwrap();
    assert!(server.done);
    assert!(client.closed_by_server());
    assert!(other.closed_by_server());
}

/// A UDP datagram on the listen port gets its reply.
pub fn udp_datagram_replies(start: Start) {
    let mut options = loopback();
    options.udp = true;
    let running = start(EchoServer::default(), options).unwrap();
    let udp = running.udp_addrs()[0];
    assert_eq!(udp.port(), tcp(&running).port());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 64];
    for word in ["list identity", "again"] {
        socket.send_to(word.as_bytes(), reachable(udp)).unwrap();
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], word.to_uppercase().as_bytes());
        assert_eq!(from, reachable(udp));
    }
    assert_eq!(running.stats().datagrams, 2);
    // TCP still works beside it.
    assert_eq!(Client::connect(tcp(&running)).ask("tcp"), "TCP");
    running.shutdown().unwrap();
}

/// Read exactly `n` bytes.
fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// The real Modbus engine behind the runtime: concurrent Modbus/TCP clients write and
/// read back one shared device, pipelined requests into a reply delay are answered in
/// order, and RTU over TCP frames with their CRC.
pub fn modbus_device_end_to_end(start: StartModbus) {
    let device = Device::from_specs(["40001-40010=99"]).unwrap();
    let running = start(device, loopback()).unwrap();
    let addr = reachable(running.local_addrs()[0]);
    let writers: Vec<_> = (0..4u16)
        .map(|c| {
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                // Write Single Register 40002+c := 0x1200+c (transaction c, unit 1).
                let [r_hi, r_lo] = (1 + c).to_be_bytes();
                let [v_hi, v_lo] = (0x1200 + c).to_be_bytes();
                let request = [0, c as u8, 0, 0, 0, 6, 1, 6, r_hi, r_lo, v_hi, v_lo];
                stream.write_all(&request).unwrap();
                assert_eq!(read_n(&mut stream, 12), request);
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    // Read Holding Registers 40001..40006 back, twice pipelined in one segment.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let read = |tid: u8| [0, tid, 0, 0, 0, 6, 1, 3, 0, 0, 0, 6];
    stream.write_all(&[read(7), read(8)].concat()).unwrap();
    let values = [0, 99, 0x12, 0x00, 0x12, 0x01, 0x12, 0x02, 0x12, 0x03, 0, 99];
    for tid in [7, 8] {
        let mut reply = vec![0, tid, 0, 0, 0, 15, 1, 3, 12];
        reply.extend_from_slice(&values);
        assert_eq!(read_n(&mut stream, reply.len()), reply);
    }
    let device = running.shutdown().unwrap();

    // The same device (state kept) with a reply delay, as RTU over TCP.
    let mut device = device;
    device.transport = Transport::RtuOverTcp;
    device.faults.delay = Some(Delay::Fixed(Duration::from_millis(20)));
    let running = start(device, loopback()).unwrap();
    let mut stream = TcpStream::connect(reachable(running.local_addrs()[0])).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let rtu = |pdu: &[u8]| {
        let mut frame = pdu.to_vec();
        frame.extend_from_slice(&crc16(pdu).to_le_bytes());
        frame
    };
    let write = rtu(&[1, 6, 0, 9, 0xab, 0xcd]);
    let read = rtu(&[1, 3, 0, 8, 0, 2]);
    stream.write_all(&[write.clone(), read].concat()).unwrap();
    assert_eq!(read_n(&mut stream, write.len()), write);
    let reply = rtu(&[1, 3, 4, 0, 99, 0xab, 0xcd]);
    assert_eq!(read_n(&mut stream, reply.len()), reply);
    assert_eq!(running.stats().accepted, 1);
    running.shutdown().unwrap();
}

/// The smallest CIP device: an identity, and an empty success for every request.
#[derive(Debug, Default)]
pub struct Plc;

/// The product name [`Plc`] announces.
pub const PLC_NAME: &str = "cpppo-rs runtime test";

impl CipDevice for Plc {
    fn identity(&self) -> Identity<'_> {
        Identity {
            vendor_id: 1,
            device_type: 0x0E,
            product_code: 0x36,
            revision: Revision {
                major: 20,
                minor: 11,
            },
            status: 0,
            serial_number: 0x1234_5678,
            product_name: PLC_NAME.into(),
            state: None,
        }
    }

    fn execute(
        &mut self,
        _ctx: &RequestContext,
        req: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static> {
        MessageRouterReply::success(req.service, Vec::new())
    }
}

/// The real EtherNet/IP engine behind the runtime: sessions registered over TCP by
/// concurrent clients, ListIdentity answered over UDP with the device's name
/// and the address the client reached.
pub fn enip_server_end_to_end(start: StartEnip) {
    let server = enip::Server::new(Plc, enip::ServerOptions::default());
    let mut options = loopback();
    options.udp = true;
    let running = start(server, options).unwrap();
    let addr = reachable(running.local_addrs()[0]);
    let decode = |bytes: &[u8]| {
        let (frame, used) = Encapsulation::decode(bytes).unwrap();
        assert_eq!(used, bytes.len());
        (
            frame.header.command,
            frame.header.status,
            frame.header.session_handle,
        )
    };
    let sessions: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                // RegisterSession, protocol version 1: 24-byte header, 4 bytes of data.
                let mut request = vec![0x65, 0, 4, 0];
                request.extend_from_slice(&[0; 20]);
                request.extend_from_slice(&[1, 0, 0, 0]);
                stream.write_all(&request).unwrap();
                let (command, status, session) = decode(&read_n(&mut stream, 28));
                assert_eq!((command, status), (Command::RegisterSession, 0));
                assert_ne!(session, 0);
                session
            })
        })
        .collect();
    let mut handles: Vec<u32> = sessions.into_iter().map(|t| t.join().unwrap()).collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(handles.len(), 4, "every session has its own handle");

    // ListIdentity over UDP: the reply names the device and the address reached.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut list_identity = vec![0x63, 0];
    list_identity.extend_from_slice(&[0; 22]);
    socket
        .send_to(&list_identity, reachable(running.udp_addrs()[0]))
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(decode(&buf[..n]).0, Command::ListIdentity);
    let reply = &buf[..n];
    assert!(reply
        .windows(PLC_NAME.len())
        .any(|w| w == PLC_NAME.as_bytes()));
    // The socket address item: family 2 (big-endian), the port, then 127.0.0.1.
    let mut sockaddr = vec![0, 2];
    sockaddr.extend_from_slice(&addr.port().to_be_bytes());
    sockaddr.extend_from_slice(&[127, 0, 0, 1]);
    assert!(reply.windows(8).any(|w| w == sockaddr), "{reply:02x?}");
    assert_eq!(running.stats().datagrams, 1);
    running.shutdown().unwrap();
}

/// A ListIdentity request over TCP (24 bytes) with `context`.
fn list_identity_request(context: u8) -> Vec<u8> {
    let mut request = vec![0x63, 0];
    request.extend_from_slice(&[0; 22]);
    request[12] = context;
    request
}

/// One whole encapsulation frame from `stream`: (command, status, sender context byte 0).
fn read_frame(stream: &mut TcpStream) -> (Command, u32, u8) {
    let header = read_n(stream, 24);
    let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
    let mut frame = header;
    frame.extend(read_n(stream, len));
    let (f, _) = Encapsulation::decode(&frame).unwrap();
    (
        f.header.command,
        f.header.status,
        f.header.sender_context[0],
    )
}

/// Whether the server closed `stream` (end of file or reset) before [`PATIENCE`].
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(error) if error.kind() == ErrorKind::ConnectionReset => true,
        other => panic!("no close: {other:?}"),
    }
}

/// A client that floods requests and never reads its replies fills its sockets, is
/// closed by the send timeout and counted; meanwhile another client gets every reply.
pub fn enip_flooder_that_never_reads_harms_no_one(start: StartEnip) {
    let server = enip::Server::new(Plc, enip::ServerOptions::default());
    let mut options = loopback();
    options.send_timeout = Some(Duration::from_millis(500));
    let running = start(server, options).unwrap();
    let addr = reachable(running.local_addrs()[0]);
    let flooder = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nonblocking(true).unwrap();
        let burst = list_identity_request(0xF1).repeat(1024);
        let (mut sent, mut stuck_since) = (0usize, None::<Instant>);
        // Write until the server stops taking requests for a while, then stay silent
        // (reading nothing) until the server gives up on us.
        while stuck_since.map_or(true, |at| at.elapsed() < Duration::from_millis(300)) {
            match stream.write(&burst) {
                Ok(n) => {
                    sent += n;
                    stuck_since = None;
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    stuck_since.get_or_insert_with(Instant::now);
                    thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
            assert!(sent < 1 << 30, "the server never pushed back");
        }
        // Kept open (and unread) until the server has given up on it.
        (sent, stream)
    });
    let mut steady = TcpStream::connect(addr).unwrap();
    steady.set_read_timeout(Some(PATIENCE)).unwrap();
    for i in 0..100u8 {
        steady.write_all(&list_identity_request(i)).unwrap();
        assert_eq!(read_frame(&mut steady), (Command::ListIdentity, 0, i));
    }
    let (sent, flooder) = flooder.join().unwrap();
    assert!(sent > 0);
    eventually(&running, |s| s.send_timeouts == 1 && s.active == 1);
    drop(flooder);
    steady.write_all(&list_identity_request(200)).unwrap();
    assert_eq!(read_frame(&mut steady), (Command::ListIdentity, 0, 200));
    running.shutdown().unwrap();
}

/// A header announcing a huge frame is answered with status 0x0065 and closed; a frame
/// begun and never finished is closed after the frame timeout; garbage ends one way or
/// the other; all are counted, and a well-behaved client is served throughout.
pub fn enip_huge_and_unfinished_frames_are_closed(start: StartEnip) {
    let mut server_options = enip::ServerOptions::default();
    server_options.limits.frame_timeout = Some(Duration::from_millis(200));
    let server = enip::Server::new(Plc, server_options);
    let running = start(server, loopback()).unwrap();
    let addr = reachable(running.local_addrs()[0]);
    let connect = || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    };
    let mut steady = connect();
    steady.write_all(&list_identity_request(1)).unwrap();
    assert_eq!(read_frame(&mut steady), (Command::ListIdentity, 0, 1));

    let mut huge = connect();
    let mut header = list_identity_request(7);
    header[0] = 0x6F; // SendRRData
    header[2..4].copy_from_slice(&60_000u16.to_le_bytes());
    huge.write_all(&header).unwrap();
    assert_eq!(read_frame(&mut huge), (Command::SendRRData, 0x65, 7));
    assert!(closed(&mut huge));

    let mut unfinished = connect();
    unfinished
        .write_all(&list_identity_request(9)[..10])
        .unwrap();
    assert!(closed(&mut unfinished));

    // Garbage (a fixed pseudo-random stream): whatever frames it seems to hold are
    // answered or refused, and the connection ends (a length beyond the limit, or the
    // last frame left unfinished) with at most a few replies read.
    let mut garbage = connect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    // The server may close before taking it all.
    let _ = garbage.write_all(&bytes);
    let mut sink = Vec::new();
    match garbage.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset),
    }
    assert!(sink.len() < bytes.len(), "{} bytes of replies", sink.len());

    steady.write_all(&list_identity_request(2)).unwrap();
    assert_eq!(read_frame(&mut steady), (Command::ListIdentity, 0, 2));
    eventually(&running, |s| s.active == 1);
    let server = running.shutdown().unwrap();
    let limits = server.limits_reached();
    assert_eq!(limits.frame_length + limits.frame_timeout, 3, "{limits:?}");
    assert!(limits.frame_length >= 1 && limits.frame_timeout >= 1);
}

/// Requests pipelined past the request rate wait (the runtime stops reading, then
/// resumes at the engine's deadline) and are all answered, in order; the limit is
/// counted.
pub fn enip_request_rate_paces_without_losing_requests(start: StartEnip) {
    let mut server_options = enip::ServerOptions::default();
    server_options.limits.max_request_rate = Some(50);
    let server = enip::Server::new(Plc, server_options);
    let running = start(server, loopback()).unwrap();
    let mut stream = TcpStream::connect(reachable(running.local_addrs()[0])).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let burst: Vec<u8> = (0..120u8).flat_map(list_identity_request).collect();
    stream.write_all(&burst).unwrap();
    for i in 0..120u8 {
        assert_eq!(read_frame(&mut stream), (Command::ListIdentity, 0, i));
    }
    let server = running.shutdown().unwrap();
    // Once per wait (the burst may arrive in more than one read).
    assert!(server.limits_reached().request_rate >= 1);
}

/// One `#[test]` per scenario, starting servers with `$krate::serve` and
/// `$krate::serve_with`: `suite_tests!(cpppo_mio);`
#[macro_export]
macro_rules! suite_tests {
    ($krate:ident) => {
        fn start(
            server: cpppo_core::testing::EchoServer,
            options: cpppo_core::engine::ServeOptions,
        ) -> std::io::Result<common::Running> {
            Ok(Box::new($krate::serve(server, options)?))
        }
        fn start_with(
            server: cpppo_core::testing::EchoServer,
            options: cpppo_core::engine::ServeOptions,
            hook: cpppo_core::engine::OnEvent<cpppo_core::testing::EchoEvent>,
        ) -> std::io::Result<common::Running> {
            Ok(Box::new($krate::serve_with(server, options, hook)?))
        }
        fn start_modbus(
            device: cpppo_core::modbus::device::Device,
            options: cpppo_core::engine::ServeOptions,
        ) -> std::io::Result<Box<dyn cpppo_core::engine::Serving<cpppo_core::modbus::device::Device>>>
        {
            Ok(Box::new($krate::serve(device, options)?))
        }
        fn start_enip(
            server: cpppo_core::enip::server::Server<common::Plc>,
            options: cpppo_core::engine::ServeOptions,
        ) -> std::io::Result<
            Box<dyn cpppo_core::engine::Serving<cpppo_core::enip::server::Server<common::Plc>>>,
        > {
            Ok(Box::new($krate::serve(server, options)?))
        }
        #[test]
        fn enip_flooder_that_never_reads_harms_no_one() {
            common::enip_flooder_that_never_reads_harms_no_one(start_enip);
        }
        #[test]
        fn enip_huge_and_unfinished_frames_are_closed() {
            common::enip_huge_and_unfinished_frames_are_closed(start_enip);
        }
        #[test]
        fn enip_request_rate_paces_without_losing_requests() {
            common::enip_request_rate_paces_without_losing_requests(start_enip);
        }
        #[test]
        fn enip_server_end_to_end() {
            common::enip_server_end_to_end(start_enip);
        }
        #[test]
        fn modbus_device_end_to_end() {
            common::modbus_device_end_to_end(start_modbus);
        }
        #[test]
        fn many_concurrent_clients() {
            common::many_concurrent_clients(start);
        }
        #[test]
        fn delayed_replies_arrive_in_order() {
            common::delayed_replies_arrive_in_order(start);
        }
        #[test]
        fn connection_limit_refuses_extra_client() {
            common::connection_limit_refuses_extra_client(start);
        }
        #[test]
        fn server_refusal_closes() {
            common::server_refusal_closes(start);
        }
        #[test]
        fn idle_timeout_closes_idle_client() {
            common::idle_timeout_closes_idle_client(start);
        }
        #[test]
        fn disconnect_mid_line_harms_no_one() {
            common::disconnect_mid_line_harms_no_one(start);
        }
        #[test]
        fn listeners_and_bind_errors() {
            common::listeners_and_bind_errors(start);
        }
        #[test]
        fn accept_sees_the_reached_address() {
            common::accept_sees_the_reached_address(start);
        }
        #[test]
        fn backlogged_engine_pauses_reading() {
            common::backlogged_engine_pauses_reading(start);
        }
        #[test]
        fn graceful_shutdown_ends_all() {
            common::graceful_shutdown_ends_all(start);
        }
        #[test]
        fn shutdown_with_stuck_reader() {
            common::shutdown_with_stuck_reader(start);
        }
        #[test]
        fn events_reach_the_hook() {
            common::events_reach_the_hook(start_with);
        }
        #[test]
        fn with_server_while_serving() {
            common::with_server_while_serving(start);
        }
        #[test]
        fn server_done_ends_runtime() {
            common::server_done_ends_runtime(start);
        }
        #[test]
        fn udp_datagram_replies() {
            common::udp_datagram_replies(start);
        }
    };
}
