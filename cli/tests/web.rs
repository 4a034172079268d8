//! `cpppo enip server --web` as a user runs it: the web API binds the loopback unless
//! told otherwise, answers over HTTP, and `server/control/done/true` ends the process
//! with exit status 0. A bad `--web` is one line and exit status 2.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cpppo");
/// How long anything may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn get(web: SocketAddr, path: &str) -> (u16, String) {
    cpppo_conformance::http_get(web, path, PATIENCE)
}

#[test]
fn done_through_the_web_api_ends_the_process() {
    for runtime in ["blocking", "smol", "mio"] {
        let mut child = Command::new(BIN)
            .args(["enip", "server", "-a", "127.0.0.1:0", "--runtime", runtime])
            .args(["--web", ":0", "SCADA=INT[10]"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let web: SocketAddr = line
            .split("web API on http://")
            .nth(1)
            .and_then(|rest| rest.trim().strip_suffix('/'))
            .unwrap_or_else(|| panic!("no web address in {line:?}"))
            .parse()
            .unwrap();
        assert!(web.ip().is_loopback(), "{line}");
        let (status, body) = get(web, "/api/server/control");
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["data"]["server"]["control"]["latency"], 0.1, "{body}");
        let (status, body) = get(web, "/api/server/control/done/true");
        assert_eq!(status, 200, "{body}");
        let give_up = Instant::now() + PATIENCE;
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            if Instant::now() > give_up {
                let _ = child.kill();
                panic!("{runtime}: still running after done");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(exit.success(), "{runtime}: {exit}");
    }
}

#[test]
fn a_bad_web_address_is_one_line_and_exit_2() {
    let output = Command::new(BIN)
        .args([
            "enip",
            "server",
            "-a",
            "127.0.0.1:0",
            "--web",
            ":http",
            "SCADA=INT",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad --web \":http\""), "{stderr}");
}
