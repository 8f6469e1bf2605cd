//! Telemetry beside the load: what an engine used while it was measured and
//! the size of the model it served.
//!
//! A [`Sampler`] is started before an engine's first scenario, reads a
//! [`Probe`] on an interval (about 500 ms) on a tokio task of its own, is
//! told where each scenario starts and ends, and is finished after the last
//! one: its [`Recording`] is the time series and, per scenario, the peak and
//! the mean ([`Series`], [`Summary`]). Probes come from the caller: the CLI
//! wraps the orchestrator's Docker stats of the engine's container in one,
//! and [`ProcessProbe`] reads a local process (`/proc/PID`).
//! [`model::size`] finds the model's files from the service's command and
//! mounts, on the host. [`gpu`] samples the GPUs and [`energy`] turns power
//! into joules.
//!
//! Architecture Invariant: knows neither the load client nor Docker's API
//! (bollard): a probe is a trait object the caller hands in, and mounts are
//! plain paths. Results are the serde-only types of `spark-results`.

mod process;
mod recording;
mod sampler;
mod series;

pub mod model;

/// GPUs: NVIDIA through NVML (else nvidia-smi), AMD through amd-smi (else
/// rocm-smi), DGX Spark's GB10 unified memory from /proc/meminfo; sampled on
/// a thread of their own (NVML calls block). See docs/TELEMETRY.md.
pub mod gpu;

/// The engine's own metrics sampled during the scenarios (through a probe
/// the caller builds) and each scenario's figures from them.
pub mod engine_metrics;

/// Energy over a window: the GPU's energy counter, else integrated power;
/// J per token and tokens per J.
pub mod energy;

pub use process::{ProcessProbe, parse_cpu_ticks, parse_vm_rss_bytes};
pub use recording::Recording;
pub use sampler::{DEFAULT_INTERVAL, Probe, ReadFuture, Reading, Sampler};
pub use series::{Series, Summary};
