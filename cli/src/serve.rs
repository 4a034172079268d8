//! What `cpppo enip server` and `cpppo modbus sim` share: the listening options
//! (`-a`, `-v`, `-d`, `-p`, `-l`, `--runtime`, limits), starting a server on the chosen
//! runtime, the start-up line, Ctrl-C / SIGTERM, logging and the one-line errors.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use cpppo_core::engine::{OnEvent, ServeOptions, Server, Serving};
use cpppo_core::limits::ConnectionLimits;

use crate::address::parse_address;
use crate::rotate::RotatingFile;

/// Exit status for anything wrong with the command line or the files it names.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for a server that failed while running.
pub const EXIT_FAILURE: u8 = 1;

/// Size at which `--log` rotates the file (cpppo: 10 MB).
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated copies `--log` keeps (cpppo: 5).
pub const LOG_KEEP: usize = 5;

/// Why a server command stopped: a message of one line, and the exit status.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong, naming the culprit.
    pub message: String,
    /// The process exit status.
    pub code: u8,
}

impl CliError {
    /// A bad option, argument or file: exit status 2.
    pub fn usage(message: impl fmt::Display) -> Self {
        CliError {
            message: one_line(&message.to_string()),
            code: EXIT_USAGE,
        }
    }

    /// A failure while serving: exit status 1.
    pub fn failure(message: impl fmt::Display) -> Self {
        CliError {
            message: one_line(&message.to_string()),
            code: EXIT_FAILURE,
        }
    }
}

/// Messages from libraries may span lines; the error is promised as one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The runtime that drives the sockets (`--runtime blocking|smol|mio`), held once in
/// `cpppo-runtimes`.
pub use cpppo_runtimes::Runtime;

/// The options every server command takes.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Interface and/or port to listen on: `[iface][:port]`; empty or `:` means every
    /// interface on the protocol's port.
    ///
    /// Examples: `-a :1502` (all interfaces, port 1502), `-a 127.0.0.1` (loopback, default
    /// port), `-a 127.0.0.1:0` (a free port, printed at start), `-a [::1]:44818`.
    #[arg(short, long, value_name = "[IFACE][:PORT]", default_value = "")]
    pub address: String,

    /// More logging on stderr (or in --log): -v info, -vv debug (every connection
    /// event), -vvv trace. Without it, warnings only.
    ///
    /// Example: `-vv`.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Delay every reply by this many seconds, or by a random time in a range.
    ///
    /// Examples: `-d 0.5`, `--delay 0.1-0.9`.
    #[arg(short, long, value_name = "#.#[-#.#]", value_parser = parse_delay)]
    pub delay: Option<DelayRange>,

    /// Print a one-line summary of each request served and each tag read or written
    /// (EtherNet/IP), or each write and refused request (Modbus), on stdout.
    ///
    /// Example: `-p` prints lines such as `write SCADA[1] <= [99]` and
    /// `127.0.0.1:50312 SendRRData service 0x4d: status 0x00`.
    #[arg(short, long)]
    pub print: bool,

    /// Log to FILE instead of stderr; the file rotates at 10 MB, keeping 5 old copies
    /// (FILE.1 ... FILE.5).
    ///
    /// Example: `-l /var/log/cpppo.log -v`.
    #[arg(short, long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// The I/O runtime. The default, mio, serves every socket from one event-loop
    /// thread: the least memory and thread switching for many clients. `blocking` uses a
    /// thread per connection (simplest, fine for a few clients); `smol` runs async tasks.
    ///
    /// Example: `--runtime blocking`.
    #[arg(long, value_enum, default_value_t = Runtime::Mio)]
    pub runtime: Runtime,

    /// Serve at most this many TCP connections at once; more are accepted and closed
    /// at once. No limit by default.
    ///
    /// Example: `--max-connections 16`.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Close a TCP connection that sent nothing for this many seconds. Never by default.
    ///
    /// Example: `--idle-timeout 30` or `--idle-timeout 0.5`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub idle_timeout: Option<Duration>,

    /// Close a TCP connection whose client has taken none of its replies for this many
    /// seconds (it sends without reading); 0 never does.
    ///
    /// Example: `--send-timeout 10`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "60")]
    pub send_timeout: Duration,

    /// Close a TCP connection that began a request and did not finish it within this many
    /// seconds (a half-open or stalled client); 0 never does.
    ///
    /// Example: `--frame-timeout 2`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "10")]
    pub frame_timeout: Duration,

    /// Serve at most N requests per second on each TCP connection (bursts of up to a
    /// second's worth); faster clients wait, nothing is refused. No limit by default.
    ///
    /// Example: `--max-request-rate 100`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_request_rate: Option<u32>,

    /// Hold at most N computed replies per TCP connection (a client pipelining into a
    /// reply delay); its further requests wait unread.
    ///
    /// Example: `--max-pending-replies 64`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = cpppo_core::limits::DEFAULT_MAX_PENDING_REPLIES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_pending_replies: usize,
}

/// A duration of 0 seconds means "never".
fn unless_zero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// A `--delay` value: fixed, or a range drawn from uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    /// The delay, or the shortest of the range.
    pub min: Duration,
    /// The longest delay of a range.
    pub max: Option<Duration>,
}

/// Parse seconds (`2`, `0.5`, `.25`), refusing negative and non-finite values.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds (e.g. 0.5)"))
}

/// Parse cpppo's `#.#[-#.#]`.
pub fn parse_delay(text: &str) -> Result<DelayRange, String> {
    let bad = |_| format!("{text:?} is not a delay: expected seconds #.# or a range #.#-#.#");
    match text.split_once('-') {
        Some((lo, hi)) => Ok(DelayRange {
            min: parse_seconds(lo).map_err(bad)?,
            max: Some(parse_seconds(hi).map_err(bad)?),
        }),
        None => Ok(DelayRange {
            min: parse_seconds(text).map_err(bad)?,
            max: None,
        }),
    }
}

impl ServeArgs {
    /// The addresses of `-a`, with `default_port` where none is given.
    pub fn listen(&self, default_port: u16) -> Result<Vec<SocketAddr>, CliError> {
        parse_address(&self.address, default_port).map_err(CliError::usage)
    }

    /// The runtime's options: where to listen, the limits.
    pub fn serve_options(&self, default_port: u16, udp: bool) -> Result<ServeOptions, CliError> {
        Ok(ServeOptions {
            listen: self.listen(default_port)?,
            udp,
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            send_timeout: unless_zero(self.send_timeout),
        })
    }

    /// The per-connection limits the engine enforces (`--frame-timeout`,
    /// `--max-request-rate`, `--max-pending-replies`).
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_pending_replies: self.max_pending_replies,
            frame_timeout: unless_zero(self.frame_timeout),
            max_request_rate: self.max_request_rate,
        }
    }

    /// Set up logging: `-v` levels, to stderr or the rotating `--log` file.
    pub fn init_logging(&self) -> Result<(), CliError> {
        let level = match self.verbose {
            0 => tracing::Level::WARN,
            1 => tracing::Level::INFO,
            2 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        };
        let builder = tracing_subscriber::fmt().with_max_level(level);
        match &self.log {
            Some(path) => {
                let file = RotatingFile::open(path, LOG_MAX_BYTES, LOG_KEEP).map_err(|e| {
                    CliError::usage(format!("cannot open log file {}: {e}", path.display()))
                })?;
                builder
                    .with_ansi(false)
                    .with_writer(Mutex::new(file))
                    .init();
            }
            None => builder.with_writer(std::io::stderr).init(),
        }
        Ok(())
    }
}

/// The events of a server's connections.
pub use cpppo_runtimes::EventOf;

/// Start `server` on `runtime`. Everything is bound before this returns, so a port in
/// use is an error here (exit status 2, naming the address).
pub fn start<S>(
    runtime: Runtime,
    server: S,
    options: ServeOptions,
    on_event: OnEvent<EventOf<S>>,
) -> Result<Box<dyn Serving<S>>, CliError>
where
    S: Server + Send + 'static,
    S::Connection: Send + 'static,
{
    let wanted = options
        .listen
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    runtime
        .serve_with(server, options, on_event)
        .map_err(|e| CliError::usage(format!("cannot listen on {wanted}: {e}")))
}

/// The start-up line: `listening on 127.0.0.1:44818 (tcp, udp), runtime mio`.
pub fn listening_line(handle: &dyn ServingAddrs, runtime: &str) -> String {
    let udp = handle.udp();
    let places = handle
        .tcp()
        .iter()
        .map(|addr| {
            if udp.contains(addr) {
                format!("{addr} (tcp, udp)")
            } else {
                format!("{addr} (tcp)")
            }
        })
        .chain(
            udp.iter()
                .filter(|addr| !handle.tcp().contains(addr))
                .map(|addr| format!("{addr} (udp)")),
        )
        .collect::<Vec<_>>()
        .join(", ");
    format!("listening on {places}, runtime {runtime}")
}

/// The addresses of a running server, whatever it serves.
pub trait ServingAddrs {
    /// TCP addresses.
    fn tcp(&self) -> &[SocketAddr];
    /// UDP addresses.
    fn udp(&self) -> &[SocketAddr];
}

impl<S> ServingAddrs for Box<dyn Serving<S>> {
    fn tcp(&self) -> &[SocketAddr] {
        self.local_addrs()
    }
    fn udp(&self) -> &[SocketAddr] {
        self.udp_addrs()
    }
}

/// Call `stop` on Ctrl-C or SIGTERM (once per process).
pub fn on_signal(stop: impl Fn() + Send + 'static) -> Result<(), CliError> {
    ctrlc::set_handler(stop)
        .map_err(|e| CliError::failure(format!("cannot install the Ctrl-C handler: {e}")))
}

/// Serve until Ctrl-C, SIGTERM or the server is done: print the start-up line, then
/// wait. `command` prefixes the line (`cpppo enip server`).
pub fn run<S>(command: &str, runtime: Runtime, handle: Box<dyn Serving<S>>) -> Result<(), CliError>
where
    S: Send + 'static,
{
    let stop = handle.stopper();
    on_signal(move || stop())?;
    // Only now: whoever waits for this line may signal at once.
    eprintln!(
        "{command}: {}",
        listening_line(&handle, &runtime.to_string())
    );
    handle
        .wait()
        .map(|_| tracing::info!("stopped"))
        .map_err(CliError::failure)
}

/// A `--print` line sink shared by every connection's thread: one line at a time.
pub fn print_line(line: &str) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A closed stdout (piped into `head`) must not stop the server.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// An event hook that logs at debug level, and with `--print` prints `format(event)`
/// prefixed by the peer.
pub fn event_hook<E: fmt::Debug + 'static>(
    print: bool,
    format: impl Fn(&E) -> Option<String> + Send + Sync + 'static,
) -> OnEvent<E> {
    Arc::new(move |peer: SocketAddr, event: E| {
        tracing::debug!(%peer, ?event);
        if print {
            if let Some(text) = format(&event) {
                print_line(&format!("{peer} {text}"));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(
            parse_delay("0.5"),
            Ok(DelayRange {
                min: Duration::from_millis(500),
                max: None
            })
        );
        assert_eq!(
            parse_delay(".1-2"),
            Ok(DelayRange {
                min: Duration::from_millis(100),
                max: Some(Duration::from_secs(2))
            })
        );
        assert!(parse_delay("-1").is_err());
        assert!(parse_delay("abc").unwrap_err().contains("\"abc\""));
        assert!(parse_seconds("nan").is_err());
    }

    #[test]
    fn errors_are_one_line() {
        let e = CliError::usage("a\nb  c");
        assert_eq!((e.message.as_str(), e.code), ("a b c", EXIT_USAGE));
    }
}
