//! `cpppo decode`, run as a built binary on real frames.
//!
//! EtherNet/IP frames are those of `core/src/enip/frames.rs` (cpppo's enip_test.py and
//! pycomm3's offline tests); the Message Router payloads are cpppo's logix_test.py
//! `test_logix_multiple` req_1/rpy_1; Modbus frames are the MODBUS Application Protocol
//! V1.1b3 examples and pymodbus test/framer/test_framer.py, as used in core's tests.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cpppo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// Every JSON document on stdout of a successful run.
fn frames(args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

fn one(args: &[&str]) -> Value {
    let mut all = frames(args, None);
    assert_eq!(all.len(), 1, "{all:?}");
    all.pop().unwrap()
}

/// Exit status and stderr of a run expected to fail.
fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// A SendRRData frame (session 0x11021E01) carrying `mr` in an unconnected data item.
fn send_rr_data(mr: &[u8]) -> Vec<u8> {
    let mut cpf = vec![0, 0, 0, 0, 5, 0, 2, 0, 0, 0, 0, 0, 0xb2, 0];
    cpf.extend_from_slice(&(mr.len() as u16).to_le_bytes());
    cpf.extend_from_slice(mr);
    let mut f = vec![0x6f, 0];
    f.extend_from_slice(&(cpf.len() as u16).to_le_bytes());
    f.extend_from_slice(&[0x01, 0x1e, 0x02, 0x11]);
    f.extend_from_slice(&[0; 16]);
    f.extend_from_slice(&cpf);
    f
}

// cpppo server/enip_test.py `rss_004_request`
const RSS_004_REQUEST: &[u8] = &[
    0x65, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
];
// cpppo server/enip_test.py `gaa_011_request`
const GAA_011_REQUEST: &[u8] = &[
    0x6f, 0x00, 0x24, 0x00, 0x01, 0x1e, 0x02, 0x11, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x14, 0x00, 0x52, 0x02, 0x20, 0x06, 0x24, 0x01, 0x01, 0xfa,
    0x06, 0x00, 0x01, 0x02, 0x20, 0x01, 0x24, 0x01, 0x01, 0x00, 0x01, 0x00,
];
// cpppo server/enip_test.py `gaa_011_reply`
const GAA_011_REPLY: &[u8] = &[
    0x6f, 0x00, 0x37, 0x00, 0x01, 0x1e, 0x02, 0x11, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x27, 0x00, 0x81, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0e, 0x00,
    0x36, 0x00, 0x14, 0x0b, 0x60, 0x31, 0x1a, 0x06, 0x6c, 0x00, 0x14, 0x31, 0x37, 0x35, 0x36, 0x2d,
    0x4c, 0x36, 0x31, 0x2f, 0x42, 0x20, 0x4c, 0x4f, 0x47, 0x49, 0x58, 0x35, 0x35, 0x36, 0x31,
];
// cpppo server/enip_test.py `listident_1_rpy`
const LISTIDENT_1_RPY: &[u8] = &[
    0x63, 0x00, 0x48, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0c, 0x00, 0x42, 0x00, 0x01, 0x00,
    0x00, 0x02, 0xaf, 0x12, 0x0a, 0xa1, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x7b, 0x00, 0x90, 0x04, 0x0b, 0x01, 0x61, 0x05, 0x15, 0x1d, 0x49, 0x80, 0x20, 0x50,
    0x6f, 0x77, 0x65, 0x72, 0x46, 0x6c, 0x65, 0x78, 0x20, 0x37, 0x35, 0x33, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0xff,
];
// cpppo server/enip_test.py `fwd_clo_reply_just_sts`
const FWD_CLO_REPLY_JUST_STS: &[u8] = &[
    0x6f, 0x00, 0x16, 0x00, 0x02, 0x5c, 0x02, 0x14, 0x00, 0x00, 0x00, 0x00, 0x6f, 0x70, 0x65, 0x6e,
    0x5f, 0x65, 0x78, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x06, 0x00, 0xce, 0x00, 0x01, 0x01, 0x00, 0x01,
];
// pycomm3 tests/offline/test_cip_driver.py test__forward_close_returns_true_if_response
const PYCOMM3_FORWARD_CLOSE_REPLY: &[u8] = &[
    0x6f, 0x00, 0x1e, 0x00, 0x02, 0x16, 0x02, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x5f, 0x70, 0x79, 0x63,
    0x6f, 0x6d, 0x6d, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x0e, 0x00, 0xce, 0x00, 0x00, 0x00, 0x27, 0x04, 0x09, 0x10,
    0xd6, 0x9c, 0x06, 0x3d, 0x00, 0x00,
];
// cpppo server/logix_test.py test_logix_multiple: req_1 and rpy_1.
const MULTIPLE_REQ: &[u8] = &[
    0x0A, 0x02, 0x20, 0x02, 0x24, 0x01, 0x05, 0x00, 0x0c, 0x00, 0x18, 0x00, 0x2a, 0x00, 0x36, 0x00,
    0x48, 0x00, 0x4C, 0x04, 0x91, 0x05, b'p', b'a', b'r', b't', b's', 0x00, 0x01, 0x00, 0x4C, 0x07,
    0x91, 0x0B, b'C', b'o', b'n', b't', b'r', b'o', b'l', b'W', b'o', b'r', b'd', 0x00, 0x01, 0x00,
    b'L', 0x04, 0x91, 0x06, b'n', b'u', b'm', b'b', b'e', b'r', 0x01, 0x00, b'M', 0x04, 0x91, 0x06,
    b'n', b'u', b'm', b'b', b'e', b'r', 0xca, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0, 0x3f, b'L', 0x04,
    0x91, 0x06, b'n', b'u', b'm', b'b', b'e', b'r', 0x01, 0x00,
];
const MULTIPLE_RPY: &[u8] = &[
    0x8A, 0x00, 0x00, 0x00, 0x05, 0x00, 0x0c, 0x00, 0x16, 0x00, 0x20, 0x00, 0x2a, 0x00, 0x2e, 0x00,
    0xCC, 0x00, 0x00, 0x00, 0xC4, 0x00, 0x2A, 0x00, 0x00, 0x00, 0xCC, 0x00, 0x00, 0x00, 0xC4, 0x00,
    0xDC, 0x01, 0x00, 0x00, 0xCC, 0x00, 0x00, 0x00, 0xCA, 0x00, 0x00, 0x00, 0x80, 0x3F, 0xcd, 0x00,
    0x00, 0x00, 0xcc, 0x00, 0x00, 0x00, 0xca, 0x00, 0x00, 0x00, 0xa0, 0x3f,
];

fn message(frame: &Value) -> &Value {
    &frame["body"]["send_data"]["items"][1]["message"]
}

#[test]
fn register_session_request() {
    let f = one(&["decode", "enip", &hex(RSS_004_REQUEST)]);
    assert_eq!(f["header"]["command"], "RegisterSession");
    assert_eq!(f["header"]["command_code"], 0x65);
    assert_eq!(f["header"]["length"], 4);
    assert_eq!(f["header"]["status_name"], "success");
    assert_eq!(f["body"]["register_session"]["protocol_version"], 1);
    assert_eq!(f["length"], 28);
}

#[test]
fn unconnected_send_request_and_identity_reply() {
    let f = one(&["decode", "enip", &hex(GAA_011_REQUEST)]);
    assert_eq!(f["header"]["session_handle"], 0x1102_1E01);
    let items = &f["body"]["send_data"]["items"];
    assert_eq!(items[0]["type"], "NullAddress");
    assert_eq!(items[1]["type_id"], 0xB2);
    let m = message(&f);
    assert_eq!(m["direction"], "request");
    assert_eq!(m["service_name"], "UnconnectedSend");
    assert_eq!(m["path"], "@0x0006/1");
    assert_eq!(m["request"]["timeout_ticks"], 250);
    assert_eq!(m["request"]["route_path"], "@{\"port\":1,\"link\":0}");
    let inner = &m["request"]["request"];
    assert_eq!(inner["service_name"], "GetAttributesAll");
    assert_eq!(inner["path"], "@0x0001/1");

    let f = one(&["decode", "enip", &hex(GAA_011_REPLY)]);
    let m = message(&f);
    assert_eq!(m["direction"], "reply");
    assert_eq!(m["status"], "Success (0x00)");
    let id = &m["reply"]["identity"];
    assert_eq!(id["product_name"], "1756-L61/B LOGIX5561");
    assert_eq!(id["vendor_id"], 1);
    assert_eq!(id["device_type"], 0x0E);
}

#[test]
fn list_identity_reply() {
    let f = one(&["decode", "enip", &hex(LISTIDENT_1_RPY)]);
    assert_eq!(f["header"]["command"], "ListIdentity");
    let id = &f["body"]["items"][0];
    assert_eq!(id["type"], "Identity");
    assert_eq!(id["socket_address"]["addr"], "10.161.1.5");
    assert_eq!(id["socket_address"]["port"], 44818);
    assert_eq!(id["product_code"], 1168);
    assert!(id["product_name"]
        .as_str()
        .unwrap()
        .starts_with("PowerFlex 753"));
    assert_eq!(id["state"], 0xFF);
}

#[test]
fn multiple_service_packet_with_typed_tag_values() {
    let f = one(&["decode", "enip", &hex(&send_rr_data(MULTIPLE_REQ))]);
    let m = message(&f);
    assert_eq!(m["service_name"], "MultipleServicePacket");
    assert_eq!(m["path"], "@0x0002/1");
    let parts = m["request"]["requests"].as_array().unwrap();
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[0]["service_name"], "ReadTag");
    assert_eq!(parts[0]["path"], "parts");
    assert_eq!(parts[0]["request"]["elements"], 1);
    assert_eq!(parts[1]["path"], "ControlWord");
    assert_eq!(parts[3]["service_name"], "WriteTag");
    assert_eq!(parts[3]["request"]["tag_type"], "REAL");
    assert_eq!(
        parts[3]["request"]["value"],
        serde_json::json!({"type": "real", "values": [1.25]})
    );

    let f = one(&["decode", "enip", &hex(&send_rr_data(MULTIPLE_RPY))]);
    let replies = message(&f)["reply"]["replies"].as_array().unwrap().clone();
    assert_eq!(replies.len(), 5);
    assert_eq!(replies[1]["reply"]["tag_type"], "DINT");
    assert_eq!(replies[1]["reply"]["value"]["values"][0], 476);
    assert_eq!(replies[0]["reply"]["value"]["values"][0], 42);
    assert_eq!(replies[2]["reply"]["tag_type"], "REAL");
    assert_eq!(replies[2]["reply"]["value"]["values"][0], 1.0);
    assert_eq!(replies[3]["service_name"], "WriteTag");
    assert_eq!(replies[4]["reply"]["value"]["values"][0], 1.25);
}

#[test]
fn forward_close_replies_with_status_names() {
    let f = one(&["decode", "enip", &hex(FWD_CLO_REPLY_JUST_STS)]);
    let m = message(&f);
    assert_eq!(m["general_status"], 1);
    assert_eq!(m["status"], "Connection failure (0x01)");
    assert_eq!(m["additional_status"][0], 0x0100);
    assert_eq!(
        m["extended_status"],
        "Connection in use or duplicate Forward Open"
    );

    let f = one(&["decode", "enip", &hex(PYCOMM3_FORWARD_CLOSE_REPLY)]);
    let triple = &message(&f)["reply"]["triple"];
    assert_eq!(triple["connection_serial"], 0x0427);
    assert_eq!(triple["originator_vendor_id"], 0x1009);
    assert_eq!(triple["originator_serial"], 0x3D06_9CD6);
}

#[test]
fn concatenated_frames_and_stdin_lines() {
    let both = format!("{} {}", hex(RSS_004_REQUEST), hex(GAA_011_REQUEST));
    let all = frames(&["decode", "enip", &both], None);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["offset"], 28);
    assert_eq!(all[1]["header"]["command"], "SendRRData");

    // One input per line, comments ignored, any separators; --compact: one line each.
    let colons = hex(RSS_004_REQUEST).replace(' ', ":");
    let prefixed: Vec<String> = GAA_011_REPLY.iter().map(|b| format!("0x{b:02x}")).collect();
    let text = format!("# capture\n{colons}\n\n{}\n", prefixed.join(", "));
    let out = run(&["decode", "--compact", "enip"], Some(&text));
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[1]["line"], 4);
    assert_eq!(message(&lines[1])["general_status"], 0);
}

#[test]
fn errors_name_the_field_and_offset_and_exit_2() {
    let err = fails(&["decode", "enip", "6f 00 zz"]);
    assert!(err.contains("invalid hex at column 7"), "{err}");

    // The header says 22 bytes of data; only 10 are there.
    let err = fails(&["decode", "enip", &hex(&GAA_011_REQUEST[..34])]);
    assert!(err.contains("truncated frame"), "{err}");
    assert!(err.contains("encapsulation.data at offset 24"), "{err}");
    assert!(err.contains("26 more byte(s) needed"), "{err}");

    // A Message Router request whose path size (5 words) exceeds the bytes there.
    let err = fails(&[
        "decode",
        "enip",
        &hex(&send_rr_data(&[0x0e, 0x05, 0x20, 0x01])),
    ]);
    assert!(err.contains("message_router.path at offset 42"), "{err}");

    // A second frame cut short: the first is not printed alone as if all were well.
    let err = fails(&[
        "decode",
        "modbus-tcp",
        "0c 05 00 00 00 06 11 03 00 7c 00 02 0c 05 00 00 00 06 11",
    ]);
    assert!(err.contains("mbap.pdu at offset 19"), "{err}");
}

#[test]
fn modbus_tcp_requests_and_responses() {
    let f = one(&[
        "decode",
        "modbus-tcp",
        "0c:05:00:00:00:06:11:03:00:7c:00:02",
    ]);
    assert_eq!(f["mbap"]["transaction_id"], 0x0c05);
    assert_eq!(f["mbap"]["unit_id"], 0x11);
    assert_eq!(
        f["request"]["ReadHoldingRegisters"],
        serde_json::json!({"address": 0x7c, "quantity": 2})
    );

    let all = frames(
        &[
            "decode",
            "modbus-tcp",
            "--responses",
            "0c 05 00 00 00 07 11 03 04 00 8d 00 8e 0c 05 00 00 00 03 11 83 02",
        ],
        None,
    );
    assert_eq!(
        all[0]["response"]["ReadHoldingRegisters"]["values"],
        serde_json::json!([0x8d, 0x8e])
    );
    assert_eq!(all[1]["response"]["Exception"]["code"], 2);
    assert_eq!(
        all[1]["response"]["Exception"]["name"],
        "Illegal data address"
    );

    let err = fails(&[
        "decode",
        "modbus-tcp",
        "0c 05 00 00 00 06 11 03 00 00 00 00",
    ]);
    assert!(err.contains("modbus.quantity at offset 10"), "{err}");
}

#[test]
fn modbus_rtu_frames_and_crc() {
    let f = one(&["decode", "modbus-rtu", "01 03 00 00 00 0a c5 cd"]);
    assert_eq!(f["unit"], 1);
    assert_eq!(f["crc"], 0xCDC5);
    assert_eq!(
        f["request"]["ReadHoldingRegisters"],
        serde_json::json!({"address": 0, "quantity": 10})
    );
    // Modbus Application Protocol V1.1b3 6.1: coils 20-38, as an RTU frame.
    let mut coils = vec![0x11, 0x01, 0x03, 0xCD, 0x6B, 0x05];
    let crc = crc16(&coils);
    coils.extend_from_slice(&crc.to_le_bytes());
    let f = one(&["decode", "modbus-rtu", "--responses", &hex(&coils)]);
    let bits = f["response"]["ReadCoils"]["values"].as_array().unwrap();
    assert_eq!(bits.len(), 24);
    assert_eq!(bits[0], true);
    assert_eq!(bits[1], false);

    let all = frames(
        &[
            "decode",
            "modbus-rtu",
            "--responses",
            "11 03 04 00 8d 00 8e fb bd 11 83 02 c1 34",
        ],
        None,
    );
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["offset"], 9);
    assert_eq!(all[1]["response"]["Exception"]["function"], 3);

    let err = fails(&["decode", "modbus-rtu", "01 03 00 00 00 0a c5 ce"]);
    assert!(err.contains("rtu.crc at offset 6"), "{err}");
    let err = fails(&["decode", "modbus-rtu", "01 03 00 00"]);
    assert!(
        err.contains("rtu.adu") && err.contains("4 more byte(s) needed"),
        "{err}"
    );
}

/// CRC-16/MODBUS, bit by bit (independent of the table in core).
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for b in data {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn help_explains_with_examples() {
    for args in [
        &["--help"][..],
        &["decode", "--help"],
        &["decode", "enip", "--help"],
        &["decode", "modbus-tcp", "--help"],
        &["decode", "modbus-rtu", "--help"],
    ] {
        let out = run(args, None);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Example"), "{args:?}: {text}");
    }
    let text = String::from_utf8(run(&["decode", "modbus-rtu", "--help"], None).stdout).unwrap();
    assert!(text.contains("--responses"));
    assert!(text.contains("--compact"));
}
