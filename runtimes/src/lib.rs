//! The runtime chosen at run time (`--runtime blocking|smol|mio`): the one place that
//! knows all three runtimes, so that the command-line tools and the conformance suite
//! dispatch on [`Runtime`] instead of each matching on it.
//!
//! Each runtime offers the same things over the same core engines; [`Runtime`] picks
//! one: [`Runtime::serve_with`] serves any [`Server`] (a simulated controller or Modbus
//! device), [`Runtime::operate_with`] runs EtherNet/IP operations through that
//! runtime's `client::Connector` (cpppo's `connector.operate`).
//!
//! ```no_run
//! use cpppo_core::cip::operation::parse_operation;
//! use cpppo_core::enip::client::pipeline::Pipelining;
//! use cpppo_core::enip::client::ClientOptions;
//! use cpppo_runtimes::Runtime;
//!
//! let runtime: Runtime = "smol".parse()?;
//! let ops = vec![parse_operation("SCADA[0-9]")?];
//! let target = ["127.0.0.1:44818".parse()?];
//! for done in runtime.operate(&target, ClientOptions::default(), ops, Pipelining::default())? {
//!     println!("{}", done.line());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use cpppo_core::cip::operation::Operation;
use cpppo_core::engine::{Connection, OnEvent, ServeOptions, Server, Serving};
use cpppo_core::enip::client::pipeline::{Harvested, Outcome, Pipelining, Summary};
use cpppo_core::enip::client::{ClientEvent, ClientOptions};
use cpppo_core::modbus::client::{
    ClientConfig, ClientEvent as ModbusEvent, ModbusOp, Outcome as ModbusOutcome,
};
use cpppo_core::pipeline::Harvested as Done;

/// One of the three runtimes. Pure data (serde as `"blocking"`, `"smol"`, `"mio"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// `cpppo-blocking`: std threads, one per listener and per connection.
    Blocking,
    /// `cpppo-smol`: smol / async-io tasks.
    Smol,
    /// `cpppo-mio`: one mio event loop for every socket.
    Mio,
}

/// The events of a server's connections.
pub type EventOf<S> = <<S as Server>::Connection as Connection>::Event;

/// What [`Runtime::operate_with`] (and, for Modbus, [`Runtime::modbus_with`]) hands its
/// caller as the operations run.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<Op = Operation, O = Outcome, Ev = ClientEvent> {
    /// A connection event that is not a result (registered, connected, failed).
    Event(Ev),
    /// An operation's result, in the order the operations were given.
    Result(Done<Op, O>),
}

/// [`Progress`] of a Modbus client.
pub type ModbusProgress = Progress<ModbusOp, ModbusOutcome, ModbusEvent>;

/// Connect with `$connect` on the runtime chosen, run `$ops` through the connector,
/// hand each result and event to `$on`, then `$end` the connector (`close` a session,
/// `drop` a Modbus client); the summary. The blocking and mio loops are the same, over
/// their own connector; smol's is awaited.
macro_rules! run_connector {
    (@close $conn:ident) => { $conn.close() };
    (@drop $conn:ident) => { drop($conn) };
    (@async close $conn:ident) => { $conn.close().await };
    (@async drop $conn:ident) => { drop($conn) };
    ($runtime:expr, $connect:ident($($arg:expr),*), $ops:expr, $p:expr, $on:expr, $end:ident) => {{
        let mut on = $on;
        macro_rules! drain {
            ($harvest:ident) => {
                while let Some(event) = $harvest.poll_event() {
                    on(Progress::Event(event));
                }
            };
        }
        macro_rules! sync_runtime {
            ($krate:ident) => {{
                let mut conn = $krate::client::Connector::$connect($($arg),*)?;
                let mut harvest = conn.operate($ops, $p);
                while let Some(done) = harvest.next() {
                    drain!(harvest);
                    on(Progress::Result(done));
                }
                drain!(harvest);
                let summary = harvest.summary();
                end!(conn);
                summary
            }};
        }
        macro_rules! end {
            ($conn:ident) => {
                run_connector!(@$end $conn)
            };
        }
        Ok(match $runtime {
            Runtime::Blocking => sync_runtime!(cpppo_blocking),
            Runtime::Smol => smol::block_on(async {
                let mut conn = cpppo_smol::client::Connector::$connect($($arg),*).await?;
                let mut harvest = conn.operate($ops, $p);
                while let Some(done) = harvest.next().await {
                    drain!(harvest);
                    on(Progress::Result(done));
                }
                drain!(harvest);
                let summary = harvest.summary();
                run_connector!(@async $end conn);
                Ok::<_, io::Error>(summary)
            })?,
            Runtime::Mio => sync_runtime!(cpppo_mio),
        })
    }};
}

impl Runtime {
    /// All of them, in a fixed order.
    pub const ALL: [Runtime; 3] = [Runtime::Blocking, Runtime::Smol, Runtime::Mio];

    /// Its name, as `--runtime` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Blocking => "blocking",
            Runtime::Smol => "smol",
            Runtime::Mio => "mio",
        }
    }

    /// Serve `server` on this runtime (no event hook).
    pub fn serve<S>(self, server: S, options: ServeOptions) -> io::Result<Box<dyn Serving<S>>>
    where
        S: Server + Send + 'static,
        S::Connection: Send + 'static,
    {
        Ok(match self {
            Runtime::Blocking => Box::new(cpppo_blocking::serve(server, options)?),
            Runtime::Smol => Box::new(cpppo_smol::serve(server, options)?),
            Runtime::Mio => Box::new(cpppo_mio::serve(server, options)?),
        })
    }

    /// Serve `server` on this runtime, handing each connection event to `on_event`.
    /// Everything is bound before this returns.
    pub fn serve_with<S>(
        self,
        server: S,
        options: ServeOptions,
        on_event: OnEvent<EventOf<S>>,
    ) -> io::Result<Box<dyn Serving<S>>>
    where
        S: Server + Send + 'static,
        S::Connection: Send + 'static,
    {
        Ok(match self {
            Runtime::Blocking => Box::new(cpppo_blocking::serve_with(server, options, on_event)?),
            Runtime::Smol => Box::new(cpppo_smol::serve_with(server, options, on_event)?),
            Runtime::Mio => Box::new(cpppo_mio::serve_with(server, options, on_event)?),
        })
    }

    /// Run `ops` over one EtherNet/IP session to `target` with this runtime's
    /// `client::Connector` (cpppo's `operate`), handing `on` each result (in order) and
    /// connection event as it comes, then close the session; the run's summary. An error
    /// is the connect's: a connection lost later loses the operations left, each
    /// reported as lost.
    pub fn operate_with<I>(
        self,
        target: &[SocketAddr],
        options: ClientOptions,
        ops: I,
        pipelining: Pipelining,
        on: impl FnMut(Progress),
    ) -> io::Result<Summary>
    where
        I: IntoIterator<Item = Operation>,
    {
        run_connector!(self, connect(target, options), ops, pipelining, on, close)
    }

    /// As [`operate_with`](Self::operate_with) for Modbus/TCP: `(unit, request)`
    /// operations through this runtime's `client::Connector<ModbusConn>` (pipelined to
    /// `pipelining.depth`), each response, exception or loss handed to `on` in order.
    pub fn modbus_with<I>(
        self,
        target: &[SocketAddr],
        config: ClientConfig,
        ops: I,
        pipelining: Pipelining,
        on: impl FnMut(ModbusProgress),
    ) -> io::Result<Summary>
    where
        I: IntoIterator<Item = ModbusOp>,
    {
        run_connector!(
            self,
            connect_modbus(target, config),
            ops,
            pipelining,
            on,
            drop
        )
    }

    /// [`modbus_with`](Self::modbus_with), every result collected in order.
    pub fn modbus<I>(
        self,
        target: &[SocketAddr],
        config: ClientConfig,
        ops: I,
        pipelining: Pipelining,
    ) -> io::Result<Vec<Done<ModbusOp, ModbusOutcome>>>
    where
        I: IntoIterator<Item = ModbusOp>,
    {
        let mut done = Vec::new();
        self.modbus_with(target, config, ops, pipelining, |p| {
            if let Progress::Result(r) = p {
                done.push(r);
            }
        })?;
        Ok(done)
    }

    /// [`operate_with`](Self::operate_with), every result collected in order.
    pub fn operate<I>(
        self,
        target: &[SocketAddr],
        options: ClientOptions,
        ops: I,
        pipelining: Pipelining,
    ) -> io::Result<Vec<Harvested>>
    where
        I: IntoIterator<Item = Operation>,
    {
        let mut done = Vec::new();
        self.operate_with(target, options, ops, pipelining, |p| {
            if let Progress::Result(r) = p {
                done.push(r);
            }
        })?;
        Ok(done)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a runtime's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRuntime(pub String);

impl fmt::Display for UnknownRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a runtime: expected blocking, smol or mio",
            self.0
        )
    }
}

impl std::error::Error for UnknownRuntime {}

impl FromStr for Runtime {
    type Err = UnknownRuntime;

    fn from_str(text: &str) -> Result<Self, UnknownRuntime> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownRuntime(text.to_string()))
    }
}

/// `--runtime blocking|smol|mio` for clap (feature `clap`).
#[cfg(feature = "clap")]
impl clap::ValueEnum for Runtime {
    fn value_variants<'a>() -> &'a [Self] {
        &Runtime::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            Runtime::Blocking => "std threads: one per listener and per connection",
            Runtime::Smol => "smol / async-io tasks",
            Runtime::Mio => "one mio event loop thread for every socket",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_print_and_serialize() {
        for r in Runtime::ALL {
            assert_eq!(r.to_string().parse::<Runtime>(), Ok(r));
            let json = serde_json::to_string(&r).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", r.name()));
        }
        assert_eq!(" MIO ".parse::<Runtime>(), Ok(Runtime::Mio));
        let e = "tokio".parse::<Runtime>().err();
        assert_eq!(
            e.map(|e| e.to_string()).unwrap_or_default(),
            "\"tokio\" is not a runtime: expected blocking, smol or mio"
        );
    }
}
