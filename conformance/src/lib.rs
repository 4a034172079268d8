//! Interop and conformance harness: real third-party peers, captured frames and vectors
//! run against cpppo-rs.
//!
//! The peer tests (`tests/*_peers.rs`) start our servers on each runtime on a free
//! loopback port and run real clients against them: pycomm3, pylogix and cpppo's own
//! client for EtherNet/IP; pymodbus, pyModbusTCP and `mbpoll` for Modbus. The Python
//! peers are small scripts in `peers/` that assert the values they read back; they run
//! in the virtual environment `.ci/run` makes (pinned in `peers/requirements.txt`).
//!
//! Where the peers are not installed, the tests say so on stderr and pass, unless
//! `CPPPO_REQUIRE_PEERS=1` (as `.ci/run` sets) makes a missing peer a failure.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cpppo_core::engine::{ServeOptions, Server, Serving};

/// The three runtimes every server test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `cpppo-blocking`: std threads.
    Blocking,
    /// `cpppo-smol`: smol tasks.
    Smol,
    /// `cpppo-mio`: one mio event loop.
    Mio,
}

impl Runtime {
    /// All of them, in a fixed order.
    pub const ALL: [Runtime; 3] = [Runtime::Blocking, Runtime::Smol, Runtime::Mio];

    /// Serve `server` on this runtime.
    pub fn serve<S>(self, server: S, options: ServeOptions) -> io::Result<Box<dyn Serving<S>>>
    where
        S: Server + Send + 'static,
        S::Connection: Send + 'static,
    {
        Ok(match self {
            Runtime::Blocking => Box::new(cpppo_blocking::serve(server, options)?),
            Runtime::Smol => Box::new(cpppo_smol::serve(server, options)?),
            Runtime::Mio => Box::new(cpppo_mio::serve(server, options)?),
        })
    }
}

/// Options listening on a free loopback port, TCP and UDP.
pub fn loopback() -> ServeOptions {
    let mut options = ServeOptions::new(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)));
    options.udp = true;
    options
}

/// Whether a missing peer fails the test (`CPPPO_REQUIRE_PEERS=1`, set by `.ci/run`).
pub fn peers_required() -> bool {
    std::env::var("CPPPO_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The Python interpreter with the peers installed: `$CPPPO_PEERS_PYTHON`, else the
/// venv `.ci/run` makes (`.venv-peers/` in the workspace). `None` (with a note on
/// stderr) when neither exists and peers are not required; a panic when required.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("CPPPO_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv-peers/bin/python"));
    if candidate.exists() {
        return Some(candidate);
    }
    missing(&format!("Python peers ({})", candidate.display()))
}

/// A program found on `PATH`, such as `mbpoll`; as [`python`] when missing.
pub fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    missing(name)
}

fn missing<T>(what: &str) -> Option<T> {
    assert!(
        !peers_required(),
        "{what} not installed, and CPPPO_REQUIRE_PEERS=1: run .ci/run"
    );
    eprintln!("SKIPPED: {what} not installed; run .ci/run to install the peers");
    None
}

/// Run a peer script from `peers/` with `python`, returning its output; panics with
/// the script's stdout and stderr when it fails.
pub fn run_peer(python: &Path, script: &str, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script);
    let output = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    checked(&format!("{script} {}", args.join(" ")), output)
}

/// `output`'s stdout when the command succeeded; a panic showing everything otherwise.
pub fn checked(what: &str, output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// One HTTP/1.1 GET of `path` from `addr` (the web API), waiting at most `patience`
/// for the answer: its status and body. Panics when the exchange fails.
pub fn http_get(addr: SocketAddr, path: &str, patience: Duration) -> (u16, String) {
    http_get_accepting(addr, path, "*/*", patience)
}

/// [`http_get`] with an `Accept` header (`text/html` as a browser sends).
pub fn http_get_accepting(
    addr: SocketAddr,
    path: &str,
    accept: &str,
    patience: Duration,
) -> (u16, String) {
    let exchange = || -> io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(patience))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    let response = exchange().unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"));
    (status, body.to_string())
}
