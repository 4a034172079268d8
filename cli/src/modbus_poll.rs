//! `cpppo modbus poll`: cpppo's `modbus_poll` on core's [`Poller`], driven by the client
//! loop of the `--runtime` chosen over one TCP connection: write the given values, then
//! poll the ranges and print each change as cpppo logs it (`40009 == 999 (was: 99)`).
//! The loops ([`cpppo_blocking::client`] by default, [`cpppo_smol::client`],
//! [`cpppo_mio::client`]) are shared with `cpppo enip client`; connecting on the
//! poller's request is [`crate::link`], shared with `cpppo enip getattr` and `poll`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args;
use cpppo_core::modbus::client::ClientConfig;
use cpppo_core::modbus::poller::{PollEvent, Poller, PollerConfig};
use cpppo_core::modbus::server::Transport;

use crate::address::parse_address;
use crate::link::{report_load, run_linked, Link};
use crate::modbus_sim::{Framing, MODBUS_PORT};
use crate::serve::{parse_seconds, CliError, Runtime};

/// The command name in messages.
const COMMAND: &str = "cpppo modbus poll";

/// `cpppo modbus poll` options.
#[derive(Debug, Args)]
pub struct ModbusPollArgs {
    /// The device to poll, `[host][:port]` (port 502 by default; no host is this host).
    ///
    /// Examples: `-a :1502`, `-a 10.0.111.123`, `-a plc.local:5020`.
    #[arg(short, long, value_name = "ADDRESS", default_value = ":502")]
    address: String,

    /// The unit (slave) id to poll and write.
    ///
    /// Example: `-u 17`.
    #[arg(short, long, value_name = "ID", default_value_t = 1)]
    unit: u8,

    /// Seconds between polls of every range.
    ///
    /// Example: `-R 0.5`.
    #[arg(short = 'R', long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "1")]
    rate: Duration,

    /// Merge ranges fewer than this many registers apart into one request (the
    /// registers between are read too).
    ///
    /// Example: `-r 100`.
    #[arg(short, long, value_name = "N", default_value_t = 1)]
    reach: u16,

    /// Seconds a request may take before it fails.
    ///
    /// Example: `-t 2.5`.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "3")]
    timeout: Duration,

    /// Requests in flight at once (Modbus/TCP only).
    ///
    /// Example: `-d 4`.
    #[arg(short, long, value_name = "N", default_value_t = 1)]
    depth: usize,

    /// How requests are framed: Modbus/TCP, or RTU frames over TCP.
    ///
    /// Example: `--framing rtu-over-tcp`.
    #[arg(long, value_enum, default_value_t = Framing::Tcp)]
    framing: Framing,

    /// Also report connections, failures and the load on stderr.
    ///
    /// Example: `-v`.
    #[arg(short, long)]
    verbose: bool,

    /// The I/O runtime that drives the connection: `blocking` (a plain socket), `smol`
    /// (async, reads raced against the poller's deadlines) or `mio` (one event loop).
    ///
    /// Example: `--runtime mio`.
    #[arg(long, value_enum, default_value_t = Runtime::Blocking)]
    runtime: Runtime,

    /// Registers to poll, as `FIRST[-LAST]` in cpppo's (Modicon) numbering; with
    /// `=VALUE[,VALUE...]` the values are written first.
    ///
    /// Examples: `40001-40010`, `40001-40010=0`, `1-16`, `30001`, `40009=999`.
    #[arg(value_name = "REGISTERS", required = true)]
    registers: Vec<String>,
}

fn config(args: &ModbusPollArgs) -> PollerConfig {
    PollerConfig {
        transport: match args.framing {
            Framing::Tcp => Transport::Tcp,
            Framing::RtuOverTcp => Transport::RtuOverTcp,
        },
        client: ClientConfig {
            depth: args.depth,
            timeout: args.timeout,
            ..ClientConfig::default()
        },
        unit: args.unit,
        rate: args.rate,
        reach: args.reach,
        ..PollerConfig::default()
    }
}

/// A poller with the ranges polled and the initial writes queued.
fn poller(args: &ModbusPollArgs, now: Instant) -> Result<Poller, CliError> {
    let mut poller = Poller::new(config(args));
    for spec in &args.registers {
        poller
            .poll(now, spec, None)
            .map_err(|e| CliError::usage(format!("bad register spec {spec:?}: {e}")))?;
        if spec.contains('=') {
            poller
                .write_spec(now, spec)
                .map_err(|e| CliError::usage(format!("cannot write {spec:?}: {e}")))?;
        }
    }
    Ok(poller)
}

/// Poll until killed.
pub fn run(args: ModbusPollArgs) -> Result<(), CliError> {
    let target = parse_address(&args.address, MODBUS_PORT)
        .map_err(CliError::usage)?
        .into_iter()
        .map(cpppo_core::engine::reachable)
        .collect::<Vec<SocketAddr>>();
    if args.rate.is_zero() {
        return Err(CliError::usage("--rate must be more than 0 seconds"));
    }
    let mut poller = poller(&args, Instant::now())?;
    let shown = target
        .first()
        .map_or_else(|| args.address.clone(), SocketAddr::to_string);
    eprintln!(
        "{COMMAND}: polling {shown} ({}), unit {}, every {}s",
        match args.framing {
            Framing::Tcp => "tcp",
            Framing::RtuOverTcp => "rtu-over-tcp",
        },
        args.unit,
        args.rate.as_secs_f64()
    );
    let mut load = String::new();
    // One turn of the loop on whichever runtime: `link(true)` connects (an error is the
    // connect's), `link(false)` drops the connection.
    let step = |poller: &mut Poller, link: &mut Link<'_>| {
        let mut moved = false;
        while let Some(event) = poller.poll_event() {
            moved = true;
            match &event {
                PollEvent::Connect => {
                    let now = Instant::now();
                    match link(true) {
                        Ok(()) => poller.handle_connected(now),
                        Err(e) => {
                            if args.verbose {
                                eprintln!("{COMMAND}: cannot connect to {shown}: {e}");
                            }
                            poller.handle_connect_failed(now);
                        }
                    }
                    continue;
                }
                PollEvent::Disconnect { .. } => {
                    let _ = link(false);
                }
                PollEvent::Changed(change) => {
                    println!("{change}");
                    let _ = std::io::stdout().flush();
                    continue;
                }
                _ => {}
            }
            if args.verbose {
                eprintln!("{COMMAND}: {event}");
            }
        }
        if args.verbose && !moved {
            report_load(COMMAND, poller.load(), &mut load);
        }
        (moved, false)
    };
    run_linked(
        args.runtime,
        &mut poller,
        &target,
        args.timeout,
        Duration::from_secs(1),
        step,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ModbusPollArgs,
    }

    fn parse(argv: &[&str]) -> Result<ModbusPollArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("poll").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn options_configure_the_poller() {
        let args = parse(&[
            "-a",
            ":1502",
            "-u",
            "3",
            "-R",
            "0.5",
            "-r",
            "100",
            "-t",
            "2",
            "-d",
            "4",
            "40001-40010=0",
            "40001-40100",
        ])
        .unwrap();
        let c = config(&args);
        assert_eq!(
            (c.unit, c.rate, c.reach, c.client.depth, c.client.timeout),
            (
                3,
                Duration::from_millis(500),
                100,
                4,
                Duration::from_secs(2)
            )
        );
        let mut p = poller(&args, Instant::now()).unwrap();
        assert_eq!(p.poll_event(), Some(PollEvent::Connect));
        assert!(parse(&[]).is_err(), "registers are required");
        let err = poller(&parse(&["40001-4x"]).unwrap(), Instant::now()).unwrap_err();
        assert!(err.message.contains("\"40001-4x\""), "{}", err.message);
        let err = poller(&parse(&["30001=1"]).unwrap(), Instant::now()).unwrap_err();
        assert!(err.message.contains("cannot write"), "{}", err.message);
    }
}
