//! The rows every scenario has, from the load generator's own measurements:
//! the latency distributions (mean ± stddev, p50, p99 or the largest value
//! below enough samples), the throughputs and failures, the open-loop
//! latencies from the scheduled send, and the engine's own timings beside ours.

use spark_results::{Distribution, ScenarioResult};

use super::{Better, Format, MIN_SAMPLES_FOR_PERCENTILE, Row};

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

pub(super) fn scenario_rows(scenarios: &[Option<&ScenarioResult>]) -> Vec<Row> {
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
