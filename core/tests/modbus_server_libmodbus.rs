//! libmodbus's unit tests (stephane/libmodbus tests/unit-test-client.c, commit a1d00bf)
//! replayed against our simulated device, configured as its unit-test-server maps its
//! tables (tests/unit-test.h.in): every request the client makes, and the reply or
//! exception it asserts. The requests are built from that client's constants; the
//! assertions are libmodbus's (values read back, exception codes).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::time::Instant;

use cpppo_core::modbus::device::{Device, UnitData};
use cpppo_core::modbus::pdu::{Bits, Registers, Request, Response};
use cpppo_core::modbus::rtu::RtuFrame;
use cpppo_core::modbus::server::ServerConn;
use cpppo_core::modbus::tcp::{self, Adu};
use cpppo_core::wire::Encode;

const UT_BITS_ADDRESS: u16 = 0x130;
const UT_BITS_NB: u16 = 0x25;
const UT_BITS_TAB: [u8; 5] = [0xCD, 0x6B, 0xB2, 0x0E, 0x1B];
const UT_INPUT_BITS_ADDRESS: u16 = 0x1C4;
const UT_INPUT_BITS_NB: u16 = 0x16;
const UT_INPUT_BITS_TAB: [u8; 3] = [0xAC, 0xDB, 0x35];
const UT_REGISTERS_ADDRESS: u16 = 0x160;
const UT_REGISTERS_NB: u16 = 0x3;
const UT_REGISTERS_NB_MAX: u16 = 0x20;
const UT_REGISTERS_TAB: [u16; 3] = [0x022B, 0x0001, 0x0064];
const UT_INPUT_REGISTERS_ADDRESS: u16 = 0x108;
const UT_INPUT_REGISTERS_NB: u16 = 0x1;
const UT_INPUT_REGISTERS_TAB: [u16; 1] = [0x000A];
/// libmodbus's MODBUS_TCP_SLAVE: the unit id a Modbus/TCP client uses by default.
const MODBUS_TCP_SLAVE: u8 = 0xFF;
const SERVER_ID: u8 = 17;
const INVALID_SERVER_ID: u8 = 18;

/// The unit-test-server's mapping: each table from its start address, zeros except
/// the input bits and input registers, which it initialises from the tables above.
fn unit_test_server() -> UnitData {
    let mut data = UnitData::new();
    data.coils
        .define(UT_BITS_ADDRESS, &vec![false; usize::from(UT_BITS_NB)]);
    let inputs: Vec<bool> = Bits::from_packed(&UT_INPUT_BITS_TAB[..])
        .iter()
        .take(usize::from(UT_INPUT_BITS_NB))
        .collect();
    data.discrete_inputs.define(UT_INPUT_BITS_ADDRESS, &inputs);
    data.holding_registers.define(
        UT_REGISTERS_ADDRESS,
        &vec![0; usize::from(UT_REGISTERS_NB_MAX)],
    );
    data.input_registers
        .define(UT_INPUT_REGISTERS_ADDRESS, &UT_INPUT_REGISTERS_TAB);
    data
}

/// A Modbus/TCP client over one in-memory connection.
struct Client {
    device: Device,
    conn: ServerConn,
    tid: u16,
    now: Instant,
}

impl Client {
    fn new() -> Self {
        Client {
            device: Device::new(unit_test_server()),
            conn: ServerConn::tcp(),
            tid: 0,
            now: Instant::now(),
        }
    }

    /// Send a raw PDU, return the reply PDU; checks the MBAP header echo.
    fn raw(&mut self, pdu: &[u8]) -> Vec<u8> {
        self.tid = self.tid.wrapping_add(1);
        let mut adu = vec![(self.tid >> 8) as u8, self.tid as u8, 0, 0, 0];
        adu.push(pdu.len() as u8 + 1);
        adu.push(MODBUS_TCP_SLAVE);
        adu.extend_from_slice(pdu);
        self.conn.handle_input(self.now, &adu, &mut self.device);
        let mut out = Vec::new();
        assert!(
            self.conn.poll_transmit(self.now, &mut out),
            "no reply to {pdu:02x?}"
        );
        let mut d = tcp::decoder();
        d.handle_input(&out);
        let frame = d.next_frame().unwrap().expect("one whole reply");
        assert_eq!(d.buffered(), 0, "exactly one reply");
        let reply = Adu::decode(&frame).unwrap();
        assert_eq!(
            (reply.transaction_id, reply.unit_id),
            (self.tid, MODBUS_TCP_SLAVE)
        );
        reply.pdu.to_vec()
    }

    fn call(&mut self, request: Request<'_>) -> Response<'static> {
        let pdu = self.raw(&request.to_vec());
        Response::decode(&pdu).unwrap().into_owned()
    }

    /// The exception code the request is refused with.
    fn refused(&mut self, request: Request<'_>) -> u8 {
        let function = request.function();
        match self.call(request) {
            Response::Exception(e) => {
                assert_eq!(e.function, function);
                e.code.0
            }
            other => panic!("expected an exception, got {other:?}"),
        }
    }

    fn read_registers(&mut self, address: u16, quantity: u16) -> Vec<u16> {
        match self.call(Request::ReadHoldingRegisters { address, quantity }) {
            Response::ReadHoldingRegisters(r) => r.to_vec(),
            other => panic!("{other:?}"),
        }
    }

    fn read_bits(&mut self, address: u16, quantity: u16) -> Vec<bool> {
        match self.call(Request::ReadCoils { address, quantity }) {
            Response::ReadCoils(b) => b.iter().take(usize::from(quantity)).collect(),
            other => panic!("{other:?}"),
        }
    }
}

const ILLEGAL_FUNCTION: u8 = 0x01;
const ILLEGAL_DATA_ADDRESS: u8 = 0x02;
const ILLEGAL_DATA_VALUE: u8 = 0x03;

fn bits_of(bytes: &[u8], n: u16) -> Vec<bool> {
    Bits::from_packed(bytes)
        .iter()
        .take(usize::from(n))
        .collect()
}

#[test]
fn coils_discrete_inputs_and_registers_read_back() {
    let mut c = Client::new();
    // Single coil.
    assert_eq!(
        c.call(Request::WriteSingleCoil {
            address: UT_BITS_ADDRESS,
            value: true
        }),
        Response::WriteSingleCoil {
            address: UT_BITS_ADDRESS,
            value: true
        }
    );
    assert_eq!(c.read_bits(UT_BITS_ADDRESS, 1), [true]);
    // Multiple coils from UT_BITS_TAB, read back byte by byte.
    let tab = bits_of(&UT_BITS_TAB, UT_BITS_NB);
    assert_eq!(
        c.call(Request::WriteMultipleCoils {
            address: UT_BITS_ADDRESS,
            values: Bits::from_bools(&tab)
        }),
        Response::WriteMultipleCoils {
            address: UT_BITS_ADDRESS,
            quantity: UT_BITS_NB
        }
    );
    assert_eq!(c.read_bits(UT_BITS_ADDRESS, UT_BITS_NB), tab);
    // Discrete inputs.
    let Response::ReadDiscreteInputs(b) = c.call(Request::ReadDiscreteInputs {
        address: UT_INPUT_BITS_ADDRESS,
        quantity: UT_INPUT_BITS_NB,
    }) else {
        panic!()
    };
    assert_eq!(b.as_bytes(), UT_INPUT_BITS_TAB);
    // Single register.
    c.call(Request::WriteSingleRegister {
        address: UT_REGISTERS_ADDRESS,
        value: 0x1234,
    });
    assert_eq!(c.read_registers(UT_REGISTERS_ADDRESS, 1), [0x1234]);
    // Many registers.
    assert_eq!(
        c.call(Request::WriteMultipleRegisters {
            address: UT_REGISTERS_ADDRESS,
            values: Registers::from_values(&UT_REGISTERS_TAB)
        }),
        Response::WriteMultipleRegisters {
            address: UT_REGISTERS_ADDRESS,
            quantity: UT_REGISTERS_NB
        }
    );
    assert_eq!(
        c.read_registers(UT_REGISTERS_ADDRESS, UT_REGISTERS_NB),
        UT_REGISTERS_TAB
    );
    // Reading 0 registers: libmodbus refuses it before sending; the device would
    // answer Illegal Data Value.
    assert_eq!(
        c.raw(&[0x03, 0x01, 0x60, 0x00, 0x00]),
        [0x83, ILLEGAL_DATA_VALUE]
    );
    // Write zeros from the second register on and read all three in one request:
    // the first keeps UT_REGISTERS_TAB[0], the others are 0.
    let Response::ReadWriteMultipleRegisters(r) = c.call(Request::ReadWriteMultipleRegisters {
        read_address: UT_REGISTERS_ADDRESS,
        read_quantity: UT_REGISTERS_NB,
        write_address: UT_REGISTERS_ADDRESS + 1,
        values: Registers::from_values(&[0, 0]),
    }) else {
        panic!()
    };
    assert_eq!(r.to_vec(), [UT_REGISTERS_TAB[0], 0, 0]);
    // Input registers.
    let Response::ReadInputRegisters(r) = c.call(Request::ReadInputRegisters {
        address: UT_INPUT_REGISTERS_ADDRESS,
        quantity: UT_INPUT_REGISTERS_NB,
    }) else {
        panic!()
    };
    assert_eq!(r.to_vec(), UT_INPUT_REGISTERS_TAB);
    // Mask write: 0x12 AND 0xF2 OR (0x25 AND NOT 0xF2) = 0x17.
    c.call(Request::WriteSingleRegister {
        address: UT_REGISTERS_ADDRESS,
        value: 0x12,
    });
    c.call(Request::MaskWriteRegister {
        address: UT_REGISTERS_ADDRESS,
        and_mask: 0xF2,
        or_mask: 0x25,
    });
    assert_eq!(c.read_registers(UT_REGISTERS_ADDRESS, 1), [0x17]);
    // Report Server ID: an id byte, then the run indicator ON.
    let Response::ReportServerId(data) = c.call(Request::ReportServerId) else {
        panic!()
    };
    assert!(data.len() > 1 && data[1] == 0xFF, "{data:02x?}");
}

#[test]
fn the_mapping_ends_where_it_is_defined() {
    let mut c = Client::new();
    let end_bits = UT_BITS_ADDRESS + UT_BITS_NB;
    let end_regs = UT_REGISTERS_ADDRESS + UT_REGISTERS_NB_MAX;
    let three = Registers::from_values(&[0; 3]);
    let cases: Vec<Request<'static>> = vec![
        Request::ReadCoils {
            address: 0,
            quantity: 1,
        },
        Request::ReadCoils {
            address: UT_BITS_ADDRESS,
            quantity: UT_BITS_NB + 1,
        },
        Request::ReadDiscreteInputs {
            address: 0,
            quantity: 1,
        },
        Request::ReadDiscreteInputs {
            address: UT_INPUT_BITS_ADDRESS,
            quantity: UT_INPUT_BITS_NB + 1,
        },
        Request::ReadHoldingRegisters {
            address: 0,
            quantity: 1,
        },
        Request::ReadHoldingRegisters {
            address: UT_REGISTERS_ADDRESS,
            quantity: UT_REGISTERS_NB_MAX + 1,
        },
        Request::ReadInputRegisters {
            address: 0,
            quantity: 1,
        },
        Request::ReadInputRegisters {
            address: UT_INPUT_REGISTERS_ADDRESS,
            quantity: UT_INPUT_REGISTERS_NB + 1,
        },
        Request::WriteSingleCoil {
            address: 0,
            value: true,
        },
        Request::WriteSingleCoil {
            address: end_bits,
            value: true,
        },
        Request::WriteMultipleCoils {
            address: 0,
            values: Bits::from_bools(&[false]),
        },
        Request::WriteMultipleCoils {
            address: end_bits,
            values: Bits::from_bools(&vec![false; usize::from(UT_BITS_NB)]),
        },
        Request::WriteSingleRegister {
            address: 0,
            value: 0,
        },
        Request::WriteSingleRegister {
            address: end_regs,
            value: 0,
        },
        Request::WriteMultipleRegisters {
            address: 0,
            values: Registers::from_values(&[0]),
        },
        Request::WriteMultipleRegisters {
            address: end_regs,
            values: three.clone(),
        },
        Request::MaskWriteRegister {
            address: 0,
            and_mask: 0xF2,
            or_mask: 0x25,
        },
        Request::MaskWriteRegister {
            address: end_regs,
            and_mask: 0xF2,
            or_mask: 0x25,
        },
        Request::ReadWriteMultipleRegisters {
            read_address: 0,
            read_quantity: 1,
            write_address: 0,
            values: Registers::from_values(&[0]),
        },
        Request::ReadWriteMultipleRegisters {
            read_address: end_regs,
            read_quantity: UT_REGISTERS_NB,
            write_address: end_regs,
            values: three,
        },
    ];
    for request in cases {
        let what = format!("{request:?}");
        assert_eq!(c.refused(request), ILLEGAL_DATA_ADDRESS, "{what}");
    }
    // Nothing was written by any of them.
    assert_eq!(
        c.read_registers(UT_REGISTERS_ADDRESS, UT_REGISTERS_NB_MAX),
        vec![0; usize::from(UT_REGISTERS_NB_MAX)]
    );
}

/// libmodbus's test_server(): crafted requests with 0 and too many values, each
/// answered with Illegal Data Value, and an unknown function code.
#[test]
fn crafted_requests_get_illegal_data_value() {
    let mut c = Client::new();
    let [hi, lo] = UT_REGISTERS_ADDRESS.to_be_bytes();
    // Read 5 registers: 12 PDU bytes back.
    assert_eq!(c.raw(&[0x03, hi, lo, 0x00, 0x05]).len(), 12);
    // Reads of 0 and of the maximum plus one, for each read function.
    for (function, max) in [(0x01u8, 2000u16), (0x02, 2000), (0x03, 125), (0x04, 125)] {
        for n in [0, max + 1] {
            let [nh, nl] = n.to_be_bytes();
            assert_eq!(
                c.raw(&[function, hi, lo, nh, nl]),
                [function | 0x80, ILLEGAL_DATA_VALUE],
                "function {function:#x} with {n}"
            );
        }
    }
    // Write and read: read 0, then 126 registers, writing one.
    for n in [0u16, 126] {
        let [nh, nl] = n.to_be_bytes();
        assert_eq!(
            c.raw(&[0x17, hi, lo, nh, nl, 0, 0, 0, 1, 2, 0x12, 0x34]),
            [0x97, ILLEGAL_DATA_VALUE]
        );
    }
    // Write multiple registers / coils with 0 values, too many, and a byte count (6)
    // that does not match the quantity; the six data bytes are always sent.
    let data = [0x02, 0x2B, 0x00, 0x01, 0x00, 0x64];
    for (function, quantity, count) in [
        (0x10u8, 0u16, 0u8),
        (0x10, 124, 6),
        (0x10, 123, 6),
        (0x0F, 0, 0),
        (0x0F, 1969, 6),
        (0x0F, 1968, 6),
    ] {
        let [qh, ql] = quantity.to_be_bytes();
        let mut pdu = vec![function, hi, lo, qh, ql, count];
        pdu.extend_from_slice(&data);
        assert_eq!(
            c.raw(&pdu),
            [function | 0x80, ILLEGAL_DATA_VALUE],
            "function {function:#x} quantity {quantity} count {count}"
        );
    }
    // Invalid function code 0x42.
    assert_eq!(c.raw(&[0x42, 0, 0, 0, 0]), [0xC2, ILLEGAL_FUNCTION]);
    assert_eq!(c.conn.statistics().exceptions, 17);
}

/// On a serial line (RTU, here over TCP), requests for another unit, a response
/// seen on the bus, an invalid request for another unit and a broadcast read all go
/// unanswered; over Modbus/TCP the same requests are answered.
#[test]
fn other_slaves_and_broadcasts() {
    let frame = |unit: u8, pdu: &[u8]| {
        RtuFrame {
            unit,
            pdu: pdu.to_vec().into(),
        }
        .to_vec()
    };
    let [hi, lo] = UT_REGISTERS_ADDRESS.to_be_bytes();
    let now = Instant::now();
    let mut device = Device::with_units([SERVER_ID], unit_test_server());
    let mut conn = ServerConn::rtu_over_tcp();
    let mut out = Vec::new();
    for bytes in [
        frame(INVALID_SERVER_ID, &[0x03, 0x00, 0x01, 0x01, 0x01]),
        frame(INVALID_SERVER_ID, &[0x03, 0x04, 0, 0, 0, 0]),
        frame(INVALID_SERVER_ID, &[0x03, 0x00, 0x01, 0xFF, 0xFF]),
        frame(0, &[0x03, hi, lo, 0x00, UT_REGISTERS_NB as u8]),
    ] {
        conn.handle_input(now, &bytes, &mut device);
        assert!(!conn.poll_transmit(now, &mut out), "answered {bytes:02x?}");
    }
    // The server's own id is answered.
    conn.handle_input(
        now,
        &frame(SERVER_ID, &[0x03, hi, lo, 0x00, 0x03]),
        &mut device,
    );
    assert!(conn.poll_transmit(now, &mut out));
    assert_eq!(out, frame(SERVER_ID, &[0x03, 6, 0, 0, 0, 0, 0, 0]));

    // Modbus/TCP: libmodbus's server answers any unit id, broadcast 0 included.
    let mut c = Client::new();
    for unit in [INVALID_SERVER_ID, 0] {
        let mut adu = vec![
            0,
            9,
            0,
            0,
            0,
            6,
            unit,
            0x03,
            hi,
            lo,
            0,
            UT_REGISTERS_NB as u8,
        ];
        c.conn.handle_input(c.now, &adu, &mut c.device);
        out.clear();
        assert!(c.conn.poll_transmit(c.now, &mut out));
        adu.truncate(7);
        adu[5] = 9;
        adu.extend_from_slice(&[0x03, 6, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out, adu);
    }
}
