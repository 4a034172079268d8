//! Heap allocations per operation, for every operation of the codec benches.
//!
//! `cargo bench -p cpppo-benches --bench allocations` prints a table: each operation is
//! run once to warm its buffers, then [`RUNS`] times under a counting global allocator
//! (the `allocation-counter` crate, which counts the calling thread only). The counts
//! are deterministic, so `tests/allocations.rs` asserts them. The last column is the
//! time per run of the fastest batch (see [`best_ns`]), a steadier figure than a mean
//! on a shared machine.

use allocation_counter::measure;
use cpppo_benches::workload::operations;

/// Measured runs per operation (after one warm-up run).
const RUNS: u64 = 1000;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument (any other word) selects
    // operations by substring, as criterion does.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--repeat") {
        return repeat(&args[at + 1..]);
    }
    if args.iter().any(|a| a == "--list") {
        for op in operations() {
            println!("{}", op.name);
        }
        return;
    }
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with('-'));
    println!(
        "{:<50} {:>10} {:>10} {:>13} {:>12}",
        "operation", "allocs/op", "bytes/op", "first run", "best ns/op"
    );
    for mut op in operations() {
        if filter.is_some_and(|f| !op.name.contains(f.as_str())) {
            continue;
        }
        let mut sink = 0u64;
        let first = measure(|| sink = sink.wrapping_add((op.run)()));
        let steady = measure(|| {
            for _ in 0..RUNS {
                sink = sink.wrapping_add(std::hint::black_box((op.run)()));
            }
        });
        std::hint::black_box(sink);
        println!(
            "{:<50} {:>10} {:>10} {:>6} allocs {:>12.1}",
            op.name,
            per_op(steady.count_total),
            per_op(steady.bytes_total),
            first.count_total,
            best_ns(&mut *op.run),
        );
    }
}

/// `--repeat NAME COUNT`: run operation NAME once to warm up, then COUNT times, and
/// print nothing. `benches/instructions.sh` runs this under callgrind with two counts
/// and divides the difference in instructions by the difference in runs, which gives
/// instructions per operation free of the machine's noise and of start-up costs.
fn repeat(args: &[String]) {
    let (Some(name), Some(count)) = (args.first(), args.get(1)) else {
        panic!("usage: --repeat NAME COUNT");
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let mut op = operations()
        .into_iter()
        .find(|op| op.name == name)
        .unwrap_or_else(|| panic!("no operation {name}"));
    let mut sink = std::hint::black_box((op.run)());
    for _ in 0..count {
        sink = sink.wrapping_add(std::hint::black_box((op.run)()));
    }
    std::hint::black_box(sink);
}

/// Batches timed, and runs per batch, for the best-batch time.
const BATCHES: u32 = 300;
const BATCH_RUNS: u32 = 2000;

/// Nanoseconds per run of the fastest of [`BATCHES`] batches: on a shared machine a
/// batch that ran without being interrupted or slowed by a neighbour shows what the
/// code costs, where a mean or median (criterion's) also measures the neighbours.
fn best_ns(run: &mut dyn FnMut() -> u64) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..BATCHES {
        let start = std::time::Instant::now();
        for _ in 0..BATCH_RUNS {
            std::hint::black_box(run());
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(BATCH_RUNS);
        best = best.min(ns);
    }
    best
}

/// A per-run figure, with two decimals when it is not a whole number.
fn per_op(total: u64) -> String {
    if total % RUNS == 0 {
        format!("{}", total / RUNS)
    } else {
        format!("{:.2}", total as f64 / RUNS as f64)
    }
}
