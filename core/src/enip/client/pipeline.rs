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

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CipStatus, ClientConn, ClientEvent, ClientOptions, LostReason, OpId, Value};
use crate::cip::data::Values;
use crate::cip::operation::{Method, Operation};
pub use crate::pipeline::{Done, Pipelined, Pipelining, Summary, QUEUE_PER_DEPTH};

/// The runner over an EtherNet/IP [`ClientConn`] (see [`crate::pipeline::Pipeline`]).
pub type Pipeline<I> = crate::pipeline::Pipeline<I, ClientConn>;

/// One EtherNet/IP operation's result: its place, the [`Operation`] and its [`Outcome`]
/// (cpppo's `(index, description, request, reply, status, value)`).
pub type Harvested = crate::pipeline::Harvested<Operation, Outcome>;

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

impl Pipelined for ClientConn {
    type Op = Operation;
    type Outcome = Outcome;
    type Value = Value;
    type Event = ClientEvent;

    fn begin(&mut self, pipelining: &Pipelining) {
        self.set_pipelining(pipelining);
    }

    fn default_timeout(&self) -> Duration {
        self.options.timeout
    }

    fn submit_op(&mut self, now: Instant, op: Operation, timeout: Duration) -> u64 {
        self.submit_until(now + timeout, op).0
    }

    fn poll_done(&mut self) -> Option<Done<Outcome, ClientEvent>> {
        Some(match self.poll_event()? {
            ClientEvent::Reply {
                op: OpId(id),
                result,
            } => Done::Finished {
                id,
                outcome: Outcome::Answered(result),
            },
            ClientEvent::Lost { op: OpId(id), why } => Done::Finished {
                id,
                outcome: Outcome::Lost(why),
            },
            other => Done::Other(other),
        })
    }

    fn value(outcome: Outcome) -> Option<Value> {
        match outcome {
            Outcome::Answered(Ok(value)) => Some(value),
            _ => None,
        }
    }

    fn failed(outcome: &Outcome) -> bool {
        !matches!(outcome, Outcome::Answered(Ok(_)))
    }

    fn counters(&self) -> (u64, u64) {
        (self.stats.transactions, self.stats.requests)
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
        ClientConn::value(self.outcome)
    }

    /// Whether it failed (a CIP status, or no answer).
    pub fn failed(&self) -> bool {
        ClientConn::failed(&self.outcome)
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

#[cfg(test)]
mod tests;
