//! The comparison model every renderer draws: tables whose columns are the
//! engines of a run and whose rows are metrics, each with the direction that
//! wins, so the winner is decided once, here, and never by a renderer.

use spark_results::{Distribution, EngineRun, ScenarioResult, SuiteResults};

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Latencies, failures: smaller wins.
    Lower,
    /// Throughputs: larger wins.
    Higher,
}

/// How a value is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One decimal (ms, tok/s).
    OneDecimal,
    /// Two decimals (seconds, requests per second).
    TwoDecimals,
    /// A whole number (counts).
    Count,
}

impl Format {
    /// The value as text.
    pub fn apply(self, value: f64) -> String {
        match self {
            Format::OneDecimal => format!("{value:.1}"),
            Format::TwoDecimals => format!("{value:.2}"),
            Format::Count => format!("{value:.0}"),
        }
    }
}

/// One metric across the engines.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is measured, e.g. `TTFT p50`.
    pub metric: &'static str,
    /// Its unit, e.g. `ms`.
    pub unit: &'static str,
    /// Which way wins; `None` for a row that has no winner (counts of input).
    pub better: Option<Better>,
    /// How to print it.
    pub format: Format,
    /// One cell per engine column; `None` is N/A.
    pub cells: Vec<Option<f64>>,
}

impl Row {
    /// Indexes of the winning cells: the best value when at least two
    /// engines have one (a lone value beats nobody). Ties share the win.
    pub fn winners(&self) -> Vec<usize> {
        let Some(better) = self.better else {
            return Vec::new();
        };
        let values: Vec<(usize, f64)> = self
            .cells
            .iter()
            .enumerate()
            .filter_map(|(idx, cell)| cell.filter(|v| v.is_finite()).map(|v| (idx, v)))
            .collect();
        if values.len() < 2 {
            return Vec::new();
        }
        let best = values
            .iter()
            .map(|&(_, v)| v)
            .fold(None, |best: Option<f64>, v| match (best, better) {
                (None, _) => Some(v),
                (Some(b), Better::Lower) => Some(b.min(v)),
                (Some(b), Better::Higher) => Some(b.max(v)),
            });
        let Some(best) = best else {
            return Vec::new();
        };
        // Compare as printed: two values that print the same are a tie.
        let shown = self.format.apply(best);
        values
            .into_iter()
            .filter(|&(_, v)| self.format.apply(v) == shown)
            .map(|(idx, _)| idx)
            .collect()
    }
}

/// A titled table of rows over the same engine columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// e.g. `throughput (c=16, 64 requests, 256 max tokens)`.
    pub title: String,
    /// Engine names, one per column.
    pub columns: Vec<String>,
    /// The metrics.
    pub rows: Vec<Row>,
}

/// Builds the tables of a run: startup first, then one per scenario in the
/// order scenarios first appear, skipping warmups and rows with no value.
pub fn tables(suite: &SuiteResults) -> Vec<Table> {
    let columns: Vec<String> = suite
        .engines
        .iter()
        .map(|engine| engine.service.clone())
        .collect();
    let mut tables = vec![startup_table(suite, &columns)];
    for name in scenario_names(suite) {
        let scenarios: Vec<Option<&ScenarioResult>> = suite
            .engines
            .iter()
            .map(|engine| scenario(engine, &name))
            .collect();
        let title = scenarios
            .iter()
            .flatten()
            .next()
            .map(|scenario| scenario_title(scenario))
            .unwrap_or_else(|| name.clone());
        let rows = scenario_rows(&scenarios)
            .into_iter()
            .filter(|row| row.cells.iter().any(Option::is_some))
            .collect();
        tables.push(Table {
            title,
            columns: columns.clone(),
            rows,
        });
    }
    tables.retain(|table| !table.rows.is_empty());
    tables
}

fn startup_table(suite: &SuiteResults, columns: &[String]) -> Table {
    let startup = |pick: fn(&spark_results::StartupCost) -> Option<f64>| -> Vec<Option<f64>> {
        suite
            .engines
            .iter()
            .map(|engine| engine.startup.as_ref().and_then(pick))
            .collect()
    };
    Table {
        title: "startup".to_owned(),
        columns: columns.to_vec(),
        rows: vec![
            Row {
                metric: "port open",
                unit: "s",
                better: Some(Better::Lower),
                format: Format::TwoDecimals,
                cells: startup(|cost| cost.port_open_s),
            },
            Row {
                metric: "time to healthy",
                unit: "s",
                better: Some(Better::Lower),
                format: Format::TwoDecimals,
                cells: startup(|cost| cost.healthy_s),
            },
        ]
        .into_iter()
        .filter(|row| row.cells.iter().any(Option::is_some))
        .collect(),
    }
}

/// Names of the measured (not discarded) scenarios, in first-seen order.
pub fn scenario_names(suite: &SuiteResults) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for engine in &suite.engines {
        for scenario in engine.results.iter().flat_map(|r| &r.scenarios) {
            if !scenario.discarded && !names.contains(&scenario.name) {
                names.push(scenario.name.clone());
            }
        }
    }
    names
}

fn scenario<'a>(engine: &'a EngineRun, name: &str) -> Option<&'a ScenarioResult> {
    engine
        .results
        .as_ref()?
        .scenarios
        .iter()
        // A scenario that was not run has no numbers: N/A, its reason in the flags.
        .find(|scenario| scenario.name == name && scenario.not_run.is_none())
}

/// e.g. `throughput: 64 requests, concurrency 16, 1024 → 256 tokens`.
pub fn scenario_title(scenario: &ScenarioResult) -> String {
    let config = &scenario.config;
    let arrival = match config.arrival {
        spark_results::Arrival::Closed => format!("concurrency {}", config.concurrency),
        spark_results::Arrival::Poisson { rate_rps } => {
            format!(
                "Poisson {rate_rps} req/s, concurrency ≤ {}",
                config.concurrency
            )
        }
    };
    if let Some(duration_s) = config.duration_s {
        return format!(
            "{}: {duration_s} s of arrivals, {arrival}, {} → {} tokens",
            scenario.name, config.input_tokens, config.max_tokens
        );
    }
    format!(
        "{}: {} requests, {arrival}, {} → {} tokens",
        scenario.name, config.requests, config.input_tokens, config.max_tokens
    )
}

fn scenario_rows(scenarios: &[Option<&ScenarioResult>]) -> Vec<Row> {
    let dist = |pick: fn(&Distribution) -> Option<f64>,
                metric: fn(&spark_results::ScenarioAggregate) -> &Distribution| {
        scenarios
            .iter()
            .map(|scenario| scenario.and_then(|s| pick(metric(&s.aggregate))))
            .collect::<Vec<_>>()
    };
    let agg = |pick: fn(&spark_results::ScenarioAggregate) -> f64| {
        scenarios
            .iter()
            .map(|scenario| scenario.map(|s| pick(&s.aggregate)))
            .collect::<Vec<_>>()
    };
    let open = |pick: fn(&spark_results::OpenLoopAggregate) -> Option<f64>| {
        scenarios
            .iter()
            .map(|scenario| {
                scenario
                    .and_then(|s| s.aggregate.open_loop.as_ref())
                    .and_then(pick)
            })
            .collect::<Vec<_>>()
    };
    let latency = |metric, cells| Row {
        metric,
        unit: "ms",
        better: Some(Better::Lower),
        format: Format::OneDecimal,
        cells,
    };
    let speed = |metric, unit, format, cells| Row {
        metric,
        unit,
        better: Some(Better::Higher),
        format,
        cells,
    };
    let mut rows = vec![
        latency("TTFT mean", dist(|d| d.mean, |a| &a.ttft_ms)),
        latency("TTFT p50", dist(|d| d.p50, |a| &a.ttft_ms)),
        latency("TTFT p99", dist(|d| d.p99, |a| &a.ttft_ms)),
    ];
    // Reasoning models only: the first answer token and the thinking done
    // before it; no rows when no engine reasoned.
    let ttfo = dist(|d| d.p50, |a| &a.ttfo_ms);
    if ttfo.iter().any(Option::is_some) {
        rows.push(latency("TTFO p50", ttfo));
        rows.push(latency("TTFO p99", dist(|d| d.p99, |a| &a.ttfo_ms)));
    }
    let reasoning = dist(|d| d.mean, |a| &a.reasoning_tokens);
    if reasoning.iter().any(Option::is_some) {
        rows.push(Row {
            metric: "reasoning tokens mean",
            unit: "tok",
            better: None,
            format: Format::OneDecimal,
            cells: reasoning,
        });
    }
    rows.extend([
        latency("ITL p50", dist(|d| d.p50, |a| &a.itl_ms)),
        latency("ITL p99", dist(|d| d.p99, |a| &a.itl_ms)),
        latency("TPOT mean", dist(|d| d.mean, |a| &a.tpot_ms)),
        latency("E2E p50", dist(|d| d.p50, |a| &a.e2e_ms)),
        speed(
            "decode p50",
            "tok/s",
            Format::OneDecimal,
            dist(|d| d.p50, |a| &a.decode_tok_s),
        ),
        speed(
            "prompt p50",
            "tok/s",
            Format::OneDecimal,
            dist(|d| d.p50, |a| &a.prompt_tok_s),
        ),
        speed(
            "output throughput",
            "tok/s",
            Format::OneDecimal,
            agg(|a| a.output_throughput_tok_s),
        ),
        speed(
            "requests",
            "req/s",
            Format::TwoDecimals,
            agg(|a| a.request_throughput_rps),
        ),
        Row {
            metric: "failed",
            unit: "req",
            better: Some(Better::Lower),
            format: Format::Count,
            cells: agg(|a| f64::from(a.n_failed)),
        },
        // Open loop only (N/A rows are dropped in closed loop): latencies
        // from the scheduled send, so late sends cannot flatter an engine.
        latency(
            "TTFT p50 from schedule",
            open(|o| o.ttft_from_scheduled_ms.p50),
        ),
        latency(
            "TTFT p99 from schedule",
            open(|o| o.ttft_from_scheduled_ms.p99),
        ),
        latency(
            "E2E p50 from schedule",
            open(|o| o.e2e_from_scheduled_ms.p50),
        ),
        latency("send lateness p99", open(|o| o.lateness_ms.p99)),
        speed(
            "steady output throughput",
            "tok/s",
            Format::OneDecimal,
            open(|o| o.steady_output_throughput_tok_s),
        ),
        speed(
            "steady requests",
            "req/s",
            Format::TwoDecimals,
            open(|o| o.steady_request_throughput_rps),
        ),
    ]);
    rows.extend(engine_timing_rows(scenarios));
    rows
}

/// The engine's own figures beside ours (llama-server's `timings`): its
/// prefill and decode times, what our TTFT adds to its prefill, and how our
/// TPOT compares with its. No winner: they check the clock, not the engine.
/// All N/A (so dropped) where no engine reported timings.
fn engine_timing_rows(scenarios: &[Option<&ScenarioResult>]) -> Vec<Row> {
    let engine = |pick: fn(&spark_results::EngineTimingsAggregate) -> Option<f64>| {
        scenarios
            .iter()
            .map(|scenario| {
                scenario
                    .and_then(|s| s.aggregate.engine_timings.as_ref())
                    .and_then(pick)
            })
            .collect::<Vec<_>>()
    };
    let row = |metric, unit, format, cells| Row {
        metric,
        unit,
        better: None,
        format,
        cells,
    };
    vec![
        row(
            "engine-reported prefill p50",
            "ms",
            Format::OneDecimal,
            engine(|e| e.prefill_ms.p50),
        ),
        row(
            "TTFT over engine prefill p50",
            "ms",
            Format::OneDecimal,
            engine(|e| e.ttft_over_prefill_ms.p50),
        ),
        row(
            "engine-reported TPOT p50",
            "ms",
            Format::OneDecimal,
            engine(|e| e.tpot_ms.p50),
        ),
        row(
            "TPOT ours / engine's p50",
            "×",
            Format::TwoDecimals,
            engine(|e| e.tpot_ratio.p50),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(better: Better, cells: Vec<Option<f64>>) -> Row {
        Row {
            metric: "m",
            unit: "ms",
            better: Some(better),
            format: Format::OneDecimal,
            cells,
        }
    }

    #[test]
    fn lower_and_higher_pick_opposite_winners() {
        let cells = vec![Some(10.0), None, Some(7.5), Some(12.0)];
        assert_eq!(row(Better::Lower, cells.clone()).winners(), vec![2]);
        assert_eq!(row(Better::Higher, cells).winners(), vec![3]);
    }

    #[test]
    fn a_lone_value_wins_nothing_and_printed_ties_share() {
        assert!(
            row(Better::Lower, vec![Some(1.0), None])
                .winners()
                .is_empty()
        );
        assert_eq!(
            row(Better::Lower, vec![Some(5.01), Some(5.04), Some(6.0)]).winners(),
            vec![0, 1]
        );
    }
}
