//! The pick: "which service should I run?" answered from a run's results.
//! A summary table (per engine: TTFT and decode speed of one user, output
//! tok/s at saturation, capacity within the SLO, TTFT at the longest context,
//! model size and runtime memory) and "which to run", one verdict per use
//! case, each decided by the comparison's own noise rule
//! ([`crate::compare_table::Row::winners`]), so the pick never calls a win
//! that the tables below call a tie. Pure: every report opens with it and
//! the JSON stores it (docs/METRICS.md, "The pick", has the rules).

pub mod figures;
pub mod sections;
mod verdict;

use spark_results::{
    EngineOutcome, EngineRun, EngineTelemetry, Pick, PickFigure, PickSummaryRow, PickUseCase,
    RunResults, SuiteResults,
};

use figures::Figure;

/// The use cases, in the order every report lists them.
pub const USE_CASES: [&str; 5] = [
    "interactive chat",
    "batch",
    "long documents",
    "capacity",
    "memory-constrained",
];

/// The pick of a run.
pub fn pick(suite: &SuiteResults) -> Pick {
    let mut entrants: Vec<Entrant<'_>> = suite
        .engines
        .iter()
        .filter_map(|engine| match excluded(engine) {
            Some(_) => None,
            None => engine.results.as_ref().map(|results| Entrant {
                name: engine.service.as_str(),
                results,
                telemetry: engine.telemetry.as_ref(),
            }),
        })
        .collect();
    // Stable on names, so equal values always resolve the same way.
    entrants.sort_by(|a, b| a.name.cmp(b.name));
    Pick {
        summary: suite.engines.iter().map(summary_row).collect(),
        use_cases: vec![
            verdict::interactive_chat(&entrants),
            verdict::batch(&entrants),
            verdict::long_documents(&entrants),
            verdict::capacity(&entrants),
            verdict::memory_constrained(&entrants),
        ],
    }
}

/// The use case of that name in a pick.
pub fn use_case<'a>(pick: &'a Pick, name: &str) -> Option<&'a PickUseCase> {
    pick.use_cases.iter().find(|u| u.use_case == name)
}

/// An engine that takes part: measured to the end, with results.
pub(crate) struct Entrant<'a> {
    pub(crate) name: &'a str,
    pub(crate) results: &'a RunResults,
    pub(crate) telemetry: Option<&'a EngineTelemetry>,
}

/// Why an engine takes no part in the pick, `None` when it does: a failed
/// or interrupted engine's figures are partial at best.
fn excluded(engine: &EngineRun) -> Option<String> {
    let reason = match &engine.outcome {
        EngineOutcome::Ok if engine.results.is_some() => return None,
        EngineOutcome::Ok => "no results".to_owned(),
        EngineOutcome::Failed { phase, reason } => format!("failed in {phase}: {reason}"),
        EngineOutcome::Interrupted => "interrupted".to_owned(),
    };
    Some(reason.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn summary_row(engine: &EngineRun) -> PickSummaryRow {
    let mut row = PickSummaryRow {
        engine: engine.service.clone(),
        ..PickSummaryRow::default()
    };
    let (Some(results), None) = (&engine.results, excluded(engine)) else {
        let why = excluded(engine).unwrap_or_default();
        row.excluded = Some(why.clone());
        let na = || PickFigure {
            not_available: Some(why.clone()),
            ..PickFigure::default()
        };
        row.ttft_c1_ms = na();
        row.decode_c1_tok_s = na();
        row.saturation_output_tok_s = na();
        row.capacity_within_slo = na();
        row.longest_context_ttft_ms = na();
        row.model_size_gb = na();
        row.runtime_memory_gb = na();
        return row;
    };
    row.ttft_c1_ms = record(figures::ttft_c1(results));
    row.decode_c1_tok_s = record(figures::decode_c1(results));
    row.saturation_output_tok_s = record(figures::saturation_output(results));
    row.capacity_within_slo = record(figures::capacity_within_slo(results));
    match figures::longest_context_ttft(results) {
        Ok((tokens, figure)) => {
            row.longest_context_tokens = Some(tokens);
            row.longest_context_ttft_ms = record(Ok(figure));
        }
        Err(why) => row.longest_context_ttft_ms = record(Err(why)),
    }
    row.model_size_gb = record(figures::model_size_gb(engine.telemetry.as_ref()));
    row.runtime_memory_gb = record(figures::runtime_memory_gb(engine.telemetry.as_ref()));
    row
}

fn record(figure: Figure) -> PickFigure {
    match figure {
        Ok(measured) => PickFigure {
            value: Some(measured.value),
            stddev: measured.stddev,
            source: Some(measured.source),
            not_available: None,
        },
        Err(why) => PickFigure {
            not_available: Some(why),
            ..PickFigure::default()
        },
    }
}
