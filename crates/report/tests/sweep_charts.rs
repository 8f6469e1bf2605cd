//! The concurrency sweep's charts in the HTML report: present with a sweep,
//! the SLO drawn only where one bounds the chart's metric, and a one-line
//! note instead when no engine ran a sweep.

mod common;

use spark_report::render::{self, sweep};

#[test]
fn without_a_sweep_the_report_says_why_there_are_no_sweep_charts() {
    let html = render::html::render(&common::suite());
    assert!(html.contains(sweep::NO_SWEEP_NOTE), "no note");
    assert!(!html.contains(sweep::FRONTIER_ID));
    assert!(!html.contains(sweep::TTFT_LOAD_ID));
}

#[test]
fn a_sweep_draws_both_charts_and_the_slo_only_where_it_bounds_their_metric() {
    let html = render::html::render(&common::swept_suite());
    assert!(!html.contains(sweep::NO_SWEEP_NOTE));
    assert!(html.contains(sweep::FRONTIER_ID) && html.contains(sweep::TTFT_LOAD_ID));
    assert!(html.contains("class=\"slo-region\""));
    assert_eq!(html.matches("class=\"slo-line\"").count(), 2);

    // Without the TPOT objective: no region on the frontier, the TTFT line stays.
    let mut ttft_only = common::swept_suite();
    for engine in &mut ttft_only.engines {
        for scenario in engine
            .results
            .iter_mut()
            .flat_map(|r| r.scenarios.iter_mut())
        {
            if let Some(slo) = &mut scenario.slo {
                slo.objectives.retain(|o| o.key != "tpot_p90");
            }
        }
    }
    let html = render::html::render(&ttft_only);
    assert!(!html.contains("class=\"slo-region\""));
    assert_eq!(html.matches("class=\"slo-line\"").count(), 1);
    assert!(
        html.contains("SLO ttft_p90 ≤ 500 ms<"),
        "one SLO for all: no names"
    );
}

#[test]
fn engines_held_to_different_slos_each_get_their_line_named() {
    let mut suite = common::swept_suite();
    let engine = &mut suite.engines[1];
    for scenario in engine
        .results
        .iter_mut()
        .flat_map(|r| r.scenarios.iter_mut())
    {
        if let Some(slo) = &mut scenario.slo {
            for objective in &mut slo.objectives {
                if objective.key == "ttft_p90" {
                    objective.limit_ms = 2000.0;
                }
            }
        }
    }
    let html = render::html::render(&suite);
    assert!(html.contains("SLO ttft_p90 ≤ 500 ms (fp8-moe)"), "{html}");
    assert!(html.contains("SLO ttft_p90 ≤ 2000 ms (bf16-dense)"));
}
