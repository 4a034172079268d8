//! Deterministic simulation: client engines against server engines in memory, over a
//! simulated network, with a simulated clock. No sockets, no threads, no wall clock.
//!
//! After quinn-proto's test `Pair` and str0m's `netem`: every scenario is a seed. The
//! seed ([`SplitMix64`]) chooses the protocol (EtherNet/IP unconnected or connected,
//! Modbus/TCP, Modbus/RTU on a serial line), the engines' options (depth, Multiple
//! Service Packets, fragmentation, timeouts), the network (latency, jitter, where byte
//! streams are cut into segments and which segments arrive together, slow readers,
//! connections dropped, server restarts with or without their tag values, line noise)
//! and the workload (reads and writes of tags or registers). Some servers answer slower
//! than the clients' timeouts, so late replies arrive for operations already given up. The same seed gives the
//! same run, event for event, so a failing seed is a one-line reproduction
//! ([`repro_command`]).
//!
//! ## Model
//!
//! Time is an offset from one `Instant`; the loop jumps from one due moment to the next
//! (a delivery, an engine deadline, a workload step, a fault). Each TCP connection is
//! two [`Pipe`]s: bytes sent are cut at random points into segments, each due after a
//! latency with jitter but never before the segment ahead of it (a TCP stream stays in
//! order; different connections do not), and everything due at once is handed over in
//! one `handle_input` (coalescing). A slow reader takes at most some bytes per read.
//! A dropped connection loses what is in flight and both ends see end of file; a
//! server restart drops every connection and starts fresh engines, keeping the tag
//! values or not. A serial line delivers bytes at the baud rate with silences between
//! frames, flips bits and adds bursts of noise while idle.
//!
//! ## Invariants checked
//!
//! - Every operation submitted finishes exactly once: a value, or a typed error (a CIP
//!   status or Modbus exception where the operation is invalid, `Lost`/`Timeout`/
//!   `Aborted` where the network took it away); no event names an operation that was
//!   never submitted or already finished.
//! - No reply is matched to the wrong request: each tag (register block) has its own
//!   type and values drawn from its own range, and every value read must be one the
//!   reference model allows for that tag.
//! - The reference model: operations on one tag never overlap, so each tag has a set of
//!   values it may hold (one after a write is confirmed; a lost write may or may not
//!   have been applied, and may still land while its connection lives). Every read, and
//!   the device's own tables at the end, must be in the set.
//! - Memory stays bounded: operations outstanding in each client are exactly those not
//!   finished; sessions, CIP connections and connection statistics in the server never
//!   exceed what the live connections account for; after the clients close, nothing is
//!   left registered.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cpppo_core::cip::data::Values;
use cpppo_core::cip::operation::{parse_operation, Operation};
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, LostReason, OpId, Value};
use cpppo_core::enip::server::{ReplyDelay, Server, ServerConn, ServerOptions, KEPT_CLOSED_STATS};
use cpppo_core::modbus::client::{
    ClientConfig as ModbusConfig, ClientConn as ModbusClient, ClientEvent as ModbusEvent,
    OpId as ModbusOp,
};
use cpppo_core::modbus::device::{Delay, Device, UnitData};
use cpppo_core::modbus::numbering::{Address, Table};
use cpppo_core::modbus::pdu::{Bits, ExceptionCode, Registers, Request, Response};
use cpppo_core::modbus::poller::{Failure, PollEvent, Poller, PollerConfig, WriteId};
use cpppo_core::modbus::rtu::RtuTiming;
use cpppo_core::modbus::server::{ServerConn as ModbusServerConn, Transport};
use cpppo_core::rng::SplitMix64;

/// The environment variable that runs one scenario by its seed.
pub const SEED_VAR: &str = "CPPPO_SIM_SEED";
/// The environment variable that sets how many scenarios the test runs.
pub const SCENARIOS_VAR: &str = "CPPPO_SIM_SCENARIOS";
/// The environment variable that sets the first scenario the test runs.
pub const FIRST_VAR: &str = "CPPPO_SIM_FIRST";

/// The command that runs the scenario of `seed` alone.
pub fn repro_command(seed: u64) -> String {
    format!("{SEED_VAR}=0x{seed:016x} cargo test -p cpppo-conformance --test simulation")
}

/// The seed of scenario `i` of a run: a SplitMix64 stream from a fixed start, so
/// scenario `i` is the same on every machine.
pub fn scenario_seed(i: u64) -> u64 {
    let mut r = SplitMix64::new(0x6370_7070_7369_6d00 ^ i);
    r.next_u64()
}

/// The protocol and mode a scenario exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// EtherNet/IP, unconnected messaging (SendRRData, Unconnected Send).
    EnipUnconnected,
    /// EtherNet/IP, connected messaging (Forward Open, SendUnitData).
    EnipConnected,
    /// Modbus/TCP.
    ModbusTcp,
    /// Modbus/RTU on a serial line with noise.
    ModbusRtu,
}

/// What one scenario did, for the test's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations submitted.
    pub ops: u64,
    /// Operations that gave a value (or a write confirmed).
    pub ok: u64,
    /// Operations refused by the device (CIP status, Modbus exception), as expected.
    pub refused: u64,
    /// Operations the network took away (lost, timed out, aborted).
    pub lost: u64,
    /// Connections dropped by the network.
    pub drops: u64,
    /// Server restarts.
    pub restarts: u64,
    /// Connections opened.
    pub connects: u64,
    /// Values the Modbus poller reported changed, each checked against the model.
    pub polled: u64,
}

/// A violated invariant, with the simulated time it was found at.
pub type Violation = String;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// Run the scenario of `seed`.
pub fn run(seed: u64) -> Result<(Kind, Report), Violation> {
    let mut rng = SplitMix64::new(seed);
    let kind = match rng.below(4) {
        0 => Kind::EnipUnconnected,
        1 => Kind::EnipConnected,
        2 => Kind::ModbusTcp,
        _ => Kind::ModbusRtu,
    };
    let report = match kind {
        Kind::EnipUnconnected | Kind::EnipConnected => {
            EnipWorld::new(rng, kind == Kind::EnipConnected).run()
        }
        Kind::ModbusTcp => ModbusWorld::new(rng).run(),
        Kind::ModbusRtu => RtuWorld::new(rng).run(),
    }?;
    Ok((kind, report))
}

// ---------------------------------------------------------------------------------------
// Network

/// A scenario's network conditions.
#[derive(Debug, Clone)]
pub struct Netem {
    /// Latency of a segment: at least this...
    pub latency_min: Duration,
    /// ...and at most this (the difference is jitter).
    pub latency_max: Duration,
    /// Longest segment a byte stream is cut into.
    pub max_segment: usize,
    /// A slow reader: at most this many bytes per read...
    pub read_limit: Option<usize>,
    /// ...and a read this often.
    pub read_interval: Duration,
}

impl Netem {
    fn random(rng: &mut SplitMix64) -> Netem {
        let latency_min = Duration::from_micros(rng.below(5_000));
        let latency_max = latency_min + Duration::from_micros(rng.below(20_000));
        let max_segment = match rng.below(4) {
            0 => 1 + rng.below(4) as usize,
            1 => 1 + rng.below(40) as usize,
            _ => 1 + rng.below(1_500) as usize,
        };
        let read_limit = (rng.below(4) == 0).then(|| 1 + rng.below(64) as usize);
        Netem {
            latency_min,
            latency_max,
            max_segment,
            read_limit,
            read_interval: Duration::from_micros(100 + rng.below(3_000)),
        }
    }
}

/// One direction of one TCP connection: segments in order, each with its due time.
#[derive(Debug, Default)]
pub struct Pipe {
    segments: VecDeque<(Duration, Vec<u8>)>,
    last_due: Duration,
    /// The sender closed its side after what is queued.
    fin: bool,
    /// Bytes queued, for the memory bound.
    queued: usize,
}

impl Pipe {
    /// Queue `bytes` sent at `now`, cut into segments.
    fn send(&mut self, now: Duration, bytes: &[u8], net: &Netem, rng: &mut SplitMix64) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (1 + rng.below(net.max_segment as u64) as usize).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            let span = (net.latency_max - net.latency_min).as_micros() as u64;
            let latency = net.latency_min + Duration::from_micros(rng.between(0, span));
            let due = (now + latency).max(self.last_due);
            self.last_due = due;
            self.segments.push_back((due, piece.to_vec()));
            self.queued += piece.len();
            rest = tail;
        }
    }

    fn next_due(&self) -> Option<Duration> {
        self.segments.front().map(|(d, _)| *d)
    }

    /// Everything due at `now`, as one read (at most the slow reader's limit; the rest
    /// waits for the next read).
    fn recv(&mut self, now: Duration, net: &Netem) -> Vec<u8> {
        let mut out = Vec::new();
        let limit = net.read_limit.unwrap_or(usize::MAX);
        while let Some((due, seg)) = self.segments.front_mut() {
            if *due > now || out.len() >= limit {
                break;
            }
            let room = limit - out.len();
            if seg.len() > room {
                out.extend(seg.drain(..room));
                *due = now + net.read_interval;
                break;
            }
            out.extend_from_slice(seg);
            self.segments.pop_front();
        }
        self.queued -= out.len();
        if let Some((due, _)) = self.segments.front() {
            self.last_due = self.last_due.max(*due);
        }
        out
    }

    /// Whether the sender's end of file has arrived: closed and nothing left.
    fn eof_due(&self) -> bool {
        self.fin && self.segments.is_empty()
    }

    fn cut(&mut self) {
        self.segments.clear();
        self.queued = 0;
    }
}

// ---------------------------------------------------------------------------------------
// Reference model

/// A value as its elements' bit patterns, so that a torn write (some fragments of a
/// lost Write Tag Fragmented applied, the rest not) can be checked element by element.
pub trait Elements {
    /// Each element's bits.
    fn elements(&self) -> Vec<u64>;
}

impl Elements for Vec<u16> {
    fn elements(&self) -> Vec<u64> {
        self.iter().map(|v| u64::from(*v)).collect()
    }
}

impl Elements for Values {
    fn elements(&self) -> Vec<u64> {
        match self {
            Values::Int(v) => v.iter().map(|x| *x as u16 as u64).collect(),
            Values::Dint(v) => v.iter().map(|x| *x as u32 as u64).collect(),
            Values::Real(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
            other => vec![u64::MAX; other.len()],
        }
    }
}

/// The values one tag (or register block) may hold.
#[derive(Debug, Clone)]
struct Model<V> {
    /// Values it may hold now.
    possible: Vec<V>,
    /// Lost writes that may still land: (connection, value).
    ghosts: Vec<(u64, V)>,
    /// A lost write may have been applied in part (fragmented writes are not atomic):
    /// any element may come from any of the possible values.
    torn: bool,
    /// An operation on it is outstanding (operations on one tag never overlap).
    busy: bool,
}

impl<V: Clone + PartialEq + std::fmt::Debug + Elements> Model<V> {
    fn new(initial: V) -> Self {
        Model {
            possible: vec![initial],
            ghosts: Vec::new(),
            torn: false,
            busy: false,
        }
    }

    fn allows(&self, v: &V) -> bool {
        if self.possible.contains(v) || self.ghosts.iter().any(|(_, g)| g == v) {
            return true;
        }
        if !self.torn {
            return false;
        }
        let candidates: Vec<Vec<u64>> = self
            .possible
            .iter()
            .chain(self.ghosts.iter().map(|(_, g)| g))
            .map(Elements::elements)
            .collect();
        let mine = v.elements();
        mine.iter().enumerate().all(|(i, e)| {
            candidates
                .iter()
                .any(|c| c.len() == mine.len() && c.get(i) == Some(e))
        })
    }

    fn read(&mut self, v: &V) -> Result<(), Violation> {
        ensure!(
            self.allows(v),
            "read {v:?}, but the model allows only {:?} (ghosts {:?}, torn {})",
            self.possible,
            self.ghosts,
            self.torn
        );
        self.possible = vec![v.clone()];
        self.torn = !self.ghosts.is_empty();
        Ok(())
    }

    fn written(&mut self, v: V) {
        self.possible = vec![v];
        self.torn = !self.ghosts.is_empty();
    }

    /// A write was lost: it may have been applied, in whole or (`torn`) in part, and
    /// may still land while connection `conn` lives.
    fn lost_write(&mut self, conn: u64, v: V, torn: bool) {
        if !self.possible.contains(&v) {
            self.possible.push(v.clone());
        }
        self.torn |= torn;
        self.ghosts.push((conn, v));
    }

    /// Connection `conn` is gone on both sides: its lost writes landed or never will.
    fn conn_gone(&mut self, conn: u64) {
        let (gone, keep): (Vec<_>, Vec<_>) = self.ghosts.drain(..).partition(|(c, _)| *c == conn);
        self.ghosts = keep;
        for (_, v) in gone {
            if !self.possible.contains(&v) {
                self.possible.push(v);
            }
        }
    }

    /// A restart that loses the values: back to `initial`, nothing can land any more.
    fn reset(&mut self, initial: V) {
        self.possible = vec![initial];
        self.ghosts.clear();
        self.torn = false;
    }
}

// ---------------------------------------------------------------------------------------
// The loop every world with connections runs

/// A simulated world: engines, network, workload and reference model.
trait World {
    /// The simulated time, from the world's start.
    fn now(&self) -> Duration;
    fn set_now(&mut self, now: Duration);
    /// Everything due now, then flush every engine.
    fn step(&mut self) -> Result<(), Violation>;
    fn check_bounds(&self) -> Result<(), Violation>;
    /// The workload is submitted and every operation has finished.
    fn quiet(&self) -> bool;
    /// Close up and check the end state.
    fn finish(&mut self) -> Result<(), Violation>;
    /// When something happens next.
    fn next_due(&self) -> Option<Duration>;
}

/// Run `w` from due moment to due moment until its workload is done, then finish it;
/// a violation says when it was found.
fn drive(w: &mut impl World) -> Result<(), Violation> {
    let result = (|| {
        for _ in 0..200_000 {
            w.step()?;
            w.check_bounds()?;
            if w.quiet() {
                return w.finish();
            }
            let next = w
                .next_due()
                .ok_or("nothing left to happen, ops outstanding")?;
            ensure!(next >= w.now(), "time went backwards");
            w.set_now(next);
        }
        Err("no progress after 200000 steps".to_string())
    })();
    result.map_err(|e| format!("at {:?}: {e}", w.now()))
}

/// [`World`] for a world with these fields and inherent methods.
macro_rules! world {
    ($world:ty) => {
        impl World for $world {
            fn now(&self) -> Duration {
                self.now
            }
            fn set_now(&mut self, now: Duration) {
                self.now = now;
            }
            fn step(&mut self) -> Result<(), Violation> {
                <$world>::step(self)
            }
            fn check_bounds(&self) -> Result<(), Violation> {
                <$world>::check_bounds(self)
            }
            fn quiet(&self) -> bool {
                self.to_submit == 0 && self.slots.iter().all(|s| s.ops.is_empty())
            }
            fn finish(&mut self) -> Result<(), Violation> {
                <$world>::finish(self)
            }
            fn next_due(&self) -> Option<Duration> {
                <$world>::next_due(self)
            }
        }
    };
}

world!(EnipWorld);
world!(ModbusWorld);

// ---------------------------------------------------------------------------------------
// EtherNet/IP

/// The tags of the simulated controller: name, definition, element count. Each has its
/// own type or value range, so a reply taken for another tag's cannot pass.
const ENIP_TAGS: &[(&str, &str, usize)] = &[
    ("Ints", "Ints=INT[12]", 12),
    ("Dints", "Dints=DINT[6]", 6),
    ("Reals", "Reals=REAL[5]", 5),
    ("Big", "Big=DINT[300]", 300),
    ("Other", "Other=DINT[6]", 6),
    ("One", "One=INT", 1),
];

/// The value every element of tag `k` gets from write number `n`: distinct per tag.
fn enip_values(k: usize, len: usize, rng: &mut SplitMix64) -> Values {
    let base = (k as i64 + 1) * 1000;
    let mut v = |_| base + rng.below(1000) as i64;
    match k {
        0 | 5 => Values::Int((0..len).map(|i| v(i) as i16).collect()),
        2 => Values::Real((0..len).map(|i| v(i) as f32).collect()),
        _ => Values::Dint((0..len).map(|i| v(i) as i32).collect()),
    }
}

fn enip_initial(k: usize, len: usize) -> Values {
    match k {
        0 | 5 => Values::Int(vec![0; len]),
        2 => Values::Real(vec![0.0; len]),
        _ => Values::Dint(vec![0; len]),
    }
}

fn enip_controller() -> Result<Controller, Violation> {
    let mut c = Controller::new(ControllerConfig::default());
    for (_, spec, _) in ENIP_TAGS {
        c.tags_mut()
            .add_str(spec)
            .map_err(|e| format!("fixture tag {spec}: {e}"))?;
    }
    Ok(c)
}

/// What an outstanding EtherNet/IP operation is.
#[derive(Debug, Clone)]
enum EnipOp {
    Read(usize),
    Write(usize, Values),
    /// Expected to be refused with a CIP status.
    Invalid,
}

struct EnipLink {
    id: u64,
    client: ClientConn,
    server: Option<ServerConn<Controller>>,
    up: Pipe,
    down: Pipe,
    /// The client saw end of file.
    client_eof: bool,
    /// The server saw end of file.
    server_eof: bool,
}

struct EnipSlot {
    options: ClientOptions,
    link: Option<EnipLink>,
    /// When to connect again, once the last connection is gone.
    reconnect_at: Option<Duration>,
    ops: BTreeMap<OpId, (u64, EnipOp)>,
}

struct EnipWorld {
    rng: SplitMix64,
    t0: Instant,
    now: Duration,
    net: Netem,
    server: Server<Controller>,
    server_options: ServerOptions,
    /// The server is down (restarting) until then.
    down_until: Duration,
    slots: Vec<EnipSlot>,
    /// Server connections whose client is gone, run until they close.
    dying: Vec<(u64, ServerConn<Controller>)>,
    models: Vec<Model<Values>>,
    next_link: u64,
    /// Workload: operations still to submit, and when the next goes.
    to_submit: u64,
    next_submit: Duration,
    next_fault: Duration,
    faults: bool,
    report: Report,
}

impl EnipWorld {
    fn new(mut rng: SplitMix64, connected: bool) -> Self {
        let net = Netem::random(&mut rng);
        let mut server_options = ServerOptions::default();
        if rng.below(3) == 0 {
            server_options.inactivity_timeout = None;
        }
        let mut slots = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let mut o = ClientOptions {
                connected,
                depth: 1 + rng.below(4) as usize,
                ..ClientOptions::default()
            };
            if rng.coin() {
                o.multiple = 150 + rng.below(400) as usize;
            }
            o.fragment = rng.below(5) == 0;
            if connected && rng.coin() {
                o.connection_size = 4000;
            }
            if !connected && rng.below(3) == 0 {
                o.unconnected_size = 200 + rng.below(300) as usize;
            }
            o.timeout = Duration::from_millis(300 + rng.below(1500));
            // Each slot is its own originator: a CIP connection is identified by it.
            o.originator_serial = 0x5100_0000 + slots.len() as u32;
            slots.push(EnipSlot {
                options: o,
                link: None,
                reconnect_at: Some(Duration::ZERO),
                ops: BTreeMap::new(),
            });
        }
        let mut server = Server::new(
            enip_controller().unwrap_or_else(|_| Controller::new(ControllerConfig::default())),
            server_options.clone(),
        );
        let slow = rng.below(3) == 0;
        if slow {
            server.faults.delay = ReplyDelay::Range {
                min: Duration::ZERO,
                // Now and then slower than the clients' timeouts: late replies.
                max: Duration::from_millis(if rng.below(4) == 0 {
                    rng.below(3000)
                } else {
                    rng.below(40)
                }),
            };
        }
        let models = ENIP_TAGS
            .iter()
            .enumerate()
            .map(|(k, (_, _, n))| Model::new(enip_initial(k, *n)))
            .collect();
        let faults = rng.below(4) != 0;
        let to_submit = 10 + rng.below(60);
        let next_fault = Duration::from_millis(rng.below(800));
        EnipWorld {
            rng,
            t0: Instant::now(),
            now: Duration::ZERO,
            net,
            server,
            server_options,
            down_until: Duration::ZERO,
            slots,
            dying: Vec::new(),
            models,
            next_link: 1,
            to_submit,
            next_submit: Duration::ZERO,
            next_fault,
            faults,
            report: Report::default(),
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn run(mut self) -> Result<Report, Violation> {
        drive(&mut self)?;
        Ok(self.report)
    }

    fn next_due(&self) -> Option<Duration> {
        let mut due: Vec<Duration> = Vec::new();
        let at = |i: Option<Instant>| i.map(|i| i.saturating_duration_since(self.t0));
        if self.to_submit > 0 {
            due.push(self.next_submit);
        }
        if self.faults && self.to_submit > 0 {
            due.push(self.next_fault);
        }
        for s in &self.slots {
            due.extend(s.reconnect_at);
            if let Some(l) = &s.link {
                due.extend(l.up.next_due());
                due.extend(l.down.next_due());
                // An end of file that has arrived is delivered now.
                if (l.down.eof_due() && !l.client_eof)
                    || (l.up.eof_due() && l.server.is_some() && !l.server_eof)
                {
                    due.push(self.now);
                }
                due.extend(at(l.client.poll_timeout()));
                if let Some(c) = &l.server {
                    due.extend(at(c.poll_timeout()));
                }
            }
        }
        for (_, c) in &self.dying {
            due.extend(at(c.poll_timeout()));
        }
        due.into_iter().min().map(|d| d.max(self.now))
    }

    /// Everything due now, then flush every engine.
    fn step(&mut self) -> Result<(), Violation> {
        let now = self.at();
        // Faults.
        if self.faults && self.to_submit > 0 && self.next_fault <= self.now {
            self.next_fault = self.now + Duration::from_millis(50 + self.rng.below(1500));
            match self.rng.below(3) {
                0 | 1 => {
                    let k = self.rng.below(self.slots.len() as u64) as usize;
                    // A third of the drops are half-open: the server side is never
                    // told (no FIN, no RST reaches it) until its timeouts notice.
                    let silent = self.rng.below(3) == 0;
                    self.drop_link(k, silent);
                }
                _ => self.restart(),
            }
        }
        // Connections.
        for k in 0..self.slots.len() {
            let due = self.slots[k].reconnect_at.is_some_and(|t| t <= self.now);
            if due && self.slots[k].link.is_none() {
                if self.now < self.down_until {
                    self.slots[k].reconnect_at = Some(self.down_until);
                } else {
                    self.slots[k].reconnect_at = None;
                    self.connect(k);
                }
            }
        }
        // Workload.
        if self.to_submit > 0 && self.next_submit <= self.now {
            self.submit()?;
            self.next_submit = self.now + Duration::from_micros(self.rng.below(20_000));
        }
        // Deliveries and deadlines.
        for k in 0..self.slots.len() {
            let Some(l) = self.slots[k].link.as_mut() else {
                continue;
            };
            if let Some(sc) = l.server.as_mut() {
                let data = l.up.recv(self.now, &self.net);
                if !data.is_empty() {
                    sc.handle_input(now, &data, &mut self.server);
                }
                if l.up.eof_due() && !l.server_eof {
                    l.server_eof = true;
                    sc.handle_eof(now, &mut self.server);
                }
                if sc.poll_timeout().is_some_and(|t| t <= now) {
                    sc.handle_timeout(now, &mut self.server);
                }
            }
            let data = l.down.recv(self.now, &self.net);
            if !data.is_empty() {
                l.client.handle_input(now, &data);
            }
            if l.down.eof_due() && !l.client_eof {
                l.client_eof = true;
                l.client.handle_eof(now);
            }
            if l.client.poll_timeout().is_some_and(|t| t <= now) {
                l.client.handle_timeout(now);
            }
        }
        for (_, c) in &mut self.dying {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now, &mut self.server);
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), Violation> {
        let now = self.at();
        for k in 0..self.slots.len() {
            let mut events = Vec::new();
            let mut gone = None;
            if let Some(l) = self.slots[k].link.as_mut() {
                let mut out = Vec::new();
                while l.client.poll_transmit(now, &mut out) {}
                if !out.is_empty() && l.server.is_some() {
                    l.up.send(self.now, &out, &self.net, &mut self.rng);
                }
                while let Some(e) = l.client.poll_event() {
                    events.push((l.id, e));
                }
                if l.client.is_closed() && !l.up.fin && l.server.is_some() {
                    l.up.fin = true;
                }
                if let Some(sc) = l.server.as_mut() {
                    let mut out = Vec::new();
                    while sc.poll_transmit(now, &mut out) {}
                    if !out.is_empty() && !l.client_eof {
                        l.down.send(self.now, &out, &self.net, &mut self.rng);
                    }
                    while sc.poll_event().is_some() {}
                    if sc.is_closed() && !l.down.fin {
                        l.down.fin = true;
                    }
                    if sc.is_closed() && l.up.segments.is_empty() {
                        self.server.forget_connection(sc.id());
                        l.server = None;
                    }
                }
                if l.client.is_closed() && l.server.is_none() && l.client_eof {
                    gone = Some(l.id);
                } else if l.client.is_closed() && l.client_eof {
                    // The client is gone; its server side runs on until it closes.
                    if let Some(sc) = l.server.take() {
                        gone = Some(l.id);
                        self.dying.push((l.id, sc));
                    }
                }
            }
            for (link, e) in events {
                self.client_event(k, link, e)?;
            }
            if let Some(id) = gone {
                self.slots[k].link = None;
                if self.to_submit > 0 || !self.slots[k].ops.is_empty() {
                    self.slots[k].reconnect_at =
                        Some(self.now + Duration::from_micros(self.rng.below(30_000)));
                }
                if !self.dying.iter().any(|(d, _)| *d == id) {
                    self.link_gone(id);
                }
            }
        }
        // Server sides whose client is gone: run until closed, output discarded.
        let mut closed = Vec::new();
        for (id, c) in &mut self.dying {
            let mut out = Vec::new();
            while c.poll_transmit(now, &mut out) {}
            while c.poll_event().is_some() {}
            if c.is_closed() {
                closed.push((*id, c.id()));
            }
        }
        for (id, conn) in closed {
            self.dying.retain(|(d, _)| *d != id);
            self.server.forget_connection(conn);
            self.link_gone(id);
        }
        Ok(())
    }

    /// The connections' state, for a violation's message.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (k, s) in self.slots.iter().enumerate() {
            if let Some(l) = &s.link {
                out += &format!(
                    "[slot {k} link {}: client closed {} eof {} outstanding {}; server {:?}; up {} segs fin {}; down {} segs fin {}] ",
                    l.id,
                    l.client.is_closed(),
                    l.client_eof,
                    l.client.outstanding(),
                    l.server.as_ref().map(|c| (c.is_closed(), c.poll_timeout().map(|t| t - self.t0))),
                    l.up.segments.len(),
                    l.up.fin,
                    l.down.segments.len(),
                    l.down.fin,
                );
            }
        }
        for (id, c) in &self.dying {
            out += &format!(
                "[dying {id}: closed {} deadline {:?}] ",
                c.is_closed(),
                c.poll_timeout().map(|t| t - self.t0)
            );
        }
        out
    }

    fn link_gone(&mut self, id: u64) {
        for m in &mut self.models {
            m.conn_gone(id);
        }
    }

    fn connect(&mut self, k: usize) {
        let now = self.at();
        let id = self.next_link;
        self.next_link += 1;
        let peer = SocketAddr::from(([10, 0, 0, 2], 40000 + id as u16));
        let server = ServerConn::new(now, peer, &mut self.server);
        let client = ClientConn::new(now, self.slots[k].options.clone());
        self.slots[k].link = Some(EnipLink {
            id,
            client,
            server: Some(server),
            up: Pipe::default(),
            down: Pipe::default(),
            client_eof: false,
            server_eof: false,
        });
        self.report.connects += 1;
    }

    /// The network drops slot `k`'s connection: what is in flight is lost, the client
    /// sees end of file, and so does the server unless the drop is `silent`.
    fn drop_link(&mut self, k: usize, silent: bool) {
        let now = self.at();
        let Some(l) = self.slots[k].link.as_mut() else {
            return;
        };
        self.report.drops += 1;
        l.up.cut();
        l.down.cut();
        if !l.client_eof {
            l.client_eof = true;
            l.client.handle_eof(now);
        }
        if let Some(mut sc) = l.server.take() {
            if !silent {
                sc.handle_eof(now, &mut self.server);
            }
            self.dying.push((l.id, sc));
        }
    }

    fn restart(&mut self) {
        self.report.restarts += 1;
        for k in 0..self.slots.len() {
            self.drop_link(k, false);
        }
        let keep = self.rng.coin();
        let fresh =
            enip_controller().unwrap_or_else(|_| Controller::new(ControllerConfig::default()));
        let controller = if keep {
            std::mem::replace(self.server.device_mut(), fresh)
        } else {
            fresh
        };
        let faults = self.server.faults.clone();
        self.server = Server::new(controller, self.server_options.clone());
        self.server.faults = faults;
        // The old server's connections die with it: what they carried landed or not.
        let dying: Vec<u64> = self.dying.drain(..).map(|(id, _)| id).collect();
        for id in dying {
            self.link_gone(id);
        }
        if !keep {
            for (k, (_, _, n)) in ENIP_TAGS.iter().enumerate() {
                self.models[k].reset(enip_initial(k, *n));
            }
        }
        self.down_until = self.now + Duration::from_millis(self.rng.below(200));
    }

    fn submit(&mut self) -> Result<(), Violation> {
        let now = self.at();
        let k = self.rng.below(self.slots.len() as u64) as usize;
        let Some(link) = self.slots[k].link.as_ref().map(|l| l.id) else {
            return Ok(());
        };
        let tag = if self.rng.below(16) == 0 {
            ENIP_TAGS.len()
        } else {
            self.rng.below(ENIP_TAGS.len() as u64) as usize
        };
        let (op, what) = if tag == ENIP_TAGS.len() {
            let text = if self.rng.coin() {
                "Nope[0]"
            } else {
                "Ints[40]"
            };
            let op = parse_operation(text).map_err(|e| format!("{text}: {e}"))?;
            (op, EnipOp::Invalid)
        } else {
            if self.models[tag].busy {
                return Ok(());
            }
            let (name, _, n) = ENIP_TAGS[tag];
            let path = parse_operation(&format!("{name}[0]"))
                .map_err(|e| format!("{name}: {e}"))?
                .path;
            if n == 1 {
                // A scalar: no element in its path.
                let path = parse_operation(name).map_err(|e| e.to_string())?.path;
                if self.rng.coin() {
                    (Operation::read(path, 1), EnipOp::Read(tag))
                } else {
                    let v = enip_values(tag, 1, &mut self.rng);
                    (Operation::write(path, v.clone()), EnipOp::Write(tag, v))
                }
            } else if self.rng.coin() {
                (Operation::read(path, n as u16), EnipOp::Read(tag))
            } else {
                let v = enip_values(tag, n, &mut self.rng);
                (Operation::write(path, v.clone()), EnipOp::Write(tag, v))
            }
        };
        if let EnipOp::Read(t) | EnipOp::Write(t, _) = &what {
            self.models[*t].busy = true;
        }
        let slot = &mut self.slots[k];
        let Some(l) = slot.link.as_mut() else {
            return Ok(());
        };
        let id = l.client.submit(now, op);
        ensure!(
            slot.ops.insert(id, (link, what)).is_none(),
            "op id {id:?} given twice"
        );
        self.to_submit -= 1;
        self.report.ops += 1;
        Ok(())
    }

    fn client_event(&mut self, k: usize, link: u64, e: ClientEvent) -> Result<(), Violation> {
        let (op, result) = match e {
            ClientEvent::Reply { op, result } => (op, Ok(result)),
            ClientEvent::Lost { op, why } => (op, Err(why)),
            ClientEvent::Failed(why) => {
                ensure!(
                    matches!(why, LostReason::Timeout | LostReason::Closed),
                    "connection failed: {why}"
                );
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some((op_link, what)) = self.slots[k].ops.remove(&op) else {
            return Err(format!("event for {op:?}, not outstanding on slot {k}"));
        };
        ensure!(
            op_link == link,
            "{op:?} of link {op_link} answered on {link}"
        );
        match (what, result) {
            (EnipOp::Invalid, Ok(Err(_))) => self.report.refused += 1,
            (EnipOp::Invalid, Ok(Ok(v))) => return Err(format!("invalid op gave {v:?}")),
            (what, Err(why)) => {
                ensure!(
                    matches!(why, LostReason::Timeout | LostReason::Closed),
                    "{op:?} lost: {why}"
                );
                self.report.lost += 1;
                match what {
                    EnipOp::Write(t, v) => {
                        self.models[t].lost_write(link, v, true);
                        self.models[t].busy = false;
                    }
                    EnipOp::Read(t) => self.models[t].busy = false,
                    EnipOp::Invalid => {}
                }
            }
            (EnipOp::Read(t), Ok(Ok(Value::Values(v)))) => {
                self.models[t].busy = false;
                self.models[t]
                    .read(&v)
                    .map_err(|e| format!("{op:?} {}: {e}", ENIP_TAGS[t].0))?;
                self.report.ok += 1;
            }
            (EnipOp::Write(t, v), Ok(Ok(Value::Written))) => {
                self.models[t].busy = false;
                self.models[t].written(v);
                self.report.ok += 1;
            }
            (what, Ok(r)) => return Err(format!("{op:?} ({what:?}) answered {r:?}")),
        }
        Ok(())
    }

    fn check_bounds(&self) -> Result<(), Violation> {
        let mut live = 0;
        for (k, s) in self.slots.iter().enumerate() {
            if let Some(l) = &s.link {
                let mine = s.ops.values().filter(|(link, _)| *link == l.id).count();
                ensure!(
                    l.client.outstanding() == mine,
                    "slot {k}: client holds {} ops, {mine} outstanding",
                    l.client.outstanding()
                );
                ensure!(
                    l.up.queued + l.down.queued < 1 << 20,
                    "a megabyte in flight on one connection"
                );
                live += usize::from(l.server.is_some());
            }
            ensure!(
                s.ops
                    .values()
                    .all(|(link, _)| s.link.as_ref().is_some_and(|l| l.id == *link)),
                "slot {k}: an op of a connection that is gone was never finished"
            );
        }
        live += self.dying.len();
        ensure!(
            self.server.sessions().len() <= live,
            "{} sessions for {live} connections",
            self.server.sessions().len()
        );
        ensure!(
            self.server.connections().len() <= live,
            "{} CIP connections for {live} connections",
            self.server.connections().len()
        );
        ensure!(
            self.server.stats().len() <= live + KEPT_CLOSED_STATS,
            "statistics of {} connections kept",
            self.server.stats().len()
        );
        Ok(())
    }

    /// Close every client gracefully, let everything settle, then check that nothing is
    /// left registered and that the controller's tags are values the model allows.
    fn finish(&mut self) -> Result<(), Violation> {
        let now = self.at();
        for s in &mut self.slots {
            s.reconnect_at = None;
            if let Some(l) = s.link.as_mut() {
                l.client.close(now);
            }
        }
        // Half-open connections are found out at last (TCP keepalive).
        for (_, c) in &mut self.dying {
            c.handle_eof(now, &mut self.server);
        }
        for _ in 0..100_000 {
            self.flush()?;
            self.check_bounds()?;
            match self.next_due() {
                Some(next) => {
                    self.now = next;
                    self.step()?;
                }
                None => break,
            }
        }
        ensure!(
            self.slots.iter().all(|s| s.link.is_none()) && self.dying.is_empty(),
            "connections still open after closing: {}",
            self.describe()
        );
        ensure!(
            self.server.sessions().is_empty(),
            "sessions left registered: {:?}",
            self.server.sessions()
        );
        ensure!(
            self.server.connections().is_empty(),
            "CIP connections left open: {:?}",
            self.server.connections()
        );
        for (k, (name, _, _)) in ENIP_TAGS.iter().enumerate() {
            let v = self
                .server
                .device()
                .tags()
                .values(name)
                .ok_or_else(|| format!("{name} is gone"))?;
            ensure!(
                self.models[k].allows(&v),
                "{name} ends as {v:?}, the model allows {:?}",
                self.models[k].possible
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Modbus

/// The register blocks of the simulated device: table, first address, count. Each
/// block's values come from its own range.
const MODBUS_BLOCKS: &[(Table, u16, u16)] = &[
    (Table::HoldingRegisters, 0, 10),
    (Table::HoldingRegisters, 10, 10),
    (Table::HoldingRegisters, 20, 1),
    (Table::HoldingRegisters, 100, 120),
    (Table::Coils, 0, 16),
    (Table::Coils, 16, 5),
];

const MODBUS_SPECS: &[&str] = &["1-21", "40001-40021", "40101-40220", "40301-40310"];

/// The holding registers (zero-based) only the poller reads and writes.
const POLLED: std::ops::Range<u16> = 300..310;

fn modbus_device(transport: Transport) -> Result<Device, Violation> {
    let mut d = Device::from_specs(MODBUS_SPECS.iter().copied()).map_err(|e| e.to_string())?;
    d.transport = transport;
    Ok(d)
}

fn block_values(b: usize, rng: &mut SplitMix64) -> Vec<u16> {
    let (table, _, n) = MODBUS_BLOCKS[b];
    (0..n)
        .map(|_| match table {
            Table::Coils => rng.below(2) as u16,
            _ => (b as u16 + 1) * 1000 + rng.below(1000) as u16,
        })
        .collect()
}

fn block_read(b: usize) -> Request<'static> {
    let (table, address, quantity) = MODBUS_BLOCKS[b];
    match table {
        Table::Coils => Request::ReadCoils { address, quantity },
        _ => Request::ReadHoldingRegisters { address, quantity },
    }
}

fn block_write(b: usize, values: &[u16]) -> Request<'static> {
    let (table, address, _) = MODBUS_BLOCKS[b];
    match (table, values) {
        (Table::Coils, [one]) => Request::WriteSingleCoil {
            address,
            value: *one != 0,
        },
        (Table::Coils, _) => {
            let bits: Vec<bool> = values.iter().map(|v| *v != 0).collect();
            Request::WriteMultipleCoils {
                address,
                values: Bits::from_bools(&bits),
            }
        }
        (_, [one]) => Request::WriteSingleRegister {
            address,
            value: *one,
        },
        _ => Request::WriteMultipleRegisters {
            address,
            values: Registers::from_values(values),
        },
    }
}

/// The values a read response carries, or `None` for a write's echo.
fn response_values(r: &Response<'_>) -> Option<Vec<u16>> {
    match r {
        Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) => {
            Some(bits.iter().map(u16::from).collect())
        }
        Response::ReadHoldingRegisters(regs) | Response::ReadInputRegisters(regs) => {
            Some(regs.to_vec())
        }
        _ => None,
    }
}

fn device_block(device: &Device, b: usize) -> Option<Vec<u16>> {
    let (table, address, quantity) = MODBUS_BLOCKS[b];
    device.unit(1)?.read(table, address, quantity)
}

#[derive(Debug, Clone)]
enum ModbusOpKind {
    Read(usize),
    Write(usize, Vec<u16>),
    /// Beyond the tables: an exception is expected.
    Invalid,
}

/// How the outcome of a Modbus op is taken into the model; shared by the TCP and RTU
/// worlds.
fn modbus_outcome(
    models: &mut [Model<Vec<u16>>],
    report: &mut Report,
    link: u64,
    what: ModbusOpKind,
    event: &ModbusEvent,
) -> Result<(), Violation> {
    match (what, event) {
        (
            ModbusOpKind::Invalid,
            ModbusEvent::Reply {
                response: Err(e), ..
            },
        ) => {
            ensure!(
                e.code == ExceptionCode::ILLEGAL_DATA_ADDRESS,
                "invalid op: exception {e:?}"
            );
            report.refused += 1;
        }
        (ModbusOpKind::Invalid, ModbusEvent::Timeout { .. } | ModbusEvent::Aborted { .. }) => {
            report.lost += 1;
        }
        (
            ModbusOpKind::Read(b),
            ModbusEvent::Reply {
                response: Ok(r), ..
            },
        ) => {
            models[b].busy = false;
            let v = response_values(r).ok_or_else(|| format!("read answered {r:?}"))?;
            models[b].read(&v).map_err(|e| format!("block {b}: {e}"))?;
            report.ok += 1;
        }
        (
            ModbusOpKind::Write(b, v),
            ModbusEvent::Reply {
                response: Ok(r), ..
            },
        ) => {
            models[b].busy = false;
            ensure!(response_values(r).is_none(), "write answered {r:?}");
            models[b].written(v);
            report.ok += 1;
        }
        (ModbusOpKind::Read(b), ModbusEvent::Timeout { .. } | ModbusEvent::Aborted { .. }) => {
            models[b].busy = false;
            report.lost += 1;
        }
        (ModbusOpKind::Write(b, v), ModbusEvent::Timeout { .. } | ModbusEvent::Aborted { .. }) => {
            models[b].busy = false;
            models[b].lost_write(link, v, false);
            report.lost += 1;
        }
        (what, e) => return Err(format!("{what:?} ended with {e:?}")),
    }
    Ok(())
}

fn modbus_op_of(e: &ModbusEvent) -> Option<ModbusOp> {
    match e {
        ModbusEvent::Reply { op, .. }
        | ModbusEvent::Broadcast { op }
        | ModbusEvent::Timeout { op }
        | ModbusEvent::Invalid { op, .. }
        | ModbusEvent::Aborted { op } => Some(*op),
        _ => None,
    }
}

/// Pick the next Modbus op: a read or write of a block not busy, or an invalid read.
fn modbus_pick(
    rng: &mut SplitMix64,
    models: &mut [Model<Vec<u16>>],
) -> Option<(Request<'static>, ModbusOpKind)> {
    if rng.below(16) == 0 {
        let r = Request::ReadHoldingRegisters {
            address: 500,
            quantity: 3,
        };
        return Some((r, ModbusOpKind::Invalid));
    }
    let b = rng.below(MODBUS_BLOCKS.len() as u64) as usize;
    if models[b].busy {
        return None;
    }
    models[b].busy = true;
    if rng.coin() {
        Some((block_read(b), ModbusOpKind::Read(b)))
    } else {
        let v = block_values(b, rng);
        Some((block_write(b, &v), ModbusOpKind::Write(b, v)))
    }
}

struct ModbusLink {
    id: u64,
    client: ModbusClient,
    server: Option<ModbusServerConn>,
    up: Pipe,
    down: Pipe,
    client_eof: bool,
    server_eof: bool,
}

struct ModbusSlot {
    config: ModbusConfig,
    link: Option<ModbusLink>,
    reconnect_at: Option<Duration>,
    ops: BTreeMap<ModbusOp, (u64, ModbusOpKind)>,
}

/// A poller (cpppo's `modbus_poll`) on its own connection, polling and writing
/// registers nothing else touches.
struct PollerSlot {
    poller: Poller,
    link: Option<PollerLink>,
    /// Writes not yet finished: (register, values).
    writes: BTreeMap<WriteId, (u16, Vec<u16>)>,
    /// One model per register of [`POLLED`].
    models: Vec<Model<Vec<u16>>>,
    written: u64,
}

struct PollerLink {
    id: u64,
    server: Option<ModbusServerConn>,
    up: Pipe,
    down: Pipe,
    server_eof: bool,
}

struct ModbusWorld {
    poll: Option<PollerSlot>,
    rng: SplitMix64,
    t0: Instant,
    now: Duration,
    net: Netem,
    device: Device,
    down_until: Duration,
    slots: Vec<ModbusSlot>,
    models: Vec<Model<Vec<u16>>>,
    next_link: u64,
    to_submit: u64,
    next_submit: Duration,
    next_fault: Duration,
    faults: bool,
    report: Report,
}

impl ModbusWorld {
    fn new(mut rng: SplitMix64) -> Self {
        let t0 = Instant::now();
        let net = Netem::random(&mut rng);
        let mut device =
            modbus_device(Transport::Tcp).unwrap_or_else(|_| Device::new(UnitData::new()));
        if rng.below(3) == 0 {
            device.faults.delay = Some(Delay::Range(
                Duration::ZERO,
                // Now and then slower than the clients' timeouts: late replies.
                Duration::from_millis(if rng.below(4) == 0 {
                    rng.below(3000)
                } else {
                    rng.below(40)
                }),
            ));
        }
        device.seed(rng.next_u64());
        let slots = (0..1 + rng.below(3))
            .map(|_| ModbusSlot {
                config: ModbusConfig {
                    depth: 1 + rng.below(6) as usize,
                    timeout: Duration::from_millis(200 + rng.below(1500)),
                    tcp_broadcast: false,
                    first_transaction_id: rng.next_u64() as u16,
                },
                link: None,
                reconnect_at: Some(Duration::ZERO),
                ops: BTreeMap::new(),
            })
            .collect();
        let models = (0..MODBUS_BLOCKS.len())
            .map(|b| Model::new(device_block(&device, b).unwrap_or_default()))
            .collect();
        let faults = rng.below(4) != 0;
        let to_submit = 10 + rng.below(80);
        let next_fault = Duration::from_millis(rng.below(800));
        let poll = rng.coin().then(|| {
            let mut config = PollerConfig::default();
            config.client.depth = 1 + rng.below(3) as usize;
            config.client.timeout = Duration::from_millis(200 + rng.below(800));
            config.backoff = Duration::from_millis(10 + rng.below(100));
            config.backoff_max = Duration::from_millis(500);
            config.multi = rng.coin();
            let mut poller = Poller::new(config);
            let rate = Some(Duration::from_millis(20 + rng.below(200)));
            let _ = poller.poll(t0, "40301-40305", rate);
            let _ = poller.poll(t0, "40306-40310", rate);
            PollerSlot {
                poller,
                link: None,
                writes: BTreeMap::new(),
                models: POLLED
                    .map(|a| Model::new(polled_register(&device, a)))
                    .collect(),
                written: 0,
            }
        });
        ModbusWorld {
            poll,
            rng,
            t0,
            now: Duration::ZERO,
            net,
            device,
            down_until: Duration::ZERO,
            slots,
            models,
            next_link: 1,
            to_submit,
            next_submit: Duration::ZERO,
            next_fault,
            faults,
            report: Report::default(),
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn run(mut self) -> Result<Report, Violation> {
        drive(&mut self)?;
        Ok(self.report)
    }

    fn next_due(&self) -> Option<Duration> {
        let at = |i: Option<Instant>| i.map(|i| i.saturating_duration_since(self.t0));
        let mut due: Vec<Duration> = Vec::new();
        if self.to_submit > 0 {
            due.push(self.next_submit);
            if self.faults {
                due.push(self.next_fault);
            }
        }
        for s in &self.slots {
            due.extend(s.reconnect_at);
            if let Some(l) = &s.link {
                due.extend(l.up.next_due());
                due.extend(l.down.next_due());
                // An end of file that has arrived is delivered now.
                if (l.down.eof_due() && !l.client_eof)
                    || (l.up.eof_due() && l.server.is_some() && !l.server_eof)
                {
                    due.push(self.now);
                }
                due.extend(at(l.client.poll_timeout()));
                if let Some(c) = &l.server {
                    due.extend(at(c.poll_timeout()));
                }
            }
        }
        self.poller_due(&mut due);
        due.into_iter().min().map(|d| d.max(self.now))
    }

    fn step(&mut self) -> Result<(), Violation> {
        self.poller_step()?;
        let now = self.at();
        if self.faults && self.to_submit > 0 && self.next_fault <= self.now {
            self.next_fault = self.now + Duration::from_millis(50 + self.rng.below(1500));
            if self.rng.below(3) < 2 {
                let k = self.rng.below(self.slots.len() as u64 + 1) as usize;
                if k == self.slots.len() {
                    self.drop_poller()?;
                } else {
                    self.drop_link(k);
                }
            } else {
                self.restart()?;
            }
        }
        for k in 0..self.slots.len() {
            let due = self.slots[k].reconnect_at.is_some_and(|t| t <= self.now);
            if due && self.slots[k].link.is_none() {
                if self.now < self.down_until {
                    self.slots[k].reconnect_at = Some(self.down_until);
                } else {
                    self.slots[k].reconnect_at = None;
                    let id = self.next_link;
                    self.next_link += 1;
                    self.slots[k].link = Some(ModbusLink {
                        id,
                        client: ModbusClient::tcp(self.slots[k].config),
                        server: Some(ModbusServerConn::tcp()),
                        up: Pipe::default(),
                        down: Pipe::default(),
                        client_eof: false,
                        server_eof: false,
                    });
                    self.report.connects += 1;
                }
            }
        }
        if self.to_submit > 0 && self.next_submit <= self.now {
            self.next_submit = self.now + Duration::from_micros(self.rng.below(20_000));
            let k = self.rng.below(self.slots.len() as u64) as usize;
            if let Some(id) = self.slots[k].link.as_ref().map(|l| l.id) {
                if let Some((request, what)) = modbus_pick(&mut self.rng, &mut self.models) {
                    let s = &mut self.slots[k];
                    if let Some(l) = s.link.as_mut() {
                        let op = l.client.submit(now, request, 1);
                        ensure!(s.ops.insert(op, (id, what)).is_none(), "{op:?} twice");
                        self.to_submit -= 1;
                        self.report.ops += 1;
                    }
                }
            }
        }
        for s in &mut self.slots {
            let Some(l) = s.link.as_mut() else {
                continue;
            };
            if let Some(sc) = l.server.as_mut() {
                let data = l.up.recv(self.now, &self.net);
                if !data.is_empty() {
                    sc.handle_input(now, &data, &mut self.device);
                }
                if l.up.eof_due() && !l.server_eof {
                    l.server_eof = true;
                    sc.handle_eof(now, &mut self.device);
                }
                if sc.poll_timeout().is_some_and(|t| t <= now) {
                    sc.handle_timeout(now, &mut self.device);
                }
            }
            let data = l.down.recv(self.now, &self.net);
            if !data.is_empty() {
                l.client.handle_input(now, &data);
            }
            if l.down.eof_due() && !l.client_eof {
                l.client_eof = true;
                l.client.handle_eof(now);
            }
            if l.client.poll_timeout().is_some_and(|t| t <= now) {
                l.client.handle_timeout(now);
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), Violation> {
        let now = self.at();
        for k in 0..self.slots.len() {
            let mut events = Vec::new();
            let mut gone = None;
            if let Some(l) = self.slots[k].link.as_mut() {
                let mut out = Vec::new();
                while l.client.poll_transmit(now, &mut out) {}
                if !out.is_empty() && l.server.is_some() {
                    l.up.send(self.now, &out, &self.net, &mut self.rng);
                }
                while let Some(e) = l.client.poll_event() {
                    events.push((l.id, e));
                }
                ensure!(
                    l.client.in_flight() <= l.client.depth(),
                    "more in flight than the depth"
                );
                if l.client.is_closed() && !l.up.fin && l.server.is_some() {
                    l.up.fin = true;
                }
                if let Some(sc) = l.server.as_mut() {
                    let mut out = Vec::new();
                    while sc.poll_transmit(now, &mut out) {}
                    if !out.is_empty() && !l.client_eof {
                        l.down.send(self.now, &out, &self.net, &mut self.rng);
                    }
                    while sc.poll_event().is_some() {}
                    if sc.is_closed() {
                        l.down.fin = true;
                        if l.up.segments.is_empty() {
                            l.server = None;
                        }
                    }
                }
                if l.client.is_closed() && l.client_eof {
                    gone = Some(l.id);
                }
            }
            for (link, e) in events {
                let Some(op) = modbus_op_of(&e) else {
                    if let ModbusEvent::Lost(why) = &e {
                        ensure!(
                            *why == cpppo_core::modbus::client::LostReason::Closed,
                            "connection lost: {why:?}"
                        );
                    }
                    continue;
                };
                let (op_link, what) = self.slots[k]
                    .ops
                    .remove(&op)
                    .ok_or_else(|| format!("event {e:?} for an op not outstanding"))?;
                ensure!(
                    op_link == link,
                    "{op:?} of link {op_link} answered on {link}"
                );
                modbus_outcome(&mut self.models, &mut self.report, link, what, &e)?;
            }
            if let Some(id) = gone {
                // A Modbus server connection closes with its socket: nothing more lands.
                self.slots[k].link = None;
                for m in &mut self.models {
                    m.conn_gone(id);
                }
                if self.to_submit > 0 {
                    self.slots[k].reconnect_at =
                        Some(self.now + Duration::from_micros(self.rng.below(30_000)));
                }
            }
        }
        Ok(())
    }

    fn drop_link(&mut self, k: usize) {
        let now = self.at();
        let Some(l) = self.slots[k].link.as_mut() else {
            return;
        };
        self.report.drops += 1;
        l.up.cut();
        l.down.cut();
        if !l.client_eof {
            l.client_eof = true;
            l.client.handle_eof(now);
        }
        if let Some(mut sc) = l.server.take() {
            sc.handle_eof(now, &mut self.device);
        }
    }

    fn restart(&mut self) -> Result<(), Violation> {
        self.report.restarts += 1;
        for k in 0..self.slots.len() {
            self.drop_link(k);
        }
        self.drop_poller()?;
        if self.rng.coin() {
            // A fresh device: the values are lost.
            let faults = self.device.faults;
            self.device = modbus_device(Transport::Tcp)?;
            self.device.faults = faults;
            self.device.seed(self.rng.next_u64());
            for b in 0..MODBUS_BLOCKS.len() {
                let initial = device_block(&self.device, b).unwrap_or_default();
                self.models[b].reset(initial);
            }
            if let Some(p) = self.poll.as_mut() {
                for (i, a) in POLLED.enumerate() {
                    p.models[i].reset(polled_register(&self.device, a));
                }
            }
        }
        self.down_until = self.now + Duration::from_millis(self.rng.below(200));
        Ok(())
    }

    fn check_bounds(&self) -> Result<(), Violation> {
        for (k, s) in self.slots.iter().enumerate() {
            if let Some(l) = &s.link {
                let mine = s.ops.values().filter(|(link, _)| *link == l.id).count();
                ensure!(
                    l.client.in_flight() + l.client.queued() == mine,
                    "slot {k}: client holds {} ops, {mine} outstanding",
                    l.client.in_flight() + l.client.queued()
                );
                ensure!(
                    l.up.queued + l.down.queued < 1 << 20,
                    "a megabyte in flight"
                );
            }
            ensure!(
                s.ops
                    .values()
                    .all(|(link, _)| s.link.as_ref().is_some_and(|l| l.id == *link)),
                "slot {k}: an op of a connection that is gone was never finished"
            );
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Violation> {
        for s in &mut self.slots {
            s.reconnect_at = None;
        }
        for k in 0..self.slots.len() {
            self.drop_link(k);
        }
        self.flush()?;
        // The poller's writes all finish (the network is quiet now).
        let end = self.now + Duration::from_secs(30);
        while self.poll.as_ref().is_some_and(|p| !p.writes.is_empty()) {
            let next = self.next_due().unwrap_or(end);
            ensure!(next < end, "poller writes never finished");
            self.now = next;
            self.step()?;
        }
        self.drop_poller()?;
        if let Some(p) = &self.poll {
            for (i, a) in POLLED.enumerate() {
                let v = polled_register(&self.device, a);
                ensure!(
                    p.models[i].allows(&v),
                    "polled register {a} ends as {v:?}, the model allows {:?}",
                    p.models[i].possible
                );
            }
        }
        for b in 0..MODBUS_BLOCKS.len() {
            let v = device_block(&self.device, b).ok_or_else(|| format!("block {b} gone"))?;
            ensure!(
                self.models[b].allows(&v),
                "block {b} ends as {v:?}, the model allows {:?}",
                self.models[b].possible
            );
        }
        Ok(())
    }
}

/// One register of the device (unit 1's holding registers), as a model value.
fn polled_register(device: &Device, address: u16) -> Vec<u16> {
    device
        .unit(1)
        .and_then(|u| u.read(Table::HoldingRegisters, address, 1))
        .unwrap_or_default()
}

impl ModbusWorld {
    fn poller_due(&self, due: &mut Vec<Duration>) {
        let at = |i: Option<Instant>| i.map(|i| i.saturating_duration_since(self.t0));
        if let Some(p) = &self.poll {
            if self.to_submit > 0 || !p.writes.is_empty() {
                due.extend(at(p.poller.poll_timeout()));
            }
            if let Some(l) = &p.link {
                due.extend(l.up.next_due());
                due.extend(l.down.next_due());
                if let Some(c) = &l.server {
                    due.extend(at(c.poll_timeout()));
                }
            }
        }
    }

    /// The poller's side of a step: sometimes a write, deliveries, deadlines.
    fn poller_step(&mut self) -> Result<(), Violation> {
        let now = self.at();
        let Some(p) = self.poll.as_mut() else {
            return Ok(());
        };
        if self.to_submit > 0 && p.writes.len() < 2 && self.rng.below(4) == 0 {
            let span = u64::from(POLLED.end - POLLED.start);
            let first = POLLED.start + self.rng.below(span) as u16;
            let n = (1 + self.rng.below(3) as u16).min(POLLED.end - first);
            let values: Vec<u16> = (0..n).map(|_| 9000 + self.rng.below(1000) as u16).collect();
            let address = Address {
                table: Table::HoldingRegisters,
                address: first,
            };
            let id = p
                .poller
                .write(now, address, &values)
                .map_err(|e| format!("poller write: {e}"))?;
            ensure!(
                p.writes.insert(id, (first, values)).is_none(),
                "{id:?} twice"
            );
            p.written += 1;
        }
        if let Some(l) = p.link.as_mut() {
            if let Some(sc) = l.server.as_mut() {
                let data = l.up.recv(self.now, &self.net);
                if !data.is_empty() {
                    sc.handle_input(now, &data, &mut self.device);
                }
                if sc.poll_timeout().is_some_and(|t| t <= now) {
                    sc.handle_timeout(now, &mut self.device);
                }
            }
            let data = l.down.recv(self.now, &self.net);
            if !data.is_empty() {
                p.poller.handle_input(now, &data);
            }
        }
        if p.poller.poll_timeout().is_some_and(|t| t <= now) {
            p.poller.handle_timeout(now);
        }
        self.poller_flush()
    }

    fn poller_flush(&mut self) -> Result<(), Violation> {
        let now = self.at();
        for _ in 0..100 {
            let Some(p) = self.poll.as_mut() else {
                return Ok(());
            };
            let mut out = Vec::new();
            while p.poller.poll_transmit(now, &mut out) {}
            if let Some(l) = p.link.as_mut() {
                if !out.is_empty() {
                    l.up.send(self.now, &out, &self.net, &mut self.rng);
                }
                if let Some(sc) = l.server.as_mut() {
                    let mut back = Vec::new();
                    while sc.poll_transmit(now, &mut back) {}
                    if !back.is_empty() {
                        l.down.send(self.now, &back, &self.net, &mut self.rng);
                    }
                    while sc.poll_event().is_some() {}
                }
            } else {
                ensure!(out.is_empty(), "the poller sent while not connected");
            }
            let events: Vec<PollEvent> = std::iter::from_fn(|| p.poller.poll_event()).collect();
            if events.is_empty() {
                return Ok(());
            }
            for e in events {
                self.poller_event(e)?;
            }
        }
        Err("the poller's events never end".into())
    }

    fn poller_event(&mut self, e: PollEvent) -> Result<(), Violation> {
        let now = self.at();
        let down = self.now < self.down_until;
        let Some(p) = self.poll.as_mut() else {
            return Ok(());
        };
        let link = p.link.as_ref().map_or(0, |l| l.id);
        match e {
            PollEvent::Connect => {
                ensure!(p.link.is_none(), "connect while connected");
                if down {
                    p.poller.handle_connect_failed(now);
                } else {
                    let id = self.next_link;
                    self.next_link += 1;
                    p.link = Some(PollerLink {
                        id,
                        server: Some(ModbusServerConn::tcp()),
                        up: Pipe::default(),
                        down: Pipe::default(),
                        server_eof: false,
                    });
                    p.poller.handle_connected(now);
                    self.report.connects += 1;
                }
            }
            PollEvent::Disconnect { .. } => self.poller_link_gone(),
            PollEvent::Changed(c) => {
                let a = c.address.address;
                if c.address.table == Table::HoldingRegisters && POLLED.contains(&a) {
                    let m = &mut p.models[usize::from(a - POLLED.start)];
                    m.read(&vec![c.new])
                        .map_err(|e| format!("poller read {}: {e}", c.address.modicon()))?;
                    self.report.polled += 1;
                }
            }
            PollEvent::Failed { failure, .. } => ensure!(
                matches!(failure, Failure::Timeout | Failure::Disconnected),
                "poller read failed: {failure}"
            ),
            PollEvent::Written { write, .. } => {
                let (first, values) = p
                    .writes
                    .remove(&write)
                    .ok_or_else(|| format!("{write:?} finished, but not outstanding"))?;
                for (i, v) in values.into_iter().enumerate() {
                    p.models[usize::from(first - POLLED.start) + i].written(vec![v]);
                }
                self.report.ok += 1;
            }
            PollEvent::WriteFailed { write, failure } => {
                ensure!(
                    matches!(failure, Failure::Timeout | Failure::Disconnected),
                    "poller write failed: {failure}"
                );
                let (first, values) = p
                    .writes
                    .remove(&write)
                    .ok_or_else(|| format!("{write:?} failed, but not outstanding"))?;
                for (i, v) in values.into_iter().enumerate() {
                    p.models[usize::from(first - POLLED.start) + i].lost_write(
                        link,
                        vec![v],
                        false,
                    );
                }
                self.report.lost += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// The poller's connection is gone (it dropped it, or the network did).
    fn poller_link_gone(&mut self) {
        let now = self.at();
        let Some(p) = self.poll.as_mut() else {
            return;
        };
        if let Some(mut l) = p.link.take() {
            if let Some(sc) = l.server.as_mut() {
                if !l.server_eof {
                    l.server_eof = true;
                    sc.handle_eof(now, &mut self.device);
                }
            }
            for m in &mut p.models {
                m.conn_gone(l.id);
            }
        }
    }

    /// The network drops the poller's connection: the poller is told, what it had in
    /// flight fails (on this connection), then the connection is gone.
    fn drop_poller(&mut self) -> Result<(), Violation> {
        let now = self.at();
        let Some(p) = self.poll.as_mut() else {
            return Ok(());
        };
        if let Some(l) = p.link.as_mut() {
            self.report.drops += 1;
            l.up.cut();
            l.down.cut();
            p.poller.handle_disconnected(now);
            self.poller_flush()?;
            self.poller_link_gone();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Modbus/RTU on a serial line

/// One direction of a serial line: frames go out a character time per byte, after the
/// silence the line needs; bits flip and noise bursts come in while it is idle.
#[derive(Debug, Default)]
struct Line {
    pieces: VecDeque<(Duration, Vec<u8>)>,
    free_at: Duration,
}

impl Line {
    fn send(&mut self, now: Duration, bytes: &[u8], timing: &RtuTiming, rng: &mut SplitMix64) {
        let mut t = now.max(self.free_at + timing.t3_5);
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (1 + rng.below(8) as usize).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            t += timing.character * n as u32;
            self.pieces.push_back((t, piece.to_vec()));
            rest = tail;
        }
        self.free_at = t;
    }

    fn recv(&mut self, now: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((due, _)) = self.pieces.front() {
            if *due > now {
                break;
            }
            if let Some((_, p)) = self.pieces.pop_front() {
                out.extend(p);
            }
        }
        out
    }
}

struct RtuWorld {
    rng: SplitMix64,
    t0: Instant,
    now: Duration,
    timing: RtuTiming,
    device: Device,
    server: ModbusServerConn,
    client: ModbusClient,
    up: Line,
    down: Line,
    models: Vec<Model<Vec<u16>>>,
    ops: BTreeMap<ModbusOp, ModbusOpKind>,
    to_submit: u64,
    next_submit: Duration,
    /// Per mille: a frame gets one bit flipped.
    flip: u64,
    next_noise: Option<Duration>,
    report: Report,
}

impl RtuWorld {
    fn new(mut rng: SplitMix64) -> Self {
        let baud = [9600, 19_200, 38_400, 115_200][rng.below(4) as usize];
        let transport = Transport::RtuSerial { baud };
        let mut device = modbus_device(transport).unwrap_or_else(|_| Device::new(UnitData::new()));
        device.seed(rng.next_u64());
        let models = (0..MODBUS_BLOCKS.len())
            .map(|b| Model::new(device_block(&device, b).unwrap_or_default()))
            .collect();
        // Long enough for the longest frame both ways at the lowest rate: no reply can
        // come after its request timed out (over RTU it would answer the next one).
        let config = ModbusConfig {
            depth: 1,
            timeout: Duration::from_millis(800 + rng.below(500)),
            tcp_broadcast: false,
            first_transaction_id: 0,
        };
        let noisy = rng.coin();
        if std::env::var_os("CPPPO_SIM_VERBOSE").is_some() {
            eprintln!("rtu baud {baud} timeout {:?} noisy {noisy}", config.timeout);
        }
        RtuWorld {
            t0: Instant::now(),
            now: Duration::ZERO,
            timing: RtuTiming::for_baud(baud),
            device,
            server: ModbusServerConn::new(transport),
            client: ModbusClient::new(transport, config),
            up: Line::default(),
            down: Line::default(),
            models,
            ops: BTreeMap::new(),
            to_submit: 10 + rng.below(40),
            next_submit: Duration::ZERO,
            flip: if noisy { rng.below(150) } else { 0 },
            next_noise: noisy.then(|| Duration::from_millis(rng.below(100))),
            report: Report::default(),
            rng,
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn run(mut self) -> Result<Report, Violation> {
        let result = self.run_inner();
        result.map_err(|e| format!("at {:?}: {e}", self.now))?;
        Ok(self.report)
    }

    /// Flip one bit of `frame` now and then (CRC-16 catches every single-bit error).
    fn corrupt(&mut self, frame: &mut [u8]) {
        if !frame.is_empty() && self.rng.below(1000) < self.flip {
            let i = self.rng.below(frame.len() as u64) as usize;
            frame[i] ^= 1 << self.rng.below(8);
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        for _ in 0..200_000 {
            let now = self.at();
            if self.next_noise.is_some_and(|t| t <= self.now) {
                // A burst of noise, on whichever side, only while that side is idle.
                let burst: Vec<u8> = (0..1 + self.rng.below(6))
                    .map(|_| self.rng.next_u64() as u8)
                    .collect();
                let line = if self.rng.coin() {
                    &mut self.up
                } else {
                    &mut self.down
                };
                if line.pieces.is_empty() {
                    line.send(self.now, &burst, &self.timing, &mut self.rng);
                }
                self.next_noise = Some(self.now + Duration::from_millis(5 + self.rng.below(200)));
            }
            if self.to_submit > 0 && self.next_submit <= self.now {
                self.next_submit = self.now + Duration::from_micros(self.rng.below(30_000));
                if let Some((request, what)) = modbus_pick(&mut self.rng, &mut self.models) {
                    let op = self.client.submit(now, request, 1);
                    ensure!(self.ops.insert(op, what).is_none(), "{op:?} twice");
                    self.to_submit -= 1;
                    self.report.ops += 1;
                }
            }
            let data = self.up.recv(self.now);
            if !data.is_empty() {
                self.server.handle_input(now, &data, &mut self.device);
            }
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now, &mut self.device);
            }
            let data = self.down.recv(self.now);
            if !data.is_empty() {
                self.client.handle_input(now, &data);
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
            let mut out = Vec::new();
            while self.client.poll_transmit(now, &mut out) {}
            if !out.is_empty() {
                if std::env::var_os("CPPPO_SIM_TRACE").is_some() {
                    eprintln!("{:?} request {out:02x?}", self.now);
                }
                self.corrupt(&mut out);
                self.up.send(self.now, &out, &self.timing, &mut self.rng);
            }
            let mut out = Vec::new();
            while self.server.poll_transmit(now, &mut out) {}
            if !out.is_empty() {
                if std::env::var_os("CPPPO_SIM_TRACE").is_some() {
                    eprintln!("{:?} reply {out:02x?}", self.now);
                }
                self.corrupt(&mut out);
                self.down.send(self.now, &out, &self.timing, &mut self.rng);
            }
            while self.server.poll_event().is_some() {}
            while let Some(e) = self.client.poll_event() {
                if std::env::var_os("CPPPO_SIM_TRACE").is_some() {
                    eprintln!("{:?} client {e:?}", self.now);
                }
                let Some(op) = modbus_op_of(&e) else {
                    continue;
                };
                let what = self
                    .ops
                    .remove(&op)
                    .ok_or_else(|| format!("event {e:?} for an op not outstanding"))?;
                modbus_outcome(&mut self.models, &mut self.report, 0, what, &e)?;
            }
            ensure!(
                self.client.in_flight() + self.client.queued() == self.ops.len(),
                "the client holds {} ops, {} outstanding",
                self.client.in_flight() + self.client.queued(),
                self.ops.len()
            );
            ensure!(
                self.client.in_flight() <= 1,
                "more than one request on the line"
            );
            if self.to_submit == 0 && self.ops.is_empty() {
                for m in &mut self.models {
                    m.conn_gone(0);
                }
                for b in 0..MODBUS_BLOCKS.len() {
                    let v = device_block(&self.device, b).ok_or("block gone")?;
                    ensure!(
                        self.models[b].allows(&v),
                        "block {b} ends as {v:?}, the model allows {:?}",
                        self.models[b].possible
                    );
                }
                return Ok(());
            }
            let at = |i: Option<Instant>| i.map(|i| i.saturating_duration_since(self.t0));
            let mut due: Vec<Duration> = Vec::new();
            if self.to_submit > 0 {
                due.push(self.next_submit);
                due.extend(self.next_noise);
            }
            due.extend(self.up.pieces.front().map(|p| p.0));
            due.extend(self.down.pieces.front().map(|p| p.0));
            due.extend(at(self.client.poll_timeout()));
            due.extend(at(self.server.poll_timeout()));
            let next = due
                .into_iter()
                .min()
                .ok_or("nothing left to happen, ops outstanding")?;
            self.now = next.max(self.now);
        }
        Err("no progress after 200000 steps".into())
    }
}
