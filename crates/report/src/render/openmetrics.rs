//! The run's key metrics in the OpenMetrics text format, for the user's
//! monitoring: node_exporter's textfile collector reads the file
//! `--openmetrics` writes, and `--pushgateway` pushes the same families
//! (without the `# EOF` terminator, as the Pushgateway's text format wants).
//!
//! One gauge family per key metric, in base units (seconds, tokens per
//! second, a ratio), labelled by engine, scenario and `stat` (`p50`, `p99`:
//! `quantile` is reserved for summaries). Only names reach the labels:
//! service, scenario, model and flavor, never an environment value.

use std::fmt::Write as _;

use spark_results::{Distribution, ScenarioAggregate, SuiteResults};

/// One family: its name (with its unit suffix), unit, help and samples.
struct Family {
    name: &'static str,
    unit: Option<&'static str>,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, unit: Option<&'static str>, help: &'static str) -> Family {
        Family {
            name,
            unit,
            help,
            samples: Vec::new(),
        }
    }
}

/// The families of `suite`, in a fixed order.
fn families(suite: &SuiteResults) -> Vec<Family> {
    let mut run_info = Family::new(
        "spark_perf_run_start_timestamp_seconds",
        Some("seconds"),
        "When the run started (Unix time).",
    );
    run_info
        .samples
        .push((Vec::new(), suite.started_unix_ms as f64 / 1e3));
    let mut complete = Family::new(
        "spark_perf_run_complete",
        None,
        "1 when every engine and scenario of the run ran to the end.",
    );
    complete
        .samples
        .push((Vec::new(), f64::from(u8::from(suite.complete))));
    let mut up = Family::new(
        "spark_perf_engine_up",
        None,
        "1 when the engine was measured, 0 when it failed (its reason is in the reports).",
    );
    let mut healthy = Family::new(
        "spark_perf_time_to_healthy_seconds",
        Some("seconds"),
        "From creating the engine's container to its first healthy answer.",
    );
    let mut ttft = Family::new(
        "spark_perf_ttft_seconds",
        Some("seconds"),
        "Time to first token over successful requests.",
    );
    let mut tpot = Family::new(
        "spark_perf_tpot_seconds",
        Some("seconds"),
        "Time per output token, (E2E - TTFT) / (output tokens - 1).",
    );
    let mut itl = Family::new(
        "spark_perf_itl_seconds",
        Some("seconds"),
        "Gap between two successive token-carrying chunks.",
    );
    let mut e2e = Family::new(
        "spark_perf_e2e_seconds",
        Some("seconds"),
        "From sending a request to the end of its response.",
    );
    let mut output = Family::new(
        "spark_perf_output_throughput_tokens_per_second",
        None,
        "Output tokens of successful requests over the scenario's wall time.",
    );
    let mut requests = Family::new(
        "spark_perf_request_throughput_requests_per_second",
        None,
        "Successful requests over the scenario's wall time.",
    );
    let mut failure = Family::new(
        "spark_perf_failure_ratio",
        Some("ratio"),
        "Failed requests over the requests that ended.",
    );
    for engine in &suite.engines {
        let engine_labels = || {
            vec![
                ("engine", engine.service.clone()),
                ("flavor", engine.flavor.clone()),
                ("model", engine.model.clone().unwrap_or_default()),
            ]
        };
        up.samples
            .push((engine_labels(), f64::from(u8::from(engine.is_ok()))));
        if let Some(s) = engine.startup.as_ref().and_then(|s| s.healthy_s) {
            healthy.samples.push((engine_labels(), s));
        }
        let Some(results) = &engine.results else {
            continue;
        };
        for scenario in results
            .scenarios
            .iter()
            .filter(|s| !s.discarded && s.not_run.is_none())
        {
            let labels = |stat: Option<&'static str>| {
                let mut labels = engine_labels();
                labels.push(("scenario", scenario.name.clone()));
                if let Some(stat) = stat {
                    labels.push(("stat", stat.to_owned()));
                }
                labels
            };
            let a: &ScenarioAggregate = &scenario.aggregate;
            let ms = |family: &mut Family,
                      d: &Distribution,
                      stat,
                      pick: fn(&Distribution) -> Option<f64>| {
                if let Some(v) = pick(d) {
                    family.samples.push((labels(Some(stat)), v / 1e3));
                }
            };
            ms(&mut ttft, &a.ttft_ms, "p50", |d| d.p50);
            ms(&mut ttft, &a.ttft_ms, "p99", |d| d.p99);
            ms(&mut tpot, &a.tpot_ms, "p50", |d| d.p50);
            ms(&mut itl, &a.itl_ms, "p50", |d| d.p50);
            ms(&mut itl, &a.itl_ms, "p99", |d| d.p99);
            ms(&mut e2e, &a.e2e_ms, "p50", |d| d.p50);
            output
                .samples
                .push((labels(None), a.output_throughput_tok_s));
            requests
                .samples
                .push((labels(None), a.request_throughput_rps));
            if a.n_requests > 0 {
                failure.samples.push((
                    labels(None),
                    f64::from(a.n_failed) / f64::from(a.n_requests),
                ));
            }
        }
    }
    vec![
        run_info, complete, up, healthy, ttft, tpot, itl, e2e, output, requests, failure,
    ]
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn write_families(suite: &SuiteResults, with_unit: bool) -> String {
    let mut out = String::new();
    for family in families(suite) {
        if family.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        if with_unit && let Some(unit) = family.unit {
            let _ = writeln!(out, "# UNIT {} {unit}", family.name);
        }
        for (labels, value) in family.samples.iter().filter(|(_, v)| v.is_finite()) {
            out.push_str(family.name);
            if !labels.is_empty() {
                let rendered: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", rendered.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

/// The OpenMetrics exposition of the run, ending in `# EOF`.
pub fn render(suite: &SuiteResults) -> String {
    let mut out = write_families(suite, true);
    out.push_str("# EOF\n");
    out
}

/// The same families in the Prometheus text format 0.0.4 (what the
/// Pushgateway accepts): no `# UNIT`, no `# EOF`.
pub fn prometheus_text(suite: &SuiteResults) -> String {
    write_families(suite, false)
}
