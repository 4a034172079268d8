//! Our getattr proxy and EtherNet/IP poller engines against cpppo's own Python simulator
//! (`python -m cpppo.server.enip`) serving PowerFlex-style attributes: typed reads and
//! writes through the proxy on each runtime's client loop, and a poller that survives
//! the simulator being stopped and restarted (asserted by a value written after the
//! restart).

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cpppo_conformance::{python, Runtime};
use cpppo_core::engine::Driven;
use cpppo_core::enip::client::ClientOptions;
use cpppo_core::enip::poller::{PollEvent, Poller, PollerConfig};
use cpppo_core::enip::proxy::{
    powerflex_750_series, ParamError, Proxy, ProxyEvent, Reply, RequestId,
};

const PATIENCE: Duration = Duration::from_secs(20);

/// cpppo's simulated PowerFlex: REAL host port parameters.
const DRIVE: &[&str] = &[
    "Output_Current@0x93/7/10=REAL",
    "Motor_Velocity@0x93/3/10=REAL",
];

/// cpppo's simulator process, killed when dropped.
struct Simulator {
    child: Child,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn simulator(python: &Path, addr: SocketAddr) -> Simulator {
    let child = Command::new(python)
        .args(["-m", "cpppo.server.enip", "-a", &addr.to_string()])
        .args(DRIVE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sim = Simulator { child };
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "cpppo's simulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    sim
}

/// What a step asks of the socket: connect, drop, or nothing.
enum Link {
    Up,
    Down,
}

/// Run `engine` on `runtime`'s client loop; `step` drains its events, asking for the
/// socket actions wanted (`Up` is answered with the connect's outcome), and answers
/// whether anything moved (events drained, work submitted) and whether it is done.
fn drive<E: Driven>(
    runtime: Runtime,
    engine: &mut E,
    addr: SocketAddr,
    mut step: impl FnMut(&mut E, &mut dyn FnMut(Link) -> bool) -> (bool, bool),
) {
    let idle = Duration::from_millis(100);
    let timeout = Duration::from_secs(2);
    match runtime {
        Runtime::Blocking => {
            use cpppo_blocking::client::{connect, ClientDriver};
            ClientDriver::new(None)
                .run(engine, idle, |e, d| {
                    let (moved, done) = step(e, &mut |link| match link {
                        Link::Up => {
                            d.stream = connect(&[addr], timeout).ok();
                            d.stream.is_some()
                        }
                        Link::Down => {
                            d.stream = None;
                            true
                        }
                    });
                    (moved, done)
                })
                .unwrap();
        }
        Runtime::Smol => {
            use cpppo_smol::client::ClientDriver;
            smol::block_on(ClientDriver::new(None).run(engine, idle, |e, d| {
                let (moved, done) = step(e, &mut |link| match link {
                    Link::Up => {
                        d.stream = cpppo_blocking::client::connect(&[addr], timeout)
                            .ok()
                            .and_then(|s| smol::Async::new(s).ok());
                        d.stream.is_some()
                    }
                    Link::Down => {
                        d.stream = None;
                        true
                    }
                });
                (moved, done)
            }))
            .unwrap();
        }
        Runtime::Mio => {
            use cpppo_mio::client::{connect, ClientDriver};
            ClientDriver::new(None)
                .unwrap()
                .run(engine, idle, |e, d| {
                    let (moved, done) = step(e, &mut |link| match link {
                        Link::Up => connect(&[addr], timeout).and_then(|s| d.attach(s)).is_ok(),
                        Link::Down => {
                            d.detach();
                            true
                        }
                    });
                    (moved, done)
                })
                .unwrap();
        }
    }
}

/// Run the proxy's requests to completion on `runtime` (one connection, one loop):
/// each request's results, in order.
fn complete(
    runtime: Runtime,
    proxy: &mut Proxy,
    addr: SocketAddr,
    ids: &[RequestId],
) -> Vec<Vec<Result<Reply, ParamError>>> {
    let mut done = std::collections::BTreeMap::new();
    drive(runtime, proxy, addr, |p, link| {
        let mut moved = false;
        while let Some(event) = p.poll_event() {
            moved = true;
            match event {
                ProxyEvent::Connect => {
                    let now = Instant::now();
                    if link(Link::Up) {
                        p.handle_connected(now);
                    } else {
                        p.handle_connect_failed(now, "refused");
                    }
                }
                ProxyEvent::Disconnect { .. } => {
                    link(Link::Down);
                }
                ProxyEvent::Done { request, results } => {
                    done.insert(request, results);
                }
                ProxyEvent::Opened { .. } => {}
            }
        }
        (moved, done.len() == ids.len())
    });
    ids.iter().map(|id| done.remove(id).unwrap()).collect()
}

#[test]
fn proxy_reads_and_writes_cpppos_simulated_powerflex_on_each_runtime() {
    let Some(python) = python() else { return };
    let addr = free_port();
    let _sim = simulator(&python, addr);
    let params = powerflex_750_series();
    let current = params.get("Output Current").unwrap().clone();
    let velocity = params.get("Motor Velocity").unwrap().clone();
    let names = [
        "Product Name",
        "Identity",
        "Output Current",
        "Motor Velocity",
    ];
    let reads: Vec<_> = names
        .iter()
        .map(|n| params.get(n).unwrap().clone())
        .collect();
    for (i, runtime) in Runtime::ALL.into_iter().enumerate() {
        // cpppo's simulator routes: the proxy of a routing device (proxy, not
        // proxy_simple).
        let mut proxy = Proxy::new(ClientOptions::default());
        let amps = format!("{}.5", 10 + i);
        // One at a time (depth 1), in order: the read sees both writes.
        let now = Instant::now();
        let ids = [
            proxy.write(now, &current, &amps).unwrap(),
            proxy.write(now, &velocity, "789.01").unwrap(),
            proxy.read(now, &reads),
        ];
        let mut results = complete(runtime, &mut proxy, addr, &ids).into_iter();
        assert_eq!(results.next().unwrap(), [Ok(Reply::Written)], "{runtime:?}");
        assert_eq!(results.next().unwrap(), [Ok(Reply::Written)], "{runtime:?}");
        let r = results.next().unwrap();
        let shown: Vec<String> = r
            .iter()
            .map(|x| match x {
                Ok(Reply::Value(v)) => v.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "['1756-L61/B LOGIX5561']".to_string(),
                "[1, 14, 54, 2836, 12640, 7079450, '1756-L61/B LOGIX5561']".to_string(),
                format!("[{amps}]"),
                // cpppo's own example prints this REAL as 789.010009765625.
                "[789.010009765625]".to_string(),
            ],
            "{runtime:?}"
        );
        assert_eq!(proxy.statistics().connects, 1, "{runtime:?}: one gateway");
    }
}

#[test]
fn poller_survives_cpppos_simulator_restarting() {
    let Some(python) = python() else { return };
    let addr = free_port();
    let mut sim = Some(simulator(&python, addr));
    let params = powerflex_750_series();
    let current = params.get("Output Current").unwrap().clone();
    let mut poller = Poller::new(PollerConfig {
        // A freshly started Python simulator can take a while to answer.
        client: ClientOptions {
            timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        },
        cycle: Duration::from_millis(200),
        ..PollerConfig::default()
    });
    poller.poll(Instant::now(), current.clone(), None);
    let mut log: Vec<String> = Vec::new();
    let mut phase = 0;
    let mut writes = 0;
    let deadline = Instant::now() + 3 * PATIENCE;
    drive(Runtime::Blocking, &mut poller, addr, |p, link| {
        assert!(
            Instant::now() < deadline,
            "stuck in phase {phase}: {log:#?}"
        );
        let mut moved = false;
        while let Some(event) = p.poll_event() {
            moved = true;
            match &event {
                PollEvent::Connect => {
                    let now = Instant::now();
                    if link(Link::Up) {
                        p.handle_connected(now);
                    } else {
                        p.handle_connect_failed(now, "refused");
                    }
                }
                PollEvent::Disconnect { .. } => {
                    link(Link::Down);
                }
                _ => {}
            }
            log.push(event.to_string());
        }
        let has = |log: &[String], text: &str| log.iter().any(|l| l.starts_with(text));
        match phase {
            0 if has(&log, "Output Current == [0.0] Amps (was: None)") => {
                // The simulator goes away.
                sim = None;
                phase = 1;
            }
            1 if has(&log, "Output Current: failed: ") && has(&log, "reconnecting in ") => {
                // It comes back on the same port, with a value written after the restart.
                sim = Some(simulator(&python, addr));
                p.write(Instant::now(), &current, "42.25").unwrap();
                writes += 1;
                moved = true;
                phase = 2;
            }
            2 if has(&log, "Output Current == [42.25] Amps (was: ") => phase = 3,
            // A write lost while the simulator is still starting up is sent again.
            2 if log
                .iter()
                .filter(|l| l.starts_with("write Output Current failed"))
                .count()
                == writes =>
            {
                p.write(Instant::now(), &current, "42.25").unwrap();
                writes += 1;
                moved = true;
            }
            _ => {}
        }
        (moved, phase == 3)
    });
    assert!(log.iter().any(|l| l == "wrote Output Current"), "{log:#?}");
    assert!(poller.statistics().backoffs >= 1);
    assert_eq!(
        poller.read("Output Current").map(ToString::to_string),
        Some("[42.25]".to_string())
    );
}
