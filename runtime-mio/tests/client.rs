//! The mio client drive loop against this runtime's own server: an EtherNet/IP client engine
//! writes and reads a simulated controller's tags over a real socket, and a lost server
//! ends its operations.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::parse_operation;
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{reachable, ServeOptions};
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, LostReason, Value};
use cpppo_core::enip::server::{Server, ServerOptions};
use cpppo_mio::client::{connect, ClientDriver};
use cpppo_mio::serve;

#[test]
fn drives_an_enip_client_until_done() {
    let mut plc = Controller::new(ControllerConfig::default());
    plc.tags_mut().add_str("SCADA=INT[100]").unwrap();
    let handle = serve(
        Server::new(plc, ServerOptions::default()),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap();
    let addr = reachable(handle.local_addrs()[0]);
    let stream = connect(&[addr], Duration::from_secs(5)).unwrap();
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
    // Attached after the start, as a reconnect would.
    let mut driver = ClientDriver::new(None).unwrap();
    assert!(!driver.is_connected());
    driver.attach(stream).unwrap();
    driver
        .run(&mut client, Duration::from_secs(1), |client, _| {
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Reply { op, result } = event {
                    replies.push((op, result));
                }
            }
            (false, replies.len() == 2)
        })
        .unwrap();
    assert_eq!(
        replies[1],
        (read, Ok(Value::Values(Values::Int(vec![0, 4, 5, 6]))))
    );
    // The server goes away: what is in flight is lost, and the loop sees the end.
    let _ = handle.shutdown().unwrap();
    let op = client.submit(Instant::now(), parse_operation("SCADA[0]").unwrap());
    let mut lost = None;
    driver
        .run(&mut client, Duration::from_secs(1), |client, driver| {
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Lost { op, why } = event {
                    lost = Some((op, why));
                }
            }
            (false, lost.is_some() && !driver.is_connected())
        })
        .unwrap();
    assert_eq!(lost, Some((op, LostReason::Closed)));
}

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
fn drives_a_modbus_client_until_done() {
    use cpppo_core::modbus::client::{ClientConfig, ClientConn, ClientEvent};
    use cpppo_core::modbus::device::{Device, UnitData};
    use cpppo_core::modbus::pdu::{Registers, Request, Response};
    use cpppo_core::modbus::server::Transport;

    let data = UnitData::parse(["40001-40010=7"]).unwrap();
    let handle = serve(
        Device::new(data),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap();
    let addr = reachable(handle.local_addrs()[0]);
    let stream = connect(&[addr], Duration::from_secs(5)).unwrap();
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
    ClientDriver::new(Some(stream))
        .unwrap()
        .run(&mut client, Duration::from_secs(1), |client, _| {
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Reply { op, response, .. } = event {
                    if op == read {
                        got = Some(response);
                    }
                }
            }
            (false, got.is_some())
        })
        .unwrap();
    let Some(Ok(Response::ReadHoldingRegisters(registers))) = got else {
        panic!("{got:?}");
    };
    assert_eq!(registers.iter().collect::<Vec<_>>(), [7, 7, 1, 2, 3, 7]);
    let _ = handle.shutdown().unwrap();
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

#[test]
fn the_getattr_gateway_reads_writes_and_reopens_after_a_restart() {
    use cpppo_core::enip::proxy::{powerflex_750_series, ParamError, Reply};
    use cpppo_mio::proxy::Gateway;

    let serve_drive = |addr: &str| {
        let mut plc = Controller::new(ControllerConfig::default());
        plc.tags_mut()
            .add_str("Output_Current@0x93/7/10=REAL")
            .unwrap();
        serve(
            Server::new(plc, ServerOptions::default()),
            ServeOptions::new(addr.parse().unwrap()),
        )
        .unwrap()
    };
    let handle = serve_drive("127.0.0.1:0");
    let addr = reachable(handle.local_addrs()[0]);
    let params = powerflex_750_series();
    let current = params.get("Output Current").unwrap();
    let name = params.get("Product Name").unwrap();
    let mut via = Gateway::new(
        vec![addr],
        ClientOptions {
            timeout: Duration::from_secs(2),
            ..ClientOptions::simple()
        },
    )
    .unwrap();
    assert_eq!(
        via.write(current, "16.5").unwrap().unwrap(),
        Ok(Reply::Written)
    );
    let shown = |r: &Result<Reply, ParamError>| match r {
        Ok(Reply::Value(v)) => v.to_string(),
        other => format!("{other:?}"),
    };
    let r = via.read(&[current.clone(), name.clone()]).unwrap();
    assert_eq!(
        r.iter().map(shown).collect::<Vec<_>>(),
        ["[16.5]", "['1756-L61/B LOGIX5561']"]
    );
    assert!(via.proxy().is_open());
    // The device restarts: the call on the dead gateway fails and closes it; the next
    // one opens a new gateway to the new device.
    let _ = handle.shutdown().unwrap();
    let r = via.read(std::slice::from_ref(current)).unwrap();
    assert!(matches!(r[0], Err(ref e) if e.is_link_failure()), "{r:?}");
    let _again = serve_drive(&addr.to_string());
    let r = via.read(std::slice::from_ref(current)).unwrap();
    assert_eq!(r.iter().map(shown).collect::<Vec<_>>(), ["[0.0]"]);
    assert_eq!(via.proxy().statistics().connects, 2);
}
