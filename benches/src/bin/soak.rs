//! `soak`: hold thousands of EtherNet/IP connections open to the simulated controller on
//! the smol and mio runtimes, with a steady load of Read Tag requests, for a chosen time;
//! report requests served, errors, peak and final RSS; exit non-zero when a request was
//! lost or refused, or when memory grew after the warm-up.
//!
//! A benchmark program, not a test (see `benches/README.md`):
//!
//! ```sh
//! cargo build --release -p cpppo-benches --bin soak
//! nice target/release/soak --runtime both --connections 2000 --duration 900
//! ```
//!
//! Server and clients share this process (so RSS counts both): the server runs on its
//! runtime's thread, the clients on one mio loop on the main thread. Each client
//! registers a session, then sends one Read Tag of `SCADA` every `1/rate` seconds (the
//! clients staggered evenly), never more than one outstanding; the reply must echo the
//! request's sender context and carry the tag's value. A request still unanswered when
//! its connection's next one is due is counted late (not re-sent); one unanswered at the
//! end (after a grace period) or on a connection that closed is lost.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpppo_benches::enip::{decode_read_tag_reply, read_tag_request_frame, TAG};
use cpppo_benches::workload::register_session_frame;
use cpppo_core::cip::data::Values;
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::engine::{reachable, OnEvent, ServeOptions, Serving};
use cpppo_core::enip::encapsulation::{status, Command, Header, HEADER_LEN};
use cpppo_core::enip::server::{Server, ServerEvent, ServerOptions};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// The value of `SCADA[0]` every reply must carry.
const VALUE: i16 = 0x1234;
/// How long the clients wait for the last replies once the load stops.
const GRACE: Duration = Duration::from_secs(10);
/// How long establishing every connection and session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often progress is printed.
const PRINT_EVERY: Duration = Duration::from_secs(60);
/// New connections started per loop turn while connecting (under the listen backlog).
const CONNECT_BATCH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Smol,
    Mio,
}

#[derive(Debug, Clone)]
struct Args {
    runtimes: Vec<Runtime>,
    connections: usize,
    duration: Duration,
    rate: f64,
    warmup: Option<Duration>,
    slack_mib: f64,
}

const USAGE: &str = "usage: soak [--runtime smol|mio|both] [--connections N] [--duration SECS] \
[--rate REQ_PER_SEC_PER_CONNECTION] [--warmup SECS] [--rss-slack-mib MIB]
defaults: --runtime both --connections 2000 --duration 60 --rate 1 \
--warmup (a quarter of the duration, at most 60) --rss-slack-mib 4 (or 5% of the warm RSS, whichever is more)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runtimes: vec![Runtime::Smol, Runtime::Mio],
        connections: 2000,
        duration: Duration::from_secs(60),
        rate: 1.0,
        warmup: None,
        slack_mib: 4.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("{flag}: {v:?} is not a positive number"))
        };
        match flag.as_str() {
            "--runtime" => {
                args.runtimes = match value.as_str() {
                    "smol" => vec![Runtime::Smol],
                    "mio" => vec![Runtime::Mio],
                    "both" => vec![Runtime::Smol, Runtime::Mio],
                    other => return Err(format!("--runtime: {other:?} is not smol, mio or both")),
                }
            }
            "--connections" => {
                args.connections =
                    value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--connections: {value:?} is not a positive count")
                    })?
            }
            "--duration" => args.duration = Duration::from_secs_f64(number(&value)?),
            "--rate" => args.rate = number(&value)?,
            "--warmup" => args.warmup = Some(Duration::from_secs_f64(number(&value)?)),
            "--rss-slack-mib" => args.slack_mib = number(&value)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

/// `VmRSS` and `VmHWM` (peak) of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn controller() -> Server<Controller> {
    let mut plc = Controller::new(ControllerConfig::default());
    plc.tags_mut()
        .add_str("SCADA=INT[10]")
        .expect("a valid tag spec");
    plc.tags_mut()
        .set_values(TAG, 0, &Values::Int(vec![VALUE]))
        .expect("an INT value");
    Server::new(plc, ServerOptions::default())
}

fn start(runtime: Runtime) -> std::io::Result<Box<dyn Serving<Server<Controller>>>> {
    let options = ServeOptions::new("127.0.0.1:0".parse().expect("an address"));
    // Events are dropped, not formatted: the soak measures the engines and runtimes.
    let quiet: OnEvent<ServerEvent> = Arc::new(|_, _| {});
    Ok(match runtime {
        Runtime::Smol => Box::new(cpppo_smol::serve_with(controller(), options, quiet)?),
        Runtime::Mio => Box::new(cpppo_mio::serve_with(controller(), options, quiet)?),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Registering,
    Ready,
    Closed,
}

struct Client {
    stream: TcpStream,
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    request: Vec<u8>,
    /// The sender context of the request awaiting its reply, and when it was sent.
    outstanding: Option<(u64, Instant)>,
    next_context: u64,
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    served: u64,
    errors: u64,
    late: u64,
    lost: u64,
    closed: u64,
    latency_total: Duration,
    latency_max: Duration,
}

struct Load {
    poll: Poll,
    clients: Vec<Client>,
    counts: Counts,
    read_buf: Vec<u8>,
}

impl Load {
    fn write(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        while !c.out.is_empty() && c.phase != Phase::Closed {
            match c.stream.write(&c.out) {
                Ok(0) => Self::close(c, &mut self.counts),
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => Self::close(c, &mut self.counts),
            }
        }
    }

    fn close(c: &mut Client, counts: &mut Counts) {
        if c.phase != Phase::Closed {
            c.phase = Phase::Closed;
            counts.closed += 1;
            if c.outstanding.take().is_some() {
                counts.lost += 1;
            }
        }
    }

    fn read(&mut self, key: usize, now: Instant) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        loop {
            match c.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    Self::close(c, &mut self.counts);
                    return;
                }
                Ok(n) => c.inbuf.extend_from_slice(&self.read_buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    Self::close(c, &mut self.counts);
                    return;
                }
            }
        }
        while c.inbuf.len() >= HEADER_LEN {
            let len = HEADER_LEN + usize::from(u16::from_le_bytes([c.inbuf[2], c.inbuf[3]]));
            if c.inbuf.len() < len {
                break;
            }
            let frame: Vec<u8> = c.inbuf.drain(..len).collect();
            Self::reply(c, &frame, now, &mut self.counts);
        }
    }

    fn reply(c: &mut Client, frame: &[u8], now: Instant, counts: &mut Counts) {
        let header = Header::decode(frame).ok();
        match (&c.phase, header) {
            (Phase::Registering, Some(h))
                if h.command == Command::RegisterSession && h.status == status::SUCCESS =>
            {
                c.request[4..8].copy_from_slice(&h.session_handle.to_le_bytes());
                c.phase = Phase::Ready;
            }
            (Phase::Ready, Some(_)) => {
                let good = decode_read_tag_reply(frame).ok().filter(|a| {
                    a.header.status == status::SUCCESS
                        && a.general_status == GeneralStatus::SUCCESS
                        && a.data == VALUE.to_le_bytes()
                });
                let context = good.map(|a| u64::from_le_bytes(a.header.sender_context));
                match (c.outstanding, context) {
                    (Some((want, sent)), Some(got)) if want == got => {
                        c.outstanding = None;
                        counts.served += 1;
                        let latency = now.saturating_duration_since(sent);
                        counts.latency_total += latency;
                        counts.latency_max = counts.latency_max.max(latency);
                    }
                    _ => counts.errors += 1,
                }
            }
            _ => counts.errors += 1,
        }
    }

    /// Send the next request on `key`; false when it still waits for the last one.
    fn send(&mut self, key: usize, now: Instant) -> bool {
        let Some(c) = self.clients.get_mut(key) else {
            return false;
        };
        if c.phase != Phase::Ready || c.outstanding.is_some() {
            return false;
        }
        c.next_context = c.next_context.wrapping_add(1);
        c.request[12..20].copy_from_slice(&c.next_context.to_le_bytes());
        c.out.extend_from_slice(&c.request);
        c.outstanding = Some((c.next_context, now));
        self.counts.sent += 1;
        self.write(key);
        true
    }

    fn turn(&mut self, events: &mut Events, timeout: Duration) {
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                panic!("poll failed: {e}");
            }
        }
        let now = Instant::now();
        for event in events.iter() {
            let key = event.token().0;
            if let Some(c) = self.clients.get_mut(key) {
                if c.phase == Phase::Connecting && event.is_writable() {
                    if c.stream.peer_addr().is_ok() {
                        c.phase = Phase::Registering;
                        c.out.extend_from_slice(&register_session_frame());
                    } else {
                        Self::close(c, &mut self.counts);
                    }
                }
            }
            if event.is_writable() {
                self.write(key);
            }
            if event.is_readable() || event.is_read_closed() {
                self.read(key, now);
            }
        }
    }

    fn ready(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.phase == Phase::Ready)
            .count()
    }
}

struct Report {
    runtime: Runtime,
    connections: usize,
    connected: usize,
    counts: Counts,
    rss_start_kib: u64,
    rss_warm_kib: u64,
    rss_peak_kib: u64,
    rss_final_kib: u64,
    hwm_kib: u64,
    seconds: f64,
    slack_kib: u64,
}

impl Report {
    fn grown_kib(&self) -> u64 {
        self.rss_final_kib.saturating_sub(self.rss_warm_kib)
    }

    fn passed(&self) -> bool {
        self.connected == self.connections
            && self.counts.lost == 0
            && self.counts.errors == 0
            && self.counts.closed == 0
            && self.counts.served > 0
            && self.grown_kib() <= self.slack_kib
    }

    fn print(&self) {
        let c = &self.counts;
        let mean = if c.served > 0 {
            c.latency_total / u32::try_from(c.served).unwrap_or(u32::MAX)
        } else {
            Duration::ZERO
        };
        println!(
            "soak {:?}: {} connections ({} established), {:.0} s of load\n  \
             requests: {} sent, {} served ({:.0}/s), {} errors, {} late, {} lost, \
             {} connections closed\n  latency: mean {:.2} ms, max {:.1} ms\n  \
             RSS: {:.1} MiB before connecting, {:.1} MiB after warm-up, peak after warm-up \
             {:.1} MiB, final {:.1} MiB (growth {:.1} MiB, allowed {:.1}); VmHWM {:.1} MiB\n  \
             {}",
            self.runtime,
            self.connections,
            self.connected,
            self.seconds,
            c.sent,
            c.served,
            c.served as f64 / self.seconds.max(1e-9),
            c.errors,
            c.late,
            c.lost,
            c.closed,
            mean.as_secs_f64() * 1e3,
            c.latency_max.as_secs_f64() * 1e3,
            mib(self.rss_start_kib),
            mib(self.rss_warm_kib),
            mib(self.rss_peak_kib),
            mib(self.rss_final_kib),
            mib(self.grown_kib()),
            mib(self.slack_kib),
            mib(self.hwm_kib),
            if self.passed() { "PASS" } else { "FAIL" },
        );
    }
}

fn soak(runtime: Runtime, args: &Args) -> std::io::Result<Report> {
    let rss_start_kib = rss_kib().0;
    let handle = start(runtime)?;
    let addr: SocketAddr = reachable(handle.local_addrs()[0]);
    let mut load = Load {
        poll: Poll::new()?,
        clients: Vec::with_capacity(args.connections),
        counts: Counts::default(),
        read_buf: vec![0; 4096],
    };
    let mut events = Events::with_capacity(1024);
    // Connect in batches, each once the previous batch has its sessions.
    let began = Instant::now();
    while load.ready() < args.connections {
        let pending = load.clients.len() - load.ready();
        if pending < CONNECT_BATCH && load.clients.len() < args.connections {
            for _ in 0..CONNECT_BATCH.min(args.connections - load.clients.len()) {
                let key = load.clients.len();
                let mut stream = TcpStream::connect(addr)?;
                load.poll.registry().register(
                    &mut stream,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                let request = read_tag_request_frame();
                load.clients.push(Client {
                    stream,
                    phase: Phase::Connecting,
                    inbuf: Vec::with_capacity(256),
                    out: Vec::with_capacity(256),
                    request,
                    outstanding: None,
                    next_context: 0,
                });
            }
        }
        load.turn(&mut events, Duration::from_millis(10));
        if load.counts.closed > 0 || began.elapsed() > CONNECT_TIMEOUT {
            break;
        }
    }
    let connected = load.ready();
    println!(
        "soak {runtime:?}: {connected} of {} connections with sessions in {:.1} s; load for {:.0} s",
        args.connections,
        began.elapsed().as_secs_f64(),
        args.duration.as_secs_f64()
    );
    // Every connection sends every `period`, staggered evenly across it.
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let start_at = Instant::now();
    let mut schedule: VecDeque<(Instant, usize)> = (0..load.clients.len())
        .map(|key| {
            let offset = period.mul_f64(key as f64 / load.clients.len() as f64);
            (start_at + offset, key)
        })
        .collect();
    let warmup = args
        .warmup
        .unwrap_or_else(|| (args.duration / 4).min(Duration::from_secs(60)));
    let end = start_at + args.duration;
    let (mut rss_warm_kib, mut rss_peak_kib) = (0, 0);
    let mut warm = false;
    let mut next_sample = start_at;
    let mut next_print = start_at + PRINT_EVERY;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while let Some(&(at, key)) = schedule.front() {
            if at > now {
                break;
            }
            schedule.pop_front();
            if !load.send(key, now)
                && load
                    .clients
                    .get(key)
                    .is_some_and(|c| c.phase == Phase::Ready)
            {
                load.counts.late += 1;
            }
            schedule.push_back((at + period, key));
        }
        if now >= next_sample {
            next_sample += SAMPLE_EVERY;
            let rss = rss_kib().0;
            if !warm && now >= start_at + warmup {
                warm = true;
                rss_warm_kib = rss;
            }
            if warm {
                rss_peak_kib = rss_peak_kib.max(rss);
            }
        }
        if now >= next_print {
            next_print += PRINT_EVERY;
            let c = &load.counts;
            println!(
                "  {:>6.0} s: {} served, {} errors, {} late, {} lost, RSS {:.1} MiB",
                now.duration_since(start_at).as_secs_f64(),
                c.served,
                c.errors,
                c.late,
                c.lost,
                mib(rss_kib().0)
            );
        }
        let wait = schedule
            .front()
            .map_or(SAMPLE_EVERY, |(at, _)| at.saturating_duration_since(now))
            .min(next_sample.saturating_duration_since(now))
            .max(Duration::from_micros(100));
        load.turn(&mut events, wait);
    }
    let seconds = start_at.elapsed().as_secs_f64();
    let grace_end = Instant::now() + GRACE;
    while load.clients.iter().any(|c| c.outstanding.is_some()) && Instant::now() < grace_end {
        load.turn(&mut events, Duration::from_millis(10));
    }
    let rss_final_kib = rss_kib().0;
    if !warm {
        rss_warm_kib = rss_final_kib;
    }
    rss_peak_kib = rss_peak_kib.max(rss_final_kib);
    let mut counts = std::mem::take(&mut load.counts);
    counts.lost += load
        .clients
        .iter()
        .filter(|c| c.outstanding.is_some())
        .count() as u64;
    let stats = handle.stats();
    drop(load);
    let server = handle.shutdown()?;
    let limits = *server.limits_reached();
    println!(
        "  server: {} accepted, {} refused, {} active at the end of the load, \
         {} send timeouts; limits hit: {limits:?}",
        stats.accepted, stats.refused, stats.active, stats.send_timeouts
    );
    // No limit is for a well-behaved client to meet.
    counts.errors += stats.send_timeouts + stats.refused;
    counts.errors += [
        limits.frame_length,
        limits.frame_timeout,
        limits.pending_replies,
        limits.request_rate,
        limits.connections_per_session,
        limits.connections,
    ]
    .iter()
    .sum::<u64>();
    let slack_kib = ((args.slack_mib * 1024.0) as u64).max(rss_warm_kib / 20);
    Ok(Report {
        runtime,
        connections: args.connections,
        connected,
        counts,
        rss_start_kib,
        rss_warm_kib,
        rss_peak_kib,
        rss_final_kib,
        hwm_kib: rss_kib().1,
        seconds,
        slack_kib,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("soak: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Two descriptors per connection (client and server ends) in this one process.
    let wanted = (args.connections as u64) * 2 + 256;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit >= wanted => {}
        Ok(limit) => {
            eprintln!(
                "soak: the open-files limit is {limit}, {wanted} are needed for {} connections",
                args.connections
            );
            return ExitCode::from(2);
        }
        Err(e) => eprintln!("soak: cannot raise the open-files limit: {e}"),
    }
    let mut passed = true;
    for &runtime in &args.runtimes {
        match soak(runtime, &args) {
            Ok(report) => {
                report.print();
                passed &= report.passed();
            }
            Err(e) => {
                eprintln!("soak {runtime:?}: {e}");
                passed = false;
            }
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
