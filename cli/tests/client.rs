//! `cpppo enip client` as a user runs it, against `cpppo enip server` started by the
//! test on a free loopback port (read back from its start-up line): results printed as
//! cpppo prints them, exit status 1 when an operation fails, 2 (one line) for bad input.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cpppo");

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

/// Start `cpppo enip server` with these tags on a free port.
fn server(tags: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["enip", "server", "-a", "127.0.0.1:0"])
        .args(tags)
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

/// Run the client to completion: exit status, stdout, stderr.
fn client(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["enip", "client"])
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

/// Run the client against `server` with `-p`; it must succeed; its stdout lines.
fn ok(server: &Server, args: &[&str]) -> Vec<String> {
    let address = server.addr.to_string();
    let mut all = vec!["-a", &address, "-p"];
    all.extend(args);
    let (code, out, err) = client(&all);
    assert_eq!(code, 0, "{args:?}: {err}\n{out}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn writes_and_reads_print_cpppo_lines() {
    let s = server(&[
        "SCADA=INT[100]",
        "Speed=REAL[4]",
        "Count=DINT",
        "TEXT=SSTRING[2]",
    ]);
    let lines = ok(
        &s,
        &[
            "SCADA[1-3]=10,20,30",
            "SCADA[0-4]",
            "SCADA",
            "Speed[0-1]=(REAL)1.5,-2",
            "Speed[0-2]",
            "Count=(DINT)-123456",
            "Count",
            "TEXT[1]=(SSTRING)\"Hi, there\"",
            "TEXT[0-1]",
            "SCADA[0-3]+2",
        ],
    );
    assert_eq!(
        lines,
        [
            "            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'",
            "            SCADA[0][  0-4  ]+  0 == [0, 10, 20, 30, 0]: 'OK'",
            "               SCADA              == [0]: 'OK'",
            "            Speed[0][  0-1  ]+  0 <= [1.5, -2.0]: 'OK'",
            "            Speed[0][  0-2  ]+  0 == [1.5, -2.0, 0.0]: 'OK'",
            "               Count              <= [-123456]: 'OK'",
            "               Count              == [-123456]: 'OK'",
            "             TEXT[1][  1-1  ]+  0 <= ['Hi, there']: 'OK'",
            "             TEXT[0][  0-1  ]+  0 == ['', 'Hi, there']: 'OK'",
            "            SCADA[0][  0-2  ]+  2 == [10, 20, 30]: 'OK'",
        ]
    );
    // Without -p nothing is printed, as cpppo.
    let (code, out, _) = client(&["-a", &s.addr.to_string(), "SCADA[1]"]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn depth_multiple_connected_and_fragment_give_the_same_results() {
    let s = server(&["SCADA=INT[100]", "Speed=REAL"]);
    let ops = [
        "SCADA[10-12]=7,8,9",
        "Speed=(REAL)0.25",
        "SCADA[10-12]",
        "Speed",
    ];
    let expected = [
        "           SCADA[10][ 10-12 ]+  0 <= [7, 8, 9]: 'OK'",
        "               Speed              <= [0.25]: 'OK'",
        "           SCADA[10][ 10-12 ]+  0 == [7, 8, 9]: 'OK'",
        "               Speed              == [0.25]: 'OK'",
    ];
    for flags in [
        &[][..],
        &["-d", "4"],
        &["-m"],
        &["--multiple=200", "-d", "2"],
        &["-c"],
        &["-c", "-m", "-d", "3"],
        &["-f"],
        &["-S"],
        &["--route-path", "1/0", "--send-path", "@6/1"],
    ] {
        let mut args = flags.to_vec();
        args.extend(["-r", "5"]);
        args.extend(ops);
        let lines = ok(&s, &args);
        assert_eq!(lines.len(), 20, "{flags:?}: {lines:#?}");
        // One connection's requests are served in order, pipelined or packed.
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line, expected[i % ops.len()], "{flags:?}: {lines:#?}");
        }
    }
}

#[test]
fn a_large_read_and_write_are_fragmented() {
    let s = server(&["BIG=DINT[1000]"]);
    let values: Vec<String> = (0..300).map(|i| (i * 1000 - 7).to_string()).collect();
    let write = format!("BIG[100-399]=(DINT){}", values.join(","));
    let lines = ok(&s, &[&write, "BIG[0-999]"]);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("            BIG[100][100-399]+  0 <= [-7, 993, 1993,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(", 298993]: 'OK'"), "{}", lines[0]);
    let read = &lines[1];
    assert!(
        read.starts_with("              BIG[0][  0-999]+  0 == [0, 0,"),
        "{read}"
    );
    assert!(read.ends_with("]: 'OK'"), "{read}");
    let list = read
        .split(" == [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    let got: Vec<i64> = list.split(", ").map(|v| v.parse().unwrap()).collect();
    assert_eq!(got.len(), 1000);
    for (i, v) in got.iter().enumerate() {
        let want = if (100..400).contains(&i) {
            (i as i64 - 100) * 1000 - 7
        } else {
            0
        };
        assert_eq!(*v, want, "BIG[{i}]");
    }
    // Connected (and packed), the same read arrives in fragments of the connection size.
    let again = ok(&s, &["-c", "-m", "BIG[0-999]", "BIG[390-409]"]);
    assert_eq!(again[0], *read);
    assert_eq!(
        again[1],
        "            BIG[390][390-409]+  0 == [289993, 290993, 291993, 292993, 293993, \
294993, 295993, 296993, 297993, 298993, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]: 'OK'"
    );
}

#[test]
fn a_failed_operation_prints_its_status_and_exits_1() {
    let s = server(&["SCADA=INT[10]"]);
    let (code, out, err) = client(&[
        "-a",
        &s.addr.to_string(),
        "-p",
        "NOPE[1]",
        "SCADA[20]",
        "SCADA[1]=5",
        "SCADA[1]",
    ]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("             NOPE[1][  1-1  ]+  0 == None: 'Status 4 "),
        "{out}"
    );
    assert_eq!(
        lines[1],
        "           SCADA[20][ 20-20 ]+  0 == None: 'Status 5 '"
    );
    assert_eq!(lines[3], "            SCADA[1][  1-1  ]+  0 == [5]: 'OK'");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("2 operations failed"), "{err}");
}

#[test]
fn list_identity_and_services_over_udp_and_tcp() {
    let s = server(&["SCADA=INT[10]"]);
    let address = s.addr.to_string();
    for transport in [&["-u"][..], &[]] {
        let mut args = vec!["-a", &address, "-i", "-s"];
        args.extend(transport);
        let (code, out, err) = client(&args);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].starts_with(&format!("List Services  0 from {address}: ")),
            "{out}"
        );
        assert!(lines[0].contains("\"name\":\"Communications\""), "{out}");
        assert!(
            lines[1].starts_with(&format!("List Identity  0 from {address}: ")),
            "{out}"
        );
        assert!(
            lines[1].contains("\"product_name\":\"1756-L61/B LOGIX5561\""),
            "{out}"
        );
    }
    // Nobody answers: exit 1.
    let port = s.addr.port();
    drop(s);
    let address = format!("127.0.0.1:{port}");
    let (code, out, err) = client(&["-a", &address, "-u", "-i", "-t", "0.3"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("no List Identity response"), "{err}");
    let (code, _, err) = client(&["-a", &address, "-t", "0.3", "SCADA[1]"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn bad_input_is_one_line_and_exit_status_2() {
    for (args, culprit) in [
        (&["SCADA[1-"][..], "SCADA[1-"),
        (&["SCADA[1]=(FOO)1"], "FOO"),
        (&["--route-path", "{bad", "SCADA"], "--route-path"),
        (&["--send-path", "@zz", "SCADA"], "--send-path"),
        (&["-d", "0", "SCADA"], "--depth"),
        (&["-a", "localhost:http", "SCADA"], "http"),
        (&["-t", "soon", "SCADA"], "soon"),
        (&["--multiple=lots", "SCADA"], "lots"),
        (&["--bogus"], "--bogus"),
    ] {
        let (code, _, err) = client(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(culprit), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn help_explains_every_option_with_an_example() {
    let out = Command::new(BIN)
        .args(["enip", "client", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if ["  -", "      --", "  [", "  <"]
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
    let blocks: Vec<_> = blocks
        .into_iter()
        .filter(|b| !b.trim_start().starts_with("-h, --help"))
        .collect();
    assert!(blocks.len() >= 18, "{blocks:#?}");
    for block in blocks {
        assert!(block.contains("Example"), "no example in {block}");
    }
    assert!(text.contains("Examples:\n  cpppo enip client"));
}

#[test]
fn a_silent_device_times_out_and_exits_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accept and never answer.
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let started = std::time::Instant::now();
    let (code, out, err) = client(&["-a", &addr, "-p", "-t", "0.5", "SCADA[1]", "SCADA"]);
    assert_eq!(code, 1, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The session set-up timed out with the first operation, so the connection is done.
    assert_eq!(
        out,
        "            SCADA[1][  1-1  ]+  0 == None: 'timed out'\n               SCADA              == None: 'connection closed'\n"
    );
    assert!(err.contains("2 operations failed"), "{err}");
    drop(held.join());
}

#[test]
fn operations_from_stdin_and_a_summary_with_v() {
    use std::io::Write;
    let s = server(&["SCADA=INT[10]"]);
    let mut child = Command::new(BIN)
        .args(["enip", "client", "-a", &s.addr.to_string(), "-p", "-v"])
        .args(["SCADA[0]=7", "-", "SCADA[0-2]"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# more\nSCADA[1-2]=8,9\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "            SCADA[0][  0-0  ]+  0 <= [7]: 'OK'",
            "            SCADA[1][  1-2  ]+  0 <= [8, 9]: 'OK'",
            "            SCADA[0][  0-2  ]+  0 == [7, 8, 9]: 'OK'",
        ]
    );
    assert!(stderr.contains("3 operations in "), "{stderr}");
    assert!(stderr.contains(", 0 failed"), "{stderr}");
}

#[test]
fn every_runtime_gives_the_same_results() {
    let s = server(&["SCADA=INT[100]"]);
    for runtime in ["blocking", "smol", "mio"] {
        let lines = ok(
            &s,
            &[
                "--runtime",
                runtime,
                "-d",
                "3",
                "SCADA[1-3]=10,20,30",
                "SCADA[0-4]",
                "SCADA[0-99]",
            ],
        );
        assert_eq!(lines.len(), 3, "{runtime}: {lines:?}");
        assert_eq!(
            lines[..2],
            [
                "            SCADA[1][  1-3  ]+  0 <= [10, 20, 30]: 'OK'",
                "            SCADA[0][  0-4  ]+  0 == [0, 10, 20, 30, 0]: 'OK'",
            ],
            "{runtime}"
        );
        let mut all = vec![0; 100];
        all[1..4].copy_from_slice(&[10, 20, 30]);
        let list = all
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            lines[2].ends_with(&format!("== [{list}]: 'OK'")),
            "{runtime}: {}",
            lines[2]
        );
    }
    // No server: a one-line failure on every runtime.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for runtime in ["blocking", "smol", "mio"] {
        let (code, _, err) = client(&["-a", &gone, "--runtime", runtime, "SCADA[0]"]);
        assert_ne!(code, 0, "{runtime}");
        assert!(err.contains("cannot connect"), "{runtime}: {err}");
    }
}

#[test]
fn json_lines_on_every_runtime() {
    let s = server(&["SCADA=INT[100]"]);
    let address = s.addr.to_string();
    for runtime in ["blocking", "smol", "mio"] {
        let (code, out, err) = client(&[
            "-a",
            &address,
            "--json",
            "--runtime",
            runtime,
            "-d",
            "2",
            "SCADA[1-3]=10,20,30",
            "SCADA[0-4]",
            "NOPE",
        ]);
        assert_eq!(code, 1, "{runtime}: {err}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{runtime}: {out}");
        assert_eq!(lines[0]["method"], "write", "{runtime}");
        assert_eq!(
            lines[0]["value"],
            serde_json::json!([10, 20, 30]),
            "{runtime}"
        );
        assert_eq!(lines[1]["tag"], "SCADA[0-4]", "{runtime}");
        assert_eq!(
            lines[1]["value"],
            serde_json::json!([0, 10, 20, 30, 0]),
            "{runtime}"
        );
        assert_eq!(lines[1]["ok"], true, "{runtime}");
        assert_eq!(
            (&lines[2]["ok"], &lines[2]["status"], &lines[2]["index"]),
            (
                &serde_json::json!(false),
                &serde_json::json!(4),
                &serde_json::json!(2)
            ),
            "{runtime}"
        );
        let summary = &lines[3]["summary"];
        assert_eq!(
            (&summary["operations"], &summary["failures"]),
            (&serde_json::json!(3), &serde_json::json!(1)),
            "{runtime}"
        );
        assert!(summary["transactions"].as_u64().unwrap() >= 3, "{runtime}");
    }
}

#[test]
fn a_long_run_shows_progress_and_cpppos_tps_summary() {
    // Every reply 0.2 s late: eight operations one at a time take over a second.
    let s = server(&["-d", "0.2", "SCADA=INT[10]"]);
    let (code, out, err) = client(&["-a", &s.addr.to_string(), "-v", "-r", "8", "SCADA[0]"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "no -p: {out}");
    let progress: Vec<&str> = err.lines().filter(|l| l.contains(" progress ")).collect();
    assert!(!progress.is_empty(), "{err}");
    assert!(
        progress[0].starts_with("cpppo enip client: progress ")
            && progress[0].contains("/8 operations, ")
            && progress[0].ends_with(" TPS"),
        "{err}"
    );
    assert!(err.contains("8 operations in "), "{err}");
    assert!(err.contains("using 8 transactions, 0 failed"), "{err}");
    assert!(err.contains("Client Tag I/O  Average "), "{err}");
}
