//! Project automation that is not part of the product, run as `cargo xtask …`
//! (the alias lives in `.cargo/config.toml`).
//!
//! It exists so that every build step a developer or CI needs beyond plain
//! `cargo build`/`cargo test` is Rust code in the repository rather than a
//! shell script only one machine runs: building the spark-sim Docker image
//! from a static binary (there is no image registry, so no base image can be
//! pulled and the image is `FROM scratch`), building llama.cpp's server and a
//! tiny model into a like image, measuring the shipped client against
//! spark-sim (and oha), and checking compose files with
//! the same parser `spark-perf run` uses.

mod bench_client;
mod compose_validate;
mod llamacpp;
mod sim_image;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  sim-image [--tag TAG]   build spark-sim as a static binary and the Docker
                          image TAG (default spark-sim:dev) FROM scratch
  llamacpp-image [--tag TAG]
                          build llama-server from the llama-cpp-python sdist
                          (cached under ~/.cache/spark-perf) and the image TAG
                          (default spark-llamacpp:dev) FROM scratch with the
                          tiny model at /models/tiny.gguf
  tiny-model [--out PATH] write the deterministic tiny GGUF (default: the
                          cache's models/tiny.gguf, which compose/llamacpp.yml
                          bind-mounts)
  compose-validate [--env-file F] [--profile P] [FILE...]
                          check compose files (default: compose/*.yml);
                          exit 0 valid (warnings allowed), 1 errors found
  bench-client [--levels 1,16,64,256] [--seconds S] [--no-oha] …
                          the release spark-perf bench against spark-sim
                          --profile zero, server and client pinned to their
                          own CPUs: tok/s, CPU µs/token, peak RSS, TTFT error;
                          beside oha when it is on PATH (docs/PERFORMANCE.md)
  help                    print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench-client") => bench_client::run(&args[1..]),
        Some("sim-image") => sim_image::run(&args[1..]),
        Some("llamacpp-image") => llamacpp::image(&args[1..]),
        Some("tiny-model") => llamacpp::tiny_model(&args[1..]),
        Some("compose-validate") => match compose_validate::run(&args[1..]) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(err) => Err(err),
        },
        Some("help" | "--help" | "-h") | None => {
            eprint!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root: xtask's manifest directory is `<root>/xtask`.
fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
