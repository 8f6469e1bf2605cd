//! The `spark-perf` binary: parses the command line and hands over to the
//! library, so integration tests can run the same code in-process.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let opts = spark_perf::Opts::parse();
    spark_perf::main(opts)
}
