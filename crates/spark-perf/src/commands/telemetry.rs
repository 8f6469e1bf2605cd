//! Telemetry beside an engine's scenarios, as `run`, `demo` and `bench`
//! wire it: the probe (the engine container's stats through the
//! orchestrator, or a local process's `/proc`), the sampler around the
//! scenarios, and the model's size from the container's command and mounts.
//!
//! The GPUs are sampled over the same turn (`gpu.rs`), on the same clock,
//! and cut into the scenarios' windows kept here.
//!
//! The telemetry crate knows no Docker: the orchestrator's stats reader is
//! wrapped here in a [`Probe`], and its mounts turned into plain paths.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use spark_orchestrator::{ContainerMountKind, ModelFiles, StatsReader};
use spark_results::{EngineTelemetry, ModelSize, RunResults};
use spark_telemetry::gpu::ScenarioWindow;
use spark_telemetry::model::{self, Mount, MountKind};
use spark_telemetry::{DEFAULT_INTERVAL, Probe, ProcessProbe, ReadFuture, Reading, Sampler};

use super::engine_metrics::EngineWatch;
use super::gpu::{Gpu, GpuTurn};

/// What is sampled.
#[derive(Debug)]
pub(crate) enum Target {
    /// The engine's container, through Docker's stats API.
    Container(StatsReader),
    /// A local process (the demo's spark-sim, `bench --pid`).
    Process(u32),
    /// Nothing can be: why.
    Unavailable(String),
}

/// The samplers of one engine's turn (or why there is none for memory and
/// CPU), and the scenarios' windows on the GPU sampler's clock.
#[derive(Debug)]
pub(crate) struct Telemetry {
    sampler: Option<Sampler>,
    unavailable: Option<String>,
    gpu: GpuTurn,
    engine: EngineWatch,
    origin: Instant,
    windows: Mutex<Vec<(String, f64, Option<f64>)>>,
}

impl Telemetry {
    /// Starts sampling `target` and the GPUs (at once: the first readings are
    /// taken now); `pids` are the engine's processes on the host.
    pub(crate) fn start(target: Target, gpu: &Gpu, pids: &[u32]) -> Telemetry {
        let origin = Instant::now();
        let gpu = gpu.start(pids, origin);
        let (sampler, unavailable) = match target {
            Target::Container(reader) => (
                Some(Box::new(ContainerProbe(reader)) as Box<dyn Probe>),
                None,
            ),
            Target::Process(pid) => (
                Some(Box::new(ProcessProbe::new(pid)) as Box<dyn Probe>),
                None,
            ),
            Target::Unavailable(why) => (None, Some(why)),
        };
        Telemetry {
            sampler: sampler.map(|probe| Sampler::start(probe, DEFAULT_INTERVAL)),
            unavailable,
            gpu,
            engine: EngineWatch::default(),
            origin,
            windows: Mutex::new(Vec::new()),
        }
    }

    fn windows(&self) -> MutexGuard<'_, Vec<(String, f64, Option<f64>)>> {
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Samples the connected engine's own metrics from now on.
    pub(crate) fn watch_engine(&self, engine: &spark_load::Engine) {
        self.engine.watch(engine, self.origin);
    }

    /// A request that ended (llama-server's cache counts of its timings).
    pub(crate) fn record(&self, record: &spark_results::RequestRecord) {
        self.engine.record(record);
    }

    /// Marks a scenario's start.
    pub(crate) fn scenario_started(&self, name: &str) {
        if let Some(sampler) = &self.sampler {
            sampler.scenario_started(name);
        }
        let at_s = self.origin.elapsed().as_secs_f64();
        self.windows().push((name.to_owned(), at_s, None));
    }

    /// Marks a scenario's end.
    pub(crate) fn scenario_ended(&self, name: &str) {
        if let Some(sampler) = &self.sampler {
            sampler.scenario_ended(name);
        }
        let at_s = self.origin.elapsed().as_secs_f64();
        if let Some(window) = self
            .windows()
            .iter_mut()
            .rev()
            .find(|(n, _, end)| n == name && end.is_none())
        {
            window.2 = Some(at_s);
        }
    }

    /// Stops the sampling; what results.json keeps, with the model's size and
    /// each scenario's energy per output token from `results`.
    pub(crate) async fn finish(
        self,
        model_size: ModelSize,
        results: Option<&RunResults>,
    ) -> EngineTelemetry {
        let end_s = self.origin.elapsed().as_secs_f64();
        let windows: Vec<ScenarioWindow> = std::mem::take(&mut *self.windows())
            .into_iter()
            .map(|(name, start_s, end)| ScenarioWindow {
                name,
                start_s,
                end_s: end.unwrap_or(end_s),
            })
            .collect();
        let mut telemetry = match self.sampler {
            Some(sampler) => {
                let telemetry = sampler.finish().await.into_telemetry(model_size);
                if let Some(why) = &telemetry.unavailable {
                    tracing::warn!("runtime memory and CPU are N/A: {why}");
                }
                telemetry
            }
            None => EngineTelemetry {
                unavailable: self.unavailable,
                model_size,
                ..EngineTelemetry::default()
            },
        };
        telemetry.engine_metrics = self.engine.finish(&windows, results).await;
        telemetry.gpu = self.gpu.finish(windows, results).await;
        telemetry
    }
}

/// The orchestrator's stats reader as a probe.
struct ContainerProbe(StatsReader);

impl Probe for ContainerProbe {
    fn source(&self) -> String {
        "docker stats".to_owned()
    }

    fn read(&mut self) -> ReadFuture<'_> {
        Box::pin(async move {
            let stats = self.0.read().await.map_err(|err| err.to_string())?;
            Ok(Reading {
                memory_bytes: stats.memory_bytes,
                cpu_percent: stats.cpu_percent,
            })
        })
    }
}

/// The model's size from what the container runs and mounts.
pub(crate) fn model_size(files: &ModelFiles) -> ModelSize {
    if files.command().is_empty() && files.mounts().is_empty() {
        return ModelSize::unavailable("the container could not be inspected after its start");
    }
    let mounts: Vec<Mount> = files
        .mounts()
        .iter()
        .map(|mount| Mount {
            kind: match mount.kind {
                ContainerMountKind::Bind => MountKind::Bind,
                ContainerMountKind::Volume => MountKind::Volume,
                ContainerMountKind::Other => MountKind::Other,
            },
            source: mount.source.as_ref().map(Into::into),
            name: mount.name.clone(),
            target: mount.target.clone(),
        })
        .collect();
    model::size(files.command(), &mounts)
}
