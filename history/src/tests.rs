//! Unit tests of the time stamps, the line format, the reader and the replay schedule.

use crate::time::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn edmonton() -> Zone {
    Zone::named("America/Edmonton").unwrap()
}

fn mountain(at_ts: Timestamp) -> Abbreviations {
    Abbreviations::with_zone(&edmonton(), at_ts)
}

#[test]
fn utc_renders_like_cpppo_str() {
    let t = Timestamp::from_unix_micros(1_405_461_824_186_000);
    assert_eq!(t.to_string(), "2014-07-15 22:03:44.186");
    assert_eq!(at("2014-07-15 22:03:44.186"), t);
    assert_eq!(t.render(&Zone::Utc, 6), "2014-07-15 22:03:44.186000");
    assert_eq!(t.render(&Zone::Utc, 0), "2014-07-15 22:03:44");
    // hifitime agrees on the instant.
    assert_eq!(t.epoch().to_unix_seconds(), 1_405_461_824.186);
    assert_eq!(Timestamp::from_epoch(t.epoch()), t);
}

#[test]
fn rounding_carries_into_the_seconds() {
    // cpppo's example: 1399326141.999836 shows as ...:22.000, not ...:21.000.
    let t = Timestamp::from_unix_micros(1_399_326_141_999_836);
    assert_eq!(t.to_string(), "2014-05-05 21:42:22.000");
    assert_eq!(t.render(&Zone::Utc, 6), "2014-05-05 21:42:21.999836");
    let t = Timestamp::from_unix_micros(1_414_915_323_122_500);
    assert_eq!(t.to_string(), "2014-11-02 08:02:03.123");
    // Before 1970 too.
    let t = Timestamp::from_unix_micros(-1_500);
    assert_eq!(t.render(&Zone::Utc, 3), "1969-12-31 23:59:59.998");
}

#[test]
fn microseconds_round_trip_in_utc_and_a_named_zone() {
    let zone = edmonton();
    for micros in [
        0_i64,
        1_405_461_824_186_123,
        1_394_355_599_999_999, // 2014-03-09 01:59:59.999999 MST, just before spring-forward
        1_394_355_600_000_000, // 03:00:00 MDT
        1_414_911_600_000_001, // 2014-11-02 01:00:00.000001 MDT, in the fall-back hour
        1_414_915_200_000_001, // 01:00:00.000001 MST, the same hour again
        -86_400_000_001,
    ] {
        let t = Timestamp::from_unix_micros(micros);
        let abbreviations = mountain(t);
        for z in [&Zone::Utc, &zone] {
            let text = t.render(z, 6);
            assert_eq!(
                Timestamp::parse(&text, &Zone::Utc, &abbreviations).unwrap(),
                t,
                "{text}"
            );
        }
    }
}

#[test]
fn named_zone_shows_the_abbreviation_in_effect() {
    let t = at("2014-07-15 22:03:44.186");
    assert_eq!(t.render(&edmonton(), 3), "2014-07-15 16:03:44.186 MDT");
    let winter = at("2014-01-15 22:03:44.186");
    assert_eq!(winter.render(&edmonton(), 3), "2014-01-15 15:03:44.186 MST");
    assert_eq!(
        Timestamp::parse("2014-07-15 16:03:44.186 MDT", &Zone::Utc, &mountain(t)).unwrap(),
        t
    );
    // A zone with no DST has one abbreviation all year.
    let regina = Zone::named("America/Regina").unwrap();
    assert_eq!(t.render(&regina, 0), "2014-07-15 16:03:44 CST");
}

#[test]
fn spring_forward_in_edmonton() {
    // 2014-03-09 02:00 MST (09:00 UTC) became 03:00 MDT.
    let zone = edmonton();
    let before = at("2014-03-09 08:59:59.999");
    let after = at("2014-03-09 09:00:00");
    assert_eq!(before.render(&zone, 3), "2014-03-09 01:59:59.999 MST");
    assert_eq!(after.render(&zone, 3), "2014-03-09 03:00:00.000 MDT");
    let abbreviations = mountain(after);
    // The local hour 02:00-02:59 does not exist there.
    let err = Timestamp::parse(
        "2014-03-09 02:30:00 America/Edmonton",
        &Zone::Utc,
        &abbreviations,
    )
    .unwrap_err();
    assert!(
        matches!(err, TimeError::NonexistentLocalTime { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("does not exist in America/Edmonton"),
        "{err}"
    );
    // ... with the zone as the parser's default too.
    assert!(matches!(
        Timestamp::parse("2014-03-09 02:30:00", &zone, &abbreviations),
        Err(TimeError::NonexistentLocalTime { .. })
    ));
    // Either side of the gap reads back as shown.
    assert_eq!(
        Timestamp::parse("2014-03-09 01:59:59.999", &zone, &abbreviations).unwrap(),
        before
    );
    assert_eq!(
        Timestamp::parse(
            "2014-03-09 03:00:00 America/Edmonton",
            &Zone::Utc,
            &abbreviations
        )
        .unwrap(),
        after
    );
    // An abbreviation is its fixed offset: 02:30 MST is 09:30 UTC (03:30 MDT).
    assert_eq!(
        Timestamp::parse("2014-03-09 02:30:00 MST", &Zone::Utc, &abbreviations).unwrap(),
        at("2014-03-09 09:30:00")
    );
}

#[test]
fn fall_back_in_edmonton() {
    // 2014-11-02 02:00 MDT (08:00 UTC) became 01:00 MST: 01:xx happens twice.
    let zone = edmonton();
    let first = at("2014-11-02 07:02:03.123");
    let second = at("2014-11-02 08:02:03.123");
    assert_eq!(first.render(&zone, 3), "2014-11-02 01:02:03.123 MDT");
    assert_eq!(second.render(&zone, 3), "2014-11-02 01:02:03.123 MST");
    let abbreviations = mountain(first);
    assert_eq!(
        Timestamp::parse("2014-11-02 01:02:03.123 MDT", &Zone::Utc, &abbreviations).unwrap(),
        first
    );
    assert_eq!(
        Timestamp::parse("2014-11-02 01:02:03.123 MST", &Zone::Utc, &abbreviations).unwrap(),
        second
    );
    assert_eq!(second.since(first).to_seconds(), 3600.0);
    let err = Timestamp::parse(
        "2014-11-02 01:02:03.123 America/Edmonton",
        &Zone::Utc,
        &abbreviations,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TimeError::AmbiguousLocalTime {
            time: "2014-11-02 01:02:03.123".into(),
            zone: "America/Edmonton".into(),
            abbreviations: "MDT or MST".into(),
        }
    );
    // The day before, the zone name alone is enough (DST in effect).
    assert_eq!(
        Timestamp::parse(
            "2014-11-01 01:02:03.456 America/Edmonton",
            &Zone::Utc,
            &abbreviations
        )
        .unwrap(),
        at("2014-11-01 07:02:03.456")
    );
}

#[test]
fn ambiguous_and_unknown_abbreviations_are_errors() {
    let t = at("2014-07-15 00:00:00");
    let mut abbreviations = Abbreviations::new();
    let mut chicago = abbreviations.add_zone("America/Chicago", t).unwrap();
    chicago.sort();
    assert_eq!(chicago, vec!["CDT".to_string(), "CST".to_string()]);
    abbreviations.add_zone("America/Havana", t).unwrap();
    // Same offsets, same meaning: no ambiguity.
    abbreviations.add_zone("America/Winnipeg", t).unwrap();
    assert!(
        abbreviations.offset("CDT").is_err(),
        "CDT is -5 in Chicago, -4 in Havana"
    );
    let err = abbreviations.offset("CST").unwrap_err();
    assert!(
        matches!(err, TimeError::AmbiguousAbbreviation { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("UTC-06 in America/Chicago and America/Winnipeg"),
        "{text}"
    );
    assert!(text.contains("UTC-05 in America/Havana"), "{text}");
    assert!(Timestamp::parse("2014-07-15 01:00:00 CST", &Zone::Utc, &abbreviations).is_err());

    let err = Timestamp::parse("2014-07-15 01:00:00 XYZ", &Zone::Utc, &abbreviations).unwrap_err();
    assert!(
        matches!(err, TimeError::UnknownAbbreviation { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("CDT"), "{err}");
    // With no table at all, the message says how to get one.
    let err = "2014-07-15 01:00:00 MDT".parse::<Timestamp>().unwrap_err();
    assert!(err.to_string().contains("--tz"), "{err}");
    // `MST` alone is also the IANA database's fixed UTC-7 zone (as in pytz).
    assert_eq!(
        "2014-07-15 01:00:00 MST".parse::<Timestamp>().unwrap(),
        at("2014-07-15 08:00:00")
    );
    assert!(matches!(
        Zone::named("Mars/Olympus"),
        Err(TimeError::UnknownZone(_))
    ));
}

#[test]
fn abbreviations_are_those_in_use_around_the_time_given() {
    // Moscow Time was UTC+4 from 2011 to 2014, UTC+3 since.
    let moscow = Zone::named("Europe/Moscow").unwrap();
    let then = Abbreviations::with_zone(&moscow, at("2012-07-01 00:00:00"));
    let now = Abbreviations::with_zone(&moscow, at("2020-07-01 00:00:00"));
    assert_eq!(then.offset("MSK").unwrap().seconds(), 4 * 3600);
    assert_eq!(now.offset("MSK").unwrap().seconds(), 3 * 3600);
    assert_eq!(
        Timestamp::parse("2012-07-01 12:00:00 MSK", &Zone::Utc, &then).unwrap(),
        at("2012-07-01 08:00:00")
    );
    assert_eq!(
        at("2012-07-01 08:00:00").render(&moscow, 0),
        "2012-07-01 12:00:00 MSK"
    );
}

#[test]
fn a_region_merges_consistent_zones() {
    let t = at("2014-07-15 00:00:00");
    let mut abbreviations = Abbreviations::new();
    let added = abbreviations.add_region("Canada/", t);
    assert!(added.contains(&"MDT".to_string()), "{added:?}");
    assert_eq!(
        abbreviations.offset("MDT").unwrap().seconds(),
        -6 * 3600,
        "Canada's zones agree on MDT"
    );
    assert_eq!(
        abbreviations.offset("NST").unwrap().seconds(),
        -(3 * 3600 + 1800)
    );
}

#[test]
fn offsets_and_bad_text() {
    assert_eq!(
        at("2014-07-15 16:03:44.186 -0600"),
        at("2014-07-15 22:03:44.186")
    );
    assert_eq!(
        at("2014-07-15 16:03:44.186 -06:00"),
        at("2014-07-15 22:03:44.186")
    );
    assert_eq!(
        at("2014-07-15 22:03:44.186 UTC"),
        at("2014-07-15 22:03:44.186")
    );
    assert_eq!(
        at("2014-07-15 22:03:44.1"),
        Timestamp::from_unix_micros(1_405_461_824_100_000)
    );
    for bad in [
        "",
        "2014-07-15",
        "2014-07-15 22:03",
        "2014-13-15 22:03:44",
        "2014-02-30 00:00:00",
        "2014-07-15 22:03:44.1234567",
        "2014-07-15 22:03:4x",
        "2014-07-15 22:03:44 UTC extra",
        "20x4-07-15 22:03:44",
    ] {
        let err = bad.parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().contains("YYYY-MM-DD"), "{bad}: {err}");
    }
}

#[test]
fn serde_is_the_utc_text_to_the_microsecond() {
    let t = Timestamp::from_unix_micros(1_405_461_824_186_123);
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(json, "\"2014-07-15 22:03:44.186123\"");
    assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    for name in ["UTC", "America/Edmonton", "-06", "+05:30"] {
        let zone = Zone::named(name).unwrap();
        let json = serde_json::to_string(&zone).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Zone>(&json).unwrap(), zone);
    }
    assert!(serde_json::from_str::<Zone>("\"Mars/Olympus\"").is_err());
}

mod lines {
    use std::io::Cursor;
    use std::time::{Duration, Instant};

    use cpppo_core::cip::data::{DataType, TagType};
    use cpppo_core::controller::{ElementType, TagAccess, Target};
    use serde_json::json;

    use crate::record::*;
    use crate::replay::{Schedule, Speed};
    use crate::time::*;
    use crate::{HistoryReader, ReadError};

    const CPPPO_HISTORIZE: &str = include_str!("../tests/data/cpppo_historize.hst");
    const CPPPO_EDMONTON: &str = include_str!("../tests/data/cpppo_edmonton.txt");

    fn read_all(text: &str) -> Vec<(usize, Line)> {
        HistoryReader::new(Cursor::new(text), Zone::Utc, Abbreviations::new())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    #[test]
    fn reads_a_file_cpppo_wrote() {
        let lines = read_all(CPPPO_HISTORIZE);
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[0],
            (
                1,
                Line::Comment("2014-07-15 22:03:35.945: Started recording Tag: Tag_Name".into())
            )
        );
        let Line::Record(r) = &lines[2].1 else {
            panic!("{:?}", lines[2])
        };
        assert_eq!(r.when, Timestamp::from_unix_micros(1_405_461_824_186_000));
        let io = r.tag_io().unwrap();
        assert_eq!(
            (io.tag.as_str(), io.first, io.last, io.access),
            ("Tag_Name", 0, 3, Access::Write)
        );
        assert_eq!(io.values, json!([0, 1, 2, 3]));
        let ios: Vec<TagIo> = lines
            .iter()
            .filter_map(|(_, l)| match l {
                Line::Record(r) => r.tag_io(),
                _ => None,
            })
            .collect();
        assert_eq!(ios[1].access, Access::Read);
        assert_eq!(
            (ios[2].tag.as_str(), &ios[2].values),
            ("Speed", &json!([1.5]))
        );
        assert_eq!((ios[3].first, ios[3].last), (10, 11));
        assert_eq!(ios[3].values, json!([7, -8]));
        // And each record renders back to the very line cpppo wrote.
        for ((_, line), text) in lines.iter().zip(CPPPO_HISTORIZE.lines()) {
            if let Line::Record(r) = line {
                assert_eq!(r.render(&Zone::Utc, DEFAULT_DIGITS), text);
            }
        }
    }

    #[test]
    fn renders_edmonton_times_as_cpppo_does() {
        let zone = Zone::named("America/Edmonton").unwrap();
        let mut checked = 0;
        for line in CPPPO_EDMONTON.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            let (seconds, fraction) = fields[0].split_once('.').unwrap();
            let micros =
                seconds.parse::<i64>().unwrap() * 1_000_000 + fraction.parse::<i64>().unwrap();
            let t = Timestamp::from_unix_micros(micros);
            assert_eq!(t.to_string(), fields[1]);
            assert_eq!(t.render(&zone, DEFAULT_DIGITS), fields[2]);
            // cpppo's local rendering reads back to the instant (to its milliseconds).
            let back = Timestamp::parse(fields[2], &Zone::Utc, &Abbreviations::with_zone(&zone, t))
                .unwrap();
            assert_eq!(back, fields[1].parse().unwrap());
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn space_separated_lines_and_local_times_read_too() {
        let t = "2014-07-15 16:03:44.186 MDT".to_string();
        let zone = Zone::named("America/Edmonton").unwrap();
        let abbreviations =
            Abbreviations::with_zone(&zone, Timestamp::from_unix_micros(1_405_461_824_186_000));
        let line = format!("{t} [\"Tag_Name\", [0, 3]]    {{\"write\": [0, 1, 2, 3]}}");
        let Line::Record(r) = Line::parse(&line, &Zone::Utc, &abbreviations).unwrap() else {
            panic!()
        };
        assert_eq!(r.when, Timestamp::from_unix_micros(1_405_461_824_186_000));
        assert_eq!(r.tag_io().unwrap().values, json!([0, 1, 2, 3]));
        assert_eq!(
            r.render(&zone, 3),
            "2014-07-15 16:03:44.186 MDT\t[\"Tag_Name\", [0, 3]]\t{\"write\": [0, 1, 2, 3]}"
        );
    }

    #[test]
    fn bad_lines_say_which_and_why() {
        let text = "# fine\n\n2014-07-15 22:03:44.186\t[\"A\", [0, 0]]\t{\"write\": [1]}\n2014-07-15 22:03:44.186\t[\"A\", [0, 0]\t{}\nnot a time [1]\n2014-07-15 22:03:44.186\n";
        let results: Vec<_> =
            HistoryReader::new(Cursor::new(text), Zone::Utc, Abbreviations::new()).collect();
        assert_eq!(results.len(), 6);
        assert!(matches!(results[1], Ok((2, Line::Blank))));
        assert!(matches!(results[2], Ok((3, Line::Record(_)))));
        let errors: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e: &ReadError| e.to_string())
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("line 4: serial is not JSON"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("line 5: bad time stamp"),
            "{errors:?}"
        );
        assert!(errors[2].starts_with("line 6: no serial"), "{errors:?}");
    }

    #[test]
    fn python_json_matches_json_dumps() {
        assert_eq!(
            python_json(&json!(["Tag_Name", [0, 3]])),
            "[\"Tag_Name\", [0, 3]]"
        );
        assert_eq!(
            python_json(&json!({"write": [1.5, -2], "offset": 4})),
            "{\"offset\": 4, \"write\": [1.5, -2]}"
        );
        assert_eq!(
            python_json(&json!(["caf\u{e9} \u{1F600}"])),
            "[\"caf\\u00e9 \\ud83d\\ude00\"]"
        );
        assert_eq!(comment_line("a\nb"), "# a b");
    }

    fn target(element: DataType, index: usize, len: usize) -> Target {
        Target {
            tag: 0,
            element: ElementType::Atomic(element),
            base: 0,
            index,
            len,
            bit: None,
        }
    }

    #[test]
    fn tag_access_becomes_a_cpppo_record() {
        let t = target(DataType::INT, 2, 10);
        let data = [1u8, 0, 2, 0, 0xFF, 0xFF];
        let access = TagAccess {
            now: Instant::now(),
            tag: "SCADA",
            index: 0,
            target: &t,
            elements: 3,
            tag_type: TagType::from(DataType::INT),
            data: &data,
            offset: 0,
        };
        let when = Timestamp::from_unix_micros(1_405_461_824_186_000);
        let io = TagIo::from_access(Access::Write, &access);
        assert_eq!(
            io.record(when).render(&Zone::Utc, 3),
            "2014-07-15 22:03:44.186\t[\"SCADA\", [2, 4]]\t{\"write\": [1, 2, -1]}"
        );
        assert_eq!(io.record(when).tag_io().unwrap(), io);
        // The second fragment of a fragmented write names its own elements.
        let access = TagAccess {
            offset: 4,
            elements: 10,
            data: &data[..4],
            ..access
        };
        let io = TagIo::from_access(Access::Write, &access);
        assert_eq!((io.first, io.last, &io.values), (4, 5, &json!([1, 2])));
        // A read that did not fit one reply names the elements it returned.
        let access = TagAccess {
            offset: 0,
            elements: 8,
            data: &data,
            ..access
        };
        let io = TagIo::from_access(Access::Read, &access);
        assert_eq!((io.first, io.last), (2, 4));
        let r = TagIo::from_access(Access::Read, &access).record(when);
        assert_eq!(python_json(&r.data), "{\"read\": [1, 2, -1]}");
        // REAL values are the f32 widened, as cpppo (Python floats) records them.
        let t = target(DataType::REAL, 0, 1);
        let real = 1.1f32.to_le_bytes();
        let access = TagAccess {
            target: &t,
            elements: 1,
            tag_type: TagType::from(DataType::REAL),
            data: &real,
            ..access
        };
        let values = TagIo::from_access(Access::Write, &access).values;
        assert_eq!(values, json!([1.100000023841858]));
        assert_eq!(values[0].as_f64().unwrap() as f32, 1.1f32);
    }

    #[test]
    fn recorded_values_take_the_tags_type() {
        use cpppo_core::cip::data::Values;
        let int = Values::Int(vec![0]);
        assert_eq!(
            values_like(&int, &json!([1, -2])).unwrap(),
            Values::Int(vec![1, -2])
        );
        let real = Values::Real(vec![0.0]);
        assert_eq!(
            values_like(&real, &json!([1.100000023841858, 2])).unwrap(),
            Values::Real(vec![1.1, 2.0])
        );
        let err = values_like(&int, &json!([70000])).unwrap_err();
        assert!(err.contains("[70000] is not int values"), "{err}");
        assert!(values_like(&int, &json!("text")).is_err());
        // NaN is recorded as null, and Python writes it as NaN: both read back as NaN.
        let Values::Real(v) = values_like(&real, &json!([null, 1.5])).unwrap() else {
            panic!()
        };
        assert!(v[0].is_nan() && v[1] == 1.5);
        let line =
            "2014-07-15 22:03:44.186\t[\"S\", [0, 2]]\t{\"write\": [NaN, -Infinity, \"NaN\"]}";
        let Line::Record(r) = Line::parse(line, &Zone::Utc, &Abbreviations::new()).unwrap() else {
            panic!()
        };
        assert_eq!(r.data, json!({"write": [null, null, "NaN"]}));
        assert!(Line::parse(
            "2014-07-15 22:03:44\t[1]\t{\"a\": Nope}",
            &Zone::Utc,
            &Abbreviations::new()
        )
        .is_err());
        let s = Values::Sstring(vec!["".into()]);
        assert_eq!(
            values_like(&s, &json!(["hi"])).unwrap(),
            Values::Sstring(vec!["hi".into()])
        );
    }

    #[test]
    fn modbus_writes_are_records_but_not_tag_io() {
        use cpppo_core::modbus::device::Write;
        use cpppo_core::modbus::numbering::Table;
        let when = Timestamp::from_unix_micros(1_405_461_824_186_000);
        let write = Write {
            unit: 1,
            table: Table::HoldingRegisters,
            address: 0,
            values: vec![10, 20, 30],
        };
        let r = modbus_write_record(when, &write);
        assert_eq!(
            r.render(&Zone::Utc, 3),
            "2014-07-15 22:03:44.186\t[1, [40001, 40003]]\t{\"write\": [10, 20, 30]}"
        );
        assert_eq!(r.tag_io(), None);
        let coil = Write {
            unit: 3,
            table: Table::Coils,
            address: 9,
            values: vec![1],
        };
        assert_eq!(
            python_json(&modbus_write_record(when, &coil).serial),
            "[3, [10, 10]]"
        );
    }

    #[test]
    fn speeds_and_schedules() {
        assert_eq!("1".parse::<Speed>().unwrap(), Speed::Factor(1.0));
        assert_eq!("10x".parse::<Speed>().unwrap(), Speed::Factor(10.0));
        assert_eq!("MAX".parse::<Speed>().unwrap(), Speed::Max);
        for bad in ["0", "-1", "fast", "inf", "NaN", ""] {
            assert!(bad.parse::<Speed>().is_err(), "{bad}");
        }
        let t0 = Timestamp::from_unix_micros(1_000_000_000_000);
        let at = |ms: i64| Timestamp::from_unix_micros(t0.unix_micros() + ms * 1000);
        let mut s = Schedule::new(Speed::Factor(10.0));
        assert_eq!(s.due(at(0)), Duration::ZERO);
        assert_eq!(s.due(at(1000)), Duration::from_millis(100));
        assert_eq!(s.due(at(20_000)), Duration::from_secs(2));
        // A clock set back: due with the one before, never earlier.
        assert_eq!(s.due(at(500)), Duration::from_secs(2));
        let mut s = Schedule::new(Speed::Factor(1.0));
        s.due(at(0));
        assert_eq!(s.due(at(1500)), Duration::from_millis(1500));
        let mut s = Schedule::starting_at(Speed::Factor(2.0), at(10_000));
        assert_eq!(s.due(at(0)), Duration::ZERO);
        assert_eq!(s.due(at(9_000)), Duration::ZERO);
        assert_eq!(s.due(at(12_000)), Duration::from_secs(1));
        let mut s = Schedule::new(Speed::Max);
        s.due(at(0));
        assert_eq!(s.due(at(3_600_000)), Duration::ZERO);
    }
}

mod properties {
    use proptest::prelude::*;

    use crate::record::Line;
    use crate::time::*;

    /// Zones whose abbreviations kept one meaning from 1972 to 2035 (Chatham's are
    /// numeric: `+1245`, `+1345`).
    const ZONES: [&str; 5] = [
        "UTC",
        "America/Edmonton",
        "Asia/Kolkata",
        "Pacific/Chatham",
        "Europe/Berlin",
    ];
    /// 1972-01-01 and 2035-01-01 in Unix microseconds.
    const FROM: i64 = 63_072_000_000_000;
    const UNTIL: i64 = 2_051_222_400_000_000;

    proptest! {
        #[test]
        fn any_instant_round_trips_in_any_zone(micros in FROM..UNTIL, zone in 0..ZONES.len()) {
            let zone = Zone::named(ZONES[zone]).unwrap();
            let t = Timestamp::from_unix_micros(micros);
            let text = t.render(&zone, MAX_DIGITS);
            let abbreviations = Abbreviations::with_zone(&zone, t);
            prop_assert_eq!(Timestamp::parse(&text, &Zone::Utc, &abbreviations), Ok(t), "{}", text);
            // Shown to the millisecond, it reads back to the rounded instant.
            let ms = t.render(&zone, DEFAULT_DIGITS);
            let back = Timestamp::parse(&ms, &Zone::Utc, &abbreviations).unwrap();
            prop_assert!((back.unix_micros() - micros).abs() <= 500, "{} {}", ms, micros);
        }

        #[test]
        fn any_instant_renders(micros in any::<i64>(), digits in 0u8..9) {
            let zone = Zone::named("America/Edmonton").unwrap();
            let t = Timestamp::from_unix_micros(micros);
            let _ = t.render(&zone, digits);
            let _ = t.render(&Zone::Utc, digits);
            let _ = t.epoch();
        }

        #[test]
        fn any_line_reads_or_errors(text in "\\PC*") {
            let _ = Line::parse(&text, &Zone::Utc, &Abbreviations::new());
        }

        #[test]
        fn near_miss_lines_read_or_error(
            time in "[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3} [0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,8})?( [A-Z]{1,4}| [+-][0-9:]{1,6}| [A-Za-z_/]{1,20})?",
            rest in "[\\[\\]{}\"0-9a-z,: \\t-]{0,30}",
        ) {
            let zone = Zone::named("America/Edmonton").unwrap();
            let abbreviations = Abbreviations::with_zone(&zone, Timestamp::from_unix_micros(0));
            let _ = Line::parse(&format!("{time}\t{rest}"), &zone, &abbreviations);
            let _ = Timestamp::parse(&time, &zone, &abbreviations);
        }
    }
}
