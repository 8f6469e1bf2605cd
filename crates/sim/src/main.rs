//! The `spark-sim` binary.
fn main() {}
