use std::time::{Duration, Instant};

use super::*;
use crate::cip::device::{CipDevice, RequestContext, UNCONNECTED_REPLY_BUDGET};
use crate::cip::message_router::{service, MessageRouterRequest};
use crate::controller::ControllerConfig;
use crate::engine::Server as _;
use crate::enip::encapsulation::Encapsulation;
use crate::enip::server::{ServerConn, ServerOptions};
use crate::wire::Encode;

fn server() -> Server<Controller> {
    let mut plc = Controller::new(ControllerConfig::default());
    for spec in [
        "SCADA=INT[1000]",
        "Speed=REAL",
        "Flag=BOOL",
        "Text=STRING",
        "Big=ULINT[2]",
        "Program:Main.Count=DINT",
    ] {
        plc.tags_mut().add_str(spec).unwrap();
    }
    Server::new(plc, ServerOptions::default())
}

fn run(server: &mut Server<Controller>, url: &str) -> Result<ApiReply, ApiError> {
    apply(server, &parse_request(url)?, 1_700_000_000.25)
}

fn ok(server: &mut Server<Controller>, url: &str) -> ApiReply {
    let reply = run(server, url).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(reply.until, 1_700_000_000.25);
    reply
}

fn message(reply: &ApiReply) -> &str {
    assert_eq!(reply.command.success, Some(true));
    reply.command.message.as_deref().unwrap()
}

fn connect(server: &mut Server<Controller>, now: Instant, peer: &str) -> ServerConn<Controller> {
    let mut conn = ServerConn::new(now, peer.parse().unwrap(), server);
    conn.handle_input(
        now,
        &Encapsulation::register_session([0; 8]).to_vec(),
        server,
    );
    let mut out = Vec::new();
    assert!(conn.poll_transmit(now, &mut out));
    conn
}

fn read_tag(plc: &mut Controller, path: &str) -> (u8, Vec<u8>) {
    let ctx = RequestContext {
        now: Instant::now(),
        connection: None,
        reply_budget: UNCONNECTED_REPLY_BUDGET,
    };
    let read = MessageRouterRequest::new(service::READ_TAG, path.parse().unwrap(), vec![1, 0]);
    let reply = plc.execute(&ctx, &read);
    (reply.general_status.0, reply.data.to_vec())
}

// ---------------------------------------------------------------------------------------
// The grammar

#[test]
fn globs() {
    let p = |s: &str| Pattern(s.into());
    assert!(p("*").matches(""));
    assert!(p("*").matches("SCADA"));
    assert!(p("SC*").matches("SCADA"));
    assert!(p("*DA").matches("SCADA"));
    assert!(p("S?ADA").matches("SCADA"));
    assert!(p("*A*A").matches("SCADA"));
    assert!(p("127_0_0_1_*").matches("127_0_0_1_52590"));
    assert!(!p("scada").matches("SCADA"));
    assert!(!p("S?").matches("SCADA"));
    assert!(!p("*B*").matches("SCADA"));
    assert!(!p("").matches("x"));
    assert!(p("a*b*c").matches("aXbYbZc"));
    assert!(!p("a*b*c").matches("aXbYbZ"));
}

#[test]
fn url_decoding() {
    assert_eq!(
        url_decode("attribute%5B3%5D", false).unwrap(),
        "attribute[3]"
    );
    assert_eq!(url_decode("a+b", false).unwrap(), "a+b");
    assert_eq!(url_decode("a+b%20c", true).unwrap(), "a b c");
    assert_eq!(url_decode("%C3%A9", false).unwrap(), "é");
    for bad in ["%", "%4", "%zz", "%FF", "%+1"] {
        assert_eq!(
            url_decode(bad, false),
            Err(ApiError::Encoding { text: bad.into() }),
            "{bad}"
        );
    }
}

#[test]
fn defaults_are_wildcards() {
    for url in ["/api", "/api/", "api", "/api//", "/api/*/*"] {
        let r = parse_request(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.group, Pattern::any(), "{url}");
        assert_eq!(r.matcher, Pattern::any(), "{url}");
        assert_eq!(r.command, None, "{url}");
        assert_eq!(r.since, None);
    }
    let r = parse_request("/api//SCADA").unwrap();
    assert_eq!((r.group.0.as_str(), r.matcher.0.as_str()), ("*", "SCADA"));
}

#[test]
fn slash_and_equals_values_are_the_same() {
    let slash = parse_request("/api/options/delay/value/0.5").unwrap();
    let equals = parse_request("/api/options/delay/value=0.5").unwrap();
    let json = parse_request("/api/options/delay/value=0.5.json").unwrap();
    let trailing = parse_request("/api/options/delay/value/0.5/").unwrap();
    let query = parse_request("/api/options/delay/value?value=0.5").unwrap();
    assert_eq!(slash, equals);
    assert_eq!(slash, json);
    assert_eq!(slash, trailing);
    assert_eq!(slash, query);
    assert_eq!(
        slash.command,
        Some(Command {
            attribute: Attribute::DelayValue,
            value: Some(("0.5".into(), Setting::Seconds(Duration::from_millis(500)))),
        })
    );
    // An empty value reads.
    let read = parse_request("/api/options/delay/value=").unwrap();
    assert_eq!(read.command.unwrap().value, None);
}

#[test]
fn indexed_attributes_and_encoded_brackets() {
    for url in [
        "/api/tags/SCADA/attribute[3]=4",
        "/api/tags/SCADA/attribute%5B3%5D=4",
        "/api/tags/SCADA/attribute%5B3%5D/4",
        "/api/tags/SCADA/attribute[0x3]%3D4",
    ] {
        let r = parse_request(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.matcher.0, "SCADA");
        assert_eq!(
            r.command,
            Some(Command {
                attribute: Attribute::Value { index: Some(3) },
                value: Some(("4".into(), Setting::Values("4".into()))),
            }),
            "{url}"
        );
    }
    let r = parse_request("/api/tags/SCADA/attribute").unwrap();
    assert_eq!(
        r.command.unwrap().attribute,
        Attribute::Value { index: None }
    );
    // A value may hold slashes and spaces.
    let r = parse_request("/api/tags/Text/attribute/a/b%20c").unwrap();
    assert_eq!(
        r.command.unwrap().value.unwrap().1,
        Setting::Values("a/b c".into())
    );
}

#[test]
fn query_parameters_override_and_since_is_echoed() {
    let r = parse_request("/api?group=tags&match=SC*&command=error&value=8&since=12.5").unwrap();
    assert_eq!(r.group.0, "tags");
    assert_eq!(r.matcher.0, "SC*");
    assert_eq!(
        r.command.unwrap().value.unwrap().1,
        Setting::Status(ForcedError {
            status: 8,
            extended: vec![]
        })
    );
    assert_eq!(r.since, Some(12.5));
    assert_eq!(
        parse_request("/api?foo=1"),
        Err(ApiError::UnknownQuery { name: "foo".into() })
    );
    assert!(matches!(
        parse_request("/api?since=later"),
        Err(ApiError::BadValue { .. })
    ));
}

#[test]
fn every_setting_parses() {
    let setting = |url: &str| {
        parse_request(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .command
            .unwrap()
            .value
            .unwrap()
            .1
    };
    assert_eq!(
        setting("/api/options/delay/range=0.5-1.5"),
        Setting::Range {
            min: Duration::from_millis(500),
            max: Duration::from_millis(1500)
        }
    );
    assert_eq!(
        setting("/api/server/control/disable/true"),
        Setting::Flag(true)
    );
    assert_eq!(
        setting("/api/server/control/disable/no"),
        Setting::Flag(false)
    );
    assert_eq!(setting("/api/server/control/done/1"), Setting::Flag(true));
    assert_eq!(
        setting("/api/server/control/latency=0.1"),
        Setting::Seconds(Duration::from_millis(100))
    );
    assert_eq!(
        setting("/api/server/control/timeout=2"),
        Setting::Seconds(Duration::from_secs(2))
    );
    assert_eq!(
        setting("/api/tags/SCADA/error=0xFF,0x2107"),
        Setting::Status(ForcedError {
            status: 0xFF,
            extended: vec![0x2107]
        })
    );
    assert_eq!(setting("/api/connections/*/eof/true"), Setting::Flag(true));
    assert_eq!(
        setting("/api/*/*/eof/true"),
        Setting::Flag(true),
        "a wildcard group takes any command"
    );
}

#[test]
fn errors_name_the_culprit() {
    let err = |url: &str| parse_request(url).unwrap_err();
    assert_eq!(
        err("/index.html"),
        ApiError::NotApi {
            path: "/index.html".into()
        }
    );
    assert_eq!(err("/apix/tags").http_status(), HTTP_NOT_FOUND);
    assert_eq!(
        err("/api/widgets"),
        ApiError::UnknownGroup {
            group: "widgets".into()
        }
    );
    assert_eq!(
        err("/api/tags/SCADA/colour"),
        ApiError::UnknownCommand {
            command: "colour".into()
        }
    );
    assert_eq!(
        err("/api/options/delay/eof/true"),
        ApiError::WrongGroup {
            command: "eof".into(),
            belongs: Group::Connections,
            group: "options".into()
        }
    );
    assert_eq!(
        err("/api/connections/*/port=1"),
        ApiError::ReadOnly {
            command: "port".into()
        }
    );
    for url in [
        "/api/options/delay/value=soon",
        "/api/options/delay/value=-1",
        "/api/options/delay/value=nan",
        "/api/options/delay/range=2",
        "/api/options/delay/range=2-1",
        "/api/options/delay/range=a-b",
        "/api/server/control/disable=maybe",
        "/api/tags/SCADA/error=256",
        "/api/tags/SCADA/error=8,65536",
        "/api/tags/SCADA/error=0,1",
        "/api/tags/SCADA/attribute[x]=1",
        "/api/tags/SCADA/attribute[-1]",
    ] {
        let e = err(url);
        assert!(matches!(e, ApiError::BadValue { .. }), "{url}: {e:?}");
        assert_eq!(e.http_status(), HTTP_BAD_REQUEST, "{url}");
    }
    assert_eq!(
        err("/api/tags/%ZZ"),
        ApiError::Encoding { text: "%ZZ".into() }
    );
    let e = err("/api/options/delay/value=soon");
    assert_eq!(
        e.to_string(),
        "value=\"soon\": not a number of seconds (e.g. 0.5)"
    );
}

// ---------------------------------------------------------------------------------------
// Applying commands to a live server

#[test]
fn the_root_lists_everything_in_cpppo_shape() {
    let mut s = server();
    let reply = ok(&mut s, "/api");
    assert_eq!(reply.command, CommandOutcome::default());
    let json = serde_json::to_value(&reply).unwrap();
    assert_eq!(json["alarm"], serde_json::json!([]));
    assert_eq!(json["command"], serde_json::json!({}));
    assert_eq!(json["since"], serde_json::Value::Null);
    assert_eq!(json["until"], serde_json::json!(1_700_000_000.25));
    assert_eq!(
        json["data"]["options"]["delay"],
        serde_json::json!({"value": 0.0, "range": null})
    );
    assert_eq!(
        json["data"]["server"]["control"],
        serde_json::json!({"disable": false, "done": false, "latency": 0.0, "timeout": 0.0})
    );
    let scada = &json["data"]["tags"]["SCADA"];
    assert_eq!(scada["error"], 0);
    assert_eq!(scada["type"], "INT");
    assert_eq!(scada["elements"], 1000);
    assert_eq!(scada["value"].as_array().unwrap().len(), VIEW_ELEMENTS);
    assert_eq!(
        scada["attribute"],
        "SCADA          INT[1000] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...]"
    );
    assert_eq!(
        json["data"]["tags"]["Program:Main.Count"]["attribute"],
        "Program:Main.Count DINT == 0"
    );
    // No connections: the group is left out.
    assert!(json["data"].get("connections").is_none());
    let back: ApiReply = serde_json::from_value(json).unwrap();
    assert_eq!(back, reply);
}

#[test]
fn delay_value_and_range_change_reply_release() {
    let mut s = server();
    let reply = ok(&mut s, "/api/options/delay/value/0.5");
    assert_eq!(message(&reply), "options.delay.value=\"0.5\" (0.5)");
    assert_eq!(
        s.faults.delay,
        ReplyDelay::Fixed(Duration::from_millis(500))
    );
    assert_eq!(reply.data.options["delay"].value, Some(0.5));
    assert!(reply.data.tags.is_empty(), "only the command's group");

    // A request now is answered 0.5 s later.
    let t0 = Instant::now();
    let mut conn = ServerConn::new(t0, "127.0.0.1:50000".parse().unwrap(), &mut s);
    conn.handle_input(
        t0,
        &Encapsulation::register_session([0; 8]).to_vec(),
        &mut s,
    );
    let mut out = Vec::new();
    assert!(!conn.poll_transmit(t0, &mut out));
    assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_millis(500)));

    let reply = ok(&mut s, "/api/options/delay/range=0.25-0.75");
    assert_eq!(
        reply.data.options["delay"].range.as_deref(),
        Some("0.25-0.75")
    );
    assert_eq!(reply.data.options["delay"].value, None);
    assert_eq!(
        s.faults.delay,
        ReplyDelay::Range {
            min: Duration::from_millis(250),
            max: Duration::from_millis(750)
        }
    );
    let reply = ok(&mut s, "/api/options/delay/range");
    assert_eq!(message(&reply), "options.delay.range: 0.25-0.75");
    assert_eq!(
        message(&ok(&mut s, "/api/options/delay/value")),
        "options.delay.value: null"
    );
    ok(&mut s, "/api/options/delay/value=0");
    assert_eq!(s.faults.delay, ReplyDelay::None);
    assert_eq!(
        message(&ok(&mut s, "/api/options/delay/value")),
        "options.delay.value: 0"
    );
}

#[test]
fn server_control_disable_done_latency_timeout() {
    let mut s = server();
    let t0 = Instant::now();
    let mut conn = connect(&mut s, t0, "127.0.0.1:50001");
    assert_eq!(
        conn.poll_timeout(),
        None,
        "no latency: idle connections sleep"
    );

    let reply = ok(&mut s, "/api/server/control/latency=0.1");
    assert_eq!(reply.data.server["control"].latency, 0.1);
    assert_eq!(s.faults.latency, Some(Duration::from_millis(100)));
    ok(&mut s, "/api/server/control/timeout=0.5");
    assert_eq!(s.faults.timeout, Some(Duration::from_millis(500)));
    assert_eq!(
        message(&ok(&mut s, "/api/server/control/timeout")),
        "server.control.timeout: 0.5"
    );
    // The connection picks the latency up at its next input, then wakes on its own.
    let t1 = t0 + Duration::from_millis(10);
    conn.handle_input(t1, &[], &mut s);
    assert_eq!(conn.poll_timeout(), Some(t1 + Duration::from_millis(100)));

    let request = parse_request("/api/server/control/disable/true").unwrap();
    assert!(needs_settling(&request));
    let reply = apply(&mut s, &request, 0.0).unwrap();
    assert!(reply.data.server["control"].disable);
    assert!(s.faults.disabled);
    assert!(s.faults_pending(), "the connection has not noticed yet");
    // New connections are refused; the idle one closes at its wake-up.
    let local = "127.0.0.1:44818".parse().unwrap();
    assert!(s
        .accept(t1, local, "127.0.0.1:50002".parse().unwrap())
        .is_none());
    let wake = conn.poll_timeout().unwrap();
    conn.handle_timeout(wake, &mut s);
    assert!(conn.is_closed());
    assert!(!s.faults_pending());

    ok(&mut s, "/api/server/control/disable=false");
    assert!(s
        .accept(t1, local, "127.0.0.1:50003".parse().unwrap())
        .is_some());
    assert!(!s.is_done());
    let reply = ok(&mut s, "/api/server/control/done/true");
    assert!(reply.data.server["control"].done);
    assert!(s.is_done());
    assert!(!needs_settling(
        &parse_request("/api/server/control/done").unwrap()
    ));
}

#[test]
fn tag_error_codes_appear_in_replies() {
    let mut s = server();
    assert_eq!(read_tag(s.device_mut(), "SCADA[1]").0, 0);
    let reply = ok(&mut s, "/api/tags/SCADA/error=8");
    assert_eq!(message(&reply), "tags.SCADA.error=\"8\" (8)");
    assert_eq!(reply.data.tags["SCADA"].error, 8);
    assert_eq!(read_tag(s.device_mut(), "SCADA[1]").0, 8);
    assert_eq!(
        read_tag(s.device_mut(), "Speed").0,
        0,
        "only the tag matched"
    );
    assert_eq!(
        message(&ok(&mut s, "/api/tags/SCADA/error")),
        "tags.SCADA.error: 8"
    );
    ok(&mut s, "/api/tags/SCADA/error/0");
    assert_eq!(read_tag(s.device_mut(), "SCADA[1]").0, 0);
    // A wildcard forces every tag.
    let reply = ok(&mut s, "/api/tags/*/error=0xFF,0x2107");
    assert_eq!(reply.data.tags.len(), 6);
    assert!(reply.data.tags.values().all(|t| t.error == 0xFF));
    assert_eq!(read_tag(s.device_mut(), "Speed").0, 0xFF);
}

#[test]
fn tag_attributes_read_and_write() {
    let mut s = server();
    let reply = ok(&mut s, "/api/tags/SCADA/attribute[3]=4");
    assert_eq!(message(&reply), "tags.SCADA.attribute[3]=\"4\" (4)");
    assert_eq!(
        reply.data.tags["SCADA"].attribute,
        "SCADA          INT[1000] == [0, 0, 0, 4, 0, 0, 0, 0, 0, 0, ...]"
    );
    assert_eq!(read_tag(s.device_mut(), "SCADA[3]").1, vec![0xC3, 0, 4, 0]);
    assert_eq!(
        message(&ok(&mut s, "/api/tags/SCADA/attribute[3]")),
        "tags.SCADA.attribute[3]: 4"
    );
    // Several values from an index; a list from element 0.
    ok(&mut s, "/api/tags/SCADA/attribute[998]=7,-8");
    ok(&mut s, "/api/tags/SCADA/attribute=[1, 2]");
    let values = s.device().tags().values("SCADA").unwrap();
    let Values::Int(v) = values else {
        panic!("{values:?}")
    };
    assert_eq!((v[0], v[1], v[3], v[998], v[999]), (1, 2, 4, 7, -8));
    // Every type the view shows.
    ok(&mut s, "/api/tags/Speed/attribute=0.1");
    ok(&mut s, "/api/tags/Flag/attribute=true");
    ok(&mut s, "/api/tags/Text/attribute=hello, world");
    ok(&mut s, "/api/tags/Big/attribute=[1,0xFFFFFFFFFFFFFFFF]");
    ok(&mut s, "/api/tags/Program:Main.Count/attribute=-5");
    let reply = ok(&mut s, "/api/tags");
    let view = |name: &str| reply.data.tags[name].value.clone();
    assert_eq!(view("Speed"), vec![Scalar::Float(0.1)]);
    assert_eq!(view("Flag"), vec![Scalar::Bool(true)]);
    assert_eq!(view("Text"), vec![Scalar::Text("hello, world".into())]);
    assert_eq!(view("Big"), vec![Scalar::Int(1), Scalar::Uint(u64::MAX)]);
    assert_eq!(view("Program:Main.Count"), vec![Scalar::Int(-5)]);
    assert_eq!(reply.data.tags["Text"].type_name, "STRING");
    assert_eq!(
        message(&ok(&mut s, "/api/tags/Text/attribute[0]")),
        "tags.Text.attribute[0]: \"hello, world\""
    );
}

#[test]
fn refused_tag_values_are_errors_and_change_nothing() {
    let mut s = server();
    for (url, reason) in [
        ("/api/tags/SCADA/attribute[3]=40000", "out of range for INT"),
        ("/api/tags/SCADA/attribute[999]=1,2", "beyond the end"),
        ("/api/tags/SCADA/attribute[1000]=1", "beyond the end"),
        ("/api/tags/SCADA/attribute[1]=1.5", "not an integer"),
        ("/api/tags/SCADA/attribute[1]=1,,2", "an empty value"),
        ("/api/tags/Flag/attribute=2", "out of range for BOOL"),
        ("/api/tags/Speed/attribute=fast", "not a number"),
        ("/api/tags/SCADA/attribute[1000]", "beyond the tag's 1000"),
    ] {
        let e = run(&mut s, url).unwrap_err();
        assert!(matches!(e, ApiError::BadValue { .. }), "{url}: {e:?}");
        assert!(e.to_string().contains(reason), "{url}: {e}");
        assert_eq!(e.http_status(), HTTP_BAD_REQUEST);
        let body = ApiReply::failure(&e, None, 1.0);
        assert_eq!(body.command.success, Some(false));
        assert_eq!(body.command.message, Some(e.to_string()));
    }
    let Values::Int(v) = s.device().tags().values("SCADA").unwrap() else {
        panic!()
    };
    assert!(v.iter().all(|x| *x == 0));
    // A command matching nothing is 404; a listing matching nothing is empty.
    let e = run(&mut s, "/api/tags/Nope/error=8").unwrap_err();
    assert_eq!(
        e,
        ApiError::NoMatch {
            group: Group::Tags,
            matcher: "Nope".into()
        }
    );
    assert_eq!(e.http_status(), HTTP_NOT_FOUND);
    assert_eq!(ok(&mut s, "/api/tags/Nope").data, ApiData::default());
    assert!(run(&mut s, "/api/options/nothing/value=1").is_err());
}

#[test]
fn connections_are_listed_and_dropped_by_name_or_wildcard() {
    let mut s = server();
    let t0 = Instant::now();
    assert_eq!(
        serde_json::to_value(&ok(&mut s, "/api/connections").data).unwrap(),
        serde_json::json!({})
    );
    let mut a = connect(&mut s, t0, "127.0.0.1:52590");
    let mut b = connect(&mut s, t0, "10.0.111.121:60592");
    let mut c = connect(&mut s, t0, "[::1]:40000");
    let reply = ok(&mut s, "/api/connections");
    assert_eq!(
        reply.data.connections.keys().collect::<Vec<_>>(),
        ["10_0_111_121_60592", "127_0_0_1_52590", "__1_40000"]
    );
    let view = &reply.data.connections["127_0_0_1_52590"];
    assert_eq!(
        view,
        &ConnectionView {
            eof: false,
            interface: "127.0.0.1".into(),
            port: 52590,
            received: 28,
            requests: 1,
        }
    );
    assert_eq!(
        message(&ok(&mut s, "/api/connections/127_0_0_1_52590/received")),
        "connections.127_0_0_1_52590.received: 28"
    );
    for (command, value) in [
        ("interface", "127.0.0.1"),
        ("port", "52590"),
        ("requests", "1"),
        ("eof", "false"),
    ] {
        let reply = ok(&mut s, &format!("/api/connections/127_0_0_1_*/{command}"));
        assert_eq!(
            message(&reply),
            format!("connections.127_0_0_1_52590.{command}: {value}")
        );
    }

    // By name: only that one.
    let request = parse_request("/api/connections/10_0_111_121_60592/eof/true").unwrap();
    assert!(needs_settling(&request));
    let reply = apply(&mut s, &request, 0.0).unwrap();
    assert!(reply.data.connections["10_0_111_121_60592"].eof);
    assert!(s.faults_pending());
    let t1 = t0 + Duration::from_millis(1);
    b.handle_timeout(t1, &mut s);
    a.handle_timeout(t1, &mut s);
    assert!(b.is_closed());
    assert!(!a.is_closed());
    assert!(!s.faults_pending());
    let listed = ok(&mut s, "/api/connections").data.connections;
    assert_eq!(listed.len(), 2, "a closed connection is not listed");

    // Cancelled before it is noticed: nothing happens.
    ok(&mut s, "/api/connections/__1_40000/eof=true");
    ok(&mut s, "/api/connections/__1_40000/eof=false");
    c.handle_timeout(t1, &mut s);
    assert!(!c.is_closed());

    // Everything.
    let reply = ok(&mut s, "/api/connections/*/eof/true");
    assert_eq!(reply.data.connections.len(), 2);
    a.handle_timeout(t1, &mut s);
    c.handle_timeout(t1, &mut s);
    assert!(a.is_closed() && c.is_closed());
    assert_eq!(ok(&mut s, "/api/connections").data, ApiData::default());
    // Nothing left: a wildcard does nothing and says so; a name is not found.
    let reply = ok(&mut s, "/api/connections/*/eof/true");
    assert_eq!(message(&reply), "nothing in connections matches \"*\"");
    assert_eq!(reply.data, ApiData::default());
    assert_eq!(
        run(&mut s, "/api/connections/127_0_0_1_52590/eof/true")
            .unwrap_err()
            .http_status(),
        HTTP_NOT_FOUND
    );
}

#[test]
fn wildcard_group_with_a_command_touches_only_its_group() {
    let mut s = server();
    let reply = ok(&mut s, "/api/*/*/error=5");
    assert!(reply.data.options.is_empty() && reply.data.server.is_empty());
    assert_eq!(reply.data.tags.len(), 6);
    assert_eq!(message(&reply).matches("; ").count(), 5);
    let reply = ok(&mut s, "/api/*/SCADA");
    assert_eq!(reply.data.tags.keys().collect::<Vec<_>>(), ["SCADA"]);
    assert!(reply.data.options.is_empty());
}
