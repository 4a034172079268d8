use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::cip::data::DataType;
use crate::cip::data::{Count, Text, Values, LOGIX_STRING_HANDLE};
use crate::cip::device::UNCONNECTED_REPLY_BUDGET;
use crate::cip::epath::Epath;
use crate::cip::logix::{
    GetInstanceAttributeListReply, ReadModifyWriteTagRequest, ReadTagFragmentedRequest,
    ReadTagReply, ReadTagRequest, SymbolInstance, SymbolValue, TemplateReadRequest,
    WriteTagFragmentedRequest, WriteTagRequest,
};
use crate::cip::logix::{TemplateAttributes, TemplateDefinition};
use crate::cip::objects::identity_attribute;
use crate::wire::Reader;
use std::borrow::Cow;

fn ctx_at(now: Instant, budget: usize) -> RequestContext {
    RequestContext {
        now,
        connection: None,
        reply_budget: budget,
    }
}

fn ctx(budget: usize) -> RequestContext {
    ctx_at(Instant::now(), budget)
}

fn path(p: &str) -> Epath<'static> {
    p.parse().unwrap()
}

fn controller(specs: &[&str]) -> Controller {
    let mut c = Controller::new(ControllerConfig::default());
    for s in specs {
        c.tags_mut().add_str(s).unwrap();
    }
    c
}

/// Execute and check that the reply encodes and decodes back to itself.
fn exec_ctx(c: &mut Controller, ctx: &RequestContext, req: &MessageRouterRequest<'_>) -> Reply {
    let reply = c.execute(ctx, req);
    let bytes = reply.to_vec();
    assert_eq!(MessageRouterReply::decode(&bytes).unwrap(), reply);
    assert!(
        bytes.len() <= ctx.reply_budget.max(6),
        "reply of {} bytes exceeds budget {}",
        bytes.len(),
        ctx.reply_budget
    );
    reply
}

fn exec(c: &mut Controller, service: u8, p: &str, data: Vec<u8>) -> Reply {
    let req = MessageRouterRequest::new(service, path(p), data);
    exec_ctx(c, &ctx(UNCONNECTED_REPLY_BUDGET), &req)
}

fn read_req(elements: u16) -> Vec<u8> {
    ReadTagRequest { elements }.to_vec()
}

fn write_req(v: &Values) -> Vec<u8> {
    WriteTagRequest {
        tag_type: v.tag_type(),
        elements: v.len() as u16,
        data: Cow::Owned(v.to_vec()),
    }
    .to_vec()
}

fn read_values(c: &mut Controller, p: &str, n: u16) -> Values {
    let r = exec(c, service::READ_TAG, p, read_req(n));
    assert_eq!(r.general_status, GeneralStatus::SUCCESS, "{p}: {r:?}");
    assert_eq!(r.service, service::READ_TAG | 0x80);
    let body = ReadTagReply::decode(&r.data).unwrap();
    let mut rd = Reader::new(&body.data);
    let v = Values::decode(body.tag_type, Count::Elements(usize::from(n)), &mut rd).unwrap();
    assert!(rd.is_empty());
    v
}

fn assert_status(r: &Reply, status: GeneralStatus, ext: &[u16]) {
    assert_eq!(
        (r.general_status, r.additional_status.as_slice()),
        (status, ext),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Tag specs

#[test]
fn tag_specs_parse() {
    let s: TagSpec = "SCADA=INT[1000]".parse().unwrap();
    assert_eq!(
        (
            s.name.as_str(),
            s.type_name.as_str(),
            s.dimensions.as_slice()
        ),
        ("SCADA", "INT", &[1000][..])
    );
    assert_eq!((s.program, s.address), (None, None));
    let s: TagSpec = "Temp@0x22/1/3=real".parse().unwrap();
    assert_eq!(s.type_name, "REAL");
    assert_eq!(
        s.address,
        Some(CipAddress {
            class: 0x22,
            instance: 1,
            attribute: 3
        })
    );
    assert!(s.dimensions.is_empty());
    let s: TagSpec = "Program:Main.Grid=DINT[2,3]".parse().unwrap();
    assert_eq!(s.program.as_deref(), Some("Main"));
    assert_eq!(s.dimensions, vec![2, 3]);
    let s: TagSpec = " Tag@34/1/3 = real [ 4 ] ".parse().unwrap();
    assert_eq!(s.to_string(), "Tag@0x22/1/3=REAL[4]");
    let s: TagSpec = "Msg=MyUdt[4]".parse().unwrap();
    assert_eq!(s.type_name, "MyUdt");
    for text in [
        "Program:Main.Grid=DINT[2,3]",
        "Temp@0x22/1/3=REAL",
        "Msg=MyUdt[4]",
    ] {
        let s: TagSpec = text.parse().unwrap();
        assert_eq!(s.to_string(), text);
    }
    assert_eq!(
        "x@34/1/3=sint".parse::<TagSpec>().unwrap().to_string(),
        "x@0x22/1/3=SINT"
    );

    let err = |spec: &str| spec.parse::<TagSpec>().unwrap_err();
    assert!(matches!(err("SCADA"), TagError::MissingType { .. }));
    assert!(matches!(err("1abc=INT"), TagError::BadName { .. }));
    assert!(matches!(err("a b=INT"), TagError::BadName { .. }));
    assert!(matches!(err("=INT"), TagError::BadName { .. }));
    assert!(matches!(err("A=INT[0]"), TagError::BadDimensions { .. }));
    assert!(matches!(
        err("A=INT[1,2,3,4]"),
        TagError::BadDimensions { .. }
    ));
    assert!(matches!(err("A=INT[x]"), TagError::BadDimensions { .. }));
    assert!(matches!(err("A=INT[3"), TagError::BadDimensions { .. }));
    assert!(matches!(err("A@1/2=INT"), TagError::BadAddress { .. }));
    assert!(matches!(err("A@1/2/x=INT"), TagError::BadAddress { .. }));
    assert!(matches!(
        err("A@0x10000/1/1=INT"),
        TagError::BadAddress { .. }
    ));
    assert!(matches!(err("A="), TagError::UnknownType { .. }));

    let mut db = TagDatabase::new();
    assert!(matches!(
        db.add_str("A=FLOAT"),
        Err(TagError::UnknownType { .. })
    ));
    assert!(matches!(
        db.add_str("A=MyUdt"),
        Err(TagError::UnknownType { .. })
    ));
    db.add_str("A=DINT").unwrap();
    assert!(matches!(
        db.add_str("a=INT"),
        Err(TagError::Duplicate { .. })
    ));
    assert!(matches!(
        db.add_str("Huge=LREAL[100000000]"),
        Err(TagError::TooLarge { .. })
    ));
    // The same name in a program scope is another tag.
    db.add_str("Program:P.A=INT").unwrap();
    assert_eq!(db.tags().len(), 2);
    assert_eq!(db.programs().len(), 1);
    assert_eq!(db.find_full("Program:p.a"), Some(1));
    assert_eq!(db.find_full("A"), Some(0));
}

// ---------------------------------------------------------------------------------------
// Read Tag / Write Tag with real values

#[test]
fn every_type_written_then_read_back() {
    let mut c = controller(&[
        "B=BOOL[3]",
        "S=SINT[2]",
        "US=USINT[2]",
        "I=INT[2]",
        "UI=UINT[2]",
        "D=DINT[2]",
        "UD=UDINT[2]",
        "L=LINT[2]",
        "UL=ULINT[2]",
        "R=REAL[2]",
        "LR=LREAL[2]",
        "W=DWORD[2]",
        "SS=SSTRING[2]",
        "Str=STRING[2]",
    ]);
    let cases: Vec<(&str, Values)> = vec![
        ("B", Values::Bool(vec![true, false, true])),
        ("S", Values::Sint(vec![-128, 127])),
        ("US", Values::Usint(vec![0, 255])),
        ("I", Values::Int(vec![-32768, 12345])),
        ("UI", Values::Uint(vec![65535, 1])),
        ("D", Values::Dint(vec![i32::MIN, 7])),
        ("UD", Values::Udint(vec![u32::MAX, 9])),
        ("L", Values::Lint(vec![i64::MIN, -2])),
        ("UL", Values::Ulint(vec![u64::MAX, 3])),
        ("R", Values::Real(vec![1.5, -0.25])),
        ("LR", Values::Lreal(vec![std::f64::consts::PI, -1e300])),
        ("W", Values::Dword(vec![0xDEAD_BEEF, 0])),
        (
            "SS",
            Values::Sstring(vec![Text::from("hello"), Text::from("")]),
        ),
        (
            "Str",
            Values::LogixString(vec![Text::from("Logix"), Text::from(&*"x".repeat(82))]),
        ),
    ];
    for (name, v) in &cases {
        let r = exec(&mut c, service::WRITE_TAG, name, write_req(v));
        assert_status(&r, GeneralStatus::SUCCESS, &[]);
        assert!(r.data.is_empty());
        assert_eq!(&read_values(&mut c, name, v.len() as u16), v, "{name}");
    }
    // Single elements by index.
    assert_eq!(read_values(&mut c, "I[1]", 1), Values::Int(vec![12345]));
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "D[1]",
        write_req(&Values::Dint(vec![-99])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(
        read_values(&mut c, "D", 2),
        Values::Dint(vec![i32::MIN, -99])
    );
    // The Logix STRING is sent as the A0 02 CE 0F structure type.
    let r = exec(&mut c, service::READ_TAG, "Str", read_req(1));
    assert_eq!(&r.data[..4], &[0xA0, 0x02, 0xCE, 0x0F]);
    assert_eq!(r.data.len(), 4 + 88);
    // Names are case-insensitive, as in Logix.
    assert_eq!(read_values(&mut c, "ud", 1), Values::Udint(vec![u32::MAX]));
}

#[test]
fn read_write_errors_as_a_controllogix_answers() {
    let mut c = controller(&["SCADA=INT[10]", "Scalar=DINT"]);
    let rd = service::READ_TAG;
    let wr = service::WRITE_TAG;
    // Unknown tag: 0x04 with extended status 0x0000, as a 1756-L61 answers.
    assert_status(
        &exec(&mut c, rd, "Nope", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    // Unknown member of a non-structure.
    assert_status(
        &exec(&mut c, rd, "SCADA.x", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    // A path that does not decode (a symbolic segment cut short): 0x04.
    let bad = MessageRouterRequest::new(
        rd,
        Epath::from_vec(vec![0x91, 0x07, b'S', b'C']),
        read_req(1),
    );
    assert_status(
        &exec_ctx(&mut c, &ctx(500), &bad),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    // A port segment where a tag name belongs: 0x04.
    assert_status(
        &exec(&mut c, rd, r#"@{"port":1,"link":0}/2/1"#, read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    // An index beyond the array: 0x05 without extended status (1756-L61); an element
    // count beyond the tag: 0xFF / 0x2105.
    assert_status(
        &exec(&mut c, rd, "SCADA[10]", read_req(1)),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
    assert_status(
        &exec(&mut c, rd, "SCADA[5]", read_req(6)),
        GeneralStatus::GENERAL_ERROR,
        &[0x2105],
    );
    assert_status(
        &exec(&mut c, rd, "SCADA", read_req(0)),
        GeneralStatus::GENERAL_ERROR,
        &[0x2105],
    );
    assert_status(
        &exec(&mut c, rd, "SCADA[1,2]", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    // Not enough / too much request data.
    assert_status(
        &exec(&mut c, rd, "SCADA", vec![1]),
        GeneralStatus::NOT_ENOUGH_DATA,
        &[],
    );
    assert_status(
        &exec(&mut c, rd, "SCADA", vec![1, 0, 0]),
        GeneralStatus::TOO_MUCH_DATA,
        &[],
    );
    assert_status(
        &exec(
            &mut c,
            service::READ_TAG_FRAGMENTED,
            "SCADA",
            vec![1, 0, 0, 0],
        ),
        GeneralStatus::NOT_ENOUGH_DATA,
        &[],
    );
    // SSTRING values that do not decode into the elements announced.
    c.tags_mut().add_str("SS=SSTRING[2]").unwrap();
    assert_status(
        &exec(&mut c, wr, "SS", vec![0xDA, 0, 2, 0, 1, b'a']),
        GeneralStatus::NOT_ENOUGH_DATA,
        &[],
    );
    // Type mismatch: DINT into INT.
    assert_status(
        &exec(&mut c, wr, "SCADA", write_req(&Values::Dint(vec![1]))),
        GeneralStatus::GENERAL_ERROR,
        &[0x2107],
    );
    // Write of 3 INTs with only 4 bytes of value: not enough data.
    assert_status(
        &exec(&mut c, wr, "SCADA", vec![0xC3, 0, 3, 0, 1, 0, 2, 0]),
        GeneralStatus::NOT_ENOUGH_DATA,
        &[],
    );
    // Write beyond the end: 0x2105, and nothing written.
    assert_status(
        &exec(&mut c, wr, "SCADA[9]", write_req(&Values::Int(vec![1, 2]))),
        GeneralStatus::GENERAL_ERROR,
        &[0x2105],
    );
    assert_eq!(read_values(&mut c, "SCADA[9]", 1), Values::Int(vec![0]));
    // A service tags do not have.
    assert_status(
        &exec(&mut c, service::GET_ATTRIBUTES_ALL, "SCADA", vec![]),
        GeneralStatus::SERVICE_NOT_SUPPORTED,
        &[],
    );
    assert_status(
        &exec(&mut c, 0x4B, "SCADA", vec![]),
        GeneralStatus::SERVICE_NOT_SUPPORTED,
        &[],
    );
    // Scalar: index 0 is accepted (cpppo clients send Tag[0]), 1 is not.
    assert_eq!(read_values(&mut c, "Scalar[0]", 1), Values::Dint(vec![0]));
    assert_status(
        &exec(&mut c, rd, "Scalar[1]", read_req(1)),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
}

// pycomm3's single Write Tag builds its message twice (`build_message` after
// `_msg_setup = False` in `_write_build_single_request`), so the connected data item
// carries the sequence count and the whole request a second time after the complete
// request. A ControlLogix writes the tag and answers success, and so must we.
#[test]
fn pycomm3_write_tag_with_its_request_repeated_succeeds() {
    let mut c = controller(&["D=DINT[2]", "Msg=STRING"]);
    let once = MessageRouterRequest::new(
        service::WRITE_TAG,
        path("D"),
        write_req(&Values::Dint(vec![0x0102_0304])),
    )
    .to_vec();
    let sequence = [0x07, 0x00];
    let mut twice = once.clone();
    twice.extend_from_slice(&sequence);
    twice.extend_from_slice(&once);
    let req = MessageRouterRequest::decode(&twice).unwrap();
    let r = exec_ctx(&mut c, &ctx(500), &req);
    assert_eq!(r.to_vec(), [0xCD, 0x00, 0x00, 0x00]);
    assert_eq!(
        read_values(&mut c, "D", 2),
        Values::Dint(vec![0x0102_0304, 0])
    );
    // The same for a structure (whose value the codec cannot delimit by itself).
    let v = Values::LogixString(vec![Text::from("twice")]);
    let once = MessageRouterRequest::new(service::WRITE_TAG, path("Msg"), write_req(&v)).to_vec();
    let mut twice = once.clone();
    twice.extend_from_slice(&sequence);
    twice.extend_from_slice(&once);
    let r = exec_ctx(
        &mut c,
        &ctx(500),
        &MessageRouterRequest::decode(&twice).unwrap(),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "Msg", 1), v);
}

// cpppo's simulator accepts narrower types (its client sends INT unless told
// otherwise); opt in with `coerce_writes`.
#[test]
fn cpppo_write_coercion_is_opt_in() {
    let mut c = controller(&["D=DINT[2]", "R=REAL", "U=UINT", "I=INT"]);
    let int = write_req(&Values::Int(vec![-5, 7]));
    assert_status(
        &exec(&mut c, service::WRITE_TAG, "D", int.clone()),
        GeneralStatus::GENERAL_ERROR,
        &[0x2107],
    );
    c.config_mut().coerce_writes = true;
    assert_status(
        &exec(&mut c, service::WRITE_TAG, "D", int),
        GeneralStatus::SUCCESS,
        &[],
    );
    assert_eq!(read_values(&mut c, "D", 2), Values::Dint(vec![-5, 7]));
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "R",
        write_req(&Values::Dint(vec![-300])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "R", 1), Values::Real(vec![-300.0]));
    // Signed into unsigned is not accepted, nor a value that does not fit.
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "U",
        write_req(&Values::Sint(vec![1])),
    );
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2107]);
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "I",
        write_req(&Values::Uint(vec![40000])),
    );
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2107]);
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "I",
        write_req(&Values::Uint(vec![300])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "I", 1), Values::Int(vec![300]));
    // BOOL into an integer: 0xFF is true, 1.
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "D[1]",
        write_req(&Values::Bool(vec![true])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "D", 2), Values::Dint(vec![-5, 1]));
    assert!(tag_services::coerces(DataType::USINT, DataType::ULINT));
    assert!(!tag_services::coerces(DataType::REAL, DataType::DINT));
}

// ---------------------------------------------------------------------------------------
// Fragmented services

fn read_fragmented_all(
    c: &mut Controller,
    p: &str,
    elements: u16,
    budget: usize,
) -> (TagType, Vec<u8>, usize) {
    let mut offset = 0u32;
    let mut out = Vec::new();
    let mut replies = 0;
    loop {
        let req = MessageRouterRequest::new(
            service::READ_TAG_FRAGMENTED,
            path(p),
            ReadTagFragmentedRequest { elements, offset }.to_vec(),
        );
        let r = exec_ctx(c, &ctx(budget), &req);
        replies += 1;
        assert!(r.general_status.is_ok_or_partial(), "{r:?}");
        let body = ReadTagReply::decode(&r.data).unwrap();
        assert!(!body.data.is_empty(), "no progress");
        out.extend_from_slice(&body.data);
        offset += body.data.len() as u32;
        if r.general_status == GeneralStatus::SUCCESS {
            return (body.tag_type, out, replies);
        }
    }
}

#[test]
fn fragmented_reads_at_budget_boundaries() {
    let mut c = controller(&["D=DINT[200]"]);
    let v = Values::Dint((0..200).map(|i| i * 1000 - 7).collect());
    // Write it in fragments of 10 DINTs.
    let bytes = v.to_vec();
    for (k, chunk) in bytes.chunks(40).enumerate() {
        let w = WriteTagFragmentedRequest {
            tag_type: DataType::DINT.into(),
            elements: 200,
            offset: (k * 40) as u32,
            data: Cow::Borrowed(chunk),
        };
        let r = exec(&mut c, service::WRITE_TAG_FRAGMENTED, "D", w.to_vec());
        assert_status(&r, GeneralStatus::SUCCESS, &[]);
    }
    // Unconnected budget: 504 - 4 - 2 = 498 bytes, 124 whole DINTs per reply.
    let (t, all, n) = read_fragmented_all(&mut c, "D", 200, UNCONNECTED_REPLY_BUDGET);
    assert_eq!((t, n), (DataType::DINT.into(), 2));
    assert_eq!(all, bytes);
    let req = MessageRouterRequest::new(
        service::READ_TAG_FRAGMENTED,
        path("D"),
        ReadTagFragmentedRequest {
            elements: 200,
            offset: 0,
        }
        .to_vec(),
    );
    let r = exec_ctx(&mut c, &ctx(UNCONNECTED_REPLY_BUDGET), &req);
    assert_eq!(r.general_status, GeneralStatus::PARTIAL_TRANSFER);
    assert_eq!(r.data.len(), 2 + 124 * 4);
    // Exactly fitting: 4 header + 2 type + 8 data = 14 bytes.
    let two = |budget| {
        let req = MessageRouterRequest::new(
            service::READ_TAG_FRAGMENTED,
            path("D[3]"),
            ReadTagFragmentedRequest {
                elements: 2,
                offset: 0,
            }
            .to_vec(),
        );
        exec_ctx(&mut c_clone(&c), &ctx(budget), &req)
    };
    let r = two(14);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(&r.data[2..], &bytes[12..20]);
    // One byte short: only the first whole DINT, partial.
    let r = two(13);
    assert_status(&r, GeneralStatus::PARTIAL_TRANSFER, &[]);
    assert_eq!(&r.data[2..], &bytes[12..16]);
    // Every small budget still reassembles the same data.
    for budget in [10, 11, 17, 50, 101] {
        let (_, all, n) = read_fragmented_all(&mut c, "D[150]", 50, budget);
        assert_eq!(all, &bytes[600..800], "budget {budget}");
        assert_eq!(
            n,
            200usize.div_ceil((budget - 6) / 4 * 4),
            "budget {budget}"
        );
    }
    // Not one DINT fits beside the 6 header bytes: reply data too large, not a 0x06
    // that would make no progress.
    let req = MessageRouterRequest::new(
        service::READ_TAG_FRAGMENTED,
        path("D"),
        ReadTagFragmentedRequest {
            elements: 2,
            offset: 0,
        }
        .to_vec(),
    );
    let r = exec_ctx(&mut c, &ctx(9), &req);
    assert_status(&r, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]);
    let r = exec_ctx(&mut c, &ctx(10), &req);
    assert_status(&r, GeneralStatus::PARTIAL_TRANSFER, &[]);
    assert_eq!(r.data.len(), 6);
    // Plain Read Tag too big for the budget: what fits, status 0x06.
    let r = exec(&mut c, service::READ_TAG, "D", read_req(200));
    assert_status(&r, GeneralStatus::PARTIAL_TRANSFER, &[]);
    assert_eq!(r.data.len(), 2 + 124 * 4);
    // Offset beyond the data.
    let r = exec(
        &mut c,
        service::READ_TAG_FRAGMENTED,
        "D",
        ReadTagFragmentedRequest {
            elements: 2,
            offset: 9,
        }
        .to_vec(),
    );
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2105]);
    // A write fragment beyond the elements written: 0xFF / 0x2104.
    let r = exec(
        &mut c,
        service::WRITE_TAG_FRAGMENTED,
        "D",
        vec![0xC4, 0, 2, 0, 8, 0, 0, 0, 1, 2, 3, 4],
    );
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2104]);
}

fn c_clone(c: &Controller) -> Controller {
    Controller::with_tags(c.config().clone(), c.tags().clone())
}

#[test]
fn structures_are_read_in_fragments_of_any_size() {
    let mut c = controller(&["Msgs=STRING[10]"]);
    let texts: Vec<Text> = (0..10)
        .map(|i| Text::from(&*format!("message {i}")))
        .collect();
    let v = Values::LogixString(texts);
    let r = exec(&mut c, service::WRITE_TAG, "Msgs", write_req(&v));
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let (t, all, n) = read_fragmented_all(&mut c, "Msgs", 10, 100);
    assert_eq!(t, TagType::Structure(LOGIX_STRING_HANDLE));
    assert_eq!(all, v.to_vec());
    // 880 bytes in replies of 100 - 8 = 92 bytes.
    assert_eq!(n, 880usize.div_ceil(92));
}

// ---------------------------------------------------------------------------------------
// Structures, members, programs, Symbol instance addressing

fn udt_controller() -> Controller {
    let mut c = Controller::new(ControllerConfig::default());
    let db = c.tags_mut();
    db.define_structure(
        "Motor",
        &[
            ("Run", "BOOL", 0),
            ("Fault", "BOOL", 0),
            ("Speed", "REAL", 0),
            ("Hist", "DINT", 4),
            ("Name", "STRING", 0),
        ],
    )
    .unwrap();
    db.add_str("M=Motor[3]").unwrap();
    db.add_str("Program:Main.Count=DINT").unwrap();
    db.add_str("Program:Main.M=Motor").unwrap();
    c
}

#[test]
fn structure_layout_members_and_bits() {
    let mut c = udt_controller();
    let s = c.tags().structure_named("motor").unwrap().clone();
    // Hidden SINT host for the BOOLs at 0, REAL at 4, DINT[4] at 8, STRING at 24.
    let layout: Vec<(&str, u32, u16, Option<u8>)> = s
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.offset, m.array, m.bit))
        .collect();
    assert_eq!(
        layout,
        vec![
            ("ZZZZZZZZZZMotor0", 0, 0, None),
            ("Run", 0, 0, Some(0)),
            ("Fault", 0, 0, Some(1)),
            ("Speed", 4, 0, None),
            ("Hist", 8, 4, None),
            ("Name", 24, 0, None),
        ]
    );
    assert_eq!(s.size, 24 + 88);
    assert!(s.members[0].is_hidden());

    let wr = |c: &mut Controller, p: &str, v: Values| {
        let r = exec(c, service::WRITE_TAG, p, write_req(&v));
        assert_status(&r, GeneralStatus::SUCCESS, &[]);
    };
    wr(&mut c, "M[1].Speed", Values::Real(vec![1450.5]));
    wr(&mut c, "M[1].Hist[2]", Values::Dint(vec![-5, 6]));
    wr(&mut c, "M[2].Fault", Values::Bool(vec![true]));
    wr(
        &mut c,
        "M[2].Name",
        Values::LogixString(vec![Text::from("pump")]),
    );
    assert_eq!(
        read_values(&mut c, "M[1].Speed", 1),
        Values::Real(vec![1450.5])
    );
    assert_eq!(
        read_values(&mut c, "M[1].Hist", 4),
        Values::Dint(vec![0, 0, -5, 6])
    );
    assert_eq!(
        read_values(&mut c, "M[2].Fault", 1),
        Values::Bool(vec![true])
    );
    assert_eq!(
        read_values(&mut c, "M[2].Run", 1),
        Values::Bool(vec![false])
    );
    assert_eq!(
        read_values(&mut c, "M[2].Name", 1),
        Values::LogixString(vec![Text::from("pump")])
    );
    // The BOOL landed in bit 1 of the hidden host of element 2.
    let size = s.size as usize;
    assert_eq!(c.tags().tags()[0].data()[2 * size], 0b10);
    // The whole structure element, with its handle.
    let r = exec(&mut c, service::READ_TAG, "M[1]", read_req(1));
    let body = ReadTagReply::decode(&r.data).unwrap();
    assert_eq!(body.tag_type, TagType::Structure(s.handle));
    assert_eq!(body.data.len(), size);
    assert_eq!(&body.data[4..8], &1450.5f32.to_le_bytes());
    // Writing a whole structure needs its handle.
    let w = WriteTagRequest {
        tag_type: TagType::Structure(s.handle),
        elements: 1,
        data: Cow::Owned(body.data.to_vec()),
    };
    let r = exec(&mut c, service::WRITE_TAG, "M[0]", w.to_vec());
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(
        read_values(&mut c, "M[0].Speed", 1),
        Values::Real(vec![1450.5])
    );
    let w = WriteTagRequest {
        tag_type: TagType::Structure(s.handle ^ 1),
        ..w
    };
    assert_status(
        &exec(&mut c, service::WRITE_TAG, "M[0]", w.to_vec()),
        GeneralStatus::GENERAL_ERROR,
        &[0x2107],
    );
    // Unknown member, member of a BOOL, index beyond a member array.
    assert_status(
        &exec(&mut c, service::READ_TAG, "M[0].Nope", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    assert_status(
        &exec(&mut c, service::READ_TAG, "M[0].Run.x", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    assert_status(
        &exec(&mut c, service::READ_TAG, "M[0].Hist[4]", read_req(1)),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
    // Members of the built-in STRING too.
    assert_eq!(
        read_values(&mut c, "M[2].Name.LEN", 1),
        Values::Dint(vec![4])
    );
}

#[test]
fn nested_structures_and_multi_dimensional_arrays() {
    let mut c = Controller::new(ControllerConfig::default());
    let db = c.tags_mut();
    let inner = db
        .define_structure(
            "Inner",
            &[
                ("Flag", "BOOL", 0),
                ("Big", "LINT", 0),
                ("Small", "SINT", 3),
            ],
        )
        .unwrap();
    let outer = db
        .define_structure(
            "Outer",
            &[
                ("One", "Inner", 0),
                ("Many", "Inner", 2),
                ("Count", "UINT", 0),
            ],
        )
        .unwrap();
    db.add_str("O=Outer[2]").unwrap();
    db.add_str("Grid=INT[2,3,4]").unwrap();
    // Inner: host SINT at 0, LINT aligned to 8, SINT[3] at 16, size 20 (a multiple of 4).
    let i = c.tags().structure(inner).unwrap().clone();
    assert_eq!(i.size, 20);
    assert_eq!(i.member("big").unwrap().offset, 8);
    let o = c.tags().structure(outer).unwrap().clone();
    let offsets: Vec<u32> = o.members.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, vec![0, 20, 60]);
    assert_eq!(o.size, 64);
    // Template type words: a structure member, an array of structures.
    let bytes = o.template_bytes();
    let def = TemplateDefinition::decode(&bytes, 3).unwrap();
    let codes: Vec<(u16, u16)> = def.members.iter().map(|m| (m.info, m.type_code)).collect();
    assert_eq!(
        codes,
        vec![(0, 0x8000 | inner), (2, 0xA000 | inner), (0, 0xC7)]
    );

    let wr = |c: &mut Controller, p: &str, v: Values| {
        let r = exec(c, service::WRITE_TAG, p, write_req(&v));
        assert_status(&r, GeneralStatus::SUCCESS, &[]);
    };
    wr(
        &mut c,
        "O[1].Many[1].Big",
        Values::Lint(vec![-1_234_567_890_123]),
    );
    wr(&mut c, "O[1].Many[1].Small[1]", Values::Sint(vec![-7, 8]));
    wr(&mut c, "O[1].Many[0].Flag", Values::Bool(vec![true]));
    wr(&mut c, "O[1].Count", Values::Uint(vec![65000]));
    assert_eq!(
        read_values(&mut c, "O[1].Many[1].Big", 1),
        Values::Lint(vec![-1_234_567_890_123])
    );
    assert_eq!(
        read_values(&mut c, "O[1].Many[1].Small", 3),
        Values::Sint(vec![0, -7, 8])
    );
    assert_eq!(
        read_values(&mut c, "O[1].Many[0].Flag", 1),
        Values::Bool(vec![true])
    );
    assert_eq!(
        read_values(&mut c, "O[1].Many[1].Flag", 1),
        Values::Bool(vec![false])
    );
    assert_eq!(
        read_values(&mut c, "O[1].Count", 1),
        Values::Uint(vec![65000])
    );
    let data = c.tags().tags()[0].data().to_vec();
    assert_eq!(
        data[64 + 20 + 20 + 8..64 + 20 + 20 + 16],
        (-1_234_567_890_123i64).to_le_bytes()
    );
    assert_eq!(data[64 + 20], 1);
    assert_eq!(data[64 + 60..64 + 62], 65000u16.to_le_bytes());
    // Two elements of Many, as structures.
    let r = exec(&mut c, service::READ_TAG, "O[1].Many", read_req(2));
    let body = ReadTagReply::decode(&r.data).unwrap();
    assert_eq!(body.tag_type, TagType::Structure(i.handle));
    assert_eq!(body.data.as_ref(), &data[64 + 20..64 + 60]);

    // Grid[1,2,3] is element 1*12 + 2*4 + 3 = 23; Grid[1] starts the second plane.
    wr(&mut c, "Grid[1,2,3]", Values::Int(vec![23]));
    wr(&mut c, "Grid[0,0,1]", Values::Int(vec![1, 2]));
    let all = read_values(&mut c, "Grid", 24);
    let Values::Int(all) = all else { panic!() };
    assert_eq!((all[1], all[2], all[23]), (1, 2, 23));
    assert_eq!(all.iter().filter(|v| **v != 0).count(), 3);
    let Values::Int(plane) = read_values(&mut c, "Grid[1]", 12) else {
        panic!()
    };
    assert_eq!(plane[11], 23);
    assert_status(
        &exec(&mut c, service::READ_TAG, "Grid[0,3,0]", read_req(1)),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
    assert_status(
        &exec(&mut c, service::READ_TAG, "Grid[1]", read_req(13)),
        GeneralStatus::GENERAL_ERROR,
        &[0x2105],
    );
    assert_status(
        &exec(&mut c, service::READ_TAG, "Grid[0,0,0,0]", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
}

#[test]
fn program_scope_and_symbol_instance_addressing() {
    let mut c = udt_controller();
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "Program:Main.Count",
        write_req(&Values::Dint(vec![42])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(
        read_values(&mut c, "Program:Main.Count", 1),
        Values::Dint(vec![42])
    );
    // Not visible at controller scope, nor in another program.
    assert_status(
        &exec(&mut c, service::READ_TAG, "Count", read_req(1)),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    assert_status(
        &exec(
            &mut c,
            service::READ_TAG,
            "Program:Other.Count",
            read_req(1),
        ),
        GeneralStatus::PATH_SEGMENT_ERROR,
        &[0],
    );
    // By Symbol instance id (pycomm3 on firmware 21+): class 0x6B, instance, elements
    // and members after it.
    let m = c.tags().tags()[0].instance_id;
    exec(
        &mut c,
        service::WRITE_TAG,
        "M[2].Hist[3]",
        write_req(&Values::Dint(vec![77])),
    );
    let bytes = [
        0x20, 0x6B, 0x25, 0x00, m as u8, 0x00, 0x28, 0x02, 0x91, 0x04, b'H', b'i', b's', b't',
        0x28, 0x03,
    ];
    let req = MessageRouterRequest::new(
        service::READ_TAG,
        Epath::from_vec(bytes.to_vec()),
        read_req(1),
    );
    let r = exec_ctx(&mut c, &ctx(500), &req);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(&r.data[..], &[0xC4, 0, 77, 0, 0, 0]);
    assert_status(
        &exec(&mut c, service::READ_TAG, "@0x6B/999", read_req(1)),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
}

#[test]
fn cpppo_numeric_addresses() {
    let mut c = controller(&["Temp@0x22/1/3=REAL[4]"]);
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "@0x22/1/3/2",
        write_req(&Values::Real(vec![21.5])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "Temp[2]", 1), Values::Real(vec![21.5]));
    assert_eq!(
        read_values(&mut c, "@0x22/1/3", 4),
        Values::Real(vec![0.0, 0.0, 21.5, 0.0])
    );
    assert_status(
        &exec(&mut c, service::READ_TAG, "@0x22/1/4", read_req(1)),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
}

// ---------------------------------------------------------------------------------------
// Read-Modify-Write

#[test]
fn read_modify_write_sets_and_clears_bits() {
    let mut c = controller(&["D=DINT[2]", "R=REAL"]);
    exec(
        &mut c,
        service::WRITE_TAG,
        "D[1]",
        write_req(&Values::Dint(vec![0x0F0F])),
    );
    let rmw = |or: u32, and: u32| {
        ReadModifyWriteTagRequest {
            or_mask: Cow::Owned(or.to_le_bytes().to_vec()),
            and_mask: Cow::Owned(and.to_le_bytes().to_vec()),
        }
        .to_vec()
    };
    let r = exec(
        &mut c,
        service::READ_MODIFY_WRITE_TAG,
        "D[1]",
        rmw(0x1_0000, !0x0001),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "D", 2), Values::Dint(vec![0, 0x1_0F0E]));
    // pycomm3: mask size 4, OR mask 4 bytes, AND mask 8 bytes.
    let mut data = vec![4, 0];
    data.extend_from_slice(&0x20u32.to_le_bytes());
    data.extend_from_slice(&(!0x100u64).to_le_bytes());
    let r = exec(&mut c, service::READ_MODIFY_WRITE_TAG, "D[1]", data);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(read_values(&mut c, "D[1]", 1), Values::Dint(vec![0x1_0E2E]));
    // Mask size other than the element's, or a REAL: type mismatch.
    let r = exec(
        &mut c,
        service::READ_MODIFY_WRITE_TAG,
        "D",
        vec![2, 0, 1, 0, 0xFF, 0xFF],
    );
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2107]);
    let r = exec(&mut c, service::READ_MODIFY_WRITE_TAG, "R", rmw(1, !0));
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2107]);
    let r = exec(
        &mut c,
        service::READ_MODIFY_WRITE_TAG,
        "D",
        vec![4, 0, 1, 0],
    );
    assert_status(&r, GeneralStatus::NOT_ENOUGH_DATA, &[]);
}

// ---------------------------------------------------------------------------------------
// Multiple Service Packet

fn msp(requests: Vec<MessageRouterRequest<'static>>) -> MessageRouterRequest<'static> {
    MessageRouterRequest::new(
        service::MULTIPLE_SERVICE_PACKET,
        path("@2/1"),
        MultipleServiceRequest { requests }.to_vec(),
    )
}

#[test]
fn multiple_service_packet() {
    let mut c = controller(&["A=DINT[4]", "B=INT"]);
    let req = msp(vec![
        MessageRouterRequest::new(
            service::WRITE_TAG,
            path("A[1]"),
            write_req(&Values::Dint(vec![11, 12])),
        ),
        MessageRouterRequest::new(service::READ_TAG, path("A"), read_req(4)),
        MessageRouterRequest::new(
            service::WRITE_TAG,
            path("B"),
            write_req(&Values::Int(vec![-3])),
        ),
        MessageRouterRequest::new(service::READ_TAG, path("B"), read_req(1)),
    ]);
    let r = exec_ctx(&mut c, &ctx(UNCONNECTED_REPLY_BUDGET), &req);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(r.service, 0x8A);
    let body = MultipleServiceReply::decode(&r.data).unwrap();
    assert_eq!(body.replies.len(), 4);
    assert!(body
        .replies
        .iter()
        .all(|x| x.general_status == GeneralStatus::SUCCESS));
    assert_eq!(body.replies[0].service, 0xCD);
    let a = ReadTagReply::decode(&body.replies[1].data).unwrap();
    assert_eq!(a.data.as_ref(), Values::Dint(vec![0, 11, 12, 0]).to_vec());
    assert_eq!(&body.replies[3].data[..], &[0xC3, 0, 0xFD, 0xFF]);

    // One failing embedded service: 0x1E, each reply carries its own status.
    let req = msp(vec![
        MessageRouterRequest::new(service::READ_TAG, path("A[3]"), read_req(1)),
        MessageRouterRequest::new(service::READ_TAG, path("Missing"), read_req(1)),
        MessageRouterRequest::new(
            service::WRITE_TAG,
            path("B"),
            write_req(&Values::Dint(vec![1])),
        ),
    ]);
    let r = exec_ctx(&mut c, &ctx(UNCONNECTED_REPLY_BUDGET), &req);
    assert_status(&r, GeneralStatus::EMBEDDED_SERVICE_ERROR, &[]);
    let body = MultipleServiceReply::decode(&r.data).unwrap();
    let st: Vec<(u8, Vec<u16>)> = body
        .replies
        .iter()
        .map(|x| (x.general_status.0, x.additional_status.clone()))
        .collect();
    assert_eq!(
        st,
        vec![(0x00, vec![]), (0x04, vec![0]), (0xFF, vec![0x2107])]
    );

    // Embedded fragmented reads share the budget: the second gets what is left.
    let req = msp(vec![
        MessageRouterRequest::new(
            service::READ_TAG_FRAGMENTED,
            path("A"),
            ReadTagFragmentedRequest {
                elements: 4,
                offset: 0,
            }
            .to_vec(),
        ),
        MessageRouterRequest::new(
            service::READ_TAG_FRAGMENTED,
            path("A"),
            ReadTagFragmentedRequest {
                elements: 4,
                offset: 0,
            }
            .to_vec(),
        ),
    ]);
    // 4 + 2 + 4 = 10 for the MSP, 4 + 2 + 16 = 22 for the first; 20 left: 3 DINTs.
    let r = exec_ctx(&mut c, &ctx(52), &req);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let body = MultipleServiceReply::decode(&r.data).unwrap();
    assert_eq!(body.replies[0].general_status, GeneralStatus::SUCCESS);
    assert_eq!(
        body.replies[1].general_status,
        GeneralStatus::PARTIAL_TRANSFER
    );
    assert_eq!(body.replies[1].data.len(), 2 + 12);

    // Not to the Message Router instance 1, malformed, or nested.
    let mut bad = msp(vec![]);
    bad.path = path("@2/2");
    assert_status(
        &exec_ctx(&mut c, &ctx(500), &bad),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
    let bad = MessageRouterRequest::new(
        service::MULTIPLE_SERVICE_PACKET,
        path("@2/1"),
        vec![2, 0, 6, 0],
    );
    assert_status(
        &exec_ctx(&mut c, &ctx(500), &bad),
        GeneralStatus::NOT_ENOUGH_DATA,
        &[],
    );
    let nested = msp(vec![msp(vec![MessageRouterRequest::new(
        service::READ_TAG,
        path("B"),
        read_req(1),
    )])]);
    let r = exec_ctx(&mut c, &ctx(500), &nested);
    assert_status(&r, GeneralStatus::EMBEDDED_SERVICE_ERROR, &[]);
    // Embedded errors that together exceed the budget: reply data too large.
    let many = msp((0..20)
        .map(|_| MessageRouterRequest::new(service::READ_TAG, path("Missing"), read_req(1)))
        .collect());
    let r = exec_ctx(&mut c, &ctx(100), &many);
    assert_status(&r, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]);
    let r = exec_ctx(&mut c, &ctx(4 + 2 + 20 * 2 + 20 * 6), &many);
    assert_status(&r, GeneralStatus::EMBEDDED_SERVICE_ERROR, &[]);
    // An MSP to the Message Router with another service.
    assert_status(
        &exec(&mut c, service::GET_ATTRIBUTES_ALL, "@2/1", vec![]),
        GeneralStatus::SERVICE_NOT_SUPPORTED,
        &[],
    );
}

// ---------------------------------------------------------------------------------------
// Identity, TCP/IP, Ethernet Link, Program Name, Wall Clock

// The 1756-L61 Get Attributes All reply from cpppo's capture (gaa_011_reply).
const L61_IDENTITY: [u8; 35] = [
    0x01, 0x00, 0x0e, 0x00, 0x36, 0x00, 0x14, 0x0b, 0x60, 0x31, 0x1a, 0x06, 0x6c, 0x00, 0x14, 0x31,
    0x37, 0x35, 0x36, 0x2d, 0x4c, 0x36, 0x31, 0x2f, 0x42, 0x20, 0x4c, 0x4f, 0x47, 0x49, 0x58, 0x35,
    0x35, 0x36, 0x31,
];

#[test]
fn identity_object() {
    let mut c = controller(&[]);
    let r = exec(&mut c, service::GET_ATTRIBUTES_ALL, "@1/1", vec![]);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(r.data.as_ref(), &L61_IDENTITY);
    assert_eq!(c.identity().product_name, "1756-L61/B LOGIX5561");
    // ListIdentity carries the state, as a 1769-L24ER does (3, operational).
    assert_eq!(c.identity().state, Some(3));
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@1/1/8", vec![]);
    assert_eq!(r.data.as_ref(), &[3]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@1/1/7", vec![]);
    assert_eq!(&r.data[..], &L61_IDENTITY[14..]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@1/1/4", vec![]);
    assert_eq!(&r.data[..], &[20, 11]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@1/1/99", vec![]);
    assert_status(&r, GeneralStatus::ATTRIBUTE_NOT_SUPPORTED, &[]);
    // pycomm3's generic_message appends its (empty) route path to direct requests:
    // the data is ignored, as real devices do.
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@1/1/1", vec![0, 0]);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(r.data.as_ref(), &[1, 0]);
    let r = exec(&mut c, service::GET_ATTRIBUTES_ALL, "@1/1", vec![0, 0]);
    assert_eq!(r.data.as_ref(), &L61_IDENTITY);
    let list = GetAttributeListRequest {
        attributes: vec![
            identity_attribute::SERIAL_NUMBER,
            99,
            identity_attribute::VENDOR_ID,
        ],
    };
    let r = exec(&mut c, service::GET_ATTRIBUTE_LIST, "@1/1", list.to_vec());
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let len = |id: u16, _: &[u8]| match id {
        1 => Some(2),
        6 => Some(4),
        _ => None,
    };
    let body = GetAttributeListReply::decode(&r.data, &len).unwrap();
    assert_eq!(
        body.get(6).unwrap().value.as_ref(),
        &0x006C_061Au32.to_le_bytes()
    );
    assert_eq!(body.get(99).unwrap().status, 0x14);
    assert_eq!(body.get(1).unwrap().value.as_ref(), &[1, 0]);
    assert_eq!(
        body.attributes.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![6, 99, 1]
    );
    assert_status(
        &exec(&mut c, service::GET_ATTRIBUTES_ALL, "@1/2", vec![]),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
    assert_status(
        &exec(&mut c, service::RESET, "@1/1", vec![]),
        GeneralStatus::SERVICE_NOT_SUPPORTED,
        &[],
    );
    assert_status(
        &exec(&mut c, service::GET_ATTRIBUTES_ALL, "@0x77/1", vec![]),
        GeneralStatus::PATH_DESTINATION_UNKNOWN,
        &[],
    );
}

#[test]
fn network_objects_program_name_and_configuration() {
    let config: ControllerConfig = serde_json::from_str(
        r#"{"identity": {"product_name": "Sim", "serial_number": 7},
            "tcpip": {"ip_address": [192, 168, 1, 10], "host_name": "plc", "domain_name": "lan"},
            "ethernet_link": {"physical_address": [1, 2, 3, 4, 5, 6]},
            "program_name": "Line3"}"#,
    )
    .unwrap();
    assert_eq!(config.identity.vendor_id, 1);
    let mut c = Controller::new(config);
    assert_eq!(c.identity().serial_number, 7);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0xF5/1/5", vec![]);
    let mut want = vec![];
    want.extend_from_slice(&0xC0A8_010Au32.to_le_bytes());
    want.extend_from_slice(&0xFF00_0000u32.to_le_bytes());
    want.extend_from_slice(&[0; 12]);
    want.extend_from_slice(&[3, 0, b'l', b'a', b'n', 0]);
    assert_eq!(r.data.as_ref(), want);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0xF5/1/6", vec![]);
    assert_eq!(r.data.as_ref(), &[3, 0, b'p', b'l', b'c', 0]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0xF5/1/4", vec![]);
    assert_eq!(r.data.as_ref(), &[2, 0, 0x20, 0xF6, 0x24, 0x01]);
    let r = exec(&mut c, service::GET_ATTRIBUTES_ALL, "@0xF5/1", vec![]);
    assert_eq!(r.data.len(), 12 + 6 + want.len() + 6);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0xF6/1/3", vec![]);
    assert_eq!(r.data.as_ref(), &[1, 2, 3, 4, 5, 6]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0xF6/1/1", vec![]);
    assert_eq!(r.data.as_ref(), &100u32.to_le_bytes());
    assert_status(
        &exec(
            &mut c,
            service::SET_ATTRIBUTE_SINGLE,
            "@0xF6/1/1",
            vec![0, 0, 0, 0],
        ),
        GeneralStatus::ATTRIBUTE_NOT_SETTABLE,
        &[],
    );
    // pycomm3 get_plc_name: Get Attributes All to 0x64/1, a UINT-counted string.
    let r = exec(&mut c, service::GET_ATTRIBUTES_ALL, "@0x64/1", vec![]);
    assert_eq!(r.data.as_ref(), &[5, 0, b'L', b'i', b'n', b'e', b'3']);
}

#[test]
fn wall_clock_is_an_offset_to_now() {
    let t0 = Instant::now();
    let mut c = controller(&[]);
    // pycomm3 set_plc_time: Set Attribute List, 1 attribute, #6, ULINT microseconds.
    let us: u64 = 1_700_000_000_000_000;
    let mut data = vec![1, 0, 6, 0];
    data.extend_from_slice(&us.to_le_bytes());
    let req = MessageRouterRequest::new(service::SET_ATTRIBUTE_LIST, path("@0x8B/1"), data);
    let r = exec_ctx(&mut c, &ctx_at(t0, 500), &req);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(r.data.as_ref(), &[1, 0, 6, 0, 0, 0]);
    // pycomm3 get_plc_time, 2.5 s later: Get Attribute List of attribute 0x0B.
    let req = MessageRouterRequest::new(
        service::GET_ATTRIBUTE_LIST,
        path("@0x8B/1"),
        vec![1, 0, 0x0B, 0],
    );
    let r = exec_ctx(&mut c, &ctx_at(t0 + Duration::from_millis(2500), 500), &req);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(&r.data[..6], &[1, 0, 0x0B, 0, 0, 0]);
    assert_eq!(
        u64::from_le_bytes(r.data[6..14].try_into().unwrap()),
        us + 2_500_000
    );
    let req = MessageRouterRequest::new(service::GET_ATTRIBUTE_SINGLE, path("@0x8B/1/6"), vec![]);
    let r = exec_ctx(&mut c, &ctx_at(t0 + Duration::from_secs(10), 500), &req);
    assert_eq!(r.data.as_ref(), &(us + 10_000_000).to_le_bytes());
    // Set Attribute Single, then an unknown attribute in a list.
    let req = MessageRouterRequest::new(
        service::SET_ATTRIBUTE_SINGLE,
        path("@0x8B/1/11"),
        5u64.to_le_bytes().to_vec(),
    );
    assert_status(
        &exec_ctx(&mut c, &ctx_at(t0, 500), &req),
        GeneralStatus::SUCCESS,
        &[],
    );
    assert_eq!(c.wall_clock(t0 + Duration::from_micros(3)), 8);
    let req = MessageRouterRequest::new(
        service::SET_ATTRIBUTE_LIST,
        path("@0x8B/1"),
        vec![1, 0, 2, 0, 9, 9],
    );
    let r = exec_ctx(&mut c, &ctx_at(t0, 500), &req);
    assert_status(&r, GeneralStatus::ATTRIBUTE_LIST_ERROR, &[]);
    assert_eq!(r.data.as_ref(), &[1, 0, 2, 0, 0x14, 0]);
    let req =
        MessageRouterRequest::new(service::SET_ATTRIBUTE_SINGLE, path("@0x8B/1/6"), vec![1, 2]);
    assert_status(
        &exec_ctx(&mut c, &ctx_at(t0, 500), &req),
        GeneralStatus::NOT_ENOUGH_DATA,
        &[],
    );
}

// ---------------------------------------------------------------------------------------
// Symbol object: tag list upload

const PYCOMM3_ATTRIBUTES: [u16; 7] = [1, 2, 3, 5, 6, 8, 10];

/// Upload a scope's symbol list as pycomm3 does: from instance 0, again from the last
/// instance + 1 while the status is 0x06.
fn upload(
    c: &mut Controller,
    program: Option<&str>,
    attrs: &[u16],
    budget: usize,
) -> (Vec<SymbolInstance<'static>>, usize) {
    let mut start = 0u32;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let mut segs = Vec::new();
        if let Some(p) = program {
            segs.push(Segment::symbolic(format!("Program:{p}")));
        }
        segs.push(Segment::Class(0x6B));
        segs.push(Segment::Instance(start));
        let req = MessageRouterRequest::new(
            service::GET_INSTANCE_ATTRIBUTE_LIST,
            Epath::from_segments(&segs).unwrap(),
            GetAttributeListRequest {
                attributes: attrs.to_vec(),
            }
            .to_vec(),
        );
        let r = exec_ctx(c, &ctx(budget), &req);
        pages += 1;
        assert!(r.general_status.is_ok_or_partial(), "{r:?}");
        let body = GetInstanceAttributeListReply::decode(&r.data, attrs).unwrap();
        assert!(!body.instances.is_empty());
        start = body.instances.last().unwrap().instance_id + 1;
        all.extend(body.instances.into_iter().map(SymbolInstance::into_owned));
        if r.general_status == GeneralStatus::SUCCESS {
            return (all, pages);
        }
    }
}

#[test]
fn symbol_list_pages_and_scopes() {
    let mut c = udt_controller();
    for i in 0..40 {
        c.tags_mut()
            .add_str(&format!("Tag_{i:02}=DINT[{}]", i + 1))
            .unwrap();
    }
    c.tags_mut().add_str("Grid=INT[2,3,4]").unwrap();
    let (all, pages) = upload(&mut c, None, &PYCOMM3_ATTRIBUTES, UNCONNECTED_REPLY_BUDGET);
    assert!(pages > 1, "{pages} page(s)");
    let names: Vec<&str> = all.iter().map(|s| s.name().unwrap()).collect();
    assert_eq!(names.len(), 1 + 1 + 40 + 1);
    assert_eq!(names[0], "M");
    assert!(names.contains(&"Program:Main"));
    assert!(!names.contains(&"Count"));
    assert!(all.windows(2).all(|w| w[0].instance_id < w[1].instance_id));
    // Symbol types: a structure with one dimension, a DINT array, a 3-D INT array.
    let m = &all[0];
    let t = m.symbol_type().unwrap();
    let motor = c.tags().structure_named("Motor").unwrap().template_instance;
    assert_eq!(
        (t.is_structure(), t.template_instance(), t.dimensions()),
        (true, Some(motor), 1)
    );
    assert_eq!(m.dimensions(), Some([3, 0, 0]));
    let grid = all.iter().find(|s| s.name() == Some("Grid")).unwrap();
    let t = grid.symbol_type().unwrap();
    assert_eq!((t.atomic_type(), t.dimensions()), (Some(0xC3), 3));
    assert_eq!(grid.dimensions(), Some([2, 3, 4]));
    let prog = all
        .iter()
        .find(|s| s.name() == Some("Program:Main"))
        .unwrap();
    assert!(prog.symbol_type().unwrap().is_system());
    assert!(m
        .values
        .contains(&SymbolValue::SoftwareControl(SOFTWARE_CONTROL_BASE_TAG)));
    assert!(m.values.contains(&SymbolValue::ExternalAccess(0)));
    // Every page size gives the same list.
    for budget in [60, 64, 100, 333] {
        let (again, pages) = upload(&mut c, None, &PYCOMM3_ATTRIBUTES, budget);
        assert_eq!(again, all, "budget {budget}");
        assert!(pages >= all.len() * 30 / budget, "budget {budget}: {pages}");
    }
    // Any attribute list, in the requested order.
    let (some, _) = upload(&mut c, None, &[8, 7, 1], UNCONNECTED_REPLY_BUDGET);
    assert_eq!(some[0].values[0], SymbolValue::Dimensions([3, 0, 0]));
    assert_eq!(some[1].name(), Some("Program:Main"));
    assert_eq!(some[0].values[1], SymbolValue::ByteCount(112));
    assert_eq!(some[0].values[2], SymbolValue::Name(Cow::Borrowed("M")));
    // Program scope.
    let (prog, _) = upload(
        &mut c,
        Some("Main"),
        &PYCOMM3_ATTRIBUTES,
        UNCONNECTED_REPLY_BUDGET,
    );
    let names: Vec<&str> = prog.iter().map(|s| s.name().unwrap()).collect();
    assert_eq!(names, vec!["Count", "M"]);
    // Errors: unknown program, unknown attribute, a budget too small for one instance.
    let attrs = GetAttributeListRequest {
        attributes: vec![1],
    }
    .to_vec();
    let r = exec(
        &mut c,
        service::GET_INSTANCE_ATTRIBUTE_LIST,
        "Program:Nope.@0x6B/0",
        attrs.clone(),
    );
    assert_status(&r, GeneralStatus::PATH_SEGMENT_ERROR, &[0]);
    let r = exec(
        &mut c,
        service::GET_INSTANCE_ATTRIBUTE_LIST,
        "@0x6B/0",
        GetAttributeListRequest {
            attributes: vec![1, 4],
        }
        .to_vec(),
    );
    assert_status(&r, GeneralStatus::ATTRIBUTE_NOT_SUPPORTED, &[]);
    let req =
        MessageRouterRequest::new(service::GET_INSTANCE_ATTRIBUTE_LIST, path("@0x6B/0"), attrs);
    let r = exec_ctx(&mut c, &ctx(8), &req);
    assert_status(&r, GeneralStatus::REPLY_DATA_TOO_LARGE, &[]);
}

// ---------------------------------------------------------------------------------------
// Template object

/// What pycomm3's _get_structure_makeup and _read_template do: attributes 4, 5, 2, 1,
/// then Template Read of `size * 4 - 21` bytes, continuing after each 0x06.
fn read_template(
    c: &mut Controller,
    instance: u16,
    budget: usize,
) -> (TemplateAttributes, Vec<u8>, usize) {
    let attrs = GetAttributeListRequest {
        attributes: vec![4, 5, 2, 1],
    };
    let p = format!("@0x6C/{instance}");
    let r = exec(c, service::GET_ATTRIBUTE_LIST, &p, attrs.to_vec());
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let t = TemplateAttributes::decode(&r.data).unwrap();
    let words = t.definition_size.unwrap();
    let mut offset = 0u32;
    let mut raw = Vec::new();
    let mut reads = 0;
    loop {
        let req = MessageRouterRequest::new(
            service::READ_TAG,
            path(&p),
            TemplateReadRequest {
                offset,
                bytes: (words * 4 - 21 - offset) as u16,
            }
            .to_vec(),
        );
        let r = exec_ctx(c, &ctx(budget), &req);
        reads += 1;
        assert!(r.general_status.is_ok_or_partial(), "{r:?}");
        raw.extend_from_slice(&r.data);
        if r.general_status == GeneralStatus::SUCCESS {
            return (t, raw, reads);
        }
        offset += r.data.len() as u32;
    }
}

#[test]
fn templates_as_pycomm3_reads_them() {
    let mut c = udt_controller();
    // The built-in STRING: handle 0x0FCE, 15 words, 88 bytes, 2 members; 39 bytes.
    let (t, raw, _) = read_template(&mut c, LOGIX_STRING_HANDLE, UNCONNECTED_REPLY_BUDGET);
    assert_eq!(
        (
            t.structure_handle,
            t.definition_size,
            t.structure_size,
            t.member_count
        ),
        (Some(0x0FCE), Some(15), Some(88), Some(2))
    );
    assert_eq!(raw.len(), 39);
    let def = TemplateDefinition::decode(&raw, 2).unwrap();
    assert_eq!(
        (def.name.as_ref(), def.suffix.as_deref()),
        ("ASCIISTRING82", None)
    );
    assert_eq!(def.members[1].name, "DATA");
    assert_eq!(
        (
            def.members[1].info,
            def.members[1].type_code,
            def.members[1].offset
        ),
        (82, 0x20C2, 4)
    );

    let s = c.tags().structure_named("Motor").unwrap().clone();
    let (t, raw, reads) = read_template(&mut c, s.template_instance, UNCONNECTED_REPLY_BUDGET);
    assert_eq!(reads, 1);
    assert_eq!(t.structure_handle, Some(s.handle));
    assert_eq!(t.member_count, Some(6));
    assert_eq!(t.structure_size, Some(112));
    let def = TemplateDefinition::decode(&raw, 6).unwrap();
    assert_eq!(
        (def.name.as_ref(), def.suffix.as_deref()),
        ("Motor", Some("nEAEAEAEAEAEA"))
    );
    let members: Vec<(&str, u16, u16, u32)> = def
        .members
        .iter()
        .map(|m| (m.name.as_ref(), m.info, m.type_code, m.offset))
        .collect();
    assert_eq!(
        members,
        vec![
            ("ZZZZZZZZZZMotor0", 0, 0xC2, 0),
            ("Run", 0, 0xC1, 0),
            ("Fault", 1, 0xC1, 0),
            ("Speed", 0, 0xCA, 4),
            ("Hist", 4, 0x20C4, 8),
            ("Name", 0, 0x8FCE, 24),
        ]
    );
    // In chunks: a small connection gives 0x06 and pycomm3 continues from the offset.
    let (_, chunked, reads) = read_template(&mut c, s.template_instance, 40);
    assert_eq!(chunked, raw);
    assert_eq!(reads, raw.len().div_ceil(36));
    // Errors: unknown template, unknown attribute, offset beyond, service.
    let r = exec(
        &mut c,
        service::GET_ATTRIBUTE_LIST,
        "@0x6C/0x999",
        vec![1, 0, 1, 0],
    );
    assert_status(&r, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
    let p = format!("@0x6C/{}", s.template_instance);
    let r = exec(&mut c, service::GET_ATTRIBUTE_LIST, &p, vec![1, 0, 6, 0]);
    assert_eq!(r.data.as_ref(), &[1, 0, 6, 0, 0x14, 0]);
    let r = exec(
        &mut c,
        service::READ_TAG,
        &p,
        TemplateReadRequest {
            offset: 999,
            bytes: 4,
        }
        .to_vec(),
    );
    assert_status(&r, GeneralStatus::GENERAL_ERROR, &[0x2104]);
    let r = exec(&mut c, service::WRITE_TAG, &p, vec![]);
    assert_status(&r, GeneralStatus::SERVICE_NOT_SUPPORTED, &[]);
}

/// What pylogix's _get_udt does: Get Attribute List of 4, 3, 2, 1 read at fixed
/// offsets of the reply (from the Message Router reply header), then Template Reads of
/// `size * 4 - 23` rounded up to a word, until that many bytes have arrived.
fn pylogix_read_template(
    c: &mut Controller,
    instance: u16,
    budget: usize,
) -> (String, Vec<String>) {
    let p = format!("@0x6C/{instance}");
    let r = exec(
        c,
        service::GET_ATTRIBUTE_LIST,
        &p,
        vec![4, 0, 4, 0, 3, 0, 2, 0, 1, 0],
    );
    let block = r.to_vec();
    assert!(block.len() > 24);
    let words = u32::from_le_bytes(block[10..14].try_into().unwrap()) as usize;
    let size = (words * 4 - 23).div_ceil(4) * 4;
    let member_count = usize::from(u16::from_le_bytes(block[24..26].try_into().unwrap()));
    let mut data: Vec<u8> = Vec::new();
    for _ in 0..100 {
        let remaining = size - data.len();
        if remaining == 0 {
            break;
        }
        let req = MessageRouterRequest::new(
            service::READ_TAG,
            path(&p),
            TemplateReadRequest {
                offset: data.len() as u32,
                bytes: remaining as u16,
            }
            .to_vec(),
        );
        let r = exec_ctx(c, &ctx(budget), &req);
        assert!(r.general_status.is_ok_or_partial(), "{r:?}");
        assert!(!r.data.is_empty(), "pylogix would loop forever");
        data.extend_from_slice(&r.data);
    }
    assert_eq!(data.len(), size);
    let names: Vec<String> = data[member_count * 8..]
        .split(|b| *b == 0)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let name = names[0].split(';').next().unwrap().to_string();
    (name, names[1..=member_count].to_vec())
}

#[test]
fn templates_as_pylogix_reads_them() {
    let mut c = udt_controller();
    let (name, members) =
        pylogix_read_template(&mut c, LOGIX_STRING_HANDLE, UNCONNECTED_REPLY_BUDGET);
    assert_eq!(
        (name.as_str(), members),
        ("ASCIISTRING82", vec!["LEN".to_string(), "DATA".to_string()])
    );
    let motor = c.tags().structure_named("Motor").unwrap().template_instance;
    for budget in [UNCONNECTED_REPLY_BUDGET, 30] {
        let (name, members) = pylogix_read_template(&mut c, motor, budget);
        assert_eq!(name, "Motor");
        assert_eq!(
            members,
            ["ZZZZZZZZZZMotor0", "Run", "Fault", "Speed", "Hist", "Name"]
        );
    }
}

// ---------------------------------------------------------------------------------------
// pycomm3 tag list JSON

const TAG_LIST_JSON: &str = r#"{
  "Level": {"tag_name": "Level", "dim": 1, "instance_id": 17, "dimensions": [8, 0, 0],
            "tag_type": "atomic", "data_type": "REAL", "data_type_name": "REAL",
            "external_access": "Read/Write", "alias": false},
  "Label": {"tag_name": "Label", "dim": 0, "instance_id": 3, "dimensions": [0, 0, 0],
            "tag_type": "struct", "template_instance_id": 4046,
            "data_type": {"name": "STRING", "attributes": ["LEN", "DATA"], "string": 82,
                          "internal_tags": {
                            "LEN": {"offset": 0, "tag_type": "atomic", "data_type": "DINT", "data_type_name": "DINT", "array": 0},
                            "DATA": {"offset": 4, "tag_type": "atomic", "data_type": "SINT", "data_type_name": "SINT", "array": 82}},
                          "template": {"object_definition_size": 15, "structure_size": 88, "member_count": 2, "structure_handle": 4046}},
            "data_type_name": "STRING"},
  "Valve": {"tag_name": "Valve", "dim": 1, "instance_id": 5, "dimensions": [2, 0, 0],
            "tag_type": "struct", "template_instance_id": 300,
            "data_type": {"name": "ValveUdt", "attributes": ["Open", "Position", "Tag"],
                          "internal_tags": {
                            "ZZZZZZZZZZValveUdt0": {"offset": 0, "tag_type": "atomic", "data_type": "SINT", "data_type_name": "SINT", "array": 0},
                            "Open": {"offset": 0, "tag_type": "atomic", "data_type": "BOOL", "data_type_name": "BOOL", "bit": 0},
                            "Position": {"offset": 4, "tag_type": "atomic", "data_type": "DINT", "data_type_name": "DINT", "array": 0},
                            "Tag": {"offset": 8, "tag_type": "struct", "data_type": {"name": "STRING", "internal_tags": {
                                "LEN": {"offset": 0, "tag_type": "atomic", "data_type": "DINT", "data_type_name": "DINT", "array": 0},
                                "DATA": {"offset": 4, "tag_type": "atomic", "data_type": "SINT", "data_type_name": "SINT", "array": 82}},
                                "attributes": ["LEN", "DATA"]}, "data_type_name": "STRING", "array": 0}},
                          "template": {"object_definition_size": 20, "structure_size": 96, "member_count": 4, "structure_handle": 48879}},
            "data_type_name": "ValveUdt"},
  "Program:Main.Step": {"tag_name": "Program:Main.Step", "dim": 0, "instance_id": 9, "dimensions": [0, 0, 0],
            "tag_type": "atomic", "data_type": "DINT", "data_type_name": "DINT"}
}"#;

#[test]
fn pycomm3_tag_list_json() {
    let list: tags::TagList = serde_json::from_str(TAG_LIST_JSON).unwrap();
    let mut db = TagDatabase::new();
    db.load_tag_list(&list).unwrap();
    let ids: Vec<(String, u32)> = db
        .tags()
        .iter()
        .map(|t| (t.full_name(), t.instance_id))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("Level".to_string(), 17),
            ("Label".to_string(), 3),
            ("Valve".to_string(), 5),
            ("Program:Main.Step".to_string(), 9),
        ]
    );
    let v = db.structure_named("ValveUdt").unwrap();
    assert_eq!((v.template_instance, v.handle, v.size), (300, 48879, 96));
    let names: Vec<&str> = v.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["ZZZZZZZZZZValveUdt0", "Open", "Position", "Tag"]
    );
    assert_eq!(v.members[1].bit, Some(0));
    assert_eq!(v.members[3].element, ElementType::LOGIX_STRING);
    assert_eq!(db.tags()[1].element, ElementType::LOGIX_STRING);
    assert_eq!(db.tags()[0].dimensions, vec![8]);
    let mut c = Controller::with_tags(ControllerConfig::default(), db);
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "Valve[1].Tag",
        write_req(&Values::LogixString(vec![Text::from("V-101")])),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    exec(
        &mut c,
        service::WRITE_TAG,
        "Valve[1].Open",
        write_req(&Values::Bool(vec![true])),
    );
    let r = exec(&mut c, service::READ_TAG, "Valve[1]", read_req(1));
    let body = ReadTagReply::decode(&r.data).unwrap();
    assert_eq!(body.tag_type, TagType::Structure(48879));
    assert_eq!(body.data[0], 1);
    assert_eq!(&body.data[8..17], b"\x05\x00\x00\x00V-101");
    // A list of entries loads too; a member beyond the structure size is refused.
    let list: tags::TagList = serde_json::from_str(
        r#"[{"tag_name": "X", "data_type": {"name": "Bad", "internal_tags": {
              "A": {"offset": 4, "data_type": "DINT"}}, "template": {"structure_size": 4, "structure_handle": 1}}}]"#,
    )
    .unwrap();
    assert!(matches!(
        TagDatabase::new().load_tag_list(&list),
        Err(TagError::BadStructure { .. })
    ));
}

#[test]
fn values_for_the_web_api_and_print() {
    let mut c = udt_controller();
    c.tags_mut().add_str("SCADA=INT[4]").unwrap();
    c.tags_mut().add_str("Program:Main.Msg=STRING").unwrap();
    let db = c.tags_mut();
    db.set_values("SCADA", 1, &Values::Int(vec![7, 8])).unwrap();
    assert_eq!(db.values("SCADA"), Some(Values::Int(vec![0, 7, 8, 0])));
    db.set_values(
        "Program:Main.Msg",
        0,
        &Values::LogixString(vec![Text::from("hi")]),
    )
    .unwrap();
    assert!(matches!(
        db.set_values("SCADA", 3, &Values::Int(vec![1, 2])),
        Err(TagError::BadValue { .. })
    ));
    assert!(matches!(
        db.set_values("SCADA", 0, &Values::Dint(vec![1])),
        Err(TagError::BadValue { .. })
    ));
    assert!(matches!(
        db.set_values("Nope", 0, &Values::Int(vec![1])),
        Err(TagError::BadValue { .. })
    ));
    assert_eq!(db.values("Nope"), None);
    // What the database holds is what a client reads.
    assert_eq!(read_values(&mut c, "SCADA[1]", 2), Values::Int(vec![7, 8]));
    assert_eq!(
        read_values(&mut c, "Program:Main.Msg", 1),
        Values::LogixString(vec![Text::from("hi")])
    );
    let handle = c.tags().structure_named("Motor").unwrap().handle;
    let Some(Values::Structure { handle: h, data }) = c.tags().values("M") else {
        panic!()
    };
    assert_eq!((h, data.len()), (handle, 3 * 112));
}

// ---------------------------------------------------------------------------------------
// Hook and fault injection

#[derive(Default)]
struct History(Mutex<Vec<String>>);

impl TagHook for History {
    fn before_read(&self, tag: &str, data: &mut [u8]) {
        if tag == "Live" {
            data.copy_from_slice(&21.5f32.to_le_bytes());
        }
    }
    fn read(&self, a: &TagAccess<'_>) {
        self.0.lock().unwrap().push(format!(
            "read {} [{}] x{} {:02x?}",
            a.tag, a.target.index, a.elements, a.data
        ));
    }
    fn failed(&self, _now: Instant, tag: &str, service: u8, status: GeneralStatus, ext: &[u16]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("failed {tag} 0x{service:02X} {status} {ext:04x?}"));
    }
    fn write(&self, a: &TagAccess<'_>) {
        self.0.lock().unwrap().push(format!(
            "write {} [{}] x{} {:02x?}",
            a.tag, a.target.index, a.elements, a.data
        ));
    }
}

#[test]
fn hook_sees_every_access_and_forced_errors() {
    let mut c = controller(&["SCADA=INT[10]", "Live=REAL"]);
    let history = Arc::new(History::default());
    c.set_hook(Some(history.clone()));
    exec(
        &mut c,
        service::WRITE_TAG,
        "SCADA[2]",
        write_req(&Values::Int(vec![1, 2])),
    );
    read_values(&mut c, "SCADA[3]", 1);
    assert_eq!(read_values(&mut c, "Live", 1), Values::Real(vec![21.5]));
    exec(&mut c, service::READ_TAG, "Nope", read_req(1));
    exec(&mut c, service::READ_TAG, "SCADA[8]", read_req(5));
    assert_eq!(
        *history.0.lock().unwrap(),
        vec![
            "write SCADA [2] x2 [01, 00, 02, 00]".to_string(),
            "read SCADA [3] x1 [02, 00]".to_string(),
            "read Live [0] x1 [00, 00, ac, 41]".to_string(),
            "failed SCADA 0x4C General error (0xFF) [2105]".to_string(),
        ]
    );
    // A forced error answers every access, which is still performed (as cpppo does).
    let forced = ForcedError {
        status: 0x10,
        extended: vec![0x2101],
    };
    assert!(c.force_error("SCADA", Some(forced)));
    assert!(!c.force_error("Nope", None));
    let r = exec(
        &mut c,
        service::WRITE_TAG,
        "SCADA[0]",
        write_req(&Values::Int(vec![9])),
    );
    assert_status(&r, GeneralStatus::DEVICE_STATE_CONFLICT, &[0x2101]);
    assert_status(
        &exec(&mut c, service::READ_TAG, "SCADA", read_req(1)),
        GeneralStatus::DEVICE_STATE_CONFLICT,
        &[0x2101],
    );
    c.force_error("SCADA", None);
    assert_eq!(read_values(&mut c, "SCADA", 1), Values::Int(vec![9]));
}

// ---------------------------------------------------------------------------------------
// Requests as real clients send them

/// The Message Router requests and replies inside the Unconnected Sends of cpppo's
/// captures of a 1756-L61 serving `SCADA=INT[1000]` (server/enip_test.py: unk_014,
/// unk_017, unk_023, unk_020, rfg_001, rfg_002), replayed against values preloaded from
/// what the controller answered: every reply byte must match.
#[test]
fn replies_match_a_controllogix_capture() {
    let mut c = controller(&["SCADA=INT[1000]"]);
    // Elements 0..=19 as the controller held them (from the unk_014 and unk_017 replies).
    let values: [u16; 20] = [
        0x8027, 0x104c, 0x0008, 0x0003, 0x0002, 0x0002, 0x0002, 0x000e, 0x0000, 0x0000, 0x42e6,
        0x0007, 0x40c8, 0x40c8, 0x0000, 0x00e4, 0x0000, 0x0064, 0x02b2, 0x40c8,
    ];
    let v = Values::Uint(values.to_vec());
    let w = WriteTagRequest {
        tag_type: DataType::INT.into(),
        elements: 20,
        data: Cow::Owned(v.to_vec()),
    };
    assert_status(
        &exec(&mut c, service::WRITE_TAG, "SCADA", w.to_vec()),
        GeneralStatus::SUCCESS,
        &[],
    );
    let scada = [0x91, 0x05, b'S', b'C', b'A', b'D', b'A', 0x00];
    let replay = |c: &mut Controller, request: &[u8], reply: &[u8]| {
        let req = MessageRouterRequest::decode(request).unwrap();
        let r = exec_ctx(c, &ctx(UNCONNECTED_REPLY_BUDGET), &req);
        assert_eq!(r.to_vec(), reply, "{req:?}");
    };
    // unk_014: Read Tag Fragmented SCADA, 1 element, offset 0.
    let mut req = vec![0x52, 0x04];
    req.extend_from_slice(&scada);
    req.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
    replay(
        &mut c,
        &req,
        &[0xd2, 0x00, 0x00, 0x00, 0xc3, 0x00, 0x27, 0x80],
    );
    // unk_017: 20 elements from byte offset 2: the last 19.
    let mut req = vec![0x52, 0x04];
    req.extend_from_slice(&scada);
    req.extend_from_slice(&[0x14, 0x00, 0x02, 0x00, 0x00, 0x00]);
    replay(
        &mut c,
        &req,
        &[
            0xd2, 0x00, 0x00, 0x00, 0xc3, 0x00, 0x4c, 0x10, 0x08, 0x00, 0x03, 0x00, 0x02, 0x00,
            0x02, 0x00, 0x02, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe6, 0x42, 0x07, 0x00,
            0xc8, 0x40, 0xc8, 0x40, 0x00, 0x00, 0xe4, 0x00, 0x00, 0x00, 0x64, 0x00, 0xb2, 0x02,
            0xc8, 0x40,
        ],
    );
    // unk_023: SCADA[12], 1 element.
    let mut req = vec![0x52, 0x05];
    req.extend_from_slice(&scada);
    req.extend_from_slice(&[0x28, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
    replay(
        &mut c,
        &req,
        &[0xd2, 0x00, 0x00, 0x00, 0xc3, 0x00, 0xc8, 0x40],
    );
    // unk_020: Write Tag Fragmented SCADA[12] = 0x40C9.
    let mut req = vec![0x53, 0x05];
    req.extend_from_slice(&scada);
    req.extend_from_slice(&[
        0x28, 0x0c, 0xc3, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc9, 0x40,
    ]);
    replay(&mut c, &req, &[0xd3, 0x00, 0x00, 0x00]);
    assert_eq!(
        read_values(&mut c, "SCADA[12]", 1),
        Values::Int(vec![0x40C9])
    );
    // rfg_001: SCADA[10000] (16-bit element segment), 10 elements: 0x05, no extended status.
    let mut req = vec![0x52, 0x06];
    req.extend_from_slice(&scada);
    req.extend_from_slice(&[0x29, 0x00, 0x10, 0x27, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00]);
    replay(&mut c, &req, &[0xd2, 0x00, 0x05, 0x00]);
    // rfg_002: SCADAX (no such tag): 0x04 with one extended status word 0x0000.
    let req = [
        0x52, 0x04, 0x91, 0x06, b'S', b'C', b'A', b'D', b'A', b'X', 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00,
    ];
    replay(&mut c, &req, &[0xd2, 0x00, 0x04, 0x01, 0x00, 0x00]);
}

// pylogix reads a tag with Read Tag of a symbolic path (odd-length name padded) and
// elements; writes a DINT with Write Tag; reads a UDT member with two symbolic segments.
#[test]
fn pylogix_style_requests() {
    let mut c = udt_controller();
    c.tags_mut().add_str("Counter=DINT").unwrap();
    let write = [
        0x4D, 0x05, 0x91, 0x07, b'C', b'o', b'u', b'n', b't', b'e', b'r', 0x00, 0xC4, 0x00, 0x01,
        0x00, 0x2A, 0x00, 0x00, 0x00,
    ];
    let r = exec_ctx(
        &mut c,
        &ctx(500),
        &MessageRouterRequest::decode(&write).unwrap(),
    );
    assert_eq!(r.to_vec(), [0xCD, 0x00, 0x00, 0x00]);
    let read = [
        0x4C, 0x05, 0x91, 0x07, b'C', b'o', b'u', b'n', b't', b'e', b'r', 0x00, 0x01, 0x00,
    ];
    let r = exec_ctx(
        &mut c,
        &ctx(500),
        &MessageRouterRequest::decode(&read).unwrap(),
    );
    assert_eq!(
        r.to_vec(),
        [0xCC, 0x00, 0x00, 0x00, 0xC4, 0x00, 0x2A, 0x00, 0x00, 0x00]
    );
    let member = [
        0x4C, 0x07, 0x91, 0x01, b'M', 0x00, 0x28, 0x01, 0x91, 0x05, b'S', b'p', b'e', b'e', b'd',
        0x00, 0x01, 0x00,
    ];
    let r = exec_ctx(
        &mut c,
        &ctx(500),
        &MessageRouterRequest::decode(&member).unwrap(),
    );
    assert_eq!(r.to_vec(), [0xCC, 0x00, 0x00, 0x00, 0xCA, 0x00, 0, 0, 0, 0]);
}

proptest! {
    #[test]
    fn arbitrary_requests_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
        budget in 0usize..600,
    ) {
        let mut c = udt_controller();
        c.tags_mut().add_str("SCADA=INT[10]").unwrap();
        c.tags_mut().add_str("S=SSTRING[2]").unwrap();
        if let Ok(req) = MessageRouterRequest::decode(&bytes) {
            let r = c.execute(&ctx(budget), &req);
            prop_assert_eq!(r.service, req.service | 0x80);
        }
    }

    #[test]
    fn arbitrary_tag_requests_never_panic(
        name in proptest::sample::select(vec!["SCADA", "S", "M", "Program:Main.M", "@0x6B/1", "@0x6C/0x100", "@0x6B/0", "@2/1"]),
        svc in proptest::sample::select(vec![0x4C, 0x4D, 0x4E, 0x52, 0x53, 0x55, 0x0A, 0x03, 0x01]),
        elements in proptest::collection::vec(0u32..5, 0..3),
        data in proptest::collection::vec(any::<u8>(), 0..40),
        budget in 0usize..600,
    ) {
        let mut c = udt_controller();
        c.tags_mut().add_str("SCADA=INT[10]").unwrap();
        c.tags_mut().add_str("S=SSTRING[2]").unwrap();
        let mut segs = crate::cip::epath::parse_path(name).unwrap();
        segs.extend(elements.iter().map(|e| Segment::Element(*e)));
        let req = MessageRouterRequest::new(svc, Epath::from_segments(&segs).unwrap(), data);
        let r = c.execute(&ctx(budget), &req);
        prop_assert_eq!(r.service, svc | 0x80);
        if r.general_status.is_ok_or_partial() {
            prop_assert!(r.encoded_len() <= budget.max(4));
        }
    }
}

// ---------------------------------------------------------------------------------------
// pycomm3's LogixDriver.open() sequence at the CIP level, parsed as pycomm3 parses it

#[derive(Debug, PartialEq)]
enum Pycomm3Type {
    Atomic(String),
    Struct {
        name: String,
        attributes: Vec<String>,
        string: Option<u16>,
        members: Vec<(String, Pycomm3Type)>,
    },
}

fn pycomm3_data_type(c: &mut Controller, symbol_type: u16) -> Pycomm3Type {
    let instance = symbol_type & 0x0FFF;
    let (t, raw, _) = read_template(c, instance, UNCONNECTED_REPLY_BUDGET);
    let count = usize::from(t.member_count.unwrap());
    let info = &raw[..count * 8];
    let mut names: Vec<String> = raw[count * 8..]
        .split(|b| *b == 0)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let mut template_name = None;
    let first = names.remove(0);
    match first.split_once(';') {
        Some((n, _)) => template_name = Some(n.to_string()),
        None => names.insert(0, first),
    }
    let predefined = !(0x100..=0xEFF).contains(&instance);
    if predefined && template_name.is_none() {
        template_name = Some(names.remove(0));
    }
    let mut name = template_name.unwrap();
    if name == "ASCIISTRING82" {
        name = "STRING".into();
    }
    let mut attributes = Vec::new();
    let mut members = Vec::new();
    for (k, member) in names.into_iter().take(count).enumerate() {
        let rec = &info[k * 8..k * 8 + 8];
        let array = u16::from_le_bytes([rec[0], rec[1]]);
        let typ = u16::from_le_bytes([rec[2], rec[3]]);
        let code = typ & 0x0FFF;
        let ty = match DataType::from_code(code) {
            Some(dt) => Pycomm3Type::Atomic(format!(
                "{}{}",
                dt.name(),
                if array > 0 && dt != DataType::BOOL {
                    format!("[{array}]")
                } else {
                    String::new()
                }
            )),
            None => pycomm3_data_type(c, typ),
        };
        if !(member.starts_with("ZZZZZZZZZZ") || member.starts_with("__")) {
            attributes.push(member.clone());
        }
        members.push((member, ty));
    }
    let string = (attributes == ["LEN", "DATA"]).then(|| match &members[1].1 {
        Pycomm3Type::Atomic(t) => t
            .trim_start_matches("SINT[")
            .trim_end_matches(']')
            .parse()
            .unwrap(),
        _ => 0,
    });
    Pycomm3Type::Struct {
        name,
        attributes,
        string,
        members,
    }
}

/// A tag as pycomm3 lists it: full name, data type, dimensions.
type Pycomm3Tag = (String, Pycomm3Type, [u32; 3]);

fn pycomm3_tag_list(c: &mut Controller, program: Option<&str>) -> (Vec<Pycomm3Tag>, Vec<String>) {
    let (raw, _) = upload(c, program, &PYCOMM3_ATTRIBUTES, UNCONNECTED_REPLY_BUDGET);
    let mut tags = Vec::new();
    let mut programs = Vec::new();
    for s in raw {
        let name = s.name().unwrap().to_string();
        if let Some(p) = name.strip_prefix("Program:") {
            programs.push(p.to_string());
            continue;
        }
        let t = s.symbol_type().unwrap();
        if name.contains(':') || name.starts_with("__") || t.is_system() {
            continue;
        }
        assert!(
            s.values
                .contains(&SymbolValue::SoftwareControl(SOFTWARE_CONTROL_BASE_TAG)),
            "alias"
        );
        let full = match program {
            Some(p) => format!("Program:{p}.{name}"),
            None => name,
        };
        let ty = match t.atomic_type() {
            Some(code) => Pycomm3Type::Atomic(
                DataType::from_code(u16::from(code))
                    .unwrap()
                    .name()
                    .to_string(),
            ),
            None => pycomm3_data_type(c, t.0),
        };
        tags.push((full, ty, s.dimensions().unwrap()));
    }
    (tags, programs)
}

#[test]
fn pycomm3_open_sequence() {
    let mut c = udt_controller();
    c.tags_mut().add_str("Speeds=REAL[16]").unwrap();
    c.config_mut().program_name = "Plant".into();
    // get_plc_info: Identity Get Attributes All, parsed field by field.
    let r = exec(&mut c, service::GET_ATTRIBUTES_ALL, "@1/1", vec![]);
    let d = &r.data;
    let (major, status) = (d[6], u16::from_le_bytes([d[8], d[9]]));
    assert_eq!((major, status), (20, 0x3160));
    assert!(
        major >= 18,
        "external access (attribute 10) is requested from v18"
    );
    assert_eq!(&d[15..15 + usize::from(d[14])], b"1756-L61/B LOGIX5561");
    // get_plc_name.
    let r = exec(&mut c, service::GET_ATTRIBUTES_ALL, "@0x64/1", vec![]);
    assert_eq!(r.data.as_ref(), b"\x05\x00Plant");
    // get_tag_list('*'): controller scope, then every program found there.
    let (mut tags, programs) = pycomm3_tag_list(&mut c, None);
    assert_eq!(programs, vec!["Main"]);
    for p in &programs {
        tags.extend(pycomm3_tag_list(&mut c, Some(p)).0);
    }
    let string = Pycomm3Type::Struct {
        name: "STRING".into(),
        attributes: vec!["LEN".into(), "DATA".into()],
        string: Some(82),
        members: vec![
            ("LEN".into(), Pycomm3Type::Atomic("DINT".into())),
            ("DATA".into(), Pycomm3Type::Atomic("SINT[82]".into())),
        ],
    };
    let motor = Pycomm3Type::Struct {
        name: "Motor".into(),
        attributes: ["Run", "Fault", "Speed", "Hist", "Name"]
            .map(String::from)
            .to_vec(),
        string: None,
        members: vec![
            (
                "ZZZZZZZZZZMotor0".into(),
                Pycomm3Type::Atomic("SINT".into()),
            ),
            ("Run".into(), Pycomm3Type::Atomic("BOOL".into())),
            ("Fault".into(), Pycomm3Type::Atomic("BOOL".into())),
            ("Speed".into(), Pycomm3Type::Atomic("REAL".into())),
            ("Hist".into(), Pycomm3Type::Atomic("DINT[4]".into())),
            ("Name".into(), string),
        ],
    };
    let names: Vec<(&str, [u32; 3])> = tags.iter().map(|(n, _, d)| (n.as_str(), *d)).collect();
    assert_eq!(
        names,
        vec![
            ("M", [3, 0, 0]),
            ("Speeds", [16, 0, 0]),
            ("Program:Main.Count", [0, 0, 0]),
            ("Program:Main.M", [0, 0, 0]),
        ]
    );
    assert_eq!(tags[0].1, motor);
    assert_eq!(tags[1].1, Pycomm3Type::Atomic("REAL".into()));
    assert_eq!(tags[3].1, motor);
    // Then reads go out as a Multiple Service Packet, as pycomm3 packs them.
    let req = msp(vec![
        MessageRouterRequest::new(service::READ_TAG, path("Speeds"), read_req(16)),
        MessageRouterRequest::new(service::READ_TAG, path("Program:Main.Count"), read_req(1)),
        MessageRouterRequest::new(service::READ_TAG, path("M[2].Name"), read_req(1)),
    ]);
    let r = exec_ctx(&mut c, &ctx(UNCONNECTED_REPLY_BUDGET), &req);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let body = MultipleServiceReply::decode(&r.data).unwrap();
    let lens: Vec<usize> = body.replies.iter().map(|x| x.data.len()).collect();
    assert_eq!(lens, vec![2 + 64, 2 + 4, 4 + 88]);
}

// ---------------------------------------------------------------------------------------
// Model-based: any sequence of writes, fragmented writes and read-modify-writes leaves
// the tag as a plain array model says, whatever the reply budget of the reads.

#[derive(Debug, Clone)]
enum Op {
    Write(usize, Vec<i32>),
    WriteFragmented(usize, Vec<i32>, usize),
    ReadModifyWrite(usize, u32, u32),
    Read(usize, usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    use proptest::collection::vec;
    prop_oneof![
        (0usize..52, vec(any::<i32>(), 1..12)).prop_map(|(i, v)| Op::Write(i, v)),
        (0usize..52, vec(any::<i32>(), 1..12), 1usize..5)
            .prop_map(|(i, v, k)| Op::WriteFragmented(i, v, k)),
        (0usize..52, any::<u32>(), any::<u32>()).prop_map(|(i, o, a)| Op::ReadModifyWrite(i, o, a)),
        (0usize..50, 1usize..50, 10usize..120).prop_map(|(i, n, b)| Op::Read(i, n, b)),
    ]
}

proptest! {
    #[test]
    fn tag_behaves_like_an_array(ops in proptest::collection::vec(op(), 1..25)) {
        const LEN: usize = 50;
        let mut c = controller(&["D=DINT[50]"]);
        let mut model = vec![0i32; LEN];
        let at = |i: usize| format!("D[{i}]");
        for op in ops {
            match op {
                Op::Write(i, v) => {
                    let r = exec(&mut c, service::WRITE_TAG, &at(i.min(LEN - 1)), write_req(&Values::Dint(v.clone())));
                    let i = i.min(LEN - 1);
                    if i + v.len() <= LEN {
                        prop_assert_eq!(r.general_status, GeneralStatus::SUCCESS);
                        model[i..i + v.len()].copy_from_slice(&v);
                    } else {
                        prop_assert_eq!(&r.additional_status, &vec![0x2105]);
                    }
                }
                Op::WriteFragmented(i, v, k) => {
                    let i = i.min(LEN - 1);
                    let bytes = Values::Dint(v.clone()).to_vec();
                    for (n, chunk) in bytes.chunks(4 * k).enumerate() {
                        let w = WriteTagFragmentedRequest {
                            tag_type: DataType::DINT.into(),
                            elements: v.len() as u16,
                            offset: (n * 4 * k) as u32,
                            data: Cow::Borrowed(chunk),
                        };
                        let r = exec(&mut c, service::WRITE_TAG_FRAGMENTED, &at(i), w.to_vec());
                        prop_assert_eq!(r.general_status.is_success(), i + v.len() <= LEN);
                    }
                    if i + v.len() <= LEN {
                        model[i..i + v.len()].copy_from_slice(&v);
                    }
                }
                Op::ReadModifyWrite(i, or, and) => {
                    let req = ReadModifyWriteTagRequest {
                        or_mask: Cow::Owned(or.to_le_bytes().to_vec()),
                        and_mask: Cow::Owned(and.to_le_bytes().to_vec()),
                    };
                    let r = exec(&mut c, service::READ_MODIFY_WRITE_TAG, &at(i), req.to_vec());
                    if i < LEN {
                        prop_assert_eq!(r.general_status, GeneralStatus::SUCCESS);
                        model[i] = ((model[i] as u32 | or) & and) as i32;
                    } else {
                        prop_assert_eq!(r.general_status, GeneralStatus::PATH_DESTINATION_UNKNOWN);
                    }
                }
                Op::Read(i, n, budget) => {
                    let n = n.min(LEN - i);
                    let (_, bytes, _) = read_fragmented_all(&mut c, &at(i), n as u16, budget);
                    let got = Values::decode(DataType::DINT.into(), Count::All, &mut Reader::new(&bytes)).unwrap();
                    prop_assert_eq!(got, Values::Dint(model[i..i + n].to_vec()));
                }
            }
        }
        prop_assert_eq!(read_fragmented_all(&mut c, "D", 50, 504).1, Values::Dint(model).to_vec());
    }
}

// ---------------------------------------------------------------------------------------
// Requests from the real frames in core/tests/frames (see its README for provenance)

/// The CIP Message Router request inside a SendRRData / SendUnitData frame file.
fn frame_request(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/frames/enip/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let bytes: Vec<u8> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    // Encapsulation header, interface handle, timeout, item count, then the items.
    let mut at = 24 + 4 + 2;
    let count = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    at += 2;
    for _ in 0..count {
        let ty = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let len = usize::from(u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]));
        let data = &bytes[at + 4..at + 4 + len];
        match ty {
            0x00b2 => return data.to_vec(),
            0x00b1 => return data[2..].to_vec(), // after the sequence count
            _ => at += 4 + len,
        }
    }
    panic!("no data item in {file}");
}

// An HMI's Multiple Service Packet to a ControlLogix: Get Attribute List of the
// undocumented class 0xAC, then 22 Read Tag Fragmented of scalar tags.
#[test]
fn hmi_multiple_service_packet_from_a_capture() {
    let request = frame_request(
        "cpppo-enip_test__send_unit_data_multiple_service_get_attribute_list_request.hex",
    );
    let req = MessageRouterRequest::decode(&request).unwrap();
    let msp_req = MultipleServiceRequest::decode(&req.data).unwrap();
    let names: Vec<String> = msp_req.requests[1..]
        .iter()
        .map(|r| r.path.to_string())
        .collect();
    assert_eq!(names.len(), 22);
    let mut c = controller(&[]);
    for (i, n) in names.iter().enumerate() {
        c.tags_mut().add_str(&format!("{n}=REAL")).unwrap();
        c.tags_mut()
            .set_values(n, 0, &Values::Real(vec![i as f32 + 0.5]))
            .unwrap();
    }
    let r = exec_ctx(&mut c, &ctx(4002), &req);
    // Class 0xAC is not simulated: that one embedded request fails, the rest succeed.
    assert_status(&r, GeneralStatus::EMBEDDED_SERVICE_ERROR, &[]);
    let body = MultipleServiceReply::decode(&r.data).unwrap();
    assert_eq!(body.replies.len(), 23);
    assert_eq!(
        body.replies[0].general_status,
        GeneralStatus::PATH_DESTINATION_UNKNOWN
    );
    for (i, reply) in body.replies[1..].iter().enumerate() {
        assert_eq!(reply.service, 0xD2);
        let mut want = vec![0xCA, 0x00];
        want.extend_from_slice(&(i as f32 + 0.5).to_le_bytes());
        assert_eq!(reply.data.as_ref(), want, "{}", names[i]);
    }
}

// pycomm's connected Read Tag Fragmented of 360 elements addressed by Symbol instance 8.
#[test]
fn pycomm_read_by_symbol_instance_from_a_capture() {
    let request =
        frame_request("cpppo-enip_test__send_unit_data_read_tag_fragmented_template_request.hex");
    let req = MessageRouterRequest::decode(&request).unwrap();
    let mut db = TagDatabase::new();
    let list: tags::TagList = serde_json::from_str(
        r#"[{"tag_name": "Big", "instance_id": 8, "dim": 1, "dimensions": [360, 0, 0], "data_type": "DINT"}]"#,
    )
    .unwrap();
    db.load_tag_list(&list).unwrap();
    db.set_values("Big", 0, &Values::Dint((0..360).collect()))
        .unwrap();
    let mut c = Controller::with_tags(ControllerConfig::default(), db);
    // A 500-byte connection: 123 DINTs, then more.
    let r = exec_ctx(&mut c, &ctx(500), &req);
    assert_status(&r, GeneralStatus::PARTIAL_TRANSFER, &[]);
    let body = ReadTagReply::decode(&r.data).unwrap();
    assert_eq!(body.elements(), Some(123));
    assert_eq!(&body.data[4 * 122..], &122i32.to_le_bytes());
}

// A Write Tag of a BOOL with 0xFF, as a pycomm client sends it.
#[test]
fn write_bool_from_a_capture() {
    let request = frame_request("cpppo-enip_test__send_unit_data_write_tag_bool_request.hex");
    let req = MessageRouterRequest::decode(&request).unwrap();
    let mut c = controller(&["ITESTOP=BOOL"]);
    let r = exec_ctx(&mut c, &ctx(500), &req);
    assert_eq!(r.to_vec(), [0xCD, 0x00, 0x00, 0x00]);
    assert_eq!(c.tags().values("ITESTOP"), Some(Values::Bool(vec![true])));
    assert_eq!(c.tags().tags()[0].data(), &[0xFF]);
}

// Runtimes share one device between threads (behind their lock): it must be Send + Sync,
// hook included.
#[test]
fn controller_is_send_and_sync() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let mut c = controller(&["A=DINT"]);
    c.set_hook(Some(Arc::new(History::default())));
    shared(&c);
}

#[test]
fn tags_at_cip_addresses_answer_get_and_set_attribute_single() {
    // cpppo's `NAME@class/instance/attribute=TYPE`: the tag's data is the attribute's,
    // as cpppo's simulator serves a PowerFlex's parameters to getattr.
    let mut c = controller(&[
        "Amps@0x93/7/10=REAL",
        "Name@0x93/1/7=SSTRING",
        "Pair@0x93/2/10=INT[2]",
    ]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0x93/7/10", vec![]);
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(r.data.as_ref(), &[0, 0, 0, 0]);
    let r = exec(
        &mut c,
        service::SET_ATTRIBUTE_SINGLE,
        "@0x93/7/10",
        16.5f32.to_le_bytes().to_vec(),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    assert_eq!(c.tags().values("Amps"), Some(Values::Real(vec![16.5])));
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0x93/7/10", vec![]);
    assert_eq!(r.data.as_ref(), &16.5f32.to_le_bytes());
    // The whole attribute, no more and no less.
    let r = exec(
        &mut c,
        service::SET_ATTRIBUTE_SINGLE,
        "@0x93/7/10",
        vec![0, 0, 0],
    );
    assert_status(&r, GeneralStatus::NOT_ENOUGH_DATA, &[]);
    let r = exec(
        &mut c,
        service::SET_ATTRIBUTE_SINGLE,
        "@0x93/7/10",
        vec![0; 5],
    );
    assert_status(&r, GeneralStatus::TOO_MUCH_DATA, &[]);
    assert_eq!(c.tags().values("Amps"), Some(Values::Real(vec![16.5])));
    let r = exec(
        &mut c,
        service::SET_ATTRIBUTE_SINGLE,
        "@0x93/2/10",
        vec![1, 0, 2, 0],
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0x93/2/10", vec![]);
    assert_eq!(r.data.as_ref(), &[1, 0, 2, 0]);
    let r = exec(
        &mut c,
        service::SET_ATTRIBUTE_SINGLE,
        "@0x93/1/7",
        b"\x02hi".to_vec(),
    );
    assert_status(&r, GeneralStatus::SUCCESS, &[]);
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0x93/1/7", vec![]);
    assert_eq!(r.data.as_ref(), b"\x02hi");
    // No tag there: as before.
    let r = exec(&mut c, service::GET_ATTRIBUTE_SINGLE, "@0x93/8/10", vec![]);
    assert_status(&r, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[]);
}

#[test]
fn reply_buffers_handed_back_are_reused_and_replies_stay_right() {
    let mut c = controller(&["SCADA=INT[10]"]);
    c.tags_mut()
        .set_values("SCADA", 0, &Values::Int((0..10).collect()))
        .unwrap();
    let first = exec(&mut c, service::READ_TAG, "SCADA[2]", read_req(3));
    let Cow::Owned(data) = &first.data else {
        panic!("a read's reply owns its data");
    };
    let buffer = data.as_ptr();
    c.recycle(first);
    // The next reply is written into the buffer handed back, with the right bytes.
    let second = exec(&mut c, service::READ_TAG, "SCADA[5]", read_req(2));
    assert_eq!(second.data.as_ptr(), buffer);
    let body = ReadTagReply::decode(&second.data).unwrap();
    assert_eq!(body.data.as_ref(), &[5, 0, 6, 0]);
    // Without a buffer handed back, a new one.
    let third = exec(&mut c, service::READ_TAG, "SCADA[0]", read_req(1));
    assert_ne!(third.data.as_ptr(), buffer);
    assert_eq!(read_values(&mut c, "SCADA[1]", 2), Values::Int(vec![1, 2]));
    // Buffers kept are bounded.
    for _ in 0..2 * SPARE_REPLY_BUFFERS {
        c.recycle(MessageRouterReply::success(service::READ_TAG, vec![0; 4]));
    }
    assert_eq!(c.spare_data.len(), SPARE_REPLY_BUFFERS);
}

#[test]
fn tags_are_found_whatever_the_case_of_their_name() {
    let long = "L".repeat(300);
    let c = controller(&["Scada=INT", &format!("{long}=DINT")]);
    for name in ["Scada", "SCADA", "scada", "sCaDa"] {
        assert_eq!(c.tags().find(None, name), Some(0), "{name}");
    }
    assert_eq!(c.tags().find(None, &long.to_ascii_lowercase()), Some(1));
    assert_eq!(c.tags().find(None, &long), Some(1));
    assert_eq!(c.tags().find(None, "Scad"), None);
}

#[test]
fn tag_names_hash_with_fnv_1a() {
    use crate::controller::tags::NameHasher;
    use std::hash::Hasher;
    // The published FNV-1a 64-bit test vectors.
    for (text, hash) in [
        ("", 0xcbf2_9ce4_8422_2325u64),
        ("a", 0xaf63_dc4c_8601_ec8c),
        ("foobar", 0x8594_4171_f739_67e8),
    ] {
        let mut h = NameHasher::default();
        h.write(text.as_bytes());
        assert_eq!(h.finish(), hash, "{text:?}");
    }
}
