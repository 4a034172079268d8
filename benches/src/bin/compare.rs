//! `compare`: the same workloads, on loopback, against several EtherNet/IP and Modbus
//! servers and clients, in one invocation; prints tables with ratios, and writes JSON
//! and an SVG plot of throughput against pipeline depth.
//!
//! ```sh
//! cargo run --release -p cpppo-benches --bin compare -- [--quick] [--placement shared|split]
//!     [--json PATH] [--svg PATH] [--only SECTION,...]
//! ```
//!
//! Every server and every client is its own process, started under `taskset`: with
//! `--placement shared` (the default) client and server run on CPU 0, with `split` the
//! server on CPU 1 and the client on CPU 0. Every implementation compared in a table ran
//! under the same placement in the same invocation.
//!
//! Sections (`--only` selects some):
//! - `servers`: our EtherNet/IP server on each runtime, cpppo's simulator
//!   (`python -m cpppo.server.enip`) and a raw TCP echo of the same packet sizes, under
//!   our client; read `SCADA[0-9]` at depths 1, 4, 16, 20, with and without Multiple
//!   Service Packet (500 bytes).
//! - `workloads`: write 10 elements, and read 100 tags (`T0`..`T99`) by Multiple Service
//!   Packet, against our server (mio) and cpppo's simulator, depths 1 and 20.
//! - `clients`: our client, cpppo's client and pycomm3 against the same server (ours,
//!   mio), each workload.
//! - `modbus`: our Modbus server on each runtime, pymodbus' server, a libmodbus server
//!   (compiled here with `gcc` against Debian's `libmodbus5`; skipped when missing) and
//!   the echo, under our client: read 10 holding registers at depths 1, 4, 16, 20.
//! - `delay`: servers delaying every reply by 50 ms (`--delay 0.05`): depth 20 against
//!   depth 1.
//!
//! The worker roles (`serve-enip`, `client-enip`, ...) are this same program run with
//! a role as its first argument; they are internal. With `COMPARE_VERBOSE=1` our
//! EtherNet/IP client also prints its statistics (transactions against requests: how
//! well Multiple Service Packets were packed) on stderr.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use cpppo_core::cip::operation::{parse_operation, Operation};
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{ServeOptions, Serving};
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions};
use cpppo_core::enip::server::{ReplyDelay, Server, ServerOptions};
use serde::{Deserialize, Serialize};

/// Pipeline depths measured.
const DEPTHS: [usize; 4] = [1, 4, 16, 20];
/// The Multiple Service Packet budget (bytes) when MSP is on (cpppo's `--multiple`).
const MSP_BYTES: usize = 500;
/// The high-latency case's reply delay.
const DELAY: f64 = 0.05;
/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Operations queued ahead per unit of depth when packing MSPs (as `cpppo enip client`).
const QUEUE_PER_DEPTH: usize = 32;
/// Each worker's socket timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The EtherNet/IP tags every server holds.
fn enip_tags() -> Vec<String> {
    let mut tags = vec!["SCADA=INT[1000]".to_string()];
    tags.extend((0..100).map(|i| format!("T{i}=DINT")));
    tags
}

/// The Modbus registers every server holds (protocol addresses 0..99).
const MODBUS_SPEC: &str = "40001-40100=99";

/// One worker's answer: what it completed in how long.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Measured {
    ops: u64,
    elements: u64,
    failed: u64,
    seconds: f64,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    section: String,
    workload: String,
    server: String,
    client: String,
    depth: usize,
    msp: bool,
    delay: f64,
    ops_per_s: f64,
    elements_per_s: f64,
    failed: u64,
    note: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve-enip") => serve_enip(&args[1..]),
        Some("serve-modbus") => serve_modbus(&args[1..]),
        Some("serve-echo") => serve_echo(&args[1..]),
        Some("client-enip") => client_enip(&args[1..]),
        Some("client-modbus") => client_modbus(&args[1..]),
        Some("client-echo") => client_echo(&args[1..]),
        _ => orchestrate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, String>;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Res<T> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("argument {} ({what}) missing or invalid", i + 1))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---------------------------------------------------------------- servers (workers)

/// Keep a server handle alive until the process is killed.
fn forever<T>(handle: T) -> Res<()> {
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&handle);
    }
}

/// `serve-enip RUNTIME PORT DELAY`: our Logix simulator (the tags of [`enip_tags`]).
fn serve_enip(args: &[String]) -> Res<()> {
    let runtime: String = arg(args, 0, "runtime")?;
    let port: u16 = arg(args, 1, "port")?;
    let delay: f64 = arg(args, 2, "delay")?;
    let mut plc = Controller::new(ControllerConfig::default());
    for tag in enip_tags() {
        plc.tags_mut().add_str(&tag).map_err(|e| e.to_string())?;
    }
    let mut server = Server::new(plc, ServerOptions::default());
    if delay > 0.0 {
        server.faults.delay = ReplyDelay::Fixed(Duration::from_secs_f64(delay));
    }
    let options = ServeOptions::new(loopback(port));
    let io = |e: std::io::Error| e.to_string();
    let handle: Box<dyn Serving<Server<Controller>>> = match runtime.as_str() {
        "blocking" => Box::new(cpppo_blocking::serve(server, options).map_err(io)?),
        "smol" => Box::new(cpppo_smol::serve(server, options).map_err(io)?),
        "mio" => Box::new(cpppo_mio::serve(server, options).map_err(io)?),
        other => return Err(format!("no runtime {other}")),
    };
    forever(handle)
}

/// `serve-modbus RUNTIME PORT`: our Modbus/TCP device ([`MODBUS_SPEC`]).
fn serve_modbus(args: &[String]) -> Res<()> {
    use cpppo_core::modbus::device::Device;
    let runtime: String = arg(args, 0, "runtime")?;
    let port: u16 = arg(args, 1, "port")?;
    let device = Device::from_specs([MODBUS_SPEC]).map_err(|e| e.to_string())?;
    let options = ServeOptions::new(loopback(port));
    let io = |e: std::io::Error| e.to_string();
    let handle: Box<dyn Serving<Device>> = match runtime.as_str() {
        "blocking" => Box::new(cpppo_blocking::serve(device, options).map_err(io)?),
        "smol" => Box::new(cpppo_smol::serve(device, options).map_err(io)?),
        "mio" => Box::new(cpppo_mio::serve(device, options).map_err(io)?),
        other => return Err(format!("no runtime {other}")),
    };
    forever(handle)
}

/// `serve-echo PORT REQUEST REPLY`: for every REQUEST bytes received, REPLY bytes sent
/// back (all replies due after one read go out in one write); a thread per connection.
fn serve_echo(args: &[String]) -> Res<()> {
    let port: u16 = arg(args, 0, "port")?;
    let request: usize = arg(args, 1, "request length")?;
    let reply: usize = arg(args, 2, "reply length")?;
    let listener = TcpListener::bind(loopback(port)).map_err(|e| e.to_string())?;
    println!("ready");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = echo_connection(stream, request.max(1), reply);
        });
    }
    Ok(())
}

fn echo_connection(mut stream: TcpStream, request: usize, reply: usize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    let mut pending = 0usize;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        pending += n;
        let whole = pending / request;
        pending %= request;
        if whole > 0 {
            out.clear();
            out.resize(whole * reply, 0);
            stream.write_all(&out)?;
        }
    }
}

// ---------------------------------------------------------------- clients (workers)

fn report(m: Measured) -> Res<()> {
    println!("{}", serde_json::to_string(&m).map_err(|e| e.to_string())?);
    Ok(())
}

/// The operations of an EtherNet/IP workload, cycled through, and the elements each
/// one moves.
fn enip_workload(name: &str) -> Res<(Vec<Operation>, u64)> {
    let parse = |t: &str| parse_operation(t).map_err(|e| format!("{t}: {e}"));
    Ok(match name {
        "read10" => (vec![parse("SCADA[0-9]")?], 10),
        "write10" => (vec![parse("SCADA[10-19]=(INT)1,2,3,4,5,6,7,8,9,10")?], 10),
        "tags100" => (
            (0..100)
                .map(|i| parse(&format!("T{i}")))
                .collect::<Res<_>>()?,
            1,
        ),
        other => return Err(format!("no workload {other}")),
    })
}

/// `client-enip PORT WORKLOAD DEPTH MULTIPLE SECONDS`: our client (core's engine on the
/// blocking runtime's driver), operations kept queued until SECONDS have passed.
fn client_enip(args: &[String]) -> Res<()> {
    use cpppo_blocking::client::{connect, ClientDriver};
    let port: u16 = arg(args, 0, "port")?;
    let workload: String = arg(args, 1, "workload")?;
    let depth: usize = arg(args, 2, "depth")?;
    let multiple: usize = arg(args, 3, "multiple")?;
    let seconds: f64 = arg(args, 4, "seconds")?;
    let (ops, elements) = enip_workload(&workload)?;
    let stream = connect(&[loopback(port)], IO_TIMEOUT).map_err(|e| e.to_string())?;
    let begun = Instant::now();
    let deadline = begun + Duration::from_secs_f64(seconds);
    let options = ClientOptions {
        depth,
        multiple,
        timeout: IO_TIMEOUT,
        ..ClientOptions::default()
    };
    let mut client = ClientConn::new(begun, options);
    let window = depth.saturating_mul(if multiple > 0 { QUEUE_PER_DEPTH } else { 1 });
    let (mut done, mut failed, mut next) = (0u64, 0u64, 0usize);
    let mut driver = ClientDriver::new(Some(stream));
    driver
        .run(&mut client, IO_TIMEOUT, |c, d| {
            let mut moved = false;
            while let Some(event) = c.poll_event() {
                moved = true;
                match event {
                    ClientEvent::Reply { result: Ok(_), .. } => done += 1,
                    ClientEvent::Reply { .. } | ClientEvent::Lost { .. } => failed += 1,
                    ClientEvent::Failed(_) => failed += 1,
                    _ => {}
                }
            }
            let now = Instant::now();
            if now < deadline {
                while c.outstanding() < window {
                    let op = ops.get(next % ops.len()).cloned();
                    if let Some(op) = op {
                        c.submit(now, op);
                    }
                    next += 1;
                    moved = true;
                }
            }
            let finished = d.stream.is_none() || (now >= deadline && c.outstanding() == 0);
            (moved, finished)
        })
        .map_err(|e| e.to_string())?;
    if std::env::var_os("COMPARE_VERBOSE").is_some() {
        eprintln!("{:?}", client.stats());
    }
    report(Measured {
        ops: done,
        elements: done * elements,
        failed,
        seconds: begun.elapsed().as_secs_f64(),
    })
}

/// `client-modbus PORT DEPTH SECONDS`: our Modbus/TCP client reading 10 holding
/// registers (address 0) per request, DEPTH in flight.
fn client_modbus(args: &[String]) -> Res<()> {
    use cpppo_blocking::client::{connect, ClientDriver};
    use cpppo_core::modbus::client::{ClientConfig, ClientConn, ClientEvent};
    use cpppo_core::modbus::pdu::Request;
    let port: u16 = arg(args, 0, "port")?;
    let depth: usize = arg(args, 1, "depth")?;
    let seconds: f64 = arg(args, 2, "seconds")?;
    let stream = connect(&[loopback(port)], IO_TIMEOUT).map_err(|e| e.to_string())?;
    let begun = Instant::now();
    let deadline = begun + Duration::from_secs_f64(seconds);
    let mut client = ClientConn::tcp(ClientConfig {
        depth,
        timeout: IO_TIMEOUT,
        ..ClientConfig::default()
    });
    let request = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 10,
    };
    let (mut done, mut failed) = (0u64, 0u64);
    let mut driver = ClientDriver::new(Some(stream));
    driver
        .run(&mut client, IO_TIMEOUT, |c, d| {
            let mut moved = false;
            while let Some(event) = c.poll_event() {
                moved = true;
                match event {
                    ClientEvent::Reply {
                        response: Ok(_), ..
                    } => done += 1,
                    ClientEvent::Reply { .. }
                    | ClientEvent::Timeout { .. }
                    | ClientEvent::Invalid { .. }
                    | ClientEvent::Aborted { .. } => failed += 1,
                    _ => {}
                }
            }
            let now = Instant::now();
            if now < deadline {
                while c.in_flight() + c.queued() < depth {
                    c.submit(now, request.clone(), 1);
                    moved = true;
                }
            }
            let idle = c.in_flight() + c.queued() == 0;
            (moved, d.stream.is_none() || (now >= deadline && idle))
        })
        .map_err(|e| e.to_string())?;
    report(Measured {
        ops: done,
        elements: done * 10,
        failed,
        seconds: begun.elapsed().as_secs_f64(),
    })
}

/// `client-echo PORT REQUEST REPLY DEPTH SECONDS`: DEPTH requests of REQUEST bytes in
/// flight; each whole REPLY received is one done, and another request goes out.
fn client_echo(args: &[String]) -> Res<()> {
    let port: u16 = arg(args, 0, "port")?;
    let request: usize = arg(args, 1, "request length")?;
    let reply: usize = arg(args, 2, "reply length")?;
    let depth: usize = arg(args, 3, "depth")?;
    let seconds: f64 = arg(args, 4, "seconds")?;
    let io = |e: std::io::Error| e.to_string();
    let mut stream = TcpStream::connect(loopback(port)).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let begun = Instant::now();
    let deadline = begun + Duration::from_secs_f64(seconds);
    let mut out = vec![0u8; request * depth];
    stream.write_all(&out).map_err(io)?;
    let (mut in_flight, mut done, mut pending) = (depth, 0u64, 0usize);
    let mut buf = vec![0u8; 65536];
    while in_flight > 0 {
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Err("the echo server closed".into());
        }
        pending += n;
        let whole = pending / reply.max(1);
        pending %= reply.max(1);
        done += whole as u64;
        in_flight -= whole;
        if whole > 0 && Instant::now() < deadline {
            out.clear();
            out.resize(request * whole, 0);
            stream.write_all(&out).map_err(io)?;
            in_flight += whole;
        }
    }
    report(Measured {
        ops: done,
        elements: done,
        failed: 0,
        seconds: begun.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------- orchestration

/// Where the processes run.
#[derive(Debug, Clone, Copy)]
struct Placement {
    name: &'static str,
    server_cpu: usize,
    client_cpu: usize,
}

struct Settings {
    seconds: f64,
    delay_seconds: f64,
    depths: Vec<usize>,
    placement: Placement,
    only: Option<Vec<String>>,
    json: PathBuf,
    svg: PathBuf,
    exe: PathBuf,
    python: Option<PathBuf>,
    libmodbus: Option<PathBuf>,
}

impl Settings {
    fn wants(&self, section: &str) -> bool {
        match &self.only {
            None => true,
            Some(only) => only.iter().any(|s| s == section),
        }
    }
}

/// A server process, killed when dropped.
struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Res<u16> {
    let listener = TcpListener::bind(loopback(0)).map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn pinned(cpu: usize, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(cpu.to_string()).arg(program);
    command
}

/// Start a server (`args` with `{port}` replaced) and wait until its port accepts.
fn start(s: &Settings, program: &Path, args: &[String]) -> Res<Running> {
    let port = free_port()?;
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let child = pinned(s.placement.server_cpu, program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let mut running = Running { child, port };
    let begun = Instant::now();
    loop {
        if TcpStream::connect(loopback(port)).is_ok() {
            // Let a single-connection server (libmodbus) go back to accepting.
            std::thread::sleep(Duration::from_millis(100));
            return Ok(running);
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(format!("{} {args:?} exited: {status}", program.display()));
        }
        if begun.elapsed() > START_TIMEOUT {
            return Err(format!("{} {args:?} did not listen", program.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a client to completion and read its one JSON line.
fn measure(s: &Settings, program: &Path, args: &[String]) -> Res<Measured> {
    let output = pinned(s.placement.client_cpu, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match line {
        Some(line) if output.status.success() => serde_json::from_str(line)
            .map_err(|e| format!("{}: bad report {line:?}: {e}", program.display())),
        _ => Err(format!(
            "{} {args:?}: {}: {}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
    }
}

struct Report {
    rows: Vec<Row>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        section: &str,
        workload: &str,
        server: &str,
        client: &str,
        depth: usize,
        msp: bool,
        delay: f64,
        result: Res<Measured>,
    ) {
        let (m, note) = match result {
            Ok(m) => (m, String::new()),
            Err(e) => (Measured::default(), e),
        };
        let per_s = |n: u64| n as f64 / m.seconds.max(f64::MIN_POSITIVE);
        let row = Row {
            section: section.into(),
            workload: workload.into(),
            server: server.into(),
            client: client.into(),
            depth,
            msp,
            delay,
            ops_per_s: if m.seconds > 0.0 { per_s(m.ops) } else { 0.0 },
            elements_per_s: if m.seconds > 0.0 {
                per_s(m.elements)
            } else {
                0.0
            },
            failed: m.failed,
            note,
        };
        eprintln!(
            "  {:<9} {:<8} {:<10} {:<8} depth {:>2} msp {:<5} {:>10.0} ops/s {:>11.0} el/s {}",
            row.section,
            row.workload,
            row.server,
            row.client,
            row.depth,
            row.msp,
            row.ops_per_s,
            row.elements_per_s,
            row.note
        );
        self.rows.push(row);
    }

    fn find(
        &self,
        section: &str,
        workload: &str,
        server: &str,
        client: &str,
        depth: usize,
        msp: bool,
    ) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.section == section
                && r.workload == workload
                && r.server == server
                && r.client == client
                && r.depth == depth
                && r.msp == msp
                && r.note.is_empty()
        })
    }
}

/// The sizes of our client's read `SCADA[0-9]` request and its reply: the echo's.
fn enip_read10_sizes() -> (usize, usize) {
    use cpppo_benches::workload::engines::EnipPair;
    let now = Instant::now();
    let mut pair = EnipPair::new(now, ClientOptions::default());
    let op = parse_operation("SCADA[0-9]").ok();
    if let Some(op) = op {
        pair.client.submit(now, op);
    }
    let mut request = Vec::new();
    while pair.client.poll_transmit(now, &mut request) {}
    pair.conn.handle_input(now, &request, &mut pair.server);
    let mut reply = Vec::new();
    while pair.conn.poll_transmit(now, &mut reply) {}
    (request.len(), reply.len())
}

/// Modbus/TCP read of 10 holding registers: the request ADU, and the response's.
const MODBUS_SIZES: (usize, usize) = (12, 9 + 20);

fn orchestrate(args: &[String]) -> Res<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let placement = match value("--placement").as_deref() {
        None | Some("shared") => Placement {
            name: "shared",
            server_cpu: 0,
            client_cpu: 0,
        },
        Some("split") => Placement {
            name: "split",
            server_cpu: 1,
            client_cpu: 0,
        },
        Some(other) => return Err(format!("--placement {other}: expected shared or split")),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let python = std::env::var_os("CPPPO_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(".venv-peers/bin/python"));
    let s = Settings {
        seconds: if quick { 0.5 } else { 2.0 },
        delay_seconds: if quick { 1.0 } else { 3.0 },
        depths: if quick { vec![1, 20] } else { DEPTHS.to_vec() },
        placement,
        only: value("--only").map(|o| o.split(',').map(str::to_string).collect()),
        json: value("--json")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target/compare.json")),
        svg: value("--svg")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target/throughput.svg")),
        exe: std::env::current_exe().map_err(|e| e.to_string())?,
        python: python.exists().then_some(python),
        libmodbus: build_libmodbus_server(&workspace),
    };
    let peers = workspace.join("benches/peers");
    let mut report = Report { rows: Vec::new() };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "compare: placement {} (server CPU {}, client CPU {}), {} s per run, load {}",
        s.placement.name,
        s.placement.server_cpu,
        s.placement.client_cpu,
        s.seconds,
        load.trim()
    );
    let secs = s.seconds.to_string();
    let ours = |runtime: &str, delay: f64| {
        vec![
            "serve-enip".to_string(),
            runtime.to_string(),
            "{port}".into(),
            delay.to_string(),
        ]
    };
    let cpppo_sim = |delay: f64| {
        let mut a = vec![
            "-m".to_string(),
            "cpppo.server.enip".into(),
            "--address".into(),
            "127.0.0.1:{port}".into(),
            "--no-udp".into(),
        ];
        if delay > 0.0 {
            a.extend(["--delay".into(), delay.to_string()]);
        }
        a.extend(enip_tags());
        a
    };
    let our_client = |port: u16, workload: &str, depth: usize, msp: bool, secs: &str| {
        vec![
            "client-enip".to_string(),
            port.to_string(),
            workload.into(),
            depth.to_string(),
            if msp { MSP_BYTES } else { 0 }.to_string(),
            secs.into(),
        ]
    };

    // EtherNet/IP servers under our client.
    let runtimes = ["blocking", "smol", "mio"];
    if s.wants("servers") {
        let (request, reply) = enip_read10_sizes();
        let echo_args = vec![
            "serve-echo".to_string(),
            "{port}".into(),
            request.to_string(),
            reply.to_string(),
        ];
        match start(&s, &s.exe, &echo_args) {
            Ok(echo) => {
                for &depth in &s.depths {
                    let a = [
                        "client-echo".to_string(),
                        echo.port.to_string(),
                        request.to_string(),
                        reply.to_string(),
                        depth.to_string(),
                        secs.clone(),
                    ];
                    let r = measure(&s, &s.exe, &a);
                    report.add("servers", "read10", "echo", "echo", depth, false, 0.0, r);
                }
            }
            Err(e) => report.add("servers", "read10", "echo", "echo", 1, false, 0.0, Err(e)),
        }
        let mut servers: Vec<(&str, PathBuf, Vec<String>)> = runtimes
            .iter()
            .map(|r| (*r, s.exe.clone(), ours(r, 0.0)))
            .collect();
        if let Some(py) = &s.python {
            servers.push(("cpppo", py.clone(), cpppo_sim(0.0)));
        }
        for (name, program, a) in &servers {
            let server = match start(&s, program, a) {
                Ok(server) => server,
                Err(e) => {
                    report.add("servers", "read10", name, "ours", 1, false, 0.0, Err(e));
                    continue;
                }
            };
            for &depth in &s.depths {
                for msp in [false, true] {
                    let r = measure(
                        &s,
                        &s.exe,
                        &our_client(server.port, "read10", depth, msp, &secs),
                    );
                    report.add("servers", "read10", name, "ours", depth, msp, 0.0, r);
                }
            }
        }
    }

    // Other workloads, our server (mio) and cpppo's.
    if s.wants("workloads") {
        let mut servers: Vec<(&str, PathBuf, Vec<String>)> =
            vec![("mio", s.exe.clone(), ours("mio", 0.0))];
        if let Some(py) = &s.python {
            servers.push(("cpppo", py.clone(), cpppo_sim(0.0)));
        }
        for (name, program, a) in &servers {
            let server = match start(&s, program, a) {
                Ok(server) => server,
                Err(e) => {
                    report.add("workloads", "-", name, "ours", 1, false, 0.0, Err(e));
                    continue;
                }
            };
            for (workload, depth, msp) in [
                ("write10", 1, false),
                ("write10", 20, false),
                ("write10", 20, true),
                ("tags100", 1, true),
                ("tags100", 20, true),
            ] {
                let r = measure(
                    &s,
                    &s.exe,
                    &our_client(server.port, workload, depth, msp, &secs),
                );
                report.add("workloads", workload, name, "ours", depth, msp, 0.0, r);
            }
        }
    }

    // Clients against the same server (ours, mio).
    if s.wants("clients") {
        match start(&s, &s.exe, &ours("mio", 0.0)) {
            Ok(server) => {
                let script = peers.join("enip_client_rate.py");
                for (workload, depth, msp) in [
                    ("read10", 1, false),
                    ("read10", 20, true),
                    ("write10", 1, false),
                    ("tags100", 1, true),
                ] {
                    let r = measure(
                        &s,
                        &s.exe,
                        &our_client(server.port, workload, depth, msp, &secs),
                    );
                    report.add("clients", workload, "mio", "ours", depth, msp, 0.0, r);
                    let Some(py) = &s.python else { continue };
                    for peer in ["cpppo", "pycomm3"] {
                        // pycomm3 has no pipelining: depth 1 only (it packs tags100 itself).
                        if peer == "pycomm3" && depth > 1 {
                            continue;
                        }
                        let a = [
                            script.display().to_string(),
                            peer.into(),
                            "127.0.0.1".into(),
                            server.port.to_string(),
                            workload.into(),
                            depth.to_string(),
                            if msp { MSP_BYTES } else { 0 }.to_string(),
                            secs.clone(),
                        ];
                        let r = measure(&s, py, &a);
                        report.add("clients", workload, "mio", peer, depth, msp, 0.0, r);
                    }
                }
            }
            Err(e) => report.add("clients", "-", "mio", "ours", 1, false, 0.0, Err(e)),
        }
    }

    // Modbus servers under our client.
    if s.wants("modbus") {
        let (request, reply) = MODBUS_SIZES;
        let mut servers: Vec<(&str, PathBuf, Vec<String>)> = vec![(
            "echo",
            s.exe.clone(),
            vec![
                "serve-echo".into(),
                "{port}".into(),
                request.to_string(),
                reply.to_string(),
            ],
        )];
        for r in runtimes {
            servers.push((
                r,
                s.exe.clone(),
                vec!["serve-modbus".into(), r.into(), "{port}".into()],
            ));
        }
        if let Some(py) = &s.python {
            let script = workspace.join("conformance/peers/modbus_pymodbus_server.py");
            servers.push((
                "pymodbus",
                py.clone(),
                vec![script.display().to_string(), "{port}".into()],
            ));
        }
        match &s.libmodbus {
            Some(program) => servers.push(("libmodbus", program.clone(), vec!["{port}".into()])),
            None => report.add(
                "modbus",
                "read10",
                "libmodbus",
                "ours",
                1,
                false,
                0.0,
                Err("no libmodbus server (gcc or libmodbus5 missing)".into()),
            ),
        }
        for (name, program, a) in &servers {
            let server = match start(&s, program, a) {
                Ok(server) => server,
                Err(e) => {
                    report.add("modbus", "read10", name, "ours", 1, false, 0.0, Err(e));
                    continue;
                }
            };
            for &depth in &s.depths {
                let a: Vec<String> = if *name == "echo" {
                    vec![
                        "client-echo".into(),
                        server.port.to_string(),
                        request.to_string(),
                        reply.to_string(),
                        depth.to_string(),
                        secs.clone(),
                    ]
                } else {
                    vec![
                        "client-modbus".into(),
                        server.port.to_string(),
                        depth.to_string(),
                        secs.clone(),
                    ]
                };
                let client = if *name == "echo" { "echo" } else { "ours" };
                let r = measure(&s, &s.exe, &a);
                report.add("modbus", "read10", name, client, depth, false, 0.0, r);
            }
        }
    }

    // 50 ms per reply.
    if s.wants("delay") {
        let mut servers: Vec<(&str, PathBuf, Vec<String>)> =
            vec![("mio", s.exe.clone(), ours("mio", DELAY))];
        if let Some(py) = &s.python {
            servers.push(("cpppo", py.clone(), cpppo_sim(DELAY)));
        }
        let secs = s.delay_seconds.to_string();
        for (name, program, a) in &servers {
            let server = match start(&s, program, a) {
                Ok(server) => server,
                Err(e) => {
                    report.add("delay", "read10", name, "ours", 1, false, DELAY, Err(e));
                    continue;
                }
            };
            for (depth, msp) in [(1, false), (20, false), (20, true)] {
                let r = measure(
                    &s,
                    &s.exe,
                    &our_client(server.port, "read10", depth, msp, &secs),
                );
                report.add("delay", "read10", name, "ours", depth, msp, DELAY, r);
            }
        }
    }

    print_tables(&s, &report);
    let json = serde_json::json!({
        "placement": s.placement.name,
        "server_cpu": s.placement.server_cpu,
        "client_cpu": s.placement.client_cpu,
        "seconds_per_run": s.seconds,
        "load_average_at_start": load.trim(),
        "machine": machine(),
        "rows": report.rows,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    std::fs::write(&s.json, text).map_err(|e| format!("{}: {e}", s.json.display()))?;
    std::fs::write(&s.svg, svg(&report, &s)).map_err(|e| format!("{}: {e}", s.svg.display()))?;
    println!("\nwrote {} and {}", s.json.display(), s.svg.display());
    Ok(())
}

/// `gcc` the libmodbus server into `target/`, or `None` (with a note) if it cannot be.
fn build_libmodbus_server(workspace: &Path) -> Option<PathBuf> {
    let source = workspace.join("benches/peers/libmodbus_server.c");
    let out = workspace.join("target/libmodbus_server");
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&source)
        .arg("-l:libmodbus.so.5")
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        _ => {
            eprintln!(
                "compare: cannot build {} (gcc, libmodbus5): libmodbus rows skipped",
                source.display()
            );
            None
        }
    }
}

/// The CPU model and count, kernel: the machine line of the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} x {model}, Linux {}", kernel.trim())
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn print_tables(s: &Settings, report: &Report) {
    println!(
        "\nplacement {} (server CPU {}, client CPU {}); {}",
        s.placement.name,
        s.placement.server_cpu,
        s.placement.client_cpu,
        machine()
    );
    let sections = [
        (
            "servers",
            "EtherNet/IP servers, our client, read SCADA[0-9] (10 elements/op)",
            "echo",
            "cpppo",
        ),
        (
            "workloads",
            "EtherNet/IP workloads, our client",
            "",
            "cpppo",
        ),
        (
            "clients",
            "EtherNet/IP clients against our server (mio)",
            "",
            "",
        ),
        (
            "modbus",
            "Modbus/TCP servers, our client, read 10 holding registers",
            "echo",
            "libmodbus",
        ),
        (
            "delay",
            "Reply delay 0.05 s, our client, read SCADA[0-9]",
            "",
            "",
        ),
    ];
    for (section, title, echo, reference) in sections {
        let rows: Vec<&Row> = report
            .rows
            .iter()
            .filter(|r| r.section == section)
            .collect();
        if rows.is_empty() {
            continue;
        }
        println!("\n{title}");
        println!(
            "{:<9} {:<10} {:<8} {:>5} {:>5} {:>12} {:>13} {:>8} {:>10} {:>9}",
            "workload",
            "server",
            "client",
            "depth",
            "msp",
            "ops/s",
            "elements/s",
            "vs echo",
            if reference.is_empty() {
                "vs ours"
            } else {
                reference
            },
            "vs depth1"
        );
        for r in &rows {
            let echo_rate = (!echo.is_empty() && !r.msp)
                .then(|| report.find(section, &r.workload, "echo", "echo", r.depth, false))
                .flatten()
                .map(|e| e.ops_per_s);
            let other = if reference.is_empty() {
                // Clients: against ours in the same configuration.
                report
                    .find(section, &r.workload, &r.server, "ours", r.depth, r.msp)
                    .map(|o| o.elements_per_s)
            } else {
                report
                    .find(section, &r.workload, reference, &r.client, r.depth, r.msp)
                    .map(|o| o.elements_per_s)
            };
            let depth1 = report
                .find(section, &r.workload, &r.server, &r.client, 1, false)
                .map(|o| o.elements_per_s);
            println!(
                "{:<9} {:<10} {:<8} {:>5} {:>5} {:>12.0} {:>13.0} {:>8} {:>10} {:>9} {}",
                r.workload,
                r.server,
                r.client,
                r.depth,
                if r.msp { "yes" } else { "no" },
                r.ops_per_s,
                r.elements_per_s,
                ratio(r.ops_per_s, echo_rate),
                ratio(r.elements_per_s, other),
                ratio(r.elements_per_s, depth1),
                if r.failed > 0 {
                    format!("{} failed", r.failed)
                } else {
                    r.note.clone()
                }
            );
        }
    }
}

/// Throughput against depth, one line per implementation, log scale: EtherNet/IP reads
/// of `SCADA[0-9]` per second on the left, Modbus reads of 10 registers per second on
/// the right (the echo: round trips per second).
fn svg(report: &Report, s: &Settings) -> String {
    let (w, h) = (1000.0, 460.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let colours = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    let panels = [
        ("servers", "EtherNet/IP read SCADA[0-9]: reads/s", 0.0),
        ("modbus", "Modbus/TCP read 10 registers: requests/s", 500.0),
    ];
    // Operations (round trips for the echo) per second: with MSP, reads, not packets.
    for (section, title, x0) in panels {
        let rows: Vec<&Row> = report
            .rows
            .iter()
            .filter(|r| r.section == section && r.note.is_empty() && r.ops_per_s > 0.0)
            .collect();
        let value = |r: &Row| r.ops_per_s;
        let (lo, hi) = rows
            .iter()
            .map(|r| value(r))
            .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if rows.is_empty() {
            continue;
        }
        let (lo, hi) = (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()),
        );
        let (px, py, pw, ph) = (x0 + 70.0, 40.0, 300.0, 330.0);
        let max_depth = s.depths.iter().copied().max().unwrap_or(20) as f64;
        let x = |d: usize| px + pw * (d as f64 - 1.0) / (max_depth - 1.0).max(1.0);
        let y = |v: f64| {
            py + ph * (1.0 - (v.log10() - lo.log10()) / (hi.log10() - lo.log10()).max(1e-9))
        };
        out += &format!(
            "<text x=\"{}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{title}</text>\n<rect x=\"{px}\" y=\"{py}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>\n",
            x0 + 20.0
        );
        let mut decade = lo;
        while decade <= hi * 1.0001 {
            let yy = y(decade);
            out += &format!(
                "<line x1=\"{px}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                px + pw,
                px - 6.0,
                yy + 4.0,
                human(decade)
            );
            decade *= 10.0;
        }
        for &d in &s.depths {
            out += &format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{d}</text>\n",
                x(d),
                py + ph + 16.0
            );
        }
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">pipeline depth</text>\n",
            px + pw / 2.0,
            py + ph + 34.0
        );
        let mut series: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
        for r in &rows {
            let name = if r.msp {
                format!("{} + MSP", r.server)
            } else {
                r.server.clone()
            };
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, points)) => points.push((r.depth, value(r))),
                None => series.push((name, vec![(r.depth, value(r))])),
            }
        }
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = colours.get(i % colours.len()).copied().unwrap_or("#000");
            let path: Vec<String> = points
                .iter()
                .map(|&(d, v)| format!("{:.1},{:.1}", x(d), y(v)))
                .collect();
            out += &format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
                path.join(" ")
            );
            for &(d, v) in points {
                out += &format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\n",
                    x(d),
                    y(v)
                );
            }
            let ly = py + 14.0 + 16.0 * i as f64;
            out += &format!(
                "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{:.1}\">{name}</text>\n",
                px + pw + 8.0,
                px + pw + 24.0,
                ly - 4.0,
                ly - 4.0,
                px + pw + 28.0,
                ly
            );
        }
    }
    out += &format!(
        "<text x=\"20\" y=\"{}\" fill=\"#555\">loopback, placement {} (server CPU {}, client CPU {}); {}</text>\n</svg>\n",
        h - 12.0,
        s.placement.name,
        s.placement.server_cpu,
        s.placement.client_cpu,
        machine()
    );
    out
}

/// 1000 as 1k, 1000000 as 1M.
fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}
