//! spark-sim: a simulated vLLM-like OpenAI-compatible engine.
//!
//! It is spark-perf's ground truth (it logs when it sent every token), the
//! default engine of `spark-perf demo` and the image of our Docker tests. The
//! binary is a thin wrapper; `spark-perf sim` embeds the same library:
//!
//! ```no_run
//! # async fn demo() -> Result<(), spark_sim::SimError> {
//! let mut args = spark_sim::SimArgs::defaults();
//! args.port = Some(0);
//! let sim = spark_sim::Sim::bind(args).await?;
//! println!("{}", sim.local_addr());
//! let exit = sim.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! std::process::exit(exit.code());
//! # }
//! ```
//!
//! See docs/SIM.md for the flags, profiles, tokenizer, truth log and faults.

mod api;
mod args;
mod engine;
mod error;
mod generate;
mod healthcheck;
mod llamacpp;
mod metrics;
mod protocol;
mod server;
mod stream;
mod tgi;
pub mod tokenizer;
mod truth;

pub use args::{Flavor, ProfileName, ReasoningField, SimArgs, Timing, parse_duration};
pub use error::SimError;
pub use healthcheck::healthcheck;
pub use server::{Sim, SimExit, serve};
pub use truth::{monotonic_ns, unix_ns};
