//! `cpppo enip poll`: cpppo's `python -m cpppo.server.enip.poll` on core's EtherNet/IP
//! [`Poller`], driven by the client loop of the `--runtime` chosen ([`crate::link`]):
//! poll named parameters (cpppo's PowerFlex 750 series and generic proxy parameters),
//! typed attributes or tags, each at the cycle or its own rate, over one connection;
//! print each change (`Output Current == [16.5] Amps (was: None)`) and each failure on
//! stdout, and reconnect with exponential backoff when the device goes away.
//!
//! As cpppo's poll, the gateway is a simple device's (no route path, no Unconnected
//! Send) unless `--route-path`/`--send-path` say otherwise.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args;
use cpppo_core::enip::poller::{PollEvent, Poller, PollerConfig};
use cpppo_core::enip::proxy::{powerflex_750_series, Parameter, Parameters};
use cpppo_core::enip::ENIP_PORT;

use crate::address::parse_address;
use crate::enip_getattr::client_options;
use crate::link::{report_load, run_linked, Link};
use crate::serve::{parse_seconds, CliError, Runtime};

/// The command name in messages.
const COMMAND: &str = "cpppo enip poll";

/// The Multiple Service Packet budget of `-m` (cpppo's ~500 bytes).
const MULTIPLE_BYTES: usize = 500;

/// Separates a parameter from its own poll rate: `NAME#SECONDS`.
const RATE_SEPARATOR: char = '#';

/// `cpppo enip poll` options.
#[derive(Debug, Args)]
pub struct EnipPollArgs {
    /// The device, `[host][:port]` (port 44818 by default; no host is this host).
    ///
    /// Examples: `-a 127.0.0.1`, `-a powerflex.local:44818`.
    #[arg(short, long, value_name = "ADDRESS", default_value = ":44818")]
    address: String,

    /// Seconds between polls of a parameter given without its own rate.
    ///
    /// Example: `-c 0.5`.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "1")]
    cycle: Duration,

    /// Seconds each request (and the connect) may take.
    ///
    /// Example: `-t 2.5`.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "1")]
    timeout: Duration,

    /// Requests in flight at once.
    ///
    /// Example: `-d 4`.
    #[arg(short, long, value_name = "N", default_value_t = 2)]
    depth: usize,

    /// Pack requests into Multiple Service Packets of about 500 bytes.
    ///
    /// Example: `-m`.
    #[arg(short, long)]
    multiple: bool,

    /// The route path (`<port>/<link>`, JSON, or `false`); none by default, as for a
    /// simple device.
    ///
    /// Example: `--route-path 1/0`.
    #[arg(long, value_name = "PATH")]
    route_path: Option<String>,

    /// Where Unconnected Send goes; none by default, as for a simple device.
    ///
    /// Example: `--send-path @6/1`.
    #[arg(long, value_name = "PATH")]
    send_path: Option<String>,

    /// A simple (non-routing) device (the default; kept for cpppo's command lines).
    ///
    /// Example: `-S`.
    #[arg(short = 'S', long)]
    simple: bool,

    /// Print every value read, changed or not, as cpppo's poll does
    /// (`' Output Current: [16.5]'`), besides the changes.
    ///
    /// Example: `-e`.
    #[arg(short, long)]
    every: bool,

    /// Also report connections, backoffs and the load on stderr.
    ///
    /// Example: `-v`.
    #[arg(short, long)]
    verbose: bool,

    /// The I/O runtime that drives the connection: `blocking`, `smol` or `mio`.
    ///
    /// Example: `--runtime mio`.
    #[arg(long, value_enum, default_value_t = Runtime::Blocking)]
    runtime: Runtime,

    /// What to poll: a parameter name, `@CLASS/INSTANCE/ATTRIBUTE=TYPE`, or a tag; with
    /// `#SECONDS` at its own rate.
    ///
    /// Examples: `'Output Current'`, `'Motor Velocity#0.5'`, `'@0x93/7/10=REAL#2'`,
    /// `'SCADA[0-3]'`, `'Product Name#10'`.
    #[arg(value_name = "PARAMETER", required = true)]
    parameters: Vec<String>,
}

/// A parameter and its own rate, from `NAME[#SECONDS]`.
pub fn parse_parameter(
    text: &str,
    params: &Parameters,
) -> Result<(Parameter, Option<Duration>), String> {
    let (name, rate) = match text.rsplit_once(RATE_SEPARATOR) {
        Some((name, secs)) => {
            let rate = parse_seconds(secs.trim())?;
            if rate.is_zero() {
                return Err("a rate must be more than 0 seconds".into());
            }
            (name, Some(rate))
        }
        None => (text, None),
    };
    let p = params.resolve(name.trim()).map_err(|e| e.to_string())?;
    Ok((p, rate))
}

fn config(args: &EnipPollArgs) -> Result<PollerConfig, CliError> {
    let routed = args.route_path.is_some() || args.send_path.is_some();
    let mut client = client_options(
        !routed || args.simple,
        args.route_path.as_deref(),
        args.send_path.as_deref(),
    )?;
    if args.depth == 0 {
        return Err(CliError::usage("--depth must be at least 1"));
    }
    client.depth = args.depth;
    client.multiple = if args.multiple { MULTIPLE_BYTES } else { 0 };
    client.timeout = args.timeout;
    Ok(PollerConfig {
        client,
        cycle: args.cycle,
        every_value: args.every,
        ..PollerConfig::default()
    })
}

/// A poller with the parameters polled.
fn poller(args: &EnipPollArgs, now: Instant) -> Result<Poller, CliError> {
    if args.cycle.is_zero() {
        return Err(CliError::usage("--cycle must be more than 0 seconds"));
    }
    let params = powerflex_750_series();
    let mut poller = Poller::new(config(args)?);
    for text in &args.parameters {
        let (p, rate) = parse_parameter(text, &params)
            .map_err(|e| CliError::usage(format!("bad parameter {text:?}: {e}")))?;
        poller.poll(now, p, rate);
    }
    Ok(poller)
}

/// Poll until killed.
pub fn run(args: EnipPollArgs) -> Result<(), CliError> {
    let target = parse_address(&args.address, ENIP_PORT)
        .map_err(CliError::usage)?
        .into_iter()
        .map(cpppo_core::engine::reachable)
        .collect::<Vec<SocketAddr>>();
    let mut poller = poller(&args, Instant::now())?;
    let shown = target
        .first()
        .map_or_else(|| args.address.clone(), SocketAddr::to_string);
    eprintln!(
        "{COMMAND}: polling {shown}, {} parameter(s), every {}s",
        args.parameters.len(),
        args.cycle.as_secs_f64()
    );
    let verbose = args.verbose;
    let mut load = String::new();
    let step = |poller: &mut Poller, link: &mut Link<'_>| {
        let mut moved = false;
        while let Some(event) = poller.poll_event() {
            moved = true;
            match &event {
                PollEvent::Connect => {
                    let now = Instant::now();
                    match link(true) {
                        Ok(()) => poller.handle_connected(now),
                        Err(e) => poller.handle_connect_failed(now, &e.to_string()),
                    }
                    continue;
                }
                PollEvent::Disconnect { .. } => {
                    let _ = link(false);
                }
                PollEvent::Changed { .. } | PollEvent::Failed { .. } | PollEvent::Polled { .. } => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{event}");
                    let _ = out.flush();
                    continue;
                }
                _ => {}
            }
            if verbose {
                eprintln!("{COMMAND}: {event}");
            }
        }
        if verbose && !moved {
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
        args: EnipPollArgs,
    }

    fn parse(argv: &[&str]) -> Result<EnipPollArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("poll").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn parameters_and_rates() {
        let params = powerflex_750_series();
        let (p, rate) = parse_parameter("Motor Velocity#0.5", &params).unwrap();
        assert_eq!(
            (p.address.as_str(), rate),
            ("@0x93/3/10", Some(Duration::from_millis(500)))
        );
        let (p, rate) = parse_parameter("@0x93/7/10=REAL", &params).unwrap();
        assert_eq!((p.types.unwrap().to_string(), rate), ("REAL".into(), None));
        let (p, _) = parse_parameter("SCADA[0-3]#2", &params).unwrap();
        assert_eq!(p.read.elements, 4);
        assert!(parse_parameter("Output Current#0", &params).is_err());
        assert!(parse_parameter("Output Current#x", &params).is_err());
        assert!(parse_parameter("No Such Parameter", &params).is_err());
    }

    #[test]
    fn options_configure_the_poller() {
        let args = parse(&[
            "-a",
            ":44818",
            "-c",
            "0.5",
            "-t",
            "2",
            "-d",
            "4",
            "-m",
            "-e",
            "Output Current",
        ])
        .unwrap();
        let c = config(&args).unwrap();
        assert!(c.every_value);
        assert_eq!(
            (c.cycle, c.client.timeout, c.client.depth, c.client.multiple),
            (Duration::from_millis(500), Duration::from_secs(2), 4, 500)
        );
        assert_eq!(
            (c.client.route_path, c.client.send_path),
            (None, None),
            "simple"
        );
        let args = parse(&["--route-path", "1/0", "--send-path", "@6/1", "SCADA"]).unwrap();
        let c = config(&args).unwrap();
        assert!(c.client.route_path.is_some() && c.client.send_path.is_some());
        assert!(parse(&[]).is_err(), "parameters are required");
        let err = poller(&parse(&["Bogus Name"]).unwrap(), Instant::now()).unwrap_err();
        assert!(err.message.contains("\"Bogus Name\""), "{}", err.message);
        let err = poller(&parse(&["-c", "0", "SCADA"]).unwrap(), Instant::now()).unwrap_err();
        assert!(err.message.contains("--cycle"), "{}", err.message);
    }
}
