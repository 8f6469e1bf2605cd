//! The comparison model every renderer draws: tables whose columns are the
//! engines of a run and whose rows are metrics, each with the direction that
//! wins, so the winner is decided once, here, and never by a renderer.

use spark_results::{Distribution, EngineRun, ScenarioResult, SuiteResults};

mod engine_metrics;
mod gpu;
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
        let mut rows = scenario_rows(&scenarios);
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

/// Which statistic of a distribution a row shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stat {
    /// `mean ± stddev`.
    Mean,
    P50,
    /// The p99, or the largest value below [`MIN_SAMPLES_FOR_PERCENTILE`]
    /// samples.
    P99,
}

type Pick = fn(&spark_results::ScenarioAggregate) -> &Distribution;

/// A row of one statistic of a per-request distribution, with the
/// distribution's standard deviation as the spread behind each cell.
fn dist_row(
    dists: &[Option<&Distribution>],
    metric: &'static str,
    unit: &'static str,
    better: Option<Better>,
    format: Format,
    stat: Stat,
) -> Row {
    let dists: Vec<Option<&Distribution>> = dists.iter().map(|d| d.filter(|d| d.n > 0)).collect();
    let few = |d: &Distribution| d.n < MIN_SAMPLES_FOR_PERCENTILE;
    let cells = dists
        .iter()
        .map(|d| {
            d.and_then(|d| match stat {
                Stat::Mean => d.mean,
                Stat::P50 => d.p50,
                Stat::P99 if few(d) => d.max,
                Stat::P99 => d.p99,
            })
        })
        .collect();
    Row {
        metric,
        unit,
        better,
        format,
        cells,
        spread: dists.iter().map(|d| d.and_then(|d| d.stddev)).collect(),
        show_spread: stat == Stat::Mean,
        as_max: dists
            .iter()
            .map(|d| stat == Stat::P99 && d.is_some_and(few))
            .collect(),
    }
}

/// One cell per engine column: `pick` of that engine's scenario, `None`
/// where it has none (N/A).
fn per_engine<'a, T>(
    scenarios: &[Option<&'a ScenarioResult>],
    pick: impl Fn(&'a spark_results::ScenarioAggregate) -> Option<T>,
) -> Vec<Option<T>> {
    scenarios
        .iter()
        .map(|scenario| scenario.and_then(|s| pick(&s.aggregate)))
        .collect()
}

fn scenario_rows(scenarios: &[Option<&ScenarioResult>]) -> Vec<Row> {
    let agg = |pick: fn(&spark_results::ScenarioAggregate) -> f64| {
        per_engine(scenarios, move |a| Some(pick(a)))
    };
    let open = |pick: fn(&spark_results::OpenLoopAggregate) -> Option<f64>| {
        per_engine(scenarios, move |a| a.open_loop.as_ref().and_then(pick))
    };
    let dists = |pick: Pick| per_engine(scenarios, move |a| Some(pick(a)));
    let open_dists = |pick: fn(&spark_results::OpenLoopAggregate) -> &Distribution| {
        per_engine(scenarios, move |a| a.open_loop.as_ref().map(pick))
    };
    let lower = Some(Better::Lower);
    let higher = Some(Better::Higher);
    let ms = |metric, stat, pick: Pick| {
        dist_row(&dists(pick), metric, "ms", lower, Format::OneDecimal, stat)
    };
    let speed = |metric, unit, format, cells| Row::plain(metric, unit, higher, format, cells);
    let mut rows = vec![
        Row::plain(
            "n",
            "successful requests",
            None,
            Format::Count,
            agg(|a| f64::from(a.n_ok)),
        ),
        ms("TTFT mean", Stat::Mean, |a| &a.ttft_ms),
        ms("TTFT p50", Stat::P50, |a| &a.ttft_ms),
        ms("TTFT p99", Stat::P99, |a| &a.ttft_ms),
    ];
    // Reasoning models only: the first answer token and the thinking done
    // before it; no rows when no engine reasoned.
    let ttfo = ms("TTFO p50", Stat::P50, |a| &a.ttfo_ms);
    if ttfo.cells.iter().any(Option::is_some) {
        rows.push(ttfo);
        rows.push(ms("TTFO p99", Stat::P99, |a| &a.ttfo_ms));
    }
    let reasoning = dist_row(
        &dists(|a| &a.reasoning_tokens),
        "reasoning tokens mean",
        "tok",
        None,
        Format::OneDecimal,
        Stat::Mean,
    );
    if reasoning.cells.iter().any(Option::is_some) {
        rows.push(reasoning);
    }
    rows.extend([
        ms("ITL p50", Stat::P50, |a| &a.itl_ms),
        ms("ITL p99", Stat::P99, |a| &a.itl_ms),
        ms("TPOT mean", Stat::Mean, |a| &a.tpot_ms),
        ms("E2E p50", Stat::P50, |a| &a.e2e_ms),
        dist_row(
            &dists(|a| &a.decode_tok_s),
            "decode p50",
            "tok/s",
            higher,
            Format::OneDecimal,
            Stat::P50,
        ),
        dist_row(
            &dists(|a| &a.prompt_tok_s),
            "prompt p50",
            "tok/s",
            higher,
            Format::OneDecimal,
            Stat::P50,
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
        Row::plain(
            "failed",
            "req",
            lower,
            Format::Count,
            agg(|a| f64::from(a.n_failed)),
        ),
    ]);
    // Open loop only (N/A rows are dropped in closed loop): latencies from
    // the scheduled send, so late sends cannot flatter an engine.
    let scheduled = |metric, stat, pick: fn(&spark_results::OpenLoopAggregate) -> &Distribution| {
        dist_row(
            &open_dists(pick),
            metric,
            "ms",
            lower,
            Format::OneDecimal,
            stat,
        )
    };
    rows.extend([
        scheduled("TTFT p50 from schedule", Stat::P50, |o| {
            &o.ttft_from_scheduled_ms
        }),
        scheduled("TTFT p99 from schedule", Stat::P99, |o| {
            &o.ttft_from_scheduled_ms
        }),
        scheduled("E2E p50 from schedule", Stat::P50, |o| {
            &o.e2e_from_scheduled_ms
        }),
        scheduled("send lateness p99", Stat::P99, |o| &o.lateness_ms),
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
        per_engine(scenarios, move |a| a.engine_timings.as_ref().and_then(pick))
    };
    let row = |metric, unit, format, cells| Row::plain(metric, unit, None, format, cells);
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

    #[test]
    fn a_p99_of_few_samples_is_shown_as_the_largest_value() {
        let few = Distribution {
            n: 3,
            mean: Some(190.0),
            stddev: Some(26.0),
            p50: Some(185.0),
            p99: Some(221.0),
            max: Some(221.0),
            ..Distribution::default()
        };
        let many = Distribution {
            n: 64,
            p99: Some(300.0),
            max: Some(350.0),
            ..few.clone()
        };
        let p99 = dist_row(
            &[Some(&few), Some(&many)],
            "TTFT p99",
            "ms",
            Some(Better::Lower),
            Format::OneDecimal,
            Stat::P99,
        );
        assert_eq!(p99.cell_text(0).as_deref(), Some("max 221.0"));
        assert_eq!(p99.cell_text(1).as_deref(), Some("300.0"));
        let mean = dist_row(
            &[Some(&few)],
            "TTFT mean",
            "ms",
            Some(Better::Lower),
            Format::OneDecimal,
            Stat::Mean,
        );
        assert_eq!(mean.cell_text(0).as_deref(), Some("190.0 ± 26.0"));
    }
}
