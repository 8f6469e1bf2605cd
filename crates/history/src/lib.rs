//! The run history: every run's provenance, outcomes and run-level metric
//! values in one SQLite file (default `reports/history.sqlite`), so a nightly
//! run can be judged against the nights before it and a change point found.
//!
//! The unit of a history is a run: one row per run, per engine of the run,
//! per engine × scenario, and per metric of that scenario (its run-level
//! summary and, when the run kept its records, the per-request values).
//!
//! Architecture Invariant: depends on `spark-results` and SQLite only; it
//! knows no Docker, no HTTP and no statistics (the verdict lives in
//! `spark-report`, which does no I/O).
//! Architecture Invariant: a file that is not a SQLite database, is corrupt,
//! or has a newer schema than this build knows is an error naming the path,
//! and is never written to.
//! Architecture Invariant: appending the same run (same start time and
//! source) again replaces it in place, in one transaction, so a reader never
//! sees half a run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

mod append;
mod query;
mod schema;

pub use append::RunMeta;
pub use query::{EngineRow, Point, RunRow};
pub use schema::SCHEMA_VERSION;

/// How long a writer or reader waits for the other's lock before failing:
/// long enough for any append (a few ms), short enough to report a stuck
/// process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Identifies one run in a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub i64);

/// What can go wrong with a history file; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite could not open the file.
    #[error("cannot open the history {path}: {source}")]
    Open {
        /// The history file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file exists but is not a SQLite database (or its header is damaged).
    #[error(
        "{path} is not a spark-perf history (not a SQLite database); it was left untouched: pass another --history path or move the file away"
    )]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// The file is a SQLite database that fails its integrity check.
    #[error(
        "the history {path} is corrupt ({detail}); it was left untouched: restore it from a backup or start a new history with another --history path"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The first problem SQLite reported.
        detail: String,
    },
    /// A newer spark-perf wrote this file.
    #[error(
        "the history {path} has schema version {found}, newer than the {supported} this spark-perf knows; it was left untouched: upgrade spark-perf"
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// Upgrading an older schema failed (the transaction was rolled back).
    #[error("cannot upgrade the history {path} from schema version {from}: {source}")]
    Migrate {
        /// The file.
        path: PathBuf,
        /// The version the failing step started from.
        from: i64,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Writing a run failed (nothing of it was written).
    #[error("cannot append the run of {started_unix_ms} to the history {path}: {source}")]
    Append {
        /// The file.
        path: PathBuf,
        /// The run's start, Unix ms.
        started_unix_ms: u64,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("cannot read the history {path}: {source}")]
    Query {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A run directory's `results.json` could not be read.
    #[error("cannot read {path}: {source}")]
    ReadRun {
        /// The `results.json` file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A run directory's `results.json` is not a spark-perf run.
    #[error("{path} is not the results.json of a spark-perf run: {source}")]
    ParseRun {
        /// The `results.json` file.
        path: PathBuf,
        /// Where parsing failed (line and column).
        source: serde_json::Error,
    },
    /// A metric name that is not `NAME` or `NAME.STAT`.
    #[error(
        "unknown metric statistic `{metric}`: use NAME (e.g. output_throughput_tok_s) or NAME.STAT with STAT one of n, mean, stddev, p50, p90, p99 (e.g. ttft_ms.p50)"
    )]
    UnknownMetric {
        /// The name given.
        metric: String,
    },
}

/// An open history file.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens the history at `path`, creating it (and its schema) when it does
    /// not exist and upgrading an older schema.
    ///
    /// Nothing is written before the file is known to be a healthy SQLite
    /// database of this or an older schema.
    pub fn open(path: impl AsRef<Path>) -> Result<History, Error> {
        let path = path.as_ref().to_path_buf();
        check_header(&path)?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        let mut history = History { conn, path };
        // Read-only checks first: the version and the integrity.
        let found = history.user_version()?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                path: history.path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        history.integrity_check()?;
        // WAL: a report rendered (a reader) while a run appends (the writer)
        // neither blocks nor breaks either of them.
        history
            .conn
            .pragma_update(None, "journal_mode", "wal")
            .map_err(|source| history.open_error(source))?;
        history
            .conn
            .pragma_update(None, "foreign_keys", "on")
            .map_err(|source| history.open_error(source))?;
        schema::migrate(&mut history.conn, &history.path, found)?;
        Ok(history)
    }

    /// The file this history lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the file (after [`History::open`]: [`SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> Result<i64, Error> {
        self.user_version()
    }

    fn user_version(&self) -> Result<i64, Error> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => Error::NotSqlite {
                    path: self.path.clone(),
                },
                _ => self.open_error(source),
            })
    }

    fn integrity_check(&self) -> Result<(), Error> {
        let corrupt = |detail: String| Error::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let detail: String = self
            .conn
            .pragma_query_value(None, "quick_check", |row| row.get(0))
            .map_err(|source| match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => Error::NotSqlite {
                    path: self.path.clone(),
                },
                Some(rusqlite::ErrorCode::DatabaseCorrupt) => corrupt(source.to_string()),
                _ => self.open_error(source),
            })?;
        if detail == "ok" {
            Ok(())
        } else {
            Err(corrupt(detail))
        }
    }

    fn open_error(&self, source: rusqlite::Error) -> Error {
        Error::Open {
            path: self.path.clone(),
            source,
        }
    }

    fn query_error(&self, source: rusqlite::Error) -> Error {
        Error::Query {
            path: self.path.clone(),
            source,
        }
    }
}

/// Refuses a file that exists, is not empty and does not start like a SQLite
/// database, before SQLite opens it (so nothing can write to it).
fn check_header(path: &Path) -> Result<(), Error> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        // Created by SQLite below.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::ReadRun {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut header = [0u8; 16];
    let mut n_read = 0;
    while n_read < header.len() {
        match file.read(&mut header[n_read..]) {
            Ok(0) => break,
            Ok(n) => n_read += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::ReadRun {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    // An empty file is what SQLite itself creates before the first write.
    if n_read == 0 || header == *SQLITE_HEADER {
        Ok(())
    } else {
        Err(Error::NotSqlite {
            path: path.to_path_buf(),
        })
    }
}
