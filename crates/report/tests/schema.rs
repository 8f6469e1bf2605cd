//! The JSON report against the schema committed in `docs/results.schema.json`.
//! The schema forbids unknown keys, so a field added to the result types
//! without the schema (and so without its documentation) fails here.

mod common;

use spark_report::render;

fn schema() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/results.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("docs/results.schema.json exists");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn errors(schema: &serde_json::Value, instance: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("the schema is valid");
    validator
        .iter_errors(instance)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect()
}

#[test]
fn json_report_conforms_to_the_committed_schema() {
    let json: serde_json::Value =
        serde_json::from_str(&render::json(&common::suite())).expect("JSON");
    let errors = errors(&schema(), &json);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schema_rejects_unknown_keys_and_wrong_types() {
    let mut json: serde_json::Value =
        serde_json::from_str(&render::json(&common::suite())).expect("JSON");
    json["engines"][0]["surprise"] = serde_json::json!(1);
    json["engines"][1]["outcome"] = serde_json::json!({"status": "exploded"});
    json["engines"][0]["results"]["scenarios"][0]["aggregate"]["ttft_ms"]["p50"] =
        serde_json::json!("fast");
    let errors = errors(&schema(), &json);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn open_loop_and_not_run_fields_conform() {
    let mut suite = common::suite();
    let results = suite.engines[0].results.as_mut().expect("results");
    let mut open = results.scenarios[0].clone();
    open.name = "rate-4".to_owned();
    open.config.arrival = spark_results::Arrival::Poisson { rate_rps: 4.0 };
    open.config.duration_s = Some(30.0);
    open.aggregate.open_loop = Some(spark_results::OpenLoopAggregate {
        lateness_ms: open.aggregate.ttft_ms.clone(),
        ttft_from_scheduled_ms: open.aggregate.ttft_ms.clone(),
        e2e_from_scheduled_ms: open.aggregate.e2e_ms.clone(),
        steady_window_start_s: 3.0,
        steady_window_end_s: 30.0,
        steady_n_ok: 100,
        steady_request_throughput_rps: Some(3.7),
        steady_output_throughput_tok_s: None,
    });
    let mut not_run = results.scenarios[0].clone();
    not_run.name = "long-context-32k".to_owned();
    not_run.not_run = Some("could not calibrate a prompt of 32768 tokens".to_owned());
    results.scenarios.push(open);
    results.scenarios.push(not_run);
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    let errors = errors(&schema(), &json);
    assert!(errors.is_empty(), "{errors:#?}");
    // The reports say N/A and why for the scenario that was not run.
    let flags = render::flags(&suite);
    assert!(
        flags
            .iter()
            .any(|f| f.contains("long-context-32k: N/A, not run: could not calibrate")),
        "{flags:#?}"
    );
}

#[test]
fn the_schema_knows_the_displaced_containers() {
    let mut suite = common::suite();
    suite.displaced = vec![spark_results::DisplacedContainer {
        container: "bystander".to_owned(),
        project: None,
        service: None,
        reason: "holds host port 8000, which service fp8-moe needs".to_owned(),
        restore: spark_results::RestoreStatus::Failed,
        restore_error: Some("no such container".to_owned()),
    }];
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    let errors = errors(&schema(), &json);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schema_knows_the_engines_own_figures() {
    let mut suite = common::suite();
    let results = suite.engines[0].results.as_mut().expect("results");
    let scenario = &mut results.scenarios[0];
    scenario.aggregate.engine_timings = Some(spark_results::EngineTimingsAggregate {
        n: 3,
        prefill_ms: scenario.aggregate.ttft_ms.clone(),
        tpot_ms: scenario.aggregate.tpot_ms.clone(),
        ttft_over_prefill_ms: scenario.aggregate.ttft_ms.clone(),
        n_ttft_below_prefill: 0,
        tpot_ratio: scenario.aggregate.tpot_ms.clone(),
    });
    let mut counters = spark_results::EngineCounters {
        path: "/metrics".to_owned(),
        error: Some("HTTP 500".to_owned()),
        ..Default::default()
    };
    counters
        .before
        .insert("llamacpp:prompt_tokens_total".to_owned(), 1.0);
    counters
        .after
        .insert("llamacpp:prompt_tokens_total".to_owned(), 2.0);
    scenario.engine_counters = Some(counters);
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    let errors = errors(&schema(), &json);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schema_knows_the_telemetry() {
    let mut suite = common::suite();
    suite.engines[0].telemetry = Some(common::telemetry(&["warmup", "throughput"], 4.0));
    suite.engines[1].telemetry = Some(spark_results::EngineTelemetry {
        unavailable: Some("docker stats: no such container".to_owned()),
        model_size: spark_results::ModelSize::unavailable("the model /m.gguf is inside the image"),
        ..Default::default()
    });
    let json: serde_json::Value = serde_json::from_str(&render::json(&suite)).expect("JSON");
    let errors = errors(&schema(), &json);
    assert!(errors.is_empty(), "{errors:#?}");
    // Files written before telemetry (no `telemetry` key) still read.
    let mut old = json.clone();
    for engine in old["engines"].as_array_mut().expect("engines") {
        engine.as_object_mut().expect("engine").remove("telemetry");
    }
    let old: spark_results::SuiteResults = serde_json::from_value(old).expect("old shape");
    assert!(old.engines.iter().all(|e| e.telemetry.is_none()));
}
