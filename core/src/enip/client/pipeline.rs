//! cpppo's `connector.pipeline` / `.synchronous` / `.results` / `.process`, sans-IO: a
//! [`Pipeline`] takes a sequence of [`Operation`]s, keeps a [`ClientConn`] fed with
//! up to `depth` transactions in flight (and enough operations queued behind them for
//! `multiple` to pack), and hands back each operation's [`Harvested`] result in the
//! order the operations were given, whatever order the replies came in.
//!
//! Every runtime's client (`cpppo_blocking::client::Connector`, `cpppo_smol`'s,
//! `cpppo_mio`'s) is this runner plus a socket: its loop is
//!
//! 1. [`Pipeline::step`] (drains the connection's events, submits what the window
//!    allows);
//! 2. flush [`ClientConn::poll_transmit`] to the socket;
//! 3. [`Pipeline::poll_result`] until empty, handing each to the caller;
//! 4. once [`Pipeline::is_finished`], stop; else wait for input or
//!    [`ClientConn::poll_timeout`] and go to 1.
//!
//! ```
//! use std::time::Instant;
//! use cpppo_core::cip::data::Values;
//! use cpppo_core::cip::operation::parse_operation;
//! use cpppo_core::controller::{Controller, ControllerConfig};
//! use cpppo_core::enip::client::pipeline::{Pipeline, Pipelining};
//! use cpppo_core::enip::client::{ClientConn, ClientOptions, Value};
//! use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};
//!
//! let now = Instant::now();
//! let mut plc = Controller::new(ControllerConfig::default());
//! plc.tags_mut().add_str("SCADA=INT[100]").unwrap();
//! let mut server = Server::new(plc, ServerOptions::default());
//! let mut conn = ServerConn::new(now, "127.0.0.1:50000".parse().unwrap(), &mut server);
//! let mut client = ClientConn::new(now, ClientOptions::default());
//!
//! let ops = ["SCADA[1-3]=4,5,6", "SCADA[0-3]"].map(|t| parse_operation(t).unwrap());
//! let mut pipeline = Pipeline::new(ops.into_iter(), Pipelining::default().depth(2));
//! let mut results = Vec::new();
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! while !pipeline.is_finished() {
//!     pipeline.step(now, &mut client);
//!     to_server.clear();
//!     client.poll_transmit(now, &mut to_server);
//!     conn.handle_input(now, &to_server, &mut server);
//!     to_client.clear();
//!     while conn.poll_transmit(now, &mut to_client) {}
//!     client.handle_input(now, &to_client);
//!     while let Some(done) = pipeline.poll_result() {
//!         results.push(done);
//!     }
//! }
//! assert_eq!(results[1].value(), Some(&Value::Values(Values::Int(vec![0, 4, 5, 6]))));
//! assert_eq!(
//!     results[1].line(),
//!     "            SCADA[0][  0-3  ]+  0 == [0, 4, 5, 6]: 'OK'"
//! );
//! assert_eq!(pipeline.summary(&client).failures, 0);
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CipStatus, ClientConn, ClientEvent, ClientOptions, LostReason, OpId, Value};
use crate::cip::data::Values;
use crate::cip::operation::{Method, Operation};

/// Operations submitted ahead of those in flight, per unit of depth, when `multiple`
/// packs them: enough to fill a Multiple Service Packet, while each operation's timeout
/// still starts near when it is sent.
pub const QUEUE_PER_DEPTH: usize = 32;

/// The keywords of cpppo's `pipeline(operations, depth, multiple, fragment, timeout)`.
/// Pure data (serde; the timeout in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipelining {
    /// Transactions in flight at once; 0 and 1 both mean synchronous (cpppo's `operate`
    /// takes depth 0 for `synchronous`).
    pub depth: usize,
    /// Pack operations into Multiple Service Packets of up to this many bytes; 0 never.
    pub multiple: usize,
    /// Use Read/Write Tag Fragmented for every read and write.
    pub fragment: bool,
    /// Each operation's deadline after it is submitted; `None` keeps the connection's
    /// [`ClientOptions::timeout`].
    #[serde(with = "crate::engine::seconds")]
    pub timeout: Option<Duration>,
}

impl Default for Pipelining {
    /// Synchronous, no Multiple Service Packets, fragmenting only what does not fit.
    fn default() -> Self {
        Pipelining {
            depth: 1,
            multiple: 0,
            fragment: false,
            timeout: None,
        }
    }
}

impl Pipelining {
    /// What a connection's own options say (its depth, multiple, fragment and timeout).
    pub fn of(options: &ClientOptions) -> Self {
        Pipelining {
            depth: options.depth,
            multiple: options.multiple,
            fragment: options.fragment,
            timeout: Some(options.timeout),
        }
    }

    /// The same, with `depth` transactions in flight.
    pub fn depth(self, depth: usize) -> Self {
        Pipelining { depth, ..self }
    }

    /// One transaction at a time (cpppo's `synchronous`).
    pub fn synchronous(self) -> Self {
        self.depth(1)
    }

    /// How many operations may be submitted and unanswered at once.
    pub fn window(&self) -> usize {
        let depth = self.depth.max(1);
        if self.multiple > 0 {
            depth.saturating_mul(QUEUE_PER_DEPTH)
        } else {
            depth
        }
    }
}

impl ClientConn {
    /// Take `pipelining`'s depth, Multiple Service Packet budget and fragment choice for
    /// what is sent from now on (operations already submitted keep their fragment
    /// choice).
    pub fn set_pipelining(&mut self, pipelining: &Pipelining) {
        self.options.depth = pipelining.depth.max(1);
        self.options.multiple = pipelining.multiple;
        self.options.fragment = pipelining.fragment;
    }
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The device answered: a value, or the CIP status it gave instead.
    Answered(Result<Value, CipStatus>),
    /// No answer will come.
    Lost(LostReason),
}

/// One operation's result, cpppo's `(index, description, request, reply, status, value)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Harvested {
    /// The operation's place in the sequence given (from 0).
    pub index: u64,
    /// The operation.
    pub operation: Operation,
    /// How it ended.
    pub outcome: Outcome,
}

impl Harvested {
    /// cpppo's `val`: what a successful operation gave, `None` if it failed.
    pub fn value(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Answered(Ok(value)) => Some(value),
            _ => None,
        }
    }

    /// The value, consuming the result (what cpppo's `results` yields).
    pub fn into_value(self) -> Option<Value> {
        match self.outcome {
            Outcome::Answered(Ok(value)) => Some(value),
            _ => None,
        }
    }

    /// Whether it failed (a CIP status, or no answer).
    pub fn failed(&self) -> bool {
        self.value().is_none()
    }

    /// cpppo's `dsc`: the tag (or numeric address) and element range the operation
    /// addresses, e.g. `SCADA[1-3]`, `@0x0001/1/7`.
    pub fn description(&self) -> String {
        let (tag, element) = self.operation.tag_and_element();
        match element {
            None => tag,
            Some(first) => {
                let last = u64::from(first)
                    .saturating_add(u64::from(self.operation.elements.max(1)))
                    .saturating_sub(1);
                format!("{tag}[{first}-{last}]")
            }
        }
    }

    /// The result line cpppo's client prints with `-p` (its `validate`):
    /// `            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'`.
    pub fn line(&self) -> String {
        let op = &self.operation;
        let writes = matches!(op.method, Method::Write | Method::SetAttributeSingle);
        let act = if writes { "<=" } else { "==" };
        let (val, count) = match (&self.outcome, &op.values) {
            (_, Some(values)) if writes => (py_values(values), usize::from(op.elements)),
            (Outcome::Answered(Ok(Value::Values(values))), _) => (py_values(values), values.len()),
            (Outcome::Answered(Ok(Value::Data(data))), _) => {
                (py_list(data, u8::to_string), usize::from(op.elements))
            }
            _ => ("None".to_string(), usize::from(op.elements)),
        };
        let res = match &self.outcome {
            Outcome::Answered(Ok(_)) => "OK".to_string(),
            Outcome::Answered(Err(status)) => format!(
                "Status {} {}",
                status.general.0,
                if status.additional.is_empty() {
                    String::new()
                } else {
                    py_list(&status.additional, u16::to_string)
                }
            ),
            Outcome::Lost(why) => why.to_string(),
        };
        let tag = op.path.to_string();
        match op.tag_and_element().1 {
            None => format!("{tag:>20}              {act} {val}: {}", py_str(&res)),
            Some(first) => {
                let count = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
                let last = i64::from(first).saturating_add(count - 1);
                format!(
                    "{tag:>20}[{first:>3}-{last:<3}]+{:>3} {act} {val}: {}",
                    op.offset.unwrap_or(0),
                    py_str(&res)
                )
            }
        }
    }
}

/// A string as Python's `repr` shows it.
pub fn py_str(s: &str) -> String {
    let mut t = String::with_capacity(s.len() + 2);
    t.push('\'');
    for c in s.chars() {
        match c {
            '\\' => t.push_str("\\\\"),
            '\'' => t.push_str("\\'"),
            '\n' => t.push_str("\\n"),
            '\r' => t.push_str("\\r"),
            '\t' => t.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                t.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => t.push(c),
        }
    }
    t.push('\'');
    t
}

/// A list as Python's `repr` shows it.
fn py_list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(", "))
}

/// A float as Python's `repr` shows it (shortest round-trip, `.0` on whole numbers).
pub fn py_float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// Values as cpppo prints them (a Python list).
pub fn py_values(values: &Values) -> String {
    fn ints<T: ToString>(v: &[T]) -> String {
        py_list(v, T::to_string)
    }
    match values {
        Values::Bool(v) => py_list(v, |b| u8::from(*b).to_string()),
        Values::Sint(v) => ints(v),
        Values::Int(v) => ints(v),
        Values::Dint(v) => ints(v),
        Values::Lint(v) => ints(v),
        Values::Usint(v) => ints(v),
        Values::Uint(v) => ints(v),
        Values::Udint(v) | Values::Dword(v) => ints(v),
        Values::Ulint(v) => ints(v),
        Values::Real(v) => py_list(v, |x| py_float(f64::from(*x))),
        Values::Lreal(v) => py_list(v, |x| py_float(*x)),
        Values::Sstring(v) | Values::String(v) | Values::LogixString(v) => {
            py_list(v, |t| py_str(&t.to_string()))
        }
        Values::Structure { data, .. } => ints(data),
    }
}

/// What a run of operations came to: cpppo's `(failures, transactions)` and its TPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Operations harvested.
    pub operations: u64,
    /// Of which failed (a CIP status, or no answer).
    pub failures: u64,
    /// Transactions (encapsulated requests) sent for them.
    pub transactions: u64,
    /// Message Router requests sent for them (more than transactions when packed).
    pub requests: u64,
    /// From the first step to the last result, seconds in JSON.
    #[serde(with = "super::seconds")]
    pub elapsed: Duration,
}

impl Summary {
    /// Operations per second.
    pub fn tps(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// cpppo's summary: `Client Tag I/O  Average 1234.567 TPS (  0.001s ea).`
    pub fn line(&self) -> String {
        let each = self.elapsed.as_secs_f64() / (self.operations.max(1) as f64);
        format!(
            "Client Tag I/O  Average {:7.3} TPS ({each:7.3}s ea).",
            self.tps()
        )
    }
}

/// The sans-IO runner of cpppo's `pipeline` over one [`ClientConn`] (see the module
/// documentation for the loop).
#[derive(Debug)]
pub struct Pipeline<I> {
    ops: I,
    pipelining: Pipelining,
    window: usize,
    exhausted: bool,
    next_index: u64,
    issued: BTreeMap<OpId, (u64, Operation)>,
    done: BTreeMap<u64, Harvested>,
    next_result: u64,
    events: VecDeque<ClientEvent>,
    begun: Option<Instant>,
    last: Option<Instant>,
    baseline: (u64, u64),
    failures: u64,
}

impl<I: Iterator<Item = Operation>> Pipeline<I> {
    /// Run `ops` as `pipelining` says.
    pub fn new(ops: I, pipelining: Pipelining) -> Self {
        Pipeline {
            ops,
            window: pipelining.window(),
            pipelining,
            exhausted: false,
            next_index: 0,
            issued: BTreeMap::new(),
            done: BTreeMap::new(),
            next_result: 0,
            events: VecDeque::new(),
            begun: None,
            last: None,
            baseline: (0, 0),
            failures: 0,
        }
    }

    /// The settings it runs with.
    pub fn pipelining(&self) -> &Pipelining {
        &self.pipelining
    }

    /// Drain `client`'s events (results are kept in order for
    /// [`poll_result`](Self::poll_result), the rest for [`poll_event`](Self::poll_event))
    /// and submit as many operations as the window allows; true if anything happened.
    /// Operations submitted to a closed connection come back lost.
    pub fn step(&mut self, now: Instant, client: &mut ClientConn) -> bool {
        if self.begun.is_none() {
            self.begun = Some(now);
            self.baseline = (client.stats().transactions, client.stats().requests);
            client.set_pipelining(&self.pipelining);
        }
        self.last = Some(now);
        let mut moved = false;
        while let Some(event) = client.poll_event() {
            moved = true;
            match event {
                ClientEvent::Reply { op, result } => self.harvest(op, Outcome::Answered(result)),
                ClientEvent::Lost { op, why } => self.harvest(op, Outcome::Lost(why)),
                other => self.events.push_back(other),
            }
        }
        let timeout = self.pipelining.timeout.unwrap_or(client.options().timeout);
        while self.issued.len() < self.window && !self.exhausted {
            let Some(op) = self.ops.next() else {
                self.exhausted = true;
                break;
            };
            let id = client.submit_until(now + timeout, op.clone());
            self.issued.insert(id, (self.next_index, op));
            self.next_index += 1;
            moved = true;
        }
        moved
    }

    fn harvest(&mut self, op: OpId, outcome: Outcome) {
        // An id not issued here belongs to whoever used the connection before.
        if let Some((index, operation)) = self.issued.remove(&op) {
            let done = Harvested {
                index,
                operation,
                outcome,
            };
            self.done.insert(index, done);
        }
    }

    /// The next result, in the order the operations were given.
    pub fn poll_result(&mut self) -> Option<Harvested> {
        let done = self.done.remove(&self.next_result)?;
        self.next_result += 1;
        if done.failed() {
            self.failures += 1;
        }
        Some(done)
    }

    /// Whether [`poll_result`](Self::poll_result) has one now.
    pub fn has_result(&self) -> bool {
        self.done.contains_key(&self.next_result)
    }

    /// A connection event that is not a result (registered, connected, identity, the
    /// connection failed), in order.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Every operation has been taken, answered or lost, and handed out.
    pub fn is_finished(&self) -> bool {
        self.exhausted && self.issued.is_empty() && self.done.is_empty()
    }

    /// Operations given so far whose result has not been handed out.
    pub fn pending(&self) -> usize {
        self.issued.len() + self.done.len()
    }

    /// Harvested so far.
    pub fn harvested(&self) -> u64 {
        self.next_result
    }

    /// The run so far: operations handed out and failed, transactions `client` sent for
    /// them, and the time from the first step to the latest.
    pub fn summary(&self, client: &ClientConn) -> Summary {
        let elapsed = match (self.begun, self.last) {
            (Some(begun), Some(last)) => last.saturating_duration_since(begun),
            _ => Duration::ZERO,
        };
        Summary {
            operations: self.next_result,
            failures: self.failures,
            transactions: client.stats().transactions.saturating_sub(self.baseline.0),
            requests: client.stats().requests.saturating_sub(self.baseline.1),
            elapsed,
        }
    }
}

#[cfg(test)]
mod tests;
