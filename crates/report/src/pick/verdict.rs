//! "Which to run": one verdict per use case. A lead is weighed by the
//! comparison's rule ([`Row::winners`]: more than the standard deviations of
//! both, or 5 % where a figure has no spread), so a pick is a tie exactly
//! where the tables below would show no trophy.

use std::borrow::Cow;

use spark_results::{PickUseCase, PickVerdict};

use super::Entrant;
use super::figures::{self, Figure, LONG_CONTEXT_MIN_TOKENS, Measured};
use crate::compare_table::{Better, Format, Row};

/// What a use case compares.
struct Metric {
    /// As it reads after "lower"/"higher", e.g. `TTFT at c=1`.
    noun: Cow<'static, str>,
    unit: &'static str,
    better: Better,
    format: Format,
}

const TTFT_C1: Metric = Metric {
    noun: Cow::Borrowed("TTFT at c=1"),
    unit: "ms",
    better: Better::Lower,
    format: Format::OneDecimal,
};
const DECODE_C1: Metric = Metric {
    noun: Cow::Borrowed("single-user decode"),
    unit: "tok/s",
    better: Better::Higher,
    format: Format::OneDecimal,
};
const SATURATION: Metric = Metric {
    noun: Cow::Borrowed("output tok/s at saturation"),
    unit: "tok/s",
    better: Better::Higher,
    format: Format::OneDecimal,
};
const LONG_TTFT: Metric = Metric {
    noun: Cow::Borrowed("TTFT"),
    unit: "ms",
    better: Better::Lower,
    format: Format::OneDecimal,
};
const CAPACITY: Metric = Metric {
    noun: Cow::Borrowed("capacity within the SLO"),
    unit: "",
    better: Better::Higher,
    format: Format::OneDecimal,
};
const MEMORY: Metric = Metric {
    noun: Cow::Borrowed("runtime memory"),
    unit: "GB",
    better: Better::Lower,
    format: Format::Gigabytes,
};

/// An engine and its figure.
struct Candidate<'a> {
    engine: &'a str,
    figure: Measured,
}

/// The engines that have the figure (in name order) and, for the others,
/// why not.
fn gather<'a>(
    entrants: &[Entrant<'a>],
    figure: impl Fn(&Entrant<'a>) -> Figure,
) -> (Vec<Candidate<'a>>, Vec<(&'a str, String)>) {
    let mut candidates = Vec::new();
    let mut missing = Vec::new();
    for entrant in entrants {
        match figure(entrant) {
            Ok(figure) => candidates.push(Candidate {
                engine: entrant.name,
                figure,
            }),
            Err(why) => missing.push((entrant.name, why)),
        }
    }
    (candidates, missing)
}

/// The candidates' indexes best first (stable, so equal values keep name
/// order), and whether the best leads the next beyond the noise.
fn rank(candidates: &[Candidate<'_>], metric: &Metric) -> (Vec<usize>, bool) {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (candidates[a].figure.value, candidates[b].figure.value);
        match metric.better {
            Better::Lower => a.total_cmp(&b),
            Better::Higher => b.total_cmp(&a),
        }
    });
    let leads = order.len() >= 2
        && !row(&[&candidates[order[0]], &candidates[order[1]]], metric)
            .winners()
            .is_empty();
    (order, leads)
}

/// The comparison table's row of these candidates: its rule decides.
fn row(candidates: &[&Candidate<'_>], metric: &Metric) -> Row {
    Row {
        spread: candidates.iter().map(|c| c.figure.stddev).collect(),
        // The row's name is never printed: only its rule is used.
        ..Row::plain(
            "pick",
            metric.unit,
            Some(metric.better),
            metric.format,
            candidates.iter().map(|c| Some(c.figure.value)).collect(),
        )
    }
}

/// The candidates within the noise of the best (the best included).
fn tied_with_best<'c, 'a>(
    candidates: &'c [Candidate<'a>],
    order: &[usize],
    metric: &Metric,
) -> Vec<&'c Candidate<'a>> {
    let best = &candidates[order[0]];
    let mut tied = vec![best];
    for &idx in &order[1..] {
        let other = &candidates[idx];
        if row(&[best, other], metric).winners().is_empty() {
            tied.push(other);
        }
    }
    tied
}

fn margin_pct(best: f64, next: f64, better: Better) -> f64 {
    let lead = match better {
        Better::Lower => next - best,
        Better::Higher => best - next,
    };
    if next == 0.0 {
        0.0
    } else {
        100.0 * lead / next.abs()
    }
}

fn pct_text(pct: f64) -> String {
    if pct < 10.0 {
        format!("{pct:.1} %")
    } else {
        format!("{pct:.0} %")
    }
}

fn value_text(value: f64, metric: &Metric) -> String {
    let text = metric.format.apply(value);
    if metric.unit.is_empty() {
        text
    } else {
        format!("{text} {}", metric.unit)
    }
}

/// The verdict of one figure compared across the entrants.
fn decide(
    use_case: &str,
    rule: &str,
    metric: &Metric,
    candidates: &[Candidate<'_>],
    missing: &[(&str, String)],
) -> PickUseCase {
    let mut verdict = PickUseCase {
        use_case: use_case.to_owned(),
        rule: rule.to_owned(),
        left_out: missing
            .iter()
            .map(|(engine, why)| format!("{engine}: {why}"))
            .collect(),
        ..PickUseCase::default()
    };
    if candidates.len() < 2 {
        verdict.line = not_available(metric, candidates, missing);
        if candidates.is_empty() && shared_reason(missing).is_some() {
            // The line gives the one reason; listing it per engine says no more.
            verdict.left_out.clear();
        }
        return verdict;
    }
    let (order, leads) = rank(candidates, metric);
    let (best, next) = (&candidates[order[0]], &candidates[order[1]]);
    verdict.best = Some(best.engine.to_owned());
    if leads {
        let pct = margin_pct(best.figure.value, next.figure.value, metric.better);
        verdict.verdict = PickVerdict::Winner;
        verdict.next = vec![next.engine.to_owned()];
        verdict.margin_pct = Some(pct);
        verdict.line = format!(
            "{}: {} {} {} than {} ({} vs {})",
            best.engine,
            pct_text(pct),
            direction(metric.better),
            metric.noun,
            next.engine,
            metric.format.apply(best.figure.value),
            value_text(next.figure.value, metric),
        );
    } else {
        let tied = tied_with_best(candidates, &order, metric);
        verdict.verdict = PickVerdict::Tie;
        verdict.next = tied[1..].iter().map(|c| c.engine.to_owned()).collect();
        verdict.line = tie_line(&tied, metric);
    }
    verdict
}

fn direction(better: Better) -> &'static str {
    match better {
        Better::Lower => "lower",
        Better::Higher => "higher",
    }
}

fn tie_line(tied: &[&Candidate<'_>], metric: &Metric) -> String {
    let names: Vec<&str> = tied.iter().map(|c| c.engine).collect();
    let values: Vec<String> = tied
        .iter()
        .map(|c| metric.format.apply(c.figure.value))
        .collect();
    format!(
        "tie: {} within the noise on {} ({} {})",
        names.join(", "),
        metric.noun,
        values.join(" vs "),
        metric.unit
    )
    .trim_end()
    .to_owned()
}

fn not_available(
    metric: &Metric,
    candidates: &[Candidate<'_>],
    missing: &[(&str, String)],
) -> String {
    if let [only] = candidates {
        return format!(
            "N/A: only {} has {}, nothing to compare it with",
            only.engine, metric.noun
        );
    }
    if missing.is_empty() {
        return "N/A: no engine was measured to the end".to_owned();
    }
    match shared_reason(missing) {
        Some(why) => format!("N/A: {}: {why}", metric.noun),
        None => format!("N/A: no engine has {}", metric.noun),
    }
}

/// The reason every engine gives, when they all give the same one.
fn shared_reason<'m>(missing: &'m [(&str, String)]) -> Option<&'m str> {
    let (_, first) = missing.first()?;
    missing
        .iter()
        .all(|(_, why)| why == first)
        .then_some(first.as_str())
}

pub(super) fn interactive_chat(entrants: &[Entrant<'_>]) -> PickUseCase {
    let rule = "Lowest TTFT p50 of one user (the latency scenario); where that is a tie within the noise, the faster single-user decode breaks it.";
    let (candidates, missing) = gather(entrants, |e| figures::ttft_c1(e.results));
    let mut verdict = decide("interactive chat", rule, &TTFT_C1, &candidates, &missing);
    if verdict.verdict != PickVerdict::Tie {
        return verdict;
    }
    // The tie-break: decode speed among the engines tied on TTFT.
    let (order, _) = rank(&candidates, &TTFT_C1);
    let tied: Vec<&str> = tied_with_best(&candidates, &order, &TTFT_C1)
        .iter()
        .map(|c| c.engine)
        .collect();
    let tied_entrants: Vec<Entrant<'_>> = entrants
        .iter()
        .filter(|e| tied.contains(&e.name))
        .map(|e| Entrant {
            name: e.name,
            results: e.results,
            telemetry: e.telemetry,
        })
        .collect();
    let (decode, _) = gather(&tied_entrants, |e| figures::decode_c1(e.results));
    if decode.len() < 2 {
        return verdict;
    }
    let (order, leads) = rank(&decode, &DECODE_C1);
    let (best, next) = (&decode[order[0]], &decode[order[1]]);
    if leads {
        let pct = margin_pct(best.figure.value, next.figure.value, Better::Higher);
        verdict.verdict = PickVerdict::Winner;
        verdict.best = Some(best.engine.to_owned());
        verdict.next = vec![next.engine.to_owned()];
        verdict.margin_pct = Some(pct);
        verdict.line = format!(
            "{}: TTFT at c=1 a tie with {} within the noise; {} higher single-user decode ({} vs {})",
            best.engine,
            tied.iter()
                .filter(|name| **name != best.engine)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            pct_text(pct),
            DECODE_C1.format.apply(best.figure.value),
            value_text(next.figure.value, &DECODE_C1),
        );
    } else {
        verdict.line = format!("{}; decode a tie too", verdict.line);
    }
    verdict
}

pub(super) fn batch(entrants: &[Entrant<'_>]) -> PickUseCase {
    let (candidates, missing) = gather(entrants, |e| figures::saturation_output(e.results));
    // Which figure each engine brought: its sweep's saturated level, or the
    // throughput scenario where it ran no sweep.
    let sources: Vec<String> = candidates
        .iter()
        .map(|c| format!("{} from {}", c.engine, c.figure.source))
        .collect();
    let mut rule = "Highest output tok/s at saturation: the concurrency sweep's steady output throughput at the level it saturated at (its highest level when it never saturated), else the throughput scenario's.".to_owned();
    if !sources.is_empty() {
        rule = format!("{} Here: {}.", rule, sources.join("; "));
    }
    decide("batch", &rule, &SATURATION, &candidates, &missing)
}

pub(super) fn long_documents(entrants: &[Entrant<'_>]) -> PickUseCase {
    let rule_text = format!(
        "Lowest TTFT p50 at the longest context that every engine ran (one user, at least {LONG_CONTEXT_MIN_TOKENS} input tokens)."
    );
    // Engines with no long context at all are left out; the rest are
    // compared at the longest length they all share.
    let mut common: Option<Vec<u32>> = None;
    for entrant in entrants {
        let lengths = figures::long_contexts(entrant.results);
        if lengths.is_empty() {
            continue;
        }
        common = Some(match common {
            None => lengths,
            Some(so_far) => so_far.into_iter().filter(|l| lengths.contains(l)).collect(),
        });
    }
    let length = common.and_then(|lengths| lengths.into_iter().max());
    let (candidates, missing) = gather(entrants, |e| match length {
        Some(tokens) if !figures::long_contexts(e.results).is_empty() => {
            figures::ttft_at_context(e.results, tokens)
        }
        _ => figures::longest_context_ttft(e.results).map(|(_, figure)| figure),
    });
    let metric = Metric {
        noun: match length {
            Some(tokens) => Cow::Owned(format!("TTFT at {tokens} input tokens")),
            None => Cow::Borrowed("TTFT at a long context"),
        },
        ..LONG_TTFT
    };
    let mut verdict = decide("long documents", &rule_text, &metric, &candidates, &missing);
    if length.is_none() && candidates.len() >= 2 {
        // Every engine has long contexts, but no length in common.
        verdict = PickUseCase {
            verdict: spark_results::PickVerdict::NotAvailable,
            best: None,
            next: Vec::new(),
            margin_pct: None,
            line: "N/A: no context length that every engine ran".to_owned(),
            ..verdict
        };
    }
    verdict
}

pub(super) fn capacity(entrants: &[Entrant<'_>]) -> PickUseCase {
    let rule = "Most load within the SLO (the largest concurrency of the sweep at which every objective holds).";
    let (candidates, missing) = gather(entrants, |e| figures::capacity_within_slo(e.results));
    decide("capacity", rule, &CAPACITY, &candidates, &missing)
}

pub(super) fn memory_constrained(entrants: &[Entrant<'_>]) -> PickUseCase {
    let rule = "Lowest runtime memory while serving.";
    let (candidates, missing) = gather(entrants, |e| figures::runtime_memory_gb(e.telemetry));
    decide("memory-constrained", rule, &MEMORY, &candidates, &missing)
}
