//! Writing a run into the history: [`History::append`] and [`History::import_dir`].

use std::path::{Path, PathBuf};

use rusqlite::{Transaction, params};
use spark_results::{
    Distribution, EngineOutcome, EngineRun, RequestRecord, ScenarioResult, SuiteResults,
};

use crate::{Error, History, RunId};

/// What a run's results do not say about where it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunMeta {
    /// The host that ran it (the Docker host of `run`, the local host of `demo`).
    pub host: String,
    /// The run directory, when it has one.
    pub run_dir: Option<PathBuf>,
    /// The GPU model, when known (e.g. from `nvidia-smi`).
    pub gpu: Option<String>,
    /// The GPU driver version, when known.
    pub driver: Option<String>,
}

/// The per-request value of each distribution metric, in the order the
/// distributions of `ScenarioAggregate` are listed. A request has no ITL
/// percentile of its own, so its ITL value is its mean gap.
/// Reads one metric's value from a request record.
type PerRequestValue = fn(&RequestRecord) -> Option<f64>;

const PER_REQUEST: &[(&str, PerRequestValue)] = &[
    ("ttft_ms", |r| r.ttft_ms),
    ("tpot_ms", |r| r.tpot_ms),
    ("itl_ms", |r| r.itl_mean_ms),
    ("e2e_ms", |r| Some(r.e2e_ms)),
    ("prompt_tok_s", |r| r.prompt_tok_s),
    ("decode_tok_s", |r| r.decode_tok_s),
    ("output_tok_s", |r| r.output_tok_s),
];

impl History {
    /// Appends a run (or replaces it, when a run with the same start time
    /// and source is already there: a run that grew since, or an import of
    /// the same directory twice). All of it is written in one transaction.
    pub fn append(&mut self, suite: &SuiteResults, meta: &RunMeta) -> Result<RunId, Error> {
        let path = self.path.clone();
        let error = |source| Error::Append {
            path: path.clone(),
            started_unix_ms: suite.started_unix_ms,
            source,
        };
        let tx = self.conn.transaction().map_err(error)?;
        let run_id = write_run(&tx, suite, meta).map_err(error)?;
        tx.commit().map_err(error)?;
        Ok(run_id)
    }

    /// Appends the run of a run directory (its `results.json`); `meta.run_dir`
    /// is set to `dir`.
    pub fn import_dir(&mut self, dir: impl AsRef<Path>, meta: &RunMeta) -> Result<RunId, Error> {
        let dir = dir.as_ref();
        let file = dir.join("results.json");
        let text = std::fs::read_to_string(&file).map_err(|source| Error::ReadRun {
            path: file.clone(),
            source,
        })?;
        let suite: SuiteResults =
            serde_json::from_str(&text).map_err(|source| Error::ParseRun {
                path: file.clone(),
                source,
            })?;
        let meta = RunMeta {
            run_dir: Some(dir.to_path_buf()),
            ..meta.clone()
        };
        self.append(&suite, &meta)
    }
}

fn write_run(
    tx: &Transaction<'_>,
    suite: &SuiteResults,
    meta: &RunMeta,
) -> rusqlite::Result<RunId> {
    let run_dir = meta.run_dir.as_ref().map(|d| d.display().to_string());
    let started = suite.started_unix_ms as i64;
    let finished = suite.finished_unix_ms.map(|ms| ms as i64);
    // The key is (start, source); the row keeps its id when replaced, and
    // its engines go (ON DELETE CASCADE) to be written again.
    let run_id: i64 = tx.query_row(
        "INSERT INTO runs (started_unix_ms, finished_unix_ms, source, host, tool, complete, stopped, run_dir)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (started_unix_ms, source) DO UPDATE SET
             finished_unix_ms = excluded.finished_unix_ms, host = excluded.host,
             tool = excluded.tool, complete = excluded.complete,
             stopped = excluded.stopped, run_dir = excluded.run_dir
         RETURNING id",
        params![
            started,
            finished,
            suite.source,
            meta.host,
            suite.tool,
            suite.complete,
            suite.stopped,
            run_dir
        ],
        |row| row.get(0),
    )?;
    tx.execute("DELETE FROM engine_runs WHERE run_id = ?1", [run_id])?;
    for engine in &suite.engines {
        write_engine(tx, run_id, engine, meta)?;
    }
    Ok(RunId(run_id))
}

fn write_engine(
    tx: &Transaction<'_>,
    run_id: i64,
    engine: &EngineRun,
    meta: &RunMeta,
) -> rusqlite::Result<()> {
    let (outcome, failed_phase, failed_reason) = match &engine.outcome {
        EngineOutcome::Ok => ("ok", None, None),
        EngineOutcome::Failed { phase, reason } => {
            ("failed", Some(phase.as_str()), Some(reason.as_str()))
        }
        EngineOutcome::Interrupted => ("interrupted", None, None),
    };
    let provenance = engine.provenance.as_ref();
    let command_json = provenance
        .map(|p| serde_json::to_string(&p.command))
        .transpose()
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let command_hash = command_json.as_deref().map(fingerprint);
    let url = engine.results.as_ref().map(|r| r.engine.url.as_str());
    let time_to_healthy_s = engine.startup.and_then(|s| s.healthy_s);
    tx.execute(
        "INSERT INTO engine_runs (run_id, service, flavor, model, url, outcome, failed_phase,
             failed_reason, image, image_id, repo_digest, command_json, command_hash,
             compose_config_hash, engine_version, time_to_healthy_s, gpu, driver)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            run_id,
            engine.service,
            engine.flavor,
            engine.model,
            url,
            outcome,
            failed_phase,
            failed_reason,
            provenance.map(|p| p.image.as_str()),
            provenance.and_then(|p| p.image_id.as_deref()),
            provenance.and_then(|p| p.repo_digests.first().map(String::as_str)),
            command_json,
            command_hash,
            provenance.and_then(|p| p.config_hash.as_deref()),
            provenance.and_then(|p| p.engine_version.as_deref()),
            time_to_healthy_s,
            meta.gpu,
            meta.driver,
        ],
    )?;
    let engine_run_id = tx.last_insert_rowid();
    if let Some(results) = &engine.results {
        for scenario in results.scenarios.iter().filter(|s| !s.discarded) {
            write_scenario(tx, engine_run_id, scenario, time_to_healthy_s)?;
        }
    }
    Ok(())
}

fn write_scenario(
    tx: &Transaction<'_>,
    engine_run_id: i64,
    scenario: &ScenarioResult,
    time_to_healthy_s: Option<f64>,
) -> rusqlite::Result<()> {
    let to_sql = |err: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(err));
    let config_json = serde_json::to_string(&scenario.config).map_err(to_sql)?;
    let aggregate = &scenario.aggregate;
    let failures_json = serde_json::to_string(&aggregate.failures_by_class).map_err(to_sql)?;
    tx.execute(
        "INSERT INTO scenario_runs (engine_run_id, scenario, config_json, config_hash, discarded,
             stopped, n_requests, n_ok, n_failed, failures_by_class_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            engine_run_id,
            scenario.name,
            config_json,
            fingerprint(&config_json),
            scenario.discarded,
            scenario.stopped,
            aggregate.n_requests,
            aggregate.n_ok,
            aggregate.n_failed,
            failures_json,
        ],
    )?;
    let scenario_run_id = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached(
        "INSERT INTO metrics (scenario_run_id, name, n, mean, stddev, p50, p90, p99, value, values_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let distributions: [(&str, &Distribution); 7] = [
        ("ttft_ms", &aggregate.ttft_ms),
        ("tpot_ms", &aggregate.tpot_ms),
        ("itl_ms", &aggregate.itl_ms),
        ("e2e_ms", &aggregate.e2e_ms),
        ("prompt_tok_s", &aggregate.prompt_tok_s),
        ("decode_tok_s", &aggregate.decode_tok_s),
        ("output_tok_s", &aggregate.output_tok_s),
    ];
    for (name, dist) in distributions {
        let values_json = per_request_values(name, &scenario.requests)
            .map(|values| serde_json::to_string(&values))
            .transpose()
            .map_err(to_sql)?;
        insert.execute(params![
            scenario_run_id,
            name,
            dist.n as i64,
            dist.mean,
            dist.stddev,
            dist.p50,
            dist.p90,
            dist.p99,
            Option::<f64>::None,
            values_json,
        ])?;
    }
    let failure_rate = (aggregate.n_requests > 0)
        .then(|| f64::from(aggregate.n_failed) / f64::from(aggregate.n_requests));
    let mut scalars: Vec<(String, Option<f64>)> = vec![
        (
            "request_throughput_rps".into(),
            Some(aggregate.request_throughput_rps),
        ),
        (
            "input_throughput_tok_s".into(),
            aggregate.input_throughput_tok_s,
        ),
        (
            "output_throughput_tok_s".into(),
            Some(aggregate.output_throughput_tok_s),
        ),
        ("duration_s".into(), Some(aggregate.duration_s)),
        ("n_requests".into(), Some(f64::from(aggregate.n_requests))),
        ("n_ok".into(), Some(f64::from(aggregate.n_ok))),
        ("n_failed".into(), Some(f64::from(aggregate.n_failed))),
        ("failure_rate".into(), failure_rate),
        // Per engine, repeated in each scenario so one series query serves
        // every metric.
        ("time_to_healthy_s".into(), time_to_healthy_s),
    ];
    for (class, n) in &aggregate.failures_by_class {
        scalars.push((format!("failures.{class}"), Some(f64::from(*n))));
    }
    for (name, value) in scalars {
        // NaN or infinity (an empty run's throughput) is no measurement.
        let value = value.filter(|v| v.is_finite());
        insert.execute(params![
            scenario_run_id,
            name,
            Option::<i64>::None,
            Option::<f64>::None,
            Option::<f64>::None,
            Option::<f64>::None,
            Option::<f64>::None,
            Option::<f64>::None,
            value,
            Option::<String>::None,
        ])?;
    }
    Ok(())
}

/// The per-request values of a distribution metric over the successful
/// requests, `None` when the run kept no records.
fn per_request_values(name: &str, requests: &[RequestRecord]) -> Option<Vec<f64>> {
    if requests.is_empty() {
        return None;
    }
    let (_, get) = PER_REQUEST.iter().find(|(n, _)| *n == name)?;
    Some(
        requests
            .iter()
            .filter(|r| r.is_ok())
            .filter_map(get)
            .filter(|v| v.is_finite())
            .collect(),
    )
}

/// A 64-bit FNV-1a fingerprint in hex: enough to tell two configurations or
/// command lines apart (it is not a security boundary), and it needs no
/// hashing crate.
pub(crate) fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    format!("{hash:016x}")
}
