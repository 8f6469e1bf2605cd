//! The HostConfig keys beyond the basics: process and CPU limits (`pids_limit`,
//! `cpuset`, `cpu_shares`, `cpu_period`, `cpu_quota`, `cpu_rt_*`,
//! `cpu_count`, `cpu_percent`), memory (`mem_reservation`, `memswap_limit`,
//! `mem_swappiness`), the OOM killer (`oom_kill_disable`, `oom_score_adj`),
//! namespaces (`uts`, `userns_mode`), DNS (`dns_opt`, `dns_search`),
//! `storage_opt`, `device_cgroup_rules` and `mac_address`. Each goes to the
//! Docker field of the same meaning (create_body.rs).

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::super::locate::ypath;
use super::super::scalar_text;
use super::super::units::{parse_bytes, parse_duration};
use super::keys::{Problems, as_bool, key_value_map, string_list};

/// The values, as the Engine API takes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HostSettings {
    pub(crate) pids_limit: Option<i64>,
    pub(crate) cpuset: Option<String>,
    pub(crate) cpu_shares: Option<i64>,
    /// Microseconds, as `cpu_quota`, `cpu_rt_period` and `cpu_rt_runtime`.
    pub(crate) cpu_period: Option<i64>,
    pub(crate) cpu_quota: Option<i64>,
    pub(crate) cpu_rt_period: Option<i64>,
    pub(crate) cpu_rt_runtime: Option<i64>,
    pub(crate) cpu_count: Option<i64>,
    pub(crate) cpu_percent: Option<i64>,
    pub(crate) mem_reservation: Option<i64>,
    /// -1: unlimited swap.
    pub(crate) memswap_limit: Option<i64>,
    pub(crate) mem_swappiness: Option<i64>,
    pub(crate) oom_kill_disable: Option<bool>,
    pub(crate) oom_score_adj: Option<i64>,
    pub(crate) uts: Option<String>,
    pub(crate) userns_mode: Option<String>,
    pub(crate) dns_opt: Vec<String>,
    pub(crate) dns_search: Vec<String>,
    pub(crate) storage_opt: BTreeMap<String, String>,
    pub(crate) device_cgroup_rules: Vec<String>,
    pub(crate) mac_address: Option<String>,
}

pub(super) fn parse_host(def: &Mapping, p: &mut Problems<'_>) -> HostSettings {
    let get = |key: &str| def.get(key);
    let text = |key: &str| get(key).and_then(scalar_text);
    // An integer in `range`, else an error naming the key.
    let int = |p: &mut Problems<'_>, key: &str, range: std::ops::RangeInclusive<i64>| {
        let written = text(key)?;
        match written.parse::<i64>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                p.error(
                    ypath![key],
                    format!(
                        "`{key}` must be a whole number from {} to {}, not `{written}`",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    };
    // Microseconds: a number, or a duration (`400ms`).
    let micros = |p: &mut Problems<'_>, key: &str| {
        let written = text(key)?;
        let parsed =
            written.parse::<i64>().ok().filter(|n| *n >= 0).or_else(|| {
                parse_duration(&written).and_then(|d| i64::try_from(d.as_micros()).ok())
            });
        if parsed.is_none() {
            p.error(
                ypath![key],
                format!("`{key}` must be microseconds or a duration, not `{written}`"),
            );
        }
        parsed
    };
    let size = |p: &mut Problems<'_>, key: &str, allow_unlimited: bool| {
        let written = text(key)?;
        if allow_unlimited && written == "-1" {
            return Some(-1);
        }
        let bytes = parse_bytes(&written);
        if bytes.is_none() {
            p.error(ypath![key], format!("`{written}` is not a size"))
                .set_hint("write e.g. `16gb`, `512m` or a number of bytes");
        }
        bytes
    };
    let oom_kill_disable = get("oom_kill_disable").and_then(|v| {
        let b = as_bool(v);
        if b.is_none() {
            p.error(
                ypath!["oom_kill_disable"],
                "`oom_kill_disable` must be true or false",
            );
        }
        b
    });
    let mac_address = text("mac_address");
    if let Some(mac) = &mac_address {
        let parts: Vec<&str> = mac.split(':').collect();
        let valid = parts.len() == 6
            && parts
                .iter()
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid {
            p.error(
                ypath!["mac_address"],
                format!("`{mac}` is not a MAC address"),
            )
            .set_hint("write six hexadecimal bytes, e.g. 02:42:ac:11:00:02");
        }
    }
    HostSettings {
        pids_limit: int(p, "pids_limit", -1..=i64::MAX),
        cpuset: text("cpuset"),
        cpu_shares: int(p, "cpu_shares", 0..=262_144),
        cpu_period: micros(p, "cpu_period"),
        cpu_quota: micros(p, "cpu_quota"),
        cpu_rt_period: micros(p, "cpu_rt_period"),
        cpu_rt_runtime: micros(p, "cpu_rt_runtime"),
        cpu_count: int(p, "cpu_count", 0..=i64::MAX),
        cpu_percent: int(p, "cpu_percent", 0..=100),
        mem_reservation: size(p, "mem_reservation", false),
        memswap_limit: size(p, "memswap_limit", true),
        mem_swappiness: int(p, "mem_swappiness", 0..=100),
        oom_kill_disable,
        oom_score_adj: int(p, "oom_score_adj", -1000..=1000),
        uts: text("uts"),
        userns_mode: text("userns_mode"),
        dns_opt: get("dns_opt").map(string_list).unwrap_or_default(),
        dns_search: get("dns_search").map(string_list).unwrap_or_default(),
        storage_opt: get("storage_opt")
            .map(|v: &Value| key_value_map(v))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        device_cgroup_rules: get("device_cgroup_rules")
            .map(string_list)
            .unwrap_or_default(),
        mac_address,
    }
}
