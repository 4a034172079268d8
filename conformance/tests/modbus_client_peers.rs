//! Our Modbus client engine and poller against real third-party servers: pymodbus'
//! `ModbusTcpServer` (Modbus/TCP and its RTU framer over TCP) and pyModbusTCP's
//! `ModbusServer`, driven by the blocking client loop (`cpppo_blocking::client`), and the
//! Modbus `Connector` of every runtime. Each asserts the values read back after the
//! writes.

// Helpers outside `#[test]` functions unwrap too: a failed set-up is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cpppo_blocking::client::ClientDriver;
use cpppo_conformance::{python, Runtime};
use cpppo_core::modbus::client::{ClientConfig, ClientConn, ClientEvent, Outcome};
use cpppo_core::modbus::pdu::{Bits, Exception, ExceptionCode, Registers, Request, Response};
use cpppo_core::modbus::poller::{PollEvent, Poller, PollerConfig};
use cpppo_core::modbus::server::Transport;
use cpppo_core::pipeline::Pipelining;

const PATIENCE: Duration = Duration::from_secs(15);

/// The pymodbus server process, killed when dropped.
struct PeerServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_pymodbus(python: &Path, framing: &str) -> PeerServer {
    start_peer(python, "modbus_pymodbus_server.py", &[framing])
}

/// Start `script` from `peers/` on a free port, with `args` after the port.
fn start_peer(python: &Path, script: &str, args: &[&str]) -> PeerServer {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script);
    let mut child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the peer server did not start");
    PeerServer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nodelay(true).unwrap();
                return s;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Drive `client` over `stream` (with the blocking client loop) until `n` ops have
/// finished; their events in order.
fn finish(stream: &mut TcpStream, client: &mut ClientConn, n: usize) -> Vec<ClientEvent> {
    let deadline = Instant::now() + PATIENCE;
    let mut events = Vec::new();
    let mut finished = 0;
    ClientDriver::new(Some(stream.try_clone().unwrap()))
        .run(client, Duration::from_millis(100), |client, _| {
            assert!(Instant::now() < deadline, "stuck: {events:?}");
            while let Some(e) = client.poll_event() {
                if matches!(
                    e,
                    ClientEvent::Reply { .. }
                        | ClientEvent::Timeout { .. }
                        | ClientEvent::Invalid { .. }
                        | ClientEvent::Aborted { .. }
                        | ClientEvent::Broadcast { .. }
                ) {
                    finished += 1;
                }
                events.push(e);
            }
            (false, finished >= n)
        })
        .unwrap();
    events
}

fn responses(events: Vec<ClientEvent>) -> Vec<Result<Response<'static>, Exception>> {
    let all = events.clone();
    events
        .into_iter()
        .map(|e| match e {
            ClientEvent::Reply { response, .. } => response,
            other => panic!("{other:?} in {all:?}"),
        })
        .collect()
}

fn client_against_pymodbus(transport: Transport, framing: &str, depth: usize) {
    let Some(python) = python() else { return };
    let server = start_pymodbus(&python, framing);
    let mut stream = connect(server.addr);
    let mut client = ClientConn::new(
        transport,
        ClientConfig {
            depth,
            ..ClientConfig::default()
        },
    );
    let now = Instant::now();
    let requests = [
        Request::ReadCoils {
            address: 0,
            quantity: 5,
        },
        Request::ReadDiscreteInputs {
            address: 0,
            quantity: 3,
        },
        Request::ReadInputRegisters {
            address: 8,
            quantity: 2,
        },
        Request::WriteSingleRegister {
            address: 8,
            value: 999,
        },
        Request::WriteMultipleRegisters {
            address: 30,
            values: Registers::from_values(&[5, 6, 7]),
        },
        Request::WriteSingleCoil {
            address: 1,
            value: true,
        },
        Request::WriteMultipleCoils {
            address: 10,
            values: Bits::from_bools(&[true, true, false]),
        },
        Request::MaskWriteRegister {
            address: 0,
            and_mask: 0x00F2,
            or_mask: 0x0025,
        },
        Request::ReadWriteMultipleRegisters {
            read_address: 7,
            read_quantity: 3,
            write_address: 9,
            values: Registers::from_values(&[1000]),
        },
        Request::ReadHoldingRegisters {
            address: 28,
            quantity: 5,
        },
        Request::ReadCoils {
            address: 0,
            quantity: 13,
        },
        Request::ReadHoldingRegisters {
            address: 99,
            quantity: 2,
        },
    ];
    for r in &requests {
        client.submit(now, r.clone(), 1);
    }
    let got = responses(finish(&mut stream, &mut client, requests.len()));
    let regs = |v: &[u16]| Registers::from_values(v);
    let bits = |v: &[bool]| Bits::from_bools(v);
    assert_eq!(
        got,
        [
            Ok(Response::ReadCoils(bits(&[true, false, true, false, true]))),
            Ok(Response::ReadDiscreteInputs(bits(&[true; 3]))),
            Ok(Response::ReadInputRegisters(regs(&[7, 7]))),
            Ok(Response::WriteSingleRegister {
                address: 8,
                value: 999
            }),
            Ok(Response::WriteMultipleRegisters {
                address: 30,
                quantity: 3
            }),
            Ok(Response::WriteSingleCoil {
                address: 1,
                value: true
            }),
            Ok(Response::WriteMultipleCoils {
                address: 10,
                quantity: 3
            }),
            Ok(Response::MaskWriteRegister {
                address: 0,
                and_mask: 0x00F2,
                or_mask: 0x0025
            }),
            // Read after write: 40008, 40009 (999), 40010 (1000).
            Ok(Response::ReadWriteMultipleRegisters(regs(&[99, 999, 1000]))),
            Ok(Response::ReadHoldingRegisters(regs(&[99, 99, 5, 6, 7]))),
            Ok(Response::ReadCoils(bits(&[
                true, true, true, false, true, false, true, false, true, false, true, true, false
            ]))),
            Err(Exception {
                function: 3,
                code: ExceptionCode::ILLEGAL_DATA_ADDRESS
            }),
        ]
    );
    assert_eq!(client.statistics().unmatched, 0);
}

#[test]
fn client_against_pymodbus_tcp() {
    client_against_pymodbus(Transport::Tcp, "socket", 1);
}

/// pymodbus 3.16's server answers only the first request of a TCP segment carrying
/// several (the rest are dropped), which is why depth 1 is the default. Pipelined
/// anyway, every op still ends exactly once: a correct reply, or a timeout; nothing
/// is mismatched.
#[test]
fn client_pipelined_against_pymodbus_tcp() {
    let Some(python) = python() else { return };
    let server = start_pymodbus(&python, "socket");
    let mut stream = connect(server.addr);
    let mut client = ClientConn::tcp(ClientConfig {
        depth: 4,
        timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    });
    let now = Instant::now();
    let ops: Vec<_> = (0..8u16)
        .map(|i| {
            client.submit(
                now,
                Request::ReadHoldingRegisters {
                    address: i * 10,
                    quantity: i + 1,
                },
                1,
            )
        })
        .collect();
    let events = finish(&mut stream, &mut client, ops.len());
    let mut replies = 0;
    for event in &events {
        match event {
            ClientEvent::Reply {
                op,
                response: Ok(Response::ReadHoldingRegisters(regs)),
                ..
            } => {
                let i = ops.iter().position(|o| o == op).unwrap();
                assert_eq!(regs.to_vec(), vec![99; i + 1]);
                replies += 1;
            }
            ClientEvent::Timeout { .. } => {}
            other => panic!("{other:?} in {events:?}"),
        }
    }
    assert!(replies >= 2, "{events:?}");
    assert_eq!(client.statistics().unmatched, 0);
    assert!(client.is_idle());
}

#[test]
fn client_against_pymodbus_rtu_framer() {
    client_against_pymodbus(Transport::RtuOverTcp, "rtu", 1);
}

/// Run `poller` against `addr` (with the blocking client loop) until `act` says so;
/// every event as text.
fn run_poller(
    poller: &mut Poller,
    addr: SocketAddr,
    mut act: impl FnMut(&mut Poller, &[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut log = Vec::new();
    ClientDriver::new(None)
        .run(poller, Duration::from_millis(100), |poller, driver| {
            assert!(Instant::now() < deadline, "stuck: {log:?}");
            let mut moved = false;
            while let Some(e) = poller.poll_event() {
                moved = true;
                match &e {
                    PollEvent::Connect => match TcpStream::connect(addr) {
                        Ok(s) => {
                            driver.stream = Some(s);
                            poller.handle_connected(Instant::now());
                        }
                        Err(_) => poller.handle_connect_failed(Instant::now()),
                    },
                    PollEvent::Disconnect { .. } => driver.stream = None,
                    _ => {}
                }
                log.push(e.to_string());
            }
            (moved, act(poller, &log))
        })
        .unwrap();
    log
}

#[test]
fn poller_against_pymodbus() {
    let Some(python) = python() else { return };
    poller_against(start_pymodbus(&python, "socket"));
}

#[test]
fn poller_against_pymodbustcp() {
    let Some(python) = python() else { return };
    poller_against(start_peer(&python, "modbus_pymodbustcp_server.py", &[]));
}

fn poller_against(server: PeerServer) {
    let mut poller = Poller::new(PollerConfig {
        rate: Duration::from_millis(200),
        ..PollerConfig::default()
    });
    let now = Instant::now();
    poller.poll(now, "40001-40010", None).unwrap();
    poller.poll(now, "40011-40012", None).unwrap();
    poller.poll(now, "1-4", None).unwrap();
    poller.write_spec(now, "40001-40002=1,2").unwrap();
    let mut wrote = false;
    let log = run_poller(&mut poller, server.addr, |p, log| {
        if !wrote && log.iter().any(|l| l == "40012 == 99 (was: None)") {
            p.write_spec(Instant::now(), "40009=999").unwrap();
            wrote = true;
        }
        log.iter().any(|l| l == "40009 == 999 (was: 99)")
    });
    assert_eq!(
        log[..4],
        ["connect", "wrote 40001 (2)", "online", "1 == 1 (was: None)"]
    );
    assert!(
        log.contains(&"40001 == 1 (was: None)".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"40002 == 2 (was: None)".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"40003 == 99 (was: None)".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"wrote 40009 (1)".to_string()), "{log:?}");
    assert_eq!(poller.read_modicon(40009), Some(999));
    assert_eq!(poller.read_modicon(2), Some(0));
    assert!(poller.load().one.is_some());
}

#[test]
fn client_against_pymodbustcp() {
    let Some(python) = python() else { return };
    let server = start_peer(&python, "modbus_pymodbustcp_server.py", &[]);
    let mut stream = connect(server.addr);
    let mut client = ClientConn::tcp(ClientConfig::default());
    let now = Instant::now();
    let requests = [
        Request::ReadCoils {
            address: 0,
            quantity: 3,
        },
        Request::ReadDiscreteInputs {
            address: 14,
            quantity: 4,
        },
        Request::ReadInputRegisters {
            address: 9,
            quantity: 2,
        },
        Request::WriteSingleRegister {
            address: 8,
            value: 999,
        },
        Request::WriteMultipleRegisters {
            address: 30,
            values: Registers::from_values(&[5, 6, 7]),
        },
        Request::WriteSingleCoil {
            address: 1,
            value: true,
        },
        Request::WriteMultipleCoils {
            address: 10,
            values: Bits::from_bools(&[true, true, false]),
        },
        Request::ReadWriteMultipleRegisters {
            read_address: 7,
            read_quantity: 3,
            write_address: 9,
            values: Registers::from_values(&[1000]),
        },
        Request::ReadHoldingRegisters {
            address: 28,
            quantity: 5,
        },
        Request::ReadCoils {
            address: 0,
            quantity: 13,
        },
        // Not served by pyModbusTCP: Illegal Function.
        Request::MaskWriteRegister {
            address: 0,
            and_mask: 0,
            or_mask: 0,
        },
    ];
    for r in &requests {
        client.submit(now, r.clone(), 1);
    }
    let got = responses(finish(&mut stream, &mut client, requests.len()));
    let regs = |v: &[u16]| Registers::from_values(v);
    let bits = |v: &[bool]| Bits::from_bools(v);
    assert_eq!(
        got,
        [
            Ok(Response::ReadCoils(bits(&[true, false, true]))),
            Ok(Response::ReadDiscreteInputs(bits(&[
                true, true, false, false
            ]))),
            Ok(Response::ReadInputRegisters(regs(&[7, 0]))),
            Ok(Response::WriteSingleRegister {
                address: 8,
                value: 999
            }),
            Ok(Response::WriteMultipleRegisters {
                address: 30,
                quantity: 3
            }),
            Ok(Response::WriteSingleCoil {
                address: 1,
                value: true
            }),
            Ok(Response::WriteMultipleCoils {
                address: 10,
                quantity: 3
            }),
            Ok(Response::ReadWriteMultipleRegisters(regs(&[99, 999, 1000]))),
            Ok(Response::ReadHoldingRegisters(regs(&[99, 99, 5, 6, 7]))),
            Ok(Response::ReadCoils(bits(&[
                true, true, true, false, true, false, true, false, true, false, true, true, false
            ]))),
            Err(Exception {
                function: 0x16,
                code: ExceptionCode::ILLEGAL_FUNCTION
            }),
        ]
    );
}

/// The Modbus `Connector` of each runtime (through `Runtime::modbus`) against
/// pymodbus' server: writes, then reads back, in order.
#[test]
fn connector_on_every_runtime_against_pymodbus() {
    let Some(python) = python() else { return };
    let server = start_pymodbus(&python, "socket");
    for (n, runtime) in Runtime::ALL.into_iter().enumerate() {
        let base = 40 + 10 * n as u16;
        let values = [n as u16 + 1, 200, 300];
        let ops = vec![
            (
                1,
                Request::WriteMultipleRegisters {
                    address: base,
                    values: Registers::from_values(&values),
                },
            ),
            (
                1,
                Request::ReadHoldingRegisters {
                    address: base,
                    quantity: 3,
                },
            ),
        ];
        // pymodbus answers one request per TCP segment: depth 1.
        let done = runtime
            .modbus(
                &[server.addr],
                ClientConfig::default(),
                ops,
                Pipelining::default(),
            )
            .unwrap();
        assert_eq!(done.len(), 2, "{runtime}");
        assert!(
            matches!(
                done[0].outcome,
                Outcome::Answered(Ok(Response::WriteMultipleRegisters { .. }))
            ),
            "{runtime}: {:?}",
            done[0]
        );
        let Outcome::Answered(Ok(Response::ReadHoldingRegisters(read))) = &done[1].outcome else {
            panic!("{runtime}: {:?}", done[1]);
        };
        assert_eq!(read.iter().collect::<Vec<_>>(), values, "{runtime}");
    }
}
