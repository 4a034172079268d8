//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through its
//! target's body (`fuzz/src/lib.rs`, included here as a module), so the fuzzers'
//! invariants and every regression input they found run in CI on stable Rust.
//!
//! The seed part of each corpus (files named `seed-*`) is generated from the real
//! frames in `core/tests/frames/` by the ignored test `regenerate_seed_corpus`:
//!
//! ```text
//! cargo test -p cpppo-conformance --test fuzz_corpus -- --ignored regenerate_seed_corpus
//! ```

// Test helpers: a missing or unreadable corpus file should stop the test loudly.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cpppo_core::cip::message_router::{
    service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply, Request,
};
use cpppo_core::enip::cpf::{Cpf, Item};
use cpppo_core::enip::encapsulation::{Body, Encapsulation};
use cpppo_core::wire::Encode;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir(target: &str) -> PathBuf {
    repo().join("fuzz").join("corpus").join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_replays_through_its_target() {
    let mut failures = Vec::new();
    for (target, run) in targets::TARGETS {
        let inputs = files(&corpus_dir(target));
        assert!(!inputs.is_empty(), "corpus of {target} is empty");
        let seeds = inputs
            .iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("seed-")
            })
            .count();
        assert!(
            seeds > 0,
            "corpus of {target} has no seed from a real frame"
        );
        for path in inputs {
            let data = fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail: {failures:#?}");
}

#[test]
fn stream_targets_split_a_real_session_into_many_short_pieces() {
    // The stream targets split their input at points derived from it; on a real session
    // that must mean many pieces, most of them short (so header fields get split).
    let session = frames_file(&repo().join("core/tests/frames/controllogix-SCADA-read-write.hex"));
    let data = corpus_file("enip_stream", "seed-controllogix-SCADA-read-write-session");
    assert_eq!(data, session.concat());
    let lens = targets::chunk_lengths(&data);
    assert_eq!(lens.iter().sum::<usize>(), data.len());
    assert!(
        lens.len() > session.len(),
        "{} pieces for {} frames",
        lens.len(),
        session.len()
    );
    assert!(
        lens.iter().filter(|&&n| n <= 16).count() * 2 > lens.len(),
        "{lens:?}"
    );
    assert_eq!(
        lens,
        targets::chunk_lengths(&data),
        "the split is a function of the input"
    );
}

#[test]
fn rtu_inputs_read_back_from_their_bytes() {
    use arbitrary::{Arbitrary, Unstructured};
    let input = targets::RtuInput {
        baud: Some(9600),
        responses: true,
        strict: false,
        drive_timeouts: true,
        chunks: vec![
            (0, b"\x11\x83\x02\xc1\x34".to_vec()),
            (4000, vec![0x11; 300]),
        ],
    };
    let bytes = input.to_bytes();
    let back = targets::RtuInput::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
    assert_eq!(back.baud, Some(9600));
    assert!(back.responses && !back.strict && back.drive_timeouts);
    // The 300-byte chunk is cut at 255 bytes, both pieces at the same gap.
    assert_eq!(
        back.chunks,
        vec![
            (0, b"\x11\x83\x02\xc1\x34".to_vec()),
            (4000, vec![0x11; 255]),
            (4000, vec![0x11; 45])
        ]
    );
    let tcp = targets::RtuInput {
        baud: None,
        chunks: vec![],
        ..input
    };
    let back = targets::RtuInput::arbitrary_take_rest(Unstructured::new(&tcp.to_bytes())).unwrap();
    assert_eq!(back.baud, None);
}

fn corpus_file(target: &str, name: &str) -> Vec<u8> {
    fs::read(corpus_dir(target).join(name)).unwrap()
}

// ---------------------------------------------------------------------------------------
// Seed corpus generation

/// The frames of a `.hex` file: comment lines (`#`) skipped; in the session file each
/// line is `pktN sender hex` (one frame a line), elsewhere all hex is one frame.
fn frames_file(path: &Path) -> Vec<Vec<u8>> {
    let text = fs::read_to_string(path).unwrap();
    let lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let session = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("controllogix");
    if session {
        lines
            .map(|l| hex(l.split_whitespace().last().unwrap()))
            .collect()
    } else {
        vec![hex(&lines.collect::<Vec<_>>().join(""))]
    }
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex: {text}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Seeds per target: name -> bytes (identical contents keep the first name).
#[derive(Default)]
struct Seeds(BTreeMap<&'static str, Vec<(String, Vec<u8>)>>);

impl Seeds {
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
        let list = self.0.entry(target).or_default();
        if !list.iter().any(|(_, b)| *b == bytes) {
            list.push((name.into(), bytes));
        }
    }
}

/// A Message Router request and everything inside it, as seeds of the CIP targets.
fn request_seeds(s: &mut Seeds, name: &str, req: &MessageRouterRequest<'_>, depth: usize) {
    s.add("message_router_request", name, req.to_vec());
    s.add(
        "epath",
        format!("{name}-path"),
        req.path.as_bytes().to_vec(),
    );
    s.add(
        "epath",
        format!("{name}-path-text"),
        req.path.to_string().into_bytes(),
    );
    let Ok(c) = Request::decode(req) else {
        return;
    };
    let data = req.data.to_vec();
    let logix = |selector: u8| {
        let mut v = vec![selector, 0];
        v.extend_from_slice(&data);
        v
    };
    match &c.request {
        Request::ReadTag(_) => s.add("logix", format!("{name}-read_tag"), logix(0)),
        Request::WriteTag(w) => {
            s.add("logix", format!("{name}-write_tag"), logix(1));
            let mut v = vec![11, u8::try_from(w.elements).unwrap_or(0)];
            v.extend_from_slice(&w.tag_type.to_vec());
            v.extend_from_slice(&w.data);
            s.add("logix", format!("{name}-write_tag-values"), v);
        }
        Request::ReadTagFragmented(_) => {
            s.add("logix", format!("{name}-read_tag_fragmented"), logix(2))
        }
        Request::WriteTagFragmented(_) => {
            s.add("logix", format!("{name}-write_tag_fragmented"), logix(3))
        }
        Request::ReadModifyWriteTag(_) => {
            s.add("logix", format!("{name}-read_modify_write"), logix(4))
        }
        Request::TemplateRead(_) => s.add("logix", format!("{name}-template_read"), logix(5)),
        Request::GetInstanceAttributeList(_) => {
            s.add("logix", format!("{name}-instance_attribute_list"), logix(6))
        }
        Request::UnconnectedSend(us) => {
            s.add(
                "epath",
                format!("{name}-route"),
                us.route_path.as_bytes().to_vec(),
            );
            if depth < 4 {
                request_seeds(s, &format!("{name}-embedded"), &us.request, depth + 1);
            }
        }
        Request::ForwardOpen(fo) => {
            s.add(
                "epath",
                format!("{name}-connection_path"),
                fo.connection_path.as_bytes().to_vec(),
            );
        }
        Request::ForwardClose(fc) => {
            s.add(
                "epath",
                format!("{name}-connection_path"),
                fc.connection_path.as_bytes().to_vec(),
            );
        }
        Request::MultipleServicePacket(msp) => {
            for (i, r) in msp.requests.iter().enumerate() {
                if depth < 4 {
                    request_seeds(s, &format!("{name}-{i}"), r, depth + 1);
                }
            }
        }
        _ => {}
    }
    if matches!(
        c.request,
        Request::ReadTag(_)
            | Request::WriteTag(_)
            | Request::ReadTagFragmented(_)
            | Request::WriteTagFragmented(_)
            | Request::ReadModifyWriteTag(_)
            | Request::TemplateRead(_)
            | Request::GetInstanceAttributeList(_)
    ) {
        let mut v = vec![12, 0];
        v.extend_from_slice(&req.to_vec());
        s.add("logix", format!("{name}-request"), v);
    }
}

fn reply_seeds(s: &mut Seeds, name: &str, rpy: &MessageRouterReply<'_>, depth: usize) {
    s.add("message_router_reply", name, rpy.to_vec());
    let data = rpy.data.to_vec();
    match rpy.request_service() {
        service::READ_TAG | service::READ_TAG_FRAGMENTED if !data.is_empty() => {
            let mut v = vec![7, 0];
            v.extend_from_slice(&data);
            s.add("logix", format!("{name}-read_tag_reply"), v);
            let mut v = vec![11, 0];
            v.extend_from_slice(&data);
            s.add("logix", format!("{name}-values"), v);
        }
        service::MULTIPLE_SERVICE_PACKET => {
            if let Ok(msr) = MultipleServiceReply::decode(&data) {
                for (i, r) in msr.replies.iter().enumerate() {
                    if depth < 4 {
                        reply_seeds(s, &format!("{name}-{i}"), r, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

fn cpf_seeds(s: &mut Seeds, name: &str, cpf: &Cpf<'_>) {
    for item in &cpf.items {
        let msg: &[u8] = match item {
            Item::UnconnectedData(d) | Item::ConnectedData { data: d, .. } => d,
            _ => continue,
        };
        match msg.first() {
            Some(b) if b & service::REPLY != 0 => {
                if let Ok(r) = MessageRouterReply::decode(msg) {
                    reply_seeds(s, name, &r, 0);
                }
            }
            Some(_) => {
                if let Ok(r) = MessageRouterRequest::decode(msg) {
                    request_seeds(s, name, &r, 0);
                }
            }
            None => {}
        }
    }
}

fn enip_seeds(s: &mut Seeds, name: &str, frame: &[u8]) {
    s.add("enip_stream", name, frame.to_vec());
    let (f, used) = Encapsulation::decode(frame).unwrap();
    assert_eq!(used, frame.len(), "{name}");
    match f.body() {
        Ok(Body::SendData(send)) => {
            s.add("cpf", name, f.data[6..].to_vec());
            cpf_seeds(s, name, &send.cpf);
        }
        Ok(Body::Cpf(c)) => {
            s.add("cpf", name, f.data.to_vec());
            cpf_seeds(s, name, &c);
        }
        _ => {}
    }
}

/// The RTU framer's structured inputs around one real frame.
fn rtu_seeds(s: &mut Seeds, name: &str, frame: &[u8], responses: bool) {
    use targets::RtuInput;
    let input = |baud, strict, drive_timeouts, chunks: Vec<(u32, Vec<u8>)>| RtuInput {
        baud,
        responses,
        strict,
        drive_timeouts,
        chunks,
    };
    let half = frame.len() / 2;
    let noise = [0x55u8, 0xAA, 0x03];
    let noisy: Vec<u8> = noise
        .iter()
        .chain(frame)
        .chain(&noise[..1])
        .copied()
        .collect();
    let twice: Vec<u8> = frame.iter().chain(frame).copied().collect();
    let variants = [
        (
            "whole",
            input(Some(9600), false, true, vec![(0, frame.to_vec())]),
        ),
        (
            "split",
            input(
                Some(19_200),
                true,
                true,
                vec![(0, frame[..half].to_vec()), (500, frame[half..].to_vec())],
            ),
        ),
        (
            "noise-then-silence",
            input(
                Some(9600),
                false,
                false,
                vec![(0, noisy), (10_000, frame.to_vec())],
            ),
        ),
        (
            "back-to-back",
            input(Some(115_200), false, true, vec![(0, twice.clone())]),
        ),
        ("over-tcp", input(None, false, false, vec![(0, twice)])),
        (
            "stale-partial",
            input(
                Some(4800),
                false,
                true,
                vec![(0, frame[..half].to_vec()), (20_000, frame.to_vec())],
            ),
        ),
    ];
    for (what, v) in variants {
        s.add("modbus_rtu_framer", format!("{name}-{what}"), v.to_bytes());
    }
}

/// cpppo path notation from the EPATH module docs and cpppo's command-line examples.
const PATH_TEXTS: &[&str] = &[
    "@0x1FF/01/0x1A",
    "@4/5/{\"connection\":100}",
    "@{\"port\":1,\"link\":0}/2/1",
    "SCADA[12]",
    "Arr[1,2]",
    "Program:MainProgram.Tag.Member[3]",
    "Tag.@{\"element\":2}",
    "Tag[2-5]",
    "1/0/@2/1",
    "2/192.168.0.24/1/0/Tag[3]",
    "[{\"port\":1,\"link\":0}]",
    "@{\"vendor\":1,\"device_type\":14,\"product_code\":55,\"major_revision\":20,\"minor_revision\":11,\"compatibility\":true}",
    "@{\"data\":\"0a0b\"}/{\"symbolic\":\"SCADA\"}",
];

/// The web API seeds: every command of cpppo's README, and the shapes around them.
const WEB_API_PATHS: [(&str, &str); 20] = [
    ("root", "/api"),
    ("root-trailing-slash", "/api/"),
    ("delay-value-slash", "/api/options/delay/value/0.5"),
    ("delay-value-equals", "/api/options/delay/value=0.5"),
    ("delay-range", "/api/options/delay/range=0.5-1.5"),
    ("delay-never", "/api/options/delay/value=10.0"),
    ("disable", "/api/server/control/disable/true"),
    ("enable", "/api/server/control/disable/false"),
    ("done", "/api/server/control/done/true"),
    ("latency", "/api/server/control/latency=0.1"),
    ("timeout", "/api/server/control/timeout/0.2"),
    ("tag-error", "/api/tags/SCADA/error=8"),
    ("tag-error-clear", "/api/tags/SCADA/error/0"),
    ("tag-error-extended", "/api/tags/*/error=0xFF,0x2107"),
    ("tag-attribute-write", "/api/tags/SCADA/attribute[3]=4"),
    (
        "tag-attribute-read-encoded",
        "/api/tags/SCADA/attribute%5B3%5D",
    ),
    ("tag-string", "/api/tags/Text/attribute=a%2Fb+c%3Dd.json"),
    ("connections", "/api/connections"),
    ("eof-all", "/api/connections/*/eof/true"),
    (
        "eof-by-name-query",
        "/api/connections/127_0_0_1_52590/eof?value=true&since=1372889099.908609",
    ),
];

fn all_seeds() -> Seeds {
    let frames = repo().join("core/tests/frames");
    let mut s = Seeds::default();

    let session_path = frames.join("controllogix-SCADA-read-write.hex");
    let session = frames_file(&session_path);
    s.add(
        "enip_stream",
        "controllogix-SCADA-read-write-session",
        session.concat(),
    );
    for (i, f) in session.iter().enumerate() {
        enip_seeds(&mut s, &format!("controllogix-SCADA-read-write-{i:02}"), f);
    }
    for path in files(&frames.join("enip")) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        for f in frames_file(&path) {
            enip_seeds(&mut s, &name, &f);
        }
    }
    for text in PATH_TEXTS {
        let name: String = text
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        s.add("epath", format!("text-{name}"), text.as_bytes().to_vec());
    }
    for (name, url) in WEB_API_PATHS {
        s.add("web_api", name, url.as_bytes().to_vec());
    }

    let mut tcp = Vec::new();
    for path in files(&frames.join("modbus")) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let [frame] = &frames_file(&path)[..] else {
            panic!("{name}: one frame expected")
        };
        if name.contains("__tcp_") {
            s.add("modbus_tcp_stream", name.clone(), frame.clone());
            s.add("modbus_pdu", name.clone(), frame[7..].to_vec());
            tcp.extend_from_slice(frame);
        } else {
            assert!(name.contains("__rtu_"), "{name}");
            s.add(
                "modbus_pdu",
                name.clone(),
                frame[1..frame.len() - 2].to_vec(),
            );
            let responses = name.contains("response");
            rtu_seeds(&mut s, &name, frame, responses);
        }
    }
    s.add("modbus_tcp_stream", "pymodbus-all-tcp-frames", tcp);
    enip_server_seeds(&mut s, &frames);
    modbus_server_seeds(&mut s, &frames);
    s
}

// ---------------------------------------------------------------------------------------
// Engine scripts: real request streams as `EngineInput`s

use cpppo_core::cip::epath::Epath;
use cpppo_core::cip::message_router::MultipleServiceRequest;
use cpppo_core::enip::encapsulation::{Command, Header, SendData};
use cpppo_core::modbus::rtu::RtuFrame;
use std::borrow::Cow;
use targets::{EngineInput, Step};

fn enip_frame(command: Command, session: u32, context: [u8; 8], data: &[u8]) -> Vec<u8> {
    Encapsulation::new(Header::new(command, session, context), data.to_vec())
        .unwrap()
        .to_vec()
}

/// SendRRData, CPF null address + unconnected data.
fn enip_rr(session: u32, context: [u8; 8], timeout: u16, msg: &[u8]) -> Vec<u8> {
    let send = SendData::new(timeout, Cpf::unconnected(msg.to_vec()));
    enip_frame(Command::SendRRData, session, context, &send.to_vec())
}

/// SendUnitData to `o_t` with sequence count `seq`.
fn enip_unit(session: u32, context: [u8; 8], o_t: u32, seq: u16, msg: &[u8]) -> Vec<u8> {
    let send = SendData::new(0, Cpf::connected(o_t, seq, msg.to_vec()));
    enip_frame(Command::SendUnitData, session, context, &send.to_vec())
}

fn mr(service: u8, path: &str, data: &[u8]) -> Vec<u8> {
    let path: Epath<'static> = path.parse().unwrap();
    MessageRouterRequest::new(service, path, data.to_vec()).to_vec()
}

/// Read Tag of `elements` elements.
fn read_tag(path: &str, elements: u16) -> Vec<u8> {
    mr(service::READ_TAG, path, &elements.to_le_bytes())
}

/// Write Tag: type code, element count, values.
fn write_tag(path: &str, tag_type: u16, elements: u16, values: &[u8]) -> Vec<u8> {
    let mut d = tag_type.to_le_bytes().to_vec();
    d.extend_from_slice(&elements.to_le_bytes());
    d.extend_from_slice(values);
    mr(service::WRITE_TAG, path, &d)
}

/// Read Tag Fragmented: element count and byte offset.
fn read_tag_fragmented(path: &str, elements: u16, offset: u32) -> Vec<u8> {
    let mut d = elements.to_le_bytes().to_vec();
    d.extend_from_slice(&offset.to_le_bytes());
    mr(service::READ_TAG_FRAGMENTED, path, &d)
}

fn multiple_service(requests: &[Vec<u8>]) -> Vec<u8> {
    let requests = requests
        .iter()
        .map(|r| MessageRouterRequest::decode(r).unwrap())
        .collect();
    let msp = MultipleServiceRequest { requests };
    mr(service::MULTIPLE_SERVICE_PACKET, "@2/1", &msp.to_vec())
}

/// Logix type codes used by the seeds.
const INT: u16 = 0xC3;
const REAL: u16 = 0xCA;

/// Logix tag requests against the fuzz fixture's tags.
fn tag_requests() -> Vec<Vec<u8>> {
    vec![
        read_tag("SCADA", 10),
        write_tag("SCADA[1]", INT, 2, &[0x34, 0x12, 0x78, 0x56]),
        read_tag("SCADA[1]", 2),
        read_tag_fragmented("SCADA", 10, 4),
        write_tag("Temp", REAL, 1, &1.5f32.to_le_bytes()),
        read_tag("Temp", 1),
        read_tag("Msg", 1),
        read_tag("M[1].Speed", 1),
        read_tag("M[0].Hist[2]", 2),
        read_tag("M", 2),
        multiple_service(&[read_tag("Temp", 1), read_tag("SCADA[3]", 1)]),
        // Get Instance Attribute List of the Symbol class: names and types.
        mr(0x55, "@0x6B/0", &[2, 0, 1, 0, 2, 0]),
        // Get Attributes All of the Identity.
        mr(0x01, "@1/1", &[]),
        // An unknown tag and a bad element.
        read_tag("Nope", 1),
        read_tag("SCADA[99]", 1),
    ]
}

/// pycomm3's get_plc_info: Get Attributes All of the Identity in an Unconnected Send
/// routed to backplane slot 0.
fn unconnected_send_identity() -> Vec<u8> {
    let inner = [0x01, 0x02, 0x20, 0x01, 0x24, 0x01];
    let mut m = vec![0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
    m.extend_from_slice(&(inner.len() as u16).to_le_bytes());
    m.extend_from_slice(&inner);
    m.extend_from_slice(&[0x01, 0x00, 0x01, 0x00]);
    m
}

/// pycomm3's Forward Close of the prefix's Forward Open.
fn forward_close() -> Vec<u8> {
    let mut m = vec![0x4E, 0x02, 0x20, 0x06, 0x24, 0x01, 0x0A, 0x05];
    m.extend_from_slice(&0x0427u16.to_le_bytes());
    m.extend_from_slice(&0x1009u16.to_le_bytes());
    m.extend_from_slice(&0x7119_1009u32.to_le_bytes());
    m.extend_from_slice(&[0x03, 0x00, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
    m
}

fn data(conn: usize, bytes: Vec<u8>) -> (u16, Step) {
    (1, Step::Data { conn, bytes })
}

fn enip_script(flags: u8, param: u8, steps: Vec<(u16, Step)>) -> Vec<u8> {
    EngineInput {
        flags,
        param,
        steps,
    }
    .to_bytes()
}

fn enip_server_seeds(s: &mut Seeds, frames: &Path) {
    use targets::{
        enip_prefix_state, ENIP_DELAY, ENIP_FORWARD_OPEN, ENIP_INACTIVITY, ENIP_REGISTER,
        ENIP_SIMPLE,
    };
    const T: &str = "enip_server";
    let ctx = *b"_pycomm_";

    // pycomm3: prefix (RegisterSession, Large Forward Open), then its driver's requests
    // and the tag services, connected; Forward Close, UnRegisterSession.
    let connected = |flags: u8, param: u8, gap: u16| {
        let (session, o_t) = enip_prefix_state(flags, param);
        assert_ne!(session, 0);
        assert_ne!(o_t, 0);
        let mut steps = vec![
            data(0, enip_frame(Command::ListIdentity, session, ctx, &[])),
            data(0, enip_rr(session, ctx, 10, &unconnected_send_identity())),
            data(
                0,
                enip_unit(session, ctx, o_t, 1, &mr(0x01, "@0x64/1", &[])),
            ),
        ];
        for (i, r) in tag_requests().iter().enumerate() {
            steps.push(data(0, enip_unit(session, ctx, o_t, 2 + i as u16, r)));
        }
        // A retransmission (same sequence count) and a Forward Close.
        steps.push(data(
            0,
            enip_unit(session, ctx, o_t, 2, &read_tag("SCADA", 10)),
        ));
        steps.push(data(0, enip_rr(session, ctx, 10, &forward_close())));
        steps.push(data(
            0,
            enip_frame(Command::UnRegisterSession, session, ctx, &[]),
        ));
        for st in &mut steps {
            st.0 = gap;
        }
        enip_script(flags, param, steps)
    };
    let fo = ENIP_REGISTER | ENIP_FORWARD_OPEN;
    s.add(T, "pycomm3-connected", connected(fo, 0, 1));
    s.add(
        T,
        "pycomm3-connected-delay-20ms",
        connected(fo | ENIP_DELAY, 20, 0),
    );

    // pylogix: unconnected tag services (timeout 0, context 0), then its Forward Open.
    let (session, _) = enip_prefix_state(ENIP_REGISTER, 0);
    let mut steps: Vec<_> = tag_requests()
        .iter()
        .map(|r| data(0, enip_rr(session, [0; 8], 0, r)))
        .collect();
    let fo_frame = frames_file(&frames.join("enip/cpppo-enip_test__forward_open_request.hex"));
    let mut fo = fo_frame[0].clone();
    fo[4..8].copy_from_slice(&session.to_le_bytes());
    steps.push(data(0, fo));
    s.add(
        T,
        "pylogix-unconnected",
        enip_script(ENIP_REGISTER, 0, steps.clone()),
    );
    // A non-routing server: the Forward Open's route is refused.
    s.add(
        T,
        "pylogix-unconnected-simple",
        enip_script(ENIP_REGISTER | ENIP_SIMPLE, 0, steps.clone()),
    );
    // The same, all in one segment, then the peer hangs up.
    let whole: Vec<u8> = steps
        .iter()
        .flat_map(|(_, st)| match st {
            Step::Data { bytes, .. } => bytes.clone(),
            _ => Vec::new(),
        })
        .collect();
    s.add(
        T,
        "pylogix-unconnected-one-segment-then-eof",
        enip_script(ENIP_REGISTER, 0, vec![data(0, whole), (5, Step::Eof(0))]),
    );

    // The ControlLogix capture as recorded (its session handle is not ours), and with
    // its requests moved into our session.
    let session_frames = frames_file(&frames.join("controllogix-SCADA-read-write.hex"));
    let text = fs::read_to_string(frames.join("controllogix-SCADA-read-write.hex")).unwrap();
    let clients: Vec<bool> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(1) == Some("client"))
        .collect();
    let requests: Vec<Vec<u8>> = session_frames
        .iter()
        .zip(&clients)
        .filter(|(_, c)| **c)
        .map(|(f, _)| f.clone())
        .collect();
    s.add(
        T,
        "controllogix-capture",
        enip_script(0, 0, requests.iter().map(|f| data(0, f.clone())).collect()),
    );
    let moved: Vec<_> = requests
        .iter()
        .skip(1)
        .map(|f| {
            let mut f = f.clone();
            f[4..8].copy_from_slice(&session.to_le_bytes());
            data(0, f)
        })
        .collect();
    s.add(
        T,
        "controllogix-capture-in-our-session",
        enip_script(ENIP_REGISTER, 0, moved),
    );

    // Every request frame of the test set: on connection 1 (its own session) and as
    // a datagram.
    for path in files(&frames.join("enip")) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !name.ends_with("_request") {
            continue;
        }
        for f in frames_file(&path) {
            let mut ours = f.clone();
            if u32::from_le_bytes(f[4..8].try_into().unwrap()) != 0 {
                ours[4..8].copy_from_slice(&session.to_le_bytes());
            }
            s.add(
                T,
                format!("{name}-tcp"),
                enip_script(ENIP_REGISTER, 0, vec![data(0, ours)]),
            );
            s.add(
                T,
                format!("{name}-udp"),
                enip_script(0, 0, vec![(0, Step::Datagram(f))]),
            );
        }
    }

    // Two connections: both register; 0 reads, 1 uses 0's session (refused), 0 hangs
    // up, 1 lists services over TCP and sends a datagram.
    let two = vec![
        data(1, Encapsulation::register_session(*b"second!!").to_vec()),
        data(0, enip_rr(session, ctx, 10, &read_tag("SCADA", 2))),
        data(1, enip_rr(session, *b"second!!", 10, &read_tag("Temp", 1))),
        (10, Step::Eof(0)),
        data(1, enip_frame(Command::ListServices, 0, *b"second!!", &[])),
        (
            1,
            Step::Datagram(enip_frame(Command::ListIdentity, 0, [9; 8], &[])),
        ),
    ];
    s.add(T, "two-connections", enip_script(ENIP_REGISTER, 0, two));

    // The inactivity timeout (51 ms) closing an idle connection between two reads.
    let idle = vec![
        data(0, enip_rr(session, ctx, 10, &read_tag("SCADA", 1))),
        (200, Step::Wait),
        data(0, enip_rr(session, ctx, 10, &read_tag("SCADA", 1))),
    ];
    s.add(
        T,
        "inactivity-timeout",
        enip_script(ENIP_REGISTER | ENIP_INACTIVITY, 5, idle),
    );
}

fn modbus_tcp_adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut adu = tid.to_be_bytes().to_vec();
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    adu.push(unit);
    adu.extend_from_slice(pdu);
    adu
}

fn modbus_rtu_adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    RtuFrame {
        unit,
        pdu: Cow::Borrowed(pdu),
    }
    .to_vec()
}

/// The request PDUs of libmodbus's unit-test client (its function codes and
/// layouts), addressed to the fuzz fixture's tables, with its crafted bad requests.
fn libmodbus_pdus() -> Vec<Vec<u8>> {
    vec![
        vec![
            0x0F, 0x00, 0x13, 0x00, 0x25, 0x05, 0xCD, 0x6B, 0xB2, 0x0E, 0x1B,
        ],
        vec![0x01, 0x00, 0x13, 0x00, 0x25],
        vec![0x05, 0x00, 0x13, 0xFF, 0x00],
        vec![0x01, 0x00, 0x13, 0x00, 0x01],
        vec![0x02, 0x00, 0x04, 0x00, 0x16],
        vec![0x06, 0x00, 0x6B, 0x12, 0x34],
        vec![0x03, 0x00, 0x6B, 0x00, 0x01],
        vec![
            0x10, 0x00, 0x6B, 0x00, 0x03, 0x06, 0x02, 0x2B, 0x00, 0x01, 0x00, 0x64,
        ],
        vec![0x03, 0x00, 0x6B, 0x00, 0x03],
        vec![
            0x17, 0x00, 0x6B, 0x00, 0x03, 0x00, 0x6C, 0x00, 0x01, 0x02, 0x00, 0x17,
        ],
        vec![0x16, 0x00, 0x6B, 0x00, 0xF2, 0x00, 0x25],
        vec![0x04, 0x00, 0x08, 0x00, 0x01],
        vec![0x2B, 0x0E, 0x01, 0x00],
        vec![0x11],
        // Beyond the tables, zero and too large quantities, an unknown function.
        vec![0x03, 0x01, 0x60, 0x00, 0x05],
        vec![0x03, 0x00, 0x00, 0x00, 0x00],
        vec![0x03, 0x00, 0x00, 0x00, 0x7E],
        vec![0x01, 0x00, 0x00, 0x07, 0xD1],
        vec![0x10, 0x00, 0x00, 0x00, 0x01, 0x03, 0x12, 0x34, 0x56],
        vec![0x42, 0x00, 0x00, 0x00, 0x00],
    ]
}

fn modbus_server_seeds(s: &mut Seeds, frames: &Path) {
    use targets::{MODBUS_CORRUPT_SHIFT, MODBUS_DELAY, MODBUS_RTU, MODBUS_TRUNCATE};
    const T: &str = "modbus_server";
    let pdus = libmodbus_pdus();
    let tcp: Vec<Vec<u8>> = pdus
        .iter()
        .enumerate()
        .map(|(i, p)| modbus_tcp_adu(i as u16 + 1, 0xFF, p))
        .collect();
    let rtu: Vec<Vec<u8>> = pdus.iter().map(|p| modbus_rtu_adu(17, p)).collect();
    let script = |flags: u8, param: u8, steps: Vec<(u16, Step)>| {
        EngineInput {
            flags,
            param,
            steps,
        }
        .to_bytes()
    };
    let each = |adus: &[Vec<u8>], gap: u16| -> Vec<(u16, Step)> {
        adus.iter()
            .map(|a| {
                (
                    gap,
                    Step::Data {
                        conn: 0,
                        bytes: a.clone(),
                    },
                )
            })
            .collect()
    };
    s.add(T, "libmodbus-tcp", script(0, 0, each(&tcp, 1)));
    s.add(T, "libmodbus-rtu", script(MODBUS_RTU, 0, each(&rtu, 1)));
    s.add(
        T,
        "libmodbus-tcp-delay-10ms",
        script(MODBUS_DELAY, 10, each(&tcp, 0)),
    );
    s.add(
        T,
        "libmodbus-rtu-delay-10ms",
        script(MODBUS_RTU | MODBUS_DELAY, 10, each(&rtu, 0)),
    );
    s.add(
        T,
        "libmodbus-tcp-truncate",
        script(MODBUS_TRUNCATE, 0, each(&tcp, 1)),
    );
    for (what, c) in [
        ("transaction", 1u8),
        ("unit", 3),
        ("function", 4),
        ("registers", 5),
    ] {
        s.add(
            T,
            format!("libmodbus-tcp-corrupt-{what}"),
            script(c << MODBUS_CORRUPT_SHIFT, 0, each(&tcp, 1)),
        );
    }
    // Pipelined in one segment, then EOF; and as datagrams.
    s.add(
        T,
        "libmodbus-tcp-one-segment-then-eof",
        script(
            0,
            0,
            vec![
                (
                    0,
                    Step::Data {
                        conn: 0,
                        bytes: tcp.concat(),
                    },
                ),
                (1, Step::Eof(0)),
            ],
        ),
    );
    s.add(
        T,
        "libmodbus-rtu-one-segment-then-eof",
        script(
            MODBUS_RTU,
            0,
            vec![
                (
                    0,
                    Step::Data {
                        conn: 0,
                        bytes: rtu.concat(),
                    },
                ),
                (1, Step::Eof(0)),
            ],
        ),
    );
    s.add(
        T,
        "libmodbus-tcp-datagrams",
        script(
            0,
            0,
            tcp.iter().map(|a| (0, Step::Datagram(a.clone()))).collect(),
        ),
    );
    // Two connections interleaved; RTU broadcasts and another slave's requests.
    let mut two = Vec::new();
    for (i, a) in tcp.iter().enumerate() {
        two.push((
            0,
            Step::Data {
                conn: i % 2,
                bytes: a.clone(),
            },
        ));
    }
    s.add(T, "libmodbus-tcp-two-connections", script(0, 0, two));
    let others = vec![
        modbus_rtu_adu(0, &[0x06, 0x00, 0x01, 0x00, 0x07]),
        modbus_rtu_adu(0, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        modbus_rtu_adu(247, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        vec![0x55, 0xAA, 0x03],
        modbus_rtu_adu(17, &[0x03, 0x00, 0x01, 0x00, 0x01]),
    ];
    s.add(
        T,
        "rtu-broadcast-noise",
        script(MODBUS_RTU, 0, each(&others, 1)),
    );
    // pymodbus's request frames.
    for path in files(&frames.join("modbus")) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !name.ends_with("_request") {
            continue;
        }
        let frame = frames_file(&path).remove(0);
        let flags = if name.contains("__rtu_") {
            MODBUS_RTU
        } else {
            0
        };
        let half = frame.len() / 2;
        s.add(
            T,
            name,
            script(
                flags,
                0,
                vec![
                    (
                        0,
                        Step::Data {
                            conn: 0,
                            bytes: frame[..half].to_vec(),
                        },
                    ),
                    (
                        1,
                        Step::Data {
                            conn: 0,
                            bytes: frame[half..].to_vec(),
                        },
                    ),
                    (1, Step::Datagram(frame.clone())),
                ],
            ),
        );
    }
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*: run by hand after changing the frames"]
fn regenerate_seed_corpus() {
    let seeds = all_seeds();
    for (target, _) in targets::TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).unwrap();
        for old in files(&dir) {
            if old
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                fs::remove_file(old).unwrap();
            }
        }
        let list = seeds.0.get(target).map(Vec::as_slice).unwrap_or_default();
        assert!(!list.is_empty(), "no seeds for {target}");
        for (name, bytes) in list {
            fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}

#[test]
fn committed_seeds_are_what_the_frames_give() {
    // The generator is deterministic: the committed seed files are exactly its output.
    let seeds = all_seeds();
    for (target, _) in targets::TARGETS {
        let list = seeds.0.get(target).map(Vec::as_slice).unwrap_or_default();
        let committed: Vec<PathBuf> = files(&corpus_dir(target))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("seed-")
            })
            .collect();
        assert_eq!(committed.len(), list.len(), "{target}: seed count");
        for (name, bytes) in list {
            assert_eq!(
                &corpus_file(target, &format!("seed-{name}")),
                bytes,
                "{target}/{name}"
            );
        }
    }
}

#[test]
fn engine_seeds_reach_the_states_they_are_for() {
    // The session handle and O->T id in the scripts are the fixture's: the requests
    // behind them are served, not refused as another session's. (replies on each
    // connection, successful replies, datagrams answered)
    use targets::{enip_server_summary, modbus_server_summary, EngineSummary};
    let summary = |target: &str, name: &str| {
        let bytes = corpus_file(target, &format!("seed-{name}"));
        let s = match target {
            "enip_server" => enip_server_summary(&bytes),
            _ => modbus_server_summary(&bytes),
        };
        let EngineSummary {
            replies,
            served,
            datagram_replies,
        } = s.unwrap();
        (replies, served, datagram_replies)
    };
    let e = |name| summary("enip_server", name);
    let m = |name| summary("modbus_server", name);
    // Prefix (2) + ListIdentity + Unconnected Send + 16 connected requests (15 tag
    // services, one retransmission) + Forward Close; UnRegisterSession unanswered.
    // Served: the Unconnected Send, the Forward Open and Close, and 15 of the 17
    // connected requests (the unknown tag and the bad element fail).
    assert_eq!(e("pycomm3-connected"), (vec![22, 0], 18, 0));
    assert_eq!(e("pycomm3-connected-delay-20ms"), (vec![22, 0], 18, 0));
    // 15 tag services and the Forward Open after the RegisterSession; a non-routing
    // server refuses the Forward Open's route.
    assert_eq!(e("pylogix-unconnected"), (vec![17, 0], 14, 0));
    assert_eq!(
        e("pylogix-unconnected-one-segment-then-eof"),
        (vec![17, 0], 14, 0)
    );
    assert_eq!(e("pylogix-unconnected-simple"), (vec![17, 0], 13, 0));
    // The capture's own session handle is refused; moved into ours, it is served.
    assert_eq!(e("controllogix-capture").1, 0);
    assert!(e("controllogix-capture-in-our-session").1 > 0);
    // Connection 1 may not use connection 0's session.
    assert_eq!(e("two-connections"), (vec![2, 3], 1, 1));
    // The second read comes after the idle connection closed.
    assert_eq!(e("inactivity-timeout"), (vec![2, 0], 1, 0));

    // libmodbus's 20 requests: 14 served, 6 exceptions; over RTU the unknown function
    // cannot be framed, so it gets no reply.
    assert_eq!(m("libmodbus-tcp"), (vec![20, 0], 14, 0));
    assert_eq!(m("libmodbus-rtu"), (vec![19, 0], 14, 0));
    assert_eq!(m("libmodbus-tcp-delay-10ms"), (vec![20, 0], 14, 0));
    assert_eq!(m("libmodbus-tcp-two-connections"), (vec![10, 10], 14, 0));
    assert_eq!(m("libmodbus-tcp-datagrams"), (vec![0, 0], 14, 20));
    // Two broadcasts and noise unanswered; unit 247 and unit 17 answered.
    assert_eq!(m("rtu-broadcast-noise"), (vec![2, 0], 2, 0));
}
