//! An engine served over a pty pair, as it would be on a serial line.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cpppo_blocking::{serve_stream, TimedStream};
use cpppo_core::engine::Server;
use cpppo_core::testing::{EchoEvent, EchoServer};
use serialport::TTYPort;

const PATIENCE: Duration = Duration::from_secs(10);

/// Read from the pty master until `n` bytes have come.
fn read_exactly(port: &mut TTYPort, n: usize) -> Vec<u8> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    port.set_read_timeout(Duration::from_millis(100)).unwrap();
    while got.len() < n {
        assert!(start.elapsed() < PATIENCE, "only {got:?}");
        match port.read(&mut buf) {
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    got
}

#[test]
fn serves_a_pty_with_delayed_replies_until_stopped() {
    let (mut master, slave) = TTYPort::pair().unwrap();
    let server = Arc::new(Mutex::new(EchoServer::new(Duration::from_millis(20))));
    let any = "0.0.0.0:0".parse().unwrap();
    let connection = server
        .lock()
        .unwrap()
        .accept(Instant::now(), any, any)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let line = {
        let (server, stop) = (server.clone(), stop.clone());
        thread::spawn(move || serve_stream(&server, connection, slave, &stop, |_| {}))
    };
    // Split across writes, pipelined: replies come in order, after their delay.
    master.write_all(b"read coi").unwrap();
    master.write_all(b"ls\nwrite reg\n").unwrap();
    assert_eq!(read_exactly(&mut master, 21), b"READ COILS\nWRITE REG\n");
    master.write_all(b"last\n").unwrap();
    assert_eq!(read_exactly(&mut master, 5), b"LAST\n");
    stop.store(true, Ordering::Release);
    line.join().unwrap().unwrap();
    let server = server.lock().unwrap();
    assert_eq!(server.lines, 3);
    assert_eq!(server.ended, 1);
}

#[test]
fn ends_when_the_server_is_done() {
    let (mut master, mut slave) = TTYPort::pair().unwrap();
    let server = Arc::new(Mutex::new(EchoServer::default()));
    let any = "0.0.0.0:0".parse().unwrap();
    let connection = server
        .lock()
        .unwrap()
        .accept(Instant::now(), any, any)
        .unwrap();
    // The line is lent, so the pty stays open for the reply after the server ends.
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    thread::scope(|scope| {
        let line = scope
            .spawn(|| serve_stream(&server, connection, &mut slave, &stop, |e| events.push(e)));
        master.write_all(b"SHUTDOWN\n").unwrap();
        line.join().unwrap().unwrap();
    });
    assert_eq!(
        events,
        [
            EchoEvent::Line(b"SHUTDOWN".to_vec()),
            EchoEvent::Eof { partial: 0 }
        ]
    );
    assert_eq!(read_exactly(&mut master, 3), b"OK\n");
    assert!(server.lock().unwrap().is_done());
}

/// The real Modbus engine as an RTU slave on the line: a request framed by the line's
/// silence is answered with its CRC; noise before it is dropped.
#[test]
fn modbus_rtu_on_a_pty() {
    use cpppo_core::modbus::device::Device;
    use cpppo_core::modbus::rtu::crc16;
    use cpppo_core::modbus::server::{ServerConn, Transport};

    let rtu = |pdu: &[u8]| {
        let mut frame = pdu.to_vec();
        frame.extend_from_slice(&crc16(pdu).to_le_bytes());
        frame
    };
    let (mut master, slave) = TTYPort::pair().unwrap();
    let device = Arc::new(Mutex::new(Device::from_specs(["40001-40004=7"]).unwrap()));
    let connection = ServerConn::new(Transport::RtuSerial { baud: 19_200 });
    let stop = Arc::new(AtomicBool::new(false));
    let line = {
        let (device, stop) = (device.clone(), stop.clone());
        thread::spawn(move || serve_stream(&device, connection, slave, &stop, |_| {}))
    };
    // Line noise, then silence, then a request.
    master.write_all(&[0xff, 0x00, 0x13]).unwrap();
    thread::sleep(Duration::from_millis(20));
    let write = rtu(&[1, 6, 0, 1, 0x0b, 0xb8]);
    master.write_all(&write).unwrap();
    assert_eq!(read_exactly(&mut master, write.len()), write);
    master.write_all(&rtu(&[1, 3, 0, 0, 0, 2])).unwrap();
    let reply = rtu(&[1, 3, 4, 0, 7, 0x0b, 0xb8]);
    assert_eq!(read_exactly(&mut master, reply.len()), reply);
    stop.store(true, Ordering::Release);
    line.join().unwrap().unwrap();
}
