//! The client loop of an engine that asks for its own connections (the Modbus poller,
//! the EtherNet/IP getattr proxy and poller: a `Connect` event, answered by connecting a
//! socket), on the `--runtime` chosen: [`cpppo_blocking::client`],
//! [`cpppo_smol::client`] or [`cpppo_mio::client`]. What the events mean stays with the
//! caller's `step`; this only connects and drops sockets when told.

use std::net::SocketAddr;
use std::time::Duration;

use cpppo_core::engine::Driven;
use cpppo_core::polling::Load;

use crate::serve::{CliError, Runtime};

/// Connect (`true`) or drop (`false`) the engine's socket; an error is the connect's.
pub type Link<'a> = dyn FnMut(bool) -> std::io::Result<()> + 'a;

/// Run `engine` on `runtime` until `step` answers done. `step` drains the engine's events
/// and acts on them, calling `link(true)` to connect to `target` (each address tried
/// within `timeout`) and `link(false)` to drop the connection, and answers
/// `(moved, done)`. `idle` bounds a wait without a deadline.
pub fn run_linked<E: Driven>(
    runtime: Runtime,
    engine: &mut E,
    target: &[SocketAddr],
    timeout: Duration,
    idle: Duration,
    mut step: impl FnMut(&mut E, &mut Link<'_>) -> (bool, bool),
) -> Result<(), CliError> {
    let socket = |e: std::io::Error| CliError::failure(format!("socket: {e}"));
    match runtime {
        Runtime::Blocking => {
            use cpppo_blocking::client::{connect, ClientDriver};
            ClientDriver::new(None)
                .run(engine, idle, |e, d| {
                    step(e, &mut |up| {
                        d.stream = if up {
                            Some(connect(target, timeout)?)
                        } else {
                            None
                        };
                        Ok(())
                    })
                })
                .map_err(socket)
        }
        Runtime::Smol => {
            use cpppo_smol::client::ClientDriver;
            smol::block_on(ClientDriver::new(None).run(engine, idle, |e, d| {
                step(e, &mut |up| {
                    // The connect blocks the (single-task) executor, as the loop would
                    // wait for it anyway.
                    d.stream = if up {
                        let s = cpppo_blocking::client::connect(target, timeout)?;
                        Some(smol::Async::new(s)?)
                    } else {
                        None
                    };
                    Ok(())
                })
            }))
            .map_err(socket)
        }
        Runtime::Mio => {
            use cpppo_mio::client::{connect, ClientDriver};
            ClientDriver::new(None)
                .map_err(socket)?
                .run(engine, idle, |e, d| {
                    step(e, &mut |up| {
                        if up {
                            d.attach(connect(target, timeout)?)
                        } else {
                            d.detach();
                            Ok(())
                        }
                    })
                })
                .map_err(socket)
        }
    }
}

/// A poller's one-minute load on stderr (`-v`), when its two decimals changed since
/// `last`.
pub fn report_load(command: &str, load: Load, last: &mut String) {
    let now = format!("{:.2}", load.one.unwrap_or(0.0));
    if now != *last {
        eprintln!("{command}: load: {now}");
        *last = now;
    }
}
