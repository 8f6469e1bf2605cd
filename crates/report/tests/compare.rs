//! `compare` on crafted pairs of runs: a clear regression, a change within the
//! noise, an improvement, and runs that are not comparable.

mod common;

use common::suite;
use spark_report::compare::{CompareOptions, Verdict, compare, render_text};
use spark_results::{Distribution, SuiteResults};

/// Scales one engine's throughput-scenario TTFT mean by `factor` and sets its
/// per-request spread (population standard deviation) to `stddev`.
fn with_ttft(mut suite: SuiteResults, service: &str, factor: f64, stddev: f64) -> SuiteResults {
    let engine = suite
        .engines
        .iter_mut()
        .find(|e| e.service == service)
        .expect("engine in fixture");
    let scenario = &mut engine.results.as_mut().expect("results").scenarios[0];
    let ttft: &mut Distribution = &mut scenario.aggregate.ttft_ms;
    ttft.mean = ttft.mean.map(|m| m * factor);
    ttft.stddev = Some(stddev);
    suite
}

fn ttft_verdict(baseline: &SuiteResults, current: &SuiteResults) -> Verdict {
    let comparison = compare(baseline, current, CompareOptions::default());
    assert!(comparison.differences.is_empty(), "{comparison:?}");
    comparison
        .deltas
        .iter()
        .find(|d| d.service == "fp8-moe" && d.scenario == "throughput" && d.metric == "TTFT mean")
        .map(|d| d.verdict)
        .expect("a TTFT delta")
}

#[test]
fn identical_runs_do_not_regress() {
    let comparison = compare(&suite(), &suite(), CompareOptions::default());
    assert!(!comparison.regressed());
    assert!(
        comparison
            .deltas
            .iter()
            .all(|d| d.verdict == Verdict::Unchanged)
    );
    // The crashed engine has no results on either side: said, not compared.
    assert!(
        comparison.missing.iter().any(|m| m.starts_with("crashy")),
        "{comparison:?}"
    );
}

#[test]
fn a_clear_regression_is_one() {
    // TTFT mean 60 ms → 72 ms (+20 %) over 64 requests with 3 ms spread.
    let baseline = with_ttft(suite(), "fp8-moe", 1.0, 3.0);
    let current = with_ttft(suite(), "fp8-moe", 1.2, 3.0);
    assert_eq!(ttft_verdict(&baseline, &current), Verdict::Regressed);
    assert!(compare(&baseline, &current, CompareOptions::default()).regressed());
    let table = render_text(&compare(&baseline, &current, CompareOptions::default()));
    assert!(table.contains("REGRESSED"), "{table}");
}

#[test]
fn a_move_within_the_noise_is_not() {
    // +8 % is past the 5 % threshold, but with 40 ms of per-request spread
    // over 64 requests the shift is not significant.
    let baseline = with_ttft(suite(), "fp8-moe", 1.0, 40.0);
    let current = with_ttft(suite(), "fp8-moe", 1.08, 40.0);
    assert_eq!(ttft_verdict(&baseline, &current), Verdict::Noise);
    assert!(!compare(&baseline, &current, CompareOptions::default()).regressed());
}

#[test]
fn an_improvement_and_a_small_change_are_not_regressions() {
    let baseline = with_ttft(suite(), "fp8-moe", 1.0, 3.0);
    assert_eq!(
        ttft_verdict(&baseline, &with_ttft(suite(), "fp8-moe", 0.8, 3.0)),
        Verdict::Improved
    );
    assert_eq!(
        ttft_verdict(&baseline, &with_ttft(suite(), "fp8-moe", 1.03, 3.0)),
        Verdict::Unchanged
    );
}

#[test]
fn a_different_image_is_not_comparable_unless_forced() {
    let baseline = suite();
    let mut current = with_ttft(suite(), "fp8-moe", 1.5, 3.0);
    current.engines[0]
        .provenance
        .as_mut()
        .expect("provenance")
        .image_id = Some("sha256:0ther".to_owned());
    let refused = compare(&baseline, &current, CompareOptions::default());
    assert!(refused.deltas.is_empty());
    assert_eq!(refused.differences.len(), 1, "{refused:?}");
    assert!(
        refused.differences[0].contains("image differs"),
        "{refused:?}"
    );
    let forced = compare(
        &baseline,
        &current,
        CompareOptions {
            force: true,
            ..CompareOptions::default()
        },
    );
    assert!(forced.regressed());
}
