//! Tests of the server engine, with a small test device that answers the Identity object
//! and echoes every other request.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::cip::connection_manager::{ForwardCloseReply, ForwardOpenFailure, ForwardOpenReply};
use crate::cip::device::{RequestContext, UNCONNECTED_REPLY_BUDGET};
use crate::cip::message_router::{MessageRouterReply, MessageRouterRequest};
use crate::cip::objects::{Identity, Revision};
use crate::cip::status::ConnectionManagerStatus;
use crate::enip::cpf::SockAddr;
use crate::enip::cpf::{Cpf, Item};
use crate::enip::encapsulation::{status, Command, Encapsulation, Header, SendData};
use crate::enip::frames::*;
use crate::rng::SplitMix64;

/// Service code the test device answers with a reply of `budget + 1` bytes.
const BIG_REPLY: u8 = 0x4B;

#[derive(Debug, Default)]
struct TestDevice {
    /// (service, path bytes, connection serial, reply budget) of every request executed.
    seen: Vec<(u8, Vec<u8>, Option<u16>, usize)>,
}

impl CipDevice for TestDevice {
    fn identity(&self) -> Identity<'_> {
        // A 1756-L61, as in cpppo's capture (gaa_011_reply).
        Identity {
            vendor_id: 1,
            device_type: 0x0E,
            product_code: 0x36,
            revision: Revision {
                major: 20,
                minor: 11,
            },
            status: 0x3160,
            serial_number: 0x006C_061A,
            product_name: "1756-L61/B LOGIX5561".into(),
            state: None,
        }
    }

    fn execute(
        &mut self,
        ctx: &RequestContext,
        req: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static> {
        self.seen.push((
            req.service,
            req.path.as_bytes().to_vec(),
            ctx.connection,
            ctx.reply_budget,
        ));
        if req.service == crate::cip::message_router::service::GET_ATTRIBUTES_ALL
            && req.target_class() == Some(crate::cip::message_router::class::IDENTITY)
        {
            return MessageRouterReply::success(req.service, self.identity().to_vec());
        }
        if req.service == BIG_REPLY {
            return MessageRouterReply::success(req.service, vec![0; ctx.reply_budget]);
        }
        // Echo: path bytes then data.
        let mut data = req.path.as_bytes().to_vec();
        data.extend_from_slice(&req.data);
        MessageRouterReply::success(req.service, data)
    }
}

/// The wildcard address a UDP socket is bound to: replies announce the options' address.
fn any_local() -> SocketAddr {
    "0.0.0.0:44818".parse().unwrap()
}

fn peer() -> SocketAddr {
    "10.0.0.2:50000".parse().unwrap()
}

struct Harness {
    now: Instant,
    server: Server<TestDevice>,
    conn: ServerConn<TestDevice>,
}

impl Harness {
    fn new(options: ServerOptions) -> Self {
        let now = Instant::now();
        let mut server = Server::new(TestDevice::default(), options);
        let conn = ServerConn::new(now, peer(), &mut server);
        Harness { now, server, conn }
    }

    fn default() -> Self {
        Harness::new(ServerOptions::default())
    }

    /// Feed bytes and return everything ready to send now.
    fn send(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.conn.handle_input(self.now, bytes, &mut self.server);
        let mut out = Vec::new();
        self.conn.poll_transmit(self.now, &mut out);
        out
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Register a session and return its handle.
    fn register(&mut self, context: [u8; 8]) -> u32 {
        let out = self.send(&Encapsulation::register_session(context).to_vec());
        let (reply, _) = Encapsulation::decode(&out).unwrap();
        assert_eq!(reply.header.status, status::SUCCESS);
        reply.header.session_handle
    }
}

fn frame(command: Command, session: u32, context: [u8; 8], data: &[u8]) -> Vec<u8> {
    Encapsulation::new(Header::new(command, session, context), data.to_vec())
        .unwrap()
        .to_vec()
}

/// SendRRData with the canonical CPF, timeout 10 (as pycomm3 sends).
fn rr(session: u32, context: [u8; 8], message: &[u8]) -> Vec<u8> {
    frame(
        Command::SendRRData,
        session,
        context,
        &SendData::new(10, Cpf::unconnected(message.to_vec())).to_vec(),
    )
}

/// SendUnitData addressed to `connection_id` with sequence count `sequence`.
fn unit(
    session: u32,
    context: [u8; 8],
    connection_id: u32,
    sequence: u16,
    message: &[u8],
) -> Vec<u8> {
    frame(
        Command::SendUnitData,
        session,
        context,
        &SendData::new(0, Cpf::connected(connection_id, sequence, message.to_vec())).to_vec(),
    )
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The Message Router reply inside a SendRRData reply (asserting the canonical layout).
fn rr_reply(bytes: &[u8]) -> MessageRouterReply<'static> {
    let (f, used) = Encapsulation::decode(bytes).unwrap();
    assert_eq!(used, bytes.len(), "exactly one frame");
    assert_eq!(f.header.command, Command::SendRRData);
    assert_eq!(f.header.status, status::SUCCESS);
    let send = SendData::decode(&f.data).unwrap();
    assert_eq!(send.cpf.items.len(), 2);
    assert_eq!(send.cpf.items[0], Item::NullAddress);
    MessageRouterReply::decode(send.cpf.unconnected_data().unwrap())
        .unwrap()
        .into_owned()
}

// ---------------------------------------------------------------------------------------
// Request builders: the layouts pycomm3 and pylogix send (learned from their sources).

const PYCOMM3_CONTEXT: [u8; 8] = *b"_pycomm_";

/// pycomm3's Large Forward Open (CIPDriver._forward_open): sent directly to the
/// Connection Manager (no Unconnected Send), connection size 4000, T->O id `cid`.
fn pycomm3_large_forward_open(cid: u32, csn: u16, vid: u16, vsn: u32) -> Vec<u8> {
    let params = (0x4200u32 << 16) | 4000;
    let mut m = vec![0x5B, 0x02, 0x20, 0x06, 0x24, 0x01];
    m.extend_from_slice(&[0x0A, 0x05]); // PRIORITY, TIMEOUT_TICKS
    m.extend_from_slice(&0u32.to_le_bytes()); // O->T id: left for the target
    m.extend_from_slice(&cid.to_le_bytes());
    m.extend_from_slice(&csn.to_le_bytes());
    m.extend_from_slice(&vid.to_le_bytes());
    m.extend_from_slice(&vsn.to_le_bytes());
    m.extend_from_slice(&[0x07, 0, 0, 0]); // TIMEOUT_MULTIPLIER, reserved
    m.extend_from_slice(&[0x01, 0x40, 0x20, 0x00]); // O->T RPI
    m.extend_from_slice(&params.to_le_bytes());
    m.extend_from_slice(&[0x01, 0x40, 0x20, 0x00]); // T->O RPI
    m.extend_from_slice(&params.to_le_bytes());
    m.push(0xA3);
    // Connection path: backplane slot 0, Message Router; size byte, no pad byte.
    m.extend_from_slice(&[0x03, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    m
}

/// pycomm3's Forward Close (CIPDriver._forward_close): size byte and pad byte.
fn pycomm3_forward_close(csn: u16, vid: u16, vsn: u32) -> Vec<u8> {
    let mut m = vec![0x4E, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
    m.extend_from_slice(&csn.to_le_bytes());
    m.extend_from_slice(&vid.to_le_bytes());
    m.extend_from_slice(&vsn.to_le_bytes());
    m.extend_from_slice(&[0x03, 0x00, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    m
}

/// pycomm3's get_plc_info: Get Attributes All to Identity 1 wrapped in an Unconnected
/// Send with route path backplane slot 0.
fn pycomm3_get_plc_info() -> Vec<u8> {
    let inner = [0x01, 0x02, 0x20, 0x01, 0x24, 0x01];
    let mut m = vec![0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
    m.extend_from_slice(&(inner.len() as u16).to_le_bytes());
    m.extend_from_slice(&inner);
    m.extend_from_slice(&[0x01, 0x00, 0x01, 0x00]); // route path: 1 word, pad, port 1 link 0
    m
}

/// pylogix's Forward Open (_build_cip_forward_open) for `size`: Large above 511.
fn pylogix_forward_open(size: u16, t_o: u32, serial: u16) -> Vec<u8> {
    let large = size > 511;
    let mut m = vec![
        if large { 0x5B } else { 0x54 },
        0x02,
        0x20,
        0x06,
        0x24,
        0x01,
    ];
    m.extend_from_slice(&[0x0A, 0x0E]);
    m.extend_from_slice(&0x2000_0002u32.to_le_bytes()); // pylogix's O->T suggestion
    m.extend_from_slice(&t_o.to_le_bytes());
    m.extend_from_slice(&serial.to_le_bytes());
    m.extend_from_slice(&0x1337u16.to_le_bytes());
    m.extend_from_slice(&42u32.to_le_bytes());
    m.extend_from_slice(&[0x03, 0, 0, 0]);
    let params = |m: &mut Vec<u8>| {
        if large {
            m.extend_from_slice(&((0x4200u32 << 16) + u32::from(size)).to_le_bytes());
        } else {
            m.extend_from_slice(&(0x4200u16 + size).to_le_bytes());
        }
    };
    m.extend_from_slice(&0x0020_1234u32.to_le_bytes());
    params(&mut m);
    m.extend_from_slice(&0x0020_4001u32.to_le_bytes());
    params(&mut m);
    m.push(0xA3);
    m.extend_from_slice(&[0x03, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    m
}

/// pylogix's Forward Close (_build_forward_close).
fn pylogix_forward_close(serial: u16) -> Vec<u8> {
    let mut m = vec![0x4E, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x0E];
    m.extend_from_slice(&serial.to_le_bytes());
    m.extend_from_slice(&0x1337u16.to_le_bytes());
    m.extend_from_slice(&42u32.to_le_bytes());
    m.extend_from_slice(&[0x03, 0x00, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    m
}

/// pylogix's SendRRData header (_build_rr_data_header): timeout 0, context 0.
fn pylogix_rr(session: u32, message: &[u8]) -> Vec<u8> {
    frame(
        Command::SendRRData,
        session,
        [0; 8],
        &SendData::new(0, Cpf::unconnected(message.to_vec())).to_vec(),
    )
}

/// A Read Tag request for `name`, one element.
fn read_tag(name: &str) -> Vec<u8> {
    let mut path = vec![0x91, name.len() as u8];
    path.extend_from_slice(name.as_bytes());
    if path.len() % 2 == 1 {
        path.push(0);
    }
    let mut m = vec![0x4C, (path.len() / 2) as u8];
    m.extend_from_slice(&path);
    m.extend_from_slice(&[0x01, 0x00]);
    m
}

// ---------------------------------------------------------------------------------------
// Sessions and encapsulation commands

#[test]
fn register_session_answers_like_cpppos_capture() {
    let mut h = Harness::default();
    let out = h.send(RSS_004_REQUEST);
    assert_eq!(out.len(), RSS_004_REPLY.len());
    let handle = u32_at(&out, 4);
    assert_ne!(handle, 0);
    // Everything but the session handle is the capture's reply.
    let mut expect = RSS_004_REPLY.to_vec();
    expect[4..8].copy_from_slice(&handle.to_le_bytes());
    assert_eq!(out, expect);
    assert_eq!(h.conn.session_handle(), Some(handle));
    assert!(h.server.sessions().contains(&handle));
    assert_eq!(
        h.events(),
        vec![ServerEvent::SessionRegistered {
            session_handle: handle
        }]
    );
}

#[test]
fn register_session_refusals() {
    let mut h = Harness::default();
    // Protocol version 2: 0x0069 and the supported version in the data.
    let out = h.send(&frame(Command::RegisterSession, 0, [7; 8], &[2, 0, 0, 0]));
    let (f, _) = Encapsulation::decode(&out).unwrap();
    assert_eq!(f.header.status, status::UNSUPPORTED_PROTOCOL_REVISION);
    assert_eq!(f.header.session_handle, 0);
    assert_eq!(&f.header.sender_context, &[7; 8]);
    assert_eq!(&f.data[..], &[1, 0, 0, 0]);
    assert_eq!(h.conn.session_handle(), None);
    // Non-zero session options: 0x0069 too.
    let out = h.send(&frame(Command::RegisterSession, 0, [0; 8], &[1, 0, 1, 0]));
    assert_eq!(u32_at(&out, 8), status::UNSUPPORTED_PROTOCOL_REVISION);
    assert_eq!(h.conn.session_handle(), None);
    // Wrong data length: 0x0065.
    let out = h.send(&frame(Command::RegisterSession, 0, [0; 8], &[1, 0, 0]));
    assert_eq!(u32_at(&out, 8), status::INVALID_LENGTH);
    // A second registration on the same connection: 0x0001 with the existing handle.
    let handle = h.register([0; 8]);
    let out = h.send(&Encapsulation::register_session([1; 8]).to_vec());
    let (f, _) = Encapsulation::decode(&out).unwrap();
    assert_eq!(f.header.status, status::INVALID_COMMAND);
    assert_eq!(f.header.session_handle, handle);
    assert_eq!(h.server.sessions().len(), 1);
}

#[test]
fn wrong_session_handles_get_status_0x64() {
    let mut h = Harness::default();
    // Before any registration.
    let out = h.send(&rr(0x1234, [1; 8], &[0x01, 0x02, 0x20, 0x01, 0x24, 0x01]));
    let (f, _) = Encapsulation::decode(&out).unwrap();
    assert_eq!(f.header.command, Command::SendRRData);
    assert_eq!(f.header.status, status::INVALID_SESSION_HANDLE);
    assert_eq!(f.header.session_handle, 0x1234);
    assert_eq!(f.header.length, 0);
    assert_eq!(&f.header.sender_context, &[1; 8]);

    let handle = h.register([0; 8]);
    let wrong = handle.wrapping_add(1);
    for bytes in [
        rr(wrong, [0; 8], &[0x01, 0x02, 0x20, 0x01, 0x24, 0x01]),
        unit(wrong, [0; 8], 1, 1, &[0x01, 0x02, 0x20, 0x01, 0x24, 0x01]),
        frame(Command::UnRegisterSession, wrong, [0; 8], &[]),
    ] {
        let out = h.send(&bytes);
        assert_eq!(out.len(), 24);
        assert_eq!(u32_at(&out, 8), status::INVALID_SESSION_HANDLE);
    }
    assert!(!h.conn.is_closed());
    assert!(h.server.device().seen.is_empty());
    // The right handle still works.
    let reply = rr_reply(&h.send(&rr(handle, [0; 8], &[0x01, 0x02, 0x20, 0x01, 0x24, 0x01])));
    assert!(reply.general_status.is_success());
}

#[test]
fn unknown_commands_nop_and_options() {
    let mut h = Harness::default();
    let out = h.send(&frame(
        Command::Other(0x00C8),
        5,
        *b"ctx\0\0\0\0\0",
        &[0xAA],
    ));
    let (f, _) = Encapsulation::decode(&out).unwrap();
    assert_eq!(f.header.command, Command::Other(0x00C8));
    assert_eq!(f.header.status, status::INVALID_COMMAND);
    assert_eq!(f.header.session_handle, 5);
    assert!(f.data.is_empty());
    // Nop: no reply at all.
    assert!(h
        .send(&frame(Command::Nop, 0, [0; 8], &[1, 2, 3]))
        .is_empty());
    // Non-zero options: discarded.
    let mut bytes = LISTIDENT_1_REQ.to_vec();
    bytes[20] = 1;
    assert!(h.send(&bytes).is_empty());
    assert!(h.events().iter().any(|e| matches!(
        e,
        ServerEvent::ProtocolError {
            command: Some(Command::ListIdentity),
            ..
        }
    )));
    // A length beyond the specification's limit: 0x0065 once the frame is in (when the
    // frame size limit lets it in at all).
    h.server.options_mut().max_frame_len = crate::enip::encapsulation::MAX_FRAME_LEN;
    let mut long = Header::new(Command::SendRRData, 0, [0; 8]).to_vec();
    long[2..4].copy_from_slice(&u16::MAX.to_le_bytes());
    long.extend(vec![0; usize::from(u16::MAX)]);
    let out = h.send(&long);
    assert_eq!(u32_at(&out, 8), status::INVALID_LENGTH);
    assert!(!h.conn.is_closed());
}

#[test]
fn list_identity_over_tcp_and_udp() {
    let mut h = Harness::default();
    h.server.options_mut().address = SocketAddrV4::new(Ipv4Addr::new(10, 161, 1, 3), 44818);
    let out = h.send(LISTIDENT_1_REQ);
    let (f, _) = Encapsulation::decode(&out).unwrap();
    assert_eq!(f.header.command, Command::ListIdentity);
    assert_eq!(f.header.status, status::SUCCESS);
    let cpf = Cpf::decode(&f.data).unwrap();
    assert_eq!(cpf.items.len(), 1);
    assert_eq!(cpf.items[0].type_id(), 0x000C);
    let id = cpf.identities().next().unwrap();
    assert_eq!(id.protocol_version, 1);
    assert_eq!(
        id.socket_address,
        SockAddr::new([10, 161, 1, 3].into(), 44818)
    );
    assert_eq!(id.vendor_id, 1);
    assert_eq!(id.device_type, 0x0E);
    assert_eq!(id.product_code, 0x36);
    assert_eq!((id.revision_major, id.revision_minor), (20, 11));
    assert_eq!(id.status, 0x3160);
    assert_eq!(id.serial_number, 0x006C_061A);
    assert_eq!(id.product_name_lossy(), "1756-L61/B LOGIX5561");
    assert_eq!(id.state, Some(IDENTITY_STATE_UNKNOWN));
    // sockaddr fields are big-endian on the wire: family 2, port 0xAF12.
    assert_eq!(&out[32..36], &[0x00, 0x02, 0xAF, 0x12]);
    assert_eq!(&out[36..40], &[10, 161, 1, 3]);

    // A connection's own local address wins.
    h.conn
        .set_local_address(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 9), 44818));
    let out = h.send(LISTIDENT_1_REQ);
    assert_eq!(&out[36..40], &[192, 168, 1, 9]);

    // UDP: the same reply as a datagram, with the server's address.
    let mut dgram = Vec::new();
    assert!(h
        .server
        .handle_datagram(h.now, any_local(), peer(), LISTIDENT_1_REQ, &mut dgram));
    let (g, _) = Encapsulation::decode(&dgram).unwrap();
    assert_eq!(g.body().unwrap(), f.body().unwrap());
    // Commands needing a TCP connection are refused with 0x0001.
    for request in [
        RSS_004_REQUEST.to_vec(),
        frame(Command::Nop, 0, [3; 8], &[]),
        rr(1, [3; 8], &[0x01, 0x02, 0x20, 0x01, 0x24, 0x01]),
    ] {
        let mut d = Vec::new();
        assert!(h
            .server
            .handle_datagram(h.now, any_local(), peer(), &request, &mut d));
        let (f, used) = Encapsulation::decode(&d).unwrap();
        assert_eq!(used, 24);
        assert_eq!(f.header.status, status::INVALID_COMMAND);
        assert_eq!(&d[..2], &request[..2]);
        assert_eq!(&d[12..20], &request[12..20]);
    }
    // Garbage and trailing bytes get no datagram.
    let mut none = Vec::new();
    assert!(!h
        .server
        .handle_datagram(h.now, any_local(), peer(), &[0x63, 0], &mut none));
    let mut two = LISTIDENT_1_REQ.to_vec();
    two.extend_from_slice(LISTIDENT_1_REQ);
    assert!(!h
        .server
        .handle_datagram(h.now, any_local(), peer(), &two, &mut none));
    assert!(none.is_empty());
    h.server.faults.disabled = true;
    assert!(!h
        .server
        .handle_datagram(h.now, any_local(), peer(), LISTIDENT_1_REQ, &mut none));
}

#[test]
fn list_services_has_the_16_byte_name_field() {
    let mut h = Harness::default();
    let out = h.send(LST_SVC1_REQ);
    let mut expect = vec![
        0x04, 0x00, 0x1A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, b'F', b'u', b'n', b's', b't', b'u', b'f',
        b'f', 0, 0, 0, 0, // header: length 26, context "Funstuff"
        0x01, 0x00, // item count
        0x00, 0x01, 0x14, 0x00, // type 0x0100, length 20
        0x01, 0x00, 0x20, 0x00, // version 1, capability: CIP encapsulation
    ];
    expect.extend_from_slice(b"Communications\0\0");
    assert_eq!(out, expect);
    let mut dgram = Vec::new();
    assert!(h
        .server
        .handle_datagram(h.now, any_local(), peer(), LST_SVC1_REQ, &mut dgram));
    assert_eq!(dgram, expect);
}

#[test]
fn list_interfaces_is_an_empty_cpf_like_cpppos() {
    let mut h = Harness::default();
    let out = h.send(&frame(Command::ListInterfaces, 0, [0; 8], &[]));
    assert_eq!(out, LISTIFACES_1_RPY);
}

#[test]
fn legacy_0001_answers_as_cpppo() {
    let mut h = Harness::new(ServerOptions {
        address: SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 253), 44818),
        ..ServerOptions::default()
    });
    let request = frame(Command::Legacy, 0, [0; 8], &[]);
    assert_eq!(h.send(&request), LEGACY_0001_REPLY);
    let mut dgram = Vec::new();
    assert!(h
        .server
        .handle_datagram(h.now, any_local(), peer(), &request, &mut dgram));
    assert_eq!(dgram, LEGACY_0001_REPLY);
}

#[test]
fn unregister_session_closes_without_reply() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    h.events();
    let out = h.send(&frame(Command::UnRegisterSession, handle, [0; 8], &[]));
    assert!(out.is_empty());
    assert!(h.conn.is_closed());
    assert!(h.server.sessions().is_empty());
    assert_eq!(
        h.events(),
        vec![
            ServerEvent::SessionUnregistered {
                session_handle: handle
            },
            ServerEvent::Closed {
                reason: CloseReason::UnRegisterSession
            }
        ]
    );
    // Input after that is ignored.
    assert!(h.send(LISTIDENT_1_REQ).is_empty());
}

// ---------------------------------------------------------------------------------------
// SendRRData: direct requests and Unconnected Send

#[test]
fn unconnected_send_replies_byte_for_byte_like_a_1756_l61() {
    // cpppo's capture against a 1756-L61: Unconnected Send of Get Attributes All to the
    // Identity object, route path port 1 link 0, and its reply.
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let mut request = GAA_011_REQUEST.to_vec();
    request[4..8].copy_from_slice(&handle.to_le_bytes());
    let out = h.send(&request);
    let mut expect = GAA_011_REPLY.to_vec();
    expect[4..8].copy_from_slice(&handle.to_le_bytes());
    assert_eq!(out, expect);
    // The device saw the embedded request, unconnected, with the unconnected budget.
    assert_eq!(
        h.server.device().seen,
        vec![(
            0x01,
            vec![0x20, 0x01, 0x24, 0x01],
            None,
            UNCONNECTED_REPLY_BUDGET
        )]
    );
    assert!(h.events().contains(&ServerEvent::RequestServed {
        command: Command::SendRRData,
        service: 0x01,
        general_status: GeneralStatus::SUCCESS,
        connection: None,
    }));
}

#[test]
fn direct_message_router_requests_reach_the_device() {
    // cpppo gaa_008_request: Get Attributes All to class 0x66 instance 1, no Unconnected
    // Send. Replies have the canonical layout that pycomm3/pylogix read at fixed offsets.
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let mut request = GAA_008_REQUEST.to_vec();
    request[4..8].copy_from_slice(&handle.to_le_bytes());
    let out = h.send(&request);
    assert_eq!(u16_at(&out, 28), 5, "timeout echoed");
    assert_eq!(u16_at(&out, 30), 2, "two items");
    assert_eq!(u16_at(&out, 32), 0x0000, "null address");
    assert_eq!(u16_at(&out, 34), 0);
    assert_eq!(u16_at(&out, 36), 0x00B2, "unconnected data");
    assert_eq!(out[40], 0x81);
    assert_eq!(out[42], 0, "general status at pycomm3's offset 42");
    assert_eq!(out[43], 0, "no additional status");
    assert_eq!(&out[44..], &[0x20, 0x66, 0x24, 0x01]);
    assert_eq!(h.server.device().seen[0].1, vec![0x20, 0x66, 0x24, 0x01]);
}

#[test]
fn route_paths_are_checked_per_policy() {
    let us = |route: &[u8]| {
        let inner = [0x0E, 0x03, 0x20, 0x01, 0x24, 0x01, 0x30, 0x07];
        let mut m = vec![0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
        m.extend_from_slice(&(inner.len() as u16).to_le_bytes());
        m.extend_from_slice(&inner);
        m.push((route.len() / 2) as u8);
        m.push(0);
        m.extend_from_slice(route);
        m
    };
    let run = |policy: RoutePolicy, route: &[u8]| {
        let mut h = Harness::new(ServerOptions {
            route_path: policy,
            ..ServerOptions::default()
        });
        let handle = h.register([0; 8]);
        rr_reply(&h.send(&rr(handle, [0; 8], &us(route))))
    };
    // Default: backplane port 1 link 0 (and the empty route) only.
    assert!(run(RoutePolicy::default(), &[0x01, 0x00])
        .general_status
        .is_success());
    assert!(run(RoutePolicy::default(), &[]).general_status.is_success());
    let r = run(RoutePolicy::default(), &[0x01, 0x03]);
    assert_eq!(r.service, 0xD2);
    assert_eq!(r.general_status, GeneralStatus::CONNECTION_FAILURE);
    assert_eq!(r.additional_status, vec![0x0312]);
    assert_eq!(&r.data[..], &[1], "remaining path size in words");
    let r = run(RoutePolicy::default(), &[0x02, 0x00]);
    assert_eq!(r.additional_status, vec![0x0311]);
    // Two hops where one is configured.
    let r = run(RoutePolicy::default(), &[0x01, 0x00, 0x02, 0x05]);
    assert_eq!(r.general_status, GeneralStatus::CONNECTION_FAILURE);
    // false / --simple: no route at all.
    let simple = ServerOptions::default().simple().route_path;
    assert_eq!(simple, RoutePolicy::None);
    assert_eq!(RoutePolicy::from_cpppo("false").unwrap(), RoutePolicy::None);
    let r = run(RoutePolicy::None, &[0x01, 0x00]);
    assert_eq!(r.additional_status, vec![0x0311]);
    assert!(run(RoutePolicy::None, &[]).general_status.is_success());
    // cpppo's unspecified --route-path: anything.
    assert!(run(RoutePolicy::Any, &[0x01, 0x07])
        .general_status
        .is_success());
    // A JSON list.
    let p = RoutePolicy::from_cpppo(r#"[{"port":1,"link":2}]"#).unwrap();
    assert!(run(p.clone(), &[0x01, 0x02]).general_status.is_success());
    assert_eq!(run(p, &[0x01, 0x00]).additional_status, vec![0x0312]);
}

#[test]
fn simple_mode_serves_requests_without_unconnected_send() {
    let mut h = Harness::new(ServerOptions::default().simple());
    let handle = h.register([0; 8]);
    let r = rr_reply(&h.send(&rr(handle, [0; 8], &read_tag("SCADA"))));
    assert_eq!(r.service, 0xCC);
    assert!(r.general_status.is_success());
    assert_eq!(h.server.device().seen[0].0, 0x4C);
}

#[test]
fn malformed_send_rr_data_gets_incorrect_data() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    // A CPF with only a null address.
    let data = SendData::new(
        0,
        Cpf {
            items: vec![Item::NullAddress],
        },
    )
    .to_vec();
    let out = h.send(&frame(Command::SendRRData, handle, [0; 8], &data));
    assert_eq!(u32_at(&out, 8), status::INCORRECT_DATA);
    // Garbage data.
    let out = h.send(&frame(Command::SendRRData, handle, [0; 8], &[1, 2, 3]));
    assert_eq!(u32_at(&out, 8), status::INCORRECT_DATA);
    // An empty unconnected data item.
    let out = h.send(&rr(handle, [0; 8], &[]));
    assert_eq!(u32_at(&out, 8), status::INCORRECT_DATA);
    // A path longer than the message: a CIP error, not an encapsulation one.
    let r = rr_reply(&h.send(&rr(handle, [0; 8], &[0x4C, 0x09, 0x91])));
    assert_eq!(r.service, 0xCC);
    assert_eq!(r.general_status, GeneralStatus::PATH_SEGMENT_ERROR);
    // A truncated Unconnected Send.
    let r = rr_reply(&h.send(&rr(
        handle,
        [0; 8],
        &[0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A],
    )));
    assert_eq!(r.service, 0xD2);
    assert_eq!(r.general_status, GeneralStatus::NOT_ENOUGH_DATA);
}

// ---------------------------------------------------------------------------------------
// Connected messaging

#[test]
fn pycomm3_open_and_close_sequence() {
    let mut h = Harness::default();
    let (cid, csn, vid, vsn) = (0x7119_0427u32, 0x0427u16, 0x1009u16, 0x7119_1009u32);
    // open(): RegisterSession with pycomm3's context.
    let handle = h.register(PYCOMM3_CONTEXT);
    // _initialize_driver: ListIdentity over the TCP connection.
    let out = h.send(&frame(Command::ListIdentity, handle, PYCOMM3_CONTEXT, &[]));
    let (f, _) = Encapsulation::decode(&out).unwrap();
    assert_eq!(&f.header.sender_context, b"_pycomm_");
    assert_eq!(
        Cpf::decode(&out[24..])
            .unwrap()
            .identities()
            .next()
            .unwrap()
            .product_name_lossy(),
        "1756-L61/B LOGIX5561"
    );
    // get_plc_info: Unconnected Send of Get Attributes All to the Identity.
    let out = h.send(&rr(handle, PYCOMM3_CONTEXT, &pycomm3_get_plc_info()));
    assert_eq!(out[40], 0x81);
    assert_eq!(out[42], 0);
    assert_eq!(
        Identity::decode(&out[44..]).unwrap(),
        h.server.device().identity()
    );
    // get_plc_name needs a connection: Large Forward Open, sent unwrapped.
    let out = h.send(&rr(
        handle,
        PYCOMM3_CONTEXT,
        &pycomm3_large_forward_open(cid, csn, vid, vsn),
    ));
    assert_eq!(out[40], 0xDB);
    assert_eq!(out[42], 0, "Forward Open status");
    let fo = ForwardOpenReply::decode(&out[44..]).unwrap();
    let o_t = u32_at(&out, 44); // what pycomm3 keeps as its target cid
    assert_eq!(fo.o_t_connection_id, o_t);
    assert_ne!(o_t, 0);
    assert_eq!(fo.t_o_connection_id, cid);
    assert_eq!(fo.triple.connection_serial, csn);
    assert_eq!(fo.triple.originator_vendor_id, vid);
    assert_eq!(fo.triple.originator_serial, vsn);
    assert_eq!((fo.o_t_api, fo.t_o_api), (0x0020_4001, 0x0020_4001));
    assert_eq!(h.conn.connections().len(), 1);
    assert_eq!(h.conn.connections()[0].t_o_size, 4000);
    // Connected Get Attributes All to the program name object (class 0x64), sequence 1.
    let out = h.send(&unit(
        handle,
        PYCOMM3_CONTEXT,
        o_t,
        1,
        &[0x01, 0x02, 0x20, 0x64, 0x24, 0x01],
    ));
    assert_eq!(u16_at(&out, 0), 0x0070);
    assert_eq!(&out[12..20], b"_pycomm_");
    assert_eq!(u16_at(&out, 30), 2);
    assert_eq!(u16_at(&out, 32), 0x00A1);
    assert_eq!(u32_at(&out, 36), cid, "reply addressed with the T->O id");
    assert_eq!(u16_at(&out, 40), 0x00B1);
    assert_eq!(u16_at(&out, 44), 1, "sequence count echoed");
    assert_eq!(out[46], 0x81, "service at pycomm3's offset 46");
    assert_eq!(out[48], 0, "status at pycomm3's offset 48");
    assert_eq!(&out[50..], &[0x20, 0x64, 0x24, 0x01]);
    let seen = h.server.device().seen.last().unwrap().clone();
    assert_eq!(seen.2, Some(csn), "connection serial in the context");
    assert_eq!(
        seen.3,
        4000 - 2,
        "budget: connection size less the sequence count"
    );
    // close(): Forward Close, unwrapped, then UnRegisterSession.
    let out = h.send(&rr(
        handle,
        PYCOMM3_CONTEXT,
        &pycomm3_forward_close(csn, vid, vsn),
    ));
    assert_eq!(out[40], 0xCE);
    assert_eq!(out[42], 0);
    let fc = ForwardCloseReply::decode(&out[44..]).unwrap();
    assert_eq!(fc.triple, fo.triple);
    assert!(h.conn.connections().is_empty());
    assert!(h.server.connections().is_empty());
    assert!(h
        .send(&frame(
            Command::UnRegisterSession,
            handle,
            PYCOMM3_CONTEXT,
            &[]
        ))
        .is_empty());
    assert!(h.conn.is_closed());
    let events = h.events();
    assert!(events.iter().any(|e| matches!(
        e,
        ServerEvent::ConnectionOpened { t_o_connection_id, size: 4000, .. } if *t_o_connection_id == cid
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        ServerEvent::ConnectionClosed { reason: ConnectionCloseReason::ForwardClose, o_t_connection_id, .. }
            if *o_t_connection_id == o_t
    )));
}

#[test]
fn pylogix_open_read_and_close_sequence() {
    let mut h = Harness::default();
    // pylogix's context: its version, space padded to 8 bytes.
    let handle = h.register(*b"1.0.5   ");
    let out = h.send(&pylogix_rr(handle, &pylogix_forward_open(4002, 31337, 777)));
    assert_eq!(out[42], 0, "pylogix reads the status at 42");
    let o_t = u32_at(&out, 44);
    assert_ne!(o_t, 0x2000_0002, "the target chooses the O->T id");
    assert_eq!(u32_at(&out, 48), 31337);
    // pylogix addresses connected requests with the O->T id at offset 44.
    for seq in 1u16..=3 {
        let out = h.send(&unit(
            handle,
            *b"\x01\0\0\0\0\0\0\0",
            o_t,
            seq,
            &read_tag("Tag"),
        ));
        assert_eq!(u32_at(&out, 36), 31337);
        assert_eq!(u16_at(&out, 44), seq);
        assert_eq!(out[46], 0xCC);
        assert_eq!(out[48], 0, "pylogix reads the status at 48");
    }
    assert_eq!(h.server.device().seen.len(), 3);
    assert_eq!(h.server.device().seen[0].3, 4000);
    let out = h.send(&pylogix_rr(handle, &pylogix_forward_close(777)));
    assert_eq!(out[40], 0xCE);
    assert_eq!(out[42], 0);
    assert!(h
        .send(&frame(Command::UnRegisterSession, handle, [0; 8], &[]))
        .is_empty());
    assert!(h.conn.is_closed());
    assert!(h.server.connections().is_empty());
}

#[test]
fn small_forward_open_and_refusals() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    // A 16-bit Forward Open of 504 bytes.
    let r = rr_reply(&h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 1, 1))));
    assert_eq!(r.service, 0xD4);
    assert!(r.general_status.is_success());
    assert_eq!(h.conn.connections()[0].reply_budget(), 502);
    assert!(!h.conn.connections()[0].large);
    // The same triple again: connection in use.
    let r = rr_reply(&h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 2, 1))));
    assert_eq!(r.general_status, GeneralStatus::CONNECTION_FAILURE);
    assert_eq!(
        r.additional_status,
        vec![ConnectionManagerStatus::CONNECTION_IN_USE.0]
    );
    let failure = ForwardOpenFailure::decode(&r.data).unwrap();
    assert_eq!(failure.triple.unwrap().connection_serial, 1);
    // Too large: 0x0109 with the largest size supported.
    let r = rr_reply(&h.send(&pylogix_rr(handle, &pylogix_forward_open(4003, 3, 3))));
    assert_eq!(
        r.additional_status,
        vec![0x0109, DEFAULT_MAX_CONNECTION_SIZE]
    );
    // Transport class 1: not supported.
    let mut m = pylogix_forward_open(504, 4, 4);
    let at = m.len() - 8;
    m[at] = 0x81;
    let r = rr_reply(&h.send(&pylogix_rr(handle, &m)));
    assert_eq!(r.additional_status, vec![0x0103]);
    // Connection path to something other than the Message Router.
    let mut m = pylogix_forward_open(504, 5, 5);
    let n = m.len();
    m[n - 1] = 0x02;
    let r = rr_reply(&h.send(&pylogix_rr(handle, &m)));
    assert_eq!(r.additional_status, vec![0x0315]);
    // Connection path through another slot.
    let mut m = pylogix_forward_open(504, 6, 6);
    let n = m.len();
    m[n - 5] = 0x04;
    let r = rr_reply(&h.send(&pylogix_rr(handle, &m)));
    assert_eq!(r.additional_status, vec![0x0312]);
    assert_eq!(
        ForwardOpenFailure::decode(&r.data)
            .unwrap()
            .remaining_path_size,
        Some(3)
    );
    // A Forward Open inside an Unconnected Send is served too.
    let inner = pylogix_forward_open(504, 7, 7);
    let mut m = vec![0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
    m.extend_from_slice(&(inner.len() as u16).to_le_bytes());
    m.extend_from_slice(&inner);
    if inner.len() % 2 == 1 {
        m.push(0);
    }
    m.extend_from_slice(&[0x01, 0x00, 0x01, 0x00]);
    let r = rr_reply(&h.send(&pylogix_rr(handle, &m)));
    assert_eq!(r.service, 0xD4);
    assert!(r.general_status.is_success());
    assert_eq!(h.conn.connections().len(), 2);
    // Forward Close of an unknown connection: 0x0107.
    let r = rr_reply(&h.send(&pylogix_rr(handle, &pylogix_forward_close(99))));
    assert_eq!(r.service, 0xCE);
    assert_eq!(r.general_status, GeneralStatus::CONNECTION_FAILURE);
    assert_eq!(r.additional_status, vec![0x0107]);
}

#[test]
fn connected_requests_to_unknown_ids_are_dropped_and_retransmissions_replayed() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let out = h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 0xABCD, 9)));
    let o_t = u32_at(&out, 44);
    h.events();
    assert!(h
        .send(&unit(handle, [0; 8], o_t ^ 1, 1, &read_tag("A")))
        .is_empty());
    assert!(matches!(
        h.events().as_slice(),
        [ServerEvent::ProtocolError {
            command: Some(Command::SendUnitData),
            ..
        }]
    ));
    // A SendUnitData without a connected address: dropped.
    let data = SendData::new(0, Cpf::unconnected(read_tag("A"))).to_vec();
    assert!(h
        .send(&frame(Command::SendUnitData, handle, [0; 8], &data))
        .is_empty());
    // Sequence 5 twice: executed once, answered twice identically.
    let first = h.send(&unit(handle, [0; 8], o_t, 5, &read_tag("A")));
    let again = h.send(&unit(handle, [0; 8], o_t, 5, &read_tag("A")));
    assert_eq!(first, again);
    assert_eq!(h.server.device().seen.len(), 1);
    let next = h.send(&unit(handle, [0; 8], o_t, 6, &read_tag("A")));
    assert_eq!(u16_at(&next, 44), 6);
    assert_eq!(h.server.device().seen.len(), 2);
}

#[test]
fn connection_times_out_after_rpi_times_multiplier() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let out = h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 0x1111, 3)));
    let o_t = u32_at(&out, 44);
    // pylogix: O->T RPI 0x00201234 us, multiplier 3 -> x32.
    let timeout = Duration::from_micros(0x0020_1234 * 32);
    assert_eq!(h.conn.connections()[0].timeout, timeout);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + timeout));
    // A request just before the deadline renews it.
    h.now += timeout - Duration::from_millis(1);
    h.conn.handle_timeout(h.now, &mut h.server);
    assert_eq!(h.conn.connections().len(), 1);
    let out = h.send(&unit(handle, [0; 8], o_t, 1, &read_tag("A")));
    assert!(!out.is_empty());
    assert_eq!(h.conn.poll_timeout(), Some(h.now + timeout));
    h.events();
    h.now += timeout;
    h.conn.handle_timeout(h.now, &mut h.server);
    assert!(h.conn.connections().is_empty());
    assert!(h.server.connections().is_empty());
    assert!(matches!(
        h.events().as_slice(),
        [ServerEvent::ConnectionClosed {
            reason: ConnectionCloseReason::TimedOut,
            ..
        }]
    ));
    assert_eq!(h.conn.poll_timeout(), None);
    assert!(h
        .send(&unit(handle, [0; 8], o_t, 2, &read_tag("A")))
        .is_empty());
    assert_eq!(
        super::connection::connection_timeout(1000, 0),
        Duration::from_millis(4)
    );
    assert_eq!(
        super::connection::connection_timeout(1000, 9),
        Duration::from_millis(512)
    );
}

#[test]
fn idle_connections_close_after_the_inactivity_timeout() {
    let idle = Duration::from_secs(120);
    let mut h = Harness::new(ServerOptions {
        inactivity_timeout: Some(idle),
        ..ServerOptions::default()
    });
    let handle = h.register([0; 8]);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + idle));
    // An open CIP connection keeps it alive (its own timeout governs).
    let out = h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 5, 5)));
    let o_t = u32_at(&out, 44);
    let cip = h.conn.connections()[0].timeout;
    assert_eq!(h.conn.poll_timeout(), Some(h.now + cip));
    h.send(&unit(handle, [0; 8], o_t, 1, &read_tag("A")));
    // Once it times out, the idle clock (from the last input) applies again.
    h.now += cip;
    h.conn.handle_timeout(h.now, &mut h.server);
    assert!(h.conn.connections().is_empty());
    assert!(!h.conn.is_closed());
    let last_input = h.now - cip;
    assert_eq!(h.conn.poll_timeout(), Some(last_input + idle));
    h.now = last_input + idle - Duration::from_millis(1);
    h.conn.handle_timeout(h.now, &mut h.server);
    assert!(!h.conn.is_closed());
    h.now = last_input + idle;
    h.conn.handle_timeout(h.now, &mut h.server);
    assert!(h.conn.is_closed());
    assert_eq!(
        h.events().last(),
        Some(&ServerEvent::Closed {
            reason: CloseReason::Inactivity
        })
    );
    // Without the option (cpppo), an idle connection has no deadline.
    let mut h = Harness::default();
    h.register([0; 8]);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn negotiated_connection_size_bounds_the_reply() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let out = h.send(&pylogix_rr(handle, &pylogix_forward_open(100, 0x2222, 4)));
    let o_t = u32_at(&out, 44);
    // The device fills its whole budget: 98 bytes of Message Router reply... plus header.
    let out = h.send(&unit(
        handle,
        [0; 8],
        o_t,
        1,
        &[BIG_REPLY, 0x02, 0x20, 0x01, 0x24, 0x01],
    ));
    assert_eq!(h.server.device().seen[0].3, 98);
    assert_eq!(out[46], BIG_REPLY | 0x80);
    assert_eq!(out[48], GeneralStatus::REPLY_DATA_TOO_LARGE.0);
    // Unconnected: the unconnected budget.
    let r = rr_reply(&h.send(&rr(
        handle,
        [0; 8],
        &[BIG_REPLY, 0x02, 0x20, 0x01, 0x24, 0x01],
    )));
    assert_eq!(h.server.device().seen[1].3, UNCONNECTED_REPLY_BUDGET);
    assert_eq!(r.general_status, GeneralStatus::REPLY_DATA_TOO_LARGE);
}

// ---------------------------------------------------------------------------------------
// Streams, sessions side by side, robustness

/// A whole pycomm3-style conversation as one byte stream, and the handle it will get
/// (the generator is seeded, so a fresh server gives the same handle every time).
fn conversation() -> Vec<u8> {
    let handle = {
        let mut h = Harness::default();
        h.register(PYCOMM3_CONTEXT)
    };
    let o_t = {
        let mut h = Harness::default();
        h.register(PYCOMM3_CONTEXT);
        let out = h.send(&rr(
            handle,
            PYCOMM3_CONTEXT,
            &pycomm3_large_forward_open(9, 8, 7, 6),
        ));
        u32_at(&out, 44)
    };
    [
        Encapsulation::register_session(PYCOMM3_CONTEXT).to_vec(),
        frame(Command::ListIdentity, handle, PYCOMM3_CONTEXT, &[]),
        frame(Command::Nop, handle, PYCOMM3_CONTEXT, &[0; 3]),
        rr(handle, PYCOMM3_CONTEXT, &pycomm3_get_plc_info()),
        rr(
            handle,
            PYCOMM3_CONTEXT,
            &pycomm3_large_forward_open(9, 8, 7, 6),
        ),
        unit(handle, PYCOMM3_CONTEXT, o_t, 1, &read_tag("SCADA")),
        unit(handle, PYCOMM3_CONTEXT, o_t, 2, &read_tag("SCADA")),
        rr(handle, PYCOMM3_CONTEXT, &pycomm3_forward_close(8, 7, 6)),
        frame(Command::UnRegisterSession, handle, PYCOMM3_CONTEXT, &[]),
    ]
    .concat()
}

fn run_split(stream: &[u8], pieces: &[&[u8]]) -> (Vec<u8>, Vec<ServerEvent>) {
    let mut h = Harness::default();
    let mut out = Vec::new();
    for piece in pieces {
        h.conn.handle_input(h.now, piece, &mut h.server);
        h.conn.poll_transmit(h.now, &mut out);
    }
    assert!(h.conn.is_closed());
    assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), stream.len());
    (out, h.events())
}

#[test]
fn input_split_at_every_byte_gives_identical_output() {
    let stream = conversation();
    let (whole, events) = run_split(&stream, &[&stream]);
    // Replies: register, list identity, plc info, forward open, 2 reads, forward close.
    let mut n = 0;
    let mut rest = &whole[..];
    while !rest.is_empty() {
        let (_, used) = Encapsulation::decode(rest).unwrap();
        rest = &rest[used..];
        n += 1;
    }
    assert_eq!(n, 7);
    assert!(events.contains(&ServerEvent::Closed {
        reason: CloseReason::UnRegisterSession
    }));
    for split in 0..=stream.len() {
        let (a, b) = stream.split_at(split);
        assert_eq!(
            run_split(&stream, &[a, b]),
            (whole.clone(), events.clone()),
            "split {split}"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run_split(&stream, &bytes), (whole, events));
}

#[test]
fn two_sessions_interleaved_stay_independent() {
    let now = Instant::now();
    let mut server = Server::new(TestDevice::default(), ServerOptions::default());
    let mut a = ServerConn::new(now, "10.0.0.1:1".parse().unwrap(), &mut server);
    let mut b = ServerConn::new(now, "10.0.0.2:2".parse().unwrap(), &mut server);
    let send = |c: &mut ServerConn<TestDevice>, server: &mut Server<TestDevice>, bytes: &[u8]| {
        c.handle_input(now, bytes, server);
        let mut out = Vec::new();
        c.poll_transmit(now, &mut out);
        out
    };
    let reg = Encapsulation::register_session([0; 8]).to_vec();
    // Interleave the registrations byte by byte.
    for (x, y) in reg.iter().zip(reg.iter()) {
        a.handle_input(now, std::slice::from_ref(x), &mut server);
        b.handle_input(now, std::slice::from_ref(y), &mut server);
    }
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    a.poll_transmit(now, &mut ra);
    b.poll_transmit(now, &mut rb);
    let (ha, hb) = (u32_at(&ra, 4), u32_at(&rb, 4));
    assert_ne!(ha, hb);
    assert_eq!(server.sessions().len(), 2);
    // A's handle is not valid on B's connection.
    let out = send(&mut b, &mut server, &rr(ha, [0; 8], &read_tag("X")));
    assert_eq!(u32_at(&out, 8), status::INVALID_SESSION_HANDLE);
    // A opens a connection; B can neither use nor close it.
    let out = send(
        &mut a,
        &mut server,
        &pylogix_rr(ha, &pylogix_forward_open(504, 0xA, 1)),
    );
    let o_t = u32_at(&out, 44);
    assert!(send(
        &mut b,
        &mut server,
        &unit(hb, [0; 8], o_t, 1, &read_tag("X"))
    )
    .is_empty());
    let r = rr_reply(&send(
        &mut b,
        &mut server,
        &pylogix_rr(hb, &pylogix_forward_close(1)),
    ));
    assert_eq!(r.additional_status, vec![0x0107]);
    // B opening the same triple collides with A's (server-wide identity).
    let r = rr_reply(&send(
        &mut b,
        &mut server,
        &pylogix_rr(hb, &pylogix_forward_open(504, 0xB, 1)),
    ));
    assert_eq!(r.additional_status, vec![0x0100]);
    let out = send(
        &mut a,
        &mut server,
        &unit(ha, [0; 8], o_t, 1, &read_tag("X")),
    );
    assert_eq!(u32_at(&out, 36), 0xA);
    // B hangs up: A is untouched.
    b.handle_eof(now, &mut server);
    assert!(b.is_closed());
    assert_eq!(server.sessions().len(), 1);
    assert_eq!(server.connections().len(), 1);
    // A hangs up: its connection goes too.
    a.handle_eof(now, &mut server);
    assert!(server.connections().is_empty());
    assert!(server.sessions().is_empty());
    assert!(server.stats().values().all(|s| s.closed));
}

#[test]
fn a_junk_header_is_an_unknown_command_and_the_connection_carries_on() {
    // The framing accepts every header (only frames above the decoder's limit could
    // fail, and the limit is the largest frame a header can announce), so junk is a
    // frame of an unknown command: answered 0x0001, and the stream stays in step.
    let mut h = Harness::default();
    let mut junk = vec![0xFFu8; 24];
    junk[2..4].copy_from_slice(&[0, 0]);
    junk[20..24].copy_from_slice(&[0; 4]);
    let out = h.send(&junk);
    assert_eq!(u32_at(&out, 8), status::INVALID_COMMAND);
    assert!(!h.conn.is_closed());
    assert_eq!(h.send(LISTIDENT_1_REQ)[..2], [0x63, 0x00]);
}

#[test]
fn pycomm3_falls_back_to_a_small_forward_open() {
    // A controller that supports only 500-byte connections refuses pycomm3's 4000-byte
    // Large Forward Open with 0x0109 and the size it supports; pycomm3 then sends a
    // standard Forward Open of 500 bytes.
    let mut h = Harness::new(ServerOptions {
        max_connection_size: 500,
        ..ServerOptions::default()
    });
    let handle = h.register(PYCOMM3_CONTEXT);
    let out = h.send(&rr(
        handle,
        PYCOMM3_CONTEXT,
        &pycomm3_large_forward_open(1, 2, 3, 4),
    ));
    assert_eq!(out[40], 0xDB);
    assert_eq!(out[42], 0x01);
    let r = rr_reply(&out);
    assert_eq!(r.additional_status, vec![0x0109, 500]);
    assert!(h.server.connections().is_empty());
    let mut small = pycomm3_large_forward_open(1, 2, 3, 4);
    // Service 0x54 and 16-bit network connection parameters 0x4200 | 500.
    small[0] = 0x54;
    let params = (0x4200u16 | 500).to_le_bytes();
    small.splice(32..36, params);
    small.splice(38..42, params);
    let out = h.send(&rr(handle, PYCOMM3_CONTEXT, &small));
    assert_eq!(out[40], 0xD4);
    assert_eq!(out[42], 0);
    assert_eq!(h.conn.connections()[0].t_o_size, 500);
    assert_eq!(h.conn.connections()[0].reply_budget(), 498);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        register in any::<bool>(),
    ) {
        let mut h = Harness::default();
        if register {
            h.register([0; 8]);
        }
        let mut out = Vec::new();
        for chunk in &chunks {
            h.conn.handle_input(h.now, chunk, &mut h.server);
            h.conn.poll_transmit(h.now, &mut out);
            h.conn.handle_timeout(h.now, &mut h.server);
            let mut d = Vec::new();
            let _ = h.server.handle_datagram(h.now, any_local(), peer(), chunk, &mut d);
        }
        while h.conn.poll_event().is_some() {}
        // Whatever came out is whole frames.
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (_, used) = Encapsulation::decode(rest).unwrap();
            rest = &rest[used..];
        }
    }

    #[test]
    fn arbitrary_cip_messages_never_panic(
        message in proptest::collection::vec(any::<u8>(), 0..96),
        connected in any::<bool>(),
    ) {
        let mut h = Harness::default();
        let handle = h.register([0; 8]);
        let out = if connected {
            let fo = h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 1, 1)));
            let o_t = u32_at(&fo, 44);
            h.send(&unit(handle, [0; 8], o_t, 1, &message))
        } else {
            h.send(&rr(handle, [0; 8], &message))
        };
        if !message.is_empty() {
            let (f, _) = Encapsulation::decode(&out).unwrap();
            prop_assert_eq!(f.header.status, status::SUCCESS);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fault injection, statistics, serde

#[test]
fn reply_delay_holds_replies_in_order() {
    let mut h = Harness::default();
    h.server.faults.delay = ReplyDelay::Fixed(Duration::from_millis(250));
    h.conn.handle_input(
        h.now,
        &Encapsulation::register_session([0; 8]).to_vec(),
        &mut h.server,
    );
    let mut out = Vec::new();
    assert!(!h.conn.poll_transmit(h.now, &mut out));
    // The session exists already: state changes when the request arrives.
    assert!(h.conn.session_handle().is_some());
    let due = h.now + Duration::from_millis(250);
    assert_eq!(h.conn.poll_timeout(), Some(due));
    assert!(!h
        .conn
        .poll_transmit(due - Duration::from_millis(1), &mut out));
    assert!(h.conn.poll_transmit(due, &mut out));
    assert_eq!(u16_at(&out, 0), 0x0065);
    // A shorter delay never overtakes a longer one.
    h.now = due;
    h.server.faults.delay = ReplyDelay::Fixed(Duration::from_millis(100));
    h.conn.handle_input(h.now, LISTIDENT_1_REQ, &mut h.server);
    h.server.faults.delay = ReplyDelay::Fixed(Duration::from_millis(10));
    h.conn.handle_input(h.now, LST_SVC1_REQ, &mut h.server);
    let mut out = Vec::new();
    assert!(!h
        .conn
        .poll_transmit(h.now + Duration::from_millis(50), &mut out));
    assert!(h
        .conn
        .poll_transmit(h.now + Duration::from_millis(100), &mut out));
    let (first, used) = Encapsulation::decode(&out).unwrap();
    assert_eq!(first.header.command, Command::ListIdentity);
    let (second, _) = Encapsulation::decode(&out[used..]).unwrap();
    assert_eq!(second.header.command, Command::ListServices);
}

#[test]
fn a_queue_that_never_empties_keeps_every_reply_whole_and_in_order() {
    // Requests (ListIdentity and ListServices: replies of two lengths) arrive every
    // millisecond and replies leave as they fall due, so replies are queued behind ones
    // partly handed out (the queue is compacted while it holds some): the bytes sent
    // are those of the same requests answered at once, in order.
    let requests: Vec<&[u8]> = (0..300)
        .map(|i| {
            if i % 3 == 0 {
                LISTIDENT_1_REQ
            } else {
                LST_SVC1_REQ
            }
        })
        .collect();
    let mut reference = Harness::default();
    let want: Vec<u8> = requests.iter().flat_map(|r| reference.send(r)).collect();
    let mut h = Harness::default();
    h.server.faults.delay = ReplyDelay::Range {
        min: Duration::from_millis(1),
        max: Duration::from_millis(20),
    };
    let mut got = Vec::new();
    let mut most_held = 0;
    for (i, r) in requests.iter().enumerate() {
        let now = h.now + Duration::from_millis(i as u64);
        h.conn.handle_input(now, r, &mut h.server);
        most_held = most_held.max(h.conn.queue.len());
        h.conn.poll_transmit(now, &mut got);
        assert_eq!(got.as_slice(), &want[..got.len()]);
    }
    assert!(most_held > 5, "{most_held}");
    while let Some(due) = h.conn.poll_timeout() {
        h.conn.poll_transmit(due, &mut got);
    }
    assert_eq!(got, want);
    assert!(h.conn.queued.is_empty() && h.conn.sent == 0);
}

#[test]
fn a_backlog_of_delayed_replies_is_reported() {
    let mut h = Harness::default();
    h.server.faults.delay = ReplyDelay::Fixed(Duration::from_secs(5));
    let burst = LISTIDENT_1_REQ.repeat(MAX_PENDING_REPLIES - 1);
    h.conn.handle_input(h.now, &burst, &mut h.server);
    assert!(!h.conn.is_backlogged());
    h.conn.handle_input(h.now, LISTIDENT_1_REQ, &mut h.server);
    assert!(h.conn.is_backlogged());
    let mut out = Vec::new();
    assert!(h
        .conn
        .poll_transmit(h.now + Duration::from_secs(5), &mut out));
    assert!(!h.conn.is_backlogged());
    assert_eq!(out.len(), MAX_PENDING_REPLIES * LISTIDENT_1_RPY_LEN);
}

/// The length of our ListIdentity reply for the test device (the L61's name).
const LISTIDENT_1_RPY_LEN: usize = 24 + 2 + 4 + 2 + 16 + 14 + 1 + 20 + 1;

#[test]
fn delay_ranges_are_reproducible_and_bounded() {
    let delay = ReplyDelay::Range {
        min: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    let draw = |seed| {
        let mut rng = SplitMix64::new(seed);
        (0..100).map(|_| delay.sample(&mut rng)).collect::<Vec<_>>()
    };
    let a = draw(1);
    assert_eq!(a, draw(1));
    assert_ne!(a, draw(2));
    assert!(a
        .iter()
        .all(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_millis(20)));
    assert!(a.iter().any(|d| *d < Duration::from_millis(12)));
    assert!(a.iter().any(|d| *d > Duration::from_millis(18)));
    assert_eq!(
        ReplyDelay::None.sample(&mut SplitMix64::new(0)),
        Duration::ZERO
    );
}

#[test]
fn disabled_done_and_eof_close_connections() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    h.send(&pylogix_rr(handle, &pylogix_forward_open(504, 1, 1)));
    h.events();
    // Injected EOF for this connection.
    h.server.request_eof(h.conn.id());
    assert!(h.send(LISTIDENT_1_REQ).is_empty());
    assert!(h.conn.is_closed());
    assert!(h.server.connections().is_empty());
    assert!(h.server.sessions().is_empty());
    let events = h.events();
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Closed {
            reason: CloseReason::InjectedEof
        })
    );
    // Disabled: new connections are closed at once, existing ones at their next input.
    let mut other = ServerConn::new(h.now, peer(), &mut h.server);
    h.server.faults.disabled = true;
    let refused = ServerConn::new(h.now, peer(), &mut h.server);
    assert!(refused.is_closed());
    other.handle_timeout(h.now, &mut h.server);
    assert!(other.is_closed());
    assert_eq!(
        other.poll_event(),
        Some(ServerEvent::Closed {
            reason: CloseReason::Disabled
        })
    );
    h.server.faults.disabled = false;
    h.server.faults.done = true;
    assert!(h.server.is_done());
    let done = ServerConn::new(h.now, peer(), &mut h.server);
    assert!(done.is_closed());
}

#[test]
fn statistics_count_bytes_and_requests_and_serialize() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let out = h.send(LISTIDENT_1_REQ);
    let stats = h.server.stats().get(&h.conn.id()).unwrap().clone();
    assert_eq!(stats.peer, peer());
    assert_eq!(
        stats.received,
        (RSS_004_REQUEST.len() + LISTIDENT_1_REQ.len()) as u64
    );
    assert_eq!(stats.sent, (RSS_004_REPLY.len() + out.len()) as u64);
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.session_handle, Some(handle));
    assert_eq!(&stats, h.conn.stats());
    let json = serde_json::to_string(&stats).unwrap();
    let back: ConnectionStats = serde_json::from_str(&json).unwrap();
    assert_eq!(back, stats);
    for event in h.events() {
        let json = serde_json::to_string(&event).unwrap();
        let back: ServerEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
    let faults = Faults {
        delay: ReplyDelay::Range {
            min: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        ..Faults::default()
    };
    let json = serde_json::to_string(&faults).unwrap();
    assert_eq!(serde_json::from_str::<Faults>(&json).unwrap(), faults);
    let options = ServerOptions::default();
    let json = serde_json::to_string(&options).unwrap();
    assert_eq!(
        serde_json::from_str::<ServerOptions>(&json).unwrap(),
        options
    );
    h.server.forget_connection(h.conn.id());
    assert!(h.server.stats().is_empty());
}

#[test]
fn closed_connections_statistics_do_not_accumulate() {
    // Regression (found by the deterministic simulation's memory bound): no runtime
    // calls `forget_connection`, so every connection a long-running server ever had
    // left its statistics behind. Only the latest KEPT_CLOSED_STATS closed ones stay.
    let mut h = Harness::default();
    let open = h.conn.id();
    let mut last = 0;
    for _ in 0..1000 {
        let mut c = ServerConn::new(h.now, peer(), &mut h.server);
        c.handle_input(
            h.now,
            &Encapsulation::register_session([1; 8]).to_vec(),
            &mut h.server,
        );
        c.handle_eof(h.now, &mut h.server);
        let mut out = Vec::new();
        while c.poll_transmit(h.now, &mut out) {}
        assert!(c.is_closed());
        last = c.id();
        assert!(h.server.stats().len() <= KEPT_CLOSED_STATS + 1);
    }
    let stats = h.server.stats();
    assert_eq!(stats.len(), KEPT_CLOSED_STATS + 1);
    // The open connection and the most recent closed ones are kept.
    assert!(stats.contains_key(&open) && !stats[&open].closed);
    assert!(stats.contains_key(&last) && stats[&last].closed);
    assert!(h.server.sessions().is_empty(), "every session unregistered");
}

// ---------------------------------------------------------------------------------------
// A real ControlLogix session, replayed

/// A device that answers with the Message Router replies a real controller sent, in
/// order, and records the requests it was handed.
struct ReplayDevice {
    replies: std::collections::VecDeque<Vec<u8>>,
    requests: Vec<Vec<u8>>,
}

impl CipDevice for ReplayDevice {
    fn identity(&self) -> Identity<'_> {
        TestDevice::default().identity().into_owned()
    }

    fn execute(
        &mut self,
        _: &RequestContext,
        req: &MessageRouterRequest<'_>,
    ) -> MessageRouterReply<'static> {
        self.requests.push(req.to_vec());
        let bytes = self.replies.pop_front().expect("a recorded reply");
        MessageRouterReply::decode(&bytes).unwrap().into_owned()
    }
}

#[test]
fn a_real_controllogix_session_is_answered_byte_for_byte() {
    // cpppo's capture of a cpppo client and a 1756-L61: every client frame fed to the
    // engine must produce exactly the controller's frame, once the device behind it
    // gives the controller's Message Router replies and the session handle is ours.
    let capture = include_str!("../../../tests/frames/controllogix-SCADA-read-write.hex");
    let mut exchange: Vec<(&str, Vec<u8>)> = Vec::new();
    for line in capture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut fields = line.split_whitespace();
        let _pkt = fields.next().unwrap();
        let who = fields.next().unwrap();
        let hex = fields.next().unwrap();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        exchange.push((who, bytes));
    }
    assert_eq!(exchange.len(), 14);
    let replies = exchange
        .iter()
        .filter(|(who, b)| *who == "controller" && b[0] == 0x6F)
        .map(|(_, b)| {
            let send = SendData::decode(&b[24..]).unwrap();
            send.cpf.unconnected_data().unwrap().to_vec()
        })
        .collect();
    let now = Instant::now();
    let mut server = Server::new(
        ReplayDevice {
            replies,
            requests: Vec::new(),
        },
        ServerOptions::default(),
    );
    let mut conn = ServerConn::new(now, peer(), &mut server);
    let mut handle = None;
    for pair in exchange.chunks(2) {
        let [(c, request), (d, expect)] = pair else {
            panic!("request/reply pairs")
        };
        assert_eq!((*c, *d), ("client", "controller"));
        let mut request = request.clone();
        let mut expect = expect.clone();
        if let Some(h) = handle {
            request[4..8].copy_from_slice(&u32::to_le_bytes(h));
        }
        conn.handle_input(now, &request, &mut server);
        let mut out = Vec::new();
        assert!(conn.poll_transmit(now, &mut out));
        let h = *handle.get_or_insert(u32_at(&out, 4));
        expect[4..8].copy_from_slice(&h.to_le_bytes());
        assert_eq!(out, expect);
    }
    // The device was handed the requests themselves, Unconnected Send unwrapped.
    let requests = &server.device().requests;
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[0], [0x01, 0x02, 0x20, 0x66, 0x24, 0x01]);
    assert_eq!(requests[1], [0x01, 0x02, 0x20, 0x01, 0x24, 0x01]);
    assert_eq!(
        requests[2],
        [0x52, 0x04, 0x91, 0x05, b'S', b'C', b'A', b'D', b'A', 0x00, 0x01, 0x00, 0, 0, 0, 0]
    );
    assert!(server.device().replies.is_empty());
}

/// The bytes of a `core/tests/frames` hex file (comment lines skipped).
fn hex_frame(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn a_real_forward_open_gets_a_logix_shaped_reply() {
    // cpppo's fwd_o01: RSLinx-style Forward Open (8 s RPI, multiplier 0, 500 bytes) and
    // the reply a Logix controller gave it.
    let request = hex_frame(include_str!(
        "../../../tests/frames/enip/cpppo-enip_test__forward_open_request.hex"
    ));
    let logix = hex_frame(include_str!(
        "../../../tests/frames/enip/cpppo-enip_test__forward_open_reply.hex"
    ));
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let mut request = request.clone();
    request[4..8].copy_from_slice(&handle.to_le_bytes());
    let out = h.send(&request);
    let o_t = u32_at(&out, 44);
    let mut expect = logix.clone();
    expect[4..8].copy_from_slice(&handle.to_le_bytes());
    // Ours echoes the request's timeout (as the 1756-L61 capture does for SendRRData);
    // this Logix answered 0. And the O->T id is each target's own choice.
    expect[28..30].copy_from_slice(&request[28..30]);
    expect[44..48].copy_from_slice(&o_t.to_le_bytes());
    assert_eq!(out, expect);
    let conn = &h.conn.connections()[0];
    assert_eq!(conn.t_o_connection_id, 0x80FE_0010);
    assert_eq!((conn.o_t_size, conn.t_o_size), (500, 500));
    // 8 s RPI x (4 << 0).
    assert_eq!(conn.timeout, Duration::from_secs(32));

    // cpppo's fwd_c01 Forward Close, for connection serial 0x0001: not ours (0x0107);
    // with the serial of the connection just opened: closed.
    let close = hex_frame(include_str!(
        "../../../tests/frames/enip/cpppo-enip_test__forward_close_request.hex"
    ));
    let mut close = close.clone();
    close[4..8].copy_from_slice(&handle.to_le_bytes());
    let r = rr_reply(&h.send(&close));
    assert_eq!(r.additional_status, vec![0x0107]);
    assert_eq!(h.conn.connections().len(), 1);
    close[48..50].copy_from_slice(&0x0011u16.to_le_bytes());
    let r = rr_reply(&h.send(&close));
    assert_eq!(r.service, 0xCE);
    assert!(r.general_status.is_success());
    assert_eq!(
        &r.data[..],
        &[0x11, 0x00, 0x4D, 0x00, 0x0F, 0x7F, 0x3D, 0x1E, 0x00, 0x00]
    );
    assert!(h.conn.connections().is_empty());

    // cpppo's wtg_001: a connected Write Tag on a connection the session never opened.
    let write = hex_frame(include_str!(
        "../../../tests/frames/enip/cpppo-enip_test__send_unit_data_write_tag_bool_request.hex"
    ));
    let mut write = write.clone();
    write[4..8].copy_from_slice(&handle.to_le_bytes());
    assert!(h.send(&write).is_empty());
}

/// One step of a random conversation on one of two TCP connections.
#[derive(Debug, Clone)]
enum Step {
    Register(usize),
    Unregister(usize),
    Open(usize, u16),
    Close(usize, u16),
    Unit(usize, usize, u16),
    Eof(usize),
    Wait(u64),
    Junk(usize, u16, Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0usize..2;
    prop_oneof![
        who.clone().prop_map(Step::Register),
        who.clone().prop_map(Step::Unregister),
        (who.clone(), 0u16..4).prop_map(|(w, s)| Step::Open(w, s)),
        (who.clone(), 0u16..4).prop_map(|(w, s)| Step::Close(w, s)),
        (who.clone(), 0usize..4, 0u16..3).prop_map(|(w, i, s)| Step::Unit(w, i, s)),
        who.clone().prop_map(Step::Eof),
        (0u64..200_000).prop_map(Step::Wait),
        (
            who,
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(w, c, b)| Step::Junk(w, c, b)),
    ]
}

proptest! {
    #[test]
    fn registries_stay_consistent_whatever_two_clients_do(steps in proptest::collection::vec(step(), 0..40)) {
        let mut now = Instant::now();
        let mut server = Server::new(TestDevice::default(), ServerOptions::default());
        let mut conns = vec![
            ServerConn::new(now, "10.0.0.1:1".parse().unwrap(), &mut server),
            ServerConn::new(now, "10.0.0.2:2".parse().unwrap(), &mut server),
        ];
        for step in steps {
            let feed = |c: &mut ServerConn<TestDevice>, server: &mut Server<TestDevice>, bytes: &[u8]| {
                c.handle_input(now, bytes, server);
                let mut out = Vec::new();
                c.poll_transmit(now, &mut out);
                out
            };
            match step {
                Step::Register(w) => {
                    feed(&mut conns[w], &mut server, &Encapsulation::register_session([0; 8]).to_vec());
                }
                Step::Unregister(w) => {
                    let h = conns[w].session_handle().unwrap_or(0);
                    feed(&mut conns[w], &mut server, &frame(Command::UnRegisterSession, h, [0; 8], &[]));
                }
                Step::Open(w, serial) => {
                    let h = conns[w].session_handle().unwrap_or(0);
                    feed(&mut conns[w], &mut server, &pylogix_rr(h, &pylogix_forward_open(504, 7, serial)));
                }
                Step::Close(w, serial) => {
                    let h = conns[w].session_handle().unwrap_or(0);
                    feed(&mut conns[w], &mut server, &pylogix_rr(h, &pylogix_forward_close(serial)));
                }
                Step::Unit(w, i, seq) => {
                    let h = conns[w].session_handle().unwrap_or(0);
                    // Any open connection id, possibly the other client's.
                    let ids: Vec<u32> = server.connections().keys().copied().collect();
                    let id = ids.get(i).copied().unwrap_or(1);
                    let owned = conns[w].connections().iter().any(|c| c.o_t_connection_id == id);
                    let out = feed(&mut conns[w], &mut server, &unit(h, [0; 8], id, seq, &read_tag("T")));
                    if owned && conns[w].session_handle() == Some(h) {
                        prop_assert_eq!(u16_at(&out, 44), seq);
                    }
                }
                Step::Eof(w) => conns[w].handle_eof(now, &mut server),
                Step::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    for c in conns.iter_mut() {
                        c.handle_timeout(now, &mut server);
                    }
                }
                Step::Junk(w, code, bytes) => {
                    // A whole frame of any command with any data (keeps the stream in step).
                    let h = conns[w].session_handle().unwrap_or(0);
                    feed(&mut conns[w], &mut server, &frame(Command::from_code(code), h, [0; 8], &bytes));
                }
            }
            // Every registered connection is held by exactly the connection that owns it,
            // and every held connection is registered; sessions likewise.
            let held: usize = conns.iter().map(|c| c.connections().len()).sum();
            prop_assert_eq!(server.connections().len(), held);
            for c in &conns {
                for cip in c.connections() {
                    let reg = server.connections().get(&cip.o_t_connection_id);
                    prop_assert_eq!(reg.map(|r| r.owner), Some(c.id()));
                }
                if c.is_closed() {
                    prop_assert!(c.connections().is_empty());
                    prop_assert!(c.session_handle().is_none());
                }
            }
            let sessions: std::collections::BTreeSet<u32> =
                conns.iter().filter_map(|c| c.session_handle()).collect();
            prop_assert_eq!(&sessions, server.sessions());
        }
    }
}

/// Drive any engine the way every runtime does, through the [`crate::engine`] traits
/// only: input, then transmit, events and the deadline.
fn drive<S: crate::engine::Server>(
    server: &mut S,
    conn: &mut S::Connection,
    now: Instant,
    input: &[u8],
) -> Vec<u8> {
    use crate::engine::Connection;
    conn.handle_input(now, input, server);
    let mut out = Vec::new();
    while conn.poll_transmit(now, &mut out) {}
    while conn.poll_event().is_some() {}
    if let Some(at) = conn.poll_timeout() {
        if at <= now {
            conn.handle_timeout(now, server);
        }
    }
    out
}

#[test]
fn the_engine_traits_drive_the_server() {
    use crate::engine::Server as _;
    let now = Instant::now();
    let mut server = Server::new(TestDevice::default(), ServerOptions::default());
    let local: SocketAddr = "192.168.1.20:44818".parse().unwrap();
    let mut conn = server.accept(now, local, peer()).unwrap();
    let out = drive(
        &mut server,
        &mut conn,
        now,
        &Encapsulation::register_session([0; 8]).to_vec(),
    );
    let handle = u32_at(&out, 4);
    // The accepted connection announces the address it was accepted on.
    let out = drive(&mut server, &mut conn, now, LISTIDENT_1_REQ);
    assert_eq!(&out[36..40], &[192, 168, 1, 20]);
    let r = rr_reply(&drive(
        &mut server,
        &mut conn,
        now,
        &rr(handle, [0; 8], &read_tag("T")),
    ));
    assert!(r.general_status.is_success());
    // A datagram on a specific address announces that address; the wildcard, the options'.
    let mut d = Vec::new();
    assert!(crate::engine::Server::handle_datagram(
        &mut server,
        now,
        "10.9.8.7:44818".parse().unwrap(),
        peer(),
        LISTIDENT_1_REQ,
        &mut d
    ));
    assert_eq!(&d[36..40], &[10, 9, 8, 7]);
    // The peer hangs up with a delayed reply pending: it still goes out, then closed.
    server.faults.delay = ReplyDelay::Fixed(Duration::from_millis(5));
    conn.handle_input(now, LISTIDENT_1_REQ, &mut server);
    conn.handle_eof(now, &mut server);
    assert!(server.sessions().is_empty());
    assert!(!conn.is_closed());
    let mut out = Vec::new();
    assert!(!conn.poll_transmit(now, &mut out));
    let at = conn.poll_timeout().unwrap();
    assert!(conn.poll_transmit(at, &mut out));
    assert_eq!(u16_at(&out, 0), 0x0063);
    assert!(conn.is_closed());
    // Disabled or done: connections are refused.
    server.faults.disabled = true;
    assert!(server.accept(now, local, peer()).is_none());
    server.faults.disabled = false;
    server.faults.done = true;
    assert!(server.accept(now, local, peer()).is_none());
    assert!(crate::engine::Server::is_done(&server));
}

mod limits;
