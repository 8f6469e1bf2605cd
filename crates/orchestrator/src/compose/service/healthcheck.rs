//! `healthcheck:`: the test, its durations and retries, or `disable: true`.

use std::time::Duration;

use serde_yaml::Value;

use super::super::locate::ypath;
use super::super::scalar_text;
use super::super::units::parse_duration;
use super::keys::{Problems, as_bool};

/// A service's `healthcheck:`; durations in nanoseconds as the API wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Healthcheck {
    pub(crate) test: Option<Vec<String>>,
    pub(crate) interval: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) start_period: Option<Duration>,
    pub(crate) start_interval: Option<Duration>,
    pub(crate) retries: Option<i64>,
}

const HEALTHCHECK_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
];

pub(super) fn parse_healthcheck(
    value: Option<&Value>,
    p: &mut Problems<'_>,
) -> (Option<Healthcheck>, bool) {
    let Some(value) = value else {
        return (None, false);
    };
    let Value::Mapping(m) = value else {
        p.error(ypath!["healthcheck"], "`healthcheck` must be a mapping");
        return (None, false);
    };
    p.unknown_keys(m, HEALTHCHECK_KEYS, &ypath!["healthcheck"], "healthcheck");
    if m.get("disable").and_then(as_bool) == Some(true) {
        return (None, true);
    }
    let duration = |p: &mut Problems<'_>, key: &str| -> Option<Duration> {
        let text = m.get(key).and_then(scalar_text)?;
        let parsed = parse_duration(&text);
        if parsed.is_none() {
            p.error(
                ypath!["healthcheck", key],
                format!("`{text}` is not a duration"),
            );
        }
        parsed
    };
    let test = match m.get("test") {
        None => None,
        Some(Value::Sequence(items)) => Some(
            items
                .iter()
                .map(|v| scalar_text(v).unwrap_or_default())
                .collect(),
        ),
        // The string form runs in the image's shell.
        Some(other) => scalar_text(other).map(|t| vec!["CMD-SHELL".to_owned(), t]),
    };
    if let Some(test) = &test
        && !["NONE", "CMD", "CMD-SHELL"].contains(&test.first().map_or("", String::as_str))
    {
        p.error(
            ypath!["healthcheck", "test"],
            "a healthcheck test list starts with CMD, CMD-SHELL or NONE",
        );
    }
    let healthcheck = Healthcheck {
        test,
        interval: duration(p, "interval"),
        timeout: duration(p, "timeout"),
        start_period: duration(p, "start_period"),
        start_interval: duration(p, "start_interval"),
        retries: m.get("retries").and_then(Value::as_i64),
    };
    (Some(healthcheck), false)
}
