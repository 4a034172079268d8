//! `cpppo`: the command-line tools of cpppo-rs.
//!
//! - `cpppo decode`: a frame dissector for EtherNet/IP (down to the CIP service) and
//!   Modbus/TCP and Modbus/RTU, printing JSON;
//! - `cpppo enip server`: a simulated Logix controller (cpppo's `enip_server`);
//! - `cpppo enip client`: read and write its tags (cpppo's `enip.client`);
//! - `cpppo enip getattr`: get and set CIP attributes (cpppo's `enip_get_attribute`);
//! - `cpppo enip poll`: poll named parameters, attributes or tags (cpppo's `enip.poll`);
//! - `cpppo modbus sim`: a simulated Modbus device (cpppo's `modbus_sim`);
//! - `cpppo modbus poll`: poll a Modbus device and print changes (cpppo's `modbus_poll`).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cpppo_core::wire::DecodeError;
use serde_json::Value;

mod address;
mod decode;
mod enip_client;
mod enip_getattr;
mod enip_poll;
mod enip_server;
mod hex;
mod history;
mod link;
mod modbus_poll;
mod modbus_sim;
mod rotate;
mod serve;

/// Exit status for bad input (invalid hex, a truncated frame, an undecodable field).
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "cpppo",
    version,
    about = "EtherNet/IP, CIP and Modbus tools",
    after_help = "Example:\n  cpppo decode enip 65000400000000000000000000000000000000000000000001000000"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dissect frames given as hex and print them as JSON.
    #[command(
        long_about = "Dissect EtherNet/IP, Modbus/TCP or Modbus/RTU frames given as hex, and print \
each frame as JSON on stdout.\n\n\
Hex comes from the arguments (all of them together form one input) or, with none, from \
stdin, one input per line; lines starting with '#' and blank lines are ignored. Bytes may \
be separated by whitespace, ':', '-' or ',' and carry '0x' prefixes. One input may hold \
several concatenated frames.\n\n\
Invalid hex, a truncated frame or an undecodable field is reported on stderr in one line \
naming the field and its byte offset in the input, and the exit status is 2.",
        after_help = "Examples:\n  \
cpppo decode enip 65 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00\n  \
cpppo decode modbus-tcp 0c:05:00:00:00:06:11:03:00:7c:00:02\n  \
cpppo decode modbus-rtu --responses 11 03 04 00 8d 00 8e fb bd\n  \
cat capture.hex | cpppo decode --compact enip"
    )]
    Decode(DecodeArgs),

    /// EtherNet/IP tools: the Logix controller simulator and the client.
    #[command(subcommand)]
    Enip(EnipCommand),

    /// Modbus tools: the device simulator and the poller.
    #[command(subcommand)]
    Modbus(ModbusCommand),

    /// Tag I/O history files (`--history`): replay them into a controller, show them.
    #[command(subcommand)]
    History(history::HistoryCommand),
}

#[derive(Debug, Subcommand)]
enum EnipCommand {
    /// Simulate a Logix controller serving tags over EtherNet/IP (TCP and UDP).
    #[command(
        visible_alias = "simulator",
        long_about = "Simulate a ControlLogix-like controller serving the given tags over \
EtherNet/IP on TCP and UDP (port 44818 by default), as cpppo's enip_server does: Read/Write \
Tag [Fragmented], Read-Modify-Write, Multiple Service Packet, Forward Open (Large too), the \
tag list and templates, Identity and ListIdentity, so pycomm3, pylogix and cpppo's client \
work against it.\n\n\
On start one line goes to stderr with the addresses actually bound (port 0 picks a free \
port). Ctrl-C or SIGTERM stops it gracefully. A bad tag, address, route path, config or \
tags file, or a port in use, is reported in one line with exit status 2.",
        after_help = "Examples:\n  \
cpppo enip server SCADA=INT[1000] TEXT=SSTRING[100]\n  \
cpppo enip server -a 127.0.0.1:44818 -p -v Speed=REAL Counts=DINT[10]\n  \
cpppo enip server --tags plc-tags.json --config plc.cfg --runtime blocking\n  \
cpppo enip server -S -d 0.1-0.5 Volume=REAL"
    )]
    Server(Box<enip_server::EnipServerArgs>),

    /// Read and write a controller's tags (and list its identity), as cpppo's client.
    #[command(
        long_about = "Read and write tags of an EtherNet/IP controller, as cpppo's \
`python -m cpppo.server.enip.client` does: each OPERATION is `TAG[FIRST-LAST]+OFFSET=(TYPE)VALUE,...` \
(without `=` a read), sent over one session (pipelined with --depth, packed into Multiple \
Service Packets with --multiple, connected with --connected). With -p each result is printed \
as cpppo prints it, eg. `            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'`; a failure \
shows the device's status, eg. `'Status 5 '` or `'Status 255 [8453]'`.\n\n\
-i/-s send ListIdentity/ListServices first (by UDP with -u; every reply within the timeout \
with -b). The exit status is 1 if any operation failed or a list request got no reply, 2 \
for a bad option or operation (one line on stderr). There is one runtime (blocking), so \
there is no --runtime.",
        after_help = "Examples:\n  \
cpppo enip client -a 127.0.0.1 -p 'SCADA[1-3]=10,20,30' 'SCADA[0-9]'\n  \
cpppo enip client -a plc.local -p -d 4 -m 'Speed=(REAL)1.5' 'TEXT=(SSTRING)\"hi\"' 'Counts[0-99]'\n  \
cpppo enip client -a 10.0.0.255 -u -b -i\n  \
cpppo enip client -a 127.0.0.1 -p -c -r 100 'SCADA[0-9]'"
    )]
    Client(enip_client::EnipClientArgs),

    /// Get and set CIP attributes (Get/Set Attribute Single, Get Attributes All), as
    /// cpppo's enip_get_attribute.
    #[command(
        long_about = "Get and set attributes of an EtherNet/IP CIP device, as cpppo's \
`python -m cpppo.server.enip.get_attribute` does: `@CLASS/INSTANCE/ATTRIBUTE` is Get Attribute \
Single, `@CLASS/INSTANCE` Get Attributes All, `...=VALUE,...` Set Attribute Single (SINT unless \
cast, eg. `=(REAL)1.5`), `...=TYPE` a read converted to that type (or list of types), and a \
parameter name (`'Output Current'`) a typed read. Each result is printed as cpppo prints it, \
eg. `Sat Nov 28 17:28:04 2026:   0: Single G_A_S      @0x0001/1/7 == [20, 49, ...]`. The exit \
status is 1 if any operation failed, 2 for a bad option or attribute.",
        after_help = "Examples:\n  \
cpppo enip getattr -a 127.0.0.1 @1/1/7 @1/1\n  \
cpppo enip getattr -a powerflex -S '@0x93/7/10=REAL' 'Output Current'\n  \
cpppo enip getattr -a 127.0.0.1 '@0x93/1/10=(REAL)60.0' '@1/1=INT,INT,INT,INT,INT,DINT,SSTRING,USINT'"
    )]
    Getattr(enip_getattr::EnipGetattrArgs),

    /// Poll named parameters, attributes or tags at their rates; print every change.
    #[command(
        long_about = "Poll parameters of an EtherNet/IP CIP device, as cpppo's \
`python -m cpppo.server.enip.poll` does: named parameters (cpppo's PowerFlex 750 series: \
`'Output Current'`, `'Motor Velocity'`...; `'Product Name'`, `Identity`), typed attributes \
(`@0x93/7/10=REAL`) or tags (`SCADA[0-9]`), each at the --cycle or its own rate \
(`NAME#SECONDS`), over one connection. Each change is printed on stdout \
(`Output Current == [16.5] Amps (was: None)`), as is each failure; a lost device is \
reconnected with exponential backoff. Runs until killed.",
        after_help = "Examples:\n  \
cpppo enip poll -a powerflex 'Output Current' 'Motor Velocity#0.5'\n  \
cpppo enip poll -a 127.0.0.1 --route-path 1/0 --send-path @6/1 -c 2 'SCADA[0-3]' '@1/1/7=SSTRING'"
    )]
    Poll(enip_poll::EnipPollArgs),
}

#[derive(Debug, Subcommand)]
enum ModbusCommand {
    /// Simulate a Modbus device: Modbus/TCP, RTU over TCP, or RTU on a serial line.
    #[command(
        long_about = "Simulate a Modbus device with the given registers, as cpppo's \
modbus_sim does: Modbus/TCP on port 502 by default, RTU frames over TCP with \
--framing rtu-over-tcp, or an RTU slave on a serial line with --serial.\n\n\
On start one line goes to stderr with the addresses actually bound (port 0 picks a free \
port). Ctrl-C or SIGTERM stops it gracefully. A bad register spec, address or --evil \
option, or a port in use, is reported in one line with exit status 2.",
        after_help = "Examples:\n  \
cpppo modbus sim -a :1502 40001-40100=99\n  \
cpppo modbus sim -a 127.0.0.1:5020 --unit 1,2 1-16=0 30001-30010=7 40001=1,2,3\n  \
cpppo modbus sim --framing rtu-over-tcp -a :5020 40001-40010=0\n  \
cpppo modbus sim --serial /dev/ttyUSB0 --baud 9600 40001-40010=0\n  \
cpppo modbus sim --evil delay:.1-.5 --evil corrupt:registers -a :1502 40001-40010=99"
    )]
    Sim(modbus_sim::ModbusSimArgs),

    /// Poll a Modbus device's registers and print every change.
    #[command(
        long_about = "Poll register ranges of a Modbus/TCP device (or RTU over TCP) at a \
rate, as cpppo's modbus_poll does: values given with '=' are written first, then every \
range is read each cycle (adjacent ranges merged into as few requests as the protocol \
allows) and each change is printed on stdout as `40009 == 999 (was: 99)`. A lost \
connection is retried with exponential backoff. Runs until interrupted.\n\n\
One line goes to stderr on start. A bad register spec or address is reported in one line \
with exit status 2.",
        after_help = "Examples:\n  \
cpppo modbus poll -a :1502 40001-40010=0 40001-40100\n  \
cpppo modbus poll -a 10.0.111.123 -u 3 -R 0.5 -v 1-16 30001-30010\n  \
cpppo modbus poll -a :1502 40009=999"
    )]
    Poll(modbus_poll::ModbusPollArgs),
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// Print each frame as one line of JSON instead of pretty-printed.
    ///
    /// Example: `cpppo decode --compact enip 6300...` prints one line per frame, handy
    /// with `jq -c` or `grep`.
    #[arg(long, global = true)]
    compact: bool,

    #[command(subcommand)]
    protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Enip,
    ModbusTcp,
    ModbusRtu,
}

#[derive(Debug, Args)]
struct HexInput {
    /// Frame bytes in hex; all arguments together form one input. With none, read one
    /// input per line from stdin.
    ///
    /// Example: `6f 00 16 00`, `6f:00:16:00`, `0x6f,0x00` or `6f001600`.
    #[arg(value_name = "HEX")]
    hex: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Protocol {
    /// EtherNet/IP encapsulation frames (TCP or UDP 44818), down to the CIP service.
    #[command(
        long_about = "EtherNet/IP encapsulation frames (TCP or UDP port 44818). Each frame \
is decoded to its header and body: RegisterSession, ListIdentity/ListServices items, or \
SendRRData/SendUnitData Common Packet Format items whose CIP Message Router request or \
reply (told apart by the reply bit 0x80 of its first byte) is classified by service: \
Unconnected Send with its embedded request, Multiple Service Packet parts, Read/Write Tag \
[Fragmented] with typed values, Forward Open/Close, ... EPATHs are shown in cpppo \
notation, statuses by name.",
        after_help = "Example (cpppo's RegisterSession request):\n  \
cpppo decode enip 6500040000000000000000000000000000000000000000000100 0000\n\
Example (two frames, from a file of one frame per line):\n  \
printf '%s\\n' '# capture' 6300000000000000000000000000000000000000000000 | cpppo decode enip"
    )]
    Enip(HexInput),

    /// Modbus/TCP ADUs (MBAP header and PDU).
    #[command(
        long_about = "Modbus/TCP ADUs: the MBAP header (transaction id, protocol id, length, \
unit id) and the PDU decoded as a request, or with --responses as a response (exceptions \
included).",
        after_help = "Example (read 2 holding registers at 0x7c from unit 0x11):\n  \
cpppo decode modbus-tcp 0c 05 00 00 00 06 11 03 00 7c 00 02\n\
Example (its response):\n  \
cpppo decode modbus-tcp --responses 0c 05 00 00 00 07 11 03 04 00 8d 00 8e"
    )]
    ModbusTcp {
        /// Decode PDUs as responses (from a server) instead of requests.
        ///
        /// Example: `cpppo decode modbus-tcp --responses 0c05000000031183 02`.
        #[arg(long)]
        responses: bool,
        #[command(flatten)]
        input: HexInput,
    },

    /// Modbus/RTU frames (unit address, PDU, CRC-16).
    #[command(
        long_about = "Modbus/RTU frames: unit address, PDU and CRC-16 (checked). Each frame's \
length follows from its function code, so several frames may be concatenated. PDUs are \
requests, or with --responses responses (exceptions included).",
        after_help = "Example (read 10 holding registers from unit 1):\n  \
cpppo decode modbus-rtu 01 03 00 00 00 0a c5 cd\n\
Example (a response):\n  \
cpppo decode modbus-rtu --responses 11 03 04 00 8d 00 8e fb bd"
    )]
    ModbusRtu {
        /// Decode PDUs as responses (from a server) instead of requests.
        ///
        /// Example: `cpppo decode modbus-rtu --responses 11 83 02 c1 34`.
        #[arg(long)]
        responses: bool,
        #[command(flatten)]
        input: HexInput,
    },
}

/// Why `cpppo decode` could not decode its input (`line` is the stdin line, if any).
#[derive(Debug)]
enum DecodeFailure {
    /// The text is not hex.
    Hex(hex::HexError, Option<usize>),
    /// The bytes are not a valid frame.
    Frame(DecodeError, Option<usize>),
    /// Reading stdin or writing stdout failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for DecodeFailure {
    fn from(e: std::io::Error) -> Self {
        DecodeFailure::Io(e)
    }
}

impl std::fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = |line: &Option<usize>| line.map(|n| format!("line {n}: ")).unwrap_or_default();
        match self {
            DecodeFailure::Hex(e, line) => write!(f, "{}{e}", place(line)),
            DecodeFailure::Frame(e, line) if e.is_incomplete() => {
                write!(f, "{}truncated frame: {e}", place(line))
            }
            DecodeFailure::Frame(e, line) => write!(f, "{}{e}", place(line)),
            DecodeFailure::Io(e) => write!(f, "{e}"),
        }
    }
}

fn decode_one(kind: Kind, responses: bool, bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    match kind {
        Kind::Enip => decode::enip::decode(bytes),
        Kind::ModbusTcp => decode::modbus::decode_tcp(bytes, responses),
        Kind::ModbusRtu => decode::modbus::decode_rtu(bytes, responses),
    }
}

fn run_decode(args: DecodeArgs) -> Result<(), DecodeFailure> {
    let (kind, responses, input) = match args.protocol {
        Protocol::Enip(input) => (Kind::Enip, false, input),
        Protocol::ModbusTcp { responses, input } => (Kind::ModbusTcp, responses, input),
        Protocol::ModbusRtu { responses, input } => (Kind::ModbusRtu, responses, input),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut emit = |line: Option<usize>, text: &str| -> Result<(), DecodeFailure> {
        let bytes = hex::parse(text).map_err(|e| DecodeFailure::Hex(e, line))?;
        let frames =
            decode_one(kind, responses, &bytes).map_err(|e| DecodeFailure::Frame(e, line))?;
        for mut frame in frames {
            if let (Some(n), Value::Object(map)) = (line, &mut frame) {
                map.insert("line".into(), Value::from(n));
            }
            let text = if args.compact {
                serde_json::to_string(&frame)
            } else {
                serde_json::to_string_pretty(&frame)
            }
            .map_err(std::io::Error::other)?;
            writeln!(out, "{text}")?;
        }
        Ok(())
    };
    if !input.hex.is_empty() {
        return emit(None, &input.hex.join(" "));
    }
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        emit(Some(i + 1), trimmed)?;
    }
    Ok(())
}

/// Report a server command's outcome: a one-line error and its exit status.
fn finish(command: &str, result: Result<(), serve::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{command}: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Parse the command line; a usage error is one line (the culprit, then a pointer to
/// `--help`) and exit status 2, as every other bad input.
fn parse_cli() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        if !e.use_stderr() {
            // --help, --version: clap prints them and exits with success.
            e.exit();
        }
        let text = e.render().to_string();
        let message = text
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        eprintln!("cpppo: {message} (see --help)");
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Decode(args) => run_decode(args),
        Command::Enip(EnipCommand::Server(args)) => {
            return finish("cpppo enip server", enip_server::run(*args))
        }
        Command::Enip(EnipCommand::Client(args)) => {
            return finish("cpppo enip client", enip_client::run(args))
        }
        Command::Enip(EnipCommand::Getattr(args)) => {
            return finish("cpppo enip getattr", enip_getattr::run(args))
        }
        Command::Enip(EnipCommand::Poll(args)) => {
            return finish("cpppo enip poll", enip_poll::run(args))
        }
        Command::Modbus(ModbusCommand::Sim(args)) => {
            return finish("cpppo modbus sim", modbus_sim::run(args))
        }
        Command::Modbus(ModbusCommand::Poll(args)) => {
            return finish("cpppo modbus poll", modbus_poll::run(args))
        }
        Command::History(command) => {
            let name = match &command {
                history::HistoryCommand::Replay(_) => "cpppo history replay",
                history::HistoryCommand::Show(_) => "cpppo history show",
            };
            return finish(name, history::run(command));
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(DecodeFailure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cpppo decode: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
