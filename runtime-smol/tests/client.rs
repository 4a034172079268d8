//! The async client drive loop against this runtime's own server: an EtherNet/IP client
//! engine writes and reads a simulated controller's tags over a real socket, and a lost
//! server ends its operations.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::parse_operation;
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{reachable, ServeOptions};
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, LostReason, Value};
use cpppo_core::enip::server::{Server, ServerOptions};
use cpppo_smol::client::{connect, ClientDriver};
use cpppo_smol::serve;

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
    smol::block_on(async {
        let stream = connect(&[addr], Duration::from_secs(5)).await.unwrap();
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
        let mut driver = ClientDriver::new(Some(stream));
        driver
            .run(&mut client, Duration::from_secs(1), |client, _| {
                while let Some(event) = client.poll_event() {
                    if let ClientEvent::Reply { op, result } = event {
                        replies.push((op, result));
                    }
                }
                (false, replies.len() == 2)
            })
            .await
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
                (false, lost.is_some() && driver.stream.is_none())
            })
            .await
            .unwrap();
        assert_eq!(lost, Some((op, LostReason::Closed)));
    });
}

#[test]
fn connect_to_nothing_is_an_error() {
    // Bind and drop a listener: its port is (almost certainly) closed now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let result = smol::block_on(connect(&[addr], Duration::from_secs(5)));
    assert!(result.is_err());
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
    smol::block_on(async {
        let stream = connect(&[addr], Duration::from_secs(5)).await.unwrap();
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
            .await
            .unwrap();
        let Some(Ok(Response::ReadHoldingRegisters(registers))) = got else {
            panic!("{got:?}");
        };
        assert_eq!(registers.iter().collect::<Vec<_>>(), [7, 7, 1, 2, 3, 7]);
    });
    let _ = handle.shutdown().unwrap();
}

#[test]
fn the_getattr_gateway_reads_writes_and_reopens_after_a_restart() {
    use cpppo_core::enip::proxy::{powerflex_750_series, ParamError, Reply};
    use cpppo_smol::proxy::Gateway;

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
    let shown = |r: &Result<Reply, ParamError>| match r {
        Ok(Reply::Value(v)) => v.to_string(),
        other => format!("{other:?}"),
    };
    smol::block_on(async {
        let mut via = Gateway::new(
            vec![addr],
            ClientOptions {
                timeout: Duration::from_secs(2),
                ..ClientOptions::simple()
            },
        );
        assert_eq!(
            via.write(current, "16.5").await.unwrap().unwrap(),
            Ok(Reply::Written)
        );
        let r = via.read(&[current.clone(), name.clone()]).await.unwrap();
        assert_eq!(
            r.iter().map(shown).collect::<Vec<_>>(),
            ["[16.5]", "['1756-L61/B LOGIX5561']"]
        );
        let _ = handle.shutdown().unwrap();
        let r = via.read(std::slice::from_ref(current)).await.unwrap();
        assert!(matches!(r[0], Err(ref e) if e.is_link_failure()), "{r:?}");
        let _again = serve_drive(&addr.to_string());
        let r = via.read(std::slice::from_ref(current)).await.unwrap();
        assert_eq!(r.iter().map(shown).collect::<Vec<_>>(), ["[0.0]"]);
        assert_eq!(via.proxy().statistics().connects, 2);
    });
}
