//! `cpppo enip getattr` and `cpppo enip poll` as a user runs them, against `cpppo enip
//! server` started by the test on a free loopback port: Identity and PowerFlex-style
//! attributes read and written with cpppo's output lines, and a poller that survives
//! the server being stopped and restarted on the same port (asserted by a value
//! written after the restart), on each runtime.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Running, BIN};

const PATIENCE: Duration = Duration::from_secs(20);

/// A simulated PowerFlex: host port parameters at class 0x93, attribute 10.
const DRIVE: &[&str] = &[
    "Output_Current@0x93/7/10=REAL",
    "Motor_Velocity@0x93/3/10=REAL",
    "Speed_Units@0x93/300/10=DINT",
];

/// `cpppo enip server` on `address` with the drive's attributes; its address.
fn server(address: &str) -> (Running, SocketAddr) {
    let mut args = vec!["enip", "server", "-a", address];
    args.extend(DRIVE);
    let s = Running::spawn(&args, PATIENCE);
    let addr = s.listening();
    (s, addr)
}

/// Run getattr to completion: exit status, stdout lines without their time stamps,
/// stderr.
fn getattr(args: &[&str]) -> (i32, Vec<String>, String) {
    let out = Command::new(BIN)
        .args(["enip", "getattr"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match l.split_once(": ") {
            Some((_stamp, rest)) => rest.to_string(),
            None => l.to_string(),
        })
        .collect();
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn getattr_reads_identity_and_drive_attributes_on_each_runtime() {
    let (_server, addr) = server("127.0.0.1:0");
    let address = addr.to_string();
    for runtime in ["blocking", "smol", "mio"] {
        let (code, lines, err) = getattr(&[
            "-a",
            &address,
            "--runtime",
            runtime,
            "@1/1/1",
            "@1/1/7",
            "@1/1/7=SSTRING",
            "Identity",
            "@0x93/7/10=(REAL)16.5",
            "Output Current",
            "@0x93/300/10=(DINT)1",
            "@0x93/300/10",
        ]);
        assert_eq!(code, 0, "{runtime}: {err}");
        assert_eq!(
            lines,
            [
                "  0: Single G_A_S      @0x0001/1/1 == [1, 0]",
                "  1: Single G_A_S      @0x0001/1/7 == [20, 49, 55, 53, 54, 45, 76, 54, 49, 47, 66, \
                 32, 76, 79, 71, 73, 88, 53, 53, 54, 49]",
                "  2: Single G_A_S      @0x0001/1/7 == ['1756-L61/B LOGIX5561']",
                "  3: Single G_A_A      @0x0001/1 == [1, 14, 54, 2836, 12640, 7079450, \
                 '1756-L61/B LOGIX5561']",
                "  4: Single S_A_S      @0x0093/7/10 == True",
                "  5: Single G_A_S      @0x0093/7/10 == [16.5]",
                "  6: Single S_A_S      @0x0093/300/10 == True",
                "  7: Single G_A_S      @0x0093/300/10 == [1, 0, 0, 0]",
            ],
            "{runtime}"
        );
    }
    // A refused attribute prints None and fails the run; the others still answer.
    let (code, lines, _) = getattr(&["-a", &address, "-S", "@1/1/99", "@1/1/1"]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            "  0: Single G_A_S      @0x0001/1/99 == None",
            "  1: Single G_A_S      @0x0001/1/1 == [1, 0]",
        ]
    );
}

#[test]
fn getattr_bad_input_is_one_line_and_no_server_is_a_failure() {
    let (code, lines, err) = getattr(&["-a", "127.0.0.1:1", "SCADA[0]"]);
    assert_eq!((code, lines.len()), (2, 0));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"SCADA[0]\""), "{err}");
    let (code, _, err) = getattr(&["-a", "127.0.0.1:9", "-t", "1", "@1/1/1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    let out = Command::new(BIN)
        .args(["enip", "poll", "Bogus Name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"Bogus Name\""));
}

#[test]
fn poll_survives_a_restart() {
    survives_a_restart("blocking");
}

#[test]
fn poll_survives_a_restart_on_smol() {
    survives_a_restart("smol");
}

#[test]
fn poll_survives_a_restart_on_mio() {
    survives_a_restart("mio");
}

fn set(addr: SocketAddr, value: &str) {
    let (code, lines, err) = getattr(&[
        "-a",
        &addr.to_string(),
        "-S",
        &format!("@0x93/7/10=(REAL){value}"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines, ["  0: Single S_A_S      @0x0093/7/10 == True"]);
}

/// The poller on `runtime`: first values, a change, the server restarted on the same
/// port and a value written after the restart.
fn survives_a_restart(runtime: &str) {
    let (server1, addr) = server("127.0.0.1:0");
    let target = addr.to_string();
    let poll = Running::spawn(
        &[
            "enip",
            "poll",
            "--runtime",
            runtime,
            "-a",
            &target,
            "-c",
            "0.2",
            "-t",
            "0.5",
            "-e",
            "Output Current",
            "Speed Units#0.5",
        ],
        PATIENCE,
    );
    assert_eq!(
        poll.line.trim_end(),
        format!("cpppo enip poll: polling {target}, 2 parameter(s), every 0.2s")
    );
    poll.wait_printed("Output Current == [0.0] Amps (was: None)\n");
    poll.wait_printed("Speed Units == [0] Hz/RPM (was: None)\n");
    // With -e every value read is printed too, as cpppo's poll prints them.
    poll.wait_printed("    Speed Units: [0]\n");
    set(addr, "16.5");
    poll.wait_printed("Output Current == [16.5] Amps (was: [0.0])\n");

    // The server goes away: the poller reports the failure and keeps trying.
    drop(server1);
    poll.wait_printed("Output Current: failed: ");
    let (_server2, addr2) = server(&target);
    assert_eq!(addr2, addr);
    set(addr, "42.25");
    poll.wait_printed("Output Current == [42.25] Amps (was: ");
}
