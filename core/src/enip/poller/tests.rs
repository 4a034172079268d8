//! The poller against the real server engine and a simulated controller, in memory, on
//! a simulated clock.

use std::time::{Duration, Instant};

use super::*;
use crate::cip::data::Values;
use crate::enip::client::LostReason;
use crate::enip::proxy::{powerflex_750_series, Datum};
use crate::enip::sim::Device;

struct Sim {
    now: Instant,
    t0: Instant,
    device: Device,
    poller: Poller,
    log: Vec<PollEvent>,
}

impl Sim {
    fn new(config: PollerConfig) -> Self {
        let now = Instant::now();
        Sim {
            now,
            t0: now,
            device: Device::new(),
            poller: Poller::new(PollerConfig {
                client: ClientOptions {
                    timeout: Duration::from_millis(500),
                    ..ClientOptions::simple()
                },
                ..config
            }),
            log: Vec::new(),
        }
    }

    fn poll(&mut self, name: &str, rate_ms: u64) {
        let p = powerflex_750_series().resolve(name).unwrap();
        self.poller
            .poll(self.now, p, Some(Duration::from_millis(rate_ms)));
    }

    /// Run the loop at `now` until nothing moves, acting on Connect and Disconnect.
    fn step(&mut self) -> Vec<PollEvent> {
        let mut seen = Vec::new();
        loop {
            self.device.exchange(self.now, &mut self.poller);
            let mut moved = false;
            while let Some(event) = self.poller.poll_event() {
                moved = true;
                match &event {
                    PollEvent::Connect => {
                        if self.device.accept(self.now) {
                            self.poller.handle_connected(self.now);
                        } else {
                            self.poller
                                .handle_connect_failed(self.now, "Connection refused");
                        }
                    }
                    PollEvent::Disconnect { .. } => self.device.conn = None,
                    _ => {}
                }
                seen.push(event);
            }
            if !moved {
                self.log.extend(seen.iter().cloned());
                return seen;
            }
        }
    }

    /// Sleep until the poller's deadline, as a runtime does, then run the loop.
    fn advance(&mut self) -> Vec<PollEvent> {
        let at = self.poller.poll_timeout().expect("a deadline");
        assert!(at >= self.now, "deadlines never lie in the past");
        self.now = at;
        self.poller.handle_timeout(self.now);
        self.step()
    }

    fn ms(&self) -> u128 {
        self.now.duration_since(self.t0).as_millis()
    }
}

fn changed(events: &[PollEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| matches!(e, PollEvent::Changed { .. }))
        .map(ToString::to_string)
        .collect()
}

fn real(v: f32) -> ParamValue {
    ParamValue(vec![Datum::Real(f64::from(v))])
}

#[test]
fn each_parameter_at_its_rate_through_one_connection() {
    let mut sim = Sim::new(PollerConfig::default());
    sim.device.set("Output_Current", Values::Real(vec![1.5]));
    sim.poll("Output Current", 1000);
    sim.poll("Motor Velocity", 3000);
    sim.poll("SCADA[0-1]", 1500);
    let events = sim.step();
    assert_eq!(events[0], PollEvent::Connect);
    assert_eq!(
        changed(&events),
        [
            "Output Current == [1.5] Amps (was: None)",
            "Motor Velocity == [0.0] Hz/RPM (was: None)",
            "SCADA[0-1] == [0, 0] (was: None)",
        ]
    );
    assert_eq!(sim.poller.read("output current"), Some(&real(1.5)));
    // Which parameters each cycle read, by the time it ran.
    let mut cycles = Vec::new();
    let mut reads = sim.poller.statistics().reads;
    while sim.ms() < 6000 {
        sim.advance();
        let now = sim.poller.statistics().reads;
        if now != reads {
            cycles.push((sim.ms(), now - reads));
            reads = now;
        }
    }
    assert_eq!(
        cycles,
        [
            (1000, 1),
            (1500, 1),
            (2000, 1),
            (3000, 3),
            (4000, 1),
            (4500, 1),
            (5000, 1),
            (6000, 3)
        ]
    );
    // Unchanged values are not reported again; a change is.
    sim.device
        .set("SCADA", Values::Int(vec![7, 8, 0, 0, 0, 0, 0, 0, 0, 0]));
    let mut events = Vec::new();
    while sim.ms() < 7500 {
        events.extend(sim.advance());
    }
    assert_eq!(changed(&events), ["SCADA[0-1] == [7, 8] (was: [0, 0])"]);
    let stats = *sim.poller.statistics();
    assert_eq!(
        (stats.slipped, stats.backoffs, stats.read_failures),
        (0, 0, 0)
    );
    assert_eq!(
        sim.poller.proxy().statistics().connects,
        1,
        "one connection throughout"
    );
    // Replies take no simulated time: no load.
    assert_eq!(sim.poller.load().one, Some(0.0));
}

#[test]
fn failure_backoff_then_reconnect_and_values_after_restart() {
    let mut sim = Sim::new(PollerConfig::default()); // backoff 1 s, x1.5, up to 10 s
    sim.device.set("Output_Current", Values::Real(vec![12.5]));
    sim.poll("Output Current", 1000);
    sim.step();
    assert_eq!(sim.poller.read("Output Current"), Some(&real(12.5)));
    sim.advance();
    assert_eq!(sim.ms(), 1000);

    // The server goes away between cycles: the runtime sees the connection close.
    sim.device.stop();
    sim.poller.handle_disconnected(sim.now);
    let events = sim.step();
    assert!(
        matches!(events.as_slice(), [PollEvent::Disconnect { .. }]),
        "{events:?}"
    );

    // The next cycle asks for a connection, which is refused: failed, offline, backing off.
    let events = sim.advance();
    assert_eq!(sim.ms(), 2000);
    assert_eq!(
        events,
        [
            PollEvent::Connect,
            PollEvent::Failed {
                name: "Output Current".into(),
                error: ParamError::Connect("Connection refused".into())
            },
            PollEvent::Offline,
            PollEvent::Reconnecting {
                retry_in: Duration::from_secs(1)
            },
        ]
    );
    assert_eq!(sim.poller.read("Output Current"), None, "offline");
    // Each further attempt waits 1.5 times longer, as cpppo's poll.run.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let events = sim.advance();
        assert_eq!(events[0], PollEvent::Connect);
        attempts.push(sim.ms());
    }
    assert_eq!(attempts, [3000, 4500, 6750]);
    assert_eq!(
        sim.poller.poll_timeout(),
        Some(sim.now + Duration::from_micros(3_375_000))
    );

    // The server is back, with a value written meanwhile: the next attempt reconnects
    // and reports it.
    sim.device.running = true;
    sim.device.set("Output_Current", Values::Real(vec![16.25]));
    let events = sim.advance();
    assert_eq!(sim.ms(), 10125);
    assert_eq!(events[0], PollEvent::Connect);
    assert!(events.contains(&PollEvent::Online));
    assert_eq!(
        changed(&events),
        ["Output Current == [16.25] Amps (was: [12.5])"]
    );
    // The backoff is reset and the cadence kept: the next cycle is on the second.
    sim.advance();
    assert_eq!(sim.ms(), 11000);
    let stats = *sim.poller.statistics();
    assert_eq!(stats.backoffs, 4);
    assert!(
        stats.slipped > 0,
        "cycles missed while backing off are skipped"
    );
    assert_eq!(sim.poller.proxy().statistics().connects, 6);
}

#[test]
fn a_silent_device_times_out_closes_and_backs_off() {
    let mut sim = Sim::new(PollerConfig {
        backoff_min: Some(Duration::from_secs(2)),
        backoff_max: Some(Duration::from_secs(3)),
        ..PollerConfig::default()
    });
    sim.poll("Output Current", 1000);
    sim.step();
    // The device hangs: requests go nowhere (the connection stays up).
    let conn = sim.device.conn.take();
    let events = sim.advance(); // the cycle at 1 s is sent
    assert!(events.is_empty());
    let events = sim.advance(); // its timeout at 1.5 s
    assert_eq!(sim.ms(), 1500);
    assert_eq!(
        events,
        [
            PollEvent::Failed {
                name: "Output Current".into(),
                error: ParamError::Lost(LostReason::Timeout)
            },
            PollEvent::Offline,
            PollEvent::Reconnecting {
                retry_in: Duration::from_secs(2)
            },
            PollEvent::Disconnect {
                reason: "timed out".into()
            },
        ]
    );
    drop(conn);
    // The wait ends at 3.5 s: the cycle overdue since 2 s runs then (as cpppo's
    // poll.run does after its delay), and the next keeps the cadence, at 4 s.
    let events = sim.advance();
    assert_eq!(sim.ms(), 3500);
    assert_eq!(events[0], PollEvent::Connect);
    assert!(events.contains(&PollEvent::Online));
    sim.advance();
    assert_eq!(sim.ms(), 4000);
    assert_eq!(sim.poller.statistics().slipped, 1);
}

#[test]
fn every_value_is_reported_when_asked() {
    let mut sim = Sim::new(PollerConfig {
        every_value: true,
        ..PollerConfig::default()
    });
    sim.device.set("Output_Current", Values::Real(vec![123.45]));
    sim.poll("Output Current", 1000);
    let polled = |events: &[PollEvent]| -> Vec<String> {
        events
            .iter()
            .filter(|e| matches!(e, PollEvent::Polled { .. }))
            .map(ToString::to_string)
            .collect()
    };
    let events = sim.step();
    assert_eq!(polled(&events), [" Output Current: [123.44999694824219]"]);
    assert_eq!(changed(&events).len(), 1);
    // Unchanged: polled again, no change.
    let events = sim.advance();
    assert_eq!(polled(&events), [" Output Current: [123.44999694824219]"]);
    assert!(changed(&events).is_empty());
}

#[test]
fn writes_go_through_the_same_gateway() {
    let mut sim = Sim::new(PollerConfig::default());
    sim.poll("Motor Velocity", 1000);
    sim.step();
    let params = powerflex_750_series();
    let velocity = params.get("Motor Velocity").unwrap();
    let w = sim.poller.write(sim.now, velocity, "789.01").unwrap();
    let events = sim.step();
    assert_eq!(
        events,
        [PollEvent::Written {
            write: w,
            name: "Motor Velocity".into()
        }]
    );
    let events = sim.advance();
    assert_eq!(
        changed(&events),
        [format!(
            "Motor Velocity == {} Hz/RPM (was: [0.0])",
            real(789.01)
        )]
    );
    let bad = params.resolve("@0x93/99/10=REAL").unwrap();
    let w = sim.poller.write(sim.now, &bad, "1").unwrap();
    let events = sim.step();
    assert!(
        matches!(&events[..], [PollEvent::WriteFailed { write, error: ParamError::Status(_), .. }] if *write == w),
        "{events:?}"
    );
    assert!(sim.poller.write(sim.now, velocity, "fast").is_err());
    assert_eq!(sim.poller.proxy().statistics().connects, 1);
}

#[test]
fn load_is_the_busy_fraction_of_the_period() {
    let mut sim = Sim::new(PollerConfig::default());
    sim.poll("Output Current", 1000);
    sim.step();
    // Connected and answered at once.
    assert_eq!(sim.poller.load().one, Some(0.0));
    // The next cycle's reply comes 250 ms after its request: a quarter of the period,
    // averaged in with cpppo's weights (1 s over 1, 5 and 15 minutes).
    sim.device.hold = true;
    sim.advance();
    assert_eq!(sim.ms(), 1000);
    sim.now += Duration::from_millis(250);
    sim.device.hold = false;
    sim.step();
    let load = sim.poller.load();
    let near = |x: Option<f64>, want: f64| (x.unwrap() - want).abs() < 1e-12;
    assert!(near(load.one, 0.25 / 60.0), "{load:?}");
    assert!(near(load.five, 0.25 / 300.0), "{load:?}");
    assert!(near(load.fifteen, 0.25 / 900.0), "{load:?}");
    assert_eq!(sim.poller.statistics().cycles, 2);
}

proptest::proptest! {
    /// Whatever a device sends, the poller neither panics nor stops: it always waits on a
    /// deadline (the next cycle, a timeout or a backoff).
    #[test]
    fn arbitrary_reply_bytes_never_panic_the_poller(
        replies in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..12),
    ) {
        let t0 = Instant::now();
        let params = powerflex_750_series();
        let mut poller = Poller::new(PollerConfig::default());
        poller.poll(t0, params.get("Output Current").unwrap().clone(), None);
        poller.poll(t0, params.get("Identity").unwrap().clone(), Some(Duration::from_millis(300)));
        poller.write(t0, params.get("Motor Velocity").unwrap(), "1.5").unwrap();
        let mut now = t0;
        let mut out = Vec::new();
        for reply in &replies {
            while let Some(e) = poller.poll_event() {
                if e == PollEvent::Connect {
                    poller.handle_connected(now);
                }
            }
            while poller.poll_transmit(now, &mut out) {}
            poller.handle_input(now, reply);
            now += Duration::from_millis(700);
            poller.handle_timeout(now);
        }
        while let Some(e) = poller.poll_event() {
            if e == PollEvent::Connect {
                poller.handle_connected(now);
            }
        }
        proptest::prop_assert!(poller.poll_timeout().is_some());
    }
}
