//! The client-side targets: the EtherNet/IP client engine, the Modbus client and poller
//! engines fed arbitrary reply bytes, and the two text syntaxes users type (cpppo's
//! operation syntax and Modbus register numbering).
//!
//! The engine targets reuse [`EngineInput`]: a script of steps at increasing times, with
//! connection 0's data being the server's reply bytes and connection 1's data (or a
//! datagram's text) the operations submitted. Their seeds are real sessions, recorded by
//! running each client engine against the server engine in memory
//! ([`client_seeds`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cpppo_core::cip::operation::{parse_attribute_operation, parse_operation, Method, Operation};
use cpppo_core::engine::Driven;
use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions, OpId};
use cpppo_core::enip::encapsulation::Encapsulation;
use cpppo_core::enip::server::ServerConn as EnipConn;
use cpppo_core::modbus::client::{
    answers, ClientConfig as ModbusClientConfig, ClientConn as ModbusClient,
    ClientEvent as ModbusEvent, OpId as ModbusOp,
};
use cpppo_core::modbus::numbering::{Address, RegisterSpec};
use cpppo_core::modbus::pdu::Request as ModbusRequest;
use cpppo_core::modbus::poller::{PollEvent, Poller, PollerConfig, WriteId};
use cpppo_core::modbus::rtu::{crc_ok, request_len, FrameLen, RtuFrame};
use cpppo_core::modbus::server::{ServerConn as ModbusConn, Transport};
use cpppo_core::modbus::tcp::{Adu, MbapHeader};
use cpppo_core::wire::Encode;

use super::{chunks, enip_server_fixture, modbus_device_fixture, EngineInput, Step};

/// At most this many deadlines are handled while time advances.
const MAX_DEADLINES: usize = 10_000;

/// How long every script runs on after its last step, so every deadline falls due.
const AFTERWARDS: Duration = Duration::from_secs(3600);

/// The clients' per-operation timeout, in script time.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// Data steps fed whole, or split again into input-derived pieces.
fn pieces(bytes: &[u8], split: bool) -> Vec<&[u8]> {
    if split && !bytes.is_empty() {
        chunks(bytes)
    } else {
        vec![bytes]
    }
}

/// A run of one engine over a script: its clock, its engine's deadlines, the checks
/// after every call.
trait Run {
    /// The script's clock.
    fn now(&mut self) -> &mut Instant;
    /// The engine (its deadlines, through the surface every runtime drives).
    fn engine(&mut self) -> &mut dyn Driven;
    /// Drain output and events, checking the invariants.
    fn flush(&mut self);

    /// Let time pass until `to`, handling every deadline that falls due on the way, in
    /// order; once handled, a deadline moves on.
    fn advance(&mut self, to: Instant) {
        for _ in 0..MAX_DEADLINES {
            let Some(due) = self.engine().deadline().filter(|d| *d <= to) else {
                break;
            };
            let now = (*self.now()).max(due);
            *self.now() = now;
            self.engine().timeout(now);
            self.flush();
            if let Some(d) = self.engine().deadline() {
                assert!(d > now, "deadline {d:?} not after {now:?}");
            }
        }
        let now = (*self.now()).max(to);
        *self.now() = now;
    }
}

/// [`Run`] for a run with a `now` field, its engine in `$engine` and a `flush` method.
macro_rules! run {
    ($run:ty, $engine:ident) => {
        impl Run for $run {
            fn now(&mut self) -> &mut Instant {
                &mut self.now
            }
            fn engine(&mut self) -> &mut dyn Driven {
                &mut self.$engine
            }
            fn flush(&mut self) {
                <$run>::flush(self)
            }
        }
    };
}

run!(EnipClientRun, client);
run!(ModbusClientRun, client);
run!(PollerRun, poller);

// ---------------------------------------------------------------------------------------
// EtherNet/IP client

/// `enip_client` flag: open a CIP connection (Forward Open) and send connected.
pub const CLIENT_CONNECTED: u8 = 1;
/// `enip_client` flag: use the Fragmented services for every read and write.
pub const CLIENT_FRAGMENT: u8 = 2;
/// `enip_client` flag: ListIdentity after RegisterSession.
pub const CLIENT_LIST_IDENTITY: u8 = 4;
/// `enip_client` flag: no route path and no Unconnected Send (`-S`).
pub const CLIENT_SIMPLE: u8 = 8;
/// `enip_client` flag: a connection size of 4000 (Large Forward Open).
pub const CLIENT_LARGE: u8 = 16;
/// `enip_client` flag: pack operations into Multiple Service Packets.
pub const CLIENT_MULTIPLE: u8 = 32;
/// `enip_client` flag: a small unconnected request budget (fragmented writes).
pub const CLIENT_SMALL: u8 = 64;

/// The operations a byte of connection 1's data submits (by its value modulo the
/// count): every method, against the fixture's tags ([`enip_server_fixture`]), some
/// refused. `attr ` means cpppo's `getattr` syntax.
pub const ENIP_CLIENT_OPS: &[&str] = &[
    "SCADA[0-9]",
    "SCADA[1-3]=4,5,6",
    "Temp",
    "Temp=(REAL)1.5",
    "Msg",
    "Msg=(STRING)\"hello, fuzz\"",
    "M[0]",
    "M[1].Speed=(REAL)2.5",
    "M[0].Hist[0-3]",
    "SCADA[0-9]+4",
    "SCADA[2-3]+4=(INT)7,8",
    "Nope",
    "SCADA[20]",
    "attr @1/1",
    "attr @1/1/7",
    "attr @0xF5/1/5=(USINT)1",
    "list tags",
    "template",
];

/// The operation `ENIP_CLIENT_OPS[i]` names.
fn enip_client_op(i: usize) -> Option<Operation> {
    let text = ENIP_CLIENT_OPS.get(i % ENIP_CLIENT_OPS.len())?;
    match *text {
        "list tags" => Operation::list_tags(None).ok(),
        "template" => Some(Operation::read_template(1)),
        t => match t.strip_prefix("attr ") {
            Some(a) => parse_attribute_operation(a).ok(),
            None => parse_operation(t).ok(),
        },
    }
}

/// The client options `flags` and `param` ask for: depth 1 + `param & 3`, MSP packing
/// within 200 + 16 x (`param` >> 2) bytes.
pub fn enip_client_options(flags: u8, param: u8) -> ClientOptions {
    let mut o = if flags & CLIENT_SIMPLE != 0 {
        ClientOptions::simple()
    } else {
        ClientOptions::default()
    };
    o.connected = flags & CLIENT_CONNECTED != 0;
    o.fragment = flags & CLIENT_FRAGMENT != 0;
    o.list_identity = flags & CLIENT_LIST_IDENTITY != 0;
    if flags & CLIENT_LARGE != 0 {
        o.connection_size = 4000;
    }
    if flags & CLIENT_MULTIPLE != 0 {
        o.multiple = 200 + 16 * usize::from(param >> 2);
    }
    if flags & CLIENT_SMALL != 0 {
        o.unconnected_size = 120;
    }
    o.depth = 1 + usize::from(param & 3);
    o.timeout = CLIENT_TIMEOUT;
    o
}

/// One run of the EtherNet/IP client engine over a script.
struct EnipClientRun {
    now: Instant,
    client: ClientConn,
    submitted: BTreeSet<OpId>,
    done: BTreeSet<OpId>,
    /// Everything the client sent, and every event, in order (for the split check).
    sent: Vec<u8>,
    events: Vec<ClientEvent>,
    finished: bool,
}

impl EnipClientRun {
    fn new(now: Instant, options: ClientOptions) -> Self {
        let mut run = EnipClientRun {
            now,
            client: ClientConn::new(now, options),
            submitted: BTreeSet::new(),
            done: BTreeSet::new(),
            sent: Vec::new(),
            events: Vec::new(),
            finished: false,
        };
        run.flush();
        run
    }

    fn submit(&mut self, op: Operation) {
        let id = self.client.submit(self.now, op);
        assert!(self.submitted.insert(id), "op id {id:?} given twice");
        self.flush();
    }

    /// Drain output and events, checking the invariants that hold after every call.
    fn flush(&mut self) {
        let mut out = Vec::new();
        while self.client.poll_transmit(self.now, &mut out) {}
        if !out.is_empty() {
            assert!(!self.finished, "closed and flushed, then sent {out:02x?}");
            let mut rest = out.as_slice();
            while !rest.is_empty() {
                match Encapsulation::decode(rest) {
                    Ok((_, used)) => rest = rest.get(used..).unwrap_or_default(),
                    Err(e) => panic!("the client sent a broken frame: {e}: {out:02x?}"),
                }
            }
            self.sent.extend_from_slice(&out);
        }
        while let Some(event) = self.client.poll_event() {
            let op = match &event {
                ClientEvent::Reply { op, .. } | ClientEvent::Lost { op, .. } => Some(*op),
                _ => None,
            };
            if let Some(op) = op {
                assert!(self.submitted.contains(&op), "event for unknown {op:?}");
                assert!(self.done.insert(op), "{op:?} finished twice: {event:?}");
            }
            self.events.push(event);
        }
        assert_eq!(
            self.client.outstanding(),
            self.submitted.len() - self.done.len(),
            "outstanding operations"
        );
        let stats = self.client.stats();
        assert_eq!(stats.replies + stats.lost, self.done.len() as u64);
        if self.client.is_closed() {
            self.finished = true;
            assert_eq!(self.client.poll_timeout(), None, "closed: no deadline");
        }
    }
}

fn run_enip_client(input: &EngineInput, split: bool) -> EnipClientRun {
    let t0 = Instant::now();
    let mut run = EnipClientRun::new(t0, enip_client_options(input.flags, input.param));
    for (gap, step) in &input.steps {
        let at = run.now + Duration::from_millis(u64::from(*gap));
        run.advance(at);
        match step {
            Step::Data { conn: 0, bytes } => {
                // Every piece in, then the output: the engine contract is the same
                // output after the same bytes, however split (not the same output
                // when it is polled between pieces: a pipelining client may send the
                // next request as soon as one reply is in).
                for piece in pieces(bytes, split) {
                    run.client.handle_input(run.now, piece);
                }
                run.flush();
            }
            Step::Data { bytes, .. } => {
                for b in bytes {
                    if let Some(op) = enip_client_op(usize::from(*b)) {
                        run.submit(op);
                    }
                }
            }
            Step::Datagram(text) => {
                if let Ok(op) = parse_operation(&String::from_utf8_lossy(text)) {
                    run.submit(op);
                }
            }
            Step::Eof(0) => {
                run.client.handle_eof(run.now);
                run.flush();
            }
            Step::Eof(_) => {
                run.client.close(run.now);
                run.flush();
            }
            Step::Wait => {}
        }
    }
    let end = run.now + AFTERWARDS;
    run.advance(end);
    run
}

/// `enip_client`: the EtherNet/IP client engine ([`ClientConn`], options from the
/// flags) fed a script: connection 0's data is reply bytes, connection 1's data submits
/// [`ENIP_CLIENT_OPS`], a datagram's text is parsed as an operation and submitted, EOF
/// on 0 is the server hanging up, on 1 a `close`. No panic; everything sent is whole
/// encapsulation frames; every op submitted finishes exactly once (a `Reply` or a
/// `Lost`), `outstanding` counts the others; deadlines move on once handled; a closed
/// client has no deadline and sends nothing more; an hour after the last step every op
/// is finished; the replies split again give the same bytes and events.
pub fn enip_client(data: &[u8]) {
    let Ok(input) = arbitrary::Unstructured::new(data).arbitrary::<EngineInput>() else {
        return;
    };
    let whole = run_enip_client(&input, false);
    assert_eq!(whole.done, whole.submitted, "every op finished");
    let split = run_enip_client(&input, true);
    assert_eq!(whole.sent, split.sent, "the same bytes, however split");
    // Compared as printed: a REAL read may be NaN, which equals nothing by value.
    assert_eq!(
        format!("{:?}", whole.events),
        format!("{:?}", split.events),
        "the same events, however split"
    );
}

/// What an `enip_client` script did: (operations submitted, replied with success).
pub fn enip_client_summary(data: &[u8]) -> Option<(usize, usize)> {
    let input = arbitrary::Unstructured::new(data)
        .arbitrary::<EngineInput>()
        .ok()?;
    let run = run_enip_client(&input, false);
    let ok = run
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Reply { result: Ok(_), .. }))
        .count();
    Some((run.submitted.len(), ok))
}

/// Record an `enip_client` seed: the client with these options and ops against the
/// fixture server, every server output a data step on connection 0; then a `close` and
/// its replies.
pub fn record_enip_client(flags: u8, param: u8, ops: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut server = enip_server_fixture(0, 0);
    let peer = std::net::SocketAddr::from(([10, 0, 0, 2], 50000));
    let mut conn = EnipConn::new(now, peer, &mut server);
    let mut client = ClientConn::new(now, enip_client_options(flags, param));
    let mut steps = vec![(
        0,
        Step::Data {
            conn: 1,
            bytes: ops.to_vec(),
        },
    )];
    for b in ops {
        if let Some(op) = enip_client_op(usize::from(*b)) {
            client.submit(now, op);
        }
    }
    let mut closing = false;
    for _ in 0..1000 {
        let mut up = Vec::new();
        while client.poll_transmit(now, &mut up) {}
        conn.handle_input(now, &up, &mut server);
        let mut down = Vec::new();
        while conn.poll_transmit(now, &mut down) {}
        while client.poll_event().is_some() {}
        if !down.is_empty() {
            client.handle_input(now, &down);
            steps.push((
                1,
                Step::Data {
                    conn: 0,
                    bytes: down,
                },
            ));
        } else if up.is_empty() {
            if closing || client.is_closed() {
                break;
            }
            closing = true;
            client.close(now);
            steps.push((1, Step::Eof(1)));
        }
    }
    EngineInput {
        flags,
        param,
        steps,
    }
    .to_bytes()
}

// ---------------------------------------------------------------------------------------
// Modbus client

/// `modbus_client` flag: RTU over TCP rather than Modbus/TCP.
pub const MODBUS_CLIENT_RTU: u8 = 1;
/// `modbus_client` flag: unit 0 is a broadcast over Modbus/TCP too.
pub const MODBUS_CLIENT_TCP_BROADCAST: u8 = 2;

/// The request PDUs a byte of connection 1's data submits (by its value modulo the
/// count; bit 7 sends it to unit 0, else unit 1): every function, against the fixture
/// device's tables ([`modbus_device_fixture`]), some beyond them.
pub const MODBUS_CLIENT_PDUS: &[&[u8]] = &[
    &[0x01, 0x00, 0x00, 0x00, 0x13],
    &[0x02, 0x00, 0x04, 0x00, 0x10],
    &[0x03, 0x00, 0x00, 0x00, 0x7D],
    &[0x04, 0x00, 0x00, 0x00, 0x08],
    &[0x05, 0x00, 0x03, 0xFF, 0x00],
    &[0x06, 0x00, 0x6B, 0x12, 0x34],
    &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01],
    &[
        0x10, 0x00, 0x6B, 0x00, 0x03, 0x06, 0x02, 0x2B, 0x00, 0x01, 0x00, 0x64,
    ],
    &[0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25],
    &[
        0x17, 0x00, 0x01, 0x00, 0x03, 0x00, 0x02, 0x00, 0x01, 0x02, 0x00, 0x17,
    ],
    &[0x2B, 0x0E, 0x01, 0x00],
    &[0x03, 0x01, 0x60, 0x00, 0x05],
    &[0x11],
];

/// The client configuration `flags` and `param` ask for: depth 1 + `param & 7`.
pub fn modbus_client_config(flags: u8, param: u8) -> (Transport, ModbusClientConfig) {
    let transport = if flags & MODBUS_CLIENT_RTU != 0 {
        Transport::RtuOverTcp
    } else {
        Transport::Tcp
    };
    let config = ModbusClientConfig {
        depth: 1 + usize::from(param & 7),
        timeout: CLIENT_TIMEOUT,
        tcp_broadcast: flags & MODBUS_CLIENT_TCP_BROADCAST != 0,
        first_transaction_id: u16::from(param),
    };
    (transport, config)
}

fn modbus_client_request(b: u8) -> Option<(ModbusRequest<'static>, u8)> {
    let pdu = MODBUS_CLIENT_PDUS.get(usize::from(b & 0x7F) % MODBUS_CLIENT_PDUS.len())?;
    let request = ModbusRequest::decode(pdu).ok()?.into_owned();
    Some((request, if b & 0x80 != 0 { 0 } else { 1 }))
}

struct ModbusClientRun {
    now: Instant,
    client: ModbusClient,
    /// RTU frame lengths of the requests submitted and not yet sent, in order (an RTU
    /// Diagnostics request's length is not on the wire).
    unsent: std::collections::VecDeque<usize>,
    requests: BTreeMap<ModbusOp, ModbusRequest<'static>>,
    done: BTreeSet<ModbusOp>,
    sent: Vec<u8>,
    events: Vec<ModbusEvent>,
    finished: bool,
}

impl ModbusClientRun {
    fn submit(&mut self, request: ModbusRequest<'static>, unit: u8) {
        if !self.client.is_closed() {
            self.unsent.push_back(1 + request.encoded_len() + 2);
        }
        let op = self.client.submit(self.now, request.clone(), unit);
        assert!(self.requests.insert(op, request).is_none(), "{op:?} twice");
        self.flush();
    }

    fn flush(&mut self) {
        let mut out = Vec::new();
        while self.client.poll_transmit(self.now, &mut out) {}
        assert!(
            self.client.in_flight() <= self.client.depth(),
            "more in flight than the depth"
        );
        if !out.is_empty() {
            assert!(!self.finished, "closed, then sent {out:02x?}");
            check_modbus_requests(self.client.transport(), &out, &mut self.unsent);
            self.sent.extend_from_slice(&out);
        }
        while let Some(event) = self.client.poll_event() {
            let op = match &event {
                ModbusEvent::Reply { op, response, .. } => {
                    if let (Ok(r), Some(q)) = (response, self.requests.get(op)) {
                        assert_eq!(answers(q, r), Ok(()), "a reply that does not answer");
                    }
                    Some(*op)
                }
                ModbusEvent::Broadcast { op }
                | ModbusEvent::Timeout { op }
                | ModbusEvent::Invalid { op, .. }
                | ModbusEvent::Aborted { op } => Some(*op),
                _ => None,
            };
            if let Some(op) = op {
                assert!(self.requests.contains_key(&op), "event for unknown {op:?}");
                assert!(self.done.insert(op), "{op:?} finished twice: {event:?}");
            }
            self.events.push(event);
        }
        assert_eq!(
            self.client.in_flight() + self.client.queued(),
            self.requests.len() - self.done.len(),
            "unfinished ops"
        );
        if self.client.is_closed() {
            self.finished = true;
            assert_eq!(self.client.poll_timeout(), None, "closed: no deadline");
        }
    }
}

/// Everything a Modbus client sends is whole requests: MBAP ADUs whose PDU decodes as a
/// request, or RTU frames of a request's length with a good CRC.
fn check_modbus_requests(
    transport: Transport,
    out: &[u8],
    unsent: &mut std::collections::VecDeque<usize>,
) {
    let mut rest = out;
    while !rest.is_empty() {
        let len = match transport {
            Transport::Tcp => match MbapHeader::decode(rest) {
                Ok(h) => h.adu_len(),
                Err(e) => panic!("a broken request header: {e}: {out:02x?}"),
            },
            _ => {
                let expected = unsent.pop_front();
                match (request_len(rest), expected) {
                    (_, Some(n)) => n,
                    (FrameLen::Known(n), None) => n,
                    (other, None) => panic!("an RTU request of no length ({other:?}): {out:02x?}"),
                }
            }
        };
        let frame = rest
            .get(..len)
            .unwrap_or_else(|| panic!("short: {out:02x?}"));
        match transport {
            Transport::Tcp => {
                let adu = Adu::decode(frame).unwrap_or_else(|e| panic!("ADU: {e}"));
                assert!(adu.request().is_ok(), "request PDU {frame:02x?}");
            }
            _ => {
                assert!(crc_ok(frame), "RTU request CRC {frame:02x?}");
                let f = RtuFrame::decode(frame).unwrap_or_else(|e| panic!("RTU: {e}"));
                assert!(f.request().is_ok(), "request PDU {frame:02x?}");
            }
        }
        rest = rest.get(len..).unwrap_or_default();
    }
}

fn run_modbus_client(input: &EngineInput, split: bool) -> ModbusClientRun {
    let now = Instant::now();
    let (transport, config) = modbus_client_config(input.flags, input.param);
    let mut run = ModbusClientRun {
        now,
        client: ModbusClient::new(transport, config),
        unsent: std::collections::VecDeque::new(),
        requests: BTreeMap::new(),
        done: BTreeSet::new(),
        sent: Vec::new(),
        events: Vec::new(),
        finished: false,
    };
    for (gap, step) in &input.steps {
        let at = run.now + Duration::from_millis(u64::from(*gap));
        run.advance(at);
        match step {
            Step::Data { conn: 0, bytes } => {
                // Every piece in, then the output: the engine contract is the same
                // output after the same bytes, however split (not the same output
                // when it is polled between pieces: a pipelining client may send the
                // next request as soon as one reply is in).
                for piece in pieces(bytes, split) {
                    run.client.handle_input(run.now, piece);
                }
                run.flush();
            }
            Step::Data { bytes, .. } => {
                for b in bytes {
                    if let Some((request, unit)) = modbus_client_request(*b) {
                        run.submit(request, unit);
                    }
                }
            }
            Step::Datagram(bytes) => {
                // A unit byte, then any PDU that decodes as a request.
                if let Some((unit, pdu)) = bytes.split_first() {
                    if let Ok(request) = ModbusRequest::decode(pdu) {
                        run.submit(request.into_owned(), *unit);
                    }
                }
            }
            Step::Eof(_) => {
                run.client.handle_eof(run.now);
                run.flush();
            }
            Step::Wait => {}
        }
    }
    let end = run.now + AFTERWARDS;
    run.advance(end);
    run
}

/// `modbus_client`: the Modbus client engine (Modbus/TCP or RTU over TCP, depth and
/// first transaction id from `param`) fed a script: connection 0's data is reply
/// bytes, connection 1's data submits [`MODBUS_CLIENT_PDUS`], a datagram is a unit and
/// a request PDU, EOF is the server hanging up. No panic; everything sent is whole
/// requests; never more in flight than the depth; every op finishes exactly once
/// (`Reply`, `Timeout`, `Broadcast`, `Invalid` or `Aborted`), and a `Reply` answers its
/// own request; deadlines move on once handled; a lost connection has no deadline and
/// sends nothing; an hour after the last step every op is finished; over Modbus/TCP,
/// the replies split again give the same bytes and events.
pub fn modbus_client(data: &[u8]) {
    let Ok(input) = arbitrary::Unstructured::new(data).arbitrary::<EngineInput>() else {
        return;
    };
    let whole = run_modbus_client(&input, false);
    let all: BTreeSet<ModbusOp> = whole.requests.keys().copied().collect();
    assert_eq!(whole.done, all, "every op finished");
    if input.flags & MODBUS_CLIENT_RTU != 0 {
        // RTU over TCP resynchronises on noise by what is buffered: not split-invariant
        // (fuzz/README.md, finding 4).
        return;
    }
    let split = run_modbus_client(&input, true);
    assert_eq!(whole.sent, split.sent, "the same bytes, however split");
    assert_eq!(whole.events, split.events, "the same events, however split");
}

/// What a `modbus_client` script did: (ops submitted, replies that were not exceptions).
pub fn modbus_client_summary(data: &[u8]) -> Option<(usize, usize)> {
    let input = arbitrary::Unstructured::new(data)
        .arbitrary::<EngineInput>()
        .ok()?;
    let run = run_modbus_client(&input, false);
    let ok = run
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ModbusEvent::Reply {
                    response: Ok(_),
                    ..
                }
            )
        })
        .count();
    Some((run.requests.len(), ok))
}

/// Record a `modbus_client` seed against the fixture device (every table).
pub fn record_modbus_client(flags: u8, param: u8, ops: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let (transport, config) = modbus_client_config(flags, param);
    let mut device = modbus_device_fixture(u8::from(transport != Transport::Tcp), 0);
    let mut server = ModbusConn::new(transport);
    let mut client = ModbusClient::new(transport, config);
    for b in ops {
        if let Some((request, unit)) = modbus_client_request(*b) {
            client.submit(now, request, unit);
        }
    }
    let mut steps = vec![(
        0,
        Step::Data {
            conn: 1,
            bytes: ops.to_vec(),
        },
    )];
    for _ in 0..1000 {
        let mut up = Vec::new();
        while client.poll_transmit(now, &mut up) {}
        server.handle_input(now, &up, &mut device);
        let mut down = Vec::new();
        while server.poll_transmit(now, &mut down) {}
        while client.poll_event().is_some() {}
        if down.is_empty() && up.is_empty() {
            break;
        }
        if !down.is_empty() {
            client.handle_input(now, &down);
            steps.push((
                1,
                Step::Data {
                    conn: 0,
                    bytes: down,
                },
            ));
        }
    }
    EngineInput {
        flags,
        param,
        steps,
    }
    .to_bytes()
}

// ---------------------------------------------------------------------------------------
// Modbus poller

/// `modbus_poller` flag: RTU over TCP.
pub const POLLER_RTU: u8 = 1;
/// `modbus_poller` flag: every other connect fails.
pub const POLLER_CONNECT_FAILS: u8 = 2;
/// `modbus_poller` flag: merge runs within 8 addresses of each other.
pub const POLLER_REACH: u8 = 4;
/// `modbus_poller` flag: single writes as Write Multiple.
pub const POLLER_MULTI: u8 = 8;

/// The ranges a byte of connection 1's data polls (by its value modulo the count), at
/// 100 ms x (1 + the byte's top 3 bits).
pub const POLLER_RANGES: &[&str] = &[
    "40001-40010",
    "40005-40020",
    "40100-40125",
    "1-16",
    "10001-10008",
    "30001-30016",
    "40200",
    "400001-400003",
];

/// The poller configuration `flags` and `param` ask for: depth 1 + `param & 3`.
pub fn poller_config(flags: u8, param: u8) -> PollerConfig {
    let mut c = PollerConfig::default();
    if flags & POLLER_RTU != 0 {
        c.transport = Transport::RtuOverTcp;
    }
    c.client.depth = 1 + usize::from(param & 3);
    c.client.timeout = CLIENT_TIMEOUT;
    c.reach = if flags & POLLER_REACH != 0 { 8 } else { 1 };
    c.multi = flags & POLLER_MULTI != 0;
    c.backoff = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(2);
    c
}

struct PollerRun {
    now: Instant,
    poller: Poller,
    connected: bool,
    connects: u64,
    fail_connects: bool,
    writes: BTreeSet<WriteId>,
    done: BTreeSet<WriteId>,
    sent: Vec<u8>,
    events: Vec<PollEvent>,
    /// The server of a recording (`None` when fuzzing): what it answered, per step.
    server: Option<(ModbusConn, cpppo_core::modbus::device::Device)>,
    recorded: Vec<Vec<u8>>,
}

impl PollerRun {
    fn flush(&mut self) {
        for _ in 0..MAX_DEADLINES {
            let mut out = Vec::new();
            while self.poller.poll_transmit(self.now, &mut out) {}
            if !out.is_empty() {
                assert!(self.connected, "sent while not connected: {out:02x?}");
                self.sent.extend_from_slice(&out);
                if let Some((server, device)) = &mut self.server {
                    server.handle_input(self.now, &out, device);
                    let mut down = Vec::new();
                    while server.poll_transmit(self.now, &mut down) {}
                    if !down.is_empty() {
                        self.poller.handle_input(self.now, &down);
                        self.recorded.push(down);
                    }
                }
            }
            let mut any = !out.is_empty();
            while let Some(event) = self.poller.poll_event() {
                any = true;
                match &event {
                    PollEvent::Connect => {
                        assert!(!self.connected, "connect while connected");
                        self.connects += 1;
                        if self.fail_connects && self.connects % 2 == 1 {
                            self.poller.handle_connect_failed(self.now);
                        } else {
                            self.connected = true;
                            self.poller.handle_connected(self.now);
                        }
                    }
                    PollEvent::Disconnect { .. } => self.connected = false,
                    PollEvent::Written { write, .. } | PollEvent::WriteFailed { write, .. } => {
                        assert!(self.writes.contains(write), "unknown {write:?}");
                        assert!(self.done.insert(*write), "{write:?} finished twice");
                    }
                    _ => {}
                }
                self.events.push(event);
            }
            assert_eq!(self.poller.is_connected(), self.connected, "connected");
            if !any {
                return;
            }
        }
    }

    fn step(&mut self, step: &Step, split: bool) {
        match step {
            Step::Data { conn: 0, bytes } => {
                for piece in pieces(bytes, split) {
                    self.poller.handle_input(self.now, piece);
                }
                self.flush();
            }
            Step::Data { bytes, .. } => {
                for b in bytes {
                    let spec = POLLER_RANGES[usize::from(*b) % POLLER_RANGES.len()];
                    let rate = Duration::from_millis(100 * (1 + u64::from(b >> 5)));
                    let polled = self.poller.poll(self.now, spec, Some(rate));
                    assert!(polled.is_ok(), "{spec}: {polled:?}");
                }
                self.flush();
            }
            Step::Datagram(bytes) => {
                // Odd first byte: a write spec; even: a range to poll (any text).
                if let Some((kind, text)) = bytes.split_first() {
                    let text = String::from_utf8_lossy(text);
                    if kind & 1 == 1 {
                        if let Ok(w) = self.poller.write_spec(self.now, &text) {
                            assert!(self.writes.insert(w), "{w:?} twice");
                        }
                    } else {
                        let _ = self.poller.poll(self.now, &text, None);
                    }
                }
                self.flush();
            }
            Step::Eof(_) => {
                if self.connected {
                    self.connected = false;
                    self.poller.handle_disconnected(self.now);
                }
                self.flush();
            }
            Step::Wait => {}
        }
    }
}

/// How long a poller run goes on after the last step: long enough for a write queued
/// while disconnected to be sent and time out, not so long that the polling dominates.
const POLLER_AFTERWARDS: Duration = Duration::from_secs(20);

fn run_poller(input: &EngineInput, split: bool) -> PollerRun {
    let now = Instant::now();
    let mut run = PollerRun {
        now,
        poller: Poller::new(poller_config(input.flags, input.param)),
        connected: false,
        connects: 0,
        fail_connects: input.flags & POLLER_CONNECT_FAILS != 0,
        writes: BTreeSet::new(),
        done: BTreeSet::new(),
        sent: Vec::new(),
        events: Vec::new(),
        server: None,
        recorded: Vec::new(),
    };
    run.flush();
    for (gap, step) in &input.steps {
        let at = run.now + Duration::from_millis(u64::from(*gap));
        run.advance(at);
        run.step(step, split);
    }
    // Cut the connection so that nothing stays in flight, then let everything finish.
    run.step(&Step::Eof(0), split);
    let end = run.now + POLLER_AFTERWARDS;
    run.advance(end);
    run
}

/// `modbus_poller`: the Modbus poller engine ([`Poller`]) fed a script: connection 0's
/// data is reply bytes, connection 1's data polls [`POLLER_RANGES`], a datagram is a
/// write spec or a range to poll in any text, EOF drops the connection; `Connect` is
/// answered at once (every other one failing with [`POLLER_CONNECT_FAILS`]). No panic;
/// nothing is sent while disconnected; `is_connected` follows the connects and
/// disconnects; every write finishes exactly once (after the script, the connection is
/// dropped and 20 s pass); deadlines move on once handled; the replies split again give
/// the same bytes, and the same events unless the connection broke (finding 7).
pub fn modbus_poller(data: &[u8]) {
    let Ok(input) = arbitrary::Unstructured::new(data).arbitrary::<EngineInput>() else {
        return;
    };
    let whole = run_poller(&input, false);
    assert_eq!(whole.done, whole.writes, "every write finished");
    let split = run_poller(&input, true);
    assert_eq!(whole.sent, split.sent, "the same bytes, however split");
    // Not the same events when the stream breaks: the poller starts its next cycle as
    // soon as one ends, inside `handle_input`, so a reply and a broken frame in one
    // piece end the cycle and the connection together, while in two pieces the next
    // cycle starts in between and its reads fail too (fuzz/README.md, finding 7).
    let broke = whole
        .events
        .iter()
        .any(|e| matches!(e, PollEvent::Disconnect { .. }));
    if !broke {
        assert_eq!(whole.events, split.events, "the same events, however split");
    }
}

/// Record a `modbus_poller` seed: the ranges `ranges` polled and the writes `writes`
/// against the fixture device; each reply the device gave becomes a data step (the
/// poller's requests follow from the replies, so replaying the steps replays the run).
pub fn record_modbus_poller(flags: u8, param: u8, ranges: &[u8], writes: &[&str]) -> Vec<u8> {
    let transport = poller_config(flags, param).transport;
    let device = modbus_device_fixture(u8::from(transport != Transport::Tcp), 0);
    let mut run = PollerRun {
        now: Instant::now(),
        poller: Poller::new(poller_config(flags, param)),
        connected: false,
        connects: 0,
        fail_connects: false,
        writes: BTreeSet::new(),
        done: BTreeSet::new(),
        sent: Vec::new(),
        events: Vec::new(),
        server: Some((ModbusConn::new(transport), device)),
        recorded: Vec::new(),
    };
    let mut steps = vec![(
        0,
        Step::Data {
            conn: 1,
            bytes: ranges.to_vec(),
        },
    )];
    for w in writes {
        let mut bytes = vec![1];
        bytes.extend_from_slice(w.as_bytes());
        steps.push((0, Step::Datagram(bytes)));
    }
    // As the replay does: a `Connect` asked for at once is answered before the ranges.
    run.flush();
    let script = std::mem::take(&mut steps);
    for (gap, step) in script {
        run.step(&step, false);
        steps.push((gap, step));
        // Each reply the device gave at once is a data step at the same instant.
        for r in std::mem::take(&mut run.recorded) {
            steps.push((0, Step::Data { conn: 0, bytes: r }));
        }
    }
    steps.push((300, Step::Wait));
    EngineInput {
        flags,
        param,
        steps,
    }
    .to_bytes()
}

// ---------------------------------------------------------------------------------------
// Text syntaxes

/// `operation_syntax`: the input as text, parsed in cpppo's operation syntax (both
/// `parse_operation` and `parse_attribute_operation`). No panic; a write carries as many
/// values as elements; a read without an offset renders (`path*elements`) to text that
/// parses back to the same operation; a parsed operation submitted to the client engine
/// against the fixture controller finishes exactly once.
pub fn operation_syntax(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let attribute = parse_attribute_operation(&text);
    let parsed = parse_operation(&text);
    if let Ok(op) = &attribute {
        let plain = parsed.as_ref().ok();
        assert_eq!(
            plain.map(|p| &p.path),
            Some(&op.path),
            "same path either way"
        );
    }
    let Ok(op) = parsed else {
        return;
    };
    match op.method {
        Method::Write => {
            let n = op.values.as_ref().map(|v| v.len());
            assert_eq!(n, Some(usize::from(op.elements)), "values and elements");
        }
        Method::Read => {
            assert!(op.values.is_none());
            if op.offset.is_none() && !op.path.is_empty() {
                let rendered = format!("{}*{}", op.path, op.elements);
                if let Ok(again) = parse_operation(&rendered) {
                    assert_eq!(again, op, "{text:?} rendered as {rendered:?}");
                }
            }
        }
        _ => {}
    }
    let (tag, _element) = op.tag_and_element();
    let _ = tag;
    // Through the client engine against the fixture controller.
    let now = Instant::now();
    let mut server = enip_server_fixture(0, 0);
    let peer = std::net::SocketAddr::from(([10, 0, 0, 2], 50000));
    let mut conn = EnipConn::new(now, peer, &mut server);
    let mut client = ClientConn::new(now, ClientOptions::default());
    let id = client.submit(now, op);
    let mut finished = 0;
    for _ in 0..200 {
        let mut up = Vec::new();
        while client.poll_transmit(now, &mut up) {}
        conn.handle_input(now, &up, &mut server);
        let mut down = Vec::new();
        while conn.poll_transmit(now, &mut down) {}
        client.handle_input(now, &down);
        while let Some(e) = client.poll_event() {
            if let ClientEvent::Reply { op, .. } | ClientEvent::Lost { op, .. } = e {
                assert_eq!(op, id);
                finished += 1;
            }
        }
        if up.is_empty() && down.is_empty() {
            break;
        }
    }
    if finished == 0 {
        client.handle_timeout(now + AFTERWARDS);
        while let Some(e) = client.poll_event() {
            if let ClientEvent::Reply { .. } | ClientEvent::Lost { .. } = e {
                finished += 1;
            }
        }
    }
    assert_eq!(finished, 1, "the operation finished once");
}

/// `modbus_address`: the input as text, parsed as a register spec (cpppo's Modicon
/// numbering, `40001-40010=99`), and as a number. No panic; a spec's registers lie in
/// its table's wire range and never past 65535; the first register's Modicon number
/// parses back to the same address; a Modicon number that parses renders back to
/// itself (or its six-digit form's equivalent address).
pub fn modbus_address(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = text.parse::<RegisterSpec>() {
        assert!(!spec.values.is_empty(), "a spec covers a register");
        let last = usize::from(spec.address) + spec.values.len() - 1;
        assert!(last <= usize::from(u16::MAX), "{text:?}: past the table");
        assert_eq!(spec.iter().count(), spec.values.len());
        let first = Address {
            table: spec.table,
            address: spec.address,
        };
        let again = Address::from_modicon(first.modicon());
        assert_eq!(again.ok(), Some(first), "{text:?}: modicon number");
        // Its own rendering (`first-last=values`) parses back to it.
        let rendered = format!(
            "{}-{}={}",
            first.modicon(),
            Address {
                table: spec.table,
                address: spec.address.saturating_add((spec.values.len() - 1) as u16),
            }
            .modicon(),
            spec.values
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let back = rendered.parse::<RegisterSpec>();
        if spec.values.len() <= 4096 {
            assert_eq!(back.as_ref().ok(), Some(&spec), "{text:?} as {rendered:?}");
        }
    }
    if let Ok(n) = text.trim().parse::<u32>() {
        if let Ok(a) = Address::from_modicon(n) {
            assert_eq!(Address::from_modicon(a.modicon()).ok(), Some(a));
        }
    }
    // The poller takes the same syntax for its ranges and writes.
    let mut poller = Poller::new(PollerConfig::default());
    let now = Instant::now();
    let _ = poller.poll(now, &text, None);
    let _ = poller.write_spec(now, &text);
}

/// Seeds of the client-side targets, by target: `(name, bytes)`.
pub fn client_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let all_ops: Vec<u8> = (0..ENIP_CLIENT_OPS.len() as u8).collect();
    for (name, flags, param) in [
        ("unconnected", 0u8, 0u8),
        ("unconnected-depth-4", 0, 3),
        ("connected", CLIENT_CONNECTED, 1),
        ("connected-large", CLIENT_CONNECTED | CLIENT_LARGE, 1),
        ("multiple", CLIENT_MULTIPLE, 2 | 8 << 2),
        (
            "connected-multiple",
            CLIENT_CONNECTED | CLIENT_MULTIPLE,
            1 | 4 << 2,
        ),
        ("fragment", CLIENT_FRAGMENT, 0),
        ("small-budget", CLIENT_SMALL, 1),
        ("list-identity", CLIENT_LIST_IDENTITY, 0),
        ("simple", CLIENT_SIMPLE, 0),
    ] {
        out.push((
            "enip_client",
            format!("server-{name}"),
            record_enip_client(flags, param, &all_ops),
        ));
    }
    let pdus: Vec<u8> = (0..MODBUS_CLIENT_PDUS.len() as u8).collect();
    for (name, flags, param) in [
        ("tcp", 0u8, 0u8),
        ("tcp-depth-8", 0, 7),
        ("rtu", MODBUS_CLIENT_RTU, 0),
        ("tcp-tid-ff", 0, 0xFF),
    ] {
        out.push((
            "modbus_client",
            format!("device-{name}"),
            record_modbus_client(flags, param, &pdus),
        ));
    }
    let mut broadcast = pdus.clone();
    broadcast.extend([0x85, 0x83]);
    out.push((
        "modbus_client",
        "device-rtu-broadcast".to_string(),
        record_modbus_client(MODBUS_CLIENT_RTU, 0, &broadcast),
    ));
    let ranges: Vec<u8> = (0..POLLER_RANGES.len() as u8).collect();
    let writes = ["40002=999", "1-3=1,0,1", "40100-40102=7,8,9"];
    for (name, flags, param) in [
        ("tcp", 0u8, 0u8),
        ("tcp-depth-4-reach", POLLER_REACH, 3),
        ("rtu", POLLER_RTU, 0),
        ("tcp-multi", POLLER_MULTI, 1),
    ] {
        out.push((
            "modbus_poller",
            format!("device-{name}"),
            record_modbus_poller(flags, param, &ranges, &writes),
        ));
    }
    for text in [
        "SCADA",
        "SCADA[3]",
        "SCADA[1-10]",
        "SCADA[1]*10",
        "SCADA[0-9]+16",
        "SCADA[1-3]=4,5,6",
        "SCADA[1]=(DINT)99",
        "TEXT[1]=(SSTRING)\"Hello, world!\"",
        "A_Tag[1-2]=(REAL)111,222",
        "Program:Main.Tag.member[3]",
        "@0x1FF/01/0x1A",
        "@4/5/{\"connection\":100}",
        "@1/1/7",
        "@0xF5/1/5=(USINT)1,2",
        "Msg=(STRING)\"a \\\"quoted\\\" \\\\ string\"",
        "X=(BOOL)1,0,1",
        "Y[0-1]=(LREAL)1.5,-2.25",
        "Z=(ULINT)18446744073709551615",
    ] {
        out.push((
            "operation_syntax",
            text.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            text.as_bytes().to_vec(),
        ));
    }
    for text in [
        "1",
        "9999",
        "10001",
        "100001",
        "165536",
        "30001-30010",
        "300001",
        "40001-40010=99",
        "400001-400003=1,2",
        "465536",
        "1-16=1,0",
        "40001 - 40003 = 0x10, 7",
    ] {
        out.push((
            "modbus_address",
            text.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            text.as_bytes().to_vec(),
        ));
    }
    out
}
