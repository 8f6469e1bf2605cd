//! The `spark-perf` binary.
fn main() {}
