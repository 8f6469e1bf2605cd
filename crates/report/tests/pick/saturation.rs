//! Output tok/s at saturation: from the concurrency sweep's saturated level
//! where the engine ran a sweep (its highest level when it never
//! saturated), from the throughput scenario otherwise, and the batch
//! verdict's rule says which figure each engine brought.

use spark_report::pick::{pick, use_case};
use spark_results::{EngineRun, PickVerdict, SweepLevel};

use super::{Measured, Spec, engine, scenario, suite, three};

/// Adds sweep levels to an engine: (level, steady output tok/s, whole
/// scenario's output tok/s), all marked `saturated_at`.
fn with_sweep(
    mut engine: EngineRun,
    levels: &[(u32, f64, f64)],
    saturated_at: Option<u32>,
) -> EngineRun {
    let results = engine.results.as_mut().expect("results");
    for &(level, steady, whole) in levels {
        let mut level_result = scenario(
            &format!("sweep-c{level}"),
            256,
            level,
            Measured {
                ttft: (100.0, 5.0),
                decode: (40.0, 2.0),
                output_tok_s: whole,
            },
        );
        level_result.sweep = Some(SweepLevel {
            level,
            steady_window_start_s: 1.0,
            steady_window_end_s: 9.0,
            steady_n_ok: 40,
            steady_request_throughput_rps: Some(steady / 256.0),
            steady_output_throughput_tok_s: Some(steady),
            saturated_at,
        });
        results.scenarios.push(level_result);
    }
    engine
}

#[test]
fn the_sweeps_saturated_level_gives_output_tok_s_at_saturation() {
    let mut engines = three();
    // bulk's throughput scenario says 1000 tok/s, its sweep saturated at
    // c=4 with 700 tok/s steady (c=16 measured more, but past the knee, and
    // the whole c=4 scenario less, ramp-up and drain included).
    let bulk = engines.remove(1);
    engines.insert(
        1,
        with_sweep(
            bulk,
            &[(1, 200.0, 150.0), (4, 700.0, 600.0), (16, 720.0, 650.0)],
            Some(4),
        ),
    );
    let pick = pick(&suite(engines));
    let bulk = &pick.summary[1];
    assert_eq!(bulk.engine, "bulk");
    assert_eq!(bulk.saturation_output_tok_s.value, Some(700.0));
    assert_eq!(
        bulk.saturation_output_tok_s.source.as_deref(),
        Some("sweep-c4 (c=4, the level the sweep saturated at; steady window)")
    );
    // snappy ran no sweep: its throughput scenario stands in.
    assert_eq!(pick.summary[0].saturation_output_tok_s.value, Some(500.0));
    let batch = use_case(&pick, "batch").expect("batch");
    assert_eq!(batch.verdict, PickVerdict::Winner);
    assert_eq!(
        batch.line,
        "bulk: 40 % higher output tok/s at saturation than snappy (700.0 vs 500.0 tok/s)"
    );
    assert!(
        batch.rule.ends_with(
            "Here: bulk from sweep-c4 (c=4, the level the sweep saturated at; steady window); small from the throughput scenario (c=16; no concurrency sweep); snappy from the throughput scenario (c=16; no concurrency sweep)."
        ),
        "{}",
        batch.rule
    );
}

#[test]
fn a_sweep_that_never_saturated_gives_its_highest_level_and_needs_no_throughput_scenario() {
    let spec = |name| Spec {
        name,
        ttft: (100.0, 5.0),
        decode: (50.0, 2.0),
        throughput: 9999.0,
        long: &[],
    };
    let mut rising = with_sweep(
        engine(&spec("rising")),
        &[(1, 100.0, 90.0), (4, 380.0, 300.0), (16, 1500.0, 1200.0)],
        None,
    );
    // Without the throughput scenario the sweep still gives the figure.
    rising
        .results
        .as_mut()
        .expect("results")
        .scenarios
        .retain(|s| s.name != "throughput");
    let flat = with_sweep(
        engine(&spec("flat")),
        &[(1, 100.0, 90.0), (4, 300.0, 280.0)],
        Some(1),
    );
    let pick = pick(&suite(vec![rising, flat]));
    let rising = &pick.summary[0];
    assert_eq!(rising.saturation_output_tok_s.value, Some(1500.0));
    assert_eq!(
        rising.saturation_output_tok_s.source.as_deref(),
        Some("sweep-c16 (c=16, the highest level; the sweep never saturated; steady window)")
    );
    // flat's throughput scenario (9999 tok/s) is ignored: it ran a sweep.
    assert_eq!(pick.summary[1].saturation_output_tok_s.value, Some(100.0));
    let batch = use_case(&pick, "batch").expect("batch");
    assert_eq!(batch.best.as_deref(), Some("rising"));
    assert!(
        batch
            .rule
            .contains("flat from sweep-c1 (c=1, the level the sweep saturated at; steady window)"),
        "{}",
        batch.rule
    );
}

#[test]
fn a_steady_window_no_answer_ended_in_gives_the_whole_levels_throughput() {
    let mut engine = with_sweep(
        engine(&Spec {
            name: "short",
            ttft: (100.0, 5.0),
            decode: (50.0, 2.0),
            throughput: 9999.0,
            long: &[],
        }),
        &[(1, 100.0, 90.0), (4, 0.0, 350.0)],
        None,
    );
    let results = engine.results.as_mut().expect("results");
    let c4 = results
        .scenarios
        .last_mut()
        .and_then(|s| s.sweep.as_mut())
        .expect("c4");
    c4.steady_n_ok = 0;
    let pick = pick(&suite(vec![engine]));
    let figure = &pick.summary[0].saturation_output_tok_s;
    assert_eq!(figure.value, Some(350.0));
    assert_eq!(
        figure.source.as_deref(),
        Some("sweep-c4 (c=4, the highest level; the sweep never saturated; whole scenario)")
    );
}

#[test]
fn without_a_sweep_or_a_throughput_scenario_saturation_is_na_with_both_reasons() {
    let mut engines = three();
    for engine in &mut engines {
        engine
            .results
            .as_mut()
            .expect("results")
            .scenarios
            .retain(|s| s.name != "throughput");
    }
    let pick = pick(&suite(engines));
    assert_eq!(
        pick.summary[0]
            .saturation_output_tok_s
            .not_available
            .as_deref(),
        Some("no concurrency sweep, and the throughput scenario was not in this run")
    );
    let batch = use_case(&pick, "batch").expect("batch");
    assert_eq!(batch.verdict, PickVerdict::NotAvailable);
}
