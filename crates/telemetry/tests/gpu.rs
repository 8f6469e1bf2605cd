//! GPU telemetry without a GPU: the parsers on recorded tool outputs, detection
//! on this machine, and the sampler driven by stand-in tools that print those outputs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spark_telemetry::energy::EnergyMethod;
use spark_telemetry::gpu::amd::{
    parse_amd_smi_metric, parse_amd_smi_static, parse_rocm_smi, parse_rocm_smi_driver,
};
use spark_telemetry::gpu::nvidia_smi::parse_query_csv;
use spark_telemetry::gpu::unified::parse_meminfo;
use spark_telemetry::gpu::{
    Backend, DetectOptions, Field, GpuStatus, MemoryKind, detect, detect_with,
};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap()
}

#[test]
fn nvidia_smi_h100_rows() {
    let rows = parse_query_csv(&fixture("nvidia-smi-h100.csv")).unwrap();
    assert_eq!(rows.len(), 2);
    let busy = &rows[0];
    assert_eq!(busy.driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(busy.reading.index, 0);
    assert_eq!(busy.reading.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(busy.reading.power_w, Ok(312.45));
    assert_eq!(busy.reading.temperature_c, Ok(61.0));
    assert_eq!(busy.reading.utilization_pct, Ok(97.0));
    assert_eq!(busy.reading.memory_used_mib, Ok(74325.0));
    assert_eq!(busy.reading.memory_total_mib, Ok(81559.0));
    assert_eq!(rows[1].reading.index, 1);
    assert_eq!(rows[1].reading.memory_used_mib, Ok(1.0));
}

#[test]
fn nvidia_smi_gb10_memory_is_a_reason() {
    let rows = parse_query_csv(&fixture("nvidia-smi-gb10.csv")).unwrap();
    let gb10 = &rows[0].reading;
    assert_eq!(gb10.name.as_deref(), Some("NVIDIA GB10"));
    assert_eq!(gb10.power_w, Ok(11.47));
    assert_eq!(
        gb10.memory_used_mib,
        Err("nvidia-smi: [Not Supported]".to_owned())
    );
    assert_eq!(gb10.memory_total_mib, Err("nvidia-smi: [N/A]".to_owned()));
}

#[test]
fn nvidia_smi_other_output_is_refused() {
    let err = parse_query_csv("NVIDIA-SMI has failed because it couldn't communicate").unwrap_err();
    assert!(err.contains("expected 7 columns"), "{err}");
}

#[test]
fn meminfo_unified_memory_in_use() {
    let host = parse_meminfo(&fixture("proc-meminfo.txt")).unwrap();
    assert_eq!(host.total_kib, 125_513_456);
    assert_eq!(host.available_kib, 47_226_896);
    let memory = host.as_unified();
    assert_eq!(memory.kind, MemoryKind::UnifiedHost);
    assert_eq!(memory.used_mib, (125_513_456 - 47_226_896) as f64 / 1024.0);
    assert_eq!(memory.total_mib, Some(125_513_456.0 / 1024.0));
}

#[test]
fn amd_smi_metric_with_gpu_data() {
    let gpus = parse_amd_smi_metric(&fixture("amd-smi-metric-gpu-data.json")).unwrap();
    assert_eq!(gpus.len(), 2);
    let mi300 = &gpus[0];
    assert_eq!(mi300.index, 0);
    assert_eq!(mi300.power_w, Ok(239.0));
    // No edge sensor on MI300: the hotspot.
    assert_eq!(mi300.temperature_c, Ok(58.0));
    assert_eq!(mi300.utilization_pct, Ok(100.0));
    assert_eq!(mi300.memory_used_mib, Ok(183_011.0));
    assert_eq!(mi300.memory_total_mib, Ok(196_592.0));
    assert!(mi300.energy_counter_mj.is_err());
    assert_eq!(gpus[1].index, 1);
    assert_eq!(gpus[1].power_w, Ok(141.0));
}

#[test]
fn amd_smi_metric_as_a_list_with_visible_vram() {
    let gpus = parse_amd_smi_metric(&fixture("amd-smi-metric-list.json")).unwrap();
    assert_eq!(gpus.len(), 1);
    let radeon = &gpus[0];
    assert_eq!(radeon.temperature_c, Ok(63.0), "edge first");
    assert_eq!(radeon.utilization_pct, Ok(37.0));
    assert_eq!(radeon.power_w, Ok(212.0));
    // used_vram is "N/A" in this release: the visible VRAM instead.
    assert_eq!(radeon.memory_used_mib, Ok(21_342.0));
    assert_eq!(radeon.memory_total_mib, Ok(24_560.0));
}

#[test]
fn amd_smi_static_names_and_driver() {
    let (names, driver) = parse_amd_smi_static(&fixture("amd-smi-static.json")).unwrap();
    assert_eq!(names, ["AMD Instinct MI300X", "AMD Instinct MI300X"]);
    assert_eq!(driver.as_deref(), Some("6.10.5"));
}

#[test]
fn rocm_smi_cards() {
    let cards = parse_rocm_smi(&fixture("rocm-smi.json")).unwrap();
    assert_eq!(cards.len(), 2, "the system key is not a card");
    let radeon = &cards[0];
    assert_eq!(radeon.name.as_deref(), Some("Navi 31 [Radeon RX 7900 XTX]"));
    assert_eq!(radeon.power_w, Ok(71.0));
    assert_eq!(radeon.temperature_c, Ok(45.0));
    assert_eq!(radeon.utilization_pct, Ok(34.0));
    assert_eq!(radeon.memory_used_mib, Ok(8192.0));
    assert_eq!(radeon.memory_total_mib, Ok(25_753_026_560.0 / 1048576.0));
    let mi300 = &cards[1];
    assert_eq!(mi300.index, 1);
    assert_eq!(mi300.power_w, Ok(550.0), "the newer power key");
    assert_eq!(mi300.temperature_c, Ok(61.0), "junction where edge is N/A");
}

#[test]
fn rocm_smi_driver_version() {
    let text = fixture("rocm-smi.json");
    assert_eq!(parse_rocm_smi_driver(&text).as_deref(), Some("6.10.5"));
    assert_eq!(parse_rocm_smi_driver(r#"{"card0": {}}"#), None);
}

#[test]
fn rocm_smi_is_used_where_amd_smi_is_absent() {
    let dir = scratch_dir("rocm");
    let json = fixture_path("rocm-smi.json");
    stand_in_tool(&dir, "rocm-smi", &format!("cat '{}'", json.display()));
    let mut sampler = detect_with(&DetectOptions {
        nvml_library: no_nvml(),
        tool_dirs: Some(vec![dir.to_path_buf()]),
        interval: Some(Duration::from_millis(50)),
    });
    let GpuStatus::Available { backend, .. } = sampler.status().clone() else {
        panic!("{:?}", sampler.status());
    };
    assert_eq!(backend, Backend::RocmSmi);
    sampler.start(&[]);
    std::thread::sleep(Duration::from_millis(100));
    let report = sampler.stop();
    assert_eq!(report.devices.len(), 2);
    assert_eq!(report.devices[1].max_power_w, Some(550.0));
}

#[test]
fn amd_outputs_that_are_not_json_are_errors() {
    assert!(parse_amd_smi_metric("ERROR: amdgpu driver not loaded").is_err());
    assert!(parse_rocm_smi("cat: /sys/module/amdgpu/initstate: No such file").is_err());
}

/// A directory of its own for one test, emptied first and removed when the
/// test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("spark-telemetry-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// An executable `name` in `dir` running the shell `script`.
fn stand_in_tool(dir: &Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn no_nvml() -> Option<std::ffi::OsString> {
    Some("/nonexistent/libnvidia-ml.so.1".into())
}

#[test]
fn nothing_found_says_why_and_samples_nothing() {
    let empty = scratch_dir("empty");
    let mut sampler = detect_with(&DetectOptions {
        nvml_library: no_nvml(),
        tool_dirs: Some(vec![empty.to_path_buf()]),
        interval: None,
    });
    let GpuStatus::Unavailable { reason } = sampler.status().clone() else {
        panic!("a GPU in an empty directory: {:?}", sampler.status());
    };
    assert!(reason.contains("no NVIDIA driver"), "{reason}");
    assert!(reason.contains("nvidia-smi: not found"), "{reason}");
    assert!(reason.contains("no AMD tools"), "{reason}");
    sampler.start(&[1]);
    let report = sampler.stop();
    assert!(report.devices.is_empty());
    assert_eq!(report.status, GpuStatus::Unavailable { reason });
    assert_eq!(report.total_energy_j(), None);
}

#[test]
fn detect_on_this_machine_does_not_fail() {
    let mut sampler = detect();
    match sampler.status() {
        GpuStatus::Unavailable { reason } => {
            assert!(reason.contains("no NVIDIA driver"), "{reason}");
        }
        GpuStatus::Available { backend, .. } => eprintln!("this machine has a GPU: {backend:?}"),
    }
    sampler.start(&[std::process::id()]);
    let report = sampler.stop();
    if let GpuStatus::Unavailable { .. } = report.status {
        assert!(report.devices.is_empty());
    }
}

#[test]
fn gb10_through_nvidia_smi_reports_unified_memory() {
    let dir = scratch_dir("gb10");
    let csv = fixture_path("nvidia-smi-gb10.csv");
    stand_in_tool(&dir, "nvidia-smi", &format!("cat '{}'", csv.display()));
    let mut sampler = detect_with(&DetectOptions {
        nvml_library: no_nvml(),
        tool_dirs: Some(vec![dir.to_path_buf()]),
        interval: Some(Duration::from_millis(50)),
    });
    let GpuStatus::Available {
        backend,
        provenance,
    } = sampler.status().clone()
    else {
        panic!("{:?}", sampler.status());
    };
    assert_eq!(backend, Backend::NvidiaSmi);
    assert_eq!(provenance.devices, ["NVIDIA GB10"]);
    assert_eq!(provenance.driver_version.as_deref(), Some("580.95.05"));

    sampler.start(&[]);
    std::thread::sleep(Duration::from_millis(300));
    let report = sampler.stop();
    assert_eq!(report.n_failed_reads, 0, "{:?}", report.last_read_error);
    let gb10 = &report.devices[0];
    assert!(gb10.n_samples >= 2, "{}", gb10.n_samples);
    let memory = gb10.max_memory.expect("unified memory");
    assert_eq!(memory.kind, MemoryKind::UnifiedHost);
    assert!(memory.used_mib > 0.0);
    let reason = gb10
        .unavailable
        .iter()
        .find(|u| u.field == Field::Memory)
        .map(|u| u.reason.as_str());
    assert_eq!(
        reason,
        Some("nvidia-smi: [Not Supported]; unified memory from /proc/meminfo instead")
    );
    assert_eq!(gb10.mean_power_w, Some(11.47));
    let energy = gb10.energy.expect("integrated power");
    assert_eq!(energy.method, EnergyMethod::IntegratedPower);
    let window_s = gb10.series.last().unwrap().t_s - gb10.series[0].t_s;
    assert!((energy.energy_j - 11.47 * window_s).abs() < 1e-9);

    // The sampler can run again for the next scenario.
    sampler.start(&[]);
    assert!(!sampler.stop().devices.is_empty());
}

#[test]
fn h100_through_nvidia_smi_reports_vram() {
    let dir = scratch_dir("h100");
    let csv = fixture_path("nvidia-smi-h100.csv");
    stand_in_tool(&dir, "nvidia-smi", &format!("cat '{}'", csv.display()));
    let mut sampler = detect_with(&DetectOptions {
        nvml_library: no_nvml(),
        tool_dirs: Some(vec![dir.to_path_buf()]),
        interval: Some(Duration::from_millis(50)),
    });
    sampler.start(&[]);
    std::thread::sleep(Duration::from_millis(100));
    let report = sampler.stop();
    assert_eq!(report.devices.len(), 2);
    let memory = report.devices[0].max_memory.unwrap();
    assert_eq!(memory.kind, MemoryKind::Vram);
    assert_eq!(memory.used_mib, 74325.0);
}

#[test]
fn amd_smi_is_used_when_there_is_no_nvidia_tool() {
    let dir = scratch_dir("amd");
    let metric = fixture_path("amd-smi-metric-gpu-data.json");
    let static_info = fixture_path("amd-smi-static.json");
    stand_in_tool(
        &dir,
        "amd-smi",
        &format!(
            "case \"$1\" in metric) cat '{}';; static) cat '{}';; *) exit 2;; esac",
            metric.display(),
            static_info.display()
        ),
    );
    let mut sampler = detect_with(&DetectOptions {
        nvml_library: no_nvml(),
        tool_dirs: Some(vec![dir.to_path_buf()]),
        interval: Some(Duration::from_millis(50)),
    });
    let GpuStatus::Available {
        backend,
        provenance,
    } = sampler.status().clone()
    else {
        panic!("{:?}", sampler.status());
    };
    assert_eq!(backend, Backend::AmdSmi);
    assert_eq!(provenance.driver_version.as_deref(), Some("6.10.5"));
    sampler.start(&[]);
    std::thread::sleep(Duration::from_millis(100));
    let report = sampler.stop();
    assert_eq!(report.devices.len(), 2);
    assert_eq!(report.devices[0].name, "AMD Instinct MI300X");
    assert_eq!(report.devices[0].max_power_w, Some(239.0));
    assert_eq!(report.devices[0].max_memory.unwrap().kind, MemoryKind::Vram);
}

#[test]
fn a_failing_tool_is_counted_not_fatal() {
    let dir = scratch_dir("flaky");
    let csv = fixture_path("nvidia-smi-h100.csv");
    let marker = dir.join("answered-once");
    // Answers the detection, then fails every later call.
    stand_in_tool(
        &dir,
        "nvidia-smi",
        &format!(
            "if [ -e '{m}' ]; then echo 'GPU lost' >&2; exit 15; fi; touch '{m}'; cat '{c}'",
            m = marker.display(),
            c = csv.display()
        ),
    );
    let mut sampler = detect_with(&DetectOptions {
        nvml_library: no_nvml(),
        tool_dirs: Some(vec![dir.to_path_buf()]),
        interval: Some(Duration::from_millis(20)),
    });
    sampler.start(&[]);
    std::thread::sleep(Duration::from_millis(60));
    let report = sampler.stop();
    assert!(report.devices.is_empty());
    assert!(report.n_failed_reads >= 2);
    let error = report.last_read_error.unwrap();
    assert!(error.contains("GPU lost"), "{error}");
}
