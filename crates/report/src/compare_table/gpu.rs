//! The GPU rows of the comparison (power, temperature, memory and energy per
//! output token of each scenario) and the run's one GPU line: the devices
//! and their driver, or why no GPU could be read.

use spark_results::{GpuInfo, GpuMemoryKind, ScenarioGpu, SuiteResults};

use super::{Better, Format, Row};

/// The GPU line every report states once: `GPU: NVIDIA GB10 · driver
/// 580.95.05 · CUDA 13.0 (nvidia_smi)`, or `GPU: N/A (no NVIDIA driver …)`.
/// `None` for results written before spark-perf read GPUs.
pub fn gpu_line(suite: &SuiteResults) -> Option<String> {
    let info: &GpuInfo = suite.gpu.as_ref()?;
    if let Some(why) = &info.unavailable {
        return Some(format!("GPU: N/A ({why})"));
    }
    let mut parts = vec![if info.devices.is_empty() {
        "unnamed device".to_owned()
    } else {
        info.devices.join(", ")
    }];
    if let Some(driver) = &info.driver_version {
        parts.push(format!("driver {driver}"));
    }
    if let Some(cuda) = &info.cuda_version {
        parts.push(format!("CUDA {cuda}"));
    }
    if let Some(rocm) = &info.rocm_version {
        parts.push(format!("ROCm {rocm}"));
    }
    let backend = info.backend.as_deref().unwrap_or("unknown");
    Some(format!("GPU: {} ({backend})", parts.join(" · ")))
}

/// The GPU figures of scenario `name`, per engine: power and temperature
/// without a winner (they follow the load as much as the engine), memory
/// labelled unified host memory where the GPU shares the host's, and the
/// energy per output token, where lower wins.
pub(super) fn rows(suite: &SuiteResults, name: &str) -> Vec<Row> {
    let scenarios: Vec<Option<&ScenarioGpu>> = suite
        .engines
        .iter()
        .map(|engine| {
            engine
                .telemetry
                .as_ref()
                .and_then(|t| t.gpu.as_ref())
                .and_then(|gpu| gpu.scenario(name))
        })
        .collect();
    let cells = |pick: fn(&ScenarioGpu) -> Option<f64>| -> Vec<Option<f64>> {
        scenarios.iter().map(|s| s.and_then(pick)).collect()
    };
    let memory: Vec<Option<(f64, GpuMemoryKind)>> = scenarios
        .iter()
        .map(|s| s.and_then(|s| s.memory_peak()))
        .collect();
    let unified = memory
        .iter()
        .flatten()
        .any(|(_, kind)| *kind == GpuMemoryKind::UnifiedHost);
    let memory_metric = if unified {
        "GPU memory peak (unified host memory)"
    } else {
        "GPU memory peak (VRAM)"
    };
    vec![
        Row::plain(
            "GPU power mean",
            "W",
            None,
            Format::OneDecimal,
            cells(|s| s.power_mean_w()),
        ),
        Row::plain(
            "GPU power peak",
            "W",
            None,
            Format::OneDecimal,
            cells(|s| s.power_peak_w()),
        ),
        Row::plain(
            "GPU temperature peak",
            "°C",
            None,
            Format::OneDecimal,
            cells(|s| s.temperature_peak_c()),
        ),
        Row::plain(
            memory_metric,
            "",
            None,
            Format::Bytes,
            memory
                .iter()
                .map(|m| m.map(|(mib, _)| mib * 1024.0 * 1024.0))
                .collect(),
        ),
        Row::plain(
            "energy per output token",
            "J/token",
            Some(Better::Lower),
            Format::ThreeDecimals,
            cells(|s| s.joules_per_output_token),
        ),
    ]
}
