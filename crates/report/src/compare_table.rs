//! The comparison model every renderer draws: tables whose columns are the
//! engines of a run and whose rows are metrics, each with the direction that
//! wins, so the winner is decided once, here, and never by a renderer.

use spark_results::{EngineRun, ScenarioResult, SuiteResults};

mod engine_metrics;
mod gpu;
mod scenario;
mod telemetry;

pub use engine_metrics::warm_cache_flags;
pub use gpu::gpu_line;
pub use telemetry::unavailable as telemetry_unavailable;

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
    /// Bytes in binary units (`5.2 MiB`, `17.3 GiB`).
    Bytes,
    /// Three decimals (joules per token).
    ThreeDecimals,
    /// Gigabytes: one decimal from 1 GB, three below it, so that a small
    /// model or process does not read as `0.0`.
    Gigabytes,
}

impl Format {
    /// The value as text.
    pub fn apply(self, value: f64) -> String {
        match self {
            Format::OneDecimal => format!("{value:.1}"),
            Format::TwoDecimals => format!("{value:.2}"),
            Format::Count => format!("{value:.0}"),
            Format::Bytes => telemetry::format_bytes(value),
            Format::ThreeDecimals => format!("{value:.3}"),
            Format::Gigabytes if value.abs() < 1.0 => format!("{value:.3}"),
            Format::Gigabytes => format!("{value:.1}"),
        }
    }
}

/// Below this many samples a distribution has no p99 (or p90): the reports
/// show its largest value, and say so, instead.
pub const MIN_SAMPLES_FOR_PERCENTILE: u64 = 20;

/// Where a row has no spread to weigh a win by (an aggregate such as a
/// throughput), the best must lead the next by this much to win.
pub const MIN_LEAD_WITHOUT_SPREAD: f64 = 0.05;

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
    /// The standard deviation behind each cell (of the requests it sums
    /// up), where there is one; empty for rows without (aggregates).
    pub spread: Vec<Option<f64>>,
    /// Print each cell as `mean ± stddev` (the mean rows).
    pub show_spread: bool,
    /// Cells that show the largest value because their distribution has
    /// fewer than [`MIN_SAMPLES_FOR_PERCENTILE`] samples (the p99 rows).
    pub as_max: Vec<bool>,
}

impl Row {
    /// A row of plain values, with no spread.
    pub fn plain(
        metric: &'static str,
        unit: &'static str,
        better: Option<Better>,
        format: Format,
        cells: Vec<Option<f64>>,
    ) -> Row {
        Row {
            metric,
            unit,
            better,
            format,
            cells,
            spread: Vec::new(),
            show_spread: false,
            as_max: Vec::new(),
        }
    }

    /// The cell at `idx` as printed: `190.0 ± 26.0` on a mean row,
    /// `max 300.0` where too few samples make a p99; `None` is N/A.
    pub fn cell_text(&self, idx: usize) -> Option<String> {
        let value = self.cells.get(idx).copied().flatten()?;
        let mut text = self.format.apply(value);
        if self.show_spread
            && let Some(sd) = self.spread.get(idx).copied().flatten()
        {
            text = format!("{text} ± {}", self.format.apply(sd));
        }
        if self.as_max.get(idx).copied().unwrap_or(false) {
            text = format!("max {text}");
        }
        Some(text)
    }

    /// The row's name as the reports print it: `TTFT p50 (ms)`, with
    /// `, tie` where two or more engines have a value and none leads.
    pub fn label(&self) -> String {
        // A unit-less row (sizes print their own unit) has no parentheses.
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.unit)
        };
        if self.is_tie() {
            format!("{}{unit}, tie", self.metric)
        } else {
            format!("{}{unit}", self.metric)
        }
    }

    /// Whether the row has a winner to find but none leads by enough.
    pub fn is_tie(&self) -> bool {
        self.better.is_some()
            && self
                .cells
                .iter()
                .filter(|c| c.is_some_and(f64::is_finite))
                .count()
                >= 2
            && self.winners().is_empty()
    }

    /// Index of the winning cell: the best value, when at least two engines
    /// have one and it leads the next best by more than the spread of both
    /// (their standard deviations), or by [`MIN_LEAD_WITHOUT_SPREAD`] where
    /// the row has no spread. Otherwise nobody wins: a tie.
    pub fn winners(&self) -> Vec<usize> {
        let Some(better) = self.better else {
            return Vec::new();
        };
        let mut values: Vec<(usize, f64)> = self
            .cells
            .iter()
            .enumerate()
            .filter_map(|(idx, cell)| cell.filter(|v| v.is_finite()).map(|v| (idx, v)))
            .collect();
        if values.len() < 2 {
            return Vec::new();
        }
        values.sort_by(|a, b| match better {
            Better::Lower => a.1.total_cmp(&b.1),
            Better::Higher => b.1.total_cmp(&a.1),
        });
        let (best_idx, best) = values[0];
        let (next_idx, next) = values[1];
        // Two values that print the same are a tie.
        if self.format.apply(best) == self.format.apply(next) {
            return Vec::new();
        }
        let lead = (best - next).abs();
        let spread = |idx: usize| self.spread.get(idx).copied().flatten();
        let leads = match (spread(best_idx), spread(next_idx)) {
            (Some(a), Some(b)) => lead > a + b,
            _ => next != 0.0 && lead / next.abs() > MIN_LEAD_WITHOUT_SPREAD,
        };
        if leads { vec![best_idx] } else { Vec::new() }
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
        let mut rows = scenario::scenario_rows(&scenarios);
        // Memory and CPU beside the throughputs, before the failures.
        let at = rows
            .iter()
            .position(|row| row.metric == "failed")
            .unwrap_or(rows.len());
        let beside = telemetry::usage_rows(suite, &name).into_iter();
        let beside = beside
            .chain(gpu::rows(suite, &name))
            .chain(engine_metrics::rows(suite, &name));
        rows.splice(at..at, beside);
        let rows = rows
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
            Row::plain(
                "port open",
                "s",
                Some(Better::Lower),
                Format::TwoDecimals,
                startup(|cost| cost.port_open_s),
            ),
            Row::plain(
                "time to healthy",
                "s",
                Some(Better::Lower),
                Format::TwoDecimals,
                startup(|cost| cost.healthy_s),
            ),
            telemetry::model_size_row(suite),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gigabytes_below_one_keep_three_decimals() {
        assert_eq!(Format::Gigabytes.apply(0.0123), "0.012");
        assert_eq!(Format::Gigabytes.apply(0.95), "0.950");
        assert_eq!(Format::Gigabytes.apply(17.34), "17.3");
        assert_eq!(Format::Gigabytes.apply(1.0), "1.0");
    }

    fn row(better: Better, cells: Vec<Option<f64>>) -> Row {
        Row::plain("m", "ms", Some(better), Format::OneDecimal, cells)
    }

    fn with_spread(better: Better, cells: Vec<Option<f64>>, sd: f64) -> Row {
        Row {
            spread: cells.iter().map(|c| c.map(|_| sd)).collect(),
            show_spread: true,
            ..row(better, cells)
        }
    }

    #[test]
    fn lower_and_higher_pick_opposite_winners() {
        let cells = vec![Some(10.0), None, Some(7.5), Some(12.0)];
        assert_eq!(row(Better::Lower, cells.clone()).winners(), vec![2]);
        assert_eq!(row(Better::Higher, cells).winners(), vec![3]);
    }

    #[test]
    fn a_lone_value_wins_nothing_and_printed_ties_are_ties() {
        assert!(
            row(Better::Lower, vec![Some(1.0), None])
                .winners()
                .is_empty()
        );
        let tied = row(Better::Lower, vec![Some(5.01), Some(5.04), Some(6.0)]);
        assert!(tied.winners().is_empty());
        assert!(tied.is_tie());
        assert_eq!(tied.label(), "m (ms), tie");
    }

    #[test]
    fn a_lead_inside_the_spread_of_both_is_a_tie() {
        // 190 ± 26 against 200 ± 30: the lead (10) is inside 26 + 30.
        let close = with_spread(Better::Lower, vec![Some(190.0), Some(200.0)], 28.0);
        assert!(close.winners().is_empty() && close.is_tie());
        assert_eq!(close.cell_text(0).as_deref(), Some("190.0 ± 28.0"));
        // 100 ± 5 against 150 ± 5 leads by far more than 10.
        let clear = with_spread(Better::Lower, vec![Some(100.0), Some(150.0)], 5.0);
        assert_eq!(clear.winners(), vec![0]);
        // Without a spread, a 3 % lead is a tie and a 10 % lead wins.
        assert!(row(Better::Higher, vec![Some(103.0), Some(100.0)]).is_tie());
        assert_eq!(
            row(Better::Higher, vec![Some(110.0), Some(100.0)]).winners(),
            vec![0]
        );
    }
}
