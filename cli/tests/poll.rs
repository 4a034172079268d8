//! `cpppo modbus poll` as a user runs it, against `cpppo modbus sim` started by the
//! test: initial writes, change lines, a write from elsewhere, and a restart of the
//! simulator on the same port (the poller reconnects and reports the new values).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Running, BIN};

use cpppo_core::modbus::pdu::{Request, Response};
use cpppo_core::modbus::tcp::Adu;
use cpppo_core::wire::Encode;

const PATIENCE: Duration = Duration::from_secs(15);

fn sim(address: &str, registers: &str) -> (Running, SocketAddr) {
    let sim = Running::spawn(
        &[
            "modbus",
            "sim",
            "--runtime",
            "blocking",
            "-a",
            address,
            registers,
        ],
        PATIENCE,
    );
    let addr = sim.listening();
    (sim, addr)
}

/// Write one holding register with our own socket.
fn write_register(addr: SocketAddr, address: u16, value: u16) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = Request::WriteSingleRegister { address, value };
    s.write_all(&Adu::new(7, 1, &request).to_vec()).unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    let adu = Adu::decode(&reply).unwrap();
    assert_eq!(
        adu.response().unwrap(),
        Response::WriteSingleRegister { address, value }
    );
}

#[test]
fn polls_prints_changes_and_survives_a_restart() {
    survives_a_restart("blocking");
}

#[test]
fn polls_and_survives_a_restart_on_smol() {
    survives_a_restart("smol");
}

#[test]
fn polls_and_survives_a_restart_on_mio() {
    survives_a_restart("mio");
}

/// The poller on `runtime`: the initial write, a change, and the simulator restarted.
fn survives_a_restart(runtime: &str) {
    let (simulator, addr) = sim("127.0.0.1:0", "40001-40100=99");
    let target = addr.to_string();
    let poll = Running::spawn(
        &[
            "modbus",
            "poll",
            "--runtime",
            runtime,
            "-a",
            &target,
            "40001-40005=9",
            "40001-40010",
        ],
        PATIENCE,
    );
    assert_eq!(
        poll.line.trim_end(),
        format!("cpppo modbus poll: polling {target} (tcp), unit 1, every 1s")
    );
    poll.wait_printed("40010 == 99 (was: None)\n");
    let first: Vec<String> = (1..=10)
        .map(|i| {
            let v = if i <= 5 { 9 } else { 99 };
            format!("{} == {v} (was: None)", 40000 + i)
        })
        .collect();
    assert_eq!(
        poll.lines(),
        first,
        "the initial write comes before the first poll"
    );

    write_register(addr, 8, 999);
    poll.wait_printed("40009 == 999 (was: 99)\n");

    // The simulator goes away and comes back on the same port with other values.
    drop(simulator);
    std::thread::sleep(Duration::from_millis(300));
    let (_again, addr2) = sim(&target, "40001-40010=5");
    assert_eq!(addr2, addr);
    poll.wait_printed("40010 == 5 (was: 99)\n");
    let lines = poll.lines();
    let after: Vec<&str> = lines[11..].iter().map(String::as_str).collect();
    assert_eq!(
        after,
        [
            "40001 == 5 (was: 9)",
            "40002 == 5 (was: 9)",
            "40003 == 5 (was: 9)",
            "40004 == 5 (was: 9)",
            "40005 == 5 (was: 9)",
            "40006 == 5 (was: 99)",
            "40007 == 5 (was: 99)",
            "40008 == 5 (was: 99)",
            "40009 == 5 (was: 999)",
            "40010 == 5 (was: 99)",
        ]
    );
}

#[test]
fn bad_register_specs_are_one_line_and_exit_status_2() {
    for (args, culprit) in [
        (
            &["modbus", "poll", "-a", ":1502", "40001-4x"][..],
            "40001-4x",
        ),
        (
            &["modbus", "poll", "-a", ":1502", "30001=1"],
            "cannot write",
        ),
        (
            &["modbus", "poll", "-a", ":1502", "-R", "0", "40001"],
            "--rate",
        ),
    ] {
        let out = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(culprit), "{stderr}");
    }
}

#[test]
fn help_explains_every_option_with_an_example() {
    let out = Command::new(BIN)
        .args(["modbus", "poll", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if ["  -", "      --", "  [", "  <"]
            .iter()
            .any(|p| line.starts_with(p))
        {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    let blocks: Vec<_> = blocks
        .into_iter()
        .filter(|b| !b.trim_start().starts_with("-h, --help"))
        .collect();
    assert_eq!(blocks.len(), 10, "{blocks:#?}");
    for block in blocks {
        assert!(block.contains("Example"), "no example in {block}");
    }
    assert!(text.contains("Examples:\n  cpppo modbus poll "));
}
