//! `compare` on crafted pairs of runs: a clear regression, a change within the
//! noise, an improvement, and runs that are not comparable.

mod common;

use common::suite;
use std::collections::BTreeMap;

use spark_report::compare::{CompareOptions, RunRecords, Verdict, compare, render_text};
use spark_results::{RequestRecord, SuiteResults};

/// Scales one engine's throughput-scenario TTFT p50 by `factor`.
fn with_ttft(mut suite: SuiteResults, service: &str, factor: f64) -> SuiteResults {
    let engine = suite
        .engines
        .iter_mut()
        .find(|e| e.service == service)
        .expect("engine in fixture");
    let scenario = &mut engine.results.as_mut().expect("results").scenarios[0];
    let ttft = &mut scenario.aggregate.ttft_ms;
    ttft.p50 = ttft.p50.map(|m| m * factor);
    suite
}

/// 64 successful throughput requests of `fp8-moe` with TTFTs spread evenly
/// over `centre` ± `spread`, in a scrambled order.
fn requests(centre: f64, spread: f64) -> BTreeMap<String, Vec<RequestRecord>> {
    let records = (0..64u32)
        .map(|i| {
            let at = f64::from((i * 37) % 64) / 63.0 * 2.0 - 1.0;
            let line = serde_json::json!({
                "scenario": "throughput", "request_idx": i, "request_id": format!("r{i}"),
                "scheduled_ms": null, "start_ms": 0.0, "sent_mono_ns": 0, "ttfb_ms": null,
                "ttft_ms": centre + at * spread, "e2e_ms": 1000.0, "tpot_ms": null,
                "itl_count": 0, "itl_min_ms": null, "itl_max_ms": null, "itl_mean_ms": null,
                "first_token_mono_ns": null, "last_token_mono_ns": null,
                "requested_input_tokens": 10, "input_tokens": 10, "requested_output_tokens": 10,
                "output_tokens": 10, "output_tokens_estimated": false, "short_output": false,
                "token_chunks": 10, "reasoning_chunks": 0, "prompt_tok_s": null,
                "decode_tok_s": null, "output_tok_s": null, "finish_reason": "length",
                "failure": null
            });
            serde_json::from_value(line).expect("a record")
        })
        .collect();
    BTreeMap::from([("fp8-moe".to_owned(), records)])
}

fn records(base: (f64, f64), cur: (f64, f64)) -> RunRecords {
    RunRecords {
        baseline: requests(base.0, base.1),
        current: requests(cur.0, cur.1),
    }
}

fn ttft_delta(
    baseline: &SuiteResults,
    current: &SuiteResults,
    records: &RunRecords,
) -> spark_report::compare::Delta {
    let comparison = compare(baseline, current, CompareOptions::default(), records);
    assert!(comparison.differences.is_empty(), "{comparison:?}");
    comparison
        .deltas
        .into_iter()
        .find(|d| d.service == "fp8-moe" && d.scenario == "throughput" && d.metric == "TTFT p50")
        .expect("a TTFT delta")
}

fn ttft_verdict(baseline: &SuiteResults, current: &SuiteResults, records: &RunRecords) -> Verdict {
    ttft_delta(baseline, current, records).verdict
}

#[test]
fn identical_runs_do_not_regress() {
    let comparison = compare(
        &suite(),
        &suite(),
        CompareOptions::default(),
        &RunRecords::default(),
    );
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
    // TTFT p50 60 ms → 72 ms (+20 %) over 64 requests with ±3 ms spread.
    let baseline = suite();
    let current = with_ttft(suite(), "fp8-moe", 1.2);
    let records = records((60.0, 3.0), (72.0, 3.0));
    let delta = ttft_delta(&baseline, &current, &records);
    assert_eq!(delta.verdict, Verdict::Regressed, "{delta:?}");
    // Judged from the requests, by a bootstrap, not from the aggregates.
    assert!(delta.p_value.is_some_and(|p| p < 0.01), "{delta:?}");
    assert!((delta.baseline - 60.0).abs() < 3.0, "{delta:?}");
    let comparison = compare(&baseline, &current, CompareOptions::default(), &records);
    assert!(comparison.regressed());
    let table = render_text(&comparison);
    assert!(table.contains("REGRESSED"), "{table}");
    assert!(table.contains("weak verdicts"), "{table}");
}

#[test]
fn a_move_within_the_noise_of_the_requests_is_not() {
    // +8 % is past the 5 % threshold, but with ±40 ms of per-request spread
    // over 64 requests the bootstrap does not find the move sure.
    let current = with_ttft(suite(), "fp8-moe", 1.08);
    let records = records((60.0, 40.0), (64.8, 40.0));
    assert_eq!(ttft_verdict(&suite(), &current, &records), Verdict::Noise);
    assert!(!compare(&suite(), &current, CompareOptions::default(), &records).regressed());
}

#[test]
fn without_records_the_threshold_alone_decides() {
    let current = with_ttft(suite(), "fp8-moe", 1.2);
    let delta = ttft_delta(&suite(), &current, &RunRecords::default());
    assert_eq!(delta.p_value, None);
    assert_eq!(delta.verdict, Verdict::Regressed);
    let small = with_ttft(suite(), "fp8-moe", 1.03);
    assert_eq!(
        ttft_verdict(&suite(), &small, &RunRecords::default()),
        Verdict::Unchanged
    );
}

#[test]
fn an_improvement_and_a_small_change_are_not_regressions() {
    let improved = records((60.0, 3.0), (48.0, 3.0));
    assert_eq!(
        ttft_verdict(&suite(), &with_ttft(suite(), "fp8-moe", 0.8), &improved),
        Verdict::Improved
    );
    let small = records((60.0, 3.0), (61.8, 3.0));
    assert_eq!(
        ttft_verdict(&suite(), &with_ttft(suite(), "fp8-moe", 1.03), &small),
        Verdict::Unchanged
    );
}

#[test]
fn a_different_image_is_not_comparable_unless_forced() {
    let baseline = suite();
    let mut current = with_ttft(suite(), "fp8-moe", 1.5);
    current.engines[0]
        .provenance
        .as_mut()
        .expect("provenance")
        .image_id = Some("sha256:0ther".to_owned());
    let none = RunRecords::default();
    let refused = compare(&baseline, &current, CompareOptions::default(), &none);
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
        &none,
    );
    assert!(forced.regressed());
}
