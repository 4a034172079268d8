//! Tag I/O history: `--history FILE` on the servers records every tag read, write and
//! failure in cpppo's history format (cpppo's `historize`), and `cpppo history replay`
//! plays the recorded writes back into a running controller; `cpppo history show`
//! prints a history with its times in another zone.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use cpppo_core::cip::data::Values;
use cpppo_core::cip::message_router::service;
use cpppo_core::cip::operation::{parse_operation, Method, Operation};
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::controller::{TagAccess, TagHook};
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, Value as Reply};
use cpppo_core::enip::ENIP_PORT;
use cpppo_core::modbus::device::Write as ModbusWrite;
use cpppo_history::record::{
    comment_line, modbus_write_record, python_json, started_recording, values_like,
};
use cpppo_history::time::DEFAULT_DIGITS;
use cpppo_history::{
    Abbreviations, Access, HistoryReader, Line, Schedule, Speed, TagIo, Timestamp, Zone,
};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::address::parse_address;
use crate::rotate::RotatingFile;
use crate::serve::{parse_seconds, print_line, CliError};

/// Rotated copies `--history-max-bytes` keeps unless `--history-keep` says otherwise.
pub const HISTORY_KEEP: usize = 5;
/// The file name ending that asks for a gzip-compressed history.
const GZIP_SUFFIX: &str = cpppo_history::reader::GZIP_SUFFIX;

/// The recording options of a server.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Record every tag read and write (and failed tag request) to FILE, in cpppo's
    /// history format: `<time>\t["Tag", [first, last]]\t{"write": [values]}`, with a
    /// `# ... Started recording Tag: NAME` comment per tag first. Each line is flushed as
    /// it is written (`tail -f` shows it live); a FILE ending in `.gz` is gzip-compressed.
    ///
    /// Example: `--history plant.hst`.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Write the history's times in this zone (an IANA name), with its abbreviation
    /// (`MST`/`MDT`), instead of UTC.
    ///
    /// Example: `--history-tz America/Edmonton`.
    #[arg(long, value_name = "ZONE", requires = "history")]
    pub history_tz: Option<String>,

    /// Rotate the history when a line would take it past BYTES: FILE becomes FILE.1 (and
    /// FILE.1 FILE.2 ...) and a fresh FILE is started. Not with a `.gz` FILE.
    ///
    /// Example: `--history-max-bytes 10000000`.
    #[arg(long, value_name = "BYTES", requires = "history")]
    pub history_max_bytes: Option<u64>,

    /// Rotated copies to keep with --history-max-bytes.
    ///
    /// Example: `--history-keep 10`.
    #[arg(long, value_name = "N", default_value_t = HISTORY_KEEP, requires = "history_max_bytes")]
    pub history_keep: usize,

    /// Gzip each rotated copy (FILE.1.gz, FILE.2.gz ...) with --history-max-bytes.
    ///
    /// Example: `--history-max-bytes 10000000 --history-compress`.
    #[arg(long, requires = "history_max_bytes")]
    pub history_compress: bool,

    /// Record writes (and failures) only, not reads: for long runs polled by HMIs.
    ///
    /// Example: `--history-writes-only`.
    #[arg(long, requires = "history")]
    pub history_writes_only: bool,
}

impl HistoryArgs {
    /// The recorder the options ask for (none without --history); it has already written
    /// the header comment of each tag in `tags`.
    pub fn recorder(&self, tags: &[String]) -> Result<Option<Arc<Recorder>>, CliError> {
        let Some(path) = &self.history else {
            return Ok(None);
        };
        let zone = match &self.history_tz {
            Some(name) => {
                Zone::named(name).map_err(|e| CliError::usage(format!("bad --history-tz: {e}")))?
            }
            None => Zone::Utc,
        };
        let cannot =
            |e: io::Error| CliError::usage(format!("cannot open history {}: {e}", path.display()));
        let gzip = path.to_string_lossy().ends_with(GZIP_SUFFIX);
        let out: Box<dyn Write + Send> = match (gzip, self.history_max_bytes) {
            (true, Some(_)) => {
                return Err(CliError::usage(
                    "--history-max-bytes rotates plain files only; drop it or the .gz",
                ))
            }
            (true, None) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(cannot)?;
                Box::new(GzEncoder::new(file, Compression::default()))
            }
            (false, Some(max)) => {
                let file = RotatingFile::open(path, max, self.history_keep).map_err(cannot)?;
                Box::new(if self.history_compress {
                    file.compressed()
                } else {
                    file
                })
            }
            (false, None) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(cannot)?,
            ),
        };
        let mut recorder = Recorder::new(out, zone, path);
        recorder.reads = !self.history_writes_only;
        let now = Instant::now();
        for tag in tags {
            recorder.comment(now, |when| started_recording(&when, tag));
        }
        tracing::info!(path = %path.display(), "recording tag history");
        Ok(Some(Arc::new(recorder)))
    }
}

/// The wall clock, anchored once: the time a server's hook is handed (an `Instant`) as a
/// time stamp.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    at: Instant,
    wall: Timestamp,
}

impl WallClock {
    /// Anchor at the current system time.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        WallClock {
            at: Instant::now(),
            wall: Timestamp::from_unix_micros(micros),
        }
    }

    /// The time stamp of `now`.
    pub fn at(&self, now: Instant) -> Timestamp {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let base = self.wall.unix_micros();
        Timestamp::from_unix_micros(match now.checked_duration_since(self.at) {
            Some(after) => base.saturating_add(micros(after)),
            None => base.saturating_sub(micros(self.at.duration_since(now))),
        })
    }
}

/// Where history lines go, and whether the last write failed (reported once).
struct Sink {
    out: Box<dyn Write + Send>,
    failing: bool,
}

/// The `--history` hook: one line per tag access, flushed at once.
pub struct Recorder {
    sink: Mutex<Sink>,
    clock: WallClock,
    zone: Zone,
    path: PathBuf,
    /// Whether reads are recorded (cpppo records them).
    reads: bool,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("zone", &self.zone.name())
            .finish()
    }
}

impl Recorder {
    /// Record into `out` (named `path` in messages), times shown in `zone`.
    pub fn new(out: Box<dyn Write + Send>, zone: Zone, path: &Path) -> Self {
        Recorder {
            sink: Mutex::new(Sink {
                out,
                failing: false,
            }),
            clock: WallClock::now(),
            zone,
            path: path.to_path_buf(),
            reads: true,
        }
    }

    /// Write one line (and flush); a failure is logged once, and writing goes on trying
    /// (a full disk may clear), as cpppo's logger does.
    fn line(&self, text: &str) {
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        let result = sink.out.write_all(&bytes).and_then(|()| sink.out.flush());
        match result {
            Ok(()) if sink.failing => {
                sink.failing = false;
                tracing::warn!(path = %self.path.display(), "history writing resumed");
            }
            Ok(()) => {}
            Err(e) if !sink.failing => {
                sink.failing = true;
                tracing::error!(path = %self.path.display(), error = %e, "history writing failed");
            }
            Err(_) => {}
        }
    }

    /// A comment line; `text` gets the time stamp of `now` shown as the records' are.
    fn comment(&self, now: Instant, text: impl FnOnce(String) -> String) {
        let when = self.clock.at(now).render(&self.zone, DEFAULT_DIGITS);
        self.line(&comment_line(&text(when)));
    }

    /// A comment line: the time of `now`, then `text` (cpppo's "Started recording" style).
    pub fn note(&self, now: Instant, text: &str) {
        self.comment(now, |when| format!("{when}: {text}"));
    }

    /// A Modbus write made at `now`.
    pub fn modbus_write(&self, now: Instant, write: &ModbusWrite) {
        let record = modbus_write_record(self.clock.at(now), write);
        self.line(&record.render(&self.zone, DEFAULT_DIGITS));
    }

    fn record(&self, access: Access, a: &TagAccess<'_>) {
        let io = TagIo::from_access(access, a);
        let when = self.clock.at(a.now);
        self.line(&io.record(when).render(&self.zone, DEFAULT_DIGITS));
    }
}

impl TagHook for Recorder {
    fn read(&self, access: &TagAccess<'_>) {
        if self.reads {
            self.record(Access::Read, access);
        }
    }

    fn write(&self, access: &TagAccess<'_>) {
        self.record(Access::Write, access);
    }

    fn failed(&self, now: Instant, tag: &str, svc: u8, status: GeneralStatus, extended: &[u16]) {
        let what = match svc {
            service::READ_TAG | service::READ_TAG_FRAGMENTED => "Read".to_string(),
            service::WRITE_TAG | service::WRITE_TAG_FRAGMENTED => "Write".to_string(),
            service::READ_MODIFY_WRITE_TAG => "Read-Modify-Write".to_string(),
            other => format!("service {other:#04x}"),
        };
        let extended = if extended.is_empty() {
            String::new()
        } else {
            let words: Vec<String> = extended.iter().map(|w| format!("{w:#06x}")).collect();
            format!(" [{}]", words.join(", "))
        };
        self.comment(now, |when| {
            format!(
                "{when}: PLC I/O {what} Tag {tag} failed: status {:#04x}{extended}",
                status.0
            )
        });
    }
}

/// Several hooks as one (`--print` and `--history` together).
pub struct Hooks(pub Vec<Arc<dyn TagHook>>);

impl TagHook for Hooks {
    fn before_read(&self, tag: &str, data: &mut [u8]) {
        for h in &self.0 {
            h.before_read(tag, data);
        }
    }
    fn read(&self, access: &TagAccess<'_>) {
        for h in &self.0 {
            h.read(access);
        }
    }
    fn write(&self, access: &TagAccess<'_>) {
        for h in &self.0 {
            h.write(access);
        }
    }
    fn failed(&self, now: Instant, tag: &str, svc: u8, status: GeneralStatus, extended: &[u16]) {
        for h in &self.0 {
            h.failed(now, tag, svc, status, extended);
        }
    }
}

/// `cpppo history` subcommands.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Play the writes recorded in a history file back into a running controller.
    #[command(
        long_about = "Play the tag writes recorded in a history file (written by `cpppo enip \
server --history`, or by cpppo's own historize) back into a running controller's tags over \
EtherNet/IP, at the recorded pace (--speed 1), faster (--speed 10) or as fast as possible \
(--speed max). Each tag is read once first to learn its type. Reads, comments and writes to \
bits or structure members are skipped.\n\n\
The exit status is 1 if any write failed, 2 for a bad option or a history line that cannot \
be read (named by its line number).",
        after_help = "Examples:\n  \
cpppo history replay plant.hst -a 127.0.0.1:44818\n  \
cpppo history replay plant.hst.gz -a plc-sim --speed max -p\n  \
cpppo history replay local.hst --tz America/Edmonton --speed 10"
    )]
    Replay(ReplayArgs),

    /// Print a history file's records, with their times in a chosen zone.
    #[command(after_help = "Examples:\n  \
cpppo history show plant.hst --show-tz America/Edmonton\n  \
cpppo history show local.hst --tz America/Edmonton --digits 6")]
    Show(ShowArgs),
}

/// How a history file is read.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The history files (plain, or gzip if the name ends in `.gz`), read one after the
    /// other: give rotated copies oldest first.
    ///
    /// Example: `plant.hst`, `plant.hst.2.gz plant.hst.1.gz plant.hst`.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,

    /// The zone of times in the file that carry no zone term (the default, UTC, is what
    /// cpppo writes); its abbreviations (`MST`, `MDT`) are understood in the file.
    ///
    /// Example: `--tz America/Edmonton`.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,

    /// Also understand the abbreviations of these zones (IANA names, or a prefix ending
    /// in `/` for every zone under it); an abbreviation that means different offsets in
    /// them is an error when a line uses it.
    ///
    /// Example: `--abbreviations America/Chicago,America/Denver`, `--abbreviations Canada/`.
    #[arg(long, value_name = "ZONES", value_delimiter = ',')]
    pub abbreviations: Vec<String>,

    /// Take the zones' abbreviations as they were used within a year of this time (UTC)
    /// rather than of now: for old files of zones whose rules have changed since.
    ///
    /// Example: `--abbreviations-at '2014-07-01 00:00:00'`.
    #[arg(long, value_name = "TIME")]
    pub abbreviations_at: Option<Timestamp>,

    /// Start at this recorded time (read like the file's times): a replay first plays
    /// every earlier write at once, bringing the tags to their state then; `show` skips
    /// the earlier records.
    ///
    /// Example: `--from '2014-07-15 22:00:00'`, `--from '2014-07-15 16:00:00 MDT'`.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// Stop before this recorded time (read like the file's times).
    ///
    /// Example: `--until '2014-07-15 23:00:00'`.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// A history's records, and the start asked for.
struct Records {
    records: Vec<cpppo_history::Record>,
    from: Option<Timestamp>,
}

impl ReadArgs {
    /// The file's default zone and abbreviation table.
    fn zones(&self) -> Result<(Zone, Abbreviations), CliError> {
        let now = self
            .abbreviations_at
            .unwrap_or_else(|| WallClock::now().at(Instant::now()));
        let zone = match &self.tz {
            Some(name) => {
                Zone::named(name).map_err(|e| CliError::usage(format!("bad --tz: {e}")))?
            }
            None => Zone::Utc,
        };
        let mut abbreviations = Abbreviations::with_zone(&zone, now);
        for name in &self.abbreviations {
            if name.ends_with('/') {
                if abbreviations.add_region(name, now).is_empty() {
                    return Err(CliError::usage(format!(
                        "bad --abbreviations: no zone starts with {name:?}"
                    )));
                }
            } else {
                abbreviations
                    .add_zone(name, now)
                    .map_err(|e| CliError::usage(format!("bad --abbreviations: {e}")))?;
            }
        }
        Ok((zone, abbreviations))
    }

    /// Every record of the files, in order, up to --until; a line that cannot be read
    /// is an error naming it.
    fn records(&self) -> Result<Records, CliError> {
        let (zone, abbreviations) = self.zones()?;
        let time = |text: &Option<String>, what: &str| {
            text.as_deref()
                .map(|t| Timestamp::parse(t, &zone, &abbreviations))
                .transpose()
                .map_err(|e| CliError::usage(format!("bad {what}: {e}")))
        };
        let from = time(&self.from, "--from")?;
        let until = time(&self.until, "--until")?;
        let mut records = Vec::new();
        for file in &self.files {
            let shown = file.display();
            let reader = HistoryReader::open(file, zone.clone(), abbreviations.clone())
                .map_err(|e| CliError::usage(format!("cannot read history {shown}: {e}")))?;
            for line in reader {
                match line.map_err(|e| CliError::usage(format!("history {shown}: {e}")))? {
                    (_, Line::Record(r)) if until.map_or(true, |u| r.when < u) => records.push(r),
                    (_, _) => {}
                }
            }
        }
        Ok(Records { records, from })
    }
}

/// `cpppo history replay` options.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    read: ReadArgs,

    /// The controller: `host[:port]`.
    ///
    /// Example: `-a 127.0.0.1:44818`.
    #[arg(short, long, value_name = "HOST[:PORT]", default_value = "localhost")]
    address: String,

    /// Pace: a factor of the recorded pace (1, 10, 0.5) or `max` (no waiting).
    ///
    /// Example: `--speed 10`.
    #[arg(long, value_name = "FACTOR|max", default_value = "1")]
    speed: Speed,

    /// Print each write as it is played: `TAG[FIRST-LAST] <= [values]: OK`.
    ///
    /// Example: `-p`.
    #[arg(short, long)]
    print: bool,

    /// Seconds each request (and the connect) may take.
    ///
    /// Example: `-t 2.5`.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "5")]
    timeout: Duration,

    /// Route path for the Unconnected Sends (`1/0`, cpppo's JSON), or `false` for a
    /// simple (non-routing) device.
    ///
    /// Example: `--route-path false`.
    #[arg(long, value_name = "PATH|false")]
    route_path: Option<String>,
}

/// `cpppo history show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    read: ReadArgs,

    /// Show times in this zone (an IANA name) with its abbreviation; UTC by default.
    ///
    /// Example: `--show-tz America/Edmonton`.
    #[arg(long, value_name = "ZONE")]
    show_tz: Option<String>,

    /// Sub-second digits shown (0-6).
    ///
    /// Example: `--digits 6`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DIGITS,
          value_parser = clap::value_parser!(u8).range(0..=6))]
    digits: u8,
}

/// Run a `cpppo history` subcommand.
pub fn run(command: HistoryCommand) -> Result<(), CliError> {
    match command {
        HistoryCommand::Replay(args) => replay(&args),
        HistoryCommand::Show(args) => show(&args),
    }
}

fn show(args: &ShowArgs) -> Result<(), CliError> {
    let zone = match &args.show_tz {
        Some(name) => {
            Zone::named(name).map_err(|e| CliError::usage(format!("bad --show-tz: {e}")))?
        }
        None => Zone::Utc,
    };
    let Records { records, from } = args.read.records()?;
    for record in records {
        if from.map_or(true, |f| record.when >= f) {
            print_line(&record.render(&zone, args.digits));
        }
    }
    Ok(())
}

/// One write to play: when it is due, what to send, and how to show it.
struct Planned {
    due: Duration,
    io: TagIo,
}

/// The tag's name as an operation path, at its `first` element.
fn path_text(io: &TagIo) -> String {
    if io.first == 0 {
        io.tag.clone()
    } else {
        format!("{}[{}]", io.tag, io.first)
    }
}

/// The tag and elements as `--print` shows them: `SCADA[1-3]`.
fn shown_path(io: &TagIo) -> String {
    if io.first == io.last {
        format!("{}[{}]", io.tag, io.first)
    } else {
        format!("{}[{}-{}]", io.tag, io.first, io.last)
    }
}

/// A tag name from the history as an operation (a read of it).
fn tag_operation(io: &TagIo, text: &str) -> Result<Operation, CliError> {
    parse_operation(text)
        .map_err(|e| CliError::usage(format!("bad tag name {:?} in history: {e}", io.tag)))
}

/// The writes to play, each with when it is due; and how many were skipped.
fn plan(records: Records, speed: Speed) -> (Vec<Planned>, usize) {
    let mut schedule = match records.from {
        Some(start) => Schedule::starting_at(speed, start),
        None => Schedule::new(speed),
    };
    let mut plan = Vec::new();
    let mut skipped = 0usize;
    for record in records.records {
        match record.tag_io() {
            Some(io) if io.access == Access::Write => {
                if io.bit.is_some() || io.member_at > 0 {
                    skipped += 1;
                    continue;
                }
                plan.push(Planned {
                    due: schedule.due(record.when),
                    io,
                });
            }
            _ => {}
        }
    }
    (plan, skipped)
}

/// The Write Tag operation of a planned write, its values typed `like` the tag.
fn write_operation(io: &TagIo, like: &Values) -> Result<Operation, CliError> {
    let values = values_like(like, &io.values)
        .map_err(|e| CliError::usage(format!("history write to {}: {e}", shown_path(io))))?;
    let mut op = tag_operation(io, &path_text(io))?;
    op.method = Method::Write;
    op.elements = u16::try_from(io.last.saturating_sub(io.first) + 1).unwrap_or(u16::MAX);
    op.offset = u32::try_from(io.offset).ok().filter(|o| *o > 0);
    op.values = Some(values);
    Ok(op)
}

fn replay(args: &ReplayArgs) -> Result<(), CliError> {
    let (plan, skipped) = plan(args.read.records()?, args.speed);
    let mut session = Session::connect(args)?;
    // Each tag's type from one read of it; then every write is built (a value that does
    // not fit its tag stops the replay before anything is written).
    let mut types: BTreeMap<&str, Values> = BTreeMap::new();
    for p in &plan {
        if !types.contains_key(p.io.tag.as_str()) {
            types.insert(&p.io.tag, session.tag_type(&p.io)?);
        }
    }
    let writes = plan
        .iter()
        .filter_map(|p| types.get(p.io.tag.as_str()).map(|like| (p, like)))
        .map(|(p, like)| Ok((p, write_operation(&p.io, like)?)))
        .collect::<Result<Vec<_>, CliError>>()?;

    let start = Instant::now();
    let mut failed = 0usize;
    for (p, op) in writes {
        if let Some(wait) = (start + p.due).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let outcome = match session.call(op).map_err(CliError::failure)? {
            Ok(_) => "OK".to_string(),
            Err(status) => {
                failed += 1;
                format!("status {:#04x} {:?}", status.general.0, status.additional)
            }
        };
        if args.print {
            print_line(&format!(
                "{} <= {}: {outcome}",
                shown_path(&p.io),
                python_json(&p.io.values)
            ));
        }
    }
    session.close();
    tracing::info!(writes = plan.len(), failed, skipped, "history replayed");
    if skipped > 0 {
        eprintln!("cpppo history replay: skipped {skipped} writes to bits or structure members");
    }
    if failed > 0 {
        return Err(CliError::failure(format!(
            "{failed} of {} writes failed",
            plan.len()
        )));
    }
    Ok(())
}

/// One client session, one request at a time.
struct Session {
    client: ClientConn,
    driver: cpppo_blocking::client::ClientDriver,
    idle: Duration,
}

impl Session {
    /// Connect to the controller `args` name.
    fn connect(args: &ReplayArgs) -> Result<Session, CliError> {
        let mut options = ClientOptions {
            timeout: args.timeout,
            ..ClientOptions::default()
        };
        if let Some(text) = &args.route_path {
            options = options
                .with_route_path(text)
                .map_err(|e| CliError::usage(format!("bad --route-path {text:?}: {e}")))?;
        }
        let target = parse_address(&args.address, ENIP_PORT)
            .map_err(CliError::usage)?
            .into_iter()
            .map(cpppo_core::engine::reachable)
            .collect::<Vec<SocketAddr>>();
        let stream = cpppo_blocking::client::connect(&target, args.timeout)
            .map_err(|e| CliError::failure(format!("cannot connect to {}: {e}", args.address)))?;
        Ok(Session {
            client: ClientConn::new(Instant::now(), options),
            driver: cpppo_blocking::client::ClientDriver::new(Some(stream)),
            idle: args.timeout,
        })
    }

    /// The tag's type: what one read of its first element answers.
    fn tag_type(&mut self, io: &TagIo) -> Result<Values, CliError> {
        match self
            .call(tag_operation(io, &io.tag)?)
            .map_err(CliError::failure)?
        {
            Ok(Reply::Values(v)) => Ok(v),
            Ok(other) => Err(CliError::failure(format!(
                "reading {} to learn its type answered {other:?}",
                io.tag
            ))),
            Err(status) => Err(CliError::failure(format!(
                "cannot read tag {} to learn its type: status {:#04x} {:?}",
                io.tag, status.general.0, status.additional
            ))),
        }
    }

    /// Send `op` and wait for its answer: the value or the device's status; an error if
    /// the connection is lost.
    fn call(
        &mut self,
        op: Operation,
    ) -> Result<Result<Reply, cpppo_core::enip::client::CipStatus>, String> {
        let mut id = None;
        let mut answer = None;
        let mut op = Some(op);
        self.driver
            .run(&mut self.client, self.idle, |client, driver| {
                let mut moved = false;
                if let Some(op) = op.take() {
                    id = Some(client.submit(Instant::now(), op));
                    moved = true;
                }
                while let Some(event) = client.poll_event() {
                    match event {
                        ClientEvent::Reply { op, result } if Some(op) == id => {
                            answer = Some(Ok(result));
                        }
                        ClientEvent::Lost { op, why } if Some(op) == id => {
                            answer = Some(Err(why.to_string()));
                        }
                        ClientEvent::Failed(why) => answer = Some(Err(why.to_string())),
                        _ => {}
                    }
                }
                if answer.is_none() && driver.stream.is_none() && !moved {
                    answer = Some(Err("the connection closed".to_string()));
                }
                (moved, answer.is_some())
            })
            .map_err(|e| format!("socket: {e}"))?;
        answer.unwrap_or_else(|| Err("no answer".to_string()))
    }

    /// Close the session politely (best effort).
    fn close(&mut self) {
        self.client.close(Instant::now());
        let _ = self
            .driver
            .run(&mut self.client, self.idle, |client, driver| {
                while client.poll_event().is_some() {}
                (false, client.is_closed() || driver.stream.is_none())
            });
    }
}

/// Write to a fresh file (for tests): the recorder of `path`.
#[cfg(test)]
fn file_recorder(path: &Path) -> Recorder {
    let file = std::fs::File::create(path).unwrap();
    Recorder::new(Box::new(file), Zone::Utc, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_follows_the_instants() {
        let clock = WallClock::now();
        let later = clock.at(clock.at + Duration::from_millis(1500));
        assert_eq!(later.since(clock.wall).to_seconds(), 1.5);
        if let Some(before) = clock.at.checked_sub(Duration::from_secs(2)) {
            assert_eq!(clock.at(before).since(clock.wall).to_seconds(), -2.0);
        }
    }

    #[test]
    fn failures_become_comments() {
        let dir = std::env::temp_dir().join(format!("cpppo-history-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("failed.hst");
        let recorder = file_recorder(&path);
        recorder.failed(
            Instant::now(),
            "SCADA",
            service::READ_TAG,
            GeneralStatus(0xFF),
            &[0x2105],
        );
        recorder.failed(
            Instant::now(),
            "Speed",
            service::WRITE_TAG,
            GeneralStatus(0x05),
            &[],
        );
        drop(recorder);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("# 20"), "{text}");
        assert!(
            lines[0].ends_with(": PLC I/O Read Tag SCADA failed: status 0xff [0x2105]"),
            "{text}"
        );
        assert!(
            lines[1].ends_with(": PLC I/O Write Tag Speed failed: status 0x05"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
