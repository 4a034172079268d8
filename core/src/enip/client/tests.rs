//! The client engine against the server engine and a simulated controller, in memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::cip::data::Text;
use crate::cip::operation::{parse_attribute_operation, parse_operation};
use crate::controller::{Controller, ControllerConfig};
use crate::enip::server::{Server, ServerConn, ServerOptions};

const TAGS: &[&str] = &[
    "SCADA=INT[1000]",
    "BIG=DINT[1000]",
    "FLOATS=REAL[10]",
    "TEXT=SSTRING[4]",
    "Program:Main.Count=DINT",
];

pub(super) fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

pub(super) fn controller() -> Controller {
    let mut plc = Controller::new(ControllerConfig::default());
    for t in TAGS {
        plc.tags_mut().add_str(t).unwrap();
    }
    plc
}

/// Split a byte stream into its encapsulation frames.
pub(super) fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut d = EncapsulationFraming::stream_decoder();
    d.handle_input(bytes);
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        out.push(f.to_vec());
    }
    out
}

struct Pair {
    now: Instant,
    client: ClientConn,
    server: Server<Controller>,
    conn: ServerConn<Controller>,
    events: Vec<ClientEvent>,
    /// The most request frames the client sent in one go.
    max_burst: usize,
    /// Reverse the order of the server's reply frames in each round.
    reverse: bool,
}

impl Pair {
    fn new(options: ClientOptions) -> Self {
        Self::with_server(options, ServerOptions::default())
    }

    fn with_server(options: ClientOptions, server_options: ServerOptions) -> Self {
        let now = Instant::now();
        let mut server = Server::new(controller(), server_options);
        let conn = ServerConn::new(now, peer(), &mut server);
        Pair {
            now,
            client: ClientConn::new(now, options),
            server,
            conn,
            events: Vec::new(),
            max_burst: 0,
            reverse: false,
        }
    }

    /// Exchange bytes until neither side has anything to send.
    fn pump(&mut self) {
        loop {
            let mut a = Vec::new();
            self.client.poll_transmit(self.now, &mut a);
            if !a.is_empty() {
                self.max_burst = self.max_burst.max(frames(&a).len());
                self.conn.handle_input(self.now, &a, &mut self.server);
            }
            let mut b = Vec::new();
            while self.conn.poll_transmit(self.now, &mut b) {}
            if !b.is_empty() {
                if self.reverse {
                    for f in frames(&b).into_iter().rev() {
                        self.client.handle_input(self.now, &f);
                    }
                } else {
                    self.client.handle_input(self.now, &b);
                }
            }
            while let Some(e) = self.client.poll_event() {
                self.events.push(e);
            }
            if a.is_empty() && b.is_empty() {
                break;
            }
        }
    }

    fn submit(&mut self, text: &str) -> OpId {
        let op = if text.starts_with('@') && !text.contains("=") {
            parse_attribute_operation(text).unwrap()
        } else {
            parse_operation(text).unwrap()
        };
        self.client.submit(self.now, op)
    }

    /// Submit, run to completion, and give each operation's result in order.
    fn run(&mut self, texts: &[&str]) -> Vec<Result<Value, CipStatus>> {
        let ids: Vec<OpId> = texts.iter().map(|t| self.submit(t)).collect();
        self.pump();
        ids.iter()
            .map(|id| {
                self.events
                    .iter()
                    .find_map(|e| match e {
                        ClientEvent::Reply { op, result } if op == id => Some(result.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("no reply for {id:?}: {:?}", self.events))
            })
            .collect()
    }
}

fn values(r: &Result<Value, CipStatus>) -> Values {
    match r {
        Ok(Value::Values(v)) => v.clone(),
        other => panic!("not values: {other:?}"),
    }
}

fn status(r: &Result<Value, CipStatus>) -> u8 {
    match r {
        Err(s) => s.general.0,
        other => panic!("not a status: {other:?}"),
    }
}

fn options(depth: usize, multiple: usize, connected: bool) -> ClientOptions {
    ClientOptions {
        depth,
        multiple,
        connected,
        ..ClientOptions::default()
    }
}

/// Every operation kind, in one batch.
fn every_kind(pair: &mut Pair) {
    let r = pair.run(&[
        "SCADA[1-3]=4,5,6",
        "SCADA[0-3]",
        "SCADA[2]*2",
        "SCADA[0-3]+2",
        "SCADA=(INT)-7",
        "SCADA",
        "FLOATS[1-2]=1.5,2",
        "FLOATS[0-2]",
        "BIG[5]=(DINT)123456",
        "BIG[4-5]",
        r#"TEXT[1]=(SSTRING)"Hello, world!""#,
        "TEXT[0-1]",
        "Program:Main.Count=(DINT)42",
        "Program:Main.Count",
        "NOPE",
        "SCADA[0-1]=(DINT)1,2",
        "@1/1/7",
        "@1/1",
        "SCADA[1000]",
    ]);
    assert_eq!(r[0], Ok(Value::Written));
    assert_eq!(values(&r[1]), Values::Int(vec![0, 4, 5, 6]));
    assert_eq!(values(&r[2]), Values::Int(vec![5, 6]));
    // Offset 2 bytes: elements 1 to 3 of the 4 asked for from element 0.
    assert_eq!(values(&r[3]), Values::Int(vec![4, 5, 6]));
    assert_eq!(r[4], Ok(Value::Written));
    assert_eq!(values(&r[5]), Values::Int(vec![-7]));
    assert_eq!(r[6], Ok(Value::Written));
    assert_eq!(values(&r[7]), Values::Real(vec![0.0, 1.5, 2.0]));
    assert_eq!(r[8], Ok(Value::Written));
    assert_eq!(values(&r[9]), Values::Dint(vec![0, 123456]));
    assert_eq!(r[10], Ok(Value::Written));
    assert_eq!(
        values(&r[11]),
        Values::Sstring(vec![Text::from(""), Text::from("Hello, world!")])
    );
    assert_eq!(r[12], Ok(Value::Written));
    assert_eq!(values(&r[13]), Values::Dint(vec![42]));
    // An unknown tag is a CIP status in the reply, not a Rust error.
    assert_eq!(status(&r[14]), 0x04);
    // The wrong type: 0xFF with extended status 0x2107.
    assert_eq!(
        r[15],
        Err(CipStatus {
            general: GeneralStatus(0xFF),
            additional: vec![0x2107]
        })
    );
    match &r[16] {
        Ok(Value::Data(d)) => assert!(d.len() > 1 && usize::from(d[0]) == d.len() - 1),
        other => panic!("{other:?}"),
    }
    match &r[17] {
        Ok(Value::Data(d)) => assert!(d.len() > 20, "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&r[18]), 0x05);
}

#[test]
fn every_operation_kind_at_every_depth_with_and_without_msp_connected_or_not() {
    for connected in [false, true] {
        for multiple in [0, 200] {
            for depth in [1, 2, 20] {
                let mut pair = Pair::new(options(depth, multiple, connected));
                every_kind(&mut pair);
                let stats = *pair.client.stats();
                let what = format!("depth {depth} multiple {multiple} connected {connected}");
                assert_eq!(stats.replies, 19, "{what}");
                assert_eq!(stats.lost, 0, "{what}");
                if multiple > 0 {
                    assert!(stats.transactions < stats.requests, "{what}: {stats:?}");
                } else {
                    assert_eq!(stats.transactions, stats.requests, "{what}");
                }
                if connected {
                    assert_eq!(pair.conn.connections().len(), 1, "{what}");
                    assert!(pair.client.connection_id().is_some());
                }
                // Never more than `depth` transactions in one burst (plus nothing else).
                assert!(pair.max_burst <= depth, "{what}: burst {}", pair.max_burst);
                if depth > 1 {
                    assert!(pair.max_burst > 1, "{what}: no pipelining");
                }
            }
        }
    }
}

#[test]
fn out_of_order_replies_are_matched() {
    for connected in [false, true] {
        let mut pair = Pair::new(options(5, 0, connected));
        pair.reverse = true;
        let r = pair.run(&["SCADA[1]=11", "SCADA[2]=22", "SCADA[3]=33", "SCADA[1-3]"]);
        assert!(r[..3].iter().all(|r| *r == Ok(Value::Written)));
        // The read went in the same burst as the writes, reached the server last and so
        // saw them all, though its reply arrived first.
        assert_eq!(values(&r[3]), Values::Int(vec![11, 22, 33]));
        let first = pair
            .events
            .iter()
            .find_map(|e| match e {
                ClientEvent::Reply { op, .. } => Some(*op),
                _ => None,
            })
            .unwrap();
        assert_eq!(first, OpId(3), "replies really arrived reversed");
    }
}

#[test]
fn fragmented_reads_and_writes_of_1000_elements() {
    let all: Vec<String> = (0..1000).map(|i| (i * 7 - 3000).to_string()).collect();
    let write = format!("BIG[0-999]=(DINT){}", all.join(","));
    let expect = Values::Dint((0..1000).map(|i| i * 7 - 3000).collect());
    for (connected, size) in [(false, 500), (true, 500), (true, 4000)] {
        for multiple in [0, 300] {
            let mut pair = Pair::new(ClientOptions {
                connection_size: size,
                ..options(3, multiple, connected)
            });
            // Operations in flight together are independent (a read pipelined beside a
            // fragmented write may see it half done), so the write goes first.
            assert_eq!(pair.run(&[&write]), vec![Ok(Value::Written)]);
            let r = pair.run(&["BIG[0-999]", "SCADA[0-999]", "BIG[10-12]"]);
            assert_eq!(values(&r[0]), expect, "connected {connected} size {size}");
            assert_eq!(values(&r[1]), Values::Int(vec![0; 1000]));
            assert_eq!(values(&r[2]), Values::Dint(vec![-2930, -2923, -2916]));
            let stats = *pair.client.stats();
            // 4000 bytes each way in pieces of at most the budget.
            let budget = if connected {
                usize::from(size)
            } else {
                504 - 18
            };
            assert!(
                stats.requests as usize >= 2 * (4000 / budget + 1),
                "{stats:?}"
            );
            assert!(
                pair.events.iter().any(
                    |e| matches!(e, ClientEvent::Connected { large, .. } if *large == (size > 511))
                ) || !connected
            );
        }
    }
}

#[test]
fn forced_fragmentation_uses_the_fragmented_services_throughout() {
    let mut pair = Pair::new(ClientOptions {
        fragment: true,
        ..ClientOptions::default()
    });
    let r = pair.run(&["SCADA[0-2]=1,2,3", "SCADA[0-2]"]);
    assert_eq!(r[0], Ok(Value::Written));
    assert_eq!(values(&r[1]), Values::Int(vec![1, 2, 3]));
}

#[test]
fn simple_devices_get_direct_requests() {
    let server = ServerOptions {
        route_path: crate::enip::server::RoutePolicy::None,
        ..ServerOptions::default()
    };
    let mut pair = Pair::with_server(ClientOptions::simple(), server);
    let r = pair.run(&["SCADA[0]=5", "SCADA[0]"]);
    assert_eq!(values(&r[1]), Values::Int(vec![5]));
}

#[test]
fn a_route_the_server_refuses_is_a_status() {
    let mut pair = Pair::new(ClientOptions {
        route_path: Some(crate::cip::epath::parse_route_path("1/3").unwrap().unwrap()),
        ..ClientOptions::default()
    });
    let r = pair.run(&["SCADA[0]"]);
    assert_eq!(status(&r[0]), 0x01);
}

#[test]
fn list_identity_when_asked() {
    let mut pair = Pair::new(ClientOptions {
        list_identity: true,
        ..ClientOptions::default()
    });
    pair.run(&["SCADA"]);
    assert!(matches!(pair.events[0], ClientEvent::Registered { session } if session != 0));
    assert!(matches!(&pair.events[1], ClientEvent::Identity(i) if i.vendor_id != 0));
}

/// The reference conversation: the server's bytes per round and the client's events.
fn recorded(options: ClientOptions, ops: &[&str]) -> (Vec<Vec<u8>>, Vec<ClientEvent>) {
    let mut pair = Pair::new(options);
    for t in ops {
        pair.submit(t);
    }
    let mut rounds = Vec::new();
    loop {
        let mut a = Vec::new();
        pair.client.poll_transmit(pair.now, &mut a);
        if a.is_empty() {
            break;
        }
        pair.conn.handle_input(pair.now, &a, &mut pair.server);
        let mut b = Vec::new();
        while pair.conn.poll_transmit(pair.now, &mut b) {}
        pair.client.handle_input(pair.now, &b);
        rounds.push(b);
    }
    while let Some(e) = pair.client.poll_event() {
        pair.events.push(e);
    }
    (rounds, pair.events)
}

#[test]
fn input_split_at_every_byte_gives_the_same_events() {
    let ops = ["SCADA[0-2]=1,2,3", "SCADA[0-2]", "NOPE", "BIG[0-199]"];
    for connected in [false, true] {
        let opts = options(4, 120, connected);
        let (rounds, reference) = recorded(opts.clone(), &ops);
        assert!(reference
            .iter()
            .any(|e| matches!(e, ClientEvent::Reply { .. })));
        let last = rounds.len() - 1;
        for split in 0..=rounds[last].len() {
            let now = Instant::now();
            let mut client = ClientConn::new(now, opts.clone());
            for t in &ops {
                client.submit(now, parse_operation(t).unwrap());
            }
            for (i, round) in rounds.iter().enumerate() {
                let mut sink = Vec::new();
                client.poll_transmit(now, &mut sink);
                if i == last {
                    client.handle_input(now, &round[..split]);
                    client.handle_input(now, &round[split..]);
                } else {
                    for b in round {
                        client.handle_input(now, std::slice::from_ref(b));
                    }
                }
            }
            let mut events = Vec::new();
            while let Some(e) = client.poll_event() {
                events.push(e);
            }
            assert_eq!(events, reference, "split at {split}");
        }
    }
}

#[test]
fn operations_time_out_with_time_passed_in() {
    let mut pair = Pair::new(options(2, 0, false));
    pair.pump(); // registered
    let t0 = pair.now;
    let a = pair.client.submit(t0, parse_operation("SCADA[0]").unwrap());
    let later = t0 + Duration::from_secs(1);
    let b = pair
        .client
        .submit(later, parse_operation("SCADA[1]").unwrap());
    let c = pair
        .client
        .submit(later, parse_operation("SCADA[2]").unwrap());
    let mut sent = Vec::new();
    assert!(pair.client.poll_transmit(later, &mut sent));
    assert_eq!(
        frames(&sent).len(),
        2,
        "depth 2: a and b in flight, c waits"
    );
    // Nobody answers.
    assert_eq!(
        pair.client.poll_timeout(),
        Some(t0 + Duration::from_secs(5))
    );
    pair.client
        .handle_timeout(t0 + Duration::from_secs(5) - Duration::from_millis(1));
    assert_eq!(pair.client.poll_event(), None);
    pair.client.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        pair.client.poll_event(),
        Some(ClientEvent::Lost {
            op: a,
            why: LostReason::Timeout
        })
    );
    assert_eq!(pair.client.poll_event(), None);
    // a's slot is free: c goes now.
    let mut more = Vec::new();
    assert!(pair
        .client
        .poll_transmit(t0 + Duration::from_secs(5), &mut more));
    assert_eq!(frames(&more).len(), 1);
    assert_eq!(
        pair.client.poll_timeout(),
        Some(later + Duration::from_secs(5))
    );
    pair.client.handle_timeout(later + Duration::from_secs(5));
    let lost: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(
        lost,
        vec![
            ClientEvent::Lost {
                op: b,
                why: LostReason::Timeout
            },
            ClientEvent::Lost {
                op: c,
                why: LostReason::Timeout
            }
        ]
    );
    assert_eq!(pair.client.poll_timeout(), None);
    // A late reply for a lost operation is counted and ignored.
    pair.conn.handle_input(pair.now, &sent, &mut pair.server);
    let mut b2 = Vec::new();
    while pair.conn.poll_transmit(pair.now, &mut b2) {}
    pair.client.handle_input(pair.now, &b2);
    assert_eq!(pair.client.poll_event(), None);
    assert_eq!(pair.client.stats().unmatched, 2);
}

#[test]
fn registration_that_never_comes_fails_the_connection() {
    let now = Instant::now();
    let mut client = ClientConn::new(now, ClientOptions::default());
    let op = client.submit(now, parse_operation("SCADA").unwrap());
    let mut out = Vec::new();
    assert!(client.poll_transmit(now, &mut out));
    assert_eq!(
        frames(&out).len(),
        1,
        "only RegisterSession before the session"
    );
    let deadline = client.poll_timeout().unwrap();
    client.handle_timeout(deadline);
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Failed(LostReason::Timeout))
    );
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Lost {
            op,
            why: LostReason::Timeout
        })
    );
    assert!(client.is_closed());
}

#[test]
fn server_closing_loses_the_operations_in_flight() {
    let mut pair = Pair::new(options(3, 0, false));
    pair.pump();
    let ids: Vec<OpId> = ["SCADA[0]", "SCADA[1]", "SCADA[2]", "SCADA[3]"]
        .iter()
        .map(|t| pair.submit(t))
        .collect();
    let mut out = Vec::new();
    pair.client.poll_transmit(pair.now, &mut out);
    pair.client.handle_eof(pair.now);
    let lost: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(
        lost,
        ids.iter()
            .map(|&op| ClientEvent::Lost {
                op,
                why: LostReason::Closed
            })
            .collect::<Vec<_>>()
    );
    assert!(pair.client.is_closed());
    // Nothing after the end.
    let late = pair.submit("SCADA");
    assert_eq!(
        pair.client.poll_event(),
        Some(ClientEvent::Lost {
            op: late,
            why: LostReason::Closed
        })
    );
}

#[test]
fn a_forward_open_refused_as_a_duplicate_is_sent_again_as_a_new_connection() {
    // Regression (found by the deterministic simulation): a connected client whose TCP
    // connection dropped without the controller noticing reconnects; the controller
    // still holds the old CIP connection, so the same connection triple is refused
    // with 0x01/0x0100 and the client failed, until the controller's own connection
    // timeout (32 s) released it.
    let mut pair = Pair::new(options(1, 0, true));
    let r = pair.run(&["SCADA[0]=7"]);
    assert!(r[0].is_ok());
    let old = pair.conn.connections()[0].triple;
    // The network drops; the server side is never told. A new connection, same server.
    let now = pair.now;
    let mut conn = ServerConn::new(now, peer(), &mut pair.server);
    std::mem::swap(&mut pair.conn, &mut conn);
    pair.client = ClientConn::new(now, options(1, 0, true));
    pair.events.clear();
    let r = pair.run(&["SCADA[0]"]);
    assert_eq!(values(&r[0]), Values::Int(vec![7]));
    let new = pair.conn.connections()[0].triple;
    assert_eq!(new.connection_serial, old.connection_serial + 1);
    assert_eq!(
        pair.server.connections().len(),
        2,
        "the old one is still held"
    );
    assert!(matches!(pair.events[1], ClientEvent::Connected { .. }));
    // A triple in use every time: after the retries, the refusal is reported.
    let mut client = ClientConn::new(now, options(1, 0, true));
    let mut conns = Vec::new();
    for _ in 0..=MAX_DUPLICATE_FORWARD_OPEN_RETRIES {
        let mut c = ServerConn::new(now, peer(), &mut pair.server);
        let mut holder = ClientConn::new(now, options(1, 0, true));
        // Each holder takes the next serial (it retries past the ones taken).
        for _ in 0..40 {
            let mut a = Vec::new();
            holder.poll_transmit(now, &mut a);
            c.handle_input(now, &a, &mut pair.server);
            let mut b = Vec::new();
            while c.poll_transmit(now, &mut b) {}
            holder.handle_input(now, &b);
            if a.is_empty() && b.is_empty() {
                break;
            }
        }
        conns.push((holder, c));
    }
    let mut c = ServerConn::new(now, peer(), &mut pair.server);
    client.submit(now, parse_operation("SCADA[0]").unwrap());
    let mut events = Vec::new();
    for _ in 0..40 {
        let mut a = Vec::new();
        client.poll_transmit(now, &mut a);
        c.handle_input(now, &a, &mut pair.server);
        let mut b = Vec::new();
        while c.poll_transmit(now, &mut b) {}
        client.handle_input(now, &b);
        events.extend(std::iter::from_fn(|| client.poll_event()));
    }
    assert!(
        events.iter().any(|e| matches!(
            e,
            ClientEvent::Failed(LostReason::ForwardOpenRefused(CipStatus { additional, .. }))
                if additional == &[0x0100]
        )),
        "{events:?}"
    );
}

#[test]
fn close_forward_closes_and_unregisters() {
    let mut pair = Pair::new(options(2, 0, true));
    let r = pair.run(&["SCADA[0]=9", "SCADA[0]"]);
    assert_eq!(values(&r[1]), Values::Int(vec![9]));
    assert_eq!(pair.conn.connections().len(), 1);
    pair.client.close(pair.now);
    pair.pump();
    assert!(pair.client.is_closed());
    assert!(pair.conn.connections().is_empty());
    assert!(
        pair.conn.is_closed(),
        "UnRegisterSession closes the server side"
    );
}

#[test]
fn session_refused_is_reported() {
    let now = Instant::now();
    let mut client = ClientConn::new(now, ClientOptions::default());
    let op = client.submit(now, parse_operation("SCADA").unwrap());
    let mut out = Vec::new();
    client.poll_transmit(now, &mut out);
    let mut header = Header::new(Command::RegisterSession, 0, [0; 8]);
    header.status = 0x69;
    let reply = Encapsulation::new(header, vec![1, 0, 0, 0])
        .unwrap()
        .to_vec();
    client.handle_input(now, &reply);
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Failed(LostReason::SessionRefused(0x69)))
    );
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Lost {
            op,
            why: LostReason::SessionRefused(0x69)
        })
    );
}

#[test]
fn operations_serialize() {
    let json = serde_json::to_string(&ClientEvent::Reply {
        op: OpId(3),
        result: Ok(Value::Values(Values::Int(vec![1]))),
    })
    .unwrap();
    assert_eq!(
        json,
        r#"{"reply":{"op":3,"result":{"Ok":{"values":{"type":"int","values":[1]}}}}}"#
    );
    let opts = ClientOptions::simple();
    let back: ClientOptions = serde_json::from_str(&serde_json::to_string(&opts).unwrap()).unwrap();
    assert_eq!(back, opts);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the server sends, the client never panics and every operation ends
    /// exactly once (answered or lost) when the connection ends.
    #[test]
    fn arbitrary_server_bytes_never_panic(
        register_ok in any::<bool>(),
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..6),
        connected in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut client = ClientConn::new(now, options(4, 100, connected));
        let ids: Vec<OpId> = ["SCADA[0-3]", "SCADA[1]=2", "@1/1/7"]
            .iter()
            .map(|t| client.submit(now, parse_operation(t).unwrap()))
            .collect();
        let mut out = Vec::new();
        client.poll_transmit(now, &mut out);
        if register_ok {
            let header = Header { session_handle: 7, ..Header::new(Command::RegisterSession, 0, out.get(12..20).map(|c| c.try_into().unwrap()).unwrap_or([0; 8])) };
            client.handle_input(now, &Encapsulation::new(header, vec![1, 0, 0, 0]).unwrap().to_vec());
            client.poll_transmit(now, &mut out);
        }
        for chunk in &chunks {
            client.handle_input(now, chunk);
            client.poll_transmit(now, &mut out);
        }
        client.handle_eof(now);
        let mut ended = Vec::new();
        while let Some(e) = client.poll_event() {
            match e {
                ClientEvent::Reply { op, .. } | ClientEvent::Lost { op, .. } => ended.push(op),
                _ => {}
            }
        }
        ended.sort();
        prop_assert_eq!(ended, ids);
    }

    /// Framed SendRRData replies with arbitrary CIP payloads for live contexts.
    #[test]
    fn arbitrary_cip_replies_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 1..8),
        status in prop_oneof![Just(0u8), Just(6u8), any::<u8>()],
    ) {
        let now = Instant::now();
        let mut client = ClientConn::new(now, options(8, 60, false));
        for t in ["SCADA[0-3]", "SCADA[1]=2", "@1/1/7", "BIG[0-999]=(DINT)0", "X"] {
            let op = if t.starts_with('@') { parse_attribute_operation(t) } else if t.contains('=') && t.starts_with("BIG") {
                Ok(Operation::write("BIG".parse().unwrap(), Values::Dint(vec![0; 1000])))
            } else { parse_operation(t) };
            client.submit(now, op.unwrap());
        }
        client.submit(now, Operation::list_tags(None).unwrap());
        client.submit(now, Operation::read_template(5));
        let mut out = Vec::new();
        client.poll_transmit(now, &mut out);
        let header = Header { session_handle: 7, ..Header::new(Command::RegisterSession, 0, [1, 0, 0, 0, 0, 0, 0, 0]) };
        client.handle_input(now, &Encapsulation::new(header, vec![1, 0, 0, 0]).unwrap().to_vec());
        for (i, p) in payloads.iter().enumerate() {
            out.clear();
            client.poll_transmit(now, &mut out);
            let mut message = vec![0xCC, 0, status, 0];
            message.extend_from_slice(p);
            let send = SendData::new(0, Cpf::unconnected(message));
            let context = 2 + i as u64;
            let h = Header::new(Command::SendRRData, 7, context.to_le_bytes());
            client.handle_input(now, &Encapsulation::with_body(h, &send).unwrap().to_vec());
        }
        client.handle_timeout(now + Duration::from_secs(60));
        prop_assert_eq!(client.outstanding(), 0);
    }
}

#[test]
fn cpppo_route_and_send_path_options() {
    let o = ClientOptions::default()
        .with_route_path(r#"[{"port":1,"link":0}]"#)
        .unwrap()
        .with_send_path("@6/1")
        .unwrap();
    assert_eq!(o, ClientOptions::default());
    let o = ClientOptions::default()
        .with_route_path("false")
        .unwrap()
        .with_send_path("")
        .unwrap();
    assert_eq!(o, ClientOptions::simple());
    assert!(ClientOptions::default()
        .with_route_path("[{\"class\":2}]")
        .is_err());
}

/// A device that refuses Large Forward Open with 0x08: the client falls back to the
/// 16-bit Forward Open at 511 bytes.
#[test]
fn large_forward_open_falls_back_when_not_supported() {
    let now = Instant::now();
    let mut client = ClientConn::new(
        now,
        ClientOptions {
            connected: true,
            connection_size: 4000,
            ..ClientOptions::default()
        },
    );
    let mut out = Vec::new();
    client.poll_transmit(now, &mut out);
    let header = Header {
        session_handle: 9,
        ..Header::new(Command::RegisterSession, 0, 1u64.to_le_bytes())
    };
    client.handle_input(
        now,
        &Encapsulation::new(header, vec![1, 0, 0, 0])
            .unwrap()
            .to_vec(),
    );
    out.clear();
    client.poll_transmit(now, &mut out);
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    let (encap, _) = Encapsulation::decode(&f[0]).unwrap();
    let send = SendData::decode(&encap.data).unwrap();
    let request = MessageRouterRequest::decode(send.cpf.unconnected_data().unwrap()).unwrap();
    assert_eq!(request.service, service::LARGE_FORWARD_OPEN);
    // 0x08: service not supported.
    let refusal = MessageRouterReply::error(service::LARGE_FORWARD_OPEN, GeneralStatus(0x08), &[]);
    let h = Header::new(Command::SendRRData, 9, encap.header.sender_context);
    let reply = SendData::new(0, Cpf::unconnected(refusal.to_vec()));
    client.handle_input(now, &Encapsulation::with_body(h, &reply).unwrap().to_vec());
    out.clear();
    client.poll_transmit(now, &mut out);
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    let (encap, _) = Encapsulation::decode(&f[0]).unwrap();
    let send = SendData::decode(&encap.data).unwrap();
    let request = MessageRouterRequest::decode(send.cpf.unconnected_data().unwrap()).unwrap();
    assert_eq!(request.service, service::FORWARD_OPEN);
    let fo = ForwardOpenRequest::decode(&request.data, false).unwrap();
    assert_eq!(fo.o_t_parameters().size(), 511);
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Registered { session: 9 })
    );
    assert_eq!(client.poll_event(), None);
}

#[test]
fn an_unanswered_forward_close_still_unregisters() {
    let mut pair = Pair::new(options(1, 0, true));
    pair.run(&["SCADA"]);
    pair.client.close(pair.now);
    let mut out = Vec::new();
    assert!(pair.client.poll_transmit(pair.now, &mut out)); // Forward Close, never delivered
    assert!(!pair.client.is_closed());
    let deadline = pair.client.poll_timeout().unwrap();
    pair.client.handle_timeout(deadline);
    out.clear();
    assert!(pair.client.poll_transmit(deadline, &mut out));
    let f = frames(&out);
    assert_eq!(
        Encapsulation::decode(&f[0]).unwrap().0.header.command,
        Command::UnRegisterSession
    );
    assert!(pair.client.is_closed());
}

#[test]
fn unconnected_write_fragments_leave_room_for_unconnected_send() {
    let mut pair = Pair::new(options(1, 0, false));
    pair.pump();
    pair.client.submit(
        pair.now,
        Operation::write("BIG".parse().unwrap(), Values::Dint(vec![1; 1000])),
    );
    let mut out = Vec::new();
    pair.client.poll_transmit(pair.now, &mut out);
    let f = frames(&out);
    let (encap, _) = Encapsulation::decode(&f[0]).unwrap();
    let message = SendData::decode(&encap.data)
        .unwrap()
        .cpf
        .unconnected_data()
        .unwrap()
        .len();
    assert!(message <= 504 && message > 504 - 8, "{message}");
    // Each op gets its own deadline with submit_until.
    let t = pair.now + Duration::from_millis(10);
    pair.client
        .submit_until(t, parse_operation("SCADA").unwrap());
    assert_eq!(pair.client.poll_timeout(), Some(t));
}

#[test]
fn options_take_the_timeout_in_seconds() {
    let o: ClientOptions = serde_json::from_str(r#"{"timeout": 0.25, "depth": 4}"#).unwrap();
    assert_eq!(o.timeout, Duration::from_millis(250));
    assert_eq!(o.depth, 4);
    assert_eq!(o.route_path, ClientOptions::default().route_path);
    assert!(serde_json::from_str::<ClientOptions>(r#"{"timeout": -1}"#).is_err());
}

#[test]
fn numeric_addresses_read_and_write_tags_there() {
    let mut pair = Pair::new(options(2, 0, false));
    pair.server
        .device_mut()
        .tags_mut()
        .add_str("Temp@0x22/1/3=REAL")
        .unwrap();
    // cpppo's enip_client reads and writes numeric addresses with the tag services
    // (the getattr forms are Get Attribute Single / All).
    let ids: Vec<OpId> = ["@0x22/1/3=(REAL)21.5", "@0x22/1/3", "@0x22/1/4"]
        .iter()
        .map(|t| pair.client.submit(pair.now, parse_operation(t).unwrap()))
        .collect();
    pair.pump();
    let r: Vec<_> = ids
        .iter()
        .map(|id| {
            pair.events.iter().find_map(|e| match e {
                ClientEvent::Reply { op, result } if op == id => Some(result.clone()),
                _ => None,
            })
        })
        .collect();
    assert_eq!(r[0], Some(Ok(Value::Written)));
    assert_eq!(r[1], Some(Ok(Value::Values(Values::Real(vec![21.5])))));
    assert_eq!(status(r[2].as_ref().unwrap()), 0x05);
}

#[test]
fn a_refused_forward_open_fails_the_connection() {
    let server = ServerOptions {
        max_connection_size: 400,
        ..ServerOptions::default()
    };
    let mut pair = Pair::with_server(options(1, 0, true), server);
    let op = pair.submit("SCADA");
    pair.pump();
    let refused = pair
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Failed(LostReason::ForwardOpenRefused(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    // Connection failure, invalid connection size (and the largest it would take).
    assert_eq!(refused.general, GeneralStatus(0x01));
    assert_eq!(refused.additional.first(), Some(&0x0109));
    assert!(pair.events.contains(&ClientEvent::Lost {
        op,
        why: LostReason::ForwardOpenRefused(refused)
    }));
    assert!(pair.client.is_closed());
}

#[test]
fn close_while_opening_closes_the_new_connection() {
    let mut pair = Pair::new(options(1, 0, true));
    let op = pair.submit("SCADA");
    // RegisterSession and its reply; the Forward Open goes out.
    let mut a = Vec::new();
    pair.client.poll_transmit(pair.now, &mut a);
    pair.conn.handle_input(pair.now, &a, &mut pair.server);
    let mut b = Vec::new();
    while pair.conn.poll_transmit(pair.now, &mut b) {}
    pair.client.handle_input(pair.now, &b);
    a.clear();
    pair.client.poll_transmit(pair.now, &mut a);
    assert_eq!(frames(&a).len(), 1, "the Forward Open");
    pair.client.close(pair.now);
    pair.conn.handle_input(pair.now, &a, &mut pair.server);
    assert_eq!(pair.conn.connections().len(), 1);
    pair.pump();
    assert!(pair.client.is_closed());
    assert!(pair.conn.connections().is_empty(), "Forward Closed");
    assert!(pair.events.contains(&ClientEvent::Lost {
        op,
        why: LostReason::Closed
    }));
}

#[test]
fn list_identity_and_services_by_datagram() {
    let now = Instant::now();
    let mut server = Server::new(controller(), ServerOptions::default());
    let local: SocketAddr = "10.0.0.5:44818".parse().unwrap();
    for (command, context) in [(Command::ListIdentity, 77u64), (Command::ListServices, 78)] {
        let mut request = Vec::new();
        list_request(command, context, &mut request);
        assert_eq!(request.len(), 24);
        let mut reply = Vec::new();
        assert!(server.handle_datagram(now, local, peer(), &request, &mut reply));
        let list = decode_list_reply(&reply).unwrap();
        assert_eq!(list.context, context);
        if command == Command::ListIdentity {
            assert_eq!(list.identities.len(), 1);
            assert!(list.services.is_empty());
            assert!(!list.identities[0].product_name.is_empty());
        } else {
            assert_eq!(list.services.len(), 1);
            assert_eq!(list.services[0].name_lossy(), "Communications");
        }
    }
    assert!(decode_list_reply(&[0x63, 0]).unwrap_err().is_incomplete());
}

#[test]
fn tag_list_upload_pages_through_the_symbol_object() {
    for connected in [false, true] {
        let mut pair = Pair::new(options(2, 0, connected));
        let names: Vec<String> = (0..60)
            .map(|i| format!("A_rather_long_tag_name_number_{i:02}"))
            .collect();
        for n in &names {
            pair.server
                .device_mut()
                .tags_mut()
                .add_str(&format!("{n}=DINT[3]"))
                .unwrap();
        }
        let all = pair
            .client
            .submit(pair.now, Operation::list_tags(None).unwrap());
        let program = pair.client.submit(
            pair.now,
            Operation::list_tags(Some("Program:Main")).unwrap(),
        );
        pair.pump();
        let result = |id: OpId| {
            pair.events
                .iter()
                .find_map(|e| match e {
                    ClientEvent::Reply {
                        op,
                        result: Ok(Value::Symbols(s)),
                    } if *op == id => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{:?}", pair.events))
        };
        let listed = result(all);
        for n in &names {
            let entry = listed.iter().find(|e| &e.name == n).unwrap();
            assert_eq!(entry.dimensions, [3, 0, 0]);
            assert_eq!(entry.symbol_type.atomic_type(), Some(0xC4));
        }
        assert!(listed.iter().any(|e| e.name == "SCADA"));
        assert!(!listed.iter().any(|e| e.name == "Count"));
        let ids: std::collections::BTreeSet<u32> = listed.iter().map(|e| e.instance).collect();
        assert_eq!(ids.len(), listed.len(), "no instance twice across pages");
        let in_program = result(program);
        assert_eq!(
            in_program
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            vec!["Count"]
        );
        // 60 tags of ~50 bytes do not fit one reply: several pages were asked for.
        assert!(
            pair.client.stats().requests >= 2 + 5,
            "{:?}",
            pair.client.stats()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random small writes (sent in submission order, so applied in it) then reads of
    /// random ranges, at any depth, MSP budget, mode and reply order: every read matches
    /// a model of the tag.
    #[test]
    fn pipelined_operations_match_a_model(
        writes in proptest::collection::vec((0usize..990, proptest::collection::vec(any::<i16>(), 1..8)), 0..25),
        reads in proptest::collection::vec((0usize..1000, 1usize..300), 1..10),
        depth in 1usize..21,
        multiple in prop_oneof![Just(0usize), 60usize..500],
        connected in any::<bool>(),
        reverse in any::<bool>(),
    ) {
        let mut pair = Pair::new(options(depth, multiple, connected));
        pair.reverse = reverse;
        let mut model = vec![0i16; 1000];
        let mut ops = Vec::new();
        for (start, values) in &writes {
            let end = (*start + values.len()).min(1000);
            let values = &values[..end - start];
            model[*start..end].copy_from_slice(values);
            let path = format!("SCADA[{start}]").parse().unwrap();
            ops.push(pair.client.submit(pair.now, Operation::write(path, Values::Int(values.to_vec()))));
        }
        pair.pump();
        let mut read_ids = Vec::new();
        for (start, count) in &reads {
            let count = (*count).min(1000 - start);
            let path = format!("SCADA[{start}]").parse().unwrap();
            read_ids.push((pair.client.submit(pair.now, Operation::read(path, count as u16)), *start, count));
        }
        pair.pump();
        for id in ops {
            let written = ClientEvent::Reply { op: id, result: Ok(Value::Written) };
            prop_assert!(pair.events.contains(&written), "write {:?}", id);
        }
        for (id, start, count) in read_ids {
            let expect = Ok(Value::Values(Values::Int(model[start..start + count].to_vec())));
            prop_assert!(
                pair.events.contains(&ClientEvent::Reply { op: id, result: expect }),
                "read {start}+{count}"
            );
        }
        prop_assert_eq!(pair.client.outstanding(), 0);
        prop_assert!(pair.max_burst <= depth);
    }
}

#[test]
fn a_structure_is_read_and_decoded_through_its_template() {
    let mut pair = Pair::new(options(2, 0, false));
    let tags = pair.server.device_mut().tags_mut();
    tags.define_structure(
        "Motor",
        &[
            ("Run", "BOOL", 0),
            ("Fault", "BOOL", 0),
            ("Speed", "REAL", 0),
            ("Hist", "DINT", 4),
        ],
    )
    .unwrap();
    tags.add_str("M=Motor").unwrap();
    let r = pair.run(&[
        "M.Speed=(REAL)1.5",
        "M.Hist[1-2]=(DINT)7,8",
        "M.Fault=(BOOL)1",
    ]);
    assert!(r.iter().all(|r| *r == Ok(Value::Written)), "{r:?}");
    let list = pair
        .client
        .submit(pair.now, Operation::list_tags(None).unwrap());
    pair.pump();
    let instance = pair
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Reply {
                op,
                result: Ok(Value::Symbols(s)),
            } if *op == list => s
                .iter()
                .find(|e| e.name == "M")
                .and_then(|e| e.symbol_type.template_instance()),
            _ => None,
        })
        .unwrap();
    let read = pair
        .client
        .submit(pair.now, Operation::read_template(instance));
    pair.pump();
    let template = pair
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Reply {
                op,
                result: Ok(Value::Template(tpl)),
            } if *op == read => Some(tpl.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{:?}", pair.events.last()));
    assert_eq!(template.name, "Motor");
    let r = pair.run(&["M"]);
    let (handle, data) = match values(&r[0]) {
        Values::Structure { handle, data } => (handle, data),
        other => panic!("{other:?}"),
    };
    assert_eq!(handle, template.handle);
    assert_eq!(data.len(), template.structure_size as usize);
    let members = template.decode_value(&data).unwrap();
    let get = |name: &str| {
        members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("Run"), Some(Values::Bool(vec![false])));
    assert_eq!(get("Fault"), Some(Values::Bool(vec![true])));
    assert_eq!(get("Speed"), Some(Values::Real(vec![1.5])));
    assert_eq!(get("Hist"), Some(Values::Dint(vec![0, 7, 8, 0])));
    assert!(members
        .iter()
        .all(|(n, _)| !n.starts_with(HIDDEN_MEMBER_PREFIX)));
}

#[test]
fn multiple_service_packets_are_packed_within_the_reply_budget_too() {
    // 30 reads of 10 INTs: their requests (16 bytes each) would fit 30 to a 500-byte
    // packet, but not their replies; packed by requests alone the device answered the
    // tail partially (0x06) and every fragment cost a transaction of its own.
    let mut pair = Pair::new(options(1, 500, false));
    let texts: Vec<String> = (0..30)
        .map(|i| format!("SCADA[{}-{}]", 10 * i, 10 * i + 9))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = pair.run(&texts);
    assert_eq!(results.len(), 30);
    for r in &results {
        assert_eq!(values(r), Values::Int(vec![0; 10]));
    }
    let stats = *pair.client.stats();
    assert_eq!(stats.requests, 30, "no fragments: {stats:?}");
    // 4 + 2 + 10 x 4 bytes reckoned per reply: 10 to a packet.
    assert_eq!(stats.transactions, 3, "{stats:?}");
}
