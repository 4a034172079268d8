//! Our EtherNet/IP client engine against cpppo's own Python simulator
//! (`python -m cpppo.server.enip`), driven by the blocking client loop
//! (`cpppo_blocking::client`): writes and reads of several types, pipelined, packed into
//! Multiple Service Packets, connected, and a read large enough to be fragmented; each
//! value read back is compared.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cpppo_blocking::client::{connect, ClientDriver};
use cpppo_conformance::python;
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::parse_operation;
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, Value};

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

/// Run `ops` over one session; each operation's result, in order.
fn run(addr: SocketAddr, options: ClientOptions, ops: &[&str]) -> Vec<Result<Value, String>> {
    let stream = connect(&[addr], PATIENCE).unwrap();
    let now = Instant::now();
    let mut client = ClientConn::new(now, options);
    let ids: Vec<_> = ops
        .iter()
        .map(|op| client.submit(now, parse_operation(op).unwrap()))
        .collect();
    let mut results = std::collections::BTreeMap::new();
    let mut closing = false;
    ClientDriver::new(Some(stream))
        .run(&mut client, Duration::from_secs(1), |client, driver| {
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Reply { op, result } => {
                        results.insert(op, result.map_err(|s| format!("{s:?}")));
                    }
                    ClientEvent::Lost { op, why } => {
                        results.insert(op, Err(why.to_string()));
                    }
                    ClientEvent::Failed(why) => panic!("{why}"),
                    _ => {}
                }
            }
            if results.len() == ids.len() && !closing {
                closing = true;
                client.close(Instant::now());
                return (true, false);
            }
            (
                false,
                closing && (client.is_closed() || driver.stream.is_none()),
            )
        })
        .unwrap();
    ids.iter().map(|id| results.remove(id).unwrap()).collect()
}

#[test]
fn reads_and_writes_cpppos_simulator() {
    let Some(python) = python() else { return };
    let sim = simulator(
        &python,
        &[
            "SCADA=INT[100]",
            "Speed=REAL[4]",
            "Count=DINT",
            "BIG=DINT[600]",
        ],
    );
    let big: Vec<String> = (0..600).map(|i| (i * 3 - 1000).to_string()).collect();
    let big_write = format!("BIG[0-599]=(DINT){}", big.join(","));
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
                ..ClientOptions::default()
            },
        ),
    ] {
        let results = run(
            sim.addr,
            options,
            &[
                "SCADA[1-3]=10,20,30",
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
            sim.addr,
            ClientOptions::default(),
            &["SCADA[0-4]", "Speed[0-1]", "Count", "BIG[0-599]"],
        );
        let want = [
            Values::Int(vec![0, 10, 20, 30, 0]),
            Values::Real(vec![0.0, 2.5]),
            Values::Dint(vec![-70000]),
            Values::Dint((0..600).map(|i| i * 3 - 1000).collect()),
        ];
        for (got, want) in results.into_iter().zip(want) {
            assert_eq!(got, Ok(Value::Values(want)), "{what}");
        }
    }
    // cpppo answers an unknown tag with encapsulation status 0x08 (unsupported command)
    // and hangs up: that operation fails with the status, the next is lost, and a new
    // session works.
    let results = run(sim.addr, ClientOptions::default(), &["NOPE[1]", "SCADA[1]"]);
    assert_eq!(
        results,
        [
            Err("encapsulation status 0x0008".to_string()),
            Err("connection closed".to_string())
        ]
    );
    let results = run(sim.addr, ClientOptions::default(), &["SCADA[1]"]);
    assert_eq!(results, [Ok(Value::Values(Values::Int(vec![10])))]);
}
