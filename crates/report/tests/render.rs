//! Snapshot tests of the renderers on one fixed result set: two measured
//! engines and one that crashed while loading. `UPDATE_EXPECT=1 cargo test`
//! rewrites the snapshots; review the diff like code.

mod common;

use common::suite;
use expect_test::{Expect, expect};
use spark_report::render::{self, text::TextStyle};
use spark_results::SuiteResults;

fn check(actual: &str, expect: &Expect) {
    expect.assert_eq(actual);
}

#[test]
fn text_report() {
    check(
        &render::text::render(&suite(), TextStyle { color: false }),
        &expect![[r#"
            spark-perf model comparison
              tool:    spark-perf 0.1.0
              source:  compose/sim.yml (project sim)
              started: 2026-11-23 13:43:28 UTC

            The pick
            ┌────────────┬───────────────┬────────────────────┬────────────────────┬────────────────┬────────────────────────┬────────────┬─────────────┐
            │ engine     │ TTFT c=1 (ms) │ decode c=1 (tok/s) │ saturation (tok/s) │ capacity (SLO) │ long-context TTFT (ms) │ model (GB) │ memory (GB) │
            ├────────────┼───────────────┼────────────────────┼────────────────────┼────────────────┼────────────────────────┼────────────┼─────────────┤
            │ fp8-moe    │           N/A │                N/A │             1638.4 │            N/A │                    N/A │       14.6 │        19.0 │
            │ bf16-dense │           N/A │                N/A │              409.6 │            N/A │                    N/A │        N/A │         N/A │
            │ crashy     │           N/A │                N/A │                N/A │            N/A │                    N/A │        N/A │         N/A │
            └────────────┴───────────────┴────────────────────┴────────────────────┴────────────────┴────────────────────────┴────────────┴─────────────┘
              crashy is left out of the pick: failed in health: container exited with code 2 while loading last log line: error
              TTFT c=1 (ms) N/A: the latency scenario was not in this run
              decode c=1 (tok/s) N/A: the latency scenario was not in this run
              capacity (SLO) N/A: not measured (needs the concurrency sweep and an SLO)
              long-context TTFT (ms) N/A: no one-user scenario of 1024 input tokens or more measured (the long-context group)
              model (GB) N/A for bf16-dense: the model /models/bf16 is inside the image (no mount covers it)
              memory (GB) N/A for bf16-dense: docker stats: the daemon refused

            Which to run
              interactive chat → N/A: TTFT at c=1: the latency scenario was not in this run
                  why: Lowest TTFT p50 of one user (the latency scenario); where that is a tie within the noise, the faster single-user decode breaks it.
              batch → fp8-moe: 300 % higher output tok/s at saturation than bf16-dense (1638.4 vs 409.6 tok/s)
                  why: Highest output tok/s at saturation: the concurrency sweep's steady output throughput at the level it saturated at (its highest level when it never saturated), else the throughput scenario's. Here: bf16-dense from the throughput scenario (c=16; no concurrency sweep); fp8-moe from the throughput scenario (c=16; no concurrency sweep).
              long documents → N/A: TTFT at a long context: no one-user scenario of 1024 input tokens or more measured (the long-context group)
                  why: Lowest TTFT p50 at the longest context that every engine ran (one user, at least 1024 input tokens).
              capacity → N/A: capacity within the SLO: not measured (needs the concurrency sweep and an SLO)
                  why: Most load within the SLO (the largest concurrency of the sweep at which every objective holds).
              memory-constrained → N/A: only fp8-moe has runtime memory, nothing to compare it with
                  why: Lowest runtime memory while serving.
                  left out: bf16-dense: docker stats: the daemon refused
              A lead counts only beyond the noise: by more than the standard deviations of both engines' requests (by 5 % where a figure has no spread), the rule of the trophies in the tables; otherwise it is a tie.

            startup
            ┌─────────────────────┬──────────┬────────────┬────────┐
            │ metric              │ fp8-moe  │ bf16-dense │ crashy │
            ├─────────────────────┼──────────┼────────────┼────────┤
            │ port open (s)       │  6.25 🏆 │      15.12 │    N/A │
            │ time to healthy (s) │ 12.50 🏆 │      30.25 │    N/A │
            │ model size          │ 13.6 GiB │        N/A │    N/A │
            └─────────────────────┴──────────┴────────────┴────────┘

            throughput: 64 requests, concurrency 16, 1024 → 256 tokens
            ┌───────────────────────────┬───────────────┬──────────────┬────────┐
            │ metric                    │ fp8-moe       │ bf16-dense   │ crashy │
            ├───────────────────────────┼───────────────┼──────────────┼────────┤
            │ n (successful requests)   │            64 │           64 │    N/A │
            │ TTFT mean (ms)            │ 60.0 ± 6.0 🏆 │ 240.0 ± 24.0 │    N/A │
            │ TTFT p50 (ms)             │       55.0 🏆 │        220.0 │    N/A │
            │ TTFT p99 (ms)             │      150.0 🏆 │        600.0 │    N/A │
            │ ITL p50 (ms)              │        7.2 🏆 │         29.0 │    N/A │
            │ ITL p99 (ms)              │       12.5 🏆 │         50.0 │    N/A │
            │ TPOT mean (ms)            │  7.5 ± 0.8 🏆 │   30.0 ± 3.0 │    N/A │
            │ E2E p50 (ms)              │     1950.0 🏆 │       7800.0 │    N/A │
            │ decode p50 (tok/s)        │      134.0 🏆 │         33.5 │    N/A │
            │ prompt p50 (tok/s)        │    18600.0 🏆 │       4650.0 │    N/A │
            │ output throughput (tok/s) │     1638.4 🏆 │        409.6 │    N/A │
            │ requests (req/s)          │       6.40 🏆 │         1.60 │    N/A │
            │ runtime memory peak       │      17.7 GiB │          N/A │    N/A │
            │ CPU mean (% of a core)    │          99.5 │          N/A │    N/A │
            │ failed (req), tie         │             0 │            0 │    N/A │
            └───────────────────────────┴───────────────┴──────────────┴────────┘

            long-context-32k: 64 requests, concurrency 16, 1024 → 256 tokens
            ┌───────────────────────────┬─────────┬──────────────┬────────┐
            │ metric                    │ fp8-moe │ bf16-dense   │ crashy │
            ├───────────────────────────┼─────────┼──────────────┼────────┤
            │ n (successful requests)   │     N/A │           62 │    N/A │
            │ TTFT mean (ms)            │     N/A │ 240.0 ± 24.0 │    N/A │
            │ TTFT p50 (ms)             │     N/A │        220.0 │    N/A │
            │ TTFT p99 (ms)             │     N/A │        600.0 │    N/A │
            │ ITL p50 (ms)              │     N/A │         29.0 │    N/A │
            │ ITL p99 (ms)              │     N/A │         50.0 │    N/A │
            │ TPOT mean (ms)            │     N/A │   30.0 ± 3.0 │    N/A │
            │ E2E p50 (ms)              │     N/A │       7800.0 │    N/A │
            │ decode p50 (tok/s)        │     N/A │         33.5 │    N/A │
            │ prompt p50 (tok/s)        │     N/A │       4650.0 │    N/A │
            │ output throughput (tok/s) │     N/A │        409.6 │    N/A │
            │ requests (req/s)          │     N/A │         1.60 │    N/A │
            │ failed (req)              │     N/A │            2 │    N/A │
            └───────────────────────────┴─────────┴──────────────┴────────┘

            Engines without full results (N/A above)
              crashy: failed in health: container exited with code 2 while loading last log line: error

            What could not be guaranteed
              - bf16-dense / long-context-32k: 3 requests returned fewer tokens than asked
              - bf16-dense / long-context-32k: input clamped to 16284 tokens: max_model_len 16384 − max_tokens 100
              - runtime memory and CPU N/A for bf16-dense: docker stats: the daemon refused
              - model size N/A for bf16-dense: the model /models/bf16 is inside the image (no mount covers it)

            Provenance
              fp8-moe (vllm):
                image:   spark-sim:dev
                id:      sha256:c7d709e1953a
                version: 0.11.0
                command: --profile fp8-moe
                env:     HF_TOKEN (values not recorded)
              bf16-dense (vllm):
                image:   spark-sim:dev
                id:      sha256:c7d709e1953a
                version: 0.11.0
                command: --profile bf16-dense
                env:     HF_TOKEN (values not recorded)

            Metric definitions
              TTFT: from sending the request to the first chunk carrying non-empty content or reasoning
              ITL: gap between two successive token-carrying chunks
              TPOT: (E2E - TTFT) / (output tokens - 1), per request
              E2E: from sending the request to the end of the response
              decode tok/s: (output tokens - 1) / (E2E - TTFT); prompt tok/s: input tokens / TTFT
              output throughput and req/s: successful output tokens and requests over the scenario's wall time
              failed: requests that got no complete response (an HTTP error, a refused or reset connection, a timeout, a cut or malformed stream), left out of every latency and throughput (results.json counts them by class)
              token counts: the engine's usage; counted chunks when it sent none (flagged)
              port open, time to healthy: from creating the container to the first TCP connection its host port accepts, and to the first 200 from its health path
              model size: the model's files on disk, found from the service's command and mounts (a GGUF, a model directory, a Hugging Face snapshot's blobs, each file once)
              runtime memory peak: the highest sample in the scenario of the engine container's memory as docker stats shows it (usage less the inactive page cache), or of a local process's resident set; sampled every 500 ms (Docker publishes once a second); CPU mean: 100 % is one core
              percentiles over requests: nearest rank on a histogram with 3 significant digits (error <= 0.1 %); with fewer than 20 samples no p99 is shown, the largest value is (marked max), and n is the row 'n (successful requests)' of each scenario
              mean ± sd: the mean over the successful requests and their population standard deviation (a one-at-a-time scenario's requests are its iterations)
              winner (the trophy): the best value, only where it leads the next by more than the standard deviations of both (by 5 % on rows without one: throughputs, counts); otherwise the row says tie
        "#]],
    );
}

#[test]
fn terminal_colour_marks_only_winners() {
    let coloured = render::text::render(&suite(), TextStyle { color: true });
    let plain = render::text::render(&suite(), TextStyle { color: false });
    let n_winners = plain.matches(render::text::TROPHY).count();
    assert!(n_winners > 10, "{plain}");
    assert_eq!(coloured.matches("\x1b[1;32m").count(), n_winners);
    assert_eq!(
        coloured.replace("\x1b[1;32m", "").replace("\x1b[0m", ""),
        plain
    );
}

#[test]
fn markdown_report() {
    check(
        &render::markdown::render(&suite()),
        &expect![[r#"
            # spark-perf model comparison

            spark-perf 0.1.0 · compose/sim.yml (project sim) · started 2026-11-23 13:43:28 UTC

            ## The pick

            | engine | TTFT c=1 (ms) | decode c=1 (tok/s) | saturation (tok/s) | capacity (SLO) | long-context TTFT (ms) | model (GB) | memory (GB) |
            | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
            | fp8-moe | N/A | N/A | 1638.4 | N/A | N/A | 14.6 | 19.0 |
            | bf16-dense | N/A | N/A | 409.6 | N/A | N/A | N/A | N/A |
            | crashy | N/A | N/A | N/A | N/A | N/A | N/A | N/A |

            - crashy is left out of the pick: failed in health: container exited with code 2 while loading last log line: error
            - TTFT c=1 (ms) N/A: the latency scenario was not in this run
            - decode c=1 (tok/s) N/A: the latency scenario was not in this run
            - capacity (SLO) N/A: not measured (needs the concurrency sweep and an SLO)
            - long-context TTFT (ms) N/A: no one-user scenario of 1024 input tokens or more measured (the long-context group)
            - model (GB) N/A for bf16-dense: the model /models/bf16 is inside the image (no mount covers it)
            - memory (GB) N/A for bf16-dense: docker stats: the daemon refused

            ### Which to run

            | use case | pick | why |
            | --- | --- | --- |
            | interactive chat | N/A: TTFT at c=1: the latency scenario was not in this run | Lowest TTFT p50 of one user (the latency scenario); where that is a tie within the noise, the faster single-user decode breaks it. |
            | batch | fp8-moe: 300 % higher output tok/s at saturation than bf16-dense (1638.4 vs 409.6 tok/s) | Highest output tok/s at saturation: the concurrency sweep's steady output throughput at the level it saturated at (its highest level when it never saturated), else the throughput scenario's. Here: bf16-dense from the throughput scenario (c=16; no concurrency sweep); fp8-moe from the throughput scenario (c=16; no concurrency sweep). |
            | long documents | N/A: TTFT at a long context: no one-user scenario of 1024 input tokens or more measured (the long-context group) | Lowest TTFT p50 at the longest context that every engine ran (one user, at least 1024 input tokens). |
            | capacity | N/A: capacity within the SLO: not measured (needs the concurrency sweep and an SLO) | Most load within the SLO (the largest concurrency of the sweep at which every objective holds). |
            | memory-constrained | N/A: only fp8-moe has runtime memory, nothing to compare it with | Lowest runtime memory while serving. Left out: bf16-dense: docker stats: the daemon refused. |

            A lead counts only beyond the noise: by more than the standard deviations of both engines' requests (by 5 % where a figure has no spread), the rule of the trophies in the tables; otherwise it is a tie.

            ## startup

            | metric | fp8-moe | bf16-dense | crashy |
            | --- | ---: | ---: | ---: |
            | port open (s) | **6.25** 🏆 | 15.12 | N/A |
            | time to healthy (s) | **12.50** 🏆 | 30.25 | N/A |
            | model size | 13.6 GiB | N/A | N/A |

            ## throughput: 64 requests, concurrency 16, 1024 → 256 tokens

            | metric | fp8-moe | bf16-dense | crashy |
            | --- | ---: | ---: | ---: |
            | n (successful requests) | 64 | 64 | N/A |
            | TTFT mean (ms) | **60.0 ± 6.0** 🏆 | 240.0 ± 24.0 | N/A |
            | TTFT p50 (ms) | **55.0** 🏆 | 220.0 | N/A |
            | TTFT p99 (ms) | **150.0** 🏆 | 600.0 | N/A |
            | ITL p50 (ms) | **7.2** 🏆 | 29.0 | N/A |
            | ITL p99 (ms) | **12.5** 🏆 | 50.0 | N/A |
            | TPOT mean (ms) | **7.5 ± 0.8** 🏆 | 30.0 ± 3.0 | N/A |
            | E2E p50 (ms) | **1950.0** 🏆 | 7800.0 | N/A |
            | decode p50 (tok/s) | **134.0** 🏆 | 33.5 | N/A |
            | prompt p50 (tok/s) | **18600.0** 🏆 | 4650.0 | N/A |
            | output throughput (tok/s) | **1638.4** 🏆 | 409.6 | N/A |
            | requests (req/s) | **6.40** 🏆 | 1.60 | N/A |
            | runtime memory peak | 17.7 GiB | N/A | N/A |
            | CPU mean (% of a core) | 99.5 | N/A | N/A |
            | failed (req), tie | 0 | 0 | N/A |

            ## long-context-32k: 64 requests, concurrency 16, 1024 → 256 tokens

            | metric | fp8-moe | bf16-dense | crashy |
            | --- | ---: | ---: | ---: |
            | n (successful requests) | N/A | 62 | N/A |
            | TTFT mean (ms) | N/A | 240.0 ± 24.0 | N/A |
            | TTFT p50 (ms) | N/A | 220.0 | N/A |
            | TTFT p99 (ms) | N/A | 600.0 | N/A |
            | ITL p50 (ms) | N/A | 29.0 | N/A |
            | ITL p99 (ms) | N/A | 50.0 | N/A |
            | TPOT mean (ms) | N/A | 30.0 ± 3.0 | N/A |
            | E2E p50 (ms) | N/A | 7800.0 | N/A |
            | decode p50 (tok/s) | N/A | 33.5 | N/A |
            | prompt p50 (tok/s) | N/A | 4650.0 | N/A |
            | output throughput (tok/s) | N/A | 409.6 | N/A |
            | requests (req/s) | N/A | 1.60 | N/A |
            | failed (req) | N/A | 2 | N/A |

            ## Engines without full results

            - **crashy**: failed in health: container exited with code 2 while loading last log line: error

            ## What could not be guaranteed

            - bf16-dense / long-context-32k: 3 requests returned fewer tokens than asked
            - bf16-dense / long-context-32k: input clamped to 16284 tokens: max\_model\_len 16384 − max\_tokens 100
            - runtime memory and CPU N/A for bf16-dense: docker stats: the daemon refused
            - model size N/A for bf16-dense: the model /models/bf16 is inside the image (no mount covers it)

            ## Metric definitions

            - TTFT: from sending the request to the first chunk carrying non-empty content or reasoning
            - ITL: gap between two successive token-carrying chunks
            - TPOT: (E2E - TTFT) / (output tokens - 1), per request
            - E2E: from sending the request to the end of the response
            - decode tok/s: (output tokens - 1) / (E2E - TTFT); prompt tok/s: input tokens / TTFT
            - output throughput and req/s: successful output tokens and requests over the scenario's wall time
            - failed: requests that got no complete response (an HTTP error, a refused or reset connection, a timeout, a cut or malformed stream), left out of every latency and throughput (results.json counts them by class)
            - token counts: the engine's usage; counted chunks when it sent none (flagged)
            - port open, time to healthy: from creating the container to the first TCP connection its host port accepts, and to the first 200 from its health path
            - model size: the model's files on disk, found from the service's command and mounts (a GGUF, a model directory, a Hugging Face snapshot's blobs, each file once)
            - runtime memory peak: the highest sample in the scenario of the engine container's memory as docker stats shows it (usage less the inactive page cache), or of a local process's resident set; sampled every 500 ms (Docker publishes once a second); CPU mean: 100 % is one core
            - percentiles over requests: nearest rank on a histogram with 3 significant digits (error <= 0.1 %); with fewer than 20 samples no p99 is shown, the largest value is (marked max), and n is the row 'n (successful requests)' of each scenario
            - mean ± sd: the mean over the successful requests and their population standard deviation (a one-at-a-time scenario's requests are its iterations)
            - winner (the trophy): the best value, only where it leads the next by more than the standard deviations of both (by 5 % on rows without one: throughputs, counts); otherwise the row says tie
        "#]],
    );
}

#[test]
fn json_round_trips() {
    let json = render::json(&suite());
    let back: SuiteResults = serde_json::from_str(&json).expect("valid JSON");
    // The JSON carries the pick, computed from the engines it holds.
    let expected = SuiteResults {
        pick: Some(spark_report::pick::pick(&suite())),
        ..suite()
    };
    assert_eq!(back, expected);
    assert_eq!(render::json(&back), json);
}

#[test]
fn html_report_is_self_contained() {
    let html = render::html::render(&suite());
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing is fetched: no external URL in src/href attributes.
    for attribute in ["src=\"http", "href=\"http", "src='http", "@import", "url("] {
        assert!(!html.contains(attribute), "found {attribute}");
    }
    // The crashed engine's reason and the charts are there.
    assert!(html.contains("container exited with code 2"));
    assert!(html.matches("<svg").count() >= 8, "charts missing");
    assert!(html.contains("long context: input length vs TTFT p50"));
}

#[test]
fn reasoning_rows_appear_only_where_an_engine_reasoned() {
    let plain = render::text::render(&suite(), TextStyle { color: false });
    assert!(!plain.contains("TTFO") && !plain.contains("reasoning tokens"));
    let mut thinking = suite();
    let scenario = &mut thinking.engines[0]
        .results
        .as_mut()
        .expect("measured")
        .scenarios[0];
    scenario.aggregate.ttfo_ms = spark_results::Distribution {
        n: 3,
        p50: Some(812.5),
        p99: Some(950.0),
        ..Default::default()
    };
    scenario.aggregate.reasoning_tokens = spark_results::Distribution {
        n: 3,
        mean: Some(140.0),
        ..Default::default()
    };
    let text = render::text::render(&thinking, TextStyle { color: false });
    let ttfo = text
        .lines()
        .find(|l| l.contains("TTFO p50"))
        .expect("a TTFO row");
    assert!(ttfo.contains("812.5"), "{ttfo}");
    let reasoning = text
        .lines()
        .find(|l| l.contains("reasoning tokens mean"))
        .expect("a reasoning row");
    assert!(reasoning.contains("140.0"), "{reasoning}");
    let markdown = render::markdown::render(&thinking);
    assert!(markdown.contains("TTFO p50"), "{markdown}");
}

/// A suite whose first engine reported llama-server's `timings` and
/// counters in its first scenario.
fn with_engine_figures() -> spark_results::SuiteResults {
    let mut suite = suite();
    let scenario = &mut suite.engines[0]
        .results
        .as_mut()
        .expect("measured")
        .scenarios[0];
    let dist = |p50: f64| spark_results::Distribution {
        n: 64,
        p50: Some(p50),
        ..Default::default()
    };
    scenario.aggregate.engine_timings = Some(spark_results::EngineTimingsAggregate {
        n: 64,
        prefill_ms: dist(101.25),
        tpot_ms: dist(14.75),
        ttft_over_prefill_ms: dist(3.5),
        n_ttft_below_prefill: 2,
        tpot_ratio: dist(1.02),
    });
    let mut counters = spark_results::EngineCounters {
        path: "/metrics".to_owned(),
        ..Default::default()
    };
    counters
        .before
        .insert("llamacpp:tokens_predicted_total".to_owned(), 100.0);
    let received = scenario.aggregate.output_tokens_total as f64;
    counters.after.insert(
        "llamacpp:tokens_predicted_total".to_owned(),
        100.0 + received + 7.0,
    );
    scenario.engine_counters = Some(counters);
    suite
}

#[test]
fn engine_reported_timings_appear_beside_ours_only_where_sent() {
    let plain = render::text::render(&suite(), TextStyle { color: false });
    assert!(!plain.contains("engine-reported"), "{plain}");
    let suite = with_engine_figures();
    let text = render::text::render(&suite, TextStyle { color: false });
    for (row, value) in [
        ("engine-reported prefill p50", "101.2"),
        ("TTFT over engine prefill p50", "3.5"),
        ("engine-reported TPOT p50", "14.8"),
        ("TPOT ours / engine's p50", "1.02"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no {row} row in {text}"));
        assert!(line.contains(value), "{line}");
    }
    let markdown = render::markdown::render(&suite);
    assert!(
        markdown.contains("engine-reported prefill p50"),
        "{markdown}"
    );
    let html = render::html::render(&suite);
    assert!(html.contains("engine-reported TPOT p50"));
}

#[test]
fn disagreements_with_the_engines_own_figures_are_flagged() {
    let flags = render::flags(&with_engine_figures());
    assert!(
        flags
            .iter()
            .any(|f| f.contains("2 requests had a TTFT below the engine's own prefill")),
        "{flags:#?}"
    );
    assert!(
        flags
            .iter()
            .any(|f| f.contains("generated tokens (llamacpp:tokens_predicted_total)")),
        "{flags:#?}"
    );
    assert!(
        render::flags(&suite())
            .iter()
            .all(|f| !f.contains("engine"))
    );
}

#[test]
fn every_report_lists_the_containers_the_run_stopped_and_whether_they_run_again() {
    use spark_results::{DisplacedContainer, RestoreStatus};
    let mut suite = suite();
    suite.displaced = vec![
        DisplacedContainer {
            container: "team-vllm-1".to_owned(),
            project: Some("team".to_owned()),
            service: Some("vllm".to_owned()),
            reason: "holds host port 8000, which service fp8-moe needs".to_owned(),
            restore: RestoreStatus::Restored,
            restore_error: None,
        },
        DisplacedContainer {
            container: "bystander".to_owned(),
            project: None,
            service: None,
            reason: "holds host port 8001, which service bf16-dense needs".to_owned(),
            restore: RestoreStatus::Failed,
            restore_error: Some("no such container".to_owned()),
        },
    ];
    let first = "team-vllm-1 (service vllm of project team): holds host port 8000, which service fp8-moe needs; started again at the end";
    let text = render::text::render(&suite, TextStyle { color: false });
    assert!(text.contains("Containers stopped for this run\n"), "{text}");
    assert!(text.contains(&format!("  - {first}\n")), "{text}");
    assert!(
        text.contains("bystander: holds host port 8001, which service bf16-dense needs; could not be started again: no such container"),
        "{text}"
    );
    let markdown = render::markdown::render(&suite);
    assert!(
        markdown.contains("## Containers stopped for this run\n\n- team-vllm-1"),
        "{markdown}"
    );
    let html = render::html::render(&suite);
    assert!(
        html.contains("<h2>Containers stopped for this run</h2>"),
        "{html}"
    );
    assert!(html.contains("started again at the end</li>"), "{html}");
    // And in the JSON, so that a later reader knows too; an empty list is
    // left out, so older files and readers are unchanged.
    let json = render::json(&suite);
    assert!(json.contains("\"restore\": \"restored\""), "{json}");
    assert!(!render::json(&common::suite()).contains("displaced"));
    let back: SuiteResults = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back.displaced, suite.displaced);
}

/// The reference script's `190 ± 26 ms`: a one-at-a-time scenario of three
/// iterations per engine, whose engines are within each other's spread.
fn three_iterations() -> spark_results::SuiteResults {
    let mut suite = suite();
    for (engine, (mean, sd, max)) in suite
        .engines
        .iter_mut()
        .zip([(190.0, 26.0, 221.0), (200.0, 30.0, 240.0)])
    {
        let Some(results) = engine.results.as_mut() else {
            continue;
        };
        let scenario = &mut results.scenarios[0];
        scenario.aggregate.n_ok = 3;
        scenario.aggregate.ttft_ms = spark_results::Distribution {
            n: 3,
            mean: Some(mean),
            stddev: Some(sd),
            min: Some(mean - sd),
            p50: Some(mean),
            p90: Some(max),
            p95: Some(max),
            p99: Some(max),
            max: Some(max),
        };
    }
    suite
}

#[test]
fn honest_statistics_of_a_few_iterations_in_every_renderer() {
    let suite = three_iterations();
    let text = render::text::render(&suite, TextStyle { color: false });
    let markdown = render::markdown::render(&suite);
    let html = render::html::render(&suite);
    let line = |report: &str, metric: &str| -> String {
        report
            .lines()
            .find(|l| l.contains(metric))
            .unwrap_or_else(|| panic!("no {metric} in {report}"))
            .to_owned()
    };
    for (format, report) in [("text", &text), ("markdown", &markdown)] {
        let mean = line(report, "TTFT mean");
        assert!(
            mean.contains("190.0 ± 26.0") && mean.contains("200.0 ± 30.0"),
            "{format}: {mean}"
        );
        // 10 ms apart with 26 and 30 ms of spread: no winner.
        assert!(
            mean.contains("tie") && !mean.contains('🏆'),
            "{format}: {mean}"
        );
        // Three samples have no p99: their largest value, said so.
        let p99 = line(report, "TTFT p99");
        assert!(
            p99.contains("max 221.0") && p99.contains("max 240.0"),
            "{format}: {p99}"
        );
        let n = line(report, "n (successful requests)");
        assert!(n.contains('3'), "{format}: {n}");
    }
    assert!(html.contains("190.0 ± 26.0") && html.contains("max 221.0"));
    assert!(html.contains("TTFT mean (ms), tie"));
    // The JSON holds what the tables were computed from.
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    let ttft = &json["engines"][0]["results"]["scenarios"][0]["aggregate"]["ttft_ms"];
    assert_eq!(
        (
            ttft["n"].as_u64(),
            ttft["mean"].as_f64(),
            ttft["stddev"].as_f64(),
            ttft["max"].as_f64()
        ),
        (Some(3), Some(190.0), Some(26.0), Some(221.0))
    );
}

#[test]
fn telemetry_is_in_every_renderer_and_its_na_reason_is_said_once() {
    let mut suite = common::suite();
    // A second engine that read nothing for the same reason.
    suite.engines[2].telemetry = suite.engines[1].telemetry.clone();
    let text = render::text::render(&suite, TextStyle { color: false });
    let markdown = render::markdown::render(&suite);
    let html = render::html::render(&suite);
    for report in [&text, &markdown, &html] {
        assert!(report.contains("model size"), "{report}");
        assert!(report.contains("runtime memory peak"), "{report}");
        assert!(report.contains("17.7 GiB"), "{report}");
        // Said once among the notes (the pick says why it leaves the engine
        // out too), never in a row of a table.
        assert_eq!(
            report
                .matches("runtime memory and CPU N/A for bf16-dense")
                .count(),
            1,
            "{report}"
        );
        // (The pick's own table of use cases says whom it leaves out.)
        let rows = report
            .lines()
            .filter(|l| l.contains("the daemon refused") && !l.to_lowercase().contains("left out"));
        for line in rows {
            let row = line.trim_start().starts_with(['│', '|']) || line.contains("<td");
            assert!(!row, "a reason in a table row: {line}");
        }
        assert!(
            report.contains("runtime memory and CPU N/A for bf16-dense, crashy"),
            "{report}"
        );
    }
    let json = render::json(&suite);
    assert!(json.contains("\"memory_peak_bytes\""), "{json}");
    // The HTML charts memory over the turn, each scenario's start marked.
    assert!(html.contains("fp8-moe: runtime memory"), "{html}");
    assert!(html.contains("throughput starts at 10.0 s"), "{html}");
    assert!(!html.contains("bf16-dense: runtime memory"), "{html}");
}
