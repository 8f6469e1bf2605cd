//! `ports:` (short and long syntax, ranges expanded) and `expose:`.

use serde_yaml::Value;

use super::super::locate::ypath;
use super::super::scalar_text;
use super::keys::{Problems, string_list};

/// A published or exposed port: `[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]`,
/// ranges expanded to one entry per port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortSpec {
    pub(crate) target: u16,
    pub(crate) published: Option<u16>,
    pub(crate) host_ip: Option<String>,
    pub(crate) protocol: String,
}

const PORT_KEYS: &[&str] = &[
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "name",
    "app_protocol",
];

pub(super) fn parse_port_number(text: &str) -> Option<(u16, u16)> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
            (a <= b && a > 0).then_some((a, b))
        }
        None => text.parse::<u16>().ok().filter(|p| *p > 0).map(|p| (p, p)),
    }
}

/// Parses the short port syntax.
pub(crate) fn parse_short_port(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (spec, protocol) = match spec.rsplit_once('/') {
        Some((spec, protocol)) => (spec, protocol.to_owned()),
        None => (spec, "tcp".to_owned()),
    };
    if !["tcp", "udp", "sctp"].contains(&protocol.as_str()) {
        return Err(format!("unknown protocol `{protocol}`"));
    }
    // An IPv6 host address is bracketed: `[::1]:8000:8000`.
    let (host_ip, rest) = if let Some(rest) = spec.strip_prefix('[') {
        let (ip, rest) = rest
            .split_once("]:")
            .ok_or("unclosed `[` in the host address")?;
        (Some(ip.to_owned()), rest)
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [target]) => (None, None, *target),
        (None, [published, target]) => (None, Some(*published), *target),
        (None, [ip, published, target]) => (Some((*ip).to_owned()), Some(*published), *target),
        (Some(ip), [published, target]) => (Some(ip), Some(*published), *target),
        _ => return Err("expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]".into()),
    };
    let target = parse_port_number(target)
        .ok_or_else(|| format!("`{target}` is not a port or port range"))?;
    let published = match published {
        None | Some("") => None,
        Some(p) => {
            Some(parse_port_number(p).ok_or_else(|| format!("`{p}` is not a port or port range"))?)
        }
    };
    if let Some(ip) = &host_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("`{ip}` is not an IP address"));
    }
    let n_targets = target.1 - target.0 + 1;
    let mut ports = Vec::new();
    for offset in 0..n_targets {
        let published = match published {
            None => None,
            Some((start, end)) if end - start + 1 == n_targets => Some(start + offset),
            // One published range for one target: Docker picks in the range.
            Some((start, _)) if n_targets == 1 => Some(start),
            Some(_) => return Err("the host and container port ranges differ in size".into()),
        };
        ports.push(PortSpec {
            target: target.0 + offset,
            published,
            host_ip: host_ip.clone().filter(|ip| !ip.is_empty()),
            protocol: protocol.clone(),
        });
    }
    Ok(ports)
}

pub(super) fn parse_ports(value: Option<&Value>, p: &mut Problems<'_>) -> Vec<PortSpec> {
    let mut ports = Vec::new();
    let items = match value {
        None | Some(Value::Null) => return ports,
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            p.error(ypath!["ports"], "`ports` must be a list");
            return ports;
        }
    };
    for (idx, item) in items.iter().enumerate() {
        match item {
            Value::Mapping(m) => {
                p.unknown_keys(m, PORT_KEYS, &ypath!["ports", idx], "port");
                let target = m
                    .get("target")
                    .and_then(scalar_text)
                    .and_then(|t| t.parse::<u16>().ok())
                    .filter(|t| *t > 0);
                let Some(target) = target else {
                    p.error(
                        ypath!["ports", idx],
                        "a port needs a `target` container port (1-65535)",
                    );
                    continue;
                };
                let published = match m.get("published").and_then(scalar_text) {
                    None => None,
                    Some(text) if text.is_empty() => None,
                    Some(text) => match parse_port_number(&text) {
                        Some((start, _)) => Some(start),
                        None => {
                            p.error(
                                ypath!["ports", idx, "published"],
                                format!("`{text}` is not a port"),
                            );
                            continue;
                        }
                    },
                };
                let host_ip = m.get("host_ip").and_then(scalar_text);
                if let Some(ip) = &host_ip
                    && ip.parse::<std::net::IpAddr>().is_err()
                {
                    p.error(
                        ypath!["ports", idx, "host_ip"],
                        format!("`{ip}` is not an IP address"),
                    );
                }
                ports.push(PortSpec {
                    target,
                    published,
                    host_ip,
                    protocol: m
                        .get("protocol")
                        .and_then(scalar_text)
                        .unwrap_or_else(|| "tcp".into()),
                });
            }
            other => {
                // YAML reads an unquoted `80:80` as a base-60 number in 1.1;
                // serde_yaml follows YAML 1.2, so a number here is one port.
                let Some(spec) = scalar_text(other) else {
                    p.error(ypath!["ports", idx], "a port must be a string or a mapping");
                    continue;
                };
                match parse_short_port(&spec) {
                    Ok(parsed) => ports.extend(parsed),
                    Err(why) => {
                        p.error(
                            ypath!["ports", idx],
                            format!("malformed port `{spec}`: {why}"),
                        )
                        .set_hint("write \"HOST:CONTAINER\", e.g. \"8000:8000\"");
                    }
                }
            }
        }
    }
    ports
}

/// `expose:`: container ports, checked, kept as written.
pub(super) fn parse_expose(value: Option<&Value>, p: &mut Problems<'_>) -> Vec<String> {
    let expose = value.map(string_list).unwrap_or_default();
    for (idx, e) in expose.iter().enumerate() {
        let spec = e.split('/').next().unwrap_or_default();
        if parse_port_number(spec).is_none() {
            p.error(ypath!["expose", idx], format!("`{e}` is not a port"));
        }
    }
    expose
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports() {
        let one = |s: &str| parse_short_port(s).unwrap();
        assert_eq!(
            one("8000"),
            [PortSpec {
                target: 8000,
                published: None,
                host_ip: None,
                protocol: "tcp".into()
            }]
        );
        assert_eq!(one("8001:8000")[0].published, Some(8001));
        let p = one("127.0.0.1:8001:8000/udp");
        assert_eq!(
            (p[0].host_ip.as_deref(), p[0].protocol.as_str()),
            (Some("127.0.0.1"), "udp")
        );
        assert_eq!(one("[::1]:8001:8000")[0].host_ip.as_deref(), Some("::1"));
        let range = one("9000-9001:8000-8001");
        assert_eq!(
            range
                .iter()
                .map(|p| (p.published, p.target))
                .collect::<Vec<_>>(),
            [(Some(9000), 8000), (Some(9001), 8001)]
        );
        for bad in [
            "",
            "abc",
            "80:80:80:80",
            "0:80",
            "70000:80",
            "1.2.3:80:80",
            "80/xyz",
            "9000-9002:8000-8001",
            "[::1:80:80",
        ] {
            assert!(parse_short_port(bad).is_err(), "{bad}");
        }
    }
}
