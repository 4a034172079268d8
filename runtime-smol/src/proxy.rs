//! cpppo's getattr proxy as async calls: [`Gateway::read`] and [`Gateway::write`] are
//! `via.read(params)` and `via.write(...)` on core's sans-IO [`Proxy`], over an
//! `Async<TcpStream>` that is connected (asynchronously) when needed and dropped after a
//! failure (the next call connects again), as cpppo's `close_gateway` does.
//!
//! ```no_run
//! use cpppo_smol::proxy::Gateway;
//! use cpppo_core::enip::client::ClientOptions;
//! use cpppo_core::enip::proxy::{powerflex_750_series, Reply};
//!
//! smol::block_on(async {
//!     let params = powerflex_750_series();
//!     let mut via = Gateway::new(vec!["10.0.1.2:44818".parse()?], ClientOptions::simple());
//!     let current = params.get("Output Current").unwrap();
//!     if let Ok(Reply::Value(amps)) = &via.read(std::slice::from_ref(current)).await?[0] {
//!         println!("Output Current == {amps} Amps");
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cpppo_core::enip::client::ClientOptions;
use cpppo_core::enip::proxy::{
    Awaited, ParamError, Parameter, Proxy, ProxyError, Reply, RequestId,
};

use crate::client::{connect, ClientDriver};

/// How long the loop waits at most without a deadline.
const IDLE: Duration = Duration::from_secs(1);

/// A proxy and its socket: one gateway to one device.
#[derive(Debug)]
pub struct Gateway {
    proxy: Proxy,
    driver: ClientDriver,
    target: Vec<SocketAddr>,
}

impl Gateway {
    /// A gateway to the device at `target` (each address tried in turn, within the
    /// options' timeout); nothing is connected until the first call.
    pub fn new(target: Vec<SocketAddr>, options: ClientOptions) -> Self {
        Gateway {
            proxy: Proxy::new(options),
            driver: ClientDriver::new(None),
            target,
        }
    }

    /// The proxy underneath (its counters, whether a gateway is open).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Read `params`: one result each, in order. A parameter that fails is an `Err` in
    /// its place; `io::Error` only when the socket loop itself fails.
    pub async fn read(
        &mut self,
        params: &[Parameter],
    ) -> io::Result<Vec<Result<Reply, ParamError>>> {
        let id = self.proxy.read(Instant::now(), params);
        self.complete(id).await
    }

    /// Write `values` (cpppo's value syntax) to `param`.
    pub async fn write(
        &mut self,
        param: &Parameter,
        values: &str,
    ) -> Result<io::Result<Result<Reply, ParamError>>, ProxyError> {
        let id = self.proxy.write(Instant::now(), param, values)?;
        Ok(self.complete(id).await.map(|mut r| {
            r.pop()
                .unwrap_or(Err(ParamError::Convert("no result".into())))
        }))
    }

    /// Run the loop until request `id` is done; a connection asked for is made between
    /// runs of the loop, without blocking the executor.
    async fn complete(&mut self, id: RequestId) -> io::Result<Vec<Result<Reply, ParamError>>> {
        let timeout = self.proxy.options().timeout;
        loop {
            let mut out = None;
            let mut wants = false;
            self.driver
                .run(&mut self.proxy, IDLE, |proxy, driver| {
                    let mut moved = false;
                    while !wants {
                        let Some(next) = proxy.poll_request(id) else {
                            break;
                        };
                        moved = true;
                        match next {
                            Awaited::Connect => wants = true,
                            Awaited::Disconnect => driver.stream = None,
                            Awaited::Done(results) => out = Some(results),
                        }
                    }
                    (moved, wants || out.is_some())
                })
                .await?;
            if let Some(results) = out {
                return Ok(results);
            }
            if wants {
                match connect(&self.target, timeout).await {
                    Ok(stream) => {
                        self.driver.stream = Some(stream);
                        self.proxy.handle_connected(Instant::now());
                    }
                    Err(e) => self
                        .proxy
                        .handle_connect_failed(Instant::now(), &e.to_string()),
                }
            }
        }
    }
}
