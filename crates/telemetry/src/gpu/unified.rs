//! Unified memory: the host's memory in use, for GPUs that share it with the CPU.
//!
//! On DGX Spark (GB10) the GPU has no memory of its own: NVML and `nvidia-smi`
//! answer "Not Supported" for memory (a known issue in NVIDIA's DGX Spark
//! notes). There the figure that tells how much a model takes is the host's
//! memory in use, `MemTotal − MemAvailable` from `/proc/meminfo`, reported as
//! [`MemoryKind::UnifiedHost`] and never as VRAM.

use super::{Field, Memory, MemoryKind, Unavailable};

/// Devices whose memory is the host's. Only these get the `/proc/meminfo`
/// figure: on a discrete GPU a missing memory reading stays missing, since the
/// host's memory says nothing about it.
const UNIFIED_MEMORY_GPUS: &[&str] = &["GB10"];

/// Whether a device of this name shares the host's memory.
pub fn is_unified_memory_gpu(name: &str) -> bool {
    UNIFIED_MEMORY_GPUS.iter().any(|model| name.contains(model))
}

/// The two lines of `/proc/meminfo` that unified memory needs, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    pub total_kib: u64,
    pub available_kib: u64,
}

impl HostMemory {
    /// Memory in use, as unified memory.
    pub fn as_unified(self) -> Memory {
        Memory {
            used_mib: self.total_kib.saturating_sub(self.available_kib) as f64 / 1024.0,
            total_mib: Some(self.total_kib as f64 / 1024.0),
            kind: MemoryKind::UnifiedHost,
        }
    }
}

/// `MemTotal` and `MemAvailable` from the text of `/proc/meminfo`.
///
/// `None` when either is missing (kernels before 3.14 have no `MemAvailable`)
/// or is not `NUMBER kB`.
pub fn parse_meminfo(text: &str) -> Option<HostMemory> {
    let mut total_kib = None;
    let mut available_kib = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total_kib,
            "MemAvailable" => &mut available_kib,
            _ => continue,
        };
        let mut words = rest.split_whitespace();
        let (Some(number), Some("kB"), None) = (words.next(), words.next(), words.next()) else {
            return None;
        };
        *slot = Some(number.parse().ok()?);
    }
    Some(HostMemory {
        total_kib: total_kib?,
        available_kib: available_kib?,
    })
}

/// The host's unified memory in use, read now.
pub fn host_unified_memory() -> Result<Memory, String> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("cannot read /proc/meminfo: {e}"))?;
    parse_meminfo(&text)
        .map(HostMemory::as_unified)
        .ok_or_else(|| "/proc/meminfo has no MemTotal and MemAvailable".to_owned())
}

/// Memory for a device whose backend gave none: the host's on a unified-memory
/// GPU, else nothing. Either way the backend's reason is kept, so a report can
/// say why the figure is the host's.
pub(super) fn memory_fallback(
    device_name: &str,
    reason: String,
    unavailable: &mut Vec<Unavailable>,
) -> Option<Memory> {
    if !is_unified_memory_gpu(device_name) {
        unavailable.push(Unavailable {
            field: Field::Memory,
            reason,
        });
        return None;
    }
    match host_unified_memory() {
        Ok(memory) => {
            unavailable.push(Unavailable {
                field: Field::Memory,
                reason: format!("{reason}; unified memory from /proc/meminfo instead"),
            });
            Some(memory)
        }
        Err(meminfo) => {
            unavailable.push(Unavailable {
                field: Field::Memory,
                reason: format!("{reason}; {meminfo}"),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb10_is_unified_and_h100_is_not() {
        assert!(is_unified_memory_gpu("NVIDIA GB10"));
        assert!(!is_unified_memory_gpu("NVIDIA H100 80GB HBM3"));
    }

    #[test]
    fn meminfo_without_mem_available_is_none() {
        assert_eq!(parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\n"), None);
        assert_eq!(
            parse_meminfo("MemTotal: 100 MB\nMemAvailable: 50 kB\n"),
            None
        );
    }
}
