//! Our EtherNet/IP client on each runtime (the `Connector` of `cpppo_blocking`,
//! `cpppo_smol` and `cpppo_mio`) against cpppo's own Python simulator
//! (`python -m cpppo.server.enip`, a real third-party server) and against our server on
//! each runtime: writes and reads of several types, pipelined, packed into Multiple
//! Service Packets, connected, and a write and read large enough to be fragmented; each
//! value read back is compared.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cpppo_conformance::{loopback, python, Runtime};
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::{parse_operation, Operation};
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::reachable;
use cpppo_core::enip::client::pipeline::{Outcome, Pipelining};
use cpppo_core::enip::client::{ClientOptions, Value};
use cpppo_core::enip::server::{Server, ServerOptions};

const PATIENCE: Duration = Duration::from_secs(20);

/// cpppo's simulator process, killed when dropped.
struct Simulator {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn simulator(python: &Path, tags: &[&str]) -> Simulator {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let child = Command::new(python)
        .args(["-m", "cpppo.server.enip", "-a", &addr.to_string()])
        .args(tags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sim = Simulator { child, addr };
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "cpppo's simulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    sim
}

/// Run `ops` over one session on `runtime`, `depth` transactions in flight and packed
/// into Multiple Service Packets of `multiple` bytes; each operation's result, in order.
fn run(
    runtime: Runtime,
    addr: SocketAddr,
    options: ClientOptions,
    ops: &[&str],
) -> Vec<Result<Value, String>> {
    let ops: Vec<Operation> = ops.iter().map(|op| parse_operation(op).unwrap()).collect();
    let pipelining = Pipelining::of(&options);
    let done = runtime
        .operate(&[addr], options, ops, pipelining)
        .unwrap_or_else(|e| panic!("{runtime:?}: {e}"));
    done.into_iter()
        .map(|d| match d.outcome {
            Outcome::Answered(result) => result.map_err(|s| format!("{s:?}")),
            Outcome::Lost(why) => Err(why.to_string()),
        })
        .collect()
}

/// Writes of several types (one large enough to be fragmented) plain, pipelined, packed
/// and connected, each read back; on every runtime.
fn writes_and_reads_back(addr: SocketAddr) {
    let big: Vec<String> = (0..600).map(|i| (i * 3 - 1000).to_string()).collect();
    let big_write = format!("BIG[0-599]=(DINT){}", big.join(","));
    for runtime in Runtime::ALL {
        for (what, options) in [
            ("plain", ClientOptions::default()),
            (
                "pipelined",
                ClientOptions {
                    depth: 3,
                    ..ClientOptions::default()
                },
            ),
            (
                "packed",
                ClientOptions {
                    depth: 2,
                    multiple: 500,
                    ..ClientOptions::default()
                },
            ),
            (
                "connected",
                ClientOptions {
                    connected: true,
                    depth: 2,
                    ..ClientOptions::default()
                },
            ),
        ] {
            let what = format!("{runtime:?} {what}");
            let n = options.depth as i16;
            let results = run(
                runtime,
                addr,
                options.clone(),
                &[
                    &format!("SCADA[1-3]={n},20,30"),
                    "Speed[1]=(REAL)2.5",
                    "Count=(DINT)-70000",
                    &big_write,
                ],
            );
            assert!(
                results.iter().all(|r| *r == Ok(Value::Written)),
                "{what}: {results:?}"
            );
            let results = run(
                runtime,
                addr,
                options,
                &["SCADA[0-4]", "Speed[0-1]", "Count", "BIG[0-599]"],
            );
            let want = [
                Values::Int(vec![0, n, 20, 30, 0]),
                Values::Real(vec![0.0, 2.5]),
                Values::Dint(vec![-70000]),
                Values::Dint((0..600).map(|i| i * 3 - 1000).collect()),
            ];
            assert_eq!(results.len(), want.len(), "{what}");
            for (got, want) in results.into_iter().zip(want) {
                assert_eq!(got, Ok(Value::Values(want)), "{what}");
            }
        }
    }
}

const TAGS: &[&str] = &[
    "SCADA=INT[100]",
    "Speed=REAL[4]",
    "Count=DINT",
    "BIG=DINT[600]",
];

#[test]
fn reads_and_writes_cpppos_simulator() {
    let Some(python) = python() else { return };
    let sim = simulator(&python, TAGS);
    writes_and_reads_back(sim.addr);
    // cpppo answers an unknown tag with encapsulation status 0x08 (unsupported command)
    // and hangs up: that operation fails with the status, the next is lost, and a new
    // session works.
    for runtime in Runtime::ALL {
        let results = run(
            runtime,
            sim.addr,
            ClientOptions::default(),
            &["NOPE[1]", "SCADA[1]"],
        );
        assert_eq!(
            results,
            [
                Err("encapsulation status 0x0008".to_string()),
                Err("connection closed".to_string())
            ],
            "{runtime:?}"
        );
        let results = run(runtime, sim.addr, ClientOptions::default(), &["SCADA[2]"]);
        assert_eq!(
            results,
            [Ok(Value::Values(Values::Int(vec![20])))],
            "{runtime:?}"
        );
    }
}

#[test]
fn reads_and_writes_our_server_on_every_runtime() {
    for server_runtime in Runtime::ALL {
        let mut plc = Controller::new(ControllerConfig::default());
        for tag in TAGS {
            plc.tags_mut().add_str(tag).unwrap();
        }
        let running = server_runtime
            .serve(Server::new(plc, ServerOptions::default()), loopback())
            .unwrap();
        let addr = reachable(running.local_addrs()[0]);
        writes_and_reads_back(addr);
        // Ours answers an unknown tag with a CIP status and keeps the session.
        for runtime in Runtime::ALL {
            let results = run(
                runtime,
                addr,
                ClientOptions::default(),
                &["NOPE[1]", "SCADA[2]"],
            );
            assert!(results[0].is_err(), "{runtime:?}");
            assert_eq!(
                results[1],
                Ok(Value::Values(Values::Int(vec![20]))),
                "{runtime:?} client, {server_runtime:?} server"
            );
        }
        let _ = running.shutdown().unwrap();
    }
}
