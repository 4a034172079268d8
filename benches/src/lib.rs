//! Criterion benchmarks and the end-to-end throughput harness for cpppo-rs.
