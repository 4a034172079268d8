//! `cpppo enip getattr`: cpppo's `enip_get_attribute` (`python -m
//! cpppo.server.enip.get_attribute`) on core's getattr [`Proxy`], driven by the client
//! loop of the `--runtime` chosen ([`crate::link`]): Get Attribute Single
//! (`@class/instance/attribute`), Get Attributes All (`@class/instance`) and Set Attribute
//! Single (`@class/instance/attribute=VALUE,...`, SINT unless cast), each result printed
//! as cpppo prints it:
//!
//! ```text
//! Sat Nov 28 17:28:04 2026:   0: Single G_A_S      @0x0001/1/7 == [20, 49, 55, ...]
//! ```
//!
//! The raw data is shown as bytes, as cpppo does; `@class/instance/attribute=TYPE` (a
//! type, or a list `INT,INT,DINT,SSTRING`) reads the attribute and converts its data with
//! the type, and a named parameter of cpppo's proxies (`"Product Name"`, `Identity`,
//! the PowerFlex 750 series' `"Output Current"`...) reads it typed. The exit status is 1
//! if any operation failed.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use cpppo_core::cip::operation::{parse_attribute_operation, Method, Operation};
use cpppo_core::enip::client::ClientOptions;
use cpppo_core::enip::proxy::{
    powerflex_750_series, ParamError, Parameters, Proxy, ProxyEvent, Reply, TypeSpec,
};
use cpppo_core::enip::ENIP_PORT;

use crate::address::parse_address;
use crate::link::run_linked;
use crate::serve::{parse_seconds, CliError, Runtime};

/// The command name in messages.
const COMMAND: &str = "cpppo enip getattr";

/// The Multiple Service Packet budget of `-m` (cpppo's ~500 bytes).
const MULTIPLE_BYTES: usize = 500;

/// `cpppo enip getattr` options.
#[derive(Debug, Args)]
pub struct EnipGetattrArgs {
    /// The device, `[host][:port]` (port 44818 by default; no host is this host).
    ///
    /// Examples: `-a 127.0.0.1`, `-a powerflex.local:44818`.
    #[arg(short, long, value_name = "ADDRESS", default_value = ":44818")]
    address: String,

    /// Print each result on stdout, as cpppo does (the default).
    ///
    /// Example: `--print`.
    #[arg(long, overrides_with = "no_print")]
    print: bool,

    /// Do not print the results (the exit status still tells failure).
    ///
    /// Example: `--no-print`.
    #[arg(long, overrides_with = "print")]
    no_print: bool,

    /// Pack requests into Multiple Service Packets of about 500 bytes.
    ///
    /// Example: `-m`.
    #[arg(short, long)]
    multiple: bool,

    /// Requests in flight at once (0 and 1 both send one at a time).
    ///
    /// Example: `-d 4`.
    #[arg(short, long, value_name = "N", default_value_t = 0)]
    depth: usize,

    /// Seconds each request (and the connect) may take.
    ///
    /// Example: `-t 2.5`.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "5")]
    timeout: Duration,

    /// Report the session and a summary (requests, time, TPS) on stderr.
    ///
    /// Example: `-v`.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// The route path: `<port>/<link>`, JSON, or `false`/`0` for none (default `1/0`).
    ///
    /// Examples: `--route-path 1/0`, `--route-path false`.
    #[arg(long, value_name = "PATH")]
    route_path: Option<String>,

    /// Where Unconnected Send goes (default `@6/1`); `''` sends requests straight to
    /// their object.
    ///
    /// Example: `--send-path ''`.
    #[arg(long, value_name = "PATH")]
    send_path: Option<String>,

    /// A simple (non-routing) device, eg. a MicroLogix or a PowerFlex: no route path, no
    /// Unconnected Send.
    ///
    /// Example: `-S`.
    #[arg(short = 'S', long)]
    simple: bool,

    /// The I/O runtime that drives the session: `blocking`, `smol` or `mio`.
    ///
    /// Example: `--runtime smol`.
    #[arg(long, value_enum, default_value_t = Runtime::Blocking)]
    runtime: Runtime,

    /// Attributes: `@CLASS/INSTANCE/ATTRIBUTE` (Get Attribute Single), `@CLASS/INSTANCE`
    /// (Get Attributes All), `...=VALUE,...` or `...=(TYPE)VALUE,...` (Set Attribute
    /// Single; SINT unless cast), `...=TYPE[,TYPE...]` (read, converted), or a parameter
    /// name; `-` reads more, one a line, from stdin.
    ///
    /// Examples: `@1/1/7`, `@1/1`, `@0x93/7/10=REAL`, `@0x93/7/10=(REAL)1.5`,
    /// `'@1/1=INT,INT,INT,INT,INT,DINT,SSTRING,USINT'`, `'Output Current'`.
    #[arg(value_name = "ATTRIBUTE", required = true)]
    tags: Vec<String>,
}

/// The client options the arguments ask for.
pub fn client_options(
    simple: bool,
    route_path: Option<&str>,
    send_path: Option<&str>,
) -> Result<ClientOptions, CliError> {
    let mut o = if simple {
        ClientOptions::simple()
    } else {
        ClientOptions::default()
    };
    if let Some(text) = route_path {
        o = o
            .with_route_path(text)
            .map_err(|e| CliError::usage(format!("bad --route-path {text:?}: {e}")))?;
    }
    if let Some(text) = send_path {
        o = o
            .with_send_path(text)
            .map_err(|e| CliError::usage(format!("bad --send-path {text:?}: {e}")))?;
    }
    Ok(o)
}

fn options(args: &EnipGetattrArgs) -> Result<ClientOptions, CliError> {
    let mut o = client_options(
        args.simple,
        args.route_path.as_deref(),
        args.send_path.as_deref(),
    )?;
    o.depth = args.depth.max(1);
    o.multiple = if args.multiple { MULTIPLE_BYTES } else { 0 };
    o.timeout = args.timeout;
    Ok(o)
}

/// One getattr operation: the operation, and the type its data converts with.
type Item = (Operation, Option<TypeSpec>);

/// Parse one attribute operation in `enip_get_attribute`'s syntax (see the module
/// documentation).
pub fn parse_item(text: &str, params: &Parameters) -> Result<Item, String> {
    let text = text.trim();
    if let Some(p) = params.get(text) {
        return Ok((p.read.clone(), p.types.clone()));
    }
    let split = text.split_once('=');
    if let Some((target, rhs)) = split {
        if let Ok(types) = rhs.parse::<TypeSpec>() {
            let op = parse_attribute_operation(target).map_err(|e| e.to_string())?;
            return match op.method {
                Method::GetAttributeSingle | Method::GetAttributesAll => Ok((op, Some(types))),
                _ => Err("a typed read needs @class/instance[/attribute]".into()),
            };
        }
        let rhs = rhs.trim_start();
        let numeric = !rhs.starts_with('(') && !rhs.contains('.') && !rhs.contains('"');
        if numeric {
            // cpppo's getattr writes SINTs unless told otherwise (and takes the unsigned
            // range of a byte too).
            let sint = parse_attribute_operation(&format!("{target}=(SINT){rhs}"));
            let op = sint.or_else(|_| parse_attribute_operation(&format!("{target}=(USINT){rhs}")));
            return op.map(|op| (op, None)).map_err(|e| e.to_string());
        }
    }
    parse_attribute_operation(text)
        .map(|op| (op, None))
        .map_err(|e| e.to_string())
}

/// cpppo's description of an operation: `Single G_A_S      @0x0001/1/7`.
pub fn describe(op: &Operation, multiple: bool) -> String {
    let method = match op.method {
        Method::GetAttributeSingle => "G_A_S ",
        Method::SetAttributeSingle => "S_A_S ",
        Method::GetAttributesAll => "G_A_A ",
        Method::Write => "Write ",
        _ => "Read  ",
    };
    format!(
        "{}{method}     {}",
        if multiple { "Multi. " } else { "Single " },
        op.tag_and_element().0
    )
}

/// cpppo's value of a result: the data (a Python list), `True` for a write, `None` for
/// a failure.
pub fn result_value(result: &Result<Reply, ParamError>) -> String {
    match result {
        Ok(Reply::Value(v)) => v.to_string(),
        Ok(Reply::Written) => "True".to_string(),
        Err(_) => "None".to_string(),
    }
}

/// Days since 1970-01-01 as a (year, month, day) date (the proleptic Gregorian calendar).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `time.ctime()` for `secs` since the epoch (in UTC): `Sat Nov 28 17:28:04 2026`.
pub fn ctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (year, month, day) = civil(days);
    format!(
        "{} {} {day:>2} {:02}:{:02}:{:02} {year}",
        DAYS.get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
            .unwrap_or(&"?"),
        MONTHS
            .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
            .unwrap_or(&"?"),
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The attribute texts, a `-` standing for the lines of `stdin`.
fn texts(args: &EnipGetattrArgs, stdin: impl BufRead) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut stdin = Some(stdin);
    for text in &args.tags {
        if text != "-" {
            out.push(text.clone());
            continue;
        }
        let Some(input) = stdin.take() else {
            return Err(CliError::usage("'-' (stdin) may be given once"));
        };
        for line in input.lines() {
            let line = line.map_err(|e| CliError::failure(format!("stdin: {e}")))?;
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                out.push(line.to_string());
            }
        }
    }
    Ok(out)
}

/// Get (and set) the attributes; exit status 1 if any failed.
pub fn run(args: EnipGetattrArgs) -> Result<(), CliError> {
    let target = parse_address(&args.address, ENIP_PORT)
        .map_err(CliError::usage)?
        .into_iter()
        .map(cpppo_core::engine::reachable)
        .collect::<Vec<SocketAddr>>();
    let options = options(&args)?;
    let params = powerflex_750_series();
    let items = texts(&args, std::io::stdin().lock())?
        .iter()
        .map(|t| {
            parse_item(t, &params).map_err(|e| CliError::usage(format!("bad attribute {t:?}: {e}")))
        })
        .collect::<Result<Vec<Item>, CliError>>()?;
    let shown = target
        .first()
        .map_or_else(|| args.address.clone(), SocketAddr::to_string);
    let descriptions: Vec<String> = items
        .iter()
        .map(|(op, _)| describe(op, args.multiple))
        .collect();
    let print = !args.no_print;
    let verbose = args.verbose;
    let begun = Instant::now();
    let mut proxy = Proxy::new(options);
    proxy.submit(begun, items);
    let mut failures = 0usize;
    let mut count = 0usize;
    let step = |proxy: &mut Proxy, link: &mut crate::link::Link<'_>| {
        let mut moved = false;
        while let Some(event) = proxy.poll_event() {
            moved = true;
            match event {
                ProxyEvent::Connect => {
                    let now = Instant::now();
                    match link(true) {
                        Ok(()) => proxy.handle_connected(now),
                        Err(e) => {
                            eprintln!("{COMMAND}: cannot connect to {shown}: {e}");
                            proxy.handle_connect_failed(now, &e.to_string());
                        }
                    }
                }
                ProxyEvent::Opened { session } if verbose > 0 => {
                    eprintln!("{COMMAND}: {shown}: session 0x{session:08X}");
                }
                ProxyEvent::Opened { .. } => {}
                ProxyEvent::Disconnect { reason } => {
                    eprintln!("{COMMAND}: {shown}: {reason}");
                    let _ = link(false);
                }
                ProxyEvent::Done { results, .. } => {
                    let stamp = ctime(
                        SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs()),
                    );
                    let mut out = std::io::stdout().lock();
                    for (idx, (dsc, result)) in descriptions.iter().zip(&results).enumerate() {
                        count += 1;
                        if let Err(e) = result {
                            failures += 1;
                            if verbose > 0 {
                                eprintln!("{COMMAND}: {dsc}: {e}");
                            }
                        }
                        if print {
                            let _ = writeln!(
                                out,
                                "{stamp}: {idx:3}: {dsc} == {}",
                                result_value(result)
                            );
                        }
                    }
                    let _ = out.flush();
                    return (true, true);
                }
            }
        }
        (moved, false)
    };
    run_linked(
        args.runtime,
        &mut proxy,
        &target,
        args.timeout,
        args.timeout,
        step,
    )?;
    if verbose > 0 {
        let elapsed = begun.elapsed().as_secs_f64();
        eprintln!(
            "{COMMAND}: {count:3} requests in {elapsed:7.3}s at pipeline depth {:2}; {:7.3} TPS",
            args.depth,
            count as f64 / elapsed.max(f64::MIN_POSITIVE)
        );
    }
    if failures > 0 {
        return Err(CliError::failure(format!(
            "{failures} of {count} operations failed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_as_cpppo_getattr_does() {
        let params = powerflex_750_series();
        let (op, t) = parse_item("@1/1/7", &params).unwrap();
        assert_eq!((op.method, t), (Method::GetAttributeSingle, None));
        assert_eq!(describe(&op, false), "Single G_A_S      @0x0001/1/7");
        let (op, _) = parse_item("@1/1", &params).unwrap();
        assert_eq!(describe(&op, true), "Multi. G_A_A      @0x0001/1");
        let (op, t) = parse_item("@0x93/7/10=REAL", &params).unwrap();
        assert_eq!(
            (op.method, t.unwrap().to_string()),
            (Method::GetAttributeSingle, "REAL".into())
        );
        let (op, _) = parse_item("@0x93/7/10=1,2", &params).unwrap();
        assert_eq!(
            op.values,
            Some(cpppo_core::cip::data::Values::Sint(vec![1, 2]))
        );
        let (op, _) = parse_item("@0x93/7/10=200", &params).unwrap();
        assert_eq!(
            op.values,
            Some(cpppo_core::cip::data::Values::Usint(vec![200]))
        );
        assert_eq!(describe(&op, false), "Single S_A_S      @0x0093/7/10");
        let (op, _) = parse_item("@0x93/7/10=(REAL)1.5", &params).unwrap();
        assert_eq!(
            op.values,
            Some(cpppo_core::cip::data::Values::Real(vec![1.5]))
        );
        let (op, t) = parse_item("output current", &params).unwrap();
        assert_eq!(
            (op.tag_and_element().0, t.unwrap().to_string()),
            ("@0x0093/7/10".into(), "REAL".into())
        );
        assert!(parse_item("SCADA[0]", &params).is_err());
        assert!(
            parse_item("@1/1=(SINT)1", &params).is_err(),
            "no Set Attributes All"
        );
        assert!(parse_item("@1/1/7=300", &params).is_err());
    }

    #[test]
    fn ctime_is_pythons() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_795_886_884), "Sat Nov 28 17:28:04 2026");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn results_print_as_cpppo_prints_them() {
        use cpppo_core::enip::client::LostReason;
        use cpppo_core::enip::proxy::{Datum, ParamValue};
        let bytes = ParamValue(vec![Datum::Uint(1), Datum::Uint(0)]);
        assert_eq!(result_value(&Ok(Reply::Value(bytes))), "[1, 0]");
        assert_eq!(result_value(&Ok(Reply::Written)), "True");
        assert_eq!(
            result_value(&Err(ParamError::Lost(LostReason::Timeout))),
            "None"
        );
    }
}
