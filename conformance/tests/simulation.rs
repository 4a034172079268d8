//! Deterministic simulation of client engines against server engines over a simulated
//! network (see `cpppo_conformance::sim`): thousands of seeded scenarios, each checked
//! for lost or duplicated operations, replies matched to the wrong request, values the
//! reference model does not allow, and unbounded memory.
//!
//! `CPPPO_SIM_SCENARIOS=N` runs N scenarios (default 2000), from scenario
//! `CPPPO_SIM_FIRST` (default 0); `CPPPO_SIM_SEED=0x...` runs one scenario alone, as a
//! failure's message says; `CPPPO_SIM_VERBOSE=1` prints each scenario's report.

use std::collections::BTreeMap;

use cpppo_conformance::sim::{self, Kind, Report};

fn parse_seed(text: &str) -> u64 {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{}={text:?}: {e}", sim::SEED_VAR))
}

fn run_one(seed: u64) -> (Kind, Report) {
    match sim::run(seed) {
        Ok(r) => r,
        Err(e) => panic!(
            "simulation scenario 0x{seed:016x} failed: {e}\nreproduce: {}",
            sim::repro_command(seed)
        ),
    }
}

#[test]
fn seeded_scenarios_keep_every_invariant() {
    if let Ok(seed) = std::env::var(sim::SEED_VAR) {
        let (kind, report) = run_one(parse_seed(&seed));
        eprintln!("{kind:?}: {report:?}");
        return;
    }
    let n: u64 = std::env::var(sim::SCENARIOS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // Where to start (to explore seeds beyond the usual ones).
    let first: u64 = std::env::var(sim::FIRST_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut totals: BTreeMap<Kind, (u64, Report)> = BTreeMap::new();
    for i in first..first + n {
        let seed = sim::scenario_seed(i);
        let (kind, r) = run_one(seed);
        if std::env::var_os("CPPPO_SIM_VERBOSE").is_some() {
            eprintln!("0x{seed:016x} {kind:?} {r:?}");
        }
        let t = totals.entry(kind).or_default();
        t.0 += 1;
        t.1.ops += r.ops;
        t.1.ok += r.ok;
        t.1.refused += r.refused;
        t.1.lost += r.lost;
        t.1.drops += r.drops;
        t.1.restarts += r.restarts;
        t.1.connects += r.connects;
        t.1.polled += r.polled;
    }
    for (kind, (count, t)) in &totals {
        eprintln!("{kind:?}: {count} scenarios, {t:?}");
    }
    if n >= 200 {
        // Every kind ran, and each exercised what it is for: values read and written,
        // refusals, and losses to dropped connections and restarts.
        assert_eq!(totals.len(), 4, "every kind of scenario ran");
        for (kind, (_, t)) in &totals {
            assert!(
                t.ok > t.ops / 3,
                "{kind:?}: few operations succeeded: {t:?}"
            );
            assert!(t.refused > 0, "{kind:?}: no invalid operation refused");
            assert!(
                t.lost > 0,
                "{kind:?}: the network never took an operation away"
            );
            if *kind != Kind::ModbusRtu {
                assert!(t.drops > 0 && t.restarts > 0, "{kind:?}: no faults: {t:?}");
            }
            if *kind == Kind::ModbusTcp {
                assert!(t.polled > 0, "the poller's values were never checked");
            }
        }
    }
}

#[test]
fn a_scenario_is_the_same_run_every_time() {
    for i in 0..20 {
        let seed = sim::scenario_seed(i);
        assert_eq!(run_one(seed), run_one(seed), "scenario 0x{seed:016x}");
    }
}

#[test]
fn the_reproduction_command_names_the_seed() {
    assert_eq!(
        sim::repro_command(0xABCD),
        "CPPPO_SIM_SEED=0x000000000000abcd cargo test -p cpppo-conformance --test simulation"
    );
    assert_eq!(parse_seed("0x10"), 16);
    assert_eq!(parse_seed("16"), 16);
}
