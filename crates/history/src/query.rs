//! Reading the history: runs, what was measured, and the series of one metric.

use rusqlite::{OptionalExtension, Row};

use crate::{Error, History, RunId};

/// One run of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Its id.
    pub id: RunId,
    /// Wall-clock start, Unix ms.
    pub started_unix_ms: u64,
    /// Wall-clock end, Unix ms, when it finished.
    pub finished_unix_ms: Option<u64>,
    /// Where its engines came from (e.g. `compose/sim.yml (project sim)`).
    pub source: String,
    /// The host it ran on.
    pub host: String,
    /// The tool and version that ran it.
    pub tool: String,
    /// Whether it ran to the end.
    pub complete: bool,
    /// Its run directory, when known.
    pub run_dir: Option<String>,
}

/// One engine of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRow {
    /// The service name.
    pub service: String,
    /// `ok`, `failed` or `interrupted`.
    pub outcome: String,
    /// The phase that failed.
    pub failed_phase: Option<String>,
    /// Why it failed (secrets already redacted by the writer of the run).
    pub failed_reason: Option<String>,
    /// The local image ID.
    pub image_id: Option<String>,
    /// Fingerprint of the command line.
    pub command_hash: Option<String>,
}

/// One run's value of one metric of one engine × scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The run.
    pub run_id: RunId,
    /// Its start, Unix ms.
    pub started_unix_ms: u64,
    /// The run-level value; `None` when it could not be measured.
    pub value: Option<f64>,
    /// The image as named in the compose file.
    pub image: Option<String>,
    /// The local image ID that ran.
    pub image_id: Option<String>,
    /// Fingerprint of the command line.
    pub command_hash: Option<String>,
    /// Fingerprint of the scenario configuration.
    pub config_hash: String,
    /// The engine's base URL.
    pub url: Option<String>,
    /// GPU model, when known.
    pub gpu: Option<String>,
    /// Requests that ended in the scenario.
    pub n_requests: u32,
    /// Of those, failed.
    pub n_failed: u32,
    /// The per-request values of the metric (successful requests) when the
    /// run kept its records; empty otherwise and for run-level metrics such
    /// as throughputs.
    pub values: Vec<f64>,
}

/// The statistics a distribution metric is stored with.
const STATS: &[&str] = &["n", "mean", "stddev", "p50", "p90", "p99"];

impl History {
    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, started_unix_ms, finished_unix_ms, source, host, tool, complete, run_dir
                 FROM runs ORDER BY started_unix_ms, id",
            )
            .map_err(|e| self.query_error(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(RunRow {
                    id: RunId(row.get(0)?),
                    started_unix_ms: row.get::<_, i64>(1)? as u64,
                    finished_unix_ms: row.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    source: row.get(3)?,
                    host: row.get(4)?,
                    tool: row.get(5)?,
                    complete: row.get(6)?,
                    run_dir: row.get(7)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.query_error(e))?;
        Ok(rows)
    }

    /// The engines of one run, in the order they ran.
    pub fn engines_of(&self, run_id: RunId) -> Result<Vec<EngineRow>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT service, outcome, failed_phase, failed_reason, image_id, command_hash
                 FROM engine_runs WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.query_error(e))?;
        stmt.query_map([run_id.0], |row| {
            Ok(EngineRow {
                service: row.get(0)?,
                outcome: row.get(1)?,
                failed_phase: row.get(2)?,
                failed_reason: row.get(3)?,
                image_id: row.get(4)?,
                command_hash: row.get(5)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.query_error(e))
    }

    /// The engines (services) that appear in the history, sorted.
    pub fn engines(&self) -> Result<Vec<String>, Error> {
        self.strings(
            "SELECT DISTINCT service FROM engine_runs ORDER BY service",
            &[],
        )
    }

    /// The scenarios measured on `engine`, sorted.
    pub fn scenarios(&self, engine: &str) -> Result<Vec<String>, Error> {
        self.strings(
            "SELECT DISTINCT s.scenario FROM scenario_runs s
             JOIN engine_runs e ON e.id = s.engine_run_id
             WHERE e.service = ?1 ORDER BY s.scenario",
            &[engine],
        )
    }

    /// The metric names a [`History::series`] accepts for `engine` ×
    /// `scenario`: `NAME` for run-level values, `NAME.STAT` for
    /// distributions. Sorted.
    pub fn metrics(&self, engine: &str, scenario: &str) -> Result<Vec<String>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT m.name, m.n IS NOT NULL FROM metrics m
                 JOIN scenario_runs s ON s.id = m.scenario_run_id
                 JOIN engine_runs e ON e.id = s.engine_run_id
                 WHERE e.service = ?1 AND s.scenario = ?2",
            )
            .map_err(|e| self.query_error(e))?;
        let rows: Vec<(String, bool)> = stmt
            .query_map([engine, scenario], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.query_error(e))?;
        let mut names: Vec<String> = rows
            .into_iter()
            .flat_map(|(name, is_distribution)| {
                if is_distribution {
                    STATS.iter().map(|stat| format!("{name}.{stat}")).collect()
                } else {
                    vec![name]
                }
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The last `last` runs' values of `metric` (`NAME` or `NAME.STAT`, see
    /// [`History::metrics`]) for `engine` × `scenario`, oldest first. Runs in
    /// which the engine did not measure the scenario have no point.
    pub fn series(
        &self,
        engine: &str,
        scenario: &str,
        metric: &str,
        last: usize,
    ) -> Result<Vec<Point>, Error> {
        let (name, column) = match metric.split_once('.') {
            // `failures.timeout` is a run-level name with a dot in it.
            Some((name, stat)) if STATS.contains(&stat) => (name, stat),
            Some(_) if metric.starts_with("failures.") => (metric, "value"),
            Some(_) => {
                return Err(Error::UnknownMetric {
                    metric: metric.to_string(),
                });
            }
            None => (metric, "value"),
        };
        // `column` comes from the fixed list above, never from the caller.
        let sql = format!(
            "SELECT * FROM (
                 SELECT r.id, r.started_unix_ms, m.{column}, e.image, e.image_id, e.command_hash,
                        s.config_hash, e.url, e.gpu, s.n_requests, s.n_failed, m.values_json
                 FROM metrics m
                 JOIN scenario_runs s ON s.id = m.scenario_run_id
                 JOIN engine_runs e ON e.id = s.engine_run_id
                 JOIN runs r ON r.id = e.run_id
                 WHERE e.service = ?1 AND s.scenario = ?2 AND m.name = ?3
                 ORDER BY r.started_unix_ms DESC, r.id DESC
                 LIMIT ?4)
             ORDER BY started_unix_ms, id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.query_error(e))?;
        let limit = i64::try_from(last).unwrap_or(i64::MAX);
        stmt.query_map(rusqlite::params![engine, scenario, name, limit], point)
            .and_then(Iterator::collect)
            .map_err(|e| self.query_error(e))
    }

    /// The id of the run that started at `started_unix_ms` from `source`.
    pub fn find_run(&self, started_unix_ms: u64, source: &str) -> Result<Option<RunId>, Error> {
        self.conn
            .query_row(
                "SELECT id FROM runs WHERE started_unix_ms = ?1 AND source = ?2",
                rusqlite::params![started_unix_ms as i64, source],
                |row| row.get(0).map(RunId),
            )
            .optional()
            .map_err(|e| self.query_error(e))
    }

    fn strings(&self, sql: &str, params: &[&str]) -> Result<Vec<String>, Error> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.query_error(e))?;
        stmt.query_map(rusqlite::params_from_iter(params), |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.query_error(e))
    }
}

fn point(row: &Row<'_>) -> rusqlite::Result<Point> {
    let values_json: Option<String> = row.get(11)?;
    // A damaged array is no per-request values rather than a failed query:
    // the run-level value is still good.
    let values = values_json
        .and_then(|json| serde_json::from_str::<Vec<f64>>(&json).ok())
        .unwrap_or_default();
    Ok(Point {
        run_id: RunId(row.get(0)?),
        started_unix_ms: row.get::<_, i64>(1)? as u64,
        // `n` is an integer column; read every column as a real.
        value: row.get::<_, Option<f64>>(2)?,
        image: row.get(3)?,
        image_id: row.get(4)?,
        command_hash: row.get(5)?,
        config_hash: row.get(6)?,
        url: row.get(7)?,
        gpu: row.get(8)?,
        n_requests: row.get(9)?,
        n_failed: row.get(10)?,
        values,
    })
}
