//! Real Modbus clients against our Modbus simulator, on every runtime: pymodbus (Modbus/TCP
//! and its RTU framer over TCP), pyModbusTCP and `mbpoll`. Each asserts the values it
//! reads back, every supported function code and the exception cases.

// Helpers outside `#[test]` functions unwrap too: a failed set-up is a test failure.
#![allow(clippy::unwrap_used)]

use cpppo_conformance::{checked, loopback, program, python, run_peer, Runtime};
use cpppo_core::engine::Serving;
use cpppo_core::modbus::device::Device;
use cpppo_core::modbus::server::Transport;
use std::process::Command;

/// The register specs the peer scripts expect (cpppo's syntax).
const SPECS: [&str; 4] = [
    "1-100=0",
    "10001-10016=1",
    "30001-30010=7",
    "40001-40100=99",
];

fn start(runtime: Runtime, transport: Transport) -> Box<dyn Serving<Device>> {
    let mut device = Device::from_specs(SPECS).unwrap();
    device.transport = transport;
    let mut options = loopback();
    options.udp = false;
    runtime.serve(device, options).unwrap()
}

fn host_port(server: &dyn Serving<Device>) -> Vec<String> {
    let addr = server.local_addrs()[0];
    vec![addr.ip().to_string(), addr.port().to_string()]
}

#[test]
fn pymodbus_tcp_and_rtu_framer_on_every_runtime() {
    let Some(python) = python() else { return };
    for runtime in Runtime::ALL {
        for (transport, framing) in [(Transport::Tcp, "socket"), (Transport::RtuOverTcp, "rtu")] {
            let server = start(runtime, transport);
            let mut args = host_port(server.as_ref());
            args.push(framing.to_string());
            let out = run_peer(&python, "modbus_pymodbus.py", &args);
            assert!(
                out.contains("checks passed"),
                "{runtime:?} {framing}: {out}"
            );
            // The writes the client made are in the device the server hands back.
            let device = server.shutdown().unwrap();
            let unit = device.unit(1).unwrap();
            use cpppo_core::modbus::numbering::Table;
            assert_eq!(unit.read(Table::HoldingRegisters, 8, 1), Some(vec![999]));
            assert_eq!(
                unit.read(Table::HoldingRegisters, 30, 3),
                Some(vec![5, 6, 7])
            );
        }
    }
}

#[test]
fn pymodbustcp_on_every_runtime() {
    let Some(python) = python() else { return };
    for runtime in Runtime::ALL {
        let server = start(runtime, Transport::Tcp);
        let out = run_peer(
            &python,
            "modbus_pymodbustcp.py",
            &host_port(server.as_ref()),
        );
        assert!(out.contains("checks passed"), "{runtime:?}: {out}");
        server.shutdown().unwrap();
    }
}

#[test]
fn mbpoll_on_every_runtime() {
    let Some(mbpoll) = program("mbpoll") else {
        return;
    };
    for runtime in Runtime::ALL {
        let server = start(runtime, Transport::Tcp);
        let [host, port] = <[String; 2]>::try_from(host_port(server.as_ref())).unwrap();
        // mbpoll [options] host [values to write]
        let run_with = |options: &[&str], values: &[&str]| {
            let mut cmd = Command::new(&mbpoll);
            cmd.args(["-m", "tcp", "-p", &port, "-a", "1", "-1", "-0"]);
            cmd.args(options).arg(&host).args(values);
            cmd.output().unwrap()
        };
        let run = |options: &[&str]| run_with(options, &[]);
        // Write holding register 5 (0-based), then read 4..8 back.
        checked("mbpoll write", run_with(&["-t", "4", "-r", "5"], &["4321"]));
        let out = checked("mbpoll read", run(&["-t", "4", "-r", "4", "-c", "4"]));
        let values: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with('['))
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(values, ["99", "4321", "99", "99"], "{runtime:?}:\n{out}");
        // Input registers and coils.
        let out = checked("mbpoll input", run(&["-t", "3", "-r", "0", "-c", "2"]));
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with('[') && l.ends_with("7"))
                .count(),
            2,
            "{out}"
        );
        // Past the end of the holding registers: mbpoll reports the exception.
        let failed = run(&["-t", "4", "-r", "100", "-c", "1"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&failed.stdout),
            String::from_utf8_lossy(&failed.stderr)
        );
        assert!(
            text.to_lowercase().contains("illegal data address"),
            "{runtime:?}: {text}"
        );
        server.shutdown().unwrap();
    }
}
