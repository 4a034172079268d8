//! cpppo's `connector.pipeline` / `.synchronous` / `.results` / `.process`, sans-IO and
//! for any client engine ([`Pipelined`]: the EtherNet/IP and the Modbus client): a
//! [`Pipeline`] takes a sequence of operations, keeps the engine fed with up to `depth`
//! in flight (and, for EtherNet/IP, enough queued behind them for `multiple` to pack),
//! and hands back each operation's [`Harvested`] result in the order the operations were
//! given, whatever order the replies came in.
//!
//! Every runtime's client (`cpppo_blocking::client::Connector`, `cpppo_smol`'s,
//! `cpppo_mio`'s) is this runner plus a socket: its loop is
//!
//! 1. [`Pipeline::step`] (drains the engine's events, submits what the window allows);
//! 2. flush the engine's `poll_transmit` to the socket;
//! 3. [`Pipeline::poll_result`] until empty, handing each to the caller;
//! 4. once [`Pipeline::is_finished`], stop; else wait for input or the engine's
//!    `poll_timeout` and go to 1.
//!
//! The EtherNet/IP side (cpppo's result lines, `Pipelining::of`) is
//! [`crate::enip::client::pipeline`], with an example.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Operations submitted ahead of those in flight, per unit of depth, when `multiple`
/// packs them (EtherNet/IP Multiple Service Packets): enough to fill a Multiple Service Packet, while each operation's timeout
/// still starts near when it is sent.
pub const QUEUE_PER_DEPTH: usize = 32;

/// The keywords of cpppo's `pipeline(operations, depth, multiple, fragment, timeout)`
/// (`multiple` and `fragment` are EtherNet/IP's; a Modbus client takes the depth and
/// timeout).
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
    /// Each operation's timeout; `None` keeps the engine's own
    /// ([`Pipelined::default_timeout`]).
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
    #[serde(with = "seconds")]
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

/// A [`Duration`] as seconds (as people write timeouts in a configuration file).
pub(crate) mod seconds {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// What the runner needs of a client engine: submit an operation with a timeout, and
/// hand back, one at a time, each finished operation's outcome (by the id `submit_op`
/// gave) or any other event. The EtherNet/IP and Modbus client engines implement it.
pub trait Pipelined {
    /// One operation.
    type Op: Clone + std::fmt::Debug;
    /// How one operation ended.
    type Outcome: std::fmt::Debug;
    /// What a successful operation gives (cpppo's `val`).
    type Value: std::fmt::Debug;
    /// An event that is not an operation's end (registered, connection lost...).
    type Event: std::fmt::Debug;

    /// Take the run's depth (and, where the engine has them, packing and fragmenting)
    /// for what is sent from now on.
    fn begin(&mut self, pipelining: &Pipelining);
    /// The engine's own per-operation timeout.
    fn default_timeout(&self) -> Duration;
    /// Queue `op`, to end within `timeout`; its id.
    fn submit_op(&mut self, now: Instant, op: Self::Op, timeout: Duration) -> u64;
    /// The next finished operation or other event.
    fn poll_done(&mut self) -> Option<Done<Self::Outcome, Self::Event>>;
    /// What a successful outcome gives; `None` for a failed one.
    fn value(outcome: Self::Outcome) -> Option<Self::Value>;
    /// Whether an outcome is a failure.
    fn failed(outcome: &Self::Outcome) -> bool;
    /// Counters for the summary: (transactions, requests) sent so far.
    fn counters(&self) -> (u64, u64);
}

/// What [`Pipelined::poll_done`] hands back.
#[derive(Debug, Clone, PartialEq)]
pub enum Done<O, E> {
    /// The operation with this id ended.
    Finished {
        /// The id [`Pipelined::submit_op`] gave.
        id: u64,
        /// How it ended.
        outcome: O,
    },
    /// Something else happened.
    Other(E),
}

/// One operation's result: cpppo's `(index, description, request, reply, status,
/// value)` as its place in the sequence, the operation, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Harvested<Op, O> {
    /// The operation's place in the sequence given (from 0).
    pub index: u64,
    /// The operation.
    pub operation: Op,
    /// How it ended.
    pub outcome: O,
}

/// The sans-IO runner of cpppo's `pipeline` over one client engine (see the module
/// documentation for the loop).
#[derive(Debug)]
pub struct Pipeline<I, E: Pipelined> {
    ops: I,
    pipelining: Pipelining,
    window: usize,
    exhausted: bool,
    next_index: u64,
    issued: BTreeMap<u64, (u64, E::Op)>,
    done: BTreeMap<u64, Harvested<E::Op, E::Outcome>>,
    next_result: u64,
    events: VecDeque<E::Event>,
    begun: Option<Instant>,
    last: Option<Instant>,
    baseline: (u64, u64),
    failures: u64,
}

impl<I: Iterator<Item = E::Op>, E: Pipelined> Pipeline<I, E> {
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
    pub fn step(&mut self, now: Instant, client: &mut E) -> bool {
        if self.begun.is_none() {
            self.begun = Some(now);
            self.baseline = client.counters();
            client.begin(&self.pipelining);
        }
        self.last = Some(now);
        let mut moved = false;
        while let Some(done) = client.poll_done() {
            moved = true;
            match done {
                Done::Finished { id, outcome } => {
                    // An id not issued here belongs to whoever used the engine before.
                    if let Some((index, operation)) = self.issued.remove(&id) {
                        let done = Harvested {
                            index,
                            operation,
                            outcome,
                        };
                        self.done.insert(index, done);
                    }
                }
                Done::Other(event) => self.events.push_back(event),
            }
        }
        let timeout = self
            .pipelining
            .timeout
            .unwrap_or_else(|| client.default_timeout());
        while self.issued.len() < self.window && !self.exhausted {
            let Some(op) = self.ops.next() else {
                self.exhausted = true;
                break;
            };
            let id = client.submit_op(now, op.clone(), timeout);
            self.issued.insert(id, (self.next_index, op));
            self.next_index += 1;
            moved = true;
        }
        moved
    }

    /// The next result, in the order the operations were given.
    pub fn poll_result(&mut self) -> Option<Harvested<E::Op, E::Outcome>> {
        let done = self.done.remove(&self.next_result)?;
        self.next_result += 1;
        if E::failed(&done.outcome) {
            self.failures += 1;
        }
        Some(done)
    }

    /// Whether [`poll_result`](Self::poll_result) has one now.
    pub fn has_result(&self) -> bool {
        self.done.contains_key(&self.next_result)
    }

    /// An event that is not a result (for EtherNet/IP: registered, connected, identity,
    /// the connection failed), in order.
    pub fn poll_event(&mut self) -> Option<E::Event> {
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
    pub fn summary(&self, client: &E) -> Summary {
        let elapsed = match (self.begun, self.last) {
            (Some(begun), Some(last)) => last.saturating_duration_since(begun),
            _ => Duration::ZERO,
        };
        let (transactions, requests) = client.counters();
        Summary {
            operations: self.next_result,
            failures: self.failures,
            transactions: transactions.saturating_sub(self.baseline.0),
            requests: requests.saturating_sub(self.baseline.1),
            elapsed,
        }
    }
}
