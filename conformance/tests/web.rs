//! The web API over HTTP, driving a running simulated controller (on every runtime)
//! while an EtherNet/IP client watches the effect: a changed delay reorders replies, a
//! forced error code appears in them, an EOF drops the client, disable refuses new
//! connections, done stops the server; pycomm3 sees what the API set. And the page at `/`, in a real headless browser
//! (`conformance/browser/`, Debian's chromium with playwright-core): a value edited in
//! the table is what an EtherNet/IP client then reads.

// Helpers outside `#[test]` functions unwrap too: a failed set-up is a test failure.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cpppo_blocking::client::{connect, ClientDriver};
use cpppo_blocking::web::{serve_web, WebHandle};
use cpppo_conformance::{
    http_get, http_get_accepting, loopback, peers_required, program, python, run_peer, workspace,
    Runtime,
};
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::parse_operation;
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::reachable;
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, LostReason, Value};
use cpppo_core::enip::server::{Server, ServerOptions};
use serde_json::Value as Json;

/// How long anything here may take before the test gives up (never reached when it
/// passes; no assertion is about speed).
const PATIENCE: Duration = Duration::from_secs(20);
/// The reply delay set for the ordering test: long enough that the undelayed client's
/// whole exchange fits inside it on a loaded machine.
const LONG_DELAY: &str = "5";

/// A simulator with its EtherNet/IP and web addresses.
struct Simulator {
    enip: SocketAddr,
    web: WebHandle,
}

fn start(runtime: Runtime) -> Simulator {
    let mut plc = Controller::new(ControllerConfig::default());
    plc.tags_mut().add_str("SCADA=INT[1000]").unwrap();
    plc.tags_mut().add_str("Speed=REAL").unwrap();
    let mut server = Server::new(plc, ServerOptions::default());
    // As `cpppo enip server --web` does: idle connections notice changes quickly, and
    // the API waits for them to.
    server.faults.latency = Some(Duration::from_millis(20));
    server.faults.timeout = Some(Duration::from_secs(5));
    let serving = runtime.serve(server, loopback()).unwrap();
    let enip = reachable(serving.local_addrs()[0]);
    let web = serve_web("127.0.0.1:0".parse().unwrap(), serving).unwrap();
    Simulator { enip, web }
}

/// One HTTP GET; the status and the body.
fn get(web: SocketAddr, path: &str) -> (u16, String) {
    http_get(web, path, PATIENCE)
}

/// A GET that must succeed, as JSON.
fn api(web: SocketAddr, path: &str) -> Json {
    let (status, body) = get(web, path);
    assert_eq!(status, 200, "{path}: {body}");
    let json: Json = serde_json::from_str(&body).unwrap();
    if json["command"].get("success").is_some() {
        assert_eq!(json["command"]["success"], true, "{path}: {body}");
    }
    json
}

/// An EtherNet/IP client with a registered session over its own socket.
struct Client {
    conn: ClientConn,
    driver: ClientDriver,
}

impl Client {
    fn connect(enip: SocketAddr) -> Client {
        let stream = connect(&[enip], PATIENCE).unwrap();
        let conn = ClientConn::new(
            Instant::now(),
            ClientOptions {
                timeout: PATIENCE,
                ..ClientOptions::default()
            },
        );
        Client {
            conn,
            driver: ClientDriver::new(Some(stream)),
        }
    }

    /// The local address, as the API names the connection (`127_0_0_1_PORT`).
    fn name(&self) -> String {
        let local = self.driver.stream.as_ref().unwrap().local_addr().unwrap();
        format!("127_0_0_1_{}", local.port())
    }

    /// Run one operation to its end: its result, or why it was lost.
    fn run(&mut self, operation: &str) -> Result<Result<Value, GeneralStatus>, LostReason> {
        let op = self
            .conn
            .submit(Instant::now(), parse_operation(operation).unwrap());
        let mut outcome = None;
        self.driver
            .run(&mut self.conn, Duration::from_millis(50), |client, _| {
                while let Some(event) = client.poll_event() {
                    match event {
                        ClientEvent::Reply { op: id, result } if id == op => {
                            outcome = Some(Ok(result.map_err(|s| s.general)));
                        }
                        ClientEvent::Lost { op: id, why } if id == op => {
                            outcome = Some(Err(why));
                        }
                        _ => {}
                    }
                }
                (false, outcome.is_some())
            })
            .unwrap();
        outcome.unwrap()
    }

    fn read(&mut self, operation: &str) -> Values {
        match self.run(operation) {
            Ok(Ok(Value::Values(values))) => values,
            other => panic!("{operation}: {other:?}"),
        }
    }
}

/// Wait until the API lists `name` with at least `requests` requests handled.
fn wait_for_requests(web: SocketAddr, name: &str, requests: u64) {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let json = api(web, &format!("/api/connections/{name}"));
        let seen = json["data"]["connections"][name]["requests"].as_u64();
        if seen.is_some_and(|n| n >= requests) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{name} never made {requests} requests: {json}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn delay_changes_reply_order() {
    for runtime in Runtime::ALL {
        let sim = start(runtime);
        let web = sim.web.local_addr();
        let mut slow = Client::connect(sim.enip);
        assert_eq!(slow.read("SCADA[0]"), Values::Int(vec![0]));
        let slow_name = slow.name();
        api(web, &format!("/api/options/delay/value/{LONG_DELAY}"));
        let (tx, rx) = mpsc::channel();
        let slow_tx = tx.clone();
        let slow_thread = thread::spawn(move || {
            let values = slow.read("SCADA[1]");
            slow_tx.send("delayed").unwrap();
            values
        });
        // RegisterSession, the first read, and now this one: the server has computed
        // its reply (it waits out the delay) before the delay is lifted.
        wait_for_requests(web, &slow_name, 3);
        let json = api(web, "/api/options/delay/value=0");
        assert_eq!(json["data"]["options"]["delay"]["value"], 0.0);
        let mut fast = Client::connect(sim.enip);
        assert_eq!(fast.read("SCADA[2]"), Values::Int(vec![0]));
        tx.send("undelayed").unwrap();
        assert_eq!(slow_thread.join().unwrap(), Values::Int(vec![0]));
        let order: Vec<&str> = rx.try_iter().collect();
        assert_eq!(order, ["undelayed", "delayed"], "{runtime:?}");
        sim.web.shutdown().unwrap();
    }
}

#[test]
fn error_code_appears_in_replies_and_values_written_are_read() {
    for runtime in Runtime::ALL {
        let sim = start(runtime);
        let web = sim.web.local_addr();
        let mut client = Client::connect(sim.enip);
        let json = api(web, "/api/tags/SCADA/attribute%5B3%5D=4");
        assert_eq!(json["data"]["tags"]["SCADA"]["value"][3], 4);
        api(web, "/api/tags/Speed/attribute=2.5");
        assert_eq!(client.read("SCADA[2-4]"), Values::Int(vec![0, 4, 0]));
        assert_eq!(client.read("Speed"), Values::Real(vec![2.5]));

        api(web, "/api/tags/SCADA/error=8");
        assert_eq!(
            client.run("SCADA[3]"),
            Ok(Err(GeneralStatus(8))),
            "{runtime:?}"
        );
        assert_eq!(client.read("Speed"), Values::Real(vec![2.5]), "only SCADA");
        api(web, "/api/tags/SCADA/error/0");
        assert_eq!(client.read("SCADA[3]"), Values::Int(vec![4]));

        // A client's write is what the API then shows.
        assert_eq!(client.run("SCADA[5]=(INT)77"), Ok(Ok(Value::Written)));
        let json = api(web, "/api/tags/SCADA/attribute[5]");
        assert_eq!(json["command"]["message"], "tags.SCADA.attribute[5]: 77");
        sim.web.shutdown().unwrap();
    }
}

#[test]
fn pycomm3_sees_a_forced_error_and_a_value_set_over_http() {
    let Some(python) = python() else { return };
    let sim = start(Runtime::Blocking);
    let web = sim.web.local_addr();
    api(web, "/api/tags/SCADA/attribute[4]=-321");
    api(web, "/api/tags/Speed/error=8");
    let args: Vec<String> = [
        sim.enip.ip().to_string(),
        sim.enip.port().to_string(),
        "SCADA[4]".into(),
        "Speed".into(),
    ]
    .into();
    let out = run_peer(&python, "enip_pycomm3_read.py", &args);
    let results: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results[0]["value"], -321, "{out}");
    assert_eq!(results[0]["error"], Json::Null, "{out}");
    assert_eq!(results[1]["value"], Json::Null, "{out}");
    // pycomm3's text for general status 0x08.
    assert_eq!(results[1]["error"], "Service not supported", "{out}");
    sim.web.shutdown().unwrap();
}

#[test]
fn eof_drops_the_client_by_name_or_wildcard() {
    for runtime in Runtime::ALL {
        let sim = start(runtime);
        let web = sim.web.local_addr();
        let mut a = Client::connect(sim.enip);
        let mut b = Client::connect(sim.enip);
        a.read("SCADA[0]");
        b.read("SCADA[0]");
        let (a_name, b_name) = (a.name(), b.name());
        let json = api(web, "/api/connections");
        let listed = json["data"]["connections"].as_object().unwrap();
        assert_eq!(listed.len(), 2, "{json}");
        assert_eq!(
            listed[&a_name]["port"],
            a_name.rsplit('_').next().unwrap().parse::<u64>().unwrap()
        );
        assert_eq!(listed[&a_name]["interface"], "127.0.0.1");
        assert!(listed[&a_name]["received"].as_u64().unwrap() > 0);
        assert_eq!(listed[&a_name]["requests"], 2);

        // By name: the answer comes once the connection has closed.
        api(web, &format!("/api/connections/{a_name}/eof/true"));
        let json = api(web, "/api/connections");
        assert!(json["data"]["connections"].get(&a_name).is_none(), "{json}");
        assert!(json["data"]["connections"].get(&b_name).is_some(), "{json}");
        assert_eq!(a.run("SCADA[0]"), Err(LostReason::Closed), "{runtime:?}");
        assert_eq!(b.read("SCADA[0]"), Values::Int(vec![0]));

        api(web, "/api/connections/*/eof/true");
        assert_eq!(b.run("SCADA[0]"), Err(LostReason::Closed), "{runtime:?}");
        let json = api(web, "/api/connections");
        assert_eq!(json["data"], serde_json::json!({}));
        let json = api(web, "/api/connections/*/eof/true");
        assert_eq!(
            json["command"]["message"],
            "nothing in connections matches \"*\""
        );
        let (status, body) = get(web, &format!("/api/connections/{b_name}/eof/true"));
        assert_eq!(status, 404, "gone: {body}");
        sim.web.shutdown().unwrap();
    }
}

#[test]
fn disable_refuses_connections_until_enabled() {
    for runtime in Runtime::ALL {
        let sim = start(runtime);
        let web = sim.web.local_addr();
        let mut before = Client::connect(sim.enip);
        before.read("SCADA[0]");
        let json = api(web, "/api/server/control/disable/true");
        assert_eq!(json["data"]["server"]["control"]["disable"], true);
        assert_eq!(
            before.run("SCADA[0]"),
            Err(LostReason::Closed),
            "{runtime:?}"
        );
        let mut refused = Client::connect(sim.enip);
        assert_eq!(
            refused.run("SCADA[0]"),
            Err(LostReason::Closed),
            "{runtime:?}"
        );
        api(web, "/api/server/control/disable/false");
        let mut after = Client::connect(sim.enip);
        assert_eq!(after.read("SCADA[0]"), Values::Int(vec![0]));
        sim.web.shutdown().unwrap();
    }
}

#[test]
fn done_stops_the_server() {
    for runtime in Runtime::ALL {
        let sim = start(runtime);
        let web = sim.web.local_addr();
        let mut client = Client::connect(sim.enip);
        client.read("SCADA[0]");
        api(web, "/api/tags/SCADA/attribute[9]=99");
        let json = api(web, "/api/server/control/done/true");
        assert_eq!(json["data"]["server"]["control"]["done"], true);
        // `wait` returns: the server stopped by itself, with its state.
        let server = sim.web.wait().unwrap();
        assert!(server.is_done());
        let Some(Values::Int(scada)) = server.device().tags().values("SCADA") else {
            panic!("SCADA is an INT array")
        };
        assert_eq!(scada[9], 99);
        assert_eq!(
            client.run("SCADA[0]"),
            Err(LostReason::Closed),
            "{runtime:?}"
        );
        // The web API closes its port too (its listener thread ends shortly after).
        let give_up = Instant::now() + PATIENCE;
        while TcpStream::connect(web).is_ok() {
            assert!(Instant::now() < give_up, "the web API still listens");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn bad_requests_get_json_errors() {
    let sim = start(Runtime::Blocking);
    let web = sim.web.local_addr();
    for (path, status, says) in [
        ("/api/widgets", 400, "no group matches"),
        ("/api/tags/SCADA/colour=1", 400, "unknown command"),
        (
            "/api/options/delay/value=soon",
            400,
            "not a number of seconds",
        ),
        ("/api/tags/SCADA/attribute[5000]=1", 400, "beyond the end"),
        ("/api/tags/SCADA/attribute[1]=99999", 400, "out of range"),
        ("/api/tags/Nope/error=8", 404, "nothing in tags matches"),
        ("/api/tags/%ZZ", 400, "bad URL encoding"),
        ("/nothing", 404, "not an API path"),
    ] {
        let (got, body) = get(web, path);
        assert_eq!(got, status, "{path}: {body}");
        let json: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(json["command"]["success"], false, "{path}");
        let message = json["command"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
    }
    // A browser gets the JSON in a page, escaped.
    let (status, html) = http_get_accepting(
        web,
        "/api/tags/SCADA/error=%3Cb%3E",
        "text/html,application/xhtml+xml",
        PATIENCE,
    );
    assert_eq!(status, 400);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<pre>{"), "{html}");
    assert!(
        html.contains("&lt;b&gt;") && !html.contains("<b>"),
        "{html}"
    );
    // The server still serves.
    let (status, page) = get(web, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<table id=\"tags\">"));
    assert_eq!(
        api(web, "/api/tags/SCADA")["data"]["tags"]["SCADA"]["elements"],
        1000
    );
    sim.web.shutdown().unwrap();
}

/// Node, Debian's chromium and `npm ci` in `conformance/browser/` (as `.ci/run` does).
fn browser() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let node = program("node")?;
    let chromium = Path::new("/usr/bin/chromium");
    let dir = workspace().join("conformance/browser");
    let installed = dir.join("node_modules/playwright-core");
    if !chromium.exists() || !installed.exists() {
        let what = format!(
            "chromium ({}) or playwright-core ({})",
            chromium.display(),
            installed.display()
        );
        assert!(
            !peers_required(),
            "{what} not installed, and CPPPO_REQUIRE_PEERS=1: run .ci/run"
        );
        eprintln!("SKIPPED: {what} not installed; run .ci/run");
        return None;
    }
    Some((node, dir))
}

#[test]
fn the_page_edits_a_value_an_enip_client_reads() {
    let Some((node, dir)) = browser() else { return };
    let sim = start(Runtime::Mio);
    let web = sim.web.local_addr();
    // The page must show what a client wrote.
    let mut client = Client::connect(sim.enip);
    assert_eq!(client.run("SCADA[2]=(INT)55"), Ok(Ok(Value::Written)));
    let profile = std::env::temp_dir().join(format!("cpppo-browser-{}", std::process::id()));
    let output = Command::new(node)
        .arg(dir.join("page.mjs"))
        .arg(format!("http://{web}/"))
        .arg(&profile)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let stdout = cpppo_conformance::checked("browser page.mjs", output);
    assert!(stdout.contains("page checks passed"), "{stdout}");
    // The browser dropped the client's connection.
    assert_eq!(client.run("SCADA[0]"), Err(LostReason::Closed));
    // What it typed into the table: SCADA[7] = 1234, Speed = 6.5, error 8 on SCADA then
    // cleared (SCADA[8] = 99999 refused), and the delay it set.
    let mut client = Client::connect(sim.enip);
    assert_eq!(client.read("SCADA[6-8]"), Values::Int(vec![0, 1234, 0]));
    assert_eq!(client.read("Speed"), Values::Real(vec![6.5]));
    let json = api(web, "/api");
    assert_eq!(json["data"]["options"]["delay"]["value"], 0.25);
    assert_eq!(json["data"]["tags"]["SCADA"]["error"], 0);
    sim.web.shutdown().unwrap();
}
