//! `networks:` and `network_mode:` of a service: which of the project's
//! networks it joins, with which aliases.

use serde_yaml::{Mapping, Value};

use super::super::locate::ypath;
use super::super::scalar_text;
use super::super::units::closest;
use super::Context;
use super::keys::{Problems, string_list};

/// A service's networking: `network_mode`, else the networks it joins.
#[derive(Debug, Default)]
pub(super) struct Networking {
    pub(super) network_mode: Option<String>,
    /// Keys of the project's networks with their aliases, in service order.
    pub(super) networks: Vec<(String, Vec<String>)>,
    /// `links:` as (service, alias): the alias names that service's
    /// container on the shared network.
    pub(super) links: Vec<(String, String)>,
    /// `external_links:` as (container, alias).
    pub(super) external_links: Vec<(String, String)>,
}

pub(super) fn parse_networks(def: &Mapping, ctx: &Context<'_>, p: &mut Problems<'_>) -> Networking {
    let get = |key: &str| def.get(key);
    let text = |key: &str| get(key).and_then(scalar_text);
    let network_mode = text("network_mode");
    if let Some(mode) = &network_mode
        && !["host", "none", "bridge"].contains(&mode.as_str())
    {
        p.error(
            ypath!["network_mode"],
            format!("network_mode `{mode}` is not supported by spark-perf"),
        )
        .set_hint("use `host`, `bridge`, `none`, or the project's networks");
    }
    let mut networks = Vec::new();
    match get("networks") {
        None | Some(Value::Null) => {
            if network_mode.is_none() {
                networks.push(("default".to_owned(), Vec::new()));
            }
        }
        Some(Value::Sequence(items)) => {
            networks.extend(
                items
                    .iter()
                    .filter_map(scalar_text)
                    .map(|n| (n, Vec::new())),
            );
        }
        Some(Value::Mapping(m)) => {
            for (key, settings) in m {
                let key = scalar_text(key).unwrap_or_default();
                let aliases = settings.get("aliases").map(string_list).unwrap_or_default();
                networks.push((key, aliases));
            }
        }
        Some(_) => {
            p.error(ypath!["networks"], "`networks` must be a list or a mapping");
        }
    }
    if network_mode.is_some() && get("networks").is_some() {
        p.error(
            ypath!["networks"],
            "`network_mode` and `networks` cannot be combined",
        );
    }
    for (net, _) in &networks {
        if !ctx.networks.contains_key(net) {
            let suggestion = closest(net, ctx.networks.keys().map(String::as_str));
            let problem = p.error(
                ypath!["networks"],
                format!("network `{net}` is not declared under the top-level `networks:`"),
            );
            if let Some(s) = suggestion {
                problem.set_hint(format!("did you mean `{s}`?"));
            }
        }
    }
    let pairs = |key: &str| -> Vec<(String, String)> {
        get(key)
            .map(string_list)
            .unwrap_or_default()
            .into_iter()
            .map(|link| match link.split_once(':') {
                Some((target, alias)) => (target.to_owned(), alias.to_owned()),
                None => (link.clone(), link),
            })
            .collect()
    };
    Networking {
        network_mode,
        networks,
        links: pairs("links"),
        external_links: pairs("external_links"),
    }
}
