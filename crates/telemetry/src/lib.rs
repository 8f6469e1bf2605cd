//! Telemetry sampled beside a scenario: GPUs (power, temperature, memory, utilisation) and energy.

pub mod energy;
pub mod gpu;
