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
    type Gateway = cpppo_blocking::proxy::Gateway;
    fn gateway(addr: SocketAddr, options: ClientOptions) -> Self::Gateway {
        cpppo_blocking::proxy::Gateway::new(vec![addr], options)
    }
    fn serve_modbus(device: Device, options: ServeOptions) -> Box<dyn Serving<Device>> {
        Box::new(cpppo_blocking::serve(device, options).unwrap())
    }
});

client_tests!(Blocking);
