//! The shared runtime suite on the mio runtime.

#![allow(clippy::unwrap_used)]

#[path = "../../runtime-blocking/tests/common/mod.rs"]
mod common;

use common::Running;
use cpppo_core::engine::{ServeOptions, ServeStats};
use cpppo_core::testing::EchoServer;
use cpppo_mio::{serve, ServerHandle};
use std::net::SocketAddr;

struct Mio(ServerHandle<EchoServer>);

impl Running for Mio {
    fn start(server: EchoServer, options: ServeOptions) -> Self {
        Self(serve(server, options).unwrap())
    }
    fn tcp(&self) -> SocketAddr {
        self.0.local_addrs()[0]
    }
    fn udp(&self) -> Option<SocketAddr> {
        self.0.udp_addrs().first().copied()
    }
    fn stats(&self) -> ServeStats {
        self.0.stats()
    }
    fn shutdown(self) -> EchoServer {
        self.0.shutdown().unwrap()
    }
    fn wait(self) -> EchoServer {
        self.0.wait().unwrap()
    }
}

suite_tests!(Mio);
