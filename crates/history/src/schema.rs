//! The schema of a history file and its migrations.
//!
//! The version lives in SQLite's `user_version` (0 for a new, empty file).
//! `MIGRATIONS[i]` upgrades version `i` to `i + 1`; each step runs in its own
//! transaction together with the new `user_version`, so an interrupted
//! upgrade leaves the file at the last complete version. A step is never
//! edited once released: a change of the schema is a new step.

use std::path::Path;

use rusqlite::Connection;

use crate::Error;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: runs, engines, scenarios and run-level metric summaries.
const V1: &str = "
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_unix_ms INTEGER NOT NULL,
    finished_unix_ms INTEGER,
    source TEXT NOT NULL,
    host TEXT NOT NULL,
    tool TEXT NOT NULL,
    complete INTEGER NOT NULL,
    stopped TEXT,
    run_dir TEXT,
    UNIQUE (started_unix_ms, source)
);
CREATE TABLE engine_runs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    flavor TEXT NOT NULL,
    model TEXT,
    url TEXT,
    outcome TEXT NOT NULL,
    failed_phase TEXT,
    failed_reason TEXT,
    image TEXT,
    image_id TEXT,
    repo_digest TEXT,
    command_json TEXT,
    command_hash TEXT,
    compose_config_hash TEXT,
    engine_version TEXT,
    time_to_healthy_s REAL,
    UNIQUE (run_id, service)
);
CREATE TABLE scenario_runs (
    id INTEGER PRIMARY KEY,
    engine_run_id INTEGER NOT NULL REFERENCES engine_runs(id) ON DELETE CASCADE,
    scenario TEXT NOT NULL,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    discarded INTEGER NOT NULL,
    stopped TEXT,
    n_requests INTEGER NOT NULL,
    n_ok INTEGER NOT NULL,
    n_failed INTEGER NOT NULL,
    failures_by_class_json TEXT NOT NULL,
    UNIQUE (engine_run_id, scenario)
);
CREATE TABLE metrics (
    scenario_run_id INTEGER NOT NULL REFERENCES scenario_runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    n INTEGER,
    mean REAL,
    stddev REAL,
    p50 REAL,
    p90 REAL,
    p99 REAL,
    value REAL,
    PRIMARY KEY (scenario_run_id, name)
);
CREATE INDEX engine_runs_by_service ON engine_runs(service);
";

/// Version 2: per-request values of each metric, and the GPU and driver.
const V2: &str = "
ALTER TABLE metrics ADD COLUMN values_json TEXT;
ALTER TABLE engine_runs ADD COLUMN gpu TEXT;
ALTER TABLE engine_runs ADD COLUMN driver TEXT;
";

const MIGRATIONS: &[&str] = &[V1, V2];

/// Brings a file of version `found` (≤ [`SCHEMA_VERSION`]) up to date.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, found: i64) -> Result<(), Error> {
    for from in found..SCHEMA_VERSION {
        let step = MIGRATIONS[from as usize];
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", from + 1)?;
            tx.commit()
        };
        run(conn).map_err(|source| Error::Migrate {
            path: path.to_path_buf(),
            from,
            source,
        })?;
    }
    Ok(())
}
