//! The GPU and engine-figure rows in every renderer: the run's one GPU line
//! (devices, or N/A with the reason, said once), power, temperature, memory
//! labelled unified host memory, energy per output token, the engine's
//! prefix-cache hit rate, KV-cache and queue peaks, and the warm-cache flag.

mod common;

use spark_report::render::{self, text::TextStyle};
use spark_results::{
    DeviceGpu, EngineGpu, EngineScenarioMetrics, GpuEnergyMethod, GpuInfo, GpuMemoryKind,
    GpuSample, ScenarioGpu, SuiteResults,
};

/// The fixture's first engine on a GB10, its throughput scenario with GPU
/// figures and the engine's own.
fn on_a_gb10() -> SuiteResults {
    let mut suite = common::suite();
    suite.gpu = Some(GpuInfo {
        backend: Some("nvidia_smi".to_owned()),
        devices: vec!["NVIDIA GB10".to_owned()],
        driver_version: Some("580.95.05".to_owned()),
        ..GpuInfo::default()
    });
    let telemetry = suite.engines[0].telemetry.as_mut().expect("telemetry");
    telemetry.gpu = Some(EngineGpu {
        interval_ms: 500,
        scenarios: vec![ScenarioGpu {
            name: "throughput".to_owned(),
            start_s: 1.0,
            end_s: 3.0,
            devices: vec![DeviceGpu {
                device_idx: 0,
                name: "NVIDIA GB10".to_owned(),
                n_samples: 4,
                power_mean_w: Some(41.5),
                power_peak_w: Some(55.0),
                temperature_peak_c: Some(63.0),
                utilization_mean_pct: Some(97.0),
                memory_peak_mib: Some(98_304.0),
                memory_total_mib: Some(124_000.0),
                memory_kind: Some(GpuMemoryKind::UnifiedHost),
                process_memory_peak_mib: None,
                energy_j: Some(83.0),
                energy_method: Some(GpuEnergyMethod::IntegratedPower),
            }],
            energy_j: Some(83.0),
            energy_method: Some(GpuEnergyMethod::IntegratedPower),
            joules_per_output_token: Some(0.25),
            output_tokens_per_joule: Some(4.0),
        }],
        samples: [(1.0, 30.0), (2.0, 55.0), (3.0, 40.0)]
            .iter()
            .map(|&(t_s, power_w)| GpuSample {
                t_s,
                power_w: Some(power_w),
                ..GpuSample::default()
            })
            .collect(),
        ..EngineGpu::default()
    });
    telemetry.engine_metrics = vec![EngineScenarioMetrics {
        name: "throughput".to_owned(),
        n_samples: 2,
        prefix_cache_hit_rate: Some(0.125),
        prefix_cache_source: Some(
            "vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total".to_owned(),
        ),
        warm_prefix_cache: true,
        kv_cache_usage_peak: Some(0.42),
        queued_requests_peak: Some(3.0),
        engine_ttft_mean_ms: Some(20.0),
        engine_itl_mean_ms: Some(5.0),
    }];
    suite
}

fn renders(suite: &SuiteResults) -> [String; 3] {
    [
        render::text::render(suite, TextStyle { color: false }),
        render::markdown::render(suite),
        render::html::render(suite),
    ]
}

#[test]
fn every_renderer_shows_the_gpu_and_the_engines_figures() {
    let suite = on_a_gb10();
    for text in renders(&suite) {
        for expected in [
            // (Markdown escapes the backend's underscore.)
            "GPU: NVIDIA GB10 · driver 580.95.05 (nvidia",
            "GPU power mean (W)",
            "41.5",
            "GPU temperature peak (°C)",
            "GPU memory peak (unified host memory)",
            "96.0 GiB",
            "energy per output token (J/token)",
            "0.250",
            "prefix-cache hit rate (%)",
            "12.5",
            "KV-cache usage peak (%)",
            "42.0",
            "queued requests peak",
            "fp8-moe / throughput: warm prefix cache: the engine served 12.5 %",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        assert!(
            !text.contains("VRAM"),
            "unified memory is never VRAM: {text}"
        );
    }
    let [.., html] = renders(&suite);
    assert!(html.contains("fp8-moe: GPU power"), "the power chart");
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    assert_eq!(json["gpu"]["devices"][0], "NVIDIA GB10");
    let scenario = &json["engines"][0]["telemetry"]["gpu"]["scenarios"][0];
    assert_eq!(scenario["devices"][0]["memory_kind"], "unified_host");
    assert_eq!(scenario["joules_per_output_token"], 0.25);
    let figures = &json["engines"][0]["telemetry"]["engine_metrics"][0];
    assert_eq!(figures["warm_prefix_cache"], true);
}

#[test]
fn without_a_gpu_the_reports_say_so_once() {
    let mut suite = common::suite();
    suite.gpu = Some(GpuInfo {
        unavailable: Some(
            "no NVIDIA driver (libnvidia-ml.so.1: not found); nvidia-smi: not found; no AMD tools (amd-smi: not found; rocm-smi: not found)"
                .to_owned(),
        ),
        ..GpuInfo::default()
    });
    for text in renders(&suite) {
        assert_eq!(
            text.matches("GPU: N/A (no NVIDIA driver").count(),
            1,
            "{text}"
        );
        assert!(!text.contains("GPU power"), "no GPU rows: {text}");
    }
    // Results written before GPUs were read have no GPU line at all.
    for text in renders(&common::suite()) {
        assert!(!text.contains("GPU:"), "{text}");
    }
}
