//! The bodies of cpppo-rs's cargo-fuzz targets, as plain functions.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling the function of the same name, so
//! libFuzzer drives them under `cargo fuzz run`, and the workspace test
//! `conformance/tests/fuzz_corpus.rs` (which includes this file as a module) replays
//! every committed corpus file through them on stable Rust.
//!
//! Every target checks more than "does not panic": whatever decodes is encoded again
//! and must decode to the same value, and where the wire encoding is canonical (one
//! value, one byte string) the bytes must come back unchanged. Stream decoders must
//! find the same frames however the input is split.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use cpppo_core::cip::connection_manager::{
    unconnected_send_remaining_path_size, ForwardCloseReply, ForwardCloseRequest,
    ForwardOpenFailure, ForwardOpenReply, ForwardOpenRequest, UnconnectedSend,
};
use cpppo_core::cip::data::{Count, TagType, Values};
use cpppo_core::cip::epath::{
    parse_connection_path, parse_path, parse_path_with_count, parse_route_path, Epath, Segment,
    Segments,
};
use cpppo_core::cip::logix::{
    template_attribute_len, GetInstanceAttributeListReply, GetInstanceAttributeListRequest,
    ReadModifyWriteTagRequest, ReadTagFragmentedRequest, ReadTagReply, ReadTagRequest, SymbolValue,
    TemplateAttributes, TemplateDefinition, TemplateReadRequest, WriteTagFragmentedRequest,
    WriteTagRequest,
};
use cpppo_core::cip::message_router::{
    service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply,
    MultipleServiceRequest, Request,
};
use cpppo_core::cip::objects::{GetAttributeListReply, GetAttributeListRequest};
use cpppo_core::controller::{Controller, ControllerConfig};
use cpppo_core::enip::cpf::{Cpf, Item};
use cpppo_core::enip::encapsulation::{status as encap_status, Command, Header};
use cpppo_core::enip::encapsulation::{Body, Encapsulation, EncapsulationFraming, SendData};
use cpppo_core::enip::server::{
    ReplyDelay, Server as EnipServer, ServerConn as EnipConn, ServerOptions,
};
use cpppo_core::modbus::device::{Corruption, Delay, Device};
use cpppo_core::modbus::pdu::{Request as ModbusRequest, Response as ModbusResponse};
use cpppo_core::modbus::rtu::{
    crc_ok, Direction, RtuFrame, RtuFramer, MAX_RTU_ADU_LEN, MIN_RTU_ADU_LEN,
};
use cpppo_core::modbus::server::{ServerConn as ModbusConn, Transport};
use cpppo_core::modbus::tcp::{self, Adu, MbapFraming};
use cpppo_core::wire::{DecodeError, Encode, Framing, Reader};

pub mod clients;
pub use clients::{enip_client, modbus_address, modbus_client, modbus_poller, operation_syntax};

/// A target's body: it panics when an invariant fails.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/` file and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("enip_stream", enip_stream),
    ("cpf", cpf),
    ("epath", epath),
    ("message_router_request", message_router_request),
    ("message_router_reply", message_router_reply),
    ("logix", logix),
    ("modbus_tcp_stream", modbus_tcp_stream),
    ("modbus_pdu", modbus_pdu),
    ("modbus_rtu_framer", modbus_rtu_framer),
    ("enip_server", enip_server),
    ("modbus_server", modbus_server),
    ("web_api", web_api),
    ("enip_client", enip_client),
    ("modbus_client", modbus_client),
    ("modbus_poller", modbus_poller),
    ("operation_syntax", operation_syntax),
    ("modbus_address", modbus_address),
];

/// How deep embedded requests (Unconnected Send, Multiple Service Packet) are followed.
const MAX_NESTING: usize = 8;

/// Chunk lengths for feeding `data` to a stream decoder, derived from the input itself
/// (a hash of it seeds a xorshift generator), so a crash reproduces from the file alone.
/// Mostly short pieces (1..=16 bytes, so every header field gets split), sometimes long.
pub fn chunk_lengths(data: &[u8]) -> Vec<usize> {
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    let mut lens = Vec::new();
    let mut left = data.len();
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = match state % 8 {
            0 => 1,
            1..=5 => 1 + (state >> 8) as usize % 16,
            _ => 1 + (state >> 8) as usize % 256,
        }
        .min(left);
        lens.push(n);
        left -= n;
    }
    lens
}

/// Split `data` into the pieces [`chunk_lengths`] gives.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut rest = data;
    let mut out = Vec::new();
    for n in chunk_lengths(data) {
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

// ---------------------------------------------------------------------------------------
// EtherNet/IP

/// `enip_stream`: the encapsulation stream decoder fed `data` in input-derived chunks
/// yields exactly the frames that one-shot [`Encapsulation::decode`] finds, keeps the
/// rest buffered, and says it needs more. Each frame re-encodes to its bytes, and its
/// body (when it decodes) re-encodes to the frame's data and its CPF is checked as in
/// [`cpf`].
pub fn enip_stream(data: &[u8]) {
    // One shot: frame after frame from the whole input.
    let mut expect = Vec::new();
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        match Encapsulation::decode(rest) {
            Ok((frame, used)) => {
                assert!(used > 0 && used <= rest.len());
                assert_eq!(
                    frame.to_vec(),
                    &rest[..used],
                    "frame re-encodes to its bytes"
                );
                expect.push(&rest[..used]);
                at += used;
            }
            Err(e) => {
                assert!(e.is_incomplete(), "encapsulation framing never fails: {e}");
                break;
            }
        }
    }
    let leftover = data.len() - at;

    // Stream: the same frames, whatever the split.
    let mut decoder = EncapsulationFraming::stream_decoder();
    let mut got = Vec::new();
    for piece in chunks(data) {
        decoder.handle_input(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(e) => panic!("encapsulation stream failed: {e}"),
            }
        }
    }
    assert_eq!(got.len(), expect.len(), "frame count");
    for (g, e) in got.iter().zip(&expect) {
        assert_eq!(&g[..], *e);
    }
    assert_eq!(decoder.buffered(), leftover);
    if let Some(Err(DecodeError::Incomplete { needed, .. })) = data
        .get(at..)
        .filter(|r| !r.is_empty())
        .map(Encapsulation::decode)
    {
        assert_eq!(
            decoder.needed(),
            needed,
            "needed agrees with one-shot decoding"
        );
    }

    for frame in &expect {
        let Ok((frame, _)) = Encapsulation::decode(frame) else {
            unreachable!("decoded above")
        };
        if let Ok(body) = frame.body() {
            assert_eq!(
                body.to_vec(),
                frame.data.as_ref(),
                "body re-encodes to the data"
            );
            assert_eq!(body.encoded_len(), frame.data.len());
            match &body {
                Body::SendData(send) => check_cpf_items(&send.cpf),
                Body::Cpf(c) => check_cpf_items(c),
                _ => {}
            }
            assert_eq!(body.clone().into_owned(), body);
        }
    }
}

/// `cpf`: a Common Packet Format item list. What decodes re-encodes to the same bytes
/// (and `encoded_len` says how many); the same bytes after a `SendRRData` prefix decode
/// the same way; the messages inside data items go through the Message Router checks.
pub fn cpf(data: &[u8]) {
    let decoded = Cpf::decode(data);
    if let Ok(c) = &decoded {
        assert_eq!(c.to_vec(), data, "CPF re-encodes to its bytes");
        assert_eq!(c.encoded_len(), data.len());
        for item in &c.items {
            assert_eq!(item.encoded_len(), 4 + item.data_len());
        }
        check_cpf_items(c);
        assert_eq!(&c.clone().into_owned(), c);
    }
    // The same list as SendRRData data: interface handle 0, timeout 5, then the CPF.
    let mut send = vec![0, 0, 0, 0, 5, 0];
    send.extend_from_slice(data);
    let as_send = SendData::decode(&send);
    match (&decoded, &as_send) {
        (Ok(c), Ok(s)) => assert_eq!(&s.cpf, c),
        (Err(_), Err(_)) => {}
        _ => panic!("CPF and SendRRData disagree: {decoded:?} / {as_send:?}"),
    }
}

/// The messages carried in data items: requests or replies, by the reply bit.
fn check_cpf_items(c: &Cpf<'_>) {
    let _ = c.unconnected_data();
    let _ = c.connected_data();
    let _ = c.identities().count();
    let _ = c.services().count();
    for item in &c.items {
        let msg: &[u8] = match item {
            Item::UnconnectedData(d) | Item::ConnectedData { data: d, .. } => d,
            Item::Identity(i) => {
                let _ = i.product_name_lossy();
                continue;
            }
            _ => continue,
        };
        match msg.first() {
            Some(s) if s & service::REPLY != 0 => message_router_reply(msg),
            Some(_) => message_router_request(msg),
            None => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// EPATH

/// `epath`: `data` as padded EPATH bytes and as cpppo path text.
///
/// Bytes: walking the segments, the logical address, rendering and the packed walk
/// never panic. When every segment decodes and can be encoded again, encoding them
/// gives a path with the same segments (and where the input already used the smallest
/// forms, the same bytes), the packed encoding walks back to them, and the rendered
/// text parses back to the same path.
///
/// Text: the parsers never panic; a path that parses renders to text that parses back
/// to the same encoded path.
pub fn epath(data: &[u8]) {
    let path = Epath::from_wire(data);
    let _ = path.leading_class();
    let _ = path.logical_address();
    let rendered = path.to_string();
    for _ in Segments::packed(data, 0) {}

    if let Ok(segs) = path.to_segments() {
        if segs.iter().all(|s| s.validate().is_ok()) {
            let Ok(encoded) = Epath::from_segments(&segs) else {
                panic!("valid segments failed to encode: {segs:?}")
            };
            assert_eq!(encoded.as_bytes().len() % 2, 0);
            assert_eq!(
                encoded.as_bytes().len(),
                segs.iter().map(Encode::encoded_len).sum::<usize>()
            );
            let back = encoded.to_segments();
            assert_eq!(back.as_ref(), Ok(&segs), "segments re-encode");
            // Encoding chooses the smallest forms: it never grows the path, and is a
            // fixed point.
            assert!(encoded.as_bytes().len() <= data.len());
            let again = Epath::from_segments(&segs).map(|p| p.as_bytes().to_vec());
            assert_eq!(again.as_deref(), Ok(encoded.as_bytes()));

            let mut packed = Vec::new();
            for s in &segs {
                s.encode_packed(&mut packed);
            }
            assert_eq!(
                packed.len(),
                segs.iter().map(Segment::packed_len).sum::<usize>()
            );
            let unpacked: Result<Vec<_>, _> = Segments::packed(&packed, 0).collect();
            assert_eq!(unpacked.as_ref(), Ok(&segs), "packed round trip");

            match rendered.parse::<Epath>() {
                Ok(parsed) => assert_eq!(parsed, encoded, "{rendered}"),
                Err(e) => panic!("rendered path {rendered:?} does not parse: {e}"),
            }
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_path_with_count(text);
        let _ = parse_route_path(text);
        if let Ok(Some(p)) = parse_connection_path(text) {
            let _ = p.to_segments();
        }
        if let Ok(segs) = parse_path(text) {
            if let Ok(p) = Epath::from_segments(&segs) {
                let back = p
                    .to_segments()
                    .map(|s| s.into_iter().map(Segment::into_owned));
                assert_eq!(back.map(Vec::from_iter).as_ref(), Ok(&segs));
                let text2 = p.to_string();
                match text2.parse::<Epath>() {
                    Ok(p2) => assert_eq!(p2, p, "{text:?} -> {text2:?}"),
                    Err(e) => panic!("{text:?} rendered as {text2:?}, which fails: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Message Router and Logix

/// `message_router_request`: a Message Router request re-encodes to its bytes; its
/// data, classified by service and target class ([`Request::decode`]), re-encodes to
/// the same value and, for the canonical layouts (every Logix service, Get Attribute
/// List), to the same bytes; embedded requests (Unconnected Send, Multiple Service
/// Packet) are checked the same way.
pub fn message_router_request(data: &[u8]) {
    check_request_bytes(data, 0);
}

fn check_request_bytes(data: &[u8], depth: usize) {
    if let Ok(req) = MessageRouterRequest::decode(data) {
        assert_eq!(req.to_vec(), data, "request re-encodes to its bytes");
        assert_eq!(req.encoded_len(), data.len());
        check_request(&req, depth);
    }
}

/// The checks of [`message_router_request`] on a decoded request.
fn check_request(req: &MessageRouterRequest<'_>, depth: usize) {
    let _ = req.path.to_string();
    let _ = req.path.logical_address();
    let Ok(classified) = Request::decode(req) else {
        return;
    };
    let trailing: &[u8] = &classified.trailing;
    let data: &[u8] = &req.data;
    assert!(
        data.ends_with(trailing),
        "trailing bytes are the data's tail"
    );
    let body = &data[..data.len() - trailing.len()];
    // The payload's encoding, for the canonical layouts.
    let canonical = |encoded: Vec<u8>| assert_eq!(encoded, body, "{:?}", classified.request);
    match &classified.request {
        Request::GetAttributeList(v) => {
            canonical(v.to_vec());
            assert_eq!(GetAttributeListRequest::decode(body).as_ref(), Ok(v));
        }
        Request::ReadTag(v) => canonical(v.to_vec()),
        Request::TemplateRead(v) => canonical(v.to_vec()),
        Request::WriteTag(v) => {
            canonical(v.to_vec());
            check_values(
                v.tag_type,
                Count::Elements(usize::from(v.elements)),
                &v.data,
            );
        }
        Request::ReadModifyWriteTag(v) => canonical(v.to_vec()),
        Request::ReadTagFragmented(v) => canonical(v.to_vec()),
        Request::WriteTagFragmented(v) => canonical(v.to_vec()),
        Request::GetInstanceAttributeList(v) => canonical(v.to_vec()),
        Request::MultipleServicePacket(msp) => {
            // The offset table may leave gaps, so only the value comes back.
            let bytes = msp.to_vec();
            assert_eq!(bytes.len(), msp.encoded_len());
            assert_eq!(MultipleServiceRequest::decode(&bytes).as_ref(), Ok(msp));
            if depth < MAX_NESTING {
                for r in &msp.requests {
                    check_request(r, depth + 1);
                }
            }
        }
        Request::UnconnectedSend(us) => {
            // Pad and reserved bytes are not kept: the value comes back, not the bytes.
            let bytes = us.to_vec();
            assert_eq!(bytes.len(), us.encoded_len());
            assert_eq!(UnconnectedSend::decode(&bytes).as_ref(), Ok(us));
            if depth < MAX_NESTING {
                check_request(&us.request, depth + 1);
            }
        }
        Request::ForwardOpen(fo) => {
            let bytes = fo.to_vec();
            assert_eq!(bytes.len(), fo.encoded_len());
            assert_eq!(
                ForwardOpenRequest::decode(&bytes, fo.large).as_ref(),
                Ok(fo)
            );
            let _ = (fo.o_t_parameters(), fo.t_o_parameters(), fo.service());
        }
        Request::ForwardClose(fc) => {
            let bytes = fc.to_vec();
            assert_eq!(bytes.len(), fc.encoded_len());
            assert_eq!(ForwardCloseRequest::decode(&bytes).as_ref(), Ok(fc));
        }
        Request::GetAttributesAll
        | Request::GetAttributeSingle
        | Request::SetAttributesAll(_)
        | Request::SetAttributeList(_)
        | Request::Reset(_)
        | Request::SetAttributeSingle(_)
        | Request::Other { .. } => {}
    }
}

/// `message_router_reply`: a Message Router reply re-encodes to its bytes; its data is
/// decoded as the reply of its service (Multiple Service Packet, Read Tag, Forward
/// Open/Close, Get Attributes All of the Identity, Template attributes, Symbol
/// instance list) and each decoded value re-encodes to an equal value.
pub fn message_router_reply(data: &[u8]) {
    check_reply_bytes(data, 0);
}

fn check_reply_bytes(data: &[u8], depth: usize) {
    let Ok(rpy) = MessageRouterReply::decode(data) else {
        return;
    };
    // The reserved byte after the service is not kept (it is written as 0).
    let mut canonical = data.to_vec();
    canonical[1] = 0;
    assert_eq!(rpy.to_vec(), canonical, "reply re-encodes to its bytes");
    assert_eq!(rpy.encoded_len(), data.len());
    assert_eq!(rpy.service & service::REPLY, service::REPLY);
    let _ = rpy.extended_status();
    let _ = unconnected_send_remaining_path_size(&rpy);
    let d: &[u8] = &rpy.data;
    match rpy.request_service() {
        service::MULTIPLE_SERVICE_PACKET => {
            if let Ok(msr) = MultipleServiceReply::decode(d) {
                let _ = msr.general_status();
                let bytes = msr.to_vec();
                assert_eq!(MultipleServiceReply::decode(&bytes).as_ref(), Ok(&msr));
                if depth < MAX_NESTING {
                    for r in &msr.replies {
                        check_reply_bytes(&r.to_vec(), depth + 1);
                    }
                }
            }
        }
        service::READ_TAG | service::READ_TAG_FRAGMENTED => check_read_tag_reply(d),
        service::FORWARD_OPEN | service::LARGE_FORWARD_OPEN if rpy.general_status.is_success() => {
            if let Ok(v) = ForwardOpenReply::decode(d) {
                assert_eq!(ForwardOpenReply::decode(&v.to_vec()).as_ref(), Ok(&v));
            }
        }
        service::FORWARD_OPEN | service::LARGE_FORWARD_OPEN | service::FORWARD_CLOSE
            if !rpy.general_status.is_success() =>
        {
            let _ = ForwardOpenFailure::decode(d);
        }
        service::FORWARD_CLOSE => {
            if let Ok(v) = ForwardCloseReply::decode(d) {
                assert_eq!(ForwardCloseReply::decode(&v.to_vec()).as_ref(), Ok(&v));
            }
        }
        service::GET_ATTRIBUTES_ALL => {
            if let Ok(v) = cpppo_core::cip::objects::Identity::decode(d) {
                let bytes = v.to_vec();
                assert_eq!(bytes.len(), v.encoded_len());
                assert_eq!(
                    cpppo_core::cip::objects::Identity::decode(&bytes).as_ref(),
                    Ok(&v)
                );
            }
        }
        service::GET_ATTRIBUTE_LIST => check_template_attributes(d),
        service::GET_INSTANCE_ATTRIBUTE_LIST => {
            for attributes in SYMBOL_ATTRIBUTE_LISTS {
                check_symbol_list(d, attributes);
            }
        }
        _ => {}
    }
}

/// Symbol attribute lists real clients ask for (pycomm3: 1, 2, 8, 5, 6, 10 and the
/// like; cpppo and pylogix: 1, 2).
const SYMBOL_ATTRIBUTE_LISTS: [&[u16]; 3] = [&[1, 2], &[1, 2, 8], &[1, 2, 3, 5, 6, 7, 8, 10]];

fn check_read_tag_reply(d: &[u8]) {
    if let Ok(v) = ReadTagReply::decode(d) {
        assert_eq!(v.to_vec(), d, "Read Tag reply re-encodes to its bytes");
        let _ = v.elements();
        check_values(v.tag_type, Count::All, &v.data);
    }
}

fn check_template_attributes(d: &[u8]) {
    if let Ok(reply) = GetAttributeListReply::decode(d, &template_attribute_len) {
        let bytes = reply.to_vec();
        assert_eq!(
            GetAttributeListReply::decode(&bytes, &template_attribute_len).as_ref(),
            Ok(&reply)
        );
        assert_eq!(
            TemplateAttributes::from_reply(&reply),
            TemplateAttributes::decode(d).unwrap_or_default()
        );
    }
}

fn check_symbol_list(d: &[u8], attributes: &[u16]) {
    if let Ok(v) = GetInstanceAttributeListReply::decode(d, attributes) {
        let bytes = v.to_vec();
        assert_eq!(bytes.len(), v.encoded_len());
        assert_eq!(
            GetInstanceAttributeListReply::decode(&bytes, attributes).as_ref(),
            Ok(&v)
        );
        // Names that were valid UTF-8 are borrowed, and then the bytes come back too.
        let all_borrowed = v.instances.iter().all(|i| {
            i.values
                .iter()
                .all(|s| !matches!(s, SymbolValue::Name(Cow::Owned(_))))
        });
        if all_borrowed {
            assert_eq!(bytes, d);
        }
        for i in &v.instances {
            let _ = (
                i.name(),
                i.symbol_type().map(|t| t.dimensions()),
                i.dimensions(),
            );
        }
    }
}

fn check_template_definition(d: &[u8], member_count: u16) {
    if let Ok(v) = TemplateDefinition::decode(d, member_count) {
        let bytes = v.to_vec();
        assert_eq!(bytes.len(), v.encoded_len());
        assert_eq!(
            TemplateDefinition::decode(&bytes, member_count).as_ref(),
            Ok(&v)
        );
    }
}

/// Typed values: what decodes encodes to bytes that decode to values encoding to the
/// same bytes (values compare by bytes: a REAL may be NaN).
fn check_values(tag_type: TagType, count: Count, d: &[u8]) {
    let mut r = Reader::new(d);
    if let Ok(v) = Values::decode(tag_type, count, &mut r) {
        let _ = (v.len(), v.is_empty(), v.check());
        assert_eq!(v.tag_type(), tag_type);
        let bytes = v.to_vec();
        assert_eq!(bytes.len(), v.encoded_len());
        let count = match count {
            Count::Elements(_) => Count::Elements(v.len()),
            Count::All => Count::All,
        };
        let mut r2 = Reader::new(&bytes);
        match Values::decode(tag_type, count, &mut r2) {
            Ok(v2) => {
                assert_eq!(v2.to_vec(), bytes, "values re-encode");
                assert!(r2.is_empty());
            }
            Err(e) => panic!("{v:?} encodes to {bytes:02x?}, which fails: {e}"),
        }
    }
}

/// `logix`: one Logix service payload. `data[0]` picks the layout, `data[1]` is a
/// parameter (element count, member count or attribute list), the rest is the payload.
///
/// Requests (Read/Write Tag, Read/Write Tag Fragmented, Read-Modify-Write Tag,
/// Template Read, Get Instance Attribute List) re-encode to their bytes; replies
/// (Read Tag, Symbol instance list, Template attributes and definition) and typed
/// values (each CIP data type, the Logix STRING, structures) re-encode to equal values.
pub fn logix(data: &[u8]) {
    let [selector, param, payload @ ..] = data else {
        return;
    };
    let exact = |r: Result<Vec<u8>, DecodeError>| {
        if let Ok(bytes) = r {
            assert_eq!(bytes, payload, "Logix request re-encodes to its bytes");
        }
    };
    match selector % 13 {
        0 => exact(ReadTagRequest::decode(payload).map(|v| v.to_vec())),
        1 => exact(WriteTagRequest::decode(payload).map(|v| v.to_vec())),
        2 => exact(ReadTagFragmentedRequest::decode(payload).map(|v| v.to_vec())),
        3 => exact(WriteTagFragmentedRequest::decode(payload).map(|v| v.to_vec())),
        4 => exact(ReadModifyWriteTagRequest::decode(payload).map(|v| v.to_vec())),
        5 => exact(TemplateReadRequest::decode(payload).map(|v| v.to_vec())),
        6 => exact(GetInstanceAttributeListRequest::decode(payload).map(|v| v.to_vec())),
        7 => check_read_tag_reply(payload),
        8 => {
            let lists = SYMBOL_ATTRIBUTE_LISTS;
            check_symbol_list(payload, lists[usize::from(*param) % lists.len()]);
        }
        9 => check_template_attributes(payload),
        10 => check_template_definition(payload, u16::from(*param)),
        11 => {
            // Typed values: a tag type, then values; `param` 0 means "all".
            let mut r = Reader::new(payload);
            if let Ok(t) = TagType::decode(&mut r) {
                let count = match param {
                    0 => Count::All,
                    n => Count::Elements(usize::from(*n)),
                };
                check_values(t, count, r.peek_rest());
            }
        }
        _ => {
            // A whole Message Router request to a Logix service: the classifier's
            // choice, then the payload checks above.
            check_request_bytes(payload, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Modbus

/// `modbus_tcp_stream`: the Modbus/TCP stream decoder fed `data` in input-derived
/// chunks yields the frames the MBAP framing finds in the whole input, and then the
/// same error (same field and offset) if the input goes bad; each frame decodes as an
/// ADU that re-encodes to its bytes, and its PDU goes through [`modbus_pdu`].
pub fn modbus_tcp_stream(data: &[u8]) {
    let mut expect = Vec::new();
    let mut error = None;
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        match MbapFraming.frame_len(rest) {
            Ok(len) if len <= rest.len() => {
                expect.push(&rest[..len]);
                at += len;
            }
            Ok(_) => break,
            Err(e) if e.is_incomplete() => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }

    let mut decoder = tcp::decoder();
    let mut got = Vec::new();
    let mut got_error = None;
    'feed: for piece in chunks(data) {
        decoder.handle_input(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(e) => {
                    got_error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got.len(), expect.len(), "frame count");
    for (g, e) in got.iter().zip(&expect) {
        assert_eq!(&g[..], *e);
    }
    assert_eq!(got_error, error, "the same error, at the same place");
    if error.is_some() {
        // Sticky: nothing more comes out of a stream that has gone out of step.
        decoder.handle_input(data);
        assert!(decoder.next_frame().is_err());
        assert_eq!(decoder.needed(), 0);
    } else {
        assert_eq!(decoder.buffered(), data.len() - at);
    }

    for frame in expect {
        match Adu::decode(frame) {
            Ok(adu) => {
                assert_eq!(adu.to_vec(), frame, "ADU re-encodes to its bytes");
                let _ = adu.request();
                let _ = adu.response();
                modbus_pdu(&adu.pdu);
            }
            Err(e) => panic!("a framed ADU does not decode: {e}"),
        }
    }
}

/// `modbus_pdu`: `data` as a request PDU and as a response PDU. What decodes
/// re-encodes to the same bytes; a refused request names an exception for its own
/// function code. The same PDU wrapped in an RTU frame decodes back to itself.
pub fn modbus_pdu(data: &[u8]) {
    match ModbusRequest::decode(data) {
        Ok(r) => {
            assert_eq!(r.to_vec(), data, "request re-encodes to its bytes");
            assert_eq!(r.encoded_len(), data.len());
        }
        Err(e) => {
            if let Some(&function) = data.first() {
                assert_eq!(e.exception.function, function & 0x7F, "{e}");
            }
        }
    }
    if let Ok(r) = ModbusResponse::decode(data) {
        assert_eq!(r.to_vec(), data, "response re-encodes to its bytes");
        assert_eq!(r.encoded_len(), data.len());
    }
    let frame = RtuFrame {
        unit: 1,
        pdu: Cow::Borrowed(data),
    };
    let bytes = frame.to_vec();
    assert!(crc_ok(&bytes));
    if bytes.len() >= MIN_RTU_ADU_LEN {
        assert_eq!(RtuFrame::decode(&bytes).as_ref(), Ok(&frame));
    }
    let _ = (frame.request(), frame.response());
}

/// Standard serial speeds the RTU framer target picks from.
const BAUDS: [u32; 8] = [1200, 2400, 4800, 9600, 19_200, 38_400, 57_600, 115_200];

/// The structured input of [`modbus_rtu_framer`]: a line set-up, then chunks of bytes
/// each arriving some microseconds after the one before.
///
/// Built with [`arbitrary`] from single bytes and byte runs only, so a seed file is
/// easy to write by hand (see `seed_rtu_input`): `baud index, flags`, then repeated
/// `gap low, gap high, length, length bytes`, gap in units of 10 µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtuInput {
    /// The line speed ([`BAUDS`]); `None` is RTU over TCP (no timing).
    pub baud: Option<u32>,
    /// Look for responses rather than requests.
    pub responses: bool,
    /// Strict 1.5-character inter-character timing.
    pub strict: bool,
    /// Call `handle_timeout` at the deadlines `poll_timeout` gives, as an adapter does.
    pub drive_timeouts: bool,
    /// `(microseconds since the previous chunk, chunk)`.
    pub chunks: Vec<(u32, Vec<u8>)>,
}

impl<'a> Arbitrary<'a> for RtuInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let baud_index = u8::arbitrary(u)?;
        let flags = u8::arbitrary(u)?;
        let mut chunks = Vec::new();
        while !u.is_empty() {
            let lo = u8::arbitrary(u)?;
            let hi = u8::arbitrary(u)?;
            let len = u8::arbitrary(u)?;
            let bytes = u.bytes(usize::from(len).min(u.len()))?;
            let gap = u32::from(u16::from_le_bytes([lo, hi])) * 10;
            chunks.push((gap, bytes.to_vec()));
        }
        Ok(RtuInput {
            baud: BAUDS.get(usize::from(baud_index % 9)).copied(),
            responses: flags & 1 != 0,
            strict: flags & 2 != 0,
            drive_timeouts: flags & 4 != 0,
            chunks,
        })
    }
}

impl RtuInput {
    /// The bytes that [`RtuInput::arbitrary`] reads back as `self` (gaps rounded down
    /// to 10 µs, chunks cut at 255 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let baud_index = self
            .baud
            .and_then(|b| BAUDS.iter().position(|&x| x == b))
            .unwrap_or(BAUDS.len()) as u8;
        let flags = u8::from(self.responses)
            | u8::from(self.strict) << 1
            | u8::from(self.drive_timeouts) << 2;
        let mut out = vec![baud_index, flags];
        for (gap, chunk) in &self.chunks {
            let gap = u16::try_from(gap / 10).unwrap_or(u16::MAX);
            for piece in chunk.chunks(255) {
                out.extend_from_slice(&gap.to_le_bytes());
                out.push(piece.len() as u8);
                out.extend_from_slice(piece);
            }
        }
        out
    }
}

/// `modbus_rtu_framer`: the noise-tolerant RTU framer fed arbitrary chunks at
/// arbitrary times (an [`RtuInput`] built from `data`). Every frame it reports has a
/// valid CRC and a length inside 4..=256 and decodes as an RTU frame; every byte fed
/// is accounted for (reported in a frame, discarded as noise, or still held); the
/// deadline it asks for is never in the past of its last input; and whatever it holds
/// at the end is released by the silence that follows.
pub fn modbus_rtu_framer(data: &[u8]) {
    let Ok(input) = RtuInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let direction = if input.responses {
        Direction::Responses
    } else {
        Direction::Requests
    };
    let mut framer = match input.baud {
        Some(baud) => RtuFramer::new(direction, baud).with_strict_inter_character(input.strict),
        None => RtuFramer::over_tcp(direction),
    };
    let origin = Instant::now();
    let mut now = origin;
    let mut fed = 0usize;
    let mut framed = 0usize;
    let mut check = |framer: &mut RtuFramer, fed: usize| {
        while let Some(frame) = framer.poll_frame() {
            let bytes = frame.to_vec();
            assert!(
                crc_ok(&bytes),
                "reported frame with a bad CRC: {bytes:02x?}"
            );
            assert!((MIN_RTU_ADU_LEN..=MAX_RTU_ADU_LEN).contains(&bytes.len()));
            assert_eq!(RtuFrame::decode(&bytes).as_ref(), Ok(&frame));
            let _ = (frame.request(), frame.response());
            framed += bytes.len();
        }
        let accounted = framed as u64 + framer.discarded() + framer.buffered() as u64;
        assert_eq!(
            accounted, fed as u64,
            "every byte is framed, dropped or held"
        );
    };
    for (gap, chunk) in &input.chunks {
        let next = now + Duration::from_micros(u64::from(*gap));
        if input.drive_timeouts {
            if let Some(deadline) = framer.poll_timeout().filter(|d| *d <= next) {
                assert!(deadline >= now, "deadline before the last input");
                framer.handle_timeout(deadline);
                check(&mut framer, fed);
            }
        }
        now = next;
        framer.handle_input(now, chunk);
        fed += chunk.len();
        check(&mut framer, fed);
        if let Some(deadline) = framer.poll_timeout() {
            assert!(deadline > now, "deadline not after the last input");
        }
    }
    if let Some(deadline) = framer.poll_timeout() {
        framer.handle_timeout(deadline);
        check(&mut framer, fed);
        assert_eq!(framer.buffered(), 0, "silence releases everything held");
        assert_eq!(framer.poll_timeout(), None);
    }
}

// ---------------------------------------------------------------------------------------
// Engines: scripts of steps driving a whole server

/// One step of an engine script ([`EngineInput`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes arriving on TCP connection `conn` (0 or 1).
    Data {
        /// Which connection.
        conn: usize,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A UDP datagram to the server (`handle_datagram`).
    Datagram(Vec<u8>),
    /// The peer of connection `conn` closes its side.
    Eof(usize),
    /// Only time passes.
    Wait,
}

/// The structured input of [`enip_server`] and [`modbus_server`]: set-up flags, a
/// parameter byte, then steps each taken some milliseconds after the one before (time
/// is passed in, never read; deadlines that fall due on the way are handled first).
///
/// Wire format, from single bytes and byte runs only so that seeds are easy to write
/// ([`EngineInput::to_bytes`] is the inverse): `flags, param`, then repeated
/// `op, gap low, gap high, length, length bytes`; `op & 3` is the kind (0 data,
/// 1 datagram, 2 EOF, 3 wait), bit 2 the connection; the gap is in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInput {
    /// Target-specific set-up bits (see each target).
    pub flags: u8,
    /// Target-specific parameter (a delay in milliseconds for both targets).
    pub param: u8,
    /// `(milliseconds since the previous step, step)`.
    pub steps: Vec<(u16, Step)>,
}

impl<'a> Arbitrary<'a> for EngineInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let flags = u8::arbitrary(u)?;
        let param = u8::arbitrary(u)?;
        let mut steps = Vec::new();
        while !u.is_empty() {
            let op = u8::arbitrary(u)?;
            let gap = u16::from_le_bytes([u8::arbitrary(u)?, u8::arbitrary(u)?]);
            let len = u8::arbitrary(u)?;
            let bytes = u.bytes(usize::from(len).min(u.len()))?.to_vec();
            let conn = usize::from(op >> 2 & 1);
            let step = match op & 3 {
                0 => Step::Data { conn, bytes },
                1 => Step::Datagram(bytes),
                2 => Step::Eof(conn),
                _ => Step::Wait,
            };
            steps.push((gap, step));
        }
        Ok(EngineInput {
            flags,
            param,
            steps,
        })
    }
}

impl EngineInput {
    /// The bytes that [`EngineInput::arbitrary`] reads back as `self` (byte runs longer
    /// than 255 are cut into several steps, the later ones with no gap).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags, self.param];
        for (gap, step) in &self.steps {
            let (op, bytes): (u8, &[u8]) = match step {
                Step::Data { conn, bytes } => (u8::from(*conn == 1) << 2, bytes),
                Step::Datagram(bytes) => (1, bytes),
                Step::Eof(conn) => (2 | u8::from(*conn == 1) << 2, &[]),
                Step::Wait => (3, &[]),
            };
            let mut gap = *gap;
            let mut pieces: Vec<&[u8]> = bytes.chunks(255).collect();
            if pieces.is_empty() {
                pieces.push(&[]);
            }
            for piece in pieces {
                out.push(op);
                out.extend_from_slice(&gap.to_le_bytes());
                out.push(piece.len() as u8);
                out.extend_from_slice(piece);
                gap = 0;
            }
        }
        out
    }
}

/// What an engine run did, for tests that check a seed reaches the states it is meant
/// to (`conformance/tests/fuzz_corpus.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSummary {
    /// Reply frames (EtherNet/IP) or ADUs (Modbus) sent on each TCP connection.
    pub replies: Vec<usize>,
    /// Requests served with success: Message Router replies with general status 0;
    /// Modbus replies that are not exceptions (checked runs only).
    pub served: usize,
    /// Datagrams answered.
    pub datagram_replies: usize,
}

/// A data step's bytes in the pieces [`chunk_lengths`] gives; an empty step stays one
/// empty piece (an input call all the same, which the inactivity timer counts).
fn split_again(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        vec![bytes]
    } else {
        chunks(bytes)
    }
}

/// Is `sub` a subsequence of `of` (in order, not necessarily adjacent)?
fn is_subsequence<T: PartialEq>(sub: &[T], of: &[T]) -> bool {
    let mut it = of.iter();
    sub.iter().all(|s| it.any(|o| o == s))
}

// ---------------------------------------------------------------------------------------
// EtherNet/IP server

/// `enip_server` flag: connection 0 starts with a RegisterSession.
pub const ENIP_REGISTER: u8 = 1;
/// `enip_server` flag: then a Large Forward Open (pycomm3's), so connected messaging
/// (SendUnitData to the O->T id the server chose) is reachable at once.
pub const ENIP_FORWARD_OPEN: u8 = 2;
/// `enip_server` flag: a reply delay of `param` milliseconds.
pub const ENIP_DELAY: u8 = 4;
/// `enip_server` flag: the encapsulation inactivity timeout (`param` x 10 ms + 1 ms).
pub const ENIP_INACTIVITY: u8 = 8;
/// `enip_server` flag: a non-routing server (cpppo's `--simple`).
pub const ENIP_SIMPLE: u8 = 16;

/// The sender context of the prefix requests.
pub const ENIP_PREFIX_CONTEXT: [u8; 8] = *b"cpppofuz";

/// The server every `enip_server` run starts from: a simulated controller with an INT
/// array, a REAL, a STRING and a UDT (with BOOLs, a DINT array and a STRING inside),
/// options from `flags`/`param`.
pub fn enip_server_fixture(flags: u8, param: u8) -> EnipServer<Controller> {
    let mut c = Controller::new(ControllerConfig::default());
    let db = c.tags_mut();
    let defined = db
        .define_structure(
            "Motor",
            &[
                ("Run", "BOOL", 0),
                ("Fault", "BOOL", 0),
                ("Speed", "REAL", 0),
                ("Hist", "DINT", 4),
                ("Name", "STRING", 0),
            ],
        )
        .is_ok();
    assert!(defined, "fixture structure");
    for spec in ["SCADA=INT[10]", "Temp=REAL", "Msg=STRING", "M=Motor[2]"] {
        assert!(db.add_str(spec).is_ok(), "fixture tag {spec}");
    }
    let mut options = ServerOptions::default();
    if flags & ENIP_INACTIVITY != 0 {
        options.inactivity_timeout = Some(Duration::from_millis(u64::from(param) * 10 + 1));
    }
    if flags & ENIP_SIMPLE != 0 {
        options = options.simple();
    }
    let mut server = EnipServer::new(c, options);
    if flags & ENIP_DELAY != 0 {
        server.faults.delay = ReplyDelay::Fixed(Duration::from_millis(u64::from(param)));
    }
    server
}

/// pycomm3's Large Forward Open (connection size 4000, T->O id 0x7119_0427) sent
/// straight to the Connection Manager, as the `enip_server` prefix sends it.
pub fn enip_large_forward_open() -> Vec<u8> {
    let params = (0x4200u32 << 16) | 4000;
    let mut m = vec![0x5B, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&0x7119_0427u32.to_le_bytes());
    m.extend_from_slice(&0x0427u16.to_le_bytes());
    m.extend_from_slice(&0x1009u16.to_le_bytes());
    m.extend_from_slice(&0x7119_1009u32.to_le_bytes());
    m.extend_from_slice(&[0x07, 0, 0, 0]);
    m.extend_from_slice(&[0x01, 0x40, 0x20, 0x00]);
    m.extend_from_slice(&params.to_le_bytes());
    m.extend_from_slice(&[0x01, 0x40, 0x20, 0x00]);
    m.extend_from_slice(&params.to_le_bytes());
    m.push(0xA3);
    m.extend_from_slice(&[0x03, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    m
}

/// The prefix `flags` asks for on connection 0, as frames. `session` is the handle
/// the RegisterSession got (the Forward Open is sent in it).
pub fn enip_prefix_frames(flags: u8, session: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if flags & ENIP_REGISTER != 0 {
        out.push(Encapsulation::register_session(ENIP_PREFIX_CONTEXT).to_vec());
        if flags & ENIP_FORWARD_OPEN != 0 {
            let send = SendData::new(10, Cpf::unconnected(enip_large_forward_open()));
            let header = Header::new(Command::SendRRData, session, ENIP_PREFIX_CONTEXT);
            if let Ok(f) = Encapsulation::new(header, send.to_vec()) {
                out.push(f.to_vec());
            }
        }
    }
    out
}

/// What the `enip_server` prefix established: the session handle and the O->T
/// connection id the server chose (0 when not asked for or refused).
pub fn enip_prefix_state(flags: u8, param: u8) -> (u32, u32) {
    let mut run = EnipRun::new(flags, param);
    run.prefix();
    (run.session, run.o_t)
}

/// The address datagrams arrive on (all interfaces) and the peers'.
const ENIP_LOCAL: ([u8; 4], u16) = ([0, 0, 0, 0], 44818);

/// At most this many deadlines are handled while time advances (a guard against a
/// deadline that never moves, which the invariants would report anyway).
const MAX_DEADLINES: usize = 10_000;

struct EnipConnState {
    conn: EnipConn<Controller>,
    /// Everything fed, for the (command, context) of each request.
    input: Vec<u8>,
    /// (command, sender context) of each reply, in order.
    replies: Vec<(Command, [u8; 8])>,
    /// The output since the prefix last looked.
    last: Vec<u8>,
    /// All the output.
    sent: Vec<u8>,
    /// Closed and flushed: nothing more may come out.
    finished: bool,
}

struct EnipRun {
    now: Instant,
    server: EnipServer<Controller>,
    conns: Vec<EnipConnState>,
    session: u32,
    o_t: u32,
    flags: u8,
    served: usize,
    datagram_replies: usize,
}

impl EnipRun {
    fn new(flags: u8, param: u8) -> Self {
        let now = Instant::now();
        let mut server = enip_server_fixture(flags, param);
        let conns = (0..2u16)
            .map(|i| EnipConnState {
                conn: EnipConn::new(
                    now,
                    std::net::SocketAddr::from(([10, 0, 0, 2], 50000 + i)),
                    &mut server,
                ),
                input: Vec::new(),
                replies: Vec::new(),
                last: Vec::new(),
                sent: Vec::new(),
                finished: false,
            })
            .collect();
        EnipRun {
            now,
            server,
            conns,
            session: 0,
            o_t: 0,
            flags,
            served: 0,
            datagram_replies: 0,
        }
    }

    /// Send the prefix on connection 0, learning the handle and the O->T id; with a
    /// reply delay, time moves on to each reply's release.
    fn prefix(&mut self) {
        let frames = enip_prefix_frames(self.flags, 0);
        let Some(register) = frames.first() else {
            return;
        };
        let out = self.feed_and_wait(register);
        if let Ok((reply, _)) = Encapsulation::decode(&out) {
            if reply.header.status == encap_status::SUCCESS {
                self.session = reply.header.session_handle;
            }
        }
        if let Some(fo) = enip_prefix_frames(self.flags, self.session).get(1) {
            let out = self.feed_and_wait(fo);
            let o_t = Encapsulation::decode(&out).ok().and_then(|(f, _)| {
                let send = SendData::decode(&f.data).ok()?;
                let msg = send.cpf.unconnected_data()?;
                let r = MessageRouterReply::decode(msg).ok()?;
                let fo = ForwardOpenReply::decode(&r.data).ok()?;
                Some(fo.o_t_connection_id)
            });
            self.o_t = o_t.unwrap_or(0);
        }
    }

    fn feed_and_wait(&mut self, bytes: &[u8]) -> Vec<u8> {
        if let Some(c) = self.conns.get_mut(0) {
            c.last.clear();
        }
        self.feed(0, bytes);
        // With a reply delay, the next deadline is the reply's release.
        let waiting = self.conns.first().filter(|c| c.last.is_empty());
        if let Some(at) = waiting.and_then(|c| c.conn.poll_timeout()) {
            self.advance(at);
        }
        self.conns
            .get_mut(0)
            .map(|c| std::mem::take(&mut c.last))
            .unwrap_or_default()
    }

    fn feed(&mut self, k: usize, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        c.input.extend_from_slice(bytes);
        c.conn.handle_input(self.now, bytes, &mut self.server);
        self.flush(k);
    }

    fn eof(&mut self, k: usize) {
        if let Some(c) = self.conns.get_mut(k) {
            c.conn.handle_eof(self.now, &mut self.server);
        }
        self.flush(k);
    }

    /// Drain connection `k`'s output and events, checking every reply.
    fn flush(&mut self, k: usize) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let mut out = Vec::new();
        while c.conn.poll_transmit(now, &mut out) {}
        if !out.is_empty() {
            assert!(
                !c.finished,
                "connection {k} closed and flushed, then sent {out:02x?}"
            );
            self.served += check_enip_replies(&out, &mut c.replies);
            c.last.extend_from_slice(&out);
            c.sent.extend_from_slice(&out);
        }
        while c.conn.poll_event().is_some() {}
        if c.conn.is_closed() {
            c.finished = true;
            assert_eq!(
                c.conn.poll_timeout(),
                None,
                "a closed connection has no deadline"
            );
        }
    }

    /// Let time pass until `to`, handling every deadline that falls due on the way.
    fn advance(&mut self, to: Instant) {
        for _ in 0..MAX_DEADLINES {
            let due = self
                .conns
                .iter()
                .filter_map(|c| c.conn.poll_timeout())
                .filter(|d| *d <= to)
                .min();
            let Some(due) = due else {
                break;
            };
            self.now = self.now.max(due);
            for k in 0..self.conns.len() {
                let now = self.now;
                if let Some(c) = self.conns.get_mut(k) {
                    if c.conn.poll_timeout().is_some_and(|d| d <= now) {
                        c.conn.handle_timeout(now, &mut self.server);
                        self.flush(k);
                        if let Some(d) = self.conns.get(k).and_then(|c| c.conn.poll_timeout()) {
                            assert!(d > now, "deadline {d:?} not after {now:?}, once handled");
                        }
                    }
                }
            }
        }
        self.now = self.now.max(to);
    }

    fn datagram(&mut self, data: &[u8]) {
        let mut out = Vec::new();
        let local = std::net::SocketAddr::from(ENIP_LOCAL);
        let peer = std::net::SocketAddr::from(([10, 0, 0, 3], 2222));
        if self
            .server
            .handle_datagram(self.now, local, peer, data, &mut out)
        {
            let mut replies = Vec::new();
            check_enip_replies(&out, &mut replies);
            self.datagram_replies += 1;
            assert_eq!(replies.len(), 1, "one datagram, one reply");
            let request = Encapsulation::decode(data).map(|(f, _)| f.header);
            if let (Ok(req), Some(rpy)) = (request, replies.first()) {
                assert_eq!(rpy.1, req.sender_context, "datagram reply context");
            }
        }
    }
}

/// Every byte a connection sends is whole encapsulation frames; a successful
/// SendRRData/SendUnitData reply carries a CPF whose data items are Message Router
/// replies that re-encode to their bytes. Returns how many of those succeeded.
fn check_enip_replies(out: &[u8], replies: &mut Vec<(Command, [u8; 8])>) -> usize {
    let mut served = 0;
    let mut rest = out;
    while !rest.is_empty() {
        let (f, used) = match Encapsulation::decode(rest) {
            Ok(ok) => ok,
            Err(e) => panic!("output is not whole encapsulation frames: {e}: {rest:02x?}"),
        };
        assert_eq!(f.to_vec(), &rest[..used]);
        replies.push((f.header.command, f.header.sender_context));
        let send_data = matches!(
            f.header.command,
            Command::SendRRData | Command::SendUnitData
        );
        if send_data && f.header.status == encap_status::SUCCESS {
            let send = match SendData::decode(&f.data) {
                Ok(s) => s,
                Err(e) => panic!("SendData reply without a CPF: {e}: {:02x?}", f.data),
            };
            let mut messages = 0;
            for item in &send.cpf.items {
                let msg: &[u8] = match item {
                    Item::UnconnectedData(d) | Item::ConnectedData { data: d, .. } => d,
                    _ => continue,
                };
                messages += 1;
                match MessageRouterReply::decode(msg) {
                    Ok(r) => {
                        assert_eq!(r.to_vec(), msg, "MR reply re-encodes");
                        served += usize::from(r.general_status.is_success());
                        // The reply's own checks (service data by service).
                        message_router_reply(msg);
                    }
                    Err(e) => panic!("reply message does not decode: {e}: {msg:02x?}"),
                }
            }
            assert_eq!(messages, 1, "one reply message per SendData reply");
        }
        rest = rest.get(used..).unwrap_or_default();
    }
    served
}

/// The (command, sender context) of each whole request frame in `input`.
fn enip_requests(input: &[u8]) -> Vec<(Command, [u8; 8])> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Ok((f, used)) = Encapsulation::decode(rest) {
        out.push((f.header.command, f.header.sender_context));
        rest = rest.get(used..).unwrap_or_default();
        if used == 0 {
            break;
        }
    }
    // A frame begun whose header announces more than the server accepts is refused
    // (status 0x0065) before its body comes: its header is a request answered too.
    if let Ok(h) = Header::decode(rest) {
        out.push((h.command, h.sender_context));
    }
    out
}

/// Run `input`'s script; with `split`, each data step is fed in the pieces
/// [`chunk_lengths`] gives.
fn run_enip(input: &EngineInput, split: bool) -> EnipRun {
    let mut run = EnipRun::new(input.flags, input.param);
    run.prefix();
    for (gap, step) in &input.steps {
        let to = run.now + Duration::from_millis(u64::from(*gap));
        run.advance(to);
        match step {
            Step::Data { conn, bytes } if split => {
                for piece in split_again(bytes) {
                    run.feed(*conn, piece);
                }
            }
            Step::Data { conn, bytes } => run.feed(*conn, bytes),
            Step::Datagram(bytes) => run.datagram(bytes),
            Step::Eof(conn) => run.eof(*conn),
            Step::Wait => {}
        }
    }
    // An hour later: every deadline has passed and been handled.
    let later = run.now + Duration::from_secs(3600);
    run.advance(later);
    for k in 0..run.conns.len() {
        run.eof(k);
    }
    run.advance(later + Duration::from_secs(3600));
    run
}

/// `enip_server`: a [`Server`](EnipServer) for a simulated controller (see
/// [`enip_server_fixture`]) driven by an [`EngineInput`] script over two TCP
/// connections and UDP. Flags: [`ENIP_REGISTER`], [`ENIP_FORWARD_OPEN`] (a prefix on
/// connection 0), [`ENIP_DELAY`], [`ENIP_INACTIVITY`], [`ENIP_SIMPLE`]; `param` the
/// delay or timeout.
///
/// Invariants: no panic; every byte out is whole encapsulation frames, and each
/// successful SendRRData/SendUnitData reply holds a CPF with one Message Router reply
/// that decodes and re-encodes; each connection's replies answer, in order, requests
/// sent on that connection (same command and sender context), and a datagram's reply
/// its request; the same script with every data segment split again gives the same
/// output; after `handle_timeout` the next deadline is in the future; a closed
/// connection, once flushed, sends nothing more, whatever it is fed.
pub fn enip_server(data: &[u8]) {
    let _ = enip_server_summary(data);
}

/// [`enip_server`], telling what the run did (`None`: not a script).
pub fn enip_server_summary(data: &[u8]) -> Option<EngineSummary> {
    let Ok(input) = EngineInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return None;
    };
    let mut run = run_enip(&input, false);
    // The same script with each segment split again: the same bytes come out.
    let split = run_enip(&input, true);
    for (k, (a, b)) in run.conns.iter().zip(&split.conns).enumerate() {
        assert!(
            a.sent == b.sent,
            "connection {k}: output depends on how the input is split:\n{:02x?}\n{:02x?}",
            a.sent,
            b.sent
        );
    }
    let register = Encapsulation::register_session([0; 8]).to_vec();
    for k in 0..run.conns.len() {
        if let Some(c) = run.conns.get(k) {
            let requests = enip_requests(&c.input);
            assert!(
                is_subsequence(&c.replies, &requests),
                "connection {k}: replies {:?} do not answer requests {:?}",
                c.replies,
                requests
            );
            assert!(
                c.finished,
                "connection {k} still open after EOF and an hour"
            );
        }
        // Closed: more input and time change nothing.
        run.feed(k, &register);
        let later = run.now + Duration::from_secs(60);
        if let Some(c) = run.conns.get_mut(k) {
            c.conn.handle_timeout(later, &mut run.server);
        }
        run.flush(k);
    }
    assert!(run.server.sessions().is_empty(), "sessions left registered");
    assert!(
        run.server.connections().is_empty(),
        "CIP connections left open"
    );
    Some(EngineSummary {
        replies: run.conns.iter().map(|c| c.replies.len()).collect(),
        served: run.served,
        datagram_replies: run.datagram_replies,
    })
}

// ---------------------------------------------------------------------------------------
// Modbus server

/// `modbus_server` flag: RTU over TCP rather than Modbus/TCP.
pub const MODBUS_RTU: u8 = 1;
/// `modbus_server` flag: a reply delay of `param` milliseconds.
pub const MODBUS_DELAY: u8 = 2;
/// `modbus_server` flag: replies truncated at random.
pub const MODBUS_TRUNCATE: u8 = 4;
/// `modbus_server` flags: bits 3..=5 choose a corruption (1 transaction id, 2 protocol
/// id, 3 unit id, 4 function, 5 registers; others none).
pub const MODBUS_CORRUPT_SHIFT: u8 = 3;

/// The register spec of the device every `modbus_server` run serves (every table).
pub const MODBUS_SPECS: [&str; 4] = ["1-64=1", "10001-10032", "30001-30016=7", "40001-40125=99"];

/// A reply's identity: (transaction id for Modbus/TCP, unit, function code without the
/// exception bit).
type ModbusKey = (Option<u16>, u8, u8);

/// The Modbus device of a `modbus_server` run, set up from `flags` and `param`.
pub fn modbus_device_fixture(flags: u8, param: u8) -> Device {
    let mut device = match Device::from_specs(MODBUS_SPECS) {
        Ok(d) => d,
        Err(e) => panic!("fixture specs: {e}"),
    };
    device.transport = modbus_transport(flags);
    if flags & MODBUS_DELAY != 0 {
        device.faults.delay = Some(Delay::Fixed(Duration::from_millis(u64::from(param))));
    }
    device.faults.truncate = flags & MODBUS_TRUNCATE != 0;
    device.faults.corrupt = match flags >> MODBUS_CORRUPT_SHIFT & 7 {
        1 => Some(Corruption::TransactionId),
        2 => Some(Corruption::ProtocolId),
        3 => Some(Corruption::UnitId),
        4 => Some(Corruption::Function),
        5 => Some(Corruption::Registers),
        _ => None,
    };
    device
}

fn modbus_transport(flags: u8) -> Transport {
    if flags & MODBUS_RTU != 0 {
        Transport::RtuOverTcp
    } else {
        Transport::Tcp
    }
}

/// The requests whole in `chunks` (as fed), as the replies to them would be keyed:
/// MBAP framing for Modbus/TCP (up to the first framing error), an independent RTU
/// framer for RTU.
fn modbus_requests(transport: Transport, chunks: &[Vec<u8>]) -> Vec<ModbusKey> {
    let mut keys = Vec::new();
    match transport {
        Transport::Tcp => {
            let data = chunks.concat();
            let mut rest = &data[..];
            while let Ok(len) = MbapFraming.frame_len(rest) {
                let Some(frame) = rest.get(..len) else {
                    break;
                };
                match Adu::decode(frame) {
                    Ok(adu) => match adu.pdu.first() {
                        Some(fc) => keys.push((Some(adu.transaction_id), adu.unit_id, fc & 0x7F)),
                        None => break,
                    },
                    Err(_) => break,
                }
                rest = rest.get(len..).unwrap_or_default();
            }
        }
        Transport::RtuOverTcp | Transport::RtuSerial { .. } => {
            let mut framer = RtuFramer::over_tcp(Direction::Requests);
            let now = Instant::now();
            for chunk in chunks {
                framer.handle_input(now, chunk);
                while let Some(f) = framer.poll_frame() {
                    if let Some(fc) = f.pdu.first() {
                        keys.push((None, f.unit, fc & 0x7F));
                    }
                }
            }
        }
    }
    keys
}

/// Every byte of `out` is whole, well-formed reply ADUs (Modbus/TCP: MBAP and a PDU
/// that decodes as a response or exception; RTU: a good CRC, the same); their keys,
/// and how many are not exceptions.
fn check_modbus_replies(transport: Transport, out: &[u8]) -> (Vec<ModbusKey>, usize) {
    let mut served = 0;
    let mut keys = Vec::new();
    match transport {
        Transport::Tcp => {
            let mut rest = out;
            while !rest.is_empty() {
                let len = match MbapFraming.frame_len(rest) {
                    Ok(len) if len <= rest.len() => len,
                    other => panic!("reply is not whole MBAP frames: {other:?}: {rest:02x?}"),
                };
                let frame = &rest[..len];
                let adu = match Adu::decode(frame) {
                    Ok(adu) => adu,
                    Err(e) => panic!("reply ADU does not decode: {e}: {frame:02x?}"),
                };
                assert_eq!(adu.to_vec(), frame);
                match adu.response() {
                    Ok(r) => served += usize::from(!matches!(r, ModbusResponse::Exception(_))),
                    Err(e) => panic!("reply PDU is no response: {e}: {frame:02x?}"),
                }
                let fc = adu.pdu.first().copied().unwrap_or(0);
                keys.push((Some(adu.transaction_id), adu.unit_id, fc & 0x7F));
                rest = &rest[len..];
            }
        }
        Transport::RtuOverTcp | Transport::RtuSerial { .. } => {
            let mut framer = RtuFramer::over_tcp(Direction::Responses);
            framer.handle_input(Instant::now(), out);
            while let Some(f) = framer.poll_frame() {
                let bytes = f.to_vec();
                assert!(crc_ok(&bytes));
                match f.response() {
                    Ok(r) => served += usize::from(!matches!(r, ModbusResponse::Exception(_))),
                    Err(e) => panic!("reply PDU is no response: {e}: {bytes:02x?}"),
                }
                let fc = f.pdu.first().copied().unwrap_or(0);
                keys.push((None, f.unit, fc & 0x7F));
            }
            assert_eq!(
                framer.discarded(),
                0,
                "reply bytes not in a frame: {out:02x?}"
            );
            assert_eq!(framer.buffered(), 0, "partial reply frame: {out:02x?}");
        }
    }
    (keys, served)
}

struct ModbusConnState {
    conn: ModbusConn,
    /// All the output.
    sent: Vec<u8>,
    chunks: Vec<Vec<u8>>,
    replies: Vec<ModbusKey>,
    finished: bool,
}

struct ModbusRun {
    now: Instant,
    device: Device,
    conns: Vec<ModbusConnState>,
    /// Replies are checked as well-formed (no truncation, no corruption but of
    /// register counts).
    well_formed: bool,
    /// Replies are checked against the requests (no corruption of their keys).
    keyed: bool,
    served: usize,
    datagram_replies: usize,
}

impl ModbusRun {
    fn flush(&mut self, k: usize) {
        let now = self.now;
        let transport = self.device.transport;
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let mut out = Vec::new();
        while c.conn.poll_transmit(now, &mut out) {}
        if !out.is_empty() {
            assert!(
                !c.finished,
                "connection {k} closed and flushed, then sent {out:02x?}"
            );
            c.sent.extend_from_slice(&out);
            if self.well_formed {
                let (keys, served) = check_modbus_replies(transport, &out);
                c.replies.extend(keys);
                self.served += served;
            }
        }
        while c.conn.poll_event().is_some() {}
        if c.conn.is_closed() {
            c.finished = true;
            assert_eq!(
                c.conn.poll_timeout(),
                None,
                "a closed connection has no deadline"
            );
        }
    }

    fn feed(&mut self, k: usize, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(k) {
            c.chunks.push(bytes.to_vec());
            c.conn.handle_input(self.now, bytes, &mut self.device);
        }
        self.flush(k);
    }

    fn advance(&mut self, to: Instant) {
        for _ in 0..MAX_DEADLINES {
            let due = self
                .conns
                .iter()
                .filter_map(|c| c.conn.poll_timeout())
                .filter(|d| *d <= to)
                .min();
            let Some(due) = due else {
                break;
            };
            self.now = self.now.max(due);
            for k in 0..self.conns.len() {
                let now = self.now;
                if let Some(c) = self.conns.get_mut(k) {
                    if c.conn.poll_timeout().is_some_and(|d| d <= now) {
                        c.conn.handle_timeout(now, &mut self.device);
                        self.flush(k);
                        if let Some(d) = self.conns.get(k).and_then(|c| c.conn.poll_timeout()) {
                            assert!(d > now, "deadline {d:?} not after {now:?}, once handled");
                        }
                    }
                }
            }
        }
        self.now = self.now.max(to);
    }

    fn datagram(&mut self, data: &[u8]) {
        use cpppo_core::engine::Server as _;
        let mut out = Vec::new();
        let local = std::net::SocketAddr::from(([0, 0, 0, 0], 502));
        let peer = std::net::SocketAddr::from(([10, 0, 0, 3], 2222));
        let answered = self
            .device
            .handle_datagram(self.now, local, peer, data, &mut out);
        assert_eq!(answered, !out.is_empty());
        self.datagram_replies += usize::from(answered);
        if self.well_formed {
            let transport = self.device.transport;
            let (keys, served) = check_modbus_replies(transport, &out);
            self.served += served;
            if self.keyed {
                let requests = modbus_requests(transport, &[data.to_vec()]);
                assert!(
                    is_subsequence(&keys, &requests),
                    "datagram replies {keys:?} do not answer {requests:?}"
                );
            }
        }
    }
}

/// Run `input`'s script; with `split`, each data step is fed in the pieces
/// [`chunk_lengths`] gives.
fn run_modbus(input: &EngineInput, split: bool) -> ModbusRun {
    let device = modbus_device_fixture(input.flags, input.param);
    let transport = device.transport;
    let corrupt = device.faults.corrupt;
    let well_formed =
        !device.faults.truncate && matches!(corrupt, None | Some(Corruption::Registers));
    let mut run = ModbusRun {
        now: Instant::now(),
        conns: (0..2)
            .map(|_| ModbusConnState {
                conn: ModbusConn::new(transport),
                sent: Vec::new(),
                chunks: Vec::new(),
                replies: Vec::new(),
                finished: false,
            })
            .collect(),
        device,
        well_formed,
        keyed: well_formed,
        served: 0,
        datagram_replies: 0,
    };
    for (gap, step) in &input.steps {
        let to = run.now + Duration::from_millis(u64::from(*gap));
        run.advance(to);
        match step {
            Step::Data { conn, bytes } if split => {
                for piece in split_again(bytes) {
                    run.feed(*conn, piece);
                }
            }
            Step::Data { conn, bytes } => run.feed(*conn, bytes),
            Step::Datagram(bytes) => run.datagram(bytes),
            Step::Eof(conn) => {
                if let Some(c) = run.conns.get_mut(*conn) {
                    c.conn.handle_eof(run.now, &mut run.device);
                }
                run.flush(*conn);
            }
            Step::Wait => {}
        }
    }
    let later = run.now + Duration::from_secs(3600);
    run.advance(later);
    for k in 0..run.conns.len() {
        if let Some(c) = run.conns.get_mut(k) {
            c.conn.handle_eof(run.now, &mut run.device);
        }
        run.flush(k);
    }
    run.advance(later + Duration::from_secs(3600));
    run
}

/// `modbus_server`: a Modbus [`Device`] (every table, see [`MODBUS_SPECS`]) served over
/// Modbus/TCP or RTU over TCP ([`MODBUS_RTU`]) on two connections and as datagrams,
/// driven by an [`EngineInput`] script. Flags: [`MODBUS_DELAY`] (`param` ms),
/// [`MODBUS_TRUNCATE`], a corruption (bits from [`MODBUS_CORRUPT_SHIFT`]).
///
/// Invariants: no panic; after `handle_timeout` the next deadline is in the future; a
/// closed connection, once flushed, sends nothing more. Without truncation or
/// corruption (register corruption aside) every output is whole, well-formed ADUs
/// (MBAP + a PDU that decodes as a response or exception; RTU: good CRC, the same),
/// and each connection's replies answer its own requests in order (same transaction
/// id, unit and function code), each datagram's replies its requests; over Modbus/TCP
/// the same script with every data segment split again gives the same output.
pub fn modbus_server(data: &[u8]) {
    let _ = modbus_server_summary(data);
}

/// [`modbus_server`], telling what the run did (`None`: not a script).
pub fn modbus_server_summary(data: &[u8]) -> Option<EngineSummary> {
    let Ok(input) = EngineInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return None;
    };
    let mut run = run_modbus(&input, false);
    let transport = run.device.transport;
    // The same script with each segment split again: the same bytes come out. Not
    // over RTU: without silences the framer's resynchronisation after noise depends
    // on what is buffered (a frame of unknown length is cut at the first CRC match
    // among the bytes in, and a valid frame further on makes the head noise), so a
    // noisy stream may frame differently when split (see the README's findings).
    let split = run_modbus(&input, true);
    let comparable = transport == Transport::Tcp;
    for (k, (a, b)) in run.conns.iter().zip(&split.conns).enumerate() {
        if !comparable {
            break;
        }
        assert!(
            a.sent == b.sent,
            "connection {k}: output depends on how the input is split:\n{:02x?}\n{:02x?}",
            a.sent,
            b.sent
        );
    }
    for k in 0..run.conns.len() {
        if let Some(c) = run.conns.get(k) {
            assert!(
                c.finished,
                "connection {k} still open after EOF and an hour"
            );
            if run.keyed {
                let requests = modbus_requests(transport, &c.chunks);
                assert!(
                    is_subsequence(&c.replies, &requests),
                    "connection {k}: replies {:?} do not answer requests {:?}",
                    c.replies,
                    requests
                );
            }
        }
        // Closed: more input and time change nothing.
        run.feed(k, &[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]);
        let later = run.now + Duration::from_secs(60);
        if let Some(c) = run.conns.get_mut(k) {
            c.conn.handle_timeout(later, &mut run.device);
        }
        run.flush(k);
    }
    Some(EngineSummary {
        replies: run.conns.iter().map(|c| c.replies.len()).collect(),
        served: run.served,
        datagram_replies: run.datagram_replies,
    })
}

// ---------------------------------------------------------------------------------------
// The web API

/// Percent-encode everything but unreserved characters (RFC 3986), for a query value.
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The same request written with query parameters only.
fn web_query(request: &cpppo_core::web::ApiRequest) -> String {
    let mut url = format!(
        "/api?group={}&match={}",
        url_encode(&request.group.0),
        url_encode(&request.matcher.0)
    );
    if let Some(command) = &request.command {
        url.push_str(&format!(
            "&command={}",
            url_encode(&command.attribute.to_string())
        ));
        if let Some((text, _)) = &command.value {
            url.push_str(&format!("&value={}", url_encode(text)));
        }
    }
    if let Some(since) = request.since {
        url.push_str(&format!("&since={since}"));
    }
    url
}

/// A simulator with tags of several types and one open connection, for `web_api`.
pub fn web_api_fixture() -> (EnipServer<Controller>, EnipConn<Controller>) {
    let mut plc = Controller::new(ControllerConfig::default());
    for spec in [
        "SCADA=INT[16]",
        "Speed=REAL",
        "Flag=BOOL",
        "Text=STRING",
        "Big=ULINT[2]",
        "Program:Main.Count=DINT",
    ] {
        if let Err(e) = plc.tags_mut().add_str(spec) {
            panic!("fixture tag {spec}: {e}");
        }
    }
    let mut server = EnipServer::new(plc, ServerOptions::default());
    let now = Instant::now();
    let conn = EnipConn::new(
        now,
        std::net::SocketAddr::from(([127, 0, 0, 1], 52590)),
        &mut server,
    );
    (server, conn)
}

/// `web_api`: the path grammar never panics, and refuses with 400 or 404; URL decoding
/// round-trips through percent-encoding; a parsed request written again as query
/// parameters parses to the same request; applying it to a live simulator never
/// panics and is idempotent (the second time answers and leaves everything the same).
pub fn web_api(data: &[u8]) {
    use cpppo_core::web::{apply, parse_request, url_decode};
    let text = String::from_utf8_lossy(data);
    if let Ok(decoded) = url_decode(&text, false) {
        assert_eq!(
            url_decode(&url_encode(&decoded), false).as_ref(),
            Ok(&decoded)
        );
    }
    let request = match parse_request(&text) {
        Ok(request) => request,
        Err(e) => {
            assert!(matches!(e.http_status(), 400 | 404), "{e}");
            return;
        }
    };
    let query = web_query(&request);
    match parse_request(&query) {
        Ok(again) => assert_eq!(again, request, "{text:?} written as {query:?}"),
        Err(e) => panic!("{text:?} written as {query:?} is refused: {e}"),
    }
    let (mut server, _conn) = web_api_fixture();
    let state = |server: &EnipServer<Controller>| {
        let tags = server.device().tags().tags().iter();
        (
            tags.map(|t| t.data().to_vec()).collect::<Vec<_>>(),
            server.faults.clone(),
        )
    };
    let first = apply(&mut server, &request, 1.0);
    let (values, faults) = state(&server);
    let second = apply(&mut server, &request, 1.0);
    assert_eq!(first, second, "{text:?} applied twice");
    let (again, _) = state(&server);
    assert_eq!(values, again, "{text:?}: tag values");
    assert_eq!(faults, server.faults, "{text:?}: faults");
}
