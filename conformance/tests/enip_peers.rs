//! Real EtherNet/IP clients against our simulated Logix controller, on every runtime:
//! pycomm3, pylogix and cpppo's own client. Each writes, reads back and compares.

// Helpers outside `#[test]` functions unwrap too: a failed set-up is a test failure.
#![allow(clippy::unwrap_used)]

use cpppo_conformance::{loopback, python, run_peer, Runtime};
use cpppo_core::cip::data::{Text, Values};
use cpppo_core::controller::tags::TagList;
use cpppo_core::controller::{Controller, ControllerConfig, TagDatabase};
use cpppo_core::engine::Serving;
use cpppo_core::enip::server::{Server, ServerOptions};

/// The tags the peer scripts expect.
const TAGS: [&str; 8] = [
    "NAME=SSTRING",
    "SCADA=INT[1000]",
    "FLOAT=REAL[10]",
    "COUNT=DINT",
    "BIG=LINT[4]",
    "FLAG=BOOL",
    "SMALL=SINT[4]",
    "TEXT=STRING",
];

type Logix = Server<Controller>;

fn start(runtime: Runtime) -> Box<dyn Serving<Logix>> {
    let mut db = TagDatabase::new();
    for tag in TAGS {
        db.add_str(tag).unwrap();
    }
    let json = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/tags.json"),
    )
    .unwrap();
    let list: TagList = serde_json::from_str(&json).unwrap();
    db.load_tag_list(&list).unwrap();
    let controller = Controller::with_tags(ControllerConfig::default(), db);
    runtime
        .serve(
            Server::new(controller, ServerOptions::default()),
            loopback(),
        )
        .unwrap()
}

fn host_port(server: &dyn Serving<Logix>) -> Vec<String> {
    let addr = server.local_addrs()[0];
    vec![addr.ip().to_string(), addr.port().to_string()]
}

#[test]
fn pycomm3_on_every_runtime() {
    let Some(python) = python() else { return };
    for runtime in Runtime::ALL {
        let server = start(runtime);
        let out = run_peer(&python, "enip_pycomm3.py", &host_port(server.as_ref()));
        assert!(out.contains("checks passed"), "{runtime:?}: {out}");
        let server = server.shutdown().unwrap();
        // What pycomm3 wrote is in the controller's tags.
        assert_eq!(
            server.device().tags().values("TEXT"),
            Some(Values::LogixString(vec![Text(b"hello, world".to_vec())]))
        );
        let Some(Values::Int(scada)) = server.device().tags().values("SCADA") else {
            panic!("SCADA is an INT array");
        };
        assert_eq!((scada[0], &scada[10..15]), (42, &[1, 2, 3, 4, 5][..]));
        assert!(scada[500..900].iter().copied().eq(0..400));
    }
}

#[test]
fn pylogix_on_every_runtime() {
    let Some(python) = python() else { return };
    for runtime in Runtime::ALL {
        let server = start(runtime);
        let out = run_peer(&python, "enip_pylogix.py", &host_port(server.as_ref()));
        assert!(out.contains("checks passed"), "{runtime:?}: {out}");
        let server = server.shutdown().unwrap();
        assert_eq!(
            server.device().tags().values("TEXT"),
            Some(Values::LogixString(vec![Text(b"pylogix".to_vec())]))
        );
    }
}

#[test]
fn cpppo_client_tools_on_every_runtime() {
    let Some(python) = python() else { return };
    for runtime in Runtime::ALL {
        let server = start(runtime);
        let out = run_peer(&python, "enip_cpppo.py", &host_port(server.as_ref()));
        assert!(out.contains("checks passed"), "{runtime:?}: {out}");
        let server = server.shutdown().unwrap();
        let Some(Values::Int(scada)) = server.device().tags().values("SCADA") else {
            panic!("SCADA is an INT array");
        };
        assert_eq!(&scada[1..4], &[10, 20, 30]);
        assert!(scada[500..1000].iter().copied().eq(0..500));
    }
}
