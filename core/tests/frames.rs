//! Every real frame in `tests/frames/{enip,modbus}/*.hex`, decoded through every layer it
//! carries and checked against the `# expect:` lines of its file (the format and the key
//! vocabulary are in `tests/frames/README.md`).
//!
//! For each file the decoder walk below renders every field it decodes under the
//! README's key names, then every expected key must be present and equal: a key the
//! decoders cannot produce is a failure, never skipped. All mismatches of all files are
//! collected and reported together, each naming its file.
//!
//! The same walk re-encodes each decoded layer and notes every layer whose encoding
//! differs from the bytes it came from; only the frames in [`NON_CANONICAL`] may have
//! any, and exactly those listed. Finally, each frame is fed to its stream framer
//! (encapsulation, MBAP, RTU) split at every byte position and one byte at a time.

// Helpers outside `#[test]` functions unwrap too: a malformed frame file is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{hex, hex_files};
use cpppo_core::cip::connection_manager::{
    ForwardCloseFailure, ForwardCloseReply, ForwardOpenFailure, ForwardOpenReply,
};
use cpppo_core::cip::data::{Count, TagType, Values};
use cpppo_core::cip::epath::{Epath, Link, Segment};
use cpppo_core::cip::logix::ReadTagReply;
use cpppo_core::cip::message_router::{
    service, MessageRouterReply, MessageRouterRequest, MultipleServiceReply, Request,
};
use cpppo_core::cip::objects::Identity;
use cpppo_core::enip::cpf::{Cpf, Item};
use cpppo_core::enip::encapsulation::{Body, Encapsulation, EncapsulationFraming};
use cpppo_core::modbus::pdu::{Request as ModbusRequest, Response as ModbusResponse};
use cpppo_core::modbus::rtu::{self, Direction, RtuFrame, RtuFramer};
use cpppo_core::modbus::tcp::{self, Adu, MbapHeader};
use cpppo_core::wire::{DecodeError, Encode, Reader};

/// At least this many EtherNet/IP frame files (README: 49).
const MIN_ENIP_FILES: usize = 49;
/// At least this many Modbus frame files (README: 11).
const MIN_MODBUS_FILES: usize = 11;

/// `data` is shown whole up to this many bytes, else `data_head` shows the first
/// [`DATA_HEAD_LEN`] (README, "Data keys").
const DATA_SHOWN_MAX: usize = 32;
/// Bytes shown by `data_head`.
const DATA_HEAD_LEN: usize = 16;
/// `values` are given for data up to this many bytes.
const VALUES_SHOWN_MAX: usize = 64;
/// REAL values are written with C's `%g` (6 significant digits): compare within this
/// relative tolerance.
const FLOAT_TOLERANCE: f64 = 1e-5;

/// Frames whose encoding is not the one the encoders produce, with the layers that
/// differ and why. The decoders keep such frames byte-exact where they can (an [`Epath`]
/// holds its wire bytes), so the difference shows at the layer that normalises.
const NON_CANONICAL: &[(&str, &[&str], &str)] = &[(
    "cpppo-enip_test__send_unit_data_read_tag_fragmented_template_request",
    &["epath.segments"],
    "pycomm3 writes the symbol instance 8 as a 16-bit instance segment (25 00 08 00); \
     re-encoding the segments chooses the 8-bit form (24 08)",
)];

// ---------------------------------------------------------------------------------------
// Frame files

/// Which framing a file's bytes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Enip,
    ModbusTcp,
    ModbusRtu,
}

/// One `.hex` file: its name (without extension), bytes and expected fields.
struct FrameFile {
    name: String,
    kind: Kind,
    bytes: Vec<u8>,
    expect: Vec<(String, String)>,
}

impl FrameFile {
    /// For Modbus: true when the file holds a request (the file names say which).
    fn modbus_request(&self) -> bool {
        match (
            self.name.contains("_request"),
            self.name.contains("_response"),
        ) {
            (true, false) => true,
            (false, true) => false,
            _ => panic!(
                "{}: Modbus file name says neither request nor response",
                self.name
            ),
        }
    }
}

/// Split an `expect:` line on spaces outside `"..."`, then each token on its first `=`.
fn parse_expect(line: &str, file: &str) -> Vec<(String, String)> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' if !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    assert!(!quoted, "{file}: unbalanced quote in expect line");
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
        .into_iter()
        .map(|t| {
            let (k, v) = t
                .split_once('=')
                .unwrap_or_else(|| panic!("{file}: expect token {t:?} has no '='"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn load(dir: &str) -> Vec<FrameFile> {
    hex_files(dir)
        .into_iter()
        .map(|file| {
            let name = file.name.clone();
            let expect: Vec<(String, String)> = file
                .tagged("expect")
                .flat_map(|e| parse_expect(e, &name))
                .collect();
            assert!(!expect.is_empty(), "{name}: no expect line");
            let kind = match dir {
                "enip" => Kind::Enip,
                _ if name.contains("tcp_") => Kind::ModbusTcp,
                _ if name.contains("rtu_") => Kind::ModbusRtu,
                _ => panic!("{name}: Modbus file name says neither tcp_ nor rtu_"),
            };
            FrameFile {
                name,
                kind,
                bytes: file.bytes,
                expect,
            }
        })
        .collect()
}

fn all_files() -> Vec<FrameFile> {
    let mut files = load("enip");
    files.extend(load("modbus"));
    files
}

// ---------------------------------------------------------------------------------------
// Decoded fields

/// A decoded field, rendered for comparison with an expected value.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    /// Integers (one, or a comma-separated list; `-` is the empty list). Compared by
    /// value, so `0x0065`, `0x65` and `101` all match 101.
    Ints(Vec<i128>),
    /// REAL/LREAL values, compared within [`FLOAT_TOLERANCE`].
    Floats(Vec<f64>),
    /// Text compared exactly (quotes around the expected value removed).
    Text(String),
}

impl Got {
    fn int(v: impl Into<i128>) -> Got {
        Got::Ints(vec![v.into()])
    }

    /// Why `expected` does not match, if it does not.
    fn mismatch(&self, expected: &str) -> Option<String> {
        let list = |s: &str| -> Vec<String> {
            if s == "-" {
                Vec::new()
            } else {
                s.split(',').map(str::to_string).collect()
            }
        };
        match self {
            Got::Ints(got) => {
                let want: Option<Vec<i128>> = list(expected).iter().map(|t| parse_int(t)).collect();
                match want {
                    Some(want) if want == *got => None,
                    Some(_) => Some(format!("decoded {}", render_ints(got))),
                    None => Some(format!(
                        "expected value is not integers; decoded {}",
                        render_ints(got)
                    )),
                }
            }
            Got::Floats(got) => {
                let want: Option<Vec<f64>> =
                    list(expected).iter().map(|t| t.parse().ok()).collect();
                let close = |a: f64, b: f64| {
                    a == b || (a - b).abs() <= FLOAT_TOLERANCE * a.abs().max(b.abs())
                };
                match want {
                    Some(want)
                        if want.len() == got.len()
                            && want.iter().zip(got).all(|(a, b)| close(*a, *b)) =>
                    {
                        None
                    }
                    _ => Some(format!("decoded {got:?}")),
                }
            }
            Got::Text(got) => {
                let want = expected
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(expected);
                (want != got).then(|| format!("decoded {got:?}"))
            }
        }
    }
}

fn parse_int(t: &str) -> Option<i128> {
    match t.strip_prefix("0x") {
        Some(h) => i128::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

fn render_ints(v: &[i128]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|i| format!("{i} (0x{i:x})"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything the walk of one frame found.
#[derive(Default)]
struct Decoded {
    fields: BTreeMap<String, Got>,
    /// Layers whose re-encoding differs from their bytes.
    non_canonical: Vec<String>,
    /// Layers that failed to decode.
    errors: Vec<String>,
}

impl Decoded {
    fn set(&mut self, p: &str, key: &str, v: Got) {
        let key = format!("{p}{key}");
        if let Some(old) = self.fields.insert(key.clone(), v) {
            self.errors
                .push(format!("key {key} produced twice (first {old:?})"));
        }
    }

    fn int(&mut self, p: &str, key: &str, v: impl Into<i128>) {
        self.set(p, key, Got::int(v));
    }

    fn text(&mut self, p: &str, key: &str, v: impl Into<String>) {
        self.set(p, key, Got::Text(v.into()));
    }

    /// Note whether `layer` re-encoded to the bytes it was decoded from.
    fn canonical(&mut self, p: &str, layer: &str, encoded: &[u8], original: &[u8]) {
        if encoded != original {
            self.non_canonical.push(format!("{p}{layer}"));
        }
    }

    fn error(&mut self, p: &str, layer: &str, e: impl std::fmt::Display) {
        self.errors.push(format!("{p}{layer}: {e}"));
    }

    /// The README's data keys for `data`: `data_len`, then `data` or `data_head`.
    fn data_keys(&mut self, p: &str, data: &[u8]) {
        self.int(p, "data_len", data.len() as u64);
        if data.len() <= DATA_SHOWN_MAX {
            let shown = if data.is_empty() {
                "-".into()
            } else {
                hex(data)
            };
            self.text(p, "data", shown);
        } else {
            self.text(p, "data_head", hex(&data[..DATA_HEAD_LEN]));
        }
    }

    /// `type` (and `struct_handle`), the data keys and, for short atomic data, `values`.
    fn typed_data(&mut self, p: &str, tag_type: TagType, data: &[u8]) {
        match tag_type {
            TagType::Elementary(code) => self.int(p, "type", code),
            TagType::Structure(handle) => {
                self.int(p, "type", cpppo_core::cip::data::STRUCTURE_TYPE);
                self.int(p, "struct_handle", handle);
            }
        }
        self.data_keys(p, data);
        if tag_type.data_type().is_none() || data.len() > VALUES_SHOWN_MAX {
            return;
        }
        let mut r = Reader::new(data);
        let values = match Values::decode(tag_type, Count::All, &mut r) {
            Ok(v) => v,
            Err(e) => return self.error(p, "values", e),
        };
        if !r.is_empty() {
            return self.error(p, "values", format!("{} bytes left over", r.remaining()));
        }
        self.canonical(p, "values", &values.to_vec(), data);
        let got = match values {
            Values::Bool(v) => {
                Got::Text(v.iter().map(bool::to_string).collect::<Vec<_>>().join(","))
            }
            Values::Sint(v) => ints(v),
            Values::Int(v) => ints(v),
            Values::Dint(v) => ints(v),
            Values::Lint(v) => ints(v),
            Values::Usint(v) => ints(v),
            Values::Uint(v) => ints(v),
            Values::Udint(v) => ints(v),
            Values::Ulint(v) => ints(v),
            Values::Dword(v) => ints(v),
            Values::Real(v) => Got::Floats(v.into_iter().map(f64::from).collect()),
            Values::Lreal(v) => Got::Floats(v),
            // Strings are not atomic: no `values` key.
            Values::Sstring(_)
            | Values::String(_)
            | Values::LogixString(_)
            | Values::Structure { .. } => return,
        };
        self.set(p, "values", got);
    }
}

fn ints<T: Into<i128>>(v: Vec<T>) -> Got {
    Got::Ints(v.into_iter().map(Into::into).collect())
}

// ---------------------------------------------------------------------------------------
// EtherNet/IP and CIP

/// A path in the README's notation: `c:0x06/i:1`, `sym:SCADA/e:12`, `port:1,link:0`.
fn render_path(path: &Epath<'_>) -> String {
    let segments = match path.to_segments() {
        Ok(s) => s,
        Err(_) => return format!("raw:{}", hex(path.as_bytes())),
    };
    segments
        .iter()
        .map(|s| match s {
            Segment::Class(c) => format!("c:0x{c:02x}"),
            Segment::Instance(i) => format!("i:{i}"),
            Segment::Attribute(a) => format!("a:{a}"),
            Segment::Element(e) => format!("e:{e}"),
            Segment::ConnectionPoint(c) => format!("cp:{c}"),
            Segment::Symbolic(name) => format!("sym:{name}"),
            Segment::Port {
                port,
                link: Link::Number(n),
            } => format!("port:{port},link:{n}"),
            Segment::Port {
                port,
                link: Link::Address(a),
            } => format!("port:{port},link:{}", String::from_utf8_lossy(a)),
            other => format!("raw:{}", hex(&other.to_vec())),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Check that a path's segments re-encode to its bytes (the encoder picks the smallest
/// segment forms).
fn check_path(d: &mut Decoded, p: &str, path: &Epath<'_>) {
    if let Ok(segments) = path.to_segments() {
        match Epath::from_segments(&segments) {
            Ok(again) => d.canonical(p, "epath.segments", again.as_bytes(), path.as_bytes()),
            Err(e) => d.error(p, "epath.segments", e),
        }
    }
}

fn decode_enip(bytes: &[u8], d: &mut Decoded) {
    let (frame, used) = match Encapsulation::decode(bytes) {
        Ok(f) => f,
        Err(e) => return d.error("", "encapsulation", e),
    };
    if used != bytes.len() {
        d.error(
            "",
            "encapsulation",
            format!("{used} of {} bytes used", bytes.len()),
        );
    }
    d.canonical("", "encapsulation", &frame.to_vec(), bytes);
    let h = &frame.header;
    d.int("", "command", h.command.code());
    d.int("", "length", h.length);
    d.int("", "session", h.session_handle);
    d.int("", "status", h.status);
    d.text("", "context", hex(&h.sender_context));
    d.int("", "options", h.options);
    let body = match frame.body() {
        Ok(b) => b,
        Err(e) => return d.error("", "body", e),
    };
    d.canonical("", "body", &body.to_vec(), &frame.data);
    match &body {
        Body::Empty | Body::Raw(_) => {}
        Body::RegisterSession(rs) => {
            d.int("", "protocol_version", rs.protocol_version);
            d.int("", "option_flags", rs.options);
        }
        Body::SendData(send) => {
            d.int("", "interface_handle", send.interface_handle);
            d.int("", "timeout", send.timeout);
            decode_cpf(&send.cpf, d);
        }
        Body::Cpf(cpf) => decode_cpf(cpf, d),
    }
}

fn decode_cpf(cpf: &Cpf<'_>, d: &mut Decoded) {
    d.set(
        "",
        "items",
        Got::Ints(cpf.items.iter().map(|i| i128::from(i.type_id())).collect()),
    );
    for item in &cpf.items {
        match item {
            Item::ConnectedAddress { connection_id } => d.int("", "conn_id", *connection_id),
            Item::ConnectedData { sequence, data } => {
                d.int("", "seq", *sequence);
                decode_message(data, d, "");
            }
            Item::UnconnectedData(data) => decode_message(data, d, ""),
            Item::Identity(id) => {
                let p = "identity.";
                d.int(p, "encap_version", id.protocol_version);
                let sa = &id.socket_address;
                d.text(p, "sockaddr", format!("{}:{}", sa.addr, sa.port));
                d.int(p, "vendor", id.vendor_id);
                d.int(p, "device_type", id.device_type);
                d.int(p, "product_code", id.product_code);
                d.text(
                    p,
                    "revision",
                    format!("{}.{}", id.revision_major, id.revision_minor),
                );
                d.int(p, "dev_status", id.status);
                d.int(p, "serial", id.serial_number);
                d.text(p, "product_name", id.product_name_lossy());
                if let Some(state) = id.state {
                    d.int(p, "state", state);
                }
            }
            Item::Service(s) => {
                d.int("service.", "version", s.version);
                d.int("service.", "capability", s.capability);
                d.text("service.", "name", s.name_lossy());
            }
            Item::NullAddress
            | Item::SequencedAddress { .. }
            | Item::SockAddrOT(_)
            | Item::SockAddrTO(_)
            | Item::Legacy(_)
            | Item::Raw { .. } => {}
        }
    }
}

/// A Message Router request or reply, told apart by the reply bit as every peer does.
fn decode_message(bytes: &[u8], d: &mut Decoded, p: &str) {
    match bytes.first() {
        Some(s) if s & service::REPLY != 0 => match MessageRouterReply::decode(bytes) {
            Ok(reply) => {
                d.canonical(p, "message_router", &reply.to_vec(), bytes);
                decode_reply(&reply, d, p);
            }
            Err(e) => d.error(p, "message_router", e),
        },
        Some(_) => match MessageRouterRequest::decode(bytes) {
            Ok(request) => {
                d.canonical(p, "message_router", &request.to_vec(), bytes);
                decode_request(&request, d, p);
            }
            Err(e) => d.error(p, "message_router", e),
        },
        None => d.error(p, "message_router", "empty message"),
    }
}

fn decode_request(req: &MessageRouterRequest<'_>, d: &mut Decoded, p: &str) {
    d.int(p, "service", req.service);
    d.text(p, "path", render_path(&req.path));
    check_path(d, p, &req.path);
    let classified = match Request::decode(req) {
        Ok(c) => c,
        Err(e) => return d.error(p, "service_data", e),
    };
    let data: &[u8] = &req.data;
    let body = &data[..data.len() - classified.trailing.len()];
    if !classified.trailing.is_empty() {
        d.non_canonical.push(format!("{p}service_data.trailing"));
    }
    match &classified.request {
        Request::UnconnectedSend(us) => {
            d.canonical(p, "unconnected_send", &us.to_vec(), body);
            d.int(p, "priority_tick", us.priority_time_tick);
            d.int(p, "timeout_ticks", us.timeout_ticks);
            // The request size is implied by the embedded request (and checked by the
            // re-encoding above).
            d.int(p, "msg_size", us.request.encoded_len() as u64);
            d.text(p, "route", render_path(&us.route_path));
            check_path(d, &format!("{p}route."), &us.route_path);
            decode_request(&us.request, d, &format!("{p}msg."));
        }
        Request::ForwardOpen(fo) => {
            d.canonical(p, "forward_open", &fo.to_vec(), body);
            d.int(p, "priority_tick", fo.priority_time_tick);
            d.int(p, "timeout_ticks", fo.timeout_ticks);
            d.int(p, "o_t_conn_id", fo.o_t_connection_id);
            d.int(p, "t_o_conn_id", fo.t_o_connection_id);
            d.int(p, "conn_serial", fo.triple.connection_serial);
            d.int(p, "orig_vendor", fo.triple.originator_vendor_id);
            d.int(p, "orig_serial", fo.triple.originator_serial);
            d.int(p, "timeout_multiplier", fo.timeout_multiplier);
            d.int(p, "o_t_rpi", fo.o_t_rpi);
            d.int(p, "t_o_rpi", fo.t_o_rpi);
            d.int(p, "o_t_params", fo.o_t_parameters);
            d.int(p, "t_o_params", fo.t_o_parameters);
            d.int(p, "transport", fo.transport_class_trigger.0);
            d.text(p, "conn_path", render_path(&fo.connection_path));
            check_path(d, &format!("{p}conn_path."), &fo.connection_path);
        }
        Request::ForwardClose(fc) => {
            d.canonical(p, "forward_close", &fc.to_vec(), body);
            d.int(p, "priority_tick", fc.priority_time_tick);
            d.int(p, "timeout_ticks", fc.timeout_ticks);
            d.int(p, "conn_serial", fc.triple.connection_serial);
            d.int(p, "orig_vendor", fc.triple.originator_vendor_id);
            d.int(p, "orig_serial", fc.triple.originator_serial);
            d.text(p, "conn_path", render_path(&fc.connection_path));
            check_path(d, &format!("{p}conn_path."), &fc.connection_path);
        }
        Request::MultipleServicePacket(msp) => {
            d.canonical(p, "multiple_service", &msp.to_vec(), body);
            d.int(p, "count", msp.requests.len() as u64);
            for (i, r) in msp.requests.iter().enumerate() {
                decode_request(r, d, &format!("{p}sub{i}."));
            }
        }
        Request::GetAttributeList(g) => {
            d.canonical(p, "get_attribute_list", &g.to_vec(), body);
            d.int(p, "attr_count", g.attributes.len() as u64);
            d.set(p, "attrs", ints(g.attributes.clone()));
        }
        Request::ReadTag(rt) => {
            d.canonical(p, "read_tag", &rt.to_vec(), body);
            d.int(p, "elements", rt.elements);
        }
        Request::ReadTagFragmented(rt) => {
            d.canonical(p, "read_tag_fragmented", &rt.to_vec(), body);
            d.int(p, "elements", rt.elements);
            d.int(p, "offset", rt.offset);
        }
        Request::WriteTag(wt) => {
            d.canonical(p, "write_tag", &wt.to_vec(), body);
            d.int(p, "elements", wt.elements);
            d.typed_data(p, wt.tag_type, &wt.data);
        }
        Request::WriteTagFragmented(wt) => {
            d.canonical(p, "write_tag_fragmented", &wt.to_vec(), body);
            d.int(p, "elements", wt.elements);
            d.int(p, "offset", wt.offset);
            d.typed_data(p, wt.tag_type, &wt.data);
        }
        Request::ReadModifyWriteTag(rmw) => {
            d.canonical(p, "read_modify_write_tag", &rmw.to_vec(), body);
        }
        Request::TemplateRead(tr) => d.canonical(p, "template_read", &tr.to_vec(), body),
        Request::GetInstanceAttributeList(g) => {
            d.canonical(p, "get_instance_attribute_list", &g.to_vec(), body);
        }
        Request::GetAttributesAll
        | Request::GetAttributeSingle
        | Request::SetAttributesAll(_)
        | Request::SetAttributeList(_)
        | Request::SetAttributeSingle(_)
        | Request::Reset(_)
        | Request::Other { .. } => {}
    }
}

fn decode_reply(reply: &MessageRouterReply<'_>, d: &mut Decoded, p: &str) {
    d.int(p, "service", reply.service);
    d.int(p, "general_status", reply.general_status.0);
    if !reply.additional_status.is_empty() {
        d.set(p, "ext_status", ints(reply.additional_status.clone()));
    }
    let data: &[u8] = &reply.data;
    let ok = reply.general_status.is_success();
    match reply.request_service() {
        // Read Tag and Read Tag Fragmented: the type, then the (partial) value. (A
        // Template Read reply shares 0xCC but carries template bytes; none is here.)
        service::READ_TAG | service::READ_TAG_FRAGMENTED
            if reply.general_status.is_ok_or_partial() && !data.is_empty() =>
        {
            match ReadTagReply::decode(data) {
                Ok(rt) => {
                    d.canonical(p, "read_tag_reply", &rt.to_vec(), data);
                    d.typed_data(p, rt.tag_type, &rt.data);
                }
                Err(e) => d.error(p, "read_tag_reply", e),
            }
            return;
        }
        service::MULTIPLE_SERVICE_PACKET if !data.is_empty() => {
            match MultipleServiceReply::decode(data) {
                Ok(msp) => {
                    d.canonical(p, "multiple_service", &msp.to_vec(), data);
                    d.int(p, "count", msp.replies.len() as u64);
                    for (i, r) in msp.replies.iter().enumerate() {
                        decode_reply(r, d, &format!("{p}sub{i}."));
                    }
                }
                Err(e) => d.error(p, "multiple_service", e),
            }
        }
        service::FORWARD_OPEN if ok => match ForwardOpenReply::decode(data) {
            Ok(fo) => {
                d.canonical(p, "forward_open_reply", &fo.to_vec(), data);
                d.int(p, "o_t_conn_id", fo.o_t_connection_id);
                d.int(p, "t_o_conn_id", fo.t_o_connection_id);
                d.int(p, "conn_serial", fo.triple.connection_serial);
                d.int(p, "orig_vendor", fo.triple.originator_vendor_id);
                d.int(p, "orig_serial", fo.triple.originator_serial);
                d.int(p, "o_t_api", fo.o_t_api);
                d.int(p, "t_o_api", fo.t_o_api);
                d.int(p, "app_reply_size", (fo.application_reply.len() / 2) as u64);
            }
            Err(e) => d.error(p, "forward_open_reply", e),
        },
        service::FORWARD_OPEN => match ForwardOpenFailure::decode(data) {
            Ok(f) => {
                d.canonical(p, "forward_open_failure", &f.to_vec(), data);
                failure_fields(d, p, &f);
            }
            Err(e) => d.error(p, "forward_open_failure", e),
        },
        // 0xCE is also a Read-Modify-Write Tag reply, which carries no data: any data is
        // a Forward Close reply's.
        service::FORWARD_CLOSE if ok && !data.is_empty() => match ForwardCloseReply::decode(data) {
            Ok(fc) => {
                d.canonical(p, "forward_close_reply", &fc.to_vec(), data);
                d.int(p, "conn_serial", fc.triple.connection_serial);
                d.int(p, "orig_vendor", fc.triple.originator_vendor_id);
                d.int(p, "orig_serial", fc.triple.originator_serial);
            }
            Err(e) => d.error(p, "forward_close_reply", e),
        },
        service::FORWARD_CLOSE if !ok => match ForwardCloseFailure::decode(data) {
            Ok(f) => {
                d.canonical(p, "forward_close_failure", &f.to_vec(), data);
                failure_fields(d, p, &f);
            }
            Err(e) => d.error(p, "forward_close_failure", e),
        },
        // The reply does not say which object answered: the Identity layout is tried,
        // and the fields are given when all the data is one.
        service::GET_ATTRIBUTES_ALL if ok => {
            if let Ok(id) = Identity::decode(data) {
                d.canonical(p, "identity", &id.to_vec(), data);
                let p = &format!("{p}identity.");
                d.int(p, "vendor", id.vendor_id);
                d.int(p, "device_type", id.device_type);
                d.int(p, "product_code", id.product_code);
                d.text(
                    p,
                    "revision",
                    format!("{}.{}", id.revision.major, id.revision.minor),
                );
                d.int(p, "dev_status", id.status);
                d.int(p, "serial", id.serial_number);
                d.text(p, "product_name", id.product_name.as_ref());
                if let Some(state) = id.state {
                    d.int(p, "state", state);
                }
            }
        }
        _ => {}
    }
    d.data_keys(p, data);
}

fn failure_fields(d: &mut Decoded, p: &str, f: &ForwardOpenFailure) {
    if let Some(t) = f.triple {
        d.int(p, "conn_serial", t.connection_serial);
        d.int(p, "orig_vendor", t.originator_vendor_id);
        d.int(p, "orig_serial", t.originator_serial);
    }
    if let Some(size) = f.remaining_path_size {
        d.int(p, "remaining_path_size", size);
    }
}

// ---------------------------------------------------------------------------------------
// Modbus

fn decode_modbus_tcp(bytes: &[u8], request: bool, d: &mut Decoded) {
    let header = match MbapHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) => return d.error("", "mbap", e),
    };
    d.int("", "transaction", header.transaction_id);
    d.int("", "protocol", header.protocol_id);
    d.int("", "length", header.length);
    d.int("", "unit", header.unit_id);
    match Adu::decode(bytes) {
        Ok(adu) => {
            d.canonical("", "adu", &adu.to_vec(), bytes);
            decode_pdu(&adu.pdu, request, d);
        }
        Err(e) => d.error("", "adu", e),
    }
}

fn decode_modbus_rtu(bytes: &[u8], request: bool, d: &mut Decoded) {
    match RtuFrame::decode(bytes) {
        Ok(frame) => {
            d.canonical("", "rtu", &frame.to_vec(), bytes);
            d.int("", "unit", frame.unit);
            // The CRC the decoder computed and found on the wire.
            d.int("", "crc", rtu::crc16(&bytes[..bytes.len() - 2]));
            decode_pdu(&frame.pdu, request, d);
        }
        Err(e) => d.error("", "rtu", e),
    }
}

fn decode_pdu(pdu: &[u8], request: bool, d: &mut Decoded) {
    if request {
        let req = match ModbusRequest::decode(pdu) {
            Ok(r) => r,
            Err(e) => return d.error("", "pdu.request", e),
        };
        d.canonical("", "pdu.request", &req.to_vec(), pdu);
        d.int("", "function", req.function());
        match req {
            ModbusRequest::ReadCoils { address, quantity }
            | ModbusRequest::ReadDiscreteInputs { address, quantity }
            | ModbusRequest::ReadHoldingRegisters { address, quantity }
            | ModbusRequest::ReadInputRegisters { address, quantity } => {
                d.int("", "address", address);
                d.int("", "quantity", quantity);
            }
            ModbusRequest::WriteSingleCoil { address, .. }
            | ModbusRequest::WriteSingleRegister { address, .. }
            | ModbusRequest::MaskWriteRegister { address, .. } => d.int("", "address", address),
            ModbusRequest::WriteMultipleCoils { address, values } => {
                d.int("", "address", address);
                d.int("", "quantity", values.quantity());
            }
            ModbusRequest::WriteMultipleRegisters { address, values } => {
                d.int("", "address", address);
                d.int("", "quantity", values.len() as u64);
            }
            _ => {}
        }
    } else {
        let resp = match ModbusResponse::decode(pdu) {
            Ok(r) => r,
            Err(e) => return d.error("", "pdu.response", e),
        };
        d.canonical("", "pdu.response", &resp.to_vec(), pdu);
        d.int("", "function", resp.function());
        match resp {
            ModbusResponse::ReadHoldingRegisters(regs)
            | ModbusResponse::ReadInputRegisters(regs)
            | ModbusResponse::ReadWriteMultipleRegisters(regs) => {
                d.int("", "byte_count", regs.as_bytes().len() as u64);
                d.set("", "values", ints(regs.to_vec()));
            }
            ModbusResponse::ReadCoils(bits) | ModbusResponse::ReadDiscreteInputs(bits) => {
                d.int("", "byte_count", bits.as_bytes().len() as u64);
                d.text("", "data", hex(bits.as_bytes()));
            }
            ModbusResponse::WriteMultipleCoils { address, quantity }
            | ModbusResponse::WriteMultipleRegisters { address, quantity } => {
                d.int("", "address", address);
                d.int("", "quantity", quantity);
            }
            ModbusResponse::Exception(e) => d.int("", "exception", e.code.0),
            _ => {}
        }
    }
}

fn decode_file(f: &FrameFile) -> Decoded {
    let mut d = Decoded::default();
    match f.kind {
        Kind::Enip => decode_enip(&f.bytes, &mut d),
        Kind::ModbusTcp => decode_modbus_tcp(&f.bytes, f.modbus_request(), &mut d),
        Kind::ModbusRtu => decode_modbus_rtu(&f.bytes, f.modbus_request(), &mut d),
    }
    d
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn every_frame_file_is_loaded() {
    let enip = load("enip");
    let modbus = load("modbus");
    assert!(
        enip.len() >= MIN_ENIP_FILES,
        "{} enip files, expected at least {MIN_ENIP_FILES}",
        enip.len()
    );
    assert!(
        modbus.len() >= MIN_MODBUS_FILES,
        "{} modbus files, expected at least {MIN_MODBUS_FILES}",
        modbus.len()
    );
    for f in enip.iter().chain(&modbus) {
        assert!(!f.bytes.is_empty(), "{}: no bytes", f.name);
    }
    let count = |k: Kind| modbus.iter().filter(|f| f.kind == k).count();
    assert!(count(Kind::ModbusTcp) > 0 && count(Kind::ModbusRtu) > 0);
}

#[test]
fn every_expected_field_is_decoded_with_its_value() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in all_files() {
        let d = decode_file(&f);
        for e in &d.errors {
            failures.push(format!("{}: decode error: {e}", f.name));
        }
        for (key, want) in &f.expect {
            checked += 1;
            match d.fields.get(key) {
                None => failures.push(format!(
                    "{}: {key}={want}: not produced by the decoders",
                    f.name
                )),
                Some(got) => {
                    if let Some(why) = got.mismatch(want) {
                        failures.push(format!("{}: {key}={want}: {why}", f.name));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} expected fields failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_canonical_frame_reencodes_to_its_bytes_at_every_layer() {
    let files = all_files();
    let mut failures = Vec::new();
    for f in &files {
        let d = decode_file(f);
        let (known, why): (&[&str], &str) = NON_CANONICAL
            .iter()
            .find(|(name, _, _)| *name == f.name)
            .map_or((&[], "canonical"), |(_, layers, why)| (layers, why));
        if d.non_canonical != known {
            failures.push(format!(
                "{}: layers that do not re-encode to their bytes: {:?}, listed: {known:?} ({why})",
                f.name, d.non_canonical
            ));
        }
    }
    for (name, _, _) in NON_CANONICAL {
        if !files.iter().any(|f| f.name == *name) {
            failures.push(format!("{name}: listed as non-canonical but no such file"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Frames from a stream decoder fed `pieces` in order.
fn reframe<F: cpppo_core::wire::Framing>(
    mut decoder: cpppo_core::wire::StreamDecoder<F>,
    pieces: &[&[u8]],
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut frames = Vec::new();
    for piece in pieces {
        decoder.handle_input(piece);
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame.to_vec());
        }
    }
    assert_eq!(decoder.buffered(), 0);
    Ok(frames)
}

/// Check that `decoder()` yields exactly the frame `bytes` for every two-piece split and
/// for one byte at a time.
fn check_stream_splits<F: cpppo_core::wire::Framing>(
    name: &str,
    bytes: &[u8],
    decoder: impl Fn() -> cpppo_core::wire::StreamDecoder<F>,
    failures: &mut Vec<String>,
) {
    let whole = vec![bytes.to_vec()];
    for split in 0..=bytes.len() {
        let (a, b) = bytes.split_at(split);
        match reframe(decoder(), &[a, b]) {
            Ok(frames) if frames == whole => {}
            other => failures.push(format!("{name}: split at {split}: {other:?}")),
        }
    }
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    match reframe(decoder(), &bytewise) {
        Ok(frames) if frames == whole => {}
        other => failures.push(format!("{name}: one byte at a time: {other:?}")),
    }
}

#[test]
fn enip_frames_frame_identically_at_every_split() {
    let files = load("enip");
    let mut failures = Vec::new();
    for f in &files {
        check_stream_splits(
            &f.name,
            &f.bytes,
            EncapsulationFraming::stream_decoder,
            &mut failures,
        );
    }
    // And all of them back to back, split anywhere.
    let stream: Vec<u8> = files.iter().flat_map(|f| f.bytes.clone()).collect();
    let whole: Vec<Vec<u8>> = files.iter().map(|f| f.bytes.clone()).collect();
    for split in 0..=stream.len() {
        let (a, b) = stream.split_at(split);
        let frames = reframe(EncapsulationFraming::stream_decoder(), &[a, b]).unwrap();
        if frames != whole {
            failures.push(format!("all frames back to back: split at {split}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn modbus_tcp_frames_frame_identically_at_every_split() {
    let files: Vec<FrameFile> = load("modbus")
        .into_iter()
        .filter(|f| f.kind == Kind::ModbusTcp)
        .collect();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        check_stream_splits(&f.name, &f.bytes, tcp::decoder, &mut failures);
    }
    let stream: Vec<u8> = files.iter().flat_map(|f| f.bytes.clone()).collect();
    let whole: Vec<Vec<u8>> = files.iter().map(|f| f.bytes.clone()).collect();
    for split in 0..=stream.len() {
        let (a, b) = stream.split_at(split);
        if reframe(tcp::decoder(), &[a, b]).unwrap() != whole {
            failures.push(format!("all frames back to back: split at {split}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The serial line the RTU frames are replayed on.
const RTU_BAUD: u32 = 9600;
/// One character time at [`RTU_BAUD`] (11 bits): the gap between bytes sent back to back.
const RTU_CHARACTER: Duration = Duration::from_nanos(11 * 1_000_000_000 / RTU_BAUD as u64);

/// Feed `pieces` to a fresh framer, each a short gap (more than one character time,
/// less than 1.5) after the one before, then let a 3.5-character silence pass; return
/// the frames found and the count of bytes dropped.
fn rtu_replay(direction: Direction, strict: bool, pieces: &[&[u8]]) -> (Vec<Vec<u8>>, u64) {
    let mut framer = RtuFramer::new(direction, RTU_BAUD).with_strict_inter_character(strict);
    let timing = framer.timing().unwrap();
    let gap = RTU_CHARACTER + (timing.t1_5 - RTU_CHARACTER) / 2;
    assert!(RTU_CHARACTER < gap && gap < timing.t1_5);
    let mut now = Instant::now();
    let mut frames = Vec::new();
    for piece in pieces {
        framer.handle_input(now, piece);
        while let Some(frame) = framer.poll_frame() {
            frames.push(frame.to_vec());
        }
        now += gap;
    }
    let last = now - gap;
    // Whatever is still held is released or dropped at the end of the silence.
    if let Some(deadline) = framer.poll_timeout() {
        assert_eq!(deadline, last + timing.t3_5);
    }
    framer.handle_timeout(last + timing.t3_5);
    while let Some(frame) = framer.poll_frame() {
        frames.push(frame.to_vec());
    }
    assert_eq!(framer.buffered(), 0);
    (frames, framer.discarded())
}

#[test]
fn rtu_frames_frame_identically_at_every_split_with_time_passed_in() {
    let files: Vec<FrameFile> = load("modbus")
        .into_iter()
        .filter(|f| f.kind == Kind::ModbusRtu)
        .collect();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        let direction = if f.modbus_request() {
            Direction::Requests
        } else {
            Direction::Responses
        };
        let whole = (vec![f.bytes.clone()], 0);
        for strict in [false, true] {
            for split in 0..=f.bytes.len() {
                let (a, b) = f.bytes.split_at(split);
                let got = rtu_replay(direction, strict, &[a, b]);
                if got != whole {
                    failures.push(format!(
                        "{} (strict {strict}): split at {split}: {got:?}",
                        f.name
                    ));
                }
            }
            let bytewise: Vec<&[u8]> = f.bytes.chunks(1).collect();
            let got = rtu_replay(direction, strict, &bytewise);
            if got != whole {
                failures.push(format!(
                    "{} (strict {strict}): one byte at a time: {got:?}",
                    f.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
