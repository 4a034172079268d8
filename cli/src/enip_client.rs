//! `cpppo enip client`: cpppo's `python -m cpppo.server.enip.client` on core's
//! [`ClientConn`], driven by the client loop of the `--runtime` chosen
//! ([`cpppo_blocking::client`] by default, [`cpppo_smol::client`], [`cpppo_mio::client`]): read and write tags
//! given in cpppo's operation syntax, print each result as cpppo does with `-p`
//! (`            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'`), and exit 1 if any
//! operation failed. `-i`/`-s` send sessionless ListIdentity / ListServices (by UDP with
//! `-u`, to every responder with `-b`).
//!
//! Not here: cpppo's `--priority-time-tick`/`--timeout-ticks`, `-I`, `-L`, `-P`, `-l`,
//! and tag I/O over UDP (`-u` applies to `-i`/`-s`); `-i`/`-s` always use plain sockets,
//! whatever `--runtime`.

use std::collections::BTreeMap;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use clap::Args;
use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::{parse_operation, Method, Operation};
use cpppo_core::enip::client::{
    decode_list_reply, list_request, CipStatus, ClientConn, ClientEvent, ClientOptions, ListReply,
    Value,
};
use cpppo_core::enip::cpf::Identity;
use cpppo_core::enip::encapsulation::Command;
use cpppo_core::enip::ENIP_PORT;

use crate::address::parse_address;
use crate::serve::{parse_seconds, CliError, Runtime};
use cpppo_blocking::client::connect;

/// The command name in messages.
const COMMAND: &str = "cpppo enip client";

/// The Multiple Service Packet budget of a bare `-m` (cpppo's ~500 bytes).
const DEFAULT_MULTIPLE: &str = "500";

/// The encapsulation header's length, and where its data length field is.
const HEADER_LEN: usize = 24;
/// The encapsulation header's length field offset (bytes 2..4, little-endian).
const LENGTH_OFFSET: usize = 2;

/// Operations submitted ahead of those in flight, per unit of depth, so that
/// `--multiple` has something to pack while each operation's timeout still starts near
/// when it is sent.
const QUEUE_PER_DEPTH: usize = 32;

/// `cpppo enip client` options.
#[derive(Debug, Args)]
pub struct EnipClientArgs {
    /// The controller, `[host][:port]` (port 44818 by default; no host is this host).
    ///
    /// Examples: `-a 127.0.0.1`, `-a plc.local:44818`, `-a 255.255.255.255 -u -b -i`.
    #[arg(short, long, value_name = "ADDRESS", default_value = ":44818")]
    address: String,

    /// Report the session, the connection, each failure and the rate on stderr.
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

/// A string as Python's `repr` shows it.
fn py_str(s: &str) -> String {
    let mut t = String::with_capacity(s.len() + 2);
    t.push('\'');
    for c in s.chars() {
        match c {
            '\\' => t.push_str("\\\\"),
            '\'' => t.push_str("\\'"),
            '\n' => t.push_str("\\n"),
            '\r' => t.push_str("\\r"),
            '\t' => t.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                t.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => t.push(c),
        }
    }
    t.push('\'');
    t
}

/// A list as Python's `repr` shows it.
fn py_list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(", "))
}

/// A float as Python's `repr` shows it (shortest round-trip, `.0` on whole numbers).
fn py_float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// Values as cpppo prints them (a Python list).
fn py_values(values: &Values) -> String {
    fn ints<T: ToString>(v: &[T]) -> String {
        py_list(v, T::to_string)
    }
    match values {
        Values::Bool(v) => py_list(v, |b| u8::from(*b).to_string()),
        Values::Sint(v) => ints(v),
        Values::Int(v) => ints(v),
        Values::Dint(v) => ints(v),
        Values::Lint(v) => ints(v),
        Values::Usint(v) => ints(v),
        Values::Uint(v) => ints(v),
        Values::Udint(v) | Values::Dword(v) => ints(v),
        Values::Ulint(v) => ints(v),
        Values::Real(v) => py_list(v, |x| py_float(f64::from(*x))),
        Values::Lreal(v) => py_list(v, |x| py_float(*x)),
        Values::Sstring(v) | Values::String(v) | Values::LogixString(v) => {
            py_list(v, |t| py_str(&t.to_string()))
        }
        Values::Structure { data, .. } => ints(data),
    }
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The device answered: a value or a status.
    Answered(Result<Value, CipStatus>),
    /// No answer: the text says why.
    Lost(String),
}

impl Outcome {
    fn failed(&self) -> bool {
        !matches!(self, Outcome::Answered(Ok(_)))
    }
}

/// cpppo's result line for one operation (`client.py`'s `validate`).
fn result_line(op: &Operation, outcome: &Outcome) -> String {
    let writes = matches!(op.method, Method::Write | Method::SetAttributeSingle);
    let act = if writes { "<=" } else { "==" };
    let (val, count) = match (outcome, &op.values) {
        (_, Some(values)) if writes => (py_values(values), usize::from(op.elements)),
        (Outcome::Answered(Ok(Value::Values(values))), _) => (py_values(values), values.len()),
        (Outcome::Answered(Ok(Value::Data(data))), _) => {
            (py_list(data, u8::to_string), usize::from(op.elements))
        }
        _ => ("None".to_string(), usize::from(op.elements)),
    };
    let res = match outcome {
        Outcome::Answered(Ok(_)) => "OK".to_string(),
        Outcome::Answered(Err(status)) => format!(
            "Status {} {}",
            status.general.0,
            if status.additional.is_empty() {
                String::new()
            } else {
                py_list(&status.additional, u16::to_string)
            }
        ),
        Outcome::Lost(why) => why.clone(),
    };
    let tag = op.path.to_string();
    match op.tag_and_element().1 {
        None => format!("{tag:>20}              {act} {val}: {}", py_str(&res)),
        Some(first) => {
            let last = i64::from(first) + count.max(1) as i64 - 1;
            format!(
                "{tag:>20}[{first:>3}-{last:<3}]+{:>3} {act} {val}: {}",
                op.offset.unwrap_or(0),
                py_str(&res)
            )
        }
    }
}

/// Run the operations over one session; returns how many failed.
fn run_operations(
    args: &EnipClientArgs,
    target: &[SocketAddr],
    options: ClientOptions,
    ops: Vec<Operation>,
) -> Result<usize, CliError> {
    let shown = target
        .first()
        .map_or_else(|| args.address.clone(), SocketAddr::to_string);
    let window = options.depth.saturating_mul(if options.multiple > 0 {
        QUEUE_PER_DEPTH
    } else {
        1
    });
    let total = ops.len();
    let mut pending = ops.into_iter().enumerate();
    let mut issued: BTreeMap<u64, (usize, Operation)> = BTreeMap::new();
    let mut done: BTreeMap<usize, (Operation, Outcome)> = BTreeMap::new();
    let mut next_print = 0usize;
    let mut failures = 0usize;
    let mut closing = false;
    let verbose = args.verbose;
    let stdout = std::io::stdout();
    // One turn of the loop on whichever runtime: drain events, print, submit; `connected`
    // is whether the runtime still has the socket.
    let mut step = |client: &mut ClientConn, connected: bool| {
        let mut moved = false;
        while let Some(event) = client.poll_event() {
            moved = true;
            let (op, outcome) = match event {
                ClientEvent::Reply { op, result } => (op, Outcome::Answered(result)),
                ClientEvent::Lost { op, why } => (op, Outcome::Lost(why.to_string())),
                ClientEvent::Failed(why) => {
                    eprintln!("{COMMAND}: {shown}: {why}");
                    continue;
                }
                other => {
                    if verbose > 0 {
                        eprintln!("{COMMAND}: {shown}: {other:?}");
                    }
                    continue;
                }
            };
            if let Some((index, op)) = issued.remove(&op.0) {
                if outcome.failed() {
                    failures += 1;
                    if verbose > 0 {
                        eprintln!(
                            "{COMMAND}: {} failed: {}",
                            op.path,
                            result_line(&op, &outcome).trim()
                        );
                    }
                }
                done.insert(index, (op, outcome));
            }
        }
        // Print in submission order, as cpppo does.
        while let Some((op, outcome)) = done.remove(&next_print) {
            if args.print {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}", result_line(&op, &outcome));
                let _ = out.flush();
            }
            next_print += 1;
        }
        let now = Instant::now();
        while client.outstanding() < window && !closing {
            let Some((index, op)) = pending.next() else {
                break;
            };
            let id = client.submit(now, op.clone());
            issued.insert(id.0, (index, op));
            moved = true;
        }
        if next_print == total && !closing {
            closing = true;
            client.close(now);
            moved = true;
        }
        let finished = closing && (client.is_closed() || !connected);
        if !connected && !closing && !moved {
            // The connection is gone; whatever is left will not be answered.
            return (moved, true);
        }
        (moved, finished)
    };
    let cannot = |e: std::io::Error| CliError::failure(format!("cannot connect to {shown}: {e}"));
    let socket = |e: std::io::Error| CliError::failure(format!("socket: {e}"));
    let idle = args.timeout;
    // The clock of the rate starts once connected.
    let begun;
    match args.runtime {
        Runtime::Blocking => {
            use cpppo_blocking::client::ClientDriver;
            let stream = connect(target, args.timeout).map_err(cannot)?;
            begun = Instant::now();
            let mut client = ClientConn::new(begun, options);
            ClientDriver::new(Some(stream))
                .run(&mut client, idle, |c, d| step(c, d.stream.is_some()))
                .map_err(socket)?;
        }
        Runtime::Smol => {
            use cpppo_smol::client::{connect, ClientDriver};
            begun = smol::block_on(async {
                let stream = connect(target, args.timeout).await.map_err(cannot)?;
                let begun = Instant::now();
                let mut client = ClientConn::new(begun, options);
                ClientDriver::new(Some(stream))
                    .run(&mut client, idle, |c, d| step(c, d.stream.is_some()))
                    .await
                    .map_err(socket)?;
                Ok::<_, CliError>(begun)
            })?;
        }
        Runtime::Mio => {
            use cpppo_mio::client::{connect, ClientDriver};
            let stream = connect(target, args.timeout).map_err(cannot)?;
            begun = Instant::now();
            let mut client = ClientConn::new(begun, options);
            ClientDriver::new(Some(stream))
                .map_err(socket)?
                .run(&mut client, idle, |c, d| step(c, d.is_connected()))
                .map_err(socket)?;
        }
    }
    // Operations never submitted (the connection was lost first) failed too.
    failures += total - next_print - done.len();
    for (_, (op, outcome)) in done {
        if args.print {
            println!("{}", result_line(&op, &outcome));
        }
    }
    if verbose > 0 && total > 0 {
        let elapsed = begun.elapsed().as_secs_f64();
        eprintln!(
            "{COMMAND}: {total} operations in {elapsed:.3}s: {:.3} TPS ({:.3}s each), {failures} failed",
            total as f64 / elapsed.max(f64::MIN_POSITIVE),
            elapsed / total as f64
        );
    }
    Ok(failures)
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
        assert_eq!(ops[1].method, Method::Write);
        let e = operations(&parse(&["-", "-"]).unwrap(), none).unwrap_err();
        assert_eq!(e.code, crate::serve::EXIT_USAGE);
    }

    #[test]
    fn lines_look_like_cpppos() {
        let write = parse_operation("SCADA[1-3]=10,20,30").unwrap();
        assert_eq!(
            result_line(&write, &Outcome::Answered(Ok(Value::Written))),
            "            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'"
        );
        let read = parse_operation("SCADA[0-4]").unwrap();
        let got = Values::Int(vec![0, 10, 20, 30, 0]);
        assert_eq!(
            result_line(&read, &Outcome::Answered(Ok(Value::Values(got)))),
            "            SCADA[0][  0-4  ]+  0 == [0, 10, 20, 30, 0]: 'OK'"
        );
        let scalar = parse_operation("SCADA").unwrap();
        assert_eq!(
            result_line(
                &scalar,
                &Outcome::Answered(Ok(Value::Values(Values::Int(vec![0]))))
            ),
            "               SCADA              == [0]: 'OK'"
        );
        let bad = parse_operation("SCADA[200]").unwrap();
        let status = CipStatus {
            general: GeneralStatus(0xFF),
            additional: vec![8453],
        };
        assert_eq!(
            result_line(&bad, &Outcome::Answered(Err(status))),
            "          SCADA[200][200-200]+  0 == None: 'Status 255 [8453]'"
        );
        let real = parse_operation("R[0-1]=(REAL)1.5,2").unwrap();
        assert_eq!(
            result_line(&real, &Outcome::Answered(Ok(Value::Written))),
            "                R[0][  0-1  ]+  0 <= [1.5, 2.0]: 'OK'"
        );
        assert_eq!(py_str("it's"), "'it\\'s'");
        assert_eq!(py_float(f64::from(0.1f32)), "0.10000000149011612");
    }
}
