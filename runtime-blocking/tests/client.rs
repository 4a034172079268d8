//! The shared client suite (`tests/client_common`) on the blocking runtime: its
//! `Connector` (cpppo's connector calls) and its client drive loop against its own
//! servers.

#![allow(clippy::unwrap_used)]

mod client_common;

use std::net::SocketAddr;
use std::time::Duration;

use client_common::{ClientRuntime, Plc};
use cpppo_blocking::client::{connect, ClientDriver};
use cpppo_core::cip::operation::Operation;
use cpppo_core::engine::{Driven, ServeOptions, Serving};
use cpppo_core::enip::client::pipeline::{Harvested, Pipelining, Summary};
use cpppo_core::enip::client::{ClientOptions, ClientStats, Value};
use cpppo_core::modbus::client::{
    ClientConfig, ClientConn as ModbusConn, ModbusOp, Outcome as ModbusOutcome,
};
use cpppo_core::modbus::device::Device;
use cpppo_core::modbus::pdu::Response;
use cpppo_core::pipeline::Harvested as Done;

struct Blocking;

sync_client_runtime!(Blocking, cpppo_blocking, {
    fn drive<E: Driven>(addr: SocketAddr, engine: &mut E, done: &mut dyn FnMut(&mut E) -> bool) {
        let stream = connect(&[addr], Duration::from_secs(5)).unwrap();
        ClientDriver::new(Some(stream))
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
        let mut driver = ClientDriver::new(Some(stream));
        driver
            .run(engine, Duration::from_secs(1), |e, _| (false, done1(e)))
            .unwrap();
        driver.stream = Some(connect(&[second], Duration::from_secs(5)).unwrap());
        driver
            .run(engine, Duration::from_secs(1), |e, _| (false, done2(e)))
            .unwrap();
    }
    fn serve_enip(server: Plc, options: ServeOptions) -> Box<dyn Serving<Plc>> {
        Box::new(cpppo_blocking::serve(server, options).unwrap())
    }
    fn serve_modbus(device: Device, options: ServeOptions) -> Box<dyn Serving<Device>> {
        Box::new(cpppo_blocking::serve(device, options).unwrap())
    }
});

client_tests!(Blocking);

#[test]
fn the_getattr_gateway_reads_writes_and_reopens_after_a_restart() {
    use cpppo_blocking::proxy::Gateway;
    use cpppo_blocking::serve;
    use cpppo_core::controller::{Controller, ControllerConfig};
    use cpppo_core::engine::{reachable, ServeOptions};
    use cpppo_core::enip::client::ClientOptions;
    use cpppo_core::enip::proxy::{powerflex_750_series, ParamError, Reply};
    use cpppo_core::enip::server::{Server, ServerOptions};
    use std::time::Duration;

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
