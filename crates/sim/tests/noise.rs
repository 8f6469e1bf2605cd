//! Run-to-run drift and per-request jitter: the noise a nightly history's
//! verdicts must tell from a real slowdown. Gaps are read from the truth
//! log: the sim sends on absolute deadlines, so a gap averaged over a whole
//! stream is its schedule, whatever the machine's load did to one token.

mod common;

use common::{args, post, read_stream, start, temp_path, truth_lines};
use serde_json::json;

/// Mean inter-token gap of each logged request, in milliseconds.
fn mean_gaps_ms(truth: &std::path::Path) -> Vec<f64> {
    truth_lines(truth)
        .iter()
        .map(|line| {
            let times: Vec<u64> = line["token_mono_ns"]
                .as_array()
                .expect("token times")
                .iter()
                .map(|t| t.as_u64().expect("ns"))
                .collect();
            let span = (times[times.len() - 1] - times[0]) as f64;
            span / (times.len() - 1) as f64 / 1e6
        })
        .collect()
}

async fn generate(sim: &common::Running, tokens: u32) {
    let response = post(
        sim,
        "/v1/completions",
        json!({"prompt": "hello", "max_tokens": tokens, "ignore_eos": true, "stream": true}),
    )
    .await;
    let (_, err) = read_stream(response).await;
    assert!(err.is_none(), "{err:?}");
}

#[test]
fn the_drift_factor_is_one_per_seed_and_within_its_bounds() {
    let mut a = args();
    a.run_drift_pct = 5.0;
    let factors: Vec<f64> = (0..200)
        .map(|seed| {
            a.seed = seed;
            a.drift_factor()
        })
        .collect();
    assert!(
        factors.iter().all(|f| (0.95..=1.05).contains(f)),
        "{factors:?}"
    );
    assert!(factors.iter().any(|f| *f < 0.97) && factors.iter().any(|f| *f > 1.03));
    a.seed = 7;
    assert_eq!(a.drift_factor(), factors[7]);
    a.run_drift_pct = 0.0;
    assert_eq!(a.drift_factor(), 1.0);
}

#[tokio::test]
async fn run_drift_scales_every_decode_gap_of_the_process() {
    let mut a = args();
    a.decode_ms = Some(10.0);
    a.run_drift_pct = 30.0;
    // A seed whose factor is far from 1, so nominal and drifted differ.
    a.seed = (0..1000)
        .find(|&seed| {
            a.seed = seed;
            a.drift_factor() > 1.2
        })
        .expect("a seed with a large drift");
    let factor = a.drift_factor();
    let truth = temp_path("drift.jsonl");
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    generate(&sim, 41).await;
    sim.stop().await;
    let gap = mean_gaps_ms(&truth)[0];
    let expected = 10.0 * factor;
    assert!(
        (gap - expected).abs() < expected * 0.07,
        "mean gap {gap:.2} ms, expected {expected:.2} ms (factor {factor:.3})"
    );
}

#[tokio::test]
async fn jitter_gives_each_request_its_own_pace() {
    let mut a = args();
    a.decode_ms = Some(5.0);
    a.jitter_pct = 20.0;
    a.seed = 3;
    let truth = temp_path("jitter.jsonl");
    a.truth_log = Some(truth.clone());
    let sim = start(a).await;
    for _ in 0..8 {
        generate(&sim, 21).await;
    }
    sim.stop().await;
    let gaps = mean_gaps_ms(&truth);
    assert_eq!(gaps.len(), 8);
    let (min, max) = gaps
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), g| (lo.min(*g), hi.max(*g)));
    // ±20 %: the paces spread, and none is beyond the bound (plus a margin
    // for a busy machine's late last token).
    assert!(max / min > 1.08, "{gaps:?}");
    assert!(min > 5.0 * 0.8 - 0.1 && max < 5.0 * 1.2 * 1.1, "{gaps:?}");
}

#[tokio::test]
async fn noise_outside_its_range_is_refused() {
    let mut a = args();
    a.jitter_pct = 80.0;
    let err = spark_sim::Sim::bind(a).await.expect_err("refused");
    assert!(err.to_string().contains("--jitter-pct"), "{err}");
}
