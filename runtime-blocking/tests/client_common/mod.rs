//! The runtime client suite, written once and run on all three runtimes (runtime-smol and
//! runtime-mio include this file by path): each runtime implements [`ClientRuntime`]
//! (its `Connector` calls, its client drive loop, its `serve`) and calls
//! [`client_tests!`]. Assertions are on values and order, never on wall-clock time.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::{parse_operation, Operation};
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{reachable, Driven, ServeOptions, Serving};
use cpppo_core::enip::client::pipeline::{Harvested, Outcome, Pipelining, Summary};
use cpppo_core::enip::client::{
    ClientConn, ClientEvent, ClientOptions, ClientStats, LostReason, Value,
};
use cpppo_core::enip::proxy::{powerflex_750_series, ParamError, Parameter, Proxy, Reply};
use cpppo_core::enip::server::{Server, ServerOptions};
use cpppo_core::modbus::client::{ClientConfig, ModbusOp, Outcome as ModbusOutcome};
use cpppo_core::modbus::device::Device;
use cpppo_core::modbus::pdu::{Exception, ExceptionCode, Registers, Request, Response};
use cpppo_core::pipeline::Harvested as Done;

/// A simulated controller served by the runtime under test.
pub type Plc = Server<Controller>;

/// What each runtime provides to the suite: its client calls and loop, and its servers.
pub trait ClientRuntime {
    /// The runtime's `Connector`.
    type Conn;
    /// `Connector::connect`.
    fn connect(addr: SocketAddr, options: ClientOptions) -> Self::Conn;
    /// `Connector::operate`, every result collected, and the summary at the end.
    fn operate(
        conn: &mut Self::Conn,
        ops: Vec<Operation>,
        p: Pipelining,
    ) -> (Vec<Harvested>, Summary);
    /// `Connector::synchronous`, collected.
    fn synchronous(conn: &mut Self::Conn, ops: Vec<Operation>) -> Vec<Harvested>;
    /// `Connector::pipeline`, collected.
    fn pipeline(conn: &mut Self::Conn, ops: Vec<Operation>, depth: usize) -> Vec<Harvested>;
    /// `Connector::results`, collected.
    fn results(conn: &mut Self::Conn, ops: Vec<Operation>, p: Pipelining) -> Vec<Option<Value>>;
    /// `Connector::process`.
    fn process(
        conn: &mut Self::Conn,
        ops: Vec<Operation>,
        p: Pipelining,
    ) -> (usize, Vec<Option<Value>>);
    /// `Connector::close`.
    fn close(conn: Self::Conn);
    /// Whether the connector still has its socket.
    fn is_connected(conn: &Self::Conn) -> bool;
    /// The connector's client engine counters.
    fn stats(conn: &Self::Conn) -> ClientStats;
    /// The runtime's `Connector<ModbusConn>`.
    type Modbus;
    /// `Connector::connect_modbus`.
    fn connect_modbus(addr: SocketAddr, config: ClientConfig) -> Self::Modbus;
    /// `Connector::pipeline` on a Modbus connector, collected.
    fn modbus_pipeline(
        conn: &mut Self::Modbus,
        ops: Vec<ModbusOp>,
        depth: usize,
    ) -> Vec<Done<ModbusOp, ModbusOutcome>>;
    /// `Connector::process` on a Modbus connector.
    fn modbus_process(
        conn: &mut Self::Modbus,
        ops: Vec<ModbusOp>,
        p: Pipelining,
    ) -> (usize, Vec<Option<Response<'static>>>);
    /// Drive `engine` over a connection to `addr` with the runtime's `ClientDriver::run`
    /// until `done` says so (`done` also drains the engine's events).
    fn drive<E: Driven>(addr: SocketAddr, engine: &mut E, done: &mut dyn FnMut(&mut E) -> bool);
    /// Drive `engine` over a connection to `first` until `done1`, then put a connection
    /// to `second` in its place (as a reconnect does) and drive until `done2`.
    fn drive_twice<E: Driven>(
        first: SocketAddr,
        second: SocketAddr,
        engine: &mut E,
        done1: &mut dyn FnMut(&mut E) -> bool,
        done2: &mut dyn FnMut(&mut E) -> bool,
    );
    /// Serve a simulated controller.
    fn serve_enip(server: Plc, options: ServeOptions) -> Box<dyn Serving<Plc>>;
    /// Serve a simulated Modbus device.
    fn serve_modbus(device: Device, options: ServeOptions) -> Box<dyn Serving<Device>>;
    /// The runtime's getattr `proxy::Gateway`.
    type Gateway;
    /// `Gateway::new` to `addr`.
    fn gateway(addr: SocketAddr, options: ClientOptions) -> Self::Gateway;
    /// `Gateway::read`.
    fn gateway_read(g: &mut Self::Gateway, params: &[Parameter]) -> Vec<Result<Reply, ParamError>>;
    /// `Gateway::write`.
    fn gateway_write(
        g: &mut Self::Gateway,
        param: &Parameter,
        values: &str,
    ) -> Result<Reply, ParamError>;
    /// The gateway's proxy.
    fn gateway_proxy(g: &Self::Gateway) -> &Proxy;
}

/// A simulated controller with a few tags, on a free loopback port.
fn plc<R: ClientRuntime>() -> (Box<dyn Serving<Plc>>, SocketAddr) {
    let mut controller = Controller::new(ControllerConfig::default());
    for tag in ["SCADA=INT[100]", "BIG=DINT[1000]", "Speed=REAL"] {
        controller.tags_mut().add_str(tag).unwrap();
    }
    let running = R::serve_enip(
        Server::new(controller, ServerOptions::default()),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    );
    let addr = reachable(running.local_addrs()[0]);
    (running, addr)
}

fn ops(texts: &[&str]) -> Vec<Operation> {
    texts.iter().map(|t| parse_operation(t).unwrap()).collect()
}

fn ints(v: &[i16]) -> Option<Value> {
    Some(Value::Values(Values::Int(v.to_vec())))
}

/// Writes then reads, several types and a read and write large enough to be fragmented,
/// over every depth, packing and mode: every value read back is what was written, and
/// the results come in the order given.
pub fn operate_at_every_depth_packed_and_connected<R: ClientRuntime>() {
    let (running, addr) = plc::<R>();
    let big: Vec<String> = (0..400).map(|i| (i * 7).to_string()).collect();
    let big_write = format!("BIG[0-399]=(DINT){}", big.join(","));
    for connected in [false, true] {
        for multiple in [0, 300] {
            for depth in [1, 2, 20] {
                let what = format!("depth {depth} multiple {multiple} connected {connected}");
                let mut conn = R::connect(
                    addr,
                    ClientOptions {
                        connected,
                        ..ClientOptions::default()
                    },
                );
                let d = depth as i16;
                let texts = [
                    format!("SCADA[0-2]={d},{},{}", d + 1, d + 2),
                    format!("Speed=(REAL){d}.5"),
                    big_write.clone(),
                    "SCADA[0-2]".into(),
                    "Speed".into(),
                    "BIG[0-399]".into(),
                    "NOPE".into(),
                ];
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                let p = Pipelining {
                    depth,
                    multiple,
                    ..Pipelining::default()
                };
                let (results, summary) = R::operate(&mut conn, ops(&texts), p);
                let indices: Vec<u64> = results.iter().map(|r| r.index).collect();
                assert_eq!(indices, (0..7).collect::<Vec<u64>>(), "{what}");
                assert_eq!(results[0].value(), Some(&Value::Written), "{what}");
                assert_eq!(
                    results[3].value(),
                    ints(&[d, d + 1, d + 2]).as_ref(),
                    "{what}"
                );
                assert_eq!(
                    results[4].value(),
                    Some(&Value::Values(Values::Real(vec![depth as f32 + 0.5]))),
                    "{what}"
                );
                let expect: Vec<i32> = (0..400).map(|i| i * 7).collect();
                assert_eq!(
                    results[5].value(),
                    Some(&Value::Values(Values::Dint(expect))),
                    "{what}"
                );
                assert!(results[6].failed(), "{what}");
                assert_eq!((summary.operations, summary.failures), (7, 1), "{what}");
                // The 1600-byte write and read took several transactions each.
                assert!(summary.requests > 7, "{what}: {summary:?}");
                if multiple > 0 {
                    assert!(
                        summary.transactions < summary.requests,
                        "{what}: {summary:?}"
                    );
                }
                R::close(conn);
            }
        }
    }
    let _ = running.shutdown().unwrap();
}

/// cpppo's four calls on one connection, one after the other.
pub fn synchronous_pipeline_results_and_process<R: ClientRuntime>() {
    let (running, addr) = plc::<R>();
    let mut conn = R::connect(addr, ClientOptions::default());
    let done = R::synchronous(&mut conn, ops(&["SCADA[10-11]=1,2", "SCADA[10-11]"]));
    assert_eq!(done.len(), 2);
    assert_eq!(done[1].value(), ints(&[1, 2]).as_ref());
    assert_eq!(
        done[1].line(),
        "           SCADA[10][ 10-11 ]+  0 == [1, 2]: 'OK'"
    );
    let writes: Vec<String> = (0..30).map(|i| format!("SCADA[{i}]={}", i * 3)).collect();
    let reads: Vec<String> = (0..30).map(|i| format!("SCADA[{i}]")).collect();
    let all: Vec<&str> = writes.iter().chain(&reads).map(String::as_str).collect();
    let done = R::pipeline(&mut conn, ops(&all), 8);
    assert_eq!(done.len(), 60);
    for (i, r) in done[30..].iter().enumerate() {
        assert_eq!(r.index, 30 + i as u64);
        assert_eq!(r.value(), ints(&[i as i16 * 3]).as_ref(), "SCADA[{i}]");
    }
    let values = R::results(
        &mut conn,
        ops(&["SCADA[3]", "NOPE", "SCADA[4]"]),
        Pipelining::default().depth(3),
    );
    assert_eq!(values, vec![ints(&[9]), None, ints(&[12])]);
    let (failures, values) = R::process(
        &mut conn,
        ops(&["SCADA[5]", "SCADA[200]", "NOPE", "SCADA[6]"]),
        Pipelining {
            depth: 2,
            multiple: 200,
            ..Pipelining::default()
        },
    );
    assert_eq!(failures, 2);
    assert_eq!(values, vec![ints(&[15]), None, None, ints(&[18])]);
    // `pipeline` packs as the connector's options say, not as `process` last asked.
    let before = R::stats(&conn);
    let done = R::pipeline(&mut conn, ops(&["SCADA[5]", "SCADA[6]", "SCADA[7]"]), 3);
    assert!(done.iter().all(|d| !d.failed()));
    let after = R::stats(&conn);
    assert_eq!(
        (
            after.transactions - before.transactions,
            after.requests - before.requests
        ),
        (3, 3)
    );
    // Nothing at all is no failure.
    assert_eq!(
        R::process(&mut conn, Vec::new(), Pipelining::default()),
        (0, vec![])
    );
    R::close(conn);
    let _ = running.shutdown().unwrap();
}

/// The server goes away: the operations given afterwards are each harvested as lost,
/// in order, and the call ends.
pub fn a_lost_server_loses_what_is_left<R: ClientRuntime>() {
    let (running, addr) = plc::<R>();
    let mut conn = R::connect(addr, ClientOptions::default());
    let done = R::pipeline(&mut conn, ops(&["SCADA[1]=5", "SCADA[1]"]), 2);
    assert_eq!(done[1].value(), ints(&[5]).as_ref());
    let _ = running.shutdown().unwrap();
    let done = R::pipeline(&mut conn, ops(&["SCADA[0]", "SCADA[1]", "SCADA[2]"]), 2);
    let outcomes: Vec<(u64, Outcome)> = done.into_iter().map(|r| (r.index, r.outcome)).collect();
    assert_eq!(
        outcomes,
        (0..3)
            .map(|i| (i, Outcome::Lost(LostReason::Closed)))
            .collect::<Vec<_>>()
    );
    assert!(!R::is_connected(&conn));
    R::close(conn);
}

/// A listener that accepts and then never reads nor answers.
fn deaf() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        // Hold the connection (unread) until the client hangs up.
        let mut stream: TcpStream = stream;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    (addr, holder)
}

/// A client engine with far more to send than any socket buffer holds (a piece per
/// flush, up to [`Flood::LIMIT`]), and a deadline.
pub struct Flood {
    deadline: Instant,
    /// Whether the last transmit gave a piece (the next says "nothing more now").
    gave: bool,
    /// Bytes handed to the runtime.
    pub sent: usize,
    /// When the runtime told it its deadline had passed.
    pub timed_out: Option<Instant>,
}

impl Flood {
    /// Bytes given per flush.
    const PIECE: usize = 256 << 10;
    /// Bytes given in all: far more than loopback socket buffers hold.
    const LIMIT: usize = 32 << 20;
}

impl Driven for Flood {
    fn input(&mut self, _now: Instant, _data: &[u8]) {}
    fn transmit(&mut self, _now: Instant, out: &mut Vec<u8>) -> bool {
        if std::mem::take(&mut self.gave) || self.sent >= Self::LIMIT || self.timed_out.is_some() {
            return false;
        }
        out.resize(out.len() + Self::PIECE, 0x55);
        self.sent += Self::PIECE;
        self.gave = true;
        true
    }
    fn deadline(&self) -> Option<Instant> {
        self.timed_out.is_none().then_some(self.deadline)
    }
    fn timeout(&mut self, now: Instant) {
        if now >= self.deadline {
            self.timed_out = Some(now);
        }
    }
    fn eof(&mut self, _now: Instant) {}
}

/// A peer that stops reading cannot hold a write past the engine's deadline: the engine
/// hears its timeout (before the fix, the blocking and smol loops waited forever).
pub fn a_peer_that_stops_reading_does_not_hold_the_write<R: ClientRuntime>() {
    let (addr, holder) = deaf();
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut flood = Flood {
        deadline,
        gave: false,
        sent: 0,
        timed_out: None,
    };
    R::drive(addr, &mut flood, &mut |f| f.timed_out.is_some());
    assert!(flood.timed_out.unwrap() >= deadline);
    assert!(flood.sent > 0);
    holder.join().unwrap();
}

/// A client engine that first floods (until its deadline passes), then says `HELLO`.
pub struct FloodThenHello {
    flood: Flood,
    hello: bool,
}

impl Driven for FloodThenHello {
    fn input(&mut self, _now: Instant, _data: &[u8]) {}
    fn transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.flood.timed_out.is_none() {
            return self.flood.transmit(now, out);
        }
        if std::mem::take(&mut self.hello) {
            out.extend_from_slice(b"HELLO");
            return true;
        }
        false
    }
    fn deadline(&self) -> Option<Instant> {
        self.flood.deadline()
    }
    fn timeout(&mut self, now: Instant) {
        self.flood.timeout(now);
    }
    fn eof(&mut self, _now: Instant) {}
}

/// Output left by a write that timed out is not sent on the connection put in its
/// place: the new peer's first bytes are the engine's next frame, not the rest of one
/// cut short.
pub fn a_new_connection_gets_none_of_the_old_ones_output<R: ClientRuntime>() {
    let (deaf_addr, holder) = deaf();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut got = [0u8; 5];
        stream.read_exact(&mut got).unwrap();
        got
    });
    let mut engine = FloodThenHello {
        flood: Flood {
            deadline: Instant::now() + Duration::from_millis(300),
            gave: false,
            sent: 0,
            timed_out: None,
        },
        hello: true,
    };
    // First until the flood timed out (part of it still unwritten), then until HELLO has
    // been handed over.
    R::drive_twice(
        deaf_addr,
        second,
        &mut engine,
        &mut |e| e.flood.timed_out.is_some(),
        &mut |e| !e.hello,
    );
    assert_eq!(&reader.join().unwrap(), b"HELLO");
    holder.join().unwrap();
}

/// A timeout on a silent controller: each operation is lost as timed out, in order.
pub fn a_silent_controller_times_operations_out<R: ClientRuntime>() {
    let (addr, holder) = deaf();
    let mut conn = R::connect(
        addr,
        ClientOptions {
            timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        },
    );
    let done = R::pipeline(&mut conn, ops(&["SCADA[0]", "SCADA[1]"]), 2);
    let outcomes: Vec<Outcome> = done.into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Lost(LostReason::Timeout),
            Outcome::Lost(LostReason::Timeout)
        ]
    );
    drop(conn);
    holder.join().unwrap();
}

/// The EtherNet/IP client engine on the runtime's bare drive loop.
pub fn drives_an_enip_client_until_done<R: ClientRuntime>() {
    let (running, addr) = plc::<R>();
    let now = Instant::now();
    let mut client = ClientConn::new(
        now,
        ClientOptions {
            depth: 2,
            ..ClientOptions::default()
        },
    );
    client.submit(now, parse_operation("SCADA[1-3]=4,5,6").unwrap());
    let read = client.submit(now, parse_operation("SCADA[0-3]").unwrap());
    let mut replies = Vec::new();
    R::drive(addr, &mut client, &mut |client| {
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Reply { op, result } = event {
                replies.push((op, result));
            }
        }
        replies.len() == 2
    });
    assert_eq!(
        replies[1],
        (read, Ok(Value::Values(Values::Int(vec![0, 4, 5, 6]))))
    );
    let _ = running.shutdown().unwrap();
}

/// The Modbus client engine on the runtime's bare drive loop, against its Modbus device.
pub fn drives_a_modbus_client_until_done<R: ClientRuntime>() {
    use cpppo_core::modbus::client::{ClientConfig, ClientConn, ClientEvent};
    use cpppo_core::modbus::device::UnitData;
    use cpppo_core::modbus::pdu::{Registers, Request, Response};
    use cpppo_core::modbus::server::Transport;

    let data = UnitData::parse(["40001-40010=7"]).unwrap();
    let running = R::serve_modbus(
        Device::new(data),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    );
    let addr = reachable(running.local_addrs()[0]);
    let now = Instant::now();
    let mut client = ClientConn::new(
        Transport::Tcp,
        ClientConfig {
            depth: 2,
            ..ClientConfig::default()
        },
    );
    let values = Registers::from_values(&[1, 2, 3]);
    client.submit(
        now,
        Request::WriteMultipleRegisters { address: 2, values },
        1,
    );
    let read = client.submit(
        now,
        Request::ReadHoldingRegisters {
            address: 0,
            quantity: 6,
        },
        1,
    );
    let mut got = None;
    R::drive(addr, &mut client, &mut |client| {
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Reply { op, response, .. } = event {
                if op == read {
                    got = Some(response);
                }
            }
        }
        got.is_some()
    });
    let Some(Ok(Response::ReadHoldingRegisters(registers))) = got else {
        panic!("{got:?}");
    };
    assert_eq!(registers.iter().collect::<Vec<_>>(), [7, 7, 1, 2, 3, 7]);
    let _ = running.shutdown().unwrap();
}

/// The Modbus connector: requests pipelined, responses in order, an exception a failure.
pub fn a_modbus_connector_pipelines_requests<R: ClientRuntime>() {
    let data = cpppo_core::modbus::device::UnitData::parse(["40001-40010=7"]).unwrap();
    let running = R::serve_modbus(
        Device::new(data),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    );
    let addr = reachable(running.local_addrs()[0]);
    let mut conn = R::connect_modbus(addr, ClientConfig::default());
    let read = |address, quantity| (1, Request::ReadHoldingRegisters { address, quantity });
    let mut ops = vec![(
        1,
        Request::WriteMultipleRegisters {
            address: 2,
            values: Registers::from_values(&[1, 2, 3]),
        },
    )];
    ops.extend((0..8).map(|i| read(i, 2)));
    ops.push(read(500, 1));
    let done = R::modbus_pipeline(&mut conn, ops.clone(), 4);
    assert_eq!(done.len(), 10);
    let regs = [7, 7, 1, 2, 3, 7, 7, 7, 7];
    for (i, d) in done.iter().enumerate() {
        assert_eq!((d.index, &d.operation), (i as u64, &ops[i]));
    }
    for (i, d) in done[1..9].iter().enumerate() {
        let ModbusOutcome::Answered(Ok(Response::ReadHoldingRegisters(r))) = &d.outcome else {
            panic!("{d:?}");
        };
        assert_eq!(r.iter().collect::<Vec<_>>(), regs[i..i + 2], "read {i}");
    }
    assert_eq!(
        done[9].outcome,
        ModbusOutcome::Answered(Err(Exception {
            function: 3,
            code: ExceptionCode::ILLEGAL_DATA_ADDRESS
        }))
    );
    let (failures, values) = R::modbus_process(
        &mut conn,
        vec![read(4, 1), read(600, 1)],
        Pipelining::default().depth(2),
    );
    assert_eq!(failures, 1);
    assert!(
        matches!(&values[..], [Some(Response::ReadHoldingRegisters(r)), None] if r.iter().eq([3])),
        "{values:?}"
    );
    let _ = running.shutdown().unwrap();
}

/// The getattr gateway reads and writes a PowerFlex-style parameter; when the device
/// restarts, the call on the dead gateway fails as a link failure and closes it, and the
/// next one opens a new gateway to the new device.
pub fn the_getattr_gateway_reads_writes_and_reopens_after_a_restart<R: ClientRuntime>() {
    let serve_drive = |addr: &str| {
        let mut plc = Controller::new(ControllerConfig::default());
        plc.tags_mut()
            .add_str("Output_Current@0x93/7/10=REAL")
            .unwrap();
        R::serve_enip(
            Server::new(plc, ServerOptions::default()),
            ServeOptions::new(addr.parse().unwrap()),
        )
    };
    let handle = serve_drive("127.0.0.1:0");
    let addr = reachable(handle.local_addrs()[0]);
    let params = powerflex_750_series();
    let current = params.get("Output Current").unwrap();
    let name = params.get("Product Name").unwrap();
    let mut via = R::gateway(
        addr,
        ClientOptions {
            timeout: Duration::from_secs(2),
            ..ClientOptions::simple()
        },
    );
    assert_eq!(
        R::gateway_write(&mut via, current, "16.5"),
        Ok(Reply::Written)
    );
    let shown = |r: &Result<Reply, ParamError>| match r {
        Ok(Reply::Value(v)) => v.to_string(),
        other => format!("{other:?}"),
    };
    let r = R::gateway_read(&mut via, &[current.clone(), name.clone()]);
    assert_eq!(
        r.iter().map(shown).collect::<Vec<_>>(),
        ["[16.5]", "['1756-L61/B LOGIX5561']"]
    );
    assert!(R::gateway_proxy(&via).is_open());
    let _ = handle.shutdown().unwrap();
    let r = R::gateway_read(&mut via, std::slice::from_ref(current));
    assert!(matches!(r[0], Err(ref e) if e.is_link_failure()), "{r:?}");
    let _again = serve_drive(&addr.to_string());
    let r = R::gateway_read(&mut via, std::slice::from_ref(current));
    assert_eq!(r.iter().map(shown).collect::<Vec<_>>(), ["[0.0]"]);
    assert_eq!(R::gateway_proxy(&via).statistics().connects, 2);
}

/// `impl ClientRuntime for $rt` for a runtime whose `Connector` is synchronous (blocking,
/// mio): the connector calls written once; the runtime adds `drive` and its servers.
#[macro_export]
macro_rules! sync_client_runtime {
    ($rt:ty, $krate:ident, { $($rest:tt)* }) => {
        impl ClientRuntime for $rt {
            type Conn = $krate::client::Connector;
            fn connect(addr: SocketAddr, options: ClientOptions) -> $krate::client::Connector {
                $krate::client::Connector::connect(&[addr], options).unwrap()
            }
            fn operate(c: &mut $krate::client::Connector, ops: Vec<Operation>, p: Pipelining) -> (Vec<Harvested>, Summary) {
                let mut harvest = c.operate(ops, p);
                let done: Vec<Harvested> = harvest.by_ref().collect();
                (done, harvest.summary())
            }
            fn synchronous(c: &mut $krate::client::Connector, ops: Vec<Operation>) -> Vec<Harvested> {
                c.synchronous(ops).collect()
            }
            fn pipeline(c: &mut $krate::client::Connector, ops: Vec<Operation>, depth: usize) -> Vec<Harvested> {
                c.pipeline(ops, depth).collect()
            }
            fn results(c: &mut $krate::client::Connector, ops: Vec<Operation>, p: Pipelining) -> Vec<Option<Value>> {
                c.results(ops, p).collect()
            }
            fn process(
                c: &mut $krate::client::Connector,
                ops: Vec<Operation>,
                p: Pipelining,
            ) -> (usize, Vec<Option<Value>>) {
                c.process(ops, p)
            }
            fn close(c: $krate::client::Connector) {
                c.close();
            }
            fn is_connected(c: &$krate::client::Connector) -> bool {
                c.is_connected()
            }
            fn stats(c: &$krate::client::Connector) -> ClientStats {
                *c.client().stats()
            }
            type Modbus = $krate::client::Connector<ModbusConn>;
            fn connect_modbus(addr: SocketAddr, config: ClientConfig) -> Self::Modbus {
                $krate::client::Connector::connect_modbus(&[addr], config).unwrap()
            }
            fn modbus_pipeline(
                c: &mut Self::Modbus,
                ops: Vec<ModbusOp>,
                depth: usize,
            ) -> Vec<Done<ModbusOp, ModbusOutcome>> {
                c.pipeline(ops, depth).collect()
            }
            fn modbus_process(
                c: &mut Self::Modbus,
                ops: Vec<ModbusOp>,
                p: Pipelining,
            ) -> (usize, Vec<Option<Response<'static>>>) {
                c.process(ops, p)
            }
            fn gateway_read(
                g: &mut Self::Gateway,
                params: &[cpppo_core::enip::proxy::Parameter],
            ) -> Vec<Result<cpppo_core::enip::proxy::Reply, cpppo_core::enip::proxy::ParamError>> {
                g.read(params).unwrap()
            }
            fn gateway_write(
                g: &mut Self::Gateway,
                param: &cpppo_core::enip::proxy::Parameter,
                values: &str,
            ) -> Result<cpppo_core::enip::proxy::Reply, cpppo_core::enip::proxy::ParamError> {
                g.write(param, values).unwrap().unwrap()
            }
            fn gateway_proxy(g: &Self::Gateway) -> &cpppo_core::enip::proxy::Proxy {
                g.proxy()
            }
            $($rest)*
        }
    };
}

/// One `#[test]` per scenario for the runtime `$rt` (a [`ClientRuntime`]):
/// `client_tests!(Mio);`
#[macro_export]
macro_rules! client_tests {
    ($rt:ty) => {
        #[test]
        fn operate_at_every_depth_packed_and_connected() {
            client_common::operate_at_every_depth_packed_and_connected::<$rt>();
        }
        #[test]
        fn synchronous_pipeline_results_and_process() {
            client_common::synchronous_pipeline_results_and_process::<$rt>();
        }
        #[test]
        fn a_lost_server_loses_what_is_left() {
            client_common::a_lost_server_loses_what_is_left::<$rt>();
        }
        #[test]
        fn a_peer_that_stops_reading_does_not_hold_the_write() {
            client_common::a_peer_that_stops_reading_does_not_hold_the_write::<$rt>();
        }
        #[test]
        fn a_new_connection_gets_none_of_the_old_ones_output() {
            client_common::a_new_connection_gets_none_of_the_old_ones_output::<$rt>();
        }
        #[test]
        fn a_silent_controller_times_operations_out() {
            client_common::a_silent_controller_times_operations_out::<$rt>();
        }
        #[test]
        fn a_modbus_connector_pipelines_requests() {
            client_common::a_modbus_connector_pipelines_requests::<$rt>();
        }
        #[test]
        fn drives_an_enip_client_until_done() {
            client_common::drives_an_enip_client_until_done::<$rt>();
        }
        #[test]
        fn drives_a_modbus_client_until_done() {
            client_common::drives_a_modbus_client_until_done::<$rt>();
        }
        #[test]
        fn the_getattr_gateway_reads_writes_and_reopens_after_a_restart() {
            client_common::the_getattr_gateway_reads_writes_and_reopens_after_a_restart::<$rt>();
        }
    };
}
