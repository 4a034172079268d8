//! `cpppo enip server` and `cpppo modbus sim` as a user runs them: the built binary on a
//! free loopback port (read back from its start-up line), on each runtime, talked to
//! over real sockets with core's codecs; bad input ends with one line and exit status 2.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpppo_core::cip::connection_manager::UnconnectedSend;
use cpppo_core::cip::data::DataType;
use cpppo_core::cip::epath::Epath;
use cpppo_core::cip::logix::{ReadTagReply, ReadTagRequest, WriteTagRequest};
use cpppo_core::cip::message_router::{service, MessageRouterReply, MessageRouterRequest};
use cpppo_core::enip::cpf::{Cpf, Item};
use cpppo_core::enip::encapsulation::{
    Body, Command as EnipCommand, Encapsulation, Header, SendData,
};
use cpppo_core::modbus::pdu::{Registers, Request, Response};
use cpppo_core::modbus::rtu::crc16;
use cpppo_core::wire::Encode;

const BIN: &str = env!("CARGO_BIN_EXE_cpppo");
/// How long a reply may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);
const RUNTIMES: [&str; 3] = ["blocking", "smol", "mio"];

/// A running server process, killed when dropped (also when a test fails).
struct Running {
    child: Child,
    /// The start-up line.
    line: String,
    tcp: SocketAddr,
    /// Everything printed on stdout so far.
    printed: Arc<Mutex<String>>,
}

impl Running {
    /// Wait until stdout holds `text`.
    fn wait_printed(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.printed.lock().unwrap().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} not printed; stdout: {}",
                self.printed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary and read its start-up line from stderr.
fn start(args: &[&str]) -> Running {
    let mut running = spawn(args);
    let Some(rest) = running.line.split("listening on ").nth(1) else {
        panic!("no start-up line: {:?}", running.line);
    };
    running.tcp = rest.split_whitespace().next().unwrap().parse().unwrap();
    running
}

/// Start the binary and read the first line it writes on stderr.
fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(String::new()));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let sink = Arc::clone(&printed);
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Running {
        tcp: "0.0.0.0:0".parse().unwrap(),
        line,
        child,
        printed,
    }
}

/// Start `command` (`["enip", "server", TAGS...]`) on a free loopback port with
/// `--runtime runtime`, and check its start-up line names the port, the `sockets` and
/// the runtime.
fn start_on(runtime: &str, command: &[&str], sockets: &str) -> Running {
    let mut args = command.to_vec();
    args.extend(["-a", "127.0.0.1:0", "--runtime", runtime]);
    let server = start(&args);
    let expected = format!(
        "cpppo {} {}: listening on {} {sockets}, runtime {runtime}",
        command[0], command[1], server.tcp
    );
    assert_eq!(server.line.trim_end(), expected);
    assert_ne!(server.tcp.port(), 0);
    server
}

/// Run the binary to completion: exit status and stderr.
fn fails(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

// ---------------------------------------------------------------------------------------
// EtherNet/IP

/// Read one encapsulation frame.
fn read_frame(stream: &mut TcpStream) -> Encapsulation<'static> {
    let mut header = [0u8; 24];
    stream.read_exact(&mut header).unwrap();
    let length = usize::from(u16::from_le_bytes([header[2], header[3]]));
    let mut frame = header.to_vec();
    frame.resize(24 + length, 0);
    stream.read_exact(&mut frame[24..]).unwrap();
    let (encap, used) = Encapsulation::decode(&frame).unwrap();
    assert_eq!(used, frame.len());
    encap.into_owned()
}

/// A request to a tag sent as cpppo and pycomm3 do: SendRRData carrying an Unconnected
/// Send to the Connection Manager, routed to backplane port 1, slot 0.
fn unconnected_send(
    stream: &mut TcpStream,
    session: u32,
    request: MessageRouterRequest<'_>,
) -> MessageRouterReply<'static> {
    let send = UnconnectedSend {
        priority_time_tick: 0x0A,
        timeout_ticks: 0x0E,
        request,
        route_path: Epath::from_vec(vec![0x01, 0x00]),
    };
    let to_cm = MessageRouterRequest::new(
        service::UNCONNECTED_SEND,
        "@6/1".parse().unwrap(),
        send.to_vec(),
    );
    let frame = Encapsulation::with_body(
        Header::new(EnipCommand::SendRRData, session, *b"cli-test"),
        &SendData::new(5, Cpf::unconnected(to_cm.to_vec())),
    )
    .unwrap();
    stream.write_all(&frame.to_vec()).unwrap();
    let reply = read_frame(stream);
    assert_eq!(reply.header.status, 0);
    let Ok(Body::SendData(data)) = reply.body() else {
        panic!("not a SendRRData reply: {reply:?}");
    };
    MessageRouterReply::decode(data.cpf.unconnected_data().unwrap())
        .unwrap()
        .into_owned()
}

/// Write Tag `path` (asserting success).
fn write_tag(
    stream: &mut TcpStream,
    session: u32,
    path: &str,
    data_type: DataType,
    elements: u16,
    data: &[u8],
) {
    let write = WriteTagRequest {
        tag_type: data_type.into(),
        elements,
        data: data.into(),
    };
    let request =
        MessageRouterRequest::new(service::WRITE_TAG, path.parse().unwrap(), write.to_vec());
    let reply = unconnected_send(stream, session, request);
    assert_eq!(reply.general_status.0, 0, "write {path}: {reply:?}");
}

/// Read Tag `path` (asserting success): the value bytes.
fn read_tag(stream: &mut TcpStream, session: u32, path: &str, elements: u16) -> Vec<u8> {
    let read = ReadTagRequest { elements };
    let request =
        MessageRouterRequest::new(service::READ_TAG, path.parse().unwrap(), read.to_vec());
    let reply = unconnected_send(stream, session, request);
    assert_eq!(reply.general_status.0, 0, "read {path}: {reply:?}");
    ReadTagReply::decode(&reply.data).unwrap().data.into_owned()
}

fn enip_write_read_and_list_identity(runtime: &str) {
    let server = start_on(runtime, &["enip", "server", "SCADA=INT[10]"], "(tcp, udp)");
    let mut stream = connect(server.tcp);
    let session = register_session(&mut stream);

    // Write SCADA[3..6] = 11, -2, 3000, then read all ten back.
    let values: Vec<u8> = [11i16, -2, 3000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_tag(&mut stream, session, "SCADA[3]", DataType::INT, 3, &values);
    let got: Vec<i16> = read_tag(&mut stream, session, "SCADA", 10)
        .chunks(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(got, [0, 0, 0, 11, -2, 3000, 0, 0, 0, 0]);

    // ListIdentity over UDP, on the same port: the controller's identity and address.
    assert_eq!(
        list_identity(server.tcp),
        ("1756-L61/B LOGIX5561".to_string(), server.tcp.port())
    );
}

fn register_session(stream: &mut TcpStream) -> u32 {
    stream
        .write_all(&Encapsulation::register_session(*b"cli-test").to_vec())
        .unwrap();
    let registered = read_frame(stream);
    assert_eq!(
        (registered.header.command, registered.header.status),
        (EnipCommand::RegisterSession, 0)
    );
    assert_ne!(registered.header.session_handle, 0);
    registered.header.session_handle
}

/// ListIdentity over UDP: the product name and the port announced.
fn list_identity(addr: SocketAddr) -> (String, u16) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(PATIENCE)).unwrap();
    let request =
        Encapsulation::new(Header::new(EnipCommand::ListIdentity, 0, [0; 8]), vec![]).unwrap();
    udp.send_to(&request.to_vec(), addr).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    let (reply, _) = Encapsulation::decode(&buf[..n]).unwrap();
    assert_eq!(
        (reply.header.command, reply.header.status),
        (EnipCommand::ListIdentity, 0)
    );
    let Ok(Body::Cpf(cpf)) = reply.body() else {
        panic!("not a ListIdentity reply: {reply:?}");
    };
    let Some(Item::Identity(identity)) = cpf.items.first() else {
        panic!("no identity item: {cpf:?}");
    };
    (
        String::from_utf8(identity.product_name.to_vec()).unwrap(),
        identity.socket_address.port,
    )
}

/// A pycomm3 tag list (as `json.dump(plc.tags, f)` writes it) with a structure.
const TAG_LIST_JSON: &str = r#"{
  "Level": {"tag_name": "Level", "dim": 1, "instance_id": 17, "dimensions": [8, 0, 0],
            "tag_type": "atomic", "data_type": "REAL", "data_type_name": "REAL"},
  "Valve": {"tag_name": "Valve", "dim": 1, "instance_id": 5, "dimensions": [2, 0, 0],
            "tag_type": "struct", "template_instance_id": 300,
            "data_type": {"name": "ValveUdt", "attributes": ["Open", "Position"],
                          "internal_tags": {
                            "ZZZZZZZZZZValveUdt0": {"offset": 0, "tag_type": "atomic", "data_type": "SINT", "data_type_name": "SINT", "array": 0},
                            "Open": {"offset": 0, "tag_type": "atomic", "data_type": "BOOL", "data_type_name": "BOOL", "bit": 0},
                            "Position": {"offset": 4, "tag_type": "atomic", "data_type": "DINT", "data_type_name": "DINT", "array": 0}},
                          "template": {"object_definition_size": 14, "structure_size": 8, "member_count": 3, "structure_handle": 48879}},
            "data_type_name": "ValveUdt"}
}"#;

#[test]
fn enip_server_with_config_tags_file_and_print() {
    let dir = std::env::temp_dir().join(format!("cpppo-cli-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("plc.cfg");
    std::fs::write(
        &cfg,
        "[Identity]\nProduct Name = 1769-L33ER/A LOGIX5333ER\n",
    )
    .unwrap();
    let tags = dir.join("tags.json");
    std::fs::write(&tags, TAG_LIST_JSON).unwrap();
    let server = start(&[
        "enip",
        "server",
        "-a",
        "127.0.0.1:0",
        "-p",
        "--config",
        cfg.to_str().unwrap(),
        "--tags",
        tags.to_str().unwrap(),
        "SCADA=INT[4]",
    ]);
    let mut stream = connect(server.tcp);
    let session = register_session(&mut stream);
    write_tag(
        &mut stream,
        session,
        "Valve[1].Position",
        DataType::DINT,
        1,
        &77i32.to_le_bytes(),
    );
    let position = read_tag(&mut stream, session, "Valve[1].Position", 1);
    assert_eq!(position, 77i32.to_le_bytes());
    // The tag list's REAL array and the command line's INT array are both there.
    assert_eq!(read_tag(&mut stream, session, "Level", 8), [0; 32]);
    assert_eq!(read_tag(&mut stream, session, "SCADA", 4), [0; 8]);
    assert_eq!(
        list_identity(server.tcp),
        ("1769-L33ER/A LOGIX5333ER".to_string(), server.tcp.port())
    );
    // --print: the tag accesses, and each request with its peer.
    server.wait_printed("write Valve (member at byte 12) <= [77]");
    server.wait_printed("read SCADA[0-3] == [0, 0, 0, 0]");
    server.wait_printed(&format!(
        "{} SendRRData service 0x4d: status 0x00",
        stream.local_addr().unwrap()
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn enip_server_on_blocking() {
    enip_write_read_and_list_identity("blocking");
}

#[test]
fn enip_server_on_smol() {
    enip_write_read_and_list_identity("smol");
}

#[test]
fn enip_server_on_mio() {
    enip_write_read_and_list_identity("mio");
}

#[test]
fn enip_server_logs_to_a_file_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("cpppo-cli-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("enip.log");
    let mut server = start(&[
        "enip",
        "server",
        "-a",
        "127.0.0.1:0",
        "-vv",
        "--log",
        log.to_str().unwrap(),
        "X=DINT",
    ]);
    let mut stream = connect(server.tcp);
    let session = register_session(&mut stream);
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "a graceful stop exits with success");
            break;
        }
        assert!(Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The connection was closed by the stop.
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    // -vv logs every connection event, to the file rather than stderr.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!(
            "SessionRegistered {{ session_handle: {session} }}"
        )),
        "{logged}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connection_limit_and_idle_timeout() {
    let server = start(&[
        "modbus",
        "sim",
        "-a",
        "127.0.0.1:0",
        "--max-connections",
        "1",
        "--idle-timeout",
        "0.3",
        "40001=7",
    ]);
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    let mut first = connect(server.tcp);
    assert_eq!(modbus_tcp(&mut first, 1, &read), holding(&[7]));
    // A second connection while the first is open: accepted and closed at once.
    let mut second = connect(server.tcp);
    let mut byte = [0u8; 1];
    assert_eq!(second.read(&mut byte).unwrap(), 0);
    // The first, silent for longer than the idle timeout, is closed.
    let quiet = Instant::now();
    assert_eq!(first.read(&mut byte).unwrap(), 0);
    assert!(
        quiet.elapsed() >= Duration::from_millis(200),
        "{:?}",
        quiet.elapsed()
    );
    // Which frees the slot.
    let mut third = connect(server.tcp);
    assert_eq!(modbus_tcp(&mut third, 2, &read), holding(&[7]));
}

/// The engine limits from the command line: a frame announced longer than
/// `--max-frame-size` gets status 0x0065 and a close; a frame begun and not finished
/// within `--frame-timeout` is closed (EtherNet/IP and Modbus alike).
#[test]
fn frame_limits_from_the_command_line() {
    let server = start(&[
        "enip",
        "server",
        "-a",
        "127.0.0.1:0",
        "--max-frame-size",
        "64",
        "--frame-timeout",
        "0.3",
        "X=INT",
    ]);
    let mut huge = connect(server.tcp);
    let mut header = [0u8; 24];
    header[0] = 0x6F; // SendRRData
    header[2] = 100;
    header[12] = 0x42;
    huge.write_all(&header).unwrap();
    let reply = read_frame(&mut huge);
    assert_eq!(reply.header.status, 0x65);
    assert_eq!(reply.header.sender_context[0], 0x42);
    let mut byte = [0u8; 1];
    assert_eq!(huge.read(&mut byte).unwrap(), 0);
    let mut unfinished = connect(server.tcp);
    unfinished.write_all(&header[..10]).unwrap();
    assert_eq!(unfinished.read(&mut byte).unwrap(), 0);
    // A well-behaved client is served.
    let mut steady = connect(server.tcp);
    assert_ne!(register_session(&mut steady), 0);

    let server = start(&[
        "modbus",
        "sim",
        "-a",
        "127.0.0.1:0",
        "--frame-timeout",
        "0.3",
        "40001=7",
    ]);
    let mut unfinished = connect(server.tcp);
    unfinished.write_all(&[0, 1, 0, 0, 0, 6, 1]).unwrap();
    assert_eq!(unfinished.read(&mut byte).unwrap(), 0);
}

/// `--route-path` and `-S` decide which Unconnected Send routes reach the controller; a
/// route to elsewhere gets general status 0x01 with 0x0311 (port not available) or
/// 0x0312 (link address not valid), as a ControlLogix answers.
#[test]
fn route_path_options() {
    for (options, refused) in [
        (&[][..], None),
        (&["--route-path", "1/0"], None),
        (
            &["--route-path", "[{\"port\": 1, \"link\": 3}]"],
            Some(0x0312),
        ),
        (&["--route-path", "false"], Some(0x0311)),
        (&["-S"], Some(0x0311)),
    ] {
        let mut args = vec!["enip", "server", "-a", "127.0.0.1:0", "X=INT"];
        args.extend(options);
        let server = start(&args);
        let mut stream = connect(server.tcp);
        let session = register_session(&mut stream);
        let read = MessageRouterRequest::new(
            service::READ_TAG,
            "X".parse().unwrap(),
            ReadTagRequest { elements: 1 }.to_vec(),
        );
        let reply = unconnected_send(&mut stream, session, read);
        match refused {
            None => assert_eq!(reply.general_status.0, 0, "{options:?}: {reply:?}"),
            Some(extended) => assert_eq!(
                (
                    reply.general_status.0,
                    reply.additional_status.first().copied()
                ),
                (0x01, Some(extended)),
                "{options:?}: {reply:?}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Modbus

/// One Modbus/TCP request and its response.
fn modbus_tcp(
    stream: &mut TcpStream,
    transaction: u16,
    request: &Request<'_>,
) -> Response<'static> {
    let pdu = request.to_vec();
    let mut adu = transaction.to_be_bytes().to_vec();
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    adu.push(1);
    adu.extend_from_slice(&pdu);
    stream.write_all(&adu).unwrap();
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(u16::from_be_bytes([header[0], header[1]]), transaction);
    let mut pdu = vec![0u8; usize::from(u16::from_be_bytes([header[4], header[5]])) - 1];
    stream.read_exact(&mut pdu).unwrap();
    Response::decode(&pdu).unwrap().into_owned()
}

fn holding(values: &[u16]) -> Response<'static> {
    Response::ReadHoldingRegisters(Registers::from_values(values))
}

fn modbus_read_write(runtime: &str) {
    let server = start_on(runtime, &["modbus", "sim", "40001-40010=99"], "(tcp)");
    let mut stream = connect(server.tcp);
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 10,
    };
    assert_eq!(modbus_tcp(&mut stream, 1, &read), holding(&[99; 10]));
    let write = Request::WriteSingleRegister {
        address: 4,
        value: 1234,
    };
    assert_eq!(
        modbus_tcp(&mut stream, 2, &write),
        Response::WriteSingleRegister {
            address: 4,
            value: 1234
        }
    );
    let read = Request::ReadHoldingRegisters {
        address: 3,
        quantity: 3,
    };
    assert_eq!(modbus_tcp(&mut stream, 3, &read), holding(&[99, 1234, 99]));
    // Past the configured registers: Illegal Data Address.
    let past = Request::ReadHoldingRegisters {
        address: 9,
        quantity: 2,
    };
    assert_eq!(modbus_tcp(&mut stream, 4, &past).function(), 0x83);
}

#[test]
fn modbus_sim_on_blocking() {
    modbus_read_write("blocking");
}

#[test]
fn modbus_sim_on_smol() {
    modbus_read_write("smol");
}

#[test]
fn modbus_sim_on_mio() {
    modbus_read_write("mio");
}

#[test]
fn modbus_sim_rtu_over_tcp() {
    for runtime in RUNTIMES {
        let server = start(&[
            "modbus",
            "sim",
            "-a",
            "127.0.0.1:0",
            "--runtime",
            runtime,
            "--framing",
            "rtu-over-tcp",
            "--unit",
            "7",
            "40001-40004=5",
        ]);
        let mut stream = connect(server.tcp);
        // Read 4 holding registers from unit 7: 07 03 0000 0004 CRC.
        let mut frame = vec![7, 0x03, 0, 0, 0, 4];
        frame.extend_from_slice(&crc16(&frame).to_le_bytes());
        stream.write_all(&frame).unwrap();
        let mut reply = [0u8; 3 + 8 + 2];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(
            &reply[..11],
            &[7, 3, 8, 0, 5, 0, 5, 0, 5, 0, 5],
            "{runtime}"
        );
        assert_eq!(crc16(&reply[..11]).to_le_bytes(), [reply[11], reply[12]]);
    }
}

/// An RTU slave on a serial line: a pty stands in for /dev/ttyUSB0.
#[cfg(unix)]
#[test]
fn modbus_sim_on_a_serial_line() {
    use serialport::{SerialPort, TTYPort};
    let (mut master, slave) = TTYPort::pair().unwrap();
    // The simulator opens the line itself (exclusively, as a serial port is).
    let path = slave.name().unwrap();
    drop(slave);
    let server = spawn(&[
        "modbus",
        "sim",
        "--serial",
        &path,
        "--baud",
        "19200",
        "-p",
        "40001-40004=5",
    ]);
    assert_eq!(
        server.line.trim_end(),
        format!("cpppo modbus sim: serving {path} at 19200 baud (rtu), runtime blocking")
    );
    // Write 40002 = 0x1234 (FC 6) to unit 1, then read 40001-40004 (FC 3).
    let mut write = vec![1, 0x06, 0, 1, 0x12, 0x34];
    write.extend_from_slice(&crc16(&write).to_le_bytes());
    master.write_all(&write).unwrap();
    // The echo of a write is the request itself.
    assert_eq!(read_serial(&mut master, write.len()), write);
    let mut read = vec![1, 0x03, 0, 0, 0, 4];
    read.extend_from_slice(&crc16(&read).to_le_bytes());
    master.write_all(&read).unwrap();
    let reply = read_serial(&mut master, 13);
    assert_eq!(&reply[..11], &[1, 3, 8, 0, 5, 0x12, 0x34, 0, 5, 0, 5]);
    assert_eq!(crc16(&reply[..11]).to_le_bytes(), [reply[11], reply[12]]);
    server.wait_printed("unit 1 write HoldingRegisters 1 <= [4660]");
}

/// Read `n` bytes from a pty within [`PATIENCE`] each.
#[cfg(unix)]
fn read_serial(port: &mut serialport::TTYPort, n: usize) -> Vec<u8> {
    use serialport::SerialPort;
    port.set_timeout(PATIENCE).unwrap();
    let mut got = vec![0u8; n];
    port.read_exact(&mut got).unwrap();
    got
}

#[test]
fn delays_and_evil_faults_from_the_command_line() {
    const DELAY: Duration = Duration::from_millis(250);
    // -d holds every reply, EtherNet/IP and Modbus alike.
    let enip = start(&["enip", "server", "-a", "127.0.0.1:0", "-d", "0.25", "X=INT"]);
    let mut stream = connect(enip.tcp);
    let asked = Instant::now();
    register_session(&mut stream);
    assert!(asked.elapsed() >= DELAY, "{:?}", asked.elapsed());
    let modbus = start(&[
        "modbus",
        "sim",
        "-a",
        "127.0.0.1:0",
        "-d",
        "0.25",
        "40001=7",
    ]);
    let mut stream = connect(modbus.tcp);
    let read = Request::ReadHoldingRegisters {
        address: 0,
        quantity: 1,
    };
    let asked = Instant::now();
    assert_eq!(modbus_tcp(&mut stream, 1, &read), holding(&[7]));
    assert!(asked.elapsed() >= DELAY, "{:?}", asked.elapsed());
    // --evil corrupt:unit flips the unit id of every reply.
    let evil = start(&[
        "modbus",
        "sim",
        "-a",
        "127.0.0.1:0",
        "--evil",
        "corrupt:unit",
        "40001=7",
    ]);
    let mut stream = connect(evil.tcp);
    stream
        .write_all(&[0, 9, 0, 0, 0, 6, 0x11, 0x03, 0, 0, 0, 1])
        .unwrap();
    let mut reply = [0u8; 11];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0, 9, 0, 0, 0, 5, !0x11, 0x03, 2, 0, 7]);
}

// ---------------------------------------------------------------------------------------
// Help

/// Every option and argument of the server commands' `--help` carries an example.
#[test]
fn help_explains_every_option_with_an_example() {
    for command in [
        &["enip", "server"][..],
        &["enip", "simulator"],
        &["modbus", "sim"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        // Each option's block starts with a line indented by two spaces and a dash, or an
        // argument's with `  [` or `  <`; it runs to the next such line.
        let mut blocks: Vec<String> = Vec::new();
        for line in text.lines() {
            let starts_block = ["  -", "      --", "  [", "  <"]
                .iter()
                .any(|p| line.starts_with(p));
            if starts_block {
                blocks.push(String::new());
            }
            if let Some(block) = blocks.last_mut() {
                block.push_str(line);
                block.push('\n');
            }
        }
        let blocks: Vec<_> = blocks
            .into_iter()
            .filter(|b| !b.trim_start().starts_with("-h, --help"))
            .collect();
        assert!(blocks.len() >= 10, "{args:?}: {blocks:#?}");
        for block in blocks {
            assert!(block.contains("Example"), "{args:?}: no example in {block}");
        }
        assert!(text.contains("Examples:\n  cpppo "), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Bad input: one line naming the culprit, exit status 2.

fn assert_refused(args: &[&str], culprit: &str) {
    let (code, stderr) = fails(args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(culprit), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_one_line_and_exit_status_2() {
    let cases: [(&[&str], &str); 13] = [
        (
            &["modbus", "sim", "--max-request-rate", "0", "40001=1"],
            "--max-request-rate",
        ),
        (
            &["enip", "server", "--max-pending-replies", "none", "X=INT"],
            "--max-pending-replies",
        ),
        (
            &["enip", "server", "-a", "127.0.0.1:0", "SCADA=INTEGER[10]"],
            "SCADA=INTEGER[10]",
        ),
        (
            &["enip", "server", "-a", "127.0.0.1:0", "SCADA=INT[x]"],
            "SCADA=INT[x]",
        ),
        (&["enip", "server", "-a", "127.0.0.1:http", "X=INT"], "http"),
        (
            &["enip", "server", "--config", "/no/such/cpppo.cfg", "X=INT"],
            "/no/such/cpppo.cfg",
        ),
        (
            &["enip", "server", "--tags", "/no/such/tags.json", "X=INT"],
            "/no/such/tags.json",
        ),
        (
            &["enip", "server", "--route-path", "[{\"port\": }", "X=INT"],
            "--route-path",
        ),
        (&["enip", "server", "-d", "soon", "X=INT"], "soon"),
        (&["enip", "server", "--runtime", "tokio", "X=INT"], "tokio"),
        (
            &["modbus", "sim", "-a", "127.0.0.1:0", "40001-4x0=1"],
            "40001-4x0=1",
        ),
        (&["modbus", "sim", "-a", ":99999", "40001=1"], "99999"),
        (
            &["modbus", "sim", "--evil", "explode", "40001=1"],
            "explode",
        ),
    ];
    for (args, culprit) in cases {
        assert_refused(args, culprit);
    }
}

#[test]
fn a_bad_config_file_names_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("cpppo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.cfg");
    std::fs::write(&cfg, "[Identity]\nthis line is not an option\n").unwrap();
    let tags = dir.join("bad.json");
    std::fs::write(&tags, "{\"not\": \"a tag list\"").unwrap();
    let cfg_arg = cfg.to_str().unwrap();
    assert_refused(&["enip", "server", "--config", cfg_arg, "X=INT"], cfg_arg);
    assert_refused(&["enip", "server", "--config", cfg_arg, "X=INT"], "line 2");
    let tags_arg = tags.to_str().unwrap();
    assert_refused(&["enip", "server", "--tags", tags_arg], tags_arg);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_port_in_use_is_refused() {
    for runtime in RUNTIMES {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        assert_refused(
            &[
                "modbus",
                "sim",
                "-a",
                &address,
                "--runtime",
                runtime,
                "40001=1",
            ],
            &address,
        );
        assert_refused(
            &[
                "enip",
                "server",
                "-a",
                &address,
                "--runtime",
                runtime,
                "X=INT",
            ],
            &address,
        );
    }
}
