//! `nvidia-smi --query-gpu`: the NVIDIA fallback where NVML cannot be loaded but the tool runs.
//!
//! The query asks for CSV without header and units, one line per GPU:
//! `name, driver_version, power.draw, temperature.gpu, utilization.gpu,
//! memory.used, memory.total`. A value the GPU cannot give is `[N/A]` or
//! `[Not Supported]` (GB10's memory); such a field becomes its reason.

use std::path::{Path, PathBuf};

use super::{Field, Probe, Provenance, Reading, TOOL_TIMEOUT, ToolReading, Unavailable, command};

/// The arguments of the query whose output [`parse_query_csv`] reads.
pub const QUERY_ARGS: &[&str] = &[
    "--query-gpu=name,driver_version,power.draw,temperature.gpu,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
];

const N_COLUMNS: usize = 7;

/// One GPU's line of the query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRow {
    pub driver_version: Option<String>,
    pub reading: ToolReading,
}

/// The rows of the query's output, in device order.
///
/// An error when a line does not have the seven columns asked for, since
/// the output is then not the query's (an older `nvidia-smi` or a message).
pub fn parse_query_csv(text: &str) -> Result<Vec<QueryRow>, String> {
    let mut rows = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let columns: Vec<&str> = line.split(',').map(str::trim).collect();
        let [name, driver, power, temperature, utilization, used, total] = columns[..] else {
            return Err(format!(
                "nvidia-smi: expected {N_COLUMNS} columns, got {}: {line}",
                columns.len()
            ));
        };
        let index = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        rows.push(QueryRow {
            driver_version: text_value(driver),
            reading: ToolReading {
                index,
                name: text_value(name),
                power_w: number(power),
                temperature_c: number(temperature),
                utilization_pct: number(utilization),
                memory_used_mib: number(used),
                memory_total_mib: number(total),
                energy_counter_mj: Err("nvidia-smi: not queried".to_owned()),
            },
        });
    }
    Ok(rows)
}

fn text_value(value: &str) -> Option<String> {
    (!value.is_empty() && !value.starts_with('[')).then(|| value.to_owned())
}

/// A number, or the tool's reason for none (`[N/A]`, `[Not Supported]`).
fn number(value: &str) -> Result<f64, String> {
    if value.starts_with('[') || value.eq_ignore_ascii_case("N/A") {
        return Err(format!("nvidia-smi: {value}"));
    }
    value
        .parse()
        .map_err(|_| format!("nvidia-smi: not a number: {value}"))
}

/// `nvidia-smi` run at every reading.
pub(super) struct NvidiaSmiProbe {
    program: PathBuf,
}

impl NvidiaSmiProbe {
    /// The probe when `nvidia-smi` is found and its query lists a GPU.
    pub(super) fn open(dirs: &[PathBuf]) -> Result<(Self, Provenance), String> {
        let program = command::find_tool("nvidia-smi", dirs)
            .ok_or_else(|| "nvidia-smi: not found".to_owned())?;
        let rows = query(&program)?;
        if rows.is_empty() {
            return Err("nvidia-smi: lists no GPU".to_owned());
        }
        let provenance = Provenance {
            devices: rows
                .iter()
                .map(|r| r.reading.name.clone().unwrap_or_default())
                .collect(),
            driver_version: rows.iter().find_map(|r| r.driver_version.clone()),
            ..Provenance::default()
        };
        Ok((Self { program }, provenance))
    }
}

fn query(program: &Path) -> Result<Vec<QueryRow>, String> {
    parse_query_csv(&command::run(program, QUERY_ARGS, TOOL_TIMEOUT)?)
}

impl Probe for NvidiaSmiProbe {
    fn read(&mut self, pids: &[u32]) -> Result<Vec<Reading>, String> {
        let mut readings: Vec<Reading> = query(&self.program)?
            .into_iter()
            .map(|row| row.reading.into_reading("NVIDIA GPU"))
            .collect();
        if !pids.is_empty() {
            // The query has no per-process memory; NVML is where that comes from.
            for reading in &mut readings {
                reading.unavailable.push(Unavailable {
                    field: Field::ProcessMemory,
                    reason: "nvidia-smi: per-process memory needs NVML".to_owned(),
                });
            }
        }
        Ok(readings)
    }
}
