//! What a finished [`Sampler`](crate::Sampler) read: the samples, the
//! scenarios' windows, and the summaries per scenario that results.json
//! keeps.

use std::time::Duration;

use spark_results::{EngineTelemetry, ModelSize, ScenarioUsage, UsageSample};

use crate::series::{Series, Summary};

/// A scenario's start and end, seconds from the start of sampling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    pub(crate) name: String,
    pub(crate) start_s: f64,
    pub(crate) end_s: Option<f64>,
}

/// The samples of one engine's turn and the scenarios' windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub(crate) source: String,
    pub(crate) interval: Duration,
    pub(crate) samples: Vec<UsageSample>,
    pub(crate) windows: Vec<Window>,
    pub(crate) first_error: Option<String>,
    pub(crate) n_errors: u32,
}

impl Recording {
    /// The samples, in time order.
    pub fn samples(&self) -> &[UsageSample] {
        &self.samples
    }

    /// Memory in use over time, bytes.
    pub fn memory(&self) -> Series {
        Series {
            points: self
                .samples
                .iter()
                .filter_map(|s| Some((s.t_s, s.memory_bytes? as f64)))
                .collect(),
        }
    }

    /// CPU over time, percent of one core.
    pub fn cpu(&self) -> Series {
        Series {
            points: self
                .samples
                .iter()
                .filter_map(|s| Some((s.t_s, s.cpu_percent?)))
                .collect(),
        }
    }

    /// Why nothing could be read, when nothing was: the first failure.
    pub fn unavailable(&self) -> Option<String> {
        let any_memory = self.samples.iter().any(|s| s.memory_bytes.is_some());
        if any_memory {
            return None;
        }
        Some(match &self.first_error {
            Some(why) => format!("{}: {why}", self.source),
            None => format!("{}: no sample was taken", self.source),
        })
    }

    /// Reads that failed (the first one's reason is in [`Recording::unavailable`]
    /// when none succeeded).
    pub fn n_errors(&self) -> u32 {
        self.n_errors
    }

    /// The figures results.json keeps, with the model's size beside them.
    pub fn into_telemetry(self, model_size: ModelSize) -> EngineTelemetry {
        let memory = self.memory();
        let cpu = self.cpu();
        let scenarios = self
            .windows
            .iter()
            .map(|window| {
                let end_s = window.end_s.unwrap_or(window.start_s);
                let mem = memory.summary_within(window.start_s, end_s);
                let cpu = cpu.summary_within(window.start_s, end_s);
                ScenarioUsage {
                    name: window.name.clone(),
                    start_s: window.start_s,
                    end_s,
                    n_samples: mem.or(cpu).map_or(0, |s| s.n as u32),
                    memory_peak_bytes: mem.map(|s| s.peak as u64),
                    memory_mean_bytes: mem.map(|s| s.mean.round() as u64),
                    cpu_peak_percent: cpu.map(|s: Summary| s.peak),
                    cpu_mean_percent: cpu.map(|s| s.mean),
                }
            })
            .collect();
        let unavailable = self.unavailable();
        EngineTelemetry {
            source: unavailable.is_none().then(|| self.source.clone()),
            unavailable,
            interval_ms: u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX),
            scenarios,
            samples: self.samples,
            model_size,
            gpu: None,
            engine_metrics: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, memory: u64, cpu: Option<f64>) -> UsageSample {
        UsageSample {
            t_s,
            memory_bytes: Some(memory),
            cpu_percent: cpu,
        }
    }

    #[test]
    fn each_scenario_gets_the_samples_of_its_window() {
        let recording = Recording {
            source: "test".to_owned(),
            interval: Duration::from_millis(500),
            samples: vec![
                sample(0.0, 100, None),
                sample(0.5, 300, Some(50.0)),
                sample(1.0, 200, Some(150.0)),
                sample(1.5, 900, Some(10.0)),
            ],
            windows: vec![
                Window {
                    name: "warmup".to_owned(),
                    start_s: 0.0,
                    end_s: Some(0.6),
                },
                Window {
                    name: "throughput".to_owned(),
                    start_s: 0.9,
                    end_s: Some(1.6),
                },
            ],
            first_error: None,
            n_errors: 0,
        };
        let telemetry = recording.into_telemetry(ModelSize::default());
        let warmup = &telemetry.scenarios[0];
        assert_eq!(warmup.memory_peak_bytes, Some(300));
        assert_eq!(warmup.memory_mean_bytes, Some(200));
        assert_eq!(warmup.cpu_peak_percent, Some(50.0));
        let throughput = &telemetry.scenarios[1];
        assert_eq!(throughput.memory_peak_bytes, Some(900));
        assert_eq!(throughput.cpu_mean_percent, Some(80.0));
        assert_eq!(telemetry.memory_peak_bytes(), Some(900));
        assert_eq!(telemetry.unavailable, None);
        assert_eq!(telemetry.source.as_deref(), Some("test"));
    }

    #[test]
    fn nothing_read_says_why_once() {
        let recording = Recording {
            source: "docker stats".to_owned(),
            interval: Duration::from_millis(500),
            samples: Vec::new(),
            windows: Vec::new(),
            first_error: Some("no such container".to_owned()),
            n_errors: 3,
        };
        let telemetry = recording.into_telemetry(ModelSize::default());
        assert_eq!(
            telemetry.unavailable.as_deref(),
            Some("docker stats: no such container")
        );
        assert_eq!(telemetry.source, None);
    }
}
