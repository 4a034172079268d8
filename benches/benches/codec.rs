//! Criterion benches of the codecs: every operation of
//! [`cpppo_benches::workload::operations`], one bench each, named as in the README.
//!
//! `cargo bench -p cpppo-benches --bench codec -- --warm-up-time 1 --measurement-time 3`
//! (a filter such as `enip/` selects some). Each operation is a boxed closure that owns
//! its reused buffers: the indirect call costs about a nanosecond and is included in
//! every figure alike.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use cpppo_benches::workload::operations;
use criterion::{criterion_group, criterion_main, Criterion};

fn codecs(c: &mut Criterion) {
    for mut op in operations() {
        c.bench_function(op.name, |b| b.iter(|| black_box((op.run)())));
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
