//! The EtherNet/IP poller (cpppo's `cpppo.server.enip.poll`) as a sans-IO engine: named
//! [`Parameter`]s (typed CIP attributes or tags), each polled at its own rate through one
//! getattr [`Proxy`] (one gateway connection), with value and failure events, reconnect
//! with exponential backoff and cpppo's load figures.
//!
//! - [`Poller::poll`] adds a parameter with its rate; [`Poller::read`] is its last value
//!   (`None` until polled, or while offline); [`Poller::write`] sends a write at once
//!   through the same gateway.
//! - A cycle reads every parameter due at one instant in one proxy request (pipelined and,
//!   with [`ClientOptions::multiple`], packed). The next cycle of a parameter is due one
//!   rate after the last was due; cycles missed while a slow one ran, or during a
//!   backoff, are skipped ([`crate::polling::next_due`]), keeping the cadence.
//! - A value that differs from the last one read is a [`PollEvent::Changed`] (with
//!   [`PollerConfig::every_value`], every value read is a [`PollEvent::Polled`] too); a
//!   parameter that fails is reported once ([`PollEvent::Failed`]) until it succeeds.
//! - A cycle in which nothing succeeded because the gateway failed (no answer, the
//!   connection lost or refused) takes the device offline and waits before the next
//!   attempt: [`PollerConfig::backoff_min`] (default: the cycle), growing by
//!   [`PollerConfig::backoff_multiplier`] up to [`PollerConfig::backoff_max`] (default:
//!   ten times the first), as cpppo's `poll.run` does; back to the first once a read
//!   succeeds. The wait is a deadline in [`Poller::poll_timeout`].
//! - [`Poller::load`]: the time from a cycle's start to its end over the poll period
//!   (the fastest rate in the cycle), averaged over about 1, 5 and 15 minutes
//!   ([`crate::polling::Load`], shared with the Modbus poller).
//!
//! ## Connecting
//!
//! As the proxy's: [`PollEvent::Connect`] asks the adapter for a connection, answered
//! with [`Poller::handle_connected`] or [`Poller::handle_connect_failed`];
//! [`PollEvent::Disconnect`] asks it to close one (the gateway was closed after a
//! failure); [`Poller::handle_disconnected`] reports one closed by the peer. The
//! runtimes' client loops drive it as any client engine ([`crate::engine::Driven`]).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cpppo_core::controller::{Controller, ControllerConfig};
//! use cpppo_core::enip::client::ClientOptions;
//! use cpppo_core::enip::poller::{PollEvent, Poller, PollerConfig};
//! use cpppo_core::enip::proxy::powerflex_750_series;
//! use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};
//!
//! let t0 = Instant::now();
//! let mut plc = Controller::new(ControllerConfig::default());
//! plc.tags_mut().add_str("Output_Current@0x93/7/10=REAL").unwrap();
//! let mut server = Server::new(plc, ServerOptions::default());
//! let mut conn = None;
//!
//! let params = powerflex_750_series();
//! let mut poller = Poller::new(PollerConfig { client: ClientOptions::simple(), ..PollerConfig::default() });
//! poller.poll(t0, params.get("Output Current").unwrap().clone(), Some(Duration::from_millis(500)));
//!
//! // One loop step: act on Connect, move bytes, collect the log.
//! let mut step = |now: Instant, poller: &mut Poller| {
//!     let mut log = Vec::new();
//!     loop {
//!         while let Some(event) = poller.poll_event() {
//!             if event == PollEvent::Connect {
//!                 conn = Some(ServerConn::new(now, "127.0.0.1:50000".parse().unwrap(), &mut server));
//!                 poller.handle_connected(now);
//!             }
//!             log.push(event.to_string());
//!         }
//!         let (mut up, mut down) = (Vec::new(), Vec::new());
//!         while poller.poll_transmit(now, &mut up) {}
//!         let Some(c) = conn.as_mut() else { break };
//!         c.handle_input(now, &up, &mut server);
//!         while c.poll_transmit(now, &mut down) {}
//!         if down.is_empty() { break }
//!         poller.handle_input(now, &down);
//!     }
//!     log
//! };
//! let log = step(t0, &mut poller);
//! assert_eq!(log.last().unwrap(), "Output Current == [0.0] Amps (was: None)");
//! assert_eq!(poller.poll_timeout(), Some(t0 + Duration::from_millis(500)));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::ClientOptions;
use super::proxy::{
    ParamError, ParamValue, Parameter, Parameters, Proxy, ProxyError, ProxyEvent, Reply, RequestId,
};
use crate::polling::{next_due, Backoff, Load};

/// cpppo's poll cycle: once a second.
pub const DEFAULT_CYCLE: Duration = Duration::from_secs(1);
/// cpppo's backoff growth: each wait 1.5 times the last.
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 1.5;
/// cpppo's longest backoff, in first waits.
pub const BACKOFF_MAX_FACTOR: u32 = 10;

/// How a [`Poller`] polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PollerConfig {
    /// The gateway's client options (depth, multiple, timeout, route and send path;
    /// [`ClientOptions::simple`] for a PowerFlex).
    pub client: ClientOptions,
    /// The rate of a parameter polled without one (cpppo's `--cycle`).
    pub cycle: Duration,
    /// The first wait after a failed cycle (`None`: the cycle).
    pub backoff_min: Option<Duration>,
    /// The longest wait (`None`: ten times the first).
    pub backoff_max: Option<Duration>,
    /// Each wait is the last times this.
    pub backoff_multiplier: f64,
    /// Report every value read ([`PollEvent::Polled`], as cpppo's poll hands each one
    /// to its `process`), not only changes.
    pub every_value: bool,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            client: ClientOptions::default(),
            cycle: DEFAULT_CYCLE,
            backoff_min: None,
            backoff_max: None,
            backoff_multiplier: DEFAULT_BACKOFF_MULTIPLIER,
            every_value: false,
        }
    }
}

impl PollerConfig {
    /// The backoff these settings describe.
    fn backoff(&self) -> Backoff {
        let first = self.backoff_min.unwrap_or(self.cycle);
        let max = self
            .backoff_max
            .unwrap_or_else(|| first.saturating_mul(BACKOFF_MAX_FACTOR));
        Backoff::new(first, max, self.backoff_multiplier)
    }
}

/// A parameter polled, as returned by [`Poller::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PollId(pub usize);

/// A write, as returned by [`Poller::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteId(pub u64);

/// What happened, for the adapter (`Connect`, `Disconnect`) and the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollEvent {
    /// Open a connection to the device, then call [`Poller::handle_connected`] or
    /// [`Poller::handle_connect_failed`].
    Connect,
    /// A session is registered on the new connection.
    Opened {
        /// The session handle.
        session: u32,
    },
    /// Close the connection: the gateway was closed after a failure.
    Disconnect {
        /// Why, in words.
        reason: String,
    },
    /// A cycle failed for want of a gateway; the next one comes after this wait.
    Reconnecting {
        /// How long.
        retry_in: Duration,
    },
    /// A parameter's value changed (or was read for the first time).
    Changed {
        /// The parameter's name.
        name: String,
        /// Its units, if any.
        units: Option<String>,
        /// The value before (`None`: never read).
        old: Option<ParamValue>,
        /// The value now.
        new: ParamValue,
    },
    /// A value read, changed or not (with [`PollerConfig::every_value`]; before the
    /// [`PollEvent::Changed`] when it changed).
    Polled {
        /// The parameter's name.
        name: String,
        /// The value.
        value: ParamValue,
    },
    /// A parameter started failing (reported once until it succeeds again).
    Failed {
        /// The parameter's name.
        name: String,
        /// Why.
        error: ParamError,
    },
    /// A read succeeded after none did.
    Online,
    /// A cycle ended with no read succeeding.
    Offline,
    /// A write finished.
    Written {
        /// The write.
        write: WriteId,
        /// The parameter written.
        name: String,
    },
    /// A write failed.
    WriteFailed {
        /// The write.
        write: WriteId,
        /// The parameter.
        name: String,
        /// Why.
        error: ParamError,
    },
}

impl fmt::Display for PollEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollEvent::Connect => f.write_str("connect"),
            PollEvent::Opened { session } => write!(f, "opened session 0x{session:08X}"),
            PollEvent::Disconnect { reason } => write!(f, "disconnect: {reason}"),
            PollEvent::Reconnecting { retry_in } => {
                write!(f, "reconnecting in {:.3}s", retry_in.as_secs_f64())
            }
            PollEvent::Changed {
                name,
                units,
                old,
                new,
            } => {
                write!(f, "{name} == {new}")?;
                if let Some(u) = units {
                    write!(f, " {u}")?;
                }
                match old {
                    Some(old) => write!(f, " (was: {old})"),
                    None => f.write_str(" (was: None)"),
                }
            }
            // cpppo's poll prints each value as `"%15s: %r"`.
            PollEvent::Polled { name, value } => write!(f, "{name:>15}: {value}"),
            PollEvent::Failed { name, error } => write!(f, "{name}: failed: {error}"),
            PollEvent::Online => f.write_str("online"),
            PollEvent::Offline => f.write_str("offline"),
            PollEvent::Written { name, .. } => write!(f, "wrote {name}"),
            PollEvent::WriteFailed { name, error, .. } => {
                write!(f, "write {name} failed: {error}")
            }
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollerStatistics {
    /// Poll cycles finished.
    pub cycles: u64,
    /// Cycles skipped because the one before ran late or the poller was backing off.
    pub slipped: u64,
    /// Parameter reads sent.
    pub reads: u64,
    /// Parameter reads that failed.
    pub read_failures: u64,
    /// Cycles that failed for want of a gateway.
    pub backoffs: u64,
    /// Writes sent.
    pub writes: u64,
}

#[derive(Debug, Clone)]
struct Polled {
    param: Parameter,
    rate: Duration,
    due: Instant,
    value: Option<ParamValue>,
    failing: bool,
}

#[derive(Debug)]
struct Cycle {
    request: RequestId,
    start: Instant,
    period: Duration,
    polled: Vec<usize>,
}

/// cpppo's EtherNet/IP poller as a sans-IO engine. See the [module documentation](self).
#[derive(Debug)]
pub struct Poller {
    config: PollerConfig,
    proxy: Proxy,
    polled: Vec<Polled>,
    cycle: Option<Cycle>,
    writes: BTreeMap<RequestId, (WriteId, String)>,
    next_write: u64,
    backoff: Backoff,
    waiting: Option<Instant>,
    online: bool,
    load: Load,
    events: VecDeque<PollEvent>,
    stats: PollerStatistics,
}

impl Poller {
    /// A poller with nothing to poll yet; it connects once there is.
    pub fn new(config: PollerConfig) -> Self {
        Poller {
            proxy: Proxy::new(config.client.clone()),
            backoff: config.backoff(),
            config,
            polled: Vec::new(),
            cycle: None,
            writes: BTreeMap::new(),
            next_write: 0,
            waiting: None,
            online: false,
            load: Load::default(),
            events: VecDeque::new(),
            stats: PollerStatistics::default(),
        }
    }

    // ----- getters

    /// The configuration.
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    /// Counters.
    pub fn statistics(&self) -> &PollerStatistics {
        &self.stats
    }

    /// The proxy underneath (its gateway and counters).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// cpppo's load figures.
    pub fn load(&self) -> Load {
        self.load
    }

    /// Whether the last cycle had a read succeed.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The last value polled of the parameter called `name` (found as
    /// [`Parameters::get`] finds names): `None` before it was read, or while offline.
    pub fn read(&self, name: &str) -> Option<&ParamValue> {
        if !self.online {
            return None;
        }
        let key = Parameters::key(name);
        self.polled
            .iter()
            .find(|p| Parameters::key(&p.param.name) == key)
            .and_then(|p| p.value.as_ref())
    }

    // ----- commands

    /// Poll `param` every `rate` (the configured cycle if `None`), from `now`.
    pub fn poll(&mut self, now: Instant, param: Parameter, rate: Option<Duration>) -> PollId {
        self.polled.push(Polled {
            param,
            rate: rate
                .unwrap_or(self.config.cycle)
                .max(Duration::from_nanos(1)),
            due: now,
            value: None,
            failing: false,
        });
        self.drive(now);
        PollId(self.polled.len() - 1)
    }

    /// Write `values` (cpppo's value syntax: `1.5`, `(DINT)7`, `1,2,3`) to `param`
    /// now, through the gateway (opening one if needed), beside any cycle in progress.
    pub fn write(
        &mut self,
        now: Instant,
        param: &Parameter,
        values: &str,
    ) -> Result<WriteId, ProxyError> {
        let request = self.proxy.write(now, param, values)?;
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.stats.writes += 1;
        self.writes.insert(request, (id, param.name.clone()));
        self.drive(now);
        Ok(id)
    }

    // ----- inputs

    /// The connection asked for with [`PollEvent::Connect`] is up.
    pub fn handle_connected(&mut self, now: Instant) {
        self.proxy.handle_connected(now);
        self.drive(now);
    }

    /// The connection asked for could not be made (`reason` in words).
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        self.proxy.handle_connect_failed(now, reason);
        self.drive(now);
    }

    /// The connection closed or failed.
    pub fn handle_disconnected(&mut self, now: Instant) {
        self.proxy.handle_disconnected(now);
        self.drive(now);
    }

    /// Bytes received from the device.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.proxy.handle_input(now, data);
        self.drive(now);
    }

    /// Time has reached `now`: operation deadlines, the end of a backoff, the next
    /// cycle.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.proxy.poll_timeout().is_some_and(|at| at <= now) {
            self.proxy.handle_timeout(now);
        }
        if self.waiting.is_some_and(|at| at <= now) {
            self.waiting = None;
        }
        self.drive(now);
    }

    // ----- outputs

    /// Append the requests ready to send.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.drive(now);
        let sent = self.proxy.poll_transmit(now, out);
        self.drive(now);
        sent
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PollEvent> {
        self.events.pop_front()
    }

    /// When [`Poller::handle_timeout`] must next be called: an operation's deadline, the
    /// end of a backoff, or the next cycle (when none is in progress).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next_cycle = if self.cycle.is_none() {
            let due = self.polled.iter().map(|p| p.due).min();
            match (due, self.waiting) {
                (Some(due), Some(wait)) => Some(due.max(wait)),
                (due, _) => due,
            }
        } else {
            None
        };
        crate::engine::earliest(self.proxy.poll_timeout(), next_cycle)
    }

    // ----- internals

    /// Take in the proxy's events, then start a cycle if one is due.
    fn drive(&mut self, now: Instant) {
        while let Some(event) = self.proxy.poll_event() {
            match event {
                ProxyEvent::Connect => self.events.push_back(PollEvent::Connect),
                ProxyEvent::Opened { session } => {
                    self.events.push_back(PollEvent::Opened { session })
                }
                ProxyEvent::Disconnect { reason } => {
                    self.events.push_back(PollEvent::Disconnect { reason })
                }
                ProxyEvent::Done { request, results } => {
                    if self.cycle.as_ref().is_some_and(|c| c.request == request) {
                        self.cycle_done(now, results);
                    } else if let Some((write, name)) = self.writes.remove(&request) {
                        let result = results
                            .into_iter()
                            .next()
                            .unwrap_or(Err(ParamError::Convert("no result".into())));
                        self.events.push_back(match result {
                            Ok(_) => PollEvent::Written { write, name },
                            Err(error) => PollEvent::WriteFailed { write, name, error },
                        });
                    }
                }
            }
        }
        if self.cycle.is_none()
            && !self.waiting.is_some_and(|at| at > now)
            && self.polled.iter().any(|p| p.due <= now)
        {
            self.waiting = None;
            self.start_cycle(now);
        }
    }

    fn start_cycle(&mut self, now: Instant) {
        let mut period: Option<Duration> = None;
        let mut polled = Vec::new();
        let mut params = Vec::new();
        for (i, p) in self.polled.iter_mut().enumerate() {
            if p.due > now {
                continue;
            }
            let (due, slipped) = next_due(p.due, p.rate, now);
            p.due = due;
            self.stats.slipped = self.stats.slipped.saturating_add(slipped);
            period = Some(period.map_or(p.rate, |r| r.min(p.rate)));
            polled.push(i);
            params.push(p.param.clone());
        }
        self.stats.reads += params.len() as u64;
        // Set before the request, which may finish at once (no gateway to be had).
        self.cycle = Some(Cycle {
            request: RequestId(u64::MAX),
            start: now,
            period: period.unwrap_or(self.config.cycle),
            polled,
        });
        let request = self.proxy.read(now, &params);
        if let Some(c) = self.cycle.as_mut() {
            c.request = request;
        }
        // The request's events (a Connect, or Done when it could not be sent at all).
        self.drive(now);
    }

    fn cycle_done(&mut self, now: Instant, results: Vec<Result<Reply, ParamError>>) {
        let Some(cycle) = self.cycle.take() else {
            return;
        };
        self.stats.cycles += 1;
        let mut succeeded = 0usize;
        let mut link_failed = false;
        for (i, result) in cycle.polled.iter().zip(results) {
            let Some(p) = self.polled.get_mut(*i) else {
                continue;
            };
            match result {
                Ok(Reply::Value(new)) => {
                    succeeded += 1;
                    p.failing = false;
                    if !self.online {
                        self.online = true;
                        self.events.push_back(PollEvent::Online);
                    }
                    if self.config.every_value {
                        self.events.push_back(PollEvent::Polled {
                            name: p.param.name.clone(),
                            value: new.clone(),
                        });
                    }
                    if p.value.as_ref() != Some(&new) {
                        self.events.push_back(PollEvent::Changed {
                            name: p.param.name.clone(),
                            units: p.param.units.clone(),
                            old: p.value.replace(new.clone()),
                            new,
                        });
                    }
                }
                Ok(Reply::Written) => {}
                Err(error) => {
                    self.stats.read_failures += 1;
                    link_failed |= error.is_link_failure();
                    if !p.failing {
                        p.failing = true;
                        self.events.push_back(PollEvent::Failed {
                            name: p.param.name.clone(),
                            error,
                        });
                    }
                }
            }
        }
        self.load
            .sample(now.saturating_duration_since(cycle.start), cycle.period);
        if succeeded > 0 {
            self.backoff.reset();
            return;
        }
        if self.online {
            self.online = false;
            self.events.push_back(PollEvent::Offline);
        }
        if link_failed {
            self.stats.backoffs += 1;
            let retry_in = self.backoff.next_wait();
            self.waiting = Some(now.checked_add(retry_in).unwrap_or(now));
            self.events.push_back(PollEvent::Reconnecting { retry_in });
        }
    }
}

#[cfg(test)]
mod tests;
