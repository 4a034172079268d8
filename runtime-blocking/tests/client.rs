//! The shared client suite (`tests/client_common`) on the blocking runtime: its
//! `Connector` (cpppo's connector calls) and its client drive loop against its own
//! servers.

#![allow(clippy::unwrap_used)]

mod client_common;

use std::net::SocketAddr;
use std::time::Duration;

use client_common::{ClientRuntime, Plc};
use cpppo_blocking::client::{connect, ClientDriver, Connector};
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

impl ClientRuntime for Blocking {
    type Conn = Connector;
    fn connect(addr: SocketAddr, options: ClientOptions) -> Connector {
        Connector::connect(&[addr], options).unwrap()
    }
    fn operate(c: &mut Connector, ops: Vec<Operation>, p: Pipelining) -> (Vec<Harvested>, Summary) {
        let mut harvest = c.operate(ops, p);
        let done: Vec<Harvested> = harvest.by_ref().collect();
        (done, harvest.summary())
    }
    fn synchronous(c: &mut Connector, ops: Vec<Operation>) -> Vec<Harvested> {
        c.synchronous(ops).collect()
    }
    fn pipeline(c: &mut Connector, ops: Vec<Operation>, depth: usize) -> Vec<Harvested> {
        c.pipeline(ops, depth).collect()
    }
    fn results(c: &mut Connector, ops: Vec<Operation>, p: Pipelining) -> Vec<Option<Value>> {
        c.results(ops, p).collect()
    }
    fn process(
        c: &mut Connector,
        ops: Vec<Operation>,
        p: Pipelining,
    ) -> (usize, Vec<Option<Value>>) {
        c.process(ops, p)
    }
    fn close(c: Connector) {
        c.close();
    }
    fn is_connected(c: &Connector) -> bool {
        c.is_connected()
    }
    fn stats(c: &Connector) -> ClientStats {
        *c.client().stats()
    }
    type Modbus = Connector<ModbusConn>;
    fn connect_modbus(addr: SocketAddr, config: ClientConfig) -> Self::Modbus {
        Connector::connect_modbus(&[addr], config).unwrap()
    }
    fn modbus_pipeline(
        c: &mut Self::Modbus,
        ops: Vec<ModbusOp>,
        depth: usize,
    ) -> Vec<Done<ModbusOp, ModbusOutcome>> {
        c.pipeline(ops, depth).collect()
    }
    fn modbus_process(
        c: &mut Self::Modbus,
        ops: Vec<ModbusOp>,
        p: Pipelining,
    ) -> (usize, Vec<Option<Response<'static>>>) {
        c.process(ops, p)
    }
    fn drive<E: Driven>(addr: SocketAddr, engine: &mut E, done: &mut dyn FnMut(&mut E) -> bool) {
        let stream = connect(&[addr], Duration::from_secs(5)).unwrap();
        ClientDriver::new(Some(stream))
            .run(engine, Duration::from_secs(1), |e, _| (false, done(e)))
            .unwrap();
    }
    fn serve_enip(server: Plc, options: ServeOptions) -> Box<dyn Serving<Plc>> {
        Box::new(cpppo_blocking::serve(server, options).unwrap())
    }
    fn serve_modbus(device: Device, options: ServeOptions) -> Box<dyn Serving<Device>> {
        Box::new(cpppo_blocking::serve(device, options).unwrap())
    }
}

client_tests!(Blocking);
