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
    s
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
