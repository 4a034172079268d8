//! The pipeline runner over the client engine, against the server engine and a simulated
//! controller, in memory: every operation kind at depths 1, 2 and 20, with and without
//! Multiple Service Packets, connected and unconnected; results in order whatever the
//! reply order, with Set Attribute Single, the tag list and a structure read through its
//! template among them; timeouts and a lost connection harvested in order too.

use std::time::{Duration, Instant};

use super::*;
use crate::cip::operation::{parse_attribute_operation, parse_operation};
use crate::controller::Controller;
use crate::enip::server::{Server, ServerConn, ServerOptions};

// The controller and helpers of the client engine's own tests.
use super::super::tests::{controller, frames, peer};

/// A client and a server engine joined in memory.
struct Pair {
    now: Instant,
    client: ClientConn,
    server: Server<Controller>,
    conn: ServerConn<Controller>,
    /// Answer each round's frames in reverse order.
    reverse: bool,
    /// The most operations the runner had unanswered at once.
    max_pending: usize,
    /// The most request frames in one round.
    max_burst: usize,
}

impl Pair {
    fn new(options: ClientOptions) -> Self {
        let now = Instant::now();
        let mut server = Server::new(controller(), ServerOptions::default());
        let conn = ServerConn::new(now, peer(), &mut server);
        Pair {
            now,
            client: ClientConn::new(now, options),
            server,
            conn,
            reverse: false,
            max_pending: 0,
            max_burst: 0,
        }
    }

    /// Run `pipeline` to the end, as a runtime does; every result, in the order handed out.
    fn run<I: Iterator<Item = Operation>>(&mut self, pipeline: &mut Pipeline<I>) -> Vec<Harvested> {
        let mut results = Vec::new();
        for _ in 0..10_000 {
            if pipeline.is_finished() {
                return results;
            }
            pipeline.step(self.now, &mut self.client);
            self.max_pending = self.max_pending.max(pipeline.pending());
            let mut a = Vec::new();
            self.client.poll_transmit(self.now, &mut a);
            self.max_burst = self.max_burst.max(frames(&a).len());
            self.conn.handle_input(self.now, &a, &mut self.server);
            let mut b = Vec::new();
            while self.conn.poll_transmit(self.now, &mut b) {}
            if self.reverse {
                for f in frames(&b).into_iter().rev() {
                    self.client.handle_input(self.now, &f);
                }
            } else {
                self.client.handle_input(self.now, &b);
            }
            pipeline.step(self.now, &mut self.client);
            while let Some(done) = pipeline.poll_result() {
                results.push(done);
            }
        }
        panic!("the pipeline never finished: {results:?}");
    }
}

fn op(text: &str) -> Operation {
    if text.starts_with('@') && !text.contains('=') {
        parse_attribute_operation(text).unwrap()
    } else {
        parse_operation(text).unwrap()
    }
}

/// A structure type `Motor` and a tag `M` of it, with `M.Speed` 2.5 (written by the
/// connection's first pipeline); that pipeline's connection events.
fn motor(pair: &mut Pair) -> Vec<ClientEvent> {
    let tags = pair.server.device_mut().tags_mut();
    tags.define_structure(
        "Motor",
        &[
            ("Run", "BOOL", 0),
            ("Speed", "REAL", 0),
            ("Hist", "DINT", 4),
        ],
    )
    .unwrap();
    tags.add_str("M=Motor").unwrap();
    let mut setup = Pipeline::new([op("M.Speed=(REAL)2.5")].into_iter(), Pipelining::default());
    let done = pair.run(&mut setup);
    assert_eq!(done[0].value(), Some(&Value::Written));
    std::iter::from_fn(|| setup.poll_event()).collect()
}

/// Every operation kind, and the line cpppo prints for each.
const EVERY_KIND: &[(&str, &str)] = &[
    (
        "SCADA[1-3]=4,5,6",
        "            SCADA[1][  1-3  ]+  0 <= [4, 5, 6]: 'OK'",
    ),
    (
        "SCADA[0-3]",
        "            SCADA[0][  0-3  ]+  0 == [0, 4, 5, 6]: 'OK'",
    ),
    (
        "SCADA[2]*2",
        "            SCADA[2][  2-3  ]+  0 == [5, 6]: 'OK'",
    ),
    (
        "SCADA[0-3]+2",
        "            SCADA[0][  0-2  ]+  2 == [4, 5, 6]: 'OK'",
    ),
    (
        "SCADA=(INT)-7",
        "               SCADA              <= [-7]: 'OK'",
    ),
    ("SCADA", "               SCADA              == [-7]: 'OK'"),
    (
        "FLOATS[1-2]=1.5,2",
        "           FLOATS[1][  1-2  ]+  0 <= [1.5, 2.0]: 'OK'",
    ),
    (
        "FLOATS[0-2]",
        "           FLOATS[0][  0-2  ]+  0 == [0.0, 1.5, 2.0]: 'OK'",
    ),
    (
        "BIG[5]=(DINT)123456",
        "              BIG[5][  5-5  ]+  0 <= [123456]: 'OK'",
    ),
    (
        "BIG[4-5]",
        "              BIG[4][  4-5  ]+  0 == [0, 123456]: 'OK'",
    ),
    (
        r#"TEXT[1]=(SSTRING)"Hello, world!""#,
        "             TEXT[1][  1-1  ]+  0 <= ['Hello, world!']: 'OK'",
    ),
    (
        "TEXT[0-1]",
        "             TEXT[0][  0-1  ]+  0 == ['', 'Hello, world!']: 'OK'",
    ),
    (
        "Program:Main.Count=(DINT)42",
        "  Program:Main.Count              <= [42]: 'OK'",
    ),
    (
        "Program:Main.Count",
        "  Program:Main.Count              == [42]: 'OK'",
    ),
    (
        "NOPE",
        "                NOPE              == None: 'Status 4 [0]'",
    ),
    (
        "SCADA[0-1]=(DINT)1,2",
        "            SCADA[0][  0-1  ]+  0 <= [1, 2]: 'Status 255 [8455]'",
    ),
    (
        "SCADA[1000]",
        "         SCADA[1000][1000-1000]+  0 == None: 'Status 5 '",
    ),
];

#[test]
fn every_operation_kind_at_every_depth_with_and_without_msp_connected_or_not() {
    for connected in [false, true] {
        for multiple in [0, 200] {
            for depth in [1, 2, 20] {
                let what = format!("depth {depth} multiple {multiple} connected {connected}");
                let mut pair = Pair::new(ClientOptions {
                    connected,
                    ..ClientOptions::default()
                });
                let events = motor(&mut pair);
                let mut ops: Vec<Operation> = EVERY_KIND.iter().map(|(t, _)| op(t)).collect();
                ops.push(op("@1/1/7"));
                ops.push(op("@1/1"));
                ops.push(Operation::list_tags(None).unwrap());
                ops.push(parse_attribute_operation("@1/1/7=(USINT)1").unwrap());
                let total = ops.len();
                let mut pipeline = Pipeline::new(
                    ops.into_iter(),
                    Pipelining {
                        depth,
                        multiple,
                        ..Pipelining::default()
                    },
                );
                let results = pair.run(&mut pipeline);
                assert_eq!(results.len(), total, "{what}");
                for (i, r) in results.iter().enumerate() {
                    assert_eq!(r.index, i as u64, "{what}");
                }
                for (r, (_, line)) in results.iter().zip(EVERY_KIND) {
                    assert_eq!(r.line(), *line, "{what}");
                }
                match results[EVERY_KIND.len()].value() {
                    Some(Value::Data(d)) => {
                        assert!(d.len() > 1 && usize::from(d[0]) == d.len() - 1, "{what}")
                    }
                    other => panic!("{what}: {other:?}"),
                }
                match results[EVERY_KIND.len() + 1].value() {
                    Some(Value::Data(d)) => assert!(d.len() > 20, "{what}: {d:?}"),
                    other => panic!("{what}: {other:?}"),
                }
                let template = match results[EVERY_KIND.len() + 2].value() {
                    Some(Value::Symbols(s)) => {
                        let names: Vec<&str> = s.iter().map(|e| e.name.as_str()).collect();
                        for tag in ["SCADA", "BIG", "FLOATS", "TEXT", "M"] {
                            assert!(names.contains(&tag), "{what}: {names:?}");
                        }
                        s.iter()
                            .find(|e| e.name == "M")
                            .and_then(|e| e.symbol_type.template_instance())
                            .unwrap()
                    }
                    other => panic!("{what}: {other:?}"),
                };
                // The Identity's product name is not settable: a CIP status, not a loss.
                assert!(
                    matches!(
                        &results[EVERY_KIND.len() + 3].outcome,
                        Outcome::Answered(Err(s)) if !s.general.is_success()
                    ),
                    "{what}: {:?}",
                    results[EVERY_KIND.len() + 3]
                );
                let summary = pipeline.summary(&pair.client);
                assert_eq!(summary.operations, total as u64, "{what}");
                assert_eq!(summary.failures, 4, "{what}");
                // A second run on the same connection: the structure's template, then
                // the structure read and decoded with it.
                let mut second = Pipeline::new(
                    [Operation::read_template(template), op("M")].into_iter(),
                    Pipelining {
                        depth,
                        multiple,
                        ..Pipelining::default()
                    },
                );
                let done = pair.run(&mut second);
                let (Some(Value::Template(t)), Some(Value::Values(Values::Structure { data, .. }))) =
                    (done[0].value(), done[1].value())
                else {
                    panic!("{what}: {done:?}");
                };
                let members = t.decode_value(data).unwrap();
                assert!(
                    members.contains(&("Speed".to_string(), Values::Real(vec![2.5]))),
                    "{what}: {members:?}"
                );
                assert_eq!(second.summary(&pair.client).operations, 2, "{what}");
                if multiple > 0 {
                    assert!(
                        summary.transactions < summary.requests,
                        "{what}: {summary:?}"
                    );
                } else {
                    assert_eq!(summary.transactions, summary.requests, "{what}");
                }
                // The window: depth operations unanswered, or 32 per depth to pack.
                let window = if multiple > 0 {
                    depth * QUEUE_PER_DEPTH
                } else {
                    depth
                };
                assert_eq!(pair.max_pending, window.min(total), "{what}");
                assert!(pair.max_burst <= depth, "{what}: burst {}", pair.max_burst);
                if depth > 1 {
                    assert!(pair.max_burst > 1, "{what}: no pipelining");
                }
                // The session's events went to the connection's first pipeline.
                assert!(
                    matches!(events.first(), Some(ClientEvent::Registered { .. })),
                    "{what}: {events:?}"
                );
                assert_eq!(pipeline.poll_event(), None, "{what}");
                if connected {
                    assert!(pair.client.connection_id().is_some(), "{what}");
                    assert!(
                        matches!(events.get(1), Some(ClientEvent::Connected { .. })),
                        "{what}: {events:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn replies_in_reverse_order_are_handed_out_in_operation_order() {
    for connected in [false, true] {
        let mut pair = Pair::new(ClientOptions {
            connected,
            ..ClientOptions::default()
        });
        pair.reverse = true;
        let writes: Vec<Operation> = (0..10)
            .map(|i| op(&format!("SCADA[{i}]={}", i * 11)))
            .collect();
        let reads: Vec<Operation> = (0..10).map(|i| op(&format!("SCADA[{i}]"))).collect();
        let mut pipeline = Pipeline::new(
            writes.into_iter().chain(reads),
            Pipelining::default().depth(5),
        );
        let results = pair.run(&mut pipeline);
        let indices: Vec<u64> = results.iter().map(|r| r.index).collect();
        assert_eq!(indices, (0..20).collect::<Vec<u64>>());
        for (i, r) in results[10..].iter().enumerate() {
            assert_eq!(
                r.value(),
                Some(&Value::Values(Values::Int(vec![i as i16 * 11]))),
                "connected {connected}"
            );
        }
        assert_eq!(pipeline.summary(&pair.client).failures, 0);
    }
}

#[test]
fn synchronous_keeps_one_operation_in_flight() {
    let mut pair = Pair::new(ClientOptions {
        depth: 8,
        ..ClientOptions::default()
    });
    let ops = (0..6).map(|i| op(&format!("BIG[{i}]")));
    let mut pipeline = Pipeline::new(ops, Pipelining::of(pair.client.options()).synchronous());
    let results = pair.run(&mut pipeline);
    assert_eq!(results.len(), 6);
    assert_eq!((pair.max_pending, pair.max_burst), (1, 1));
    assert_eq!(pair.client.options().depth, 1);
}

#[test]
fn a_silent_server_times_every_operation_out_in_order() {
    let now = Instant::now();
    let mut client = ClientConn::new(now, ClientOptions::default());
    let ops = ["SCADA[0]", "SCADA[1]", "SCADA[2]"].map(op);
    let mut pipeline = Pipeline::new(
        ops.into_iter(),
        Pipelining {
            depth: 2,
            timeout: Some(Duration::from_secs(1)),
            ..Pipelining::default()
        },
    );
    assert!(pipeline.step(now, &mut client));
    assert_eq!(pipeline.pending(), 2, "the window is the depth");
    let mut sent = Vec::new();
    client.poll_transmit(now, &mut sent);
    // The session itself waits for the connection's own (5 s) deadline; the two
    // operations for theirs.
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(1)));
    let mut results = Vec::new();
    let mut t = now;
    while !pipeline.is_finished() {
        t += Duration::from_millis(500);
        client.handle_timeout(t);
        pipeline.step(t, &mut client);
        while let Some(r) = pipeline.poll_result() {
            results.push(r);
        }
        assert!(t < now + Duration::from_secs(30), "never finished");
    }
    let got: Vec<(u64, Outcome)> = results.into_iter().map(|r| (r.index, r.outcome)).collect();
    // The third went in when the first timed out (at 1 s), and timed out at 2 s, before
    // the session's own deadline.
    assert_eq!(
        got,
        vec![
            (0, Outcome::Lost(LostReason::Timeout)),
            (1, Outcome::Lost(LostReason::Timeout)),
            (2, Outcome::Lost(LostReason::Timeout)),
        ]
    );
    let summary = pipeline.summary(&client);
    assert_eq!((summary.operations, summary.failures), (3, 3));
    assert_eq!(summary.elapsed, Duration::from_secs(2));
}

#[test]
fn a_lost_connection_loses_the_rest_in_order() {
    let mut pair = Pair::new(ClientOptions::default());
    let ops = (0..10).map(|i| op(&format!("SCADA[{i}]")));
    let mut pipeline = Pipeline::new(ops, Pipelining::default().depth(3));
    let mut results = Vec::new();
    // Two rounds answered, then the server hangs up.
    for _ in 0..2 {
        pipeline.step(pair.now, &mut pair.client);
        let mut a = Vec::new();
        pair.client.poll_transmit(pair.now, &mut a);
        pair.conn.handle_input(pair.now, &a, &mut pair.server);
        let mut b = Vec::new();
        while pair.conn.poll_transmit(pair.now, &mut b) {}
        pair.client.handle_input(pair.now, &b);
    }
    pair.client.handle_eof(pair.now);
    while !pipeline.is_finished() {
        pipeline.step(pair.now, &mut pair.client);
        while let Some(r) = pipeline.poll_result() {
            results.push(r);
        }
    }
    assert_eq!(results.len(), 10);
    let answered = results.iter().take_while(|r| !r.failed()).count();
    assert!(answered >= 3, "{results:?}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.index, i as u64);
        if i >= answered {
            assert_eq!(r.outcome, Outcome::Lost(LostReason::Closed), "{i}");
            assert_eq!(
                r.line(),
                format!(
                    "{:>20}[{i:>3}-{i:<3}]+  0 == None: 'connection closed'",
                    format!("SCADA[{i}]")
                )
            );
        }
    }
    assert_eq!(
        pipeline.summary(&pair.client).failures,
        10 - answered as u64
    );
}

#[test]
fn no_operations_finish_at_once() {
    let now = Instant::now();
    let mut client = ClientConn::new(now, ClientOptions::default());
    let mut pipeline = Pipeline::new(std::iter::empty(), Pipelining::default());
    assert!(!pipeline.is_finished(), "not before its first step");
    pipeline.step(now, &mut client);
    assert!(pipeline.is_finished());
    assert_eq!(pipeline.poll_result(), None);
    assert_eq!(pipeline.summary(&client), Summary::default());
}

#[test]
fn results_serialize_and_summaries_read_like_cpppos() {
    let h = Harvested {
        index: 3,
        operation: op("SCADA[1-2]"),
        outcome: Outcome::Answered(Ok(Value::Values(Values::Int(vec![1, 2])))),
    };
    assert_eq!(h.description(), "SCADA[1-2]");
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(serde_json::from_str::<Harvested>(&json).unwrap(), h);
    let s = Summary {
        operations: 100,
        failures: 0,
        transactions: 10,
        requests: 100,
        elapsed: Duration::from_millis(250),
    };
    assert_eq!(
        s.line(),
        "Client Tag I/O  Average 400.000 TPS (  0.003s ea)."
    );
    let p: Pipelining = serde_json::from_str(r#"{"depth": 4, "timeout": 0.5}"#).unwrap();
    assert_eq!(
        p,
        Pipelining {
            depth: 4,
            timeout: Some(Duration::from_millis(500)),
            ..Pipelining::default()
        }
    );
    assert_eq!(op("@1/1/7").method, Method::GetAttributeSingle);
}
