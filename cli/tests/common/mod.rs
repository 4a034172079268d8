//! What the CLI tests that run `cpppo` as a long-lived process share: the process,
//! its stdout collected as it prints, its first stderr line (the start-up line).

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cpppo");

/// A `cpppo` child process, killed when dropped; its stdout collected, its first stderr
/// line kept.
pub struct Running {
    child: Child,
    /// The first line it wrote to stderr.
    pub line: String,
    printed: Arc<Mutex<String>>,
    patience: Duration,
}

impl Running {
    /// Start `cpppo args...` and wait for its first stderr line; `wait_printed` waits at
    /// most `patience` for a text.
    pub fn spawn(args: &[&str], patience: Duration) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let printed = Arc::new(Mutex::new(String::new()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let sink = Arc::clone(&printed);
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Running {
            child,
            line,
            printed,
            patience,
        }
    }

    /// The address of a server's start-up line (`... listening on ADDR ...`).
    pub fn listening(&self) -> SocketAddr {
        let Some(rest) = self.line.split("listening on ").nth(1) else {
            panic!("no start-up line: {:?}", self.line);
        };
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Wait until stdout holds `text`; fail after the patience given at `spawn`.
    pub fn wait_printed(&self, text: &str) {
        let deadline = Instant::now() + self.patience;
        while !self.printed.lock().unwrap().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} not printed; stdout: {}",
                self.printed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.printed
            .lock()
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
