//! The shared client suite (`runtime-blocking/tests/client_common`) on the mio runtime:
//! its `Connector` (cpppo's connector calls) and its client drive loop against its own
//! servers; and what only mio has: deadlines without a stream, and one loop driving
//! several connections ([`ClientLoop`](cpppo_mio::client::ClientLoop)).

#![allow(clippy::unwrap_used)]

#[path = "../../runtime-blocking/tests/client_common/mod.rs"]
mod client_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use client_common::{ClientRuntime, Plc};
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::{parse_operation, Operation};
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{reachable, Driven, ServeOptions, Serving};
use cpppo_core::enip::client::pipeline::{Harvested, Pipelining, Summary};
use cpppo_core::enip::client::{
    ClientConn, ClientEvent, ClientOptions, ClientStats, LostReason, Value,
};
use cpppo_core::enip::server::{Server, ServerOptions};
use cpppo_core::modbus::client::{
    ClientConfig, ClientConn as ModbusConn, ModbusOp, Outcome as ModbusOutcome,
};
use cpppo_core::modbus::device::Device;
use cpppo_core::modbus::pdu::Response;
use cpppo_core::pipeline::Harvested as Done;
use cpppo_mio::client::{connect, ClientDriver};
use cpppo_mio::serve;

struct Mio;

sync_client_runtime!(Mio, cpppo_mio, {
    fn drive<E: Driven>(addr: SocketAddr, engine: &mut E, done: &mut dyn FnMut(&mut E) -> bool) {
        let stream = connect(&[addr], Duration::from_secs(5)).unwrap();
        // Attached after the start, as a reconnect would.
        let mut driver = ClientDriver::new(None).unwrap();
        assert!(!driver.is_connected());
        driver.attach(stream).unwrap();
        driver
            .run(engine, Duration::from_secs(1), |e, _| (false, done(e)))
            .unwrap();
    }
    fn drive_twice<E: Driven>(
        first: SocketAddr,
        second: SocketAddr,
        engine: &mut E,
        done1: &mut dyn FnMut(&mut E) -> bool,
        done2: &mut dyn FnMut(&mut E) -> bool,
    ) {
        let stream = connect(&[first], Duration::from_secs(5)).unwrap();
        let mut driver = ClientDriver::new(Some(stream)).unwrap();
        driver
            .run(engine, Duration::from_secs(1), |e, _| (false, done1(e)))
            .unwrap();
        driver
            .attach(connect(&[second], Duration::from_secs(5)).unwrap())
            .unwrap();
        driver
            .run(engine, Duration::from_secs(1), |e, _| (false, done2(e)))
            .unwrap();
    }
    fn serve_enip(server: Plc, options: ServeOptions) -> Box<dyn Serving<Plc>> {
        Box::new(serve(server, options).unwrap())
    }
    type Gateway = cpppo_mio::proxy::Gateway;
    fn gateway(addr: SocketAddr, options: ClientOptions) -> Self::Gateway {
        cpppo_mio::proxy::Gateway::new(vec![addr], options).unwrap()
    }
    fn serve_modbus(device: Device, options: ServeOptions) -> Box<dyn Serving<Device>> {
        Box::new(serve(device, options).unwrap())
    }
});

client_tests!(Mio);

#[test]
fn without_a_stream_the_engine_still_gets_its_deadlines() {
    // No connection: an operation submitted with a timeout ends by that deadline alone.
    let now = Instant::now();
    let mut client = ClientConn::new(
        now,
        ClientOptions {
            timeout: Duration::from_millis(50),
            ..ClientOptions::default()
        },
    );
    let op = client.submit(now, parse_operation("SCADA[0]").unwrap());
    let mut ended = None;
    ClientDriver::new(None)
        .unwrap()
        .run(&mut client, Duration::from_millis(20), |client, _| {
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Lost { op, why } = event {
                    ended = Some((op, why));
                }
            }
            (false, ended.is_some())
        })
        .unwrap();
    assert_eq!(ended, Some((op, LostReason::Timeout)));
    assert!(now.elapsed() >= Duration::from_millis(50));
}

#[test]
fn one_loop_drives_several_connections() {
    use cpppo_mio::client::ClientLoop;

    let mut plc = Controller::new(ControllerConfig::default());
    plc.tags_mut().add_str("SCADA=INT[100]").unwrap();
    let handle = serve(
        Server::new(plc, ServerOptions::default()),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap();
    let addr = reachable(handle.local_addrs()[0]);
    let mut clients = ClientLoop::new().unwrap();
    let mut reads = Vec::new();
    for i in 0..3i16 {
        let now = Instant::now();
        let mut client = ClientConn::new(now, ClientOptions::default());
        let first = 10 * i;
        client.submit(
            now,
            parse_operation(&format!("SCADA[{first}-{}]={},{}", first + 1, i, i + 100)).unwrap(),
        );
        reads.push(client.submit(
            now,
            parse_operation(&format!("SCADA[{first}-{}]", first + 1)).unwrap(),
        ));
        let stream = connect(&[addr], Duration::from_secs(5)).unwrap();
        assert_eq!(clients.add(client, stream).unwrap(), i as usize);
    }
    let mut got = vec![None; 3];
    clients
        .run(Duration::from_secs(1), |clients| {
            let mut moved = false;
            for (i, slot) in got.iter_mut().enumerate() {
                let client = clients.engine_mut(i).unwrap();
                while let Some(event) = client.poll_event() {
                    moved = true;
                    if let ClientEvent::Reply { op, result } = event {
                        if op == reads[i] {
                            *slot = Some(result);
                        }
                    }
                }
            }
            (moved, got.iter().all(Option::is_some))
        })
        .unwrap();
    for (i, result) in got.into_iter().enumerate() {
        let i = i as i16;
        assert_eq!(
            result,
            Some(Ok(Value::Values(Values::Int(vec![i, i + 100])))),
            "connection {i}"
        );
    }
    // The server goes away: every connection sees the end.
    let _ = handle.shutdown().unwrap();
    let ops: Vec<_> = (0..3)
        .map(|i| {
            clients
                .engine_mut(i)
                .unwrap()
                .submit(Instant::now(), parse_operation("SCADA[0]").unwrap())
        })
        .collect();
    let mut lost = vec![None; 3];
    clients
        .run(Duration::from_secs(1), |clients| {
            for (i, slot) in lost.iter_mut().enumerate() {
                while let Some(event) = clients.engine_mut(i).unwrap().poll_event() {
                    if let ClientEvent::Lost { op, why } = event {
                        *slot = Some((op, why));
                    }
                }
            }
            let gone = (0..clients.len()).all(|i| !clients.is_connected(i));
            (false, gone && lost.iter().all(Option::is_some))
        })
        .unwrap();
    for (i, l) in lost.into_iter().enumerate() {
        assert_eq!(l, Some((ops[i], LostReason::Closed)), "connection {i}");
    }
}
