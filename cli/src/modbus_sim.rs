//! `cpppo modbus sim`: a simulated Modbus device over TCP, RTU over TCP, or a serial
//! line, as cpppo's `modbus_sim`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::{Args, ValueEnum};
use cpppo_core::modbus::device::{Delay, Device, Faults, UnitData};
use cpppo_core::modbus::server::{Event, Transport};

use crate::history::HistoryArgs;
use crate::serve::{self, CliError, ServeArgs};

/// The Modbus/TCP port.
pub const MODBUS_PORT: u16 = 502;

/// The command name in messages.
const COMMAND: &str = "cpppo modbus sim";

/// How requests are framed on TCP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Framing {
    /// Modbus/TCP (MBAP header).
    Tcp,
    /// Modbus RTU frames (with CRC) carried over a TCP stream.
    RtuOverTcp,
}

/// `cpppo modbus sim` options.
#[derive(Debug, Args)]
pub struct ModbusSimArgs {
    #[command(flatten)]
    serve: ServeArgs,

    // Boxed: the subcommand enum's variants stay of similar size.
    #[command(flatten)]
    history: Box<HistoryArgs>,

    /// Answer only these unit ids (repeat the option or give a list); by default every
    /// unit id is answered, all from the same registers.
    ///
    /// Examples: `--unit 1`, `--unit 1,2,3`, `--unit 1 --unit 17`.
    #[arg(long = "unit", value_name = "ID", value_delimiter = ',')]
    units: Vec<u8>,

    /// How requests are framed on TCP: Modbus/TCP, or RTU frames over TCP (a serial
    /// gateway's framing).
    ///
    /// Example: `--framing rtu-over-tcp`.
    #[arg(long, value_enum, default_value_t = Framing::Tcp)]
    framing: Framing,

    /// Be a Modbus RTU slave on this serial device instead of listening on TCP (always
    /// the blocking runtime; 8 data bits, no parity, 1 stop bit).
    ///
    /// Example: `--serial /dev/ttyUSB0 --baud 19200`.
    #[arg(long, value_name = "DEVICE")]
    serial: Option<String>,

    /// The serial line's speed in bits per second, with --serial.
    ///
    /// Example: `--baud 9600`.
    #[arg(long, value_name = "N", default_value_t = 19_200, requires = "serial")]
    baud: u32,

    /// Misbehave, as cpppo's modbus_sim --evil: `truncate` (send part of each reply),
    /// `delay[:S[-S]]` (hold each reply, 5 s by default), `corrupt[:transaction|protocol|unit|function|registers]`.
    /// Repeat to combine.
    ///
    /// Examples: `--evil truncate`, `--evil delay:.5-2`, `--evil corrupt:unit`.
    #[arg(long, value_name = "FAULT")]
    evil: Vec<String>,

    /// Registers to simulate, as `FIRST[-LAST][=VALUE[,VALUE...]]` in cpppo's (Modicon)
    /// numbering: coils 1-9999, discrete inputs 10001- (or 100001-), input registers
    /// 30001- (or 300001-), holding registers 40001- (or 400001-). Values repeat to fill
    /// the range; without values the registers hold 0. Only the registers given exist:
    /// others answer Illegal Data Address.
    ///
    /// Examples: `40001-40100=99`, `40001=1,2,3`, `1-16=1`, `30001-30010=0`.
    #[arg(value_name = "REGISTERS", required = true)]
    registers: Vec<String>,
}

/// The simulated device: registers, units, framing, faults.
fn device(args: &ModbusSimArgs) -> Result<Device, CliError> {
    for spec in &args.registers {
        UnitData::parse([spec.as_str()])
            .map_err(|e| CliError::usage(format!("bad register spec {spec:?}: {e}")))?;
    }
    let data = UnitData::parse(args.registers.iter().map(String::as_str))
        .map_err(|e| CliError::usage(format!("bad register spec: {e}")))?;
    let mut device = if args.units.is_empty() {
        Device::new(data)
    } else {
        Device::with_units(args.units.iter().copied(), data)
    };
    device.transport = match (&args.serial, args.framing) {
        (Some(_), _) => Transport::RtuSerial { baud: args.baud },
        (None, Framing::Tcp) => Transport::Tcp,
        (None, Framing::RtuOverTcp) => Transport::RtuOverTcp,
    };
    let mut faults = Faults::default();
    for text in &args.evil {
        let more: Faults = text.parse().map_err(CliError::usage)?;
        faults.truncate |= more.truncate;
        faults.delay = more.delay.or(faults.delay);
        faults.corrupt = more.corrupt.or(faults.corrupt);
    }
    if let Some(delay) = args.serve.delay {
        faults.delay = Some(match delay.max {
            Some(max) => Delay::Range(delay.min, max),
            None => Delay::Fixed(delay.min),
        });
    }
    device.faults = faults;
    Ok(device)
}

/// One `--print` line for a connection event.
fn event_line(event: &Event) -> Option<String> {
    match event {
        Event::Written(write) => Some(format!(
            "unit {} write {:?} {} <= {:?}",
            write.unit, write.table, write.address, write.values
        )),
        other => serde_json::to_string(other).ok(),
    }
}

/// Serve one serial line until Ctrl-C.
#[cfg(unix)]
fn run_serial(
    path: &str,
    baud: u32,
    device: Device,
    on_event: cpppo_core::engine::OnEvent<Event>,
) -> Result<(), CliError> {
    use cpppo_core::engine::Server;
    let port = cpppo_blocking::open_serial(path, baud)
        .map_err(|e| CliError::usage(format!("cannot open serial device {path}: {e}")))?;
    let device = Mutex::new(device);
    let nowhere = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    serve::on_signal(move || flag.store(true, Ordering::Release))?;
    eprintln!("{COMMAND}: serving {path} at {baud} baud (rtu), runtime blocking");
    let connection = cpppo_core::engine::lock(&device)
        .accept(std::time::Instant::now(), nowhere, nowhere)
        .ok_or_else(|| CliError::failure("the device refused the serial line"))?;
    cpppo_blocking::serve_stream(&device, connection, port, &stop, |event| {
        on_event(nowhere, event)
    })
    .map_err(|e| CliError::failure(format!("serial device {path}: {e}")))
}

#[cfg(not(unix))]
fn run_serial(
    path: &str,
    _: u32,
    _: Device,
    _: cpppo_core::engine::OnEvent<Event>,
) -> Result<(), CliError> {
    Err(CliError::usage(format!(
        "cannot open serial device {path}: serial lines are supported on Unix only"
    )))
}

/// Run `cpppo modbus sim`.
pub fn run(args: ModbusSimArgs) -> Result<(), CliError> {
    args.serve.init_logging()?;
    let mut device = device(&args)?;
    device.limits = args.serve.connection_limits();
    let printing = serve::event_hook(args.serve.print, event_line);
    let on_event: cpppo_core::engine::OnEvent<Event> = match args.history.recorder(&[])? {
        Some(recorder) => {
            recorder.note(std::time::Instant::now(), "Started recording Modbus writes");
            Arc::new(move |peer, event| {
                if let Event::Written(write) = &event {
                    recorder.modbus_write(std::time::Instant::now(), write);
                }
                printing(peer, event);
            })
        }
        None => printing,
    };
    if let Some(path) = &args.serial {
        return run_serial(path, args.baud, device, on_event);
    }
    let options = args.serve.serve_options(MODBUS_PORT, false)?;
    let handle = serve::start(args.serve.runtime, device, options, on_event)?;
    serve::run(COMMAND, args.serve.runtime, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ModbusSimArgs,
    }

    fn parse(argv: &[&str]) -> ModbusSimArgs {
        Cli::try_parse_from(std::iter::once("sim").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn options_build_the_device() {
        let dev = device(&parse(&[
            "--unit",
            "1,2",
            "--evil",
            "truncate",
            "--evil",
            "corrupt:unit",
            "-d",
            "0.5",
            "--framing",
            "rtu-over-tcp",
            "40001-40010=99",
        ]))
        .unwrap();
        assert!(dev.serves(1) && dev.serves(2) && !dev.serves(3));
        assert!(dev.faults.truncate);
        assert_eq!(
            dev.faults.corrupt,
            Some(cpppo_core::modbus::device::Corruption::UnitId)
        );
        assert_eq!(
            dev.faults.delay,
            Some(Delay::Fixed(std::time::Duration::from_millis(500)))
        );
        assert_eq!(dev.transport, Transport::RtuOverTcp);
        let values =
            dev.unit(1)
                .unwrap()
                .read(cpppo_core::modbus::numbering::Table::HoldingRegisters, 9, 1);
        assert_eq!(values, Some(vec![99]));
    }

    #[test]
    fn limits_and_their_defaults() {
        let args = parse(&["40001=1"]);
        assert_eq!(
            args.serve.connection_limits(),
            cpppo_core::limits::ConnectionLimits::default()
        );
        let options = args.serve.serve_options(MODBUS_PORT, false).unwrap();
        assert_eq!(
            options.send_timeout,
            Some(cpppo_core::engine::DEFAULT_SEND_TIMEOUT)
        );
        let args = parse(&[
            "--frame-timeout",
            "0",
            "--send-timeout",
            "0",
            "--max-request-rate",
            "7",
            "--max-pending-replies",
            "3",
            "40001=1",
        ]);
        assert_eq!(
            args.serve.connection_limits(),
            cpppo_core::limits::ConnectionLimits {
                max_pending_replies: 3,
                frame_timeout: None,
                max_request_rate: Some(7),
            }
        );
        let options = args.serve.serve_options(MODBUS_PORT, false).unwrap();
        assert_eq!(options.send_timeout, None);
    }

    #[test]
    fn a_bad_spec_is_named() {
        let err = device(&parse(&["40001=1", "4x0001=2"])).unwrap_err();
        assert!(err.message.contains("\"4x0001=2\""), "{}", err.message);
        assert_eq!(err.code, serve::EXIT_USAGE);
        let err = device(&parse(&["--evil", "explode", "40001=1"])).unwrap_err();
        assert!(err.message.contains("explode"), "{}", err.message);
    }
}
