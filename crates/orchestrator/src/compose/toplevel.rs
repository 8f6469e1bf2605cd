//! The top-level `networks:` and `volumes:`: their Docker names (project
//! prefix, `name:`, `external:`) and drivers; and the top-level
//! `x-spark-perf: {slo: …}`, the SLO of every engine of the file.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::diagnostic::Problem;
use super::loader::Loader;
use super::locate::ypath;
use super::project::{NetworkSpec, VolumeSpec};
use super::scalar_text;

impl Loader {
    /// The top-level `x-spark-perf.slo`, as written: the objectives are the
    /// CLI's to parse (this crate knows no OpenAI protocol, nor what a TTFT
    /// is); only its shape, a string, is checked here. Other keys of a
    /// top-level `x-spark-perf` are left alone: an `x-` key may hold anchors.
    pub(super) fn top_level_slo(&mut self, doc: &Mapping) -> Option<String> {
        let Some(Value::Mapping(ext)) = doc.get("x-spark-perf") else {
            return None;
        };
        let value = ext.get("slo")?;
        match value {
            Value::String(text) => Some(text.clone()),
            _ => {
                self.push(
                    0,
                    None,
                    Problem::error(
                        ypath!["x-spark-perf", "slo"],
                        "`slo` must be a string of objectives",
                    )
                    .hint("e.g. `slo: \"ttft_p90=2s,tpot_p90=100ms\"`"),
                );
                None
            }
        }
    }

    pub(super) fn top_level_networks(
        &mut self,
        doc: &Mapping,
        project: &str,
    ) -> BTreeMap<String, NetworkSpec> {
        let mut networks = BTreeMap::new();
        networks.insert(
            "default".to_owned(),
            NetworkSpec {
                docker_name: format!("{project}_default"),
                external: false,
                driver: None,
                key: "default".into(),
            },
        );
        let Some(Value::Mapping(declared)) = doc.get("networks") else {
            return networks;
        };
        for (key, value) in declared {
            let Some(key) = scalar_text(key) else {
                continue;
            };
            let (external, name, driver) = external_name_driver(value);
            if let Some(Value::Mapping(m)) = Some(value) {
                for k in m.keys().filter_map(scalar_text) {
                    if ![
                        "external",
                        "name",
                        "driver",
                        "driver_opts",
                        "labels",
                        "ipam",
                        "internal",
                        "attachable",
                        "enable_ipv6",
                        "enable_ipv4",
                    ]
                    .contains(&k.as_str())
                        && !k.starts_with("x-")
                    {
                        self.push(
                            0,
                            None,
                            Problem::error(
                                ypath!["networks", key.as_str(), k.as_str()],
                                format!("unknown network key `{k}`"),
                            ),
                        );
                    }
                }
            }
            let docker_name = match (name, external) {
                (Some(name), _) => name,
                (None, true) => key.clone(),
                (None, false) => format!("{project}_{key}"),
            };
            networks.insert(
                key.clone(),
                NetworkSpec {
                    docker_name,
                    external,
                    driver,
                    key,
                },
            );
        }
        networks
    }

    pub(super) fn top_level_volumes(
        &mut self,
        doc: &Mapping,
        project: &str,
    ) -> BTreeMap<String, VolumeSpec> {
        let mut volumes = BTreeMap::new();
        let Some(Value::Mapping(declared)) = doc.get("volumes") else {
            return volumes;
        };
        for (key, value) in declared {
            let Some(key) = scalar_text(key) else {
                continue;
            };
            let (external, name, driver) = external_name_driver(value);
            let docker_name = match (name, external) {
                (Some(name), _) => name,
                (None, true) => key.clone(),
                (None, false) => format!("{project}_{key}"),
            };
            volumes.insert(
                key.clone(),
                VolumeSpec {
                    docker_name,
                    external,
                    driver,
                    key,
                },
            );
        }
        volumes
    }
}

fn external_name_driver(value: &Value) -> (bool, Option<String>, Option<String>) {
    let Value::Mapping(m) = value else {
        return (false, None, None);
    };
    let external = match m.get("external") {
        Some(Value::Bool(b)) => *b,
        // The legacy `external: {name: X}` form.
        Some(Value::Mapping(_)) => true,
        _ => false,
    };
    let legacy_name = m
        .get("external")
        .and_then(|e| e.get("name"))
        .and_then(scalar_text);
    let name = m.get("name").and_then(scalar_text).or(legacy_name);
    let driver = m.get("driver").and_then(scalar_text);
    (external, name, driver)
}
