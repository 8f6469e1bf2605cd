//! Telemetry beside an engine's scenarios, as `run`, `demo` and `bench`
//! wire it: the probe (the engine container's stats through the
//! orchestrator, or a local process's `/proc`), the sampler around the
//! scenarios, and the model's size from the container's command and mounts.
//!
//! The telemetry crate knows no Docker: the orchestrator's stats reader is
//! wrapped here in a [`Probe`], and its mounts turned into plain paths.

use spark_orchestrator::{ContainerMountKind, ModelFiles, StatsReader};
use spark_results::{EngineTelemetry, ModelSize};
use spark_telemetry::model::{self, Mount, MountKind};
use spark_telemetry::{DEFAULT_INTERVAL, Probe, ProcessProbe, ReadFuture, Reading, Sampler};

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

/// The sampler of one engine's turn, or why there is none.
#[derive(Debug)]
pub(crate) struct Telemetry {
    sampler: Option<Sampler>,
    unavailable: Option<String>,
}

impl Telemetry {
    /// Starts sampling `target` (at once: the first reading is taken now).
    pub(crate) fn start(target: Target) -> Telemetry {
        let probe: Box<dyn Probe> = match target {
            Target::Container(reader) => Box::new(ContainerProbe(reader)),
            Target::Process(pid) => Box::new(ProcessProbe::new(pid)),
            Target::Unavailable(why) => {
                return Telemetry {
                    sampler: None,
                    unavailable: Some(why),
                };
            }
        };
        Telemetry {
            sampler: Some(Sampler::start(probe, DEFAULT_INTERVAL)),
            unavailable: None,
        }
    }

    /// Marks a scenario's start.
    pub(crate) fn scenario_started(&self, name: &str) {
        if let Some(sampler) = &self.sampler {
            sampler.scenario_started(name);
        }
    }

    /// Marks a scenario's end.
    pub(crate) fn scenario_ended(&self, name: &str) {
        if let Some(sampler) = &self.sampler {
            sampler.scenario_ended(name);
        }
    }

    /// Stops the sampling; what results.json keeps, with the model's size.
    pub(crate) async fn finish(self, model_size: ModelSize) -> EngineTelemetry {
        match self.sampler {
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
        }
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
