//! A simulated device for the proxy and poller tests: the real server engine and
//! controller, reached through an in-memory "socket" that can be refused (the server is
//! stopped) and closed (the server went away), with a simulated clock.

use std::net::SocketAddr;
use std::time::Instant;

use crate::cip::data::Values;
use crate::controller::{Controller, ControllerConfig};
use crate::engine::Driven;
use crate::enip::server::{Server, ServerConn, ServerOptions};

/// A simulated PowerFlex-like device: REAL attributes at cpppo's PowerFlex addresses,
/// and a tag.
pub const TAGS: &[&str] = &[
    "Output_Frequency@0x93/1/10=REAL",
    "Motor_Velocity@0x93/3/10=REAL",
    "Output_Current@0x93/7/10=REAL",
    "Speed_Units@0x93/300/10=DINT",
    "SCADA=INT[10]",
];

fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().expect("a socket address")
}

/// The device: its server state, and the connection while there is one.
pub struct Device {
    pub server: Server<Controller>,
    pub conn: Option<ServerConn<Controller>>,
    /// Accept connections (false: the server is stopped).
    pub running: bool,
    /// Hold the engine's bytes instead of delivering them (a slow link).
    pub hold: bool,
    held: Vec<u8>,
}

impl Device {
    pub fn new() -> Self {
        let mut plc = Controller::new(ControllerConfig::default());
        for t in TAGS {
            plc.tags_mut().add_str(t).expect("a tag spec");
        }
        Device {
            server: Server::new(plc, ServerOptions::default().simple()),
            conn: None,
            running: true,
            hold: false,
            held: Vec::new(),
        }
    }

    /// Accept a connection: `false` when stopped.
    pub fn accept(&mut self, now: Instant) -> bool {
        if !self.running {
            return false;
        }
        self.conn = Some(ServerConn::new(now, peer(), &mut self.server));
        true
    }

    /// The server goes away: its connection is dropped, nothing more is accepted.
    pub fn stop(&mut self) {
        self.running = false;
        self.conn = None;
    }

    /// Set a tag's values, as the process would.
    pub fn set(&mut self, tag: &str, values: Values) {
        self.server
            .device_mut()
            .tags_mut()
            .set_values(tag, 0, &values)
            .expect("a tag of that type");
    }

    /// A tag's values now.
    pub fn get(&self, tag: &str) -> Values {
        self.server.device().tags().values(tag).expect("a tag")
    }

    /// Move bytes both ways until neither side has anything to send (bytes for no
    /// connection are lost, as on a dead link).
    pub fn exchange<E: Driven>(&mut self, now: Instant, engine: &mut E) {
        loop {
            let mut up = std::mem::take(&mut self.held);
            while engine.transmit(now, &mut up) {}
            if self.hold {
                self.held = up;
                return;
            }
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            if !up.is_empty() {
                conn.handle_input(now, &up, &mut self.server);
            }
            let mut down = Vec::new();
            while conn.poll_transmit(now, &mut down) {}
            if !down.is_empty() {
                engine.input(now, &down);
            }
            if up.is_empty() && down.is_empty() {
                return;
            }
        }
    }
}
