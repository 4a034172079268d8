//! [`Poller`]: cpppo's Modbus poller (`remote.plc_modbus.poller_modbus`, the engine of
//! its `modbus_poll` tool) as a sans-IO engine on a [`ClientConn`].
//!
//! Register ranges are given in cpppo's notation ([`super::numbering`]: `40001-40010`,
//! `1-16`, `300001`), each with its own poll rate. When ranges fall due together their
//! addresses are merged into as few read requests as the protocol allows: runs in one
//! table that overlap or lie within [`PollerConfig::reach`] of each other (1: only
//! adjacent ones, as `modbus_poll` does by default) become one run, cut into requests of
//! at most [`MAX_READ_REGISTERS`] registers or [`MAX_READ_BITS`] bits (cpppo's
//! `merge` and `shatter`). The values read are kept; a value that differs from the
//! last one read (or is read for the first time) is a [`Change`], reported as cpppo
//! logs it: `40009 == 999 (was: 99)`.
//!
//! - [`Poller::poll`] adds a range; [`Poller::read`] is the last value polled (`None`
//!   until polled, or while offline); [`Poller::write`] queues a write, sent as soon
//!   as the poll cycle in progress is finished (polls never overlap writes);
//!   [`Poller::load`] is cpppo's 1, 5 and 15-minute load.
//! - A cycle is the set of reads that fell due at one instant. The next cycle of a
//!   range is due one rate after the last was due; cycles missed while a slow cycle
//!   ran are skipped (cpppo's "slipped"), keeping the cadence.
//! - The load of a cycle is the time from its first request to its last reply over
//!   the poll period (the fastest rate among its ranges), averaged exponentially
//!   with weights of one period over 1, 5 and 15 minutes: exactly cpppo's
//!   `exponential_moving_average(cur, busy / rate, 1 / (minutes * 60 / rate))`.
//!   Above 1.0, the device cannot keep up with the rate.
//! - Offline: a cycle in which no read succeeded takes the device offline
//!   ([`PollEvent::Offline`]); the next successful read brings it online again.
//!
//! ## Connecting
//!
//! The poller owns no socket: it asks for one with [`PollEvent::Connect`] and is told
//! the outcome with [`Poller::handle_connected`] or [`Poller::handle_connect_failed`]
//! (the adapter bounds the time a connect may take). A connection closed by the peer
//! or failing is reported with [`Poller::handle_disconnected`]; the poller itself drops
//! one ([`PollEvent::Disconnect`]: close the socket) when the reply stream is out of
//! step or every read of a cycle timed out. After a failure it waits, then asks again:
//! [`PollerConfig::backoff`] at first, doubling up to [`PollerConfig::backoff_max`],
//! back to the first once a read succeeds. The wait is a deadline in
//! [`Poller::poll_timeout`]. Writes queued while disconnected are sent once connected;
//! one in flight when the connection goes is failed.
//!
//! ## Drive loop
//!
//! As every engine: after any `handle_*` call or command, drain
//! [`Poller::poll_transmit`] to the socket and [`Poller::poll_event`] (acting on
//! `Connect` and `Disconnect`), then sleep until [`Poller::poll_timeout`] or input.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cpppo_core::modbus::device::Device;
//! use cpppo_core::modbus::poller::{PollEvent, Poller, PollerConfig};
//! use cpppo_core::modbus::server::ServerConn;
//!
//! let mut device = Device::from_specs(["40001-40010=99"]).unwrap();
//! let mut server = ServerConn::tcp();
//! let t0 = Instant::now();
//! let mut poller = Poller::new(PollerConfig::default());
//! poller.poll(t0, "40001-40003", None).unwrap();
//! poller.poll(t0, "40004-40005", Some(Duration::from_secs(5))).unwrap();
//! assert_eq!(poller.poll_event(), Some(PollEvent::Connect));
//! poller.handle_connected(t0);
//!
//! // One loop step: the poller's bytes to the device's engine and back.
//! let mut step = |now: Instant, poller: &mut Poller| {
//!     let (mut up, mut down) = (Vec::new(), Vec::new());
//!     while poller.poll_transmit(now, &mut up) {}
//!     server.handle_input(now, &up, &mut device);
//!     while server.poll_transmit(now, &mut down) {}
//!     poller.handle_input(now, &down);
//!     std::iter::from_fn(|| poller.poll_event()).map(|e| e.to_string()).collect::<Vec<_>>()
//! };
//! // Both ranges are due at once: one request for 40001-40005.
//! let log = step(t0, &mut poller);
//! assert_eq!(log[0], "online");
//! assert_eq!(log[1..], ["40001 == 99 (was: None)", "40002 == 99 (was: None)",
//!     "40003 == 99 (was: None)", "40004 == 99 (was: None)", "40005 == 99 (was: None)"]);
//! assert_eq!(poller.read_modicon(40002), Some(99));
//!
//! poller.write_spec(t0, "40002=999").unwrap();
//! assert_eq!(step(t0, &mut poller), ["wrote 40002 (1)"]);
//! // Next cycle, a second later: only 40001-40003 are due.
//! let t1 = poller.poll_timeout().unwrap();
//! assert_eq!(t1, t0 + Duration::from_secs(1));
//! poller.handle_timeout(t1);
//! assert_eq!(step(t1, &mut poller), ["40002 == 999 (was: 99)"]);
//! assert!(poller.load().one.unwrap() < 0.01); // replies took no time at all
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{ClientConfig, ClientConn, ClientEvent, LostReason, OpId};
use super::numbering::{Address, RegisterSpec, SpecError, Table};
use super::pdu::{
    Bits, ExceptionCode, Registers, Request, Response, MAX_READ_BITS, MAX_READ_REGISTERS,
    MAX_WRITE_BITS, MAX_WRITE_REGISTERS,
};
use super::server::{ErrorInfo, Transport};
use crate::polling::{next_due, Backoff};

/// Each wait before reconnecting is twice the last.
pub const BACKOFF_MULTIPLIER: f64 = 2.0;

/// cpppo `modbus_poll`'s default poll rate: once a second.
pub const DEFAULT_RATE: Duration = Duration::from_secs(1);
/// First wait before reconnecting.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait before reconnecting.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The unit polled unless configured (1: unit 0 is a broadcast on a serial line).
pub const DEFAULT_UNIT: u8 = 1;
pub use crate::polling::{Load, LOAD_MINUTES};

/// How a [`Poller`] polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PollerConfig {
    /// How requests are framed.
    pub transport: Transport,
    /// The client's depth and per-request timeout.
    pub client: ClientConfig,
    /// The unit (slave) id polled and written.
    pub unit: u8,
    /// The rate of a range polled without one.
    pub rate: Duration,
    /// Merge runs whose gap is less than this many addresses (1: adjacent or
    /// overlapping only; cpppo's `--reach`). Registers in a gap are read but not kept.
    pub reach: u16,
    /// Write single values with *Write Multiple Registers* too (cpppo's `multi`).
    pub multi: bool,
    /// First wait before reconnecting.
    pub backoff: Duration,
    /// Longest wait before reconnecting.
    pub backoff_max: Duration,
    /// Drop the connection when every read of a cycle timed out.
    pub reconnect_on_timeout: bool,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            transport: Transport::Tcp,
            client: ClientConfig::default(),
            unit: DEFAULT_UNIT,
            rate: DEFAULT_RATE,
            reach: 1,
            multi: false,
            backoff: DEFAULT_BACKOFF,
            backoff_max: DEFAULT_BACKOFF_MAX,
            reconnect_on_timeout: true,
        }
    }
}

/// A range polled, as returned by [`Poller::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RangeId(pub usize);

/// A write queued, as returned by [`Poller::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteId(pub u64);

/// A value read that differs from the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The register.
    pub address: Address,
    /// The value before (`None`: never read before).
    pub old: Option<u16>,
    /// The value now (coils and discrete inputs: 0 or 1).
    pub new: u16,
}

impl fmt::Display for Change {
    /// cpppo `modbus_poll`'s log line: `40009 == 999 (was: 99)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} == {} (was: ", self.address.modicon(), self.new)?;
        match self.old {
            Some(old) => write!(f, "{old})"),
            None => f.write_str("None)"),
        }
    }
}

/// Why a read or write failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The device answered with this exception.
    Exception(ExceptionCode),
    /// No reply in time.
    Timeout,
    /// The reply did not answer the request.
    Invalid(ErrorInfo),
    /// The connection went before the reply came.
    Disconnected,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Exception(c) => write!(f, "exception {:#04x}", c.0),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Invalid(e) => write!(f, "invalid reply: {}", e.message),
            Failure::Disconnected => f.write_str("disconnected"),
        }
    }
}

/// What happened, for the adapter (`Connect`, `Disconnect`) and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PollEvent {
    /// Open a connection to the device, then call [`Poller::handle_connected`] or
    /// [`Poller::handle_connect_failed`].
    Connect,
    /// Close the connection (the poller has already forgotten it).
    Disconnect {
        /// Why, in words.
        reason: String,
    },
    /// The next [`PollEvent::Connect`] comes after this wait.
    Reconnecting {
        /// How long.
        retry_in: Duration,
    },
    /// A value read changed.
    Changed(Change),
    /// A read request started failing (reported once until it succeeds again).
    Failed {
        /// The table read.
        table: Table,
        /// Zero-based first address.
        address: u16,
        /// How many.
        quantity: u16,
        /// Why.
        failure: Failure,
    },
    /// A read succeeded after none did.
    Online,
    /// A cycle ended with no read succeeding.
    Offline,
    /// A write finished.
    Written {
        /// The write.
        write: WriteId,
        /// The first register written.
        address: Address,
        /// How many.
        quantity: u16,
    },
    /// A write failed (its other requests, if it was split, may have been applied).
    WriteFailed {
        /// The write.
        write: WriteId,
        /// Why.
        failure: Failure,
    },
}

impl fmt::Display for PollEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollEvent::Connect => f.write_str("connect"),
            PollEvent::Disconnect { reason } => write!(f, "disconnect: {reason}"),
            PollEvent::Reconnecting { retry_in } => {
                write!(f, "reconnecting in {:.3}s", retry_in.as_secs_f64())
            }
            PollEvent::Changed(c) => c.fmt(f),
            PollEvent::Failed {
                table,
                address,
                quantity,
                failure,
            } => {
                let first = Address {
                    table: *table,
                    address: *address,
                };
                let last = Address {
                    table: *table,
                    address: address.saturating_add(quantity.saturating_sub(1)),
                };
                write!(
                    f,
                    "failing {}-{} ({quantity}): {failure}",
                    first.modicon(),
                    last.modicon()
                )
            }
            PollEvent::Online => f.write_str("online"),
            PollEvent::Offline => f.write_str("offline"),
            PollEvent::Written {
                address, quantity, ..
            } => write!(f, "wrote {} ({quantity})", address.modicon()),
            PollEvent::WriteFailed { write, failure } => {
                write!(f, "write {} failed: {failure}", write.0)
            }
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollerStatistics {
    /// Poll cycles finished.
    pub cycles: u64,
    /// Cycles skipped because the one before ran late (cpppo's "slipped").
    pub slipped: u64,
    /// Read requests sent.
    pub reads: u64,
    /// Read requests that failed.
    pub read_failures: u64,
    /// Write requests sent.
    pub writes: u64,
    /// Connections asked for.
    pub connects: u64,
}

/// Why a write could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The spec does not parse.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A write spec needs `=values`.
    #[error("no value to write in {0:?}: expected <register>[-<register>]=<value>[,...]")]
    NoValue(String),
    /// Discrete inputs and input registers are read-only.
    #[error("{0:?} cannot be written")]
    ReadOnly(Table),
    /// Nothing to write.
    #[error("no values")]
    Empty,
    /// The values run past the last address.
    #[error("{0} values do not fit from the address given")]
    TooLong(usize),
}

/// One read request of a cycle: which registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Read {
    /// The table.
    pub table: Table,
    /// Zero-based first address.
    pub address: u16,
    /// How many.
    pub quantity: u16,
}

impl Read {
    /// The request that reads these registers.
    pub fn request(&self) -> Request<'static> {
        let (address, quantity) = (self.address, self.quantity);
        match self.table {
            Table::Coils => Request::ReadCoils { address, quantity },
            Table::DiscreteInputs => Request::ReadDiscreteInputs { address, quantity },
            Table::InputRegisters => Request::ReadInputRegisters { address, quantity },
            Table::HoldingRegisters => Request::ReadHoldingRegisters { address, quantity },
        }
    }
}

/// Most of `table` one read request may ask for.
pub fn read_limit(table: Table) -> u16 {
    match table {
        Table::Coils | Table::DiscreteInputs => MAX_READ_BITS,
        Table::InputRegisters | Table::HoldingRegisters => MAX_READ_REGISTERS,
    }
}

/// cpppo's `merge` then `shatter`: runs of registers in one table that overlap or lie
/// less than `reach` apart (at least 1: adjacent) become one run, cut into reads of at
/// most [`read_limit`] each. Sorted by table and address.
///
/// ```
/// use cpppo_core::modbus::numbering::Table::HoldingRegisters as H;
/// use cpppo_core::modbus::poller::{merge, Read};
///
/// let runs = [(H, 0, 10), (H, 10, 5), (H, 5, 2), (H, 200, 1)];
/// assert_eq!(merge(runs, 1), [
///     Read { table: H, address: 0, quantity: 15 },
///     Read { table: H, address: 200, quantity: 1 },
/// ]);
/// // 300 registers: 125 + 125 + 50.
/// assert_eq!(merge([(H, 0, 300)], 1).iter().map(|r| r.quantity).collect::<Vec<_>>(), [125, 125, 50]);
/// ```
pub fn merge(runs: impl IntoIterator<Item = (Table, u16, u16)>, reach: u16) -> Vec<Read> {
    let mut runs: Vec<(Table, u32, u32)> = runs
        .into_iter()
        .filter(|r| r.2 > 0)
        .map(|(t, a, q)| (t, u32::from(a), u32::from(a) + u32::from(q)))
        .collect();
    runs.sort_unstable();
    let reach = u32::from(reach.max(1));
    let mut merged: Vec<(Table, u32, u32)> = Vec::new();
    for (table, start, end) in runs {
        match merged.last_mut() {
            Some((t, _, e)) if *t == table && start < *e + reach => *e = (*e).max(end),
            _ => merged.push((table, start, end)),
        }
    }
    let mut reads = Vec::new();
    for (table, mut start, end) in merged {
        let limit = u32::from(read_limit(table));
        while start < end {
            let quantity = (end - start).min(limit);
            if let (Ok(address), Ok(quantity)) = (u16::try_from(start), u16::try_from(quantity)) {
                reads.push(Read {
                    table,
                    address,
                    quantity,
                });
            }
            start += quantity;
        }
    }
    reads
}

#[derive(Debug, Clone)]
struct PolledRange {
    table: Table,
    address: u16,
    quantity: u16,
    rate: Duration,
    due: Instant,
}

#[derive(Debug)]
struct Cycle {
    start: Instant,
    period: Duration,
    /// By op, so that what fails together is reported in the order it was sent (a
    /// hash map's order would differ from run to run).
    ops: BTreeMap<OpId, Read>,
    succeeded: usize,
    timeouts: usize,
    failed: usize,
}

#[derive(Debug)]
struct PendingWrite {
    id: WriteId,
    address: Address,
    quantity: u16,
    requests: Vec<Request<'static>>,
}

#[derive(Debug)]
struct WriteInFlight {
    address: Address,
    quantity: u16,
    remaining: usize,
    failed: bool,
}

#[derive(Debug)]
enum State {
    /// Waiting for the adapter's answer to a `Connect`.
    Connecting,
    Connected(Box<ClientConn>),
    /// Waiting to ask again.
    Backoff(Instant),
}

/// cpppo's Modbus poller as a sans-IO engine. See the [module documentation](self).
#[derive(Debug)]
pub struct Poller {
    config: PollerConfig,
    state: State,
    ranges: Vec<PolledRange>,
    /// Every register in a range, with its last value.
    values: BTreeMap<Address, Option<u16>>,
    online: bool,
    failing: BTreeSet<Read>,
    cycle: Option<Cycle>,
    queued_writes: VecDeque<PendingWrite>,
    write_ops: BTreeMap<OpId, WriteId>,
    writes_in_flight: BTreeMap<WriteId, WriteInFlight>,
    next_write: u64,
    backoff: Backoff,
    load: Load,
    events: VecDeque<PollEvent>,
    stats: PollerStatistics,
}

impl Poller {
    /// A poller that will ask to connect at once ([`PollEvent::Connect`]).
    pub fn new(config: PollerConfig) -> Self {
        let mut events = VecDeque::new();
        events.push_back(PollEvent::Connect);
        Poller {
            config,
            state: State::Connecting,
            ranges: Vec::new(),
            values: BTreeMap::new(),
            online: false,
            failing: BTreeSet::new(),
            cycle: None,
            queued_writes: VecDeque::new(),
            write_ops: BTreeMap::new(),
            writes_in_flight: BTreeMap::new(),
            next_write: 0,
            backoff: Backoff::new(config.backoff, config.backoff_max, BACKOFF_MULTIPLIER),
            load: Load::default(),
            events,
            stats: PollerStatistics {
                connects: 1,
                ..PollerStatistics::default()
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    /// Counters.
    pub fn statistics(&self) -> &PollerStatistics {
        &self.stats
    }

    /// cpppo's load figures.
    pub fn load(&self) -> Load {
        self.load
    }

    /// Whether the last cycle had a read succeed.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// The read requests that have failed since they last succeeded.
    pub fn failing(&self) -> impl Iterator<Item = &Read> {
        self.failing.iter()
    }

    /// Poll the registers of `spec` (cpppo notation, `40001-40010`; any `=values` are
    /// ignored here) every `rate` (the configured rate if `None`), from `now`.
    pub fn poll(
        &mut self,
        now: Instant,
        spec: &str,
        rate: Option<Duration>,
    ) -> Result<RangeId, SpecError> {
        let spec: RegisterSpec = spec.parse()?;
        let quantity = u16::try_from(spec.values.len()).unwrap_or(u16::MAX);
        Ok(self.poll_range(
            now,
            Address {
                table: spec.table,
                address: spec.address,
            },
            quantity,
            rate,
        ))
    }

    /// Poll `quantity` registers from `first` every `rate` (the configured rate if
    /// `None`), from `now`. Registers past the table's end are left out.
    pub fn poll_range(
        &mut self,
        now: Instant,
        first: Address,
        quantity: u16,
        rate: Option<Duration>,
    ) -> RangeId {
        let quantity = quantity.min(u16::MAX - first.address).max(1);
        for a in (0..quantity).map(|i| first.address + i) {
            self.values
                .entry(Address {
                    table: first.table,
                    address: a,
                })
                .or_insert(None);
        }
        self.ranges.push(PolledRange {
            table: first.table,
            address: first.address,
            quantity,
            rate: rate
                .unwrap_or(self.config.rate)
                .max(Duration::from_nanos(1)),
            due: now,
        });
        self.drive(now);
        RangeId(self.ranges.len() - 1)
    }

    /// The last value polled at `address`: `None` before it was read, or while the
    /// device is offline.
    pub fn read(&self, address: Address) -> Option<u16> {
        if !self.online {
            return None;
        }
        self.values.get(&address).copied().flatten()
    }

    /// [`Poller::read`] by Modicon number (`40001`).
    pub fn read_modicon(&self, number: u32) -> Option<u16> {
        Address::from_modicon(number)
            .ok()
            .and_then(|a| self.read(a))
    }

    /// Queue a write of `spec` (`40009=999`, `40001-40010=0`, `1-3=1,0,1`), sent as
    /// soon as no poll cycle is in progress.
    pub fn write_spec(&mut self, now: Instant, spec: &str) -> Result<WriteId, WriteError> {
        if !spec.contains('=') {
            return Err(WriteError::NoValue(spec.to_string()));
        }
        let s: RegisterSpec = spec.parse()?;
        self.write(
            now,
            Address {
                table: s.table,
                address: s.address,
            },
            &s.values,
        )
    }

    /// Queue a write of `values` from `first` (coils: non-zero is on), sent as soon
    /// as no poll cycle is in progress: one *Write Single* request for one value
    /// (unless [`PollerConfig::multi`]), else *Write Multiple* requests of at most the
    /// protocol's limit each.
    pub fn write(
        &mut self,
        now: Instant,
        first: Address,
        values: &[u16],
    ) -> Result<WriteId, WriteError> {
        if values.is_empty() {
            return Err(WriteError::Empty);
        }
        if usize::from(first.address) + values.len() > usize::from(u16::MAX) + 1 {
            return Err(WriteError::TooLong(values.len()));
        }
        let (limit, single) = match first.table {
            Table::HoldingRegisters => (usize::from(MAX_WRITE_REGISTERS), !self.config.multi),
            Table::Coils => (usize::from(MAX_WRITE_BITS), true),
            t => return Err(WriteError::ReadOnly(t)),
        };
        let mut requests = Vec::new();
        if single && values.len() == 1 {
            let (address, value) = (first.address, values.first().copied().unwrap_or(0));
            requests.push(match first.table {
                Table::Coils => Request::WriteSingleCoil {
                    address,
                    value: value != 0,
                },
                _ => Request::WriteSingleRegister { address, value },
            });
        } else {
            let mut address = first.address;
            for chunk in values.chunks(limit) {
                requests.push(match first.table {
                    Table::Coils => {
                        let bits: Vec<bool> = chunk.iter().map(|v| *v != 0).collect();
                        Request::WriteMultipleCoils {
                            address,
                            values: Bits::from_bools(&bits),
                        }
                    }
                    _ => Request::WriteMultipleRegisters {
                        address,
                        values: Registers::from_values(chunk),
                    },
                });
                address = address.wrapping_add(u16::try_from(chunk.len()).unwrap_or(0));
            }
        }
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.queued_writes.push_back(PendingWrite {
            id,
            address: first,
            quantity: u16::try_from(values.len()).unwrap_or(u16::MAX),
            requests,
        });
        self.drive(now);
        Ok(id)
    }

    /// The connection asked for with [`PollEvent::Connect`] is up: polling starts.
    pub fn handle_connected(&mut self, now: Instant) {
        if matches!(self.state, State::Connecting) {
            self.state = State::Connected(Box::new(ClientConn::new(
                self.config.transport,
                self.config.client,
            )));
            self.drive(now);
        }
    }

    /// The connection asked for could not be made: wait, then ask again.
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if matches!(self.state, State::Connecting) {
            self.back_off(now);
        }
    }

    /// The connection closed or failed: what was in flight fails; wait, then ask
    /// again. Ignored when not connected (after the poller's own
    /// [`PollEvent::Disconnect`]).
    pub fn handle_disconnected(&mut self, now: Instant) {
        if matches!(self.state, State::Connected(_)) {
            self.drop_connection(now);
        }
    }

    /// Bytes received from the device.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if let State::Connected(client) = &mut self.state {
            client.handle_input(now, data);
        }
        self.drive(now);
    }

    /// Time has reached `now`: request timeouts, the next cycle, the end of a backoff.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Backoff(until) if *until <= now => {
                self.state = State::Connecting;
                self.stats.connects += 1;
                self.events.push_back(PollEvent::Connect);
            }
            State::Connected(client) => {
                if client.poll_timeout().is_some_and(|at| at <= now) {
                    client.handle_timeout(now);
                }
                self.drive(now);
            }
            _ => {}
        }
    }

    /// Append the requests ready to send.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.drive(now);
        let mut any = false;
        while let State::Connected(client) = &mut self.state {
            if !client.poll_transmit(now, out) {
                break;
            }
            any = true;
            self.drive(now);
        }
        any
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PollEvent> {
        self.events.pop_front()
    }

    /// When [`Poller::handle_timeout`] must next be called: a request's timeout, the
    /// next cycle (when none is in progress), or the end of a backoff.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Connecting => None,
            State::Backoff(until) => Some(*until),
            State::Connected(client) => {
                let next_cycle = if self.cycle.is_none() && self.writes_in_flight.is_empty() {
                    self.ranges.iter().map(|r| r.due).min()
                } else {
                    None
                };
                crate::engine::earliest(client.poll_timeout(), next_cycle)
            }
        }
    }

    fn back_off(&mut self, now: Instant) {
        let retry_in = self.backoff.next_wait();
        self.state = State::Backoff(now.checked_add(retry_in).unwrap_or(now));
        self.events.push_back(PollEvent::Reconnecting { retry_in });
    }

    /// Forget the connection: what is in flight fails; back off.
    fn drop_connection(&mut self, now: Instant) {
        self.state = State::Backoff(now);
        let ops: Vec<OpId> = self
            .cycle
            .as_ref()
            .map(|c| c.ops.keys().copied().collect())
            .unwrap_or_default();
        for op in ops {
            self.read_done(now, op, Err(Failure::Disconnected));
        }
        let ops: Vec<OpId> = self.write_ops.keys().copied().collect();
        for op in ops {
            self.write_done(op, Err(Failure::Disconnected));
        }
        self.write_ops.clear();
        if self.online {
            self.online = false;
            self.events.push_back(PollEvent::Offline);
        }
        self.back_off(now);
    }

    /// Take in the client's events, then start what may start.
    fn drive(&mut self, now: Instant) {
        loop {
            let State::Connected(client) = &mut self.state else {
                return;
            };
            let Some(event) = client.poll_event() else {
                break;
            };
            match event {
                ClientEvent::Reply { op, response, .. } => {
                    let result = response.map_err(|e| Failure::Exception(e.code));
                    if self.write_ops.contains_key(&op) {
                        self.write_done(op, result.map(|_| ()));
                    } else {
                        self.read_done(now, op, result);
                    }
                }
                ClientEvent::Timeout { op } => self.op_failed(now, op, Failure::Timeout),
                ClientEvent::Invalid { op, error } => {
                    self.op_failed(now, op, Failure::Invalid(error))
                }
                ClientEvent::Aborted { op } => self.op_failed(now, op, Failure::Disconnected),
                ClientEvent::Broadcast { op } => {
                    if self.write_ops.contains_key(&op) {
                        self.write_done(op, Ok(()));
                    } else {
                        // A read sent to unit 0 on a serial line: nobody answers it.
                        let error = ErrorInfo {
                            field: "modbus.unit".to_string(),
                            offset: 0,
                            message: "unit 0 is a broadcast: no reply to a read".to_string(),
                        };
                        self.read_done(now, op, Err(Failure::Invalid(error)));
                    }
                }
                ClientEvent::Lost(reason) => {
                    let reason = match reason {
                        LostReason::Closed => "closed by the device".to_string(),
                        LostReason::ProtocolError(e) => e.message,
                    };
                    self.events.push_back(PollEvent::Disconnect { reason });
                    return self.drop_connection(now);
                }
                ClientEvent::Unmatched { .. } | ClientEvent::Discarded { .. } => {}
            }
            if !self.is_connected() {
                return;
            }
        }
        if self.cycle.is_none() && self.writes_in_flight.is_empty() {
            if !self.queued_writes.is_empty() {
                self.start_writes(now);
            } else if self.ranges.iter().any(|r| r.due <= now) {
                self.start_cycle(now);
            }
        }
    }

    fn op_failed(&mut self, now: Instant, op: OpId, failure: Failure) {
        if self.write_ops.contains_key(&op) {
            self.write_done(op, Err(failure));
        } else {
            self.read_done(now, op, Err(failure));
        }
    }

    fn start_writes(&mut self, now: Instant) {
        let State::Connected(client) = &mut self.state else {
            return;
        };
        while let Some(w) = self.queued_writes.pop_front() {
            self.writes_in_flight.insert(
                w.id,
                WriteInFlight {
                    address: w.address,
                    quantity: w.quantity,
                    remaining: w.requests.len(),
                    failed: false,
                },
            );
            for request in w.requests {
                let op = client.submit(now, request, self.config.unit);
                self.write_ops.insert(op, w.id);
                self.stats.writes += 1;
            }
        }
    }

    fn write_done(&mut self, op: OpId, result: Result<(), Failure>) {
        let Some(id) = self.write_ops.remove(&op) else {
            return;
        };
        let Some(w) = self.writes_in_flight.get_mut(&id) else {
            return;
        };
        w.remaining = w.remaining.saturating_sub(1);
        if let Err(failure) = result {
            if !w.failed {
                w.failed = true;
                self.events
                    .push_back(PollEvent::WriteFailed { write: id, failure });
            }
        }
        if w.remaining == 0 {
            if !w.failed {
                self.events.push_back(PollEvent::Written {
                    write: id,
                    address: w.address,
                    quantity: w.quantity,
                });
            }
            self.writes_in_flight.remove(&id);
        }
    }

    fn start_cycle(&mut self, now: Instant) {
        let State::Connected(client) = &mut self.state else {
            return;
        };
        let mut period: Option<Duration> = None;
        let mut runs = Vec::new();
        for r in self.ranges.iter_mut().filter(|r| r.due <= now) {
            runs.push((r.table, r.address, r.quantity));
            period = Some(period.map_or(r.rate, |p| p.min(r.rate)));
            // Keep the cadence; skip the cycles missed.
            let (due, slipped) = next_due(r.due, r.rate, now);
            r.due = due;
            self.stats.slipped = self.stats.slipped.saturating_add(slipped);
        }
        let mut ops = BTreeMap::new();
        for read in merge(runs, self.config.reach) {
            let op = client.submit(now, read.request(), self.config.unit);
            ops.insert(op, read);
            self.stats.reads += 1;
        }
        if ops.is_empty() {
            return;
        }
        self.cycle = Some(Cycle {
            start: now,
            period: period.unwrap_or(self.config.rate),
            ops,
            succeeded: 0,
            timeouts: 0,
            failed: 0,
        });
    }

    fn read_done(&mut self, now: Instant, op: OpId, result: Result<Response<'static>, Failure>) {
        let Some(cycle) = self.cycle.as_mut() else {
            return;
        };
        let Some(read) = cycle.ops.remove(&op) else {
            return;
        };
        let values: Option<Vec<u16>> = match &result {
            Ok(Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits)) => {
                Some(bits.iter().map(u16::from).collect())
            }
            Ok(Response::ReadHoldingRegisters(regs) | Response::ReadInputRegisters(regs)) => {
                Some(regs.to_vec())
            }
            _ => None,
        };
        match (values, result) {
            (Some(values), _) => {
                cycle.succeeded += 1;
                self.backoff.reset();
                self.failing.remove(&read);
                if !self.online {
                    self.online = true;
                    self.events.push_back(PollEvent::Online);
                }
                for (i, new) in values.into_iter().enumerate() {
                    let Some(address) = u16::try_from(i)
                        .ok()
                        .and_then(|i| read.address.checked_add(i))
                    else {
                        break;
                    };
                    let address = Address {
                        table: read.table,
                        address,
                    };
                    if let Some(slot) = self.values.get_mut(&address) {
                        if *slot != Some(new) {
                            self.events.push_back(PollEvent::Changed(Change {
                                address,
                                old: *slot,
                                new,
                            }));
                            *slot = Some(new);
                        }
                    }
                }
            }
            (None, result) => {
                let failure = match result {
                    Err(f) => f,
                    Ok(_) => Failure::Invalid(ErrorInfo {
                        field: "modbus.function".to_string(),
                        offset: 0,
                        message: "not a read reply".to_string(),
                    }),
                };
                cycle.failed += 1;
                if failure == Failure::Timeout {
                    cycle.timeouts += 1;
                }
                self.stats.read_failures += 1;
                if self.failing.insert(read) {
                    self.events.push_back(PollEvent::Failed {
                        table: read.table,
                        address: read.address,
                        quantity: read.quantity,
                        failure,
                    });
                }
            }
        }
        if cycle.ops.is_empty() {
            self.cycle_done(now);
        }
    }

    fn cycle_done(&mut self, now: Instant) {
        let Some(cycle) = self.cycle.take() else {
            return;
        };
        self.stats.cycles += 1;
        self.load
            .sample(now.saturating_duration_since(cycle.start), cycle.period);
        if cycle.succeeded == 0 && self.online {
            self.online = false;
            self.events.push_back(PollEvent::Offline);
        }
        if self.config.reconnect_on_timeout
            && cycle.succeeded == 0
            && cycle.timeouts > 0
            && cycle.timeouts == cycle.failed
            && self.is_connected()
        {
            self.events.push_back(PollEvent::Disconnect {
                reason: "no reply to any read of a cycle".to_string(),
            });
            self.drop_connection(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::device::{Delay, Device};
    use crate::modbus::rtu::{Direction, RtuFramer};
    use crate::modbus::server::ServerConn;
    use crate::modbus::tcp;
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    /// The poller against a simulated device over an in-memory "socket", with a
    /// simulated clock that jumps from deadline to deadline.
    struct Sim {
        t0: Instant,
        now: Instant,
        poller: Poller,
        device: Device,
        server: Option<ServerConn>,
        up: bool,
        /// Requests the poller sent, with their time from t0.
        sent: Vec<(Duration, Request<'static>)>,
        /// Events, with their time from t0.
        log: Vec<(Duration, String)>,
        events: Vec<PollEvent>,
    }

    impl Sim {
        fn new(config: PollerConfig, specs: &[&str]) -> Sim {
            let mut device = Device::from_specs(specs.iter().copied()).unwrap();
            device.transport = config.transport;
            let t0 = Instant::now();
            Sim {
                t0,
                now: t0,
                poller: Poller::new(config),
                device,
                server: None,
                up: true,
                sent: Vec::new(),
                log: Vec::new(),
                events: Vec::new(),
            }
        }

        fn at(&self) -> Duration {
            self.now - self.t0
        }

        fn step(&mut self) {
            for _ in 0..10_000 {
                let now = self.now;
                let mut up = Vec::new();
                while self.poller.poll_transmit(now, &mut up) {}
                let at = self.at();
                if self.device.transport == Transport::Tcp {
                    let mut d = tcp::decoder();
                    d.handle_input(&up);
                    while let Some(frame) = d.next_frame().unwrap() {
                        let adu = tcp::Adu::decode(&frame).unwrap();
                        self.sent.push((at, adu.request().unwrap().into_owned()));
                    }
                } else {
                    let mut f = RtuFramer::over_tcp(Direction::Requests);
                    f.handle_input(now, &up);
                    while let Some(frame) = f.poll_frame() {
                        self.sent.push((at, frame.request().unwrap().into_owned()));
                    }
                }
                let mut down = Vec::new();
                if let Some(server) = &mut self.server {
                    server.handle_input(now, &up, &mut self.device);
                    while server.poll_transmit(now, &mut down) {}
                }
                self.poller.handle_input(now, &down);
                let mut any = false;
                while let Some(e) = self.poller.poll_event() {
                    any = true;
                    self.log.push((self.at(), e.to_string()));
                    match e {
                        PollEvent::Connect if self.up => {
                            self.server = Some(ServerConn::new(self.device.transport));
                            self.poller.handle_connected(now);
                        }
                        PollEvent::Connect => self.poller.handle_connect_failed(now),
                        PollEvent::Disconnect { .. } => self.server = None,
                        _ => {}
                    }
                    self.events.push(e);
                }
                if up.is_empty() && down.is_empty() && !any {
                    return;
                }
            }
            panic!("no quiet");
        }

        fn run_until(&mut self, end: Duration) {
            let end = self.t0 + end;
            for _ in 0..100_000 {
                self.step();
                let server = self.server.as_ref().and_then(|s| s.poll_timeout());
                match crate::engine::earliest(self.poller.poll_timeout(), server) {
                    Some(next) if next <= end => {
                        self.now = self.now.max(next);
                        self.poller.handle_timeout(self.now);
                    }
                    _ => {
                        self.now = end;
                        self.step();
                        return;
                    }
                }
            }
            panic!("no progress");
        }

        /// The server goes away; the adapter notices.
        fn stop(&mut self) {
            self.up = false;
            self.server = None;
            self.poller.handle_disconnected(self.now);
        }

        fn take_log(&mut self) -> Vec<(Duration, String)> {
            std::mem::take(&mut self.log)
        }
    }

    fn hr(address: u16, quantity: u16) -> Request<'static> {
        Request::ReadHoldingRegisters { address, quantity }
    }

    #[test]
    fn merged_requests_within_protocol_limits() {
        let specs = ["1-100", "10001-10100", "30001-30400", "40001-40200"];
        let mut sim = Sim::new(PollerConfig::default(), &specs);
        let t0 = sim.t0;
        for spec in [
            "40001-40010",
            "40011-40020",
            "40015",
            "40100-40101",
            "1-16",
            "9-20",
            "10001-10003",
            "30001-30300",
        ] {
            sim.poller.poll(t0, spec, None).unwrap();
        }
        sim.run_until(Duration::ZERO);
        let sent: Vec<_> = sim.sent.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(
            sent,
            [
                Request::ReadCoils {
                    address: 0,
                    quantity: 20
                },
                Request::ReadDiscreteInputs {
                    address: 0,
                    quantity: 3
                },
                Request::ReadInputRegisters {
                    address: 0,
                    quantity: 125
                },
                Request::ReadInputRegisters {
                    address: 125,
                    quantity: 125
                },
                Request::ReadInputRegisters {
                    address: 250,
                    quantity: 50
                },
                hr(0, 20),
                hr(99, 2),
            ]
        );
        // With cpppo's reach of 100 the gap is read too: 40001-40101 in one.
        let mut sim = Sim::new(
            PollerConfig {
                reach: 100,
                ..PollerConfig::default()
            },
            &specs,
        );
        sim.poller.poll(t0, "40001-40020", None).unwrap();
        sim.poller.poll(t0, "40100-40101", None).unwrap();
        sim.run_until(Duration::ZERO);
        assert_eq!(sim.sent, [(Duration::ZERO, hr(0, 101))]);
        // Only the registers polled are reported.
        let changes = sim
            .events
            .iter()
            .filter(|e| matches!(e, PollEvent::Changed(_)))
            .count();
        assert_eq!(changes, 22);
        // Bits: 2000 to a request.
        let reads = merge([(Table::Coils, 0, 4500)], 1);
        assert_eq!(
            reads.iter().map(|r| r.quantity).collect::<Vec<_>>(),
            [2000, 2000, 500]
        );
        // The end of the address space is not overrun.
        assert_eq!(
            merge([(Table::HoldingRegisters, 65_500, 36)], 1),
            [Read {
                table: Table::HoldingRegisters,
                address: 65_500,
                quantity: 36
            }]
        );
    }

    #[test]
    fn each_range_at_its_rate_merged_when_due_together() {
        let mut sim = Sim::new(PollerConfig::default(), &["40001-40100"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40005", Some(S)).unwrap();
        sim.poller.poll(t0, "40006-40010", Some(3 * S)).unwrap();
        sim.run_until(4 * S);
        assert_eq!(
            sim.sent,
            [
                (Duration::ZERO, hr(0, 10)),
                (S, hr(0, 5)),
                (2 * S, hr(0, 5)),
                (3 * S, hr(0, 10)),
                (4 * S, hr(0, 5)),
            ]
        );
        assert_eq!(sim.poller.statistics().cycles, 5);
    }

    #[test]
    fn changes_after_writes_to_the_device_and_through_the_poller() {
        let mut sim = Sim::new(PollerConfig::default(), &["40001-40010=99", "1-8"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40010", None).unwrap();
        sim.poller.poll(t0, "1-3", None).unwrap();
        sim.run_until(Duration::ZERO);
        let log = sim.take_log();
        assert_eq!(log.len(), 2 + 3 + 10, "{log:?}");
        assert_eq!(log[0].1, "connect");
        assert_eq!(log[1].1, "online");
        assert_eq!(log[2].1, "1 == 0 (was: None)");
        assert_eq!(log[14].1, "40010 == 99 (was: None)");
        assert_eq!(sim.poller.read_modicon(40009), Some(99));
        assert_eq!(sim.poller.read_modicon(40011), None);
        // Someone else writes to the device.
        sim.device
            .unit_mut(1)
            .unwrap()
            .holding_registers
            .set(8, 999);
        sim.run_until(S);
        assert_eq!(sim.take_log(), [(S, "40009 == 999 (was: 99)".to_string())]);
        // Writes through the poller, queued between polls.
        sim.poller.write_spec(sim.now, "40001=9999").unwrap();
        sim.poller.write_spec(sim.now, "2-3=1").unwrap();
        sim.poller.write_spec(sim.now, "40002-40003=5,6").unwrap();
        assert!(matches!(
            sim.poller.write_spec(sim.now, "30001=1"),
            Err(WriteError::ReadOnly(Table::InputRegisters))
        ));
        assert!(matches!(
            sim.poller.write_spec(sim.now, "40001"),
            Err(WriteError::NoValue(_))
        ));
        sim.run_until(2 * S);
        let log: Vec<String> = sim.take_log().into_iter().map(|(_, l)| l).collect();
        assert_eq!(
            log,
            [
                "wrote 40001 (1)",
                "wrote 2 (2)",
                "wrote 40002 (2)",
                "2 == 1 (was: 0)",
                "3 == 1 (was: 0)",
                "40001 == 9999 (was: 99)",
                "40002 == 5 (was: 99)",
                "40003 == 6 (was: 99)",
            ]
        );
        let writes: Vec<_> = sim.sent.iter().filter(|(_, r)| r.function() >= 5).collect();
        assert_eq!(
            writes,
            [
                &(
                    S,
                    Request::WriteSingleRegister {
                        address: 0,
                        value: 9999
                    }
                ),
                &(
                    S,
                    Request::WriteMultipleCoils {
                        address: 1,
                        values: Bits::from_bools(&[true, true])
                    }
                ),
                &(
                    S,
                    Request::WriteMultipleRegisters {
                        address: 1,
                        values: Registers::from_values(&[5, 6])
                    }
                ),
            ]
        );
    }

    #[test]
    fn writes_wait_for_the_cycle_in_progress() {
        let mut sim = Sim::new(PollerConfig::default(), &["40001-40010=99"]);
        sim.device.faults.delay = Some(Delay::Fixed(300 * MS));
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40002", None).unwrap();
        sim.run_until(100 * MS);
        sim.poller.write_spec(sim.now, "40001=1").unwrap();
        sim.run_until(S);
        assert_eq!(
            sim.sent,
            [
                (Duration::ZERO, hr(0, 2)),
                (
                    300 * MS,
                    Request::WriteSingleRegister {
                        address: 0,
                        value: 1
                    }
                ),
                // The write's reply came at 600 ms; the next cycle is still at 1 s.
                (S, hr(0, 2)),
            ]
        );
    }

    #[test]
    fn failure_then_recovery_with_backoff() {
        let mut sim = Sim::new(PollerConfig::default(), &["40001-40010=7"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40002", None).unwrap();
        sim.run_until(2500 * MS);
        sim.take_log();
        sim.stop();
        assert_eq!(sim.poller.read_modicon(40001), None, "offline");
        // The backoff is a deadline: the adapter sleeps until it.
        assert!(!sim.poller.is_connected());
        assert_eq!(sim.poller.poll_timeout(), Some(t0 + 3500 * MS));
        sim.poller.handle_timeout(t0 + 3400 * MS);
        assert_eq!(
            sim.poller.poll_timeout(),
            Some(t0 + 3500 * MS),
            "not before the deadline"
        );
        sim.run_until(4 * S);
        assert_eq!(sim.poller.poll_timeout(), Some(t0 + 5500 * MS));
        sim.run_until(8 * S);
        assert_eq!(sim.poller.poll_timeout(), Some(t0 + 9500 * MS));
        // Changed while we were away.
        sim.device.unit_mut(1).unwrap().holding_registers.set(1, 70);
        sim.up = true;
        sim.run_until(20 * S);
        let log = sim.take_log();
        let ms = |n| n * MS;
        let want = [
            (ms(2500), "offline"),
            (ms(2500), "reconnecting in 1.000s"),
            (ms(3500), "connect"),
            (ms(3500), "reconnecting in 2.000s"),
            (ms(5500), "connect"),
            (ms(5500), "reconnecting in 4.000s"),
            (ms(9500), "connect"),
            (ms(9500), "online"),
            (ms(9500), "40002 == 70 (was: 7)"),
        ];
        assert_eq!(
            log,
            want.iter()
                .map(|(t, l)| (*t, l.to_string()))
                .collect::<Vec<_>>()
        );
        // The cadence survived: polls at 0, 1, 2, then at 9.5 (missed ones skipped), 10,
        // 11, ... 20.
        let times: Vec<Duration> = sim.sent.iter().map(|(t, _)| *t).collect();
        assert_eq!(times[..4], [Duration::ZERO, S, 2 * S, ms(9500)]);
        assert_eq!(times[4..], (10..=20).map(|s| s * S).collect::<Vec<_>>()[..]);
        assert_eq!(sim.poller.statistics().slipped, 7 - 1);
        // A second outage starts again from the first backoff.
        sim.stop();
        sim.run_until(21 * S);
        assert_eq!(
            sim.take_log(),
            [
                (20 * S, "offline".to_string()),
                (20 * S, "reconnecting in 1.000s".to_string()),
                (21 * S, "connect".to_string()),
                (21 * S, "reconnecting in 2.000s".to_string()),
            ]
        );
    }

    #[test]
    fn timeouts_drop_the_connection_and_exceptions_do_not() {
        let mut config = PollerConfig::default();
        config.client.timeout = S / 2;
        let mut sim = Sim::new(config, &["40001-40005=3"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40002", None).unwrap();
        sim.run_until(Duration::ZERO);
        sim.take_log();
        sim.device.faults.delay = Some(Delay::Fixed(5 * S));
        sim.run_until(S + S / 2);
        assert_eq!(
            sim.take_log(),
            [
                (S + S / 2, "failing 40001-40002 (2): timeout".to_string()),
                (S + S / 2, "offline".to_string()),
                (
                    S + S / 2,
                    "disconnect: no reply to any read of a cycle".to_string()
                ),
                (S + S / 2, "reconnecting in 1.000s".to_string()),
            ]
        );
        sim.device.faults.delay = None;
        sim.run_until(3 * S);
        assert_eq!(
            sim.take_log(),
            [
                (2 * S + S / 2, "connect".to_string()),
                (2 * S + S / 2, "online".to_string()),
            ]
        );
        // An exception is reported once, and keeps the connection.
        sim.poller.poll(sim.now, "40005-40006", None).unwrap();
        sim.run_until(5 * S);
        assert_eq!(
            sim.take_log(),
            [
                // Polled alone at first: no read of that cycle succeeded.
                (3 * S, "failing 40005-40006 (2): exception 0x02".to_string()),
                (3 * S, "offline".to_string()),
                (4 * S, "online".to_string()),
            ]
        );
        assert!(sim.poller.is_connected() && sim.poller.is_online());
        assert_eq!(
            sim.poller.failing().copied().collect::<Vec<_>>(),
            [Read {
                table: Table::HoldingRegisters,
                address: 4,
                quantity: 2
            }]
        );
    }

    #[test]
    fn load_from_a_scripted_timeline() {
        let mut sim = Sim::new(PollerConfig::default(), &["40001-40010"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40010", None).unwrap();
        assert_eq!(sim.poller.load(), Load::default());
        // Replies take 250 ms for three cycles, then 500 ms for two.
        sim.device.faults.delay = Some(Delay::Fixed(250 * MS));
        sim.run_until(2500 * MS);
        let load = sim.poller.load();
        assert_eq!(
            (load.one, load.five, load.fifteen),
            (Some(0.25), Some(0.25), Some(0.25))
        );
        sim.device.faults.delay = Some(Delay::Fixed(500 * MS));
        sim.run_until(4900 * MS);
        let mut want = [0.25f64; 3];
        for _ in 0..2 {
            for (w, minutes) in want.iter_mut().zip([1.0, 5.0, 15.0]) {
                *w += (1.0 / (minutes * 60.0)) * (0.5 - *w);
            }
        }
        let load = sim.poller.load();
        let got = [load.one.unwrap(), load.five.unwrap(), load.fifteen.unwrap()];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        assert!(got[0] > got[1] && got[1] > got[2] && got[2] > 0.25);
        assert_eq!(sim.poller.statistics().cycles, 5);
        // A slow device: 1.5 s replies at a 1 s rate make cycles slip; each counts 1.5.
        sim.device.faults.delay = Some(Delay::Fixed(1500 * MS));
        sim.run_until(60 * S);
        assert!(sim.poller.statistics().slipped > 0);
        let load = sim.poller.load();
        assert!(load.one.unwrap() > 0.5, "{load:?}");
        assert!(load.one > load.five && load.five > load.fifteen);
    }

    #[test]
    fn lost_stream_reconnects() {
        let mut sim = Sim::new(PollerConfig::default(), &["40001-40010"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001", None).unwrap();
        sim.run_until(Duration::ZERO);
        sim.take_log();
        sim.device.faults.corrupt = Some(crate::modbus::device::Corruption::ProtocolId);
        sim.run_until(S);
        let log: Vec<String> = sim.take_log().into_iter().map(|(_, l)| l).collect();
        assert!(
            log[0].starts_with("disconnect: invalid mbap.protocol_id"),
            "{log:?}"
        );
        assert_eq!(
            log[1..],
            [
                "failing 40001-40001 (1): disconnected",
                "offline",
                "reconnecting in 1.000s"
            ]
        );
    }

    #[test]
    fn reads_failed_by_a_lost_connection_are_reported_in_the_order_sent() {
        // Regression (found by the deterministic simulation): the reads in flight were
        // kept in a hash map, so the `failing ... disconnected` lines came out in an
        // order that changed from run to run, and so did everything after them.
        let config = PollerConfig {
            client: ClientConfig {
                depth: 8,
                ..ClientConfig::default()
            },
            ..PollerConfig::default()
        };
        let specs = ["1-16", "10001-10016", "30001-30016", "40001-40300"];
        let mut sim = Sim::new(config, &specs);
        let t0 = sim.t0;
        for range in [
            "40001-40010",
            "1-16",
            "10001-10008",
            "30001-30016",
            "40200-40300",
        ] {
            sim.poller.poll(t0, range, None).unwrap();
        }
        // Connect, but the device never answers: every read stays in flight.
        sim.poller.poll_event();
        sim.poller.handle_connected(t0);
        let mut up = Vec::new();
        while sim.poller.poll_transmit(t0, &mut up) {}
        sim.poller.handle_disconnected(t0);
        let log: Vec<String> = std::iter::from_fn(|| sim.poller.poll_event())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            log,
            [
                "failing 1-16 (16): disconnected",
                "failing 10001-10008 (8): disconnected",
                "failing 30001-30016 (16): disconnected",
                "failing 40001-40010 (10): disconnected",
                "failing 40200-40300 (101): disconnected",
                "reconnecting in 1.000s"
            ]
        );
    }

    #[test]
    fn polls_over_rtu_over_tcp_one_request_at_a_time() {
        let config = PollerConfig {
            transport: Transport::RtuOverTcp,
            client: ClientConfig {
                depth: 8,
                ..ClientConfig::default()
            },
            ..PollerConfig::default()
        };
        let mut sim = Sim::new(config, &["40001-40300=5", "1-10=1"]);
        let t0 = sim.t0;
        sim.poller.poll(t0, "40001-40300", None).unwrap();
        sim.poller.poll(t0, "1-10", None).unwrap();
        sim.run_until(Duration::ZERO);
        assert_eq!(
            sim.sent.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            [
                Request::ReadCoils {
                    address: 0,
                    quantity: 10
                },
                hr(0, 125),
                hr(125, 125),
                hr(250, 50)
            ]
        );
        assert_eq!(sim.poller.read_modicon(40300), Some(5));
        assert_eq!(sim.poller.read_modicon(10), Some(1));
        sim.poller.write_spec(sim.now, "40300=6").unwrap();
        sim.run_until(S);
        assert_eq!(
            sim.log.last().map(|(_, l)| l.as_str()),
            Some("40300 == 6 (was: 5)")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_reply_bytes_never_panic_the_poller(
            replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..12),
            rtu in any::<bool>(),
        ) {
            let config = PollerConfig {
                transport: if rtu { Transport::RtuOverTcp } else { Transport::Tcp },
                ..PollerConfig::default()
            };
            let t0 = Instant::now();
            let mut poller = Poller::new(config);
            poller.poll(t0, "40001-40010", None).unwrap();
            poller.poll(t0, "1-20", None).unwrap();
            poller.write_spec(t0, "40001=1").unwrap();
            let mut now = t0;
            let mut out = Vec::new();
            for reply in &replies {
                while let Some(e) = poller.poll_event() {
                    if e == PollEvent::Connect {
                        poller.handle_connected(now);
                    }
                }
                while poller.poll_transmit(now, &mut out) {}
                poller.handle_input(now, reply);
                now += 700 * MS;
                poller.handle_timeout(now);
            }
            // Whatever happened, the poller waits on a deadline or for a connection.
            while let Some(e) = poller.poll_event() {
                if e == PollEvent::Connect {
                    poller.handle_connected(now);
                }
            }
            while poller.poll_transmit(now, &mut out) {}
            prop_assert!(poller.poll_timeout().is_some());
        }
    }

    #[test]
    fn broadcast_writes_finish_when_sent_and_broadcast_reads_fail() {
        let config = PollerConfig {
            transport: Transport::RtuOverTcp,
            unit: 0,
            ..PollerConfig::default()
        };
        let mut sim = Sim::new(config, &["40001-40010=1"]);
        let t0 = sim.t0;
        sim.poller.write_spec(t0, "40002=5").unwrap();
        sim.poller.poll(t0, "40001-40002", None).unwrap();
        sim.run_until(Duration::ZERO);
        let log: Vec<String> = sim.take_log().into_iter().map(|(_, l)| l).collect();
        assert_eq!(
            log,
            [
                "connect",
                "wrote 40002 (1)",
                "failing 40001-40002 (2): invalid reply: unit 0 is a broadcast: no reply to a read",
            ]
        );
        assert_eq!(
            sim.device
                .unit(1)
                .unwrap()
                .read(Table::HoldingRegisters, 1, 1),
            Some(vec![5])
        );
    }
}
