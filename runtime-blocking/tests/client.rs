//! The client drive loop against this runtime's own server: an EtherNet/IP client engine
//! writes and reads a simulated controller's tags over a real socket, and a lost server
//! ends its operations.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cpppo_blocking::client::{connect, ClientDriver};
use cpppo_blocking::serve;
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::parse_operation;
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{reachable, ServeOptions};
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, LostReason, Value};
use cpppo_core::enip::server::{Server, ServerOptions};

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
        .unwrap();
    assert_eq!(lost, Some((op, LostReason::Closed)));
}

#[test]
fn the_getattr_gateway_reads_writes_and_reopens_after_a_restart() {
    use cpppo_blocking::proxy::Gateway;
    use cpppo_core::enip::proxy::{powerflex_750_series, ParamError, Reply};

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
    );
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
