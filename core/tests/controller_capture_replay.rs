//! The simulated Logix controller behind the EtherNet/IP server engine, answering the
//! requests of cpppo's capture of a real 1756-L61 ControlLogix (rev 20.11) serving
//! `SCADA=INT[1000]` (`tests/frames/enip/cpppo-capture__*`): every reply must be the
//! controller's reply, byte for byte, except the session handle (the target chooses it).
//!
//! Left out: packets 8/10, a Get Attributes All of class 0x66, an object the simulator
//! does not have.

// Helpers outside `#[test]` functions unwrap too: a malformed frame file is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{hex, hex_files};
use cpppo_core::cip::data::Values;
use cpppo_core::controller::{Controller, ControllerConfig, TagDatabase};
use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};

/// Offset and length of the session handle in an encapsulation header.
const SESSION: std::ops::Range<usize> = 4..8;

fn frame(name: &str) -> Vec<u8> {
    hex_files("enip")
        .into_iter()
        .find(|f| f.name == format!("cpppo-capture__{name}"))
        .unwrap_or_else(|| panic!("no frame {name}"))
        .bytes
}

fn exchange(
    now: Instant,
    conn: &mut ServerConn<Controller>,
    server: &mut Server<Controller>,
    request: &[u8],
) -> Vec<u8> {
    conn.handle_input(now, request, server);
    let mut out = Vec::new();
    while conn.poll_transmit(now, &mut out) {}
    out
}

#[test]
fn a_controllogix_session_replayed() {
    // SCADA[0..20] as the controller held them (the values its replies carry).
    let mut db = TagDatabase::new();
    db.add_str("SCADA=INT[1000]").unwrap();
    let values: [i16; 20] = [
        0x8027u16 as i16,
        0x104c,
        0x0008,
        0x0003,
        0x0002,
        0x0002,
        0x0002,
        0x000e,
        0x0000,
        0x0000,
        0x42e6,
        0x0007,
        0x40c8,
        0x40c8,
        0x0000,
        0x00e4,
        0x0000,
        0x0064,
        0x02b2,
        0x40c8,
    ];
    db.set_values("SCADA", 0, &Values::Int(values.to_vec()))
        .unwrap();
    let controller = Controller::with_tags(ControllerConfig::default(), db);
    let mut server = Server::new(controller, ServerOptions::default());
    let now = Instant::now();
    let peer = "192.168.222.128:51234".parse().unwrap();
    let mut conn = ServerConn::new(now, peer, &mut server);

    let reply = exchange(
        now,
        &mut conn,
        &mut server,
        &frame("pkt04_register_session_request"),
    );
    let session = reply[SESSION].to_vec();
    let mut expected = frame("pkt06_register_session_reply");
    expected[SESSION].copy_from_slice(&session);
    assert_eq!(hex(&reply), hex(&expected), "RegisterSession");

    let steps = [
        (
            "pkt11_unconnected_send_get_attributes_all_identity_request",
            "pkt13_get_attributes_all_identity_reply",
        ),
        (
            "pkt14_unconnected_send_read_tag_fragmented_request",
            "pkt16_read_tag_fragmented_reply_int",
        ),
        (
            "pkt17_unconnected_send_read_tag_fragmented_offset_request",
            "pkt19_read_tag_fragmented_reply_int_array",
        ),
        (
            "pkt20_unconnected_send_write_tag_fragmented_request",
            "pkt22_write_tag_fragmented_reply",
        ),
        (
            "pkt23_unconnected_send_read_tag_fragmented_element_request",
            "pkt25_read_tag_fragmented_reply_element",
        ),
    ];
    for (request, reply_name) in steps {
        if request.starts_with("pkt23") {
            // The write of 0x40C9 took, then the controller's own program set SCADA[12]
            // back to 0x40C8 before the next read (as the capture shows); do the same.
            let db = server.device_mut().tags_mut();
            let Some(Values::Int(now_held)) = db.values("SCADA") else {
                panic!("SCADA is an INT array");
            };
            assert_eq!(now_held[12], 0x40C9);
            db.set_values("SCADA", 12, &Values::Int(vec![0x40C8]))
                .unwrap();
        }
        let mut req = frame(request);
        req[SESSION].copy_from_slice(&session);
        let reply = exchange(now, &mut conn, &mut server, &req);
        let mut expected = frame(reply_name);
        expected[SESSION].copy_from_slice(&session);
        assert_eq!(hex(&reply), hex(&expected), "{request}");
    }
}
