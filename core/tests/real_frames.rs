//! A real ControlLogix session, decoded layer by layer.
//!
//! The frames are the TCP payloads of cpppo's capture of a cpppo client talking to a
//! 1756-L61 controller (`tests/frames/enip/cpppo-capture__pkt*.hex`, whose headers name
//! the source; `tests/frames/controllogix-SCADA-read-write.hex` holds the same packets as
//! one session), taken in capture order. Each frame is decoded through
//! encapsulation, CPF, Message Router, Unconnected Send and the Logix service into typed
//! values, which are asserted. (`tests/frames.rs` checks the `expect:` fields, the
//! byte-exact re-encoding and the framing at every split of these frames and all the
//! others.)

// Helpers outside `#[test]` functions unwrap too: a malformed capture is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::{hex_bytes, hex_files};
use cpppo_core::cip::data::{Count, DataType, TagType, Values};
use cpppo_core::cip::epath::Segment;
use cpppo_core::cip::logix::{ReadTagFragmentedRequest, ReadTagReply, WriteTagFragmentedRequest};
use cpppo_core::cip::message_router::{MessageRouterReply, MessageRouterRequest, Request};
use cpppo_core::cip::objects::Identity;
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::enip::encapsulation::{Body, Command, Encapsulation};
use cpppo_core::wire::Reader;

/// The controller's session handle, as it answered RegisterSession (packet 6).
const SESSION: u32 = 0x1102_1E01;

struct Packet {
    name: String,
    from_client: bool,
    bytes: Vec<u8>,
}

/// The packets of the capture, in capture order (the files are named by packet number,
/// zero-padded), each named `pktN` and told apart by sender from its `what:` line.
fn packets() -> Vec<Packet> {
    hex_files("enip")
        .into_iter()
        .filter_map(|file| {
            let number = file.name.strip_prefix("cpppo-capture__pkt")?;
            let number: u32 = number.split('_').next()?.parse().ok()?;
            let what = file.tagged("what").next().unwrap().to_string();
            let from_client = match what.split_whitespace().next() {
                Some("client") => true,
                Some("ControlLogix") => false,
                _ => panic!("{}: unknown sender in {what:?}", file.name),
            };
            Some(Packet {
                name: format!("pkt{number}"),
                from_client,
                bytes: file.bytes,
            })
        })
        .collect()
}

fn packet(name: &str) -> Vec<u8> {
    packets()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in the capture"))
        .bytes
}

/// The captured frame `name`, decoded.
fn frame_of(name: &str) -> Encapsulation<'static> {
    let bytes = packet(name);
    let (frame, used) = Encapsulation::decode(&bytes).unwrap();
    assert_eq!(used, bytes.len());
    frame.into_owned()
}

/// The CIP message inside a SendRRData frame, after checking the envelope every frame of
/// this session shares: our session, success, a zero interface handle and the canonical
/// two-item CPF (null address + unconnected data).
fn unconnected_message(frame: &Encapsulation<'_>) -> Vec<u8> {
    assert_eq!(frame.header.command, Command::SendRRData);
    assert_eq!(frame.header.session_handle, SESSION);
    assert_eq!(frame.header.status, 0);
    let Body::SendData(send) = frame.body().unwrap() else {
        panic!("not SendData")
    };
    assert_eq!(send.interface_handle, 0);
    let types: Vec<u16> = send.cpf.items.iter().map(|i| i.type_id()).collect();
    assert_eq!(types, [0x0000, 0x00B2]);
    send.cpf.unconnected_data().unwrap().to_vec()
}

/// The embedded Logix request inside an Unconnected Send to the Connection Manager,
/// checking the route path cpppo sends to a controller in slot 0 of the backplane.
fn embedded_request(message: &[u8]) -> MessageRouterRequest<'static> {
    let outer = MessageRouterRequest::decode(message).unwrap();
    assert_eq!(outer.service, 0x52);
    assert_eq!(outer.path.to_string(), "@0x0006/1");
    let classified = Request::decode(&outer).unwrap();
    assert!(classified.trailing.is_empty());
    let Request::UnconnectedSend(send) = classified.request else {
        panic!("not Unconnected Send: {:?}", classified.request)
    };
    let route: Vec<Segment> = send.route_path.segments().map(Result::unwrap).collect();
    assert_eq!(route, [Segment::port(1, 0)]);
    send.request.into_owned()
}

fn int_values(reply: &ReadTagReply<'_>) -> Vec<i16> {
    assert_eq!(reply.tag_type, TagType::from(DataType::INT));
    let values = Values::decode(reply.tag_type, Count::All, &mut Reader::new(&reply.data)).unwrap();
    let Values::Int(v) = values else {
        panic!("not INT: {values:?}")
    };
    v
}

/// The whole session in one file, one packet a line (`pktN sender hex`), as the fuzz
/// corpus seeds the stream decoder with it.
const SESSION_FILE: &str = include_str!("frames/controllogix-SCADA-read-write.hex");

#[test]
fn the_session_file_holds_the_packet_files_in_capture_order() {
    let lines: Vec<(String, bool, Vec<u8>)> = SESSION_FILE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let [name, sender, bytes] = words[..] else {
                panic!("bad session line {l:?}")
            };
            let from_client = match sender {
                "client" => true,
                "controller" => false,
                other => panic!("{name}: unknown sender {other}"),
            };
            (name.to_string(), from_client, hex_bytes(bytes))
        })
        .collect();
    let packets: Vec<(String, bool, Vec<u8>)> = packets()
        .into_iter()
        .map(|p| (p.name, p.from_client, p.bytes))
        .collect();
    assert_eq!(lines, packets);
}

#[test]
fn requests_come_from_the_client_and_replies_from_the_controller() {
    let packets = packets();
    assert_eq!(packets.len(), 14);
    for p in &packets {
        let frame = frame_of(&p.name);
        if frame.header.command == Command::SendRRData {
            let message = unconnected_message(&frame);
            // Requests and replies are told apart by the reply bit, as every client does.
            let is_reply = message[0] & 0x80 != 0;
            assert_eq!(is_reply, !p.from_client, "{}", p.name);
            if is_reply {
                MessageRouterReply::decode(&message).unwrap();
            } else {
                MessageRouterRequest::decode(&message).unwrap();
            }
        } else {
            assert_eq!(frame.header.command, Command::RegisterSession, "{}", p.name);
        }
    }
}

#[test]
fn register_session_is_answered_with_the_controllers_handle() {
    let req = frame_of("pkt4");
    assert_eq!(req.header.command, Command::RegisterSession);
    assert_eq!(req.header.session_handle, 0);
    let Body::RegisterSession(rs) = req.body().unwrap() else {
        panic!()
    };
    assert_eq!((rs.protocol_version, rs.options), (1, 0));

    let rpy = frame_of("pkt6");
    assert_eq!(rpy.header.command, Command::RegisterSession);
    assert_eq!(rpy.header.session_handle, SESSION);
    assert_eq!(rpy.header.status, 0);
}

#[test]
fn get_attributes_all_of_the_identity_object_through_unconnected_send() {
    let frame = frame_of("pkt11");
    assert_eq!(frame.header.sender_context, [2, 0, 0, 0, 0, 0, 0, 0]);
    let inner = embedded_request(&unconnected_message(&frame));
    assert_eq!(inner.service, 0x01);
    assert_eq!(inner.path.to_string(), "@0x0001/1");

    let frame = frame_of("pkt13");
    let message = unconnected_message(&frame);
    let reply = MessageRouterReply::decode(&message).unwrap();
    assert_eq!(reply.service, 0x81);
    assert_eq!(reply.general_status, GeneralStatus::SUCCESS);
    let id = Identity::decode(&reply.data).unwrap();
    assert_eq!(id.vendor_id, 1);
    assert_eq!(id.device_type, 0x0E);
    assert_eq!(id.product_code, 54);
    assert_eq!((id.revision.major, id.revision.minor), (20, 11));
    assert_eq!(id.status, 0x3160);
    assert_eq!(id.serial_number, 0x006C_061A);
    assert_eq!(id.product_name, "1756-L61/B LOGIX5561");
}

#[test]
fn read_tag_fragmented_of_one_element() {
    let frame = frame_of("pkt14");
    let inner = embedded_request(&unconnected_message(&frame));
    assert_eq!(inner.service, 0x52);
    assert_eq!(inner.path.to_string(), "SCADA");
    assert_eq!(
        ReadTagFragmentedRequest::decode(&inner.data).unwrap(),
        ReadTagFragmentedRequest {
            elements: 1,
            offset: 0
        }
    );

    let frame = frame_of("pkt16");
    let message = unconnected_message(&frame);
    let reply = MessageRouterReply::decode(&message).unwrap();
    assert_eq!(reply.service, 0xD2);
    assert_eq!(reply.general_status, GeneralStatus::SUCCESS);
    let data = ReadTagReply::decode(&reply.data).unwrap();
    assert_eq!(int_values(&data), [0x8027_u16 as i16]);
}

#[test]
fn read_tag_fragmented_from_a_byte_offset() {
    let frame = frame_of("pkt17");
    let inner = embedded_request(&unconnected_message(&frame));
    assert_eq!(inner.path.to_string(), "SCADA");
    // 20 elements in all, starting 2 bytes (one INT) in: 19 come back.
    assert_eq!(
        ReadTagFragmentedRequest::decode(&inner.data).unwrap(),
        ReadTagFragmentedRequest {
            elements: 20,
            offset: 2
        }
    );

    let frame = frame_of("pkt19");
    let message = unconnected_message(&frame);
    let reply = MessageRouterReply::decode(&message).unwrap();
    assert_eq!(reply.general_status, GeneralStatus::SUCCESS);
    let data = ReadTagReply::decode(&reply.data).unwrap();
    assert_eq!(
        int_values(&data),
        [
            0x104C, 8, 3, 2, 2, 2, 14, 0, 0, 0x42E6, 7, 0x40C8, 0x40C8, 0, 0xE4, 0, 0x64, 0x02B2,
            0x40C8
        ]
    );
}

#[test]
fn write_tag_fragmented_to_one_element_then_read_it() {
    let frame = frame_of("pkt20");
    let inner = embedded_request(&unconnected_message(&frame));
    assert_eq!(inner.service, 0x53);
    assert_eq!(inner.path.to_string(), "SCADA[12]");
    let write = WriteTagFragmentedRequest::decode(&inner.data).unwrap();
    assert_eq!(write.tag_type, TagType::from(DataType::INT));
    assert_eq!((write.elements, write.offset), (1, 0));
    assert_eq!(write.data.as_ref(), &0x40C9_i16.to_le_bytes());

    let frame = frame_of("pkt22");
    let message = unconnected_message(&frame);
    let reply = MessageRouterReply::decode(&message).unwrap();
    assert_eq!(reply.service, 0xD3);
    assert_eq!(reply.general_status, GeneralStatus::SUCCESS);
    assert!(reply.additional_status.is_empty());
    assert!(reply.data.is_empty());

    let frame = frame_of("pkt23");
    let inner = embedded_request(&unconnected_message(&frame));
    assert_eq!(inner.path.to_string(), "SCADA[12]");
    let frame = frame_of("pkt25");
    let message = unconnected_message(&frame);
    let reply = MessageRouterReply::decode(&message).unwrap();
    let data = ReadTagReply::decode(&reply.data).unwrap();
    assert_eq!(int_values(&data), [0x40C8]);
}
