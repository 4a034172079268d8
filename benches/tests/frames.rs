//! The benches' frames and operations do the real work: built frames match the
//! capture's layout, every operation decodes the right fields and writes the right
//! bytes.

use cpppo_benches::{enip, modbus, workload};
use cpppo_core::cip::data::{DataType, TagType};
use cpppo_core::cip::message_router::service;
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::enip::encapsulation::{Command, Header};
use cpppo_core::modbus::rtu::{Direction, RtuFramer};
use std::time::{Duration, Instant};

#[test]
fn the_builder_reproduces_the_captured_request() {
    // Read Tag Fragmented SCADA, 1 element, offset 0: the capture's packet 14.
    let built = enip::unconnected_send_frame(
        service::READ_TAG_FRAGMENTED,
        enip::TAG,
        &[0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
    );
    assert_eq!(built, enip::CAPTURE_READ_TAG_FRAGMENTED_REQUEST);
}

#[test]
fn the_captured_request_and_reply_decode() {
    let call = enip::decode_read_tag_request(enip::CAPTURE_READ_TAG_FRAGMENTED_REQUEST).unwrap();
    assert_eq!(call.header.session_handle, enip::SESSION);
    assert_eq!(call.header.sender_context, enip::CONTEXT);
    assert_eq!(call.timeout, enip::TIMEOUT);
    assert_eq!(call.connection, None);
    assert_eq!(call.service, service::READ_TAG_FRAGMENTED);
    assert_eq!(call.path.to_string(), "SCADA");
    assert_eq!((call.elements, call.offset), (1, 0));

    let answer = enip::decode_read_tag_reply(enip::CAPTURE_READ_TAG_FRAGMENTED_REPLY).unwrap();
    assert_eq!(answer.service, 0xD2);
    assert_eq!(answer.general_status, GeneralStatus::SUCCESS);
    assert_eq!(answer.tag_type, TagType::from(DataType::INT));
    assert_eq!(answer.data, enip::SCADA_VALUE);
}

#[test]
fn answering_the_captured_request_reproduces_the_captured_reply() {
    // The controller's reply differs from ours only in the service code: it answered
    // Read Tag Fragmented (0xD2) exactly as a server answering Read Tag would (0xCC).
    let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
    let n = enip::serve_read_tag(
        enip::CAPTURE_READ_TAG_FRAGMENTED_REQUEST,
        &enip::int_reply(),
        &mut encoder,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(out, enip::CAPTURE_READ_TAG_FRAGMENTED_REPLY);
}

#[test]
fn read_tag_request_and_reply_frames() {
    let request = enip::read_tag_request_frame();
    // The captured request with Read Tag's 2 bytes of data instead of 6.
    assert_eq!(
        request.len(),
        enip::CAPTURE_READ_TAG_FRAGMENTED_REQUEST.len() - 4
    );
    let call = enip::decode_read_tag_request(&request).unwrap();
    assert_eq!(call.service, service::READ_TAG);
    assert_eq!(call.path.to_string(), "SCADA");
    assert_eq!((call.elements, call.offset), (1, 0));

    let reply = enip::read_tag_reply_frame();
    let mut expect = enip::CAPTURE_READ_TAG_FRAGMENTED_REPLY.to_vec();
    expect[40] = 0xCC;
    assert_eq!(reply, expect);

    let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
    enip::serve_read_tag(&request, &enip::int_reply(), &mut encoder, &mut out).unwrap();
    assert_eq!(out, reply);
}

#[test]
fn connected_read_tag_round_trip() {
    let request = enip::connected_read_tag_request_frame();
    let call = enip::decode_read_tag_request(&request).unwrap();
    assert_eq!(call.header.command, Command::SendUnitData);
    assert_eq!(call.connection, Some(enip::CONNECTION));
    assert_eq!(call.service, service::READ_TAG);
    assert_eq!(call.elements, 1);

    let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
    enip::serve_read_tag(&request, &enip::int_reply(), &mut encoder, &mut out).unwrap();
    assert_eq!(out, enip::connected_read_tag_reply_frame());
    let answer = enip::decode_read_tag_reply(&out).unwrap();
    assert_eq!(answer.header.command, Command::SendUnitData);
    assert_eq!(answer.service, 0xCC);
    assert_eq!(answer.data, enip::SCADA_VALUE);
}

#[test]
fn encoding_appends_and_reuses_the_buffers() {
    let header = Header::new(Command::SendRRData, enip::SESSION, enip::CONTEXT);
    let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
    for _ in 0..2 {
        encoder.encode(
            &header,
            enip::TIMEOUT,
            None,
            service::READ_TAG,
            &enip::int_reply(),
            &mut out,
        );
    }
    let one = enip::read_tag_reply_frame();
    assert_eq!(out, [one.clone(), one].concat());
}

#[test]
fn modbus_tcp_fc3() {
    assert_eq!(
        modbus::decode_tcp_request(modbus::TCP_FC3_REQUEST).unwrap(),
        (3077, 255, 124, 2)
    );
    let (tid, regs) = modbus::decode_tcp_response(modbus::TCP_FC3_RESPONSE).unwrap();
    assert_eq!((tid, regs.to_vec()), (3077, vec![141, 142]));

    let (mut pdu, mut out) = (Vec::new(), Vec::new());
    modbus::encode_tcp_request(3077, 255, 124, 2, &mut pdu, &mut out);
    assert_eq!(out, modbus::TCP_FC3_REQUEST);
    out.clear();
    modbus::encode_tcp_response(3077, 255, &[0, 141, 0, 142], &mut pdu, &mut out).unwrap();
    assert_eq!(out, modbus::TCP_FC3_RESPONSE);

    let table = modbus::HoldingRegisters::new(1000);
    out.clear();
    let q = modbus::serve_tcp(modbus::TCP_FC3_REQUEST, &table, &mut pdu, &mut out).unwrap();
    assert_eq!(q, 2);
    assert_eq!(out, modbus::TCP_FC3_RESPONSE);
    // Past the end of the table is refused, not a panic.
    assert!(modbus::serve_tcp(
        &[0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x03, 0xE7, 0x00, 0x02],
        &table,
        &mut pdu,
        &mut out
    )
    .is_err());
}

#[test]
fn modbus_rtu_fc3() {
    let t0 = Instant::now();
    let table = modbus::HoldingRegisters::new(1000);
    let mut framer = RtuFramer::new(Direction::Requests, workload::RTU_BAUD);
    let (mut pdu, mut out) = (Vec::new(), Vec::new());
    // Split across two reads, then a whole one 10 ms later.
    let (a, b) = modbus::RTU_FC3_REQUEST.split_at(3);
    assert_eq!(
        modbus::serve_rtu(&mut framer, t0, a, &table, &mut pdu, &mut out).unwrap(),
        0
    );
    let t1 = t0 + Duration::from_micros(500);
    assert_eq!(
        modbus::serve_rtu(&mut framer, t1, b, &table, &mut pdu, &mut out).unwrap(),
        1
    );
    assert_eq!(out, modbus::RTU_FC3_RESPONSE);
    out.clear();
    let t2 = t0 + Duration::from_millis(10);
    let req = modbus::RTU_FC3_REQUEST;
    assert_eq!(
        modbus::serve_rtu(&mut framer, t2, req, &table, &mut pdu, &mut out).unwrap(),
        1
    );
    assert_eq!(out, modbus::RTU_FC3_RESPONSE);

    out.clear();
    modbus::encode_rtu_request(17, 124, 2, &mut pdu, &mut out);
    assert_eq!(out, modbus::RTU_FC3_REQUEST);

    let mut client = RtuFramer::new(Direction::Responses, workload::RTU_BAUD);
    let sum = modbus::receive_rtu(&mut client, t0, modbus::RTU_FC3_RESPONSE).unwrap();
    assert_eq!(sum, 141 + 142);
}

#[test]
fn every_operation_runs_and_is_deterministic() {
    let mut names = Vec::new();
    for mut op in workload::operations() {
        let first = (op.run)();
        assert!(first > 0, "{}", op.name);
        assert_eq!((op.run)(), first, "{}", op.name);
        names.push(op.name);
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "operation names are unique");
}

#[test]
fn the_server_engines_answer_every_turn() {
    // Each turn answers with one whole response frame (the length of pymodbus' response:
    // the same 2 registers) and no event, the same on every turn.
    use cpppo_benches::modbus::{RTU_FC3_RESPONSE, TCP_FC3_RESPONSE};
    for mut op in cpppo_benches::workload::operations() {
        let expected = match op.name {
            "modbus_tcp/fc3/server_conn" => TCP_FC3_RESPONSE.len(),
            "modbus_rtu/fc3/server_conn" => RTU_FC3_RESPONSE.len(),
            _ => continue,
        };
        for _ in 0..5 {
            assert_eq!((op.run)(), expected as u64, "{}", op.name);
        }
    }
}

#[test]
fn the_enip_server_engine_answers_the_read_tag_as_a_controller_does() {
    // The setup of `enip/read_tag/server_conn`, driven here to see the bytes: the reply
    // is the reference reply frame (the same INT value), byte for byte but for the
    // session handle the server assigned, and one event (the request served).
    use cpppo_benches::{enip, workload::register_session_frame};
    use cpppo_core::cip::data::Values;
    use cpppo_core::controller::{Controller, ControllerConfig};
    use cpppo_core::engine::Server as _;
    use cpppo_core::enip::server::{Server, ServerOptions};
    use std::time::Instant;

    let mut plc = Controller::new(ControllerConfig::default());
    plc.tags_mut().add_str("SCADA=INT").unwrap();
    plc.tags_mut()
        .set_values(
            enip::TAG,
            0,
            &Values::Int(vec![i16::from_le_bytes(enip::SCADA_VALUE)]),
        )
        .unwrap();
    let mut server = Server::new(plc, ServerOptions::default());
    let now = Instant::now();
    let mut conn = server
        .accept(
            now,
            "127.0.0.1:44818".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        )
        .unwrap();
    let mut out = Vec::new();
    conn.handle_input(now, &register_session_frame(), &mut server);
    while conn.poll_transmit(now, &mut out) {}
    while conn.poll_event().is_some() {}
    assert_eq!(out.len(), 28, "RegisterSession reply");
    let session = out[4..8].to_vec();
    let mut request = enip::read_tag_request_frame();
    request[4..8].copy_from_slice(&session);
    let mut want = enip::read_tag_reply_frame();
    want[4..8].copy_from_slice(&session);
    for _ in 0..3 {
        out.clear();
        conn.handle_input(now, &request, &mut server);
        while conn.poll_transmit(now, &mut out) {}
        assert_eq!(out, want);
        assert_eq!(std::iter::from_fn(|| conn.poll_event()).count(), 1);
    }
    // The operation runs the same turn.
    for mut op in cpppo_benches::workload::operations() {
        if op.name == "enip/read_tag/server_conn" {
            assert_eq!((op.run)(), want.len() as u64 + 1);
            return;
        }
    }
    panic!("no enip/read_tag/server_conn operation");
}

#[test]
fn the_msp_request_is_one_frame_of_twenty_reads_answered_with_their_values() {
    use cpppo_benches::workload::engines::{msp_frames, EnipPair, MSP_BUDGET, MSP_READS};
    use cpppo_core::cip::data::Values;
    use cpppo_core::enip::client::{ClientEvent, ClientOptions, Value};

    let now = std::time::Instant::now();
    let options = ClientOptions {
        multiple: MSP_BUDGET,
        ..ClientOptions::default()
    };
    let mut pair = EnipPair::new(now, options);
    let (request, reply, events) = msp_frames(&mut pair, now);
    // One encapsulation each way: the length field covers the rest of the bytes.
    for frame in [&request, &reply] {
        let length = u16::from_le_bytes([frame[2], frame[3]]) as usize;
        assert_eq!(length + 24, frame.len());
    }
    // Twenty answers from one request frame at depth 1: a Multiple Service Packet.
    let values: Vec<Values> = events
        .into_iter()
        .map(|e| match e {
            ClientEvent::Reply {
                result: Ok(Value::Values(v)),
                ..
            } => v,
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<Values> = (0..MSP_READS as i16)
        .map(|i| Values::Int(vec![i]))
        .collect();
    assert_eq!(values, expected);
}
