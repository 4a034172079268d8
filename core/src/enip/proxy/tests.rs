//! The proxy against the real server engine and a simulated controller, in memory.

use std::time::{Duration, Instant};

use super::*;
use crate::enip::sim::Device;

/// Drive the proxy with the device until nothing moves; the events seen (the adapter's
/// `Connect` and `Disconnect` acted on, as a runtime would).
fn run(proxy: &mut Proxy, device: &mut Device, now: Instant) -> Vec<ProxyEvent> {
    let mut seen = Vec::new();
    loop {
        device.exchange(now, proxy);
        let mut moved = false;
        while let Some(event) = proxy.poll_event() {
            moved = true;
            match &event {
                ProxyEvent::Connect => {
                    if device.accept(now) {
                        proxy.handle_connected(now);
                    } else {
                        proxy.handle_connect_failed(now, "Connection refused");
                    }
                }
                ProxyEvent::Disconnect { .. } => device.conn = None,
                _ => {}
            }
            seen.push(event);
        }
        if !moved {
            return seen;
        }
    }
}

fn done(events: &[ProxyEvent]) -> Vec<(RequestId, Vec<Result<Reply, ParamError>>)> {
    events
        .iter()
        .filter_map(|e| match e {
            ProxyEvent::Done { request, results } => Some((*request, results.clone())),
            _ => None,
        })
        .collect()
}

fn value(text: &str) -> Result<Reply, ParamError> {
    Ok(Reply::Value(ParamValue(match text {
        "" => vec![],
        _ => text
            .split(',')
            .map(|t| match t.parse::<i64>() {
                Ok(n) => Datum::Int(n),
                Err(_) => Datum::Real(t.parse().unwrap()),
            })
            .collect(),
    })))
}

#[test]
fn type_specs_parse_print_and_convert() {
    let spec: TypeSpec = "REAL".parse().unwrap();
    assert_eq!(spec, TypeSpec::of(CipType::Elementary(DataType::REAL)));
    assert_eq!(spec.to_string(), "REAL");
    let bytes: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    assert_eq!(
        spec.decode(&bytes).unwrap(),
        vec![Datum::Real(1.5), Datum::Real(-2.0)]
    );
    assert!(spec.decode(&bytes[..6]).is_err(), "half a REAL");
    let two: TypeSpec = "real[2]".parse().unwrap();
    assert_eq!(
        (two.to_string(), two.repeat),
        ("REAL[2]".to_string(), false)
    );
    assert_eq!(two.decode(&bytes).unwrap().len(), 2);
    // cpppo's Identity parameter, on the bytes of a Get Attributes All reply.
    let identity: TypeSpec = "INT,INT,INT,INT,INT,DINT,SSTRING,USINT".parse().unwrap();
    let mut raw = vec![1, 0, 14, 0, 54, 0, 20, 11, 96, 49, 26, 6, 108, 0, 3];
    raw.extend_from_slice(b"PLC");
    raw.push(255);
    let value = ParamValue(identity.decode(&raw).unwrap());
    assert_eq!(
        value.to_string(),
        "[1, 14, 54, 2836, 12640, 7079450, 'PLC', 255]"
    );
    let ip: TypeSpec = "IPADDR,WORD".parse().unwrap();
    assert_eq!(
        ParamValue(ip.decode(&[192, 168, 0, 201, 0x34, 0x12]).unwrap()).to_string(),
        "['192.168.0.201', 4660]"
    );
    assert_eq!(
        "FLOAT".parse::<TypeSpec>(),
        Err(ProxyError::UnknownType("FLOAT".into()))
    );
    assert!(matches!(
        "INT[0]".parse::<TypeSpec>(),
        Err(ProxyError::BadCount(_))
    ));
    assert!(matches!(
        "INT[x".parse::<TypeSpec>(),
        Err(ProxyError::BadCount(_))
    ));
}

#[test]
fn parameters_are_found_as_cpppo_finds_them() {
    let params = powerflex_750_series();
    let p = params.get("  output   CURRENT ").unwrap();
    assert_eq!(
        (p.address.as_str(), p.units.as_deref()),
        ("@0x93/7/10", Some("Amps"))
    );
    assert_eq!(p.read.method, Method::GetAttributeSingle);
    assert_eq!(
        params.get("Identity").unwrap().read.method,
        Method::GetAttributesAll
    );
    // Unknown names pass through as typed addresses or tags.
    let q = params.resolve("@0x93/3/10=REAL").unwrap();
    assert_eq!(q.types.unwrap().to_string(), "REAL");
    let t = params.resolve("SCADA[0-3]").unwrap();
    assert_eq!(
        (t.read.method, t.read.elements, t.types),
        (Method::Read, 4, None)
    );
    assert!(matches!(
        params.resolve("No Such Thing"),
        Err(ProxyError::UnknownParameter(_))
    ));
    assert!(matches!(
        params.resolve("SCADA=REAL"),
        Err(ProxyError::Operation { .. })
    ));
    // Writes: typed attributes with their type, tags as cpppo writes them.
    let w = p.write_operation("1.5").unwrap();
    assert_eq!(
        (w.method, w.values),
        (Method::SetAttributeSingle, Some(Values::Real(vec![1.5])))
    );
    assert!(matches!(
        params.get("Identity").unwrap().write_operation("1"),
        Err(ProxyError::NotWritable(_))
    ));
    assert!(matches!(
        p.write_operation("fast"),
        Err(ProxyError::Operation { .. })
    ));
}

#[test]
fn reads_and_writes_powerflex_parameters() {
    let now = Instant::now();
    let mut device = Device::new();
    device.set("Output_Current", Values::Real(vec![123.45]));
    device.set("Speed_Units", Values::Dint(vec![1]));
    let params = powerflex_750_series();
    let names = ["Output Current", "Speed Units", "Motor Velocity"];
    let list: Vec<Parameter> = names
        .iter()
        .map(|n| params.get(n).unwrap().clone())
        .collect();
    let mut proxy = Proxy::new(ClientOptions::simple());
    assert_eq!(
        proxy.poll_timeout(),
        None,
        "nothing opened before a request"
    );
    let read = proxy.read(now, &list);
    let events = run(&mut proxy, &mut device, now);
    assert_eq!(events[0], ProxyEvent::Connect);
    assert!(matches!(events[1], ProxyEvent::Opened { .. }));
    assert_eq!(
        done(&events),
        vec![(
            read,
            vec![
                value(&f64::from(123.45f32).to_string()),
                value("1"),
                value("0.0")
            ]
        )]
    );
    // A write, then a read in the same breath (pipelined), over the same gateway.
    let velocity = params.get("Motor Velocity").unwrap();
    let w = proxy.write(now, velocity, "789.01").unwrap();
    let r = proxy.read(now, std::slice::from_ref(velocity));
    let events = run(&mut proxy, &mut device, now);
    assert!(!events.contains(&ProxyEvent::Connect));
    let d = done(&events);
    assert_eq!(d[0], (w, vec![Ok(Reply::Written)]));
    assert_eq!(d[1], (r, vec![value(&f64::from(789.01f32).to_string())]));
    assert_eq!(device.get("Motor_Velocity"), Values::Real(vec![789.01]));
    // A tag, read with Read Tag in its own type.
    device.set("SCADA", Values::Int(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    let tag = params.resolve("SCADA[2-4]").unwrap();
    let r = proxy.read(now, &[tag]);
    let d = done(&run(&mut proxy, &mut device, now));
    assert_eq!(d, vec![(r, vec![value("3,4,5")])]);
    assert_eq!(proxy.statistics().connects, 1);
}

#[test]
fn a_refused_attribute_fails_alone_and_keeps_the_gateway() {
    let now = Instant::now();
    let mut device = Device::new();
    let params = powerflex_750_series();
    let bad = params.resolve("@0x93/99/10=REAL").unwrap();
    let good = params.get("Output Frequency").unwrap().clone();
    let mut proxy = Proxy::new(ClientOptions::simple());
    let r = proxy.read(now, &[bad, good]);
    let events = run(&mut proxy, &mut device, now);
    let d = done(&events);
    assert_eq!(d[0].0, r);
    match &d[0].1[0] {
        Err(e @ ParamError::Status(_)) => assert!(!e.is_link_failure()),
        other => panic!("expected a CIP status, got {other:?}"),
    }
    assert_eq!(d[0].1[1], value("0.0"));
    assert!(proxy.is_open());
    assert!(!events
        .iter()
        .any(|e| matches!(e, ProxyEvent::Disconnect { .. })));
    // Raw bytes that do not convert fail alone too.
    let wrong = params.resolve("@0x93/300/10=LREAL").unwrap();
    proxy.read(now, &[wrong]);
    let d = done(&run(&mut proxy, &mut device, now));
    assert!(matches!(d[0].1[0], Err(ParamError::Convert(_))), "{d:?}");
    assert!(proxy.is_open());
}

#[test]
fn failure_closes_the_gateway_and_the_next_request_reopens_it() {
    let t0 = Instant::now();
    let mut device = Device::new();
    let params = powerflex_750_series();
    let p = params.get("Output Current").unwrap().clone();
    let mut proxy = Proxy::new(ClientOptions {
        timeout: Duration::from_secs(2),
        ..ClientOptions::simple()
    });
    proxy.read(t0, std::slice::from_ref(&p));
    run(&mut proxy, &mut device, t0);
    assert!(proxy.is_open());

    // The device stops answering: the read times out at its deadline, and the gateway
    // is closed.
    let r = proxy.read(t0, std::slice::from_ref(&p));
    let mut out = Vec::new();
    assert!(proxy.poll_transmit(t0, &mut out), "the request is sent");
    assert_eq!(proxy.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    let t1 = t0 + Duration::from_secs(2);
    proxy.handle_timeout(t1);
    let events: Vec<ProxyEvent> = std::iter::from_fn(|| proxy.poll_event()).collect();
    assert_eq!(
        events,
        vec![
            ProxyEvent::Done {
                request: r,
                results: vec![Err(ParamError::Lost(LostReason::Timeout))]
            },
            ProxyEvent::Disconnect {
                reason: "timed out".into()
            }
        ]
    );
    assert!(!proxy.is_open());
    device.conn = None;

    // The server is down: the next request asks for a gateway and fails to connect.
    device.stop();
    let r = proxy.read(t1, std::slice::from_ref(&p));
    let d = done(&run(&mut proxy, &mut device, t1));
    assert_eq!(
        d,
        vec![(
            r,
            vec![Err(ParamError::Connect("Connection refused".into()))]
        )]
    );
    // Back up, with a new value: a new gateway reads it.
    device.running = true;
    device.set("Output_Current", Values::Real(vec![16.5]));
    let r = proxy.read(t1, &[p]);
    let events = run(&mut proxy, &mut device, t1);
    assert_eq!(events[0], ProxyEvent::Connect);
    assert_eq!(done(&events), vec![(r, vec![value("16.5")])]);
    assert_eq!(proxy.statistics().connects, 3);
    assert_eq!(proxy.statistics().closed, 1);
}

#[test]
fn a_closed_connection_fails_what_is_in_flight() {
    let now = Instant::now();
    let mut device = Device::new();
    let params = powerflex_750_series();
    let p = params.get("Output Current").unwrap().clone();
    let mut proxy = Proxy::new(ClientOptions::simple());
    proxy.read(now, std::slice::from_ref(&p));
    run(&mut proxy, &mut device, now);
    let r = proxy.read(now, &[p.clone(), p]);
    let mut out = Vec::new();
    while proxy.poll_transmit(now, &mut out) {}
    proxy.handle_disconnected(now);
    let events: Vec<ProxyEvent> = std::iter::from_fn(|| proxy.poll_event()).collect();
    assert_eq!(
        done(&events),
        vec![(
            r,
            vec![
                Err(ParamError::Lost(LostReason::Closed)),
                Err(ParamError::Lost(LostReason::Closed))
            ]
        )]
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ProxyEvent::Disconnect { .. })));
    assert!(!proxy.is_open());
    // Idle and closed: no deadline, nothing to send.
    assert_eq!(proxy.poll_timeout(), None);
    assert!(!proxy.poll_transmit(now, &mut out));
}

#[test]
fn pipelined_and_packed_reads_give_the_same_values() {
    let now = Instant::now();
    let params = powerflex_750_series();
    let names = [
        "Output Current",
        "Speed Units",
        "Motor Velocity",
        "Product Name",
    ];
    let list: Vec<Parameter> = names
        .iter()
        .map(|n| params.get(n).unwrap().clone())
        .collect();
    let mut seen = Vec::new();
    for (depth, multiple) in [(1, 0), (3, 0), (2, 500)] {
        let mut device = Device::new();
        device.set("Output_Current", Values::Real(vec![7.25]));
        device.set("Speed_Units", Values::Dint(vec![1]));
        let mut proxy = Proxy::new(ClientOptions {
            depth,
            multiple,
            ..ClientOptions::simple()
        });
        let a = proxy.read(now, &list);
        let b = proxy.read(now, &list[..2]);
        let d = done(&run(&mut proxy, &mut device, now));
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), [a, b]);
        assert_eq!(d[1].1[..], d[0].1[..2]);
        let shown: Vec<String> = d[0]
            .1
            .iter()
            .map(|r| match r {
                Ok(Reply::Value(v)) => v.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shown,
            ["[7.25]", "[1]", "[0.0]", "['1756-L61/B LOGIX5561']"],
            "depth {depth}, multiple {multiple}"
        );
        seen.push(shown);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn poll_request_says_what_a_waiting_adapter_does_next() {
    let now = Instant::now();
    let mut device = Device::new();
    let params = powerflex_750_series();
    let p = params.get("Output Frequency").unwrap().clone();
    let mut proxy = Proxy::new(ClientOptions::simple());
    let first = proxy.read(now, std::slice::from_ref(&p));
    let second = proxy.read(now, &[p]);
    assert_eq!(proxy.poll_request(second), Some(Awaited::Connect));
    assert!(device.accept(now));
    proxy.handle_connected(now);
    device.exchange(now, &mut proxy);
    // The session opened and the first request are passed over.
    assert_eq!(
        proxy.poll_request(second),
        Some(Awaited::Done(vec![value("0.0")]))
    );
    assert_eq!(proxy.poll_request(first), None);
    proxy.handle_disconnected(now);
    assert_eq!(proxy.poll_request(first), Some(Awaited::Disconnect));
}
