//! The shared client suite (`runtime-blocking/tests/client_common`) on the smol runtime:
//! its `Connector` (cpppo's connector calls, awaited) and its client drive loop against
//! its own servers.

#![allow(clippy::unwrap_used)]

#[path = "../../runtime-blocking/tests/client_common/mod.rs"]
mod client_common;

use std::net::SocketAddr;
use std::time::Duration;

use client_common::{ClientRuntime, Plc};
use cpppo_core::cip::operation::Operation;
use cpppo_core::engine::{Driven, ServeOptions, Serving};
use cpppo_core::enip::client::pipeline::{Harvested, Pipelining, Summary};
use cpppo_core::enip::client::{ClientOptions, ClientStats, Value};
use cpppo_core::enip::proxy::{ParamError, Parameter, Proxy, Reply};
use cpppo_core::modbus::client::{
    ClientConfig, ClientConn as ModbusConn, ModbusOp, Outcome as ModbusOutcome,
};
use cpppo_core::modbus::device::Device;
use cpppo_core::modbus::pdu::Response;
use cpppo_core::pipeline::Harvested as Done;
use cpppo_smol::client::{connect, ClientDriver, Connector};

struct Smol;

impl ClientRuntime for Smol {
    type Conn = Connector;
    fn connect(addr: SocketAddr, options: ClientOptions) -> Connector {
        smol::block_on(Connector::connect(&[addr], options)).unwrap()
    }
    fn operate(c: &mut Connector, ops: Vec<Operation>, p: Pipelining) -> (Vec<Harvested>, Summary) {
        smol::block_on(async {
            let mut harvest = c.operate(ops, p);
            let mut done = Vec::new();
            while let Some(d) = harvest.next().await {
                done.push(d);
            }
            (done, harvest.summary())
        })
    }
    fn synchronous(c: &mut Connector, ops: Vec<Operation>) -> Vec<Harvested> {
        smol::block_on(async {
            let mut harvest = c.synchronous(ops);
            let mut done = Vec::new();
            while let Some(d) = harvest.next().await {
                done.push(d);
            }
            done
        })
    }
    fn pipeline(c: &mut Connector, ops: Vec<Operation>, depth: usize) -> Vec<Harvested> {
        smol::block_on(async {
            let mut harvest = c.pipeline(ops, depth);
            let mut done = Vec::new();
            while let Some(d) = harvest.next().await {
                done.push(d);
            }
            done
        })
    }
    fn results(c: &mut Connector, ops: Vec<Operation>, p: Pipelining) -> Vec<Option<Value>> {
        smol::block_on(async {
            let mut results = c.results(ops, p);
            let mut values = Vec::new();
            while let Some(v) = results.next().await {
                values.push(v);
            }
            values
        })
    }
    fn process(
        c: &mut Connector,
        ops: Vec<Operation>,
        p: Pipelining,
    ) -> (usize, Vec<Option<Value>>) {
        smol::block_on(c.process(ops, p))
    }
    fn close(c: Connector) {
        smol::block_on(c.close());
    }
    fn is_connected(c: &Connector) -> bool {
        c.is_connected()
    }
    fn stats(c: &Connector) -> ClientStats {
        *c.client().stats()
    }
    type Modbus = Connector<ModbusConn>;
    fn connect_modbus(addr: SocketAddr, config: ClientConfig) -> Self::Modbus {
        smol::block_on(Connector::connect_modbus(&[addr], config)).unwrap()
    }
    fn modbus_pipeline(
        c: &mut Self::Modbus,
        ops: Vec<ModbusOp>,
        depth: usize,
    ) -> Vec<Done<ModbusOp, ModbusOutcome>> {
        smol::block_on(async {
            let mut harvest = c.pipeline(ops, depth);
            let mut done = Vec::new();
            while let Some(d) = harvest.next().await {
                done.push(d);
            }
            done
        })
    }
    fn modbus_process(
        c: &mut Self::Modbus,
        ops: Vec<ModbusOp>,
        p: Pipelining,
    ) -> (usize, Vec<Option<Response<'static>>>) {
        smol::block_on(c.process(ops, p))
    }
    fn drive<E: Driven>(addr: SocketAddr, engine: &mut E, done: &mut dyn FnMut(&mut E) -> bool) {
        smol::block_on(async {
            let stream = connect(&[addr], Duration::from_secs(5)).await.unwrap();
            ClientDriver::new(Some(stream))
                .run(engine, Duration::from_secs(1), |e, _| (false, done(e)))
                .await
                .unwrap();
        });
    }
    fn drive_twice<E: Driven>(
        first: SocketAddr,
        second: SocketAddr,
        engine: &mut E,
        done1: &mut dyn FnMut(&mut E) -> bool,
        done2: &mut dyn FnMut(&mut E) -> bool,
    ) {
        smol::block_on(async {
            let stream = connect(&[first], Duration::from_secs(5)).await.unwrap();
            let mut driver = ClientDriver::new(Some(stream));
            driver
                .run(engine, Duration::from_secs(1), |e, _| (false, done1(e)))
                .await
                .unwrap();
            driver.stream = Some(connect(&[second], Duration::from_secs(5)).await.unwrap());
            driver
                .run(engine, Duration::from_secs(1), |e, _| (false, done2(e)))
                .await
                .unwrap();
        });
    }
    fn serve_enip(server: Plc, options: ServeOptions) -> Box<dyn Serving<Plc>> {
        Box::new(cpppo_smol::serve(server, options).unwrap())
    }
    type Gateway = cpppo_smol::proxy::Gateway;
    fn gateway(addr: SocketAddr, options: ClientOptions) -> Self::Gateway {
        cpppo_smol::proxy::Gateway::new(vec![addr], options)
    }
    fn gateway_read(g: &mut Self::Gateway, params: &[Parameter]) -> Vec<Result<Reply, ParamError>> {
        smol::block_on(g.read(params)).unwrap()
    }
    fn gateway_write(
        g: &mut Self::Gateway,
        param: &Parameter,
        values: &str,
    ) -> Result<Reply, ParamError> {
        smol::block_on(g.write(param, values)).unwrap().unwrap()
    }
    fn gateway_proxy(g: &Self::Gateway) -> &Proxy {
        g.proxy()
    }
    fn serve_modbus(device: Device, options: ServeOptions) -> Box<dyn Serving<Device>> {
        Box::new(cpppo_smol::serve(device, options).unwrap())
    }
}

client_tests!(Smol);

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
