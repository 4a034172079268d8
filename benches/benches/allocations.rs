//! Heap allocations per operation, for every operation of the codec benches.
//!
//! `cargo bench -p cpppo-benches --bench allocations` prints a table: each operation is
//! run once to warm its buffers, then [`RUNS`] times under a counting global allocator
//! (the `allocation-counter` crate, which counts the calling thread only). The counts
//! are deterministic, so `tests/allocations.rs` asserts them.

use allocation_counter::measure;
use cpppo_benches::workload::operations;

/// Measured runs per operation (after one warm-up run).
const RUNS: u64 = 1000;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument (any other word) selects
    // operations by substring, as criterion does.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!(
        "{:<50} {:>12} {:>12} {:>14}",
        "operation", "allocs/op", "bytes/op", "first run"
    );
    for mut op in operations() {
        if filter.as_deref().is_some_and(|f| !op.name.contains(f)) {
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
            "{:<50} {:>12} {:>12} {:>8} allocs",
            op.name,
            per_op(steady.count_total),
            per_op(steady.bytes_total),
            first.count_total,
        );
    }
}

/// A per-run figure, with two decimals when it is not a whole number.
fn per_op(total: u64) -> String {
    if total % RUNS == 0 {
        format!("{}", total / RUNS)
    } else {
        format!("{:.2}", total as f64 / RUNS as f64)
    }
}
