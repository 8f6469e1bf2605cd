//! The pick section of every renderer, on three engines that each win
//! something and one that failed; and each report opens with it.

use expect_test::{Expect, expect};
use spark_report::pick::{pick, sections};
use spark_report::render::{self, text::TextStyle};
use spark_results::{EngineOutcome, EngineRun, SuiteResults};

fn crafted() -> SuiteResults {
    let mut engines = super::three();
    engines.push(EngineRun {
        service: "crashy".to_owned(),
        flavor: "vllm".to_owned(),
        model: None,
        outcome: EngineOutcome::Failed {
            phase: "health".to_owned(),
            reason: "container exited with code 2 while loading".to_owned(),
        },
        startup: None,
        provenance: None,
        results: None,
        telemetry: None,
    });
    super::suite(engines)
}

fn check(actual: &str, expect: &Expect) {
    expect.assert_eq(actual);
}

#[test]
fn text_section() {
    let mut out = String::new();
    sections::text(&mut out, &pick(&crafted()));
    check(
        &out,
        &expect![[r#"
            The pick
            ┌────────┬───────────────┬────────────────────┬────────────────────┬────────────────┬────────────────────────┬────────────┬─────────────┐
            │ engine │ TTFT c=1 (ms) │ decode c=1 (tok/s) │ saturation (tok/s) │ capacity (SLO) │ long-context TTFT (ms) │ model (GB) │ memory (GB) │
            ├────────┼───────────────┼────────────────────┼────────────────────┼────────────────┼────────────────────────┼────────────┼─────────────┤
            │ snappy │          50.0 │               40.0 │              500.0 │            N/A │       900.0 @ 8192 tok │        N/A │         N/A │
            │ bulk   │         100.0 │               80.0 │             1000.0 │            N/A │       600.0 @ 8192 tok │        N/A │         N/A │
            │ small  │         200.0 │               30.0 │              300.0 │            N/A │       100.0 @ 1024 tok │        N/A │         N/A │
            │ crashy │           N/A │                N/A │                N/A │            N/A │                    N/A │        N/A │         N/A │
            └────────┴───────────────┴────────────────────┴────────────────────┴────────────────┴────────────────────────┴────────────┴─────────────┘
              crashy is left out of the pick: failed in health: container exited with code 2 while loading
              capacity (SLO) N/A: not measured (needs the concurrency sweep and an SLO)
              model (GB) N/A: not measured (no telemetry in these results)
              memory (GB) N/A: not measured (no telemetry in these results)

            Which to run
              interactive chat → snappy: 50 % lower TTFT at c=1 than bulk (50.0 vs 100.0 ms)
                  why: Lowest TTFT p50 of one user (the latency scenario); where that is a tie within the noise, the faster single-user decode breaks it.
              batch → bulk: 100 % higher output tok/s at saturation than snappy (1000.0 vs 500.0 tok/s)
                  why: Highest output tok/s at saturation: the concurrency sweep's steady output throughput at the level it saturated at (its highest level when it never saturated), else the throughput scenario's. Here: bulk from the throughput scenario (c=16; no concurrency sweep); small from the throughput scenario (c=16; no concurrency sweep); snappy from the throughput scenario (c=16; no concurrency sweep).
              long documents → small: 33 % lower TTFT at 1024 input tokens than bulk (100.0 vs 150.0 ms)
                  why: Lowest TTFT p50 at the longest context that every engine ran (one user, at least 1024 input tokens).
              capacity → N/A: capacity within the SLO: not measured (needs the concurrency sweep and an SLO)
                  why: Most load within the SLO (the largest concurrency of the sweep at which every objective holds).
              memory-constrained → N/A: runtime memory: not measured (no telemetry in these results)
                  why: Lowest runtime memory while serving.
              A lead counts only beyond the noise: by more than the standard deviations of both engines' requests (by 5 % where a figure has no spread), the rule of the trophies in the tables; otherwise it is a tie.

        "#]],
    );
}

#[test]
fn markdown_section() {
    let mut out = String::new();
    sections::markdown(&mut out, &pick(&crafted()), |s| s.to_owned());
    check(
        &out,
        &expect![[r#"
            ## The pick

            | engine | TTFT c=1 (ms) | decode c=1 (tok/s) | saturation (tok/s) | capacity (SLO) | long-context TTFT (ms) | model (GB) | memory (GB) |
            | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
            | snappy | 50.0 | 40.0 | 500.0 | N/A | 900.0 @ 8192 tok | N/A | N/A |
            | bulk | 100.0 | 80.0 | 1000.0 | N/A | 600.0 @ 8192 tok | N/A | N/A |
            | small | 200.0 | 30.0 | 300.0 | N/A | 100.0 @ 1024 tok | N/A | N/A |
            | crashy | N/A | N/A | N/A | N/A | N/A | N/A | N/A |

            - crashy is left out of the pick: failed in health: container exited with code 2 while loading
            - capacity (SLO) N/A: not measured (needs the concurrency sweep and an SLO)
            - model (GB) N/A: not measured (no telemetry in these results)
            - memory (GB) N/A: not measured (no telemetry in these results)

            ### Which to run

            | use case | pick | why |
            | --- | --- | --- |
            | interactive chat | snappy: 50 % lower TTFT at c=1 than bulk (50.0 vs 100.0 ms) | Lowest TTFT p50 of one user (the latency scenario); where that is a tie within the noise, the faster single-user decode breaks it. |
            | batch | bulk: 100 % higher output tok/s at saturation than snappy (1000.0 vs 500.0 tok/s) | Highest output tok/s at saturation: the concurrency sweep's steady output throughput at the level it saturated at (its highest level when it never saturated), else the throughput scenario's. Here: bulk from the throughput scenario (c=16; no concurrency sweep); small from the throughput scenario (c=16; no concurrency sweep); snappy from the throughput scenario (c=16; no concurrency sweep). |
            | long documents | small: 33 % lower TTFT at 1024 input tokens than bulk (100.0 vs 150.0 ms) | Lowest TTFT p50 at the longest context that every engine ran (one user, at least 1024 input tokens). |
            | capacity | N/A: capacity within the SLO: not measured (needs the concurrency sweep and an SLO) | Most load within the SLO (the largest concurrency of the sweep at which every objective holds). |
            | memory-constrained | N/A: runtime memory: not measured (no telemetry in these results) | Lowest runtime memory while serving. |

            A lead counts only beyond the noise: by more than the standard deviations of both engines' requests (by 5 % where a figure has no spread), the rule of the trophies in the tables; otherwise it is a tie.

        "#]],
    );
}

#[test]
fn html_section() {
    let mut out = String::new();
    sections::html(&mut out, &pick(&crafted()));
    check(
        &out,
        &expect![[r#"
            <section id="pick"><h2>The pick</h2>
            <table class="pick"><thead><tr><th>engine</th><th>TTFT c=1 (ms)</th><th>decode c=1 (tok/s)</th><th>saturation (tok/s)</th><th>capacity (SLO)</th><th>long-context TTFT (ms)</th><th>model (GB)</th><th>memory (GB)</th></tr></thead><tbody>
            <tr><td>snappy</td><td class="num">50.0</td><td class="num">40.0</td><td class="num">500.0</td><td class="na">N/A</td><td class="num">900.0 @ 8192 tok</td><td class="na">N/A</td><td class="na">N/A</td></tr>
            <tr><td>bulk</td><td class="num">100.0</td><td class="num">80.0</td><td class="num">1000.0</td><td class="na">N/A</td><td class="num">600.0 @ 8192 tok</td><td class="na">N/A</td><td class="na">N/A</td></tr>
            <tr><td>small</td><td class="num">200.0</td><td class="num">30.0</td><td class="num">300.0</td><td class="na">N/A</td><td class="num">100.0 @ 1024 tok</td><td class="na">N/A</td><td class="na">N/A</td></tr>
            <tr><td>crashy</td><td class="na">N/A</td><td class="na">N/A</td><td class="na">N/A</td><td class="na">N/A</td><td class="na">N/A</td><td class="na">N/A</td><td class="na">N/A</td></tr>
            </tbody></table>
            <ul class="pick-na">
            <li>crashy is left out of the pick: failed in health: container exited with code 2 while loading</li>
            <li>capacity (SLO) N/A: not measured (needs the concurrency sweep and an SLO)</li>
            <li>model (GB) N/A: not measured (no telemetry in these results)</li>
            <li>memory (GB) N/A: not measured (no telemetry in these results)</li>
            </ul>
            <h3>Which to run</h3>
            <table class="pick"><thead><tr><th>use case</th><th>pick</th><th>why</th></tr></thead><tbody>
            <tr class="winner"><td>interactive chat</td><td>snappy: 50 % lower TTFT at c=1 than bulk (50.0 vs 100.0 ms)</td><td>Lowest TTFT p50 of one user (the latency scenario); where that is a tie within the noise, the faster single-user decode breaks it.</td></tr>
            <tr class="winner"><td>batch</td><td>bulk: 100 % higher output tok/s at saturation than snappy (1000.0 vs 500.0 tok/s)</td><td>Highest output tok/s at saturation: the concurrency sweep&#39;s steady output throughput at the level it saturated at (its highest level when it never saturated), else the throughput scenario&#39;s. Here: bulk from the throughput scenario (c=16; no concurrency sweep); small from the throughput scenario (c=16; no concurrency sweep); snappy from the throughput scenario (c=16; no concurrency sweep).</td></tr>
            <tr class="winner"><td>long documents</td><td>small: 33 % lower TTFT at 1024 input tokens than bulk (100.0 vs 150.0 ms)</td><td>Lowest TTFT p50 at the longest context that every engine ran (one user, at least 1024 input tokens).</td></tr>
            <tr class="na"><td>capacity</td><td>N/A: capacity within the SLO: not measured (needs the concurrency sweep and an SLO)</td><td>Most load within the SLO (the largest concurrency of the sweep at which every objective holds).</td></tr>
            <tr class="na"><td>memory-constrained</td><td>N/A: runtime memory: not measured (no telemetry in these results)</td><td>Lowest runtime memory while serving.</td></tr>
            </tbody></table>
            <p class="meta">A lead counts only beyond the noise: by more than the standard deviations of both engines&#39; requests (by 5 % where a figure has no spread), the rule of the trophies in the tables; otherwise it is a tie.</p></section>
        "#]],
    );
}

#[test]
fn json_pick_object() {
    let json: serde_json::Value = serde_json::from_str(&render::json(&crafted())).expect("JSON");
    let use_cases: Vec<String> = json["pick"]["use_cases"]
        .as_array()
        .expect("use cases")
        .iter()
        .map(|u| format!("{} [{}]: {}", u["use_case"], u["verdict"], u["line"]))
        .collect();
    check(
        &use_cases.join("\n"),
        &expect![[r#"
            "interactive chat" ["winner"]: "snappy: 50 % lower TTFT at c=1 than bulk (50.0 vs 100.0 ms)"
            "batch" ["winner"]: "bulk: 100 % higher output tok/s at saturation than snappy (1000.0 vs 500.0 tok/s)"
            "long documents" ["winner"]: "small: 33 % lower TTFT at 1024 input tokens than bulk (100.0 vs 150.0 ms)"
            "capacity" ["not_available"]: "N/A: capacity within the SLO: not measured (needs the concurrency sweep and an SLO)"
            "memory-constrained" ["not_available"]: "N/A: runtime memory: not measured (no telemetry in these results)""#]],
    );
    assert_eq!(
        json["pick"]["summary"][3]["excluded"],
        "failed in health: container exited with code 2 while loading"
    );
    assert_eq!(
        json["pick"]["summary"][1]["saturation_output_tok_s"]["value"],
        1000.0
    );
    // And it conforms to the committed schema, every field of the pick set.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/results.schema.json"
        ))
        .expect("schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn every_report_opens_with_the_pick() {
    let suite = crafted();
    let text = render::text::render(&suite, TextStyle { color: false });
    let first_table = text.find("startup").or_else(|| text.find("latency:"));
    let pick_at = text.find("The pick").expect("text pick");
    assert!(first_table.is_none_or(|at| pick_at < at), "{text}");
    assert!(text.find("Which to run").expect("which") < text.find("latency: ").expect("table"));
    let markdown = render::markdown::render(&suite);
    assert!(
        markdown.find("## The pick").expect("md pick")
            < markdown.find("## latency").expect("md table"),
        "{markdown}"
    );
    let html = render::html::render(&suite);
    assert!(
        html.find("<section id=\"pick\">").expect("html pick")
            < html.find("<h2>latency").expect("html table"),
        "{html}"
    );
}
