//! The simulated Modbus device: units with their four data tables, and the execution of
//! every request the codec in [`super::pdu`] decodes, with exceptions exactly as the
//! *MODBUS Application Protocol Specification* V1.1b3 prescribes.
//!
//! A [`Device`] is shared state: one per simulated device, passed by `&mut` to every
//! connection's [`super::server::ServerConn`]. It holds
//!
//! - the units it answers: any unit id with one set of tables (cpppo's `modbus_sim`
//!   default), a listed set of unit ids sharing one set (cpppo's `slaves` option), or
//!   units with tables of their own ([`Device::add_unit`]);
//! - per set of tables, a [`UnitData`]: coils, discrete inputs, input and holding
//!   registers, each a [`SparseTable`] where only the configured ranges exist, built
//!   from cpppo register specs (`40001-40100=99`, `40001=1,2,3`, `1-16=1`, see
//!   [`super::numbering`]);
//! - the identification it reports (*Report Server ID*, *Read Device Identification*);
//! - the [`Faults`] to inject, changeable while serving, and the seeded generator they
//!   draw from.
//!
//! Exceptions, in the specification's order of checks (section 6, each function's
//! state diagram): an unknown function code is 0x01 *Illegal Function*, a quantity
//! outside the function's limits or a byte count that disagrees with it is 0x03
//! *Illegal Data Value* (both found by [`Request::decode`]), and a range that is not
//! wholly inside one configured range of the table is 0x02 *Illegal Data Address*,
//! checked to the exact bit for coils and discrete inputs.
//!
//! ```
//! use cpppo_core::modbus::device::Device;
//! use cpppo_core::modbus::pdu::{Request, Response, Registers};
//!
//! let mut dev = Device::from_specs(["40001-40010=99"]).unwrap();
//! let mut writes = Vec::new();
//! let read = Request::ReadHoldingRegisters { address: 8, quantity: 2 };
//! assert_eq!(
//!     dev.serve(1, &read, &mut writes),
//!     Some(Response::ReadHoldingRegisters(Registers::from_values(&[99, 99])))
//! );
//! // One register past the end of the table: Illegal Data Address.
//! let past = Request::ReadHoldingRegisters { address: 9, quantity: 2 };
//! assert_eq!(dev.serve(1, &past, &mut writes).unwrap().function(), 0x83);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::numbering::{parse_specs, RegisterSpec, SpecError, Table};
use super::pdu::{
    Bits, DeviceObject, Exception, ExceptionCode, Registers, Request, Response,
    DIAGNOSTICS_RETURN_QUERY_DATA, MAX_PDU_LEN, READ_DEVICE_ID_BASIC, READ_DEVICE_ID_EXTENDED,
    READ_DEVICE_ID_REGULAR, READ_DEVICE_ID_SPECIFIC,
};
use super::server::Transport;
use crate::rng::SplitMix64;

/// *Read Device Identification* object ids of the basic category (section 6.21).
pub mod object {
    /// VendorName (basic, mandatory).
    pub const VENDOR_NAME: u8 = 0x00;
    /// ProductCode (basic, mandatory).
    pub const PRODUCT_CODE: u8 = 0x01;
    /// MajorMinorRevision (basic, mandatory).
    pub const MAJOR_MINOR_REVISION: u8 = 0x02;
    /// VendorUrl (regular, optional).
    pub const VENDOR_URL: u8 = 0x03;
    /// ProductName (regular, optional).
    pub const PRODUCT_NAME: u8 = 0x04;
    /// ModelName (regular, optional).
    pub const MODEL_NAME: u8 = 0x05;
    /// UserApplicationName (regular, optional).
    pub const USER_APPLICATION_NAME: u8 = 0x06;
    /// Last object id of the basic category.
    pub const LAST_BASIC: u8 = 0x02;
    /// Last object id of the regular category; extended objects follow (0x80-0xFF).
    pub const LAST_REGULAR: u8 = 0x7F;
}

/// Conformity level bit: the device also answers individual access (code 04).
pub const CONFORMITY_INDIVIDUAL_ACCESS: u8 = 0x80;
/// The server id *Report Server ID* gives by default. One byte, since clients
/// (libmodbus's unit tests among them) read the run indicator right after it.
pub const DEFAULT_SERVER_ID: u8 = 0x01;
/// Run indicator status of *Report Server ID*: ON.
pub const RUN_INDICATOR_ON: u8 = 0xFF;
/// Run indicator status of *Report Server ID*: OFF.
pub const RUN_INDICATOR_OFF: u8 = 0x00;
/// Bytes of a *Read Device Identification* response before its objects: function
/// code, MEI type, code, conformity level, more follows, next object id, count.
const DEVICE_ID_HEADER_LEN: usize = 7;
/// Longest object value that fits a response on its own.
pub const MAX_DEVICE_OBJECT_LEN: usize = MAX_PDU_LEN - DEVICE_ID_HEADER_LEN - 2;

/// A table where only configured ranges exist: runs of consecutive addresses, kept
/// sorted, merged when they touch, so any request range that exists lies in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseTable<T> {
    runs: Vec<Run<T>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Run<T> {
    start: u16,
    values: Vec<T>,
}

impl<T> Run<T> {
    /// One past the last address, as u32 (a run may end at 65535).
    fn end(&self) -> u32 {
        u32::from(self.start) + self.values.len() as u32
    }
}

impl<T: Copy> SparseTable<T> {
    /// An empty table: every address is illegal.
    pub fn new() -> Self {
        SparseTable { runs: Vec::new() }
    }

    /// Define (or redefine) `values` from `address` on; values past address 65535 are
    /// dropped. Later definitions override earlier ones where they overlap.
    pub fn define(&mut self, address: u16, values: &[T]) {
        let room = 0x1_0000 - usize::from(address);
        let values = values.get(..room).unwrap_or(values);
        if values.is_empty() {
            return;
        }
        let mut all: BTreeMap<u16, T> = BTreeMap::new();
        for run in &self.runs {
            for (a, v) in (run.start..=u16::MAX).zip(run.values.iter()) {
                all.insert(a, *v);
            }
        }
        for (a, v) in (address..=u16::MAX).zip(values.iter()) {
            all.insert(a, *v);
        }
        let mut runs: Vec<Run<T>> = Vec::new();
        for (a, v) in all {
            match runs.last_mut() {
                Some(run) if run.end() == u32::from(a) => run.values.push(v),
                _ => runs.push(Run {
                    start: a,
                    values: vec![v],
                }),
            }
        }
        self.runs = runs;
    }

    /// The run holding `address..address + quantity` entirely, and the offset in it.
    fn locate(&self, address: u16, quantity: u16) -> Option<(usize, usize)> {
        let end = u32::from(address) + u32::from(quantity);
        // The last run starting at or before `address`.
        let i = self
            .runs
            .partition_point(|r| r.start <= address)
            .checked_sub(1)?;
        let run = self.runs.get(i)?;
        if quantity == 0 || end > run.end() {
            return None;
        }
        // checked: runs deserialized from elsewhere need not be in order.
        Some((i, usize::from(address.checked_sub(run.start)?)))
    }

    /// The values at `address..address + quantity`, if every one of them exists.
    pub fn range(&self, address: u16, quantity: u16) -> Option<&[T]> {
        let (i, at) = self.locate(address, quantity)?;
        self.runs
            .get(i)?
            .values
            .get(at..at.checked_add(usize::from(quantity))?)
    }

    /// The values at `address..address + quantity` to change, if every one exists.
    pub fn range_mut(&mut self, address: u16, quantity: u16) -> Option<&mut [T]> {
        let (i, at) = self.locate(address, quantity)?;
        self.runs
            .get_mut(i)?
            .values
            .get_mut(at..at.checked_add(usize::from(quantity))?)
    }

    /// The value at `address`, if it exists.
    pub fn get(&self, address: u16) -> Option<T> {
        self.range(address, 1).and_then(|v| v.first().copied())
    }

    /// Set `address` to `value`; false (and nothing changes) if it does not exist.
    pub fn set(&mut self, address: u16, value: T) -> bool {
        match self.range_mut(address, 1).and_then(|v| v.first_mut()) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// How many addresses exist.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.values.len()).sum()
    }

    /// True when no address exists.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The configured ranges: (first address, values), in address order.
    pub fn ranges(&self) -> impl Iterator<Item = (u16, &[T])> {
        self.runs.iter().map(|r| (r.start, r.values.as_slice()))
    }
}

/// The four data tables of one unit (or of several units sharing them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitData {
    /// Coils (0xxxx): read and written as bits.
    pub coils: SparseTable<bool>,
    /// Discrete inputs (1xxxx): read-only bits.
    pub discrete_inputs: SparseTable<bool>,
    /// Input registers (3xxxx): read-only.
    pub input_registers: SparseTable<u16>,
    /// Holding registers (4xxxx): read and written.
    pub holding_registers: SparseTable<u16>,
    /// The eight exception status outputs *Read Exception Status* (0x07) returns.
    pub exception_status: u8,
}

impl UnitData {
    /// Empty tables: every address is illegal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tables from parsed register specs, in order (later ones override).
    pub fn from_specs<'a>(specs: impl IntoIterator<Item = &'a RegisterSpec>) -> Self {
        let mut data = Self::new();
        for spec in specs {
            data.define(spec);
        }
        data
    }

    /// Tables from cpppo register spec strings (`40001-40100=99`, `1-16=1`).
    pub fn parse<'s>(specs: impl IntoIterator<Item = &'s str>) -> Result<Self, SpecError> {
        Ok(Self::from_specs(&parse_specs(specs)?))
    }

    /// Add (or redefine) the registers of one spec; non-zero is ON for bit tables.
    pub fn define(&mut self, spec: &RegisterSpec) {
        match spec.table {
            Table::Coils => self.coils.define(spec.address, &bits(&spec.values)),
            Table::DiscreteInputs => self
                .discrete_inputs
                .define(spec.address, &bits(&spec.values)),
            Table::InputRegisters => self.input_registers.define(spec.address, &spec.values),
            Table::HoldingRegisters => self.holding_registers.define(spec.address, &spec.values),
        }
    }

    /// The values at `address..address + quantity` of `table` as numbers (bits are
    /// 0 or 1), if every one exists.
    pub fn read(&self, table: Table, address: u16, quantity: u16) -> Option<Vec<u16>> {
        match table {
            Table::Coils => self
                .coils
                .range(address, quantity)
                .map(|v| v.iter().map(|b| u16::from(*b)).collect()),
            Table::DiscreteInputs => self
                .discrete_inputs
                .range(address, quantity)
                .map(|v| v.iter().map(|b| u16::from(*b)).collect()),
            Table::InputRegisters => self
                .input_registers
                .range(address, quantity)
                .map(<[_]>::to_vec),
            Table::HoldingRegisters => self
                .holding_registers
                .range(address, quantity)
                .map(<[_]>::to_vec),
        }
    }

    /// Store `values` (bits: non-zero is ON) at `address..` of `table`, if every
    /// address exists; false (and nothing changes) otherwise. For a simulation or an
    /// operator changing inputs; no [`Write`] event is made.
    pub fn write(&mut self, table: Table, address: u16, values: &[u16]) -> bool {
        let Ok(quantity) = u16::try_from(values.len()) else {
            return false;
        };
        fn store<T>(slots: Option<&mut [T]>, values: &[u16], f: impl Fn(u16) -> T) -> bool {
            match slots {
                Some(slots) => {
                    for (slot, v) in slots.iter_mut().zip(values) {
                        *slot = f(*v);
                    }
                    true
                }
                None => false,
            }
        }
        match table {
            Table::Coils => store(self.coils.range_mut(address, quantity), values, |v| v != 0),
            Table::DiscreteInputs => store(
                self.discrete_inputs.range_mut(address, quantity),
                values,
                |v| v != 0,
            ),
            Table::InputRegisters => store(
                self.input_registers.range_mut(address, quantity),
                values,
                |v| v,
            ),
            Table::HoldingRegisters => store(
                self.holding_registers.range_mut(address, quantity),
                values,
                |v| v,
            ),
        }
    }
}

fn bits(values: &[u16]) -> Vec<bool> {
    values.iter().map(|v| *v != 0).collect()
}

/// A write a request made, for a history or hook to observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// The unit id addressed (0 for a serial-line broadcast, applied to every unit).
    pub unit: u8,
    /// The table written.
    pub table: Table,
    /// Zero-based address of the first value.
    pub address: u16,
    /// The values now stored (coils: 0 or 1).
    pub values: Vec<u16>,
}

/// What the device answers for a unit id it does not serve, over Modbus/TCP.
///
/// On a serial line (and RTU over TCP) a request for another unit is never answered:
/// on a multi-drop line it is some other device's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnknownUnit {
    /// No reply at all (pymodbus's `ignore_missing_slaves`).
    Ignore,
    /// An exception reply with this code, as a gateway does (pymodbus's default is
    /// 0x0B *Gateway Target Device Failed to Respond*).
    Exception(ExceptionCode),
}

impl Default for UnknownUnit {
    fn default() -> Self {
        UnknownUnit::Exception(ExceptionCode::GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND)
    }
}

/// What the device says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// *Report Server ID* (0x11): the device-specific server id bytes.
    pub server_id: Vec<u8>,
    /// *Report Server ID*: the run indicator (ON 0xFF, OFF 0x00).
    pub running: bool,
    /// *Report Server ID*: additional device-specific data after the run indicator.
    pub additional: Vec<u8>,
    /// *Read Device Identification* (0x2B/0x0E) objects by id; values longer than
    /// [`MAX_DEVICE_OBJECT_LEN`] are cut to it when served.
    pub objects: BTreeMap<u8, Vec<u8>>,
}

impl Default for Identity {
    fn default() -> Self {
        let objects = [
            (object::VENDOR_NAME, &b"cpppo-rs"[..]),
            (object::PRODUCT_CODE, b"modbus_sim"),
            (
                object::MAJOR_MINOR_REVISION,
                env!("CARGO_PKG_VERSION").as_bytes(),
            ),
        ]
        .into_iter()
        .map(|(id, v)| (id, v.to_vec()))
        .collect();
        Identity {
            server_id: vec![DEFAULT_SERVER_ID],
            running: true,
            additional: concat!("cpppo-rs ", env!("CARGO_PKG_VERSION"))
                .as_bytes()
                .to_vec(),
            objects,
        }
    }
}

/// How long a reply is held before it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delay {
    /// Always this long (cpppo `--evil delay:2.5`).
    Fixed(Duration),
    /// Uniformly between the two, inclusive (cpppo `--evil delay:.01-.1`).
    Range(Duration, Duration),
}

impl Delay {
    /// cpppo's default when `--evil delay` gives no number: 5 seconds.
    pub const CPPPO_DEFAULT: Delay = Delay::Fixed(Duration::from_secs(5));

    /// One delay, drawn from `rng` for a range.
    pub fn sample(&self, rng: &mut SplitMix64) -> Duration {
        match *self {
            Delay::Fixed(d) => d,
            Delay::Range(a, b) => {
                let (lo, hi) = (a.min(b), a.max(b));
                let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                lo.saturating_add(Duration::from_nanos(
                    rng.between(0, nanos(hi).saturating_sub(nanos(lo))),
                ))
            }
        }
    }
}

/// Which part of a reply to corrupt, as cpppo's `--evil corrupt:<what>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Corruption {
    /// The MBAP transaction id, all 16 bits flipped (Modbus/TCP only).
    TransactionId,
    /// The MBAP protocol id, all 16 bits flipped (Modbus/TCP only).
    ProtocolId,
    /// The unit id, all 8 bits flipped.
    UnitId,
    /// The function code, all 8 bits flipped.
    Function,
    /// The amount of response data: a register read's reply gains a register (999)
    /// or loses its last one, at random (always gains one when empty); a register
    /// write's echo has its address bits flipped. Other replies are unchanged.
    Registers,
}

/// The value a [`Corruption::Registers`] fault adds to a register read's reply.
pub const CORRUPT_EXTRA_REGISTER: u16 = 999;

/// Faults to inject into replies, as cpppo's `modbus_sim --evil` offers; they may be
/// changed at any time and apply to requests arriving after the change. All may be
/// combined: the reply is computed (state changes happen), corrupted, truncated, then
/// held for the delay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Hold each reply this long after its request arrived (replies stay in order).
    pub delay: Option<Delay>,
    /// Send only part of each reply: from 0 to all but one of its bytes, at random.
    pub truncate: bool,
    /// Corrupt each reply so.
    pub corrupt: Option<Corruption>,
}

/// Why a cpppo `--evil` option could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized --evil option {0:?}: expected truncate, delay[:S[-S]] or corrupt[:transaction|protocol|unit|function|registers]")]
pub struct EvilError(pub String);

impl std::str::FromStr for Faults {
    type Err = EvilError;

    /// Parse cpppo `modbus_sim`'s `--evil` option: `truncate`, `delay` (5 s),
    /// `delay:2.5`, `delay:.01-.1` (seconds), `corrupt` (the transaction id) or
    /// `corrupt:transaction|protocol|unit|function|registers`.
    fn from_str(text: &str) -> Result<Faults, EvilError> {
        let bad = || EvilError(text.to_string());
        let (what, arg) = match text.split_once(':') {
            Some((w, a)) => (w, Some(a)),
            None => (text, None),
        };
        let seconds = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .and_then(|v| Duration::try_from_secs_f64(v).ok())
                .ok_or_else(bad)
        };
        let mut faults = Faults::default();
        match (what, arg) {
            ("truncate", None) => faults.truncate = true,
            ("delay", None) => faults.delay = Some(Delay::CPPPO_DEFAULT),
            ("delay", Some(a)) => {
                faults.delay = Some(match a.split_once('-') {
                    Some((lo, hi)) => Delay::Range(seconds(lo)?, seconds(hi)?),
                    None => Delay::Fixed(seconds(a)?),
                })
            }
            ("corrupt", arg) => {
                faults.corrupt = Some(match arg.unwrap_or("transaction") {
                    "transaction" => Corruption::TransactionId,
                    "protocol" => Corruption::ProtocolId,
                    "unit" => Corruption::UnitId,
                    "function" => Corruption::Function,
                    "registers" => Corruption::Registers,
                    _ => return Err(bad()),
                })
            }
            _ => return Err(bad()),
        }
        Ok(faults)
    }
}

/// The seed a new device's fault generator starts from.
pub const DEFAULT_SEED: u64 = 0x6370_7070_6f2d_7273; // "cpppo-rs"

/// A simulated Modbus device: units, their tables, identity and faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    stores: Vec<UnitData>,
    any_unit: Option<usize>,
    units: BTreeMap<u8, usize>,
    /// What [`Device::identity`] reports.
    pub identity: Identity,
    /// Faults to inject, changeable while serving.
    pub faults: Faults,
    /// The answer, over Modbus/TCP, for a unit id not served.
    pub unknown_unit: UnknownUnit,
    /// How connections accepted through [`crate::engine::Server`] frame requests.
    pub transport: Transport,
    /// Refuse new connections (they are closed at once); served ones go on.
    pub disabled: bool,
    /// Stop serving: the runtime closes its listeners and connections (cpppo's
    /// `done`).
    pub done: bool,
    /// The limits each connection is held to (pending replies, half-received frames,
    /// request rate), read at each input.
    pub limits: crate::limits::ConnectionLimits,
    /// How many times each limit was hit, on every connection so far.
    pub limits_reached: crate::limits::LimitCounts,
    rng: SplitMix64,
}

impl Device {
    /// A device answering every unit id with `data` (cpppo's default).
    pub fn new(data: UnitData) -> Self {
        Device {
            stores: vec![data],
            any_unit: Some(0),
            units: BTreeMap::new(),
            identity: Identity::default(),
            faults: Faults::default(),
            unknown_unit: UnknownUnit::default(),
            transport: Transport::Tcp,
            disabled: false,
            done: false,
            limits: crate::limits::ConnectionLimits::default(),
            limits_reached: crate::limits::LimitCounts::default(),
            rng: SplitMix64::new(DEFAULT_SEED),
        }
    }

    /// A device answering every unit id, with tables from cpppo register specs.
    pub fn from_specs<'s>(specs: impl IntoIterator<Item = &'s str>) -> Result<Self, SpecError> {
        Ok(Self::new(UnitData::parse(specs)?))
    }

    /// A device answering only `units`, all sharing `data` (cpppo's `slaves` list).
    pub fn with_units(units: impl IntoIterator<Item = u8>, data: UnitData) -> Self {
        let mut dev = Self::new(data);
        dev.any_unit = None;
        dev.units = units.into_iter().map(|u| (u, 0)).collect();
        dev
    }

    /// Serve `unit` from tables of its own (replacing how it was served before).
    pub fn add_unit(&mut self, unit: u8, data: UnitData) {
        self.stores.push(data);
        self.units.insert(unit, self.stores.len() - 1);
    }

    /// Stop answering unit ids that were not named (only those listed by
    /// [`Device::with_units`] or [`Device::add_unit`] remain).
    pub fn only_listed_units(&mut self) {
        self.any_unit = None;
    }

    /// Restart the fault generator from `seed` (for reproducible runs).
    pub fn seed(&mut self, seed: u64) {
        self.rng = SplitMix64::new(seed);
    }

    /// The fault generator (the server engine draws delays and truncations from it).
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    fn store_index(&self, unit: u8) -> Option<usize> {
        self.units.get(&unit).copied().or(self.any_unit)
    }

    /// True when `unit` is served.
    pub fn serves(&self, unit: u8) -> bool {
        self.store_index(unit).is_some()
    }

    /// The tables serving `unit`.
    pub fn unit(&self, unit: u8) -> Option<&UnitData> {
        self.stores.get(self.store_index(unit)?)
    }

    /// The tables serving `unit`, to change (e.g. from a web API or a simulation).
    pub fn unit_mut(&mut self, unit: u8) -> Option<&mut UnitData> {
        let i = self.store_index(unit)?;
        self.stores.get_mut(i)
    }

    /// Execute `request` addressed to `unit`: the reply (an exception is a reply), or
    /// `None` when `unit` is not served. Writes are applied at once and reported in
    /// `writes`.
    pub fn serve(
        &mut self,
        unit: u8,
        request: &Request<'_>,
        writes: &mut Vec<Write>,
    ) -> Option<Response<'static>> {
        let mut scratch = Vec::new();
        self.serve_in(unit, request, writes, &mut scratch)
            .map(Response::into_owned)
    }

    /// [`Device::serve`], with the values a register read answers written into
    /// `scratch` (cleared first), which the reply borrows: a server that reuses
    /// `scratch` answers reads without allocating in steady state.
    pub fn serve_in<'s>(
        &mut self,
        unit: u8,
        request: &Request<'_>,
        writes: &mut Vec<Write>,
        scratch: &'s mut Vec<u8>,
    ) -> Option<Response<'s>> {
        let i = self.store_index(unit)?;
        let store = self.stores.get_mut(i)?;
        Some(
            execute(store, &self.identity, unit, request, writes, scratch)
                .unwrap_or_else(|code| exception(request.function(), code)),
        )
    }

    /// Execute a serial-line broadcast (unit 0): applied to every set of tables once,
    /// never answered. Writes are reported once, with unit 0.
    pub fn broadcast(&mut self, request: &Request<'_>, writes: &mut Vec<Write>) {
        let mut first = true;
        for store in &mut self.stores {
            let mut sink = Vec::new();
            let _ = execute(
                store,
                &self.identity,
                0,
                request,
                &mut sink,
                &mut Vec::new(),
            );
            if first {
                writes.append(&mut sink);
                first = false;
            }
        }
    }
}

fn exception(function: u8, code: ExceptionCode) -> Response<'static> {
    Response::Exception(Exception { function, code })
}

const ADDRESS: ExceptionCode = ExceptionCode::ILLEGAL_DATA_ADDRESS;

/// Execute one request on one unit's tables; `Err` is the exception to answer.
fn execute<'s>(
    store: &mut UnitData,
    identity: &Identity,
    unit: u8,
    request: &Request<'_>,
    writes: &mut Vec<Write>,
    scratch: &'s mut Vec<u8>,
) -> Result<Response<'s>, ExceptionCode> {
    let mut wrote = |table, address, values| {
        writes.push(Write {
            unit,
            table,
            address,
            values,
        })
    };
    Ok(match request {
        Request::ReadCoils { address, quantity } => Response::ReadCoils(Bits::from_bools(
            store.coils.range(*address, *quantity).ok_or(ADDRESS)?,
        )),
        Request::ReadDiscreteInputs { address, quantity } => {
            Response::ReadDiscreteInputs(Bits::from_bools(
                store
                    .discrete_inputs
                    .range(*address, *quantity)
                    .ok_or(ADDRESS)?,
            ))
        }
        Request::ReadHoldingRegisters { address, quantity } => {
            Response::ReadHoldingRegisters(Registers::from_values_in(
                store
                    .holding_registers
                    .range(*address, *quantity)
                    .ok_or(ADDRESS)?,
                scratch,
            ))
        }
        Request::ReadInputRegisters { address, quantity } => {
            Response::ReadInputRegisters(Registers::from_values_in(
                store
                    .input_registers
                    .range(*address, *quantity)
                    .ok_or(ADDRESS)?,
                scratch,
            ))
        }
        Request::WriteSingleCoil { address, value } => {
            if !store.coils.set(*address, *value) {
                return Err(ADDRESS);
            }
            wrote(Table::Coils, *address, vec![u16::from(*value)]);
            Response::WriteSingleCoil {
                address: *address,
                value: *value,
            }
        }
        Request::WriteSingleRegister { address, value } => {
            if !store.holding_registers.set(*address, *value) {
                return Err(ADDRESS);
            }
            wrote(Table::HoldingRegisters, *address, vec![*value]);
            Response::WriteSingleRegister {
                address: *address,
                value: *value,
            }
        }
        Request::ReadExceptionStatus => Response::ReadExceptionStatus(store.exception_status),
        Request::Diagnostics { sub_function, data } => {
            // Only Return Query Data is implemented; the spec answers any other
            // sub-function a server lacks with Illegal Function.
            if *sub_function != DIAGNOSTICS_RETURN_QUERY_DATA {
                return Err(ExceptionCode::ILLEGAL_FUNCTION);
            }
            Response::Diagnostics {
                sub_function: *sub_function,
                data: std::borrow::Cow::Owned(data.to_vec()),
            }
        }
        Request::WriteMultipleCoils { address, values } => {
            let quantity = values.quantity();
            let slots = store.coils.range_mut(*address, quantity).ok_or(ADDRESS)?;
            for (slot, v) in slots.iter_mut().zip(values.iter()) {
                *slot = v;
            }
            wrote(
                Table::Coils,
                *address,
                values.iter().map(u16::from).collect(),
            );
            Response::WriteMultipleCoils {
                address: *address,
                quantity,
            }
        }
        Request::WriteMultipleRegisters { address, values } => {
            let quantity =
                u16::try_from(values.len()).map_err(|_| ExceptionCode::ILLEGAL_DATA_VALUE)?;
            let slots = store
                .holding_registers
                .range_mut(*address, quantity)
                .ok_or(ADDRESS)?;
            for (slot, v) in slots.iter_mut().zip(values.iter()) {
                *slot = v;
            }
            wrote(Table::HoldingRegisters, *address, values.to_vec());
            Response::WriteMultipleRegisters {
                address: *address,
                quantity,
            }
        }
        Request::ReportServerId => {
            let mut data = identity.server_id.clone();
            data.push(if identity.running {
                RUN_INDICATOR_ON
            } else {
                RUN_INDICATOR_OFF
            });
            data.extend_from_slice(&identity.additional);
            // Function code and byte count leave 251 bytes.
            data.truncate(MAX_PDU_LEN - 2);
            Response::ReportServerId(data.into())
        }
        Request::MaskWriteRegister {
            address,
            and_mask,
            or_mask,
        } => {
            let slot = store
                .holding_registers
                .range_mut(*address, 1)
                .and_then(|s| s.first_mut())
                .ok_or(ADDRESS)?;
            // Section 6.16: Result = (Current AND And_Mask) OR (Or_Mask AND (NOT And_Mask)).
            *slot = (*slot & and_mask) | (or_mask & !and_mask);
            let now = *slot;
            wrote(Table::HoldingRegisters, *address, vec![now]);
            Response::MaskWriteRegister {
                address: *address,
                and_mask: *and_mask,
                or_mask: *or_mask,
            }
        }
        Request::ReadWriteMultipleRegisters {
            read_address,
            read_quantity,
            write_address,
            values,
        } => {
            let write_quantity =
                u16::try_from(values.len()).map_err(|_| ExceptionCode::ILLEGAL_DATA_VALUE)?;
            // Both ranges are checked before anything is written; the write happens
            // before the read (section 6.17).
            store
                .holding_registers
                .range(*read_address, *read_quantity)
                .ok_or(ADDRESS)?;
            let slots = store
                .holding_registers
                .range_mut(*write_address, write_quantity)
                .ok_or(ADDRESS)?;
            for (slot, v) in slots.iter_mut().zip(values.iter()) {
                *slot = v;
            }
            wrote(Table::HoldingRegisters, *write_address, values.to_vec());
            Response::ReadWriteMultipleRegisters(Registers::from_values_in(
                store
                    .holding_registers
                    .range(*read_address, *read_quantity)
                    .ok_or(ADDRESS)?,
                scratch,
            ))
        }
        Request::ReadDeviceIdentification {
            read_device_id_code,
            object_id,
        } => device_identification(identity, *read_device_id_code, *object_id)?,
    })
}

/// Section 6.21: stream access returns the objects of the category asked and those
/// below it, from `object_id` (or from the first object when `object_id` is not one
/// of them), as many as fit one PDU; individual access returns one object or 0x02.
fn device_identification(
    identity: &Identity,
    code: u8,
    object_id: u8,
) -> Result<Response<'static>, ExceptionCode> {
    let objects = &identity.objects;
    let highest = objects.keys().next_back().copied().unwrap_or(0);
    let category = if highest > object::LAST_REGULAR {
        READ_DEVICE_ID_EXTENDED
    } else if highest > object::LAST_BASIC {
        READ_DEVICE_ID_REGULAR
    } else {
        READ_DEVICE_ID_BASIC
    };
    let conformity_level = CONFORMITY_INDIVIDUAL_ACCESS | category;
    let value = |v: &Vec<u8>| v.get(..MAX_DEVICE_OBJECT_LEN).unwrap_or(v).to_vec();
    if code == READ_DEVICE_ID_SPECIFIC {
        let v = objects.get(&object_id).ok_or(ADDRESS)?;
        return Ok(Response::ReadDeviceIdentification {
            read_device_id_code: code,
            conformity_level,
            more_follows: false,
            next_object_id: 0,
            objects: vec![DeviceObject {
                id: object_id,
                value: value(v).into(),
            }],
        });
    }
    let last = match code {
        READ_DEVICE_ID_BASIC => object::LAST_BASIC,
        READ_DEVICE_ID_REGULAR => object::LAST_REGULAR,
        _ => u8::MAX,
    };
    let start = if object_id <= last && objects.contains_key(&object_id) {
        object_id
    } else {
        0
    };
    let mut len = DEVICE_ID_HEADER_LEN;
    let mut out = Vec::new();
    let mut next = None;
    for (id, v) in objects.range(start..=last) {
        let v = value(v);
        if len + 2 + v.len() > MAX_PDU_LEN {
            next = Some(*id);
            break;
        }
        len += 2 + v.len();
        out.push(DeviceObject {
            id: *id,
            value: v.into(),
        });
    }
    Ok(Response::ReadDeviceIdentification {
        read_device_id_code: code,
        conformity_level,
        more_follows: next.is_some(),
        next_object_id: next.unwrap_or(0),
        objects: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Encode;

    /// Decode `request` (a PDU), serve it on `unit`, return the reply PDU's bytes.
    fn serve(dev: &mut Device, unit: u8, request: &[u8]) -> Vec<u8> {
        serve_w(dev, unit, request).0
    }

    fn serve_w(dev: &mut Device, unit: u8, request: &[u8]) -> (Vec<u8>, Vec<Write>) {
        let req = Request::decode(request).unwrap();
        let mut writes = Vec::new();
        let reply = dev.serve(unit, &req, &mut writes).expect("unit served");
        (reply.to_vec(), writes)
    }

    fn device(specs: &[&str]) -> Device {
        Device::from_specs(specs.iter().copied()).unwrap()
    }

    fn packed(bytes: &[u8], quantity: usize) -> Vec<bool> {
        Bits::from_packed(bytes).iter().take(quantity).collect()
    }

    #[test]
    fn sparse_tables_merge_and_override() {
        let mut t = SparseTable::new();
        t.define(10, &[1u16, 2, 3]);
        t.define(20, &[7]);
        assert_eq!(t.ranges().count(), 2);
        t.define(13, &[4, 5, 6, 7, 8, 9, 10]); // fills 13..=19: one run now
        assert_eq!(t.ranges().count(), 1);
        assert_eq!(t.range(10, 11).unwrap(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 7]);
        t.define(11, &[42]);
        assert_eq!(t.get(11), Some(42));
        assert_eq!(t.len(), 11);
        assert_eq!(t.range(9, 1), None);
        assert_eq!(t.range(10, 12), None);
        assert_eq!(t.range(20, 1), Some(&[7][..]));
        assert_eq!(t.range(21, 1), None);
        assert_eq!(t.range(10, 0), None);
        assert!(!t.set(21, 1));
        let mut t = SparseTable::new();
        t.define(u16::MAX - 1, &[1u16, 2, 3]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.range(u16::MAX, 1), Some(&[2][..]));
        assert_eq!(t.range(u16::MAX, 2), None);
        assert!(SparseTable::<u16>::new().range(0, 1).is_none());
        // Runs from a hand-written file may be out of order: wrong answers at worst,
        // never a panic.
        let t: SparseTable<u16> = serde_json::from_str(
            r#"{"runs":[{"start":50,"values":[1,2]},{"start":10,"values":[3]}]}"#,
        )
        .unwrap();
        for a in [0, 10, 11, 49, 50, 51, 52, u16::MAX] {
            let _ = (t.range(a, 1), t.range(a, 3));
        }
    }

    // MODBUS Application Protocol Specification V1.1b3, section 6: each function's
    // request and response example, served from tables holding the example's values.
    #[test]
    fn specification_examples_served() {
        let mut dev = device(&["1-200", "10001-10300", "40001-40200", "30001-30010"]);
        let u = dev.unit_mut(1).unwrap();
        u.coils.define(19, &packed(&[0xCD, 0x6B, 0x05], 19));
        u.discrete_inputs
            .define(196, &packed(&[0xAC, 0xDB, 0x35], 22));
        u.holding_registers.define(107, &[555, 0, 100]);
        u.input_registers.define(8, &[10]);
        u.holding_registers
            .define(3, &[0xFE, 0x0ACD, 0x01, 0x03, 0x0D]);
        u.holding_registers.define(4, &[0x12]);
        u.holding_registers.define(8, &[0xFF]);
        u.exception_status = 0x6D;

        assert_eq!(
            serve(&mut dev, 1, &[0x01, 0x00, 0x13, 0x00, 0x13]),
            [0x01, 0x03, 0xCD, 0x6B, 0x05]
        );
        assert_eq!(
            serve(&mut dev, 1, &[0x02, 0x00, 0xC4, 0x00, 0x16]),
            [0x02, 0x03, 0xAC, 0xDB, 0x35]
        );
        assert_eq!(
            serve(&mut dev, 1, &[0x03, 0x00, 0x6B, 0x00, 0x03]),
            [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]
        );
        assert_eq!(
            serve(&mut dev, 1, &[0x04, 0x00, 0x08, 0x00, 0x01]),
            [0x04, 0x02, 0x00, 0x0A]
        );
        assert_eq!(serve(&mut dev, 1, &[0x07]), [0x07, 0x6D]);
        assert_eq!(
            serve(&mut dev, 1, &[0x08, 0x00, 0x00, 0xA5, 0x37]),
            [0x08, 0x00, 0x00, 0xA5, 0x37]
        );

        // Write Single Coil 173 ON, then read it back.
        let (r, w) = serve_w(&mut dev, 1, &[0x05, 0x00, 0xAC, 0xFF, 0x00]);
        assert_eq!(r, [0x05, 0x00, 0xAC, 0xFF, 0x00]);
        assert_eq!(
            w,
            [Write {
                unit: 1,
                table: Table::Coils,
                address: 172,
                values: vec![1]
            }]
        );
        assert_eq!(
            serve(&mut dev, 1, &[0x01, 0x00, 0xAC, 0x00, 0x01]),
            [0x01, 0x01, 0x01]
        );
        let (r, _) = serve_w(&mut dev, 1, &[0x05, 0x00, 0xAC, 0x00, 0x00]);
        assert_eq!(r, [0x05, 0x00, 0xAC, 0x00, 0x00]);
        assert_eq!(dev.unit(1).unwrap().coils.get(172), Some(false));

        // Write Single Register 2 := 3.
        let (r, w) = serve_w(&mut dev, 1, &[0x06, 0x00, 0x01, 0x00, 0x03]);
        assert_eq!(r, [0x06, 0x00, 0x01, 0x00, 0x03]);
        assert_eq!(w[0].values, [3]);
        assert_eq!(
            serve(&mut dev, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]),
            [0x03, 0x02, 0x00, 0x03]
        );

        // Write Multiple Coils 20-29 := CD 01, read back.
        let (r, w) = serve_w(
            &mut dev,
            1,
            &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01],
        );
        assert_eq!(r, [0x0F, 0x00, 0x13, 0x00, 0x0A]);
        assert_eq!(w[0].values, [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]);
        assert_eq!(
            serve(&mut dev, 1, &[0x01, 0x00, 0x13, 0x00, 0x0A]),
            [0x01, 0x02, 0xCD, 0x01]
        );

        // Write Multiple Registers 2-3 := 000A 0102, read back.
        let (r, w) = serve_w(
            &mut dev,
            1,
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02],
        );
        assert_eq!(r, [0x10, 0x00, 0x01, 0x00, 0x02]);
        assert_eq!(
            w,
            [Write {
                unit: 1,
                table: Table::HoldingRegisters,
                address: 1,
                values: vec![0x0A, 0x0102]
            }]
        );
        assert_eq!(
            serve(&mut dev, 1, &[0x03, 0x00, 0x01, 0x00, 0x02]),
            [0x03, 0x04, 0x00, 0x0A, 0x01, 0x02]
        );

        // Mask Write Register 5: 0x12 AND 0xF2 OR (0x25 AND NOT 0xF2) = 0x17.
        let m = [0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25];
        let (r, w) = serve_w(&mut dev, 1, &m);
        assert_eq!(r, m);
        assert_eq!(w[0].values, [0x17]);
        assert_eq!(dev.unit(1).unwrap().holding_registers.get(4), Some(0x17));

        // Read/Write Multiple Registers: write 15-17 := 00FF x3, read 4-9. The
        // spec's registers 4-9 hold FE, ACD, 1, 3, D, FF... but register 5 is the
        // masked register above (0x17); put the spec's value back first.
        dev.unit_mut(1)
            .unwrap()
            .holding_registers
            .define(4, &[0x0ACD]);
        let (r, w) = serve_w(
            &mut dev,
            1,
            &[
                0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0x00, 0xFF, 0x00, 0xFF,
                0x00, 0xFF,
            ],
        );
        assert_eq!(
            r,
            [0x17, 0x0C, 0x00, 0xFE, 0x0A, 0xCD, 0x00, 0x01, 0x00, 0x03, 0x00, 0x0D, 0x00, 0xFF]
        );
        assert_eq!(w[0].address, 14);
        assert_eq!(
            dev.unit(1).unwrap().holding_registers.range(14, 3).unwrap(),
            [0xFF; 3]
        );
    }

    #[test]
    fn read_write_multiple_writes_before_it_reads() {
        let mut dev = device(&["40001-40010=5"]);
        // Read 1-4, write 3-4 := 7, 8: the read sees the new values.
        let r = serve(&mut dev, 1, &[0x17, 0, 0, 0, 4, 0, 2, 0, 2, 4, 0, 7, 0, 8]);
        assert_eq!(r, [0x17, 8, 0, 5, 0, 5, 0, 7, 0, 8]);
        // A bad read range refuses the whole request: nothing is written.
        let r = serve(&mut dev, 1, &[0x17, 0, 9, 0, 2, 0, 0, 0, 1, 2, 0, 1]);
        assert_eq!(r, [0x97, 0x02]);
        assert_eq!(dev.unit(1).unwrap().holding_registers.get(0), Some(5));
        let r = serve(&mut dev, 1, &[0x17, 0, 0, 0, 1, 0, 9, 0, 2, 4, 0, 1, 0, 1]);
        assert_eq!(r, [0x97, 0x02]);
        assert_eq!(dev.unit(1).unwrap().holding_registers.get(9), Some(5));
    }

    #[test]
    fn illegal_data_address_to_the_exact_bit() {
        let mut dev = device(&["1-16=1", "10001-10008", "40001-40100=99", "30001"]);
        assert_eq!(
            serve(&mut dev, 1, &[0x01, 0, 0, 0, 16]),
            [0x01, 2, 0xFF, 0xFF]
        );
        assert_eq!(serve(&mut dev, 1, &[0x01, 0, 0, 0, 17]), [0x81, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x01, 0, 15, 0, 1]), [0x01, 1, 0x01]);
        assert_eq!(serve(&mut dev, 1, &[0x01, 0, 16, 0, 1]), [0x81, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x02, 0, 0, 0, 8]), [0x02, 1, 0x00]);
        assert_eq!(serve(&mut dev, 1, &[0x02, 0, 1, 0, 8]), [0x82, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0, 99, 0, 1]), [0x03, 2, 0, 99]);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0, 99, 0, 2]), [0x83, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0, 100, 0, 1]), [0x83, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0xFF, 0xFF, 0, 2]), [0x83, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x04, 0, 0, 0, 1]), [0x04, 2, 0, 0]);
        assert_eq!(serve(&mut dev, 1, &[0x04, 0, 0, 0, 2]), [0x84, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x05, 0, 16, 0xFF, 0]), [0x85, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x06, 0, 100, 0, 1]), [0x86, 0x02]);
        assert_eq!(
            serve(&mut dev, 1, &[0x16, 0, 100, 0, 1, 0, 1]),
            [0x96, 0x02]
        );
        assert_eq!(
            serve(&mut dev, 1, &[0x10, 0, 99, 0, 2, 4, 0, 1, 0, 2]),
            [0x90, 0x02]
        );
        // Coils 10-17: one bit past the table; nothing is written.
        let (r, w) = serve_w(&mut dev, 1, &[0x0F, 0, 9, 0, 8, 1, 0x00]);
        assert_eq!((r, w), (vec![0x8F, 0x02], vec![]));
        assert_eq!(dev.unit(1).unwrap().coils.range(0, 16).unwrap(), [true; 16]);
        let (r, _) = serve_w(&mut dev, 1, &[0x0F, 0, 8, 0, 8, 1, 0x00]);
        assert_eq!(r, [0x0F, 0, 8, 0, 8]);
        assert_eq!(
            serve(&mut dev, 1, &[0x01, 0, 0, 0, 16]),
            [0x01, 2, 0xFF, 0x00]
        );
        // Gaps between ranges are illegal; touching ranges are one.
        let mut dev = device(&["40001-40010", "40021-40030", "40011-40012"]);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0, 5, 0, 7])[0], 0x03);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0, 5, 0, 8]), [0x83, 0x02]);
        assert_eq!(serve(&mut dev, 1, &[0x03, 0, 20, 0, 10])[0], 0x03);
        // No such table at all.
        assert_eq!(serve(&mut dev, 1, &[0x01, 0, 0, 0, 1]), [0x81, 0x02]);
    }

    #[test]
    fn operator_reads_and_writes_every_table() {
        let mut u = UnitData::parse(["1-4", "10001-10004", "30001-30002", "40001-40002"]).unwrap();
        assert!(u.write(Table::DiscreteInputs, 1, &[1, 0, 5]));
        assert_eq!(u.read(Table::DiscreteInputs, 0, 4), Some(vec![0, 1, 0, 1]));
        assert!(u.write(Table::InputRegisters, 0, &[7, 8]));
        assert_eq!(u.read(Table::InputRegisters, 0, 2), Some(vec![7, 8]));
        assert!(u.write(Table::Coils, 3, &[1]));
        assert_eq!(u.read(Table::Coils, 0, 4), Some(vec![0, 0, 0, 1]));
        assert!(!u.write(Table::HoldingRegisters, 1, &[1, 2]));
        assert_eq!(u.read(Table::HoldingRegisters, 0, 2), Some(vec![0, 0]));
        assert_eq!(u.read(Table::HoldingRegisters, 0, 3), None);
        assert!(!u.write(Table::Coils, 0, &[]));
    }

    #[test]
    fn diagnostics_other_sub_functions_are_illegal_functions() {
        let mut dev = device(&["40001"]);
        assert_eq!(
            serve(&mut dev, 1, &[0x08, 0x00, 0x01, 0x00, 0x00]),
            [0x88, 0x01]
        );
        assert_eq!(serve(&mut dev, 1, &[0x08, 0x00, 0x00]), [0x08, 0x00, 0x00]);
    }

    #[test]
    fn report_server_id() {
        let mut dev = device(&["40001"]);
        dev.identity.server_id = vec![0x42];
        dev.identity.additional = b"ok".to_vec();
        assert_eq!(
            serve(&mut dev, 1, &[0x11]),
            [0x11, 4, 0x42, 0xFF, b'o', b'k']
        );
        dev.identity.running = false;
        dev.identity.additional = vec![7; 300];
        let r = serve(&mut dev, 1, &[0x11]);
        assert_eq!((r.len(), r[1], r[3]), (MAX_PDU_LEN, 251, 0x00));
    }

    fn device_id(dev: &mut Device, code: u8, object: u8) -> Response<'static> {
        Response::decode(&serve(dev, 1, &[0x2B, 0x0E, code, object]))
            .unwrap()
            .into_owned()
    }

    #[test]
    fn read_device_identification() {
        let mut dev = device(&["40001"]);
        let Response::ReadDeviceIdentification {
            read_device_id_code,
            conformity_level,
            more_follows,
            next_object_id,
            objects,
        } = device_id(&mut dev, 1, 0)
        else {
            panic!()
        };
        assert_eq!(
            (
                read_device_id_code,
                conformity_level,
                more_follows,
                next_object_id
            ),
            (1, 0x81, false, 0)
        );
        assert_eq!(objects.iter().map(|o| o.id).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(&*objects[0].value, b"cpppo-rs");

        dev.identity
            .objects
            .insert(object::PRODUCT_NAME, b"sim".to_vec());
        dev.identity.objects.insert(0x80, b"private".to_vec());
        let ids = |r: Response<'_>| match r {
            Response::ReadDeviceIdentification {
                objects,
                conformity_level,
                ..
            } => (
                conformity_level,
                objects.iter().map(|o| o.id).collect::<Vec<_>>(),
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!(ids(device_id(&mut dev, 1, 0)), (0x83, vec![0, 1, 2]));
        assert_eq!(ids(device_id(&mut dev, 2, 0)), (0x83, vec![0, 1, 2, 4]));
        assert_eq!(
            ids(device_id(&mut dev, 3, 0)),
            (0x83, vec![0, 1, 2, 4, 0x80])
        );
        assert_eq!(ids(device_id(&mut dev, 3, 2)), (0x83, vec![2, 4, 0x80]));
        // An object id that is not there (or not in the category): from the start.
        assert_eq!(ids(device_id(&mut dev, 2, 3)), (0x83, vec![0, 1, 2, 4]));
        assert_eq!(ids(device_id(&mut dev, 1, 4)), (0x83, vec![0, 1, 2]));
        // Individual access.
        assert_eq!(ids(device_id(&mut dev, 4, 0x80)), (0x83, vec![0x80]));
        assert_eq!(serve(&mut dev, 1, &[0x2B, 0x0E, 4, 3]), [0xAB, 0x02]);
        // Too many for one PDU: more follows, with the next object's id.
        for id in 0x81..=0x84 {
            dev.identity.objects.insert(id, vec![b'x'; 100]);
        }
        let Response::ReadDeviceIdentification {
            more_follows,
            next_object_id,
            objects,
            ..
        } = device_id(&mut dev, 3, 0x81)
        else {
            panic!()
        };
        assert!(more_follows);
        assert_eq!(next_object_id, 0x83);
        assert_eq!(objects.len(), 2);
        let Response::ReadDeviceIdentification {
            more_follows,
            objects,
            ..
        } = device_id(&mut dev, 3, 0x83)
        else {
            panic!()
        };
        assert!(!more_follows);
        assert_eq!(
            objects.iter().map(|o| o.id).collect::<Vec<_>>(),
            [0x83, 0x84]
        );
        // An object too long for any PDU is cut to fit.
        dev.identity.objects.insert(0x81, vec![b'y'; 255]);
        let r = serve(&mut dev, 1, &[0x2B, 0x0E, 4, 0x81]);
        assert_eq!(r.len(), MAX_PDU_LEN);
    }

    #[test]
    fn units_any_listed_and_own_tables() {
        let dev = device(&["40001=1"]);
        for unit in [0, 1, 17, 255] {
            assert!(dev.serves(unit));
        }
        let data = UnitData::parse(["40001=1"]).unwrap();
        let mut dev = Device::with_units([1, 2], data);
        assert!(!dev.serves(3));
        let mut w = Vec::new();
        let req = Request::WriteSingleRegister {
            address: 0,
            value: 9,
        };
        assert_eq!(dev.serve(3, &req, &mut w), None);
        assert!(w.is_empty());
        dev.serve(1, &req, &mut w).unwrap();
        // Units 1 and 2 share their tables, as cpppo's slaves list does.
        assert_eq!(dev.unit(2).unwrap().holding_registers.get(0), Some(9));
        dev.add_unit(3, UnitData::parse(["40001=5"]).unwrap());
        assert_eq!(dev.unit(3).unwrap().holding_registers.get(0), Some(5));
        // A broadcast writes every set of tables, reported once with unit 0.
        let mut w = Vec::new();
        dev.broadcast(
            &Request::WriteSingleRegister {
                address: 0,
                value: 77,
            },
            &mut w,
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].unit, 0);
        for unit in 1..=3 {
            assert_eq!(dev.unit(unit).unwrap().holding_registers.get(0), Some(77));
        }
        // A named unit in an any-unit device gets its own tables; the rest share.
        let mut dev = device(&["40001=1"]);
        dev.add_unit(9, UnitData::parse(["40001=2"]).unwrap());
        assert_eq!(dev.unit(9).unwrap().holding_registers.get(0), Some(2));
        assert_eq!(dev.unit(8).unwrap().holding_registers.get(0), Some(1));
        dev.only_listed_units();
        assert!(!dev.serves(8));
    }

    #[test]
    fn delays_sample_within_their_range() {
        let mut rng = SplitMix64::new(1);
        let d = Delay::Range(Duration::from_millis(10), Duration::from_millis(100));
        let mut min = Duration::MAX;
        let mut max = Duration::ZERO;
        for _ in 0..500 {
            let s = d.sample(&mut rng);
            assert!((Duration::from_millis(10)..=Duration::from_millis(100)).contains(&s));
            min = min.min(s);
            max = max.max(s);
        }
        assert!(min < Duration::from_millis(20) && max > Duration::from_millis(90));
        assert_eq!(
            Delay::Fixed(Duration::from_secs(2)).sample(&mut rng),
            Duration::from_secs(2)
        );
        assert_eq!(
            Delay::Range(Duration::from_secs(3), Duration::from_secs(3)).sample(&mut rng),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn cpppo_evil_options() {
        let f = |s: &str| s.parse::<Faults>().unwrap();
        assert!(f("truncate").truncate);
        assert_eq!(f("delay").delay, Some(Delay::Fixed(Duration::from_secs(5))));
        assert_eq!(
            f("delay:2.5").delay,
            Some(Delay::Fixed(Duration::from_millis(2500)))
        );
        assert_eq!(
            f("delay:.01-.1").delay,
            Some(Delay::Range(
                Duration::from_millis(10),
                Duration::from_millis(100)
            ))
        );
        assert_eq!(f("corrupt").corrupt, Some(Corruption::TransactionId));
        for (w, c) in [
            ("transaction", Corruption::TransactionId),
            ("protocol", Corruption::ProtocolId),
            ("unit", Corruption::UnitId),
            ("function", Corruption::Function),
            ("registers", Corruption::Registers),
        ] {
            assert_eq!(f(&format!("corrupt:{w}")).corrupt, Some(c));
        }
        for bad in [
            "",
            "evil",
            "delay:",
            "delay:x",
            "delay:-1",
            "corrupt:crc",
            "truncate:1",
        ] {
            assert_eq!(bad.parse::<Faults>(), Err(EvilError(bad.to_string())));
        }
    }

    #[test]
    fn device_and_faults_serialize() {
        let mut dev = device(&["1-4=1", "40001=1,2"]);
        dev.faults = Faults {
            delay: Some(Delay::Range(
                Duration::from_millis(10),
                Duration::from_millis(20),
            )),
            truncate: true,
            corrupt: Some(Corruption::UnitId),
        };
        let json = serde_json::to_string(&dev).unwrap();
        let back: Device = serde_json::from_str(&json).unwrap();
        assert_eq!(back, dev);
        let w = Write {
            unit: 1,
            table: Table::Coils,
            address: 3,
            values: vec![1],
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"unit":1,"table":"Coils","address":3,"values":[1]}"#
        );
    }
}
