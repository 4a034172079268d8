//! # cpppo-core
//!
//! EtherNet/IP, CIP and Modbus as pure data transformations: bytes in, typed messages
//! and events out, and back. This crate contains **no networking code, no threads and
//! no timestamps from the OS**; it never blocks and never reads a clock. The runtimes
//! (`cpppo-blocking`, `cpppo-smol`, `cpppo-mio`) move the bytes and pass time in.
//!
//! ## Layers
//!
//! One module per protocol layer, named in the protocol's own words, with the
//! specification's numbers as named constants beside the code that uses them:
//!
//! | module | layer |
//! |---|---|
//! | [`wire`] | bounds-checked reading, [`wire::DecodeError`], [`wire::Encode`], stream framing |
//! | [`enip`] | EtherNet/IP encapsulation and the Common Packet Format; the server engine ([`enip::server`]) and the pipelined client engine ([`enip::client`]) |
//! | [`cip`] | CIP: EPATH, data types, Message Router, Connection Manager, Logix services, client operations in cpppo's syntax ([`cip::operation`]) |
//! | [`controller`] | the simulated Logix controller (a [`cip::device::CipDevice`]): tag database, tag services, Symbol/Template objects |
//! | [`modbus`] | Modbus PDUs, Modbus/TCP (MBAP), Modbus/RTU framing, Modicon numbering, the simulated device and its server engine, the client engine and the poller |
//! | [`engine`] | the [`engine::Server`]/[`engine::Connection`] surface every runtime drives |
//! | [`rng`] | a seeded SplitMix64 for fault injection (no entropy read from the system) |
//! | [`web`] | cpppo's web API for the simulated controller: path grammar, commands on a live server, the JSON reply |
//!
//! ## Codecs
//!
//! Every message type implements [`wire::Encode`] and has a `decode` function taking a
//! borrowed slice. Decoded messages borrow their payloads from the input rather than copy
//! them. Decoding never panics, checks every length before trusting it, and never
//! allocates in proportion to a length field it has not received; a failure is a
//! [`wire::DecodeError`] naming the field and its absolute offset, and
//! [`wire::DecodeError::Incomplete`] says how many more bytes are needed.
//!
//! ```
//! use cpppo_core::enip::encapsulation::{Command, Encapsulation};
//! use cpppo_core::wire::Encode;
//!
//! // A RegisterSession request, as every EtherNet/IP client sends first.
//! let bytes = [
//!     0x65, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
//!     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
//!     0x01, 0x00, 0x00, 0x00,
//! ];
//! let (frame, used) = Encapsulation::decode(&bytes).unwrap();
//! assert_eq!(used, bytes.len());
//! assert_eq!(frame.header.command, Command::RegisterSession);
//! assert_eq!(frame.to_vec(), bytes);
//! ```
//!
//! ## The engine contract
//!
//! The protocol engines (the simulated devices, the pipelined clients and the pollers)
//! all share one small surface, after quinn-proto and rustls:
//!
//! - `handle_input(now, &[u8])` feeds bytes as they arrived, split anywhere;
//! - `poll_transmit(now, &mut buf)` appends bytes to send, in order;
//! - `poll_event()` yields what happened (a reply, a tag written, a protocol error);
//! - `poll_timeout()` / `handle_timeout(now)`: every delay, idle timeout, poll cycle and
//!   request timeout is a deadline the caller sleeps until. Time passed in never goes
//!   backwards.
//!
//! The drive loop every adapter uses: after any `handle_*` call or command, drain
//! `poll_transmit`, then `poll_event`, then read `poll_timeout` and wait until that
//! deadline or new input, whichever comes first. The caller owns the output buffers, so
//! the steady state allocates nothing.
//!
//! [`enip::client::ClientConn`] is the EtherNet/IP client's engine: operations parsed
//! by [`cip::operation::parse_operation`] go in with `submit`, pipelined up to a depth,
//! packed into Multiple Service Packets and fragmented as needed, and come out as
//! `Reply` or `Lost` events; its module documentation runs it against the server engine.
//!
//! [`enip::proxy::Proxy`] (cpppo's getattr proxy: named, typed CIP parameters through a
//! gateway reopened after failures) and [`enip::poller::Poller`] (parameters at their
//! own rates, with backoff and load) are built on it; both pollers keep their cadence,
//! backoff and load with [`polling`].
//!
//! [`enip::server::ServerConn`] is the EtherNet/IP server's engine (one per TCP
//! connection, sharing one [`enip::server::Server`] that holds the simulated
//! [`cip::device::CipDevice`]); its module documentation has a runnable example of the
//! drive loop.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cip;
pub mod controller;
pub mod engine;
pub mod enip;
pub mod limits;
pub mod modbus;
pub mod pipeline;
pub mod polling;
pub mod rng;
#[cfg(feature = "testing")]
pub mod testing;
pub mod web;
pub mod wire;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
