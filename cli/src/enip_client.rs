//! `cpppo enip client`: cpppo's `python -m cpppo.server.enip.client` on the `Connector`
//! of the `--runtime` chosen ([`cpppo_blocking::client`] by default,
//! [`cpppo_smol::client`], [`cpppo_mio::client`]), each running core's pipeline
//! ([`cpppo_core::enip::client::pipeline`]): read and write tags given in cpppo's
//! operation syntax, print each result as cpppo does with `-p`
//! (`            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'`) or as a line of JSON with
//! `--json`, a progress line each second and cpppo's TPS summary with `-v`, and exit 1
//! if any operation failed. `-i`/`-s` send sessionless ListIdentity / ListServices (by UDP with
//! `-u`, to every responder with `-b`).
//!
//! Not here: cpppo's `--priority-time-tick`/`--timeout-ticks`, `-I`, `-L`, `-P`, `-l`,
//! and tag I/O over UDP (`-u` applies to `-i`/`-s`); `-i`/`-s` always use plain sockets,
//! whatever `--runtime`.

use std::io::{BufRead, ErrorKind, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use clap::Args;
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::{parse_operation, Operation};
use cpppo_core::enip::client::pipeline::{Harvested, Outcome, Pipelining, Summary};
use cpppo_core::enip::client::{
    decode_list_reply, list_request, ClientEvent, ClientOptions, ListReply, Value,
};
use cpppo_core::enip::cpf::Identity;
use cpppo_core::enip::encapsulation::Command;
use cpppo_core::enip::ENIP_PORT;

use crate::address::parse_address;
use crate::serve::{parse_seconds, CliError, Runtime};
use cpppo_blocking::client::connect;
use cpppo_runtimes::Progress;

/// The command name in messages.
const COMMAND: &str = "cpppo enip client";

/// The Multiple Service Packet budget of a bare `-m` (cpppo's ~500 bytes).
const DEFAULT_MULTIPLE: &str = "500";

/// The encapsulation header's length, and where its data length field is.
const HEADER_LEN: usize = 24;
/// The encapsulation header's length field offset (bytes 2..4, little-endian).
const LENGTH_OFFSET: usize = 2;

/// `cpppo enip client` options.
#[derive(Debug, Args)]
pub struct EnipClientArgs {
    /// The controller, `[host][:port]` (port 44818 by default; no host is this host).
    ///
    /// Examples: `-a 127.0.0.1`, `-a plc.local:44818`, `-a 255.255.255.255 -u -b -i`.
    #[arg(short, long, value_name = "ADDRESS", default_value = ":44818")]
    address: String,

    /// Report the session, the connection, each failure, a progress line each second and
    /// the rate (cpppo's `Client Tag I/O  Average ... TPS`) on stderr.
    ///
    /// Example: `-v`.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Seconds each operation (and the connect) may take.
    ///
    /// Example: `-t 2.5`.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "5")]
    timeout: Duration,

    /// Do the operations this many times over.
    ///
    /// Example: `-r 100`.
    #[arg(short, long, value_name = "N", default_value_t = 1)]
    repeat: usize,

    /// Transactions in flight at once (pipelining).
    ///
    /// Example: `-d 4`.
    #[arg(short, long, value_name = "N", default_value_t = 1)]
    depth: usize,

    /// Pack operations into Multiple Service Packets of up to this many bytes (500 when
    /// given bare).
    ///
    /// Examples: `-m`, `--multiple=1000`.
    #[arg(short, long, value_name = "BYTES", num_args = 0..=1, require_equals = true,
          default_missing_value = DEFAULT_MULTIPLE)]
    multiple: Option<usize>,

    /// Always use Read/Write Tag Fragmented.
    ///
    /// Example: `-f`.
    #[arg(short, long, overrides_with = "no_fragment")]
    fragment: bool,

    /// Use Read/Write Tag, fragmenting only what does not fit (the default).
    ///
    /// Example: `-n`.
    #[arg(short, long, overrides_with = "fragment")]
    no_fragment: bool,

    /// The route path: `<port>/<link>`, JSON, or `false`/`0` for none (default `1/0`,
    /// the processor in slot 0 of the backplane).
    ///
    /// Examples: `--route-path 1/3`, `--route-path '[{"port": 1, "link": 0}]'`,
    /// `--route-path false`.
    #[arg(long, value_name = "PATH")]
    route_path: Option<String>,

    /// Where Unconnected Send goes (default `@6/1`, the Connection Manager); `''` sends
    /// requests straight to their object.
    ///
    /// Examples: `--send-path @6/1`, `--send-path ''`.
    #[arg(long, value_name = "PATH")]
    send_path: Option<String>,

    /// A simple (non-routing) device, eg. a MicroLogix: no route path, no Unconnected
    /// Send.
    ///
    /// Example: `-S`.
    #[arg(short = 'S', long)]
    simple: bool,

    /// Send `-i`/`-s` by UDP instead of TCP.
    ///
    /// Example: `-u -i`.
    #[arg(short, long)]
    udp: bool,

    /// Allow several replies to `-i`/`-s` (a broadcast address), collected for the whole
    /// timeout.
    ///
    /// Example: `-a 255.255.255.255 -u -b -i`.
    #[arg(short, long)]
    broadcast: bool,

    /// Send ListIdentity first and print the replies.
    ///
    /// Example: `-i`.
    #[arg(short = 'i', long)]
    list_identity: bool,

    /// Send ListServices first and print the replies.
    ///
    /// Example: `-s`.
    #[arg(short = 's', long)]
    list_services: bool,

    /// Print each operation's result on stdout, as cpppo does.
    ///
    /// Example: `-p`.
    #[arg(short, long, overrides_with = "no_print")]
    print: bool,

    /// Do not print results (the default).
    ///
    /// Example: `--no-print`.
    #[arg(long, overrides_with = "print")]
    no_print: bool,

    /// Print each result on stdout as one line of JSON (index, tag, method, value,
    /// status), and the summary (operations, failures, transactions, seconds) last.
    ///
    /// Example: `--json`.
    #[arg(long)]
    json: bool,

    /// Open a CIP connection (Forward Open) and send the operations connected.
    ///
    /// Example: `-c`.
    #[arg(short, long)]
    connected: bool,

    /// The I/O runtime that drives the session: `blocking` (a plain socket), `smol`
    /// (async, reads raced against the engine's deadlines) or `mio` (one event loop).
    /// Each drives the same client engine, so the results are the same.
    ///
    /// Example: `--runtime mio`.
    #[arg(long, value_enum, default_value_t = Runtime::Blocking)]
    runtime: Runtime,

    /// Operations: `TAG[FIRST-LAST]+OFFSET=(TYPE)VALUE,...`; without `=` a read; `-`
    /// reads more, one a line, from stdin.
    ///
    /// Examples: `SCADA[1-3]=10,20,30`, `SCADA[0-9]`, `Speed=(REAL)1.5`,
    /// `TEXT=(SSTRING)"hi"`, `SCADA[0-9]+4`, `- < ops.txt`.
    #[arg(value_name = "OPERATION")]
    operations: Vec<String>,
}

/// The client options the arguments ask for.
fn options(args: &EnipClientArgs) -> Result<ClientOptions, CliError> {
    let mut o = if args.simple {
        ClientOptions::simple()
    } else {
        ClientOptions::default()
    };
    if let Some(text) = &args.route_path {
        o = o
            .with_route_path(text)
            .map_err(|e| CliError::usage(format!("bad --route-path {text:?}: {e}")))?;
    }
    if let Some(text) = &args.send_path {
        o = o
            .with_send_path(text)
            .map_err(|e| CliError::usage(format!("bad --send-path {text:?}: {e}")))?;
    }
    if args.depth == 0 {
        return Err(CliError::usage("--depth must be at least 1"));
    }
    o.depth = args.depth;
    o.multiple = args.multiple.unwrap_or(0);
    o.fragment = args.fragment;
    o.timeout = args.timeout;
    o.connected = args.connected;
    Ok(o)
}

/// The operations, parsed, `--repeat` times over; a `-` stands for the lines of
/// `stdin` (blank lines and `#` comments skipped).
fn operations(args: &EnipClientArgs, stdin: impl BufRead) -> Result<Vec<Operation>, CliError> {
    let mut texts = Vec::new();
    let mut stdin = Some(stdin);
    for text in &args.operations {
        if text != "-" {
            texts.push(text.clone());
            continue;
        }
        let Some(input) = stdin.take() else {
            return Err(CliError::usage("'-' (stdin) may be given once"));
        };
        for line in input.lines() {
            let line = line.map_err(|e| CliError::failure(format!("stdin: {e}")))?;
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                texts.push(line.to_string());
            }
        }
    }
    let once = texts
        .iter()
        .map(|text| {
            parse_operation(text)
                .map_err(|e| CliError::usage(format!("bad operation {text:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(std::iter::repeat(once)
        .take(args.repeat)
        .flatten()
        .collect())
}

/// Values as plain JSON: numbers, strings, or a structure's handle and bytes.
fn values_json(values: &Values) -> serde_json::Value {
    use serde_json::json;
    match values {
        Values::Bool(v) => json!(v),
        Values::Sint(v) => json!(v),
        Values::Int(v) => json!(v),
        Values::Dint(v) => json!(v),
        Values::Lint(v) => json!(v),
        Values::Usint(v) => json!(v),
        Values::Uint(v) => json!(v),
        Values::Udint(v) | Values::Dword(v) => json!(v),
        Values::Ulint(v) => json!(v),
        Values::Real(v) => json!(v),
        Values::Lreal(v) => json!(v),
        Values::Sstring(v) | Values::String(v) | Values::LogixString(v) => {
            json!(v.iter().map(ToString::to_string).collect::<Vec<_>>())
        }
        Values::Structure { handle, data } => json!({ "handle": handle, "data": data }),
    }
}

/// One result as one line of JSON (`--json`): the operation's place, tag and range,
/// method, value (the values written, for a write) and how it ended.
fn result_json(done: &Harvested) -> serde_json::Value {
    let op = &done.operation;
    let value = match (&done.outcome, &op.values) {
        (Outcome::Answered(Ok(Value::Written)), Some(values)) => values_json(values),
        (Outcome::Answered(Ok(Value::Values(values))), _) => values_json(values),
        (Outcome::Answered(Ok(other)), _) => serde_json::to_value(other).unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    let (status, additional, error) = match &done.outcome {
        Outcome::Answered(Ok(_)) => (Some(0), Vec::new(), None),
        Outcome::Answered(Err(s)) => (Some(s.general.0), s.additional.clone(), None),
        Outcome::Lost(why) => (None, Vec::new(), Some(why.to_string())),
    };
    serde_json::json!({
        "index": done.index,
        "tag": done.description(),
        "method": op.method,
        "elements": op.elements,
        "offset": op.offset,
        "value": value,
        "ok": !done.failed(),
        "status": status,
        "additional_status": additional,
        "error": error,
    })
}

/// How often, at most, the progress line is written.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What the command does with each result and connection event, whatever the runtime.
struct Report<'a> {
    args: &'a EnipClientArgs,
    shown: String,
    total: usize,
    done: usize,
    begun: Instant,
    progress: Option<Instant>,
    /// Write the progress line over itself (stderr is a terminal).
    overwrite: bool,
}

impl Report<'_> {
    /// A connection event: a failure always, the rest with `-v`.
    fn event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Failed(why) => eprintln!("{COMMAND}: {}: {why}", self.shown),
            other if self.args.verbose > 0 => eprintln!("{COMMAND}: {}: {other:?}", self.shown),
            _ => {}
        }
    }

    /// One result, in operation order: printed with `-p` (cpppo's line) or `--json`, its
    /// failure reported with `-v`, and the progress line now and then.
    fn result(&mut self, done: &Harvested) {
        self.done += 1;
        if done.failed() && self.args.verbose > 0 {
            eprintln!(
                "{COMMAND}: {} failed: {}",
                done.operation.path,
                done.line().trim()
            );
        }
        let mut out = std::io::stdout().lock();
        if self.args.json {
            let _ = writeln!(out, "{}", result_json(done));
        } else if self.args.print {
            let _ = writeln!(out, "{}", done.line());
        }
        let _ = out.flush();
        if self.args.verbose > 0 || self.overwrite {
            let now = Instant::now();
            let since = self.progress.unwrap_or(self.begun);
            if now.saturating_duration_since(since) >= PROGRESS_INTERVAL {
                self.progress = Some(now);
                let rate = self.done as f64
                    / now
                        .saturating_duration_since(self.begun)
                        .as_secs_f64()
                        .max(f64::MIN_POSITIVE);
                let line = format!(
                    "{COMMAND}: progress {}/{} operations, {rate:.1} TPS",
                    self.done, self.total
                );
                if self.overwrite {
                    eprint!("\r{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The run is over: end an overwritten progress line; the summary with `-v` (and as
    /// the last JSON line with `--json`).
    fn finish(&mut self, summary: &Summary) {
        if self.overwrite && self.progress.is_some() {
            eprintln!();
        }
        if self.args.json {
            println!("{}", serde_json::json!({ "summary": summary }));
        }
        if self.args.verbose > 0 && summary.operations > 0 {
            eprintln!(
                "{COMMAND}: {} operations in {:.3}s using {} transactions, {} failed",
                summary.operations,
                summary.elapsed.as_secs_f64(),
                summary.transactions,
                summary.failures
            );
            eprintln!("{COMMAND}: {}", summary.line());
        }
    }
}

/// Run the operations over one session on the `--runtime` chosen, each runtime's
/// `Connector` with the same calls; returns how many failed.
fn run_operations(
    args: &EnipClientArgs,
    target: &[SocketAddr],
    options: ClientOptions,
    ops: Vec<Operation>,
) -> Result<usize, CliError> {
    let shown = target
        .first()
        .map_or_else(|| args.address.clone(), SocketAddr::to_string);
    let cannot = |e: std::io::Error| CliError::failure(format!("cannot connect to {shown}: {e}"));
    let mut report = Report {
        args,
        shown: shown.clone(),
        total: ops.len(),
        done: 0,
        // From the connect: cpppo's rate includes the session's set-up.
        begun: Instant::now(),
        progress: None,
        overwrite: std::io::stderr().is_terminal() && args.verbose == 0 && !args.json,
    };
    let pipelining = Pipelining::of(&options);
    let summary = args
        .runtime
        .operate_with(
            target,
            options,
            ops,
            pipelining,
            |progress| match progress {
                Progress::Event(event) => report.event(event),
                Progress::Result(done) => report.result(&done),
            },
        )
        .map_err(cannot)?;
    report.finish(&summary);
    Ok(usize::try_from(summary.failures).unwrap_or(usize::MAX))
}

/// An identity as one line of JSON.
fn identity_json(id: &Identity<'_>) -> serde_json::Value {
    serde_json::json!({
        "vendor_id": id.vendor_id,
        "device_type": id.device_type,
        "product_code": id.product_code,
        "revision": format!("{}.{}", id.revision_major, id.revision_minor),
        "status": id.status,
        "serial_number": format!("0x{:08x}", id.serial_number),
        "product_name": String::from_utf8_lossy(&id.product_name),
        "state": id.state,
        "sin_addr": id.socket_address.addr.to_string(),
        "sin_port": id.socket_address.port,
    })
}

/// Print one ListIdentity/ListServices reply as `List Identity  0 from ADDR: {...}`.
fn print_list(desc: &str, counter: usize, peer: SocketAddr, reply: &ListReply) {
    let items: Vec<serde_json::Value> = reply
        .identities
        .iter()
        .map(identity_json)
        .chain(reply.services.iter().map(|s| {
            serde_json::json!({
                "version": s.version,
                "capability": s.capability,
                "name": String::from_utf8_lossy(&s.name).trim_end_matches('\0'),
            })
        }))
        .collect();
    let body = match items.as_slice() {
        [one] => one.to_string(),
        _ => serde_json::Value::Array(items).to_string(),
    };
    println!("{desc} {counter:2} from {peer}: {body}");
}

/// Send one sessionless list request and print the replies; returns how many came.
fn list(args: &EnipClientArgs, target: &[SocketAddr], command: Command) -> Result<usize, CliError> {
    let desc = match command {
        Command::ListServices => "List Services",
        _ => "List Identity",
    };
    let peer = *target
        .first()
        .ok_or_else(|| CliError::usage(format!("no address in {:?}", args.address)))?;
    let mut request = Vec::new();
    list_request(command, 0, &mut request);
    let io = |e: std::io::Error| CliError::failure(format!("{desc} to {peer}: {e}"));
    let deadline = Instant::now() + args.timeout;
    let mut counter = 0;
    if args.udp {
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(io)?;
        socket.set_broadcast(args.broadcast).map_err(io)?;
        socket.send_to(&request, peer).map_err(io)?;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).map_err(io)?;
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => match decode_list_reply(buf.get(..n).unwrap_or_default()) {
                    Ok(reply) => {
                        print_list(desc, counter, from, &reply);
                        counter += 1;
                        if !args.broadcast {
                            break;
                        }
                    }
                    Err(e) => eprintln!("{COMMAND}: {desc} reply from {from}: {e}"),
                },
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
    } else {
        let mut stream: TcpStream = connect(target, args.timeout).map_err(io)?;
        let from = stream.peer_addr().unwrap_or(peer);
        stream.write_all(&request).map_err(io)?;
        let mut frame = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let need = frame
                .get(LENGTH_OFFSET..LENGTH_OFFSET + 2)
                .map(|b: &[u8]| HEADER_LEN + usize::from(u16::from_le_bytes([b[0], b[1]])));
            if need.is_some_and(|need| frame.len() >= need) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stream.set_read_timeout(Some(left)).map_err(io)?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => frame.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        if !frame.is_empty() {
            match decode_list_reply(&frame) {
                Ok(reply) => {
                    print_list(desc, counter, from, &reply);
                    counter += 1;
                }
                Err(e) => eprintln!("{COMMAND}: {desc} reply from {from}: {e}"),
            }
        }
    }
    if counter == 0 {
        eprintln!(
            "{COMMAND}: no {desc} response within {}s",
            args.timeout.as_secs_f64()
        );
    }
    Ok(counter)
}

/// Run the command: exit status 1 (a failure) if any operation or list request failed.
pub fn run(args: EnipClientArgs) -> Result<(), CliError> {
    let options = options(&args)?;
    let ops = operations(&args, std::io::stdin().lock())?;
    let target = parse_address(&args.address, ENIP_PORT)
        .map_err(CliError::usage)?
        .into_iter()
        .map(cpppo_core::engine::reachable)
        .collect::<Vec<SocketAddr>>();
    let mut failures = 0;
    for (wanted, command) in [
        (args.list_services, Command::ListServices),
        (args.list_identity, Command::ListIdentity),
    ] {
        if wanted && list(&args, &target, command)? == 0 {
            failures += 1;
        }
    }
    if !ops.is_empty() {
        failures += run_operations(&args, &target, options, ops)?;
    }
    if failures > 0 {
        return Err(CliError::failure(format!(
            "{failures} operation{} failed",
            if failures == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use cpppo_core::cip::status::GeneralStatus;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: EnipClientArgs,
    }

    fn parse(argv: &[&str]) -> Result<EnipClientArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("client").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn options_follow_cpppo() {
        let a = parse(&["-m", "-d", "3", "-f", "-c", "-t", "2", "SCADA[1]"]).unwrap();
        let o = options(&a).unwrap();
        assert_eq!(
            (o.multiple, o.depth, o.fragment, o.connected, o.timeout),
            (500, 3, true, true, Duration::from_secs(2))
        );
        assert_eq!(a.operations, vec!["SCADA[1]".to_string()]);
        let o = options(&parse(&["--multiple=1000", "-f", "-n"]).unwrap()).unwrap();
        assert_eq!((o.multiple, o.fragment), (1000, false));
        let o = options(&parse(&["-S"]).unwrap()).unwrap();
        assert_eq!((o.route_path, o.send_path), (None, None));
        let o = options(&parse(&["--route-path", "false", "--send-path", ""]).unwrap()).unwrap();
        assert_eq!((o.route_path, o.send_path), (None, None));
        let e = options(&parse(&["--route-path", "{bad"]).unwrap()).unwrap_err();
        assert_eq!(e.code, crate::serve::EXIT_USAGE);
        let none: &[u8] = b"";
        let e = operations(&parse(&["SCADA[1-"]).unwrap(), none).unwrap_err();
        assert!(e.message.contains("\"SCADA[1-\""), "{}", e.message);
        let ops = operations(&parse(&["-r", "3", "A", "B"]).unwrap(), none).unwrap();
        assert_eq!(ops.len(), 6);
        let stdin: &[u8] = b"# tags\nB[1]=5\n\n  C[0-2]\n";
        let ops = operations(&parse(&["A", "-", "D"]).unwrap(), stdin).unwrap();
        let paths: Vec<String> = ops.iter().map(|o| o.path.to_string()).collect();
        assert_eq!(paths, ["A", "B[1]", "C[0]", "D"]);
        assert_eq!(ops[1].method, cpppo_core::cip::operation::Method::Write);
        let e = operations(&parse(&["-", "-"]).unwrap(), none).unwrap_err();
        assert_eq!(e.code, crate::serve::EXIT_USAGE);
    }

    #[test]
    fn json_lines_carry_values_and_status() {
        use cpppo_core::enip::client::{CipStatus, LostReason};
        let done = |text: &str, outcome| Harvested {
            index: 2,
            operation: parse_operation(text).unwrap(),
            outcome,
        };
        let write = done("SCADA[1-3]=10,20,30", Outcome::Answered(Ok(Value::Written)));
        assert_eq!(
            result_json(&write).to_string(),
            r#"{"additional_status":[],"elements":3,"error":null,"index":2,"method":"write","offset":null,"ok":true,"status":0,"tag":"SCADA[1-3]","value":[10,20,30]}"#
        );
        let read = done(
            "TEXT[0-1]",
            Outcome::Answered(Ok(Value::Values(Values::Sstring(vec![
                "a".into(),
                "b'c".into(),
            ])))),
        );
        assert_eq!(result_json(&read)["value"], serde_json::json!(["a", "b'c"]));
        let bad = done(
            "SCADA[200]",
            Outcome::Answered(Err(CipStatus {
                general: GeneralStatus(0xFF),
                additional: vec![8453],
            })),
        );
        let j = result_json(&bad);
        assert_eq!(
            (&j["ok"], &j["status"], &j["additional_status"], &j["value"]),
            (
                &serde_json::json!(false),
                &serde_json::json!(255),
                &serde_json::json!([8453]),
                &serde_json::Value::Null
            )
        );
        let lost = done("SCADA", Outcome::Lost(LostReason::Timeout));
        assert_eq!(result_json(&lost)["error"], "timed out");
    }
}
