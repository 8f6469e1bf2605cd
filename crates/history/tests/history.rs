//! The history against real SQLite files in a temp dir: round trip,
//! idempotent appends, migrations, refusals, and a reader during appends.

mod common;

use common::{TempDir, suite};
use spark_history::{Error, History, RunMeta, SCHEMA_VERSION};

fn meta() -> RunMeta {
    RunMeta {
        host: "gpu-box".to_owned(),
        run_dir: None,
        gpu: Some("NVIDIA H200".to_owned()),
        driver: Some("570.86".to_owned()),
    }
}

#[test]
fn a_run_round_trips_with_provenance_outcomes_and_per_request_values() {
    let dir = TempDir::new("round-trip");
    let path = dir.path().join("history.sqlite");
    let mut history = History::open(&path).expect("create");
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    let id = history
        .append(&suite(1_000, &[50.0, 60.0, 70.0], "sha256:aaa"), &meta())
        .expect("append");
    drop(history);

    let history = History::open(&path).expect("reopen");
    let runs = history.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, id);
    assert_eq!(runs[0].started_unix_ms, 1_000);
    assert_eq!(runs[0].host, "gpu-box");
    assert_eq!(runs[0].tool, "spark-perf 0.1.0");
    assert!(runs[0].complete);

    assert_eq!(history.engines().unwrap(), ["crashy", "sim-a"]);
    let engines = history.engines_of(id).unwrap();
    assert_eq!(engines[0].service, "sim-a");
    assert_eq!(engines[0].outcome, "ok");
    assert_eq!(engines[1].outcome, "failed");
    assert_eq!(engines[1].failed_phase.as_deref(), Some("health"));
    // The warmup (discarded) is not history.
    assert_eq!(history.scenarios("sim-a").unwrap(), ["latency"]);
    let metrics = history.metrics("sim-a", "latency").unwrap();
    for name in [
        "ttft_ms.p50",
        "ttft_ms.p99",
        "tpot_ms.mean",
        "itl_ms.p99",
        "e2e_ms.stddev",
        "output_throughput_tok_s",
        "request_throughput_rps",
        "failure_rate",
        "time_to_healthy_s",
        "failures.timeout",
        "n_ok",
    ] {
        assert!(metrics.iter().any(|m| m == name), "{name} in {metrics:?}");
    }

    let ttft = history
        .series("sim-a", "latency", "ttft_ms.p50", 10)
        .unwrap();
    assert_eq!(ttft.len(), 1);
    let point = &ttft[0];
    assert_eq!(point.run_id, id);
    assert_eq!(point.value, Some(60.0));
    assert_eq!(point.values, [50.0, 60.0, 70.0]);
    assert_eq!(point.image_id.as_deref(), Some("sha256:aaa"));
    assert_eq!(point.gpu.as_deref(), Some("NVIDIA H200"));
    assert_eq!(point.url.as_deref(), Some("http://127.0.0.1:8000"));
    assert_eq!((point.n_requests, point.n_failed), (4, 1));
    assert_eq!(point.command_hash.as_ref().map(String::len), Some(16));
    let n = history.series("sim-a", "latency", "ttft_ms.n", 10).unwrap();
    assert_eq!(n[0].value, Some(3.0));
    let rate = history
        .series("sim-a", "latency", "failure_rate", 10)
        .unwrap();
    assert_eq!(rate[0].value, Some(0.25));
    assert!(rate[0].values.is_empty());
    let healthy = history
        .series("sim-a", "latency", "time_to_healthy_s", 10)
        .unwrap();
    assert_eq!(healthy[0].value, Some(2.5));
    let timeouts = history
        .series("sim-a", "latency", "failures.timeout", 10)
        .unwrap();
    assert_eq!(timeouts[0].value, Some(1.0));
    let err = history
        .series("sim-a", "latency", "ttft_ms.p42", 10)
        .unwrap_err();
    assert!(err.to_string().contains("ttft_ms.p42"), "{err}");
}

#[test]
fn series_keeps_the_last_n_runs_oldest_first_and_the_config_hash_tells_configs_apart() {
    let dir = TempDir::new("series");
    let mut history = History::open(dir.path().join("h.sqlite")).unwrap();
    for night in 0..6u64 {
        let mut run = suite(1_000 + night, &[100.0 + night as f64], "sha256:aaa");
        if night == 5 {
            let scenario = &mut run.engines[0].results.as_mut().unwrap().scenarios[1];
            scenario.config.max_tokens = 200;
        }
        history.append(&run, &meta()).unwrap();
    }
    let series = history
        .series("sim-a", "latency", "ttft_ms.p50", 3)
        .unwrap();
    let values: Vec<_> = series.iter().map(|p| p.value.unwrap()).collect();
    assert_eq!(values, [103.0, 104.0, 105.0]);
    assert_eq!(series[0].config_hash, series[1].config_hash);
    assert_ne!(series[1].config_hash, series[2].config_hash);
}

#[test]
fn appending_the_same_run_twice_keeps_one_copy_and_its_id() {
    let dir = TempDir::new("idempotent");
    let mut history = History::open(dir.path().join("h.sqlite")).unwrap();
    let mut run = suite(5_000, &[50.0], "sha256:aaa");
    run.complete = false;
    let first = history.append(&run, &meta()).unwrap();
    // The same run, grown since (as `results.json` is rewritten per engine).
    run.complete = true;
    run.engines[0].results.as_mut().unwrap().scenarios[1]
        .aggregate
        .ttft_ms
        .p50 = Some(55.0);
    let second = history.append(&run, &meta()).unwrap();
    let third = history.append(&run, &meta()).unwrap();
    assert_eq!(first, second);
    assert_eq!(second, third);
    let runs = history.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].complete);
    assert_eq!(history.engines_of(first).unwrap().len(), 2);
    let series = history
        .series("sim-a", "latency", "ttft_ms.p50", 10)
        .unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].value, Some(55.0));
    assert_eq!(history.find_run(5_000, &run.source).unwrap(), Some(first));
}

#[test]
fn import_dir_reads_a_run_directory_and_names_a_bad_file() {
    let dir = TempDir::new("import");
    let run_dir = dir.path().join("2026-01-01T02-00-00");
    std::fs::create_dir_all(&run_dir).unwrap();
    let run = suite(7_000, &[80.0, 90.0], "sha256:bbb");
    std::fs::write(
        run_dir.join("results.json"),
        serde_json::to_string(&run).unwrap(),
    )
    .unwrap();
    let mut history = History::open(dir.path().join("h.sqlite")).unwrap();
    let id = history.import_dir(&run_dir, &meta()).unwrap();
    assert_eq!(history.import_dir(&run_dir, &meta()).unwrap(), id);
    let runs = history.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_dir.as_deref(), Some(run_dir.to_str().unwrap()));

    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("results.json"), "{\"engines\": [").unwrap();
    let err = history.import_dir(&bad_dir, &meta()).unwrap_err();
    assert!(matches!(err, Error::ParseRun { .. }), "{err:?}");
    assert!(err.to_string().contains("bad/results.json"), "{err}");
    let err = history
        .import_dir(dir.path().join("missing"), &meta())
        .unwrap_err();
    assert!(err.to_string().contains("missing/results.json"), "{err}");
}

/// Version 1 as it was released, written by hand: no per-request values, no
/// GPU columns.
const V1_BY_HAND: &str = "
CREATE TABLE runs (id INTEGER PRIMARY KEY, started_unix_ms INTEGER NOT NULL,
    finished_unix_ms INTEGER, source TEXT NOT NULL, host TEXT NOT NULL, tool TEXT NOT NULL,
    complete INTEGER NOT NULL, stopped TEXT, run_dir TEXT, UNIQUE (started_unix_ms, source));
CREATE TABLE engine_runs (id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, service TEXT NOT NULL,
    flavor TEXT NOT NULL, model TEXT, url TEXT, outcome TEXT NOT NULL, failed_phase TEXT,
    failed_reason TEXT, image TEXT, image_id TEXT, repo_digest TEXT, command_json TEXT,
    command_hash TEXT, compose_config_hash TEXT, engine_version TEXT, time_to_healthy_s REAL,
    UNIQUE (run_id, service));
CREATE TABLE scenario_runs (id INTEGER PRIMARY KEY,
    engine_run_id INTEGER NOT NULL REFERENCES engine_runs(id) ON DELETE CASCADE,
    scenario TEXT NOT NULL, config_json TEXT NOT NULL, config_hash TEXT NOT NULL,
    discarded INTEGER NOT NULL, stopped TEXT, n_requests INTEGER NOT NULL, n_ok INTEGER NOT NULL,
    n_failed INTEGER NOT NULL, failures_by_class_json TEXT NOT NULL,
    UNIQUE (engine_run_id, scenario));
CREATE TABLE metrics (
    scenario_run_id INTEGER NOT NULL REFERENCES scenario_runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL, n INTEGER, mean REAL, stddev REAL, p50 REAL, p90 REAL, p99 REAL,
    value REAL, PRIMARY KEY (scenario_run_id, name));
CREATE INDEX engine_runs_by_service ON engine_runs(service);
INSERT INTO runs VALUES (1, 900, 950, 'compose/sim.yml (project sim)', 'old-box', 'spark-perf 0.0.9', 1, NULL, NULL);
INSERT INTO engine_runs (id, run_id, service, flavor, outcome, image_id)
    VALUES (1, 1, 'sim-a', 'vllm', 'ok', 'sha256:old');
INSERT INTO scenario_runs VALUES (1, 1, 'latency', '{}', 'cafe', 0, NULL, 3, 3, 0, '{}');
INSERT INTO metrics (scenario_run_id, name, n, mean, stddev, p50, p90, p99)
    VALUES (1, 'ttft_ms', 3, 41.0, 1.0, 40.0, 42.0, 42.0);
PRAGMA user_version = 1;
";

#[test]
fn an_older_schema_is_upgraded_and_keeps_its_runs() {
    let dir = TempDir::new("migrate");
    let path = dir.path().join("h.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(V1_BY_HAND).unwrap();
    drop(conn);

    let mut history = History::open(&path).expect("upgrade from version 1");
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    history
        .append(&suite(1_000, &[50.0, 60.0, 70.0], "sha256:new"), &meta())
        .unwrap();
    let series = history
        .series("sim-a", "latency", "ttft_ms.p50", 10)
        .unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].value, Some(40.0));
    assert!(
        series[0].values.is_empty(),
        "version 1 kept no per-request values"
    );
    assert_eq!(series[0].image_id.as_deref(), Some("sha256:old"));
    assert_eq!(series[1].values, [50.0, 60.0, 70.0]);
}

#[test]
fn an_empty_file_version_0_gets_the_whole_schema() {
    let dir = TempDir::new("v0");
    let path = dir.path().join("h.sqlite");
    std::fs::write(&path, b"").unwrap();
    let mut history = History::open(&path).expect("open an empty file");
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    history
        .append(&suite(1, &[1.0], "sha256:a"), &meta())
        .unwrap();
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = TempDir::new("newer");
    let path = dir.path().join("h.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let err = History::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    assert!(message.contains("upgrade spark-perf"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was written to"
    );
    assert!(!dir.path().join("h.sqlite-wal").exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = TempDir::new("not-sqlite");
    let path = dir.path().join("h.sqlite");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let err = History::open(&path).unwrap_err();
    assert!(matches!(err, Error::NotSqlite { .. }), "{err:?}");
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(!dir.path().join("h.sqlite-wal").exists());
}

#[test]
fn a_corrupt_history_is_refused_and_left_untouched() {
    let dir = TempDir::new("corrupt");
    let path = dir.path().join("h.sqlite");
    let mut history = History::open(&path).unwrap();
    for night in 0..20 {
        history
            .append(&suite(night, &[50.0; 40], "sha256:aaa"), &meta())
            .unwrap();
    }
    drop(history);
    // Closing the last connection checkpoints the WAL into the main file.
    assert!(!dir.path().join("h.sqlite-wal").exists());
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4 * 4096, "{} bytes", bytes.len());
    // Keep the header and page 1 (the schema), overwrite the table pages.
    for byte in &mut bytes[4096..] {
        *byte = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = History::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::NotSqlite { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_reader_sees_whole_runs_while_a_writer_appends() {
    let dir = TempDir::new("wal");
    let path = dir.path().join("h.sqlite");
    History::open(&path).unwrap();
    let n_runs = 40u64;
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut history = History::open(&writer_path).unwrap();
        for night in 0..n_runs {
            history
                .append(&suite(night, &[50.0; 20], "sha256:aaa"), &meta())
                .expect("append while a reader reads");
        }
    });
    let reader = History::open(&path).unwrap();
    let mut n_reads = 0;
    let mut last_seen = 0;
    loop {
        let done = writer.is_finished();
        let runs = reader.runs().expect("read while the writer appends");
        assert!(
            runs.len() >= last_seen,
            "runs went from {last_seen} to {}",
            runs.len()
        );
        last_seen = runs.len();
        // Every run the reader sees is whole: both engines and its metrics.
        for run in &runs {
            assert_eq!(reader.engines_of(run.id).unwrap().len(), 2);
        }
        // Read after the runs, so it may see more of them, never fewer.
        let series = reader
            .series("sim-a", "latency", "ttft_ms.p50", 1000)
            .unwrap();
        assert!(
            series.len() >= runs.len(),
            "{} < {}",
            series.len(),
            runs.len()
        );
        n_reads += 1;
        if done {
            break;
        }
    }
    writer.join().unwrap();
    assert_eq!(last_seen as u64, n_runs);
    println!("{n_reads} reads during {n_runs} appends");
}
