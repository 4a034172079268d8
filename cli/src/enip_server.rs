//! `cpppo enip server`: the simulated Logix controller on EtherNet/IP (TCP and UDP).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use cpppo_core::cip::data::{Count, Values};
use cpppo_core::controller::tags::TagList;
use cpppo_core::controller::{Controller, ControllerConfig, TagAccess, TagHook};
use cpppo_core::enip::server::{
    ReplyDelay, RoutePolicy, Server, ServerEvent, ServerOptions, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SESSION, DEFAULT_MAX_FRAME_LEN,
};
use cpppo_core::wire::Reader;

use crate::address::parse_address;
use crate::history::{HistoryArgs, Hooks};
use crate::serve::{self, listening_line, print_line, CliError, ServeArgs};

/// The EtherNet/IP port (TCP and UDP).
pub const ENIP_PORT: u16 = 44818;

/// The command name in messages.
const COMMAND: &str = "cpppo enip server";

/// Elements of a tag access `--print` shows before eliding the rest.
const PRINT_ELEMENTS: usize = 10;

/// `cpppo enip server` options.
#[derive(Debug, Args)]
pub struct EnipServerArgs {
    #[command(flatten)]
    serve: ServeArgs,

    #[command(flatten)]
    history: HistoryArgs,

    /// Accept Unconnected Sends (and Forward Opens) only along this route path, as cpppo's
    /// JSON, `1/0` (backplane port 1, slot 0), or `false` for none (a non-routing
    /// device). By default any route path is accepted, as cpppo does.
    ///
    /// Examples: `--route-path '[{"port": 1, "link": 0}]'`, `--route-path 1/0`,
    /// `--route-path false`.
    #[arg(long, value_name = "JSON|false")]
    route_path: Option<String>,

    /// Simulate a simple (non-routing) device, such as a MicroLogix or a PowerFlex:
    /// the same as `--route-path false`.
    ///
    /// Example: `-S`.
    #[arg(short = 'S', long, conflicts_with = "route_path")]
    simple: bool,

    /// A cpppo.cfg file (`[Identity]`, `[TCPIP]` sections). Without it, /etc/cpppo.cfg,
    /// ~/.cpppo.cfg and ./cpppo.cfg are applied in that order, where they exist.
    ///
    /// Example: `--config ./plc.cfg` with `[Identity]` and `Product Name = 1756-L61/B LOGIX5561`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// A pycomm3 tag list to serve (the JSON of `LogixDriver.tags`, or a list of tag
    /// dicts), structures included; TAG=TYPE arguments are added to it.
    ///
    /// Example: `--tags plc-tags.json`, written by
    /// `json.dump(plc.tags, open('plc-tags.json', 'w'))`.
    #[arg(long, value_name = "FILE")]
    tags: Option<PathBuf>,

    /// Tags to serve: `NAME=TYPE`, `NAME=TYPE[n]` (an array), `NAME=TYPE[n,m]`;
    /// types BOOL SINT INT DINT LINT USINT UINT UDINT ULINT REAL LREAL DWORD SSTRING STRING
    /// or a structure from --tags. `Program:X.NAME=TYPE` is program-scoped;
    /// `NAME@class/instance/attribute=TYPE` also answers at that CIP address.
    ///
    /// Example: `SCADA=INT[1000] TEXT=SSTRING[100] Speed=REAL`.
    #[arg(value_name = "TAG=TYPE[n]")]
    tag_specs: Vec<String>,

    /// The largest EtherNet/IP frame accepted, in bytes (24-byte header included); a
    /// request announcing more is answered with status 0x0065 and its connection closed.
    ///
    /// Example: `--max-frame-size 65559` (all the protocol allows).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME_LEN)]
    max_frame_size: usize,

    /// How many CIP connections (Forward Open) may be open at once, in all; one more
    /// is refused with status 0x01/0x0113 (out of connections).
    ///
    /// Example: `--max-cip-connections 500`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_cip_connections: usize,

    /// How many CIP connections one TCP connection (session) may open; one more is
    /// refused with status 0x01/0x0113.
    ///
    /// Example: `--max-cip-connections-per-session 4`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_SESSION)]
    max_cip_connections_per_session: usize,

    /// Serve cpppo's web API (`/api/...`, JSON) and a live tag page (`/`) over HTTP on
    /// `[IFACE]:[PORT]`. Without an interface it binds the loopback only, since the API
    /// can shut the server down; without a port, 80.
    ///
    /// Examples: `--web :12345` (http://127.0.0.1:12345/), `--web 0.0.0.0:8080`.
    #[arg(long, value_name = "[IFACE]:[PORT]")]
    web: Option<String>,
}

/// The web API's port when `--web` names none (cpppo's).
pub const WEB_PORT: u16 = 80;
/// How often idle connections look at the web API's changes (cpppo's
/// `server.control.latency` default).
pub const WEB_LATENCY: Duration = Duration::from_millis(100);
/// How long a web API command waits for the connections to act on it (EOF, disable).
pub const WEB_TIMEOUT: Duration = Duration::from_secs(1);

/// Where `--web` binds: the loopback unless an interface is given.
fn web_address(text: &str) -> Result<SocketAddr, CliError> {
    let text = text.trim();
    let explicit = if text.is_empty() || text.starts_with(':') {
        format!("127.0.0.1{text}")
    } else {
        text.to_string()
    };
    parse_address(&explicit, WEB_PORT)
        .map_err(|e| CliError::usage(format!("bad --web {text:?}: {e}")))?
        .first()
        .copied()
        .ok_or_else(|| CliError::usage(format!("bad --web {text:?}: no address")))
}

/// Where cpppo looks for its configuration, in the order applied (later ones override).
fn default_config_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("/etc/cpppo.cfg")];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).join(".cpppo.cfg"));
    }
    paths.push(PathBuf::from("cpppo.cfg"));
    paths
}

fn read_file(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {what} {}: {e}", path.display())))
}

/// The controller configuration from cpppo.cfg file(s).
fn controller_config(explicit: Option<&Path>) -> Result<ControllerConfig, CliError> {
    let mut config = ControllerConfig::default();
    let paths = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => default_config_paths()
            .into_iter()
            .filter(|p| p.is_file())
            .collect(),
    };
    for path in paths {
        let text = read_file(&path, "config file")?;
        config
            .apply_cpppo_cfg(&text)
            .map_err(|e| CliError::usage(format!("config file {}: {e}", path.display())))?;
        tracing::info!(path = %path.display(), "configuration applied");
    }
    Ok(config)
}

/// The controller: configuration, then the --tags file, then the tag arguments.
fn controller(args: &EnipServerArgs) -> Result<Controller, CliError> {
    let mut plc = Controller::new(controller_config(args.config.as_deref())?);
    if let Some(path) = &args.tags {
        let text = read_file(path, "tags file")?;
        let list: TagList = serde_json::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "tags file {}: not a pycomm3 tag list: {e}",
                path.display()
            ))
        })?;
        plc.tags_mut()
            .load_tag_list(&list)
            .map_err(|e| CliError::usage(format!("tags file {}: {e}", path.display())))?;
    }
    for spec in &args.tag_specs {
        plc.tags_mut()
            .add_str(spec)
            .map_err(|e| CliError::usage(format!("bad tag {spec:?}: {e}")))?;
    }
    if plc.tags().tags().is_empty() {
        return Err(CliError::usage(
            "no tags to serve: give TAG=TYPE[n] arguments (e.g. SCADA=INT[1000]) or --tags FILE",
        ));
    }
    Ok(plc)
}

/// `--print`'s view of tag accesses.
struct PrintTags;

fn access_line(verb: &str, arrow: &str, access: &TagAccess<'_>) -> String {
    let first = access.target.index;
    let mut name = access.tag.to_string();
    if access.target.len > 1 || first > 0 {
        if access.elements <= 1 {
            name.push_str(&format!("[{first}]"));
        } else {
            name.push_str(&format!("[{first}-{}]", first + access.elements - 1));
        }
    }
    // A structure member (or an array inside one) lies past the tag's first byte; the
    // hook sees where, not the member's name.
    if access.target.base > 0 {
        name.push_str(&format!(" (member at byte {})", access.target.base));
    }
    let fragment = if access.offset > 0 {
        format!(" (from byte {})", access.offset)
    } else {
        String::new()
    };
    // A write may carry bytes past its elements (pycomm3 repeats its request): decode
    // the elements announced, or a fragment's whole data.
    let count = if access.offset == 0 {
        Count::Elements(access.elements)
    } else {
        Count::All
    };
    let values = Values::decode(access.tag_type, count, &mut Reader::new(access.data))
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.get("values").and_then(|v| v.as_array()).cloned());
    let shown = match values {
        Some(list) => {
            let mut items: Vec<String> = list
                .iter()
                .take(PRINT_ELEMENTS)
                .map(ToString::to_string)
                .collect();
            if list.len() > PRINT_ELEMENTS {
                items.push("...".into());
            }
            format!("[{}]", items.join(", "))
        }
        None => format!("{} bytes", access.data.len()),
    };
    format!("{verb} {name}{fragment} {arrow} {shown}")
}

impl TagHook for PrintTags {
    fn read(&self, access: &TagAccess<'_>) {
        print_line(&access_line("read", "==", access));
    }
    fn write(&self, access: &TagAccess<'_>) {
        print_line(&access_line("write", "<=", access));
    }
}

/// One `--print` line for a connection event.
fn event_line(event: &ServerEvent) -> Option<String> {
    match event {
        ServerEvent::RequestServed {
            command,
            service,
            general_status,
            connection,
        } => {
            let via = connection.map_or(String::new(), |id| format!(" on connection {id:#010x}"));
            Some(format!(
                "{command} service {service:#04x}{via}: status {:#04x}",
                general_status.0
            ))
        }
        other => serde_json::to_string(other).ok(),
    }
}

/// Run `cpppo enip server`.
pub fn run(args: EnipServerArgs) -> Result<(), CliError> {
    args.serve.init_logging()?;
    let mut plc = controller(&args)?;
    let names: Vec<String> = plc.tags().tags().iter().map(|t| t.full_name()).collect();
    let mut hooks: Vec<Arc<dyn TagHook>> = Vec::new();
    if args.serve.print {
        hooks.push(Arc::new(PrintTags));
    }
    if let Some(recorder) = args.history.recorder(&names)? {
        hooks.push(recorder);
    }
    match hooks.len() {
        0 => {}
        1 => plc.set_hook(hooks.pop()),
        _ => plc.set_hook(Some(Arc::new(Hooks(hooks)))),
    }
    let options = args.serve.serve_options(ENIP_PORT, true)?;
    let mut server_options = ServerOptions::default();
    if let Some(SocketAddr::V4(v4)) = options.listen.first() {
        server_options.address = *v4;
    }
    server_options.route_path = match (&args.route_path, args.simple) {
        (_, true) => RoutePolicy::None,
        (Some(text), false) => RoutePolicy::from_cpppo(text)
            .map_err(|e| CliError::usage(format!("bad --route-path {text:?}: {e}")))?,
        (None, false) => RoutePolicy::Any,
    };
    server_options.max_frame_len = args.max_frame_size;
    server_options.max_connections = args.max_cip_connections;
    server_options.max_connections_per_session = args.max_cip_connections_per_session;
    server_options.limits = args.serve.connection_limits();
    let mut server = Server::new(plc, server_options);
    if let Some(delay) = args.serve.delay {
        server.faults.delay = match delay.max {
            Some(max) => ReplyDelay::Range {
                min: delay.min,
                max,
            },
            None => ReplyDelay::Fixed(delay.min),
        };
    }
    let web = args.web.as_deref().map(web_address).transpose()?;
    if web.is_some() {
        server.faults.latency = Some(WEB_LATENCY);
        server.faults.timeout = Some(WEB_TIMEOUT);
    }
    let on_event = serve::event_hook(args.serve.print, event_line);
    let handle = serve::start(args.serve.runtime, server, options, on_event)?;
    let Some(web) = web else {
        return serve::run(COMMAND, args.serve.runtime, handle);
    };
    let line = listening_line(&handle, &args.serve.runtime.to_string());
    let stop = handle.stopper();
    let web = cpppo_blocking::web::serve_web(web, handle).map_err(|e| {
        stop();
        CliError::usage(format!("cannot serve the web API on {web}: {e}"))
    })?;
    let stop = web.stopper();
    serve::on_signal(move || stop())?;
    eprintln!("{COMMAND}: {line}, web API on http://{}/", web.local_addr());
    web.wait()
        .map(|_| tracing::info!("stopped"))
        .map_err(CliError::failure)
}
