//! cpppo's getattr proxy as calls on one mio event loop: [`Gateway::read`] and
//! [`Gateway::write`] are `via.read(params)` and `via.write(...)` on core's sans-IO
//! [`Proxy`], over a non-blocking socket registered on the loop, opened when needed and
//! closed after a failure (the next call opens a new one), as cpppo's `close_gateway`
//! does.
//!
//! ```no_run
//! use cpppo_mio::proxy::Gateway;
//! use cpppo_core::enip::client::ClientOptions;
//! use cpppo_core::enip::proxy::{powerflex_750_series, Reply};
//!
//! let params = powerflex_750_series();
//! let mut via = Gateway::new(vec!["10.0.1.2:44818".parse()?], ClientOptions::simple())?;
//! let current = params.get("Output Current").unwrap();
//! if let Ok(Reply::Value(amps)) = &via.read(std::slice::from_ref(current))?[0] {
//!     println!("Output Current == {amps} Amps");
//! }
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

/// How long the loop waits at most without a deadline (the proxy always has one while
/// a request is outstanding).
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
    /// options' timeout); nothing is connected until the first call. An error is the
    /// poll's.
    pub fn new(target: Vec<SocketAddr>, options: ClientOptions) -> io::Result<Self> {
        Ok(Gateway {
            proxy: Proxy::new(options),
            driver: ClientDriver::new(None)?,
            target,
        })
    }

    /// The proxy underneath (its counters, whether a gateway is open).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Read `params`: one result each, in order. A parameter that fails is an `Err` in
    /// its place; `io::Error` only when the socket loop itself fails.
    pub fn read(&mut self, params: &[Parameter]) -> io::Result<Vec<Result<Reply, ParamError>>> {
        let id = self.proxy.read(Instant::now(), params);
        self.complete(id)
    }

    /// Write `values` (cpppo's value syntax) to `param`.
    pub fn write(
        &mut self,
        param: &Parameter,
        values: &str,
    ) -> Result<io::Result<Result<Reply, ParamError>>, ProxyError> {
        let id = self.proxy.write(Instant::now(), param, values)?;
        Ok(self.complete(id).map(|mut r| {
            r.pop()
                .unwrap_or(Err(ParamError::Convert("no result".into())))
        }))
    }

    /// Run the loop until request `id` is done.
    fn complete(&mut self, id: RequestId) -> io::Result<Vec<Result<Reply, ParamError>>> {
        let target = &self.target;
        let timeout = self.proxy.options().timeout;
        let mut out = None;
        self.driver.run(&mut self.proxy, IDLE, |proxy, driver| {
            let mut moved = false;
            while let Some(next) = proxy.poll_request(id) {
                moved = true;
                match next {
                    Awaited::Connect => {
                        let now = Instant::now();
                        match connect(target, timeout).and_then(|s| driver.attach(s)) {
                            Ok(()) => proxy.handle_connected(now),
                            Err(e) => proxy.handle_connect_failed(now, &e.to_string()),
                        }
                    }
                    Awaited::Disconnect => {
                        driver.detach();
                    }
                    Awaited::Done(results) => out = Some(results),
                }
            }
            (moved, out.is_some())
        })?;
        out.ok_or_else(|| io::Error::other("the proxy loop ended without the reply"))
    }
}
