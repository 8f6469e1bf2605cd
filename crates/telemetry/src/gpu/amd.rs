//! AMD GPUs through `amd-smi metric --json`, or `rocm-smi --json` where amd-smi is absent.
//!
//! amd-smi's JSON changed across ROCm releases: before ROCm 6.4 it is a list of
//! GPU objects, since then `{"gpu_data": [...]}`; a value is `{"value": 42,
//! "unit": "W"}`, a bare number in some releases, or `"N/A"`. Memory moved from
//! `used_visible_vram`/`total_visible_vram` to `used_vram`/`total_vram`. The
//! parsers accept each of these. rocm-smi prints one flat object per card
//! (`"card0": {"Average Graphics Package Power (W)": "71.0", ...}`) whose key
//! for power differs by GPU and release.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::{Probe, Provenance, Reading, TOOL_TIMEOUT, ToolReading, command};

/// The arguments of the amd-smi call whose output [`parse_amd_smi_metric`] reads.
pub const AMD_SMI_METRIC_ARGS: &[&str] = &[
    "metric",
    "--power",
    "--temperature",
    "--usage",
    "--mem-usage",
    "--json",
];

/// The arguments of the amd-smi call whose output [`parse_amd_smi_static`] reads.
pub const AMD_SMI_STATIC_ARGS: &[&str] = &["static", "--asic", "--driver", "--json"];

/// The arguments of the rocm-smi call whose output [`parse_rocm_smi`] reads.
pub const ROCM_SMI_ARGS: &[&str] = &[
    "--showpower",
    "--showtemp",
    "--showmeminfo",
    "vram",
    "--showuse",
    "--json",
];

/// The GPU objects of amd-smi's output, whichever release printed it.
fn gpu_objects(text: &str, what: &str) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("amd-smi {what}: not JSON: {e}"))?;
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut object) => match object.remove("gpu_data") {
            Some(Value::Array(list)) => list,
            _ => return Err(format!("amd-smi {what}: no gpu_data list")),
        },
        _ => return Err(format!("amd-smi {what}: neither a list nor an object")),
    };
    Ok(list
        .into_iter()
        .filter_map(|gpu| match gpu {
            Value::Object(object) => Some(object),
            _ => None,
        })
        .collect())
}

fn gpu_index(gpu: &Map<String, Value>, position: usize) -> u32 {
    gpu.get("gpu")
        .and_then(Value::as_u64)
        .and_then(|idx| u32::try_from(idx).ok())
        .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX))
}

/// A number and its unit from an amd-smi value, or why there is none.
fn amd_value(value: Option<&Value>, name: &str) -> Result<(f64, Option<String>), String> {
    match value {
        None => Err(format!("amd-smi: no {name}")),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|n| (n, None))
            .ok_or_else(|| format!("amd-smi: {name}: {n}")),
        Some(Value::Object(object)) => {
            let (number, _) = amd_value(object.get("value"), name)?;
            let unit = object
                .get("unit")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok((number, unit))
        }
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(|n| (n, None))
            .map_err(|_| format!("amd-smi: {name}: {s}")),
        Some(other) => Err(format!("amd-smi: {name}: {other}")),
    }
}

/// The first of `keys` in `section` that has a number.
fn first_value(
    gpu: &Map<String, Value>,
    section: &str,
    keys: &[&str],
) -> Result<(f64, Option<String>), String> {
    let section_value = gpu
        .get(section)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("amd-smi: no {section}"))?;
    let mut first_error = None;
    for key in keys {
        match amd_value(section_value.get(*key), key) {
            Ok(found) => return Ok(found),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("amd-smi: no {section}")))
}

/// MiB from a number in `unit`; amd-smi says "MB" for MiB (it divides by 1024²).
fn to_mib((number, unit): (f64, Option<String>)) -> f64 {
    match unit.as_deref() {
        Some("B") => number / (1024.0 * 1024.0),
        Some("KB" | "KiB") => number / 1024.0,
        Some("GB" | "GiB") => number * 1024.0,
        _ => number,
    }
}

fn to_watts((number, unit): (f64, Option<String>)) -> f64 {
    match unit.as_deref() {
        Some("mW") => number / 1000.0,
        Some("uW" | "µW") => number / 1e6,
        _ => number,
    }
}

fn to_millijoules((number, unit): (f64, Option<String>)) -> u64 {
    let mj = match unit.as_deref() {
        Some("mJ") => number,
        Some("uJ" | "µJ") => number / 1000.0,
        _ => number * 1000.0,
    };
    mj.max(0.0).round() as u64
}

/// The devices of `amd-smi metric --json`, in the order printed.
pub fn parse_amd_smi_metric(text: &str) -> Result<Vec<ToolReading>, String> {
    let gpus = gpu_objects(text, "metric")?;
    Ok(gpus
        .iter()
        .enumerate()
        .map(|(position, gpu)| ToolReading {
            index: gpu_index(gpu, position),
            name: None,
            power_w: first_value(
                gpu,
                "power",
                &[
                    "socket_power",
                    "current_socket_power",
                    "average_socket_power",
                ],
            )
            .map(to_watts),
            // The edge sensor where there is one (Radeon), else the hotspot
            // (junction; MI300 has no edge sensor).
            temperature_c: first_value(gpu, "temperature", &["edge", "hotspot"]).map(|v| v.0),
            utilization_pct: first_value(gpu, "usage", &["gfx_activity"]).map(|v| v.0),
            memory_used_mib: first_value(gpu, "mem_usage", &["used_vram", "used_visible_vram"])
                .map(to_mib),
            memory_total_mib: first_value(gpu, "mem_usage", &["total_vram", "total_visible_vram"])
                .map(to_mib),
            energy_counter_mj: first_value(gpu, "energy", &["total_energy_consumption"])
                .map(to_millijoules),
        })
        .collect())
}

/// Device names (`asic.market_name`) and the driver version from `amd-smi static --json`.
pub fn parse_amd_smi_static(text: &str) -> Result<(Vec<String>, Option<String>), String> {
    let gpus = gpu_objects(text, "static")?;
    let names = gpus
        .iter()
        .map(|gpu| {
            gpu.get("asic")
                .and_then(|asic| asic.get("market_name"))
                .and_then(Value::as_str)
                .unwrap_or("AMD GPU")
                .to_owned()
        })
        .collect();
    let driver = gpus.iter().find_map(|gpu| {
        gpu.get("driver")
            .and_then(|driver| driver.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    Ok((names, driver))
}

/// One rocm-smi value: a number, or a string holding one.
fn rocm_value(card: &Map<String, Value>, keys: &[&str]) -> Result<f64, String> {
    for key in keys {
        let number = match card.get(*key) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        if let Some(number) = number {
            return Ok(number);
        }
    }
    Err(format!("rocm-smi: no {}", keys[0]))
}

/// The cards of `rocm-smi --showpower --showtemp --showmeminfo vram --showuse --json`.
///
/// Keys other than `cardN` (rocm-smi adds `"system"` with some flags) are skipped.
pub fn parse_rocm_smi(text: &str) -> Result<Vec<ToolReading>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("rocm-smi: not JSON: {e}"))?;
    let cards = value
        .as_object()
        .ok_or_else(|| "rocm-smi: not an object".to_owned())?;
    let mut readings: Vec<ToolReading> = cards
        .iter()
        .filter_map(|(key, card)| {
            let index = key.strip_prefix("card")?.parse().ok()?;
            Some((index, card.as_object()?))
        })
        .map(|(index, card)| ToolReading {
            index,
            name: ["Card Series", "Card series", "Card model", "Device Name"]
                .iter()
                .find_map(|key| card.get(*key).and_then(Value::as_str))
                .map(str::to_owned),
            power_w: rocm_value(
                card,
                &[
                    "Average Graphics Package Power (W)",
                    "Current Socket Graphics Package Power (W)",
                ],
            ),
            temperature_c: rocm_value(
                card,
                &[
                    "Temperature (Sensor edge) (C)",
                    "Temperature (Sensor junction) (C)",
                ],
            ),
            utilization_pct: rocm_value(card, &["GPU use (%)"]),
            memory_used_mib: rocm_value(card, &["VRAM Total Used Memory (B)"])
                .map(|b| b / (1024.0 * 1024.0)),
            memory_total_mib: rocm_value(card, &["VRAM Total Memory (B)"])
                .map(|b| b / (1024.0 * 1024.0)),
            energy_counter_mj: Err("rocm-smi: energy not queried".to_owned()),
        })
        .collect();
    readings.sort_by_key(|r| r.index);
    Ok(readings)
}

/// The driver version rocm-smi prints under `"system"`, where it does.
pub fn parse_rocm_smi_driver(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    value
        .get("system")?
        .get("Driver version")?
        .as_str()
        .map(str::to_owned)
}

/// `amd-smi metric` run at every reading.
pub(super) struct AmdSmiProbe {
    program: PathBuf,
    names: Vec<String>,
}

impl AmdSmiProbe {
    pub(super) fn open(dirs: &[PathBuf]) -> Result<(Self, Provenance), String> {
        let program =
            command::find_tool("amd-smi", dirs).ok_or_else(|| "amd-smi: not found".to_owned())?;
        let metric =
            parse_amd_smi_metric(&command::run(&program, AMD_SMI_METRIC_ARGS, TOOL_TIMEOUT)?)?;
        if metric.is_empty() {
            return Err("amd-smi: lists no GPU".to_owned());
        }
        let (names, driver_version) = command::run(&program, AMD_SMI_STATIC_ARGS, TOOL_TIMEOUT)
            .and_then(|text| parse_amd_smi_static(&text))
            .unwrap_or_default();
        let provenance = Provenance {
            devices: names.clone(),
            driver_version,
            ..Provenance::default()
        };
        Ok((Self { program, names }, provenance))
    }
}

impl Probe for AmdSmiProbe {
    fn read(&mut self, _pids: &[u32]) -> Result<Vec<Reading>, String> {
        let text = command::run(&self.program, AMD_SMI_METRIC_ARGS, TOOL_TIMEOUT)?;
        Ok(parse_amd_smi_metric(&text)?
            .into_iter()
            .map(|mut reading| {
                reading.name = self.names.get(reading.index as usize).cloned();
                reading.into_reading("AMD GPU")
            })
            .collect())
    }
}

/// `rocm-smi` run at every reading.
pub(super) struct RocmSmiProbe {
    program: PathBuf,
}

impl RocmSmiProbe {
    pub(super) fn open(dirs: &[PathBuf]) -> Result<(Self, Provenance), String> {
        let program =
            command::find_tool("rocm-smi", dirs).ok_or_else(|| "rocm-smi: not found".to_owned())?;
        let text = command::run(&program, ROCM_SMI_ARGS, TOOL_TIMEOUT)?;
        let cards = parse_rocm_smi(&text)?;
        if cards.is_empty() {
            return Err("rocm-smi: lists no GPU".to_owned());
        }
        let provenance = Provenance {
            devices: cards
                .iter()
                .map(|c| c.name.clone().unwrap_or_else(|| "AMD GPU".to_owned()))
                .collect(),
            driver_version: parse_rocm_smi_driver(&text),
            ..Provenance::default()
        };
        Ok((Self { program }, provenance))
    }
}

impl Probe for RocmSmiProbe {
    fn read(&mut self, _pids: &[u32]) -> Result<Vec<Reading>, String> {
        let text = command::run(&self.program, ROCM_SMI_ARGS, TOOL_TIMEOUT)?;
        Ok(parse_rocm_smi(&text)?
            .into_iter()
            .map(|reading| reading.into_reading("AMD GPU"))
            .collect())
    }
}
