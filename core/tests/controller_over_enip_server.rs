//! The simulated Logix controller behind the EtherNet/IP server engine, end to end.
//!
//! 1. cpppo's capture of a real 1756-L61 ControlLogix (rev 20.11) serving
//!    `SCADA=INT[1000]` (`tests/frames/enip/cpppo-capture__*`) replayed: every reply must
//!    be the controller's reply, byte for byte, except the session handle (the target
//!    chooses it). Left out: packets 8/10, a Get Attributes All of class 0x66, an object
//!    the simulator does not have.
//! 2. A connected session shaped like pycomm3's LogixDriver: Large Forward Open, the
//!    paged tag list upload, a template, a Multiple Service Packet, Forward Close.

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

// ---------------------------------------------------------------------------------------
// A connected session as pycomm3's LogixDriver drives one: RegisterSession, Large Forward
// Open (4002 bytes), the tag list upload and template reads over SendUnitData, a
// Multiple Service Packet of reads, a write, Forward Close.

use cpppo_core::cip::connection_manager::{
    connection_priority, connection_type, ConnectionTriple, ForwardCloseRequest, ForwardOpenReply,
    ForwardOpenRequest, NetworkConnectionParameters, TransportClassTrigger,
};
use cpppo_core::cip::epath::Epath;
use cpppo_core::cip::logix::{
    GetInstanceAttributeListReply, ReadTagReply, ReadTagRequest, TemplateAttributes,
    TemplateDefinition, TemplateReadRequest, WriteTagRequest,
};
use cpppo_core::cip::message_router::{
    service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply, MultipleServiceRequest,
};
use cpppo_core::cip::objects::GetAttributeListRequest;
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::enip::cpf::Cpf;
use cpppo_core::enip::encapsulation::{Command, Encapsulation, Header, SendData};
use cpppo_core::wire::Encode;

struct Client {
    now: Instant,
    conn: ServerConn<Controller>,
    server: Server<Controller>,
    session: u32,
    o_t: u32,
    sequence: u16,
}

impl Client {
    fn send(&mut self, command: Command, cpf: Cpf<'_>) -> Cpf<'static> {
        let frame = Encapsulation::with_body(
            Header::new(command, self.session, *b"_pycomm_"),
            &SendData::new(10, cpf),
        )
        .unwrap()
        .to_vec();
        let reply = exchange(self.now, &mut self.conn, &mut self.server, &frame);
        let (encap, used) = Encapsulation::decode(&reply).unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(encap.header.status, 0);
        SendData::decode(&encap.data).unwrap().cpf.into_owned()
    }

    fn unconnected(&mut self, req: &MessageRouterRequest<'_>) -> MessageRouterReply<'static> {
        let cpf = self.send(Command::SendRRData, Cpf::unconnected(req.to_vec()));
        MessageRouterReply::decode(cpf.unconnected_data().unwrap())
            .unwrap()
            .into_owned()
    }

    fn connected(&mut self, req: &MessageRouterRequest<'_>) -> MessageRouterReply<'static> {
        self.sequence = self.sequence.wrapping_add(1);
        let cpf = self.send(
            Command::SendUnitData,
            Cpf::connected(self.o_t, self.sequence, req.to_vec()),
        );
        let c = cpf.connected_data().unwrap();
        // Replies echo the sequence count and are addressed with the T->O id we chose.
        assert_eq!((c.connection_id, c.sequence), (0x1234_5678, self.sequence));
        MessageRouterReply::decode(c.data).unwrap().into_owned()
    }
}

fn request(service: u8, path: &str, data: Vec<u8>) -> MessageRouterRequest<'static> {
    MessageRouterRequest::new(service, path.parse().unwrap(), data)
}

#[test]
fn a_pycomm3_session_over_a_large_connection() {
    let mut db = TagDatabase::new();
    db.define_structure(
        "Valve",
        &[
            ("Open", "BOOL", 0),
            ("Position", "REAL", 0),
            ("Tag", "STRING", 0),
        ],
    )
    .unwrap();
    for i in 0..300 {
        db.add_str(&format!("Analog_{i:03}=REAL[{}]", i % 7 + 1))
            .unwrap();
    }
    db.add_str("Valves=Valve[4]").unwrap();
    db.add_str("Program:MainProgram.Step=DINT").unwrap();
    let now = Instant::now();
    let mut server = Server::new(
        Controller::with_tags(ControllerConfig::default(), db),
        ServerOptions::default(),
    );
    let peer = "10.0.0.9:50000".parse().unwrap();
    let conn = ServerConn::new(now, peer, &mut server);
    let mut c = Client {
        now,
        conn,
        server,
        session: 0,
        o_t: 0,
        sequence: 0,
    };
    let reply = exchange(
        now,
        &mut c.conn,
        &mut c.server,
        &Encapsulation::register_session(*b"_pycomm_").to_vec(),
    );
    c.session = Encapsulation::decode(&reply)
        .unwrap()
        .0
        .header
        .session_handle;

    // Large Forward Open, 4002 bytes both ways, to the Message Router via port 1 slot 0.
    let params = NetworkConnectionParameters::new(
        true,
        false,
        connection_type::POINT_TO_POINT,
        connection_priority::LOW,
        true,
        4002,
    );
    let triple = ConnectionTriple {
        connection_serial: 0x0042,
        originator_vendor_id: 0x1337,
        originator_serial: 42,
    };
    let route: Epath<'static> = Epath::from_vec(vec![0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    let open = ForwardOpenRequest {
        large: true,
        priority_time_tick: 0x0A,
        timeout_ticks: 0x05,
        o_t_connection_id: 0,
        t_o_connection_id: 0x1234_5678,
        triple,
        timeout_multiplier: 5,
        o_t_rpi: 2_000_000,
        o_t_parameters: params.raw,
        t_o_rpi: 2_000_000,
        t_o_parameters: params.raw,
        transport_class_trigger: TransportClassTrigger::CLASS_3_SERVER,
        connection_path: route.clone(),
    };
    let r = c.unconnected(&request(open.service(), "@6/1", open.to_vec()));
    assert_eq!(r.general_status, GeneralStatus::SUCCESS, "{r:?}");
    c.o_t = ForwardOpenReply::decode(&r.data).unwrap().o_t_connection_id;

    // get_plc_info, unconnected.
    let r = c.unconnected(&request(service::GET_ATTRIBUTES_ALL, "@1/1", vec![]));
    assert_eq!(&r.data[15..], b"1756-L61/B LOGIX5561");

    // The tag list upload: pages of 0x06 until 0x00, ~4000 bytes each.
    let attrs = [1u16, 2, 3, 5, 6, 8, 10];
    let mut names = Vec::new();
    let mut structs = Vec::new();
    let mut start = 0u32;
    let mut pages = 0;
    loop {
        let req = request(
            service::GET_INSTANCE_ATTRIBUTE_LIST,
            &format!("@0x6B/{start}"),
            GetAttributeListRequest {
                attributes: attrs.to_vec(),
            }
            .to_vec(),
        );
        let r = c.connected(&req);
        pages += 1;
        assert!(r.encoded_len() <= 4000);
        let body = GetInstanceAttributeListReply::decode(&r.data, &attrs).unwrap();
        for s in &body.instances {
            names.push(s.name().unwrap().to_string());
            if let Some(t) = s.symbol_type().unwrap().template_instance() {
                structs.push(t);
            }
        }
        start = body.instances.last().unwrap().instance_id + 1;
        match r.general_status {
            GeneralStatus::SUCCESS => break,
            GeneralStatus::PARTIAL_TRANSFER => continue,
            other => panic!("{other}"),
        }
    }
    // 302 entries of about 43 bytes, in replies of at most 4000 bytes (the 4002-byte
    // connection less the sequence count).
    assert_eq!(pages, 4);
    assert_eq!(names.len(), 300 + 1 + 1);
    assert!(names.contains(&"Program:MainProgram".to_string()));
    // Each structure's template: attributes 4, 5, 2, 1, then its definition.
    structs.dedup();
    assert_eq!(structs.len(), 1);
    let p = format!("@0x6C/{}", structs[0]);
    let r = c.connected(&request(
        service::GET_ATTRIBUTE_LIST,
        &p,
        GetAttributeListRequest {
            attributes: vec![4, 5, 2, 1],
        }
        .to_vec(),
    ));
    let t = TemplateAttributes::decode(&r.data).unwrap();
    let read = TemplateReadRequest {
        offset: 0,
        bytes: (t.definition_size.unwrap() * 4 - 21) as u16,
    };
    let r = c.connected(&request(service::READ_TAG, &p, read.to_vec()));
    assert_eq!(r.general_status, GeneralStatus::SUCCESS);
    let def = TemplateDefinition::decode(&r.data, t.member_count.unwrap()).unwrap();
    let members: Vec<&str> = def.members.iter().map(|m| m.name.as_ref()).collect();
    assert_eq!(members, ["ZZZZZZZZZZValve0", "Open", "Position", "Tag"]);

    // Write, then read several tags in one Multiple Service Packet.
    let w = WriteTagRequest {
        tag_type: Values::Real(vec![]).tag_type(),
        elements: 1,
        data: 12.5f32.to_le_bytes().to_vec().into(),
    };
    let r = c.connected(&request(
        service::WRITE_TAG,
        "Valves[2].Position",
        w.to_vec(),
    ));
    assert_eq!(r.general_status, GeneralStatus::SUCCESS);
    let msp = MultipleServiceRequest {
        requests: vec![
            request(
                service::READ_TAG,
                "Valves[2].Position",
                ReadTagRequest { elements: 1 }.to_vec(),
            ),
            request(
                service::READ_TAG,
                "Analog_006",
                ReadTagRequest { elements: 7 }.to_vec(),
            ),
            request(
                service::READ_TAG,
                "Program:MainProgram.Step",
                ReadTagRequest { elements: 1 }.to_vec(),
            ),
        ],
    };
    let r = c.connected(&request(
        service::MULTIPLE_SERVICE_PACKET,
        "@2/1",
        msp.to_vec(),
    ));
    assert_eq!(r.general_status, GeneralStatus::SUCCESS);
    let body = MultipleServiceReply::decode(&r.data).unwrap();
    let position = ReadTagReply::decode(&body.replies[0].data).unwrap();
    assert_eq!(position.data.as_ref(), &12.5f32.to_le_bytes());
    assert_eq!(
        ReadTagReply::decode(&body.replies[1].data)
            .unwrap()
            .elements(),
        Some(7)
    );
    assert_eq!(body.replies[2].data.len(), 2 + 4);

    // Forward Close.
    let close = ForwardCloseRequest {
        priority_time_tick: 0x0A,
        timeout_ticks: 0x05,
        triple,
        connection_path: route,
    };
    let r = c.unconnected(&request(service::FORWARD_CLOSE, "@6/1", close.to_vec()));
    assert_eq!(r.general_status, GeneralStatus::SUCCESS, "{r:?}");
}
