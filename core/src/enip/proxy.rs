//! cpppo's getattr proxy (`get_attribute.proxy` / `proxy_simple`) as a sans-IO engine:
//! named [`Parameter`]s, each a CIP address (`@class/instance/attribute`, `@class/instance`
//! or a tag) with a type and units, read and written through one [`ClientConn`] — the
//! "gateway" — that is opened when needed and closed on failure, to be opened again by
//! the next request.
//!
//! A parameter with a type is read with Get Attribute Single (Get Attributes All for
//! `@class/instance`) and its raw bytes converted with the type ([`TypeSpec`]: one type
//! repeated over all the data, `REAL[4]` a fixed count, or a list of types in order, as
//! cpppo's Identity parameter `INT, INT, INT, INT, INT, DINT, SSTRING, USINT`); written
//! with Set Attribute Single. A parameter without a type is a tag, read and written with
//! Read/Write Tag, and comes back in the type the device sent. The PowerFlex 750 series
//! parameters of cpppo's `ab.py` are [`powerflex_750_series`].
//!
//! ## Contract
//!
//! - [`Proxy::read`] / [`Proxy::write`] / [`Proxy::submit`]: one request of one or more
//!   operations, answered by one [`ProxyEvent::Done`] with a result per operation, in
//!   order. Operations of one request and of several are pipelined (up to the client's
//!   `depth`) and packed into Multiple Service Packets (its `multiple`).
//! - The gateway: with none open, a request asks for one with [`ProxyEvent::Connect`];
//!   the adapter connects a socket and answers [`Proxy::handle_connected`] (a new
//!   session is registered) or [`Proxy::handle_connect_failed`] (the waiting operations
//!   fail with [`ParamError::Connect`]).
//! - Close and reopen on failure: an operation that is not answered (timeout, the peer
//!   closing, a protocol error: [`ParamError::Lost`]) closes the gateway
//!   ([`ProxyEvent::Disconnect`]: close the socket), failing every other operation in
//!   flight on it; the next request opens a new one. A CIP error status
//!   ([`ParamError::Status`]) or data that does not convert ([`ParamError::Convert`])
//!   fails only its operation.
//! - [`Proxy::handle_input`], [`Proxy::handle_timeout`], [`Proxy::handle_disconnected`]
//!   (the socket closed or failed), [`Proxy::poll_transmit`], [`Proxy::poll_event`] and
//!   [`Proxy::poll_timeout`] as every engine: after any `handle_*` call or request,
//!   drain `poll_transmit` to the socket and `poll_event` (acting on `Connect` and
//!   `Disconnect`), then wait for input or `poll_timeout`.
//!
//! ```
//! use std::time::Instant;
//! use cpppo_core::controller::{Controller, ControllerConfig};
//! use cpppo_core::enip::client::ClientOptions;
//! use cpppo_core::enip::proxy::{powerflex_750_series, Proxy, ProxyEvent, Reply};
//! use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};
//!
//! // A simulated PowerFlex: a REAL at @0x93/7/10 (Output Current).
//! let now = Instant::now();
//! let mut plc = Controller::new(ControllerConfig::default());
//! plc.tags_mut().add_str("Output_Current@0x93/7/10=REAL").unwrap();
//! let mut server = Server::new(plc, ServerOptions::default());
//!
//! let params = powerflex_750_series();
//! let current = params.get("Output Current").unwrap().clone();
//! let mut proxy = Proxy::new(ClientOptions::simple());
//! let write = proxy.write(now, &current, "12.5").unwrap();
//! let read = proxy.read(now, &[current]);
//! assert_eq!(proxy.poll_event(), Some(ProxyEvent::Connect));
//! proxy.handle_connected(now);
//! let mut conn = ServerConn::new(now, "127.0.0.1:50000".parse().unwrap(), &mut server);
//!
//! let mut done = Vec::new();
//! while done.len() < 2 {
//!     let (mut up, mut down) = (Vec::new(), Vec::new());
//!     while proxy.poll_transmit(now, &mut up) {}
//!     conn.handle_input(now, &up, &mut server);
//!     while conn.poll_transmit(now, &mut down) {}
//!     proxy.handle_input(now, &down);
//!     while let Some(event) = proxy.poll_event() {
//!         if let ProxyEvent::Done { request, results } = event {
//!             done.push((request, results));
//!         }
//!     }
//! }
//! assert_eq!(done[0], (write, vec![Ok(Reply::Written)]));
//! assert_eq!(done[1].0, read);
//! let Ok(Reply::Value(value)) = &done[1].1[0] else { panic!() };
//! assert_eq!(value.to_string(), "[12.5]");
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::client::{CipStatus, ClientConn, ClientEvent, ClientOptions, LostReason, OpId, Value};
use crate::cip::data::{Count, DataType, TagType, Text, Values};
use crate::cip::operation::{
    parse_attribute_operation, parse_operation, Method, Operation, OperationError,
};
use crate::wire::{DecodeError, Reader};

/// The byte size of cpppo's `WORD` (16 bits).
const WORD_SIZE: usize = 2;
/// The byte size of cpppo's `IPADDR` (a network-order 32-bit address).
const IPADDR_SIZE: usize = 4;

/// A CIP type a parameter's raw bytes are converted with: cpppo's `CIP_TYPES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CipType {
    /// An elementary type (BOOL, SINT ... LREAL, DWORD, SSTRING, STRING).
    Elementary(DataType),
    /// A 16-bit bit string, shown as an unsigned number.
    Word,
    /// A 32-bit IPv4 address in network order, shown as a dotted quad.
    Ipaddr,
}

impl CipType {
    /// The name as cpppo spells it (`REAL`, `WORD`, `IPADDR`).
    pub fn name(self) -> &'static str {
        match self {
            CipType::Elementary(t) => t.name(),
            CipType::Word => "WORD",
            CipType::Ipaddr => "IPADDR",
        }
    }

    /// Decode one value of this type.
    fn decode(self, r: &mut Reader<'_>) -> Result<Datum, DecodeError> {
        match self {
            CipType::Word => {
                let b = r.take(WORD_SIZE, "proxy.word")?;
                Ok(Datum::Uint(u64::from(u16::from_le_bytes([
                    b.first().copied().unwrap_or(0),
                    b.get(1).copied().unwrap_or(0),
                ]))))
            }
            CipType::Ipaddr => {
                let b = r.take(IPADDR_SIZE, "proxy.ipaddr")?;
                let mut octets = [0u8; IPADDR_SIZE];
                octets.copy_from_slice(b);
                Ok(Datum::Address(Ipv4Addr::from(octets)))
            }
            CipType::Elementary(t) => {
                let values = Values::decode(TagType::Elementary(t.code()), Count::Elements(1), r)?;
                Ok(datums(&values).into_iter().next().unwrap_or(Datum::Uint(0)))
            }
        }
    }
}

impl fmt::Display for CipType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CipType {
    type Err = ProxyError;

    /// A type name, case-insensitive: an elementary type, `WORD` or `IPADDR`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("WORD") {
            return Ok(CipType::Word);
        }
        if s.eq_ignore_ascii_case("IPADDR") {
            return Ok(CipType::Ipaddr);
        }
        s.parse::<DataType>()
            .map(CipType::Elementary)
            .map_err(|_| ProxyError::UnknownType(s.to_string()))
    }
}

/// How a parameter's raw bytes become values: one type repeated over all the data
/// (`REAL`), or a fixed list of types in order (`REAL[4]`, `INT,INT,DINT,SSTRING`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSpec {
    /// The types, in order.
    pub types: Vec<CipType>,
    /// The single type repeats until the data ends (cpppo's one-type form).
    pub repeat: bool,
}

impl TypeSpec {
    /// One type over all the data.
    pub fn of(t: CipType) -> Self {
        TypeSpec {
            types: vec![t],
            repeat: true,
        }
    }

    /// Convert raw attribute data: every value of it, or an error naming where the data
    /// ran out or did not fit. Bytes after a fixed list of types are ignored, as cpppo
    /// does.
    pub fn decode(&self, data: &[u8]) -> Result<Vec<Datum>, DecodeError> {
        let mut r = Reader::new(data);
        let mut out = Vec::new();
        match (self.repeat, self.types.as_slice()) {
            (true, [t]) => {
                while !r.is_empty() {
                    out.push(t.decode(&mut r)?);
                }
            }
            (_, types) => {
                for t in types {
                    out.push(t.decode(&mut r)?);
                }
            }
        }
        Ok(out)
    }

    /// The one elementary type every value is written as, if there is one.
    fn write_type(&self) -> Option<DataType> {
        let first = self.types.first()?;
        match first {
            CipType::Elementary(t) if self.types.iter().all(|x| x == first) => Some(*t),
            _ => None,
        }
    }
}

impl fmt::Display for TypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.types.iter().map(|t| t.name()).collect();
        match (self.repeat, names.as_slice()) {
            (true, [one]) => f.write_str(one),
            (_, [one, rest @ ..]) if rest.iter().all(|r| r == one) => {
                write!(f, "{one}[{}]", names.len())
            }
            _ => f.write_str(&names.join(",")),
        }
    }
}

impl std::str::FromStr for TypeSpec {
    type Err = ProxyError;

    /// `REAL`, `REAL[4]`, `INT,INT,DINT,SSTRING`, `INT[5],DINT,SSTRING,USINT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let items: Vec<&str> = s.split(',').map(str::trim).collect();
        let mut types = Vec::new();
        let mut counted = false;
        for item in &items {
            let (name, count) = match item.split_once('[') {
                Some((name, rest)) => {
                    let n = rest
                        .strip_suffix(']')
                        .and_then(|n| n.trim().parse::<usize>().ok())
                        .filter(|n| (1..=MAX_TYPE_COUNT).contains(n))
                        .ok_or_else(|| ProxyError::BadCount(item.to_string()))?;
                    counted = true;
                    (name, n)
                }
                None => (*item, 1),
            };
            let t: CipType = name.parse()?;
            types.extend(std::iter::repeat(t).take(count));
        }
        Ok(TypeSpec {
            repeat: items.len() == 1 && !counted,
            types,
        })
    }
}

/// The most values one `TYPE[n]` may ask for.
pub const MAX_TYPE_COUNT: usize = 4096;

/// One converted value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Datum {
    /// BOOL (true or false).
    Bool(bool),
    /// A signed integer (SINT, INT, DINT, LINT).
    Int(i64),
    /// An unsigned integer (USINT, UINT, UDINT, ULINT, WORD, DWORD).
    Uint(u64),
    /// REAL or LREAL (a REAL widened exactly, so it prints as Python does:
    /// `789.010009765625`).
    Real(f64),
    /// SSTRING, STRING or a Logix STRING.
    Text(Text),
    /// IPADDR.
    Address(Ipv4Addr),
}

impl fmt::Display for Datum {
    /// As Python's `repr` shows the value cpppo yields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Datum::Int(n) => write!(f, "{n}"),
            Datum::Uint(n) => write!(f, "{n}"),
            Datum::Real(x) if x.is_nan() => f.write_str("nan"),
            Datum::Real(x) if x.is_infinite() => f.write_str(if *x > 0.0 { "inf" } else { "-inf" }),
            Datum::Real(x) => write!(f, "{x:?}"),
            Datum::Text(t) => py_str(f, &t.to_string()),
            Datum::Address(a) => py_str(f, &a.to_string()),
        }
    }
}

/// A string as Python's `repr` shows it.
fn py_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\'' => f.write_str("\\'")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 || u32::from(c) == 0x7f => {
                write!(f, "\\x{:02x}", u32::from(c))?
            }
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

/// A parameter's value: its data, converted, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParamValue(pub Vec<Datum>);

impl fmt::Display for ParamValue {
    /// As a Python list: `[789.010009765625]`, `[1, 14, '1756-L61/B LOGIX5561']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            d.fmt(f)?;
        }
        f.write_str("]")
    }
}

/// Values read with Read Tag, as [`Datum`]s (a structure's bytes as unsigned numbers).
pub fn datums(values: &Values) -> Vec<Datum> {
    fn ints<T: Copy + Into<i64>>(v: &[T]) -> Vec<Datum> {
        v.iter().map(|x| Datum::Int((*x).into())).collect()
    }
    fn uints<T: Copy + Into<u64>>(v: &[T]) -> Vec<Datum> {
        v.iter().map(|x| Datum::Uint((*x).into())).collect()
    }
    match values {
        Values::Bool(v) => v.iter().map(|b| Datum::Bool(*b)).collect(),
        Values::Sint(v) => ints(v),
        Values::Int(v) => ints(v),
        Values::Dint(v) => ints(v),
        Values::Lint(v) => ints(v),
        Values::Usint(v) => uints(v),
        Values::Uint(v) => uints(v),
        Values::Udint(v) | Values::Dword(v) => uints(v),
        Values::Ulint(v) => uints(v),
        Values::Real(v) => v.iter().map(|x| Datum::Real(f64::from(*x))).collect(),
        Values::Lreal(v) => v.iter().map(|x| Datum::Real(*x)).collect(),
        Values::Sstring(v) | Values::String(v) | Values::LogixString(v) => {
            v.iter().map(|t| Datum::Text(t.clone())).collect()
        }
        Values::Structure { data, .. } => uints(data),
    }
}

/// Why a parameter or its value was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    /// A type name that is not one of cpppo's CIP types.
    #[error("unknown CIP type {0:?}")]
    UnknownType(String),
    /// `TYPE[n]` with a count that is not 1 to 4096.
    #[error("invalid count in {0:?} (expected TYPE[1..4096])")]
    BadCount(String),
    /// The address (or the values written) do not parse.
    #[error("{text:?}: {error}")]
    Operation {
        /// The text given.
        text: String,
        /// What is wrong with it.
        error: OperationError,
    },
    /// A parameter of several types (Get Attributes All) cannot be written.
    #[error("{0:?} has several types and cannot be written")]
    NotWritable(String),
    /// No parameter of that name.
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
}

/// A named parameter: cpppo's `parameter(attribute, types, units)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// The name (`Output Current`; looked up as cpppo does, see [`Parameters::get`]).
    pub name: String,
    /// The address as written: `@0x93/7/10`, `@1/1`, or a tag (`SCADA[0-3]`).
    pub address: String,
    /// How the raw data converts; `None` for a tag read with Read Tag.
    pub types: Option<TypeSpec>,
    /// Units, shown after the value (`Amps`).
    pub units: Option<String>,
    /// The operation that reads it.
    pub read: Operation,
}

impl Parameter {
    /// A parameter at `address` with `types` (`None`: a tag) and `units`: the address
    /// must be `@class/instance[/attribute]` when typed.
    pub fn new(
        name: &str,
        address: &str,
        types: Option<&str>,
        units: Option<&str>,
    ) -> Result<Self, ProxyError> {
        let types = types.map(str::parse::<TypeSpec>).transpose()?;
        let address = address.split_whitespace().collect::<String>();
        let parsed = if types.is_some() {
            parse_attribute_operation(&address)
        } else {
            parse_operation(&address)
        };
        let read = parsed.map_err(|error| ProxyError::Operation {
            text: address.clone(),
            error,
        })?;
        if read.values.is_some() {
            return Err(ProxyError::Operation {
                text: address,
                error: OperationError::NotAnAttribute,
            });
        }
        Ok(Parameter {
            name: name.trim().to_string(),
            address,
            types,
            units: units.map(str::to_string).filter(|u| !u.is_empty()),
            read,
        })
    }

    /// The operation that writes `values` (cpppo's value syntax: `1.5`, `1,2,3`,
    /// `(DINT)7`, `"text"`): Set Attribute Single with the values encoded as the
    /// parameter's type, or Write Tag for a tag.
    pub fn write_operation(&self, values: &str) -> Result<Operation, ProxyError> {
        let op = |text: String| {
            let parsed = if self.types.is_some() {
                parse_attribute_operation(&text)
            } else {
                parse_operation(&text)
            };
            parsed.map_err(|error| ProxyError::Operation { text, error })
        };
        match &self.types {
            None => op(format!("{}={values}", self.address)),
            Some(spec) => {
                let t = spec
                    .write_type()
                    .filter(|_| self.read.method == Method::GetAttributeSingle)
                    .ok_or_else(|| ProxyError::NotWritable(self.name.clone()))?;
                op(format!("{}=({}){values}", self.address, t.name()))
            }
        }
    }
}

/// A set of named parameters, found by name as cpppo's `parameter_substitution` does:
/// surrounding white space dropped, case ignored, inner white space as `_`
/// (`" Output Freq "` is `output_freq`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parameters(BTreeMap<String, Parameter>);

impl Parameters {
    /// The key a name is found by.
    pub fn key(name: &str) -> String {
        name.split_whitespace()
            .collect::<Vec<_>>()
            .join("_")
            .to_lowercase()
    }

    /// Add (or replace) a parameter.
    pub fn insert(&mut self, parameter: Parameter) {
        self.0.insert(Self::key(&parameter.name), parameter);
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.0.get(&Self::key(name))
    }

    /// Every parameter, by key.
    pub fn iter(&self) -> impl Iterator<Item = &Parameter> {
        self.0.values()
    }

    /// `name` as a known parameter, or else (cpppo's `pass_thru`) as an address with an
    /// optional type after `=`: `@0x93/1/10=REAL`, `@1/1=INT,INT,DINT`, `SCADA[0-3]`.
    pub fn resolve(&self, name: &str) -> Result<Parameter, ProxyError> {
        if let Some(p) = self.get(name) {
            return Ok(p.clone());
        }
        let (address, types) = match name.split_once('=') {
            Some((a, t)) => (a, Some(t)),
            None => (name, None),
        };
        if types.is_none() && !address.trim_start().starts_with('@') && address.contains(' ') {
            return Err(ProxyError::UnknownParameter(name.to_string()));
        }
        Parameter::new(name, address, types, None)
    }
}

/// Parameter table rows: name, address, type, units.
type Row = (&'static str, &'static str, &'static str, &'static str);

/// cpppo's generic proxy parameters (its `proxy.PARAMETERS`): the Identity object's
/// product name and its attributes 1 to 7 (cpppo's list ends with the state, a USINT,
/// which a ControlLogix and our simulator leave out of Get Attributes All; bytes after
/// the list are ignored, so a device that sends the state is read too).
const PROXY_PARAMETERS: &[Row] = &[
    ("Product Name", "@1/1/7", "SSTRING", ""),
    (
        "Identity",
        "@1/1",
        "INT,INT,INT,INT,INT,DINT,SSTRING",
        "Identity",
    ),
];

/// cpppo's `ab.powerflex_750_series` parameters (host port parameters at class 0x93,
/// attribute 10 of the parameter's instance).
const POWERFLEX_750_PARAMETERS: &[Row] = &[
    ("Output Frequency", "@0x93/1/10", "REAL", "Hz"),
    ("Output Freq", "@0x93/1/10", "REAL", "Hz"),
    ("Mtr Vel Fdbk", "@0x93/3/10", "REAL", "Hz/RPM"),
    ("Motor Velocity", "@0x93/3/10", "REAL", "Hz/RPM"),
    ("Output Current", "@0x93/7/10", "REAL", "Amps"),
    ("Output Voltage", "@0x93/8/10", "REAL", "VAC"),
    ("Output Power", "@0x93/9/10", "REAL", "kW"),
    ("DC Bus Volts", "@0x93/11/10", "REAL", "VDC"),
    ("Elapsed MWh", "@0x93/13/10", "REAL", "MWh"),
    ("Elapsed kWh", "@0x93/14/10", "REAL", "kWh"),
    ("Elapsed Run Time", "@0x93/15/10", "REAL", "Hrs"),
    ("Rated Volts", "@0x93/20/10", "REAL", "VAC"),
    ("Rated Amps", "@0x93/21/10", "REAL", "Amps"),
    ("Rated kW", "@0x93/22/10", "REAL", "kW"),
    ("Speed Units", "@0x93/300/10", "DINT", "Hz/RPM"),
];

fn table(rows: &[&[Row]]) -> Parameters {
    let mut params = Parameters::default();
    for (name, address, types, units) in rows.iter().flat_map(|r| r.iter()) {
        if let Ok(p) = Parameter::new(name, address, Some(types), Some(units)) {
            params.insert(p);
        }
    }
    params
}

/// cpppo's generic proxy parameters: `Product Name` (`@1/1/7` SSTRING) and `Identity`.
pub fn proxy_parameters() -> Parameters {
    table(&[PROXY_PARAMETERS])
}

/// cpppo's A-B PowerFlex 750 series parameters (`Output Frequency` `@0x93/1/10` REAL
/// Hz, `Output Current` `@0x93/7/10` REAL Amps, ...) and the generic ones.
pub fn powerflex_750_series() -> Parameters {
    table(&[PROXY_PARAMETERS, POWERFLEX_750_PARAMETERS])
}

/// A request's handle, in order of submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// What an operation gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A read's value, converted.
    Value(ParamValue),
    /// A write succeeded.
    Written,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ParamError {
    /// The device answered with an error status (the gateway stays open).
    #[error("status 0x{:02X}", .0.general.0)]
    Status(CipStatus),
    /// No answer; the gateway was closed.
    #[error("{0}")]
    Lost(LostReason),
    /// The gateway could not be opened.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The data did not convert to the parameter's type.
    #[error("conversion failed: {0}")]
    Convert(String),
}

impl ParamError {
    /// The gateway failed (rather than the device refusing one operation).
    pub fn is_link_failure(&self) -> bool {
        matches!(self, ParamError::Lost(_) | ParamError::Connect(_))
    }
}

/// What happened, for the adapter (`Connect`, `Disconnect`) and the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEvent {
    /// Open a connection to the device, then call [`Proxy::handle_connected`] or
    /// [`Proxy::handle_connect_failed`].
    Connect,
    /// The gateway's session is registered.
    Opened {
        /// The session handle.
        session: u32,
    },
    /// Close the connection: the gateway was closed after a failure (cpppo's
    /// `close_gateway`); the next request opens a new one.
    Disconnect {
        /// Why, in words.
        reason: String,
    },
    /// A request finished: one result per operation, in order.
    Done {
        /// The request.
        request: RequestId,
        /// Each operation's result.
        results: Vec<Result<Reply, ParamError>>,
    },
}

/// What an adapter waiting for one request does next ([`Proxy::poll_request`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaited {
    /// Connect a socket, then [`Proxy::handle_connected`] or
    /// [`Proxy::handle_connect_failed`].
    Connect,
    /// Close the socket.
    Disconnect,
    /// The request is done: its results.
    Done(Vec<Result<Reply, ParamError>>),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatistics {
    /// Gateways asked for ([`ProxyEvent::Connect`]).
    pub connects: u64,
    /// Gateways closed after a failure.
    pub closed: u64,
    /// Requests finished.
    pub requests: u64,
    /// Operations that failed.
    pub failures: u64,
}

/// Where an operation's result goes: its request and its place there.
type Slot = (RequestId, usize);

#[derive(Debug)]
struct Pending {
    results: Vec<Option<Result<Reply, ParamError>>>,
    types: Vec<Option<TypeSpec>>,
    remaining: usize,
}

#[derive(Debug)]
enum Gateway {
    Closed,
    /// Asked for with `Connect`; the operations wait here with their deadlines.
    Connecting(Vec<(Slot, Operation, Instant)>),
    Open(Box<ClientConn>),
}

/// cpppo's getattr proxy as a sans-IO engine. See the [module documentation](self).
#[derive(Debug)]
pub struct Proxy {
    options: ClientOptions,
    gateway: Gateway,
    pending: BTreeMap<RequestId, Pending>,
    ops: HashMap<OpId, Slot>,
    next_request: u64,
    events: VecDeque<ProxyEvent>,
    stats: ProxyStatistics,
}

impl Proxy {
    /// A proxy whose gateways are client connections with `options` (cpppo's
    /// `proxy_simple` is [`ClientOptions::simple`]). Nothing is opened until a request.
    pub fn new(options: ClientOptions) -> Self {
        Proxy {
            options,
            gateway: Gateway::Closed,
            pending: BTreeMap::new(),
            ops: HashMap::new(),
            next_request: 0,
            events: VecDeque::new(),
            stats: ProxyStatistics::default(),
        }
    }

    // ----- getters

    /// The client options of each gateway.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Counters.
    pub fn statistics(&self) -> &ProxyStatistics {
        &self.stats
    }

    /// Whether a gateway is open (its socket connected).
    pub fn is_open(&self) -> bool {
        matches!(self.gateway, Gateway::Open(_))
    }

    /// Requests not yet [done](ProxyEvent::Done).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    // ----- commands

    /// Read `params` (one operation each), from `now`.
    pub fn read(&mut self, now: Instant, params: &[Parameter]) -> RequestId {
        let items = params
            .iter()
            .map(|p| (p.read.clone(), p.types.clone()))
            .collect();
        self.submit(now, items)
    }

    /// Write `values` (cpppo's value syntax) to `param`, from `now`.
    pub fn write(
        &mut self,
        now: Instant,
        param: &Parameter,
        values: &str,
    ) -> Result<RequestId, ProxyError> {
        let op = param.write_operation(values)?;
        Ok(self.submit(now, vec![(op, None)]))
    }

    /// Run operations as one request, each with the type its data converts with
    /// (`None`: as the device sent it, or raw bytes as USINTs for the attribute
    /// services), from `now`; each has the client's timeout.
    pub fn submit(&mut self, now: Instant, items: Vec<(Operation, Option<TypeSpec>)>) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = now + self.options.timeout;
        let (ops, types): (Vec<Operation>, Vec<Option<TypeSpec>>) = items.into_iter().unzip();
        self.pending.insert(
            request,
            Pending {
                results: vec![None; ops.len()],
                remaining: ops.len(),
                types,
            },
        );
        if ops.is_empty() {
            self.finish_if_done(request);
            return request;
        }
        if matches!(self.gateway, Gateway::Closed) {
            self.gateway = Gateway::Connecting(Vec::new());
            self.stats.connects += 1;
            self.events.push_back(ProxyEvent::Connect);
        }
        for (index, op) in ops.into_iter().enumerate() {
            let slot = (request, index);
            match &mut self.gateway {
                Gateway::Connecting(waiting) => waiting.push((slot, op, deadline)),
                Gateway::Open(client) => {
                    let id = client.submit_until(deadline, op);
                    self.ops.insert(id, slot);
                }
                Gateway::Closed => {}
            }
        }
        self.drive(now);
        request
    }

    /// Close the gateway now (cpppo's `close_gateway`): what is in flight fails with
    /// [`LostReason::Closed`]; a [`ProxyEvent::Disconnect`] follows if one was open.
    pub fn close_gateway(&mut self, now: Instant, reason: &str) {
        let _ = now;
        self.close(LostReason::Closed, reason);
    }

    // ----- inputs

    /// The connection asked for with [`ProxyEvent::Connect`] is up: a session is
    /// registered and the waiting operations are sent.
    pub fn handle_connected(&mut self, now: Instant) {
        let Gateway::Connecting(waiting) = &mut self.gateway else {
            return;
        };
        let waiting = std::mem::take(waiting);
        let mut client = Box::new(ClientConn::new(now, self.options.clone()));
        for (slot, op, deadline) in waiting {
            let id = client.submit_until(deadline, op);
            self.ops.insert(id, slot);
        }
        self.gateway = Gateway::Open(client);
        self.drive(now);
    }

    /// The connection asked for could not be made: the waiting operations fail.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        let _ = now;
        let Gateway::Connecting(waiting) = &mut self.gateway else {
            return;
        };
        let waiting = std::mem::take(waiting);
        self.gateway = Gateway::Closed;
        for (slot, _, _) in waiting {
            self.complete(slot, Err(ParamError::Connect(reason.to_string())));
        }
    }

    /// The connection closed or failed: the gateway is closed and what was in flight
    /// fails.
    pub fn handle_disconnected(&mut self, now: Instant) {
        if let Gateway::Open(client) = &mut self.gateway {
            client.handle_eof(now);
            self.drive(now);
        }
    }

    /// Bytes received from the device.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if let Gateway::Open(client) = &mut self.gateway {
            client.handle_input(now, data);
        }
        self.drive(now);
    }

    /// Time has reached `now`: operations past their deadline fail (and close the
    /// gateway).
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.gateway {
            Gateway::Open(client) => {
                if client.poll_timeout().is_some_and(|at| at <= now) {
                    client.handle_timeout(now);
                }
                self.drive(now);
            }
            Gateway::Connecting(waiting) => {
                let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(waiting)
                    .into_iter()
                    .partition(|w| w.2 <= now);
                *waiting = kept;
                for (slot, _, _) in expired {
                    self.complete(slot, Err(ParamError::Lost(LostReason::Timeout)));
                }
            }
            Gateway::Closed => {}
        }
    }

    // ----- outputs

    /// Append the requests ready to send.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let sent = match &mut self.gateway {
            Gateway::Open(client) => client.poll_transmit(now, out),
            _ => false,
        };
        self.drive(now);
        sent
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ProxyEvent> {
        self.events.pop_front()
    }

    /// For an adapter that waits for one request at a time (cpppo's `via.read`): the
    /// next event that asks something of it, or `request`'s results; `None` when no
    /// event is left. Other events (a session opened, other requests done) are
    /// dropped: use [`Proxy::poll_event`] to see them.
    pub fn poll_request(&mut self, request: RequestId) -> Option<Awaited> {
        while let Some(event) = self.events.pop_front() {
            match event {
                ProxyEvent::Connect => return Some(Awaited::Connect),
                ProxyEvent::Disconnect { .. } => return Some(Awaited::Disconnect),
                ProxyEvent::Done {
                    request: r,
                    results,
                } if r == request => return Some(Awaited::Done(results)),
                ProxyEvent::Done { .. } | ProxyEvent::Opened { .. } => {}
            }
        }
        None
    }

    /// When [`Proxy::handle_timeout`] must next be called: the earliest operation (or
    /// session set-up) deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.gateway {
            Gateway::Open(client) => client.poll_timeout(),
            Gateway::Connecting(waiting) => waiting.iter().map(|w| w.2).min(),
            Gateway::Closed => None,
        }
    }

    // ----- internals

    /// Take in the gateway's events; a gateway whose connection finished is closed.
    fn drive(&mut self, _now: Instant) {
        loop {
            let Gateway::Open(client) = &mut self.gateway else {
                return;
            };
            let Some(event) = client.poll_event() else {
                if client.is_closed() {
                    self.close(LostReason::Closed, "connection closed");
                }
                return;
            };
            match event {
                ClientEvent::Registered { session } => {
                    self.events.push_back(ProxyEvent::Opened { session });
                }
                ClientEvent::Reply { op, result } => {
                    if let Some(slot) = self.ops.remove(&op) {
                        let result = self.convert(slot, result);
                        self.complete(slot, result);
                    }
                }
                ClientEvent::Lost { op, why } => {
                    if let Some(slot) = self.ops.remove(&op) {
                        self.complete(slot, Err(ParamError::Lost(why.clone())));
                    }
                    let reason = why.to_string();
                    self.close(why, &reason);
                }
                ClientEvent::Failed(why) => {
                    let reason = why.to_string();
                    self.close(why, &reason);
                }
                ClientEvent::Identity(_) | ClientEvent::Connected { .. } => {}
            }
        }
    }

    /// Forget the gateway: every operation on it fails with `why`.
    fn close(&mut self, why: LostReason, reason: &str) {
        match std::mem::replace(&mut self.gateway, Gateway::Closed) {
            Gateway::Open(_) => {
                self.stats.closed += 1;
                self.events.push_back(ProxyEvent::Disconnect {
                    reason: reason.to_string(),
                });
                let slots: Vec<Slot> = self.ops.drain().map(|(_, s)| s).collect();
                for slot in slots {
                    self.complete(slot, Err(ParamError::Lost(why.clone())));
                }
            }
            Gateway::Connecting(waiting) => {
                for (slot, _, _) in waiting {
                    self.complete(slot, Err(ParamError::Lost(why.clone())));
                }
            }
            Gateway::Closed => {}
        }
    }

    /// A reply as the operation's result, converted with its type.
    fn convert(&self, slot: Slot, result: Result<Value, CipStatus>) -> Result<Reply, ParamError> {
        let types = self
            .pending
            .get(&slot.0)
            .and_then(|p| p.types.get(slot.1))
            .cloned()
            .flatten();
        match result.map_err(ParamError::Status)? {
            Value::Written => Ok(Reply::Written),
            Value::Values(values) => Ok(Reply::Value(ParamValue(datums(&values)))),
            Value::Data(data) => match types {
                Some(spec) => spec
                    .decode(&data)
                    .map(|d| Reply::Value(ParamValue(d)))
                    .map_err(|e| ParamError::Convert(format!("as {spec}: {e}"))),
                None => Ok(Reply::Value(ParamValue(
                    data.iter().map(|b| Datum::Uint(u64::from(*b))).collect(),
                ))),
            },
            other => Err(ParamError::Convert(format!(
                "unexpected reply {other:?} to a proxy operation"
            ))),
        }
    }

    fn complete(&mut self, (request, index): Slot, result: Result<Reply, ParamError>) {
        let Some(p) = self.pending.get_mut(&request) else {
            return;
        };
        let Some(slot) = p.results.get_mut(index) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        if result.is_err() {
            self.stats.failures += 1;
        }
        *slot = Some(result);
        p.remaining = p.remaining.saturating_sub(1);
        self.finish_if_done(request);
    }

    fn finish_if_done(&mut self, request: RequestId) {
        if self.pending.get(&request).is_some_and(|p| p.remaining == 0) {
            if let Some(p) = self.pending.remove(&request) {
                self.stats.requests += 1;
                let results = p
                    .results
                    .into_iter()
                    .map(|r| r.unwrap_or(Err(ParamError::Lost(LostReason::Closed))))
                    .collect();
                self.events.push_back(ProxyEvent::Done { request, results });
            }
        }
    }
}

#[cfg(test)]
mod tests;
