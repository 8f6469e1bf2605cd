//! The built-in scenarios, scenario files and the selection.

use super::*;

fn names(list: &[Scenario]) -> Vec<&str> {
    list.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn defaults_follow_the_reports() {
    let all = builtin();
    let t = all
        .iter()
        .find(|s| s.name == "throughput")
        .map(|s| &s.config);
    let t = t.expect("throughput");
    assert_eq!(
        (t.concurrency, t.requests, t.max_tokens, t.temperature),
        (16, 64, 256, 0.0)
    );
    let picked = select(&all, None).expect("defaults");
    assert_eq!(picked[0].name, "warmup");
    assert!(names(&picked).contains(&"long-context-32k"));
    assert!(!names(&picked).iter().any(|n| n.starts_with("rate-")));
}

#[test]
fn selection_by_group_and_name_adds_warmup() {
    let all = builtin();
    let picked = select(
        &all,
        Some(&["long-context".to_owned(), "sequential".to_owned()]),
    )
    .expect("known");
    assert_eq!(
        names(&picked),
        [
            "warmup",
            "long-context-1k",
            "long-context-8k",
            "long-context-16k",
            "long-context-32k",
            "sequential"
        ]
    );
    let err = select(&all, Some(&["nope".to_owned()])).expect_err("unknown");
    assert!(err.to_string().contains("throughput"), "{err}");
}

#[test]
fn toml_overrides_and_extends() {
    let all = from_toml(
        "[[scenario]]\nname = \"throughput\"\nconcurrency = 32\n\n[[scenario]]\nname = \"rag\"\ninput_tokens = 4000\nrate_rps = 1.5\nshared_prefix_tokens = 3000\nendpoint = \"completions\"\n",
    )
    .expect("valid");
    let t = all.iter().find(|s| s.name == "throughput").expect("kept");
    assert_eq!(t.config.concurrency, 32);
    let rag = all.iter().find(|s| s.name == "rag").expect("added");
    assert_eq!(rag.config.arrival, Arrival::Poisson { rate_rps: 1.5 });
    assert_eq!(rag.config.endpoint, Endpoint::Completions);
    assert_eq!(rag.config.max_tokens, 256);
    let rate = builtin()
        .into_iter()
        .find(|s| s.name == "rate-4")
        .expect("built in");
    assert_eq!(rate.config.duration_s, Some(RATE_SWEEP_DURATION_S));
    let timed = from_toml("[[scenario]]\nname = \"rate-4\"\nduration_s = 5\n").expect("valid");
    let rate = timed.iter().find(|s| s.name == "rate-4").expect("built in");
    assert_eq!(rate.config.duration_s, Some(5.0));
    assert!(from_toml("[[scenario]]\nname = \"x\"\nduration_s = 5\n").is_err());
    assert!(from_toml("[[scenario]]\nname = \"x\"\nbogus = 1\n").is_err());
    assert!(from_toml("[[scenario]]\nname = \"x\"\nrequests = 0\n").is_err());
}

#[test]
fn the_sweep_is_built_in_but_not_default_and_its_levels_come_from_the_file() {
    let all = builtin();
    let levels: Vec<u32> = all
        .iter()
        .filter(|s| s.group == sweep::GROUP)
        .map(|s| s.config.concurrency)
        .collect();
    assert_eq!(levels, sweep::DEFAULT_LEVELS);
    let c8 = all.iter().find(|s| s.name == "sweep-c8").expect("built in");
    assert_eq!(c8.config.requests, 64);
    let picked = select(&all, None).expect("defaults");
    assert!(!names(&picked).iter().any(|n| n.starts_with("sweep-")));

    let text = "[sweep]\nlevels = [8, 2, 32]\nrounds = 4\nmax_tokens = 16\n\n[[scenario]]\nname = \"sweep-c32\"\ninput_tokens = 64\n";
    let all = from_toml(text).expect("valid");
    let picked = select(&all, Some(&[sweep::GROUP.to_owned()])).expect("known");
    assert_eq!(
        names(&picked),
        ["warmup", "sweep-c2", "sweep-c8", "sweep-c32"]
    );
    assert_eq!(picked[1].config.requests, sweep::MIN_REQUESTS);
    assert_eq!(picked[3].config.requests, 128);
    assert_eq!(picked[3].config.max_tokens, 16);
    assert_eq!(picked[3].config.input_tokens, 64);
    assert!(from_toml("[sweep]\nlevels = []\n").is_err());
    assert!(from_toml("[sweep]\nlevels = [0, 4]\n").is_err());
    assert!(from_toml("[sweep]\nlevel = [4]\n").is_err());
}

#[test]
fn the_slo_table_parses_and_names_a_bad_key() {
    let slo = slo_in_toml("[slo]\nttft_p90 = \"2s\"\ntpot_p90 = \"100ms\"\n")
        .expect("valid")
        .expect("present");
    let got: Vec<(&str, f64)> = slo
        .objectives
        .iter()
        .map(|o| (o.key.as_str(), o.limit_ms))
        .collect();
    assert_eq!(got, [("tpot_p90", 100.0), ("ttft_p90", 2000.0)]);
    assert_eq!(
        slo_in_toml("[[scenario]]\nname = \"x\"\n").expect("valid"),
        None
    );
    let err = from_toml("[slo]\nttft_p42 = \"2s\"\n").expect_err("bad key");
    assert!(err.contains("ttft_p42"), "{err}");
    let err = slo_in_toml("[slo]\ne2e_p99 = 30\n").expect_err("not a duration");
    assert!(err.contains("e2e_p99"), "{err}");
    let err = slo_in_toml("[slo]\ntpot_p90 = \"fast\"\n").expect_err("not a duration");
    assert!(err.contains("tpot_p90"), "{err}");
}

#[test]
fn overrides_skip_warmup() {
    let mut picked = select(&builtin(), Some(&["throughput".to_owned()])).expect("known");
    apply_overrides(
        &mut picked,
        &Overrides {
            concurrency: Some(4),
            max_tokens: Some(8),
            ..Overrides::default()
        },
    );
    assert_eq!(picked[0].config.concurrency, 1);
    assert_eq!(picked[1].config.concurrency, 4);
    assert_eq!(picked[1].config.max_tokens, 8);
}
