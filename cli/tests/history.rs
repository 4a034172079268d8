//! `--history` and `cpppo history` as a user runs them: a server records what a client
//! does (read live from the file while the server runs), a fresh server gets the
//! recording replayed into it and ends up with the same tag values; cpppo's own history
//! files replay too; gzip and rotation; bad input is one line and exit status 2.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cpppo_history::{Abbreviations, Access, Line, Timestamp, Zone};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_cpppo");
/// How long the file may take to show what was done before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// The history cpppo 5.2.5's `history.logger` wrote (see history/tests/data/README.md).
const CPPPO_HISTORIZE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../history/tests/data/cpppo_historize.hst"
);

/// A running server, killed when dropped (also when a test fails).
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `cpppo enip server` with these arguments on a free port.
fn server(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["enip", "server", "-a", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let Some(rest) = line.split("listening on ").nth(1) else {
        panic!("no start-up line: {line:?}");
    };
    let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
    Server { child, addr }
}

/// Run `cpppo ARGS...` to completion: exit status, stdout, stderr.
fn cpppo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `cpppo enip client -p` against `server`, which must succeed: the printed lines.
fn client(server: &Server, ops: &[&str]) -> Vec<String> {
    let address = server.addr.to_string();
    let mut args = vec!["enip", "client", "-a", &address, "-p"];
    args.extend(ops);
    let (code, out, err) = cpppo(&args);
    assert_eq!(code, 0, "{ops:?}: {err}\n{out}");
    out.lines().map(str::to_string).collect()
}

/// `cpppo history replay FILE -a SERVER --speed max -p`, which must succeed: the lines
/// it printed.
fn replay_max(file: &str, server: &Server) -> Vec<String> {
    let address = server.addr.to_string();
    let args = [
        "history", "replay", file, "-a", &address, "--speed", "max", "-p",
    ];
    let (code, out, err) = cpppo(&args);
    assert_eq!(code, 0, "{err}\n{out}");
    out.lines().map(str::to_string).collect()
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cpppo-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The wall clock now.
fn wall() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp::from_unix_micros(i64::try_from(d.as_micros()).unwrap())
}

/// Wait until the file at `path` has a line containing `text`, while the server runs:
/// what `tail -f` would show. The file's text.
fn wait_for(path: &Path, text: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if now.contains(text) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never in {path:?}:\n{now}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines of a history text, parsed (UTC).
fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| Line::parse(l, &Zone::Utc, &Abbreviations::new()).unwrap())
        .collect()
}

#[test]
fn a_recorded_session_replayed_reproduces_the_tag_values() {
    let dir = scratch("session");
    let file = dir.join("plant.hst");
    let history = file.to_str().unwrap();
    let tags = ["SCADA=INT[10]", "Speed=REAL", "Count=DINT"];
    let mut args = vec!["--history", history];
    args.extend(tags);
    let recording = server(&args);
    let begun = wall();
    client(
        &recording,
        &["SCADA[1-3]=10,20,30", "Speed=(REAL)1.5", "SCADA[0-4]"],
    );
    // A read past the end fails in the controller: a comment says so.
    let address = recording.addr.to_string();
    let (code, _, _) = cpppo(&["enip", "client", "-a", &address, "SCADA[5-14]"]);
    assert_eq!(code, 1);
    client(
        &recording,
        &["SCADA[5]=(INT)-7", "Count=(DINT)123456", "Speed=(REAL)2.25"],
    );
    // Flushed line by line: the last write is in the file while the server still runs.
    let text = wait_for(&file, "{\"write\": [2.25]}");
    let ended = wall();

    let lines: Vec<&str> = text.lines().collect();
    for (line, tag) in lines.iter().zip(["SCADA", "Speed", "Count"]) {
        assert!(line.starts_with("# 20"), "{text}");
        assert!(
            line.ends_with(&format!(": Started recording Tag: {tag}")),
            "{text}"
        );
    }
    let records: Vec<&str> = lines.iter().skip(3).copied().collect();
    let fields: Vec<(&str, &str)> = records
        .iter()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split('\t');
            let _time = f.next().unwrap();
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            ("[\"SCADA\", [1, 3]]", "{\"write\": [10, 20, 30]}"),
            ("[\"Speed\", [0, 0]]", "{\"write\": [1.5]}"),
            ("[\"SCADA\", [0, 4]]", "{\"read\": [0, 10, 20, 30, 0]}"),
            ("[\"SCADA\", [5, 5]]", "{\"write\": [-7]}"),
            ("[\"Count\", [0, 0]]", "{\"write\": [123456]}"),
            ("[\"Speed\", [0, 0]]", "{\"write\": [2.25]}"),
        ],
        "{text}"
    );
    let failures: Vec<&&str> = records.iter().filter(|l| l.starts_with('#')).collect();
    assert_eq!(failures.len(), 1, "{text}");
    assert!(
        failures[0].ends_with(": PLC I/O Read Tag SCADA failed: status 0xff [0x2105]"),
        "{text}"
    );
    // Times: in order, within the test's own clock readings (to cpppo's milliseconds).
    let mut last = None;
    for line in parse(&text) {
        if let Line::Record(r) = line {
            let slack = Duration::from_millis(1).as_micros() as i64;
            assert!(
                r.when.unix_micros() >= begun.unix_micros() - slack,
                "{text}"
            );
            assert!(
                r.when.unix_micros() <= ended.unix_micros() + slack,
                "{text}"
            );
            assert!(last <= Some(r.when), "{text}");
            last = Some(r.when);
        }
    }

    // A fresh simulator, the recording replayed into it: the same values.
    let fresh = server(&tags);
    assert_eq!(
        replay_max(history, &fresh),
        vec![
            "SCADA[1-3] <= [10, 20, 30]: OK",
            "Speed[0] <= [1.5]: OK",
            "SCADA[5] <= [-7]: OK",
            "Count[0] <= [123456]: OK",
            "Speed[0] <= [2.25]: OK",
        ]
    );
    let reads = ["SCADA[0-9]", "Speed", "Count"];
    let original = client(&recording, &reads);
    assert_eq!(client(&fresh, &reads), original);
    assert!(
        original[0].ends_with("== [0, 10, 20, 30, 0, -7, 0, 0, 0, 0]: 'OK'"),
        "{original:?}"
    );
    assert!(original[1].ends_with("== [2.25]: 'OK'"), "{original:?}");

    // At a finite speed too (the pace is not asserted: tests never time the wall clock).
    let paced = server(&tags);
    let paced_address = paced.addr.to_string();
    let (code, _, err) = cpppo(&[
        "history",
        "replay",
        history,
        "-a",
        &paced_address,
        "--speed",
        "10",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(client(&paced, &reads), original);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_history_cpppo_wrote_replays() {
    let fresh = server(&["Tag_Name=INT[20]", "Speed=REAL"]);
    assert_eq!(
        replay_max(CPPPO_HISTORIZE, &fresh),
        vec![
            "Tag_Name[0-3] <= [0, 1, 2, 3]: OK",
            "Speed[0] <= [1.5]: OK",
            "Tag_Name[10-11] <= [7, -8]: OK",
        ]
    );
    let values = client(&fresh, &["Tag_Name[0-11]", "Speed"]);
    assert!(
        values[0].ends_with("== [0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 7, -8]: 'OK'"),
        "{values:?}"
    );
    assert!(values[1].ends_with("== [1.5]: 'OK'"), "{values:?}");
    // A tag the simulator lacks: exit 1, naming it.
    let other = server(&["Speed=REAL"]);
    let address = other.addr.to_string();
    let (code, _, err) = cpppo(&[
        "history",
        "replay",
        CPPPO_HISTORIZE,
        "-a",
        &address,
        "--speed",
        "max",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Tag_Name"), "{err}");
}

#[test]
fn local_time_gzip_and_rotation() {
    let dir = scratch("formats");
    // In a named zone: each time carries the zone's abbreviation, and reads back.
    let local = dir.join("local.hst.gz");
    let local_path = local.to_str().unwrap();
    let s = server(&[
        "--history",
        local_path,
        "--history-tz",
        "America/Edmonton",
        "X=DINT[4]",
    ]);
    let begun = wall();
    client(&s, &["X[0-3]=(DINT)1,2,3,4", "X[2]=(DINT)9"]);
    let ended = wall();
    // The gzip stream is flushed line by line: readable while the server runs.
    let deadline = Instant::now() + PATIENCE;
    let shown = loop {
        let (code, out, err) = cpppo(&[
            "history",
            "show",
            local_path,
            "--tz",
            "America/Edmonton",
            "--digits",
            "6",
        ]);
        assert_eq!(code, 0, "{err}");
        if out.lines().count() == 2 || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let lines = parse(&shown);
    assert_eq!(lines.len(), 2, "{shown}");
    let ios: Vec<_> = lines
        .iter()
        .map(|l| match l {
            Line::Record(r) => {
                assert!(
                    r.when.unix_micros() + 1000 >= begun.unix_micros(),
                    "{shown}"
                );
                assert!(
                    r.when.unix_micros() <= ended.unix_micros() + 1000,
                    "{shown}"
                );
                r.tag_io().unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        (ios[0].access, &ios[0].values),
        (Access::Write, &json!([1, 2, 3, 4]))
    );
    assert_eq!((ios[1].first, &ios[1].values), (2, &json!([9])));
    drop(s);
    let raw = std::fs::read(&local).unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic");

    // Rotation: whole lines in each file, the newest in FILE.
    let rotating = dir.join("rotating.hst");
    let rotating_path = rotating.to_str().unwrap();
    let s = server(&[
        "--history",
        rotating_path,
        "--history-max-bytes",
        "300",
        "--history-keep",
        "2",
        "Y=INT[4]",
    ]);
    for v in 0..12 {
        client(&s, &[&format!("Y[1]=(INT){v}")]);
    }
    wait_for(&rotating, "{\"write\": [11]}");
    let mut seen = 0;
    for name in ["rotating.hst", "rotating.hst.1", "rotating.hst.2"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.len() <= 300, "{name}: {text}");
        seen += parse(&text).len();
    }
    assert!(seen >= 6, "{seen}");
    assert!(!dir.join("rotating.hst.3").exists());
    drop(s);

    // Compressed copies, writes only; read back oldest first, and replayed.
    let packed = dir.join("packed.hst");
    let packed_path = packed.to_str().unwrap();
    let s = server(&[
        "--history",
        packed_path,
        "--history-max-bytes",
        "300",
        "--history-keep",
        "2",
        "--history-compress",
        "--history-writes-only",
        "Y=INT[4]",
    ]);
    for v in 0..12 {
        client(&s, &[&format!("Y[1]=(INT){v}"), "Y[0-3]"]);
    }
    wait_for(&packed, "{\"write\": [11]}");
    assert!(!dir.join("packed.hst.1").exists());
    assert!(!dir.join("packed.hst.3.gz").exists());
    let copies: Vec<String> = ["packed.hst.2.gz", "packed.hst.1.gz", "packed.hst"]
        .iter()
        .map(|n| dir.join(n).to_str().unwrap().to_string())
        .collect();
    let mut show = vec!["history", "show"];
    show.extend(copies.iter().map(String::as_str));
    let (code, out, err) = cpppo(&show);
    assert_eq!(code, 0, "{err}");
    let written: Vec<i64> = parse(&out)
        .iter()
        .map(|l| match l {
            Line::Record(r) => {
                let io = r.tag_io().unwrap();
                assert_eq!(io.access, Access::Write, "{out}");
                io.values[0].as_i64().unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(written.len() >= 4, "{out}");
    let first = written[0];
    assert_eq!(written, (first..12).collect::<Vec<_>>(), "{out}");
    let fresh = server(&["Y=INT[4]"]);
    let mut replay = vec!["history", "replay", "--speed", "max", "-a"];
    let fresh_address = fresh.addr.to_string();
    replay.push(&fresh_address);
    replay.extend(copies.iter().map(String::as_str));
    let (code, _, err) = cpppo(&replay);
    assert_eq!(code, 0, "{err}");
    assert!(client(&fresh, &["Y[1]"])[0].ends_with("== [11]: 'OK'"));
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_history_input_is_one_line_and_exit_status_2() {
    let dir = scratch("bad");
    let broken = dir.join("broken.hst");
    std::fs::write(
        &broken,
        "# fine\n2014-07-15 22:03:44.186\t[\"A\", [0, 0]]\t{\"write\": [1]}\n2014-07-15 25:03:44\t[\"A\", [0, 0]]\t{}\n",
    )
    .unwrap();
    let ambiguous = dir.join("ambiguous.hst");
    std::fs::write(
        &ambiguous,
        "2014-07-15 01:00:00 CST\t[\"A\", [0, 0]]\t{\"write\": [1]}\n",
    )
    .unwrap();
    let fall_back = dir.join("fall_back.hst");
    std::fs::write(
        &fall_back,
        "2014-11-02 01:30:00\t[\"A\", [0, 0]]\t{\"write\": [1]}\n",
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    let ambiguous = ambiguous.to_str().unwrap();
    let fall_back = fall_back.to_str().unwrap();
    let history = dir.join("h.hst");
    let history = history.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["history", "replay", broken, "-a", "127.0.0.1:1"],
            "line 3",
        ),
        (
            vec!["history", "show", "/nonexistent/h.hst"],
            "/nonexistent/h.hst",
        ),
        (
            vec![
                "history",
                "show",
                ambiguous,
                "--abbreviations",
                "America/Chicago,America/Havana",
            ],
            "ambiguous time zone abbreviation \"CST\"",
        ),
        (
            vec!["history", "show", ambiguous],
            "unknown time zone abbreviation \"CST\"",
        ),
        (
            vec!["history", "show", fall_back, "--tz", "America/Edmonton"],
            "is ambiguous in America/Edmonton",
        ),
        (
            vec!["history", "show", broken, "--tz", "Mars/Olympus"],
            "Mars/Olympus",
        ),
        (vec!["history", "replay", broken, "--speed", "0"], "speed"),
        (
            vec![
                "enip",
                "server",
                "--history",
                history,
                "--history-tz",
                "Mars/Olympus",
                "A=INT",
            ],
            "Mars/Olympus",
        ),
        (
            vec![
                "enip",
                "server",
                "--history",
                "/nonexistent/dir/h.hst",
                "A=INT",
            ],
            "/nonexistent/dir/h.hst",
        ),
    ];
    // Old local times: the abbreviations as they were then.
    let moscow = dir.join("moscow.hst");
    std::fs::write(
        &moscow,
        "2012-07-01 12:00:00 MSK\t[\"A\", [0, 0]]\t{\"write\": [1]}\n",
    )
    .unwrap();
    let moscow = moscow.to_str().unwrap();
    let (code, out, err) = cpppo(&[
        "history",
        "show",
        moscow,
        "--tz",
        "Europe/Moscow",
        "--abbreviations-at",
        "2013-01-01 00:00:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("2012-07-01 08:00:00.000\t"), "{out}");
    // Around 2012-01-01 the year either side saw MSK as UTC+3 and as UTC+4.
    let (code, _, err) = cpppo(&[
        "history",
        "show",
        moscow,
        "--tz",
        "Europe/Moscow",
        "--abbreviations-at",
        "2012-01-01 00:00:00",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ambiguous time zone abbreviation \"MSK\": UTC+03 in Europe/Moscow, UTC+04 in Europe/Moscow"), "{err}");
    for (args, culprit) in cases {
        let (code, out, err) = cpppo(&args);
        assert_eq!(code, 2, "{args:?}: {err}\n{out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(culprit), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_explains_every_option_with_an_example() {
    for command in ["replay", "show"] {
        let (code, text, _) = cpppo(&["history", command, "--help"]);
        assert_eq!(code, 0);
        let mut blocks: Vec<String> = Vec::new();
        for line in text.lines() {
            if ["  -", "      --", "  <"]
                .iter()
                .any(|p| line.starts_with(p))
            {
                blocks.push(String::new());
            }
            if let Some(block) = blocks.last_mut() {
                block.push_str(line);
                block.push('\n');
            }
        }
        blocks.retain(|b| !b.trim_start().starts_with("-h, --help"));
        assert!(blocks.len() >= 5, "{command}: {blocks:#?}");
        for block in blocks {
            assert!(
                block.contains("Example"),
                "{command}: no example in {block}"
            );
        }
        assert!(text.contains("Examples:\n  cpppo history"), "{text}");
    }
}

/// The peers' Python (`.venv-peers`, as the conformance suite finds it); `None` (the
/// test is skipped with a note) when absent, unless `CPPPO_REQUIRE_PEERS=1`.
fn peer_python() -> Option<PathBuf> {
    let candidate = std::env::var_os("CPPPO_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-peers/bin/python"));
    if candidate.exists() {
        return Some(candidate);
    }
    assert!(
        std::env::var("CPPPO_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{} missing and CPPPO_REQUIRE_PEERS=1",
        candidate.display()
    );
    eprintln!(
        "SKIPPED: Python peers not installed ({})",
        candidate.display()
    );
    None
}

/// `python -m cpppo.server.enip.historize ARGS...` with its history logger unbuffered.
const HISTORIZE_UNBUFFERED: &str = "import sys, runpy
from cpppo import history
history.logger.LINE_BUF = 0
sys.argv = ['historize'] + sys.argv[1:]
runpy.run_module('cpppo.server.enip.historize', run_name='__main__', alter_sys=True)
";

#[test]
fn cpppos_historize_records_what_our_client_does_and_we_replay_it() {
    let Some(python) = peer_python() else {
        return;
    };
    let dir = scratch("historize");
    let file = dir.join("cpppo.hst");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // cpppo's historize takes the history file as its first argument. Its logger asks
    // for line buffering, which Python 3 ignores on binary files (nothing reaches the
    // file until exit): run it unbuffered so the test can read what it wrote.
    let child = Command::new(python)
        .args(["-c", HISTORIZE_UNBUFFERED, file.to_str().unwrap()])
        .args(["-a", &addr.to_string(), "Tag_Name=INT[20]", "Speed=REAL"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cpppo_server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "cpppo's historize did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    client(
        &cpppo_server,
        &[
            "Tag_Name[0-3]=1,2,3,4",
            "Speed=(REAL)2.5",
            "Tag_Name[10]=-9",
            "Tag_Name[0-3]",
        ],
    );
    let text = wait_for(&file, "[-9]");
    drop(cpppo_server);
    assert!(text.contains("Started recording Tag: Tag_Name"), "{text}");

    // Replayed into our simulator: the values cpppo's simulator ended with.
    let fresh = server(&["Tag_Name=INT[20]", "Speed=REAL"]);
    assert_eq!(
        replay_max(file.to_str().unwrap(), &fresh),
        vec![
            "Tag_Name[0-3] <= [1, 2, 3, 4]: OK",
            "Speed[0] <= [2.5]: OK",
            "Tag_Name[10] <= [-9]: OK",
        ],
        "{text}"
    );
    let values = client(&fresh, &["Tag_Name[0-11]", "Speed"]);
    assert!(
        values[0].ends_with("== [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, -9, 0]: 'OK'"),
        "{values:?}"
    );
    assert!(values[1].ends_with("== [2.5]: 'OK'"), "{values:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn modbus_sim_records_its_writes() {
    use cpppo_core::modbus::pdu::{Registers, Request};
    use cpppo_core::modbus::tcp::Adu;
    use cpppo_core::wire::Encode;
    use std::io::{Read, Write};

    let dir = scratch("modbus");
    let file = dir.join("modbus.hst");
    let mut child = Command::new(BIN)
        .args(["modbus", "sim", "-a", "127.0.0.1:0", "--history"])
        .args([file.to_str().unwrap(), "40001-40010=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let sim = Server { child, addr };
    let mut s = std::net::TcpStream::connect(sim.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = Request::WriteMultipleRegisters {
        address: 2,
        values: Registers::from_values(&[7, 8, 9]),
    };
    s.write_all(&Adu::new(1, 1, &request).to_vec()).unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    let text = wait_for(&file, "{\"write\": [7, 8, 9]}");
    let lines = parse(&text);
    assert!(
        matches!(&lines[0], Line::Comment(c) if c.ends_with(": Started recording Modbus writes")),
        "{text}"
    );
    let Line::Record(r) = &lines[1] else {
        panic!("{text}")
    };
    assert_eq!(r.serial, json!([1, [40003, 40005]]), "{text}");
    assert_eq!(r.tag_io(), None);
    drop(sim);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_from_a_time_brings_the_tags_to_their_state_then() {
    let dir = scratch("from");
    let file = dir.join("steps.hst");
    std::fs::write(
        &file,
        "# a plant's steps, written in Edmonton's local time\n\
         2014-11-02 01:30:00.000 MDT\t[\"Step\", [0, 0]]\t{\"write\": [1]}\n\
         2014-11-02 01:30:00.000 MST\t[\"Step\", [0, 0]]\t{\"write\": [2]}\n\
         2014-11-02 01:30:00.500 MST\t[\"Step\", [0, 0]]\t{\"write\": [3]}\n\
         2014-11-02 01:31:00.000 MST\t[\"Step\", [0, 0]]\t{\"write\": [4]}\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let zone = [
        "--tz",
        "America/Edmonton",
        "--abbreviations-at",
        "2014-07-01 00:00:00",
    ];
    // The same local 01:30 twice, an hour apart: --from the second one (MST).
    let mut show = vec!["history", "show", file, "--from", "2014-11-02 01:30:00 MST"];
    show.extend(zone);
    let (code, out, err) = cpppo(&show);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        vec![
            "2014-11-02 08:30:00.000",
            "2014-11-02 08:30:00.500",
            "2014-11-02 08:31:00.000"
        ]
    );
    // Replay up to (not including) 01:31 MST, from 01:30:00.5 MST: 1 and 2 at once, then 3.
    let s = server(&["Step=DINT"]);
    let address = s.addr.to_string();
    let mut replay = vec![
        "history",
        "replay",
        file,
        "-a",
        &address,
        "-p",
        "--speed",
        "max",
        "--from",
        "2014-11-02 01:30:00.500 MST",
        "--until",
        "2014-11-02 08:31:00 UTC",
    ];
    replay.extend(zone);
    let (code, out, err) = cpppo(&replay);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(client(&s, &["Step"])[0].ends_with("== [3]: 'OK'"));
    // An ambiguous --from is refused.
    let mut bad = vec!["history", "show", file, "--from", "2014-11-02 01:30:00"];
    bad.extend(zone);
    let (code, _, err) = cpppo(&bad);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad --from: 2014-11-02 01:30:00 is ambiguous in America/Edmonton"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// cpppo's own record parser over a history file: one JSON list of
/// `[unix seconds, serial, data]` per record.
const CPPPO_PARSE_RECORDS: &str = "import sys, json
from cpppo.history.files import parse_record
n, out = -1, []
with open(sys.argv[1], 'rb') as f:
    while True:
        try:
            n, (ts, serial, js) = parse_record(f, n)
        except StopIteration:
            break
        out.append([round(ts.value, 6), serial, json.loads(js)])
print(json.dumps(out))
";

#[test]
fn cpppos_reader_reads_what_our_server_records() {
    let Some(python) = peer_python() else {
        return;
    };
    let dir = scratch("cpppo-reads");
    let file = dir.join("ours.hst");
    let history = file.to_str().unwrap();
    let s = server(&[
        "--history",
        history,
        "SCADA=INT[10]",
        "Speed=REAL",
        "Text=SSTRING",
    ]);
    client(
        &s,
        &[
            "SCADA[1-3]=10,20,30",
            "Speed=(REAL)1.5",
            "Text=(SSTRING)\"caf\u{e9}\"",
            "SCADA[0-3]",
        ],
    );
    let text = wait_for(&file, "{\"read\": [0, 10, 20, 30]}");
    let output = Command::new(python)
        .args(["-W", "ignore", "-c", CPPPO_PARSE_RECORDS, history])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ours: Vec<serde_json::Value> = parse(&text)
        .into_iter()
        .filter_map(|l| match l {
            Line::Record(r) => Some(json!([r.when.unix_micros() as f64 / 1e6, r.serial, r.data])),
            _ => None,
        })
        .collect();
    assert_eq!(theirs, serde_json::Value::Array(ours), "{text}");
    assert_eq!(theirs[2][2], json!({"write": ["caf\u{e9}"]}), "{text}");
    assert!(text.contains("{\"write\": [\"caf\\u00e9\"]}"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_value_that_does_not_fit_its_tag_stops_the_replay_before_any_write() {
    let dir = scratch("misfit");
    let file = dir.join("misfit.hst");
    std::fs::write(
        &file,
        "2014-07-15 22:03:44.000\t[\"N\", [0, 0]]\t{\"write\": [5]}\n\
         2014-07-15 22:03:45.000\t[\"N\", [1, 1]]\t{\"write\": [70000]}\n",
    )
    .unwrap();
    let s = server(&["N=INT[2]"]);
    let address = s.addr.to_string();
    let (code, _, err) = cpppo(&["history", "replay", file.to_str().unwrap(), "-a", &address]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("history write to N[1]: [70000] is not int values"),
        "{err}"
    );
    assert!(client(&s, &["N[0-1]"])[0].ends_with("== [0, 0]: 'OK'"));
    std::fs::remove_dir_all(&dir).unwrap();
}
